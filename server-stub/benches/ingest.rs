//! Ingest benchmark (printed figures, not a timed test): 10 000 receipts sent in batches over
//! real HTTP on loopback to a real server (in-process axum + SQLite file), beside the raw rate of
//! inserting the same rows into the same table with rusqlite on the same disk, same settings
//! (WAL, synchronous=FULL, one transaction per batch), and beside the floor: every row the server
//! writes for those receipts (receipt, ledger entry, each account once per batch) inserted raw the
//! same way — what the server's own writes cost without HTTP, JSON and the rules engine. Request
//! bodies and raw rows are made before the clock starts. Prints CPU µs per receipt too (the steadier
//! figure on a shared machine). Run: `cargo bench -p server-stub --bench ingest`.
//! Env: BENCH_RECEIPTS (default 10000), BENCH_BATCH (default 100), BENCH_DIR (default: temp dir
//! under target/).

use std::sync::Arc;
use std::time::Instant;

use protocol::rules::{self, Program, RulesSnapshot};
use protocol::v1::{LineKind, Receipt, ReceiptLine, SyncBatch, SyncItem, SyncPayload, SyncResponse};
use protocol::{CardId, Currency, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use server_stub::http::{router, AppState};
use server_stub::store::sqlite::{open_connection, SqliteRepo};
use server_stub::store::{transact, CardRow, Repository, StoredReceipt};

/// CPU seconds this process has used so far (user + system, all threads; /proc, 10 ms ticks).
/// Beside the wall-clock rates: on a machine shared with other work the CPU a receipt costs is
/// the steadier figure.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // fields 14 and 15 of stat(5) are the 12th and 13th after the ')'.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn program() -> Program {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed/demo.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("seed fixture")).expect("json");
    serde_json::from_value(v["program"].clone()).expect("program")
}

fn receipts(n: usize, cards: &[CardId]) -> Vec<Receipt> {
    let (s, t) = (StoreId::from("CZ-PRG-01"), TillId::from("T1"));
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00+01:00").unwrap();
    (0..n)
        .map(|i| {
            let at = start + chrono::Duration::seconds(i as i64 * 7);
            let no = format!("{i:07}");
            let lines = vec![
                ReceiptLine {
                    sku: Some(format!("859{:07}", i % 500)),
                    name: "Šampon".into(),
                    category: Some("drogerie".into()),
                    quantity: Decimal::ONE,
                    unit_price: Decimal::new(12990, 2),
                    line_total: Decimal::new(12990, 2),
                    vat_rate: Some(Decimal::from(21)),
                    kind: LineKind::Sale,
                },
                ReceiptLine {
                    sku: Some("8590002".into()),
                    name: "Rtěnka".into(),
                    category: Some("kosmetika".into()),
                    quantity: Decimal::from(2),
                    unit_price: Decimal::new(19900, 2),
                    line_total: Decimal::new(39800, 2),
                    vat_rate: Some(Decimal::from(21)),
                    kind: LineKind::Sale,
                },
                ReceiptLine {
                    sku: None,
                    name: "Chléb".into(),
                    category: None,
                    quantity: Decimal::ONE,
                    unit_price: Decimal::new(3550, 2),
                    line_total: Decimal::new(3550, 2),
                    vat_rate: Some(Decimal::from(12)),
                    kind: LineKind::Sale,
                },
            ];
            Receipt {
                id: ReceiptId::derive(&s, &t, &no, &at),
                store_id: s.clone(),
                till_id: t.clone(),
                pos_receipt_no: no,
                issued_at: at,
                currency: Currency::CZK,
                total: lines.iter().map(|l| l.line_total).sum(),
                card: Some(cards[i % cards.len()].clone()),
                original: None,
                lines,
                vat: vec![],
            }
        })
        .collect()
}

/// Bench customer `B{i:05}` ("Jana Nováková i"), with `tier`.
fn bench_customer(i: usize, tier: Option<String>) -> protocol::v1::Customer {
    protocol::v1::Customer {
        id: protocol::CustomerId(format!("B{i:05}")),
        name: protocol::v1::CustomerName::Person {
            first_name: "Jana".into(),
            surname: format!("Nováková {i}"),
        },
        contact: Default::default(),
        consents: protocol::v1::Consents {
            program_rules: true,
            marketing: false,
        },
        birthday: None,
        tier,
        parent: None,
        discount_override: None,
    }
}

