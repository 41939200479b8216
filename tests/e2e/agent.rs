//! End-to-end: the real `till-agent run --headless` against the real `server-stub` on loopback,
//! with real files in a real export folder and real SQLite on both sides.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::*;

/// The Czech POS export mapping (the `[receipts]` section the demo uses too).
const CZ_CSV: &str = include_str!("../../fixtures/agent/cz-pos-csv.toml");

pub fn receipt_json(no: u32, card: Option<&str>) -> String {
    let card = card.map(|c| format!("\"card\": \"{c}\",")).unwrap_or_default();
    format!(
        r#"{{"pos_receipt_no": "E2E-{no}", "issued_at": "2026-11-23T10:{:02}:{:02}+01:00", "total": "{no}.50", {card}
  "lines": [ {{"name": "Rohlík", "quantity": "1", "unit_price": "{no}.50", "line_total": "{no}.50", "vat_rate": "12", "kind": "sale"}} ] }}"#,
        (no / 60) % 60,
        no % 60
    )
}

fn setup(dir: &Path) -> (ServerHandle, String) {
    let srv = start_server(dir);
    let token = add_till(&srv.db, STORE, TILL);
    (srv, token)
}

/// Clock scenario: a till whose clock ran an hour ahead (a wrong summer-time setting) had a receipt
/// deferred by the server (no program loaded yet: "retry"), so its next try was stamped an hour
/// ahead. The clock is corrected and the agent restarted: the receipt goes out at once, not an hour
/// later (the outbox keeps when each deferral was made; a clock before that went back).
#[test]
fn a_receipt_deferred_while_the_till_clock_ran_ahead_syncs_once_the_clock_is_corrected() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run scripts/setup.sh (package faketime)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = start_server_with(tmp.path(), None);
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start_env(&[
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+1h"),
        ("FAKETIME_DONT_RESET", "1"),
    ]);
    till.drop_file("r1.json", receipt_json(1, None).as_bytes());
    let real_now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let ahead = format!(
        "SELECT COUNT(*) FROM items WHERE state='pending' AND attempts>=1 AND next_attempt_at>{}",
        real_now_ms() + 50 * 60 * 1000
    );
    wait_for(Duration::from_secs(30), || {
        (till.outbox_count(&ahead) == 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the receipt was not deferred an hour ahead; agent log:\n{}",
            till.stderr()
        )
    });
    till.kill();
    srv.kill();
    seed_db(&srv.db, &fixture("seed/demo.json"));
    srv.restart();
    assert_eq!(server_count(&srv.db, "SELECT COUNT(*) FROM receipts"), 0);
    till.start();
    wait_for(Duration::from_secs(20), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='E2E-1'") == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("the deferred receipt did not go out; agent log:\n{}", till.stderr()));
}

