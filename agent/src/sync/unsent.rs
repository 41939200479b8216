//! `outbox.db-unsent`: a second copy, outside SQLite, of the waiting outbox items that are not
//! receipt files — offline redemptions, registrations, receipt tags, message acks. A receipt can be
//! read again from its file in `processed/` when `outbox.db` is damaged (`recover`); these items
//! exist nowhere else on the till, and an offline redemption is a discount the customer already got.
//!
//! One JSON line per item (`{"item_id":…,"payload":{"type":…,"body":…}}`), appended and fsynced
//! when the item is queued, after the outbox commit; the outbox rewrites the file without the items
//! the server has acknowledged ([`crate::sync::outbox::Outbox::tidy_unsent`], under the outbox's
//! write lock, so another process's item committed meanwhile is never only in the replaced file).
//! A stale or doubled line is harmless: these items are idempotent by their id on the server,
//! which answers `duplicate`.
//!
//! The file travels with `outbox.db` when a damaged outbox is set aside (`recover::set_aside`
//! moves `<db>-unsent` with `-wal` and `-shm`), and the recovery queues its items again.

use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::v1::{SyncItem, SyncPayload};
use serde::Deserialize;

/// The suffix after the outbox file's name (`recover::set_aside` moves the file with this name).
pub const SUFFIX: &str = "-unsent";

/// The copy beside `db`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(SUFFIX);
    db.with_file_name(name)
}

/// One line: the item's id and its payload as the outbox stores it (JSON text).
pub fn line(item_id: &str, payload_json: &str) -> anyhow::Result<String> {
    Ok(format!(
        "{{\"item_id\":{},\"payload\":{payload_json}}}\n",
        serde_json::to_string(item_id)?
    ))
}

/// Append one line and put it on disk.
pub fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Replace the file by `lines` (written beside it, fsynced, renamed over it); no file when empty.
pub fn rewrite(path: &Path, lines: &[String]) -> std::io::Result<()> {
    if lines.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    for l in lines {
        f.write_all(l.as_bytes())?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The file's bytes, or `None` when there is no file.
pub fn contents(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct Line {
    item_id: String,
    payload: SyncPayload,
}

/// What a copy holds: its items, and the lines that could not be read (a line torn by a power
/// cut, bytes the disk damaged), as "line N: why".
#[derive(Debug, Default)]
pub struct Read {
    pub items: Vec<SyncItem>,
    pub bad: Vec<String>,
}

/// Read the copy at `path` (nothing when there is none).
pub fn read(path: &Path) -> std::io::Result<Read> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
        Err(e) => return Err(e),
    };
    let mut out = Read::default();
    for (i, l) in bytes.split(|c| *c == b'\n').enumerate() {
        if l.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(l) {
            Ok(Line { item_id, payload }) => out.items.push(SyncItem { item_id, payload }),
            Err(e) => out.bad.push(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}
