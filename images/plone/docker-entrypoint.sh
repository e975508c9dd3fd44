#!/bin/bash
# Entrypoint of the txzserver Plone image.
#
# Commands: start (default), create-site, create-classic, create-volto, upgrade [--dry-run],
# console, run SCRIPT [ARGS], addzopeuser USER PASSWORD, pack [DAYS], backup, restore [--force]
# [NAME] (ZEO and FileStorage: images/plone/scripts/zodb_backup.py); anything else is exec'd
# (e.g. bash).
# ROLE=instance|zeo|broker|standalone says what `start` runs.
# All configuration is environment variables, read by /app/etc/zope.conf through ZConfig's
# $(VAR) substitution; this script only sets their defaults (see docs/operators/images.md).
# It writes only /data/var/generated (remade at every start) and, once, the /data/etc/site.zcml
# link; /data/etc/zope.conf.d and /data/etc/package-includes are yours and never touched.
set -euo pipefail

CONF=/app/etc/zope.conf
GENERATED=/data/var/generated
ROLE=${ROLE:-instance}

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
truthy() {  # true, t, yes, y, on, 1 (any case), as plone-backend's asbool; "false" is false
  case ${1,,} in true|t|yes|y|on|1) return 0 ;; *) return 1 ;; esac
}

# --- defaults (plone-backend names where they exist) --------------------------------------
export LISTEN_PORT=${LISTEN_PORT:-8080}
export SERVER_THREADS=${SERVER_THREADS:-4}
export ZODB_CACHE_SIZE=${ZODB_CACHE_SIZE:-30000}
export ZOPE_FORM_MEMORY_LIMIT=${ZOPE_FORM_MEMORY_LIMIT:-4MB}
export ZOPE_FORM_DISK_LIMIT=${ZOPE_FORM_DISK_LIMIT:-1GB}
export ZOPE_FORM_MEMFILE_LIMIT=${ZOPE_FORM_MEMFILE_LIMIT:-4KB}
export MAX_REQUEST_BODY_SIZE=${MAX_REQUEST_BODY_SIZE:-1GB}
# all bodies spooled at once (below the temporary directory's free space), and the largest body
# of a request without credentials
export MAX_SPOOL_SIZE=${MAX_SPOOL_SIZE:-2GB}
export MAX_ANONYMOUS_BODY_SIZE=${MAX_ANONYMOUS_BODY_SIZE:-10MB}
export IDLE_TIMEOUT=${IDLE_TIMEOUT:-60s}
# below docker stop's 10 s, so in-flight requests finish or are cut before SIGKILL
export SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-8s}
export TRUSTED_PROXY=${TRUSTED_PROXY:-127.0.0.1}
export TRUSTED_PROXY_NETWORK=${TRUSTED_PROXY_NETWORK:-}
export INSTANCE_NAME=${INSTANCE_NAME:-}
# /healthz/live, /healthz/ready, /healthz/startup (the Kubernetes probes) on a port of their own;
# empty or "off": none. See serve_conf below.
export HEALTH_PORT=${HEALTH_PORT-8081}
export HEALTH_STUCK_AFTER=${HEALTH_STUCK_AFTER:-300s}
export DEBUG_MODE=${DEBUG_MODE:-off}
export LOG_LEVEL=${LOG_LEVEL:-INFO}
# text or json: the event and access logs as one JSON object per line
export LOG_FORMAT=${LOG_FORMAT:-text}
# Prometheus metrics (<metrics-server>) on a port of their own; empty or "off": none
export METRICS_PORT=${METRICS_PORT-8082}
export METRICS_PATH=${METRICS_PATH:-/metrics}
# Zope's own keys, plone-backend's names and defaults
export CLIENT_HOME=${CLIENT_HOME:-/data/var}
export SECURITY_POLICY_IMPLEMENTATION=${SECURITY_POLICY_IMPLEMENTATION:-C}
export VERBOSE_SECURITY=${VERBOSE_SECURITY:-off}
export DEFAULT_ZPUBLISHER_ENCODING=${DEFAULT_ZPUBLISHER_ENCODING:-utf-8}
export ZOPE_CONF_INCLUDES=$GENERATED/zope.conf.d.conf
export ZCML=${ZCML:-}
# the site that `start` (with SITE) and create-* make (images/plone/scripts/create_site.py)
export SITE=${SITE:-}
export TYPE=${TYPE:-classic}
export LANGUAGE=${LANGUAGE:-en}
export TIMEZONE=${TIMEZONE:-Europe/Berlin}
export SETUP_CONTENT=${SETUP_CONTENT:-false}
# `upgrade` (images/plone/scripts/upgrade.py): UPGRADE_DRY_RUN lists the pending steps only;
# UPGRADE_LOCK_TIMEOUT seconds a run waits for another's lock, UPGRADE_LOCK_STALE the age at
# which a ZODB lock marker left by a killed run is taken over. UPGRADE_WAIT (seconds; empty or
# "off": no wait): `start` waits up to that long, before serving, until no Plone site (SITE if
# set) has pending upgrade steps, and exits non-zero after it (an instance of a new image never
# serves a site its upgrade Job has not upgraded yet)
export UPGRADE_WAIT=${UPGRADE_WAIT:-}
export WEBSOCKET_SITE=${WEBSOCKET_SITE:-${SITE:-Plone}}
# WebSocket subscribers this instance accepts (<websocket> max-connections); more are refused
# with 503 (the TxzserverWebSocketSubscribersNearLimit alert fires at 80 %)
export WEBSOCKET_MAX_CONNECTIONS=${WEBSOCKET_MAX_CONNECTIONS:-10000}
export ZEO_ADDRESS=${ZEO_ADDRESS:-}
export ZEO_STORAGE=${ZEO_STORAGE:-1}
export ZEO_READ_ONLY=${ZEO_READ_ONLY:-false}
export ZEO_CLIENT_READ_ONLY_FALLBACK=${ZEO_CLIENT_READ_ONLY_FALLBACK:-false}
export ZEO_SHARED_BLOB_DIR=${ZEO_SHARED_BLOB_DIR:-off}
# shared: the ZEO server's blob directory, mounted here; else this client's cache of blobs
if truthy "$ZEO_SHARED_BLOB_DIR"; then ZEO_BLOB_DIR=${ZEO_BLOB_DIR:-/data/blobstorage}; fi
export ZEO_BLOB_DIR=${ZEO_BLOB_DIR:-/data/blobcache}
# accepted for plone-backend compatibility; ZEO 5 ignores it (a cache that cannot be verified is
# always dropped), and ZEO's <clientstorage> has no such key
export ZEO_DROP_CACHE_RATHER_VERIFY=${ZEO_DROP_CACHE_RATHER_VERIFY:-false}
export ZEO_CLIENT_CACHE_SIZE=${ZEO_CLIENT_CACHE_SIZE:-128MB}
# seconds a request waits for a disconnected ZEO (per attempt; Zope retries 3 times): fail fast
export ZEO_WAIT_TIMEOUT=${ZEO_WAIT_TIMEOUT:-1}
# seconds the start waits for ZEO to accept connections (the client itself waits ZEO_WAIT_TIMEOUT)
export ZEO_START_TIMEOUT=${ZEO_START_TIMEOUT:-120}
export ZEO_LISTEN=${ZEO_LISTEN:-0.0.0.0:8100}
export ZEO_PACK_KEEP_OLD=${ZEO_PACK_KEEP_OLD:-false}
# days of history `pack` keeps (zeopack's and plone-backend's default: none)
export PACK_DAYS=${PACK_DAYS:-0}
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
# NATS JetStream instead (the bus's nats backend; docs/operators/images.md): NATS_URL, one or more
# nats:// or tls:// URLs, space or comma separated (three or more: the streams keep 3 copies);
# NATS_USER and NATS_PASSWORD (or NATS_PASSWORD_FILE) are put into each URL, or NATS_CREDENTIALS
# (a .creds file) or NATS_NKEY (an nkey seed file) name the credentials; NATS_TLS_CA a CA file.
# TASK_QUEUE_BACKEND=nats adds the durable task queue "default" on the same servers.
if [ -n "${NATS_PASSWORD_FILE:-}" ]; then NATS_PASSWORD=$(cat "$NATS_PASSWORD_FILE"); fi
export NATS_URL=${NATS_URL:-} NATS_USER=${NATS_USER:-} NATS_PASSWORD=${NATS_PASSWORD:-}
export NATS_CREDENTIALS=${NATS_CREDENTIALS:-} NATS_NKEY=${NATS_NKEY:-} NATS_TLS_CA=${NATS_TLS_CA:-}
export TASK_QUEUE_BACKEND=${TASK_QUEUE_BACKEND:-off} TASK_CONCURRENCY=${TASK_CONCURRENCY:-1}
export NATS_CONF=$GENERATED/bus-nats.conf
if [ -n "$NATS_URL" ]; then
  [ "$EVENT_BUS" = off ] || die "NATS_URL and EVENT_BUS_PUBLISH/EVENT_BUS_SUBSCRIBE are two buses: set one"
  EVENT_BUS=nats