fn setup_customers(repo: &dyn Repository, program: &Program, n: usize) -> Vec<CardId> {
    transact(repo, |tx| {
        tx.put_program(program)?;
        let mut cards = Vec::new();
        for i in 0..n {
            let c = bench_customer(i, None);
            let id = c.id.clone();
            tx.put_customer(&c, &Default::default())?;
            let payload = format!("19008{i:010}");
            let num = format!("{payload}{}", protocol::ids::luhn_check_digit(&payload));
            let card = CardId::normalise(&num).unwrap();
            tx.put_card(&CardRow {
                number: card.clone(),
                customer_id: Some(id),
                status: protocol::v1::CardStatus::Active,
                issued_store: None,
                issued_at: None,
            })?;
            cards.push(card);
        }
        Ok(cards)
    })
    .expect("setup")
}

/// The server binary's allocator (src/main.rs): the in-process server here measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n = env_usize("BENCH_RECEIPTS", 10_000);
    let batch = env_usize("BENCH_BATCH", 100);
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let program = program();

    // --- via HTTP
    let db = dir.path().join("bench-server.db");
    let repo = SqliteRepo::open(&db).unwrap();
    let cards = setup_customers(&repo, &program, 200);
    let token = server_stub::service::till_add(&repo, &StoreId::from("CZ-PRG-01"), &TillId::from("T1")).unwrap();
    let rs = receipts(n, &cards);
    let batches: Vec<SyncBatch> = rs
        .chunks(batch)
        .map(|c| SyncBatch {
            version: "v1".into(),
            store_id: StoreId::from("CZ-PRG-01"),
            till_id: TillId::from("T1"),
            items: c
                .iter()
                .map(|r| SyncItem {
                    item_id: r.id.0.clone(),
                    payload: SyncPayload::Receipt(r.clone()),
                })
                .collect(),
        })
        .collect();
    let c0 = cpu_secs();
    let (http_secs, applied) = http_ingest(Arc::new(repo), &token, &batches);
    let http_cpu = cpu_secs() - c0;
    assert_eq!(applied, n, "every receipt applied once");

    // --- raw: same rows, same table, same settings, plain rusqlite inserts
    let raw_db = dir.path().join("bench-raw.db");
    let mut conn = open_connection(&raw_db).unwrap();
    let rows: Vec<(Receipt, String, String)> = rs
        .iter()
        .map(|r| {
            let effect = rules::evaluate_receipt(&program, r);
            (
                r.clone(),
                serde_json::to_string(&effect).unwrap(),
                serde_json::to_string(r).unwrap(),
            )
        })
        .collect();
    let (t0, c0) = (Instant::now(), cpu_secs());
    for chunk in rows.chunks(batch) {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO receipts (id, payload_hash, store_id, till_id, pos_receipt_no, issued_at, business_day, card,
                     account_id, total, turnover, points_credited, campaign, effect, payload, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .unwrap();
            for (r, effect, payload) in chunk {
                st.execute(rusqlite::params![
                    r.id.0,
                    "h",
                    r.store_id.0,
                    r.till_id.0,
                    r.pos_receipt_no,
                    r.issued_at.to_rfc3339(),
                    r.issued_at.date_naive().to_string(),
                    r.card.as_ref().map(|c| c.expose().to_string()),
                    "B00000",
                    r.total.to_string(),
                    r.total.to_string(),
                    "0",
                    None::<String>,
                    effect,
                    payload,
                    "now"
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let raw_secs = t0.elapsed().as_secs_f64();
    let raw_cpu = cpu_secs() - c0;

    // --- floor: every row the server writes for these receipts (receipt, ledger entry, the
    // account rewritten once per batch with its change number), made before the clock starts
    // (the rules engine run here, not timed), inserted with rusqlite in one transaction per batch
    // into a database with the same customers and cards. No HTTP, JSON parsing or rules.
    let floor_db = dir.path().join("bench-floor.db");
    {
        let repo = SqliteRepo::open(&floor_db).unwrap();
        setup_customers(&repo, &program, 200);
    }
    let floor = floor_rows(&program, &rs, batch);
    let mut conn = open_connection(&floor_db).unwrap();
    let (t0, c0) = (Instant::now(), cpu_secs());
    for (receipts, ledger, customers) in &floor {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO receipts (id, payload_hash, store_id, till_id, pos_receipt_no, issued_at, business_day, card,
                     account_id, total, turnover, points_credited, campaign, effect, payload, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .unwrap();
            for row in receipts {
                st.execute(rusqlite::params_from_iter(row.iter())).unwrap();
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO ledger (account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)",
                )
                .unwrap();
            for row in ledger {
                st.execute(rusqlite::params_from_iter(row.iter())).unwrap();
            }
            let last: i64 = tx
                .query_row(
                    "INSERT INTO counters (name, value) VALUES ('change_seq', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = value + ?1 RETURNING value",
                    [customers.len() as i64],
                    |r| r.get(0),
                )
                .unwrap();
            let mut st = tx
                .prepare_cached(
                    "UPDATE customers SET customer = ?2, state = ?3, expiring = ?4, change_seq = ?5 WHERE id = ?1",
                )
                .unwrap();
            for (i, (id, c, (s, expiring))) in customers.iter().enumerate() {
                let seq = last - customers.len() as i64 + 1 + i as i64;
                st.execute(rusqlite::params![id, c, s, expiring, seq]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let floor_secs = t0.elapsed().as_secs_f64();
    let floor_cpu = cpu_secs() - c0;
    let _ = StoredReceipt {
        receipt: rs[0].clone(),
        payload_hash: String::new(),
        account: None,
        effect: rules::evaluate_receipt(&program, &rs[0]),
        payload_json: None,
    };
    let _: Option<RulesSnapshot> = None;

    let http_rate = n as f64 / http_secs;
    let raw_rate = n as f64 / raw_secs;
    println!(
        "ingest benchmark: {n} receipts, batches of {batch}, SQLite WAL synchronous=FULL on {}",
        base.display()
    );
    println!("  via HTTP /v1/sync (auth, JSON, dedupe, rules engine, account update): {http_secs:8.3} s  {http_rate:10.0} receipts/s");
    println!("  raw rusqlite INSERT of the same rows (one tx per batch):              {raw_secs:8.3} s  {raw_rate:10.0} receipts/s");
    let floor_rate = n as f64 / floor_secs;
    println!("  floor: rusqlite INSERT/UPDATE of every row the server writes:         {floor_secs:8.3} s  {floor_rate:10.0} receipts/s  ({:.0} µs CPU/receipt)", floor_cpu / n as f64 * 1e6);
    println!(
        "  ratio HTTP / raw: {:.3} ({:.1}x slower); floor / raw: {:.3}; HTTP / floor: {:.3}",
        http_rate / raw_rate,
        raw_rate / http_rate,
        floor_rate / raw_rate,
        http_rate / floor_rate
    );
    println!(
        "  CPU (this process, client + server): HTTP {:.0} µs/receipt, raw {:.0} µs/row (ratio {:.2}); load average {}",
        http_cpu / n as f64 * 1e6,
        raw_cpu / n as f64 * 1e6,
        raw_cpu / http_cpu.max(1e-9),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    // The same ingest on PostgreSQL (scripts/bench.sh starts a throw-away cluster and sets the URL
    // of an empty database), beside SQLite's.
    if let Ok(url) = std::env::var("BENCH_PG_URL") {
        let repo = server_stub::store::pg::PgRepo::open(&url, 16).expect("PostgreSQL for the bench");
        let cards = setup_customers(&repo, &program, 200);
        assert_eq!(cards.len(), 200);
        let token = server_stub::service::till_add(&repo, &StoreId::from("CZ-PRG-01"), &TillId::from("T1")).unwrap();
        let (pg_secs, pg_applied) = http_ingest(Arc::new(repo), &token, &batches);
        assert_eq!(pg_applied, n, "every receipt applied once on PostgreSQL");
        let pg_rate = n as f64 / pg_secs;
        println!("  via HTTP /v1/sync on PostgreSQL (same batches):                       {pg_secs:8.3} s  {pg_rate:10.0} receipts/s");
        println!("TABLE\tserver ingest on PostgreSQL, {n} receipts via HTTP /v1/sync\t{pg_rate:.0} receipts/s\tSQLite via HTTP {http_rate:.0} receipts/s ({:.0} %)", pg_rate / http_rate * 100.0);
    }
    // A row of scripts/bench.sh's table: figure, value, baseline.
    println!("TABLE\tserver raw ingest, {n} receipts via HTTP /v1/sync\t{http_rate:.0} receipts/s\traw SQLite insert {raw_rate:.0} rows/s ({:.0} %)", http_rate / raw_rate * 100.0);
    println!("TABLE\tserver ingest floor: the server's own rows (receipt + ledger entry + account per batch) inserted raw\t{floor_rate:.0} receipts/s ({:.0} % of raw)\tHTTP ingest {http_rate:.0} receipts/s = {:.0} % of the floor", floor_rate / raw_rate * 100.0, http_rate / floor_rate * 100.0);
}

/// Rows the server writes per batch: receipts (16 columns as the raw insert), ledger entries
/// (8 columns) and each touched account once (id, customer JSON, state columns), from the same rules
/// engine steps the server runs (lapsed points expire first, then the receipt's effect).
#[allow(clippy::type_complexity)]
fn floor_rows(
    program: &Program,
    rs: &[Receipt],
    batch: usize,
) -> Vec<(
    Vec<Vec<Option<String>>>,
    Vec<Vec<Option<String>>>,
    Vec<(String, String, (String, Option<String>))>,
)> {
    use std::collections::BTreeMap;
    let mut states: BTreeMap<String, protocol::v1::CustomerState> = BTreeMap::new();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    rs.chunks(batch)
        .map(|chunk| {
            let mut receipts = Vec::new();
            let mut ledger = Vec::new();
            let mut touched: BTreeMap<String, ()> = BTreeMap::new();
            for r in chunk {
                let card = r.card.as_ref().expect("carded").expose().to_string();
                // B00000… holds the card 19008 + i: the customer number is the card's payload.
                let account = format!("B{:05}", card[5..15].parse::<u64>().unwrap());
                let effect = rules::evaluate_receipt(program, r);
                let day = r.issued_at.date_naive();
                let state = states.entry(account.clone()).or_default();
                let current = rules::expire_points(state, day);
                let (next, _) = rules::try_apply_effect(program, &current, &effect, day).expect("no overflow");
                let t = |v: &str| Some(v.to_string());
                ledger.push(vec![
                    t(&account),
                    t(&now),
                    t("receipt"),
                    t(&r.id.0),
                    t(&r.store_id.0),
                    t(&r.till_id.0),
                    Some((next.points_balance - current.points_balance).normalize().to_string()),
                    Some(next.points_balance.normalize().to_string()),
                ]);
                receipts.push(vec![
                    t(&r.id.0),
                    t("h"),
                    t(&r.store_id.0),
                    t(&r.till_id.0),
                    t(&r.pos_receipt_no),
                    Some(r.issued_at.to_rfc3339()),
                    Some(day.to_string()),
                    t(&card),
                    t(&account),
                    Some(r.total.to_string()),
                    Some(effect.turnover_delta.to_string()),
                    Some(effect.points_delta.to_string()),
                    effect.campaign.clone(),
                    Some(serde_json::to_string(&effect).unwrap()),
                    Some(serde_json::to_string(r).unwrap()),
                    t(&now),
                ]);
                *state = next;
                touched.insert(account, ());
            }
            let customers = touched
                .into_keys()
                .map(|id| {
                    let state = &states[&id];
                    let i: usize = id[1..].parse().unwrap();
                    let tier = program
                        .tier_for(rules::turnover(program, state, chrono::Utc::now().date_naive()))
                        .name
                        .clone();
                    let c = bench_customer(i, Some(tier));
                    (
                        id,
                        serde_json::to_string(&c).unwrap(),
                        server_stub::store::state_columns(state),
                    )
                })
                .collect();
            (receipts, ledger, customers)
        })
        .collect()
}

/// Send `batches` one after the other over HTTP to an in-process server on `repo`; (seconds, applied).
fn http_ingest(repo: Arc<dyn Repository>, token: &str, batches: &[SyncBatch]) -> (f64, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let state = AppState::new(repo, None, None);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let url = format!("http://{addr}/v1/sync");
    // The request bodies are made before the clock starts, as the raw insert's rows are: the
    // figure is the server's (the client's serialisation is not ingest work).
    let bodies: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).expect("batch serialises"))
        .collect();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let t0 = Instant::now();
        let mut applied = 0usize;
        for b in &bodies {
            let resp: SyncResponse = client
                .post(&url)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.clone())
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            applied += resp
                .acks
                .iter()
                .filter(|a| a.result == protocol::v1::AckResult::Applied)
                .count();
        }
        (t0.elapsed().as_secs_f64(), applied)
    })
}
