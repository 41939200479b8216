#!/usr/bin/env bash
# Contract run: schemathesis (installed by scripts/setup.sh into .venv/) against the real
# server-stub on loopback, seeded with fixtures/seed/demo.json, with a till token and the admin
# token, over every operation of the served /openapi.json. Any failure fails the run.
#   SCHEMATHESIS_MAX_EXAMPLES (default 30) bounds the generated cases per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
ST=.venv/bin/schemathesis
[ -x "$ST" ] || { echo "contract: $ST missing: run scripts/setup.sh" >&2; exit 1; }
BIN=${SERVER_STUB_BIN:-target/debug/server-stub}
[ -x "$BIN" ] || cargo build -q -p server-stub
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

RUST_LOG=warn "$BIN" seed --db "$WORK/server.db" fixtures/seed/demo.json >/dev/null
TILL_TOKEN=$(RUST_LOG=warn "$BIN" till add --db "$WORK/server.db" --store CZ-PRG-01 --till T1 2>/dev/null | tail -n1)
ADMIN_TOKEN=contract-admin-$RANDOM$RANDOM
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --db "$WORK/server.db" --admin-token "$ADMIN_TOKEN" \
  >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

# Every example in the document validates against its own schema (tagged unions included).
.venv/bin/python - "http://127.0.0.1:$PORT/openapi.json" <<'PY'
import json, sys, urllib.request
import jsonschema_rs
doc = json.load(urllib.request.urlopen(sys.argv[1]))
bad = 0
for name, schema in doc["components"]["schemas"].items():
    v = jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})
    for i, ex in enumerate(schema.get("examples", [])):
        for e in v.iter_errors(ex):
            bad += 1
            print(f"contract: example {i} of {name} does not match its schema at {list(e.instance_path)}: {e.message}")
n = sum(len(s.get("examples", [])) for s in doc["components"]["schemas"].values())
print(f"contract: {n} schema examples checked, {bad} invalid")
sys.exit(1 if bad else 0)
PY

# Tokens: the admin token for /admin/*, the till token elsewhere (schemathesis sends one
# Authorization header per run, so it runs twice, each over the operations of its token).
# Configured: --generation-deterministic keeps runs reproducible.
run() { # label token include-regex
  echo "== schemathesis ($1)"
  "$ST" run "http://127.0.0.1:$PORT/openapi.json" \
    --header "Authorization: Bearer $2" \
    --include-path-regex "$3" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
    --generation-deterministic \
    --checks all \
    --no-color
}
rc=0
run till "$TILL_TOKEN" '^/(v1/|healthz|openapi)' || rc=1
run admin "$ADMIN_TOKEN" '^/admin/' || rc=1
if [ $rc -ne 0 ]; then
  echo "contract: schemathesis reported failures (server log: last lines)" >&2
  tail -n 20 "$WORK/server.log" >&2
fi
exit $rc
