//! `till-agent session`: the per-user half of a till (started by the `Run` key in every session):
//! the card readers, the tray and the popup. Everything else is the service's (`service.rs`),
//! reached over the local endpoint with the `ipc` protocol: a scan is classified here (so a
//! payment card's number never leaves the process) and a loyalty card's quote is asked from the
//! service; status, enrol, redeem and void go there too.
//!
//! [`Link`] keeps the connection: it reconnects (every second) when the service restarts, and
//! while it is down the tray is red with the reason (`SyncStatus::service_problem`), as it is
//! when the service runs but could not start the agent (its `start_error`). "Exit for upgrade"
//! from the service ends the app like a termination signal.
use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::ids::{CardId, CardPolicy};
use protocol::v1::Quote;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::events::{AgentEvent, Bus, EnrolEvent, RedeemEvent, SyncStatus};
use crate::ipc::{self, Event, Frame, Request, Response};
use crate::os;
use crate::quote::Quoter;

/// What the link reports to its owner.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected, greeted and subscribed.
    Up(ipc::Hello),
    /// Not connected (why, in English).
    Down(String),
    Event(Event),
}

/// The session app's connection to the service: requests with ids, answers matched back,
/// events handed to `on`.
pub struct Link {
    endpoint: String,
    session: String,
    conn: Mutex<Option<mpsc::UnboundedSender<String>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next: AtomicU64,
    policy: Mutex<Option<CardPolicy>>,
}

impl Link {
    pub fn new(endpoint: String, session: String) -> Arc<Link> {
        Arc::new(Link {
            endpoint,
            session,
            conn: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            policy: Mutex::new(None),
        })
    }

    /// The program's card policy the service reported (`None` before it started).
    pub fn card_policy(&self) -> Option<CardPolicy> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One request; an error when not connected, the connection breaks or no answer comes in time.
    pub async fn request(&self, req: Request, timeout: Duration) -> anyhow::Result<Response> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(conn) = conn else {
            anyhow::bail!("the till-agent service is not connected ({})", self.endpoint);
        };
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        if conn.send(ipc::encode(&Frame::Request { id, req })).is_err() {
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            anyhow::bail!("the connection to the till-agent service is closed");
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => anyhow::bail!("the till-agent service went away before answering"),
            Err(_) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                anyhow::bail!(
                    "the till-agent service did not answer within {} ms",
                    timeout.as_millis()
                )
            }
        }
    }

    /// Keep connected until the process ends: connect, `hello`, `subscribe`, read; after a
    /// failure report `Down` and try again every `retry`.
    pub async fn run(self: Arc<Self>, retry: Duration, on: Arc<dyn Fn(LinkEvent) + Send + Sync>) {
        let mut last_down = None;
        loop {
            let why = match os::ipc_connect(&self.endpoint).await {
                Ok(stream) => {
                    last_down = None;
                    self.clone().connected(stream, on.clone()).await
                }
                Err(e) => format!("cannot connect to the till-agent service at {}: {e}", self.endpoint),
            };
            if last_down.as_ref() != Some(&why) {
                tracing::warn!("{why}; retrying every {} ms", retry.as_millis());
                on(LinkEvent::Down(why.clone()));
                last_down = Some(why);
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Serve one connection; returns why it ended.
    async fn connected(
        self: Arc<Self>,
        stream: Box<dyn os::IpcStream>,
        on: Arc<dyn Fn(LinkEvent) + Send + Sync>,
    ) -> String {
        let (r, mut w) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if w.write_all(line.as_bytes()).await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
        });
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let greet = {
            let (me, on) = (self.clone(), on.clone());
            tokio::spawn(async move {
                let t = Duration::from_secs(10);
                let hello = Request::Hello {
                    protocol: ipc::PROTOCOL_VERSION,
                    version: env!("CARGO_PKG_VERSION").into(),
                    session: me.session.clone(),
                };
                match me.request(hello, t).await {
                    Ok(Response::Hello(h)) => {
                        *me.policy.lock().unwrap_or_else(|p| p.into_inner()) = h.card_policy.clone();
                        match me.request(Request::Subscribe, t).await {
                            Ok(Response::Subscribed) => on(LinkEvent::Up(h)),
                            other => tracing::warn!("subscribe: {other:?}"),
                        }
                    }
                    Ok(Response::Error { message }) => on(LinkEvent::Down(message)),
                    other => tracing::warn!("hello: {other:?}"),
                }
            })
        };
        let mut reader = BufReader::new(r);
        let why = loop {
            let mut line = String::new();
            match (&mut reader).take(ipc::MAX_LINE as u64 + 2).read_line(&mut line).await {
                Ok(0) => break "the till-agent service closed the connection".to_string(),
                Ok(_) => {}
                Err(e) => break format!("the connection to the till-agent service broke: {e}"),
            }
            match ipc::decode(&line) {
                Ok(Frame::Response { id, resp }) => {
                    if let Some(tx) = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                        let _ = tx.send(resp);
                    } else if let Response::Error { message } = resp {
                        tracing::warn!("the service says: {message}");
                    }
                }
                Ok(Frame::Event { event }) => on(LinkEvent::Event(event)),
                Ok(Frame::Request { .. }) => tracing::warn!("the service sent a request; ignored"),
                Err(e) => tracing::warn!("from the service: {e}"),
            }
        };
        greet.abort();
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // Every waiting request fails now rather than at its timeout.
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        writer.abort();
        why
    }
}

