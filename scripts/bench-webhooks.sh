#!/usr/bin/env bash
# Webhook receiver throughput: wrk sends GitHub-signed deliveries (unique X-GitHub-Delivery, the configured dedupe key, per
# request, so every one is verified, deduplicated, filtered, rendered, stored with its run and
# answered 202) to a release `compozy serve`, embedded (SQLite + in-process cache) and on
# PostgreSQL + Redis; then the same with an event that matches nothing (200 no_matching_event).
# Three engine modes per backend, alternated in every round:
#   worker        the engine's own worker executes the accepted runs while the load goes on;
#   api           `worker.enabled: false`: an API node that only ingests (runs wait for
#                 `compozy worker` processes), the deployment a busy receiver would use;
#   api-nometrics the API node with the webhook metrics' recording turned off
#                 (COMPOZY_WEBHOOKS_METRICS=false): its ratio to `api` is the metrics' cost;
#   api-traced    the API node with tracing on at TRACE_RATIO (0.01), spans exported over OTLP
#                 to a sink in this script: its ratio to `api` is the tracing's cost.
# Each engine first serves GET /healthz under the same load, a yardstick of how busy the shared
# machine is. Medians over the rounds are printed at the end.
#
#   scripts/bench-webhooks.sh [seconds=10] [connections=32] [backends="embedded postgres"] [rounds=1]
#   env: COMPOZY_BIN (an engine binary to measure instead of building this checkout's),
#        MODES (the modes to run, default "worker api api-nometrics api-traced"), TRACE_RATIO
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; conns=${2:-32}; backends=${3:-embedded postgres}; rounds=${4:-1}
scripts/install-bench-tools.sh

bin=${COMPOZY_BIN:-}
if [ -z "$bin" ]; then cargo build --release -q -p compozy-cli --bin compozy; bin=$PWD/target/release/compozy; fi
lua=$PWD/scripts/bench-webhooks/deliver.lua
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

. scripts/bench-webhooks/project.sh
bench_project "$work" bench

# The OTLP sink of api-traced: answers every export 200, as a collector would.
sink_port=5199
python3 -c '
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
' "$sink_port" &

port=5201
start() { # $1 = extra env assignments
  port=$((port + 1))
  (cd "$work" && exec env COMPOZY_LOG_LEVEL=warn $1 "$bin" --config compozy.yaml serve --listen "127.0.0.1:$port" \
    --data-dir "$work/data-$port" 2>"$work/engine-$port.log") &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "engine did not start" >&2; cat "$work/engine-$port.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
results=$work/results
load() { # $1 label, $2 event, $3 expected status
  WH_EVENT=$2 WH_EXPECT=$3 wrk -t1 -c2 -d2s -s "$lua" "http://127.0.0.1:$port" >/dev/null   # warm-up
  local out
  out=$(WH_EVENT=$2 WH_EXPECT=$3 wrk -t1 -c"$conns" -d"${secs}s" -s "$lua" "http://127.0.0.1:$port" | tail -1)
  printf '%-40s %s\n' "$1" "$out"
  echo "$1 $out" >>"$results"
}

mode_env() { # worker | api | api-nometrics
  case $1 in
    worker) echo "COMPOZY_WEBHOOKS_METRICS=true COMPOZY_WORKER_ENABLED=true" ;;
    api) echo "COMPOZY_WEBHOOKS_METRICS=true COMPOZY_WORKER_ENABLED=false" ;;
    api-nometrics) echo "COMPOZY_WEBHOOKS_METRICS=false COMPOZY_WORKER_ENABLED=false" ;;
    api-traced) echo "COMPOZY_WEBHOOKS_METRICS=true COMPOZY_WORKER_ENABLED=false" \
      "COMPOZY_MONITORING_TRACING_ENDPOINT=http://127.0.0.1:$sink_port" \
      "COMPOZY_MONITORING_TRACING_SAMPLE_RATIO=${TRACE_RATIO:-0.01}" ;;
  esac
}

for round in $(seq 1 "$rounds"); do
  for backend in $backends; do
    case $backend in
      embedded) envs="" ;;
      postgres)
        psql -q -h 127.0.0.1 -U postgres -d test -c 'DROP DATABASE IF EXISTS bench_webhooks WITH (FORCE)' \
          -c 'CREATE DATABASE bench_webhooks' 2>/dev/null
        envs="COMPOZY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_webhooks COMPOZY_REDIS_URL=redis://127.0.0.1:6379" ;;
      *) echo "unknown backend $backend" >&2; exit 1 ;;
    esac
    for mode in ${MODES:-worker api api-nometrics api-traced}; do
      start "$envs $(mode_env $mode)"
      hz=$(wrk -t1 -c"$conns" -d3s "http://127.0.0.1:$port/healthz" | awk '/Requests\/sec/ {printf "%d", $2}')
      printf '%-40s %s/s\n' "$backend $mode healthz" "$hz"
      echo "$backend $mode healthz expected=$hz/s" >>"$results"
      load "$backend $mode accepted" push 202
      load "$backend $mode no-match" issues 200
      stop
    done
  done
done

echo
echo "medians over $rounds round(s): deliveries/s (p50 ms, p99 ms); ratio api-nometrics/api = 1 + the metrics' cost;"
echo "ratio api-traced/api = 1 - the tracing's cost"
awk '{
  key = $1 " " $2 " " $3; rate = $4; sub(/expected=/, "", rate); sub(/\/s/, "", rate)
  p50 = $6; sub(/p50=/, "", p50); sub(/ms/, "", p50); p99 = $7; sub(/p99=/, "", p99); sub(/ms/, "", p99)
  n[key]++; r[key, n[key]] = rate; a[key, n[key]] = p50; b[key, n[key]] = p99; order[key] = NR
}
function med(arr, key, k,   i, j, t, v) {
  for (i = 1; i <= k; i++) v[i] = arr[key, i] + 0
  for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
  return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}
END {
  for (key in n) {
    m[key] = med(r, key, n[key])
    printf "%-36s %8.0f/s", key, m[key]
    if (key !~ /healthz/) printf "  (p50 %.2f, p99 %.2f)", med(a, key, n[key]), med(b, key, n[key])
    printf "\n"
  }
  for (key in n) if (key ~ / api-(nometrics|traced) /) {
    k2 = key; sub(/ api-(nometrics|traced) /, " api ", k2)
    what = (key ~ /nometrics/) ? "nometrics/api" : "traced/api"
    if (m[k2] > 0) printf "%-36s ratio %s %.3f\n", key, what, m[key] / m[k2]
  }
}' "$results" | sort