fi
case $TASK_QUEUE_BACKEND in
  off) ;;
  nats) [ "$EVENT_BUS" = nats ] || die "TASK_QUEUE_BACKEND=nats needs NATS_URL (the task queue uses the bus's NATS servers)" ;;
  *) die "unknown TASK_QUEUE_BACKEND=$TASK_QUEUE_BACKEND (off, nats)" ;;
esac
# tcp endpoints speak CURVE: z85 keys from the environment (a Kubernetes Secret), written as
# certificate files by prepare_bus. The broker: EVENT_BUS_SERVER_KEY + EVENT_BUS_SERVER_SECRET_KEY
# and EVENT_BUS_ALLOW (client public keys, space separated); an instance: EVENT_BUS_SERVER_KEY +
# EVENT_BUS_CLIENT_KEY + EVENT_BUS_CLIENT_SECRET_KEY. EVENT_BUS_CURVE=off: plain tcp (trusted
# network only). ipc needs no keys.
export EVENT_BUS_CURVE=${EVENT_BUS_CURVE:-on}
export EVENT_BUS_SERVER_KEY_FILE="" EVENT_BUS_CLIENT_KEY_FILE=""
BUS_KEYS=$GENERATED/bus-keys

write_certificate() {  # FILE PUBLIC [SECRET]: the format zmq.auth.create_certificates writes
  { echo "# ZeroMQ CURVE certificate, written by docker-entrypoint.sh from the environment"
    echo "metadata"
    echo "curve"
    echo "    public-key = \"$2\""
    if [ -n "${3:-}" ]; then echo "    secret-key = \"$3\""; fi; } > "$1"
}