/// `openssl` in `dir`: a private CA (valid ten years) and a server certificate for 127.0.0.1 it
/// issued, valid from now for two days. Returns (ca.pem, server.pem, server.key).
fn private_ca_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=Test Loyalty CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// Clock scenario: a till whose clock is days off (a flat CMOS battery, a wrong manual change)
/// refuses the server's TLS certificate as expired or not yet valid. Support staff are told that
/// the clock is the likely cause, with the certificate's dates — in `doctor` and in the sync log —
/// instead of only "invalid peer certificate". The server's certificate is issued by a private CA
/// the till trusts through `server_ca_file` (a real TLS server on loopback: `openssl s_server`).
#[test]
fn a_till_whose_clock_is_off_is_told_so_when_the_servers_certificate_is_refused() {
    if !need_tools(&["openssl"]) {
        return;
    }
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run scripts/setup.sh (package faketime)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = private_ca_and_server_cert(tmp.path());
    let port = free_port();
    let _tls = Proc::spawn(
        "openssl s_server",
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("openssl s_server listens");
    let url = format!("https://127.0.0.1:{port}");
    let till_dir = tmp.path().join("till");
    std::fs::create_dir_all(&till_dir).unwrap();
    std::fs::copy(tmp.path().join("ca.pem"), till_dir.join("loyalty-ca.pem")).unwrap();
    let mut till = Till::new(
        &till_dir,
        "token",
        AgentToml::new(&url).server_ca_file("loyalty-ca.pem"),
    );
    let doctor_of = |t: &Till, env: &[(&str, &str)]| -> String {
        let o = Command::new(bin("till-agent"))
            .arg("--config")
            .arg(&t.config)
            .arg("doctor")
            .env("TILL_AGENT_TOKEN", "token")
            .env("HOME", &t.dir)
            .env_remove("DISPLAY")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let doctor = |env: &[(&str, &str)]| doctor_of(&till, env);
    let line = |out: &str, start: &str| {
        out.lines()
            .find(|l| l.contains(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{out}"))
            .to_string()
    };
    // The right clock: the private CA is trusted (the TLS handshake succeeds; the s_server's page
    // answers /healthz) and nothing mentions the clock.
    let out = doctor(&[]);
    assert!(line(&out, "server reachable").starts_with("ok "), "{out}");
    assert!(!out.contains("by this till's clock"), "{out}");

    // Five days ahead: the certificate (valid two days) has expired by the till's clock.
    let ahead = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+5d"),
        ("FAKETIME_DONT_RESET", "1"),
    ];
    let out = doctor(&ahead);
    let reach = line(&out, "server reachable");
    assert!(reach.starts_with("FAIL "), "{out}");
    assert!(
        reach.contains("the server's TLS certificate is expired (valid until ")
            && reach.contains("by this till's clock"),
        "{out}"
    );
    assert!(reach.contains("correct it"), "{out}");
    assert!(line(&out, "till clock").starts_with("FAIL "), "{out}");

    // Two days behind: not valid yet.
    let out = doctor(&[
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "-2d"),
        ("FAKETIME_DONT_RESET", "1"),
    ]);
    assert!(
        line(&out, "server reachable").contains("is not valid yet (valid from "),
        "{out}"
    );

    // Without the private CA the certificate is simply not trusted: no clock hint.
    let other = tmp.path().join("other");
    let plain = Till::new(&other, "token", AgentToml::new(&url));
    let out = doctor_of(&plain, &[]);
    let reach = line(&out, "server reachable");
    assert!(reach.starts_with("FAIL ") && reach.contains("certificate"), "{out}");
    assert!(!out.contains("by this till's clock"), "{out}");

    // The running agent, clock ahead: the sync log says it too (what `till-agent log` shows).
    till.start_env(&ahead);
    till.drop_file("r1.json", receipt_json(1, None).as_bytes());
    let logged = wait_for(Duration::from_secs(30), || {
        let o = till.cli(&["log", "--tail", "50"]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.contains("by this till's clock").then_some(text)
    });
    assert!(
        logged.is_some(),
        "the sync log does not name the clock:\n{}\nagent stderr:\n{}",
        String::from_utf8_lossy(&till.cli(&["log", "--tail", "50"]).stdout),
        till.stderr()
    );
    let status = wait_for(Duration::from_secs(15), || {
        let text = String::from_utf8_lossy(&till.cli(&["status"]).stdout).to_string();
        text.contains("by this till's clock").then_some(text)
    });
    assert!(
        status.is_some(),
        "`status` does not name the clock:\n{}",
        String::from_utf8_lossy(&till.cli(&["status"]).stdout)
    );
    till.kill();
    // and the bad config: a CA file that holds no certificate is named
    std::fs::write(till_dir.join("loyalty-ca.pem"), "not a certificate\n").unwrap();
    let o = till.cli(&["status"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("server_ca_file") && err.contains("loyalty-ca.pem holds no PEM certificate"),
        "{err}"
    );
}

/// Fault scenario: the POS (or a clean-up script) deletes the export folder and makes it again,
/// or it is missing for a while (a share not mounted yet). The folder's watch went with it; the
/// agent watches the new folder, so a receipt written there is read at once — not at the next
/// periodic rescan (30 s here) — and the sync log says what happened.
#[test]
fn an_export_folder_deleted_and_made_again_is_watched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(
        &tmp.path().join("till"),
        &token,
        AgentToml::new(&srv.url).rescan_secs(None),
    );
    till.start();
    let on_server = |no: &str| {
        server_count(
            &srv.db,
            &format!("SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='{no}'"),
        )
    };
    let synced =
        |no: &str, within: u64| wait_for(Duration::from_secs(within), || (on_server(no) == 1).then_some(())).is_some();
    till.drop_file("r1.json", receipt_json(1, None).as_bytes());
    assert!(synced("E2E-1", 20), "{}", till.stderr());
    for (i, gap) in [(2u32, 0u64), (3, 3)] {
        std::fs::remove_dir_all(&till.export).unwrap();
        // deleted and made again at once, or missing for a few seconds
        std::thread::sleep(Duration::from_millis(300 + gap * 1000));
        std::fs::create_dir_all(&till.export).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        till.drop_file(&format!("r{i}.json"), receipt_json(i, None).as_bytes());
        assert!(
            synced(&format!("E2E-{i}"), 5),
            "receipt {i} in the new folder was not read within 5 s (the rescan is 30 s); log:\n{}",
            String::from_utf8_lossy(&till.cli(&["log", "--tail", "30"]).stdout)
        );
    }
    let log = String::from_utf8_lossy(&till.cli(&["log", "--tail", "50"]).stdout).to_string();
    assert!(log.contains("was removed; watching for it to come back"), "{log}");
    assert!(log.contains("is back; watching it"), "{log}");
    // the new folder's processed/ holds the receipts read there
    assert!(till.export.join("processed").join("r3.json").exists());
}

/// Fault scenario: the till's disk hands back garbage where `outbox.db` and `cache.db` were (two
/// receipts not yet acknowledged in the outbox). The agent does not loop on "file is not a
/// database": it sets both aside, starts anew, reads the receipts again from `processed/` and the
/// server counts each once — the one it had already, and the two it had not.
#[test]
fn a_damaged_outbox_is_set_aside_and_every_receipt_still_arrives_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let server_db = srv.db.clone();
    let on_server = |no: &str| {
        server_count(
            &server_db,
            &format!("SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='{no}'"),
        )
    };
    till.drop_file("r1.json", receipt_json(1, Some(DEMO_CARD)).as_bytes());
    // on the server and acknowledged to the till: a server killed between its commit and its
    // answer leaves r1 waiting on the till (three pending below, not two)
    wait_for(Duration::from_secs(20), || {
        (on_server("E2E-1") == 1 && till.outbox_count("SELECT COUNT(*) FROM items WHERE state='pending'") == 0)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", till.stderr()));
    assert!(till.wait_cache_has(DEMO_CARD));
    srv.kill();
    till.drop_file("r2.json", receipt_json(2, Some(DEMO_CARD)).as_bytes());
    till.drop_file("r3.json", receipt_json(3, None).as_bytes());
    wait_for(Duration::from_secs(20), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='pending'") == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", till.stderr()));
    till.kill();
    let garbage: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for db in ["outbox.db", "cache.db"] {
        std::fs::write(till.dir.join(db), &garbage).unwrap();
        // the write-ahead logs are lost with it (they would still supply the pages)
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(till.dir.join(format!("{db}{side}")));
        }
    }
    srv.restart();
    till.start();
    wait_for(Duration::from_secs(30), || {
        (on_server("E2E-2") == 1 && on_server("E2E-3") == 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the unacknowledged receipts did not arrive; agent log:\n{}",
            till.stderr()
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE 'E2E-%'"
        ),
        3,
        "each receipt once"
    );
    let log = String::from_utf8_lossy(&till.cli(&["log", "--tail", "100"]).stdout).to_string();
    assert!(
        log.contains("outbox.db was damaged") && log.contains("set aside as"),
        "{log}"
    );
    assert!(log.contains("3 receipt file(s) of processed/"), "{log}");
    assert!(
        log.contains("cache.db was damaged") && log.contains("rebuilt from the server"),
        "{log}"
    );
    let aside: Vec<String> = std::fs::read_dir(&till.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".damaged-"))
        .collect();
    assert!(aside.iter().any(|n| n.starts_with("outbox.db.damaged-")), "{aside:?}");
    assert!(aside.iter().any(|n| n.starts_with("cache.db.damaged-")), "{aside:?}");
    assert!(till.wait_cache_has(DEMO_CARD), "the cache is pulled again");
}

#[test]
fn receipts_dropped_while_server_down_are_delivered_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut srv, token) = setup(tmp.path());
    srv.kill();
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    for i in 1..=20 {
        till.drop_file(
            &format!("r{i}.json"),
            receipt_json(i, (i % 2 == 0).then_some(DEMO_CARD)).as_bytes(),
        );
    }
    let queued = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='pending'") == 20).then_some(())
    });
    assert!(
        queued.is_some(),
        "20 receipts not queued; agent log:\n{}",
        till.stderr()
    );
    assert!(
        till.files_left().is_empty(),
        "files left in export: {:?}",
        till.files_left()
    );
    srv.restart();
    let sent = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 20).then_some(())
    });
    assert!(sent.is_some(), "not all sent; agent log:\n{}", till.stderr());
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE 'E2E-%'"
        ),
        20
    );
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(DISTINCT pos_receipt_no) FROM receipts"),
        20
    );
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(*) FROM receipts WHERE card IS NOT NULL"),
        10
    );
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items"), 20);
    // the sync log saw the ingests and the acks
    assert!(till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='ingest'") >= 20);
    assert!(till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='ack'") >= 1);
    assert_eq!(till.files_left(), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(till.export.join("processed")).unwrap().count(), 20);
}

#[test]
fn agent_killed_and_restarted_midway_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let n = 120;
    for i in 1..=n {
        till.drop_file(&format!("r{i:04}.json"), receipt_json(i, None).as_bytes());
        if i == 50 {
            // wait until the agent is busy with them, then kill it hard mid-way
            wait_for(Duration::from_secs(20), || {
                (till.outbox_count("SELECT COUNT(*) FROM items") >= 20).then_some(())
            });
            till.kill();
        }
        if i == 80 {
            till.start();
        }
    }
    let done = wait_for(Duration::from_secs(60), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM receipts") == n as i64
            && till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == n as i64)
            .then_some(())
    });
    assert!(
        done.is_some(),
        "server has {} receipts, outbox {} sent; agent log:\n{}",
        server_count(&srv.db, "SELECT COUNT(*) FROM receipts"),
        till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'"),
        till.stderr()
    );
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(DISTINCT pos_receipt_no) FROM receipts"),
        n as i64
    );
    assert_eq!(
        till.outbox_count("SELECT COUNT(*) FROM items"),
        n as i64,
        "no duplicate outbox items"
    );
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM ingested_files"), n as i64);
    assert!(till.files_left().is_empty(), "{:?}", till.files_left());
    assert_eq!(std::fs::read_dir(till.export.join("quarantine")).unwrap().count(), 0);
}