/// Quotes from the service (the cache and the token are the service's).
struct RemoteQuoter {
    link: Arc<Link>,
    policy_override: Option<CardPolicy>,
}

impl Quoter for RemoteQuoter {
    fn card_policy(&self) -> CardPolicy {
        self.policy_override
            .clone()
            .or_else(|| self.link.card_policy())
            .unwrap_or_default()
    }

    fn quote<'a>(
        &'a self,
        card: &'a CardId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Quote>> + Send + 'a>> {
        Box::pin(async move {
            match self
                .link
                .request(
                    Request::Quote {
                        card: card.clone(),
                        shown: true,
                    },
                    Duration::from_secs(5),
                )
                .await?
            {
                Response::Quote { quote } => Ok(quote),
                Response::Error { message } => anyhow::bail!(message),
                other => anyhow::bail!("unexpected answer to a quote: {other:?}"),
            }
        })
    }

    /// The service acknowledged the messages when it answered (every quote it sends a session
    /// app is shown there).
    fn ack_shown(&self, _quote: &Quote) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// What the tray shows: the service's status, this session's readers, and the link's problem.
#[derive(Default)]
struct View {
    service: SyncStatus,
    start_error: Option<String>,
    down: Option<String>,
    readers: BTreeMap<String, String>,
}

impl View {
    fn compose(&self) -> SyncStatus {
        let mut s = self.service.clone();
        s.reader_problems = self.readers.values().cloned().collect();
        s.service_problem = self.down.clone().or_else(|| self.start_error.clone());
        s
    }
}

/// The same reason is not shown again in a balloon within this time.
const BALLOON_AGAIN: Duration = Duration::from_secs(3600);

/// When the session app shows a balloon for the service's problem: once per distinct reason,
/// not at every reconnect attempt (the same reason again only after `again`).
pub struct Balloons {
    shown: HashMap<String, std::time::Instant>,
    again: Duration,
}

impl Balloons {
    pub fn new(again: Duration) -> Balloons {
        Balloons {
            shown: HashMap::new(),
            again,
        }
    }

