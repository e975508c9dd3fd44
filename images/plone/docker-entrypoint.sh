#!/bin/bash
# Entrypoint of the txzserver Plone image.
#
# Commands: start (default), create-site, console, addzopeuser USER PASSWORD, pack; anything
# else is exec'd (e.g. bash). ROLE=instance|zeo|broker|standalone says what `start` runs.
# All configuration is environment variables, read by /app/etc/zope.conf through ZConfig's
# $(VAR) substitution; this script only sets their defaults (see the README, "Containers").
set -euo pipefail

CONF=/app/etc/zope.conf
ROLE=${ROLE:-instance}

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# --- defaults (plone-backend names where they exist) --------------------------------------
export LISTEN_PORT=${LISTEN_PORT:-8080}
export SERVER_THREADS=${SERVER_THREADS:-4}
export ZODB_CACHE_SIZE=${ZODB_CACHE_SIZE:-30000}
export ZOPE_FORM_MEMORY_LIMIT=${ZOPE_FORM_MEMORY_LIMIT:-4MB}
export ZOPE_FORM_DISK_LIMIT=${ZOPE_FORM_DISK_LIMIT:-1GB}
export ZOPE_FORM_MEMFILE_LIMIT=${ZOPE_FORM_MEMFILE_LIMIT:-4KB}
export MAX_REQUEST_BODY_SIZE=${MAX_REQUEST_BODY_SIZE:-1GB}
export IDLE_TIMEOUT=${IDLE_TIMEOUT:-60s}
# below docker stop's 10 s, so in-flight requests finish or are cut before SIGKILL
export SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-8s}
export TRUSTED_PROXY=${TRUSTED_PROXY:-127.0.0.1}
export INSTANCE_NAME=${INSTANCE_NAME:-}
export DEBUG_MODE=${DEBUG_MODE:-off}
export LOG_LEVEL=${LOG_LEVEL:-INFO}
export SITE=${SITE:-}
export TYPE=${TYPE:-classic}
export WEBSOCKET_SITE=${WEBSOCKET_SITE:-${SITE:-Plone}}
export ZEO_ADDRESS=${ZEO_ADDRESS:-}
export ZEO_STORAGE=${ZEO_STORAGE:-1}
export ZEO_READ_ONLY=${ZEO_READ_ONLY:-false}
export ZEO_CLIENT_CACHE_SIZE=${ZEO_CLIENT_CACHE_SIZE:-128MB}
export ZEO_LISTEN=${ZEO_LISTEN:-0.0.0.0:8100}
export ZEO_PACK_KEEP_OLD=${ZEO_PACK_KEEP_OLD:-false}
export ADMIN_USER=${ADMIN_USER:-admin}
if [ -n "${ADMIN_PASSWORD_FILE:-}" ]; then ADMIN_PASSWORD=$(cat "$ADMIN_PASSWORD_FILE"); fi
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-}
if [ "$ROLE" = standalone ]; then
  : "${EVENT_BUS_PUBLISH:=ipc:///run/txzserver/publish.sock}"
  : "${EVENT_BUS_SUBSCRIBE:=ipc:///run/txzserver/subscribe.sock}"
fi
export EVENT_BUS_PUBLISH=${EVENT_BUS_PUBLISH:-}
export EVENT_BUS_SUBSCRIBE=${EVENT_BUS_SUBSCRIBE:-}
if [ -n "$EVENT_BUS_PUBLISH" ] && [ -n "$EVENT_BUS_SUBSCRIBE" ]; then export EVENT_BUS=on; else export EVENT_BUS=off; fi
if [ -n "$ZEO_ADDRESS" ]; then export ZODB_STORAGE=zeo; else export ZODB_STORAGE=filestorage; fi

mkdir -p /data/var /data/etc
if [ "$ZODB_STORAGE" = filestorage ] || [ "$ROLE" = zeo ] || [ "$ROLE" = standalone ]; then
  mkdir -p /data/filestorage /data/blobstorage
fi

case $TYPE in
  classic) ;;
  *) die "TYPE=$TYPE is not supported: this image makes Classic UI sites (TYPE=classic)" ;;
esac

# --- admin user ---------------------------------------------------------------------------
# Zope reads /data/inituser when its user folder has at most one user, then removes it.
write_inituser() {
  [ "$ADMIN_PASSWORD" != admin ] || die "ADMIN_PASSWORD=admin is refused: choose another password"
  # Zope's own writer (as `txzserver mkinstance`), not a hashing of our own
  python3 - "$ADMIN_USER" <<'PY'
import os, sys
from Zope2.utilities.mkwsgiinstance import write_inituser
write_inituser("/data/inituser", sys.argv[1], os.environ["ADMIN_PASSWORD"])
os.chmod("/data/inituser", 0o600)
PY
}