prepare_bus() {
  # the bus refuses an ipc socket directory open to others: the image's /run/txzserver (group
  # writable for arbitrary uids) is narrowed to 0700 when it is this user's (the compose
  # volume: every container runs as uid 500)
  local endpoint dir
  for endpoint in "$EVENT_BUS_PUBLISH" "$EVENT_BUS_SUBSCRIBE"; do
    case $endpoint in
      ipc://*) dir=$(dirname "${endpoint#ipc://}")
               if [ -d "$dir" ] && [ -O "$dir" ]; then chmod 0700 "$dir"; fi ;;
    esac
  done
  [ -n "${EVENT_BUS_SERVER_KEY:-}" ] || return 0
  rm -rf "$BUS_KEYS"
  (umask 077; mkdir -p "$BUS_KEYS/allowed")
  write_certificate "$BUS_KEYS/broker.key" "$EVENT_BUS_SERVER_KEY"
  EVENT_BUS_SERVER_KEY_FILE=$BUS_KEYS/broker.key
  if [ -n "${EVENT_BUS_CLIENT_SECRET_KEY:-}" ]; then
    (umask 077; write_certificate "$BUS_KEYS/client.key_secret" "${EVENT_BUS_CLIENT_KEY:?EVENT_BUS_CLIENT_SECRET_KEY needs EVENT_BUS_CLIENT_KEY}" "$EVENT_BUS_CLIENT_SECRET_KEY")
    EVENT_BUS_CLIENT_KEY_FILE=$BUS_KEYS/client.key_secret
  fi
  if [ -n "${EVENT_BUS_SERVER_SECRET_KEY:-}" ]; then
    (umask 077; write_certificate "$BUS_KEYS/broker.key_secret" "$EVENT_BUS_SERVER_KEY" "$EVENT_BUS_SERVER_SECRET_KEY")
    local index=0 key allowed
    read -r -a allowed <<< "${EVENT_BUS_ALLOW:-}"  # split on blanks, no globbing (z85 has * and ?)
    for key in "${allowed[@]}"; do
      index=$((index + 1))
      write_certificate "$BUS_KEYS/allowed/client-$index.key" "$key"
    done
  fi
}

