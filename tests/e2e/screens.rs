//! What people see, screen by screen, in every language: the real GUI agent under Xvfb opens
//! each window (sync log with its timeline, About, Reader test, Quit confirmation) and
//! `popup-demo` shows the popups (a customer, an unknown card, whose Register button opens the
//! form); a screenshot of each is kept in
//! `<target>/debug/ui-screenshots/screens-*.png`. The agent logs, per screen, whether what it
//! drew fits its window (`screen fit … clipped=…`, egui's laid-out rectangles against the
//! window's): the last word of every screen must be `clipped=false`. And the headless demo
//! (`scripts/demo.sh` without a display) prints a popup line for its demo card.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{
    bin, bin_dir, find_window, fixture, need_tools, repo_root, wait_for, win_info, x, AgentToml, Proc, OFFLINE_URL,
};

fn shot(display: &str, name: &str) -> PathBuf {
    let d = bin_dir().join("ui-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    assert!(x(display, "import", &["-window", "root", p.to_str().unwrap()])
        .status
        .success());
    assert!(
        std::fs::metadata(&p).unwrap().len() > 5_000,
        "{} too small",
        p.display()
    );
    p
}

/// The last `screen fit` word of each screen in a log: screen → clipped.
fn fits(log: &str) -> std::collections::BTreeMap<String, (bool, String)> {
    let mut m = std::collections::BTreeMap::new();
    for l in log.lines().filter(|l| l.contains("screen fit")) {
        let field = |k: &str| {
            l.split(&format!("{k}="))
                .nth(1)
                .map(|r| r.split_whitespace().next().unwrap_or("").trim_matches('"').to_string())
        };
        if let (Some(s), Some(c)) = (field("screen"), field("clipped")) {
            m.insert(s, (c == "true", l.to_string()));
        }
    }
    m
}

fn assert_fits(lang: &str, log: &str, screens: &[&str]) {
    let f = fits(log);
    for s in screens {
        let Some((clipped, line)) = f.get(*s) else {
            panic!("{lang}: screen {s} never reported its fit:\n{log}")
        };
        assert!(!clipped, "{lang}: {s} is drawn outside its window: {line}");
    }
}

struct Lang {
    code: &'static str,
    sync_log: &'static str,
    about: &'static str,
    reader_test: &'static str,
    quit: &'static str,
    /// The register form's title (its ASCII part: xdotool matches that reliably).
    form: &'static str,
    code_form: &'static str,
}

const LANGS: [Lang; 4] = [
    Lang {
        code: "cs",
        sync_log: "Protokol synchronizace",
        about: "O programu",
        reader_test: "Test čtečky",
        quit: "Ukončit",
        form: "^Registrace z",
        code_form: "ze star",
    },
    Lang {
        code: "sk",
        sync_log: "Protokol synchronizácie",
        about: "O programe",
        reader_test: "Test čítačky",
        quit: "Ukončiť",
        form: "^Registr",
        code_form: "zo starej",
    },
    Lang {
        code: "hr",
        sync_log: "Dnevnik sinkronizacije",
        about: "O programu",
        reader_test: "Test čitača",
        quit: "Zatvori program",
        form: "^Registracija kupca",
        code_form: "sa stare",
    },
    Lang {
        code: "en",
        sync_log: "Sync log",
        about: "About",
        reader_test: "Reader test",
        quit: "Quit",
        form: "^Customer registration",
        code_form: "^Code from the old card",
    },
];

fn offline_till(dir: &Path, lang: &str) -> PathBuf {
    let runtime = dir.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    AgentToml::minimal(OFFLINE_URL)
        .language(Some(lang))
        .write(&dir.join("agent.toml"));
    // Receipts that cannot be sent (nothing listens on port 9): the timeline shows them queued.
    for f in ["R-1001.json", "R-1002.json"] {
        std::fs::copy(fixture(&format!("agent/demo-receipts/{f}")), dir.join("export").join(f)).unwrap();
    }
    runtime
}

