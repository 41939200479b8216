//! Agent pipeline benchmark (printed figures, not a timed test). Real `till-agent` and
//! `server-stub` binaries on loopback, real files, real SQLite.
//!
//!  (a) file renamed into the export folder → committed on the server: p50/p99 over N receipts,
//!      one at a time (a till writes one receipt at a time);
//!  (b) a 10 000-receipt outbox backlog drained (receipts/s) beside the server's raw ingest rate
//!      (the same batches POSTed straight to `/v1/sync`);
//!  (c) durable enqueue rate (`Outbox::commit_file`, one receipt + file hash per transaction,
//!      WAL + synchronous=FULL) beside a raw rusqlite WAL+FULL insert of the same payload on the
//!      same disk.
//!
//! Run: `cargo build -p server-stub -p till-agent && cargo bench --profile dev -p till-agent --bench pipeline`
//! Env: BENCH_LATENCY_N (1000), BENCH_BACKLOG_N (10000), BENCH_BACKLOG_BATCH (100, the agent's
//! default batch_size), BENCH_ENQUEUE_N (2000), BENCH_DIR, BENCH_ONLY (a subset of "abc"),
//! BENCH_BACKLOG_ROUNDS (5: (b)'s table rows are the rounds' medians),
//! BENCH_AGENT_BIN (another till-agent binary, e.g. a saved build to compare against),
//! BENCH_OUTBOX_V4 / BENCH_OUTBOX_V5 (set: the backlog's outbox is left at schema 4 / 5, for an agent
//! built before schema 5 / 6).
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::v1::{LineKind, Receipt, ReceiptLine, SyncBatch, SyncItem, SyncPayload};
use protocol::{Currency, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;

const STORE: &str = "CZ-PRG-01";
const TILL: &str = "T1";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bin_dir() -> PathBuf {
    // target/<profile>/deps/pipeline-… → target/<profile>
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time a process has used so far (all its threads, from `/proc/PID/task/*/schedstat`, ns
/// precision); `None` where there is no such file (not Linux). Threads that already ended are
/// not counted: read it while the process runs.
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

fn server_stub() -> PathBuf {
    let p = bin_dir().join("server-stub");
    assert!(
        p.exists(),
        "{} missing: cargo build -p server-stub (same profile) first",
        p.display()
    );
    p
}

/// Seeded server DB + till token; returns (db, token).
fn prepare_server(dir: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("server.db");
    let ok = Command::new(server_stub())
        .args([
            "seed",
            "--db",
            db.to_str().unwrap(),
            repo().join("fixtures/seed/demo.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = Command::new(server_stub())
        .args([
            "till",
            "add",
            "--db",
            db.to_str().unwrap(),
            "--store",
            STORE,
            "--till",
            TILL,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    (db, token)
}

fn serve(db: &Path) -> (Kill, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(server_stub())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Kill(child), url)
}

fn agent(dir: &Path, url: &str, token: &str) -> Kill {
    agent_with(dir, url, token, "", "warn", Stdio::null())
}

/// The agent with `extra` lines in its agent.toml, its log filter `log` (TILL_AGENT_LOG) and
/// stderr to `stderr`.
fn agent_with(dir: &Path, url: &str, token: &str, extra: &str, log: &str, stderr: Stdio) -> Kill {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!("server_url = \"{url}\"\nstore_id = \"{STORE}\"\ntill_id = \"{TILL}\"\nexport_dir = \"export\"\ntz_offset = \"+01:00\"\nlanguage = \"en\"\n{extra}"),
    )
    .unwrap();
    let bin = std::env::var_os("BENCH_AGENT_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_till-agent").into());
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--headless"])
        .env("TILL_AGENT_TOKEN", token)
        .env("TILL_AGENT_LOG", log)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Kill(child)
}

fn receipt(i: usize, prefix: &str) -> Receipt {
    let (s, t) = (StoreId::from(STORE), TillId::from(TILL));
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00+01:00").unwrap()
        + chrono::Duration::seconds(i as i64);
    let no = format!("{prefix}{i:07}");
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

fn server_has(conn: &rusqlite::Connection, no: &str) -> bool {
    conn.query_row("SELECT 1 FROM receipts WHERE pos_receipt_no=?1", [no], |_| Ok(()))
        .is_ok()
}

fn bench_latency(root: &Path, n: usize) {
    let dir = root.join("a");
    let (db, token) = prepare_server(&dir);
    let (_srv, url) = serve(&db);
    let till = dir.join("till");
    std::fs::create_dir_all(till.join("export")).unwrap();
    let _agent = agent(&till, &url, &token);
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // agent up
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let r = receipt(i, "A");
        let body = serde_json::to_vec(&r).unwrap();
        let tmp = till.join(format!("r{i}.json.tmp")); // written beside, renamed into the folder
        std::fs::write(&tmp, &body).unwrap();
        let t0 = Instant::now();
        std::fs::rename(&tmp, till.join("export").join(format!("r{i}.json"))).unwrap();
        while !server_has(&conn, &r.pos_receipt_no) {
            assert!(t0.elapsed() < Duration::from_secs(30), "receipt {i} never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    // Baseline, same run, same server: what a receipt cannot avoid — one durable local commit
    // (rusqlite WAL + FULL, 1 row per transaction: the fsync) plus one loopback POST /v1/sync of
    // that receipt alone (the server's own commit included).
    let base = baseline_commit_and_post(&dir, &url, &token, n);
    println!(
        "(a) rename into export folder → committed on server, {n} receipts one at a time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; baseline fsync + loopback POST: p50 {:.1} ms, p99 {:.1} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap()),
        ms(pct(&base, 0.5)),
        ms(pct(&base, 0.99)),
    );
    println!(
        "TABLE\treceipt file renamed in → committed on server, p50 / p99 (online)\t{:.1} / {:.1} ms\tfsync + loopback POST {:.1} / {:.1} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(pct(&base, 0.5)),
        ms(pct(&base, 0.99)),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Per receipt: a WAL+FULL rusqlite insert (one transaction) then a POST of that receipt alone;
/// sorted durations.
fn baseline_commit_and_post(dir: &Path, url: &str, token: &str, n: usize) -> Vec<Duration> {
    let local = rusqlite::Connection::open(dir.join("baseline.db")).unwrap();
    local.pragma_update(None, "journal_mode", "WAL").unwrap();
    local.pragma_update(None, "synchronous", "FULL").unwrap();
    local
        .execute_batch("CREATE TABLE t(id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = reqwest::Client::new();
    let mut base = Vec::with_capacity(n);
    for i in 0..n {
        let r = receipt(i, "L");
        let item = SyncItem {
            item_id: r.id.0.clone(),
            payload: SyncPayload::Receipt(r),
        };
        let b = SyncBatch {
            version: "v1".into(),
            store_id: STORE.into(),
            till_id: TILL.into(),
            items: vec![item.clone()],
        };
        let t0 = Instant::now();
        local
            .execute(
                "INSERT INTO t(id, payload) VALUES(?1, ?2)",
                [&item.item_id, &serde_json::to_string(&item.payload).unwrap()],
            )
            .unwrap();
        let ok = rt.block_on(async {
            c.post(format!("{url}/v1/sync"))
                .bearer_auth(token)
                .json(&b)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        });
        assert!(ok);
        base.push(t0.elapsed());
    }
    base.sort();
    base
}

/// The agent's per-batch timing lines (`till_agent::sync::timing`, debug): sums in ms of
/// read+encode, POST → answer, acks, answer → next POST, and the batch count.
#[derive(Default, Debug)]
struct AgentTiming {
    batches: usize,
    read: f64,
    post: f64,
    acks: f64,
    gap: f64,
    gaps: usize,
}

fn agent_timing(log: &str) -> AgentTiming {
    let field = |line: &str, name: &str| -> Option<f64> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.trim_start().split(' ').next()?.parse().ok()
    };
    let mut t = AgentTiming::default();
    for line in log
        .lines()
        .filter(|l| l.contains("batch of ") && l.contains("read+encode"))
    {
        t.batches += 1;
        t.read += field(line, "read+encode").unwrap_or(0.0);
        t.post += field(line, "post→answer").unwrap_or(0.0);
        t.acks += field(line, "acks").unwrap_or(0.0);
        if let Some(g) = field(line, "answer→next post") {
            t.gap += g;
            t.gaps += 1;
        }
    }
    t
}

/// Drain rates of one run: over the whole run, and from the first answered batch to the end.
struct Rates {
    total: f64,
    steady: f64,
    /// Until the first batch was answered (agent: process start → first ack).
    first: Duration,
    /// Raw client only: the summed time from each POST to its answer read (the server's part).
    posts: Duration,
}

/// One round of (b): the agent's drain and the raw client's ingest, each on a fresh server.
struct Backlog {
    agent_total: f64,
    agent_steady: f64,
    agent_first_ms: f64,
    raw_total: f64,
    raw_steady: f64,
    /// CPU, ms: the agent's until its first ack, the agent's per batch after it, the server's per
    /// batch for the agent's batches and for the raw client's.
    cpu: Option<[f64; 4]>,
}

fn bench_backlog(root: &Path, n: usize, batch: usize, round: usize) -> Backlog {
    // Backlog: n receipts committed to the agent's outbox while no server runs.
    let dir = root.join(format!("b{round}"));
    let (db, token) = prepare_server(&dir);
    let till = dir.join("till");
    std::fs::create_dir_all(till.join("export")).unwrap();
    {
        let mut o = till_agent::sync::outbox::Outbox::open(&till.join("outbox.db")).unwrap();
        let items: Vec<SyncItem> = (0..n)
            .map(|i| {
                let r = receipt(i, "B");
                SyncItem {
                    item_id: r.id.0.clone(),
                    payload: SyncPayload::Receipt(r),
                }
            })
            .collect();
        for (k, chunk) in items.chunks(500).enumerate() {
            o.commit_file(&format!("bench-{k}"), "bench", chunk).unwrap();
        }
        // Set and not empty (an empty value is "unset": `BENCH_OUTBOX_V5= cargo bench …`).
        let set = |v: &str| std::env::var_os(v).is_some_and(|v| !v.is_empty());
        let (v4, v5) = (set("BENCH_OUTBOX_V4"), set("BENCH_OUTBOX_V5"));
        if v4 || v5 {
            // For an agent built before outbox schema 6 (BENCH_AGENT_BIN): its counting trigger back.
            o.conn()
                .execute_batch(
                    "CREATE TRIGGER items_count_upd AFTER UPDATE OF state ON items WHEN OLD.state<>NEW.state BEGIN
                        UPDATE item_counts SET n=n-1 WHERE state=OLD.state;
                        UPDATE item_counts SET n=n+1 WHERE state=NEW.state;
                     END; PRAGMA user_version=5;",
                )
                .unwrap();
        }
        if v4 {
            // For an agent built before outbox schema 5 (BENCH_AGENT_BIN): its indexes back.
            o.conn()
                .execute_batch(
                    "DROP INDEX items_pending_seq; DROP INDEX items_pending_created; DROP INDEX items_sent_at;
                     DROP INDEX items_rejected_seq; CREATE INDEX items_state_seq ON items(state, seq);
                     CREATE INDEX items_state_created ON items(state, created_at);
                     CREATE INDEX items_state_sent ON items(state, sent_at); PRAGMA user_version=4;",
                )
                .unwrap();
        }
    }
    let (srv, url) = serve(&db);
    let conn = rusqlite::Connection::open(till.join("outbox.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let sent = || -> usize {
        conn.query_row("SELECT n FROM item_counts WHERE state='sent'", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    };
    let log_path = dir.join("agent.stderr");
    let t0 = Instant::now();
    let agent = agent_with(
        &till,
        &url,
        &token,
        &format!("batch_size = {batch}\n"),
        "warn,till_agent::sync::timing=debug",
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    let srv_cpu0 = cpu_time(srv.0.id());
    let mut first: Option<(Instant, usize)> = None;
    let mut agent_cpu_first = None;
    loop {
        let s = sent();
        if s > 0 && first.is_none() {
            first = Some((Instant::now(), s));
            agent_cpu_first = cpu_time(agent.0.id());
        }
        if s == n {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(900), "backlog not drained: {s}/{n}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let end = Instant::now();
    // CPU while draining: the agent's (start-up included) and the server's.
    let agent_cpu = cpu_time(agent.0.id());
    let srv_cpu = cpu_time(srv.0.id()).zip(srv_cpu0).map(|(b, a)| b - a);
    drop(agent);
    let (t_first, at_first) = first.unwrap();
    let agent_rates = Rates {
        total: n as f64 / (end - t0).as_secs_f64(),
        steady: (n - at_first) as f64 / (end - t_first).as_secs_f64(),
        first: t_first - t0,
        posts: Duration::ZERO,
    };
    let timing = agent_timing(&std::fs::read_to_string(&log_path).unwrap_or_default());

    // Raw: the same number of receipts (fresh ids) POSTed straight to /v1/sync in batches of the
    // same size, one at a time (each encoded just before its POST).
    let dir = root.join(format!("b{round}-raw"));
    let (db, token) = prepare_server(&dir);
    let (srv2, url) = serve(&db);
    let srv2_cpu0 = cpu_time(srv2.0.id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = rt.block_on(async {
        let c = reqwest::Client::new();
        let items: Vec<SyncItem> = (0..n)
            .map(|i| {
                let r = receipt(i, "R");
                SyncItem {
                    item_id: r.id.0.clone(),
                    payload: SyncPayload::Receipt(r),
                }
            })
            .collect();
        let t0 = Instant::now();
        let mut first = None;
        let mut posts = Duration::ZERO;
        for chunk in items.chunks(batch) {
            let b = SyncBatch {
                version: "v1".into(),
                store_id: STORE.into(),
                till_id: TILL.into(),
                items: chunk.to_vec(),
            };
            let body = serde_json::to_vec(&b).unwrap();
            let sent = Instant::now();
            let r = c
                .post(format!("{url}/v1/sync"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            posts += sent.elapsed();
            first.get_or_insert((Instant::now(), chunk.len()));
        }
        let end = Instant::now();
        let (t_first, at_first) = first.unwrap();
        Rates {
            total: n as f64 / (end - t0).as_secs_f64(),
            steady: (n - at_first) as f64 / (end - t_first).as_secs_f64(),
            first: t_first - t0,
            posts,
        }
    });
    let srv2_cpu = cpu_time(srv2.0.id()).zip(srv2_cpu0).map(|(b, a)| b - a);
    let pct = |a: f64, b: f64| a / b * 100.0;
    println!(
        "(b) round {}: {n}-receipt backlog, batches of {batch}: agent {:.0} receipts/s from its start ({:.0} ms to the first ack), \
         {:.0} receipts/s from the first ack; server raw ingest of the same batches {:.0} receipts/s ({:.0} ms to the first answer), \
         {:.0} from the first answer; ratio {:.0} % from the start, {:.0} % from the first answer",
        round + 1,
        agent_rates.total,
        ms(agent_rates.first),
        agent_rates.steady,
        raw.total,
        ms(raw.first),
        raw.steady,
        pct(agent_rates.total, raw.total),
        pct(agent_rates.steady, raw.steady),
    );
    if timing.batches > 0 {
        let b = timing.batches as f64;
        println!(
            "    agent per batch ({} batches): read+encode {:.2} ms, POST → answer {:.2} ms, acks {:.2} ms, answer → next POST {:.3} ms ({} pipelined)",
            timing.batches,
            timing.read / b,
            timing.post / b,
            timing.acks / b,
            if timing.gaps > 0 { timing.gap / timing.gaps as f64 } else { 0.0 },
            timing.gaps
        );
        println!(
            "    raw client per batch ({} batches): POST → answer {:.2} ms",
            n.div_ceil(batch),
            ms(raw.posts) / n.div_ceil(batch) as f64
        );
    }
    let cpu = if let (Some(a), Some(a0), Some(s), Some(r)) = (agent_cpu, agent_cpu_first, srv_cpu, srv2_cpu) {
        let per = |d: Duration| ms(d) / n.div_ceil(batch) as f64;
        let after_first = (n - first.map_or(0, |f| f.1)).div_ceil(batch).max(1) as f64;
        let cpu = [ms(a0), ms(a.saturating_sub(a0)) / after_first, per(s), per(r)];
        println!(
            "    CPU: agent {:.1} ms until its first ack (start-up), then {:.2} ms per batch; server per batch {:.2} ms for the agent's batches, {:.2} ms for the raw client's",
            cpu[0], cpu[1], cpu[2], cpu[3]
        );
        Some(cpu)
    } else {
        None
    };
    Backlog {
        agent_total: agent_rates.total,
        agent_steady: agent_rates.steady,
        agent_first_ms: ms(agent_rates.first),
        raw_total: raw.total,
        raw_steady: raw.steady,
        cpu,
    }
}

/// (b) in `rounds` rounds; the table rows are the rounds' medians (this machine's speed drifts by
/// tens of per cent within seconds, and one round's ratio with it).
fn bench_backlogs(root: &Path, n: usize, batch: usize, rounds: usize) {
    let all: Vec<Backlog> = (0..rounds.max(1)).map(|i| bench_backlog(root, n, batch, i)).collect();
    let med = |f: &dyn Fn(&Backlog) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let list = |f: &dyn Fn(&Backlog) -> f64| {
        all.iter()
            .map(|b| format!("{:.0} %", f(b)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let (total, steady) = (
        |b: &Backlog| b.agent_total / b.raw_total * 100.0,
        |b: &Backlog| b.agent_steady / b.raw_steady * 100.0,
    );
    let k = all.len();
    if all.iter().all(|b| b.cpu.is_some()) {
        let c = |i: usize| med(&|b: &Backlog| b.cpu.expect("all have CPU")[i]);
        println!(
            "TABLE\tagent CPU per drained batch of {batch}, after its first ack (start-up {:.1} ms; medians of {k} rounds)\t{:.2} ms\tserver CPU per batch {:.2} ms (the raw client's batches {:.2} ms)",
            c(0),
            c(1),
            c(2),
            c(3)
        );
    }
    println!(
        "TABLE\t{n}-receipt backlog drain rate (batches of {batch}), from the agent's start (median of {k} rounds)\t{:.0} receipts/s\tserver raw ingest {:.0} receipts/s ({:.0} %; rounds {})",
        med(&|b: &Backlog| b.agent_total),
        med(&|b: &Backlog| b.raw_total),
        med(&total),
        list(&total)
    );
    println!(
        "TABLE\t{n}-receipt backlog drain rate, from the first ack (agent start-up {:.0} ms excluded; median of {k} rounds)\t{:.0} receipts/s\tfrom the first answer {:.0} receipts/s ({:.0} %; rounds {})",
        med(&|b: &Backlog| b.agent_first_ms),
        med(&|b: &Backlog| b.agent_steady),
        med(&|b: &Backlog| b.raw_steady),
        med(&steady),
        list(&steady)
    );
}

fn bench_enqueue(root: &Path, n: usize) {
    let dir = root.join("c");
    std::fs::create_dir_all(&dir).unwrap();
    let items: Vec<SyncItem> = (0..n)
        .map(|i| {
            let r = receipt(i, "C");
            SyncItem {
                item_id: r.id.0.clone(),
                payload: SyncPayload::Receipt(r),
            }
        })
        .collect();
    let mut o = till_agent::sync::outbox::Outbox::open(&dir.join("outbox.db")).unwrap();
    let t0 = Instant::now();
    for (i, it) in items.iter().enumerate() {
        o.commit_file(&format!("hash{i}"), "r.json", std::slice::from_ref(it))
            .unwrap();
    }
    let ours = n as f64 / t0.elapsed().as_secs_f64();

    let raw = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    raw.pragma_update(None, "journal_mode", "WAL").unwrap();
    raw.pragma_update(None, "synchronous", "FULL").unwrap();
    raw.execute_batch("CREATE TABLE t(id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
        .unwrap();
    let payloads: Vec<(String, String)> = items
        .iter()
        .map(|it| (it.item_id.clone(), serde_json::to_string(&it.payload).unwrap()))
        .collect();
    let t0 = Instant::now();
    for (id, p) in &payloads {
        raw.execute("INSERT INTO t(id, payload) VALUES(?1, ?2)", [id, p])
            .unwrap();
    }
    let raw_rate = n as f64 / t0.elapsed().as_secs_f64();
    println!(
        "(c) durable enqueue (receipt + file hash, 1 tx each, WAL+FULL): {ours:.0} receipts/s; raw rusqlite WAL+FULL insert (1 row per tx, same disk): {raw_rate:.0} rows/s ({:.0} %)",
        ours / raw_rate * 100.0
    );
    println!(
        "TABLE\tdurable enqueue rate (WAL + FULL, 1 tx per file)\t{ours:.0} receipts/s\traw SQLite WAL+FULL insert {raw_rate:.0} rows/s ({:.0} %)",
        ours / raw_rate * 100.0
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = match std::env::var_os("BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("till-agent-bench-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    println!(
        "till-agent pipeline bench (profile: {}), dir {}",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        root.display()
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only.contains('c') {
        bench_enqueue(&root, env_usize("BENCH_ENQUEUE_N", 2000));
    }
    if only.is_empty() || only.contains('b') {
        bench_backlogs(
            &root,
            env_usize("BENCH_BACKLOG_N", 10_000),
            env_usize("BENCH_BACKLOG_BATCH", 100),
            env_usize("BENCH_BACKLOG_ROUNDS", 5),
        );
    }
    if only.is_empty() || only.contains('a') {
        bench_latency(&root, env_usize("BENCH_LATENCY_N", 1000));
    }
    let _ = std::fs::remove_dir_all(&root);
}