# RelStorage on PostgreSQL, plone-backend's variables and defaults (config/storage-relstorage.conf).
# Blobs are kept in PostgreSQL; RELSTORAGE_BLOB_DIR is this client's cache of them.
if [ -n "${RELSTORAGE_DSN_FILE:-}" ]; then RELSTORAGE_DSN=$(cat "$RELSTORAGE_DSN_FILE"); fi
# ... or built from its parts (images/plone/scripts/relstorage_dsn.py): RELSTORAGE_HOST,
# RELSTORAGE_PORT (5432), RELSTORAGE_DBNAME, RELSTORAGE_USER and RELSTORAGE_PASSWORD or
# RELSTORAGE_PASSWORD_FILE, so that the password is not repeated in a second Secret
if [ -z "${RELSTORAGE_DSN:-}" ] && [ -n "${RELSTORAGE_HOST:-}" ]; then
  if [ -n "${RELSTORAGE_PASSWORD_FILE:-}" ]; then RELSTORAGE_PASSWORD=$(cat "$RELSTORAGE_PASSWORD_FILE"); fi
  RELSTORAGE_DSN=$(RELSTORAGE_PASSWORD=${RELSTORAGE_PASSWORD:-} python3 /app/bin/relstorage_dsn.py) || exit 2
fi
export RELSTORAGE_DSN=${RELSTORAGE_DSN:-}
export RELSTORAGE_NAME=${RELSTORAGE_NAME:-storage}
export RELSTORAGE_READ_ONLY=${RELSTORAGE_READ_ONLY:-off}
export RELSTORAGE_KEEP_HISTORY=${RELSTORAGE_KEEP_HISTORY:-true}
export RELSTORAGE_COMMIT_LOCK_TIMEOUT=${RELSTORAGE_COMMIT_LOCK_TIMEOUT:-30}
export RELSTORAGE_CREATE_SCHEMA=${RELSTORAGE_CREATE_SCHEMA:-true}
export RELSTORAGE_SHARED_BLOB_DIR=${RELSTORAGE_SHARED_BLOB_DIR:-false}
export RELSTORAGE_BLOB_DIR=${RELSTORAGE_BLOB_DIR:-/data/blobcache}
export RELSTORAGE_BLOB_CACHE_SIZE=${RELSTORAGE_BLOB_CACHE_SIZE:-100mb}
export RELSTORAGE_BLOB_CACHE_SIZE_CHECK=${RELSTORAGE_BLOB_CACHE_SIZE_CHECK:-10}
export RELSTORAGE_BLOB_CACHE_SIZE_CHECK_EXTERNAL=${RELSTORAGE_BLOB_CACHE_SIZE_CHECK_EXTERNAL:-false}
export RELSTORAGE_BLOB_CHUNK_SIZE=${RELSTORAGE_BLOB_CHUNK_SIZE:-1048576}
# empty: the database's name
export RELSTORAGE_CACHE_PREFIX=${RELSTORAGE_CACHE_PREFIX:-}
export RELSTORAGE_CACHE_LOCAL_MB=${RELSTORAGE_CACHE_LOCAL_MB:-10}
export RELSTORAGE_CACHE_LOCAL_OBJECT_MAX=${RELSTORAGE_CACHE_LOCAL_OBJECT_MAX:-16384}
export RELSTORAGE_CACHE_LOCAL_COMPRESSION=${RELSTORAGE_CACHE_LOCAL_COMPRESSION:-none}
export RELSTORAGE_CACHE_DELTA_SIZE_LIMIT=${RELSTORAGE_CACHE_DELTA_SIZE_LIMIT:-100000}
# seconds the start waits for PostgreSQL to accept a connection with RELSTORAGE_DSN
export RELSTORAGE_START_TIMEOUT=${RELSTORAGE_START_TIMEOUT:-120}

# The storage: ZODB_STORAGE if set, else RelStorage when RELSTORAGE_DSN is set (it wins over
# ZEO_ADDRESS, as in plone-backend), ZEO when ZEO_ADDRESS is set, else a FileStorage in /data.
if [ -z "${ZODB_STORAGE:-}" ]; then
  if [ -n "$RELSTORAGE_DSN" ]; then ZODB_STORAGE=relstorage
  elif [ -n "$ZEO_ADDRESS" ]; then ZODB_STORAGE=zeo
  else ZODB_STORAGE=filestorage
  fi