    /// Whether `reason` (the tray's service problem now; `None` = fine) is to be shown at `now`.
    pub fn due(&mut self, reason: Option<&str>, now: std::time::Instant) -> bool {
        let Some(reason) = reason else { return false };
        let again = self.again;
        self.shown.retain(|_, at| now.duration_since(*at) < again);
        if self.shown.contains_key(reason) {
            return false;
        }
        self.shown.insert(reason.to_string(), now);
        true
    }
}

/// `user@display` / `user@session`: for the service's log.
fn session_name() -> String {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let user = [var("USER"), var("USERNAME")].into_iter().find(|s| !s.is_empty());
    let seat = [var("DISPLAY"), var("SESSIONNAME")].into_iter().find(|s| !s.is_empty());
    format!(
        "{}@{} (pid {})",
        user.unwrap_or_else(|| "?".into()),
        seat.unwrap_or_else(|| "-".into()),
        std::process::id()
    )
}

/// `till-agent session [--headless]`.
pub fn main(cfg: Config, headless: bool) -> anyhow::Result<ExitCode> {
    // The data folder's logs\ belongs to the service: the session logs to stderr only.
    let _guard = crate::synclog::init_tracing(None, false);
    let lang = crate::ui::Lang::resolve(cfg.language.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    if !headless && crate::ui::activate_running_instance()? {
        eprintln!("till-agent: already running in this session; it was asked to show its last popup");
        return Ok(ExitCode::SUCCESS);
    }
    let endpoint = os::ipc_endpoint(&cfg.data_dir);
    let bus = crate::events::bus();
    let (status_tx, status_rx) = watch::channel(SyncStatus::default());
    let view = Arc::new(Mutex::new(View::default()));
    let link = Link::new(endpoint.clone(), session_name());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("till-agent-session")
        .enable_all()
        .build()?;
    let balloons = Arc::new(Mutex::new(Balloons::new(BALLOON_AGAIN)));
    let publish = {
        let (view, status_tx) = (view.clone(), status_tx.clone());
        move || {
            let s = view.lock().unwrap_or_else(|p| p.into_inner()).compose();
            // The tray is red with the reason; a balloon says it once (not at every retry).
            let due = balloons
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .due(s.service_problem.as_deref(), std::time::Instant::now());
            if let (Some(reason), false) = (due.then_some(s.service_problem.clone()).flatten(), headless) {
                let title = crate::ui::i18n::t(lang, crate::ui::i18n::Key::ServiceUnreachable).to_string();
                std::thread::spawn(move || match crate::ui::notify(&title, &reason) {
                    Ok(()) => tracing::info!("balloon shown: {title}: {reason}"),
                    Err(e) => tracing::warn!("no balloon for \"{reason}\": {e}"),
                });
            }
            let _ = status_tx.send_replace(s);
        }
    };
    remove_old_relaunchers();
    let relaunch_endpoint = endpoint.clone();
    let finds = Arc::new(Finds::default());
    let on: Arc<dyn Fn(LinkEvent) + Send + Sync> = {
        let (view, bus, publish, finds) = (view.clone(), bus.clone(), publish.clone(), finds.clone());
        Arc::new(move |ev| {
            match ev {
                LinkEvent::Up(h) => {
                    tracing::info!("connected to the till-agent service {}", h.version);
                    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
                    v.down = None;
                    v.start_error = h.start_error;
                }
                LinkEvent::Down(why) => {
                    for ev in finds.abandon(&why) {
                        let _ = bus.send(ev);
                    }
                    view.lock().unwrap_or_else(|p| p.into_inner()).down = Some(why)
                }
                LinkEvent::Event(Event::Status { status, start_error }) => {
                    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
                    v.service = status;
                    v.start_error = start_error;
                    v.down = None;
                }
                LinkEvent::Event(e @ (Event::Enrol(_) | Event::Redeem(_) | Event::Lookup { .. } | Event::Tag(_))) => {
                    for ev in finds.to_bus(e) {
                        let _ = bus.send(ev);
                    }
                }
                LinkEvent::Event(Event::ExitForUpgrade) => {
                    tracing::info!("the service asks this app to exit (the program is being upgraded)");
                    start_relauncher(&relaunch_endpoint);
                    os::request_exit();
                }
            }
            publish();
        })
    };
    rt.spawn(link.clone().run(Duration::from_secs(1), on));
    // Card input here; quotes from the service.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let reader_test = Arc::new(AtomicBool::new(false));
    let inputs = {
        let notice: crate::input::run::Notice = {
            let (view, publish) = (view.clone(), publish.clone());
            Arc::new(move |n: crate::input::run::ReaderNotice| {
                tracing::info!("{}: {}", n.reader, n.message);
                if let Some(problem) = n.problem {
                    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
                    if problem {
                        v.readers.insert(n.reader.clone(), n.message.clone());
                    } else {
                        v.readers.remove(&n.reader);
                    }
                    drop(v);
                    publish();
                }
            })
        };
        let quotes = Arc::new(RemoteQuoter {
            link: link.clone(),
            policy_override: cfg.reader.card_policy.clone(),
        });
        let (cfg, bus, rt_) = (cfg.clone(), bus.clone(), reader_test.clone());
        rt.spawn(async move {
            if let Err(e) = crate::input::run::run_inputs_with(cfg, bus, shutdown_rx, rt_, notice, quotes).await {
                tracing::error!("card input stopped: {e:#}");
            }
        })
    };
    if headless {
        let rx = bus.subscribe();
        rt.block_on(async {
            tokio::select! {
                r = crate::ui::headless::run(rx, lang) => r,
                _ = os::terminate_signal() => Ok(()),
            }
        })?;
    } else {
        let handle = rt.handle().clone();
        let (link2, bus2, reader_test2, finds2) = (link.clone(), bus.clone(), reader_test.clone(), finds.clone());
        let ctx = crate::ui::GuiContext {
            lang,
            popup: cfg.popup.clone(),
            about: crate::ui::AboutInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                store_id: cfg.store_id.to_string(),
                till_id: cfg.till_id.to_string(),
                server_url: cfg.server_url.clone(),
            },
            config_path: cfg.path.clone(),
            log_dir: Some(cfg.log_dir()),
            // The sync log is the service's (outbox.db is not readable by users): asked for at
            // each (re)load of the window, as the all-in-one agent reads its file.
            sync_log: Some(crate::ui::synclog_view::SyncLogSource::Fetch(Arc::new({
                let (link, handle) = (link.clone(), rt.handle().clone());
                move || fetch_sync_log(&link, &handle)
            }))),
            bus: bus.clone(),
            status: Some(status_rx),
            requests: Arc::new(move |r| {
                use crate::ui::UiRequest;
                if let UiRequest::ReaderTest(on) = r {
                    reader_test2.store(on, Ordering::Relaxed);
                    return;
                }
                let (link, bus, finds) = (link2.clone(), bus2.clone(), finds2.clone());
                handle.spawn(async move { forward(&link, &bus, &finds, r).await });
            }),
            tray: true,
            escape_from_wedge: cfg.reader.wedge,
            initial: Vec::new(),
        };
        crate::ui::run_gui(ctx)?;
    }
    let _ = shutdown_tx.send(true);
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), inputs).await });
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

