#!/bin/sh
# Make sure this machine can run Kubernetes YAML with Debian's podman (`podman kube play`), for
# the Kubernetes smoke test (make kube-smoke): podman and catatonit, and the containers.conf
# that works in this kind of sandbox. Installs and writes what is missing when run as root;
# otherwise says what to do.
#
# containers.conf, both settings measured here (podman 4.3.1):
#   default_ulimits: without them every container fails with "error setting rlimit type 6:
#     operation not permitted" (the sandbox forbids raising RLIMIT_NPROC/NOFILE to the defaults);
#   runtime runc: crun fails with "cgroups in hybrid mode not supported".
set -eu
CONF=/etc/containers/containers.conf

missing=""
command -v podman >/dev/null 2>&1 || missing="$missing podman"
[ -x /usr/bin/catatonit ] || [ -x /usr/libexec/podman/catatonit ] || missing="$missing catatonit"
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing:$missing; as root: apt-get install$missing" >&2
    exit 1
  fi
  echo "installing$missing"
  apt-get update -qq
  # shellcheck disable=SC2086  # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if ! grep -qs '^runtime *= *"runc"' "$CONF" || ! grep -qs 'nproc=4096' "$CONF"; then
  if [ "$(id -u)" != 0 ]; then
    echo "$CONF needs default_ulimits nofile/nproc 4096 and runtime runc (see images/podman-host.sh)" >&2
    exit 1
  fi
  [ ! -e "$CONF" ] || cp "$CONF" "$CONF.orig"
  mkdir -p "$(dirname "$CONF")"
  cat > "$CONF" <<'EOF'
# written by txzserver's images/podman-host.sh (the previous file, if any: containers.conf.orig)
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
  echo "wrote $CONF"
fi
