//! The background: a tokio runtime on its own thread running the agent's tasks (watchexec style,
//! each event source a task): export-folder watcher, replicator, cache sync, receipt–card
//! association (bus subscriber) and the command handler. The UI (or `run --headless`) hosts it
//! through [`start_background`] and talks to it with [`Command`]s.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::context::{PendingScan, Shared};
use crate::events::{AgentEvent, Bus, Classified, SyncStatus};
use crate::supervisor::{supervise, OnOk};

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Send now: make backed-off items due, skip the current backoff, refresh the cache.
    SyncNow,
    /// Queue a registration / migration pairing from the cashier's form (outbox item, sync-log
    /// line, replicator woken; `AgentEvent::Enrol` tells the form).
    Enrol(Box<crate::enrol::Request>),
    /// Redeem points from the till's confirm window (`redeem::redeem`: online, else queued);
    /// `AgentEvent::Redeem` tells the window.
    Redeem(Box<protocol::v1::RedeemRequest>),
    /// Void a redemption of this till (`redeem::void`); `AgentEvent::Redeem` with `void` tells.
    Void(String),
    /// Find a customer by what the cashier typed (card / phone / e-mail; `lookup`): the quote is
    /// published like a scan's (`Scan` + `Quote`, source `search`), then `AgentEvent::Lookup`.
    Find { request_id: String, query: String },
    /// Queue a receipt tag from the "Add purchase to card" form (`tag`); `AgentEvent::Tag` tells.
    Tag {
        request_id: String,
        form: Box<crate::tag::TagForm>,
    },
    /// Reader test on / off: the readers publish `AgentEvent::Reader` diagnostics while on.
    ReaderTest(bool),
    /// Flush and stop.
    Shutdown,
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

/// Which tasks a background runs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The card readers (the all-in-one `run`); the service leaves them to the session apps.
    pub card_input: bool,
}

/// Start the background tasks on a tokio runtime on their own thread.
pub fn start_background(cfg: Config) -> anyhow::Result<Background> {
    start_background_with(cfg, Options { card_input: true })
}

