#!/usr/bin/env bash
# Whole-stack throughput: wrk against the engine's cheapest route (/healthz, through the full
# middleware stack with metrics) and, in the same run, against a bare axum hello-world serving
# the same JSON. Rounds alternate between the two; medians and the ratio are printed.
#
#   scripts/bench-http.sh [rounds=3] [seconds=8] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; secs=${2:-8}; conns=${3:-64}
scripts/install-bench-tools.sh

cargo build --release -q -p compozy-cli --bin compozy
cargo build --release -q -p compozy-server --example bare_axum

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
./target/release/examples/bare_axum 127.0.0.1:5101 &
(cd "$work" && COMPOZY_LOG_LEVEL=warn exec "$OLDPWD/target/release/compozy" serve --listen 127.0.0.1:5102 2>"$work/engine.log") &
for port in 5101 5102; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "server on :$port did not start" >&2; cat "$work/engine.log" >&2; exit 1; }
done

rps() { wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$1/healthz" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

rps 5101 >/dev/null; rps 5102 >/dev/null   # warm-up
bare=(); engine=()
for r in $(seq 1 "$rounds"); do
  bare+=("$(rps 5101)"); engine+=("$(rps 5102)")
  echo "round $r: bare ${bare[-1]} req/s, engine ${engine[-1]} req/s"
done
b=$(printf '%s\n' "${bare[@]}" | median); e=$(printf '%s\n' "${engine[@]}" | median)
echo "median: bare $b req/s, engine $e req/s, engine/bare = $(awk -v e="$e" -v b="$b" 'BEGIN {printf "%.3f", e/b}')"
curl -s http://127.0.0.1:5102/metrics | grep -E '^compozy_http_requests_total\{method="GET",path="/healthz"' || true
