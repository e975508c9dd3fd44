#!/bin/bash
# Entrypoint of the txzserver PostgreSQL image.
#
# `postgres [ARGS]` (the default): on first start (no PGDATA/PG_VERSION) make the cluster with
# initdb: superuser POSTGRES_USER with POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), database
# POSTGRES_DB (default: POSTGRES_USER), scram-sha-256 for TCP from anywhere, trust on the local
# socket; then run the server in the foreground. `backup` and `restore [--force] [NAME]`: the
# database's dumps (backup.sh). Anything else is exec'd (e.g. psql, bash).
set -euo pipefail

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

export PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-}

quote_ident() { printf '"%s"' "${1//\"/\"\"}"; }

init_cluster() {
  [ -n "$POSTGRES_PASSWORD" ] || die "a new cluster needs POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE)"
  log "making the cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
  mkdir -p "$PGDATA"
  # the password through a pipe, never in a file or on a command line
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  # the other containers (or pods) reach it over the network, with a password
  printf '\n# txzserver/postgresql: clients from any address, with a password\nhost all all all scram-sha-256\n' \
    >> "$PGDATA/pg_hba.conf"
  printf "\n# txzserver/postgresql\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # single-user mode: no server, no socket, nothing listening before the cluster is complete
    printf 'CREATE DATABASE %s OWNER %s\n' "$(quote_ident "$POSTGRES_DB")" "$(quote_ident "$POSTGRES_USER")" \
      | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  log "cluster ready"
}

# the database's backup and restore (pg_dump -Fc, pg_restore): images/postgresql/backup.sh
case ${1:-} in backup|restore) exec /usr/local/bin/backup.sh "$@" ;; esac

if [ "${1:-postgres}" = postgres ]; then
  [ $# -eq 0 ] || shift
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_cluster
  fi
  # PostgreSQL refuses a data directory that others may read (a volume's fsGroup may widen it)
  chmod 0700 "$PGDATA" 2>/dev/null || true
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