prepare_admin() {
  if [ -n "$ADMIN_PASSWORD" ]; then
    write_inituser
  elif [ "$ZODB_STORAGE" = filestorage ] && [ ! -e /data/filestorage/Data.fs ]; then
    ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(15))')
    export ADMIN_PASSWORD
    write_inituser
    log "new database: generated password for Zope user '$ADMIN_USER': $ADMIN_PASSWORD"
  elif [ "$ZODB_STORAGE" = zeo ]; then
    log "no ADMIN_PASSWORD: no admin user is made (a new database needs one: addzopeuser USER PASSWORD)"
  fi
}

# --- CORS (plone.rest policy, as in the plone-backend image) ------------------------------
write_site_zcml() {
  rm -f /data/etc/site.zcml
  [ -n "${CORS_ALLOW_ORIGIN:-}" ] || return 0
  cat > /data/etc/site.zcml <<ZCML
<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:five="http://namespaces.zope.org/five"
           xmlns:plone="http://namespaces.plone.org/plone">
  <include package="Zope2.App" />
  <five:loadProducts file="meta.zcml"/>
  <five:loadProducts />
  <five:loadProductsOverrides />
  <include package="plone.rest" file="meta.zcml" />
  <plone:CORSPolicy
      allow_origin="${CORS_ALLOW_ORIGIN}"
      allow_methods="${CORS_ALLOW_METHODS:-DELETE,GET,OPTIONS,PATCH,POST,PUT}"
      allow_credentials="${CORS_ALLOW_CREDENTIALS:-true}"
      expose_headers="${CORS_EXPOSE_HEADERS:-Content-Length,X-My-Header}"
      allow_headers="${CORS_ALLOW_HEADERS:-Accept,Authorization,Content-Type,X-Custom-Header,Origin,Lock-Token}"
      max_age="${CORS_MAX_AGE:-3600}"
      />
</configure>
ZCML
}

# --- ADDONS: pip install at start (the venv is writable by group 0) -----------------------
install_addons() {
  [ -n "${ADDONS:-}" ] || return 0
  log "installing ADDONS: $ADDONS"
  # shellcheck disable=SC2086  # ADDONS and PIP_PARAMS are lists of words
  pip install -q -c /opt/constraints.txt ${PIP_PARAMS:-} $ADDONS
}

truthy() {  # true, t, yes, y, on, 1 (any case), as plone-backend's asbool; "false" is false
  case ${1,,} in true|t|yes|y|on|1) return 0 ;; *) return 1 ;; esac
}

profiles() {  # PROFILES, comma or space separated, as --profile arguments
  local p
  for p in ${PROFILES//,/ }; do printf -- '--profile\n%s\n' "$p"; done
}

run_script() {  # run_script SCRIPT [ARGS]: a Python script with Zope configured and app bound
  exec txzserver run "$CONF" "$@"
}

start_instance() {
  prepare_admin
  write_site_zcml
  install_addons
  local args=()
  if [ -n "$SITE" ]; then
    if truthy "${DELETE_EXISTING:-}"; then
      txzserver run "$CONF" /app/bin/create_site.py
    fi
    args=(--site "$SITE")
    mapfile -t -O 2 args < <(profiles)
  fi
  exec txzserver serve "$CONF" "${args[@]}"
}

start() {
  case $ROLE in
    instance) start_instance ;;
    zeo) exec runzeo -C /app/etc/zeo.conf ;;
    broker)
      [ "$EVENT_BUS" = on ] || die "ROLE=broker needs EVENT_BUS_PUBLISH and EVENT_BUS_SUBSCRIBE"
      exec txzserver broker --frontend "$EVENT_BUS_PUBLISH" --backend "$EVENT_BUS_SUBSCRIBE" ;;
    standalone)
      if [ -z "$ADMIN_PASSWORD" ] && [ ! -e /data/filestorage/Data.fs ]; then
        ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(15))')
        export ADMIN_PASSWORD
        log "new database: generated password for Zope user '$ADMIN_USER': $ADMIN_PASSWORD"
      fi
      exec supervisord -c /app/etc/supervisord.conf ;;
    *) die "unknown ROLE=$ROLE (instance, zeo, broker, standalone)" ;;
  esac
}

cmd=${1:-start}
case $cmd in
  start) start ;;
  create-site)
    [ -n "$SITE" ] || die "create-site needs SITE"
    prepare_admin; install_addons; run_script /app/bin/create_site.py ;;
  console) shift; run_script /app/bin/console.py "$@" ;;
  addzopeuser) shift; run_script /app/bin/adduser.py "$@" ;;
  pack) shift; run_script /app/bin/pack.py "$@" ;;
  *) exec "$@" ;;
esac
