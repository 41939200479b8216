//! `till-agent service`: the machine-wide half of a till (a Windows service, started at boot with
//! nobody logged on). It owns the export-folder watcher, the outbox and its replicator, the cache
//! sync and the till token, and serves the session apps (`session.rs`) over the local endpoint
//! (`os::IpcListener`) with the `ipc` protocol: quotes for their scans, status, enrol, redeem,
//! void, the sync log, "exit for upgrade".
//!
//! A start failure (bad agent.toml, a data folder another agent holds) goes to the Event Log and
//! to every session app (`start_error`: red tray with the reason); the service keeps serving and
//! retries every 10 s, so fixing agent.toml is enough. `--console` runs the same body in the
//! foreground (tests, debugging; Linux has no other mode).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::ids::CardId;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::Config;
use crate::events::{AgentEvent, SyncStatus};
use crate::ipc::{self, Event, Frame, Handler, Hello, Request, Response};
use crate::os::{self, EventLevel};
use crate::quote::{QuoteService, Quoter};
use crate::runtime::{Background, Command};

/// How often a failed start is tried again.
const RETRY_START: Duration = Duration::from_secs(10);

/// `till-agent service [--console]`.
pub fn main(config: Option<PathBuf>, console: bool) -> anyhow::Result<ExitCode> {
    let path = config.unwrap_or_else(os::service_config_path);
    let body: os::ServiceBody = Box::new(move |stop| run_body(&path, stop));
    if console || !os::HAS_SERVICE_MANAGER {
        let (tx, rx) = watch::channel(false);
        std::thread::Builder::new()
            .name("service-signal".into())
            .spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(os::terminate_signal());
                }
                let _ = tx.send(true);
            })?;
        body(rx)?;
    } else {
        os::run_as_service(body)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The service: serve the endpoint, start the agent (retrying), stop when told.
pub fn run_body(path: &Path, mut stop: os::ServiceStop) -> anyhow::Result<()> {
    let first = load(path);
    let data_dir = match &first {
        Ok(cfg) => cfg.data_dir.clone(),
        Err(_) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let _guard = crate::synclog::init_tracing(Some(&data_dir.join("logs")), false);
    match os::secure_data_dir(&data_dir) {
        Ok(Some(what)) => tracing::info!("data folder {}: {what}", data_dir.display()),
        Ok(None) => {}
        Err(e) => {
            let m = format!("cannot set the access rules of {}: {e:#}", data_dir.display());
            tracing::warn!("{m}");
            os::event_log(EventLevel::Warning, 1003, &m);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("till-agent-ipc")
        .enable_all()
        .build()?;
    let endpoint = os::ipc_endpoint(&data_dir);
    let serving = Arc::new(Serving::new());
    // A configuration that does not load is the answer from the first request on (a session app
    // asking as soon as the endpoint exists must not see "no error" before the first attempt).
    if let Err(e) = &first {
        serving.set_start_error(Some(format!("till-agent service cannot start: {e:#}")));
    }
    rt.block_on(async {
        let mut listener = match os::IpcListener::bind(&endpoint) {
            Ok(l) => l,
            Err(e) => {
                let m = format!("cannot serve {endpoint}: {e}");
                os::event_log(EventLevel::Error, 1000, &m);
                anyhow::bail!(m);
            }
        };
        tracing::info!("serving session apps on {endpoint}");
        let accept = {
            let serving = serving.clone();
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok(s) => {
                            tokio::spawn(serve_connection(serving.clone(), serving.events.clone(), s));
                        }
                        Err(e) => {
                            tracing::warn!("accepting a session app failed: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            })
        };
        let mut attempt = Some(first);
        let mut last_error = None;
        let bg = loop {
            let r = attempt.take().unwrap_or_else(|| load(path));
            match r.and_then(|cfg| Running::start(cfg, serving.events.clone())) {
                Ok(running) => break Some(running),
                Err(e) => {
                    let m = format!("till-agent service cannot start: {e:#}");
                    if last_error.as_deref() != Some(m.as_str()) {
                        tracing::error!("{m}; retrying every {} s", RETRY_START.as_secs());
                        os::event_log(EventLevel::Error, 1000, &m);
                    }
                    serving.set_start_error(Some(m.clone()));
                    last_error = Some(m);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_START) => {}
                _ = stop.wait_for(|v| *v) => break None,
            }
        };
        if let Some(running) = bg {
            let m = format!(
                "till-agent service {} started: store {} till {}, serving {endpoint}",
                env!("CARGO_PKG_VERSION"),
                running.cfg.store_id,
                running.cfg.till_id
            );
            tracing::info!("{m}");
            os::event_log(EventLevel::Info, 1001, &m);
            serving.set_running(running);
            let _ = stop.wait_for(|v| *v).await;
        }
        accept.abort();
        Ok(())
    })?;
    if let Some(running) = serving.take_running() {
        tracing::info!("stopping: flushing the outbox");
        running.bg.shutdown()?;
    }
    os::event_log(EventLevel::Info, 1002, "till-agent service stopped");
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// agent.toml after the installer's first-run import (as the CLI's `load`).
fn load(path: &Path) -> anyhow::Result<Config> {
    if let Err(e) = crate::install::first_run(path) {
        if !path.exists() {
            return Err(e);
        }
        tracing::warn!("installer settings: {e:#}");
    }
    Ok(Config::load(Some(path))?)
}

/// The running agent inside the service.
struct Running {
    cfg: Config,
    bg: Background,
    quotes: Arc<QuoteService>,
}

impl Running {
    fn start(cfg: Config, events: broadcast::Sender<Event>) -> anyhow::Result<Running> {
        let lock = crate::runtime::lock_data_dir(&cfg.data_dir)?;
        let bg = crate::runtime::start_background_with(cfg.clone(), crate::runtime::Options { card_input: false })?;
        let quotes = Arc::new(QuoteService::new(&cfg)?);
        // The lock lives as long as the process (the service runs the agent once).
        std::mem::forget(lock);
        // Forward what the session apps need: status changes and the outcomes of their requests.
        let mut status = bg.status.clone();
        let mut bus = bg.bus.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = status.changed() => {
                        if r.is_err() { break }
                        let status = status.borrow_and_update().clone();
                        let _ = events.send(Event::Status { status, start_error: None });
                    }
                    ev = bus.recv() => match ev {
                        Ok(AgentEvent::Enrol(e)) => { let _ = events.send(Event::Enrol(e)); }
                        Ok(AgentEvent::Redeem(e)) => { let _ = events.send(Event::Redeem(e)); }
                        Ok(AgentEvent::Lookup(mut lookup)) => {
                            let found = lookup.found.take();
                            let _ = events.send(Event::Lookup { lookup, found });
                        }
                        Ok(AgentEvent::Tag(e)) => { let _ = events.send(Event::Tag(e)); }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
        });
        Ok(Running { cfg, bg, quotes })
    }
}

/// The service's answers ([`ipc::Handler`]).
pub struct Serving {
    running: Mutex<Option<Arc<Running>>>,
    start_error: Mutex<Option<String>>,
    events: broadcast::Sender<Event>,
}

impl Serving {
    fn new() -> Serving {
        Serving {
            running: Mutex::new(None),
            start_error: Mutex::new(None),
            events: broadcast::channel(256).0,
        }
    }

    fn running(&self) -> Option<Arc<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_running(&self, r: Running) {
        let status = r.bg.status.borrow().clone();
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(r));
        self.set_start_error(None);
        let _ = self.events.send(Event::Status {
            status,
            start_error: None,
        });
    }

    fn take_running(&self) -> Option<Running> {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        // Connections still hold clones for a moment at most (their requests are short).
        let mut r = r;
        for _ in 0..50 {
            match Arc::try_unwrap(r) {
                Ok(r) => return Some(r),
                Err(back) => r = back,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!("a session request still runs; stopping without waiting for it");
        None
    }

    fn set_start_error(&self, e: Option<String>) {
        *self.start_error.lock().unwrap_or_else(|p| p.into_inner()) = e.clone();
        if e.is_some() {
            let _ = self.events.send(Event::Status {
                status: SyncStatus::default(),
                start_error: e,
            });
        }
    }

    fn not_started(&self) -> Response {
        Response::Error {
            message: self
                .start_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "the till-agent service is still starting".into()),
        }
    }
}

impl Handler for Serving {
    fn hello(&self) -> Hello {
        Hello {
            protocol: ipc::PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").into(),
            card_policy: self.running().map(|r| Quoter::card_policy(r.quotes.as_ref())),
            start_error: self.start_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    fn status(&self) -> (SyncStatus, Option<String>) {
        let status = self.running().map(|r| r.bg.status.borrow().clone()).unwrap_or_default();
        (
            status,
            self.start_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        )
    }

    fn sessions(&self) -> usize {
        self.events.receiver_count()
    }

    fn quote(
        &self,
        card: CardId,
        shown: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            let Some(r) = self.running() else {
                return self.not_started();
            };
            // The scan happened in a session: the next card-less receipt gets this card
            // (the association task of the all-in-one agent sees the scan on its bus instead).
            if shown {
                *r.bg.shared.last_scan.lock().unwrap_or_else(|p| p.into_inner()) = Some(crate::context::PendingScan {
                    card: card.clone(),
                    at: chrono::Local::now().fixed_offset(),
                });
            }
            match r.quotes.quote(&card).await {
                Ok(quote) => {
                    // A session app shows it: its messages are said once.
                    if let Err(e) = shown.then(|| r.quotes.ack_shown(&quote)).transpose() {
                        tracing::warn!(card = %card, "cannot queue the message acks: {e:#}");
                    }
                    Response::Quote { quote }
                }
                Err(e) => Response::Error {
                    message: format!("no quote for card {card}: {e:#}"),
                },
            }
        })
    }

    fn command(&self, req: Request) -> Response {
        let Some(r) = self.running() else {
            return self.not_started();
        };
        let cmd = match req {
            Request::Enrol { request } => Command::Enrol(Box::new(request)),
            Request::Redeem { request } => Command::Redeem(Box::new(request)),
            Request::Void { redemption_id } => Command::Void(redemption_id),
            Request::SyncNow => Command::SyncNow,
            // The agent's own search and tag commands (`runtime`): the found quote and the tag's
            // outcome come back on its bus and go to the sessions as events.
            Request::Find { request_id, query } => Command::Find { request_id, query },
            Request::Tag { request_id, form } => Command::Tag {
                request_id,
                form: Box::new(form),
            },
            other => {
                return Response::Error {
                    message: format!("not a command: {other:?}"),
                }
            }
        };
        match r.bg.commands.send(cmd) {
            Ok(()) => Response::Accepted,
            Err(_) => Response::Error {
                message: "the agent is stopping".into(),
            },
        }
    }

    fn sync_log(&self, after: Option<i64>, limit: usize, hours: u32) -> Response {
        let Some(r) = self.running() else {
            return self.not_started();
        };
        let db = r.cfg.outbox_path();
        let rows = crate::sync::outbox::Outbox::open_existing(&db).and_then(|o| match after {
            Some(a) => o.log_after(a).map(|mut v| {
                v.truncate(limit);
                v
            }),
            None => o.log_tail(limit),
        });
        // The session app's sync-log window: the same timeline the all-in-one agent draws.
        let rows = rows.and_then(|rows| {
            let hours = match hours {
                0 => Vec::new(),
                n => crate::ui::synclog_view::timeline(&db, chrono::Utc::now(), n)?,
            };
            Ok((rows, hours))
        });
        match rows {
            Ok((rows, hours)) => Response::SyncLog { rows, hours },
            Err(e) => Response::Error {
                message: format!("reading the sync log: {e:#}"),
            },
        }
    }

    fn exit_for_upgrade(&self) -> Response {
        let count = self.events.send(Event::ExitForUpgrade).unwrap_or(0);
        tracing::info!("exit for upgrade: {count} session app(s) told to exit");
        Response::SessionsTold { count }
    }
}

/// Serve one session app's connection until it closes: requests answered concurrently (each on
/// its own task), events pushed after `subscribe`.
pub async fn serve_connection(h: Arc<dyn Handler>, events: broadcast::Sender<Event>, stream: Box<dyn os::IpcStream>) {
    let (r, mut w) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if w.write_all(line.as_bytes()).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(r);
    let mut forwarder: Option<tokio::task::JoinHandle<()>> = None;
    let mut session = String::from("?");
    loop {
        let mut line = String::new();
        match (&mut reader).take(ipc::MAX_LINE as u64 + 2).read_line(&mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("session {session}: {e}");
                break;
            }
        }
        if !line.ends_with('\n') && line.len() > ipc::MAX_LINE {
            let _ = tx.send(ipc::encode(&Frame::Response {
                id: 0,
                resp: Response::Error {
                    message: ipc::FrameError::TooLong(line.len()).to_string(),
                },
            }));
            break;
        }
        let (id, req) = match ipc::decode(&line) {
            Ok(Frame::Request { id, req }) => (id, req),
            Ok(_) => {
                let _ = tx.send(ipc::encode(&Frame::Response {
                    id: 0,
                    resp: Response::Error {
                        message: "only requests are accepted".into(),
                    },
                }));
                continue;
            }
            Err(e) => {
                tracing::warn!("session {session}: {e}");
                let _ = tx.send(ipc::encode(&Frame::Response {
                    id: 0,
                    resp: Response::Error { message: e.to_string() },
                }));
                continue;
            }
        };
        match req {
            Request::Hello { session: ref s, .. } => {
                session = s.clone();
                tracing::info!("session app connected: {session}");
            }
            Request::Subscribe if forwarder.is_none() => {
                let mut ev = events.subscribe();
                let tx = tx.clone();
                let (status, start_error) = h.status();
                let _ = tx.send(ipc::encode(&Frame::Response {
                    id,
                    resp: Response::Subscribed,
                }));
                let _ = tx.send(ipc::encode(&Frame::Event {
                    event: Event::Status { status, start_error },
                }));
                forwarder = Some(tokio::spawn(async move {
                    loop {
                        match ev.recv().await {
                            Ok(e) => {
                                if tx.send(ipc::encode(&Frame::Event { event: e })).is_err() {
                                    break;
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!("a session app fell {n} events behind");
                            }
                            Err(broadcast::error::RecvError::Closed) => break,
                        }
                    }
                }));
                continue;
            }
            _ => {}
        }
        let (h, tx) = (h.clone(), tx.clone());
        tokio::spawn(async move {
            let resp = ipc::dispatch(h.as_ref(), req).await;
            let _ = tx.send(ipc::encode(&Frame::Response { id, resp }));
        });
    }
    if let Some(f) = forwarder {
        f.abort();
    }
    drop(tx);
    let _ = writer.await;
    if session != "?" {
        tracing::info!("session app disconnected: {session}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Answers status at once and a quote only after 300 ms (so answers overtake each other).
    struct Slow;
    impl Handler for Slow {
        fn hello(&self) -> Hello {
            Hello {
                protocol: ipc::PROTOCOL_VERSION,
                version: "t".into(),
                card_policy: None,
                start_error: Some("agent.toml: broken".into()),
            }
        }
        fn status(&self) -> (SyncStatus, Option<String>) {
            (
                SyncStatus {
                    queue_depth: 4,
                    ..Default::default()
                },
                None,
            )
        }
        fn sessions(&self) -> usize {
            0
        }
        fn quote(
            &self,
            card: CardId,
            _shown: bool,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Response::Error {
                    message: format!("slow {card}"),
                }
            })
        }
        fn command(&self, _req: Request) -> Response {
            Response::Accepted
        }
        fn sync_log(&self, _after: Option<i64>, _limit: usize, _hours: u32) -> Response {
            Response::SyncLog {
                rows: vec![],
                hours: vec![],
            }
        }
        fn exit_for_upgrade(&self) -> Response {
            Response::SessionsTold { count: 0 }
        }
    }

    async fn next(r: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> Frame {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        ipc::decode(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    #[tokio::test]
    async fn a_connection_answers_by_id_out_of_order_pushes_events_and_survives_bad_lines() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let events = broadcast::channel(16).0;
        let served = tokio::spawn(serve_connection(Arc::new(Slow), events.clone(), Box::new(theirs)));
        let (r, mut w) = tokio::io::split(ours);
        let mut r = BufReader::new(r);
        let card = CardId::parse("1900000009000018", &Default::default()).unwrap();
        let send = |f: Frame| ipc::encode(&f);
        w.write_all(
            send(Frame::Request {
                id: 1,
                req: Request::Quote { card, shown: true },
            })
            .as_bytes(),
        )
        .await
        .unwrap();
        w.write_all(
            send(Frame::Request {
                id: 2,
                req: Request::Status,
            })
            .as_bytes(),
        )
        .await
        .unwrap();
        // the fast answer first, each with its id
        match next(&mut r).await {
            Frame::Response {
                id: 2,
                resp: Response::Status { status, .. },
            } => assert_eq!(status.queue_depth, 4),
            f => panic!("{f:?}"),
        }
        match next(&mut r).await {
            Frame::Response {
                id: 1,
                resp: Response::Error { message },
            } => {
                assert!(
                    message.starts_with("slow") && !message.contains("1900000009000018"),
                    "{message}"
                )
            }
            f => panic!("{f:?}"),
        }
        // a bad line: answered with what is wrong (id 0), the connection goes on
        w.write_all(b"{\"id\":3,\"req\":{\"req\":\"nope\"}}\n").await.unwrap();
        match next(&mut r).await {
            Frame::Response {
                id: 0,
                resp: Response::Error { message },
            } => assert!(message.contains("nope"), "{message}"),
            f => panic!("{f:?}"),
        }
        // subscribe: the answer, the current status, then pushed events
        w.write_all(
            send(Frame::Request {
                id: 4,
                req: Request::Subscribe,
            })
            .as_bytes(),
        )
        .await
        .unwrap();
        assert!(matches!(
            next(&mut r).await,
            Frame::Response {
                id: 4,
                resp: Response::Subscribed
            }
        ));
        assert!(matches!(
            next(&mut r).await,
            Frame::Event {
                event: Event::Status { .. }
            }
        ));
        assert_eq!(events.receiver_count(), 1, "one subscribed session");
        events.send(Event::ExitForUpgrade).unwrap();
        assert!(matches!(
            next(&mut r).await,
            Frame::Event {
                event: Event::ExitForUpgrade
            }
        ));
        // closing ends the connection and its subscription
        drop(w);
        drop(r);
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(events.receiver_count(), 0);
    }
}
