#!/usr/bin/env bash
# One-command demo: the central server (server-stub, seeded with fixtures/seed/demo.json) and one
# till agent watching ./demo-data/export, with sample receipts (JSON + a Windows-1250 Czech CSV).
# The agent runs with its GUI when $DISPLAY is set, else headless (popups as JSON lines).
# Safe to run twice: every run starts from a fresh server database and a fresh till outbox.
# Env: DEMO_PORT (default 18080), DEMO_WAIT=1 keeps the demo running until Ctrl-C even without a tty.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

scripts/setup.sh
echo "== build"
cargo build -p server-stub -p till-agent
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

DEMO="$ROOT/demo-data"
PORT="${DEMO_PORT:-18080}"
STORE=CZ-PRG-01
TILL=T1
mkdir -p "$DEMO"
# fresh state: server DB, till outbox/cache, export folder (logs are kept)
rm -rf "$DEMO"/server.db* "$DEMO"/outbox.db* "$DEMO"/cache.db* "$DEMO/export"
mkdir -p "$DEMO/export"

SERVER_PID=""
AGENT_PID=""
cleanup() {
  [ -n "$AGENT_PID" ] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  echo "== demo stopped (data kept in $DEMO)"
}
trap cleanup EXIT INT TERM

echo "== server-stub on 127.0.0.1:$PORT (seeded with fixtures/seed/demo.json)"
"$BIN/server-stub" seed --db "$DEMO/server.db" fixtures/seed/demo.json
TOKEN=$("$BIN/server-stub" till add --db "$DEMO/server.db" --store "$STORE" --till "$TILL" | tail -n1)
"$BIN/server-stub" serve --listen "127.0.0.1:$PORT" --db "$DEMO/server.db" >"$DEMO/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

cat >"$DEMO/agent.toml" <<EOF
# Demo till configuration (written by scripts/demo.sh). The till token is NOT here: the demo
# passes it in TILL_AGENT_TOKEN; a real till keeps it in the OS credential store (till-agent login).
server_url = "http://127.0.0.1:$PORT"
store_id = "$STORE"
till_id = "$TILL"
export_dir = "export"
currency = "CZK"
language = "cs"
scan_attach_window_secs = 600

[reader]
# the keyboard wedge listens to the X display; without one there is no keyboard to listen to
wedge = $([ -n "${DISPLAY:-}" ] && echo true || echo false)

EOF
cat fixtures/agent/cz-pos-csv.toml >> "$DEMO/agent.toml"

export TILL_AGENT_TOKEN="$TOKEN"
AGENT=("$BIN/till-agent" --config "$DEMO/agent.toml")
echo "== doctor"
"${AGENT[@]}" doctor || true

echo "== sample receipts → $DEMO/export"
for f in fixtures/agent/demo-receipts/*; do
  cp "$f" "$DEMO/export/$(basename "$f").tmp"
  mv "$DEMO/export/$(basename "$f").tmp" "$DEMO/export/$(basename "$f")"
done

if [ -n "${DISPLAY:-}" ]; then
  echo "== till-agent run (GUI on $DISPLAY)"
  "${AGENT[@]}" run &
else
  echo "== till-agent run --headless (no DISPLAY)"
  "${AGENT[@]}" run --headless &
fi
AGENT_PID=$!

# wait until the queue is empty (or 20 s)
for _ in $(seq 1 40); do
  sleep 0.5
  depth=$("${AGENT[@]}" status --json 2>/dev/null | sed -n 's/.*"queue_depth": *\([0-9]*\).*/\1/p' || true)
  [ "$depth" = "0" ] && break
done
echo "== till-agent status"
"${AGENT[@]}" status
echo "== till-agent log --tail 15"
"${AGENT[@]}" log --tail 15

if [ -t 0 ] || [ "${DEMO_WAIT:-0}" = "1" ]; then
  echo
  echo "Demo running: drop receipt files into $DEMO/export, try:"
  echo "  $BIN/till-agent --config $DEMO/agent.toml status"
  echo "Press Ctrl-C to stop."
  wait "$AGENT_PID" || true
fi
