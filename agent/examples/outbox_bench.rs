//! Outbox size figures (run by scripts/bench.sh): `stats()` (what `status` and the tray poll) on an
//! empty outbox and at 10^6 rows, and the outbox size after a simulated year at 2 000 receipts/day
//! with the default retention (90 days sent items/file hashes, 30 days sync log), pruned daily.
//! Prints `TABLE<TAB>figure<TAB>value<TAB>baseline` rows.
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::params;
use till_agent::sync::outbox::Outbox;

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Median of 200 `stats()` calls.
fn stats_median(o: &Outbox) -> Duration {
    let mut v: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(o.stats().unwrap());
            t.elapsed()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

const PAYLOAD: &str = r#"{"kind":"receipt","id":"r","store_id":"S1","till_id":"T1","pos_receipt_no":"1","issued_at":"2026-11-23T10:05:00+01:00","currency":"CZK","total":"123.40","lines":[{"sku":"A1","name":"Rohlik","qty":"2","amount":"6.80"}]}"#;

/// `n` receipts created/sent at `at` (sent_at set for `state='sent'`), one file hash per 20 receipts,
/// one sync-log row per receipt.
fn fill(o: &mut Outbox, from: usize, n: usize, state: &str, at: DateTime<Utc>) {
    let t = ts(at);
    let tx = o.conn().unchecked_transaction().unwrap();
    {
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO items(kind,item_id,payload,state,created_at,sent_at,source_file)
                 VALUES('receipt',?1,?2,?3,?4,CASE WHEN ?3='sent' THEN ?4 END,?5)",
            )
            .unwrap();
        let mut file = tx
            .prepare_cached("INSERT INTO ingested_files(hash,file_name,receipts,ingested_at) VALUES(?1,?2,20,?3)")
            .unwrap();
        let mut log = tx
            .prepare_cached("INSERT INTO sync_log(ts,level,kind,item_id,message) VALUES(?1,'info','sync',?2,'applied')")
            .unwrap();
        for i in from..from + n {
            let id = format!("S1/T1/{i:010}");
            ins.execute(params![id, PAYLOAD, state, t, format!("f{}.csv", i / 20)])
                .unwrap();
            if i % 20 == 0 {
                file.execute(params![format!("{i:064x}"), format!("f{}.csv", i / 20), t])
                    .unwrap();
            }
            log.execute(params![t, id]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn size(p: &std::path::Path, o: &Outbox) -> String {
    o.flush().unwrap();
    o.conn().execute_batch("VACUUM").unwrap();
    let b = std::fs::metadata(p).unwrap().len();
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn main() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("outbox.db");
    let mut o = Outbox::open(&p).unwrap();
    let empty = stats_median(&o);
    let now = Utc::now();
    fill(&mut o, 0, 990_000, "sent", now);
    fill(&mut o, 990_000, 9_000, "pending", now);
    fill(&mut o, 999_000, 1_000, "rejected", now);
    let full = stats_median(&o);
    let s = o.stats().unwrap();
    assert_eq!(s.pending + s.sent + s.dead_letters, 1_000_000);
    // What stats() did before the counters: a full GROUP BY over the items table.
    let t = Instant::now();
    let _: i64 = o
        .conn()
        .query_row(
            "SELECT SUM(c) FROM (SELECT COUNT(*) c, MIN(created_at) FROM items GROUP BY state)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let scan = t.elapsed();
    println!(
        "TABLE\toutbox stats() (status/tray poll) at 10^6 items, median\t{:.3} ms\t{:.3} ms empty; full scan {:.1} ms",
        full.as_secs_f64() * 1e3,
        empty.as_secs_f64() * 1e3,
        scan.as_secs_f64() * 1e3
    );
    drop(o);

    // A simulated year: 2 000 receipts a day, all sent the same day, pruned once a day.
    let p = d.path().join("year.db");
    let mut o = Outbox::open(&p).unwrap();
    let start = now - chrono::Duration::days(365);
    let mut prune_max = Duration::ZERO;
    for day in 0..365 {
        let at = start + chrono::Duration::days(day);
        fill(&mut o, day as usize * 2_000, 2_000, "sent", at);
        let t = Instant::now();
        o.prune(at - chrono::Duration::days(90), at - chrono::Duration::days(30))
            .unwrap();
        prune_max = prune_max.max(t.elapsed());
    }
    let s = o.stats().unwrap();
    let files: i64 = o
        .conn()
        .query_row("SELECT COUNT(*) FROM ingested_files", [], |r| r.get(0))
        .unwrap();
    let logs: i64 = o
        .conn()
        .query_row("SELECT COUNT(*) FROM sync_log", [], |r| r.get(0))
        .unwrap();
    println!(
        "TABLE\toutbox after a year at 2 000 receipts/day (90/30 days kept)\t{} ({} items, {} hashes, {} log rows)\tunbounded before (730 000 items)",
        size(&p, &o),
        s.sent,
        files,
        logs
    );
    println!(
        "TABLE\tdaily retention pass at that size, slowest\t{:.1} ms\t-",
        prune_max.as_secs_f64() * 1e3
    );
}
