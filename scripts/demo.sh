#!/usr/bin/env bash
# make demo: build examples/worker_spi, preload it into a throwaway PostgreSQL
# 15 cluster, show its two Go workers counting, stop. Exits non-zero if the
# workers did not do their job.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BIN=$(pg_config --bindir)
work=$(mktemp -d /tmp/pggo-demo.XXXXXX)
chmod 755 "$work"
port=$((20000 + RANDOM % 20000))

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_() { psql -X -q -A -t -h "$work" -p "$port" -U postgres -d postgres "$@"; }
stop() {
  as_pg "$BIN/pg_ctl" stop -D "$work/data" -m fast -w >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT

echo "== building examples/worker_spi with pggo build"
paths=$(go run ./cmd/pggo build -o "$work/lib" ./examples/worker_spi)
echo "$paths"
loader=$(echo "$paths" | tail -n 1)
[ "$(id -u)" -eq 0 ] && chown -R postgres "$work"

echo "== starting a throwaway cluster in $work with $loader preloaded"
as_pg "$BIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = '$loader'
worker_spi.total_workers = 2
worker_spi.naptime = 1
CONF
as_pg "$BIN/pg_ctl" start -D "$work/data" -l "$work/server.log" -w >/dev/null
pm=$(head -n 1 "$work/data/postmaster.pid")
echo "postmaster pid $pm: $(grep Threads /proc/"$pm"/status) (the Go runtime never starts in the postmaster)"

# Wait (bounded) for a condition checked with psql.
wait_for() {
  local what=$1 query=$2 want=$3 deadline=$((SECONDS + 30))
  until [ "$(psql_ -c "$query" 2>/dev/null)" = "$want" ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "FAILED: $what (query: $query, wanted: $want, got: $(psql_ -c "$query" 2>&1))"
      tail -n 30 "$work/server.log"
      exit 1
    fi
    sleep 0.1
  done
  echo "ok: $what"
}

wait_for "both workers created their tables" \
  "SELECT count(*) FROM pg_tables WHERE tablename = 'counted'" 2
psql_ -c "SELECT pid, backend_type, state, wait_event FROM pg_stat_activity WHERE backend_type = 'worker_spi' ORDER BY pid" \
  | sed 's/^/  worker: /'

echo "== inserting the totals (0) and deltas: schema1 gets 3 + 4, schema2 gets 10"
psql_ -c "INSERT INTO schema1.counted VALUES ('total', 0), ('delta', 3), ('delta', 4); INSERT INTO schema2.counted VALUES ('total', 0), ('delta', 10)"
wait_for "worker 1 folded its deltas into the total (7)" "SELECT value FROM schema1.counted WHERE type = 'total'" 7
wait_for "worker 2 folded its deltas into the total (10)" "SELECT value FROM schema2.counted WHERE type = 'total'" 10

echo "== SIGHUP: naptime 1 -> 2 via pg_reload_conf()"
sed -i 's/^worker_spi.naptime = 1$/worker_spi.naptime = 2/' "$work/data/postgresql.conf"
psql_ -c "SELECT pg_reload_conf()" >/dev/null
psql_ -c "INSERT INTO schema1.counted VALUES ('delta', 1)"
wait_for "worker 1 still counting after the reload (8)" "SELECT value FROM schema1.counted WHERE type = 'total'" 8

echo "== server log (worker lines)"
grep -E "worker_spi worker [0-9]" "$work/server.log" | grep -E "initialized|is now [1-9]" | sed 's/^/  /' | head -n 12

echo "== stopping (SIGTERM to the workers, pg_ctl stop -m fast)"
start=$(date +%s%N)
as_pg "$BIN/pg_ctl" stop -D "$work/data" -m fast -w >/dev/null
echo "stopped in $(( ($(date +%s%N) - start) / 1000000 )) ms"
if grep -q "terminating any other active server processes" "$work/server.log"; then
  echo "FAILED: the server went through crash recovery"; exit 1
fi
echo "demo: OK"
