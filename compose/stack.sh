#!/bin/sh
# The compose stack: compose/stack.sh up|wait|down|logs|ps|config|compose ARGS...
# Uses `docker compose` (v2, the CLI plugin) when it is installed, else Debian's docker-compose
# (v1); COMPOSE=v1 or COMPOSE=v2 chooses, or names a compose binary (e.g. the v2 one `make
# compose-v2` installs: COMPOSE=.venv/compose-v2/compose/docker-compose).
# COMPOSE_PROJECT_NAME (default txzserver) and FRONT_PORT (default 8443) select the stack.
# STORAGE=zeo (default) or relstorage: the database, ZEO or PostgreSQL (docker-compose.relstorage.yml
# added). BUS=zmq (default: the ZeroMQ broker over ipc) or nats: one NATS JetStream node
# (docker-compose.nats.yml added). UI=classic (default: Plone's Classic UI at /Plone) or volto:
# Volto with the volto-txzserver add-on at the root of the front's origin, the site Plone a Volto
# site (docker-compose.volto.yml added; the image txzserver/volto, `make images UI=volto`).
# `down` always names every file, so it removes any variant.
# ADMIN_PASSWORD (and POSTGRES_PASSWORD for relstorage, NATS_PASSWORD for nats; or
# compose/.env) is needed to make containers, not to stop or look at them.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PATH=/usr/bin:$PATH
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-txzserver}"
export FRONT_PORT="${FRONT_PORT:-8443}"
SITE_URL="https://localhost:$FRONT_PORT/Plone"
STORAGE=${STORAGE:-zeo}
case $STORAGE in
  zeo) OVERRIDES="" ;;
  relstorage) OVERRIDES="docker-compose.relstorage.yml" ;;
  *) echo "STORAGE=$STORAGE: zeo or relstorage" >&2; exit 2 ;;
esac
BUS=${BUS:-zmq}
case $BUS in
  zmq) ;;
  nats) OVERRIDES="$OVERRIDES docker-compose.nats.yml" ;;
  *) echo "BUS=$BUS: zmq or nats" >&2; exit 2 ;;
esac
UI=${UI:-classic}
case $UI in
  classic) ;;
  volto) OVERRIDES="$OVERRIDES docker-compose.volto.yml"; SITE_URL="https://localhost:$FRONT_PORT/" ;;
  *) echo "UI=$UI: classic or volto" >&2; exit 2 ;;
esac

COMPOSE=${COMPOSE:-}
if [ -z "$COMPOSE" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE=v2; else COMPOSE=v1; fi
fi
case $COMPOSE in
  v1|v2) ;;
  */*) [ -x "$COMPOSE" ] || { echo "COMPOSE=$COMPOSE is not an executable" >&2; exit 2; } ;;
  *) echo "COMPOSE=$COMPOSE: v1 (docker-compose), v2 (docker compose) or a path" >&2; exit 2 ;;
esac

compose() {
  files=""
  for override in $OVERRIDES; do files="$files -f $HERE/$override"; done
  # shellcheck disable=SC2086  # a list of -f FILE pairs (the paths have no blanks)
  set -- --project-directory "$HERE" -f "$HERE/docker-compose.yml" $files "$@"
  case $COMPOSE in
    v1) docker-compose "$@" ;;
    v2) docker compose "$@" ;;
    *) "$COMPOSE" "$@" ;;
  esac
}

in_env_file() { grep -q "^$1=" "$HERE/.env" 2>/dev/null; }

ensure_env() {  # the admin password, made once and printed once; PostgreSQL's password
  if [ -z "${ADMIN_PASSWORD:-}" ] && ! in_env_file ADMIN_PASSWORD; then
    password=$(openssl rand -base64 15 | tr '+/' '-_')
    (umask 077; printf 'ADMIN_PASSWORD=%s\n' "$password" >> "$HERE/.env")
    echo "generated the Zope admin password (kept in compose/.env, shown only now): admin / $password"
  fi
  # hex: it goes into RELSTORAGE_DSN unquoted
  if [ "$STORAGE" = relstorage ] && [ -z "${POSTGRES_PASSWORD:-}" ] && ! in_env_file POSTGRES_PASSWORD; then
    (umask 077; printf 'POSTGRES_PASSWORD=%s\n' "$(openssl rand -hex 16)" >> "$HERE/.env")
    echo "generated PostgreSQL's password (user zope, kept in compose/.env)"
  fi
  # hex: it goes into the NATS URLs of the instances
  if [ "$BUS" = nats ] && [ -z "${NATS_PASSWORD:-}" ] && ! in_env_file NATS_PASSWORD; then
    (umask 077; printf 'NATS_PASSWORD=%s\n' "$(openssl rand -hex 24)" >> "$HERE/.env")
    echo "generated the NATS password (user txzserver, kept in compose/.env)"
  fi
}

wait_ready() {  # the front page through the front, verified with the dev CA
  deadline=$(( $(date +%s) + ${WAIT_SECONDS:-300} ))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$HERE/certs/ca.crt" "$SITE_URL" || true)" = 200 ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "the stack did not become ready within ${WAIT_SECONDS:-300} s" >&2
      compose ps >&2
      compose logs --tail 30 >&2
      exit 1
    fi
    sleep 2
  done
}

cert_group() {  # the front's user gets the group of the mounted certificate (mode 0640)
  if [ -e "$HERE/certs/front.pem" ]; then
    FRONT_CERT_GID=${FRONT_CERT_GID:-$(stat -c %g "$HERE/certs/front.pem")}
    export FRONT_CERT_GID
  fi
}

cmd=${1:-up}
[ $# -eq 0 ] || shift
case $cmd in
  # these make no container: the password compose insists on (${ADMIN_PASSWORD:?}) is not used
  down|ps|logs|wait)
    export ADMIN_PASSWORD="${ADMIN_PASSWORD:-not-used-by-$cmd}"
    export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-not-used-by-$cmd}"
    export NATS_PASSWORD="${NATS_PASSWORD:-not-used-by-$cmd}" ;;
esac
# `down` removes the stack whichever storage and bus it was started with
[ "$cmd" != down ] || OVERRIDES="docker-compose.relstorage.yml docker-compose.nats.yml docker-compose.volto.yml"
cert_group
case $cmd in
  up)
    "$HERE/dev-certs.sh"
    cert_group
    ensure_env
    compose up -d
    start=$(date +%s)
    wait_ready
    echo "txzserver stack ready in $(( $(date +%s) - start )) s: $SITE_URL (user admin, password in compose/.env)"
    echo "the certificate is signed by compose/certs/ca.crt: trust it as docs/operators/compose.md says ("Trusting the development CA")"
    ;;
  wait) wait_ready ;;
  down) compose down "$@" ;;
  logs) compose logs "$@" ;;
  ps) compose ps "$@" ;;
  config) compose config "$@" ;;
  compose) compose "$@" ;;
  *) echo "usage: $0 up|wait|down|logs|ps|config|compose ARGS" >&2; exit 2 ;;
esac
