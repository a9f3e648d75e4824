#!/usr/bin/env bash
# Soak: a release `compozy serve` (worker on) under a steady mixed load for a long time, to show
# that memory, descriptors and disk stay flat and latency steady (docs/performance.md, "Soak").
# At once, for the whole run:
#   - signed webhook deliveries (unique delivery IDs), each starting a one-task run;
#   - the execution API: starts, reads of the started run, listings;
#   - /healthz probes;
#   - the engine's worker executing every run, and the retention pruner deleting finished runs
#     and delivery rows older than SOAK_RETENTION (short, so that it is exercised).
# Every 30 s one line: anonymous RSS (/proc/<pid>/status), open descriptors, database and WAL
# size, the window's delivery and API rates, p99 of a delivery and of /healthz. After the run it
# prints each series' slope over the samples past the warm-up, in % of its mean per 10 minutes,
# and exits 1 when memory or descriptors grew faster than SOAK_MAX_GROWTH % per 10 min.
#
#   scripts/soak.sh [minutes=30] [backend=embedded|postgres]
#   env: COMPOZY_BIN (binary to soak instead of building this checkout's), SOAK_RATE (deliveries/s,
#        default 200), SOAK_API_RATE (API requests/s, default 30), SOAK_RETENTION (default 2m),
#        SOAK_WARMUP (seconds excluded from the slopes, default 300), SOAK_MAX_GROWTH (default 5),
#        SOAK_OUT (file the samples are also written to), SOAK_PORT (engine port, 5290),
#        SOAK_PG_PORT (the private PostgreSQL cluster's port, 5439)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}; backend=${2:-embedded}
rate=${SOAK_RATE:-200}; api_rate=${SOAK_API_RATE:-30}; retention=${SOAK_RETENTION:-2m}
warmup=${SOAK_WARMUP:-300}; max_growth=${SOAK_MAX_GROWTH:-5}
window=30
scripts/install-bench-tools.sh

bin=${COMPOZY_BIN:-}
if [ -z "$bin" ]; then cargo build --release -q -p compozy-cli --bin compozy; bin=$PWD/target/release/compozy; fi
lua=$PWD/scripts/soak/paced.lua
work=$(mktemp -d)
samples=${SOAK_OUT:-$work/samples}
pid=""
pg_ctl=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; kill $(jobs -p) 2>/dev/null || true; stop_private_postgres; rm -rf "$work"' EXIT

# PostgreSQL runs as a cluster of the soak's own (initdb, stock settings, SOAK_PG_PORT): disk use
# under retention depends on the server's autovacuum, which a shared server may have turned off.
pg_port=${SOAK_PG_PORT:-5439}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_private_postgres() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pg_ctl=$bin/pg_ctl
  mkdir -p "$work/pg" && chown postgres "$work/pg" 2>/dev/null || true
  chmod 755 "$work"
  as_postgres "$bin/initdb" -D "$work/pg/data" -A trust -U postgres -E UTF8 >/dev/null
  as_postgres "$pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
  psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c 'CREATE DATABASE soak'
}
stop_private_postgres() {
  if [ -n "$pg_ctl" ]; then as_postgres "$pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true; fi
}

. scripts/bench-webhooks/project.sh
bench_project "$work" soak

case $backend in
  embedded) envs=""; db_file=$work/data/compozy.db ;;
  postgres)
    start_private_postgres
    envs="COMPOZY_DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/soak COMPOZY_REDIS_URL=redis://127.0.0.1:6379" ;;
  *) echo "unknown backend $backend (embedded or postgres)" >&2; exit 2 ;;
esac

port=${SOAK_PORT:-5290}
(cd "$work" && exec env COMPOZY_LOG_LEVEL=warn COMPOZY_AUTH_ENABLED=false COMPOZY_WORKER_ENABLED=true \
  COMPOZY_RETENTION_SUCCEEDED="$retention" COMPOZY_RETENTION_FAILED="$retention" \
  COMPOZY_RETENTION_CANCELLED="$retention" COMPOZY_RETENTION_INTERVAL=30s \
  COMPOZY_WEBHOOKS_DELIVERY_RETENTION="$retention" $envs \
  "$bin" --config compozy.yaml serve --listen "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/engine.log") &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "engine did not start" >&2; cat "$work/engine.log" >&2; exit 1; }

