//! The background: a tokio runtime on its own thread running the agent's tasks (watchexec style,
//! each event source a task): export-folder watcher, replicator, cache sync, receipt–card
//! association (bus subscriber) and the command handler. The UI (or `run --headless`) hosts it
//! through [`start_background`] and talks to it with [`Command`]s.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use tokio::sync::{mpsc, watch, Notify};

use crate::cache::Cache;
use crate::config::Config;
use crate::events::{AgentEvent, Bus, Classified, SyncStatus};
use crate::outbox::Outbox;
use crate::synclog::SyncLog;
use crate::watcher::PendingScan;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send now: make backed-off items due, skip the current backoff, refresh the cache.
    SyncNow,
    /// Queue a registration / migration pairing from the cashier's form (outbox item, sync-log
    /// line, replicator woken; `AgentEvent::Enrol` tells the form).
    Enrol(Box<crate::enrol::Request>),
    /// Reader test on / off: the readers publish `AgentEvent::Reader` diagnostics while on.
    ReaderTest(bool),
    /// Flush and stop.
    Shutdown,
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
}

impl Shared {
    /// Open the outbox, sync log and cache under `cfg.data_dir`.
    pub fn open(cfg: Config, bus: Bus) -> anyhow::Result<Arc<Shared>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create the data folder {}: {e}", cfg.data_dir.display()))?;
        check_writable(&cfg.data_dir)?;
        let outbox = Outbox::open(&cfg.outbox_path())?;
        let log = SyncLog::open(&cfg.outbox_path())?;
        let cache = Cache::open(&cfg.cache_path())?;
        let last_success = outbox
            .meta("last_success")?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok());
        // What an earlier run said about its card readers is void: this run's readers report anew.
        outbox.set_meta("reader_problems", None)?;
        let state = LinkState {
            reachable: false,
            last_success,
            last_error: None,
            reader_problems: Default::default(),
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
        }
        self.publish_status();
    }

    pub fn set_reachable(&self, r: bool) {
        self.state().reachable = r;
    }

    pub fn set_error(&self, e: Option<String>) {
        self.state().last_error = e;
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
        let link = self.state().clone();
        let stats = match self.outbox().stats() {
            Ok(s) => s,
            Err(_) => return,
        };
        let st = SyncStatus {
            queue_depth: stats.pending,
            dead_letters: stats.dead_letters,
            last_success: link.last_success,
            server_reachable: link.reachable,
            last_error: link.last_error.clone(),
            reader_problems: link.reader_problems.values().cloned().collect(),
        };
        let changed = self.status_tx.send_if_modified(|cur| {
            if *cur == st {
                false
            } else {
                *cur = st.clone();
                true
            }
        });
        if changed {
            let o = self.outbox();
            let _ = o.set_meta("last_success", link.last_success.map(|t| t.to_rfc3339()).as_deref());
            let _ = o.set_meta("last_error", link.last_error.as_deref());
            let _ = o.set_meta("server_reachable", Some(if link.reachable { "true" } else { "false" }));
            let problems: Vec<&str> = link.reader_problems.values().map(String::as_str).collect();
            let _ = o.set_meta(
                "reader_problems",
                (!problems.is_empty()).then(|| problems.join("\n")).as_deref(),
            );
            let _ = o.set_meta("status_at", Some(&chrono::Local::now().to_rfc3339()));
            drop(o);
            let _ = self.bus.send(AgentEvent::Status(st));
        }
    }
}

