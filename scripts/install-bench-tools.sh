#!/usr/bin/env bash
# Installs what the bench scripts need beyond the test suite's tools, idempotently: Debian's wrk
# (the HTTP load generator of bench-http.sh and bench-webhooks.sh).
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
export DEBIAN_FRONTEND=noninteractive
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
