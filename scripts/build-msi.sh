#!/usr/bin/env bash
# Builds the Windows agent and its MSI:  scripts/build-msi.sh  →  target/msi/till-agent-<version>.msi
#
#   scripts/build-msi.sh [--debug] [--exe PATH] [--version X.Y.Z] [--out DIR]
#
#   --debug         use the debug build of the exe (default: release)
#   --exe PATH      package this already-built till-agent.exe instead of building one (tests use this)
#   --version V     MSI ProductVersion (default: the agent's version from Cargo.toml)
#   --out DIR       output directory (default: $CARGO_TARGET_DIR or ./target, then /msi)
#
# The MSI is built by Debian's wixl (msitools) from installer/till-agent.wxs. Prints the MSI's path
# as the last line of stdout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
caller="$(pwd)"

profile=release
exe=""
version=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --exe) exe="$2"; shift ;;
    --version) version="$2"; shift ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build-msi: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Relative --exe/--out paths are relative to where the script was called from.
abs() { case "$1" in /*|"") echo "$1" ;; *) echo "$caller/$1" ;; esac; }
exe="$(abs "$exe")"
out="$(abs "$out")"
cd "$repo"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
if [ -z "$version" ]; then
  # "path+file:///…/agent#till-agent@0.1.0" → 0.1.0
  version="$(cargo pkgid -p till-agent | sed 's/.*[#@]//')"
fi
case "$version" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "build-msi: version '$version' is not X.Y.Z" >&2; exit 2 ;;
esac
out="${out:-$target_dir/msi}"

if [ -z "$exe" ]; then
  flag=()
  [ "$profile" = release ] && flag=(--release)
  cargo build -p till-agent --target x86_64-pc-windows-gnu "${flag[@]}" >&2
  exe="$target_dir/x86_64-pc-windows-gnu/$profile/till-agent.exe"
fi
[ -f "$exe" ] || { echo "build-msi: $exe not found" >&2; exit 1; }
command -v wixl >/dev/null || { echo "build-msi: wixl not found: run scripts/setup.sh (apt package wixl)" >&2; exit 1; }

# wixl resolves File/@Source relative to the .wxs and refuses absolute paths: stage everything together.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp installer/till-agent.wxs "$stage/"
cp agent/assets/till-agent.ico "$stage/"
cp "$exe" "$stage/till-agent.exe"
mkdir -p "$out"
msi="$(cd "$out" && pwd)/till-agent-$version.msi"
(cd "$stage" && wixl -a x64 -D Version="$version" -o "$msi" till-agent.wxs)
echo "build-msi: $(du -h "$msi" | cut -f1) $msi" >&2
echo "$msi"
