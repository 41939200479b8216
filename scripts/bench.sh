#!/usr/bin/env bash
# One benchmark command: runs every benchmark of the workspace (release build) and prints ONE
# table, each figure beside its baseline. Each bench prints rows as
#   TABLE<TAB>figure<TAB>value<TAB>baseline
# which this script collects. Also measures the idle agent (headless, and with the UI under Xvfb).
#   scripts/bench.sh          # the table
#   scripts/bench.sh --soak   # plus the long crash loop (>= 200 SIGKILLs) and 10^6-execution fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
soak=0; [ "${1:-}" = "--soak" ] && soak=1
out=$(mktemp -d); trap 'rm -rf "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT
export CARGO_TERM_COLOR=never

cargo build --release -p server-stub -p till-agent
cargo build --release -p till-agent --example outbox_bench --example input_bench
rows="$out/rows.tsv"; : > "$rows"

# PostgreSQL column: a throw-away cluster (durable defaults: fsync and synchronous_commit on, like
# SQLite's synchronous=FULL) run as the unprivileged `postgres` user when we are root; the ingest
# bench runs its HTTP ingest again on an empty database of it (BENCH_PG_URL).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pgdir="$out/pg"
pg_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { [ -f "$pgdir/data/postmaster.pid" ] && pg_owner "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true; }
trap 'pg_stop; rm -rf "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT
if [ -n "$pgbin" ]; then
  chmod 755 "$out"; mkdir -p "$pgdir"; [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
  pg_owner "$pgbin/initdb" -D "$pgdir/data" -A trust -U till -E UTF8 --locale=C >/dev/null
  pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pg_owner "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" \
    -l "$pgdir/server.log" -w start >/dev/null
  "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U till bench
  export BENCH_PG_URL="postgres://till@127.0.0.1:$pgport/bench"
  "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U till storm   # the storm's own empty database
else
  echo "bench: PostgreSQL not installed (scripts/setup.sh installs it): no PostgreSQL column" >&2
fi
# Before each bench the disk's dirty pages are written out (`sync`): the build and the bench before
# write hundreds of MB whose writeback would otherwise run into the next bench's fsyncs.
settle() { sync; sleep 2; }
run_bench() { # package bench [log name]
  echo "== cargo bench -p $1 --bench $2" >&2
  cargo bench -q -p "$1" --bench "$2" --no-run 2>/dev/null || true   # the build, before the settle
  settle
  cargo bench -q -p "$1" --bench "$2" 2>&1 | tee "$out/${3:-$2}.log" | grep -P '^TABLE\t' | cut -f2- >> "$rows" || true
}
run_bench server-stub ingest
# The ingest again with its databases on tmpfs: fsync costs nothing there, so the raw insert and the
# HTTP ingest are both CPU-bound — the ratio when the disk is fast, with the parts' floor beside it
# (on the virtio disk the raw insert waits on fsync for up to half its time, which flatters the ratio).
if shm=$(mktemp -d /dev/shm/till-ingest.XXXXXX 2>/dev/null); then
  BENCH_DIR="$shm" BENCH_ROUNDS=3 BENCH_TABLE_LABEL="databases on tmpfs: no fsync, CPU-bound" BENCH_PG_URL= \
    run_bench server-stub ingest ingest-tmpfs
  rm -rf "$shm"
else
  echo "bench: no /dev/shm: no CPU-bound ingest row" >&2
fi
run_bench server-stub redeem
run_bench till-agent pipeline
# Morning storm (BENCH_STORM_TILLS × BENCH_STORM_RECEIPTS, default 200 × 1 000): on SQLite, then the
# same storm against the server on PostgreSQL.
run_bench till-agent storm
if [ -n "${BENCH_PG_URL:-}" ]; then
  BENCH_STORM_DB="${BENCH_PG_URL%/bench}/storm" run_bench till-agent storm
fi
echo "== outbox bench: stats() at 10^6 items, size after a simulated year with retention" >&2
# Measured once (debug build, 2 shared cores): stats() 0.014 ms at 10^6 items (0.012 ms empty; the old
# full GROUP BY scan 294 ms); a year at 2 000 receipts/day with 90/30 days kept: 88 MiB, 182 000 items.
settle
cargo run -q --release -p till-agent --example outbox_bench 2>&1 \
  | tee "$out/outbox.log" | grep -P '^TABLE\t' | cut -f2- >> "$rows" || true
echo "== input bench: terminator → quote ready" >&2
settle
cargo run -q --release -p till-agent --example input_bench -- target/release/server-stub fixtures/seed/demo.json 2>&1 \
  | tee "$out/input.log" | grep -P '^TABLE\t' | cut -f2- >> "$rows" || true

# Card terminator → popup mapped / painted on Xvfb, measured by an X client outside the agent
# (BENCH_POPUP_SCANS, default 50; then one scan after BENCH_POPUP_IDLE_SECS hidden, default 300;
# BENCH_POPUP_OFFLINE_FIRST_MS=0: the agent waits for the server's quote, no early offline popup).
run_bench till-agent popup

echo "== release MSI size (scripts/build-msi.sh: the dist profile's Windows exes)" >&2
if cargo build --release -p till-agent --bins --target x86_64-pc-windows-gnu >&2 \
  && msi=$(scripts/build-msi.sh --out "$out/msi" | tail -1); then
  exe_b=$(stat -c %s target/x86_64-pc-windows-gnu/release/till-agent.exe); msi_b=$(stat -c %s "$msi")
  dist_b=$(stat -c %s target/x86_64-pc-windows-gnu/dist/till-agent.exe)
  printf 'release MSI size (two exes of the dist profile, %s MB each)\t%s MB\trelease till-agent.exe %s MB\n' \
    "$(echo "scale=1; $dist_b/1000000" | bc)" "$(echo "scale=1; $msi_b/1000000" | bc)" "$(echo "scale=1; $exe_b/1000000" | bc)" >> "$rows"
else
  echo "bench: the release MSI could not be built (see above): no MSI row" >&2
fi

# Idle agent: resident memory and CPU seconds over 60 s.
idle() { # label, extra args...
  local label=$1; shift
  local d="$out/idle-$label"; mkdir -p "$d/export"
  cat > "$d/agent.toml" <<TOML
server_url = "http://127.0.0.1:9"
store_id = "BENCH"
till_id = "T1"
export_dir = "export"
TOML
  TILL_AGENT_TOKEN=bench "${AGENT_BIN:-target/release/till-agent}" --config "$d/agent.toml" run "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep 5   # start-up is not idle
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  sleep 60
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  local rss; rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  # What the GL driver holds: mesa's DRI driver (llvmpipe) and the LLVM it links.
  local gl; gl=$(awk '/^[0-9a-f]+-[0-9a-f]+ /{f=$6} /^Rss:/{if (f ~ /libLLVM|_dri\.so|libgallium|libGLX_mesa|libglapi/) s+=$2} END{print s+0}' /proc/$pid/smaps)
  # Who holds the rest (with BREAKDOWN set): the binary, heap + anonymous, a GTK stack (GTK/GDK/GLib/
  # cairo/pango/fonts/appindicator: none since the tray is a StatusNotifierItem over zbus), X11/xcb,
  # other libraries, shared memory.
  local breakdown=""
  [ -n "${BREAKDOWN:-}" ] && breakdown=$(awk -v exe="$(readlink /proc/$pid/exe)" '
    BEGIN { gtk = "libgtk|libgdk|libglib|libgio|libgobject|libgmodule|libcairo|libpango|libharfbuzz|libfreetype|" \
      "libfontconfig|libpixman|libatk|libatspi|libappindicator|libayatana|libdbusmenu|libepoxy|libpng|libjpeg|" \
      "libtiff|libgraphite|libthai|libdatrie|libfribidi|libbrotli|libxml2|libwebp|libLerc|libdeflate|libjbig|" \
      "libsharpyuv|libmount|libblkid|libselinux|libpcre|libffi|libbz2|libexpat|libdbus|libsystemd|libgcrypt|" \
      "libgpg|liblzma|liblz4|libzstd|libcap|libwayland|libxkbcommon|libcloudproviders|libcolord|liblcms|" \
      "libXcomposite|libXcursor|libXdamage|libXfixes|libXi[.]|libXinerama|libXrandr|libXext|libXrender"
      x11 = "libX11|libxcb|libXau|libXdmcp|libxkbcommon|libXcursor|libXext|libXrender|libXfixes|libXi[.]|libXrandr" }
    /^[0-9a-f]+-[0-9a-f]+ /{ f = $6 }
    /^Rss:/{ if (f == exe) c = 1; else if (f == "" || f ~ /^\[/) c = 2; else if (f ~ x11) c = 4; else if (f ~ gtk) c = 3;
      else if (f ~ /SYSV|^\/dev\/shm/) c = 6; else c = 5;
      s[c] += $2 }
    END { split("binary|heap + anonymous|GTK stack|X11/xcb/xkbcommon|other libraries|shared memory", name, "|");
      for (i = 1; i <= 6; i++) if (s[i] > 0) printf "%s%s %.1f", (n++ ? ", " : ""), name[i], s[i] / 1024 }' /proc/$pid/smaps)
  local hz; hz=$(getconf CLK_TCK)
  local parts; parts=$(scripts/rss-breakdown.sh $pid)
  kill $pid; wait $pid 2>/dev/null || true
  # The UI rows print the idle headless agent (same build) beside them.
  local base="-"; [ -n "${BASELINE_KIB:-}" ] && base="idle headless $(echo "scale=1; $BASELINE_KIB/1024" | bc) MiB"
  printf 'idle %s agent: resident memory\t%s MiB\t%s\n' "$label" "$(echo "scale=1; $rss/1024" | bc)" "$base" >> "$rows"
  last_rss=$rss
  # Headless rows: the binary's pages split (scripts/rss-breakdown.sh); the UI row has its own above.
  [ -z "${BREAKDOWN:-}" ] && printf 'idle %s agent: of which (MiB)\t%s\t-\n' "$label" "$parts" >> "$rows"
  printf 'idle %s agent: CPU seconds over 60 s\t%s s\t0 s (ideal)\n' "$label" "$(echo "scale=2; ($t1-$t0)/$hz" | bc)" >> "$rows"
  [ "$gl" -gt 0 ] && printf 'idle %s agent: of the resident memory, the GL driver (mesa llvmpipe + LLVM)\t%s MiB\t-\n' "$label" "$(echo "scale=1; $gl/1024" | bc)" >> "$rows"
  [ -n "${BREAKDOWN:-}" ] && printf 'idle %s agent: of the resident memory (MiB)\t%s\t-\n' "$label" "$breakdown" >> "$rows"
  return 0
}
echo "== idle headless agent (60 s)" >&2
idle headless --headless
headless_rss=$last_rss
# The same agent built without the `gui` feature (no GTK/X11/GL libraries linked): the build for a
# headless till or a Linux `service`. Cargo keeps both feature sets' artifacts: flipping back relinks.
cargo build --release -p till-agent --no-default-features >&2
cp target/release/till-agent "$out/till-agent-nogui"
cargo build --release -p till-agent >&2
AGENT_BIN="$out/till-agent-nogui" idle "headless (built without gui)" --headless
# The dist profile (opt-level z, fat LTO, stripped: what the MSI ships), with and without `gui`.
# Built once each (fat LTO: minutes); the ≤ 15 MiB headless target is met by the build without gui.
cargo build --profile dist -p till-agent --bin till-agent --no-default-features >&2
cp target/dist/till-agent "$out/till-agent-dist-nogui"
cargo build --profile dist -p till-agent --bin till-agent >&2
AGENT_BIN="$out/till-agent-dist-nogui" idle "headless (dist profile, without gui)" --headless
AGENT_BIN=target/dist/till-agent idle "headless (dist profile, default features)" --headless
dist_headless_rss=$last_rss
# The Linux tray is a StatusNotifierItem over zbus (pure Rust): no GTK/GLib/cairo/pango is linked.
printf 'Linux till-agent (release, gui): GTK/GLib/cairo/pango libraries linked (ldd)\t%s\t0 (target)\n' \
  "$(ldd target/release/till-agent | grep -c -E 'gtk|glib|gio-|gobject|cairo|pango|appindicator' || true)" >> "$rows"
echo "== idle agent with UI under Xvfb (60 s)" >&2
Xvfb :97 -screen 0 1280x800x24 >/dev/null 2>&1 & xvfb=$!
# A desktop session's D-Bus session bus: the tray is a StatusNotifierItem there.
bus_out=$(dbus-daemon --session --fork --print-address=1 --print-pid=1)
export DBUS_SESSION_BUS_ADDRESS; DBUS_SESSION_BUS_ADDRESS=$(echo "$bus_out" | sed -n 1p); bus_pid=$(echo "$bus_out" | sed -n 2p)
sleep 1
DISPLAY=:97 BREAKDOWN=1 BASELINE_KIB=$headless_rss idle ui
# The same with the `dist` profile (what the MSI ships: opt-level z, fat LTO, stripped; built above).
DISPLAY=:97 BREAKDOWN=1 BASELINE_KIB=$dist_headless_rss AGENT_BIN=target/dist/till-agent idle "ui (dist profile)"
kill $xvfb "$bus_pid" 2>/dev/null || true
unset DBUS_SESSION_BUS_ADDRESS

echo
echo "Benchmarks on $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), disk $(df -h . | awk 'NR==2{print $1}')"
echo
printf '| %-62s | %-22s | %-34s |\n' "figure" "value" "baseline"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..36})"
while IFS=$'\t' read -r f v b; do printf '| %-62s | %-22s | %-34s |\n' "$f" "$v" "$b"; done < "$rows"

if [ "$soak" = 1 ]; then
  echo "== soak: crash loop with >= 200 SIGKILLs" >&2
  cargo build --workspace
  cargo test -p e2e --test e2e -- --ignored crash_loop_200_kills --nocapture
  echo "== soak: fuzzing, 10^6 executions per target" >&2
  scripts/fuzz.sh soak
fi