fi
export ZODB_STORAGE
case $ZODB_STORAGE in
  filestorage) ;;
  zeo) [ -n "$ZEO_ADDRESS" ] || die "ZODB_STORAGE=zeo needs ZEO_ADDRESS (host:port)" ;;
  relstorage) [ -n "$RELSTORAGE_DSN" ] || die "ZODB_STORAGE=relstorage needs RELSTORAGE_DSN" ;;
  *) die "unknown ZODB_STORAGE=$ZODB_STORAGE (filestorage, zeo, relstorage)" ;;
esac

# TMPDIR may point into /data (a read-only root filesystem with a small /tmp tmpfs: the compose stack)
mkdir -p /data/var /data/etc "$GENERATED/package-includes" "$CLIENT_HOME" "${TMPDIR:-/tmp}"
prepare_bus
if [ "$ZODB_STORAGE" = filestorage ] || [ "$ROLE" = zeo ] || [ "$ROLE" = standalone ]; then
  mkdir -p /data/filestorage /data/blobstorage
fi

case $TYPE in
  classic|volto) ;;
  *) die "unknown TYPE=$TYPE (classic, volto)" ;;
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
  elif [ "$ZODB_STORAGE" != filestorage ]; then
    log "no ADMIN_PASSWORD: no admin user is made (a new database needs one: addzopeuser USER PASSWORD)"
  fi
}

# Plone's outgoing mail (txzserver.plone.mail): SMTP_HOST (unset: the site's own mail
# settings), SMTP_PORT (25), SMTP_USER, SMTP_PASSWORD or SMTP_PASSWORD_FILE (read at every
# connection: a rotated Secret needs no restart), SMTP_FROM, SMTP_FROM_NAME; written by
# images/plone/scripts/mail_conf.py as <product-config txzserver-mail>
MAIL_CONF=$GENERATED/mail.conf
write_mail_conf() {
  rm -f "$MAIL_CONF" "$MAIL_CONF.password"
  [ -n "${SMTP_HOST:-}" ] || return 0
  (umask 077; python3 /app/bin/mail_conf.py "$MAIL_CONF") || exit 2
}

# --- ZCML and zope.conf extension points (nothing the user wrote is rewritten) ------------
# Zope reads /data/etc/site.zcml: a link to the image's, made once; a file of your own stays.
# An older image wrote the file itself for CORS: such a file is replaced by the link.
link_site_zcml() {
  local site=/data/etc/site.zcml
  if [ -f "$site" ] && [ ! -L "$site" ] && grep -q '<plone:CORSPolicy' "$site" \
      && grep -q '<include package="plone.rest" file="meta.zcml" />' "$site"; then
    rm -f "$site"
  fi
  if [ ! -e "$site" ] && [ ! -L "$site" ]; then ln -s /app/etc/site.zcml "$site"; fi
  mkdir -p /data/etc/zope.conf.d /data/etc/package-includes
}

xml_attr() { local s=${1//&/&amp;}; s=${s//</&lt;}; printf '%s' "${s//\"/&quot;}"; }

# ZCML: buildout's `zcml` syntax, space or comma separated: PACKAGE (its configure.zcml),
# PACKAGE-meta, PACKAGE-overrides, PACKAGE:FILE.zcml; one generated package-includes file each.
write_zcml_includes() {
  local item package file kind directive n=0
  for item in ${ZCML//,/ }; do
    n=$((n + 1))
    case $item in
      *:*) package=${item%%:*} file=${item#*:} ;;
      *-meta) package=${item%-meta} file=meta.zcml ;;
      *-overrides) package=${item%-overrides} file=overrides.zcml ;;
      *) package=$item file=configure.zcml ;;
    esac
    case $file in
      meta.zcml) kind=meta directive=include ;;
      overrides.zcml) kind=overrides directive=includeOverrides ;;
      *) kind=configure directive=include ;;
    esac
    printf '<configure xmlns="http://namespaces.zope.org/zope">\n  <%s package="%s" file="%s" />\n</configure>\n' \
      "$directive" "$(xml_attr "$package")" "$(xml_attr "$file")" \
      > "$GENERATED/package-includes/$(printf '%03d' "$n")-zcml-$kind.zcml"
  done
}

