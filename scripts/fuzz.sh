#!/usr/bin/env bash
# Fuzz every receipt parser, the card payload decoder and the scan detector with cargo-fuzz
# (libFuzzer). Corpora are seeded from fixtures/ on every run.
#   scripts/fuzz.sh brief   — a short run of each target (part of scripts/test.sh)
#   scripts/fuzz.sh soak    — >= 1 000 000 executions of each target (release build)
# A crash, timeout or out-of-memory fails the run; libFuzzer leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-brief}

# cargo-fuzz drives libFuzzer through rustc flags that stable rustc accepts only with
# RUSTC_BOOTSTRAP; no sanitizer (`-s none`) keeps it on the stable toolchain.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

case "$mode" in
  brief) build=(--dev); runs=(-runs=30000 -max_total_time=25) ;;
  soak)  build=();      runs=(-runs=1000000) ;;
  *) echo "usage: $0 brief|soak" >&2; exit 2 ;;
esac

targets=(receipt_csv receipt_json receipt_poslog receipt_pohoda receipt_ekasa receipt_hr_fiscal receipt_eet receipt_square card_payload scan_detect)

seed() { # target, files...
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/" || true; done
}
shopt -s nullglob
seed receipt_csv fixtures/receipts/*.csv fixtures/receipts/**/*.csv
seed receipt_json fixtures/receipts/*.json
seed receipt_poslog fixtures/receipts/*poslog*.xml fixtures/receipts/*ncr*.xml
seed receipt_pohoda fixtures/receipts/*pohoda*.xml
seed receipt_ekasa fixtures/receipts/*ekasa*
seed receipt_hr_fiscal fixtures/receipts/*racun*.xml fixtures/receipts/*hr_*.xml
seed receipt_eet fixtures/receipts/*eet*.xml
seed receipt_square fixtures/receipts/*square*.json
mkdir -p fuzz/corpus/card_payload fuzz/corpus/scan_detect
# one corpus file per reference swipe / barcode (column 2 is the raw text the reader types)
for tsv in fixtures/input/*.tsv; do
  while IFS=$'\t' read -r id raw _; do
    case "$id" in ''|'#'*) continue ;; esac
    printf '%s' "$raw" > "fuzz/corpus/card_payload/$(basename "$tsv" .tsv)-$id"
  done < "$tsv"
done
for f in fixtures/input/*.trace; do cp "$f" fuzz/corpus/scan_detect/; done
# inputs that once failed a target (fuzz/regressions/<target>/, checked in): run first on every run
for d in fuzz/regressions/*/; do seed "$(basename "$d")" "$d"*; done

cd fuzz
echo "== cargo fuzz build ${build[*]:-(release)}"
cargo fuzz build -s none "${build[@]}"
status=0
for t in "${targets[@]}"; do
  echo "== fuzz $t ${runs[*]}"
  if ! cargo fuzz run -s none "${build[@]}" "$t" "corpus/$t" -- "${runs[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 2>"/tmp/fuzz-$t.log"; then
    tail -40 "/tmp/fuzz-$t.log"; status=1
  else
    grep -E "^(Done|stat::number_of_executed_units)" "/tmp/fuzz-$t.log" || tail -3 "/tmp/fuzz-$t.log"
  fi
done
if [ "$status" -eq 0 ]; then echo "fuzz: ${#targets[@]} passed, 0 failed"; else echo "fuzz: failures above"; fi
exit "$status"
