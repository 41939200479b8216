//! Ingest benchmark (printed figures, not a timed test): 10 000 receipts sent in batches over
//! real HTTP on loopback to a real server (in-process axum + SQLite file), beside the raw rate of
//! inserting the same rows into the same table with rusqlite on the same disk, same settings
//! (WAL, synchronous=FULL, one transaction per batch), and beside the floor: every row the server
//! writes for those receipts (receipt, ledger entry, each account once per batch) inserted raw the
//! same way — what the server's own writes cost without HTTP, JSON and the rules engine — and
//! beside the same receipts without a card via HTTP (stored, nothing credited: what crediting the
//! accounts costs), and beside the leanest crediting server this bench can write (`lean_server`:
//! the lower bound of any server that credits on the request path, here). The raw insert, the
//! lean server and the HTTP ingest take turns in ten slices of the receipts
//! (the machine drifts within a round; so all three see the same drift). Request
//! bodies and raw rows are made before the clock starts. Prints CPU µs per receipt too (the steadier
//! figure on a shared machine). Run: `cargo bench -p server-stub --bench ingest`.
//! Env: BENCH_RECEIPTS (default 10000), BENCH_BATCH (default 100), BENCH_ROUNDS (default 5),
//! BENCH_SLICES (default 10), BENCH_DIR (default: temp dir under target/; bench.sh runs it a second
//! time on tmpfs, where fsync costs nothing and both sides are CPU-bound), BENCH_TABLE_LABEL
//! (added to the TABLE rows' names), BENCH_PG_URL (the same HTTP ingest on PostgreSQL),
//! BENCH_HTTP_ONLY=1 (the credited HTTP ingest alone, once, for a profiler).

use std::sync::Arc;
use std::time::Instant;