/// [`start_background`] with a choice of tasks (`service.rs`: no card input).
pub fn start_background_with(cfg: Config, opts: Options) -> anyhow::Result<Background> {
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
                // Each task named and supervised: an early exit or a panic is logged, shown in
                // the status and the task restarted with backoff (`supervisor`).
                let scans = std::sync::Mutex::new(Some(scans));
                let mut tasks = vec![
                    supervise(sh.clone(), "watcher", OnOk::Restart, {
                        let sh = sh.clone();
                        move || crate::watcher::run(sh.clone())
                    }),
                    supervise(sh.clone(), "replicator", OnOk::Restart, {
                        let sh = sh.clone();
                        move || crate::sync::replicator::run(sh.clone())
                    }),
                    supervise(sh.clone(), "cache-sync", OnOk::Restart, {
                        let sh = sh.clone();
                        move || crate::sync::cache_sync::run_cache_sync(sh.clone())
                    }),
                    supervise(sh.clone(), "scan-association", OnOk::Restart, {
                        let sh = sh.clone();
                        move || {
                            // the first run keeps the subscription taken before the start
                            let rx = scans
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .take()
                                .unwrap_or_else(|| sh.bus.subscribe());
                            associate_scans(sh.clone(), rx)
                        }
                    }),
                ];
                if opts.card_input {
                    tasks.push(supervise(sh.clone(), "card-input", OnOk::Finish, {
                        let sh = sh.clone();
                        move || run_inputs(sh.clone())
                    }));
                }
                // The search box's quotes (opened on the first search, kept for the next).
                let mut lookups: Option<Arc<crate::quote::QuoteService>> = None;
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
                        Command::Redeem(req) => {
                            tokio::spawn(redeem(sh.clone(), req));
                        }
                        Command::Void(id) => {
                            tokio::spawn(void(sh.clone(), id));
                        }
                        Command::Find { request_id, query } => {
                            let qs = match &lookups {
                                Some(q) => Some(q.clone()),
                                None => match crate::quote::QuoteService::new(&sh.cfg) {
                                    Ok(q) => {
                                        let q = Arc::new(q);
                                        lookups = Some(q.clone());
                                        Some(q)
                                    }
                                    Err(e) => {
                                        tracing::warn!("customer search: no quote service: {e:#}");
                                        None
                                    }
                                },
                            };
                            tokio::spawn(find(sh.clone(), qs, request_id, query));
                        }
                        Command::Tag { request_id, form } => tag(&sh, request_id, &form),
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
                sh.begin_shutdown();
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
    let country = crate::lookup::till_phone_country(&sh.cfg);
    let r = crate::enrol::enqueue(
        &mut sh.outbox(),
        &sh.log,
        req,
        &sh.cfg.store_id,
        &sh.cfg.till_id,
        &country,
    );
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

/// `Command::Find`: `lookup::parse_query` + `lookup::lookup`; found → the same `Scan` + `Quote`
/// events a scan publishes (source `search`: the popup, and the scan association for the next
/// card-less receipt), its messages acknowledged as shown; then `AgentEvent::Lookup`.
async fn find(sh: Arc<Shared>, qs: Option<Arc<crate::quote::QuoteService>>, request_id: String, query: String) {
    use crate::events::{LookupEvent, LookupProblem};
    use crate::lookup::LookupError;
    let answer = |problem, found| {
        let _ = sh.bus.send(AgentEvent::Lookup(LookupEvent {
            request_id: request_id.clone(),
            problem,
            found,
        }));
    };
    let Some(qs) = qs else {
        return answer(
            Some(LookupProblem::Other {
                detail: "no quote service".into(),
            }),
            None,
        );
    };
    let cache = qs.cache().ok();
    let parsed = crate::lookup::parse_query(
        &query,
        &qs.card_policy(),
        &crate::lookup::phone_country(sh.cfg.phone_country.as_deref(), cache.as_deref()),
    );
    drop(query);
    let found = match parsed {
        Ok(q) => crate::lookup::lookup(&qs, &q).await,
        Err(e) => Err(e),
    };
    match found {
        Ok((card, quote)) => {
            let scan = crate::events::ScanEvent {
                at: chrono::Local::now().fixed_offset(),
                source: "search".into(),
                classified: Classified::LoyaltyCard { card: card.clone() },
            };
            tracing::info!(card = %card, "customer found from the search box");
            let _ = sh.bus.send(AgentEvent::Scan(scan.clone()));
            let shown = crate::events::QuoteEvent {
                scan,
                quote,
                provisional: false,
            };
            let _ = sh.bus.send(AgentEvent::Quote(shown.clone()));
            if let Err(e) = qs.ack_shown(&shown.quote) {
                tracing::warn!("cashier messages shown but not acknowledged: {e:#}");
            }
            sh.wake.notify_one();
            answer(None, Some(Box::new(shown)))
        }
        Err(e) => {
            tracing::info!("customer search found nothing: {e}");
            let problem = match e {
                LookupError::Empty => LookupProblem::Empty,
                LookupError::NotCardNorPhone { .. } => LookupProblem::NotCardNorPhone,
                LookupError::BadCard(_) => LookupProblem::BadCard,
                LookupError::PaymentCard(last4) => LookupProblem::PaymentCard { last4 },
                LookupError::BadContact(_) => LookupProblem::BadContact,
                LookupError::NoLookupKey(_) => LookupProblem::NoLookupKey,
                LookupError::NotFound(what, _) => LookupProblem::NotFound {
                    phone: what.contains("phone"),
                },
                LookupError::NoActiveCard(_) => LookupProblem::NoActiveCard,
                LookupError::Other(e) => LookupProblem::Other {
                    detail: format!("{e:#}"),
                },
            };
            answer(Some(problem), None)
        }
    }
}

/// `Command::Tag`: `tag::TagForm::validate` (the program's card policy, today in the store's
/// zone) → `tag::enqueue` → replicator woken; `AgentEvent::Tag` tells the form.
fn tag(sh: &Shared, request_id: String, form: &crate::tag::TagForm) {
    let policy = crate::input::cli::policy_for(Some(&sh.cfg));
    let now = chrono::Utc::now();
    let mut ev = crate::events::TagEvent {
        request_id,
        item_id: None,
        errors: Vec::new(),
        error: None,
    };
    match form.validate(&policy, sh.cfg.zone.date_at(now)) {
        Err(errors) => {
            tracing::info!(target: "till_agent::ui", errors = ?errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(), "tag form refused");
            ev.errors = errors;
        }
        Ok(t) => {
            // (the outbox lock is released before `publish_status` takes it again)
            let queued = crate::tag::enqueue(
                &mut sh.outbox(),
                &sh.log,
                &t,
                &sh.cfg.store_id,
                &sh.cfg.till_id,
                sh.cfg.zone.at(now),
            );
            match queued {
                Ok(id) => {
                    sh.wake.notify_one();
                    sh.publish_status();
                    ev.item_id = Some(id);
                }
                Err(e) => {
                    sh.log
                        .error("tag", None, &format!("receipt tag could not be queued: {e:#}"));
                    ev.error = Some(format!("{e:#}"));
                }
            }
        }
    }
    let _ = sh.bus.send(AgentEvent::Tag(ev));
}

/// `Command::Redeem`: the same call as `till-agent redeem` (online, else the outbox), answered on
/// the bus for the confirm window.
async fn redeem(sh: Arc<Shared>, req: Box<protocol::v1::RedeemRequest>) {
    let ev = match crate::redeem::redeem(&sh.cfg, &req).await {
        Ok(Ok(o)) => redeem_event(&req.request_id, false, Some(o.answer), Some(o.mode), None),
        Ok(Err(refused)) => redeem_event(&req.request_id, false, None, None, Some(refused.to_string())),
        Err(e) => {
            sh.log.error(
                "redeem",
                Some(&req.request_id),
                &format!("redemption for card {} failed: {e:#}", req.card),
            );
            redeem_event(&req.request_id, false, None, None, Some(format!("{e:#}")))
        }
    };
    sh.wake.notify_one();
    sh.publish_status();
    let _ = sh.bus.send(ev);
}

/// `Command::Void`: `redeem::void` (drops an unsent one from the outbox, else asks the server).
async fn void(sh: Arc<Shared>, id: String) {
    let ev = match crate::redeem::void(&sh.cfg, &id).await {
        Ok(Ok(crate::redeem::Voided::Server(a))) => redeem_event(&id, true, Some(a), Some("online"), None),
        Ok(Ok(crate::redeem::Voided::Unsent(_))) => redeem_event(&id, true, None, Some("offline"), None),
        Ok(Err(refused)) => redeem_event(&id, true, None, None, Some(refused.to_string())),
        Err(e) => redeem_event(&id, true, None, None, Some(format!("{e:#}"))),
    };
    sh.publish_status();
    let _ = sh.bus.send(ev);
}

fn redeem_event(
    id: &str,
    void: bool,
    answer: Option<protocol::v1::RedeemAnswer>,
    mode: Option<&str>,
    refused: Option<String>,
) -> AgentEvent {
    AgentEvent::Redeem(crate::events::RedeemEvent {
        request_id: id.to_string(),
        void,
        answer,
        mode: mode.map(str::to_string),
        refused,
    })
}

/// Card input (readers → Scan → Quote on the bus), owned by `input`; an error is logged and the
/// rest of the agent keeps running (receipts still flow).
async fn run_inputs(sh: Arc<Shared>) -> anyhow::Result<()> {
    let s = sh.clone();
    let notice: crate::input::run::Notice = Arc::new(move |n: crate::input::run::ReaderNotice| {
        s.log.record(n.level, "reader", None, &n.message);
        if let Some(problem) = n.problem {
            s.set_reader_problem(&n.reader, problem.then(|| n.message.clone()));
            s.publish_status();
        }
    });
    crate::input::run_inputs(
        sh.cfg.clone(),
        sh.bus.clone(),
        sh.shutdown_rx(),
        sh.reader_test.clone(),
        notice,
    )
    .await
    .map_err(|e| anyhow::anyhow!("card input stopped: {e:#}"))
}

/// Remember the last loyalty-card scan for the next card-less receipt.
async fn associate_scans(sh: Arc<Shared>, mut rx: tokio::sync::broadcast::Receiver<AgentEvent>) -> anyhow::Result<()> {
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
    Ok(())
}

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

pub use crate::os::terminate_signal;
