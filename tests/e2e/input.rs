//! End-to-end: card input. Real pseudo-terminals (socat) as serial readers, including unplug;
//! a real X server (Xvfb) with xdotool typing by keycode on five keyboard layouts; the decoder
//! CLI against every reference row; the payment-card guard over the agent's data folder.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e::*;
use serde_json::Value;

#[test]
fn serial_reader_through_socat_keeps_partial_lines_and_survives_unplug() {
    if !need_tools(&["socat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut socat = Socat::start(dir.path());
    let mut rt = Lines::spawn(
        "reader-test",
        Command::new(bin("till-agent"))
            .args(["reader-test", "--json", "--no-wedge", "--seconds", "60", "--serial"])
            .arg(&socat.b)
            .env("HOME", dir.path()),
    );
    assert!(
        rt.wait(Duration::from_secs(10), |v| is(v, "event", "connected"))
            .is_some(),
        "{}",
        rt.transcript()
    );

    // A line split across a read timeout (100 ms) is kept together.
    socat.write(b"1900-12");
    std::thread::sleep(Duration::from_millis(350));
    socat.write(b"34-5678-9012\r");
    let v = rt
        .wait(Duration::from_secs(5), |v| is(v, "type", "scan"))
        .unwrap_or_else(|| panic!("{}", rt.transcript()));
    assert_eq!(v["class"], "loyalty_card");
    assert_eq!(v["card"], "1900123456789012");

    // Two lines in one write, a barcode with an AIM prefix and a magstripe track.
    socat.write(b"]E05901234123457\r;98700223563013312=0000000000000004120?\r");
    let v = rt.wait(Duration::from_secs(5), |v| is(v, "type", "scan")).unwrap();
    assert_eq!(v["class"], "other", "{v}");
    let v = rt.wait(Duration::from_secs(5), |v| is(v, "type", "scan")).unwrap();
    assert_eq!(v["card"], "98700223563013312", "{v}");

    // The port is configured for CR; a reader set to LF, and one framing its code in STX … ETX,
    // still scan (any line end ends a line).
    socat.write(b"1900-1234-5678-9012\n\x021900123456789012\x03");
    for _ in 0..2 {
        let v = rt
            .wait(Duration::from_secs(5), |v| is(v, "type", "scan"))
            .unwrap_or_else(|| panic!("{}", rt.transcript()));
        assert_eq!(v["card"], "1900123456789012", "{v}");
    }

    // Unplug: the reader notices, waits for the port, and picks it up again when it is back.
    socat.unplug();
    assert!(
        rt.wait(Duration::from_secs(10), |v| is(v, "event", "disconnected"))
            .is_some(),
        "{}",
        rt.transcript()
    );
    std::thread::sleep(Duration::from_millis(600));
    let socat2 = Socat::start(dir.path());
    assert!(
        rt.wait(Duration::from_secs(10), |v| is(v, "event", "connected"))
            .is_some(),
        "{}",
        rt.transcript()
    );
    // In full runs of the suite the first writes after the re-plug were twice seen to give no scan:
    // most likely another test's reader, retrying a dangling link to a /dev/pts number the kernel
    // gave to this socat, opened this port (`Socat::unplug` now removes its links). The point here
    // is that the reader reads the new port at all, so the scanner may send up to 4 times.
    let mut v = None;
    for _ in 0..4 {
        socat2.write(b"1900000009000018\r");
        v = rt.wait(Duration::from_secs(3), |v| is(v, "type", "scan"));
        if v.is_some() {
            break;
        }
    }
    let v = v.unwrap_or_else(|| panic!("no scan after 4 writes to the re-plugged port\n{}", rt.transcript()));
    assert_eq!(v["card"], "1900000009000018");
}

#[test]
fn serial_port_in_use_and_missing_port_are_distinct_errors() {
    if !need_tools(&["socat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socat = Socat::start(dir.path());
    let mut first = Lines::spawn(
        "reader-test",
        Command::new(bin("till-agent"))
            .args(["reader-test", "--json", "--no-wedge", "--seconds", "30", "--serial"])
            .arg(&socat.b)
            .env("HOME", dir.path()),
    );
    assert!(first
        .wait(Duration::from_secs(10), |v| is(v, "event", "connected"))
        .is_some());
    let mut second = Lines::spawn(
        "reader-test-2",
        Command::new(bin("till-agent"))
            .args(["reader-test", "--json", "--no-wedge", "--seconds", "5", "--serial"])
            .arg(&socat.b)
            .env("HOME", dir.path()),
    );
    let v = second
        .wait(Duration::from_secs(10), |v| is(v, "event", "unavailable"))
        .unwrap_or_else(|| panic!("{}", second.transcript()));
    assert!(v["error"].as_str().unwrap().contains("in use"), "{v}");
    let missing = dir.path().join("ttyNOPE");
    let mut third = Lines::spawn(
        "reader-test-3",
        Command::new(bin("till-agent"))
            .args(["reader-test", "--json", "--no-wedge", "--seconds", "5", "--serial"])
            .arg(&missing)
            .env("HOME", dir.path()),
    );
    let v = third
        .wait(Duration::from_secs(10), |v| is(v, "event", "unavailable"))
        .unwrap();
    assert!(v["error"].as_str().unwrap().contains("does not exist"), "{v}");
}

// ------------------------------------------------------------------------------------------
// Keyboard wedge under Xvfb

/// X keycodes (evdev + 8) a US-programmed scanner presses for `text` (digits and `-` only).
fn keycodes(text: &str) -> Vec<String> {
    text.chars()
        .map(|c| match c {
            '1'..='9' => (c as u8 - b'1' + 10).to_string(),
            '0' => "19".into(),
            '-' => "20".into(),
            _ => panic!("{c}"),
        })
        .chain(std::iter::once("36".to_string()))
        .collect()
}

#[test]
fn wedge_under_xvfb_same_card_on_five_layouts_and_no_scan_at_human_speed() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "setxkbmap"]) {
        return;
    }
    let x = start_xvfb(640, 480);
    let dir = tempfile::tempdir().unwrap();
    let mut rt = Lines::spawn(
        "reader-test",
        Command::new(bin("till-agent"))
            .args([
                "reader-test",
                "--json",
                "--seconds",
                "120",
                "--display",
                x.display.as_str(),
            ])
            .env("HOME", dir.path()),
    );
    assert!(
        rt.wait(Duration::from_secs(10), |v| is(v, "type", "ready")).is_some(),
        "{}",
        rt.transcript()
    );
    let codes = keycodes("1900-1234-5678-9012");
    for layout in ["us", "cz", "sk", "hr", "de"] {
        x.run("setxkbmap", &["-display", x.display.as_str(), layout]);
        let q = Command::new("setxkbmap")
            .args(["-display", x.display.as_str(), "-query"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&q.stdout).contains(&format!("layout:     {layout}")),
            "layout {layout} not active"
        );
        // Scanner speed: 8 ms per key.
        let mut args = vec!["key", "--delay", "8"];
        args.extend(codes.iter().map(String::as_str));
        x.run("xdotool", &args);
        let v = rt
            .wait(Duration::from_secs(10), |v| {
                is(v, "type", "scan") || is(v, "type", "not_scan")
            })
            .unwrap_or_else(|| panic!("{layout}: no decision\n{}", rt.transcript()));
        assert_eq!(v["type"], "scan", "{layout}: {v}");
        assert_eq!(v["card"], "1900123456789012", "{layout}: {v}");
        assert_eq!(v["class"], "loyalty_card", "{layout}: {v}");

        // Human speed: 120 ms per key, then Enter. Never a scan.
        let mut args = vec!["key", "--delay", "120"];
        args.extend(codes.iter().map(String::as_str));
        x.run("xdotool", &args);
        let v = rt
            .wait(Duration::from_secs(10), |v| {
                is(v, "type", "scan") || is(v, "type", "not_scan")
            })
            .unwrap_or_else(|| panic!("{layout}: no decision for human typing\n{}", rt.transcript()));
        assert_eq!(v["type"], "not_scan", "{layout}: human typing taken as a scan: {v}");
    }
    // The per-key view shows timings but never which digit was typed.
    let keys: Vec<&String> = rt.seen.iter().filter(|l| l.contains("\"type\":\"key\"")).collect();
    assert!(keys.len() >= 5 * 2 * 20, "{} key lines", keys.len());
    assert!(
        keys.iter().all(|l| !l.contains("KEY_1") && !l.contains("KEY_9")),
        "digits must be masked"
    );
    assert!(keys.iter().any(|l| l.contains("\"gap_ms\"")));
}

#[test]
fn wedge_under_xvfb_dedicated_keyboard_and_device_arrival_removal() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "xinput"]) {
        return;
    }
    let x = start_xvfb(640, 480);
    let dir = tempfile::tempdir().unwrap();
    // xdotool types through the "Virtual core XTEST keyboard" slave: configured as the scanner,
    // its keys are a scan at any speed. A keyboard that arrives later by the configured name is
    // dedicated from its first key too.
    let cfg = AgentToml::minimal(OFFLINE_URL)
        .ids("S", "T1")
        .dedicated(&["x11:Virtual core XTEST keyboard", "Till scanner XTEST keyboard"])
        .write(&dir.path().join("agent.toml"));
    let mut rt = Lines::spawn(
        "reader-test",
        Command::new(bin("till-agent"))
            .arg("--config")
            .arg(&cfg)
            .args([
                "reader-test",
                "--json",
                "--seconds",
                "120",
                "--display",
                x.display.as_str(),
            ])
            .env("HOME", dir.path()),
    );
    assert!(
        rt.wait(Duration::from_secs(10), |v| is(v, "type", "ready")).is_some(),
        "{}",
        rt.transcript()
    );
    let core = rt
        .wait(Duration::from_secs(10), |v| {
            is(v, "type", "device") && v["name"] == "Virtual core XTEST keyboard"
        })
        .unwrap_or_else(|| panic!("XTEST keyboard not listed\n{}", rt.transcript()));
    assert_eq!(core["dedicated"], true, "{core}");

    // Human speed (150 ms per key) from the dedicated keyboard: still a scan.
    let mut args = vec!["key", "--delay", "150"];
    let codes = keycodes("1900-1234-5678-9012");
    args.extend(codes.iter().map(String::as_str));
    x.run("xdotool", &args);
    let v = rt
        .wait(Duration::from_secs(15), |v| {
            is(v, "type", "scan") || is(v, "type", "not_scan")
        })
        .unwrap_or_else(|| panic!("no decision\n{}", rt.transcript()));
    assert_eq!(
        (v["type"].as_str(), v["dedicated"].as_bool(), v["card"].as_str()),
        (Some("scan"), Some(true), Some("1900123456789012")),
        "{v}"
    );

    // Arrival: a new master/slave pair appears (as when a USB scanner is plugged in) ...
    x.run("xinput", &["create-master", "Till scanner"]);
    let added = rt
        .wait(Duration::from_secs(10), |v| {
            is(v, "type", "device") && v["name"] == "Till scanner XTEST keyboard" && v["added"] == true
        })
        .unwrap_or_else(|| panic!("arrival not noticed\n{}", rt.transcript()));
    assert_eq!(added["dedicated"], true, "configured by name: {added}");
    let id = added["id"].clone();
    // ... and removal.
    x.run("xinput", &["remove-master", "Till scanner pointer"]);
    let removed = rt
        .wait(Duration::from_secs(10), |v| {
            is(v, "type", "device") && v["id"] == id && v["added"] == false
        })
        .unwrap_or_else(|| panic!("removal not noticed\n{}", rt.transcript()));
    assert_eq!(removed["name"], "Till scanner XTEST keyboard", "{removed}");
}