#[test]
fn every_screen_in_every_language_fits_its_window_and_is_screenshotted() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "import"]) {
        return;
    }
    let xv = e2e::start_xvfb(1280, 1024);
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let unknown = tmp.path().join("quote-unknown.json");
    std::fs::write(
        &unknown,
        r#"{"kind":"unknown_card","card":"1900123456789012","source":"online"}"#,
    )
    .unwrap();
    for lang in &LANGS {
        let l = lang.code;
        // Popups: a customer (offline, with campaign and next tier), an unknown card.
        for (what, quote) in [
            ("customer", fixture("ui/quote-customer-cs.json")),
            ("unknown", unknown.clone()),
        ] {
            let dir = tmp.path().join(format!("popup-{l}-{what}"));
            std::fs::create_dir_all(&dir).unwrap();
            let err = dir.join("err.txt");
            let mut p = Proc::spawn(
                "till-agent popup-demo",
                Command::new(bin("till-agent"))
                    .args([
                        "popup-demo",
                        "--no-tray",
                        "--lang",
                        l,
                        "--quote",
                        quote.to_str().unwrap(),
                    ])
                    .env("DISPLAY", d)
                    .env("XDG_RUNTIME_DIR", &dir)
                    .env("TILL_AGENT_LOG", "info,till_agent::ui=debug")
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&err).unwrap()),
            );
            let log = || std::fs::read_to_string(&err).unwrap_or_default();
            let ok = wait_for(Duration::from_secs(20), || {
                fits(&log()).get("popup").filter(|(c, _)| !c).map(|_| ())
            });
            std::thread::sleep(Duration::from_millis(300));
            shot(d, &format!("screens-popup-{what}-{l}.png"));
            assert!(ok.is_some(), "{l} {what}: the popup never fitted:\n{}", log());
            if what == "unknown" {
                // The Register button opens the form (the cashier's click).
                let popup = wait_for(Duration::from_secs(5), || find_window(d, "till-agent popup"))
                    .unwrap_or_else(|| panic!("{l}: popup window not found"));
                e2e::click(d, popup, &err, "popup.register");
                let form = wait_for(Duration::from_secs(15), || find_window(d, lang.form))
                    .unwrap_or_else(|| panic!("{l}: no register form:\n{}", log()));
                assert!(x(d, "xdotool", &["windowfocus", "--sync", &form.to_string()])
                    .status
                    .success());
                assert!(
                    wait_for(Duration::from_secs(10), || fits(&log()).get("form").map(|_| ())).is_some(),
                    "{l}: form never laid out:\n{}",
                    log()
                );
                std::thread::sleep(Duration::from_millis(500));
                shot(d, &format!("screens-form-register-{l}.png"));
                assert_fits(l, &log(), &["form"]);
                // The keyboard path to the other button: the tray menu entry (here through the
                // single-instance socket, the same path as a tray click) opens the code form.
                let out = Command::new(bin("till-agent"))
                    .args(["popup-demo", "--menu", "migration_code"])
                    .env("DISPLAY", d)
                    .env("XDG_RUNTIME_DIR", &dir)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                assert!(
                    wait_for(Duration::from_secs(15), || find_window(d, lang.code_form)).is_some(),
                    "{l}: the code form did not open from the menu:\n{}",
                    log()
                );
                std::thread::sleep(Duration::from_millis(500));
                shot(d, &format!("screens-form-code-{l}.png"));
                assert_fits(l, &log(), &["form"]);
            }
            p.kill();
            assert_fits(l, &log(), &["popup"]);
        }

        // The GUI agent's windows.
        let dir = tmp.path().join(format!("till-{l}"));
        let runtime = offline_till(&dir, l);
        let err = dir.join("agent.stderr");
        let mut agent = Proc::spawn(
            "till-agent run",
            Command::new(bin("till-agent"))
                .arg("--config")
                .arg(dir.join("agent.toml"))
                .arg("run")
                .env("DISPLAY", d)
                .env("DBUS_SESSION_BUS_ADDRESS", e2e::session_bus(d))
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("TILL_AGENT_TOKEN", "not-used-offline")
                .env("TILL_AGENT_LOG", "info,till_agent::ui=debug")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&err).unwrap()),
        );
        let log = || std::fs::read_to_string(&err).unwrap_or_default();
        assert!(
            wait_for(Duration::from_secs(30), || log()
                .contains("tray icon started")
                .then_some(()))
            .is_some(),
            "{l}: GUI did not start:\n{}",
            log()
        );
        let menu = |id: &str| {
            let out = Command::new(bin("till-agent"))
                .args(["popup-demo", "--menu", id])
                .env("DISPLAY", d)
                .env("XDG_RUNTIME_DIR", &runtime)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{l} menu {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let open = |id: &str, title: &str| {
            menu(id);
            // xdotool matches the ASCII part reliably (titles are UTF-8 `_NET_WM_NAME`).
            let ascii: String = title.chars().take_while(char::is_ascii).collect();
            wait_for(Duration::from_secs(15), || find_window(d, &format!("^{ascii}")))
                .unwrap_or_else(|| panic!("{l}: window {title:?} did not open:\n{}", log()))
        };
        // Queued receipts first, so the timeline has something to show.
        assert!(
            wait_for(Duration::from_secs(20), || log().contains("R-1002.json").then_some(())).is_some(),
            "{}",
            log()
        );
        let sync_log = open("sync_log", lang.sync_log);
        let about = open("about", lang.about);
        std::thread::sleep(Duration::from_millis(800));
        shot(d, &format!("screens-synclog-about-{l}.png"));
        let (a, b) = (win_info(d, sync_log), win_info(d, about));
        assert!(a.apart(&b), "{l}: About {b:?} overlaps the sync log {a:?}");
        let reader = open("reader_test", lang.reader_test);
        // A card at scanner speed and a person typing: lines in the window's language.
        let keys = |delay: &str, codes: &[&str]| {
            let mut args = vec!["key", "--delay", delay];
            args.extend(codes);
            assert!(x(d, "xdotool", &args).status.success());
        };
        keys(
            "8",
            &[
                "10", "18", "19", "19", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "10", "11", "36",
            ],
        );
        keys("150", &["10", "11", "38", "56", "36"]);
        std::thread::sleep(Duration::from_millis(800));
        shot(d, &format!("screens-reader-test-{l}.png"));
        let _ = reader;
        open("quit", lang.quit);
        std::thread::sleep(Duration::from_millis(600));
        shot(d, &format!("screens-quit-{l}.png"));
        let text = log();
        agent.kill();
        assert_fits(l, &text, &["sync_log", "about", "reader_test", "quit"]);
    }
}

