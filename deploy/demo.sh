#!/usr/bin/env bash
# The main job on one machine: install, build, start an edge on :8080, a demo
# app on :8000 and a tunnel to it, print the public URL, keep running until
# Ctrl-C (then stop all three). Usage: deploy/demo.sh [--no-wait]
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
work=$(mktemp -d /tmp/warren-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
printf '<!doctype html><title>Warren demo</title><h1>Hello through Warren</h1>\n' >"$work/index.html"
(cd "$work" && exec /usr/bin/python3 -m http.server 8000 --bind 127.0.0.1) >"$work/app.log" 2>&1 &
pids+=($!)
build/server/tunneld --domain localhost --listen 127.0.0.1:8080 --listen '[::1]:8080' \
    >"$work/edge.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done
build/cli/tunnel --subdomain demo --port 8000 --server ws://127.0.0.1:8080 >"$work/tunnel.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q Forwarding "$work/tunnel.log" && break; sleep 0.1; done
url=$(grep -o 'http://demo[^ ]*' "$work/tunnel.log" | head -1)
echo "demo is online: $url  (try: curl $url/)"
curl -sS --max-time 5 "$url/" | head -3
echo "logs in $work; Ctrl-C stops the edge, the tunnel and the demo app"
[ "${1:-}" = "--no-wait" ] || wait "${pids[1]}"
