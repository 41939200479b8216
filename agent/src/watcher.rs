//! The POS export folder → outbox. `notify` events trigger a pass; a full rescan runs at start
//! and every `rescan_interval_secs` (events are lost while the agent is down and on network
//! shares). A file is read only when it is stable: size and mtime unchanged across two looks
//! `stable_ms` apart (on Windows also an exclusive open must succeed — the POS still holding the
//! file open fails it). Temp names (`*.tmp`, `~*`, `.*`, `*.partial`, `*.part`) are ignored until
//! renamed into place.
//!
//! Each file's receipts are committed to the outbox in ONE transaction together with the file's
//! content hash, then the file is moved to `processed/`. If the move fails after the commit the
//! hash stops a re-ingest. A file that does not parse goes to `quarantine/` with
//! `<name>.error.txt` (line, field, value) — but only once it has been unchanged for
//! [`QUARANTINE_GRACE`], so a POS writing slowly (pauses longer than `stable_ms`) is not
//! punished: its half-written file is simply read again later.
//!
//! A file with several receipts is read receipt by receipt (`formats::parse_file_each`): the good
//! ones are committed, each bad one is written alone to `quarantine/receipt-<no>.<hash>.<ext>` with
//! its `.error.txt` (file, receipt number, line, field, value) BEFORE the commit, and the file goes
//! to `processed/`. The extract's name depends only on its content, so a crash before the commit, or
//! a re-export, rewrites the same extract; the good receipts dedupe by receipt id as always. A file
//! with no good receipt is quarantined whole, as before.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use protocol::ids::CardPolicy;
use protocol::v1::{SyncItem, SyncPayload};
use sha2::{Digest, Sha256};

use crate::context::{PendingScan, Shared};
use crate::formats::{parse_file_each, BadReceipt, ParseError};

/// A file that fails to parse is quarantined only after it stayed unchanged this long.
pub const QUARANTINE_GRACE: Duration = Duration::from_secs(3);

/// A card scanned shortly before may be attached to a card-less receipt up to this long
/// *before* the scan too (POS clocks and receipts stamped when the sale started).
const SCAN_SLACK_SECS: i64 = 60;

/// Names the POS uses while still writing, and our own side files.
pub fn is_ignored_name(name: &str) -> bool {
    let l = name.to_lowercase();
    l.starts_with('.')
        || l.starts_with('~')
        || l.ends_with(".tmp")
        || l.ends_with(".temp")
        || l.ends_with(".partial")
        || l.ends_with(".part")
        || l.ends_with(".crdownload")
        || l.ends_with(".swp")
        || l.ends_with(".lock")
        || l.ends_with(".error.txt")
        || l.ends_with('~')
}

