//! The GUI: one winit event loop on the main thread (`host`: egui drawn on the CPU). Its root viewport is the cashier
//! popup (hidden between scans); the sync log, About, Reader test and the Quit confirmation
//! are extra viewports. The tray icon runs beside it (see `tray`).
//!
//! Background → UI: a bridge thread forwards bus events and status changes into a channel and
//! sends `HostEvent::Wake` through the winit `EventLoopProxy`: the host runs the popup's pass. Tray menu clicks and single-instance activations take the same path.
//! UI → background: [`UiRequest`]s through the caller's `requests` callback (a channel send).
//! Idle = no timers: the only timed wake-up is the popup's own hide deadline while it shows.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText, ViewportBuilder, ViewportCommand, ViewportId};
use tokio::sync::watch;

use super::config::PopupConfig;
use super::host::{Host, HostApp, HostEvent, MakeApp};
use super::i18n::{t, Key, Lang};
use super::instance::{self, Acquired};
use super::platform::{self, PopupPlatform};
use super::synclog_window::{self, LogWindow};
use super::tray::Tray;
use super::viewmodel::{ActionId, PopupView, Severity};
use super::{AboutInfo, GuiContext, GuiExit, UiRequest};
use crate::events::{AgentEvent, SyncStatus};

enum UiMsg {
    Escape,
    /// Ctrl-C / SIGTERM: close the loop so the caller can flush and stop the background.
    Shutdown,
    Event(Box<AgentEvent>),
    Status(SyncStatus),
    Menu(String),
    Activate,
}

pub(super) enum Outcome {
    Exit(GuiExit),
    NoDisplay(String),
}

