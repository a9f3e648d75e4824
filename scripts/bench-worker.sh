#!/usr/bin/env bash
# Worker throughput and schedule-to-start: no-op (`wait 0s`) tasks through the real queue, and
# the same no-op jobs through apalis (PostgreSQL backend) on the same PostgreSQL server.
#
# Per round, on a fresh database each time:
#   burn    N runs enqueued in bulk with no worker running, then the workers start and drain
#           them: tasks/s = N / (last finish - first claim), read back from the rows.
#   trickle M runs enqueued one at a time, GAP_MS apart, to idle workers: schedule-to-start
#           (claim time - ready time) p50/p99 in ms.
# compozy on PostgreSQL with 2 `compozy worker` processes, compozy on SQLite with 1, apalis with
# 2 worker processes. Medians over the rounds, and ratios, are printed at the end.
#
#   scripts/bench-worker.sh [rounds=3] [tasks=20000]
#   env: SLOTS (activity/workflow slots and claim batch per process, 64), TRICKLE (300),
#        GAP_MS (10), PG (admin URL, postgres://postgres@127.0.0.1:5432/test),
#        BASELINE (a directory holding the `compozy` and `queue_bench` release binaries of
#        another build: each round then also runs them on PostgreSQL, alternating which goes
#        first, and the ratio to them is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; n=${2:-20000}
slots=${SLOTS:-64}; trickle_n=${TRICKLE:-300}; gap=${GAP_MS:-10}
admin=${PG:-postgres://postgres@127.0.0.1:5432/test}
target=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$target

cargo build --release -q -p compozy-cli --bin compozy
cargo build --release -q -p compozy-worker --example queue_bench
(cd benches/apalis-compare && cargo build --release -q)
compozy=$target/release/compozy; qb=$target/release/examples/queue_bench; ap=$target/release/apalis-compare

work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; rm -rf "$work"' EXIT

mkdir -p "$work/project/workflows"
printf 'project:\n  name: bench\n' >"$work/project/compozy.yaml"
for wf in burn trickle; do
  printf 'resource: workflow\nid: %s\ntasks:\n  - {id: a, type: wait, duration: 0s}\n' "$wf" >"$work/project/workflows/$wf.yaml"
done
export PROJECT_DIR=$work/project COMPOZY_LOG_LEVEL=warn
export COMPOZY_WORKER_MAX_CONCURRENT_ACTIVITIES=$slots COMPOZY_WORKER_MAX_CONCURRENT_WORKFLOWS=$slots
export COMPOZY_WORKER_CLAIM_BATCH=$slots

psql_admin() { psql "$admin" -qAtc "$1" >/dev/null; }

workers() { # count data_dir
  for i in $(seq 1 "$1"); do
    COMPOZY_DATA_DIR=$2 "$compozy" -c "$work/project/compozy.yaml" worker --listen 127.0.0.1:0 2>>"$work/worker.log" &
    pids+=($!)
  done
}

compozy_round() { # name workers data_dir
  local data=$3
  COMPOZY_DATA_DIR=$data "$compozy" -c "$work/project/compozy.yaml" migrate >/dev/null 2>>"$work/worker.log"
  DATA_DIR=$data "$qb" enqueue burn "$n" >/dev/null
  workers "$2" "$data"
  echo "$1 burn $(DATA_DIR=$data "$qb" wait burn)"
  DATA_DIR=$data "$qb" trickle trickle "$trickle_n" "$gap"
  echo "$1 trickle $(DATA_DIR=$data "$qb" wait trickle)"
  stop_all
}

apalis_round() {
  "$ap" setup
  "$ap" enqueue "$n" >/dev/null
  for _ in 1 2; do "$ap" work "$slots" "$slots" 2>>"$work/apalis.log" & pids+=($!); done
  echo "apalis burn $("$ap" wait)"
  "$ap" trickle "$trickle_n" "$gap"
  echo "apalis trickle $("$ap" wait)"
  stop_all
}

# The BASELINE build's round on a database of its own (its migrations may differ).
baseline_round() { # db
  local db=${1}_base url
  psql_admin "CREATE DATABASE $db"
  url=${admin%/*}/$db
  (compozy=$BASELINE/compozy qb=$BASELINE/queue_bench
   DATABASE_URL=$url COMPOZY_DATABASE_URL=$url compozy_round baseline 2 "$work/pg-data") | tee -a "$results"
  psql_admin "DROP DATABASE $db WITH (FORCE)"
}

results=$work/results
for r in $(seq 1 "$rounds"); do
  db=compozy_bench_$$_$r
  psql_admin "CREATE DATABASE $db"
  url=${admin%/*}/$db
  if [ -n "${BASELINE:-}" ] && [ $((r % 2)) -eq 1 ]; then baseline_round "$db"; fi
  DATABASE_URL=$url COMPOZY_DATABASE_URL=$url compozy_round postgres 2 "$work/pg-data" | tee -a "$results"
  DATABASE_URL=$url apalis_round | tee -a "$results"
  psql_admin "DROP DATABASE $db WITH (FORCE)"
  if [ -n "${BASELINE:-}" ] && [ $((r % 2)) -eq 0 ]; then baseline_round "$db"; fi
  rm -rf "$work/sqlite-$r"; mkdir -p "$work/sqlite-$r"
  compozy_round sqlite 1 "$work/sqlite-$r" | tee -a "$results"
done

# field VALUE of lines "SYSTEM PHASE key=value ...", median over rounds
med() { grep "^$1 $2 " "$results" | tr ' ' '\n' | sed -n "s/^$3=//p" | sort -n |
  awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "medians over $rounds rounds; $n tasks burned, $trickle_n trickled ${gap} ms apart; $slots slots per process"
printf '%-28s %12s %14s %14s\n' system tasks/s "s2s p50 ms" "s2s p99 ms"
for s in postgres ${BASELINE:+baseline} apalis sqlite; do
  label=$s; case $s in postgres) label="compozy, PostgreSQL, 2 proc";; baseline) label="baseline, PostgreSQL, 2 proc";;
    apalis) label="apalis, PostgreSQL, 2 proc";; sqlite) label="compozy, SQLite, 1 proc";; esac
  printf '%-28s %12s %14s %14s\n' "$label" "$(med "$s" burn tasks_per_s)" "$(med "$s" trickle s2s_p50_ms)" "$(med "$s" trickle s2s_p99_ms)"
done
awk -v a="$(med postgres burn tasks_per_s)" -v b="$(med apalis burn tasks_per_s)" \
  'BEGIN {printf "compozy/apalis throughput on PostgreSQL: %.2f\n", a/b}'
if [ -n "${BASELINE:-}" ]; then
  awk -v a="$(med postgres burn tasks_per_s)" -v b="$(med baseline burn tasks_per_s)" \
    'BEGIN {printf "compozy/baseline throughput on PostgreSQL: %.2f\n", a/b}'
fi
# Warnings of the workers (the log level is warn): a round that stalled says why here.
if [ -s "$work/worker.log" ]; then
  echo "worker warnings ($(wc -l <"$work/worker.log") lines; last 10):"
  tail -10 "$work/worker.log"
fi