#[test]
fn a_file_written_slowly_in_chunks_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    // a POS that writes in place, in 4 chunks with pauses longer than stable_ms (200 ms)
    let lines: Vec<String> = (1..=30)
        .map(|i| format!(r#"{{"name": "Položka {i}", "quantity": "1", "unit_price": "1.00", "line_total": "1.00", "kind": "sale"}}"#))
        .collect();
    let body = format!(
        r#"{{"pos_receipt_no": "SLOW-1", "issued_at": "2026-11-23T12:00:00+01:00", "total": "30.00", "lines": [
{}
]}}"#,
        lines.join(",\n")
    );
    let bytes = body.as_bytes();
    let mut f = std::fs::File::create(till.export.join("slow.json")).unwrap();
    for chunk in bytes.chunks(bytes.len() / 4 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(450));
    }
    drop(f);
    let got = wait_for(Duration::from_secs(20), || {
        server_conn(&srv.db)
            .query_row("SELECT payload FROM receipts WHERE pos_receipt_no='SLOW-1'", [], |r| {
                r.get::<_, String>(0)
            })
            .ok()
    });
    let payload = got.unwrap_or_else(|| panic!("slow receipt never arrived; agent log:\n{}", till.stderr()));
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v["lines"].as_array().unwrap().len(), 30, "whole file read");
    assert_eq!(
        std::fs::read_dir(till.export.join("quarantine")).unwrap().count(),
        0,
        "never quarantined half-written"
    );
}

