#!/usr/bin/env bash
# The whole test suite: what a newcomer runs and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI=1 unless the caller set it: a test whose tool (wine, Xvfb, xdotool, socat, msiinfo…) is
# missing then FAILS instead of skipping (tests/harness/lib.rs `need_tools`).
export CI="${CI:-1}"
scripts/setup.sh

export CARGO_TERM_COLOR=never
echo "== format (cargo fmt --check; rustfmt.toml)"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)
echo "== build (one debug build shared by every test)"
cargo build --workspace --all-targets
echo "== build the Windows agent (x86_64-pc-windows-gnu) for the installer tests"
cargo build -p till-agent --target x86_64-pc-windows-gnu
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"
cargo test --workspace --no-fail-fast
echo "== contract (schemathesis against the real server-stub, every operation)"
scripts/contract.sh
echo "== fuzz (brief run of every target; scripts/fuzz.sh soak for 10^6 executions each)"
scripts/fuzz.sh brief
