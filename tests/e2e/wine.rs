//! The Windows build and its MSI, installed and run under Wine (Debian's wine 8, throwaway prefix).
//!
//! One test function runs the whole life cycle because a Wine prefix takes 30–60 s to create:
//! MSI tables (msiinfo) → silent install with properties → first run (config written, token moved
//! to Credential Manager) → a receipt dropped into the export folder reaches the Linux server-stub →
//! a receipt queued while the server is down survives an upgrade to a newer MSI → an older MSI is
//! refused → uninstall removes the program and the Run value and leaves %ProgramData%\TillAgent.
//!
//! Needs: wine, wixl, msiinfo, x86_64-w64-mingw32-gcc (scripts/setup.sh) and the Windows exe at
//! `<target>/x86_64-pc-windows-gnu/debug/till-agent.exe` (scripts/test.sh builds it before the
//! tests; `TILL_WINDOWS_EXE` overrides). Skips, saying why, only when wine itself is absent.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{
    add_till, bin_dir, find_window, fixture, need_tools, repo_root, run_ok, start_server, wait_for, win_path,
    windows_exe, Proc, Wine,
};

const STORE: &str = "CZ-PRG-07";
const TILL: &str = "T3";
const RUN_KEY: &str = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run";
const SETTINGS_KEY: &str = r"HKLM\Software\TillAgent";
const PROGRAM_DIR: &str = "Program Files/TillAgent";
const DATA_DIR: &str = "ProgramData/TillAgent";

/// `scripts/build-msi.sh --exe … --version … --out …` → the MSI's path.
fn build_msi(exe: &Path, version: &str, out: &Path) -> PathBuf {
    let o = run_ok(
        "scripts/build-msi.sh",
        Command::new(repo_root().join("scripts/build-msi.sh"))
            .arg("--exe")
            .arg(exe)
            .arg("--version")
            .arg(version)
            .arg("--out")
            .arg(out),
    );
    let msi = PathBuf::from(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .expect("msi path")
            .trim(),
    );
    assert!(msi.exists(), "{} missing", msi.display());
    msi
}

fn msiinfo_export(msi: &Path, table: &str) -> String {
    let o = run_ok(
        &format!("msiinfo export {table}"),
        Command::new("msiinfo").arg("export").arg(msi).arg(table),
    );
    String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n")
}

