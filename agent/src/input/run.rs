//! The input tasks (watchexec style): every reader runs on its own OS thread (blocking serial IO,
//! the X11 / Windows message loop) and hands raw payloads to one async loop that classifies them,
//! publishes `AgentEvent::Scan`, asks the quote service and publishes `AgentEvent::Quote`.
//! While a reader test is active (the [`DiagSink`]'s flag) the reader threads also publish
//! `AgentEvent::Reader` diagnostics (keys, decisions); a scan's decision is published here,
//! after classification, just before its `Scan` event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::ids::CardPolicy;
use tokio::sync::{mpsc, watch};

use super::config::ReaderConfig;
use super::detect::{Action, Detector};
pub use super::diag::WedgeReport;
use super::diag::{self, DiagSink, ReaderDiag};
use super::oskbd::{DeviceInfo, KeySource, SourceEvent};
use super::payload;
use super::serial::{self, SerialEvent};
use crate::events::{AgentEvent, Bus, Classified, QuoteEvent, ScanEvent};
use crate::quote::{QuoteService, Quoter};
use crate::synclog::Level;

/// Where reader problems and state changes go (serial reader connected / disconnected /
/// unavailable, keyboard wedge off, intercept hook lost): in the agent the sync log (`kind =
/// "reader"`, so `till-agent log` and the sync-log window show support staff why a scanner is
/// silent) and the status (tray icon and tooltip, `till-agent status`).
pub type Notice = Arc<dyn Fn(ReaderNotice) + Send + Sync>;

#[derive(Clone, Debug, PartialEq)]
pub struct ReaderNotice {
    /// Which reader: `serial 1`, `keyboard wedge`.
    pub reader: String,
    pub level: Level,
    pub message: String,
    /// `Some(true)`: the reader does not work now; `Some(false)`: it works (again); `None`: an
    /// event that changes neither (e.g. the intercept hook was lost and is back).
    pub problem: Option<bool>,
}

impl ReaderNotice {
    fn new(reader: &str, level: Level, message: String, problem: Option<bool>) -> ReaderNotice {
        ReaderNotice {
            reader: reader.to_string(),
            level,
            message,
            problem,
        }
    }
}

const WEDGE: &str = "keyboard wedge";

/// A complete payload from some reader. `text` may be a payment card: never log it.
pub struct RawScan {
    pub source: String,
    pub text: String,
    /// When the terminator key / byte arrived.
    pub at: Instant,
    /// Not a payload but a failed read (a prefix scan without its terminator): this detail.
    pub read_error: Option<String>,
    /// Reader test: the decision line, completed with the classification and published.
    pub diag: Option<ReaderDiag>,
}

impl RawScan {
    pub fn new(source: String, text: String, at: Instant) -> RawScan {
        RawScan {
            source,
            text,
            at,
            read_error: None,
            diag: None,
        }
    }
}

/// Drive a key source through the detector until `stop`. Intercept decisions are executed by the
/// source; every event and decision is reported.
pub fn run_wedge(
    mut source: Box<dyn KeySource>,
    cfg: &ReaderConfig,
    stop: &AtomicBool,
    mut report: impl FnMut(WedgeReport<'_>),
) -> anyhow::Result<()> {
    let mut det = Detector::new(cfg.detect_config());
    let mut devices: Vec<DeviceInfo> = source.devices();
    let kind = source.kind();
    for d in &devices {
        let ded = cfg.is_dedicated(&[&d.name, &d.label(kind), &format!("{kind}:{}", d.name)]);
        det.set_dedicated(d.id, ded);
        report(WedgeReport::Device {
            info: d,
            added: true,
            dedicated: ded,
        });
    }
    let mut last_down: std::collections::HashMap<u32, u64> = Default::default();
    // Ticks matter only while the detector may hold state (within its longest timeout after the
    // last key); otherwise wait long, so an idle till wakes twice a second (the stop flag), not
    // a hundred times.
    let settle = Duration::from_millis(det.config().max_gap_ms.max(det.config().idle_ms) + 50);
    let mut last_key: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let busy = last_key.is_some_and(|t| t.elapsed() <= settle);
        let wait = if busy {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(500)
        };
        let actions = match source.next(wait)? {
            Some(SourceEvent::Key(ev)) => {
                last_key = Some(std::time::Instant::now());
                let dev = devices.iter().find(|d| d.id == ev.device);
                let gap = if ev.down {
                    last_down
                        .insert(ev.device, ev.time_ms)
                        .map(|t| ev.time_ms.saturating_sub(t))
                } else {
                    None
                };
                report(WedgeReport::Key {
                    ev: &ev,
                    gap_ms: gap,
                    device: dev,
                });
                det.feed(ev)
            }
            Some(SourceEvent::DeviceAdded(info)) => {
                let ded = cfg.is_dedicated(&[&info.name, &info.label(kind), &format!("{kind}:{}", info.name)]);
                det.set_dedicated(info.id, ded);
                report(WedgeReport::Device {
                    info: &info,
                    added: true,
                    dedicated: ded,
                });
                devices.retain(|d| d.id != info.id);
                devices.push(info);
                Vec::new()
            }
            Some(SourceEvent::DeviceRemoved(id)) => {
                if let Some(info) = devices.iter().find(|d| d.id == id) {
                    report(WedgeReport::Device {
                        info,
                        added: false,
                        dedicated: false,
                    });
                }
                devices.retain(|d| d.id != id);
                Vec::new()
            }
            Some(SourceEvent::InputLost { device, leaked, notice }) => {
                if let Some(n) = &notice {
                    report(WedgeReport::Notice(n));
                }
                det.input_lost(device, &leaked)
            }
            None => det.tick(source.now_ms()),
        };
        for a in &actions {
            source.execute(a);
            let device = match a {
                Action::Scan(s) => devices.iter().find(|d| d.id == s.device),
                Action::NotScan { device, .. } => devices.iter().find(|d| d.id == *device),
                _ => None,
            };
            report(WedgeReport::Action { action: a, device });
        }
    }
    Ok(())
}

