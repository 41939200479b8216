//! Data and filtering for the sync-log window: the newest rows of the `sync_log` table in
//! `outbox.db` (the same rows `till-agent log` prints) as a table (time, kind, item, message;
//! card numbers masked), and the timeline above it: per hour of the last days, receipts sent,
//! still queued and rejected, and the hours the server was unreachable. Read-only; the tables
//! are the core's. Column names are discovered with `PRAGMA table_info`, so the window keeps
//! working if the core adds columns: time / severity / kind / item / message are picked by name,
//! the rest become `detail`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::sync::outbox::LogRow;
use crate::synclog::mask_card_numbers;

/// How many rows the window shows, and the hours of its timeline.
pub const ROWS: usize = 500;
pub const HOURS: u32 = 7 * 24;

/// The rows (newest first) and the timeline the window shows.
pub type Loaded = (Vec<LogEntry>, Vec<Hour>);

/// Where the sync-log window gets them.
#[derive(Clone)]
pub enum SyncLogSource {
    /// outbox.db, read directly (the all-in-one agent).
    File(PathBuf),
    /// Asked from the process that owns outbox.db (the session app asks the service: users
    /// cannot read the file). Called on a thread of its own at each (re)load, never on the GUI
    /// thread (`synclog_window::LogWindow::reload`).
    Fetch(Arc<dyn Fn() -> anyhow::Result<Loaded> + Send + Sync>),
}

impl SyncLogSource {
    pub fn load(&self) -> anyhow::Result<Loaded> {
        match self {
            SyncLogSource::File(db) => Ok((load(db, ROWS)?, timeline(db, Utc::now(), HOURS)?)),
            SyncLogSource::Fetch(f) => f(),
        }
    }

    /// For an error message: the file, or "the till-agent service".
    pub fn name(&self) -> String {
        match self {
            SyncLogSource::File(db) => db.display().to_string(),
            SyncLogSource::Fetch(_) => "the till-agent service".into(),
        }
    }
}

/// The service's `sync_log` rows (`Outbox::log_tail`: newest last) as the window's entries
/// (newest first, card numbers masked like [`load`]).
pub fn from_rows(rows: &[LogRow]) -> Vec<LogEntry> {
    rows.iter()
        .rev()
        .map(|r| LogEntry {
            id: r.id,
            at: r.ts.clone(),
            severity: r.level.to_lowercase(),
            kind: r.kind.clone(),
            item: mask_card_numbers(r.item_id.as_deref().unwrap_or_default()),
            message: mask_card_numbers(&r.message),
            detail: String::new(),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub id: i64,
    /// As stored (RFC 3339, UTC).
    pub at: String,
    pub severity: String,
    pub kind: String,
    pub item: String,
    /// Card numbers masked.
    pub message: String,
    pub detail: String,
}

impl LogEntry {
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} {:<5} {:<8} {} {}",
            self.at,
            self.severity.to_uppercase(),
            self.kind,
            if self.item.is_empty() { "-" } else { &self.item },
            self.message
        );
        if !self.detail.is_empty() {
            s.push_str("  ");
            s.push_str(&self.detail);
        }
        s
    }

    /// A warning or an error: what "problems only" keeps.
    pub fn is_problem(&self) -> bool {
        rank(&self.severity) >= 2
    }
}

const TIME: &[&str] = &["at", "ts", "time", "timestamp", "created_at", "logged_at"];
const SEVERITY: &[&str] = &["severity", "level"];
const MESSAGE: &[&str] = &["message", "msg", "text", "event"];
const KIND: &[&str] = &["kind", "category", "target"];
const ITEM: &[&str] = &["item_id", "item"];

