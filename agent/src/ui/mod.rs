//! Tray icon, cashier popup, sync-log window, and the headless popup output. (issue 6)
//!
//! - `viewmodel` / `i18n` / `plural` / `reasons` / `config`: what the popup says, in cs/sk/hr/en
//!   (no GUI deps); `human`: local times, durations and backlog progress for people.
//! - `headless`: each popup as one JSON line on stdout (+ tracing), for `run --headless` and tests.
//! - `gui` (feature `gui`): winit loop on the main thread (ui::host: egui drawn on the CPU, no GL) — popup, sync log, About,
//!   Reader test, Quit confirmation; `tray` (tray-icon); `platform` (X11 / Win32 focus rules);
//!   `instance` (one GUI per session).
//! - `demo`: `till-agent popup-demo` test hook (a real popup from a quote file).
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::events::{AgentEvent, Bus, SyncStatus};

pub mod config;
pub mod demo;
pub mod find_i18n;
pub mod headless;
pub mod hotkey;
pub mod human;
pub mod i18n;
pub mod plural;
pub mod reasons;
pub mod redeem_view;
pub mod say;
pub mod synclog_view;
pub mod viewmodel;

#[cfg(feature = "gui")]
mod find_window;
#[cfg(feature = "gui")]
mod forms;
#[cfg(feature = "gui")]
mod gui;
#[cfg(feature = "gui")]
mod host;
#[cfg(feature = "gui")]
pub mod instance;
#[cfg(feature = "gui")]
pub mod platform;
#[cfg(feature = "gui")]
mod redeem_window;
#[cfg(feature = "gui")]
mod synclog_window;
#[cfg(feature = "gui")]
pub mod tray;

pub use i18n::Lang;
pub use viewmodel::{ActionId, PopupView};

/// What the "Add purchase to card" form sends: the fields as typed (checked by the background
/// with `tag::TagForm::validate`, which knows the program's card policy and the store's day).
#[derive(Clone, Debug, PartialEq)]
pub struct TagInput {
    pub request_id: String,
    pub form: crate::tag::TagForm,
}

/// What `About` shows.
#[derive(Clone, Debug, Default)]
pub struct AboutInfo {
    pub version: String,
    pub store_id: String,
    pub till_id: String,
    pub server_url: String,
}

/// Requests from the UI to the background (the caller maps them onto its command channel,
/// e.g. `UiRequest::SyncNow` → `Command::SyncNow`).
#[derive(Clone, Debug, PartialEq)]
pub enum UiRequest {
    SyncNow,
    /// The Reader-test window opened (`true`) / closed (`false`).
    ReaderTest(bool),
    /// The register / migration-code form was submitted for the card on screen: queue it
    /// (`runtime::Command::Enrol`); the form waits for `AgentEvent::Enrol` with its request id.
    Enrol(Box<crate::enrol::Request>),
    /// The cashier confirmed a redemption in the confirm window (`runtime::Command::Redeem`); the
    /// window waits for `AgentEvent::Redeem` with its request id.
    Redeem(Box<protocol::v1::RedeemRequest>),
    /// Tray "Void last redemption": the redemption id (`runtime::Command::Void`).
    Void(String),
    /// The search box: find the customer by card number, phone or e-mail (`runtime::Command::Find`);
    /// the box waits for `AgentEvent::Lookup` with its request id, the popup shows the quote.
    Find {
        request_id: String,
        query: String,
    },
    /// The "Add purchase to card" form: queue a receipt tag (`runtime::Command::Tag`); the form
    /// waits for `AgentEvent::Tag` with its request id.
    Tag(Box<TagInput>),
    /// The cashier confirmed Quit; `run_gui` returns right after.
    Quit,
}

/// Everything the GUI needs from the agent (built by the runtime from `Config` + `Background`).
pub struct GuiContext {
    pub lang: Lang,
    pub popup: config::PopupConfig,
    pub about: AboutInfo,
    /// agent.toml, opened by "Open settings".
    pub config_path: Option<PathBuf>,
    /// The `logs/` folder, opened by "Open log folder".
    pub log_dir: Option<PathBuf>,
    /// Where the sync-log window gets its rows (outbox.db, or the service in a session app).
    pub sync_log: Option<synclog_view::SyncLogSource>,
    pub bus: Bus,
    pub status: Option<watch::Receiver<SyncStatus>>,
    pub requests: Arc<dyn Fn(UiRequest) + Send + Sync>,
    /// Create the tray icon.
    pub tray: bool,
    /// A keyboard-wedge reader runs and publishes `AgentEvent::Escape`: the GUI does not listen
    /// to raw keyboard events itself.
    pub escape_from_wedge: bool,
    /// Events to show as soon as the window exists (the `popup-demo` hook).
    pub initial: Vec<AgentEvent>,
}

/// A desktop notification ("balloon"; `platform::notify`); the error says why none was shown.
pub fn notify(title: &str, body: &str) -> Result<(), String> {
    #[cfg(feature = "gui")]
    {
        platform::notify::show(title, body)
    }
    #[cfg(not(feature = "gui"))]
    {
        let _ = (title, body);
        Err("built without the `gui` feature".into())
    }
}

/// How `run_gui` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum GuiExit {
    /// The window loop ran and was closed (Quit confirmed).
    Closed,
    /// Another instance runs in this session; it was asked to show its last popup.
    SignalledOther,
    /// No display (or a build without `gui`): ran headless until the bus closed / Ctrl-C.
    Headless(String),
}

/// Run the tray + popup GUI on the calling (main) thread until Quit. Without a display it logs
/// why and runs [`headless::run`] instead (until the bus closes or Ctrl-C).
///
/// A second start of the GUI agent must not even start a background (a second watcher on the
/// export folder, a second serial reader on the port): `run` asks [`activate_running_instance`]
/// first.
pub fn run_gui(ctx: GuiContext) -> anyhow::Result<GuiExit> {
    #[cfg(feature = "gui")]
    {
        // Subscribe before the window starts so nothing published meanwhile is lost headless.
        // (No clone of the bus is kept here: the headless fallback ends when the owner drops it.)
        let (lang, initial, early) = (ctx.lang, ctx.initial.clone(), ctx.bus.subscribe());
        match gui::run(ctx)? {
            gui::Outcome::Exit(e) => Ok(e),
            gui::Outcome::NoDisplay(why) => fallback(lang, early, initial, why),
        }
    }
    #[cfg(not(feature = "gui"))]
    {
        let rx = ctx.bus.subscribe();
        fallback(ctx.lang, rx, ctx.initial, "built without the `gui` feature".into())
    }
}

fn fallback(
    lang: Lang,
    rx: tokio::sync::broadcast::Receiver<AgentEvent>,
    initial: Vec<AgentEvent>,
    why: String,
) -> anyhow::Result<GuiExit> {
    tracing::warn!("no GUI ({why}); popups go to stdout as JSON lines (headless)");
    for ev in &initial {
        if let Some(v) = PopupView::from_event(ev, lang) {
            println!("{}", v.to_json_line());
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        tokio::select! {
            r = headless::run(rx, lang) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(GuiExit::Headless(why))
}

/// Is a GUI agent already running in this session? If so it has been asked to show its last
/// popup (what a second start does) and the caller should exit without starting anything.
pub fn activate_running_instance() -> anyhow::Result<bool> {
    #[cfg(feature = "gui")]
    {
        if platform::display_available().is_err() {
            return Ok(false);
        }
        instance::signal("show")
    }
    #[cfg(not(feature = "gui"))]
    Ok(false)
}
