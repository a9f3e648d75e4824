#!/usr/bin/env bash
# Regenerates the console screenshots in docs/console/ (shown by docs/console.md): runs the
# browser test, which starts an engine, drives headless Chromium through every page (signing
# in, starting, cancelling and replaying runs) and saves one PNG per page.
#
#   scripts/console-screenshots.sh            needs chromium and chromedriver (.ci/install)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/docs/console
mkdir -p "$out"
COMPOZY_REQUIRE_SERVICES=1 COMPOZY_CONSOLE_SCREENSHOTS="$out" \
  cargo test -q --workspace --test console_browser -- --nocapture
ls -1 "$out"/*.png
