#!/usr/bin/env bash
# Builds the Windows agent and its MSI:  scripts/build-msi.sh  →  target/msi/till-agent-<version>.msi
#
#   scripts/build-msi.sh [--debug|--release] [--exe PATH] [--version X.Y.Z] [--out DIR]
#
#   --debug         use the debug build of the exe (default: the `dist` profile of Cargo.toml, the
#                   release build optimised for size with LTO, no symbols: 14 MB instead of 39 MB)
#   --release       use the plain release build
#   --exe PATH      package this already-built till-agent.exe instead of building one (tests use this);
#                   till-agent-cli.exe is taken from the same folder unless --cli says otherwise
#   --cli PATH      the console companion till-agent-cli.exe to package
#   --version V     MSI ProductVersion (default: the agent's version from Cargo.toml)
#   --out DIR       output directory (default: $CARGO_TARGET_DIR or ./target, then /msi)
#
# The MSI is built by Debian's wixl (msitools) from installer/till-agent.wxs. Prints the MSI's path
# as the last line of stdout.
#
# Authenticode signing (osslsigncode), when the environment gives a certificate:
#   TILL_AGENT_SIGN_PFX        path of a PKCS#12 file (.pfx/.p12) with the code-signing certificate + key
#   TILL_AGENT_SIGN_PASSWORD   its password (read from the environment, never put on a command line)
#   TILL_AGENT_SIGN_TIMESTAMP  optional RFC 3161 timestamp server URL (signatures outlive the certificate)
#   TILL_AGENT_SIGN_COMMAND    instead of a PFX: a command run as `$TILL_AGENT_SIGN_COMMAND FILE` that signs
#                              FILE in place (a signing service / HSM client / signtool wrapper)
# Both exes are signed before they go into the MSI, then the MSI itself. Without either variable
# nothing is signed (and the script says so).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
caller="$(pwd)"

profile=dist
exe=""
cli=""
version=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --release) profile=release ;;
    --exe) exe="$2"; shift ;;
    --cli) cli="$2"; shift ;;
    --version) version="$2"; shift ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-msi: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Relative --exe/--out paths are relative to where the script was called from.
