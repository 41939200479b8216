//! Morning storm benchmark (printed figures, not a timed test): N simulated tills reconnect at
//! once, each with an M-receipt backlog in its own outbox, against ONE real `server-stub` process
//! on loopback. The tills are lightweight clients built from the agent's own sync code — one
//! `Outbox` (its own temp `outbox.db`) and one `ServerClient` per till, batches planned and
//! acknowledged with `replicator::plan_acks` — run as tokio tasks of this process (not N agent
//! processes). Meanwhile another till quotes a card again and again.
//!
//! Prints: every N×M receipt on the server exactly once (the server's turnover report counts the
//! receipts of the storm day; the acks say applied once, no duplicate), the drain time, and the
//! quote p50/p99 during the storm beside the quote p50/p99 on the same server idle.
//!
//! Run: `cargo build --release -p server-stub && cargo bench -p till-agent --bench storm`
//! Env: BENCH_STORM_TILLS (200), BENCH_STORM_RECEIPTS (1000 per till), BENCH_STORM_BATCH (100,
//! the agent's default batch_size), BENCH_STORM_QUOTES (idle quotes, 300), BENCH_STORM_TIMEOUT
//! (seconds, 900), BENCH_STORM_DB (the server's `--db`: a SQLite path or a postgres:// URL of an
//! EMPTY database; default a fresh SQLite file in a temp dir), BENCH_STORM_LABEL (row label),
//! BENCH_STORM_INGEST (the server's `--ingest-concurrency`; default: the server's own, the cores).
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::v1::{LineKind, Receipt, ReceiptLine, SyncItem, SyncPayload};
use protocol::{CardId, Currency, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use till_agent::sync::client::ServerClient;
use till_agent::sync::outbox::{now_ms, Outbox};
use till_agent::sync::replicator::{plan_acks, Outcome};

const STORE: &str = "CZ-PRG-01";
/// An active card of fixtures/seed/demo.json.
const CARD: &str = "1900000009000018";
const DAY: &str = "2026-11-24";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn server_stub() -> PathBuf {
    // target/<profile>/deps/storm-… → target/<profile>/server-stub
    let p = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("server-stub");
    assert!(
        p.exists(),
        "{} missing: cargo build -p server-stub (same profile) first",
        p.display()
    );
    p
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stub(args: &[&str]) -> String {
    let out = Command::new(server_stub()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "server-stub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn till_id(t: usize) -> String {
    format!("S{t:04}")
}

fn receipt(till: &str, i: usize) -> Receipt {
    let (s, t) = (StoreId::from(STORE), TillId::from(till));
    let at = chrono::DateTime::parse_from_rfc3339(&format!("{DAY}T08:00:00+01:00")).unwrap()
        + chrono::Duration::seconds(i as i64);
    let no = format!("{till}-{i:07}");
    let line = |name: &str, cents: i64| ReceiptLine {
        sku: Some("8590001".into()),
        name: name.into(),
        category: None,
        quantity: Decimal::ONE,
        unit_price: Decimal::new(cents, 2),
        line_total: Decimal::new(cents, 2),
        vat_rate: Some(Decimal::from(21)),
        kind: LineKind::Sale,
    };
    Receipt {
        id: ReceiptId::derive(&s, &t, &no, &at),
        store_id: s,
        till_id: t,
        pos_receipt_no: no,
        issued_at: at,
        currency: Currency::CZK,
        total: Decimal::new(12990 + 3550, 2),
        card: None,
        original: None,
        lines: vec![line("Šampon", 12990), line("Chléb", 3550)],
        vat: Vec::new(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Default)]
struct Counts {
    applied: AtomicUsize,
    duplicate: AtomicUsize,
    other: AtomicUsize,
    errors: AtomicUsize,
}

/// One till: drain its outbox through its own client, as the agent does (due → POST → acks).
async fn drain(mut outbox: Outbox, client: ServerClient, token: String, till: String, batch: usize, c: Arc<Counts>) {
    loop {
        let due = tokio::task::block_in_place(|| outbox.due(batch, now_ms())).unwrap();
        if due.is_empty() {
            let left = tokio::task::block_in_place(|| outbox.stats()).unwrap();
            if left.pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let body = till_agent::sync::outbox::batch_body(STORE, &till, &due);
        match client.sync_body(&token, body).await {
            Ok(resp) => {
                let plan = plan_acks(due.iter().map(|p| (p.item_id.as_str(), p.attempts)), &resp, now_ms());
                let mut sent = Vec::new();
                tokio::task::block_in_place(|| {
                    for (id, o) in &plan {
                        match o {
                            Outcome::Sent { duplicate } => {
                                sent.push(*id);
                                let k = if *duplicate { &c.duplicate } else { &c.applied };
                                k.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Retry { reason, at_ms } => {
                                outbox.mark_retry(id, reason, now_ms(), *at_ms).unwrap()
                            }
                            Outcome::DeadLetter(r) => {
                                c.other.fetch_add(1, Ordering::Relaxed);
                                outbox.mark_rejected(id, r).unwrap();
                            }
                        }
                    }
                    outbox.mark_sent(&sent).unwrap();
                });
            }
            Err(e) => {
                if c.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("storm: till {till}: {e} (retrying)");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Quotes one after the other (a cashier scanning cards) until `stop`, or `n` of them; sorted.
async fn quotes(client: &ServerClient, token: &str, n: usize, stop: Option<&AtomicBool>) -> Vec<Duration> {
    let card = CardId::normalise(CARD).unwrap();
    let mut lat = Vec::new();
    while lat.len() < n && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
        let t0 = Instant::now();
        client.quote(token, &card).await.expect("quote");
        lat.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lat.sort();
    lat
}

fn main() {
    let tills = env_usize("BENCH_STORM_TILLS", 200);
    let per = env_usize("BENCH_STORM_RECEIPTS", 1000);
    let batch = env_usize("BENCH_STORM_BATCH", 100);
    let idle_n = env_usize("BENCH_STORM_QUOTES", 300);
    let limit = Duration::from_secs(env_usize("BENCH_STORM_TIMEOUT", 900) as u64);
    let tmp = tempfile::tempdir().unwrap();
    let db = std::env::var("BENCH_STORM_DB").unwrap_or_else(|_| tmp.path().join("server.db").display().to_string());
    let backend = if db.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let label = std::env::var("BENCH_STORM_LABEL").unwrap_or_else(|_| backend.to_string());
    println!("morning storm ({label}): {tills} tills × {per} receipts, batches of {batch}, one server-stub");

    // Server: the demo program, one token per till (+ one for the quoting till).
    let t_setup = Instant::now();
    stub(&[
        "seed",
        "--db",
        &db,
        repo().join("fixtures/seed/demo.json").to_str().unwrap(),
    ]);
    let add = |till: &str| {
        stub(&["till", "add", "--db", &db, "--store", STORE, "--till", till])
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string()
    };
    let quote_token = add("Q001");
    let tokens: Vec<String> = (0..tills).map(|t| add(&till_id(t))).collect();

    // Each till's backlog, committed while the server is away (files of 500 receipts).
    let mut outboxes = Vec::with_capacity(tills);
    for t in 0..tills {
        let id = till_id(t);
        let mut o = Outbox::open(&tmp.path().join(format!("{id}.outbox.db"))).unwrap();
        let items: Vec<SyncItem> = (0..per)
            .map(|i| {
                let r = receipt(&id, i);
                SyncItem {
                    item_id: r.id.0.clone(),
                    payload: SyncPayload::Receipt(r),
                }
            })
            .collect();
        for (k, chunk) in items.chunks(500).enumerate() {
            o.commit_file(&format!("{id}-{k}"), "storm.json", chunk).unwrap();
        }
        outboxes.push(o);
    }
    println!(
        "  setup (seed, {} till tokens, backlogs): {:.1} s",
        tills + 1,
        t_setup.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = "storm-admin-token";
    let _srv = Kill(
        Command::new(server_stub())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db", &db])
            .args(["--admin-token", admin])
            .args(
                std::env::var("BENCH_STORM_INGEST")
                    .ok()
                    .map(|n| vec!["--ingest-concurrency".to_string(), n])
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The quoting till has its own thread and runtime: its latency is the server's, not the
    // bench's scheduler's.
    let qrt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let qclient = ServerClient::with_timeout(&url, Duration::from_secs(30)).unwrap();
    let idle = qrt.block_on(quotes(&qclient, &quote_token, idle_n, None));

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let storm_quotes = {
        let (stop, token) = (stop.clone(), quote_token.clone());
        std::thread::spawn(move || qrt.block_on(quotes(&qclient, &token, usize::MAX, Some(&stop))))
    };
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(tills);
        for (t, (o, token)) in outboxes.into_iter().zip(tokens).enumerate() {
            let client = ServerClient::with_timeout(&url, Duration::from_secs(60)).unwrap();
            tasks.push(tokio::spawn(drain(o, client, token, till_id(t), batch, counts.clone())));
        }
        tokio::time::timeout(limit, async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("storm not drained within {limit:?}"));
    });
    let drain_time = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let storm = storm_quotes.join().unwrap();

    // Exactly once, from the server's side: its turnover report counts the storm day's receipts.
    let total = tills * per;
    let report: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/admin/reports/turnover?from={DAY}&to={DAY}"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let on_server: u64 = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["store_id"] == STORE)
        .map(|r| {
            r["receipts"]
                .as_u64()
                .or_else(|| r["receipts"].as_str().and_then(|s| s.parse().ok()))
                .unwrap()
        })
        .sum();
    let applied = counts.applied.load(Ordering::Relaxed);
    let dup = counts.duplicate.load(Ordering::Relaxed);
    let other = counts.other.load(Ordering::Relaxed);
    let errors = counts.errors.load(Ordering::Relaxed);
    println!(
        "  on the server: {on_server} receipts (expected {total}); acks: {applied} applied, {dup} duplicate, {other} rejected; {errors} failed POSTs retried"
    );
    assert_eq!(on_server as usize, total, "every receipt on the server");
    assert_eq!(applied, total, "every receipt applied exactly once");
    assert_eq!(other, 0, "no receipt rejected");
    let rate = total as f64 / drain_time.as_secs_f64();
    println!(
        "  drained in {:.1} s ({rate:.0} receipts/s); quote during the storm p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} quotes); idle p50 {:.1} ms, p99 {:.1} ms ({} quotes)",
        drain_time.as_secs_f64(),
        ms(pct(&storm, 0.5)),
        ms(pct(&storm, 0.99)),
        ms(*storm.last().unwrap()),
        storm.len(),
        ms(pct(&idle, 0.5)),
        ms(pct(&idle, 0.99)),
        idle.len(),
    );
    println!(
        "TABLE\tmorning storm ({label}): {tills} tills × {per} receipts, all on server once, drain time\t{:.1} s ({rate:.0} receipts/s)\t—",
        drain_time.as_secs_f64()
    );
    println!(
        "TABLE\tmorning storm ({label}): quote p50 / p99 during the storm\t{:.1} / {:.1} ms\tidle server {:.1} / {:.1} ms",
        ms(pct(&storm, 0.5)),
        ms(pct(&storm, 0.99)),
        ms(pct(&idle, 0.5)),
        ms(pct(&idle, 0.99)),
    );
}
