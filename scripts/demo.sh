#!/usr/bin/env bash
# One-command demo: the central server (server-stub, seeded with fixtures/seed/demo.json) and one
# till agent watching ./demo-data/export, with sample receipts (JSON + a Windows-1250 Czech CSV).
# The agent runs with its GUI when $DISPLAY is set, else headless (popups as JSON lines).
# Safe to run twice: every run starts from a fresh server database and a fresh till outbox.
# After the receipts sync it "scans" two cards: with a display, xdotool types them at scanner speed
# into a small POS stand-in window (xev) so the popup shows: a customer, then an unknown card with
# its Register button. Without a display a socat pty plays a serial reader and each popup is a JSON
# line on stdout. Then it prints what to try next (full paths, the admin token, the demo cards).
# Env: DEMO_PORT (default 18080), DEMO_WAIT=1 keeps the demo running until Ctrl-C even without a
# tty, DEMO_DIR (default ./demo-data), DEMO_BIN (folder of built binaries: skips setup and build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ -n "${DEMO_BIN:-}" ]; then
  BIN=$(cd "$DEMO_BIN" && pwd)
else
  scripts/setup.sh
  echo "== build"
  cargo build -p server-stub -p till-agent
  BIN=$(cd "${CARGO_TARGET_DIR:-$ROOT/target}/debug" && pwd)
fi

mkdir -p "${DEMO_DIR:-$ROOT/demo-data}"
DEMO=$(cd "${DEMO_DIR:-$ROOT/demo-data}" && pwd)
PORT="${DEMO_PORT:-18080}"
STORE=CZ-PRG-01
TILL=T1
mkdir -p "$DEMO"
# fresh state: server DB, till outbox/cache, export folder (logs are kept)
rm -rf "$DEMO"/server.db* "$DEMO"/outbox.db* "$DEMO"/cache.db* "$DEMO/export"
mkdir -p "$DEMO/export"

# Demo cards (fixtures/seed/demo.json): a customer, and a valid number nobody registered yet.
CARD_CUSTOMER=1900000009000018
CARD_UNKNOWN=1900000009999995
ADMIN_TOKEN="demo-admin-$RANDOM$RANDOM"

SERVER_PID=""
AGENT_PID=""
SOCAT_PID=""
POS_PID=""
cleanup() {
  [ -n "$AGENT_PID" ] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  [ -n "$POS_PID" ] && kill "$POS_PID" 2>/dev/null || true
  [ -n "$SOCAT_PID" ] && kill "$SOCAT_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  echo "== demo stopped (data kept in $DEMO)"
}
trap cleanup EXIT INT TERM

echo "== server-stub on 127.0.0.1:$PORT (seeded with fixtures/seed/demo.json)"
"$BIN/server-stub" seed --db "$DEMO/server.db" fixtures/seed/demo.json
TOKEN=$("$BIN/server-stub" till add --db "$DEMO/server.db" --store "$STORE" --till "$TILL" | tail -n1)
"$BIN/server-stub" serve --listen "127.0.0.1:$PORT" --db "$DEMO/server.db" --admin-token "$ADMIN_TOKEN" \
  >"$DEMO/server.log" 2>&1 &
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
$([ -z "${DISPLAY:-}" ] && printf '%s\n' "# no display: a serial reader (a socat pty the demo writes to)" "[[reader.serial]]" "port = \"$DEMO/reader-pty\"" "terminator = \"cr\"")

EOF
cat fixtures/agent/cz-pos-csv.toml >> "$DEMO/agent.toml"

if [ -z "${DISPLAY:-}" ]; then
  # A serial card reader without hardware: the agent opens one end, the demo writes to the other.
  rm -f "$DEMO/reader-pty" "$DEMO/scanner-pty"
  socat pty,raw,echo=0,link="$DEMO/reader-pty" pty,raw,echo=0,link="$DEMO/scanner-pty" &
  SOCAT_PID=$!
  for _ in $(seq 1 50); do [ -e "$DEMO/scanner-pty" ] && [ -e "$DEMO/reader-pty" ] && break; sleep 0.1; done
fi

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

# scan CARD: what a reader does — fast keys and Enter into the focused window, or a serial line
POS_WIN=""
scan() {
  if [ -n "${DISPLAY:-}" ]; then
    if [ -n "$POS_WIN" ]; then
      xdotool windowactivate --sync "$POS_WIN" 2>/dev/null || xdotool windowfocus --sync "$POS_WIN" || true
    fi
    xdotool type --delay 8 "$1"
    xdotool key --delay 8 Return
  else
    printf '%s\r' "$1" >"$DEMO/scanner-pty"
  fi
}

echo
if [ -n "${DISPLAY:-}" ]; then
  echo "== scans: a POS stand-in window (xev) takes the keys; the popup shows over it"
  xev -name "POS (demo)" -geometry 420x160+60+60 -event keyboard >"$DEMO/pos-keys.log" 2>&1 &
  POS_PID=$!
  POS_WIN=$(timeout 10 xdotool search --sync --name 'POS \(demo\)' | head -n1 || true)
  sleep 1
else
  echo "== scans: no display, so a serial reader (socat pty) scans; each popup is a JSON line"
fi
echo "-- scan $CARD_CUSTOMER (a customer)"
scan "$CARD_CUSTOMER"
sleep 3
echo "-- scan $CARD_UNKNOWN (not registered: the popup offers Register)"
scan "$CARD_UNKNOWN"
sleep 3
echo "== till-agent quote $CARD_CUSTOMER"
"${AGENT[@]}" quote "$CARD_CUSTOMER" || true

T="$BIN/till-agent --config $DEMO/agent.toml"
cat <<NEXT

== try next (copy and paste; the server and the agent keep running while this demo runs)
  export TILL_AGENT_TOKEN=$TOKEN
  $T status
  $T log --tail 20
  $T quote $CARD_CUSTOMER
  $T register $CARD_UNKNOWN --name "Jana Nováková" --email jana@example.cz --consent
  $T quote $CARD_UNKNOWN
  cp $ROOT/fixtures/agent/demo-receipts/R-1001.json $DEMO/export/R-1001-again.json
  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$PORT/admin/reports/points-ranking
  curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" -d '{"reason":"lost"}' http://127.0.0.1:$PORT/admin/cards/$CARD_CUSTOMER/block
  $T popup-demo --menu sync_log
Demo cards: customer $CARD_CUSTOMER, unknown $CARD_UNKNOWN (more in $ROOT/fixtures/seed/demo.json)
Admin token: $ADMIN_TOKEN    server: http://127.0.0.1:$PORT    data: $DEMO
NEXT
if [ -n "${DISPLAY:-}" ]; then
  echo "Scan again: xdotool type --delay 8 $CARD_CUSTOMER; xdotool key Return"
else
  echo "Scan again: printf '%s\\r' $CARD_CUSTOMER > $DEMO/scanner-pty"
fi

if [ -t 0 ] || [ "${DEMO_WAIT:-0}" = "1" ]; then
  echo
  echo "Demo running. Press Ctrl-C to stop."
  wait "$AGENT_PID" || true
fi