/// A GUI request to the service; a refusal or an unreachable service is told to the window that
/// waits for it (as the all-in-one agent's runtime would).
pub async fn forward(link: &Link, bus: &Bus, finds: &Finds, r: crate::ui::UiRequest) {
    use crate::ui::UiRequest;
    let (req, fail): (Request, Box<dyn Fn(String) -> AgentEvent + Send>) = match r {
        UiRequest::SyncNow => (Request::SyncNow, Box::new(|_| AgentEvent::Escape)),
        UiRequest::Enrol(req) => {
            let id = req.request_id().to_string();
            (
                Request::Enrol { request: *req },
                Box::new(move |e| {
                    AgentEvent::Enrol(EnrolEvent {
                        request_id: id.clone(),
                        error: Some(e),
                    })
                }),
            )
        }
        UiRequest::Redeem(req) => {
            let id = req.request_id.clone();
            (
                Request::Redeem { request: *req },
                Box::new(move |e| redeem_failed(&id, false, e)),
            )
        }
        UiRequest::Void(id) => {
            let rid = id.clone();
            (
                Request::Void { redemption_id: id },
                Box::new(move |e| redeem_failed(&rid, true, e)),
            )
        }
        UiRequest::Find { request_id, query } => {
            finds.asked(&request_id);
            let id = request_id.clone();
            (
                Request::Find { request_id, query },
                Box::new(move |e| finds_failed(&id, e)),
            )
        }
        UiRequest::Tag(t) => {
            let id = t.request_id.clone();
            (
                Request::Tag {
                    request_id: t.request_id,
                    form: t.form,
                },
                Box::new(move |e| {
                    AgentEvent::Tag(crate::events::TagEvent {
                        request_id: id.clone(),
                        item_id: None,
                        errors: Vec::new(),
                        error: Some(e),
                    })
                }),
            )
        }
        UiRequest::ReaderTest(_) | UiRequest::Quit => return,
    };
    let sync_now = matches!(req, Request::SyncNow);
    let err = match link.request(req, Duration::from_secs(10)).await {
        Ok(Response::Accepted) => return,
        Ok(Response::Error { message }) => message,
        Ok(other) => format!("unexpected answer: {other:?}"),
        Err(e) => format!("{e:#}"),
    };
    tracing::warn!("request to the service failed: {err}");
    if !sync_now {
        let ev = fail(err);
        if let AgentEvent::Lookup(l) = &ev {
            finds.answered(&l.request_id);
        }
        let _ = bus.send(ev);
    }
}

