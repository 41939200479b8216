//! The context the agent's background tasks share: configuration, outbox, sync log, cache, the
//! event bus, wake-ups and the link state behind [`SyncStatus`]. Below the tasks (watcher,
//! replicator, cache sync, inputs) and the runtime that starts them: each of them uses it, it
//! uses none of them.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use protocol::CardId;
use tokio::sync::{watch, Notify};

use crate::cache::Cache;
use crate::config::Config;
use crate::events::{AgentEvent, Bus, SyncProblem, SyncStatus};
use crate::sync::outbox::{set_metas_in, stats_of, AckBatch, Outbox, Stats};
use crate::synclog::SyncLog;

/// The last loyalty card scanned on this till, waiting for a card-less receipt.
#[derive(Clone, Debug)]
pub struct PendingScan {
    pub card: CardId,
    pub at: DateTime<FixedOffset>,
}

/// State shared by the background tasks.
pub struct Shared {
    pub cfg: Config,
    outbox: Mutex<Outbox>,
    pub log: SyncLog,
    pub cache: Cache,
    pub bus: Bus,
    /// A new item is in the outbox.
    pub wake: Notify,
    /// "Sync now": interrupt a backoff.
    pub sync_now: Notify,
    pub cache_now: Notify,
    pub last_scan: Mutex<Option<PendingScan>>,
    /// A reader test is running (see `Command::ReaderTest`).
    pub reader_test: Arc<std::sync::atomic::AtomicBool>,
    status_tx: watch::Sender<SyncStatus>,
    shutdown_tx: watch::Sender<bool>,
    state: Mutex<LinkState>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct LinkState {
    reachable: bool,
    last_success: Option<DateTime<FixedOffset>>,
    last_error: Option<String>,
    /// reader → what is wrong with it now
    reader_problems: std::collections::BTreeMap<String, String>,
    problem: Option<SyncProblem>,
    /// supervised task → what happened to it (until it runs cleanly again)
    task_problems: std::collections::BTreeMap<String, String>,
}

impl Shared {
    /// Open the outbox, sync log and cache under `cfg.data_dir`.
    pub fn open(cfg: Config, bus: Bus) -> anyhow::Result<Arc<Shared>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create the data folder {}: {e}", cfg.data_dir.display()))?;
        check_writable(&cfg.data_dir)?;
        let (mut outbox, damaged) = crate::recover::open_or_replace(&cfg.outbox_path(), Outbox::open)?;
        let log = SyncLog::open(&cfg.outbox_path())?;
        if let Some((aside, why)) = damaged {
            let mut queued = 0;
            for item in crate::recover::salvage_items(&aside) {
                queued += usize::from(outbox.enqueue(&item)?);
            }
            // The items that are no receipt file (offline redemptions, registrations, tags) come
            // back from the copy that went aside with it; those read from the file already are
            // not queued twice (same id).
            let copy = crate::sync::unsent::path_for(&aside);
            let (from_copy, bad) = outbox.queue_copy(&copy)?;
            for b in bad {
                log.error("outbox", None, &format!("{}: {b} (not queued again)", copy.display()));
            }
            let files = crate::recover::reread_processed(&cfg, cfg.retention_days).unwrap_or_else(|e| {
                log.error("outbox", None, &format!("putting processed/ files back failed: {e}"));
                0
            });
            log.error(
                "outbox",
                None,
                &format!(
                    "{} was damaged ({why}); it is set aside as {} and a new outbox started: {queued} item(s) still \
                     readable in it queued again, {from_copy} more offline redemption(s), registration(s) or tag(s) \
                     from its copy of unsent items ({}), {files} receipt file(s) of processed/ from the last {} days \
                     put back into the export folder to be read again (the server counts each receipt and each \
                     request once)",
                    cfg.outbox_path().display(),
                    aside.display(),
                    copy.display(),
                    cfg.retention_days
                ),
            );
        }
        let (cache, cache_damaged) = crate::recover::open_or_replace(&cfg.cache_path(), Cache::open)?;
        if let Some((aside, why)) = cache_damaged {
            log.warn(
                "cache",
                None,
                &format!(
                    "{} was damaged ({why}); it is set aside as {} and rebuilt from the server",
                    cfg.cache_path().display(),
                    aside.display()
                ),
            );
        }
        let last_success = outbox
            .meta("last_success")?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok());
        // What an earlier run said about its card readers is void: this run's readers report anew.
        outbox.set_meta("reader_problems", None)?;
        outbox.set_meta("task_problems", None)?;
        let state = LinkState {
            reachable: false,
            last_success,
            last_error: None,
            reader_problems: Default::default(),
            problem: None,
            task_problems: Default::default(),
        };
        Ok(Arc::new(Shared {
            cfg,
            outbox: Mutex::new(outbox),
            log,
            cache,
            bus,
            wake: Notify::new(),
            sync_now: Notify::new(),
            cache_now: Notify::new(),
            last_scan: Mutex::new(None),
            reader_test: Arc::default(),
            status_tx: watch::channel(SyncStatus::default()).0,
            shutdown_tx: watch::channel(false).0,
            state: Mutex::new(state),
        }))
    }

    pub fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Tell every task to finish its current step and stop.
    pub fn begin_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown_tx.borrow()
    }

    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status_tx.subscribe()
    }

    /// Sleep `d`, or until shutdown / "Sync now" / (if `on_new`) a new outbox item.
    pub async fn wait(&self, d: Duration, shutdown: &mut watch::Receiver<bool>, on_new: bool) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wake.notified(), if on_new => {}
            _ = self.sync_now.notified() => {}
            _ = shutdown.changed() => {}
        }
    }

    fn state(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mark_success(&self) {
        {
            let mut s = self.state();
            s.reachable = true;
            s.last_success = Some(chrono::Local::now().fixed_offset());
            s.last_error = None;
            s.problem = None;
        }
        self.publish_status();
    }

    pub fn set_reachable(&self, r: bool) {
        self.state().reachable = r;
    }

    pub fn set_error(&self, e: Option<String>) {
        self.state().last_error = e;
    }

    /// Why the last send failed, classified (`None`: it did not).
    pub fn set_problem(&self, p: Option<SyncProblem>) {
        self.state().problem = p;
    }

    /// A supervised task failed (`Some`) or runs cleanly again (`None`).
    pub fn set_task_problem(&self, task: &str, problem: Option<String>) {
        let mut s = self.state();
        match problem {
            Some(p) => s.task_problems.insert(task.to_string(), p),
            None => s.task_problems.remove(task),
        };
    }

    pub fn task_problem(&self, task: &str) -> Option<String> {
        self.state().task_problems.get(task).cloned()
    }

    /// A card reader's state changed: `problem` = what is wrong now, `None` = it works again.
    pub fn set_reader_problem(&self, reader: &str, problem: Option<String>) {
        let mut s = self.state();
        match problem {
            Some(p) => s.reader_problems.insert(reader.to_string(), p),
            None => s.reader_problems.remove(reader),
        };
    }

    /// Recompute [`SyncStatus`]; on change publish it (watch + bus) and persist it for `status`.
    pub fn publish_status(&self) {
        let mut outbox = self.outbox();
        let Ok(stats) = outbox.stats() else {
            return;
        };
        let link = self.state().clone();
        let Some((st, metas)) = self.status_change(&link, &stats) else {
            return;
        };
        // One transaction, not fsynced: it changes with every acknowledged batch.
        let _ = outbox.set_metas(&metas.as_refs());
        drop(outbox);
        let _ = self.bus.send(AgentEvent::Status(st));
    }

    /// An answered batch: the link is up (as [`Self::mark_success`]), and the acks, their sync-log
    /// rows and the status meta rows are written in ONE transaction on the outbox's connection
    /// (one commit per batch, not three on two connections).
    pub fn record_acks(&self, acks: &AckBatch) -> anyhow::Result<()> {
        {
            let mut s = self.state();
            s.reachable = true;
            s.last_success = Some(chrono::Local::now().fixed_offset());
            s.last_error = None;
            s.problem = None;
        }
        let link = self.state().clone();
        let mut changed = None;
        let res = self.outbox().write_acks(acks, |tx| {
            let stats = stats_of(tx)?;
            if let Some((st, metas)) = self.status_change(&link, &stats) {
                set_metas_in(tx, &metas.as_refs())?;
                changed = Some(st);
            }
            Ok(())
        });
        if let Some(st) = changed {
            let _ = self.bus.send(AgentEvent::Status(st));
        }
        res
    }

    /// The status from `link` and `stats`: `Some` (and the watch updated) when it changed, with
    /// the meta rows that persist it for `till-agent status`.
    fn status_change(&self, link: &LinkState, stats: &Stats) -> Option<(SyncStatus, StatusMetas)> {
        let st = SyncStatus {
            queue_depth: stats.pending,
            dead_letters: stats.dead_letters,
            last_success: link.last_success,
            server_reachable: link.reachable,
            last_error: link.last_error.clone(),
            reader_problems: link.reader_problems.values().cloned().collect(),
            sync_problem: link.problem.clone(),
            task_problems: link.task_problems.iter().map(|(t, p)| format!("{t}: {p}")).collect(),
            service_problem: None,
        };
        let changed = self.status_tx.send_if_modified(|cur| {
            if *cur == st {
                false
            } else {
                *cur = st.clone();
                true
            }
        });
        if !changed {
            return None;
        }
        let problems: Vec<&str> = link.reader_problems.values().map(String::as_str).collect();
        let tasks: Vec<String> = link.task_problems.iter().map(|(t, p)| format!("{t}: {p}")).collect();
        let metas = StatusMetas(vec![
            ("last_success", link.last_success.map(|t| t.to_rfc3339())),
            ("last_error", link.last_error.clone()),
            (
                "server_reachable",
                Some(if link.reachable { "true" } else { "false" }.to_string()),
            ),
            ("reader_problems", (!problems.is_empty()).then(|| problems.join("\n"))),
            ("task_problems", (!tasks.is_empty()).then(|| tasks.join("\n"))),
            (
                "sync_problem",
                link.problem.as_ref().and_then(|p| serde_json::to_string(p).ok()),
            ),
            ("status_at", Some(chrono::Local::now().to_rfc3339())),
        ]);
        Some((st, metas))
    }
}

/// The meta rows that persist a [`SyncStatus`] for `till-agent status`.
struct StatusMetas(Vec<(&'static str, Option<String>)>);

impl StatusMetas {
    fn as_refs(&self) -> Vec<(&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (*k, v.as_deref())).collect()
    }
}

/// A data folder we cannot write to is reported as such (read-only file system, full disk,
/// permissions) before SQLite gives a vaguer error.
fn check_writable(dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = dir.join(format!(".till-agent-write-test-{}", std::process::id()));
    let r = std::fs::write(&probe, b"x");
    let _ = std::fs::remove_file(&probe);
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(30) || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
            anyhow::bail!("the data folder {} is on a read-only file system: {e}", dir.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            anyhow::bail!(
                "the data folder {} is read-only for this user (permission denied): {e}",
                dir.display()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) => {
            anyhow::bail!("the disk holding the data folder {} is full: {e}", dir.display())
        }
        Err(e) => anyhow::bail!("cannot write to the data folder {}: {e}", dir.display()),
    }
}

/// `error: cause: cause` for errors whose Display hides the cause (reqwest).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        src = c.source();
    }
    s
}
