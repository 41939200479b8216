//! What the Windows build and its MSI carry, checked without Wine (fast): the application manifest,
//! subsystem and message table read back from both exes (tests/harness/pe.rs), the MSI's tables
//! (msiinfo: service, upgrade, properties, Event Log source) and the Authenticode signatures that
//! `scripts/build-msi.sh` makes with a throw-away certificate (openssl + osslsigncode).
//! The installed behaviour of all this runs under Wine in `wine.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::msi::{build_msi, msiinfo_export, table, verify_signature, TestCert};
use e2e::pe::{self, Pe};
use e2e::{need_tools, run_ok, wait_for, windows_exe};

/// `till-agent-cli.exe` beside the cross-built `till-agent.exe`.
pub fn windows_cli_exe() -> PathBuf {
    let exe = windows_exe();
    let cli = exe.with_file_name("till-agent-cli.exe");
    assert!(
        cli.exists(),
        "{} not found: cargo build -p till-agent --target x86_64-pc-windows-gnu builds both exes",
        cli.display()
    );
    cli
}

/// The three manifest settings, each read from the parsed XML (not a text search).
fn check_manifest(exe: &Path, xml: &str) {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{}: manifest XML: {e}", exe.display()));
    let find = |name: &'static str| doc.descendants().filter(move |n| n.tag_name().name() == name);
    let level: Vec<_> = find("requestedExecutionLevel").map(|n| n.attribute("level")).collect();
    assert_eq!(level, [Some("asInvoker")], "{}: execution level", exe.display());
    let dpi: Vec<_> = find("dpiAwareness")
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    assert_eq!(
        dpi.first().and_then(|d| d.split(',').next()).map(str::trim),
        Some("PerMonitorV2"),
        "{}: dpiAwareness {dpi:?}",
        exe.display()
    );
    assert_eq!(
        find("dpiAwareness").next().and_then(|n| n.tag_name().namespace()),
        Some("http://schemas.microsoft.com/SMI/2016/WindowsSettings"),
        "{}: dpiAwareness namespace",
        exe.display()
    );
    let comctl = find("dependentAssembly")
        .flat_map(|d| d.children().filter(|c| c.tag_name().name() == "assemblyIdentity"))
        .find(|a| a.attribute("name") == Some("Microsoft.Windows.Common-Controls"))
        .unwrap_or_else(|| panic!("{}: no common-controls dependency", exe.display()));
    assert_eq!(comctl.attribute("version"), Some("6.0.0.0"), "{}", exe.display());
    assert_eq!(
        comctl.attribute("publicKeyToken"),
        Some("6595b64144ccf1df"),
        "{}",
        exe.display()
    );
}

/// UTF-16LE search in a resource (the version block's strings).
fn has_utf16(data: &[u8], s: &str) -> bool {
    let needle: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    data.windows(needle.len()).any(|w| w == needle.as_slice())
}

fn check_exe(exe: &Path, subsystem: u16, name: &str) {
    let bytes = std::fs::read(exe).unwrap();
    let pe = Pe::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    assert_eq!(pe.subsystem().unwrap(), subsystem, "{}: PE subsystem", exe.display());
    let manifest = pe
        .resource(pe::RT_MANIFEST, 1)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no RT_MANIFEST #1 resource", exe.display()));
    check_manifest(exe, std::str::from_utf8(manifest).expect("manifest is UTF-8"));
    let messages = pe
        .resource(pe::RT_MESSAGETABLE, 1)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no message table", exe.display()));
    let messages = pe::message_table(messages).unwrap();
    assert_eq!(
        messages,
        (1000..=1009).map(|id| (id, "%1\r\n".to_string())).collect::<Vec<_>>(),
        "{}: Event Log messages",
        exe.display()
    );
    let version = pe
        .resource(pe::RT_VERSION, 1)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no version resource", exe.display()));
    assert!(
        has_utf16(version, &format!("{name}.exe")),
        "{}: OriginalFilename",
        exe.display()
    );
    assert!(
        has_utf16(version, env!("CARGO_PKG_VERSION")),
        "{}: version",
        exe.display()
    );
}

