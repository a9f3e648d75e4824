#!/usr/bin/env bash
# Embedded start latency: one `compozy serve` (API and worker in one process, SQLite). Runs of
# a one-task `wait 0s` workflow are started through the API one at a time, GAP_MS apart; per
# run, first task's start - run's creation (the API answers after the commit, so this bounds
# "API answer → first task started" from above). p50/p99 in ms.
#
#   scripts/bench-embedded-start.sh [runs=300]      env: GAP_MS (20)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}; gap=${GAP_MS:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p compozy-cli --bin compozy
bin=$CARGO_TARGET_DIR/release/compozy
work=$(mktemp -d); pid=
trap 'if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
mkdir -p "$work/workflows"
printf 'project:\n  name: embedded\n' >"$work/compozy.yaml"
printf 'resource: workflow\nid: one\ntasks:\n  - {id: a, type: wait, duration: 0s}\n' >"$work/workflows/one.yaml"
cd "$work"
# The limiter would refuse a key that starts and reads 300 runs a minute; it is not measured here.
export COMPOZY_LOG_LEVEL=warn COMPOZY_AUTOLOAD_WATCH=false COMPOZY_AUTH_RATE_LIMIT_ENABLED=false
key=$("$bin" admin create-user --email bench@example.com --role admin --data-dir "$work/data")
"$bin" serve --listen 127.0.0.1:5071 --data-dir "$work/data" >/dev/null 2>"$work/log" & pid=$!
for _ in $(seq 100); do curl -fs localhost:5071/readyz >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$n" "$gap" "$key" <<'PY'
import json, sys, time, urllib.request
from datetime import datetime
ms = lambda t: round(datetime.fromisoformat(t).timestamp() * 1000)  # RFC 3339 (ms resolution)
n, gap, key = int(sys.argv[1]), int(sys.argv[2]) / 1000, sys.argv[3]
def call(method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:5071" + path, method=method, data=body,
        headers={"authorization": "Bearer " + key, "content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
ids = []
for _ in range(n):
    ids.append(call("POST", "/api/v0/workflows/one/executions", b"{}")["data"]["execution_id"])
    time.sleep(gap)
time.sleep(1)
lat = []
for i in ids:
    d = call("GET", "/api/v0/executions/" + i)["data"]
    lat.append(ms(d["tasks"][0]["started_at"]) - ms(d["execution"]["created_at"]))
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"embedded start: {n} runs, first task started after creation: p50 {pick(0.5)} ms, p99 {pick(0.99)} ms, max {lat[-1]} ms")
PY