# Per-connection pause that gives the target rate (latency comes on top, so the rate is at most).
pace() { echo $(( $2 * 1000 / $1 )); } # $1 rate, $2 connections
paced() { # $1 mode, $2 connections, $3 delay ms
  SOAK_MODE=$1 SOAK_DELAY_MS=$3 wrk -t1 -c"$2" -d"${window}s" --timeout 10s -s "$lua" "http://127.0.0.1:$port" | tail -1
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
size() { [ -f "$1" ] && stat -c %s "$1" || echo 0; }
db_sizes() { # bytes of the database and of its WAL
  if [ "$backend" = embedded ]; then
    echo "$(size "$db_file") $(size "$db_file-wal")"
  else
    # The WAL directory is the cluster's, which holds only this database.
    psql -tAq -h 127.0.0.1 -p "$pg_port" -U postgres -d soak -F ' ' \
      -c "SELECT pg_database_size('soak'), (SELECT COALESCE(sum(size), 0) FROM pg_ls_waldir())"
  fi
}

printf 'soak: %s min, %s, target %s deliveries/s + %s API requests/s, retention %s\n' \
  "$minutes" "$backend" "$rate" "$api_rate" "$retention"
printf '%6s %9s %5s %9s %8s %9s %7s %10s %10s\n' t_s rss_kb fds db_kb wal_kb deliv/s api/s deliv_p99 health_p99
: >"$samples"
start=$(date +%s)
end=$((start + minutes * 60))
while [ "$(date +%s)" -lt "$end" ]; do
  paced deliver 8 "$(pace "$rate" 8)" >"$work/deliver.out" & loads=$!
  paced api 2 "$(pace "$api_rate" 2)" >"$work/api.out" & loads="$loads $!"
  paced healthz 1 100 >"$work/healthz.out" & loads="$loads $!"
  wait $loads # not the engine, which is a background job too
  kill -0 "$pid" 2>/dev/null || { echo "engine exited" >&2; cat "$work/engine.log" >&2; exit 1; }
  t=$(($(date +%s) - start))
  rss=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  read -r db wal <<<"$(db_sizes)"
  d=$(cat "$work/deliver.out"); a=$(cat "$work/api.out"); h=$(cat "$work/healthz.out")
  row=$(printf '%6d %9d %5d %9d %8d %9.0f %7.0f %10.2f %10.2f' "$t" "$rss" "$fds" $((db / 1024)) $((wal / 1024)) \
    "$(field rate "$d")" "$(field rate "$a")" "$(field p99 "$d")" "$(field p99 "$h")")
  echo "$row" | tee -a "$samples"
  errs=$(( $(field errors "$d") + $(field errors "$a") ))
  [ "$errs" -eq 0 ] || echo "  ($errs requests answered >= 400 in this window)"
done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

echo
echo "slopes over the samples after ${warmup} s, in % of the mean per 10 min (least squares):"
awk -v warmup="$warmup" -v max="$max_growth" '
  $1 >= warmup { n++; t[n] = $1; for (c = 2; c <= 9; c++) v[c, n] = $c }
  END {
    if (n < 3) { print "  too few samples after the warm-up"; exit 0 }
    split("rss_kb fds db_kb wal_kb deliv/s api/s deliv_p99 health_p99", name, " ")
    for (i = 1; i <= n; i++) mt += t[i]; mt /= n
    for (i = 1; i <= n; i++) stt += (t[i] - mt) ^ 2
    bad = 0
    for (c = 2; c <= 9; c++) {
      mv = 0; st = 0
      for (i = 1; i <= n; i++) mv += v[c, i]; mv /= n
      for (i = 1; i <= n; i++) st += (t[i] - mt) * (v[c, i] - mv)
      pct = (mv > 0 && stt > 0) ? st / stt * 600 / mv * 100 : 0
      flag = ""
      if ((c == 2 || c == 3) && pct > max) { flag = "  > " max " %: GROWING"; bad = 1 }
      printf "  %-11s mean %12.2f  slope %+7.2f %%/10min%s\n", name[c - 1], mv, pct, flag
    }
    exit bad
  }' "$samples"
