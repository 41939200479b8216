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
    let publish = {
        let (view, status_tx) = (view.clone(), status_tx.clone());
        move || {
            let s = view.lock().unwrap_or_else(|p| p.into_inner()).compose();
            let _ = status_tx.send_replace(s);
        }
    };
    let on: Arc<dyn Fn(LinkEvent) + Send + Sync> = {
        let (view, bus, publish) = (view.clone(), bus.clone(), publish.clone());
        Arc::new(move |ev| {
            match ev {
                LinkEvent::Up(h) => {
                    tracing::info!("connected to the till-agent service {}", h.version);
                    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
                    v.down = None;
                    v.start_error = h.start_error;
                }
                LinkEvent::Down(why) => view.lock().unwrap_or_else(|p| p.into_inner()).down = Some(why),
                LinkEvent::Event(Event::Status { status, start_error }) => {
                    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
                    v.service = status;
                    v.start_error = start_error;
                    v.down = None;
                }
                LinkEvent::Event(Event::Enrol(e)) => {
                    let _ = bus.send(AgentEvent::Enrol(e));
                }
                LinkEvent::Event(Event::Redeem(e)) => {
                    let _ = bus.send(AgentEvent::Redeem(e));
                }
                LinkEvent::Event(Event::ExitForUpgrade) => {
                    tracing::info!("the service asks this app to exit (the program is being upgraded)");
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
        let (link2, bus2, reader_test2) = (link.clone(), bus.clone(), reader_test.clone());
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
            // The sync log is the service's (outbox.db is not readable by users).
            outbox_db: None,
            bus: bus.clone(),
            status: Some(status_rx),
            requests: Arc::new(move |r| {
                use crate::ui::UiRequest;
                if let UiRequest::ReaderTest(on) = r {
                    reader_test2.store(on, Ordering::Relaxed);
                    return;
                }
                let (link, bus) = (link2.clone(), bus2.clone());
                handle.spawn(async move { forward(&link, &bus, r).await });
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
async fn forward(link: &Link, bus: &Bus, r: crate::ui::UiRequest) {
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
        // Not carried over the service link yet (no `ipc` request for them): the window says so.
        UiRequest::Find { request_id, .. } => {
            let _ = bus.send(AgentEvent::Lookup(crate::events::LookupEvent {
                request_id,
                problem: Some(crate::events::LookupProblem::Other {
                    detail: "not available through the service yet".into(),
                }),
            }));
            return;
        }
        UiRequest::Tag(t) => {
            let _ = bus.send(AgentEvent::Tag(crate::events::TagEvent {
                request_id: t.request_id,
                item_id: None,
                errors: Vec::new(),
                error: Some("not available through the service yet; use `till-agent tag`".into()),
            }));
            return;
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
        let _ = bus.send(fail(err));
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