/// Run the GUI on this (main) thread until Quit.
pub(super) fn run(ctx: GuiContext) -> anyhow::Result<Outcome> {
    if let Err(why) = platform::display_available() {
        return Ok(Outcome::NoDisplay(why));
    }
    let inst = match instance::acquire()? {
        Acquired::Signalled => {
            tracing::info!("till-agent GUI already runs in this session; asked it to show its last popup");
            return Ok(Outcome::Exit(GuiExit::SignalledOther));
        }
        Acquired::First(i) => i,
    };
    let platform = platform::popup_platform();
    let viewport = platform
        .popup_builder(ViewportBuilder::default())
        .with_inner_size([ctx.popup.width as f32, 200.0])
        .with_position([-10_000.0, -10_000.0]);
    tracing::info!(platform = platform.name(), "starting GUI: tray and popup");
    let (tx, rx) = std::sync::mpsc::channel::<UiMsg>();
    // Our own winit loop (ui::host) so we also see raw keyboard device events:
    // Esc hides the popup although the popup never has the keyboard focus. Passive: X11 XI2 raw
    // events / Win32 raw input with RIDEV_INPUTSINK; nothing is grabbed, every other key ignored.
    // With a keyboard-wedge reader running, Esc arrives from it instead (`AgentEvent::Escape`):
    // on Windows a process has one Raw Input keyboard target and the wedge holds it.
    let event_loop = winit::event_loop::EventLoop::<HostEvent>::with_user_event().build()?;
    event_loop.listen_device_events(if ctx.escape_from_wedge {
        winit::event_loop::DeviceEvents::Never
    } else {
        winit::event_loop::DeviceEvents::Always
    });
    let egui_ctx = egui::Context::default();
    let proxy = event_loop.create_proxy();
    let on_escape = {
        let (tx, proxy) = (tx.clone(), proxy.clone());
        move || {
            let _ = tx.send(UiMsg::Escape);
            let _ = proxy.send_event(HostEvent::Wake);
        }
    };
    // A wake-up runs the popup's pass at once: the host never throttles repaints, hidden or not.
    let host_proxy = proxy.clone();
    let make: MakeApp<App> = Box::new(move |egui_ctx: &egui::Context, root: &winit::window::Window| {
        install_fonts(egui_ctx);
        egui_ctx.set_theme(egui::Theme::Light);
        platform.after_create(root);
        let wake = {
            let (tx, proxy) = (tx.clone(), proxy.clone());
            Arc::new(move |m: UiMsg| {
                let _ = tx.send(m);
                let _ = proxy.send_event(HostEvent::Wake);
            })
        };
        for ev in ctx.initial.iter().cloned() {
            wake(UiMsg::Event(Box::new(ev)));
        }
        start_bridge(ctx.bus.subscribe(), ctx.status.clone(), wake.clone())?;
        {
            let wake = wake.clone();
            inst.serve(move |line| match line.strip_prefix("menu ") {
                Some(id) => wake(UiMsg::Menu(id.to_string())),
                None => wake(UiMsg::Activate),
            })?;
        }
        let tray = if ctx.tray {
            let wake = wake.clone();
            match Tray::start(ctx.lang, move |id| wake(UiMsg::Menu(id))) {
                Ok(t) => {
                    tracing::info!("tray icon started");
                    Some(t)
                }
                Err(e) => {
                    tracing::warn!("tray icon not available: {e:#}; the popup still works");
                    None
                }
            }
        } else {
            None
        };
        match ctx.popup.hotkey() {
            Ok(Some(hk)) if ctx.tray => {
                let wake = wake.clone();
                match platform::register_hotkey(hk, Box::new(move || wake(UiMsg::Menu("find_customer".into())))) {
                    Ok(()) => tracing::info!(hotkey = %hk, "find-customer hotkey registered"),
                    Err(e) => {
                        tracing::warn!("find-customer hotkey {hk} not available: {e}; the tray entry still works")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("popup.find_hotkey: {e}"),
        }
        let status = ctx.status.as_ref().map(|s| s.borrow().clone()).unwrap_or_default();
        let mut app = App::new(ctx, platform, rx, tray);
        app.set_status(status);
        Ok(app)
    });
    let mut host = Host::new(egui_ctx, viewport, make, host_proxy, on_escape);
    event_loop
        .run_app(&mut host)
        .map_err(|e| anyhow::anyhow!("GUI event loop failed: {e}"))?;
    if let Some(e) = host.error.take() {
        return Err(e);
    }
    Ok(Outcome::Exit(GuiExit::Closed))
}

/// DejaVu Sans first: full Latin Extended-A (č ř ž ě ů ľ ĺ ŕ ć đ) at large sizes.
fn install_fonts(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    fonts.font_data.insert(
        "dejavu".into(),
        Arc::new(egui::FontData::from_static(include_bytes!(
            "../../assets/DejaVuSans.ttf"
        ))),
    );
    fonts
        .families
        .entry(egui::FontFamily::Proportional)
        .or_default()
        .insert(0, "dejavu".into());
    // Monospace (sync log) keeps its fixed-width font; DejaVu only fills missing glyphs.
    fonts
        .families
        .entry(egui::FontFamily::Monospace)
        .or_default()
        .push("dejavu".into());
    ctx.set_fonts(fonts);
}

fn start_bridge(
    mut bus: tokio::sync::broadcast::Receiver<AgentEvent>,
    mut status: Option<watch::Receiver<SyncStatus>>,
    wake: Arc<dyn Fn(UiMsg) + Send + Sync>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("gui-bridge".into()).spawn(move || {
        rt.block_on(async move {
            // One signal listener for the bridge's whole life, and the bridge lives until the
            // signal: once installed, tokio's handler replaces the default action, so returning
            // early (e.g. when `popup-demo`, which keeps no bus sender, sees the bus closed) made
            // the process deaf to SIGTERM.
            let term = terminate_signal();
            tokio::pin!(term);
            let mut bus_open = true;
            loop {
                let changed = async {
                    match status.as_mut() {
                        Some(s) => s.changed().await.map(|_| s.borrow_and_update().clone()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut term => {
                        tracing::info!("termination signal: closing the GUI");
                        wake(UiMsg::Shutdown);
                        return;
                    }
                    ev = bus.recv(), if bus_open => match ev {
                        Ok(ev) => wake(UiMsg::Event(Box::new(ev))),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!("GUI skipped {n} bus events"),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => bus_open = false,
                    },
                    st = changed => match st {
                        Ok(s) => wake(UiMsg::Status(s)),
                        Err(_) => status = None,
                    },
                }
            }
        })
    })?;
    Ok(())
}

use crate::os::terminate_signal;

/// The extra windows. They are *deferred* viewports registered from `App::logic`, which runs
/// even while the popup (the root viewport) is hidden; their UI callbacks share this state.
#[derive(Default)]
struct Windows {
    log: Option<LogWindow>,
    about: bool,
    reader_test: Option<Vec<String>>,
    /// New reader-test lines since the window last painted.
    reader_test_new: bool,
    quit: bool,
    quit_confirmed: bool,
    /// The register / migration-code form for an unknown card (`forms`).
    enrol: Option<super::forms::EnrolForm>,
    /// The Redeem confirm window (`redeem_window`).
    redeem: Option<super::redeem_window::RedeemConfirm>,
    /// Request id of the redemption the confirm window sent; its answer is shown in the popup.
    redeem_sent: Option<String>,
    /// The "Find customer" search box (`find_window`).
    find: Option<super::find_window::FindBox>,
    /// The "Add purchase to card" form (`find_window`).
    tag: Option<super::find_window::TagForm>,
    /// The search box / tag form has news (an answer, a routed scan) to paint: both are asked
    /// to repaint until then (a single request to a deferred viewport was seen lost under load).
    repaint_find: bool,
    repaint_tag: bool,
    news_until: Option<Instant>,
}

struct App {
    lang: Lang,
    cfg: PopupConfig,
    about: AboutInfo,
    config_path: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    sync_log: Option<super::synclog_view::SyncLogSource>,
    requests: Arc<dyn Fn(UiRequest) + Send + Sync>,
    platform: Box<dyn PopupPlatform>,
    rx: Receiver<UiMsg>,
    tray: Option<Tray>,
    status: SyncStatus,
    /// Queue-depth samples: the backlog's drain rate and time left for the tooltip.
    drain: super::human::DrainMeter,
    current: Option<PopupView>,
    last: Option<PopupView>,
    shown_at: Option<Instant>,
    pending_visible: Option<bool>,
    fitted: Option<(egui::Vec2, egui::Vec2)>,
    /// The last fitted popup size (points), to place the next popup before it is mapped.
    last_size: egui::Vec2,
    win: Arc<std::sync::Mutex<Windows>>,
    closing: bool,
    /// Layout log of the popup's action buttons (see `forms`).
    rects: super::forms::RectLog,
    /// What the last customer popup's Redeem button redeems.
    offer: Option<super::redeem_view::Offer>,
    /// This session's last redemption (id, card), for the tray's "Void last redemption".
    last_redemption: Option<(String, protocol::CardId)>,
    /// The window that had the keyboard focus when the enrol form or the Redeem confirm opened
    /// (the POS); given back when the last of them closes.
    focus_back: Option<u64>,
    /// The popup's history is expanded.
    history_open: bool,
    /// A card scan that went into the tag form (its quote shows no popup).
    routed_scan: Option<protocol::CardId>,
    /// The scan whose popup shows its offline quote while the server's is awaited.
    provisional: Option<crate::events::ScanEvent>,
}

impl App {
    fn new(ctx: GuiContext, platform: Box<dyn PopupPlatform>, rx: Receiver<UiMsg>, tray: Option<Tray>) -> App {
        let last_size = egui::vec2(ctx.popup.width as f32 * ctx.popup.font_scale, 200.0);
        App {
            lang: ctx.lang,
            cfg: ctx.popup,
            about: ctx.about,
            config_path: ctx.config_path,
            log_dir: ctx.log_dir,
            sync_log: ctx.sync_log,
            requests: ctx.requests,
            platform,
            rx,
            tray,
            status: SyncStatus::default(),
            drain: Default::default(),
            current: None,
            last: None,
            shown_at: None,
            pending_visible: Some(false),
            fitted: None,
            last_size,
            win: Arc::default(),
            closing: false,
            focus_back: None,
            history_open: false,
            routed_scan: None,
            provisional: None,
            rects: Default::default(),
            offer: None,
            last_redemption: None,
        }
    }

    fn set_status(&mut self, s: SyncStatus) {
        self.drain.record(Instant::now(), s.queue_depth);
        let backlog = self.drain.backlog();
        if let Some(tray) = self.tray.as_mut() {
            tray.update(self.lang, &s, &backlog);
        }
        self.status = s;
        let db = self.sync_log.clone();
        if let Some(log) = self.windows().log.as_mut() {
            log.reload(db.as_ref());
        }
    }

    fn show(&mut self, view: PopupView) {
        let line = view.to_json_line();
        tracing::info!(target: "till_agent::popup", kind = ?view.kind, popup = %line, "popup shown");
        println!("{line}");
        self.put_on_screen(view);
    }

    /// The offline quote while the server's is awaited: on screen at once, but not the scan's
    /// popup line yet (no JSON line, no `popup shown` log): the final quote replaces it.
    fn show_provisional(&mut self, view: PopupView, scan: crate::events::ScanEvent) {
        let line = view.to_json_line();
        tracing::info!(target: "till_agent::popup", kind = ?view.kind, popup = %line, "offline quote shown while the server answers");
        self.provisional = Some(scan);
        self.put_on_screen(view);
    }

    /// `view` becomes the popup on screen (and the one "show last" brings back), laid out afresh.
    fn put_on_screen(&mut self, view: PopupView) {
        self.current = Some(view.clone());
        self.last = Some(view);
        self.history_open = false;
        self.shown_at = Some(Instant::now());
        self.fitted = None;
        self.rects.clear();
        self.pending_visible = Some(true);
    }

    fn hide(&mut self) {
        if self.current.take().is_some() {
            self.shown_at = None;
            self.pending_visible = Some(false);
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.win.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&mut self, msg: UiMsg) {
        match msg {
            UiMsg::Status(s) => self.set_status(s),
            UiMsg::Event(ev) => {
                let ev = *ev;
                if let AgentEvent::Status(s) = ev {
                    self.set_status(s);
                    return;
                }
                if let AgentEvent::Escape = ev {
                    self.hide();
                    return;
                }
                if let AgentEvent::Enrol(e) = &ev {
                    if let Some(f) = self.windows().enrol.as_mut() {
                        f.answered(&e.request_id, e.error.as_deref());
                    }
                    return;
                }
                if let AgentEvent::Redeem(r) = &ev {
                    self.redeem_answered(r);
                    return;
                }
                // A card scanned while the tag form is open goes into its card field; its quote
                // names the customer there instead of covering the form with a popup.
                if let AgentEvent::Scan(sc) = &ev {
                    if let crate::events::Classified::LoyaltyCard { card } = &sc.classified {
                        let mut w = self.windows();
                        if let Some(t) = w.tag.as_mut() {
                            t.scanned(card);
                            w.repaint_tag = true;
                            tracing::info!(target: "till_agent::ui", card = %card, "scan routed into the tag form's card field");
                            drop(w);
                            self.routed_scan = Some(card.clone());
                            return;
                        }
                        // The search box is answered by the scan itself: it closes, the popup shows.
                        if w.find.take().is_some() {
                            tracing::info!(target: "till_agent::ui", "search box closed by a scan");
                        }
                    }
                }
                if let AgentEvent::Quote(q) = &ev {
                    // The tag form waits for the final quote; a provisional one shows no popup there.
                    if q.provisional && self.routed_scan.is_some() {
                        return;
                    }
                    if !q.provisional && self.provisional.as_ref() == Some(&q.scan) {
                        self.provisional = None;
                        if self.current.is_none() {
                            // Dismissed before the server answered: the final quote is the last
                            // popup (tray "show last"), not shown again by itself.
                            self.last = Some(PopupView::from_quote(q, self.lang));
                            self.offer = super::redeem_view::Offer::from_quote(q);
                            tracing::info!(target: "till_agent::popup", "the final quote came after its provisional popup was dismissed");
                            return;
                        }
                    }
                    if let Some(card) = self.routed_scan.take() {
                        if q.scan.classified == (crate::events::Classified::LoyaltyCard { card: card.clone() }) {
                            if let protocol::v1::QuoteResult::Customer { quote, .. } = &q.quote.result {
                                let w = &mut *self.windows();
                                if let Some(t) = w.tag.as_mut() {
                                    t.customer_of(&card, &quote.display_name);
                                    w.repaint_tag = true;
                                }
                            }
                            return;
                        }
                    }
                    self.offer = super::redeem_view::Offer::from_quote(q);
                }
                if let AgentEvent::Lookup(a) = &ev {
                    let why = a
                        .problem
                        .as_ref()
                        .map(|p| super::find_i18n::lookup_problem(self.lang, p));
                    // (A deferred viewport repaints on its own input only: an answer asks for it.)
                    let w = &mut *self.windows();
                    if let Some(f) = w.find.as_mut() {
                        w.repaint_find |= f.answered(&a.request_id, why.as_deref());
                    }
                    return;
                }
                if let AgentEvent::Tag(a) = &ev {
                    let lang = self.lang;
                    let w = &mut *self.windows();
                    if let Some(f) = w.tag.as_mut() {
                        w.repaint_tag |= f.answered_tag(lang, a);
                    }
                    return;
                }
                if let AgentEvent::Reader(d) = &ev {
                    let mut w = self.windows();
                    if let Some(lines) = w.reader_test.as_mut() {
                        reader_test_line(self.lang, lines, d);
                        w.reader_test_new = true;
                    }
                    return;
                }
                if let AgentEvent::Quote(q) = &ev {
                    if q.provisional {
                        let v = PopupView::from_quote(q, self.lang);
                        self.show_provisional(v, q.scan.clone());
                        return;
                    }
                }
                if let Some(v) = PopupView::from_event(&ev, self.lang) {
                    self.provisional = None;
                    self.show(v);
                }
            }
            UiMsg::Activate => self.show_last(),
            UiMsg::Escape => self.hide(),
            UiMsg::Shutdown => self.closing = true,
            UiMsg::Menu(id) => match id.as_str() {
                "show_last" => self.show_last(),
                "register" => self.open_form_for_last(ActionId::Register),
                "migration_code" => self.open_form_for_last(ActionId::MigrationCode),
                "redeem_last" => self.open_redeem(),
                "history" => self.toggle_history(),
                "find_customer" => self.open_find(),
                "tag_purchase" => self.open_tag(None),
                "void_last" => match self.last_redemption.clone() {
                    Some((id, card)) => {
                        tracing::info!(target: "till_agent::ui", redemption = %id, card = %card, "void of the last redemption requested");
                        (self.requests)(UiRequest::Void(id));
                    }
                    None => tracing::info!("void last redemption: none in this session"),
                },
                "sync_log" => {
                    let mut log = LogWindow::default();
                    log.reload(self.sync_log.as_ref());
                    self.windows().log = Some(log);
                }
                "sync_now" => (self.requests)(UiRequest::SyncNow),
                "reader_test" => {
                    self.windows().reader_test.get_or_insert_with(Vec::new);
                    (self.requests)(UiRequest::ReaderTest(true));
                }
                "settings" => {
                    if let Some(p) = self.config_path.clone() {
                        open_path(&p);
                    }
                }
                "about" => self.windows().about = true,
                "quit" => self.windows().quit = true,
                other => tracing::warn!("unknown tray menu id {other}"),
            },
        }
    }

    /// The keyboard path to the popup's buttons (tray menu): open the form for the last popup
    /// that offered `action`, if it did.
    fn open_form_for_last(&mut self, action: ActionId) {
        let card = self
            .last
            .as_ref()
            .filter(|v| v.actions.iter().any(|a| a.id == action))
            .and_then(|v| v.card_id.clone());
        match card {
            Some(card) => {
                tracing::info!(target: "till_agent::ui", action = ?action, card = %card, "form opened from the tray menu");
                self.remember_focus();
                self.windows().enrol = Some(super::forms::EnrolForm::new(action, card));
                self.hide();
            }
            None => tracing::info!("tray menu {action:?}: the last popup offered no such action"),
        }
    }

    /// Open the Redeem confirm window for the last customer popup's offer (popup button or tray).
    fn open_redeem(&mut self) {
        let Some(offer) = self.offer.clone() else {
            tracing::info!("redeem: the last popup offered nothing to redeem");
            return;
        };
        tracing::info!(target: "till_agent::ui", card = %offer.card, points = %offer.option.points, "redeem confirm opened");
        let (store, till) = (
            protocol::StoreId::from(self.about.store_id.as_str()),
            protocol::TillId::from(self.about.till_id.as_str()),
        );
        self.remember_focus();
        self.windows().redeem = Some(super::redeem_window::RedeemConfirm::new(offer, store, till));
        self.hide();
    }

    /// Before a window that may take the keyboard focus opens: remember who has it (the POS),
    /// unless one of those windows is already open (then the first remembered one stays).
    fn remember_focus(&mut self) {
        let open = self.focus_windows_open();
        if self.focus_back.is_none() && !open {
            self.focus_back = self.platform.focused_window();
            tracing::debug!(target: "till_agent::ui", window = ?self.focus_back, "keyboard focus remembered");
        }
    }

    /// Is one of the windows that may take the focus open (enrol form, Redeem confirm, search
    /// box, tag form)?
    fn focus_windows_open(&self) -> bool {
        let w = self.windows();
        w.enrol.is_some() || w.redeem.is_some() || w.find.is_some() || w.tag.is_some()
    }

    /// Open the "Find customer" search box (tray, hotkey); already open: nothing new.
    fn open_find(&mut self) {
        if self.windows().find.is_some() {
            tracing::info!(target: "till_agent::ui", "search box already open");
            return;
        }
        self.remember_focus();
        self.windows().find = Some(super::find_window::FindBox::new());
        tracing::info!(target: "till_agent::ui", "search box opened");
    }

    /// Open the "Add purchase to card" form (tray, popup button), with the popup's card if one shows.
    fn open_tag(&mut self, card: Option<protocol::CardId>) {
        if self.windows().tag.is_some() {
            return;
        }
        self.remember_focus();
        let today = chrono::Local::now().date_naive();
        self.windows().tag = Some(super::find_window::TagForm::new(self.lang, today, card.as_ref()));
        tracing::info!(target: "till_agent::ui", card = ?card.as_ref().map(|c| c.masked()), "tag form opened");
    }

    /// The enrol form, the Redeem confirm, the search box and the tag form are all closed: give
    /// the focus back.
    fn give_focus_back(&mut self) {
        if self.focus_back.is_none() {
            return;
        }
        if !self.focus_windows_open() {
            if let Some(win) = self.focus_back.take() {
                self.platform.restore_focus(win);
            }
        }
    }

    /// The background's answer to our redemption (or void): shown, large, in the popup.
    fn redeem_answered(&mut self, r: &crate::events::RedeemEvent) {
        let card = if r.void {
            match &self.last_redemption {
                Some((id, card)) if *id == r.request_id => Some(card.clone()),
                _ => return,
            }
        } else {
            let mut w = self.windows();
            if w.redeem_sent.as_deref() != Some(r.request_id.as_str()) {
                return;
            }
            w.redeem_sent = None;
            drop(w);
            self.offer.as_ref().map(|o| o.card.clone())
        };
        match (&r.answer, r.void) {
            (Some(a), false) => {
                // offline answers carry the request id, which is also what `void` looks up
                let id = if r.mode.as_deref() == Some("offline") {
                    r.request_id.clone()
                } else {
                    a.redemption_id.clone()
                };
                self.last_redemption = card.clone().map(|c| (id, c));
                self.offer = None;
            }
            (_, true) if r.refused.is_none() => self.last_redemption = None,
            _ => {}
        }
        let view = super::redeem_view::result_view(self.lang, card.as_ref(), r);
        self.show(view);
    }

    /// Expand / collapse the popup's history (popup button, tray entry, hotkey); the popup's hide
    /// timer starts again so the cashier can read it.
    fn toggle_history(&mut self) {
        if self.current.is_none() {
            self.show_last();
        }
        if self.current.is_some() {
            self.history_open = !self.history_open;
            self.shown_at = Some(Instant::now());
            self.fitted = None;
            tracing::info!(target: "till_agent::ui", open = self.history_open, "popup history toggled");
        }
    }

    fn show_last(&mut self) {
        match self.last.clone() {
            Some(v) => {
                tracing::info!("showing the last popup again");
                self.current = Some(v);
                self.shown_at = Some(Instant::now());
                self.fitted = None;
                self.pending_visible = Some(true);
            }
            None => tracing::info!("show last customer: {}", t(self.lang, Key::NoCustomerYet)),
        }
    }

    fn popup_ui(&mut self, ui: &mut egui::Ui) {
        let Some(view) = self.current.clone() else { return };
        let s = self.cfg.font_scale;
        let accent = match view.severity {
            Severity::Ok => Color32::from_rgb(0x2e, 0x7d, 0x32),
            Severity::Warning => Color32::from_rgb(0xe6, 0x8a, 0x00),
            Severity::Error => Color32::from_rgb(0xc6, 0x28, 0x28),
        };
        // Everything scales with font_scale: text, spacing, frame and width (the layout stays the
        // same, only bigger). Sizes are logical points; egui-winit turns them into physical pixels
        // with the window's scale factor (DPI), so the popup is DPI aware as a whole.
        let (margin, stroke) = ((18.0 * s).round(), (6.0 * s).round());
        let pad = 2.0 * (margin + stroke);
        let width = self.cfg.width as f32 * s;
        let frame = egui::Frame::new()
            .fill(Color32::WHITE)
            .stroke(egui::Stroke::new(stroke, accent))
            .inner_margin(margin);
        let mut action = None;
        let mut redeem_clicked = false;
        let mut history_clicked = false;
        let mut tag_clicked = false;
        // Text wraps at the configured width whatever the window's current size, and the content
        // is measured in a child Ui (a panel's own Ui always fills the window), so the window fits
        // each popup exactly: it grows for a wide table and shrinks again for a short warning.
        let monitor = ui
            .ctx()
            .input(|i| i.viewport().monitor_size)
            .unwrap_or(egui::vec2(1280.0, 1024.0));
        let max_w = (monitor.x - 2.0 * self.cfg.margin as f32).max(200.0);
        let wrap_w = width.min(max_w) - pad;
        // The table may be wider than `width` (it grows to fit), but never wider than the screen:
        // past that its cells wrap instead of being cut off at the window's edge.
        let col_max = ((max_w - pad - 16.0 * s) / 2.0).max(50.0);
        // Never taller than the screen either: past that the content scrolls (a large font_scale on
        // a high-DPI screen with the history open).
        let max_h = ((monitor.y - 2.0 * self.cfg.margin as f32).max(200.0) - pad).max(100.0);
        let resp = egui::CentralPanel::default().frame(frame).show_inside(ui, |ui| {
            let out = egui::ScrollArea::vertical()
                .max_height(max_h)
                .auto_shrink([true, true])
                .show(ui, |ui| {
                    ui.vertical(|ui| {
                        // Sentences wrap at the configured width; the table may be wider, up to the screen.
                        ui.set_max_width(max_w - pad);
                        ui.spacing_mut().item_spacing.y = 6.0 * s;
                        ui.scope(|ui| {
                            ui.set_max_width(wrap_w);
                            ui.label(RichText::new(&view.title).size(30.0 * s).strong().color(Color32::BLACK));
                            if let Some(card) = &view.card {
                                ui.label(RichText::new(card).size(16.0 * s).color(Color32::DARK_GRAY));
                            }
                        });
                        if !view.rows.is_empty() {
                            egui::Grid::new("rows")
                                .num_columns(2)
                                .spacing([16.0 * s, 6.0 * s])
                                .max_col_width(col_max)
                                .show(ui, |ui| {
                                    for r in &view.rows {
                                        // The discount (and what can be redeemed) is the largest text after the name.
                                        let (size, colour) = if r.emphasis {
                                            (28.0 * s, Color32::from_rgb(0x1b, 0x5e, 0x20))
                                        } else {
                                            (22.0 * s, Color32::BLACK)
                                        };
                                        let label =
                                            RichText::new(&r.label).size(if r.emphasis { 22.0 } else { 20.0 } * s);
                                        ui.label(label.color(Color32::DARK_GRAY));
                                        ui.label(RichText::new(&r.value).size(size).strong().color(colour));
                                        ui.end_row();
                                    }
                                });
                        }
                        ui.scope(|ui| {
                            ui.set_max_width(wrap_w);
                            // What to tell the customer: large, before any warning.
                            for (i, line) in view.say.iter().enumerate() {
                                let l = ui.label(
                                    RichText::new(format!("\u{bb} {line}"))
                                        .size(21.0 * s)
                                        .strong()
                                        .color(Color32::from_rgb(0x0d, 0x47, 0xa1)),
                                );
                                if i == 0 {
                                    self.rects.log(ui.ctx(), "popup.say", l.rect);
                                }
                            }
                            for w in &view.warnings {
                                ui.label(RichText::new(w).size(20.0 * s).strong().color(accent));
                            }
                            if let Some(o) = &view.offline {
                                ui.label(
                                    RichText::new(o)
                                        .size(18.0 * s)
                                        .italics()
                                        .color(Color32::from_rgb(0x55, 0x55, 0x88)),
                                );
                            }
                            if let Some(w) = &view.waiting {
                                ui.label(RichText::new(w).size(18.0 * s).italics().color(Color32::DARK_GRAY));
                            }
                        });
                        // History at a glance: a button expands the newest ledger entries (customer popups).
                        if view.facts.is_some() {
                            let open = self.history_open;
                            let label = format!(
                                "{} {}",
                                if open { "\u{25be}" } else { "\u{25b8}" },
                                super::find_i18n::fx(self.lang, super::find_i18n::Fx::History)
                            );
                            ui.horizontal(|ui| {
                                let b = ui.button(RichText::new(label).size(18.0 * s));
                                self.rects.log(ui.ctx(), "popup.history", b.rect);
                                history_clicked = b.clicked();
                                let b = ui.button(
                                    RichText::new(super::find_i18n::fx(self.lang, super::find_i18n::Fx::MenuTag))
                                        .size(18.0 * s),
                                );
                                self.rects.log(ui.ctx(), "popup.tag", b.rect);
                                tag_clicked = b.clicked();
                            });
                            if open {
                                if view.history.is_empty() {
                                    ui.label(
                                        RichText::new(super::find_i18n::fx(self.lang, super::find_i18n::Fx::NoHistory))
                                            .size(18.0 * s)
                                            .italics()
                                            .color(Color32::DARK_GRAY),
                                    );
                                } else {
                                    let g = egui::Grid::new("history")
                                        .num_columns(4)
                                        .spacing([14.0 * s, 4.0 * s])
                                        .show(ui, |ui| {
                                            for h in &view.history {
                                                let c = if h.points.starts_with('\u{2212}') {
                                                    Color32::from_rgb(0xc6, 0x28, 0x28)
                                                } else {
                                                    Color32::from_rgb(0x1b, 0x5e, 0x20)
                                                };
                                                ui.label(RichText::new(&h.date).size(17.0 * s).color(Color32::BLACK));
                                                ui.label(
                                                    RichText::new(&h.store).size(17.0 * s).color(Color32::DARK_GRAY),
                                                );
                                                ui.label(RichText::new(&h.points).size(17.0 * s).strong().color(c));
                                                ui.label(RichText::new(&h.what).size(17.0 * s).color(Color32::BLACK));
                                                ui.end_row();
                                            }
                                        });
                                    self.rects.log(ui.ctx(), "popup.history_table", g.response.rect);
                                }
                            }
                        }
                        let offer = self
                            .offer
                            .as_ref()
                            .filter(|o| view.card_id.as_ref() == Some(&o.card))
                            .is_some();
                        if offer {
                            let b = ui.button(
                                RichText::new(super::i18n::rdm(self.lang, super::i18n::Rdm::Button))
                                    .size(22.0 * s)
                                    .strong(),
                            );
                            self.rects.log(ui.ctx(), "popup.redeem", b.rect);
                            redeem_clicked = b.clicked();
                        }
                        if !view.actions.is_empty() {
                            ui.horizontal(|ui| {
                                for a in &view.actions {
                                    let b = ui.button(RichText::new(&a.label).size(20.0 * s));
                                    self.rects.log(
                                        ui.ctx(),
                                        match a.id {
                                            ActionId::Register => "popup.register",
                                            ActionId::MigrationCode => "popup.migration_code",
                                        },
                                        b.rect,
                                    );
                                    if b.clicked() {
                                        action = Some(a.id);
                                    }
                                }
                            });
                        }
                    })
                    .response
                    .rect
                    .size()
                });
            // Content width; content height up to the screen's (the window then scrolls).
            egui::vec2(out.inner.x, out.content_size.y.min(max_h))
        });
        // Fit the window to the content and place it (bottom-right near the tray by default).
        // Content + inner margins + stroke; at least the configured width (× font_scale).
        let wanted = egui::vec2(
            (resp.inner.x + pad).max(width).min(max_w).ceil(),
            (resp.inner.y + pad).ceil(),
        );
        synclog_window::check_fit(
            ui,
            "popup",
            egui::Rect::from_min_size(ui.ctx().content_rect().min, resp.inner + egui::vec2(pad, pad)),
        );
        if self.fitted != Some((wanted, monitor)) {
            self.fitted = Some((wanted, monitor));
            self.last_size = wanted;
            tracing::debug!(target: "till_agent::ui", w = wanted.x, h = wanted.y, ppp = ui.ctx().pixels_per_point(), monitor_w = monitor.x, monitor_h = monitor.y, "popup fitted (points)");
            let (x, y) = self.cfg.place((monitor.x, monitor.y), (wanted.x, wanted.y));
            ui.ctx().send_viewport_cmd(ViewportCommand::InnerSize(wanted));
            ui.ctx()
                .send_viewport_cmd(ViewportCommand::OuterPosition(egui::pos2(x, y)));
        }
        if history_clicked {
            self.toggle_history();
            ui.ctx().request_repaint();
        } else if tag_clicked {
            self.open_tag(view.card_id.clone());
            self.hide();
            ui.ctx().request_repaint();
        } else if redeem_clicked {
            self.open_redeem();
            ui.ctx().request_repaint();
        } else if let Some(a) = action {
            match view.card_id.clone() {
                Some(card) => {
                    tracing::info!(target: "till_agent::ui", action = ?a, card = %card, "form opened from the popup");
                    self.remember_focus();
                    self.windows().enrol = Some(super::forms::EnrolForm::new(a, card));
                    // The next root pass registers the form's viewport.
                    ui.ctx().request_repaint();
                }
                None => tracing::warn!("popup action {a:?} without a card"),
            }
            self.hide();
        } else if ui.input(|i| i.key_pressed(egui::Key::Escape) || i.pointer.primary_clicked()) {
            self.hide();
        }
    }

    /// Register the open extra windows (called every root pass from `logic`).
    fn register_windows(&mut self, ctx: &egui::Context) {
        let lang = self.lang;
        self.give_focus_back();
        let (log_open, log_fetching, about, reader, quit, confirmed) = {
            let mut w = self.windows();
            (
                w.log.is_some(),
                w.log.as_ref().is_some_and(LogWindow::fetching),
                w.about,
                w.reader_test.is_some(),
                w.quit,
                std::mem::take(&mut w.quit_confirmed),
            )
        };
        if confirmed {
            tracing::info!("quit confirmed from the tray menu");
            (self.requests)(UiRequest::Quit);
            self.closing = true;
            return;
        }
        // A window's close button: forget it and let the root pass drop the viewport.
        fn closed(ui: &egui::Ui) -> bool {
            let c = ui.input(|i| i.viewport().close_requested());
            if c {
                ui.ctx().request_repaint_of(ViewportId::ROOT);
            }
            c
        }
        let enrol_title = self.windows().enrol.as_ref().map(|f| (f.title(lang), f.action));
        if let Some((title, action)) = enrol_title {
            let (win, requests) = (self.win.clone(), self.requests.clone());
            let size = match action {
                ActionId::Register => [560.0, 520.0],
                ActionId::MigrationCode => [520.0, 220.0],
            };
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("enrol"),
                ViewportBuilder::default()
                    .with_title(title)
                    .with_inner_size(size)
                    .with_active(true),
                move |ui, _| {
                    let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(form) = w.enrol.as_mut() else { return };
                    let mut close = false;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        close = super::forms::form_ui(ui, lang, form, &requests);
                        synclog_window::check_fit(ui, "form", ui.min_rect());
                    });
                    if closed(ui) || close {
                        w.enrol = None;
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
        let (find_open, tag_open) = {
            let mut w = self.windows();
            if std::mem::take(&mut w.repaint_find) | std::mem::take(&mut w.repaint_tag) {
                w.news_until = Some(Instant::now() + Duration::from_millis(600));
            }
            if let Some(until) = w.news_until {
                if Instant::now() < until {
                    ctx.request_repaint_of(ViewportId::from_hash_of("find"));
                    ctx.request_repaint_of(ViewportId::from_hash_of("tag"));
                    ctx.request_repaint_after(Duration::from_millis(60));
                } else {
                    w.news_until = None;
                }
            }
            (w.find.is_some(), w.tag.is_some())
        };
        if find_open {
            let (win, requests) = (self.win.clone(), self.requests.clone());
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("find"),
                ViewportBuilder::default()
                    .with_title(super::find_i18n::fx(lang, super::find_i18n::Fx::FindTitle))
                    .with_position(centred(ctx.input(|i| i.viewport().monitor_size), FIND_SIZE))
                    .with_inner_size(FIND_SIZE)
                    .with_active(true),
                move |ui, _| {
                    let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(f) = w.find.as_mut() else { return };
                    let mut close = false;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        close = super::find_window::find_ui(ui, lang, f, &requests);
                        synclog_window::check_fit(ui, "find", ui.min_rect());
                    });
                    if closed(ui) || close {
                        w.find = None;
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
        if tag_open {
            let (win, requests) = (self.win.clone(), self.requests.clone());
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("tag"),
                ViewportBuilder::default()
                    .with_title(super::find_i18n::fx(lang, super::find_i18n::Fx::TagTitle))
                    .with_position(centred(ctx.input(|i| i.viewport().monitor_size), TAG_SIZE))
                    .with_inner_size(TAG_SIZE)
                    .with_active(true),
                move |ui, _| {
                    let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(f) = w.tag.as_mut() else { return };
                    let mut close = false;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        close = super::find_window::tag_ui(ui, lang, f, &requests);
                        synclog_window::check_fit(ui, "tag", ui.min_rect());
                    });
                    if closed(ui) || close {
                        w.tag = None;
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
        let redeem_title = self.windows().redeem.as_ref().map(|r| r.title(lang));
        if let Some(title) = redeem_title {
            let (win, requests) = (self.win.clone(), self.requests.clone());
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("redeem"),
                ViewportBuilder::default()
                    .with_title(title)
                    .with_inner_size([460.0, 220.0])
                    .with_active(true),
                move |ui, _| {
                    let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(rw) = w.redeem.as_mut() else { return };
                    let mut close = false;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        close = super::redeem_window::confirm_ui(ui, lang, rw, &requests);
                        synclog_window::check_fit(ui, "redeem", ui.min_rect());
                    });
                    if closed(ui) || close {
                        let sent = rw.sent.take();
                        if sent.is_some() {
                            w.redeem_sent = sent;
                        }
                        w.redeem = None;
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
        if log_fetching {
            // The window polls its background fetch from the service (`LogWindow::poll`).
            ctx.request_repaint_of(ViewportId::from_hash_of("sync_log"));
        }
        if log_open {
            let (win, db, dir) = (self.win.clone(), self.sync_log.clone(), self.log_dir.clone());
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("sync_log"),
                ViewportBuilder::default()
                    .with_title(t(lang, Key::SyncLogTitle))
                    .with_position(SYNC_LOG_POS)
                    .with_inner_size(SYNC_LOG_SIZE),
                move |ui, _| {
                    let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(log) = w.log.as_mut() else { return };
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        synclog_window::sync_log_ui(ui, lang, log, db.as_ref(), dir.as_deref(), open_path)
                    });
                    if closed(ui) {
                        w.log = None;
                    }
                },
            );
        }
        if about {
            let (win, info) = (self.win.clone(), self.about.clone());
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("about"),
                ViewportBuilder::default()
                    .with_title(t(lang, Key::MenuAbout))
                    .with_position(about_pos(ctx.input(|i| i.viewport().monitor_size)))
                    .with_inner_size(ABOUT_SIZE),
                move |ui, _| {
                    let mut close = false;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        ui.heading(format!("till-agent {}", info.version));
                        egui::Grid::new("about").show(ui, |ui| {
                            for (k, v) in [
                                (Key::Version, &info.version),
                                (Key::Store, &info.store_id),
                                (Key::Till, &info.till_id),
                                (Key::Server, &info.server_url),
                            ] {
                                ui.label(t(lang, k));
                                ui.label(v);
                                ui.end_row();
                            }
                        });
                        close = ui.button(t(lang, Key::Close)).clicked();
                        synclog_window::check_fit(ui, "about", ui.min_rect());
                    });
                    if closed(ui) || close {
                        win.lock().unwrap_or_else(|e| e.into_inner()).about = false;
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
        if reader {
            let (win, requests) = (self.win.clone(), self.requests.clone());
            // A deferred viewport repaints on its own input only: new lines ask for it.
            if std::mem::take(&mut self.windows().reader_test_new) {
                ctx.request_repaint_of(ViewportId::from_hash_of("reader_test"));
            }
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("reader_test"),
                ViewportBuilder::default()
                    .with_title(t(lang, Key::MenuReaderTest))
                    .with_inner_size([760.0, 480.0]),
                move |ui, _| {
                    let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                    let mut close = false;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        ui.label(RichText::new(t(lang, Key::MenuReaderTest)).size(20.0));
                        close = ui.button(t(lang, Key::Close)).clicked();
                        // Same lines as `till-agent reader-test` (input::diag::line), newest at the bottom.
                        let out = egui::ScrollArea::vertical()
                            .stick_to_bottom(true)
                            .auto_shrink([false, false])
                            .show(ui, |ui| {
                                for l in w.reader_test.iter().flatten() {
                                    ui.monospace(l);
                                }
                            });
                        let used = ui.min_rect().union(egui::Rect::from_min_size(
                            out.inner_rect.min,
                            egui::vec2(out.content_size.x, out.inner_rect.height()),
                        ));
                        synclog_window::check_fit(ui, "reader_test", used);
                    });
                    if closed(ui) || close {
                        w.reader_test = None;
                        requests(UiRequest::ReaderTest(false));
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
        if quit {
            let win = self.win.clone();
            ctx.show_viewport_deferred(
                ViewportId::from_hash_of("quit"),
                ViewportBuilder::default()
                    .with_title(t(lang, Key::MenuQuit))
                    .with_inner_size([440.0, 130.0]),
                move |ui, _| {
                    let mut answer = None;
                    egui::CentralPanel::default().show_inside(ui, |ui| {
                        ui.label(RichText::new(t(lang, Key::QuitConfirm)).size(18.0));
                        ui.horizontal(|ui| {
                            if ui.button(t(lang, Key::Yes)).clicked() {
                                answer = Some(true);
                            }
                            if ui.button(t(lang, Key::No)).clicked() {
                                answer = Some(false);
                            }
                        });
                        synclog_window::check_fit(ui, "quit", ui.min_rect());
                    });
                    if closed(ui) {
                        answer = Some(false);
                    }
                    if let Some(yes) = answer {
                        let mut w = win.lock().unwrap_or_else(|e| e.into_inner());
                        w.quit = false;
                        w.quit_confirmed = yes;
                        ui.ctx().request_repaint_of(ViewportId::ROOT);
                    }
                },
            );
        }
    }
}

impl HostApp for App {
    fn logic(&mut self, ctx: &egui::Context, root: &winit::window::Window) {
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m);
        }
        if let (Some(at), n) = (self.shown_at, self.cfg.hide_after_secs) {
            if n > 0 {
                let deadline = at + Duration::from_secs(n);
                let now = Instant::now();
                if now >= deadline {
                    self.hide();
                } else {
                    ctx.request_repaint_after(deadline - now);
                }
            }
        }
        if let Some(v) = self.pending_visible.take() {
            if v {
                // Put the window where it belongs *before* mapping it: a window mapped off-screen
                // (the initial -10000,-10000) never gets an X VisibilityNotify, so winit would keep
                // it "not visible", and the first frame would be fitted and placed off-screen.
                if let Some(monitor) = ctx.input(|i| i.viewport().monitor_size) {
                    let (x, y) = self
                        .cfg
                        .place((monitor.x, monitor.y), (self.last_size.x, self.last_size.y));
                    ctx.send_viewport_cmd(ViewportCommand::OuterPosition(egui::pos2(x, y)));
                }
                // One more pass once it is mapped (fit to content + exact placement).
                ctx.request_repaint_after(Duration::from_millis(50));
            }
            self.platform.set_visible(ctx, root, v);
        }
        self.register_windows(ctx);
        if std::mem::take(&mut self.closing) {
            self.tray = None;
            ctx.send_viewport_cmd_to(ViewportId::ROOT, ViewportCommand::Close);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui) {
        self.popup_ui(ui);
    }
}

/// Where the sync log and About open: side by side when the screen is wide enough, else About
/// below the log — never on top of each other (a till often has no window manager to move them).
const SYNC_LOG_POS: [f32; 2] = [16.0, 16.0];
const SYNC_LOG_SIZE: [f32; 2] = [900.0, 520.0];
const ABOUT_SIZE: [f32; 2] = [440.0, 200.0];

/// The search box and the tag form open in the middle of the screen (over the POS's own dialogs).
const FIND_SIZE: [f32; 2] = [520.0, 200.0];
const TAG_SIZE: [f32; 2] = [560.0, 320.0];

fn centred(monitor: Option<egui::Vec2>, size: [f32; 2]) -> egui::Pos2 {
    let m = monitor.unwrap_or(egui::vec2(1024.0, 768.0));
    egui::pos2(((m.x - size[0]) / 2.0).max(0.0), ((m.y - size[1]) / 3.0).max(0.0))
}

fn about_pos(monitor: Option<egui::Vec2>) -> egui::Pos2 {
    let m = monitor.unwrap_or(egui::vec2(1024.0, 768.0));
    let right = SYNC_LOG_POS[0] + SYNC_LOG_SIZE[0] + 40.0;
    if right + ABOUT_SIZE[0] <= m.x {
        egui::pos2(right, SYNC_LOG_POS[1])
    } else {
        egui::pos2(
            SYNC_LOG_POS[0],
            (SYNC_LOG_POS[1] + SYNC_LOG_SIZE[1] + 48.0).min((m.y - ABOUT_SIZE[1] - 40.0).max(0.0)),
        )
    }
}

/// One reader-test line: into the window (the last 2000 kept) and the log (`till_agent::reader_test`).
fn reader_test_line(lang: Lang, lines: &mut Vec<String>, d: &crate::input::diag::ReaderDiag) {
    // The log keeps the English line (as the CLI prints it); the window shows the screen's language.
    tracing::info!(target: "till_agent::reader_test", "{}", crate::input::diag::line(d));
    if lines.len() >= 2000 {
        lines.drain(..500);
    }
    lines.push(super::reasons::reader_line(lang, d));
}

/// Open a file or folder with the desktop's handler.
fn open_path(p: &std::path::Path) {
    let r = crate::os::open_with_desktop(p);
    if let Err(e) = r {
        tracing::warn!("cannot open {}: {e}", p.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_covers_cs_sk_hr_and_popup_symbols() {
        let ctx = egui::Context::default();
        install_fonts(&ctx);
        let _ = ctx.run_ui(egui::RawInput::default(), |_| {});
        let text = "ěščřžýáíéůúťďňĚŠČŘŽÝÁÍÉŮÚŤĎŇ ľĺŕôäĽĹŔÔÄ ćčđšžĆČĐŠŽ –…€Kč\u{a0}%";
        for c in text.chars() {
            assert!(
                ctx.fonts_mut(|f| f.has_glyph(&egui::FontId::proportional(24.0), c)),
                "no glyph for {c:?}"
            );
        }
    }
}