/// Attach `scan` to the receipt if it has no card and was issued within `window` after the
/// scan (with a little slack before it). Returns true when attached (the caller drops the scan).
pub fn attach_scan(receipt: &mut protocol::v1::Receipt, scan: &PendingScan, window_secs: u64) -> bool {
    if receipt.card.is_some() {
        return false;
    }
    let dt = (receipt.issued_at.timestamp() - scan.at.timestamp()) as i128;
    if dt >= -(SCAN_SLACK_SECS as i128) && dt <= window_secs as i128 {
        receipt.card = Some(scan.card.clone());
        return true;
    }
    false
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Look {
    len: u64,
    mtime: Option<SystemTime>,
}

fn look(p: &Path) -> Option<Look> {
    let m = std::fs::metadata(p).ok()?;
    m.is_file().then(|| Look {
        len: m.len(),
        mtime: m.modified().ok(),
    })
}

/// Candidate files, oldest first (the order the POS wrote them).
fn candidates(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(Option<SystemTime>, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter(|e| !is_ignored_name(&e.file_name().to_string_lossy()))
        .map(|e| (e.metadata().ok().and_then(|m| m.modified().ok()), e.path()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// `dir/name`, or `dir/name.1`, `.2`, … if taken.
fn unique_dest(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    if !p.exists() {
        return p;
    }
    (1..)
        .map(|i| dir.join(format!("{name}.{i}")))
        .find(|p| !p.exists())
        .unwrap()
}

fn move_file(from: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dest = unique_dest(dir, name);
    match std::fs::rename(from, &dest) {
        Ok(()) => Ok(dest),
        Err(e) => {
            // another volume: copy + remove
            std::fs::copy(from, &dest).map_err(|_| e)?;
            std::fs::remove_file(from)?;
            Ok(dest)
        }
    }
}

/// The outcome of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub ingested_files: usize,
    /// Files seen but not ready (still changing, or failing within the grace period).
    pub waiting: usize,
}

/// One pass over the export folder (blocking: run on a blocking thread), every file through the
/// stability wait.
pub fn scan_pass(sh: &Shared) -> Pass {
    scan_pass_with(sh, &HashSet::new())
}

/// One pass; `arrived` are files the OS reported as arriving whole (renamed into the folder, or
/// closed after writing). Such a file is read at once — no stability wait — when the OS also says
/// nobody holds it open for writing ([`crate::os::writer_holds`]); every other file waits
/// `stable_ms` and must look the same twice.
pub fn scan_pass_with(sh: &Shared, arrived: &HashSet<PathBuf>) -> Pass {
    let dir = &sh.cfg.export_dir;
    let mut pass = Pass::default();
    let files = candidates(dir);
    if files.is_empty() {
        return pass;
    }
    let mut rest = Vec::with_capacity(files.len());
    for p in files {
        if sh.is_shutting_down() {
            return pass;
        }
        let whole = arrived.contains(&p) && crate::os::writer_holds(&p) == Some(false);
        match look(&p) {
            Some(now) if whole => pass.count(process_file(sh, &p, now)),
            _ => rest.push(p),
        }
    }
    if rest.is_empty() {
        return pass;
    }
    let first: Vec<Option<Look>> = rest.iter().map(|p| look(p)).collect();
    std::thread::sleep(Duration::from_millis(sh.cfg.stable_ms));
    for (p, a) in rest.iter().zip(first) {
        if sh.is_shutting_down() {
            break;
        }
        let b = look(p);
        let (Some(a), Some(b)) = (a, b) else { continue };
        if a != b || !crate::os::exclusive_open_ok(p) {
            pass.waiting += 1;
            continue;
        }
        pass.count(process_file(sh, p, b));
    }
    pass
}

impl Pass {
    fn count(&mut self, r: FileResult) {
        match r {
            FileResult::Done => self.ingested_files += 1,
            FileResult::Waiting => self.waiting += 1,
            FileResult::Gone => {}
        }
    }
}

enum FileResult {
    Done,
    Waiting,
    Gone,
}

fn process_file(sh: &Shared, path: &Path, seen: Look) -> FileResult {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if seen.len > sh.cfg.max_export_file_bytes {
        // Never read into memory: a receipt export this big is a wrong file or a runaway export.
        quarantine(
            sh,
            path,
            &name,
            &format!(
                "the file is {} bytes, over the size cap of {} bytes (max_export_file_mib in agent.toml); not read",
                seen.len, sh.cfg.max_export_file_bytes
            ),
            None,
        );
        return FileResult::Done;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileResult::Gone,
        Err(e) => {
            sh.log.warn("ingest", None, &format!("{name}: cannot read yet: {e}"));
            return FileResult::Waiting;
        }
    };
    if bytes.len() as u64 != seen.len || look(path) != Some(seen) {
        return FileResult::Waiting; // changed while we read it
    }
    let hash = hex::encode(Sha256::digest(&bytes));
    match sh.outbox().is_ingested(&hash) {
        Ok(true) => {
            sh.log.info(
                "skip",
                None,
                &format!("{name}: same content as a file already ingested; not queued again"),
            );
            finish_move(sh, path, &name, &sh.cfg.processed_dir());
            return FileResult::Done;
        }
        Ok(false) => {}
        Err(e) => {
            sh.log
                .error("outbox", None, &format!("{name}: outbox unavailable: {e:#}"));
            return FileResult::Waiting;
        }
    }
    let age = seen
        .mtime
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(QUARANTINE_GRACE);
    let parsed = match parse_file_each(&sh.cfg.receipts, &name, &bytes, &sh.cfg.parse_context()) {
        Ok(r) => r,
        Err(err) => {
            if age < QUARANTINE_GRACE {
                return FileResult::Waiting; // maybe still being written: read again soon
            }
            quarantine(sh, path, &name, &err.to_string(), Some(&err));
            return FileResult::Done;
        }
    };
    if !parsed.bad.is_empty() && age < QUARANTINE_GRACE {
        return FileResult::Waiting; // a half-written last receipt looks bad too: read again soon
    }
    if !parsed.skipped.is_empty() {
        sh.log.info(
            "skip",
            None,
            &format!("{name}: skipped {} (not sales receipts)", parsed.skipped_text()),
        );
    }
    if parsed.receipts.is_empty() && parsed.bad.is_empty() {
        if parsed.skipped.is_empty() {
            quarantine(sh, path, &name, "the file contains no receipts", None);
        } else {
            finish_move(sh, path, &name, &sh.cfg.processed_dir());
        }
        return FileResult::Done;
    }
    if parsed.receipts.is_empty() {
        // Nothing good in it: the file itself goes to quarantine, as a file that does not parse.
        let err = &parsed.bad[0].error;
        let mut reason = err.to_string();
        if parsed.bad.len() > 1 {
            reason.push_str(&format!(
                " (and {} more bad receipt(s) in the file)",
                parsed.bad.len() - 1
            ));
        }
        quarantine(sh, path, &name, &reason, Some(err));
        return FileResult::Done;
    }
    // Each bad receipt alone to quarantine/ BEFORE the commit: the extract's name depends only on
    // its content, so a crash before the commit rewrites the same file on the next pass.
    for bad in &parsed.bad {
        quarantine_receipt(sh, &name, bad);
    }
    let mut receipts = parsed.receipts;
    drop_payment_cards(sh, &name, &mut receipts);
    // Card association: a loyalty card scanned on this till shortly before, once.
    {
        let mut slot = sh.last_scan.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(scan) = slot.clone() {
            for r in receipts.iter_mut() {
                if attach_scan(r, &scan, sh.cfg.scan_attach_window_secs) {
                    sh.log.info(
                        "card",
                        Some(r.id.as_str()),
                        &format!(
                            "receipt {} had no card: attached {} scanned at {}",
                            r.pos_receipt_no,
                            scan.card,
                            scan.at.to_rfc3339()
                        ),
                    );
                    *slot = None;
                    break;
                }
            }
        }
    }
    let items: Vec<SyncItem> = receipts
        .iter()
        .map(|r| SyncItem {
            item_id: r.id.0.clone(),
            payload: SyncPayload::Receipt(r.clone()),
        })
        .collect();
    let committed = sh.outbox().commit_file(&hash, &name, &items);
    match committed {
        Ok(c) => {
            for r in &receipts {
                let card = r.card.as_ref().map(|c| c.to_string()).unwrap_or_else(|| "none".into());
                sh.log.info(
                    "ingest",
                    Some(r.id.as_str()),
                    &format!(
                        "{name}: receipt {} total {} {} card {card} ({} lines) queued",
                        r.pos_receipt_no,
                        r.total,
                        r.currency,
                        r.lines.len()
                    ),
                );
            }
            if c.already_queued > 0 {
                sh.log.info(
                    "skip",
                    None,
                    &format!(
                        "{name}: {} receipt(s) were already queued (POS re-export); not duplicated",
                        c.already_queued
                    ),
                );
            }
            sh.wake.notify_one();
        }
        Err(e) => {
            sh.log.error(
                "outbox",
                None,
                &format!("{name}: commit failed, file left in place: {e:#}"),
            );
            return FileResult::Waiting;
        }
    }
    finish_move(sh, path, &name, &sh.cfg.processed_dir());
    FileResult::Done
}

fn finish_move(sh: &Shared, path: &Path, name: &str, dir: &Path) {
    if let Err(e) = move_file(path, dir, name) {
        sh.log.warn(
            "ingest",
            None,
            &format!(
                "{name}: committed but could not be moved to {}: {e} (its hash prevents a re-ingest)",
                dir.display()
            ),
        );
    }
}

/// The card policy at ingest: `[reader] card_policy`, else the cached program's, else the default.
fn card_policy(sh: &Shared) -> CardPolicy {
    if let Some(p) = &sh.cfg.reader.card_policy {
        return p.clone();
    }
    sh.cache
        .rules()
        .ok()
        .flatten()
        .map(|r| r.program.card_policy)
        .unwrap_or_default()
}

/// A receipt whose card column holds a payment card number (the POS stored the card the
/// customer paid with) is queued without a card: the number never reaches the outbox, the
/// server or a log (the warning shows the last 4 digits). The program's own prefixes win.
fn drop_payment_cards(sh: &Shared, name: &str, receipts: &mut [protocol::v1::Receipt]) {
    let policy = card_policy(sh);
    for r in receipts.iter_mut() {
        let Some(card) = &r.card else { continue };
        if !protocol::payment::payment_not_ours(card.expose(), &policy) {
            continue;
        }
        let last4 = protocol::payment::last4(card.expose());
        r.card = None;
        sh.log.warn(
            "card",
            Some(r.id.as_str()),
            &format!(
                "{name}: receipt {} has a payment card number (…{last4}) in its card column: dropped, \
                 the receipt is queued without a card (the POS export should not carry payment cards)",
                r.pos_receipt_no
            ),
        );
    }
}

fn quarantine(sh: &Shared, path: &Path, name: &str, reason: &str, err: Option<&ParseError>) {
    let qdir = sh.cfg.quarantine_dir();
    let dest = match move_file(path, &qdir, name) {
        Ok(d) => d,
        Err(e) => {
            sh.log.error(
                "quarantine",
                None,
                &format!("{name}: bad file ({reason}) and it cannot be moved to quarantine: {e}"),
            );
            return;
        }
    };
    // Logged before the reason file appears: whoever sees the file finds the log line too.
    sh.log
        .error("quarantine", None, &format!("{name} quarantined: {reason}"));
    write_error_txt(sh, name, &dest, None, reason, err);
}

/// `<dest>.error.txt`: what is wrong (line, field, value) and how to check the fix.
fn write_error_txt(
    sh: &Shared,
    name: &str,
    dest: &Path,
    receipt_no: Option<&str>,
    reason: &str,
    err: Option<&ParseError>,
) {
    let mut text = format!(
        "File: {name}\nQuarantined: {}\n",
        chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    );
    if let Some(no) = receipt_no {
        text.push_str(&format!(
            "Receipt: {no} (only this receipt; the others of the file were ingested)\nExtract: {}\n",
            dest.display()
        ));
    }
    text.push_str(&format!("Error: {reason}\n"));
    if let Some(e) = err {
        if let Some(l) = e.line {
            text.push_str(&format!("Line: {l}\n"));
        }
        if let Some(f) = &e.field {
            text.push_str(&format!("Field: {f}\n"));
        }
        if let Some(v) = &e.value {
            text.push_str(&format!("Value: {v}\n"));
        }
        text.push_str(&format!("Message: {}\n", e.message));
    }
    text.push_str(&format!(
        "\nFix the file (or the [receipts] settings in agent.toml) and move it back into the export folder.\nCheck with: till-agent parse \"{}\"\n",
        dest.display()
    ));
    let err_path = PathBuf::from(format!("{}.error.txt", dest.display()));
    let text = crate::synclog::mask_card_numbers(&text);
    // Logged before the reason file appears: whoever sees the file finds the log line too.
    sh.log
        .error("quarantine", None, &format!("{name} quarantined: {reason}"));
    // Written beside and renamed into place, so support (and tests) never read half a reason.
    let tmp_path = PathBuf::from(format!("{}.error.tmp", dest.display()));
    if let Err(e) = std::fs::write(&tmp_path, text).and_then(|_| std::fs::rename(&tmp_path, &err_path)) {
        sh.log.error(
            "quarantine",
            None,
            &format!("{name}: cannot write {}: {e}", err_path.display()),
        );
    }
}

/// One bad receipt of a multi-receipt file: its extract as `quarantine/receipt-<no>.<hash>.<ext>` plus
/// `.error.txt` (naming the source file). The name comes from the receipt number and the extract's
/// content, so writing it again (after a crash, or the same bad receipt in a re-export) replaces
/// the same file instead of adding one.
fn quarantine_receipt(sh: &Shared, name: &str, bad: &BadReceipt) {
    let qdir = sh.cfg.quarantine_dir();
    let no = bad.pos_receipt_no.clone().unwrap_or_else(|| "unnumbered".into());
    let safe_no: String = no
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let h = hex::encode(&Sha256::digest(bad.extract.as_bytes())[..4]);
    let dest = qdir.join(format!("receipt-{safe_no}.{h}.{}", bad.ext));
    let tmp = qdir.join(format!(".receipt-{safe_no}.{h}.tmp"));
    let written = std::fs::create_dir_all(&qdir)
        .and_then(|_| std::fs::write(&tmp, bad.extract.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, &dest));
    if let Err(e) = written {
        sh.log.error(
            "quarantine",
            None,
            &format!(
                "{name}: receipt {no} is bad ({}) and cannot be written to quarantine: {e}",
                bad.error
            ),
        );
        return;
    }
    let reason = bad.error.to_string();
    write_error_txt(sh, name, &dest, Some(&no), &reason, Some(&bad.error));
    sh.log.error(
        "quarantine",
        None,
        &crate::synclog::mask_card_numbers(&format!(
            "{name}: receipt {no} quarantined alone as {}: {reason}",
            dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        )),
    );
}

/// The file a notify event reports as arrived whole: renamed into the folder (inotify IN_MOVED_TO,
/// Windows FILE_ACTION_RENAMED_NEW_NAME) or closed after writing (inotify IN_CLOSE_WRITE).
fn arrived_whole(ev: &notify::Event) -> Option<&PathBuf> {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::EventKind;
    match ev.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
        | EventKind::Access(AccessKind::Close(AccessMode::Write)) => ev.paths.last(),
        _ => None,
    }
}

/// How often an export folder that is not watched (missing) is looked for.
const REARM_POLL: Duration = Duration::from_secs(1);

/// Watch `dir` (not recursive). False while it does not exist (it is looked for again, every
/// [`REARM_POLL`]); a folder that exists but cannot be watched is left to the periodic rescan.
fn arm(sh: &Shared, w: &mut notify::RecommendedWatcher, dir: &Path, first: bool) -> bool {
    use notify::Watcher;
    match w.watch(dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => {
            if !first {
                sh.log.info(
                    "watcher",
                    None,
                    &format!("the export folder {} is back; watching it", dir.display()),
                );
            }
            true
        }
        Err(e) if !dir.is_dir() => {
            if first {
                sh.log.warn(
                    "watcher",
                    None,
                    &format!("cannot watch {} ({e}); looking for it every second", dir.display()),
                );
            }
            false
        }
        Err(e) => {
            sh.log.warn(
                "watcher",
                None,
                &format!("cannot watch {} ({e}); relying on the periodic rescan", dir.display()),
            );
            true
        }
    }
}

/// The watcher task: notify + periodic rescan; passes run on a blocking thread.
pub async fn run(sh: Arc<Shared>) -> anyhow::Result<()> {
    let dir = sh.cfg.export_dir.clone();
    for d in [dir.clone(), sh.cfg.processed_dir(), sh.cfg.quarantine_dir()] {
        if let Err(e) = std::fs::create_dir_all(&d) {
            sh.log
                .error("watcher", None, &format!("cannot create {}: {e}", d.display()));
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let arrived: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
    // The export folder itself went away (deleted, a share unmounted): its watch is gone with it.
    let folder_gone = Arc::new(AtomicBool::new(false));
    let mut watcher = {
        let arrived = arrived.clone();
        let folder_gone = folder_gone.clone();
        let dir = dir.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if let Some(p) = arrived_whole(&ev) {
                    arrived.lock().unwrap_or_else(|e| e.into_inner()).insert(p.clone());
                } else if matches!(ev.kind, notify::EventKind::Access(_)) {
                    return; // opened / read: nothing new
                } else if matches!(ev.kind, notify::EventKind::Remove(_)) && ev.paths.contains(&dir) {
                    folder_gone.store(true, Ordering::Relaxed);
                }
                let _ = tx.send(());
            }
        })
    };
    if let Err(e) = &watcher {
        sh.log.warn(
            "watcher",
            None,
            &format!("file notifications unavailable ({e}); relying on the periodic rescan"),
        );
    }
    // Whether the folder is watched now; re-armed when it comes (back): a folder missing at the
    // start, or deleted and made again, is watched once it exists, and a pass reads what it holds.
    let mut armed = match &mut watcher {
        Ok(w) => arm(&sh, w, &dir, true),
        Err(_) => true,
    };
    sh.log.info("watcher", None, &format!("watching {}", dir.display()));
    let mut shutdown = sh.shutdown_rx();
    let mut rescan = tokio::time::interval(Duration::from_secs(sh.cfg.rescan_interval_secs));
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting = false;
    loop {
        tokio::select! {
            _ = rescan.tick() => {}
            Some(()) = rx.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)), if waiting => {}
            // Unwatched: look for the folder every second.
            _ = tokio::time::sleep(REARM_POLL), if !armed => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        while rx.try_recv().is_ok() {}
        if let Ok(w) = &mut watcher {
            // Off the async thread: a share that does not answer can hold a look for many seconds.
            let present = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || dir.is_dir()).await.unwrap_or(true)
            };
            // The event, or (a platform that sends none for the folder itself) a pass finding it gone.
            if folder_gone.swap(false, Ordering::Relaxed) || (armed && !present) {
                use notify::Watcher;
                let _ = w.unwatch(&dir);
                armed = false;
                sh.log.warn(
                    "watcher",
                    None,
                    &format!(
                        "the export folder {} was removed; watching for it to come back",
                        dir.display()
                    ),
                );
            }
            if !armed {
                if !present {
                    continue;
                }
                armed = arm(&sh, w, &dir, false);
            }
        }
        let whole = std::mem::take(&mut *arrived.lock().unwrap_or_else(|e| e.into_inner()));
        let sh2 = sh.clone();
        match tokio::task::spawn_blocking(move || scan_pass_with(&sh2, &whole)).await {
            Ok(p) => waiting = p.waiting > 0,
            Err(e) => {
                sh.log.error("watcher", None, &format!("scan pass failed: {e}"));
                waiting = true;
            }
        }
    }
    drop(watcher);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use protocol::CardId;

    #[test]
    fn temp_names_are_ignored() {
        for n in [
            "r1.tmp",
            "~r1.csv",
            ".r1.csv",
            "r1.csv.partial",
            "x.part",
            "r1.csv.error.txt",
            "R1.TMP",
        ] {
            assert!(is_ignored_name(n), "{n}");
        }
        for n in ["r1.csv", "receipt.json", "poslog.xml", "tmp.csv"] {
            assert!(!is_ignored_name(n), "{n}");
        }
    }

    #[test]
    fn scan_attaches_within_window_once() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let card = CardId::normalise("1900123456789012").unwrap();
        let scan = PendingScan {
            card: card.clone(),
            at: t("2026-11-23T10:00:00+01:00"),
        };
        let json = r#"{"id":"x","store_id":"S","till_id":"T","pos_receipt_no":"1","issued_at":"2026-11-23T10:05:00+01:00","currency":"CZK","total":"1","lines":[]}"#;
        let mut r: protocol::v1::Receipt = serde_json::from_str(json).unwrap();
        assert!(attach_scan(&mut r, &scan, 600));
        assert_eq!(r.card.as_ref(), Some(&card));
        assert!(!attach_scan(&mut r, &scan, 600), "already has a card");
        let mut late: protocol::v1::Receipt = serde_json::from_str(&json.replace("10:05", "10:11")).unwrap();
        assert!(!attach_scan(&mut late, &scan, 600), "outside the window");
        let mut before: protocol::v1::Receipt = serde_json::from_str(&json.replace("10:05", "09:30")).unwrap();
        assert!(!attach_scan(&mut before, &scan, 600), "long before the scan");
        let mut utc: protocol::v1::Receipt =
            serde_json::from_str(&json.replace("10:05:00+01:00", "09:01:00Z")).unwrap();
        assert!(attach_scan(&mut utc, &scan, 600), "offsets compared as instants");
    }

    #[test]
    fn a_file_over_the_size_cap_is_quarantined_unread() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("export")).unwrap();
        let toml = "server_url = \"http://127.0.0.1:9\"\nstore_id = \"S1\"\ntill_id = \"T1\"\nexport_dir = \"export\"\nstable_ms = 10\nmax_export_file_mib = 1\n";
        let cfg = crate::config::Config::from_str(toml, &d.path().join("agent.toml")).unwrap();
        assert_eq!(cfg.max_export_file_bytes, 1024 * 1024);
        let sh = Shared::open(cfg, crate::events::bus()).unwrap();
        // Sparse: 3 GiB on paper, no blocks on disk; reading it would take the memory of the till.
        let big = d.path().join("export/huge.csv");
        std::fs::File::create(&big).unwrap().set_len(3 << 30).unwrap();
        let pass = scan_pass(&sh);
        assert_eq!(pass.ingested_files, 1, "{pass:?}");
        assert!(!big.exists());
        let q = d.path().join("export/quarantine/huge.csv");
        assert_eq!(std::fs::metadata(&q).unwrap().len(), 3 << 30, "moved, not rewritten");
        let why = std::fs::read_to_string(d.path().join("export/quarantine/huge.csv.error.txt")).unwrap();
        assert!(why.contains("over the size cap of 1048576 bytes"), "{why}");
        assert!(why.contains("max_export_file_mib"), "{why}");
        assert_eq!(sh.outbox().stats().unwrap().pending, 0);
    }

    /// The watcher task running on a fresh export folder with the given `stable_ms`.
    fn watching(rt: &tokio::runtime::Runtime, stable_ms: u64) -> (tempfile::TempDir, Arc<Shared>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("export")).unwrap();
        let toml = format!(
            "server_url = \"http://127.0.0.1:9\"\nstore_id = \"S1\"\ntill_id = \"T1\"\nexport_dir = \"export\"\nstable_ms = {stable_ms}\n"
        );
        let cfg = crate::config::Config::from_str(&toml, &d.path().join("agent.toml")).unwrap();
        let sh = Shared::open(cfg, crate::events::bus()).unwrap();
        rt.spawn(run(sh.clone()));
        std::thread::sleep(Duration::from_millis(300)); // watching
        (d, sh)
    }

    fn receipt_json() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/receipts/protocol_receipt.json"
        ))
        .unwrap()
    }

    /// Waits up to `limit` for the outbox to hold a receipt; returns how long it took.
    fn queued_within(sh: &Shared, limit: Duration) -> Option<Duration> {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < limit {
            if sh.outbox().stats().unwrap().pending > 0 {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn a_file_renamed_into_the_folder_skips_the_stability_wait() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        // 30 s stability wait: only the fast path can queue the receipt within 10 s (wide margins
        // for a loaded CI machine; the latency itself is measured in scripts/bench.sh).
        let (d, sh) = watching(&rt, 30_000);
        let tmp = d.path().join("r1.json.tmp");
        std::fs::write(&tmp, receipt_json()).unwrap();
        std::fs::rename(&tmp, d.path().join("export/r1.json")).unwrap();
        let took = queued_within(&sh, Duration::from_secs(10));
        assert!(
            took.is_some(),
            "a file renamed into place waited for the stability check"
        );
        // Moved to processed/ right after it is queued (the outbox commit comes first).
        let moved = d.path().join("export/processed/r1.json");
        let t0 = std::time::Instant::now();
        while !moved.exists() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(moved.exists(), "queued but not moved to processed/");
        sh.begin_shutdown();
    }

    #[test]
    fn a_file_still_open_for_writing_waits_until_closed() {
        use std::io::Write;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (d, sh) = watching(&rt, 1000);
        // Renamed into place while the writer keeps it open (and could still append).
        let tmp = d.path().join("r2.json.tmp");
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(&receipt_json()).unwrap();
        f.flush().unwrap();
        std::fs::rename(&tmp, d.path().join("export/r2.json")).unwrap();
        assert_eq!(
            crate::os::writer_holds(&d.path().join("export/r2.json")),
            Some(true),
            "the OS check sees the open writer"
        );
        // Kept open and unchanged: the fast path must not take it; the settling check would after 1 s.
        assert!(
            queued_within(&sh, Duration::from_millis(700)).is_none(),
            "a file the writer still holds was read without the stability wait"
        );
        drop(f); // closed after writing (IN_CLOSE_WRITE): read at once
        let took = queued_within(&sh, Duration::from_secs(10));
        assert!(took.is_some(), "never queued after the writer closed it");
        let closed = d.path().join("closed.json");
        std::fs::write(&closed, b"{}").unwrap();
        assert_eq!(
            crate::os::writer_holds(&closed),
            Some(false),
            "a closed file is known free"
        );
        sh.begin_shutdown();
    }
}
