#!/bin/bash
# `backup` and `restore` of the txzserver PostgreSQL image (docs/operators/backups.md): the
# RelStorage database, blobs included (its large objects), as one `pg_dump -Fc` file.
#
# backup                     a dump of PGDATABASE into $BACKUP_DIR/postgresql, named
#                            DATABASE-YYYY-MM-DD-HH-MM-SS.dump (written aside, checked with
#                            pg_restore --list, then renamed); the BACKUP_KEEP (7) newest kept
# restore [--force] [NAME]   the newest dump of PGDATABASE, or NAME (a file name in
#                            $BACKUP_DIR/postgresql or a time stamp of PGDATABASE's dumps), into
#                            PGDATABASE in one transaction (the dump's tables dropped and made
#                            again), then large objects no row refers to removed (vacuumlo).
#                            Refused while other sessions use the database (--force ends them)
#                            and when it has tables (--force replaces them)
# restore --list             the dumps there are
# The server: libpq's PGHOST (default: the local socket, as in the server's own container),
# PGPORT, PGUSER (POSTGRES_USER), PGDATABASE (POSTGRES_DB), the password from PGPASSWORD_FILE or
# POSTGRES_PASSWORD_FILE (given to libpq as a password file of mode 0600 in TMPDIR, never in the
# environment or on a command line). Exit status: 0 done, 1 refused or failed, 2 misconfigured.
set -euo pipefail

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
refuse() { log "error: $*"; exit 1; }
die() { log "error: $*"; exit 2; }

export PGUSER=${PGUSER:-${POSTGRES_USER:-postgres}}
export PGDATABASE=${PGDATABASE:-${POSTGRES_DB:-$PGUSER}}
BACKUP_DIR=${BACKUP_DIR:-/backups}
DUMPS=$BACKUP_DIR/postgresql
BACKUP_KEEP=${BACKUP_KEEP:-7}
[[ $BACKUP_KEEP =~ ^[1-9][0-9]*$ ]] || die "BACKUP_KEEP=$BACKUP_KEEP: a whole number of at least 1"

password_file=${PGPASSWORD_FILE:-${POSTGRES_PASSWORD_FILE:-}}
if [ -n "$password_file" ]; then
  [ -r "$password_file" ] || die "cannot read the password file $password_file"
  PGPASSFILE=$(mktemp "${TMPDIR:-/tmp}/pgpass.XXXXXX")
  export PGPASSFILE
  trap 'rm -f "$PGPASSFILE"' EXIT
  # .pgpass escapes backslash and colon; any host, port, database and user
  password=$(head -n 1 "$password_file")
  password=${password//\\/\\\\}
  printf '*:*:*:*:%s\n' "${password//:/\\:}" > "$PGPASSFILE"
  unset password
fi

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

dumps() {  # the dump names of PGDATABASE, oldest first (they sort by their time stamps)
  local path
  for path in "$DUMPS/$PGDATABASE"-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]-[0-9][0-9]-[0-9][0-9]-[0-9][0-9].dump; do
    if [ -f "$path" ]; then printf '%s\n' "${path##*/}"; fi
  done
}

backup() {
  [ $# -eq 0 ] || die "usage: backup (no arguments)"
  mkdir -p "$DUMPS"
  rm -f "$DUMPS"/.*.partial
  local name file size tries=0
  # named by the second: a second backup within the same second waits for the next one
  while name=$PGDATABASE-$(date -u +%Y-%m-%d-%H-%M-%S).dump; file=$DUMPS/$name; [ -e "$file" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 50 ] || refuse "$file exists and the clock does not move on"
    sleep 0.1
  done
  log "dumping database $PGDATABASE (${PGHOST:-local socket}) into $file"
  pg_dump -Fc -f "$DUMPS/.$name.partial" || { rm -f "$DUMPS/.$name.partial"; refuse "pg_dump of $PGDATABASE failed"; }
  pg_restore --list "$DUMPS/.$name.partial" >/dev/null \
    || { rm -f "$DUMPS/.$name.partial"; refuse "the dump of $PGDATABASE is unreadable (pg_restore --list)"; }
  mv "$DUMPS/.$name.partial" "$file"
  size=$(stat -c %s "$file")
  log "wrote $name ($size bytes)"
  local old count
  count=$(dumps | wc -l)
  for old in $(dumps | head -n "-$BACKUP_KEEP"); do
    rm -f "$DUMPS/$old"
    log "pruned $old"
  done
  log "kept $(( count < BACKUP_KEEP ? count : BACKUP_KEEP )) dumps (BACKUP_KEEP=$BACKUP_KEEP) in $DUMPS"
}

restore() {
  local force=false name="" file
  while [ $# -gt 0 ]; do
    case $1 in
      --force) force=true ;;
      --list) dumps; return 0 ;;
      -*) die "usage: restore [--force] [--list] [NAME]" ;;
      *) [ -z "$name" ] || die "usage: restore [--force] [--list] [NAME]"; name=$1 ;;
    esac
    shift
  done
  if [ -z "$name" ]; then
    [ -n "$(dumps)" ] || refuse "no dump of $PGDATABASE in $DUMPS"
    file=$DUMPS/$(dumps | tail -n 1)
  elif [[ $name == *.dump && $name != */* && -f $DUMPS/$name ]]; then
    file=$DUMPS/$name  # any dump there by its file name, also one of another database
  elif dumps | grep -qxF "$PGDATABASE-$name.dump"; then
    file=$DUMPS/$PGDATABASE-$name.dump
  else
    refuse "no dump named $name in $DUMPS; there are: $(cd "$DUMPS" 2>/dev/null && printf '%s ' ./*.dump | sed 's|\./||g')"
  fi
  pg_restore --list "$file" >/dev/null || refuse "$file is not a readable pg_dump archive"
  sql 'SELECT 1' >/dev/null || refuse "cannot connect to database $PGDATABASE (${PGHOST:-local socket})"

  local sessions tables
  # client sessions only: an autovacuum worker in the database is no user of it
  sessions=$(sql "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
  if [ "$sessions" -gt 0 ]; then
    $force || refuse "database $PGDATABASE is in use ($sessions other sessions): stop the instances and jobs first, or restore --force to end the sessions"
    log "--force: ending $sessions other sessions of $PGDATABASE"
    sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
  fi
  tables=$(sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
  if [ "$tables" -gt 0 ]; then
    $force || refuse "database $PGDATABASE is not empty ($tables tables): restore --force replaces its contents"
    log "--force: replacing the contents of $PGDATABASE ($tables tables)"
  fi
  log "restoring $file into database $PGDATABASE"
  # one transaction (--clean: the dump's objects dropped first): restored, or left as it was;
  # a session that came back and holds a lock makes it fail after lock_timeout, not hang
  PGOPTIONS="-c lock_timeout=${RESTORE_LOCK_TIMEOUT:-60s}" pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error \
      -d "$PGDATABASE" "$file" \
    || refuse "restoring $file failed: database $PGDATABASE is left as it was"
  # large objects (RelStorage's blob chunks) written after the dump, now referred to by no row
  vacuumlo "$PGDATABASE" || refuse "vacuumlo (removing large objects no row refers to) failed"
  tables=$(sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
  log "restored $(basename "$file") into $PGDATABASE ($tables tables, $(sql 'SELECT count(*) FROM pg_largeobject_metadata') large objects)"
}

command=${1:-}
[ $# -eq 0 ] || shift
case $command in
  backup) backup "$@" ;;
  restore) restore "$@" ;;
  *) die "usage: backup | restore [--force] [--list] [NAME]" ;;
esac