/// `scripts/demo.sh` without a display: the server, the agent with a serial reader on a socat
/// pty, the receipts synced, then the demo card's popup as a JSON line on stdout, the unknown
/// card's with Register, and next steps with full paths. Ends by itself (no terminal).
#[test]
fn headless_demo_prints_the_popup_of_its_demo_card() {
    if !need_tools(&["socat"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/demo.sh"))
        .env_remove("DISPLAY")
        .env_remove("DEMO_WAIT")
        .env("DEMO_BIN", bin_dir())
        .env("DEMO_DIR", tmp.path())
        .env("DEMO_PORT", e2e::free_port().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    let popups: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"kind\":"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let customer = popups
        .iter()
        .find(|p| p["kind"] == "customer")
        .unwrap_or_else(|| panic!("no customer popup line:\n{all}"));
    assert_eq!(customer["card"], "1900-****-****-0018");
    assert_eq!(customer["title"], "Jiří Dvořák");
    let unknown = popups
        .iter()
        .find(|p| p["kind"] == "unknown_card")
        .unwrap_or_else(|| panic!("no unknown-card popup line:\n{all}"));
    assert_eq!(unknown["actions"][0]["id"], "register");
    let agent = bin_dir().join("till-agent");
    assert!(
        stdout.contains(&format!(
            "{} --config {}/agent.toml status",
            agent.display(),
            tmp.path().display()
        )),
        "next steps without full paths:\n{all}"
    );
    assert!(stdout.contains("Admin token: demo-admin-"), "{all}");
    // `status` and `log` for people: the backlog line, local times without RFC 3339's `T…Z`.
    assert!(stdout.contains("Queue:                0 waiting"), "{all}");
    let last = stdout
        .lines()
        .find(|l| l.starts_with("Last successful sync: "))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(!last.contains('T') && !last.contains("never"), "{last}");
    let acks: Vec<&str> = stdout.lines().filter(|l| l.contains(" ack ")).collect();
    assert!(!acks.is_empty(), "{all}");
    for l in acks {
        let ts = l.split(" INFO").next().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").is_ok(),
            "{l}"
        );
    }
}
