#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests: no system service, no
# system cluster, nothing left behind.
#
#   scripts/postgres.sh install          Debian's postgresql, when its server is absent
#   scripts/postgres.sh start DIR PORT   a new cluster in DIR, serving 127.0.0.1:PORT
#   scripts/postgres.sh stop DIR         stop it (DIR can then be removed)
#
# PostgreSQL refuses to run as root, and CI runs as root: there the cluster belongs to
# the unprivileged `postgres` user that Debian's package creates (or `nobody`).
# Every failure prints one line saying why, on stderr, and exits non-zero.
set -euo pipefail

server_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

as_owner() {
  # Run a server command as the cluster's owner: ourselves, unless we are root.
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif id postgres >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    runuser -u nobody -- "$@"
  fi
}

case "${1:-}" in
  install)
    if server_bin >/dev/null; then
      exit 0
    fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
      echo "postgres.sh: no PostgreSQL server here, and installing one needs root and apt-get" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    server_bin >/dev/null || { echo "postgres.sh: apt-get installed no PostgreSQL server" >&2; exit 1; }
    ;;
  start)
    dir=${2:?usage: postgres.sh start DIR PORT}
    port=${3:?usage: postgres.sh start DIR PORT}
    bin=$(server_bin) || { echo "postgres.sh: no PostgreSQL server (initdb, pg_ctl) found" >&2; exit 1; }
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      owner=postgres
      id postgres >/dev/null 2>&1 || owner=nobody
      chown "$owner" "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
      >"$dir/initdb.log" 2>&1 || { echo "postgres.sh: initdb failed: $(tail -1 "$dir/initdb.log")" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { echo "postgres.sh: the server did not start: $(tail -1 "$dir/server.log")" >&2; exit 1; }
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    bin=$(server_bin) || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "usage: postgres.sh install | start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