# CORS: a plone.rest policy, as in the plone-backend image (its defaults)
write_cors_zcml() {
  [ -n "${CORS_ALLOW_ORIGIN:-}" ] || return 0
  cat > "$GENERATED/package-includes/000-cors-configure.zcml" <<ZCML
<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:plone="http://namespaces.plone.org/plone">
  <include package="plone.rest" file="meta.zcml" />
  <plone:CORSPolicy
      allow_origin="$(xml_attr "$CORS_ALLOW_ORIGIN")"
      allow_methods="$(xml_attr "${CORS_ALLOW_METHODS:-DELETE,GET,OPTIONS,PATCH,POST,PUT}")"
      allow_credentials="$(xml_attr "${CORS_ALLOW_CREDENTIALS:-true}")"
      expose_headers="$(xml_attr "${CORS_EXPOSE_HEADERS:-Content-Length,X-My-Header}")"
      allow_headers="$(xml_attr "${CORS_ALLOW_HEADERS:-Accept,Authorization,Content-Type,X-Custom-Header,Origin,Lock-Token}")"
      max_age="$(xml_attr "${CORS_MAX_AGE:-3600}")"
      />
</configure>
ZCML
}

# zope.conf.d: one %include per snippet, image's first, in name order (an empty file: none)
write_conf_includes() {
  local snippet tmp=$ZOPE_CONF_INCLUDES.$$
  {
    echo "# made by docker-entrypoint.sh at start: the zope.conf.d snippets, in this order"
    for snippet in /app/etc/zope.conf.d/*.conf "$MAIL_CONF" /data/etc/zope.conf.d/*.conf; do
      [ -f "$snippet" ] && echo "%include $snippet"
    done
  } > "$tmp"
  mv -f "$tmp" "$ZOPE_CONF_INCLUDES"
}

# The <event-bus> (backend nats) and <task-queue default> sections of bus-nats.conf, from NATS_*
# (mode 0600: the URLs may carry the password).
write_nats_conf() {
  [ "$EVENT_BUS" = nats ] || return 0
  local url urls count=0 auth="" replicas=1
  if [ -n "$NATS_USER$NATS_PASSWORD" ]; then
    [[ $NATS_USER =~ ^[A-Za-z0-9._~-]+$ && $NATS_PASSWORD =~ ^[A-Za-z0-9._~-]+$ ]] \
      || die "NATS_USER and NATS_PASSWORD must both be set, of letters, digits and . _ ~ - (they go into URLs)"
    auth="$NATS_USER:$NATS_PASSWORD@"
  fi
  read -r -a urls <<< "${NATS_URL//,/ }"
  (umask 077
   { echo "# made by docker-entrypoint.sh at start from NATS_*"
     echo "<event-bus>"
     echo "  backend nats"
     for url in "${urls[@]}"; do
       case $url in
         nats://*@*|tls://*@*) die "NATS_URL $url carries credentials: use NATS_USER and NATS_PASSWORD" ;;
         nats://?*|tls://?*) echo "  nats-server ${url%%://*}://$auth${url#*://}" ;;
         *) die "NATS_URL: $url is not a nats:// or tls:// URL" ;;
       esac
       count=$((count + 1))
     done
     if [ -n "$NATS_CREDENTIALS" ]; then echo "  nats-credentials $NATS_CREDENTIALS"; fi
     if [ -n "$NATS_NKEY" ]; then echo "  nats-nkey $NATS_NKEY"; fi
     if [ -n "$NATS_TLS_CA" ]; then echo "  nats-tls-ca $NATS_TLS_CA"; fi
     echo "</event-bus>"
     if [ "$TASK_QUEUE_BACKEND" = nats ]; then
       # as the bus's stream: 3 copies on three or more servers (a cluster), else 1
       [ "$count" -lt 3 ] || replicas=3
       echo "<task-queue default>"
       echo "  backend nats"
       echo "  concurrency $TASK_CONCURRENCY"
       echo "  replicas $replicas"
       echo "</task-queue>"
     fi
   } > "$NATS_CONF.$$")
  mv -f "$NATS_CONF.$$" "$NATS_CONF"
}

prepare_config() {  # before anything reads zope.conf
  link_site_zcml
  rm -f "$GENERATED"/package-includes/*.zcml
  write_mail_conf
  write_cors_zcml
  write_zcml_includes
  write_conf_includes
  write_nats_conf
  if [ -n "${ZEO_ADDRESS:-}" ] && truthy "$ZEO_DROP_CACHE_RATHER_VERIFY"; then
    log "ZEO_DROP_CACHE_RATHER_VERIFY is ignored: ZEO 5 always drops a cache it cannot verify"
  fi
}

# --- ADDONS: pip install at start (the venv is writable by group 0) -----------------------
install_addons() {
  [ -n "${ADDONS:-}" ] || return 0
  log "installing ADDONS: $ADDONS"
  # shellcheck disable=SC2086  # ADDONS and PIP_PARAMS are lists of words
  pip install -q -c /opt/constraints.txt ${PIP_PARAMS:-} $ADDONS
}

# --- DEVELOP: pip install --editable of source folders (mounted), as plone-backend -----------
install_develop() {
  [ -n "${DEVELOP:-}" ] || return 0
  log "installing DEVELOP (editable): $DEVELOP"
  local args=() folder
  for folder in $DEVELOP; do args+=(--editable "$folder"); done
  # shellcheck disable=SC2086  # PIP_PARAMS is a list of words
  pip install -q -c /opt/constraints.txt ${PIP_PARAMS:-} "${args[@]}"
}

install_packages() { install_addons; install_develop; }

wait_for_zeo() {  # until ZEO_ADDRESS accepts connections (ZEO may start after us)
  [ "$ZODB_STORAGE" = zeo ] || return 0
  local host=${ZEO_ADDRESS%:*} port=${ZEO_ADDRESS##*:} deadline=$((SECONDS + ZEO_START_TIMEOUT))
  # shellcheck disable=SC2016  # $0 and $1 are the inner bash's arguments
  until timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "ZEO at $ZEO_ADDRESS is not reachable after ${ZEO_START_TIMEOUT} s"
    sleep 1
  done
}

wait_for_postgresql() {  # until PostgreSQL accepts a connection with RELSTORAGE_DSN
  [ "$ZODB_STORAGE" = relstorage ] || return 0
  # exit 0: connected; 1: not reachable (yet); 2: reached but refused (password, no database):
  # waiting would not help
  python3 - <<'PY' || { [ $? -eq 1 ] || exit 2; die "PostgreSQL (RELSTORAGE_DSN) is not reachable after ${RELSTORAGE_START_TIMEOUT} s"; }
import os, sys, time
import psycopg2
deadline = time.monotonic() + float(os.environ["RELSTORAGE_START_TIMEOUT"])
while True:
    try:
        psycopg2.connect(os.environ["RELSTORAGE_DSN"], connect_timeout=3).close()
        sys.exit(0)
    except psycopg2.OperationalError as exc:
        message = " ".join(str(exc).split())
        if "authentication failed" in message or "does not exist" in message:
            print(f"error: PostgreSQL refuses RELSTORAGE_DSN: {message}", file=sys.stderr)
            sys.exit(2)
        if time.monotonic() > deadline:
            print(f"PostgreSQL: {message}", file=sys.stderr)
            sys.exit(1)
    time.sleep(1)
PY
}

wait_for_database() { wait_for_zeo; wait_for_postgresql; }

run_script() {  # run_script SCRIPT [ARGS]: a Python script with Zope configured and app bound
  prepare_config
  wait_for_database
  exec txzserver run "$CONF" "$@"
}

create_site() {  # create_site TYPE: the site $SITE (DELETE_EXISTING, LANGUAGE, TIMEZONE, ...)
  [ -n "$SITE" ] || die "$cmd needs SITE"
  export TYPE=$1
  prepare_admin; install_packages; run_script /app/bin/create_site.py
}

# --- pack: keep PACK_DAYS (0) days of history -------------------------------------------------
# ZEO: zeopack asks the ZEO server to pack (no Zope here); RelStorage: zodbpack (pre-pack with
# garbage collection, then the pack); FileStorage: this process packs it (no instance may have it
# open). The ZEO server's pack-keep-old is ZEO_PACK_KEEP_OLD (false); a FileStorage keeps Data.fs.old.
pack() {
  local days=${1:-$PACK_DAYS} address
  [[ $days =~ ^[0-9]+$ ]] || die "pack DAYS: a whole number of days, not '$days'"
  if [ "$ROLE" = zeo ]; then
    address=${ZEO_LISTEN##*:}; address=127.0.0.1:$address
  elif [ "$ZODB_STORAGE" = zeo ]; then
    address=$ZEO_ADDRESS
  fi
  if [ -n "${address:-}" ]; then
    echo "packing ZEO storage $ZEO_STORAGE at $address, keeping $days days of history"
    ZODB_STORAGE=zeo ZEO_ADDRESS=$address wait_for_zeo
    zeopack -d "$days" "$address:$ZEO_STORAGE"
  elif [ "$ZODB_STORAGE" = relstorage ]; then
    echo "packing RelStorage $RELSTORAGE_NAME, keeping $days days of history"
    wait_for_postgresql
    zodbpack -d "$days" /app/etc/relstorage-pack.conf
  else
    echo "packing /data/filestorage/Data.fs, keeping $days days of history"
    python3 /app/bin/pack.py "$days"
  fi
  echo packed
}

# --- health and metrics listeners: sections added to the zope.conf that `start` serves --------
# /app/etc/zope.conf stays as it is (scripts and `txzserver run` bind no port):
# /data/var/generated/zope-serve.conf includes it and adds the sections. Prints the file to serve.
serve_conf() {
  local sections=""
  case ${HEALTH_PORT,,} in
    ""|off) ;;
    *) sections+=$'<health-server>\n  address $(HEALTH_PORT)\n  stuck-after $(HEALTH_STUCK_AFTER)\n</health-server>\n' ;;
  esac
  case ${METRICS_PORT,,} in
    ""|off) ;;
    *) sections+=$'<metrics-server>\n  address $(METRICS_PORT)\n  path $(METRICS_PATH)\n</metrics-server>\n' ;;
  esac
  if [ -z "$sections" ]; then echo "$CONF"; return; fi
  printf '%%include %s\n%s' "$CONF" "$sections" > "$GENERATED/zope-serve.conf"
  echo "$GENERATED/zope-serve.conf"
}

wait_for_upgrade() {  # UPGRADE_WAIT: until the upgrade (another process, the Job) has run
  case ${UPGRADE_WAIT,,} in ""|off) return 0 ;; esac
  [[ $UPGRADE_WAIT =~ ^[0-9]+$ ]] || die "UPGRADE_WAIT: a whole number of seconds or off, not '$UPGRADE_WAIT'"
  txzserver run "$CONF" /app/bin/upgrade.py --wait "$UPGRADE_WAIT" || exit 2
}

start_instance() {
  prepare_admin
  prepare_config
  install_packages
  wait_for_database
  local args=()
  if [ -n "$SITE" ]; then
    # as plone-backend: the site is made (TYPE, PROFILES, LANGUAGE, ...) or, with
    # DELETE_EXISTING, remade before the server starts; an existing one is left as it is
    txzserver run "$CONF" /app/bin/create_site.py
    args=(--site "$SITE")
    # PROFILES, comma or space separated, as --profile arguments (a loop, not a process
    # substitution: its subshell would stay a zombie under the exec'd server, which never reaps it)
    local profile
    for profile in ${PROFILES//,/ }; do args+=(--profile "$profile"); done
  fi
  wait_for_upgrade
  local conf
  conf=$(serve_conf)
  exec txzserver serve "$conf" "${args[@]}"
}

start() {
  case $ROLE in
    instance) start_instance ;;
    zeo) exec runzeo -C /app/etc/zeo.conf ;;
    broker)
      [ "$EVENT_BUS" = on ] || die "ROLE=broker needs EVENT_BUS_PUBLISH and EVENT_BUS_SUBSCRIBE"
      local curve=(--curve "$EVENT_BUS_CURVE")
      if [ -n "${EVENT_BUS_SERVER_SECRET_KEY:-}" ]; then
        curve+=(--curve-secret-key "$BUS_KEYS/broker.key_secret" --curve-allow "$BUS_KEYS/allowed")
      fi
      exec txzserver broker --frontend "$EVENT_BUS_PUBLISH" --backend "$EVENT_BUS_SUBSCRIBE" "${curve[@]}" ;;
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
  create-site) create_site "$TYPE" ;;
  create-classic) create_site classic ;;
  create-volto) create_site volto ;;
  console) shift; install_packages; run_script /app/bin/console.py "$@" ;;
  run)
    shift; [ $# -gt 0 ] || die "usage: run SCRIPT [ARGS]"
    install_packages; run_script "$@" ;;
  addzopeuser) shift; run_script /app/bin/adduser.py "$@" ;;
  upgrade) shift; [ -n "$SITE" ] || die "upgrade needs SITE"; install_packages; run_script /app/bin/upgrade.py "$@" ;;
  pack) shift; pack "$@" ;;
  # repozo backups of Data.fs with the blobs beside them, and their restore (zodb_backup.py)
  backup|restore) exec python3 /app/bin/zodb_backup.py "$@" ;;
  *) exec "$@" ;;
esac
