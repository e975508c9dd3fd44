# Multi-arch builds of the four images with buildx bake (.github/workflows/images.yml).
# Each image is built FROM the target before it (named contexts), so no registry round trip.
variable "PREFIX" { default = "txzserver" }
variable "TAG" { default = "latest" }
variable "VERSION" { default = "dev" }
variable "REVISION" { default = "unknown" }
variable "PLATFORMS" { default = "linux/amd64,linux/arm64" }

group "default" {
  targets = ["base", "runtime", "plone", "front"]
}

target "_common" {
  context = "."
  platforms = split(",", PLATFORMS)
  args = { VERSION = VERSION, REVISION = REVISION }
}

target "base" {
  inherits = ["_common"]
  dockerfile = "images/base/Dockerfile"
  tags = ["${PREFIX}/base:${TAG}"]
  cache-from = ["type=gha,scope=base"]
  cache-to = ["type=gha,mode=max,scope=base"]
}

target "runtime" {
  inherits = ["_common"]
  dockerfile = "images/runtime/Dockerfile"
  contexts = { "txzserver/base:latest" = "target:base" }
  args = { VERSION = VERSION, REVISION = REVISION, BUILD_PACKAGES = "gcc python3-dev" }
  tags = ["${PREFIX}/runtime:${TAG}"]
  cache-from = ["type=gha,scope=runtime"]
  cache-to = ["type=gha,mode=max,scope=runtime"]
}

target "plone" {
  inherits = ["_common"]
  dockerfile = "images/plone/Dockerfile"
  contexts = { "txzserver/runtime:latest" = "target:runtime" }
  tags = ["${PREFIX}/plone:${TAG}"]
  cache-from = ["type=gha,scope=plone"]
  cache-to = ["type=gha,mode=max,scope=plone"]
}

target "front" {
  inherits = ["_common"]
  dockerfile = "images/front/Dockerfile"
  contexts = { "txzserver/base:latest" = "target:base" }
  tags = ["${PREFIX}/front:${TAG}"]
  cache-from = ["type=gha,scope=front"]
  cache-to = ["type=gha,mode=max,scope=front"]
}