/// Classify one payload, publish the scan, then the quote (for loyalty cards).
pub async fn handle_scan(
    raw: RawScan,
    policy: &CardPolicy,
    quotes: Option<&dyn Quoter>,
    bus: &Bus,
) -> (ScanEvent, Option<QuoteEvent>) {
    let classified = match raw.read_error {
        Some(detail) => Classified::ReadError { detail },
        None => payload::classify(&raw.text, policy),
    };
    drop(raw.text);
    if let Some(mut d) = raw.diag {
        if let ReaderDiag::Scan { classified: c, .. } = &mut d {
            *c = Some(classified.clone());
        }
        let _ = bus.send(AgentEvent::Reader(d));
    }
    let scan = ScanEvent {
        at: chrono::Local::now().fixed_offset(),
        source: raw.source,
        classified,
    };
    match &scan.classified {
        Classified::LoyaltyCard { card } => tracing::info!(source = %scan.source, card = %card, "loyalty card scanned"),
        Classified::PaymentCard { last4 } => {
            tracing::warn!(source = %scan.source, "payment card (…{last4}) swiped: not a loyalty card; number discarded")
        }
        Classified::ReadError { detail } => tracing::info!(source = %scan.source, "card read error: {detail}"),
        Classified::Other { reason } => tracing::info!(source = %scan.source, "not a card: {reason}"),
    }
    let _ = bus.send(AgentEvent::Scan(scan.clone()));
    let Classified::LoyaltyCard { card } = &scan.classified else {
        return (scan, None);
    };
    let Some(quotes) = quotes else { return (scan, None) };
    // A server slow to answer: the offline quote shows meanwhile, marked provisional.
    let early = |quote| {
        let _ = bus.send(AgentEvent::Quote(QuoteEvent {
            scan: scan.clone(),
            quote,
            provisional: true,
        }));
    };
    match quotes.quote_staged(card, &early).await {
        Ok(quote) => {
            let ev = QuoteEvent {
                scan: scan.clone(),
                quote,
                provisional: false,
            };
            let _ = bus.send(AgentEvent::Quote(ev.clone()));
            // Published = shown (popup or headless line): its messages are said once.
            if let Err(e) = quotes.ack_shown(&ev.quote) {
                tracing::warn!(card = %card, "cannot queue the message acks: {e:#}");
            }
            (scan, Some(ev))
        }
        Err(e) => {
            tracing::warn!(card = %card, "no quote: {e:#}");
            (scan, None)
        }
    }
}