/// The sync-log window's rows and timeline from the service. Called on the window's fetch
/// thread (not the GUI thread); the request runs on the session's runtime (a thread of its own,
/// so it also works from a thread inside a runtime) and waits at most 3 s.
pub fn fetch_sync_log(
    link: &Arc<Link>,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<crate::ui::synclog_view::Loaded> {
    use crate::ui::synclog_view::{from_rows, HOURS, ROWS};
    let (link, rt) = (link.clone(), rt.clone());
    let req = Request::SyncLog {
        after: None,
        limit: ROWS,
        hours: HOURS,
    };
    let answer = std::thread::spawn(move || rt.block_on(link.request(req, Duration::from_secs(3))))
        .join()
        .map_err(|_| anyhow::anyhow!("the sync-log request panicked"))??;
    match answer {
        Response::SyncLog { rows, hours } => Ok((from_rows(&rows), hours)),
        Response::Error { message } => anyhow::bail!(message),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}

fn finds_failed(id: &str, detail: String) -> AgentEvent {
    AgentEvent::Lookup(crate::events::LookupEvent {
        request_id: id.to_string(),
        problem: Some(crate::events::LookupProblem::Other { detail }),
        found: None,
    })
}

/// The searches this session app sent and not yet got an answer for. A search's outcome goes to
/// every session app (events are broadcast); only the one that asked shows the customer.
#[derive(Default)]
pub struct Finds(Mutex<std::collections::HashSet<String>>);

impl Finds {
    fn asked(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string());
    }

    fn answered(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    /// What the service's event means on this session's bus (as the all-in-one runtime
    /// publishes it): a search of ours that found a customer → `Scan` + `Quote` (source
    /// `search`: the popup) then `Lookup`; someone else's search → nothing.
    pub fn to_bus(&self, e: Event) -> Vec<AgentEvent> {
        match e {
            Event::Enrol(e) => vec![AgentEvent::Enrol(e)],
            Event::Redeem(e) => vec![AgentEvent::Redeem(e)],
            Event::Tag(e) => vec![AgentEvent::Tag(e)],
            Event::Lookup { lookup, found } => {
                if !self.answered(&lookup.request_id) {
                    return Vec::new();
                }
                let mut out = Vec::new();
                if let Some(q) = found.filter(|_| lookup.problem.is_none()) {
                    out.push(AgentEvent::Scan(q.scan.clone()));
                    out.push(AgentEvent::Quote(*q));
                }
                out.push(AgentEvent::Lookup(lookup));
                out
            }
            Event::Status { .. } | Event::ExitForUpgrade => Vec::new(),
        }
    }

    /// The link broke: the searches waiting for an answer get none; say so.
    fn abandon(&self, why: &str) -> Vec<AgentEvent> {
        let ids: Vec<String> = self.0.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        ids.iter().map(|id| finds_failed(id, why.to_string())).collect()
    }
}

fn redeem_failed(id: &str, void: bool, refused: String) -> AgentEvent {
    AgentEvent::Redeem(RedeemEvent {
        request_id: id.to_string(),
        void,
        answer: None,
        mode: None,
        refused: Some(refused),
    })
}

/// The relauncher's copies in the temp folder: `till-agent-relaunch-<pid>[.exe]`.
const RELAUNCHER: &str = "till-agent-relaunch-";

/// Told to exit for an upgrade: start a copy of this program from the temp folder (the installed
/// file is about to be replaced, so it must not run from there) in `relaunch-wait` mode with this
/// app's own command line; it starts the app again once the upgraded service answers.
fn start_relauncher(endpoint: &str) {
    let r = (|| -> anyhow::Result<std::path::PathBuf> {
        let exe = std::env::current_exe()?;
        let copy = std::env::temp_dir().join(format!(
            "{RELAUNCHER}{}{}",
            std::process::id(),
            std::env::consts::EXE_SUFFIX
        ));
        std::fs::copy(&exe, &copy)?;
        let mut cmd = std::process::Command::new(&copy);
        cmd.arg("relaunch-wait")
            .arg("--endpoint")
            .arg(endpoint)
            .arg("--exe")
            .arg(&exe)
            .arg("--")
            .args(std::env::args_os().skip(1))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        os::spawn_detached(&mut cmd)?;
        Ok(copy)
    })();
    match r {
        Ok(copy) => tracing::info!(
            "{} waits for the upgraded service to start this app again",
            copy.display()
        ),
        Err(e) => tracing::warn!("cannot start the relauncher ({e:#}): this app comes back at the next logon"),
    }
}

/// Copies a relauncher left behind (on Windows a running program cannot delete its own file);
/// one still running stays (its file is in use).
fn remove_old_relaunchers() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().starts_with(RELAUNCHER) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `till-agent relaunch-wait`: wait until the service went away (the installer stops it) and
/// answers `hello` again, at most `wait` in all; then start `exe args` again unless `exe` is gone
/// (an uninstall: gone for a minute ends the wait). A cancelled upgrade (the service never stopped) or a service that does not
/// come back still gets the app back after `wait` (its tray then says why).
pub fn relaunch_wait(
    endpoint: &str,
    exe: &std::path::Path,
    args: &[String],
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(None, false);
    let deadline = std::time::Instant::now() + wait;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // 1. Hold a connection (not subscribed: no session app to wait for) until the service closes it.
    let went = rt.block_on(async {
        let Ok(stream) = os::ipc_connect(endpoint).await else {
            return true;
        };
        let mut r = BufReader::new(stream);
        let until = tokio::time::Instant::from_std(deadline);
        tokio::time::timeout_at(until, async {
            let mut line = String::new();
            while matches!(r.read_line(&mut line).await, Ok(n) if n > 0) {
                line.clear();
            }
        })
        .await
        .is_ok()
    });
    drop(rt);
    tracing::info!(
        "relaunch: the service {}",
        if went { "stopped" } else { "did not stop" }
    );
    // 2. Until it answers again.
    let hello = || Request::Hello {
        protocol: ipc::PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        session: format!("relaunch-wait (pid {})", std::process::id()),
    };
    // (the program gone for a minute: an uninstall, no service to wait for)
    let mut gone_since: Option<std::time::Instant> = None;
    while went && std::time::Instant::now() < deadline {
        if let Some(Ok(Response::Hello(h))) = ask_service(endpoint, hello()) {
            tracing::info!("relaunch: service {} answers", h.version);
            break;
        }
        match (exe.exists(), gone_since) {
            (true, _) => gone_since = None,
            (false, None) => gone_since = Some(std::time::Instant::now()),
            (false, Some(t)) if t.elapsed() > Duration::from_secs(60) => break,
            (false, Some(_)) => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let code = if exe.exists() {
        let mut cmd = std::process::Command::new(exe);
        cmd.args(args).stdin(std::process::Stdio::null());
        match os::spawn_detached(&mut cmd) {
            Ok(c) => {
                tracing::info!("relaunch: started {} (pid {})", exe.display(), c.id());
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("relaunch: cannot start {}: {e}", exe.display());
                ExitCode::FAILURE
            }
        }
    } else {
        tracing::info!("relaunch: {} is gone (uninstalled): nothing to start", exe.display());
        ExitCode::SUCCESS
    };
    // This copy (never the installed program); Windows refuses while it runs: the next
    // session app removes it.
    if let Ok(me) = std::env::current_exe() {
        if me
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(RELAUNCHER))
        {
            let _ = std::fs::remove_file(me);
        }
    }
    Ok(code)
}

/// `till-agent upgrade-prepare`: ask the service to tell every session app to exit and wait
/// (≤ `wait`) until none is connected. No service running is fine (nothing to tell).
pub fn upgrade_prepare(endpoint: &str, wait: Duration) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let link = Link::new(
            endpoint.to_string(),
            format!("upgrade-prepare (pid {})", std::process::id()),
        );
        let stream = match os::ipc_connect(endpoint).await {
            Ok(s) => s,
            Err(e) => {
                println!("no till-agent service answers at {endpoint} ({e}): no session app to tell");
                return Ok(ExitCode::SUCCESS);
            }
        };
        let quiet: Arc<dyn Fn(LinkEvent) + Send + Sync> = Arc::new(|_| {});
        let conn = tokio::spawn(link.clone().connected(stream, quiet));
        // (the link greets itself; give it the moment to register)
        let t = Duration::from_secs(5);
        let told = loop {
            match link.request(Request::ExitForUpgrade, t).await {
                Ok(Response::SessionsTold { count }) => break count,
                Ok(other) => anyhow::bail!("unexpected answer: {other:?}"),
                Err(_) if !conn.is_finished() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e),
            }
        };
        // Our own link subscribed too (it greets like a session): it does not count.
        let others = |n: usize| n.saturating_sub(1);
        println!("told {} session app(s) to exit", others(told));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let n = match link.request(Request::Status, t).await? {
                Response::Status { sessions, .. } => others(sessions),
                other => anyhow::bail!("unexpected answer: {other:?}"),
            };
            if n == 0 {
                println!("no session app connected");
                return Ok(ExitCode::SUCCESS);
            }
            if tokio::time::Instant::now() >= deadline {
                println!("{n} session app(s) still connected after {} s", wait.as_secs());
                return Ok(ExitCode::from(3));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// One request to the service from a CLI command: `None` when no service answers at `endpoint`.
pub fn ask_service(endpoint: &str, req: Request) -> Option<anyhow::Result<Response>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let stream = os::ipc_connect(endpoint).await.ok()?;
        let (r, mut w) = tokio::io::split(stream);
        let line = ipc::encode(&Frame::Request { id: 1, req });
        if let Err(e) = w.write_all(line.as_bytes()).await {
            return Some(Err(anyhow::anyhow!("writing to the till-agent service: {e}")));
        }
        let mut reader = BufReader::new(r);
        let read = async {
            loop {
                let mut line = String::new();
                if (&mut reader)
                    .take(ipc::MAX_LINE as u64 + 2)
                    .read_line(&mut line)
                    .await?
                    == 0
                {
                    anyhow::bail!("the till-agent service closed the connection");
                }
                if let Frame::Response { id: 1, resp } = ipc::decode(&line)? {
                    return Ok(resp);
                }
            }
        };
        Some(
            tokio::time::timeout(Duration::from_secs(15), read)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the till-agent service did not answer within 15 s"))),
        )
    })
}