use protocol::rules::{self, Program};
use protocol::v1::{LineKind, Receipt, ReceiptLine, SyncBatch, SyncItem, SyncPayload, SyncResponse};
use protocol::{CardId, Currency, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use server_stub::http::{router, AppState};
use server_stub::store::sqlite::{open_connection, SqliteRepo};
use server_stub::store::{transact, CardRow, Repository};

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

/// The server binary's allocator and memory settings (src/main.rs): the in-process server here
/// measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    server_stub::os::no_transparent_huge_pages();
    let n = env_usize("BENCH_RECEIPTS", 10_000);
    let batch = env_usize("BENCH_BATCH", 100);
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&base).unwrap();
    let program = program();
    println!(
        "ingest benchmark: {n} receipts, batches of {batch}, SQLite WAL synchronous=FULL on {}; {rounds} rounds, each \
         raw and HTTP in turns in {} slices (the baseline beside it through the same drift), then the rest, on fresh databases (the figures are the rounds' medians: this machine's speed \
         drifts by tens of per cent within seconds)",
        base.display(),
        slices()
    );
    let all: Vec<Round> = (0..rounds).map(|i| round(i, n, batch, &base, &program)).collect();
    let med = |f: &dyn Fn(&Round) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (http_rate, raw_rate, floor_rate) = (med(&|r| r.http_rate), med(&|r| r.raw_rate), med(&|r| r.floor_rate));
    let ratio = med(&|r| r.http_rate / r.raw_rate);
    let per = |rate: f64| 1e6 / rate;
    println!(
        "  medians: HTTP {http_rate:.0} receipts/s ({:.1} µs each), raw {raw_rate:.0} rows/s ({:.1} µs), floor {floor_rate:.0} \
         receipts/s ({:.1} µs); HTTP / raw {:.0} % (rounds: {})",
        per(http_rate),
        per(raw_rate),
        per(floor_rate),
        ratio * 100.0,
        all.iter().map(|r| format!("{:.0} %", r.http_rate / r.raw_rate * 100.0)).collect::<Vec<_>>().join(", ")
    );
    let plain_rate = med(&|r| r.plain_rate);
    let (plain_pct, crediting_us) = (
        med(&|r| r.plain_rate / r.raw_rate) * 100.0,
        per(http_rate) - per(plain_rate),
    );
    println!(
        "  the same receipts without a card (stored, deduped, answered; no account credited): {plain_rate:.0} receipts/s \
         ({:.1} µs each), {plain_pct:.0} % of raw (rounds: {}); crediting the accounts costs {crediting_us:.1} µs per receipt",
        per(plain_rate),
        all.iter().map(|r| format!("{:.0} %", r.plain_rate / r.raw_rate * 100.0)).collect::<Vec<_>>().join(", "),
    );
    let lean_rate = med(&|r| r.lean_rate);
    let lean_pct = med(&|r| r.lean_rate / r.raw_rate) * 100.0;
    println!(
        "  the leanest crediting server, in the same turns: {lean_rate:.0} receipts/s ({:.1} µs each), {lean_pct:.0} % of raw \
         (rounds: {}); this server does {:.0} % of its rate",
        per(lean_rate),
        all.iter().map(|r| format!("{:.0} %", r.lean_rate / r.raw_rate * 100.0)).collect::<Vec<_>>().join(", "),
        med(&|r| r.http_rate / r.lean_rate) * 100.0,
    );
    let (reads, parse, empty) = (med(&|r| r.reads_us), med(&|r| r.parse_us), med(&|r| r.empty_http_us));
    let logic = med(&|r| r.logic_us);
    let floor_sum = per(floor_rate) + reads + parse + empty;
    println!(
        "  what any server must spend per receipt here, apart: rows written (floor) {:.1} µs + its reads {reads:.1} µs + \
         parsing the batch {parse:.1} µs + an HTTP round trip with the same body and answer {empty:.1} µs = \
         {floor_sum:.1} µs, before any rules, dedupe or account logic; with the rules engine and the rows' formatting \
         alone ({logic:.1} µs) {:.1} µs; 50 % of raw is {:.1} µs",
        per(floor_rate),
        floor_sum + logic,
        2.0 * per(raw_rate)
    );
    // The same ingest on PostgreSQL (scripts/bench.sh starts a throw-away cluster and sets the URL
    // of an empty database), beside SQLite's.
    if let Some(url) = std::env::var("BENCH_PG_URL").ok().filter(|u| !u.is_empty()) {
        let repo = server_stub::store::pg::PgRepo::open(&url, 16).expect("PostgreSQL for the bench");
        let cards = setup_customers(&repo, &program, 200);
        assert_eq!(cards.len(), 200);
        let token = server_stub::service::till_add(&repo, &StoreId::from("CZ-PRG-01"), &TillId::from("T1")).unwrap();
        let batches = batches_of(&receipts(n, &cards), batch);
        let (pg_secs, pg_applied) = http_ingest(Arc::new(repo), &token, &batches);
        assert_eq!(pg_applied, n, "every receipt applied once on PostgreSQL");
        let pg_rate = n as f64 / pg_secs;
        println!("  via HTTP /v1/sync on PostgreSQL (same batches):                       {pg_secs:8.3} s  {pg_rate:10.0} receipts/s");
        println!("TABLE\tserver ingest on PostgreSQL, {n} receipts via HTTP /v1/sync\t{pg_rate:.0} receipts/s\tSQLite via HTTP {http_rate:.0} receipts/s ({:.0} %)", pg_rate / http_rate * 100.0);
    }
    // Rows of scripts/bench.sh's table: figure, value, baseline; BENCH_TABLE_LABEL (bench.sh's
    // second run, its databases on tmpfs) is added to each figure's name.
    let tag = std::env::var("BENCH_TABLE_LABEL")
        .ok()
        .filter(|l| !l.is_empty())
        .map_or_else(String::new, |l| format!(" [{l}]"));
    println!("TABLE\tserver raw ingest, {n} receipts via HTTP /v1/sync (median of {rounds} rounds){tag}\t{http_rate:.0} receipts/s\traw SQLite insert {raw_rate:.0} rows/s ({:.0} %)", ratio * 100.0);
    println!("TABLE\tthe leanest crediting server, a lower bound: the same HTTP, parse, rules engine and rows, accounts in memory, nothing else (median of {rounds} rounds){tag}\t{lean_rate:.0} receipts/s ({lean_pct:.0} % of raw)\tthis server {http_rate:.0} receipts/s = {:.0} % of it", med(&|r| r.http_rate / r.lean_rate) * 100.0);
    println!("TABLE\tserver ingest of the same receipts without a card (stored, nothing credited), via HTTP{tag}\t{plain_rate:.0} receipts/s ({plain_pct:.0} % of raw)\tcrediting the accounts: {crediting_us:.1} µs per receipt of the HTTP ingest's {:.1}", per(http_rate));
    println!("TABLE\tserver ingest floor: the server's own rows (receipt + ledger entry + account per batch) inserted raw{tag}\t{floor_rate:.0} receipts/s ({:.0} % of raw)\tHTTP ingest {http_rate:.0} receipts/s = {:.0} % of the floor", floor_rate / raw_rate * 100.0, http_rate / floor_rate * 100.0);
    println!("TABLE\tserver ingest, µs per receipt: rows written (floor) + reads + parse + HTTP round trip + rules and row formatting, each alone{tag}\t{:.1} + {reads:.1} + {parse:.1} + {empty:.1} + {logic:.1} = {:.1} µs\tHTTP ingest {:.1} µs; 50 % of raw = {:.1} µs", per(floor_rate), floor_sum + logic, per(http_rate), 2.0 * per(raw_rate));
}

