//! `till-agent popup-demo`: show the real popup (GUI, or headless JSON without a display) for a
//! quote file, exactly as a scan would. The test hook for the Xvfb tests and for trying
//! languages/positions on a till:
//!
//! `till-agent popup-demo --quote q.json --lang cs` where `q.json` is a `protocol::v1::Quote`
//! (the body `GET /v1/cards/{card}/quote` answers), or `--payment-last4 1234`.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use protocol::v1::{Quote, QuoteResult};

use super::config::PopupConfig;
use super::{AboutInfo, GuiContext, GuiExit, Lang};
use crate::events::{AgentEvent, Classified, QuoteEvent, ScanEvent};

#[derive(clap::Args, Debug, Clone)]
pub struct PopupDemoArgs {
    /// A quote as the server sends it (protocol::v1::Quote JSON).
    #[arg(long, conflicts_with = "payment_last4")]
    pub quote: Option<PathBuf>,
    /// Show the "payment card swiped" warning for a card ending in these digits.
    #[arg(long)]
    pub payment_last4: Option<String>,
    /// cs, sk, hr, en (default: from the OS).
    #[arg(long)]
    pub lang: Option<String>,
    /// Seconds until the popup hides (0 = never).
    #[arg(long, default_value_t = 0)]
    pub hide_after: u64,
    /// A `[popup]` TOML file (position, font_scale, width…) instead of the defaults.
    #[arg(long)]
    pub popup_config: Option<PathBuf>,
    /// Do not create the tray icon.
    #[arg(long)]
    pub no_tray: bool,
    /// Print the JSON line and exit, without a window.
    #[arg(long)]
    pub headless: bool,
    /// Instead of a popup: ask the running GUI to run a tray-menu entry (show_last, register,
    /// migration_code, sync_log,
    /// sync_now, reader_test, settings, about, quit) — the same path as a click in the tray.
    #[arg(long, conflicts_with_all = ["quote", "payment_last4", "headless"])]
    pub menu: Option<String>,
}

pub fn event(args: &PopupDemoArgs) -> anyhow::Result<AgentEvent> {
    let at = chrono::Local::now().fixed_offset();
    if let Some(path) = &args.quote {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let quote: Quote = serde_json::from_str(&text).with_context(|| format!("{}: not a quote", path.display()))?;
        let card = match &quote.result {
            QuoteResult::Customer { card, .. }
            | QuoteResult::UnknownCard { card }
            | QuoteResult::Blocked { card, .. }
            | QuoteResult::Replaced { card, .. } => card.clone(),
        };
        let scan = ScanEvent {
            at,
            source: "popup-demo".into(),
            classified: Classified::LoyaltyCard { card },
        };
        return Ok(AgentEvent::Quote(QuoteEvent {
            scan,
            quote,
            provisional: false,
        }));
    }
    if let Some(l4) = &args.payment_last4 {
        let digits: String = l4.chars().filter(char::is_ascii_digit).collect();
        let last4 = digits[digits.len().saturating_sub(4)..].to_string();
        return Ok(AgentEvent::Scan(ScanEvent {
            at,
            source: "popup-demo".into(),
            classified: Classified::PaymentCard { last4 },
        }));
    }
    anyhow::bail!("popup-demo needs --quote FILE or --payment-last4 DIGITS")
}

pub fn run(args: PopupDemoArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(id) = &args.menu {
        #[cfg(feature = "gui")]
        {
            anyhow::ensure!(
                super::tray::MENU_IDS.contains(&id.as_str()),
                "unknown menu entry {id:?}; one of {:?}",
                super::tray::MENU_IDS
            );
            anyhow::ensure!(
                super::instance::signal(&format!("menu {id}"))?,
                "no till-agent GUI runs in this session"
            );
            return Ok(std::process::ExitCode::SUCCESS);
        }
        #[cfg(not(feature = "gui"))]
        anyhow::bail!("--menu {id}: built without the `gui` feature");
    }
    let lang = Lang::resolve(args.lang.as_deref()).map_err(anyhow::Error::msg)?;
    let mut popup: PopupConfig = match &args.popup_config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}: bad [popup] settings", p.display()))?
        }
        None => PopupConfig::default(),
    };
    popup.hide_after_secs = args.hide_after;
    popup.validate().map_err(anyhow::Error::msg)?;
    let ev = event(&args)?;
    if args.headless {
        if let Some(v) = super::PopupView::from_event(&ev, lang) {
            println!("{}", v.to_json_line());
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    // The demo keeps no sender: without a display the headless fallback prints and ends.
    let ctx = GuiContext {
        lang,
        popup,
        about: AboutInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            store_id: "DEMO".into(),
            till_id: "T0".into(),
            server_url: "-".into(),
        },
        config_path: None,
        log_dir: None,
        sync_log: None,
        bus: crate::events::bus(),
        status: None,
        requests: Arc::new(|r| tracing::info!("popup-demo: UI request {r:?}")),
        tray: !args.no_tray,
        escape_from_wedge: false,
        initial: vec![ev],
    };
    let exit = super::run_gui(ctx)?;
    if exit == GuiExit::SignalledOther {
        eprintln!("till-agent: a GUI already runs in this session; it was asked to show its last popup");
    }
    Ok(std::process::ExitCode::SUCCESS)
}