#[test]
fn windows_exes_carry_manifest_subsystem_and_messages() {
    check_exe(&windows_exe(), pe::SUBSYSTEM_GUI, "till-agent");
    check_exe(&windows_cli_exe(), pe::SUBSYSTEM_CONSOLE, "till-agent-cli");
    // the reader itself is not vacuous: a Linux binary is refused
    let linux = std::fs::read(e2e::bin("till-agent")).unwrap();
    assert!(Pe::parse(&linux).is_err());
}

fn one<'a>(rows: &'a [BTreeMap<String, String>], what: &str) -> &'a BTreeMap<String, String> {
    assert_eq!(rows.len(), 1, "{what}: {rows:#?}");
    &rows[0]
}

#[test]
fn msi_tables_and_authenticode_signatures() {
    if !need_tools(&["wixl", "msibuild", "msiinfo", "msiextract", "osslsigncode", "openssl"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&work.path().join("cert"), "till-agent-test-signing");
    let other = TestCert::generate(&work.path().join("other"), "someone-else");
    let version = env!("CARGO_PKG_VERSION");
    let msi = build_msi(&windows_exe(), version, &work.path().join("msi"), Some(&cert));

    // --- the service: own process, automatic start, LocalService (README: why), `till-agent.exe service`
    let svc = table(&msi, "ServiceInstall");
    let svc = one(&svc, "ServiceInstall");
    assert_eq!(svc["Name"], "TillAgent");
    assert_eq!(svc["ServiceType"], "16", "SERVICE_WIN32_OWN_PROCESS");
    assert_eq!(svc["StartType"], "2", "SERVICE_AUTO_START");
    assert_eq!(svc["StartName"], r"NT AUTHORITY\LocalService");
    assert_eq!(svc["Arguments"], "service");
    assert_eq!(svc["Component_"], "AgentExe", "registered with the exe it runs");
    let ctl = table(&msi, "ServiceControl");
    let ctl = one(&ctl, "ServiceControl");
    assert_eq!(ctl["Name"], "TillAgent");
    // msidbServiceControlEvent: Start on install 0x1, Stop on install 0x2 / uninstall 0x20, Delete on uninstall 0x80
    assert_eq!(ctl["Event"], (0x01 | 0x02 | 0x20 | 0x80).to_string(), "{ctl:?}");
    assert_eq!(
        ctl["Wait"], "1",
        "msiexec waits for the service to stop before files are replaced"
    );
    let files = table(&msi, "File");
    let names: Vec<&str> = files.iter().map(|f| f["FileName"].as_str()).collect();
    assert_eq!(names, ["till-agent.exe", "till-agent-cli.exe"]);
    // No component lives in a data folder (%ProgramData%, a user's AppData): each one's folder is
    // below Program Files or the Start menu, so no install, upgrade, repair or uninstall touches
    // the till's config, outbox or cache.
    let dirs = table(&msi, "Directory");
    let parent = |d: &str| {
        dirs.iter()
            .find(|r| r["Directory"] == d)
            .map(|r| r["Directory_Parent"].clone())
            .filter(|p| !p.is_empty() && p != d)
    };
    let components = table(&msi, "Component");
    assert!(!components.is_empty(), "no Component table");
    for c in &components {
        let mut chain = vec![c["Directory_"].clone()];
        while let Some(p) = parent(chain.last().unwrap()) {
            assert!(chain.len() < 32, "a folder loop: {chain:?}");
            chain.push(p);
        }
        assert!(
            chain
                .iter()
                .any(|d| d == "ProgramFiles64Folder" || d == "ProgramMenuFolder")
                && !chain.iter().any(|d| d.contains("AppData")),
            "component {} lives in {chain:?}",
            c["Component"]
        );
    }

    // --- properties, launch conditions, upgrade rows
    let props = table(&msi, "Property");
    let prop = |n: &str| props.iter().find(|r| r["Property"] == n).map(|r| r["Value"].clone());
    assert_eq!(prop("ALLUSERS").as_deref(), Some("1"));
    assert_eq!(prop("ProductVersion").as_deref(), Some(version));
    assert_eq!(prop("MsiHiddenProperties").as_deref(), Some("TILL_TOKEN"));
    let upgrade_code = prop("UpgradeCode").expect("UpgradeCode");
    let launch = msiinfo_export(&msi, "LaunchCondition");
    assert!(
        launch.contains(
            r#"Installed OR NOT LANGUAGE OR LANGUAGE="cs" OR LANGUAGE="sk" OR LANGUAGE="hr" OR LANGUAGE="en""#
        ),
        "{launch}"
    );
    let upgrade = table(&msi, "Upgrade");
    let up = upgrade
        .iter()
        .find(|r| r["ActionProperty"] == "WIX_UPGRADE_DETECTED")
        .expect("upgrade row");
    assert_eq!(
        (up["UpgradeCode"].as_str(), up["VersionMin"].as_str()),
        (upgrade_code.as_str(), "")
    );
    assert_eq!(up["VersionMax"], version);
    let attrs: u32 = up["Attributes"].parse().unwrap();
    assert_eq!(
        attrs & 0x200,
        0x200,
        "AllowSameVersionUpgrades: VersionMax inclusive ({attrs:#x})"
    );
    assert_eq!(attrs & 0x2, 0, "the upgrade row removes, not only detects");
    let down = upgrade
        .iter()
        .find(|r| r["ActionProperty"] == "WIX_DOWNGRADE_DETECTED")
        .expect("downgrade row");
    assert_eq!(down["VersionMin"], version);
    let down_attrs: u32 = down["Attributes"].parse().unwrap();
    assert_eq!(down_attrs & 0x100, 0, "same version is an upgrade, not a downgrade");
    let seq = msiinfo_export(&msi, "InstallExecuteSequence");
    for action in [
        "RemoveExistingProducts",
        "StopServices",
        "DeleteServices",
        "InstallServices",
        "StartServices",
    ] {
        assert!(
            seq.lines().any(|l| l.starts_with(&format!("{action}\t"))),
            "{action}\n{seq}"
        );
    }

    // the session apps are sent away (by the service, asked by the installed exe) before InstallValidate
    let ca = table(&msi, "CustomAction");
    let ca = ca
        .iter()
        .find(|r| r["Action"] == "UpgradePrepare")
        .expect("UpgradePrepare");
    assert_eq!(ca["Type"], "98", "exe in a directory (34), exit code ignored (64)");
    assert_eq!(ca["Target"], r#""[INSTALLDIR]till-agent.exe" upgrade-prepare"#);
    let at = |action: &str| -> u32 {
        seq.lines()
            .find_map(|l| l.strip_prefix(&format!("{action}\t")))
            .and_then(|rest| rest.rsplit('\t').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{action} not sequenced\n{seq}"))
    };
    assert!(at("UpgradePrepare") < at("InstallValidate"), "{seq}");
    assert!(
        seq.contains("UpgradePrepare\tWIX_UPGRADE_DETECTED OR REMOVE=\"ALL\"\t"),
        "{seq}"
    );

    // the installer settings are finished as LocalSystem between writing them and starting the service
    let finish = table(&msi, "CustomAction");
    let finish = finish
        .iter()
        .find(|r| r["Action"] == "InstallFinish")
        .expect("InstallFinish");
    assert_eq!(
        finish["Type"], "3154",
        "exe from the File table, deferred, no impersonation, exit code ignored"
    );
    assert_eq!(
        (finish["Source"].as_str(), finish["Target"].as_str()),
        ("TillAgentExe", "install-finish")
    );
    assert!(at("WriteRegistryValues") < at("InstallFinish") && at("InstallFiles") < at("InstallFinish"));
    assert!(at("InstallFinish") < at("StartServices") && at("InstallInitialize") < at("InstallFinish"));
    assert!(at("InstallFinish") < at("InstallFinalize"), "{seq}");
    assert!(seq.contains("InstallFinish\tNOT REMOVE=\"ALL\"\t"), "{seq}");

    // --- registry: Event Log source, installer settings incl. LANGUAGE
    let reg = table(&msi, "Registry");
    let value = |key: &str, name: &str| {
        reg.iter()
            .find(|r| r["Root"] == "2" && r["Key"] == key && r["Name"] == name)
            .map(|r| r["Value"].clone())
    };
    let source = r"SYSTEM\CurrentControlSet\Services\EventLog\Application\TillAgent";
    assert_eq!(
        value(source, "EventMessageFile").as_deref(),
        Some("#%[INSTALLDIR]till-agent.exe"),
        "REG_EXPAND_SZ pointing at the exe's message table"
    );
    assert_eq!(value(source, "TypesSupported").as_deref(), Some("#7"));
    assert_eq!(value(r"Software\TillAgent", "Language").as_deref(), Some("[LANGUAGE]"));
    assert_eq!(
        value(r"Software\TillAgent", "ServerCaFile").as_deref(),
        Some("[SERVER_CA_FILE]")
    );
    assert_eq!(
        value(r"Software\Microsoft\Windows\CurrentVersion\Run", "TillAgent").as_deref(),
        Some(r#""[INSTALLDIR]till-agent.exe" session"#),
        "the session app starts in every session"
    );

    // --- signatures: the MSI, and both exes as packed inside it
    verify_signature(&msi, &cert.pem).unwrap_or_else(|e| panic!("MSI signature: {e}"));
    let err = verify_signature(&msi, &other.pem).expect_err("verifies only against its own certificate");
    assert!(!err.contains("Signature verification: ok"), "{err}");
    let extracted = work.path().join("extracted");
    std::fs::create_dir_all(&extracted).unwrap();
    run_ok(
        "msiextract",
        Command::new("msiextract").arg("-C").arg(&extracted).arg(&msi),
    );
    for name in ["till-agent.exe", "till-agent-cli.exe"] {
        let f = find_file(&extracted, name).unwrap_or_else(|| panic!("{name} not in the MSI"));
        verify_signature(&f, &cert.pem).unwrap_or_else(|e| panic!("{name} signature: {e}"));
    }
    // the unsigned build as it came from cargo does not verify (the check is not vacuous)
    assert!(verify_signature(&windows_exe(), &cert.pem).is_err());
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// `login` at a terminal (here a socat pty, the way a Linux tty or a console works): the prompt
/// is shown and the typed token is not echoed back; the same pty echoes the token typed for
/// `login --token-stdin` (plain line read), so the check can tell the two apart.
#[test]
fn login_reads_the_token_without_echo_on_a_tty() {
    if !need_tools(&["socat"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("agent.toml");
    std::fs::create_dir_all(work.path().join("export")).unwrap();
    std::fs::write(
        &config,
        format!(
            "server_url = \"http://127.0.0.1:9\"\nstore_id = \"S1\"\ntill_id = \"T1\"\nexport_dir = {:?}\n",
            work.path().join("export")
        ),
    )
    .unwrap();
    let token = "tty-secret-7f3a9c";
    let on_pty = |extra: &str| -> String {
        let cmd = format!(
            "{} --config {} login {extra}",
            e2e::bin("till-agent").display(),
            config.display()
        )
        .trim_end()
        .to_string();
        let mut child = Command::new("socat")
            .arg("-")
            .arg(format!("EXEC:{cmd},pty,setsid,ctty,stderr"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        let text = || seen.lock().unwrap().clone();
        // type the token only once the program waits for it (its prompt; `--token-stdin` has none)
        if extra.is_empty() {
            let prompted = wait_for(Duration::from_secs(20), || text().contains("not shown").then_some(()));
            assert!(prompted.is_some(), "no prompt on the tty: {:?}", text());
        }
        let _ = std::io::Write::write_all(&mut stdin, format!("{token}\n").as_bytes());
        // login reads one line and ends; stdin stays open until then (socat stops at its EOF)
        let ended = wait_for(Duration::from_secs(20), || child.try_wait().ok().flatten());
        drop(stdin);
        if ended.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        reader.join().unwrap();
        text()
    };
    let hidden = on_pty("");
    assert!(hidden.contains("Till token"), "no prompt on the tty: {hidden:?}");
    assert!(hidden.contains("not shown"), "{hidden:?}");
    assert!(!hidden.contains(token), "the typed token was echoed: {hidden:?}");
    let echoed = on_pty("--token-stdin");
    assert!(
        echoed.contains(token),
        "the pty does not echo (check is void): {echoed:?}"
    );
}
