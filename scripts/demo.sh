#!/usr/bin/env bash
# The main job on a fresh machine: start the daemon, show what it serves (tsengine info), stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
tsengine() { node cli/dist/src/main.js "$@"; }
sock=/run/tsengine/tsengine.sock
log=$(mktemp /tmp/tsengine-daemon.XXXXXX.log)
if [ ! -S "$sock" ]; then
  node cli/dist/src/main.js daemon --log-level warn 2>"$log" &
  daemon=$!
  trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null || true; rm -f "$log"' EXIT
  for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { cat "$log" >&2; echo "the daemon did not start" >&2; exit 1; }
fi
tsengine info
