//! The sync link's classification with the real agent: an address that answers, but not as the
//! loyalty server (a misconfigured reverse proxy, a maintenance page), is a transport problem —
//! receipts stay queued, `status` says why — and once the real server is there they arrive once.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::*;

use crate::agent::{receipt_json, server_count, Till, DEMO_CARD, STORE, TILL};

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
    let mut till = Till::new(&tmp.path().join("till"), &proxy.url, &token, "");
    till.start();
    for i in 1..=4 {
        till.drop_file(
            &format!("r{i}.json"),
            receipt_json(i, (i % 2 == 0).then_some(DEMO_CARD)).as_bytes(),
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
        human.contains("Sync problem:        the server address does not answer as the loyalty server"),
        "{human}"
    );
    assert!(human.contains("Dead letters:        0"), "{human}");

    // The right address: all 4 arrive, once each, and the problem is gone.
    drop(till);
    let mut till = Till::new(&tmp.path().join("till"), &srv.url, &token, "");
    till.start();
    let sent = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 4).then_some(())
    });
    assert!(sent.is_some(), "not all sent; agent log:\n{}", till.stderr());
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE 'E2E-%'"
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