/// Rows of an exported table (the first three lines are column names, types and the key line).
fn rows(table_text: &str) -> Vec<Vec<String>> {
    table_text
        .lines()
        .skip(3)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// `till-agent.exe status --json` (run inside the prefix).
fn status(wine: &Wine) -> serde_json::Value {
    let o = run_ok(
        "till-agent.exe status --json",
        wine.agent(&["status", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {text}"))
}

fn wait_status(
    wine: &Wine,
    log: &Path,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status(wine);
        if ok(&s) {
            return s;
        }
        if start.elapsed() > timeout {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log_text
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "timed out waiting for {what}; last status: {s:#}\nagent stderr ({}):\n{}",
                log.display(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
}

/// A receipt file in the protocol JSON shape, written the way a POS does (temp name, then rename).
/// Run the installed agent headless (stderr to `log`) until `sent` items are sent and none is
/// queued or dead-lettered; then stop it.
fn run_until_sent(wine: &Wine, log: &Path, what: &str, sent: u64) {
    let mut agent = Proc::spawn(
        "till-agent.exe run --headless",
        wine.agent(&["run", "--headless"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap()),
    );
    let s = wait_status(wine, log, what, Duration::from_secs(90), |s| {
        s["sent"].as_u64() >= Some(sent) && s["queue_depth"].as_u64() == Some(0)
    });
    assert_eq!(s["dead_letters"].as_u64(), Some(0), "{s:#}");
    agent.kill();
    wine.wait_idle();
}

fn drop_receipt(export: &Path, receipt_no: &str) {
    let body = serde_json::json!({
        "pos_receipt_no": receipt_no,
        "issued_at": "2026-11-23T10:00:00+01:00",
        "total": "21.50",
        "lines": [
            { "sku": "1001", "name": "Káva zrnková 250 g", "quantity": 2, "unit_price": "7.90", "line_total": "15.80", "vat_rate": "21", "kind": "sale" },
            { "sku": "2002", "name": "Rohlík", "quantity": 3, "unit_price": "1.90", "line_total": "5.70", "vat_rate": "12", "kind": "sale" }
        ]
    });
    let tmp = export.join(format!(".{receipt_no}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&body).unwrap()).unwrap();
    std::fs::rename(&tmp, export.join(format!("{receipt_no}.json"))).unwrap();
}

/// (VmRSS, RssAnon) of a process in KiB.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

#[test]
fn wine_msi_install_run_upgrade_uninstall() {
    if !need_tools(&[
        "wine",
        "wixl",
        "msiinfo",
        "x86_64-w64-mingw32-gcc",
        "wineserver",
        "Xvfb",
        "xdpyinfo",
        "xdotool",
        "import",
        "convert",
    ]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let exe = windows_exe();

    // --- two MSIs from the same exe: the Cargo.toml version and a newer one
    let v1 = env!("CARGO_PKG_VERSION").to_string();
    let mut parts: Vec<u32> = v1.split('.').map(|p| p.parse().unwrap()).collect();
    parts[2] += 1;
    let v2 = format!("{}.{}.{}", parts[0], parts[1], parts[2]);
    let msi1 = build_msi(&exe, &v1, &work.path().join("msi1"));
    let msi2 = build_msi(&exe, &v2, &work.path().join("msi2"));
    let size = std::fs::metadata(&msi1).unwrap().len();
    eprintln!(
        "figure: MSI size {} bytes ({:.1} MiB; exe {} bytes, debug build)",
        size,
        size as f64 / 1048576.0,
        std::fs::metadata(&exe).unwrap().len()
    );

    // --- the MSI's tables
    let props = msiinfo_export(&msi1, "Property");
    let prop = |name: &str| rows(&props).into_iter().find(|r| r[0] == name).map(|r| r[1].clone());
    assert_eq!(prop("ALLUSERS").as_deref(), Some("1"), "per-machine install\n{props}");
    assert_eq!(prop("ProductVersion").as_deref(), Some(v1.as_str()));
    assert_eq!(
        prop("MsiHiddenProperties").as_deref(),
        Some("TILL_TOKEN"),
        "the token must stay out of MSI logs"
    );
    let upgrade_code = prop("UpgradeCode").expect("UpgradeCode");
    assert_eq!(
        msiinfo_export(&msi2, "Property")
            .lines()
            .find(|l| l.starts_with("UpgradeCode\t"))
            .map(|l| l[12..].to_string()),
        Some(upgrade_code.clone()),
        "fixed UpgradeCode"
    );
    let upgrade = rows(&msiinfo_export(&msi1, "Upgrade"));
    // UpgradeCode VersionMin VersionMax Language Attributes Remove ActionProperty
    assert!(
        upgrade
            .iter()
            .any(|r| r[0] == upgrade_code && r[1].is_empty() && r[2] == v1 && r[6] == "WIX_UPGRADE_DETECTED"),
        "older versions are upgraded: {upgrade:?}"
    );
    assert!(
        upgrade
            .iter()
            .any(|r| r[0] == upgrade_code && r[1] == v1 && r[6] == "WIX_DOWNGRADE_DETECTED"),
        "newer versions are detected: {upgrade:?}"
    );
    let launch = msiinfo_export(&msi1, "LaunchCondition");
    assert!(
        launch.contains("NOT WIX_DOWNGRADE_DETECTED\tA newer version of Till Agent is already installed"),
        "{launch}"
    );
    let seq = msiinfo_export(&msi1, "InstallExecuteSequence");
    assert!(
        seq.lines().any(|l| l.starts_with("RemoveExistingProducts\t")),
        "major upgrade removes the old product\n{seq}"
    );
    let registry = rows(&msiinfo_export(&msi1, "Registry"));
    // Registry Root Key Name Value Component_ ; Root 2 = HKLM
    assert!(
        registry.iter().any(|r| r[1] == "2"
            && r[2] == r"Software\Microsoft\Windows\CurrentVersion\Run"
            && r[3] == "TillAgent"
            && r[4] == r#""[INSTALLDIR]till-agent.exe" run"#),
        "HKLM Run autostart: {registry:?}"
    );
    for (name, value) in [
        ("ServerUrl", "[SERVER_URL]"),
        ("StoreId", "[STORE_ID]"),
        ("TillId", "[TILL_ID]"),
        ("ExportDir", "[EXPORT_DIR]"),
        ("TillToken", "[TILL_TOKEN]"),
    ] {
        assert!(
            registry
                .iter()
                .any(|r| r[1] == "2" && r[2] == r"Software\TillAgent" && r[3] == name && r[4] == value),
            "{name}: {registry:?}"
        );
    }
    let files = rows(&msiinfo_export(&msi1, "File"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0][2], "till-agent.exe");
    assert_eq!(
        files[0][3],
        std::fs::metadata(&exe).unwrap().len().to_string(),
        "the exe's size"
    );
    let dirs = rows(&msiinfo_export(&msi1, "Directory"));
    assert!(
        dirs.iter()
            .any(|r| r[0] == "INSTALLDIR" && r[1] == "ProgramFiles64Folder" && r[2] == "TillAgent"),
        "{dirs:?}"
    );
    assert!(
        !dirs.iter().any(|r| r[0].contains("CommonAppData")),
        "no component may live in ProgramData: {dirs:?}"
    );
    let shortcuts = rows(&msiinfo_export(&msi1, "Shortcut"));
    assert!(
        shortcuts
            .iter()
            .any(|r| r[1] == "ProgramMenuFolder" && r[2] == "Till Agent" && r[4] == "[INSTALLDIR]till-agent.exe"),
        "{shortcuts:?}"
    );
    let suminfo = run_ok("msiinfo suminfo", Command::new("msiinfo").arg("suminfo").arg(&msi1));
    assert!(
        String::from_utf8_lossy(&suminfo.stdout).contains("Template: x64;1033"),
        "64-bit package"
    );

    // --- the server and this till's token
    let mut server = start_server(work.path());
    let token = add_till(&server.db, STORE, TILL);
    assert!(token.len() >= 16, "token {token:?}");

    // --- prefix + silent install with every property
    let (_xvfb, display) = start_xvfb();
    let wine = Wine::create(work.path(), &display);
    let export = work.path().join("pos-export");
    std::fs::create_dir_all(&export).unwrap();
    let server_url = server.url.clone();
    let st = wine.msiexec(
        &[
            "/i",
            "/qn",
            &format!("SERVER_URL={server_url}"),
            &format!("STORE_ID={STORE}"),
            &format!("TILL_ID={TILL}"),
            &format!("EXPORT_DIR={}", win_path(&export)),
            &format!("TILL_TOKEN={token}"),
        ],
        &msi1,
    );
    assert!(st.success(), "msiexec /i failed: {st}");
    let installed = wine.drive_c().join(PROGRAM_DIR).join("till-agent.exe");
    assert!(installed.exists(), "{} missing", installed.display());
    assert_eq!(
        wine.reg_value(RUN_KEY, "TillAgent").as_deref(),
        Some(r#""C:\Program Files\TillAgent\till-agent.exe" run"#),
        "autostart for every user"
    );
    assert_eq!(wine.reg_value(SETTINGS_KEY, "StoreId").as_deref(), Some(STORE));
    assert!(
        wine.reg_value(SETTINGS_KEY, "TillToken").is_some(),
        "token handed over through the registry"
    );
    // wine's msi puts per-machine shortcuts into the user's Start menu (Windows uses the all-users one)
    let shortcut_found = ["ProgramData/Microsoft/Windows/Start Menu/Programs/Till Agent.lnk"]
        .iter()
        .map(|p| wine.drive_c().join(p))
        .chain(
            std::fs::read_dir(wine.drive_c().join("users"))
                .unwrap()
                .flatten()
                .map(|u| {
                    u.path()
                        .join("AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Till Agent.lnk")
                }),
        )
        .any(|p| p.exists());
    assert!(shortcut_found, "Start-menu shortcut");
    let version = run_ok(
        "till-agent.exe version",
        wine.agent(&["--version"]).stdout(Stdio::piped()),
    );
    assert!(
        String::from_utf8_lossy(&version.stdout).contains(&v1),
        "CLI prints to the caller's console/pipe: {:?}",
        version
    );

    // --- first run: config from the installer settings, token into Credential Manager
    let data = wine.drive_c().join(DATA_DIR);
    let config = data.join("agent.toml");
    let log1 = work.path().join("agent-run1.log");
    let mut agent = Proc::spawn(
        "till-agent.exe run --headless",
        wine.agent(&["run", "--headless"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log1).unwrap()),
    );
    assert!(
        wait_for(Duration::from_secs(60), || config.exists().then_some(())).is_some(),
        "{} not written",
        config.display()
    );
    let toml_text = std::fs::read_to_string(&config).unwrap();
    assert!(
        toml_text.contains(&server_url) && toml_text.contains(STORE) && toml_text.contains(TILL),
        "{toml_text}"
    );
    assert!(!toml_text.contains(&token), "the token must not be in agent.toml");
    assert!(
        wait_for(Duration::from_secs(30), || wine
            .reg_value(SETTINGS_KEY, "TillToken")
            .is_none()
            .then_some(()))
        .is_some(),
        "TillToken still in the registry after the first run"
    );

    // --- a receipt reaches the server
    drop_receipt(&export, "W-0001");
    let s = wait_status(
        &wine,
        &log1,
        "the first receipt to be sent",
        Duration::from_secs(90),
        |s| s["sent"].as_u64() >= Some(1),
    );
    assert_eq!(s["queue_depth"].as_u64(), Some(0), "{s:#}");
    assert_eq!(s["store_id"].as_str(), Some(STORE));
    assert!(export.join("processed").exists(), "processed/ in the export folder");

    // Idle memory of the installed exe, beside a raw baseline: an idle `cmd.exe` in the same prefix
    // (what any Windows process costs under wine). A figure, not an assertion.
    std::thread::sleep(Duration::from_secs(5));
    let mut baseline = Proc::spawn(
        "wine cmd.exe (baseline)",
        wine.cmd("cmd.exe").stdin(Stdio::piped()).stdout(Stdio::null()),
    );
    std::thread::sleep(Duration::from_secs(3));
    if let (Some((rss, anon)), Some((brss, banon))) = (rss_kib(agent.child.id()), rss_kib(baseline.child.id())) {
        let mib = |k: u64| k as f64 / 1024.0;
        eprintln!(
            "figure: idle memory under wine: till-agent.exe run --headless RSS {:.1} MiB (anon {:.1} MiB); baseline idle cmd.exe RSS {:.1} MiB (anon {:.1} MiB)",
            mib(rss), mib(anon), mib(brss), mib(banon)
        );
    }
    baseline.kill();

    // --- server down: the next receipt is queued, then the agent stops
    server.kill();
    drop_receipt(&export, "W-0002");
    wait_status(
        &wine,
        &log1,
        "the second receipt to be queued",
        Duration::from_secs(60),
        |s| s["queue_depth"].as_u64() == Some(1),
    );
    agent.kill();
    wine.wait_idle();

    // --- upgrade to the newer MSI (no properties): config, queue and token survive
    let outbox = data.join("outbox.db");
    assert!(outbox.exists());
    let st = wine.msiexec(&["/i", "/qn"], &msi2);
    assert!(st.success(), "upgrade failed: {st}");
    assert!(installed.exists(), "exe after upgrade");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        toml_text,
        "upgrade must keep agent.toml"
    );
    assert!(
        wine.reg_value(RUN_KEY, "TillAgent").is_some(),
        "Run value after upgrade"
    );
    assert_eq!(
        status(&wine)["queue_depth"].as_u64(),
        Some(1),
        "upgrade must keep the queue"
    );
    let uninstall_keys = run_ok(
        "reg query Uninstall",
        wine.cmd("reg")
            .args([
                "query",
                r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall",
                "/s",
            ])
            .stdout(Stdio::piped()),
    );
    let uninstall_text = String::from_utf8_lossy(&uninstall_keys.stdout).replace("\r\n", "\n");
    // one block per product key: "HKEY_…\{code}" followed by its values
    let blocks: Vec<&str> = uninstall_text
        .split("HKEY_")
        .filter(|b| b.lines().any(|l| l.trim() == "DisplayName    REG_SZ    Till Agent"))
        .collect();
    assert_eq!(
        blocks.len(),
        1,
        "exactly one Till Agent product after the upgrade:\n{uninstall_text}"
    );
    let version_line = blocks[0]
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("DisplayVersion"))
        .unwrap_or_default();
    assert!(
        version_line.ends_with(&v2),
        "installed version after the upgrade: {version_line:?}"
    );

    // --- an older MSI is refused
    let st = wine.msiexec(&["/i", "/qn"], &msi1);
    assert!(!st.success(), "installing the older MSI over the newer one must fail");
    assert!(installed.exists());

    // --- the queued receipt is delivered after the upgrade, with the token from Credential Manager
    server.restart();
    run_until_sent(
        &wine,
        &work.path().join("agent-run2.log"),
        "the queued receipt to be sent after the upgrade",
        2,
    );

    // --- token rotation by support staff: the server issues this till a new token (the old one
    // stops working at once), `till-agent.exe login --token-stdin` puts it into Credential
    // Manager, and the next receipt is delivered with it
    let token2 = add_till(&server.db, STORE, TILL);
    assert!(token2.len() >= 16 && token2 != token, "new token {token2:?}");
    let mut login = wine
        .agent(&["login", "--token-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wine till-agent.exe login");
    login
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{token2}\n").as_bytes())
        .unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("till token stored"),
        "login: {out:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&token2),
        "login printed the token"
    );
    wine.wait_idle();
    drop_receipt(&export, "W-0003");
    run_until_sent(
        &wine,
        &work.path().join("agent-run3.log"),
        "a receipt sent with the token stored by `login`",
        3,
    );
    // --- the installer's TillToken back in HKLM (as it stays when a standard user's agent cannot
    // delete it): imported once already, so a start leaves the credential store alone and the
    // next receipt still goes out with the token from `login` (the old one is revoked: a
    // re-import would make every send fail with 401)
    run_ok(
        "reg add TillToken (left over)",
        wine.cmd("reg")
            .args(["add", SETTINGS_KEY, "/v", "TillToken", "/d", &token, "/f"]),
    );
    drop_receipt(&export, "W-0004");
    run_until_sent(
        &wine,
        &work.path().join("agent-run4.log"),
        "a receipt sent with the login token although the installer's old token is back in HKLM",
        4,
    );

    // --- the installed Windows build's popup renders under wine + Xvfb
    popup_screenshot(&wine, work.path());

    // --- uninstall: program files and Run value gone, data folder kept
    let st = wine.msiexec(&["/x", "/qn"], &msi2);
    assert!(st.success(), "uninstall failed: {st}");
    assert!(!installed.exists(), "till-agent.exe left after uninstall");
    assert!(
        wine.reg_value(RUN_KEY, "TillAgent").is_none(),
        "Run value left after uninstall"
    );
    assert!(
        config.exists() && outbox.exists(),
        "uninstall must leave {}",
        data.display()
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), toml_text);

    // --- the token is nowhere in plain text: not in HKLM\Software, not in the data folder
    let hklm = run_ok(
        "reg query HKLM\\Software /s",
        wine.cmd("reg")
            .args(["query", r"HKLM\Software", "/s"])
            .stdout(Stdio::piped()),
    );
    let hklm = String::from_utf8_lossy(&hklm.stdout);
    assert!(
        hklm.contains(r"HKEY_LOCAL_MACHINE\Software\Microsoft"),
        "reg query output looks wrong"
    );
    assert!(!hklm.contains(&token), "the till token is still in HKLM\\Software");
    // …nor anywhere else in the prefix (msiexec caches, logs, system.reg) except user.reg, where wine
    // keeps its Credential Manager (encrypted there, DPAPI on Windows).
    wine.wait_idle();
    let _ = wine.server_cmd().arg("-k").status(); // flush the registry files
    for t in [&token, &token2] {
        let grep = Command::new("grep")
            .args(["-rlaF", "--exclude=user.reg", t])
            .arg(wine.prefix.path())
            .output()
            .expect("grep");
        let hits = String::from_utf8_lossy(&grep.stdout);
        assert!(hits.trim().is_empty(), "a till token is in plain text in: {hits}");
    }
    let user_reg = std::fs::read(wine.prefix.path().join("user.reg")).unwrap_or_default();
    eprintln!(
        "wine Credential Manager: token {} in user.reg",
        if user_reg.windows(token.len()).any(|w| w == token.as_bytes()) {
            "IN PLAIN TEXT"
        } else {
            "not in plain text"
        }
    );
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap();
        for t in [&token, &token2] {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "a till token is in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Our own Xvfb (the harness's: a display Xvfb picks itself, no collisions with parallel tests).
fn start_xvfb() -> (e2e::Xvfb, String) {
    let x = e2e::start_xvfb(1280, 1024);
    let display = x.display.clone();
    (x, display)
}

/// `popup-demo` of the installed exe on Xvfb: the Win32 popup window appears (through wine's X11
/// driver), shows the quote's text, and a screenshot is kept in `<target>/debug/wine-screenshots/`.
fn popup_screenshot(wine: &Wine, work: &Path) {
    let d = wine.display.clone();
    let (out, err) = (work.join("popup.out"), work.join("popup.err"));
    let quote = win_path(&fixture("ui/quote-customer-cs.json"));
    let mut cmd = wine.agent(&["popup-demo", "--quote", &quote, "--lang", "cs"]);
    cmd.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let _popup_proc = Proc::spawn("till-agent.exe popup-demo", &mut cmd);
    let xdo = |args: &[&str]| -> String {
        let o = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &d)
            .output()
            .expect("xdotool");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let win = wait_for(Duration::from_secs(90), || {
        find_window(&d, "till-agent popup").map(|w| w.to_string())
    })
    .unwrap_or_else(|| {
        panic!(
            "the popup window never appeared under wine; agent stderr:\n{}",
            std::fs::read_to_string(&err).unwrap_or_default()
        )
    });
    std::thread::sleep(Duration::from_millis(1500)); // first paint + fit-to-content
                                                     // "Window 123\n  Position: 548,629 (screen: 0)\n  Geometry: 716x339"
    let geo = xdo(&["getwindowgeometry", &win]);
    let nums = |key: &str, sep: char| -> (i64, i64) {
        let l = geo
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("{geo}"));
        let v = l.split_once(':').unwrap().1.split_whitespace().next().unwrap();
        let (a, b) = v.split_once(sep).unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let ((x, y), (w, h)) = (nums("Position", ','), nums("Geometry", 'x'));
    assert!(w >= 300 && h >= 150, "popup size {w}x{h}");
    // Bottom-right, 16 px from the right and 56 from the bottom of the desktop (= the Xvfb screen;
    // a prefix made without a display gets a 1024x768 desktop instead).
    assert_eq!(
        (x + w, y + h),
        (1280 - 16, 1024 - 56),
        "popup not in the bottom-right corner: {x},{y} {w}x{h}"
    );

    let shots = bin_dir().join("wine-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("popup-windows-cs.png");
    let o = Command::new("import")
        .args(["-window", "root"])
        .arg(&shot)
        .env("DISPLAY", &d)
        .status()
        .expect("import");
    assert!(o.success(), "import failed");
    let colours = Command::new("convert")
        .arg(&shot)
        .args([
            "-crop",
            &format!("{w}x{h}+{x}+{y}"),
            "+repage",
            "-format",
            "%k",
            "info:",
        ])
        .output()
        .expect("convert");
    let colours: u32 = String::from_utf8_lossy(&colours.stdout)
        .trim()
        .parse()
        .expect("colour count");
    assert!(
        colours > 20,
        "the popup area looks blank under wine ({colours} colours)"
    );
    let line = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().expect("popup JSON line")).unwrap();
    assert_eq!(v["title"], "Jiří Čermák Žďárský");
    eprintln!(
        "screenshot (Windows build under wine): {} ({colours} colours in the popup)",
        shot.display()
    );
}
