#!/usr/bin/env bash
# Webhook receiver throughput: wrk sends GitHub-signed deliveries (unique X-GitHub-Delivery per
# request, so every one is verified, deduplicated, filtered, rendered, stored with its run and
# answered 202) to a release `compozy serve`, embedded (SQLite + in-process cache) and on
# PostgreSQL + Redis; then the same with an event that matches nothing (200 no_matching_event);
# then both again with the webhook metrics' recording turned off (COMPOZY_WEBHOOKS_METRICS=false).
# The engine's worker runs too (the accepted runs are executed while the load goes on). Each
# engine also serves GET /healthz under the same load first, as a yardstick of how busy the
# shared machine is during the run.
#
#   scripts/bench-webhooks.sh [seconds=10] [connections=32] [backends="embedded postgres"]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; conns=${2:-32}; backends=${3:-embedded postgres}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p compozy-cli --bin compozy
bin=$PWD/target/release/compozy
lua=$PWD/scripts/bench-webhooks/deliver.lua
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

mkdir -p "$work/workflows"
cat > "$work/compozy.yaml" <<'YAML'
project:
  name: bench
autoload:
  include: ["workflows/*.yaml"]
  watch: false
YAML
cat > "$work/workflows/bench.yaml" <<'YAML'
resource: workflow
id: bench
triggers:
  - type: webhook
    slug: bench
    source: github
    verify: { method: github, secret: bench-secret }
    events:
      - name: push
        filter: 'headers["x-github-event"] == "push"'
        input: { repo: "{{ body.repository.full_name }}", commits: "{{ body.commits | length }}" }
        schema: { type: object, required: [repo] }
tasks:
  - { id: done, type: wait, duration: 0s }
YAML
body='{"ref":"refs/heads/main","repository":{"full_name":"acme/api"},"commits":[{"id":"a1"},{"id":"b2"}],"pusher":{"name":"ci"}}'
sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac bench-secret | awk '{print $NF}')"
export WH_PATH=/api/v0/hooks/bench WH_BODY="$body" WH_SIG="$sig"

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
load() { # $1 label, $2 event, $3 expected status
  WH_EVENT=$2 WH_EXPECT=$3 wrk -t1 -c2 -d2s -s "$lua" "http://127.0.0.1:$port" >/dev/null   # warm-up
  printf '%-44s ' "$1"
  WH_EVENT=$2 WH_EXPECT=$3 wrk -t1 -c"$conns" -d"${secs}s" -s "$lua" "http://127.0.0.1:$port" | tail -1
}

for backend in $backends; do
  case $backend in
    embedded) envs="" ;;
    postgres)
      psql -q -h 127.0.0.1 -U postgres -d test -c 'DROP DATABASE IF EXISTS bench_webhooks WITH (FORCE)' -c 'CREATE DATABASE bench_webhooks'
      envs="COMPOZY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_webhooks COMPOZY_REDIS_URL=redis://127.0.0.1:6379" ;;
    *) echo "unknown backend $backend" >&2; exit 1 ;;
  esac
  for metrics in true false; do
    start "$envs COMPOZY_WEBHOOKS_METRICS=$metrics"
    # The same engine's cheapest route, in the same conditions: how busy the machine is.
    printf '%-44s ' "$backend metrics=$metrics GET /healthz (baseline)"
    wrk -t1 -c"$conns" -d5s "http://127.0.0.1:$port/healthz" | awk '/Requests\/sec/ {printf "%d/s\n", $2}'
    load "$backend metrics=$metrics accepted (202)" push 202
    load "$backend metrics=$metrics no match (200)" issues 200
    if [ "$metrics" = true ]; then
      curl -s "http://127.0.0.1:$port/metrics" | grep -E '^compozy_webhook_deliveries_total' | sed 's/^/    /'
    fi
    stop
  done
done