// ------------------------------------------------------------------------------------------
// Decoder CLI against every reference row

fn reference_rows(name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture(&format!("input/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn pans_of(expected: &Value) -> Vec<String> {
    ["t1", "t2"]
        .iter()
        .filter_map(|t| expected[t]["pan"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn decode_cli_every_reference_swipe_and_barcode() {
    let dir = tempfile::tempdir().unwrap();
    for r in reference_rows("swipes.tsv")
        .iter()
        .chain(reference_rows("barcodes.tsv").iter())
    {
        let out = Command::new(bin("till-agent"))
            .args(["decode", "--raw", &r[1]])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            r[0],
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let want = match serde_json::from_str::<Value>(&r[2])
            .ok()
            .and_then(|e| e["hint"].as_str().map(str::to_string))
        {
            Some(h) => h,
            None => "barcode".into(),
        };
        let class = v["class"].as_str().unwrap();
        match want.as_str() {
            "payment_card" => {
                assert_eq!(class, "payment_card", "{}", r[0]);
                let exp: Value = serde_json::from_str(&r[2]).unwrap();
                for pan in pans_of(&exp) {
                    assert!(!text.contains(&pan), "{}: PAN printed: {text}", r[0]);
                    assert_eq!(v["last4"], pan[pan.len() - 4..], "{}", r[0]);
                }
            }
            "non_payment_id" => assert_eq!(class, "loyalty_card", "{}: {text}", r[0]),
            "read_error" => assert_eq!(class, "read_error", "{}", r[0]),
            "encrypted" | "malformed" => assert_eq!(class, "other", "{}: {text}", r[0]),
            _ => assert!(
                class == "loyalty_card" || (class == "other" && r[1].contains("5901234123457")),
                "{}: {text}",
                r[0]
            ),
        }
    }
    // A trace file: the scanner trace is a scan, the fast typist's is not.
    let out = Command::new(bin("till-agent"))
        .args(["decode", "--trace"])
        .arg(fixture("input/scanner-8ms.trace"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decisions"][0]["decision"], "scan");
    assert_eq!(v["decisions"][0]["card"], "1900123456789012");
    let out = Command::new(bin("till-agent"))
        .args(["decode", "--trace"])
        .arg(fixture("input/human-fast-typist.trace"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decisions"][0]["decision"], "not_scan", "{v}");
    // A broken trace names line and token.
    std::fs::write(dir.path().join("bad.trace"), "d:KEY_1\nd:KEY_NOPE\n").unwrap();
    let out = Command::new(bin("till-agent"))
        .args(["decode", "--trace"])
        .arg(dir.path().join("bad.trace"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("KEY_NOPE"), "{err}");
}

// ------------------------------------------------------------------------------------------
// The running agent: quotes from scans, and the payment-card guard

/// A scan minutes after the last one gets its quote over the connection the first scan opened: the
/// quote client keeps it while idle (reqwest drops an idle connection after 90 s; to a remote server
/// each scan after a pause then paid a new TCP + TLS handshake). Waits 100 s.
#[test]
fn a_scan_after_a_long_pause_reuses_the_quote_connection() {
    if !need_tools(&["socat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = dir.path().join("till");
    let socat = Socat::start(dir.path());
    let mut agent = Till::new(&till, &token, AgentToml::serial_reader(&server.url, &socat.b)).start_lines(None);
    std::thread::sleep(Duration::from_secs(2));
    let scan = |agent: &mut Lines| {
        let before = agent.seen.len();
        socat.write(format!("{DEMO_CARD}\r").as_bytes());
        let popup = wait_for(Duration::from_secs(20), || {
            while let Ok(l) = agent.rx.try_recv() {
                agent.seen.push(l);
            }
            agent.seen[before..].iter().find(|l| l.contains("0018")).cloned()
        });
        popup.unwrap_or_else(|| panic!("no popup for the card\n{}", agent.transcript()))
    };
    scan(&mut agent);
    let first = tcp_connections_to(agent.pid(), server.port);
    assert!(
        !first.is_empty(),
        "the agent holds no connection to the server after a quote"
    );
    std::thread::sleep(Duration::from_secs(100));
    scan(&mut agent);
    let second = tcp_connections_to(agent.pid(), server.port);
    let new: Vec<&u16> = second.difference(&first).collect();
    assert!(
        new.is_empty(),
        "the scan after 100 s idle opened a new connection (local ports {new:?}; before: {first:?}, now: {second:?})"
    );
}

#[test]
fn scans_through_the_running_agent_get_quotes_and_payment_cards_leave_no_trace() {
    if !need_tools(&["socat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = dir.path().join("till");
    let mut socat = Socat::start(dir.path());
    let reader_till = Till::new(&till, &token, AgentToml::serial_reader(&server.url, &socat.b));
    let config = reader_till.config.clone();
    let mut agent = reader_till.start_lines(Some("debug"));
    // A loyalty card first: proves the reader → quote → popup path is live.
    std::thread::sleep(Duration::from_secs(2));
    socat.write(format!("{DEMO_CARD}\r").as_bytes());
    let v = agent
        .wait(Duration::from_secs(20), |v| {
            v.to_string().contains("0018") && !v.to_string().contains("payment")
        })
        .unwrap_or_else(|| {
            panic!(
                "no popup for the loyalty card\nstdout:\n{}\nstderr:\n{}",
                agent.transcript(),
                std::fs::read_to_string(till.join("agent.stderr")).unwrap_or_default()
            )
        });
    println!("loyalty popup: {v}");

    // Every payment card of the reference data, swiped by mistake.
    let mut pans = Vec::new();
    for r in reference_rows("swipes.tsv") {
        let exp: Value = serde_json::from_str(&r[2]).unwrap();
        if exp["hint"] == "payment_card" || r[0] == "gp-visa-e3" {
            pans.extend(pans_of(&exp));
            if r[0] == "gp-visa-e3" {
                pans.push("4012001000000016".into());
            }
            socat.write(format!("{}\r", r[1]).as_bytes());
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    assert!(pans.len() >= 8, "{pans:?}");
    // Wait for the popups of the swipes (payment cards are announced with their last 4 only).
    let n = wait_for(Duration::from_secs(15), || {
        while let Ok(l) = agent.rx.try_recv() {
            agent.seen.push(l);
        }
        let c = agent
            .seen
            .iter()
            .filter(|l| l.to_lowercase().contains("payment"))
            .count();
        (c >= 6).then_some(c)
    });
    assert!(n.is_some(), "payment popups missing:\n{}", agent.transcript());
    // The reader is unplugged: support staff see it in the sync log (`till-agent log`), next to
    // its connection, as kind "reader".
    socat.unplug();
    let reader_log = || -> Vec<(String, String)> {
        let Ok(c) = rusqlite::Connection::open(till.join("outbox.db")) else {
            return Vec::new();
        };
        let Ok(mut st) = c.prepare("SELECT level, message FROM sync_log WHERE kind = 'reader' ORDER BY id") else {
            return Vec::new();
        };
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let rows = wait_for(Duration::from_secs(15), || {
        let rows = reader_log();
        rows.iter()
            .any(|(l, m)| l == "warn" && m.contains("disconnected"))
            .then_some(rows)
    })
    .unwrap_or_else(|| panic!("no reader disconnect in the sync log: {:?}", reader_log()));
    let port = socat.b.display().to_string();
    assert_eq!(
        rows[0],
        ("info".to_string(), format!("serial reader connected on {port}")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(l, m)| l == "warn" && m.starts_with(&format!("serial reader on {port} disconnected"))),
        "{rows:?}"
    );
    let shown = Command::new(bin("till-agent"))
        .args(["--config", config.to_str().unwrap(), "log", "--tail", "50"])
        .env("HOME", &till)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.contains("WARN") && l.contains("reader") && l.contains("disconnected")),
        "till-agent log:\n{shown}"
    );
    // …and at a glance: `status` (and the tray, from the same status) says the reader is not working,
    // until it is plugged in again
    let status = || -> Value {
        let o = Command::new(bin("till-agent"))
            .args(["--config", config.to_str().unwrap(), "status", "--json"])
            .env("HOME", &till)
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&o.stdout)))
    };
    let problems = status()["reader_problems"].clone();
    assert!(
        problems
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0].as_str().unwrap().contains("disconnected")),
        "{problems}"
    );
    let _replugged = Socat::start(dir.path());
    let fixed = wait_for(Duration::from_secs(15), || {
        status()["reader_problems"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    assert!(
        fixed.is_some(),
        "the reader works again, status still says {}",
        status()["reader_problems"]
    );
    let transcript = agent.transcript();
    drop(agent);
    std::thread::sleep(Duration::from_millis(300));

    let mut hits = Vec::new();
    for pan in &pans {
        hits.extend(grep_tree(&till, pan));
        if transcript.contains(pan.as_str()) {
            hits.push(PathBuf::from("<agent stdout>"));
        }
    }
    assert!(hits.is_empty(), "payment card numbers found in {hits:?}");
    // The data folder really holds the agent's data (the search was not vacuous).
    let mut files = Vec::new();
    list_tree(&till, &mut files);
    assert!(files.iter().any(|p| p.ends_with("outbox.db")), "{files:?}");
    assert!(files.iter().any(|p| p.to_string_lossy().contains("logs")), "{files:?}");
    // Each popup also went to the sync log (what `till-agent log` shows support staff).
    let popups: i64 = rusqlite::Connection::open(till.join("outbox.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM sync_log WHERE kind = 'popup'", [], |r| r.get(0))
        .unwrap();
    assert!(popups >= 7, "popups in the sync log: {popups}");

    // `till-agent quote CARD`: from the server while it answers, then offline from the cache the
    // agent filled, marked with its as-of time; unknown and blocked cards are distinct kinds.
    let quote = |card: &str| -> Value {
        let out = Command::new(bin("till-agent"))
            .args(["--config", config.to_str().unwrap(), "quote", card])
            .env("TILL_AGENT_TOKEN", &token)
            .env("HOME", &till)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "quote {card}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = quote(DEMO_CARD);
    assert_eq!(
        (v["kind"].as_str(), v["source"].as_str()),
        (Some("customer"), Some("online")),
        "{v}"
    );
    let mut server = server;
    server.kill();
    let v = quote(DEMO_CARD);
    assert_eq!(
        (v["kind"].as_str(), v["source"].as_str()),
        (Some("customer"), Some("offline")),
        "{v}"
    );
    assert!(v["as_of"].is_string(), "{v}");
    assert_eq!(quote("1900000009000026")["kind"], "blocked");
    assert_eq!(quote("1900-0000-0900-1016")["kind"], "unknown_card");
}

/// A scanner programmed with the prefix key F13 (X keycode 191 = evdev 183 + 8): a scan from the
/// first key whatever the timing (a slow 70 ms/key scanner too), a prefix without its terminator
/// is a read error, and a person typing afterwards is still a person.
#[test]
fn wedge_under_xvfb_prefix_key_f13() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo"]) {
        return;
    }
    let x = start_xvfb(640, 480);
    let dir = tempfile::tempdir().unwrap();
    let config = AgentToml::minimal(OFFLINE_URL)
        .prefix_key("KEY_F13")
        .write(&dir.path().join("agent.toml"));
    let mut rt = Lines::spawn(
        "reader-test",
        Command::new(bin("till-agent"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "reader-test",
                "--json",
                "--seconds",
                "60",
                "--display",
                x.display.as_str(),
            ])
            .env("HOME", dir.path()),
    );
    assert!(
        rt.wait(Duration::from_secs(10), |v| is(v, "type", "ready")).is_some(),
        "{}",
        rt.transcript()
    );
    let key = |delay: &str, prefix: bool, text: &str, enter: bool| {
        let mut codes = keycodes(text);
        if !enter {
            codes.pop();
        }
        if prefix {
            codes.insert(0, "191".into());
        }
        let mut args = vec!["key", "--delay", delay];
        args.extend(codes.iter().map(String::as_str));
        x.run("xdotool", &args);
    };
    fn decision(rt: &mut Lines, what: &str) -> Value {
        rt.wait(Duration::from_secs(10), |v| {
            is(v, "type", "scan") || is(v, "type", "not_scan")
        })
        .unwrap_or_else(|| panic!("{what}: no decision\n{}", rt.transcript()))
    }
    // Scanner speed with the prefix.
    key("8", true, "1900-1234-5678-9012", true);
    let v = decision(&mut rt, "prefix at 8 ms");
    assert_eq!(
        (v["type"].as_str(), v["prefixed"].as_bool(), v["card"].as_str()),
        (Some("scan"), Some(true), Some("1900123456789012")),
        "{v}"
    );
    // A slow scanner (70 ms/key: timing alone says human) is a scan thanks to the prefix.
    key("70", true, "19001234", true);
    let v = decision(&mut rt, "prefix at 70 ms");
    assert_eq!(
        (v["type"].as_str(), v["prefixed"].as_bool(), v["card"].as_str()),
        (Some("scan"), Some(true), Some("19001234")),
        "{v}"
    );
    // The same keys without the prefix are a person.
    key("70", false, "19001234", true);
    assert_eq!(decision(&mut rt, "no prefix at 70 ms")["type"], "not_scan");
    // A prefix whose terminator never comes: a read error after the idle time…
    key("8", true, "19001234", false);
    let v = decision(&mut rt, "prefix without terminator");
    assert_eq!(
        (v["type"].as_str(), v["read_error"].as_bool()),
        (Some("not_scan"), Some(true)),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap().contains("KEY_F13"), "{v}");
    // …and a person typing slowly afterwards is seen as a person, every key of it.
    let before = rt.seen.iter().filter(|l| l.contains("\"type\":\"key\"")).count();
    key("150", false, "12", true);
    let v = decision(&mut rt, "human after the read error");
    assert_eq!(v["type"], "not_scan", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("human typing"), "{v}");
    let after = rt.seen.iter().filter(|l| l.contains("\"type\":\"key\"")).count();
    assert_eq!(after - before, 3, "two digits and Enter:\n{}", rt.transcript());
    assert!(
        rt.seen.iter().any(|l| l.contains("KEY_F13")),
        "the prefix key is shown by name"
    );
}

// ------------------------------------------------------------------------------------------
// `till-agent doctor`

/// `till-agent doctor`, what support staff run at a till: configuration, folders, server, token
/// and (here) the card readers: a serial reader that opens, one whose port does not exist, one
/// held by a running reader (a warning: the agent itself holds its port), the keyboard wedge on
/// an X display with its dedicated scanner; then a revoked token.
#[test]
fn doctor_checks_server_token_and_card_readers() {
    if !need_tools(&["socat", "Xvfb", "xdpyinfo", "xdotool", "xwininfo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = dir.path().join("till");
    std::fs::create_dir_all(till.join("export")).unwrap();
    let socat = Socat::start(dir.path());
    let held = dir.path().join("held");
    std::fs::create_dir_all(&held).unwrap();
    let socat2 = Socat::start(&held);
    let missing = dir.path().join("ttyMISSING");
    let xv = start_xvfb(640, 480);
    let config = AgentToml::new(&server.url)
        .language(None)
        .rescan_secs(None)
        .dedicated(&["x11:Virtual core XTEST keyboard"])
        .serial(SerialToml::port(&socat.b))
        .serial(SerialToml::port(&missing))
        .serial(SerialToml {
            baud: Some(19200),
            parity: Some("even".into()),
            ..SerialToml::port(&socat2.b)
        })
        .write(&till.join("agent.toml"));
    // a running reader holds the third port
    let mut holder = Lines::spawn(
        "reader-test (holds the port)",
        Command::new(bin("till-agent"))
            .args(["reader-test", "--json", "--no-wedge", "--seconds", "60", "--serial"])
            .arg(&socat2.b)
            .env("HOME", dir.path()),
    );
    assert!(
        holder
            .wait(Duration::from_secs(10), |v| is(v, "event", "connected"))
            .is_some(),
        "{}",
        holder.transcript()
    );
    let doctor = |token: &str| -> (bool, String) {
        let o = Command::new(bin("till-agent"))
            .args(["--config", config.to_str().unwrap(), "doctor"])
            .env("TILL_AGENT_TOKEN", token)
            .env("HOME", &till)
            .env("DISPLAY", xv.display.as_str())
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string())
    };
    let (ok, out) = doctor(&token);
    println!("{out}");
    let line = |start: &str| {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{out}"))
            .to_string()
    };
    assert!(!ok, "a missing reader port must fail the doctor:\n{out}");
    assert!(line("ok   server reachable: ").contains(&server.url));
    line("ok   till token valid: server accepted it");
    assert_eq!(
        line("ok   serial reader 1: "),
        format!("ok   serial reader 1: {} opened (9600 baud 8N1)", socat.b.display())
    );
    assert!(line("FAIL serial reader 2: ").contains(&format!("serial port {} does not exist", missing.display())));
    assert!(
        line("warn serial reader 3: ").contains("in use") && out.contains("fine if it is this till's running agent"),
        "{out}"
    );
    let wedge = line("ok   keyboard wedge: ");
    assert!(wedge.contains("x11, ") && wedge.contains("mode passthrough"), "{wedge}");
    assert!(
        line("ok   dedicated scanner: ").contains("(Virtual core XTEST keyboard)"),
        "{out}"
    );
    assert_eq!(out.lines().filter(|l| l.starts_with("FAIL")).count(), 1, "{out}");
    drop(holder);

    // the token revoked on the server: the doctor says so
    revoke_till(&server.db, STORE, TILL);
    let (_, out) = doctor(&token);
    let l = out.lines().find(|l| l.contains("till token valid")).unwrap_or_default();
    assert!(
        l.starts_with("FAIL") && l.contains("401") && l.contains("revoked"),
        "{out}"
    );
}

// ------------------------------------------------------------------------------------------
// Payment card guard through every reader path

/// Public test PANs of the guarded schemes (gateway sandboxes' documented test numbers).
const TEST_PANS: [&str; 6] = [
    "4111111111111111", // Visa
    "5555555555554444", // Mastercard
    "2223003122003222", // Mastercard 2-series
    "378282246310005",  // Amex
    "6011111111111117", // Discover
    "3530111333300000", // JCB
];

/// A US-programmed scanner typing `text` at 8 ms/key, then Enter, as a trace for `decode`.
fn scanner_trace(text: &str) -> String {
    let mut t = String::from("dev:1\n");
    for c in text.chars() {
        let (key, shift) = match c {
            '0' => ("KEY_0".to_string(), false),
            '1'..='9' => (format!("KEY_{c}"), false),
            '-' => ("KEY_MINUS".into(), false),
            ';' => ("KEY_SEMICOLON".into(), false),
            '=' => ("KEY_EQUAL".into(), false),
            '?' => ("KEY_SLASH".into(), true),
            _ => panic!("{c:?} not in the trace alphabet"),
        };
        if shift {
            t.push_str("d:KEY_LEFTSHIFT t:1 ");
        }
        t.push_str(&format!("d:{key} t:3 u:{key} t:{}", if shift { 1 } else { 5 }));
        if shift {
            t.push_str(" u:KEY_LEFTSHIFT t:4");
        }
        t.push('\n');
    }
    t.push_str("d:KEY_ENTER t:3 u:KEY_ENTER\n");
    t
}

/// Issue 14 item 3: payment card numbers in the shapes the guard once missed (track 2 cut short,
/// empty expiry, track 1 without expiry / service code, bare and dash-separated digits) reach the
/// agent through every path — `decode --raw`, a keyboard-wedge trace (`decode --trace`), the serial
/// reader (socat pty) of the running agent, a typed lookup (`till-agent quote`), and a POS CSV
/// whose card column holds the number. Each is a payment card (last 4 only); the receipt is
/// delivered without a card with a masked warning; and no file the agent or the server wrote
/// (data folder, logs, server database and its log) nor anything printed holds a number.
#[test]
fn payment_card_numbers_through_every_reader_path_leave_no_trace() {
    if !need_tools(&["socat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shapes = |pan: &str| -> Vec<String> {
        let groups: Vec<&str> = (0..pan.len())
            .step_by(4)
            .map(|i| &pan[i..(i + 4).min(pan.len())])
            .collect();
        vec![
            format!(";{pan}=2612?"),
            format!(";{pan}=?"),
            format!("%B{pan}^TEST/CARD^?"),
            pan.to_string(),
            groups.join("-"),
        ]
    };
    let mut printed = String::new();
    // decode --raw and a wedge trace
    for pan in TEST_PANS {
        for raw in shapes(pan) {
            let out = Command::new(bin("till-agent"))
                .args(["decode", "--raw", &raw])
                .env("HOME", dir.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{raw}: {e}: {text}"));
            assert_eq!(
                (v["class"].as_str(), v["last4"].as_str()),
                (Some("payment_card"), Some(&pan[pan.len() - 4..])),
                "decode --raw {raw}: {text}"
            );
            printed.push_str(&text);
            printed.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        for typed in [format!(";{pan}=2612?"), pan.to_string()] {
            let trace = dir.path().join("scan.trace");
            std::fs::write(&trace, scanner_trace(&typed)).unwrap();
            let out = Command::new(bin("till-agent"))
                .args(["decode", "--trace"])
                .arg(&trace)
                .env("HOME", dir.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{typed}: {e}: {text}"));
            let d = &v["decisions"][0];
            assert_eq!(
                (d["decision"].as_str(), d["class"].as_str(), d["last4"].as_str()),
                (Some("scan"), Some("payment_card"), Some(&pan[pan.len() - 4..])),
                "decode --trace of {typed}: {text}"
            );
            printed.push_str(&text);
        }
    }

    // The running agent: a serial reader and a POS export folder with a CSV mapping.
    let server = start_server(dir.path());
    let token = add_till(&server.db, STORE, TILL);
    let till = dir.path().join("till");
    let socat = Socat::start(dir.path());
    let cz_csv = std::fs::read_to_string(fixture("agent/cz-pos-csv.toml")).unwrap();
    let config = AgentToml::new(&server.url)
        .wedge(false)
        .serial(SerialToml::port(&socat.b))
        .raw(&cz_csv)
        .write(&till.join("agent.toml"));
    let stderr = till.join("stderr.log");
    let mut agent = Lines::spawn(
        "till-agent run",
        Command::new(bin("till-agent"))
            .args(["--config", config.to_str().unwrap(), "run", "--headless"])
            .env("TILL_AGENT_TOKEN", &token)
            .env("HOME", &till)
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&stderr).unwrap()),
    );
    // the reader path is live: a loyalty card gets its customer's popup
    std::thread::sleep(Duration::from_secs(2));
    socat.write(format!("{DEMO_CARD}\r").as_bytes());
    agent
        .wait(Duration::from_secs(20), |v| {
            v.to_string().contains("0018") && v["kind"] != "payment_card"
        })
        .unwrap_or_else(|| panic!("no loyalty popup:\n{}", agent.transcript()));
    for pan in TEST_PANS {
        for raw in &shapes(pan)[..3] {
            socat.write(format!("{raw}\r").as_bytes());
            let v = agent
                .wait(Duration::from_secs(15), |v| v["kind"] == "payment_card")
                .unwrap_or_else(|| panic!("{raw}: no payment popup:\n{}", agent.transcript()));
            assert!(v.to_string().contains(&pan[pan.len() - 4..]), "{raw}: {v}");
        }
    }
    // a typed lookup of a payment number: refused, not sent to the server
    for pan in ["4111111111111111", "5555-5555-5555-4444"] {
        let out = Command::new(bin("till-agent"))
            .args(["--config", config.to_str().unwrap(), "quote", pan])
            .env("TILL_AGENT_TOKEN", &token)
            .env("HOME", &till)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && err.contains("payment card"),
            "quote {pan}: {err}"
        );
        printed.push_str(&err);
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    // the POS stored the payment card in the card column of its CSV export
    // (windows-1250 bytes: only the ASCII card number is replaced)
    let bytes = std::fs::read(fixture("agent/cz_pos_export_cp1250_demo_card.csv")).unwrap();
    let needle = b"1900 0000 0900 0018";
    assert!(bytes.windows(needle.len()).any(|w| w == needle));
    let mut paid = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(needle) {
            paid.extend_from_slice(b"4111 1111 1111 1111");
            i += needle.len();
        } else {
            paid.push(bytes[i]);
            i += 1;
        }
    }
    std::fs::write(till.join("export/paid.csv.tmp"), &paid).unwrap();
    std::fs::rename(till.join("export/paid.csv.tmp"), till.join("export/paid.csv")).unwrap();
    let arrived = wait_for(Duration::from_secs(30), || {
        (server_count(
            &server.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE '2026/00014%'",
        ) == 2)
            .then_some(())
    });
    assert!(
        arrived.is_some(),
        "the receipts of the CSV did not arrive; agent log:\n{}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    assert_eq!(
        server_count(
            &server.db,
            "SELECT COUNT(*) FROM receipts WHERE card IS NOT NULL AND card != ''"
        ),
        0,
        "a receipt arrived with a card"
    );
    let warned: i64 = rusqlite::Connection::open(till.join("outbox.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sync_log WHERE level = 'warn' AND message LIKE '%payment card number (…1111)%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        warned, 1,
        "one masked warning for the one receipt with a card (the return has none)"
    );
    let transcript = agent.transcript();
    drop(agent);
    drop(server);
    std::thread::sleep(Duration::from_millis(300));

    // No number anywhere the agent or the server wrote, nor in anything printed. The one file
    // that holds one is the POS's own export, moved as it was into processed/.
    let pos_file = till.join("export/processed/paid.csv");
    assert_eq!(std::fs::read(&pos_file).unwrap(), paid, "the POS's file, unchanged");
    let mut hits = Vec::new();
    for pan in TEST_PANS {
        let grouped: Vec<&str> = (0..pan.len())
            .step_by(4)
            .map(|i| &pan[i..(i + 4).min(pan.len())])
            .collect();
        for needle in [pan.to_string(), grouped.join(" "), grouped.join("-")] {
            hits.extend(grep_tree(dir.path(), &needle).into_iter().filter(|p| *p != pos_file));
            for (what, text) in [("stdout", &transcript), ("printed", &printed)] {
                if text.contains(needle.as_str()) {
                    hits.push(PathBuf::from(format!("<{what}>")));
                }
            }
        }
    }
    assert!(hits.is_empty(), "payment card numbers found in {hits:?}");
    // the search was not vacuous: the agent's and the server's files are there
    let mut files = Vec::new();
    list_tree(dir.path(), &mut files);
    for want in ["outbox.db", "server.db", "server-stub.log", "stderr.log"] {
        assert!(files.iter().any(|p| p.ends_with(want)), "{want} missing: {files:?}");
    }
    assert!(
        files.iter().any(|p| p.to_string_lossy().contains("/logs/")),
        "{files:?}"
    );
}