/// Start the reader threads; payloads arrive on the returned channel. Threads end when `stop`
/// is set. With a `diags` sink they publish reader-test diagnostics while it is active.
pub fn start_readers(
    cfg: &ReaderConfig,
    display: Option<String>,
    stop: Arc<AtomicBool>,
    diags: Option<DiagSink>,
    notice: Notice,
) -> mpsc::UnboundedReceiver<RawScan> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, sc) in cfg.serial.iter().enumerate() {
        let sc = sc.clone();
        let tx = tx.clone();
        let stop = stop.clone();
        let sink = diags.clone();
        let note = notice.clone();
        let reader = format!("serial {}", i + 1);
        let _ = std::thread::Builder::new()
            .name(format!("serial-reader-{i}"))
            .spawn(move || {
                serial::run_reader(&sc, stop, |ev| {
                    let d = sink.as_ref().filter(|s| s.is_active()).map(|_| diag::serial(&ev, None));
                    if let (Some(sink), Some(d), false) = (&sink, &d, matches!(ev, SerialEvent::Line { .. })) {
                        sink.publish(d.clone());
                    }
                    match ev {
                        SerialEvent::Line { port, text, at } => {
                            let mut raw = RawScan::new(format!("serial:{port}"), text, at);
                            raw.diag = d;
                            let _ = tx.send(raw);
                        }
                        SerialEvent::Connected { port } => note(ReaderNotice::new(
                            &reader,
                            Level::Info,
                            format!("serial reader connected on {port}"),
                            Some(false),
                        )),
                        SerialEvent::Disconnected { port, reason } => note(ReaderNotice::new(
                            &reader,
                            Level::Warn,
                            format!("serial reader on {port} disconnected: {reason}"),
                            Some(true),
                        )),
                        SerialEvent::Unavailable { error } => note(ReaderNotice::new(
                            &reader,
                            Level::Warn,
                            format!("serial reader unavailable: {error}"),
                            Some(true),
                        )),
                    }
                });
            });
    }
    if cfg.wedge {
        let cfg = cfg.clone();
        let _ = std::thread::Builder::new().name("wedge-reader".into()).spawn(move || {
            let source = match super::oskbd::open(display.as_deref(), cfg.mode == super::config::Mode::Intercept) {
                Ok(s) => s,
                Err(e) => {
                    notice(ReaderNotice::new(
                        WEDGE,
                        Level::Warn,
                        format!("keyboard-wedge reader off: {e:#}"),
                        Some(true),
                    ));
                    return;
                }
            };
            let kind = source.kind();
            let mut wd = diag::WedgeDiag::new(kind);
            let r = run_wedge(source, &cfg, &stop, |r| {
                if let (WedgeReport::Key { ev, .. }, Some(sink)) = (&r, &diags) {
                    if ev.key == super::keys::Key::ESC && ev.down && !ev.injected {
                        sink.escape();
                    }
                }
                let d = match &diags {
                    Some(sink) if sink.is_active() => wd.report(&r, None).map(|d| (sink, d)),
                    _ => None,
                };
                match r {
                    WedgeReport::Notice(n) => notice(ReaderNotice::new(WEDGE, Level::Warn, n.to_string(), None)),
                    WedgeReport::Action {
                        action: Action::Scan(s),
                        ..
                    } => {
                        let mut raw = RawScan::new(format!("{kind}:{}", s.device), s.text.clone(), Instant::now());
                        raw.diag = d.map(|(_, d)| d);
                        let _ = tx.send(raw);
                    }
                    // A prefix scan that lost its terminator: tell the cashier to scan again.
                    WedgeReport::Action {
                        action:
                            Action::NotScan {
                                device,
                                reason,
                                read_error: true,
                                ..
                            },
                        ..
                    } => {
                        if let Some((sink, d)) = d {
                            sink.publish(d);
                        }
                        let mut raw = RawScan::new(format!("{kind}:{device}"), String::new(), Instant::now());
                        raw.read_error = Some(reason.clone());
                        let _ = tx.send(raw);
                    }
                    _ => {
                        if let Some((sink, d)) = d {
                            sink.publish(d);
                        }
                    }
                }
            });
            if let Err(e) = r {
                notice(ReaderNotice::new(
                    WEDGE,
                    Level::Error,
                    format!("keyboard-wedge reader stopped: {e:#}"),
                    Some(true),
                ));
            }
        });
    }
    rx
}

/// The input task the runtime spawns: readers → classification → `Scan` → quote → `Quote` on
/// the bus, until `shutdown` turns true.
///
/// `reader_test` turns the reader-test diagnostics (`AgentEvent::Reader`) on and off.
pub async fn run_inputs(
    cfg: crate::config::Config,
    bus: Bus,
    shutdown: watch::Receiver<bool>,
    reader_test: Arc<AtomicBool>,
    notice: Notice,
) -> anyhow::Result<()> {
    let quotes: Arc<dyn Quoter> = Arc::new(QuoteService::new(&cfg)?);
    run_inputs_with(cfg, bus, shutdown, reader_test, notice, quotes).await
}

/// [`run_inputs`] with the quotes from elsewhere (the session app asks the service).
pub async fn run_inputs_with(
    cfg: crate::config::Config,
    bus: Bus,
    mut shutdown: watch::Receiver<bool>,
    reader_test: Arc<AtomicBool>,
    notice: Notice,
    quotes: Arc<dyn Quoter>,
) -> anyhow::Result<()> {
    cfg.reader.validate().map_err(anyhow::Error::msg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sink = DiagSink {
        active: reader_test,
        bus: bus.clone(),
    };
    let mut rx = start_readers(&cfg.reader, None, stop.clone(), Some(sink), notice);
    loop {
        tokio::select! {
            raw = rx.recv() => {
                let Some(raw) = raw else { break };
                let policy = quotes.card_policy();
                handle_scan(raw, &policy, Some(quotes.as_ref()), &bus).await;
            }
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(())
}
