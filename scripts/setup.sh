#!/usr/bin/env bash
# Installs what the demo and the test suite need. Idempotent: safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential pkg-config sqlite3 bc curl
  # Python tools of the test suite (schemathesis for the contract run) live in .venv/
  python3 python3-venv
  # Windows cross build, MSI tooling and Wine for the installer tests
  mingw-w64 msitools wixl wine wine64
  # Authenticode signing of the exes and the MSI (scripts/build-msi.sh) and the test certificate
  osslsigncode openssl
  # X11 test bench: virtual display, key injection, layouts, screenshots, serial ptys
  faketime xvfb xdotool xinput x11-xkb-utils x11-utils xkb-data imagemagick socat fonts-dejavu-core
  # the Linux tray (a StatusNotifierItem) and the session app's balloon talk to the session D-Bus:
  # the GUI tests start a private dbus-daemon per Xvfb; dbus-monitor in the balloon's test
  dbus dbus-bin dbus-daemon
  # power-cut test layer (FUSE): fusermount3, used when the suite does not run as root
  fuse3
  # GUI build deps (winit/egui; the Linux tray is pure Rust over D-Bus: no GTK/appindicator/xdo)
  libudev-dev libxkbcommon-dev libxkbcommon-x11-0 libgl1 libegl1
  # receipts read "in another season" (summer-time test)
  faketime
  # the server e2e suite also runs on PostgreSQL (a throw-away cluster per test process, run as
  # the package's unprivileged `postgres` user; binaries under /usr/lib/postgresql/<version>/bin)
  postgresql
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is required: install rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
  rustup target add x86_64-pc-windows-gnu
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# schemathesis (the contract run, scripts/contract.sh) in a local virtualenv, pinned.
SCHEMATHESIS_VERSION=4.32.5
if ! .venv/bin/schemathesis --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  echo "setup: installing schemathesis $SCHEMATHESIS_VERSION into .venv/"
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
