//! End-to-end: the service / session split on Linux over its Unix socket — the same code and
//! protocol as the Windows service and its named pipe. Real `till-agent service --console`,
//! real `till-agent session --headless` with a socat pty as the card reader, the real server.
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::*;

fn service(cfg: &std::path::Path, token: &str, log: &std::path::Path) -> Proc {
    Proc::spawn(
        "till-agent service",
        Command::new(bin("till-agent"))
            .args(["--config", cfg.to_str().unwrap(), "service", "--console"])
            .env("TILL_AGENT_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap()),
    )
}

/// One request on the service's socket, as a session app sends it; the answer line.
fn ask(sock: &std::path::Path, req: &str) -> serde_json::Value {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    writeln!(s, r#"{{"id":7,"req":{req}}}"#).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// A subscribed connection to the service's socket, as a session app holds it.
struct Subscriber {
    w: std::os::unix::net::UnixStream,
    r: BufReader<std::os::unix::net::UnixStream>,
    seen: Vec<String>,
}

impl Subscriber {
    fn new(sock: &std::path::Path) -> Subscriber {
        let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut sub = Subscriber {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            seen: Vec::new(),
        };
        sub.send(1, r#"{"req":"subscribe"}"#);
        sub.until(|v| v["resp"]["resp"] == "subscribed");
        sub
    }

    fn send(&mut self, id: u64, req: &str) {
        writeln!(self.w, r#"{{"id":{id},"req":{req}}}"#).unwrap();
    }

    /// The next line (answer or event) that `ok` accepts; panics with what came instead.
    fn until(&mut self, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(n) if n > 0 => {}
                r => panic!("no matching line ({r:?}); got:\n{}", self.seen.join("")),
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if let Some(m) = v["resp"]["message"].as_str() {
                panic!("the service refused: {m}");
            }
            self.seen.push(line);
            if ok(&v) {
                return v;
            }
        }
    }
}

#[test]
fn service_syncs_alone_and_a_session_app_gets_quotes_reconnects_and_exits_for_upgrade() {
    if !need_tools(&["socat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = dir.path().join("till");
    let socat = Socat::start(dir.path());
    let config = AgentToml::new(&server.url)
        .language(None)
        .wedge(false)
        .serial(SerialToml::port(&socat.b))
        .write(&till.join("agent.toml"));
    let export = till.join("export");
    let sock = till.join("till-agent.sock");
    let log = till.join("service.stderr");

    // 1. The service alone (nobody logged on): a receipt reaches the server.
    std::fs::create_dir_all(&export).unwrap();
    let mut svc = service(&config, &token, &log);
    let drop_file = |name: &str, no: u32, card: Option<&str>| {
        let card = card.map(|c| format!("\"card\": \"{c}\",")).unwrap_or_default();
        let body = format!(
            r#"{{"pos_receipt_no": "SPLIT-{no}", "issued_at": "{}", "total": "10.50", {card}
  "lines": [ {{"name": "Rohlík", "quantity": "1", "unit_price": "10.50", "line_total": "10.50", "vat_rate": "12", "kind": "sale"}} ] }}"#,
            chrono::Local::now().fixed_offset().format("%Y-%m-%dT%H:%M:%S%:z")
        );
        std::fs::write(export.join(format!("{name}.tmp")), body).unwrap();
        std::fs::rename(export.join(format!("{name}.tmp")), export.join(name)).unwrap();
    };
    assert!(
        wait_for(Duration::from_secs(15), || export.is_dir().then_some(())).is_some(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop_file("r1.json", 1, None);
    assert!(
        wait_for(Duration::from_secs(20), || {
            (server_count(
                &server.db,
                "SELECT count(*) FROM receipts WHERE pos_receipt_no='SPLIT-1'",
            ) == 1)
                .then_some(())
        })
        .is_some(),
        "receipt not delivered by the service alone:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The socket admits the owner and its group only.
    assert_eq!(
        std::fs::metadata(&sock)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap(),
        0o660
    );
    // A request that is not one is answered with what is wrong, and the service goes on.
    let v = ask(&sock, r#"{"req":"launch"}"#);
    assert!(v["resp"]["message"].as_str().unwrap().contains("launch"), "{v}");
    let v = ask(&sock, r#"{"req":"status"}"#);
    assert_eq!(v["resp"]["resp"], "status", "{v}");
    assert_eq!(v["resp"]["start_error"], serde_json::Value::Null, "{v}");

    // 2. The session app (no token, no database access): a scan gives the customer's popup,
    //    computed by the service; the next card-less receipt gets the card.
    let session_log = till.join("session.stderr");
    // The session's temp folder (the relauncher's copy goes there).
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut session = Lines::spawn(
        "till-agent session",
        Command::new(bin("till-agent"))
            .args(["--config", config.to_str().unwrap(), "session", "--headless"])
            .env_remove("TILL_AGENT_TOKEN")
            .env("TILL_AGENT_LOG", "info")
            .env("TMPDIR", &tmp)
            .stderr(std::fs::File::create(&session_log).unwrap()),
    );
    let scan_until_popup = |session: &mut Lines, what: &str| {
        for _ in 0..10 {
            socat.write(format!("{DEMO_CARD}\r").as_bytes());
            if let Some(v) = session.wait(Duration::from_secs(3), |v| v["kind"] == "customer") {
                return v;
            }
        }
        panic!(
            "{what}: no customer popup\nstdout:\n{}\nsession:\n{}\nservice:\n{}",
            session.transcript(),
            std::fs::read_to_string(&session_log).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    let v = scan_until_popup(&mut session, "first scan");
    assert!(v.to_string().contains("0018"), "{v}");
    drop_file("r2.json", 2, None);
    assert!(
        wait_for(Duration::from_secs(20), || {
            (server_count(
                &server.db,
                &format!("SELECT count(*) FROM receipts WHERE pos_receipt_no='SPLIT-2' AND card='{DEMO_CARD}'"),
            ) == 1)
                .then_some(())
        })
        .is_some(),
        "the scan in the session did not reach the receipt"
    );

    // The CLI asks the service too (no token, no cache needed), and `doctor` names the service.
    let out = Command::new(bin("till-agent"))
        .args(["--config", config.to_str().unwrap(), "quote", DEMO_CARD])
        .env_remove("TILL_AGENT_TOKEN")
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && se.contains("quote from the till-agent service"),
        "{so}\n{se}"
    );
    assert!(so.contains("customer"), "{so}");
    let out = Command::new(bin("till-agent"))
        .args(["--config", config.to_str().unwrap(), "doctor"])
        .env("TILL_AGENT_TOKEN", &token)
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(
        doc.contains("till-agent service") && doc.contains("1 session app(s); access 0660"),
        "{doc}"
    );

    // The search box and the tag form of a session app, as it sends them (`session::forward`):
    // the service runs the agent's own search (a phone number → the customer's quote, to the
    // session that asked) and queues the tag in ITS outbox, which delivers it once.
    let mut sub = Subscriber::new(&sock);
    sub.send(2, r#"{"req":"find","request_id":"find-e2e-1","query":"601 111 222"}"#);
    let v = sub.until(|v| v["event"]["event"] == "lookup" && v["event"]["lookup"]["request_id"] == "find-e2e-1");
    assert!(v["event"]["lookup"]["problem"].is_null(), "{v}");
    let found = &v["event"]["found"];
    assert_eq!(found["scan"]["source"], "search", "{v}");
    assert_eq!(found["quote"]["kind"], "customer", "{v}");
    assert_eq!(found["quote"]["quote"]["display_name"], "Jiří Dvořák", "{v}");
    assert!(found["quote"]["card"].as_str().unwrap().ends_with("0018"), "{v}");
    sub.send(3, r#"{"req":"find","request_id":"find-e2e-2","query":"nikdo@x.cz"}"#);
    let v = sub.until(|v| v["event"]["lookup"]["request_id"] == "find-e2e-2");
    assert_eq!(v["event"]["lookup"]["problem"]["problem"], "not_found", "{v}");
    assert!(v["event"]["found"].is_null(), "{v}");
    sub.send(
        4,
        r#"{"req":"tag","request_id":"tag-e2e-1","form":{"receipt":"SPLIT-T1","card":"","date":"","total":"x"}}"#,
    );
    let v = sub.until(|v| v["event"]["event"] == "tag" && v["event"]["request_id"] == "tag-e2e-1");
    let fields: Vec<&str> = v["event"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["card", "total"], "{v}");
    sub.send(
        5,
        &format!(r#"{{"req":"tag","request_id":"tag-e2e-2","form":{{"receipt":"SPLIT-T2","card":"{DEMO_CARD}","date":"","total":"12,50"}}}}"#),
    );
    let v = sub.until(|v| v["event"]["event"] == "tag" && v["event"]["request_id"] == "tag-e2e-2");
    assert!(
        v["event"]["item_id"].as_str().is_some_and(|i| i.starts_with("tag-")),
        "{v}"
    );
    let tags = "SELECT count(*) FROM receipt_tags WHERE pos_receipt_no='SPLIT-T2'";
    assert!(
        wait_for(Duration::from_secs(20), || (server_count(&server.db, tags) == 1)
            .then_some(()))
        .is_some(),
        "the tag queued by the service did not reach the server:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let queued: i64 = rusqlite::Connection::open(till.join("outbox.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM items WHERE kind='receipt_tag'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 1, "one tag item, in the service's outbox");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server_count(&server.db, tags), 1, "delivered once");
    // The session app's sync-log window asks the service (`session::fetch_sync_log`): the
    // newest rows and the 7-day timeline, the two receipts sent.
    sub.send(6, r#"{"req":"sync_log","limit":500,"hours":168}"#);
    let v = sub.until(|v| v["id"] == 6);
    let rows = v["resp"]["rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["kind"] == "tag"),
        "the tag's line in the service's log: {v}"
    );
    let hours = v["resp"]["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 168);
    let sent: u64 = hours.iter().map(|h| h["sent"].as_u64().unwrap()).sum();
    assert!(sent >= 2, "{:?}", &hours[160..]);
    drop(sub);

    // 3. The service restarts: the session app reconnects by itself.
    svc.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let mut svc = service(&config, &token, &log);
    let v = scan_until_popup(&mut session, "after the service restarted");
    assert!(v.to_string().contains("0018"), "{v}");
    let slog = std::fs::read_to_string(&session_log).unwrap_or_default();
    assert!(slog.contains("cannot connect to the till-agent service"), "{slog}");

    // 4. Exit for upgrade: the session app is told to exit and does.
    let out = run_ok(
        "upgrade-prepare",
        Command::new(bin("till-agent")).args(["--config", config.to_str().unwrap(), "upgrade-prepare"]),
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("told 1 session app(s) to exit") && said.contains("no session app connected"),
        "{said}"
    );
    let st = session
        .exited_within(Duration::from_secs(10))
        .expect("the session app did not exit");
    assert!(st.success(), "{st}");

    // 5. It comes back: a copy in the temp folder waits until the installer stopped the service
    //    and the new one answers, then starts the session app again (same command line).
    let copies = || -> Vec<String> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("till-agent-relaunch-"))
            .collect()
    };
    assert_eq!(copies().len(), 1, "{:?}", copies());
    std::thread::sleep(Duration::from_millis(1500));
    // (99: no answer; the killed service's socket file stays until the new one binds)
    let sessions = || {
        if std::os::unix::net::UnixStream::connect(&sock).is_err() {
            return 99;
        }
        ask(&sock, r#"{"req":"status"}"#)["resp"]["sessions"]
            .as_u64()
            .unwrap_or(99)
    };
    assert_eq!(sessions(), 0, "not back before the service was upgraded");
    svc.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let _svc = service(&config, &token, &log);
    let back = wait_for(Duration::from_secs(30), || (sessions() == 1).then_some(()));
    let slog = std::fs::read_to_string(&session_log).unwrap_or_default();
    assert!(
        back.is_some(),
        "the session app did not come back:\n{slog}\nservice:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        slog.contains("relaunch: the service stopped") && slog.contains("relaunch: started"),
        "{slog}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || copies().is_empty().then_some(())).is_some(),
        "the copy deleted itself: {:?}",
        copies()
    );
    // (the relaunched app: found by the pid the service logged, stopped like a logoff)
    let pid = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| l.contains("session app connected") && !l.contains("relaunch-wait"))
        .and_then(|l| l.rsplit("(pid ").next())
        .and_then(|p| p.split(')').next())
        .map(str::to_string)
        .expect("the relaunched session app in the service log");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

#[test]
fn a_service_that_cannot_start_says_why_on_its_socket_and_starts_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = dir.path().join("till");
    let good = AgentToml::new(&server.url).language(None).wedge(false).render();
    std::fs::create_dir_all(&till).unwrap();
    let config = till.join("agent.toml");
    // the third line broken
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(2, "server_url = 5");
    std::fs::write(&config, lines.join("\n")).unwrap();
    let _svc = service(&config, &token, &till.join("service.stderr"));
    let sock = till.join("till-agent.sock");
    let v = wait_for(Duration::from_secs(15), || {
        sock.exists().then(|| ask(&sock, r#"{"req":"status"}"#))
    })
    .expect("no socket");
    let why = v["resp"]["start_error"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("agent.toml") && why.contains("server_url"), "{v}");
    let v = ask(&sock, r#"{"req":"quote","card":"1900000009000018"}"#);
    assert!(v["resp"]["message"].as_str().unwrap().contains("server_url"), "{v}");
    // Fixed on disk: the service starts within its retry interval, without a restart.
    std::fs::write(&config, good).unwrap();
    let v = wait_for(Duration::from_secs(25), || {
        let v = ask(&sock, r#"{"req":"status"}"#);
        v["resp"]["start_error"].is_null().then_some(v)
    });
    assert!(
        v.is_some(),
        "{}",
        std::fs::read_to_string(till.join("service.stderr")).unwrap_or_default()
    );
}

/// The GUI session app on Xvfb: the hotkey's search box finds the customer by phone through the
/// service and the popup appears; the sync-log window gets the service's rows and timeline.
#[test]
fn gui_session_app_searches_and_shows_the_sync_log_through_the_service() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "xmessage"]) {
        return;
    }
    let xv = start_xvfb(1280, 1024);
    let d = xv.display.as_str();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = Till::new(&dir.path().join("till"), &token, AgentToml::new(&server.url));
    std::fs::copy(
        fixture("agent/demo-receipts/R-1001.json"),
        till.dir.join("export").join("R-1001.json"),
    )
    .unwrap();
    let log = till.dir.join("service.stderr");
    let _svc = service(&till.config, &token, &log);
    let runtime = till.dir.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let gui_log = till.dir.join("gui.stderr");
    let proc = Proc::spawn(
        "till-agent session",
        Command::new(bin("till-agent"))
            .arg("--config")
            .arg(&till.config)
            .arg("session")
            .env_remove("TILL_AGENT_TOKEN")
            .env("DISPLAY", d)
            .env("DBUS_SESSION_BUS_ADDRESS", e2e::session_bus(d))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("LANG", "cs_CZ.UTF-8")
            .env("TILL_AGENT_LOG", "info,till_agent::ui=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&gui_log).unwrap()),
    );
    let agent = GuiAgent {
        display: d.to_string(),
        runtime,
        log: gui_log,
        proc,
    };
    agent.wait_log(Duration::from_secs(30), "tray icon started", "GUI did not start");
    agent.wait_log(
        Duration::from_secs(15),
        "connected to the till-agent service",
        "no link",
    );
    assert!(
        wait_for(Duration::from_secs(30), || (server_count(
            &server.db,
            "SELECT count(*) FROM receipts"
        ) >= 1)
            .then_some(()))
        .is_some(),
        "receipt not synced by the service"
    );
    let pos = start_pos(d);
    agent.open_search(pos.window);
    x_ok(d, "xdotool", &["type", "--delay", "60", "601111222"]);
    x_ok(d, "xdotool", &["key", "Return"]);
    let found = wait_for(Duration::from_secs(15), || {
        agent.last_line(&["popup shown", "\"kind\":\"customer\"", "\"source\":\"search\""])
    })
    .unwrap_or_else(|| {
        panic!(
            "no popup for the phone number in the session app; log:\n{}\nservice:\n{}",
            agent.stderr(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(found.contains("\"title\":\"Jiří Dvořák\""), "{found}");
    // The sync-log window: the service's rows and its 7-day timeline with the receipt sent.
    agent.menu("sync_log");
    let loaded = wait_for(Duration::from_secs(15), || {
        agent.last_line(&["sync log loaded", "the till-agent service"])
    })
    .unwrap_or_else(|| panic!("the sync-log window got nothing; log:\n{}", agent.stderr()));
    let field = |k: &str| -> u64 {
        loaded
            .split(&format!("{k}="))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {loaded}"))
    };
    assert!(field("rows") >= 3, "{loaded}");
    assert_eq!(field("hours"), 168, "{loaded}");
    assert!(field("sent") >= 1, "{loaded}");
    eprintln!("fact: {found}\nfact: {loaded}");
    agent.stop();
}