/// One round's figures.
struct Round {
    http_rate: f64,
    /// The same receipts without a card (stored, not credited), via HTTP.
    plain_rate: f64,
    /// The same receipts through the leanest crediting server (`lean_server`).
    lean_rate: f64,
    raw_rate: f64,
    floor_rate: f64,
    /// µs per receipt: the server's reads alone (raw), its batch parse alone, an HTTP
    /// round trip of the same bodies to a handler that only reads them and answers the same acks.
    reads_us: f64,
    parse_us: f64,
    /// µs per receipt: the rules engine and the rows' formatting alone (`floor_rows`).
    logic_us: f64,
    empty_http_us: f64,
}

fn batches_of(rs: &[Receipt], batch: usize) -> Vec<SyncBatch> {
    rs.chunks(batch)
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
        .collect()
}

fn round(i: usize, n: usize, batch: usize, base: &std::path::Path, program: &Program) -> Round {
    let dir = tempfile::tempdir_in(base).unwrap();
    // --- via HTTP
    let db = dir.path().join("bench-server.db");
    let repo = SqliteRepo::open(&db).unwrap();
    let cards = setup_customers(&repo, program, 200);
    let token = server_stub::service::till_add(&repo, &StoreId::from("CZ-PRG-01"), &TillId::from("T1")).unwrap();
    let rs = receipts(n, &cards);
    let batches = batches_of(&rs, batch);
    // --- raw: same rows, same table, same settings, plain rusqlite inserts, interleaved with the
    // HTTP ingest in slices (raw then HTTP, then HTTP then raw, ...), so that the machine's drift
    // during the round weighs on the baseline as on the figure.
    let rows: Vec<(Receipt, String, String)> = rs
        .iter()
        .map(|r| {
            let effect = rules::evaluate_receipt(program, r);
            (
                r.clone(),
                serde_json::to_string(&effect).unwrap(),
                serde_json::to_string(r).unwrap(),
            )
        })
        .collect();
    let mut raw_conn = open_connection(&dir.path().join("bench-raw.db")).unwrap();
    let server = HttpServer::start(Arc::new(repo), &token);
    // --- the leanest crediting server (`lean_server`), a lower bound, on its own database, in
    // the same slices.
    let lean_db = dir.path().join("bench-lean.db");
    assert_eq!(
        setup_customers(&SqliteRepo::open(&lean_db).unwrap(), program, 200),
        cards,
        "the same cards"
    );
    let lean = lean_server(&lean_db, program, &cards);
    let lean_ck = open_connection(&lean_db).unwrap();
    // Each slice ends with a FULL checkpoint of its database, inside its clock: the server's
    // background checkpoints of the slice (waited for) and the raw insert's own are paid by the
    // slice that wrote the pages, none runs on into the other's time.
    let server_ck = open_connection(&db).unwrap();
    let bodies = bodies_of(&batches);
    let per_slice = batches.len().div_ceil(slices()).max(1);
    let (mut raw_secs, mut raw_cpu, mut http_secs, mut http_cpu, mut applied) = (0.0, 0.0, 0.0, 0.0, 0);
    let (mut lean_secs, mut lean_cpu, mut lean_applied) = (0.0, 0.0, 0);
    for (k, slice) in bodies.chunks(per_slice).enumerate() {
        let first = k * per_slice * batch;
        let rows = &rows[first..(first + slice.len() * batch).min(rows.len())];
        let mut timed_raw = || {
            let (secs, cpu) = raw_insert(&mut raw_conn, rows, batch);
            let (ck_secs, ck_cpu) = checkpoint(&raw_conn);
            raw_secs += secs + ck_secs;
            raw_cpu += cpu + ck_cpu;
        };
        let mut timed_lean = || {
            let c0 = cpu_secs();
            let (secs, acked) = lean.post(slice);
            let (ck_secs, _) = checkpoint(&lean_ck);
            lean_secs += secs + ck_secs;
            lean_cpu += cpu_secs() - c0;
            lean_applied += acked;
        };
        if k % 2 == 0 && !http_only() {
            timed_raw();
            timed_lean();
        }
        let c0 = cpu_secs();
        let (secs, acked) = server.post(slice);
        let post_cpu = cpu_secs() - c0;
        let (ck_secs, ck_cpu) = checkpoint(&server_ck);
        http_secs += secs + ck_secs;
        http_cpu += post_cpu + ck_cpu;
        applied += acked;
        if k % 2 == 1 && !http_only() {
            timed_lean();
            timed_raw();
        }
    }
    drop(server);
    drop(lean);
    assert_eq!(applied, n, "every receipt applied once");
    if http_only() {
        println!(
            "  round {}: HTTP only, {http_secs:.3} s, CPU {:.1} µs/receipt",
            i + 1,
            http_cpu / n as f64 * 1e6
        );
        std::process::exit(0);
    }

    // --- the same receipts without a loyalty card, via HTTP on a fresh database: stored, deduped
    // and answered the same way, but no account is credited (no ledger entry, no account row, no
    // tier). The difference to the HTTP ingest above is what crediting the accounts costs.
    let plain_db = dir.path().join("bench-plain.db");
    let plain_repo = SqliteRepo::open(&plain_db).unwrap();
    setup_customers(&plain_repo, program, 200);
    let plain_token =
        server_stub::service::till_add(&plain_repo, &StoreId::from("CZ-PRG-01"), &TillId::from("T1")).unwrap();
    let plain: Vec<Receipt> = rs
        .iter()
        .map(|r| Receipt {
            card: None,
            ..r.clone()
        })
        .collect();
    let (plain_secs, plain_applied) = http_ingest(Arc::new(plain_repo), &plain_token, &batches_of(&plain, batch));
    assert_eq!(plain_applied, n, "every card-less receipt applied once");

    // --- floor: every row the server writes for these receipts (receipt, ledger entry, the
    // account rewritten once per batch with its change number), made before the insert's clock
    // starts (the rules engine run here, timed on its own below), inserted with rusqlite in one
    // transaction per batch into a database with the same customers and cards. No HTTP, JSON
    // parsing or rules in the insert's time.
    let floor_db = dir.path().join("bench-floor.db");
    {
        let repo = SqliteRepo::open(&floor_db).unwrap();
        setup_customers(&repo, program, 200);
    }
    // The receipts' texts as the request carries them (the server stores that text); then the
    // rows, timed: the rules engine and the formatting of every row, what the server computes
    // between its reads and its writes, here with no dedupe, lookups or copies around it.
    let texts: Vec<String> = rs.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    let t0 = Instant::now();
    let floor = floor_rows(program, &rs, &texts, batch);
    let logic_us = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
    let mut conn = open_connection(&floor_db).unwrap();
    let (t0, c0) = (Instant::now(), cpu_secs());
    for (receipts, ledger, customers) in &floor {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx.prepare_cached(RAW_RECEIPT_INSERT).unwrap();
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
            let first = take_change_seqs(&tx, customers.len());
            let mut st = tx
                .prepare_cached(
                    "UPDATE customers SET customer = ?2, state = ?3, expiring = ?4, change_seq = ?5 WHERE id = ?1",
                )
                .unwrap();
            for (i, (id, c, (s, expiring))) in customers.iter().enumerate() {
                let seq = first + i as i64;
                st.execute(rusqlite::params![id, c, s, expiring, seq]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let floor_secs = t0.elapsed().as_secs_f64();
    let floor_cpu = cpu_secs() - c0;

    let reads_us = raw_reads(&dir.path().join("bench-reads.db"), program, &rs, batch);
    let (parse_us, empty_http_us) = parse_and_empty_http(&batches);
    let (http_rate, raw_rate, floor_rate) = (n as f64 / http_secs, n as f64 / raw_secs, n as f64 / floor_secs);
    let plain_rate = n as f64 / plain_secs;
    assert_eq!(lean_applied, n, "every receipt applied once by the lean server");
    let lean_rate = n as f64 / lean_secs;
    println!("  round {}:", i + 1);
    println!("    via HTTP /v1/sync (auth, JSON, dedupe, rules engine, account update): {http_secs:8.3} s  {http_rate:10.0} receipts/s");
    println!("    the same receipts without a card via HTTP (nothing credited):          {plain_secs:8.3} s  {plain_rate:10.0} receipts/s  ({:.0} % of raw)", plain_rate / raw_rate * 100.0);
    println!("    the leanest crediting server (same HTTP, parse, rules, rows; nothing else), in the same turns: {lean_secs:8.3} s  {lean_rate:10.0} receipts/s  ({:.0} % of raw; CPU {:.0} µs/receipt)", lean_rate / raw_rate * 100.0, lean_cpu / n as f64 * 1e6);
    println!("    raw rusqlite INSERT of the same rows (one tx per batch), in turns with the HTTP ingest: {raw_secs:8.3} s  {raw_rate:10.0} receipts/s");
    println!("    floor: rusqlite INSERT/UPDATE of every row the server writes:         {floor_secs:8.3} s  {floor_rate:10.0} receipts/s  ({:.0} µs CPU/receipt)", floor_cpu / n as f64 * 1e6);
    println!("    reads alone {reads_us:.1} µs/receipt; parse alone {parse_us:.1} µs/receipt; rules + rows alone {logic_us:.1} µs/receipt; HTTP round trip alone {empty_http_us:.1} µs/receipt");
    println!(
        "    ratio HTTP / raw: {:.3} ({:.1}x slower); floor / raw: {:.3}; HTTP / floor: {:.3}",
        http_rate / raw_rate,
        raw_rate / http_rate,
        floor_rate / raw_rate,
        http_rate / floor_rate
    );
    println!(
        "    CPU (this process, client + server): HTTP {:.0} µs/receipt, raw {:.0} µs/row (ratio {:.2}); load average {}",
        http_cpu / n as f64 * 1e6,
        raw_cpu / n as f64 * 1e6,
        raw_cpu / http_cpu.max(1e-9),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    Round {
        http_rate,
        plain_rate,
        lean_rate,
        raw_rate,
        floor_rate,
        reads_us,
        parse_us,
        logic_us,
        empty_http_us,
    }
}

/// µs per receipt of the reads the server makes per batch (its prefetch: the receipt ids for
/// dedupe, the cards, their accounts, the accounts' sub-cards, the store's receipt tags of those
/// POS numbers), raw with rusqlite, one read transaction per batch, rows fetched as text and not
/// parsed, on a database with the customers and cards and no receipts yet (as the ingest meets it).
fn raw_reads(db: &std::path::Path, program: &Program, rs: &[Receipt], batch: usize) -> f64 {
    {
        let repo = SqliteRepo::open(db).unwrap();
        setup_customers(&repo, program, 200);
    }
    let mut conn = open_connection(db).unwrap();
    let keys = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let t0 = Instant::now();
    for chunk in rs.chunks(batch) {
        let tx = conn.transaction().unwrap();
        let fetch = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Vec<String> {
            let mut st = tx.prepare_cached(sql).unwrap();
            let rows = st.query_map(params, |r| r.get::<_, Option<String>>(0)).unwrap();
            rows.map(|r| r.unwrap().unwrap_or_default()).collect()
        };
        let ids = keys(chunk.iter().map(|r| r.id.0.clone()).collect());
        let mut texts = fetch("SELECT payload || payload_hash || account_id || effect FROM receipts WHERE id IN (SELECT value FROM json_each(?1))", &[&ids]).len();
        let cards = keys(
            chunk
                .iter()
                .filter_map(|r| r.card.as_ref().map(|c| c.expose().to_string()))
                .collect(),
        );
        let holders = fetch(
            "SELECT customer_id FROM cards WHERE number IN (SELECT value FROM json_each(?1))",
            &[&cards],
        );
        texts += holders.len();
        let holders = keys(holders);
        texts += fetch("SELECT customer || state || ifnull(expiring, '') || change_seq FROM customers WHERE id IN (SELECT value FROM json_each(?1))", &[&holders]).len();
        texts += fetch(
            "SELECT id FROM customers WHERE parent_id IN (SELECT value FROM json_each(?1))",
            &[&holders],
        )
        .len();
        let numbers = keys(chunk.iter().map(|r| r.pos_receipt_no.clone()).collect());
        texts += fetch("SELECT payload FROM receipt_tags WHERE store_id = 'CZ-PRG-01' AND pos_receipt_no IN (SELECT value FROM json_each(?1))", &[&numbers]).len();
        std::hint::black_box(texts);
        tx.commit().unwrap();
    }
    t0.elapsed().as_secs_f64() / rs.len() as f64 * 1e6
}

/// µs per receipt of (the server's parse of `batches`' bodies alone; an HTTP round
/// trip of the same bodies to a handler that reads them and answers acks of the same size).
fn parse_and_empty_http(batches: &[SyncBatch]) -> (f64, f64) {
    let n: usize = batches.iter().map(|b| b.items.len()).sum();
    let bodies: Vec<Vec<u8>> = batches.iter().map(|b| serde_json::to_vec(b).unwrap()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    for b in &bodies {
        let (parsed, _) = server_stub::http::syncbody::fast_batch(b).expect("the fast path takes the bench's batches");
        std::hint::black_box(parsed);
    }
    let parse = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
    // Every batch is answered with the first one's acks (the same size for equal batches).
    let acks = batches[0]
        .items
        .iter()
        .map(|i| protocol::v1::Ack {
            item_id: i.item_id.clone(),
            result: protocol::v1::AckResult::Applied,
        })
        .collect();
    let answer = Arc::new(serde_json::to_vec(&SyncResponse { acks }).unwrap());
    let app = axum::Router::new().route(
        "/v1/sync",
        axum::routing::post(move |body: axum::body::Bytes| {
            let answer = answer.clone();
            async move {
                std::hint::black_box(body);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    (*answer).clone(),
                )
            }
        }),
    );
    let (secs, acked) = HttpServer::serve(rt, app, "any").post(&bodies);
    assert_eq!(
        acked,
        bodies.len() * batches[0].items.len(),
        "the empty handler's answers"
    );
    let empty = secs / n as f64 * 1e6;
    (parse, empty)
}

/// Rows the server writes per batch: receipts (16 columns as the raw insert), ledger entries
/// (8 columns) and each touched account once (id, customer JSON, state columns), from the same rules
/// engine steps the server runs (lapsed points expire first, then the receipt's effect).
#[allow(clippy::type_complexity)]
fn floor_rows(
    program: &Program,
    rs: &[Receipt],
    texts: &[String],
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
        .zip(texts.chunks(batch))
        .map(|(chunk, texts)| {
            let mut receipts = Vec::new();
            let mut ledger = Vec::new();
            let mut touched: BTreeMap<String, ()> = BTreeMap::new();
            for (r, text) in chunk.iter().zip(texts) {
                let card = r.card.as_ref().expect("carded").expose().to_string();
                let account = holder_of(&card);
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
                    t(text),
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

/// BENCH_HTTP_ONLY=1: the first round's HTTP ingest slices only, then exit (for a profiler:
/// nothing else in the process's samples but the set-up).
fn http_only() -> bool {
    std::env::var_os("BENCH_HTTP_ONLY").is_some_and(|v| v == "1")
}

/// Slices of a round (BENCH_SLICES, default 10): the raw insert and the HTTP ingest take turns
/// slice by slice. 1: each in one go, raw first.
fn slices() -> usize {
    env_usize("BENCH_SLICES", 10).max(1)
}

/// `PRAGMA wal_checkpoint(FULL)` on `conn`, after a checkpoint running already (the server's)
/// ended: copies the rest of the WAL into the database and syncs it; (seconds, CPU
/// seconds).
fn checkpoint(conn: &rusqlite::Connection) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), cpu_secs());
    // Busy while another checkpoint runs (SQLite does not wait for that one): try again.
    while conn
        .query_row("PRAGMA wal_checkpoint(FULL)", [], |r| r.get::<_, i64>(0))
        .unwrap()
        != 0
    {
        assert!(t0.elapsed().as_secs() < 30, "the checkpoint never ran to the end");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    (t0.elapsed().as_secs_f64(), cpu_secs() - c0)
}

/// The receipt row as the raw insert and the floor write it: the server's 16 columns.
const RAW_RECEIPT_INSERT: &str = "INSERT INTO receipts (id, payload_hash, store_id, till_id, pos_receipt_no, issued_at,
     business_day, card, account_id, total, turnover, points_credited, campaign, effect, payload, received_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Insert the raw rows, one transaction per `batch` rows; (seconds, CPU seconds).
fn raw_insert(conn: &mut rusqlite::Connection, rows: &[(Receipt, String, String)], batch: usize) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), cpu_secs());
    for chunk in rows.chunks(batch) {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx.prepare_cached(RAW_RECEIPT_INSERT).unwrap();
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
    (t0.elapsed().as_secs_f64(), cpu_secs() - c0)
}

/// The request bodies, made before any clock starts (as the raw insert's rows are): the
/// figure is the server's, the client's serialisation is not ingest work.
fn bodies_of(batches: &[SyncBatch]) -> Vec<Vec<u8>> {
    batches
        .iter()
        .map(|b| serde_json::to_vec(b).expect("batch serialises"))
        .collect()
}

/// An in-process server (axum on loopback, the server's own router) and one client connection
/// to it, answering already when `start` returns: its start is not ingest.
struct HttpServer {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    token: String,
}

impl HttpServer {
    fn start(repo: Arc<dyn Repository>, token: &str) -> HttpServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = rt.block_on(async { router(AppState::new(repo, None, None)) });
        HttpServer::serve(rt, app, token)
    }

    /// Serve `app` and wait until it answers (a GET of `/healthz`, whatever its status, on the
    /// connection the posts use then).
    fn serve(rt: tokio::runtime::Runtime, app: axum::Router, token: &str) -> HttpServer {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::new();
        rt.block_on(async {
            let ready = client
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .expect("the server answers");
            ready.bytes().await.expect("its answer is read, the connection kept");
        });
        HttpServer {
            rt,
            client,
            url: format!("http://{addr}/v1/sync"),
            token: token.to_string(),
        }
    }

    /// POST `bodies` one after the other; (seconds from the first request out to the last
    /// answer in, items acked `applied`). The answers are read after the clock stops: reading
    /// the acks is the client's work.
    fn post(&self, bodies: &[Vec<u8>]) -> (f64, usize) {
        self.rt.block_on(async {
            let mut answers = Vec::with_capacity(bodies.len());
            let t0 = Instant::now();
            for b in bodies {
                let answer = self
                    .client
                    .post(&self.url)
                    .bearer_auth(&self.token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone())
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                answers.push(answer);
            }
            let secs = t0.elapsed().as_secs_f64();
            let applied = answers
                .iter()
                .map(|a| {
                    let resp: SyncResponse = serde_json::from_slice(a).expect("a sync answer");
                    resp.acks
                        .iter()
                        .filter(|a| a.result == protocol::v1::AckResult::Applied)
                        .count()
                })
                .sum();
            (secs, applied)
        })
    }
}

/// Send `batches` one after the other over HTTP to an in-process server on `repo`; (seconds, applied).
fn http_ingest(repo: Arc<dyn Repository>, token: &str, batches: &[SyncBatch]) -> (f64, usize) {
    HttpServer::start(repo, token).post(&bodies_of(batches))
}

/// Take `n` change numbers from the server's counter in `tx`, as the server does for the accounts
/// a batch rewrites: the first one taken (the others follow it).
fn take_change_seqs(tx: &rusqlite::Transaction<'_>, n: usize) -> i64 {
    let last: i64 = tx
        .query_row(
            "INSERT INTO counters (name, value) VALUES ('change_seq', ?1)
         ON CONFLICT(name) DO UPDATE SET value = value + ?1 RETURNING value",
            [n as i64],
            |r| r.get(0),
        )
        .unwrap();
    last - n as i64 + 1
}

/// The bench customer holding `card` (`setup_customers`: card 19008 + i holds B{i:05}, the
/// customer number is the card's payload).
fn holder_of(card: &str) -> String {
    format!("B{:05}", card[5..15].parse::<u64>().unwrap())
}

/// The leanest crediting server this bench can think of, as a lower bound for any server that
/// credits on the request path: the same HTTP stack, the same batch parse (the server's fast
/// path), an indexed read of the batch's receipt ids (exactly once), the same rules engine steps,
/// and the same rows (receipt with its text as sent, ledger entry, each touched account's state
/// once per batch with its change number), in one transaction per batch. Everything else is
/// left out in its favour: the cards' holders and the accounts' states are in memory from
/// before the clock (no reads for them), no token check, no payload hash (a duplicate is not
/// compared), no validation, returns, tags, family accounts, tier changes or messages.
fn lean_server(db: &std::path::Path, program: &Program, cards: &[CardId]) -> HttpServer {
    use std::collections::HashMap;
    use std::sync::Mutex;
    struct Lean {
        conn: Mutex<rusqlite::Connection>,
        program: Program,
        holders: HashMap<String, String>,
        states: Mutex<HashMap<String, protocol::v1::CustomerState>>,
    }
    let holders: HashMap<String, String> = cards
        .iter()
        .map(|c| {
            let number = c.expose().to_string();
            let account = holder_of(&number);
            (number, account)
        })
        .collect();
    let states = holders.values().map(|a| (a.clone(), Default::default())).collect();
    let lean = Arc::new(Lean {
        conn: Mutex::new(open_connection(db).unwrap()),
        program: program.clone(),
        holders,
        states: Mutex::new(states),
    });
    fn apply(lean: &Lean, body: &[u8]) -> Vec<u8> {
        let (batch, spans) =
            server_stub::http::syncbody::fast_batch(body).expect("the fast path takes the bench's batches");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut conn = lean.conn.lock().unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let ids = serde_json::to_string(&batch.items.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>()).unwrap();
        let seen: std::collections::HashSet<String> = tx
            .prepare_cached("SELECT id FROM receipts WHERE id IN (SELECT value FROM json_each(?1))")
            .unwrap()
            .query_map([ids], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut states = lean.states.lock().unwrap();
        let mut touched: Vec<String> = Vec::new();
        let mut acks = Vec::with_capacity(batch.items.len());
        {
            let mut receipt_st = tx.prepare_cached(RAW_RECEIPT_INSERT).unwrap();
            let mut ledger_st = tx
                .prepare_cached(
                    "INSERT INTO ledger (account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note)
                     VALUES (?1, ?2, 'receipt', ?3, ?4, ?5, ?6, ?7, NULL)",
                )
                .unwrap();
            for (item, span) in batch.items.iter().zip(&spans) {
                let SyncPayload::Receipt(r) = &item.payload else {
                    unreachable!("receipts only")
                };
                let result = if seen.contains(&r.id.0) {
                    protocol::v1::AckResult::Duplicate
                } else {
                    let effect = rules::try_evaluate_receipt(&lean.program, r).expect("no overflow");
                    let day = r.issued_at.date_naive();
                    let card = r.card.as_ref().map(|c| c.expose());
                    let account = card.and_then(|c| lean.holders.get(c));
                    if let Some(account) = account {
                        let state = states.get_mut(account).expect("every holder's state");
                        let current = rules::expire_points(state, day);
                        let (next, _) =
                            rules::try_apply_effect(&lean.program, &current, &effect, day).expect("no overflow");
                        ledger_st
                            .execute(rusqlite::params![
                                account,
                                now,
                                r.id.0,
                                r.store_id.0,
                                r.till_id.0,
                                (next.points_balance - current.points_balance).normalize().to_string(),
                                next.points_balance.normalize().to_string(),
                            ])
                            .unwrap();
                        *state = next;
                        if !touched.contains(account) {
                            touched.push(account.clone());
                        }
                    }
                    receipt_st
                        .execute(rusqlite::params![
                            r.id.0,
                            "h",
                            r.store_id.0,
                            r.till_id.0,
                            r.pos_receipt_no.trim(),
                            r.issued_at.to_rfc3339(),
                            day.to_string(),
                            card,
                            account,
                            r.total.to_string(),
                            effect.turnover_delta.to_string(),
                            effect.points_delta.to_string(),
                            effect.campaign,
                            serde_json::to_string(&effect).unwrap(),
                            &body[span.clone()],
                            now,
                        ])
                        .unwrap();
                    protocol::v1::AckResult::Applied
                };
                acks.push(protocol::v1::Ack {
                    item_id: item.item_id.clone(),
                    result,
                });
            }
            let first = take_change_seqs(&tx, touched.len());
            let mut st = tx
                .prepare_cached("UPDATE customers SET state = ?2, expiring = ?3, change_seq = ?4 WHERE id = ?1")
                .unwrap();
            for (i, id) in touched.iter().enumerate() {
                let (state, expiring) = server_stub::store::state_columns(&states[id]);
                let seq = first + i as i64;
                st.execute(rusqlite::params![id, state, expiring, seq]).unwrap();
            }
        }
        tx.commit().unwrap();
        serde_json::to_vec(&SyncResponse { acks }).unwrap()
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = axum::Router::new().route(
        "/v1/sync",
        axum::routing::post(move |body: axum::body::Bytes| {
            let lean = lean.clone();
            async move {
                let answer = tokio::task::block_in_place(|| apply(&lean, &body));
                ([(axum::http::header::CONTENT_TYPE, "application/json")], answer)
            }
        }),
    );
    HttpServer::serve(rt, app, "any")
}
