#!/bin/sh
# Build the Debian base image locally with debootstrap and tag it (default debian:bookworm-slim),
# for machines that cannot pull from a registry. Needs root and debootstrap.
# Usage: images/base/debootstrap.sh [TAG] [SUITE] [MIRROR]
set -eu
TAG=${1:-debian:bookworm-slim}
SUITE=${2:-bookworm}
MIRROR=${3:-}
DOCKER=${DOCKER:-/usr/bin/docker}

if [ -z "$MIRROR" ]; then
  # the host's own mirror (deb822 or one-line format), else Debian's CDN
  MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n 1 || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
SECURITY=$(printf '%s' "$MIRROR" | sed 's#/debian/*$#/debian-security#')

ROOT=$(mktemp -d /tmp/txzserver-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT INT TERM
echo "debootstrap $SUITE from $MIRROR -> $TAG"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >/dev/null

cat > "$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
SOURCES
# like the official slim images: no documentation, no apt caches, no recommends
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
cat > "$ROOT/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Install-Recommends "false";
APT
# what debootstrap installed before those rules existed: documentation, manuals and message
# catalogs (33 MB of locales; the images run with LANG=C.UTF-8), apt's lists and caches, logs
find "$ROOT/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/lintian/* \
       "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/*
tar -C "$ROOT" -c . | "$DOCKER" import -c 'CMD ["bash"]' - "$TAG" >/dev/null
echo "tagged $TAG"