#[test]
fn a_quarantined_file_does_not_block_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url).raw(CZ_CSV));
    till.start();
    let good = |no: u32| {
        format!("Doklad;Datum;Čas;Karta;Původní doklad;Kód;Název;Množství;Cena;Celkem;DPH;Typ;Celkem dokladu\n{no};23.11.2026;11:{:02}:00;;;1;Chléb;1;30,00;30,00;12;prodej;30,00\n", no % 60)
    };
    till.drop_file("a_good.csv", good(801).as_bytes());
    till.drop_file("b_bad.csv", &std::fs::read(fixture("agent/bad_quantity.csv")).unwrap());
    till.drop_file("c_good.csv", good(802).as_bytes());
    let ok = wait_for(Duration::from_secs(20), || {
        (server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no IN ('801','802')",
        ) == 2)
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "good receipts not delivered; agent log:\n{}",
        till.stderr()
    );
    let err_file = till.export.join("quarantine").join("b_bad.csv.error.txt");
    let err = wait_for(Duration::from_secs(10), || std::fs::read_to_string(&err_file).ok()).expect("error.txt written");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("Množství (quantity)"), "{err}");
    assert!(err.contains("1,2x"), "{err}");
    assert!(till.export.join("quarantine").join("b_bad.csv").exists());
    assert!(till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='quarantine' AND level='error'") >= 1);
    // `parse` shows the same exact error for support staff
    let out = till.cli(&["parse", till.export.join("quarantine/b_bad.csv").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("Množství (quantity)"),
        "{stderr}"
    );
}

#[test]
fn windows_1250_csv_arrives_with_czech_diacritics() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url).raw(CZ_CSV));
    till.start();
    let bytes = std::fs::read(fixture("agent/cz_pos_export_cp1250_demo_card.csv")).unwrap();
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the fixture really is Windows-1250, not UTF-8"
    );
    till.drop_file("export_2026-11-23.csv", &bytes);
    let got = wait_for(Duration::from_secs(20), || {
        server_conn(&srv.db)
            .query_row(
                "SELECT payload FROM receipts WHERE pos_receipt_no='2026/000145'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
    });
    let payload = got.unwrap_or_else(|| panic!("receipt never arrived; agent log:\n{}", till.stderr()));
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let names: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Žluťoučký kůň – čaj"), "{names:?}");
    assert!(names.contains(&"Příliš žluťoučký ěščřžýáíé sýr"), "{names:?}");
    assert!(names.contains(&"Vánoční dárková sada"), "{names:?}");
    assert_eq!(v["card"], DEMO_CARD);
    // the return in the same file arrives too, after its original
    let ret = wait_for(Duration::from_secs(10), || {
        (server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='2026/000146'",
        ) == 1)
            .then_some(())
    });
    assert!(ret.is_some(), "return receipt missing; agent log:\n{}", till.stderr());
    // the card number is masked in the sync log
    let c = rusqlite::Connection::open(till.dir.join("outbox.db")).unwrap();
    let leaked: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sync_log WHERE message LIKE '%' || ?1 || '%'",
            [DEMO_CARD],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaked, 0);
    let masked: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sync_log WHERE message LIKE '%1900-****-****-0018%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(masked >= 1);
}

