#!/usr/bin/env bash
# make demo: start a server with the embedded defaults, generate the example plugin with a
# live progress bar, download it, and run the plugin's own tests where it was unpacked.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${DEMO_OUT:-plugin-out}
LOG=data/demo-server.log
mkdir -p data
ADDRESS=${AUTON8N_LISTEN_ADDRESS:-127.0.0.1:50051}

"$BIN/auton8n" serve --data-dir data --listen "$ADDRESS" >"$LOG.out" 2>"$LOG" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  grep -q "auton8n listening on" "$LOG.out" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "server failed to start:"; tail -20 "$LOG"; exit 1; }
  sleep 0.2
done
TARGET=$(sed -n 's/^auton8n listening on //p' "$LOG.out" | head -1)
echo "server listening on $TARGET (log: $LOG)"

rm -rf "$OUT"
"$BIN/auton8n" --server "$TARGET" create --spec examples/time.json --watch --download "$OUT"

PLUGIN=$(find "$OUT" -mindepth 2 -maxdepth 2 -name package.json -printf '%h\n' | head -1)
echo "plugin unpacked in $PLUGIN; running its own tests (npm install && npm test)"
(cd "$PLUGIN" && npm install --no-audit --no-fund --loglevel=error && npm test)
echo "demo done: $PLUGIN"