/// The running background, owned by the UI or the headless loop.
pub struct Background {
    pub bus: Bus,
    pub commands: mpsc::UnboundedSender<Command>,
    pub status: watch::Receiver<SyncStatus>,
    /// The tasks' shared state (outbox for registrations/pairings, cache for quotes).
    pub shared: Arc<Shared>,
    pub join: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Ask the tasks to stop, flush the outbox and join the runtime thread.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(j) = self.join.take() {
            j.join()
                .map_err(|_| anyhow::anyhow!("the background thread panicked"))?;
        }
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Start the background tasks on a tokio runtime on their own thread.
pub fn start_background(cfg: Config) -> anyhow::Result<Background> {
    let bus = crate::events::bus();
    let shared = Shared::open(cfg, bus.clone())?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    let status = shared.status();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("till-agent-bg")
        .enable_all()
        .build()?;
    let sh = shared.clone();
    // Subscribe before the thread starts so no scan published meanwhile is missed.
    let scans = bus.subscribe();
    let join = std::thread::Builder::new()
        .name("till-agent-runtime".into())
        .spawn(move || {
            rt.block_on(async move {
                sh.log.info(
                    "start",
                    None,
                    &format!(
                        "till-agent {} started: store {} till {}, server {}, export folder {}",
                        env!("CARGO_PKG_VERSION"),
                        sh.cfg.store_id,
                        sh.cfg.till_id,
                        sh.cfg.server_url,
                        sh.cfg.export_dir.display()
                    ),
                );
                sh.publish_status();
                let tasks = vec![
                    tokio::spawn(crate::watcher::run(sh.clone())),
                    tokio::spawn(crate::replicator::run(sh.clone())),
                    tokio::spawn(crate::replicator::run_cache_sync(sh.clone())),
                    tokio::spawn(associate_scans(sh.clone(), scans)),
                    tokio::spawn(run_inputs(sh.clone())),
                ];
                while let Some(cmd) = rx.recv().await {
                    match cmd {
                        Command::SyncNow => {
                            let _ = sh.outbox().make_all_due();
                            sh.sync_now.notify_one();
                            sh.wake.notify_one();
                            sh.cache_now.notify_one();
                            sh.log.info("sync", None, "sync now requested");
                        }
                        Command::Enrol(req) => enrol(&sh, &req),
                        Command::ReaderTest(on) => {
                            sh.reader_test.store(on, std::sync::atomic::Ordering::Relaxed);
                            tracing::info!(
                                "reader test {}",
                                if on {
                                    "on: readers publish keys and decisions"
                                } else {
                                    "off"
                                }
                            );
                        }
                        Command::Shutdown => break,
                    }
                }
                // Flush: let the tasks finish their current step.
                sh.shutdown_tx.send_replace(true);
                for t in tasks {
                    if tokio::time::timeout(Duration::from_secs(10), t).await.is_err() {
                        tracing::warn!("a background task did not stop within 10 s");
                    }
                }
                sh.publish_status();
                sh.log.info("stop", None, "till-agent stopped cleanly");
                if let Err(e) = sh.outbox().flush() {
                    tracing::warn!("outbox checkpoint on shutdown failed: {e:#}");
                }
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
    Ok(Background {
        bus,
        commands: tx,
        status,
        shared,
        join: Some(join),
    })
}

/// `Command::Enrol`: into the outbox, wake the replicator, tell the form.
fn enrol(sh: &Shared, req: &crate::enrol::Request) {
    let r = crate::enrol::enqueue(&mut sh.outbox(), &sh.log, req, &sh.cfg.store_id, &sh.cfg.till_id);
    let error = match r {
        Ok(_) => {
            sh.wake.notify_one();
            sh.publish_status();
            None
        }
        Err(e) => {
            sh.log.error(
                "enrol",
                Some(req.request_id()),
                &format!("{} for card {} could not be queued: {e:#}", req.what(), req.card()),
            );
            Some(format!("{e:#}"))
        }
    };
    let _ = sh.bus.send(AgentEvent::Enrol(crate::events::EnrolEvent {
        request_id: req.request_id().to_string(),
        error,
    }));
}

/// Card input (readers → Scan → Quote on the bus), owned by `input`; an error is logged and the
/// rest of the agent keeps running (receipts still flow).
async fn run_inputs(sh: Arc<Shared>) {
    let s = sh.clone();
    let notice: crate::input::run::Notice = Arc::new(move |n: crate::input::run::ReaderNotice| {
        s.log.record(n.level, "reader", None, &n.message);
        if let Some(problem) = n.problem {
            s.set_reader_problem(&n.reader, problem.then(|| n.message.clone()));
            s.publish_status();
        }
    });
    if let Err(e) = crate::input::run_inputs(
        sh.cfg.clone(),
        sh.bus.clone(),
        sh.shutdown_rx(),
        sh.reader_test.clone(),
        notice,
    )
    .await
    {
        sh.log.error("input", None, &format!("card input stopped: {e:#}"));
    }
}

/// Remember the last loyalty-card scan for the next card-less receipt.
async fn associate_scans(sh: Arc<Shared>, mut rx: tokio::sync::broadcast::Receiver<AgentEvent>) {
    let mut shutdown = sh.shutdown_rx();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shutdown.changed() => break,
        };
        match ev {
            Ok(AgentEvent::Scan(s)) => {
                if let Classified::LoyaltyCard { card } = s.classified {
                    *sh.last_scan.lock().unwrap_or_else(|p| p.into_inner()) = Some(PendingScan { card, at: s.at });
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// A data folder we cannot write to is reported as such (read-only file system, full disk,
/// permissions) before SQLite gives a vaguer error.
/// Held while an agent runs on a data folder: a second agent on the same folder (a service and a
/// tray app, two `run --headless`) would double every watcher and reader.
pub struct DataLock {
    _file: std::fs::File,
}

/// Take `<data>/till-agent.lock` (an OS file lock: gone with the process, even after SIGKILL).
/// `Ok(None)`: the folder cannot hold the lock now (read-only, full, missing) — the caller goes on;
/// starting reports that folder problem anyway. `Err`: another agent holds it.
pub fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<Option<DataLock>> {
    use std::io::Write as _;
    let path = dir.join("till-agent.lock");
    let _ = std::fs::create_dir_all(dir);
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    else {
        return Ok(None);
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0).and_then(|_| writeln!(file, "{}", std::process::id()));
            Ok(Some(DataLock { _file: file }))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            // (Windows: the locked file cannot be read by others; then no pid)
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let who = if pid.trim().is_empty() {
                "another till-agent".to_string()
            } else {
                format!("another till-agent (pid {})", pid.trim())
            };
            anyhow::bail!(
                "{who} is already running on the data folder {}; stop it first",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::warn!("cannot lock {}: {e}; going on without the lock", path.display());
            Ok(None)
        }
    }
}

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

/// Wait for Ctrl-C or (Unix) SIGTERM.
pub async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
