//! A damaged local database (a failing disk, a power cut on a disk that lies about fsync, a file
//! overwritten by mistake) must not stop the till: the agent used to retry "file is not a database"
//! forever, without saying which file, while receipts piled up in the export folder.
//!
//! - `cache.db` is only a copy of the server's data: it is set aside and rebuilt by the next pull.
//! - `outbox.db` holds what the server has not acknowledged yet: it is set aside (never deleted:
//!   support can look at it), a new one is started, every item that can still be read from the
//!   damaged file is queued again, and the receipt files of `processed/` from the last
//!   `retention_days` are put back into the export folder to be read again. The server answers
//!   `duplicate` for the receipts it already has, so nothing is lost and nothing counted twice.
//!
//! Each step is written to the sync log of the new outbox (`till-agent log`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use protocol::v1::{SyncItem, SyncPayload};
use rusqlite::{ErrorCode, OpenFlags};

use crate::config::Config;

/// The error says the SQLite file is not a database or is corrupt (not: locked, read-only, full).
pub fn is_damaged(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _)) if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
        )
    })
}

/// Move `db` (with its `-wal` / `-shm`) aside as `<name>.damaged-<UTC time>`; the new name.
pub fn set_aside(db: &Path) -> std::io::Result<PathBuf> {
    let name = db.file_name().and_then(|n| n.to_str()).unwrap_or("db");
    let aside = db.with_file_name(format!("{name}.damaged-{}", Utc::now().format("%Y%m%dT%H%M%SZ")));
    std::fs::rename(db, &aside)?;
    // `-unsent`: the copy of its waiting non-receipt items (`sync::unsent::SUFFIX`) goes with it
    for ext in ["-wal", "-shm", "-unsent"] {
        let side = db.with_file_name(format!("{name}{ext}"));
        if side.exists() {
            let _ = std::fs::rename(&side, PathBuf::from(format!("{}{ext}", aside.display())));
        }
    }
    Ok(aside)
}

/// The items still waiting (pending, or refused and waiting for a requeue) that can be read from a
/// damaged outbox, row by row until the first unreadable one. Empty when nothing can be read.
pub fn salvage_items(damaged: &Path) -> Vec<SyncItem> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(damaged, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let Ok(mut st) =
        conn.prepare("SELECT item_id, payload FROM items WHERE state IN ('pending','rejected') ORDER BY seq")
    else {
        return out;
    };
    let Ok(mut rows) = st.query([]) else { return out };
    while let Ok(Some(row)) = rows.next() {
        let (Ok(item_id), Ok(payload)) = (row.get::<_, String>(0), row.get::<_, String>(1)) else {
            continue;
        };
        if let Ok(payload) = serde_json::from_str::<SyncPayload>(&payload) {
            out.push(SyncItem { item_id, payload });
        }
    }
    out
}

/// Put the receipt files of `processed/` changed within `days` back into the export folder (a
/// name taken there gets a `reread-` prefix); how many.
pub fn reread_processed(cfg: &Config, days: u32) -> std::io::Result<usize> {
    let since = SystemTime::now() - Duration::from_secs(u64::from(days) * 86_400);
    let Ok(rd) = std::fs::read_dir(cfg.processed_dir()) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() || meta.modified().map_or(true, |m| m < since) {
            continue;
        }
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mut dest = cfg.export_dir.join(name);
        if dest.exists() {
            dest = cfg.export_dir.join(format!("reread-{name}"));
        }
        if dest.exists() {
            continue;
        }
        std::fs::rename(&p, &dest)?;
        n += 1;
    }
    Ok(n)
}

/// Open a database with `open`; when the file is damaged, set it aside and open a new one.
/// Returns the database and, when it was replaced, the damaged file's new name.
pub fn open_or_replace<T>(
    db: &Path,
    open: impl Fn(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<(T, Option<(PathBuf, String)>)> {
    match open(db) {
        Ok(t) => Ok((t, None)),
        Err(e) if is_damaged(&e) => {
            let why = format!("{e:#}");
            let aside = set_aside(db)
                .map_err(|io| anyhow::anyhow!("{} is damaged ({why}) and cannot be set aside: {io}", db.display()))?;
            let t = open(db)
                .map_err(|e2| anyhow::anyhow!("{}: {e2:#} (the damaged file is {})", db.display(), aside.display()))?;
            Ok((t, Some((aside, why))))
        }
        Err(e) => Err(e.context(format!("opening {}", db.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_told_from_other_errors_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        std::fs::write(
            &db,
            b"this is not SQLite at all, just bytes written over the file........",
        )
        .unwrap();
        let open = |p: &Path| -> anyhow::Result<rusqlite::Connection> {
            let c = rusqlite::Connection::open(p)?;
            c.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
            Ok(c)
        };
        let e = open(&db).unwrap_err();
        assert!(is_damaged(&e), "{e:#}");
        assert!(!is_damaged(&anyhow::anyhow!("disk full")));
        let (_c, replaced) = open_or_replace(&db, open).unwrap();
        let (aside, why) = replaced.expect("replaced");
        assert!(why.contains("not a database"), "{why}");
        assert!(aside
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("outbox.db.damaged-"));
        assert!(aside.exists() && db.exists());
        assert!(salvage_items(&aside).is_empty());
        // a healthy file opens as it is
        let (_c, replaced) = open_or_replace(&db, open).unwrap();
        assert!(replaced.is_none());
    }
}
