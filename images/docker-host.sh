#!/bin/sh
# Make sure this machine can build and run the images: Debian's docker.io (with BuildKit in
# /usr/bin/docker), docker-compose, debootstrap, curl and openssl, and a running dockerd.
# Installs and starts what is missing when run as root; otherwise says what to do.
set -eu
DOCKER=/usr/bin/docker

missing=""
[ -x "$DOCKER" ] || missing="$missing docker.io"
command -v docker-compose >/dev/null 2>&1 || "$DOCKER" compose version >/dev/null 2>&1 || missing="$missing docker-compose"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing:$missing; as root: apt-get install$missing (or run make up as root)" >&2
    exit 1
  fi
  echo "installing$missing"
  apt-get update -qq
  # shellcheck disable=SC2086  # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "dockerd is not running (start it, or run make up as root)" >&2
    exit 1
  fi
  if ! { command -v systemctl >/dev/null 2>&1 && systemctl start docker >/dev/null 2>&1; }; then
    echo "starting dockerd (log: /var/log/dockerd.log)"
    # detached from make: the daemon outlives this command
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  fi
  i=0
  until "$DOCKER" info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then echo "dockerd did not start: see /var/log/dockerd.log" >&2; exit 1; fi
    sleep 0.5
  done
fi
