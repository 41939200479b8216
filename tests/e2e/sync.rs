//! The sync link's classification with the real agent: an address that answers, but not as the
//! loyalty server (a misconfigured reverse proxy, a maintenance page), is a transport problem —
//! receipts stay queued, `status` says why — and once the real server is there they arrive once.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::*;

/// Answers every request with `404 text/html` (a proxy without the route); counts the requests.
struct NotTheServer {
    url: String,
    hits: Arc<AtomicU64>,
}

impl NotTheServer {
    fn start() -> NotTheServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                // read the request head and whatever body arrives (the answer does not depend on it)
                let mut buf = [0u8; 64 * 1024];
                let _ = s.read(&mut buf);
                let body = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>";
                let _ = write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        NotTheServer { url, hits }
    }
}

/// A receipt in the protocol's JSON shape, numbered `SYNC-<no>`.
fn receipt(no: u32, card: Option<&str>) -> String {
    let card = card.map(|c| format!("\"card\": \"{c}\",")).unwrap_or_default();
    format!(
        r#"{{"pos_receipt_no": "SYNC-{no}", "issued_at": "2026-11-23T11:{no:02}:00+01:00", "total": "{no}.50", {card}
  "lines": [ {{"name": "Rohlík", "quantity": "1", "unit_price": "{no}.50", "line_total": "{no}.50", "vat_rate": "12", "kind": "sale"}} ] }}"#
    )
}

fn status_json(till: &Till) -> serde_json::Value {
    let out = till.cli(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_proxy_answering_404_html_leaves_receipts_queued_then_the_server_gets_them_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let proxy = NotTheServer::start();
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&proxy.url));
    till.start();
    for i in 1..=4 {
        till.drop_file(
            &format!("r{i}.json"),
            receipt(i, (i % 2 == 0).then_some(DEMO_CARD)).as_bytes(),
        );
    }
    // The agent has met the 404 more than once (so it retried) and recorded why.
    let seen = wait_for(Duration::from_secs(30), || {
        let queued = till.outbox_count("SELECT COUNT(*) FROM items WHERE state='pending'") == 4;
        (queued && proxy.hits.load(Ordering::SeqCst) >= 3 && !status_json(&till)["sync_problem"].is_null())
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "hits {}, items {:?}; agent log:\n{}",
        proxy.hits.load(Ordering::SeqCst),
        till.outbox_count("SELECT COUNT(*) FROM items WHERE state='rejected'"),
        till.stderr()
    );
    assert_eq!(
        till.outbox_count("SELECT COUNT(*) FROM items WHERE state='rejected'"),
        0,
        "a proxy's 404 must not dead-letter receipts"
    );
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items WHERE state='pending'"), 4);
    let st = status_json(&till);
    assert_eq!(st["queue_depth"], 4, "{st}");
    assert_eq!(st["dead_letters"], 0, "{st}");
    assert_eq!(st["sync_problem"]["kind"], "not_the_server", "{st}");
    let detail = st["sync_problem"]["detail"].as_str().unwrap();
    assert!(detail.contains("404") && detail.contains("text/html"), "{detail}");
    let human = String::from_utf8(till.cli(&["status"]).stdout).unwrap();
    assert!(
        human.contains("Sync problem:         the server address does not answer as the loyalty server"),
        "{human}"
    );
    assert!(human.contains("Dead letters:         0"), "{human}");

    // The right address: all 4 arrive, once each, and the problem is gone.
    drop(till);
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let sent = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 4).then_some(())
    });
    assert!(sent.is_some(), "not all sent; agent log:\n{}", till.stderr());
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE 'SYNC-%'"
        ),
        4
    );
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(DISTINCT pos_receipt_no) FROM receipts"),
        4
    );
    let st = wait_for(Duration::from_secs(10), || {
        let st = status_json(&till);
        st["sync_problem"].is_null().then_some(st)
    });
    assert!(
        st.is_some(),
        "the problem stays after a successful send: {}",
        status_json(&till)
    );
}

/// A supervised task that panics (fault injection) is restarted, logged and shown in `status`,
/// and receipts still flow through the restarted task.
#[test]
fn a_panicking_replicator_is_restarted_logged_and_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    let log = std::fs::File::create(till.dir.join("agent.stderr")).unwrap();
    let mut cmd = std::process::Command::new(bin("till-agent"));
    cmd.arg("--config")
        .arg(&till.config)
        .args(["run", "--headless"])
        .env("TILL_AGENT_TOKEN", &till.token)
        .env("TILL_AGENT_FAULT_TASK", "replicator:panic:2")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    till.proc = Some(Proc::spawn("till-agent", &mut cmd));
    for i in 1..=3 {
        till.drop_file(&format!("r{i}.json"), receipt(i, Some(DEMO_CARD)).as_bytes());
    }
    let sent = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 3).then_some(())
    });
    assert!(
        sent.is_some(),
        "receipts did not flow after the restart; agent log:\n{}",
        till.stderr()
    );
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE 'SYNC-%'"
        ),
        3
    );
    let log = String::from_utf8(till.cli(&["log", "--tail", "200"]).stdout).unwrap();
    assert!(
        log.contains("background task replicator panicked: injected fault (TILL_AGENT_FAULT_TASK); restart 1")
            && log.contains("restart 2"),
        "{log}"
    );
    let st = status_json(&till);
    let tasks = st["task_problems"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{st}");
    assert!(
        tasks[0]
            .as_str()
            .unwrap()
            .starts_with("replicator: panicked: injected fault")
            && tasks[0].as_str().unwrap().ends_with("(restarted 2×)"),
        "{st}"
    );
    let human = String::from_utf8(till.cli(&["status"]).stdout).unwrap();
    assert!(human.contains("Background task:      replicator: panicked"), "{human}");
}
