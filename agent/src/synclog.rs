//! The sync log support staff read: every ingest, send, ack, retry, rejection and quarantine
//! goes to (1) tracing → a daily-rotated file in `<data>/logs/` (tracing-appender) and stderr,
//! and (2) the queryable `sync_log` table in `outbox.db` (`till-agent log`, the sync-log window).
//! Card numbers are masked on the way in: [`mask_card_numbers`] runs over every message.
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::sync::outbox::NewLogRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writer of sync-log rows. Its own connection to `outbox.db` (WAL: concurrent with the outbox's).
pub struct SyncLog {
    conn: Mutex<Connection>,
}

impl SyncLog {
    /// Open on an existing outbox database (run `Outbox::open` first: it creates the table).
    pub fn open(outbox_db: &Path) -> anyhow::Result<SyncLog> {
        let conn = Connection::open(outbox_db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(SyncLog { conn: Mutex::new(conn) })
    }

    /// Record one event: tracing (file + stderr) and the table. Never fails the caller.
    pub fn record(&self, level: Level, kind: &str, item_id: Option<&str>, message: &str) {
        let message = trace(level, kind, item_id, message);
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let r = conn
            .prepare_cached("INSERT INTO sync_log(ts,level,kind,item_id,message) VALUES(?1,?2,?3,?4,?5)")
            .and_then(|mut s| s.execute(params![ts, level.as_str(), kind, item_id, message]));
        if let Err(e) = r {
            tracing::error!("sync_log table write failed: {e}");
        }
    }

    pub fn info(&self, kind: &str, item_id: Option<&str>, message: &str) {
        self.record(Level::Info, kind, item_id, message)
    }
    pub fn warn(&self, kind: &str, item_id: Option<&str>, message: &str) {
        self.record(Level::Warn, kind, item_id, message)
    }
    pub fn error(&self, kind: &str, item_id: Option<&str>, message: &str) {
        self.record(Level::Error, kind, item_id, message)
    }
}

/// The tracing half of [`SyncLog::record`] (file + stderr, masked); the masked message is
/// returned for the table.
fn trace(level: Level, kind: &str, item_id: Option<&str>, message: &str) -> String {
    let message = mask_card_numbers(message);
    emit(level, kind, item_id, &message);
    message
}

fn emit(level: Level, kind: &str, item_id: Option<&str>, message: &str) {
    let id = item_id.unwrap_or("-");
    match level {
        Level::Info => tracing::info!(target: "till_agent::sync", kind, item_id = id, "{message}"),
        Level::Warn => tracing::warn!(target: "till_agent::sync", kind, item_id = id, "{message}"),
        Level::Error => tracing::error!(target: "till_agent::sync", kind, item_id = id, "{message}"),
    }
}

/// A row the caller writes in its own transaction (the replicator writes a batch's log rows with
/// its acks: one commit), masked; [`trace_row`] it once that transaction is committed.
pub fn row(level: Level, kind: &str, item_id: Option<&str>, message: &str) -> NewLogRow {
    NewLogRow {
        level: level.as_str(),
        kind: kind.to_string(),
        item_id: item_id.map(str::to_string),
        message: mask_card_numbers(message),
    }
}

/// The tracing half (file + stderr) of a row written with [`row`].
pub fn trace_row(r: &NewLogRow) {
    let level = match r.level {
        "error" => Level::Error,
        "warn" => Level::Warn,
        _ => Level::Info,
    };
    emit(level, &r.kind, r.item_id.as_deref(), &r.message);
}

/// Mask every standalone run of 12–19 digits (optionally grouped by spaces or dashes, as card
/// numbers are printed) to `1900-****-****-9012`, and every payment card number
/// (`protocol::payment`) even where it touches letters (`%B4111…^`, `card4111…`). Other digit
/// runs inside words (hex ids, digits mixed with letters) are left.
pub fn mask_card_numbers(s: &str) -> String {
    let standalone = mask_standalone(s);
    let pans = protocol::payment::find_pans(&standalone);
    if pans.is_empty() {
        return standalone;
    }
    let mut out = String::with_capacity(standalone.len());
    let mut at = 0;
    for (range, digits) in pans {
        out.push_str(&standalone[at..range.start]);
        out.push_str(&protocol::ids::mask_digits(&digits));
        at = range.end;
    }
    out.push_str(&standalone[at..]);
    out
}

fn mask_standalone(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_alnum = i > 0 && chars[i - 1].is_alphanumeric();
        if c.is_ascii_digit() && !prev_alnum {
            // collect digits with single separators between them
            let mut j = i;
            let mut digits = String::new();
            let mut end = i;
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    digits.push(chars[j]);
                    j += 1;
                    end = j;
                } else if (chars[j] == ' ' || chars[j] == '-') && j + 1 < chars.len() && chars[j + 1].is_ascii_digit() {
                    j += 1;
                } else {
                    break;
                }
            }
            let next_alnum = end < chars.len() && chars[end].is_alphanumeric();
            if (12..=19).contains(&digits.len()) && !next_alnum {
                out.push_str(&protocol::ids::mask_digits(&digits));
                i = end;
                continue;
            }
            // not a card: copy the plain digit run only (separators re-examined next round)
            let mut k = i;
            while k < chars.len() && chars[k].is_ascii_digit() {
                out.push(chars[k]);
                k += 1;
            }
            i = k;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Delete `<log_dir>/till-agent.log.YYYY-MM-DD` files dated before `before` (other files are
/// left alone). Returns the names deleted.
pub fn prune_log_files(log_dir: &Path, before: chrono::NaiveDate) -> std::io::Result<Vec<String>> {
    let mut gone = Vec::new();
    let rd = match std::fs::read_dir(log_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(gone),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(date) = name.strip_prefix("till-agent.log.") else {
            continue;
        };
        let Ok(date) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            continue;
        };
        if date < before && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            gone.push(name);
        }
    }
    gone.sort();
    Ok(gone)
}

/// Lines the log file's writer thread may have queued (see [`init_tracing`]).
pub const LOG_QUEUE_LINES: usize = 4096;

/// Install tracing: stderr (human) + a daily-rotated file `<log_dir>/till-agent.log.YYYY-MM-DD`.
/// Returns the appender guard; keep it alive until exit (dropping it flushes the file).
pub fn init_tracing(log_dir: Option<&Path>, verbose: bool) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::prelude::*;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("TILL_AGENT_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if verbose { "info" } else { "warn,till_agent=info" })
        })
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(filter());
    let (file, guard) = match log_dir.and_then(|d| std::fs::create_dir_all(d).ok().map(|_| d)) {
        Some(d) => match tracing_appender::rolling::RollingFileAppender::builder()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("till-agent.log")
            .build(d)
        {
            Ok(appender) => {
                // The writer thread's queue is allocated and initialised whole at start: the default
                // 128 000 lines are 4 MiB resident for the agent's lifetime. The agent writes a
                // line per file or batch, so 4 096 queued lines are plenty (beyond them lines are
                // dropped from the file, never blocking; the sync_log table keeps its own rows).
                let (nb, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .buffered_lines_limit(LOG_QUEUE_LINES)
                    .finish(appender);
                (
                    Some(
                        tracing_subscriber::fmt::layer()
                            .with_writer(nb)
                            .with_ansi(false)
                            .with_filter(filter()),
                    ),
                    Some(guard),
                )
            }
            Err(e) => {
                eprintln!(
                    "till-agent: warning: no log file in {} ({e}); logging to stderr only",
                    d.display()
                );
                (None, None)
            }
        },
        None => (None, None),
    };
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cards_but_not_ids_or_amounts() {
        assert_eq!(
            mask_card_numbers("card 1900123456789012 ok"),
            "card 1900-****-****-9012 ok"
        );
        assert_eq!(
            mask_card_numbers("card 1900 1234 5678 9012."),
            "card 1900-****-****-9012."
        );
        assert_eq!(mask_card_numbers("4111-1111-1111-1111"), "4111-****-****-1111");
        let hex = "receipt 3f2a1234567890123456789012345678";
        assert_eq!(mask_card_numbers(hex), hex);
        assert_eq!(
            mask_card_numbers("total 1235.00 at 2026-11-23 10:15"),
            "total 1235.00 at 2026-11-23 10:15"
        );
        assert_eq!(mask_card_numbers("12345"), "12345");
    }

    #[test]
    fn masks_payment_numbers_touching_letters() {
        assert_eq!(
            mask_card_numbers("read %B4111111111111111^DOE/JOHN^2612101?"),
            "read %B4111-****-****-1111^DOE/JOHN^2612101?"
        );
        assert_eq!(mask_card_numbers("pan5555555555554444x"), "pan5555-****-****-4444x");
        assert_eq!(
            mask_card_numbers(";4111111111111111=26121019761186800000?"),
            ";4111-****-****-1111=26121019761186800000?"
        );
        // a loyalty number inside a word is left (not a payment card), a hex id too
        assert_eq!(mask_card_numbers("id1900000009000018x"), "id1900000009000018x");
        let hex = "receipt 3f2a1234567890123456789012345678";
        assert_eq!(mask_card_numbers(hex), hex);
    }

    #[test]
    fn record_goes_to_the_table_masked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("outbox.db");
        let o = crate::sync::outbox::Outbox::open(&p).unwrap();
        let l = SyncLog::open(&p).unwrap();
        l.warn("ingest", Some("abc"), "card 1900123456789012 attached");
        let rows = o.log_tail(5).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].message, "card 1900-****-****-9012 attached");
        assert_eq!(
            (
                rows[0].level.as_str(),
                rows[0].kind.as_str(),
                rows[0].item_id.as_deref()
            ),
            ("warn", "ingest", Some("abc"))
        );
    }

    #[test]
    fn old_log_files_are_deleted_others_kept() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "till-agent.log.2026-01-01",
            "till-agent.log.2026-02-14",
            "till-agent.log.2026-02-15",
            "till-agent.log.2026-03-01",
            "till-agent.log.notadate",
            "other.txt",
        ] {
            std::fs::write(d.path().join(n), "x").unwrap();
        }
        let cut = chrono::NaiveDate::from_ymd_opt(2026, 2, 15).unwrap();
        let gone = prune_log_files(d.path(), cut).unwrap();
        assert_eq!(gone, ["till-agent.log.2026-01-01", "till-agent.log.2026-02-14"]);
        let mut left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "other.txt",
                "till-agent.log.2026-02-15",
                "till-agent.log.2026-03-01",
                "till-agent.log.notadate"
            ]
        );
        assert!(prune_log_files(&d.path().join("missing"), cut).unwrap().is_empty());
    }
}