/// The newest `limit` entries, newest first. A missing database or table is an empty list.
pub fn load(db: &Path, limit: usize) -> anyhow::Result<Vec<LogEntry>> {
    if !db.exists() {
        return Ok(Vec::new());
    }
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('sync_log')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    let pick = |names: &[&str]| {
        cols.iter()
            .position(|c| names.contains(&c.to_ascii_lowercase().as_str()))
    };
    let (t, s, m, k, it) = (pick(TIME), pick(SEVERITY), pick(MESSAGE), pick(KIND), pick(ITEM));
    let sql = format!(
        "SELECT rowid, {} FROM sync_log ORDER BY rowid DESC LIMIT ?1",
        cols.iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([limit as i64], |r| {
        let mut vals = Vec::with_capacity(cols.len());
        for i in 0..cols.len() {
            let v: rusqlite::types::Value = r.get(i + 1)?;
            vals.push(match v {
                rusqlite::types::Value::Null => String::new(),
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Real(f) => f.to_string(),
                rusqlite::types::Value::Text(s) => s,
                rusqlite::types::Value::Blob(b) => format!("<{} bytes>", b.len()),
            });
        }
        let get = |i: Option<usize>| i.map(|i| vals[i].clone()).unwrap_or_default();
        let known = [t, s, m, k, it];
        let detail = cols
            .iter()
            .enumerate()
            .filter(|(i, c)| !known.contains(&Some(*i)) && *c != "id" && !vals[*i].is_empty())
            .map(|(i, c)| format!("{c}={}", vals[i]))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(LogEntry {
            id: r.get(0)?,
            at: get(t),
            severity: get(s).to_lowercase(),
            kind: get(k),
            item: mask_card_numbers(&get(it)),
            message: mask_card_numbers(&get(m)),
            detail: mask_card_numbers(&detail),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Severity rank: error > warn > info > debug.
pub fn rank(severity: &str) -> u8 {
    match severity {
        "error" | "critical" | "fatal" => 3,
        "warn" | "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// What the window shows: by kind (`None` = all), problems only, a search text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub kind: Option<String>,
    pub problems_only: bool,
    pub needle: String,
}

impl Filter {
    pub fn keeps(&self, e: &LogEntry) -> bool {
        let needle = self.needle.trim().to_lowercase();
        self.kind.as_ref().is_none_or(|k| *k == e.kind)
            && (!self.problems_only || e.is_problem())
            && (needle.is_empty() || e.line().to_lowercase().contains(&needle))
    }
}

/// Entries the filter keeps, in order.
pub fn filter<'a>(entries: &'a [LogEntry], f: &Filter) -> Vec<&'a LogEntry> {
    entries.iter().filter(|e| f.keeps(e)).collect()
}

/// The kinds present, sorted (the kind filter's choices).
pub fn kinds(entries: &[LogEntry]) -> Vec<String> {
    let mut k: Vec<String> = entries
        .iter()
        .map(|e| e.kind.clone())
        .filter(|k| !k.is_empty())
        .collect();
    k.sort();
    k.dedup();
    k
}

/// One hour of the timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hour {
    pub start: DateTime<Utc>,
    /// Receipts the server acknowledged in this hour.
    pub sent: u32,
    /// Receipts waiting at the end of this hour.
    pub queued: u32,
    /// Items rejected (dead-lettered) in this hour.
    pub rejected: u32,
    /// The agent could not reach the server for some of this hour.
    pub unreachable: bool,
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
}

/// The last `hours` hours up to `now` (the current hour last), from `items` and `sync_log`.
pub fn timeline(db: &Path, now: DateTime<Utc>, hours: u32) -> anyhow::Result<Vec<Hour>> {
    let first = now - Duration::hours(hours as i64 - 1);
    let first = first - Duration::seconds(first.timestamp().rem_euclid(3600));
    let mut out: Vec<Hour> = (0..hours)
        .map(|i| Hour {
            start: first + Duration::hours(i as i64),
            ..Default::default()
        })
        .collect();
    if !db.exists() {
        return Ok(out);
    }
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let has = |t: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?1",
            [t],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let idx = |t: DateTime<Utc>| -> Option<usize> {
        let d = (t - first).num_seconds();
        (d >= 0 && d < hours as i64 * 3600).then_some((d / 3600) as usize)
    };
    let since = first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if has("items")? {
        // Receipts that were queued at some point of the window: created before its end and
        // sent in it or not yet.
        let mut st = conn.prepare(
            "SELECT created_at, sent_at, state FROM items WHERE kind='receipt' AND (sent_at IS NULL OR sent_at >= ?1)",
        )?;
        let rows = st.query_map([&since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (created, sent, state) = row?;
            let Some(created) = parse(&created) else { continue };
            let sent = sent.as_deref().and_then(parse);
            if let Some(i) = sent.and_then(idx) {
                out[i].sent += 1;
            }
            if state == "rejected" {
                continue;
            }
            for h in out.iter_mut() {
                let end = h.start + Duration::hours(1);
                if created < end && sent.is_none_or(|s| s >= end) {
                    h.queued += 1;
                }
            }
        }
    }
    if has("sync_log")? {
        let mut st = conn.prepare(
            "SELECT ts, kind, message FROM sync_log WHERE ts >= ?1 OR kind IN ('retry','server','ack') ORDER BY id",
        )?;
        let rows = st.query_map([&since], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        // Unreachable from a "server unreachable" retry until the server answers again.
        let mut down_since: Option<DateTime<Utc>> = None;
        let mark = |out: &mut Vec<Hour>, from: DateTime<Utc>, to: DateTime<Utc>| {
            for h in out.iter_mut() {
                if from < h.start + Duration::hours(1) && to >= h.start {
                    h.unreachable = true;
                }
            }
        };
        for row in rows {
            let (ts, kind, msg) = row?;
            let Some(ts) = parse(&ts) else { continue };
            if kind == "rejected" {
                if let Some(i) = idx(ts) {
                    out[i].rejected += 1;
                }
            }
            let down = kind == "retry" && msg.contains("unreachable");
            let up = kind == "ack" || (kind == "server" && msg.contains("reachable again"));
            if down && down_since.is_none() {
                down_since = Some(ts);
            } else if up {
                if let Some(from) = down_since.take() {
                    mark(&mut out, from, ts);
                }
            }
        }
        if let Some(from) = down_since {
            mark(&mut out, from, now);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sync_log_rows_newest_first_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        assert!(load(&db, 10).unwrap().is_empty(), "missing db is empty");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE other(x);
             CREATE TABLE sync_log(id INTEGER PRIMARY KEY, at TEXT, level TEXT, kind TEXT, message TEXT, item_id TEXT, extra TEXT);
             INSERT INTO sync_log(at, level, kind, message, item_id, extra) VALUES
               ('2026-11-23T10:00:00+01:00', 'INFO', 'ack', 'sent 3 receipts', NULL, NULL),
               ('2026-11-23T10:01:00+01:00', 'WARN', 'retry', 'server unreachable, retrying', NULL, 'x'),
               ('2026-11-23T10:02:00+01:00', 'ERROR', 'rejected', 'receipt rejected: card 1900000009000018 unknown', 'abc123', NULL);",
        )
        .unwrap();
        let all = load(&db, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].message, "receipt rejected: card 1900-****-****-0018 unknown");
        assert_eq!(
            (all[0].severity.as_str(), all[0].kind.as_str(), all[0].item.as_str()),
            ("error", "rejected", "abc123")
        );
        assert_eq!(all[1].detail, "extra=x");
        assert_eq!(load(&db, 2).unwrap().len(), 2);
        let f = |kind: Option<&str>, problems_only, needle: &str| Filter {
            kind: kind.map(str::to_string),
            problems_only,
            needle: needle.into(),
        };
        assert_eq!(filter(&all, &f(None, true, "")).len(), 2);
        assert_eq!(filter(&all, &f(Some("ack"), false, "")).len(), 1);
        assert_eq!(filter(&all, &f(Some("ack"), true, "")).len(), 0);
        assert_eq!(filter(&all, &f(None, false, "RECEIPT")).len(), 2);
        assert_eq!(kinds(&all), ["ack", "rejected", "retry"]);
        assert!(all[1].line().contains("WARN  retry    - server unreachable"));
        assert!(!all.iter().any(|e| e.line().contains("1900000009000018")));
    }

    /// The service's rows (newest last) become the window's entries (newest first, masked).
    #[test]
    fn service_rows_become_entries_newest_first_masked() {
        let row = |id: i64, level: &str, item: Option<&str>, message: &str| LogRow {
            id,
            ts: format!("2026-11-30T08:0{id}:00.000Z"),
            level: level.into(),
            kind: "ack".into(),
            item_id: item.map(str::to_string),
            message: message.into(),
        };
        let e = from_rows(&[
            row(1, "INFO", None, "sent 1 receipt"),
            row(2, "WARN", Some("1900000009000018"), "card 1900000009000018 refused"),
        ]);
        assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(
            (e[0].severity.as_str(), e[0].message.as_str(), e[0].item.as_str()),
            ("warn", "card 1900-****-****-0018 refused", "1900-****-****-0018")
        );
        assert!(e[0].is_problem() && !e[1].is_problem());
        assert_eq!(e[1].item, "");
        assert_eq!(e[1].at, "2026-11-30T08:01:00.000Z");
    }

    /// A real outbox: receipts queued during an outage, sent when the server came back.
    #[test]
    fn timeline_counts_sent_queued_rejected_and_unreachable_hours() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        drop(crate::sync::outbox::Outbox::open(&db).unwrap());
        let c = rusqlite::Connection::open(&db).unwrap();
        let now: DateTime<Utc> = "2026-11-23T12:30:00Z".parse().unwrap();
        let h = |x: &str| format!("2026-11-23T{x}:00.000Z");
        let items = [
            ("a", h("08:10"), Some(h("08:11")), "sent"),
            ("b", h("09:05"), Some(h("11:20")), "sent"),
            ("c", h("09:40"), Some(h("11:20")), "sent"),
            ("d", h("10:15"), None, "rejected"),
            ("e", h("12:05"), None, "pending"),
        ];
        for (id, created, sent, state) in items {
            c.execute(
                "INSERT INTO items(kind,item_id,payload,state,created_at,sent_at) VALUES('receipt',?1,'{}',?2,?3,?4)",
                rusqlite::params![id, state, created, sent],
            )
            .unwrap();
        }
        for (ts, level, kind, msg) in [
            (
                h("09:06"),
                "warn",
                "retry",
                "1 item(s) not sent: server unreachable: refused; retrying with backoff",
            ),
            (h("10:16"), "error", "rejected", "dead letter: bad"),
            (h("11:19"), "info", "server", "server is reachable again; sending"),
            (h("11:20"), "info", "ack", "2 receipts acknowledged"),
        ] {
            c.execute(
                "INSERT INTO sync_log(ts,level,kind,item_id,message) VALUES(?1,?2,?3,NULL,?4)",
                rusqlite::params![ts, level, kind, msg],
            )
            .unwrap();
        }
        let t = timeline(&db, now, 6).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t[0].start, "2026-11-23T07:00:00Z".parse::<DateTime<Utc>>().unwrap());
        let row = |x: &Hour| (x.sent, x.queued, x.rejected, x.unreachable);
        let got: Vec<_> = t.iter().map(row).collect();
        assert_eq!(
            got,
            [
                (0, 0, 0, false), // 07
                (1, 0, 0, false), // 08: a sent at once
                (0, 2, 0, true),  // 09: b, c waiting, server down
                (0, 2, 1, true),  // 10: d rejected
                (2, 0, 0, true),  // 11: back at 11:19, b and c sent
                (0, 1, 0, false), // 12: e waits
            ]
        );
        assert_eq!(timeline(&dir.path().join("none.db"), now, 3).unwrap().len(), 3);
    }
}