#[test]
fn config_errors_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("agent.toml");
    let run = |text: &str, args: &[&str]| {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(bin("till-agent"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // four lines: the errors below are on lines 5 and 7
    let base = AgentToml::minimal(OFFLINE_URL).ids("S", "T").render();
    assert_eq!(base.lines().count(), 4, "{base}");
    let e = run(
        &format!("{base}rescan_interval_secs = \"often\"\n"),
        &["run", "--headless"],
    );
    assert!(e.contains(&format!("{}:5:", cfg.display())), "{e}");
    assert!(e.contains("rescan_interval_secs"), "{e}");
    let e = run(
        &format!("{base}[receipts]\nformat = \"csv\"\nencodng = \"utf-8\"\n"),
        &["status"],
    );
    assert!(
        e.contains(&format!("{}:7:", cfg.display())) && e.contains("receipts.encodng"),
        "{e}"
    );
    let e = run(&base.replace("export_dir = \"export\"\n", ""), &["run", "--headless"]);
    assert!(
        e.contains(&cfg.display().to_string()) && e.contains("export_dir") && e.contains("half-configured"),
        "{e}"
    );
    assert!(
        !tmp.path().join("outbox.db").exists(),
        "refused to start: nothing created"
    );
}

#[test]
fn status_json_dead_letter_and_requeue() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    // a return whose original the server does not know (a month old: no longer waited for) → dead letter
    let ret = r#"{"pos_receipt_no": "RET-1", "issued_at": "2026-10-01T12:30:00+02:00", "total": "-10.00",
      "original": {"pos_receipt_no": "ORIG-1"},
      "lines": [{"name": "Chléb", "quantity": "-1", "unit_price": "10.00", "line_total": "-10.00", "kind": "return"}]}"#;
    till.drop_file("ret.json", ret.as_bytes());
    let dead = wait_for(Duration::from_secs(20), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='rejected'") == 1).then_some(())
    });
    assert!(dead.is_some(), "agent log:\n{}", till.stderr());
    // a dead letter does not block the queue
    till.drop_file(
        "orig.json",
        r#"{"pos_receipt_no": "ORIG-1", "issued_at": "2026-10-01T12:00:00+02:00", "total": "10.00",
      "lines": [{"name": "Chléb", "quantity": "1", "unit_price": "10.00", "line_total": "10.00", "kind": "sale"}]}"#
            .as_bytes(),
    );
    wait_for(Duration::from_secs(20), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='ORIG-1'") == 1).then_some(())
    })
    .expect("original delivered past the dead letter");
    let out = till.cli(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["queue_depth"], 0, "{s}");
    assert_eq!(s["dead_letters"], 1, "{s}");
    assert_eq!(s["server_reachable"], true, "{s}");
    assert_eq!(s["store_id"], STORE);
    assert!(s["last_success"].is_string(), "{s}");
    assert!(
        s["dead_letter_items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown_original"),
        "{s}"
    );
    // Support staff watch the log live while they requeue (`log --follow`, nothing old: --tail 0).
    let follow_out = till.dir.join("follow.out");
    let mut follower = Command::new(bin("till-agent"))
        .arg("--config")
        .arg(&till.config)
        .args(["log", "--follow", "--tail", "0"])
        .stdout(std::fs::File::create(&follow_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(follower.try_wait().unwrap().is_none(), "log --follow exited");
    // fix is in (the original arrived): requeue → delivered
    let out = till.cli(&["requeue"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 dead letter(s)"));
    let ok = wait_for(Duration::from_secs(20), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='RET-1'") == 1).then_some(())
    });
    assert!(
        ok.is_some(),
        "requeued item not delivered; agent log:\n{}",
        till.stderr()
    );
    let followed = wait_for(Duration::from_secs(10), || {
        let t = std::fs::read_to_string(&follow_out).unwrap_or_default();
        (t.contains("requeue") && t.lines().any(|l| l.contains(" ack ") && l.contains("acked 1 item"))).then_some(t)
    });
    let _ = follower.kill();
    let _ = follower.wait();
    let followed = followed.unwrap_or_else(|| {
        panic!(
            "log --follow did not show the requeue and the delivery:\n{}",
            std::fs::read_to_string(&follow_out).unwrap_or_default()
        )
    });
    assert!(
        !followed.lines().any(|l| l.contains("dead letter: ")),
        "--tail 0 printed old entries:\n{followed}"
    );
    let out = till.cli(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["dead_letters"], 0, "{s}");
    // the log CLI shows the story
    let out = till.cli(&["log", "--tail", "200"]);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("dead letter") && log.contains("requeue"), "{log}");
    // server down → status says so
    drop(srv);
    let out = till.cli(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["server_reachable"], false, "{s}");
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    till.drop_file("r.json", receipt_json(7, None).as_bytes());
    wait_for(Duration::from_secs(20), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 1).then_some(())
    })
    .expect("sent");
    // A second agent on the same data folder (a stray manual `run` beside the autostarted one)
    // refuses to start, naming the folder and the running agent's pid; the first is untouched.
    let second = till.cli(&["run", "--headless"]);
    let err = String::from_utf8_lossy(&second.stderr).to_string();
    let pid = till.proc.as_ref().unwrap().child.id();
    assert!(
        !second.status.success(),
        "a second agent started on the same data folder: {err}"
    );
    assert!(
        err.contains(&format!(
            "another till-agent (pid {pid}) is already running on the data folder {}",
            till.dir.display()
        )),
        "{err}"
    );
    assert_eq!(
        till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='start'"),
        1,
        "{err}"
    );
    let mut p = till.proc.take().unwrap();
    Command::new("kill")
        .arg("-TERM")
        .arg(p.child.id().to_string())
        .status()
        .unwrap();
    let st = wait_for(Duration::from_secs(10), || p.child.try_wait().ok().flatten()).expect("exited after SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(
        till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='stop'") == 1,
        "{}",
        till.stderr()
    );
    // the rotating log file exists in data/logs/
    let logs: Vec<_> = std::fs::read_dir(till.dir.join("logs"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert!(!logs.is_empty());
    let text = std::fs::read_to_string(logs[0].path()).unwrap();
    assert!(text.contains("queued"), "{text}");
    // the lock went with the process: the agent starts again
    till.start();
    wait_for(Duration::from_secs(20), || {
        (till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='start'") == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("the agent did not start again after a clean stop:\n{}", till.stderr()));
}

#[test]
fn card_scanned_on_the_reader_is_attached_to_the_next_cardless_receipt_once() {
    if !need_tools(&["socat"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    // a serial card reader: one end of a socat pty pair is the reader, the agent opens the other
    let socat = Socat::start_named(tmp.path(), "reader-a", "reader-b");
    let cfg = AgentToml::new(&srv.url).wedge(false).serial(SerialToml {
        terminator: Some("cr".into()),
        ..SerialToml::port(&socat.b)
    });
    let mut till = Till::new(&tmp.path().join("till"), &token, cfg);
    till.start();
    wait_for(Duration::from_secs(10), || {
        till.stderr().contains("connected").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    socat.write(format!("{DEMO_CARD}\r").as_bytes());
    std::thread::sleep(Duration::from_millis(800));
    let now = chrono::Local::now().fixed_offset();
    let r = |no: &str, at: chrono::DateTime<chrono::FixedOffset>| {
        format!(
            r#"{{"pos_receipt_no": "{no}", "issued_at": "{}", "total": "10.00", "lines": [{{"name": "Chléb", "quantity": "1", "unit_price": "10.00", "line_total": "10.00", "kind": "sale"}}]}}"#,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        )
    };
    till.drop_file("scan1.json", r("SCAN-1", now).as_bytes());
    let card_of = |no: &str| {
        wait_for(Duration::from_secs(20), || {
            server_conn(&srv.db)
                .query_row("SELECT card FROM receipts WHERE pos_receipt_no=?1", [no], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .ok()
        })
    };
    let got = card_of("SCAN-1").unwrap_or_else(|| panic!("receipt missing; agent log:\n{}", till.stderr()));
    assert_eq!(
        got.as_deref(),
        Some(DEMO_CARD),
        "the scanned card is attached; log:\n{}",
        till.stderr()
    );
    // once: the next card-less receipt stays card-less
    till.drop_file(
        "scan2.json",
        r("SCAN-2", now + chrono::Duration::seconds(30)).as_bytes(),
    );
    assert_eq!(card_of("SCAN-2").expect("second receipt"), None);
}

#[test]
fn a_rewritten_file_or_re_exported_receipt_is_not_ingested_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let body = receipt_json(31, None);
    till.drop_file("r31.json", body.as_bytes());
    wait_for(Duration::from_secs(20), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 1).then_some(())
    })
    .expect("first");
    // the POS writes the very same file again …
    till.drop_file("r31.json", body.as_bytes());
    // … and the same receipt re-exported with different bytes (whitespace) under another name
    till.drop_file("r31-again.json", format!("\n{body}\n").as_bytes());
    wait_for(Duration::from_secs(20), || till.files_left().is_empty().then_some(())).expect("both picked up");
    wait_for(Duration::from_secs(10), || {
        (till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='skip'") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("skips not logged; agent log:\n{}", till.stderr()));
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items"), 1);
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no='E2E-31'"),
        1
    );
    assert_eq!(
        std::fs::read_dir(till.export.join("processed")).unwrap().count(),
        3,
        "all three files moved out of the way"
    );
}

#[test]
fn a_multi_receipt_file_with_one_bad_transaction_commits_the_good_ones_and_quarantines_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let file = std::fs::read(fixture("receipts/poslog_v6_multi_one_bad.xml")).unwrap();
    till.drop_file("day.xml", &file);
    let good = "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no IN ('2002','6-0007')";
    wait_for(Duration::from_secs(30), || {
        (server_count(&srv.db, good) == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("good receipts not delivered; agent log:\n{}", till.stderr()));
    let qdir = till.export.join("quarantine");
    let quarantined = || {
        let mut v: Vec<String> = std::fs::read_dir(&qdir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let q = wait_for(Duration::from_secs(10), || {
        let q = quarantined();
        (q.len() == 2).then_some(q)
    })
    .unwrap_or_else(|| panic!("quarantine: {:?}; agent log:\n{}", quarantined(), till.stderr()));
    assert!(q[0].starts_with("receipt-6-0003.") && q[0].ends_with(".xml"), "{q:?}");
    assert_eq!(q[1], format!("{}.error.txt", q[0]));
    let err = std::fs::read_to_string(qdir.join(&q[1])).unwrap();
    for want in [
        "File: day.xml",
        "Receipt: 6-0003",
        "Field: Total",
        "Value: 249.00",
        "Line: 64",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
    // the extract alone is what `parse` reads, with the same error
    let out = till.cli(&["parse", qdir.join(&q[0]).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6-0003"));
    // the file itself is done: in processed/, its hash recorded
    wait_for(Duration::from_secs(10), || till.files_left().is_empty().then_some(())).expect("file moved");
    assert!(till.export.join("processed/day.xml").exists());
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items"), 2);
    assert!(
        till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='skip' AND message LIKE '%1 control, 1 training, 1 voided, 1 suspended%'")
            >= 1
    );

    // restart (hard kill), then the POS re-exports the same day with different bytes: per-receipt
    // dedupe — nothing new on the server, the bad receipt's extract replaced, not added
    till.kill();
    till.start();
    let mut again = file.clone();
    again.extend_from_slice(b"\n<!-- re-export -->\n");
    till.drop_file("day-again.xml", &again);
    wait_for(Duration::from_secs(30), || till.files_left().is_empty().then_some(()))
        .unwrap_or_else(|| panic!("re-export not picked up; agent log:\n{}", till.stderr()));
    wait_for(Duration::from_secs(10), || {
        (till.outbox_count("SELECT COUNT(*) FROM ingested_files") == 2).then_some(())
    })
    .expect("re-export recorded");
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items"), 2);
    assert_eq!(server_count(&srv.db, "SELECT COUNT(*) FROM receipts"), 2);
    assert_eq!(quarantined(), q, "same extract, not a second copy");
    assert!(std::fs::read_to_string(qdir.join(&q[1]))
        .unwrap()
        .contains("File: day-again.xml"));
}

/// The other public formats a POS leaves behind: the official EET sample as the POS sent it (SOAP,
/// signed) and a Square orders export (a sale with a tip, a return, a canceled and a draft order,
/// one order with a broken amount) reach the server once; the skips are logged, the bad order is
/// quarantined alone.
#[test]
fn eet_records_and_square_orders_reach_the_server_and_the_bad_order_is_quarantined_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, token) = setup(tmp.path());
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let eet = std::fs::read(fixture("receipts/cz_eet_trzba_CZ1212121218.v3.valid.v3.1.1.xml")).unwrap();
    till.drop_file("trzba-141-18543-05.xml", &eet);
    // the demo program is in CZK: the same orders with CZK money (minor units: 1236 = 12.36 Kč)
    let square = std::fs::read_to_string(fixture("receipts/square_orders_eur.json"))
        .unwrap()
        .replace("\"EUR\"", "\"CZK\"");
    till.drop_file("orders-2026-11-28.json", square.as_bytes());
    let delivered = "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no IN ('141-18543-05', 'Qm9vay1TQUxFLTAwMDE', 'Qm9vay1SRVQtMDAwMg')";
    wait_for(Duration::from_secs(30), || {
        (server_count(&srv.db, delivered) == 3).then_some(())
    })
    .unwrap_or_else(|| panic!("receipts not delivered; agent log:\n{}", till.stderr()));
    let total = |no: &str| -> String {
        server_conn(&srv.db)
            .query_row("SELECT total FROM receipts WHERE pos_receipt_no = ?1", [no], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(total("141-18543-05"), "236.00");
    assert_eq!(total("Qm9vay1TQUxFLTAwMDE"), "12.36", "the tip is not a purchase");
    assert_eq!(total("Qm9vay1SRVQtMDAwMg"), "-1.17");
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(*) FROM receipts"),
        3,
        "canceled and draft orders are not receipts"
    );
    wait_for(Duration::from_secs(10), || {
        (till.outbox_count("SELECT COUNT(*) FROM sync_log WHERE kind='skip' AND message LIKE '%1 canceled, 1 draft%'")
            >= 1)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("skips not logged; agent log:\n{}", till.stderr()));
    let qdir = till.export.join("quarantine");
    let q = wait_for(Duration::from_secs(10), || {
        let mut v: Vec<String> = std::fs::read_dir(&qdir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        (v.len() == 2).then_some(v)
    })
    .unwrap_or_else(|| panic!("bad order not quarantined; agent log:\n{}", till.stderr()));
    assert!(
        q[0].starts_with("receipt-Qm9vay1CQUQtMDAwNQ.") && q[0].ends_with(".json"),
        "{q:?}"
    );
    let err = std::fs::read_to_string(qdir.join(&q[1])).unwrap();
    for want in [
        "File: orders-2026-11-28.json",
        "Field: orders[4].line_items[0].total_money.amount",
        "Value: 189.5",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
}

#[test]
fn parse_works_without_agent_toml_and_says_which_reader_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(bin("till-agent"))
            .args(args)
            .env_remove("TILL_AGENT_CONFIG")
            .env("HOME", tmp.path())
            .env("XDG_CONFIG_HOME", tmp.path().join("nothing-here"))
            .output()
            .unwrap()
    };
    let f = fixture("receipts/poslog_v2_tax_exclusive.xml");
    let out = run(&["parse", "--currency", "EUR", f.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no agent.toml"), "{stderr}");
    assert!(
        stderr.contains("reader: poslog (XML with root element <POSLog>)"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["currency"], "EUR");
    // another currency than the file's: every receipt is bad, named, exit 2
    let out = run(&["parse", "--currency", "HUF", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("receipt 7001: line 12, field `CurrencyCode`"));
    // --format forces the reader
    let out = run(&["parse", "--format", "json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reader: json (set by [receipts] format)"));
    let out = run(&["parse", "--currency", "XYZ", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ISO 4217 currency code"));
}

#[test]
fn summer_time_receipts_get_the_same_ids_and_offsets_read_in_november_or_july() {
    if !need_tools(&["faketime"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // no tz_offset / timezone: the OS zone (TZ) applies, as on a till
    let cfg = tmp.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "server_url = \"http://127.0.0.1:9\"\nstore_id = \"{STORE}\"\ntill_id = \"{TILL}\"\nexport_dir = \"export\"\n{CZ_CSV}"
        ),
    )
    .unwrap();
    let file = fixture("receipts/cz_summer_time_switch.csv");
    let read_at = |when: &str| {
        let out = Command::new("faketime")
            .arg(when)
            .arg(bin("till-agent"))
            .arg("--config")
            .arg(&cfg)
            .arg("parse")
            .arg(&file)
            .env("TZ", "Europe/Prague")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["issued_at"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let november = read_at("2026-11-15 12:00:00");
    let july = read_at("2026-07-15 12:00:00");
    assert_eq!(
        november, july,
        "same ids and offsets whatever the season the file is read in"
    );
    let times: Vec<&str> = november.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        times,
        [
            "2026-10-25T01:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-03-29T02:30:00+01:00",
            "2026-03-29T03:30:00+02:00"
        ]
    );
}

#[test]
fn formats_suggest_prints_a_receipts_section_that_parse_reads_the_file_with() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(bin("till-agent"))
            .args(args)
            .env_remove("TILL_AGENT_CONFIG")
            .env("HOME", tmp.path())
            .env("XDG_CONFIG_HOME", tmp.path().join("nothing-here"))
            .output()
            .unwrap()
    };
    let f = fixture("receipts/sk_unknown_export_cp1250.csv");
    let out = run(&["formats", "suggest", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let section = String::from_utf8(out.stdout).unwrap();
    assert!(
        section.contains("[receipts.csv.columns]") && section.contains("delimiter = \"|\""),
        "{section}"
    );
    let toml_path = tmp.path().join("suggested.toml");
    std::fs::write(&toml_path, &section).unwrap();
    let out = run(&[
        "parse",
        "--currency",
        "EUR",
        "--receipts",
        toml_path.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["lines"][1]["name"], "Káva 500 g");
    // without the suggestion the file is not readable (no known columns)
    let out = run(&["parse", "--currency", "EUR", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