abs() { case "$1" in /*|"") echo "$1" ;; *) echo "$caller/$1" ;; esac; }
exe="$(abs "$exe")"
cli="$(abs "$cli")"
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
  [ "$profile" = debug ] || flag=(--profile "$profile")
  cargo build -p till-agent --bins --target x86_64-pc-windows-gnu "${flag[@]}" >&2
  exe="$target_dir/x86_64-pc-windows-gnu/$profile/till-agent.exe"
fi
[ -n "$cli" ] || cli="$(dirname "$exe")/till-agent-cli.exe"
[ -f "$exe" ] || { echo "build-msi: $exe not found" >&2; exit 1; }
[ -f "$cli" ] || { echo "build-msi: $cli not found (cargo build -p till-agent --bins --target x86_64-pc-windows-gnu)" >&2; exit 1; }
for tool in wixl msibuild; do
  command -v "$tool" >/dev/null || { echo "build-msi: $tool not found: run scripts/setup.sh (apt packages wixl, msitools)" >&2; exit 1; }
done

# sign FILE: Authenticode signature in place (see the header), or nothing without a certificate.
sign() {
  local file="$1"
  if [ -n "${TILL_AGENT_SIGN_COMMAND:-}" ]; then
    # shellcheck disable=SC2086 # the command may carry its own arguments
    $TILL_AGENT_SIGN_COMMAND "$file" >&2 || { echo "build-msi: TILL_AGENT_SIGN_COMMAND failed on $file" >&2; exit 1; }
    return
  fi
  [ -n "${TILL_AGENT_SIGN_PFX:-}" ] || return 0
  command -v osslsigncode >/dev/null || { echo "build-msi: osslsigncode not found: run scripts/setup.sh" >&2; exit 1; }
  [ -f "$TILL_AGENT_SIGN_PFX" ] || { echo "build-msi: TILL_AGENT_SIGN_PFX=$TILL_AGENT_SIGN_PFX: no such file" >&2; exit 1; }
  local ts=()
  [ -n "${TILL_AGENT_SIGN_TIMESTAMP:-}" ] && ts=(-ts "$TILL_AGENT_SIGN_TIMESTAMP")
  # the password goes through a file descriptor, not argv (visible in ps)
  osslsigncode sign -pkcs12 "$TILL_AGENT_SIGN_PFX" -readpass <(printf '%s' "${TILL_AGENT_SIGN_PASSWORD:-}") \
    -h sha256 -n "Till Agent" "${ts[@]}" -in "$file" -out "$file.signed" >&2 \
    || { echo "build-msi: signing $file failed (certificate $TILL_AGENT_SIGN_PFX)" >&2; exit 1; }
  mv "$file.signed" "$file"
}
if [ -z "${TILL_AGENT_SIGN_PFX:-}${TILL_AGENT_SIGN_COMMAND:-}" ]; then
  echo "build-msi: not signing (set TILL_AGENT_SIGN_PFX + TILL_AGENT_SIGN_PASSWORD, or TILL_AGENT_SIGN_COMMAND)" >&2
fi

# wixl resolves File/@Source relative to the .wxs and refuses absolute paths: stage everything together.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp installer/till-agent.wxs "$stage/"
cp agent/assets/till-agent.ico "$stage/"
cp "$exe" "$stage/till-agent.exe"
cp "$cli" "$stage/till-agent-cli.exe"
sign "$stage/till-agent.exe"
sign "$stage/till-agent-cli.exe"
mkdir -p "$out"
msi="$(cd "$out" && pwd)/till-agent-$version.msi"
(cd "$stage" && wixl -a x64 -D Version="$version" -o "$msi" till-agent.wxs)
# What wixl 0.101 cannot express, patched into the tables with msibuild (SQL on the MSI):
# - AllowSameVersionUpgrades (wixl ignores the attribute): the WIX_UPGRADE_DETECTED row also matches
#   the installed product of this very version: 513 = msidbUpgradeAttributesMigrateFeatures (1) +
#   msidbUpgradeAttributesVersionMaxInclusive (0x200). Attributes is part of the table's key, so the
#   row is replaced rather than updated.
# - EventMessageFile as REG_EXPAND_SZ ("#%" prefix; wixl writes Type="expandable" as a plain string).
# - The custom action UpgradePrepare (wixl has no CustomAction/@Directory): before InstallValidate, on an
#   upgrade or an uninstall, run the INSTALLED exe's `upgrade-prepare` (the service tells every session
#   app to exit and waits for them), so no till-agent.exe is in use when files are replaced. Type 98 =
#   34 (exe by a directory's path, immediate) + 64 (exit code ignored: an older exe without the command
#   must not block the upgrade). The service itself is stopped by StopServices (ServiceControl).
# - The custom action InstallFinish (wixl sequences Before/After custom actions wrongly): after
#   WriteRegistryValues, before StartServices, as LocalSystem (deferred, no impersonation), the new
#   exe's `install-finish` writes agent.toml from the installer settings, moves TILL_TOKEN from HKLM into
#   the machine's token store and deletes the registry value (the service's account may not), and sets
#   the data folder's access rules (wixl has no LockPermissions). Type 3154 = 18 (exe from the File
#   table) + 64 (exit code ignored: a bad setting is reported by the service in the Event Log instead of
#   failing the install) + 1024 (deferred) + 2048 (no impersonation).
upgrade_code="$(msiinfo export "$msi" Property | awk -F'\t' '$1 == "UpgradeCode" { print $2 }' | tr -d '\r')"
bt='`'   # table and column names are quoted with backticks in MSI SQL
msibuild "$msi" \
  -q "DELETE FROM ${bt}Upgrade${bt} WHERE ${bt}ActionProperty${bt} = 'WIX_UPGRADE_DETECTED'" \
  -q "INSERT INTO ${bt}Upgrade${bt} (${bt}UpgradeCode${bt}, ${bt}VersionMax${bt}, ${bt}Attributes${bt}, ${bt}ActionProperty${bt}) VALUES ('$upgrade_code', '$version', 513, 'WIX_UPGRADE_DETECTED')" \
  -q "UPDATE ${bt}Registry${bt} SET ${bt}Value${bt} = '#%[INSTALLDIR]till-agent.exe' WHERE ${bt}Name${bt} = 'EventMessageFile'" \
  -q "INSERT INTO ${bt}CustomAction${bt} (${bt}Action${bt}, ${bt}Type${bt}, ${bt}Source${bt}, ${bt}Target${bt}) VALUES ('UpgradePrepare', 98, 'INSTALLDIR', '\"[INSTALLDIR]till-agent.exe\" upgrade-prepare')" \
  -q "INSERT INTO ${bt}InstallExecuteSequence${bt} (${bt}Action${bt}, ${bt}Condition${bt}, ${bt}Sequence${bt}) VALUES ('UpgradePrepare', 'WIX_UPGRADE_DETECTED OR REMOVE=\"ALL\"', 1390)" \
  -q "INSERT INTO ${bt}CustomAction${bt} (${bt}Action${bt}, ${bt}Type${bt}, ${bt}Source${bt}, ${bt}Target${bt}) VALUES ('InstallFinish', 3154, 'TillAgentExe', 'install-finish')" \
  -q "INSERT INTO ${bt}InstallExecuteSequence${bt} (${bt}Action${bt}, ${bt}Condition${bt}, ${bt}Sequence${bt}) VALUES ('InstallFinish', 'NOT REMOVE=\"ALL\"', 5850)"
sign "$msi"
echo "build-msi: $(du -h "$msi" | cut -f1) $msi" >&2
echo "$msi"