/// `quote CARD` when a service runs: the quote it computes (on Windows a user can read neither
/// the cache nor the token). `None`: no service answers.
pub fn service_quote(endpoint: &str, card: &CardId) -> Option<anyhow::Result<Quote>> {
    Some(
        match ask_service(
            endpoint,
            Request::Quote {
                card: card.clone(),
                shown: false,
            },
        )? {
            Ok(Response::Quote { quote }) => Ok(quote),
            Ok(Response::Error { message }) => Err(anyhow::anyhow!(message)),
            Ok(other) => Err(anyhow::anyhow!("unexpected answer: {other:?}")),
            Err(e) => Err(e),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Classified, LookupEvent, LookupProblem, QuoteEvent, ScanEvent, TagEvent};

    fn found(card: &CardId) -> QuoteEvent {
        QuoteEvent {
            scan: ScanEvent {
                at: chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00+01:00").unwrap(),
                source: "search".into(),
                classified: Classified::LoyaltyCard { card: card.clone() },
            },
            quote: Quote {
                result: protocol::v1::QuoteResult::UnknownCard { card: card.clone() },
                source: protocol::v1::QuoteSource::Online,
            },
            provisional: false,
        }
    }

    /// The service's answer to a search, through the wire and back: the session that asked
    /// publishes the popup's `Scan` + `Quote` then the `Lookup`; another session nothing.
    #[test]
    fn a_balloon_once_per_distinct_reason() {
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut b = Balloons::new(Duration::from_secs(3600));
        let down = "cannot connect to the till-agent service at /x.sock: Connection refused";
        assert!(!b.due(None, at(0)), "nothing wrong: no balloon");
        assert!(b.due(Some(down), at(1)));
        // the link retries every second and the status is published again and again
        assert!((2..60).all(|s| !b.due(Some(down), at(s))));
        // back, then down again for the same reason: still said already
        assert!(!b.due(None, at(61)) && !b.due(Some(down), at(62)));
        // another reason is news
        let bad = "till-agent service cannot start: agent.toml:3:1: key `server_url`";
        assert!(b.due(Some(bad), at(63)));
        assert!(!b.due(Some(bad), at(64)));
        // an hour later the first one may be said again
        assert!(b.due(Some(down), at(3602)));
    }

    #[test]
    fn a_search_outcome_shows_the_customer_only_in_the_session_that_asked() {
        let card = CardId::parse("1900000009000018", &CardPolicy::default()).unwrap();
        let wire = |lookup: LookupEvent, found: Option<QuoteEvent>| {
            let line = ipc::encode(&Frame::Event {
                event: Event::Lookup {
                    lookup,
                    found: found.map(Box::new),
                },
            });
            match ipc::decode(&line).unwrap() {
                Frame::Event { event } => event,
                f => panic!("{f:?}"),
            }
        };
        let ok = |id: &str| LookupEvent {
            request_id: id.into(),
            problem: None,
            found: None,
        };
        let (mine, other) = (Finds::default(), Finds::default());
        mine.asked("find-1");
        let evs = mine.to_bus(wire(ok("find-1"), Some(found(&card))));
        assert!(
            matches!(&evs[..], [AgentEvent::Scan(s), AgentEvent::Quote(q), AgentEvent::Lookup(l)]
                if s.source == "search" && q.quote == found(&card).quote && l.request_id == "find-1" && l.problem.is_none()),
            "{evs:?}"
        );
        assert!(other.to_bus(wire(ok("find-1"), Some(found(&card)))).is_empty());
        // answered once: a repeat is someone else's
        assert!(mine.to_bus(wire(ok("find-1"), Some(found(&card)))).is_empty());
        // not found: only the Lookup with its problem
        mine.asked("find-2");
        let nf = LookupEvent {
            request_id: "find-2".into(),
            problem: Some(LookupProblem::NotFound { phone: true }),
            found: None,
        };
        assert_eq!(
            mine.to_bus(wire(nf.clone(), None)).len(),
            1,
            "a problem publishes no popup"
        );
        // the link broke while a search waited: the box is told why
        mine.asked("find-3");
        match &mine.abandon("service gone")[..] {
            [AgentEvent::Lookup(l)] => assert_eq!(
                l.problem,
                Some(LookupProblem::Other {
                    detail: "service gone".into()
                })
            ),
            e => panic!("{e:?}"),
        }
        // a tag's outcome with the form's field errors survives the wire
        let tag = TagEvent {
            request_id: "tag-1".into(),
            item_id: None,
            errors: crate::tag::TagForm {
                receipt: String::new(),
                card: "12".into(),
                date: String::new(),
                total: "x".into(),
            }
            .validate(
                &CardPolicy::default(),
                chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            )
            .unwrap_err(),
            error: None,
        };
        assert!(tag.errors.len() >= 2);
        let line = ipc::encode(&Frame::Event {
            event: Event::Tag(tag.clone()),
        });
        let Frame::Event { event } = ipc::decode(&line).unwrap() else {
            panic!()
        };
        assert!(matches!(&mine.to_bus(event)[..], [AgentEvent::Tag(t)] if *t == tag));
    }
}
