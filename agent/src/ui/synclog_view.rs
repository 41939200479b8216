//! Data and filtering for the sync-log window: the newest rows of the `sync_log` table in
//! `outbox.db` (the same rows `till-agent log` prints). Read-only; the table is the core's.
//! Column names are discovered with `PRAGMA table_info`, so the window keeps working if the
//! core adds columns: time / severity / message are picked by name, the rest become `detail`.

use std::path::Path;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub at: String,
    pub severity: String,
    pub message: String,
    pub detail: String,
}

impl LogEntry {
    pub fn line(&self) -> String {
        let mut s = format!("{} {:<5} {}", self.at, self.severity.to_uppercase(), self.message);
        if !self.detail.is_empty() {
            s.push_str("  ");
            s.push_str(&self.detail);
        }
        s
    }
}

const TIME: &[&str] = &["at", "ts", "time", "timestamp", "created_at", "logged_at"];
const SEVERITY: &[&str] = &["severity", "level"];
const MESSAGE: &[&str] = &["message", "msg", "text", "event"];

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
    let (t, s, m) = (pick(TIME), pick(SEVERITY), pick(MESSAGE));
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
        let detail = cols
            .iter()
            .enumerate()
            .filter(|(i, c)| Some(*i) != t && Some(*i) != s && Some(*i) != m && *c != "id" && !vals[*i].is_empty())
            .map(|(i, c)| format!("{c}={}", vals[i]))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(LogEntry {
            id: r.get(0)?,
            at: get(t),
            severity: get(s).to_lowercase(),
            message: get(m),
            detail,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Severity rank for the "at least" filter: error > warn > info > debug.
pub fn rank(severity: &str) -> u8 {
    match severity {
        "error" | "critical" | "fatal" => 3,
        "warn" | "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// Entries at or above `min_rank` whose text contains `needle` (case-insensitive).
pub fn filter<'a>(entries: &'a [LogEntry], min_rank: u8, needle: &str) -> Vec<&'a LogEntry> {
    let needle = needle.trim().to_lowercase();
    entries
        .iter()
        .filter(|e| rank(&e.severity) >= min_rank)
        .filter(|e| needle.is_empty() || e.line().to_lowercase().contains(&needle))
        .collect()
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
             CREATE TABLE sync_log(id INTEGER PRIMARY KEY, at TEXT, level TEXT, message TEXT, item_id TEXT);
             INSERT INTO sync_log(at, level, message, item_id) VALUES
               ('2026-11-23T10:00:00+01:00', 'INFO', 'sent 3 receipts', NULL),
               ('2026-11-23T10:01:00+01:00', 'WARN', 'server unreachable, retrying', NULL),
               ('2026-11-23T10:02:00+01:00', 'ERROR', 'receipt rejected: unknown store', 'abc123');",
        )
        .unwrap();
        let all = load(&db, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].message, "receipt rejected: unknown store");
        assert_eq!(all[0].severity, "error");
        assert_eq!(all[0].detail, "item_id=abc123");
        assert_eq!(load(&db, 2).unwrap().len(), 2);
        assert_eq!(filter(&all, rank("warn"), "").len(), 2);
        assert_eq!(filter(&all, 0, "RECEIPT").len(), 2);
        assert_eq!(filter(&all, rank("error"), "receipts").len(), 0);
        assert!(all[1].line().contains("WARN  server unreachable"));
    }
}
