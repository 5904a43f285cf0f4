#!/usr/bin/env bash
# A throwaway PostgreSQL for tests, benchmarks and trying replicas: Debian's postgresql package
# (installed when missing), one cluster in a folder of its own, listening on loopback only, run as
# the package's `postgres` user, trusting local connections, with durability off (fsync,
# synchronous_commit, full_page_writes: a crash may lose it, which is what throwaway means). Prints
# the URL for `database_url` as the last line. Safe to re-run: a running cluster is reused, a
# stale pid file is cleared by pg_ctl.
#
#   CORRAL_PG_DIR   the cluster's folder   (default /var/tmp/corral-postgres)
#   CORRAL_PG_PORT  the loopback port      (default 55432)
#   scripts/postgres.sh stop               stops it (the folder stays; `rm -rf` it to forget it)
set -euo pipefail

log() { printf '[postgres] %s\n' "$*" >&2; }

dir=${CORRAL_PG_DIR:-/var/tmp/corral-postgres}
port=${CORRAL_PG_PORT:-55432}
db=corral

find_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$found" ] && [ -x "$found/pg_ctl" ] && echo "$found"
}

bin=$(find_bin || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and installing it needs root: apt-get install postgresql"
    exit 1
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null 2>&1 \
    || { apt-get install -y postgresql >&2; exit 1; }
  bin=$(find_bin)
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-}" = stop ]; then
  if [ -f "$dir/PG_VERSION" ]; then
    as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    log "stopped the cluster in $dir"
  fi
  exit 0
fi

if [ ! -f "$dir/PG_VERSION" ]; then
  log "creating a cluster in $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log" >&2; exit 1; }
fi

if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  log "starting it on 127.0.0.1:$port"
  opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400"
  opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  as_pg "$bin/pg_ctl" -D "$dir" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -20 "$dir/server.log" >&2; exit 1; }
fi

psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq)
if [ "$("${psql[@]}" -c "select 1 from pg_database where datname = '$db'")" != 1 ]; then
  "${psql[@]}" -c "create database $db" >/dev/null
fi
echo "postgresql+asyncpg://postgres@127.0.0.1:$port/$db"
