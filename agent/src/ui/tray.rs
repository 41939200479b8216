//! The tray icon: a state dot drawn in code, a tooltip with queue depth and last sync, and the
//! menu. How it is shown (Linux: a StatusNotifierItem on the session D-Bus; Windows: tray-icon)
//! is `ui::platform::TrayHost`. Menu clicks go to `on_menu` (the GUI's channel + a repaint
//! request, i.e. the winit event-loop proxy).

use super::human::{self, Backlog};
use super::i18n::{t, Key, Lang};
use super::platform::{MenuEntry, TrayHost, TrayLook};
use crate::events::SyncStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrayState {
    Synced,
    Queued,
    Unreachable,
    Error,
}

impl TrayState {
    pub fn from_status(s: &SyncStatus) -> TrayState {
        let contacted = s.last_error.is_some() || s.last_success.is_some();
        if s.dead_letters > 0
            || (s.server_reachable && s.last_error.is_some())
            || !s.reader_problems.is_empty()
            || !s.task_problems.is_empty()
            || s.service_problem.is_some()
        {
            TrayState::Error
        } else if !s.server_reachable && contacted {
            TrayState::Unreachable
        } else if s.queue_depth > 0 {
            TrayState::Queued
        } else {
            TrayState::Synced
        }
    }

    fn colour(self) -> [u8; 3] {
        match self {
            TrayState::Synced => [0x2e, 0x9d, 0x4a],
            TrayState::Queued => [0xf0, 0xa2, 0x02],
            TrayState::Unreachable => [0x80, 0x80, 0x80],
            TrayState::Error => [0xd3, 0x2f, 0x2f],
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match self {
            TrayState::Synced => t(lang, Key::StateSynced),
            TrayState::Queued => t(lang, Key::StateQueued),
            TrayState::Unreachable => t(lang, Key::StateUnreachable),
            TrayState::Error => t(lang, Key::StateError),
        }
    }
}

pub const ICON_SIZE: u32 = 32;

/// A filled disc in the state's colour with a white ring; Unreachable gets a diagonal bar and
/// Error a white exclamation bar, so the state reads without colour vision too.
pub fn icon_rgba(state: TrayState) -> Vec<u8> {
    let n = ICON_SIZE as i32;
    let c = (n as f32 - 1.0) / 2.0;
    let [r, g, b] = state.colour();
    let mut px = vec![0u8; (n * n * 4) as usize];
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = (x as f32 - c, y as f32 - c);
            let d = (dx * dx + dy * dy).sqrt();
            let i = ((y * n + x) * 4) as usize;
            let mut rgba = if d <= c - 3.0 {
                [r, g, b, 255]
            } else if d <= c {
                [255, 255, 255, 255]
            } else {
                [0, 0, 0, 0]
            };
            if d <= c - 3.0 {
                let mark = match state {
                    TrayState::Unreachable => (dx - dy).abs() < 2.5,
                    TrayState::Error => dx.abs() < 2.5 && (dy < 4.0 && dy > -10.0 || dy > 6.5 && dy < 10.5),
                    TrayState::Queued => dy.abs() < 2.0 && dx.abs() < 9.0,
                    TrayState::Synced => false,
                };
                if mark {
                    rgba = [255, 255, 255, 255];
                }
            }
            px[i..i + 4].copy_from_slice(&rgba);
        }
    }
    px
}

/// Windows keeps at most 127 UTF-16 units of a tray tooltip (`szTip[128]` with its NUL).
pub const TOOLTIP_MAX_UTF16: usize = 127;

/// `till-agent – <state>`, the backlog (queue, drain rate, time left), the problem in the
/// screen's language (the English detail is in the sync log), the last sync in local time —
/// shortened to fit [`TOOLTIP_MAX_UTF16`]: the last sync's date goes first, then the line.
pub fn tooltip(lang: Lang, s: &SyncStatus, backlog: &Backlog) -> String {
    let state = TrayState::from_status(s);
    let mut lines = vec![format!("till-agent – {}", state.label(lang)), backlog.text(lang)];
    if s.service_problem.is_some() {
        // The session app's own view: the service's figures are stale or absent.
        lines = vec![
            format!("till-agent – {}", state.label(lang)),
            t(lang, Key::ServiceUnreachable).to_string(),
        ];
    }
    if !s.reader_problems.is_empty() {
        lines.push(super::reasons::reader_problem(lang));
    }
    if let Some(e) = &s.last_error {
        lines.push(super::reasons::sync_error(lang, e));
    }
    // A restarted background task, by name (the detail is in `till-agent log`).
    lines.extend(
        s.task_problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or(p).to_string() + " ↻"),
    );
    let last = |short: bool| {
        let when = match &s.last_success {
            Some(t) if short => t.with_timezone(&chrono::Local).format("%H:%M").to_string(),
            Some(t) => human::local(lang, t),
            None => t(lang, Key::Never).into(),
        };
        format!("{}: {when}", t(lang, Key::LastSync))
    };
    let fits = |v: &[String]| v.join("\n").encode_utf16().count() <= TOOLTIP_MAX_UTF16;
    for candidate in [Some(last(false)), Some(last(true)), None] {
        let mut v = lines.clone();
        v.extend(candidate);
        if fits(&v) {
            return v.join("\n");
        }
    }
    let mut tip = String::new();
    for c in lines.join("\n").chars() {
        if (tip.clone() + &c.to_string() + "…").encode_utf16().count() > TOOLTIP_MAX_UTF16 {
            tip.push('…');
            break;
        }
        tip.push(c);
    }
    tip
}

/// The tray menu's entries. `register` / `migration_code` are the keyboard path to the unknown-card
/// popup's buttons (the popup never takes the focus from the POS; the notification area is
/// reachable by keyboard: Win+B, arrows, Enter / the menu key); `redeem_last` likewise opens the
/// Redeem confirm window for the last customer popup, `void_last` voids this session's last redemption.
/// `find_customer` opens the search box (also the global hotkey), `tag_purchase` the "Add purchase
/// to card" form, `history` expands the last popup's history.
pub const MENU_IDS: [&str; 14] = [
    "show_last",
    "history",
    "find_customer",
    "tag_purchase",
    "register",
    "migration_code",
    "redeem_last",
    "void_last",
    "sync_log",
    "sync_now",
    "reader_test",
    "settings",
    "about",
    "quit",
];

/// The menu in `lang`: [`MENU_IDS`] with their labels; separators above "sync log", "sync now"
/// and "quit".
pub fn menu(lang: Lang) -> Vec<MenuEntry> {
    use super::find_i18n::{fx, Fx};
    use super::i18n::{rdm, Rdm};
    let labels = [
        t(lang, Key::MenuShowLast),
        fx(lang, Fx::History),
        fx(lang, Fx::MenuFind),
        fx(lang, Fx::MenuTag),
        t(lang, Key::MenuRegisterLast),
        t(lang, Key::MenuCodeLast),
        rdm(lang, Rdm::Button),
        rdm(lang, Rdm::MenuVoidLast),
        t(lang, Key::MenuSyncLog),
        t(lang, Key::MenuSyncNow),
        t(lang, Key::MenuReaderTest),
        t(lang, Key::MenuSettings),
        t(lang, Key::MenuAbout),
        t(lang, Key::MenuQuit),
    ];
    MENU_IDS
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (id, label))| MenuEntry {
            id,
            label: label.to_string(),
            separator_before: i == 8 || i == 9 || i == 13,
        })
        .collect()
}

fn look(state: TrayState, tooltip: String) -> TrayLook {
    TrayLook {
        rgba: icon_rgba(state),
        size: ICON_SIZE,
        tooltip,
    }
}

/// Handle to the running tray icon.
pub struct Tray {
    host: TrayHost,
    last: Option<(TrayState, String)>,
}

impl Tray {
    /// Create the icon and menu; menu clicks call `on_menu(id)` (one of [`MENU_IDS`]).
    pub fn start(lang: Lang, on_menu: impl Fn(String) + Send + Sync + 'static) -> anyhow::Result<Tray> {
        let s = SyncStatus::default();
        let tip = tooltip(
            lang,
            &s,
            &Backlog::from_rate(s.queue_depth, 0, std::time::Duration::ZERO),
        );
        let state = TrayState::from_status(&s);
        Ok(Tray {
            host: TrayHost::start(menu(lang), look(state, tip.clone()), std::sync::Arc::new(on_menu))?,
            last: Some((state, tip)),
        })
    }

    /// Show a new sync status (no-op when nothing visible changed).
    pub fn update(&mut self, lang: Lang, s: &SyncStatus, backlog: &Backlog) {
        let state = TrayState::from_status(s);
        let tip = tooltip(lang, s, backlog);
        if self.last.as_ref() == Some(&(state, tip.clone())) {
            return;
        }
        self.last = Some((state, tip.clone()));
        self.host.set(look(state, tip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_status() {
        let ok = SyncStatus {
            server_reachable: true,
            ..Default::default()
        };
        assert_eq!(TrayState::from_status(&ok), TrayState::Synced);
        assert_eq!(
            TrayState::from_status(&SyncStatus {
                queue_depth: 3,
                ..ok.clone()
            }),
            TrayState::Queued
        );
        let down = SyncStatus {
            queue_depth: 3,
            server_reachable: false,
            last_error: Some("connection refused".into()),
            ..ok.clone()
        };
        assert_eq!(TrayState::from_status(&down), TrayState::Unreachable);
        // Before the first contact nothing is known: queued, not "unreachable".
        assert_eq!(
            TrayState::from_status(&SyncStatus {
                queue_depth: 3,
                ..Default::default()
            }),
            TrayState::Queued
        );
        assert_eq!(
            TrayState::from_status(&SyncStatus {
                dead_letters: 1,
                ..ok.clone()
            }),
            TrayState::Error
        );
        assert_eq!(
            TrayState::from_status(&SyncStatus {
                last_error: Some("401".into()),
                ..ok
            }),
            TrayState::Error
        );
    }

    #[test]
    fn icons_differ_per_state_and_are_opaque_in_the_middle() {
        let all = [
            TrayState::Synced,
            TrayState::Queued,
            TrayState::Unreachable,
            TrayState::Error,
        ];
        let icons: Vec<_> = all.iter().map(|s| icon_rgba(*s)).collect();
        for (i, a) in icons.iter().enumerate() {
            assert_eq!(a.len(), (ICON_SIZE * ICON_SIZE * 4) as usize);
            assert_eq!(a[3], 0, "corner transparent");
            for b in &icons[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn an_unreachable_service_is_red_and_named_in_the_tooltip() {
        let s = SyncStatus {
            queue_depth: 0,
            service_problem: Some("cannot connect to the till-agent service".into()),
            ..Default::default()
        };
        assert_eq!(TrayState::from_status(&s), TrayState::Error);
        let tip = tooltip(Lang::Cs, &s, &Backlog::from_rate(0, 0, std::time::Duration::ZERO));
        assert!(tip.contains("Služba Till Agent neběží"), "{tip}");
        assert!(
            tooltip(Lang::En, &s, &Backlog::from_rate(0, 0, std::time::Duration::ZERO)).contains("service not running")
        );
    }

    #[test]
    fn tooltip_has_queue_and_last_sync() {
        let s = SyncStatus {
            queue_depth: 12,
            server_reachable: true,
            last_success: Some(chrono::DateTime::parse_from_rfc3339("2026-11-23T10:05:00+01:00").unwrap()),
            ..Default::default()
        };
        let b = Backlog::from_rate(12, 0, std::time::Duration::ZERO);
        let local = human::local(Lang::Cs, s.last_success.as_ref().unwrap());
        assert_eq!(
            tooltip(Lang::Cs, &s, &b),
            format!("till-agent – Čeká na odeslání\nVe frontě: 12\u{a0}položek\nPoslední synchronizace: {local}")
        );
        let none = Backlog::from_rate(0, 0, std::time::Duration::ZERO);
        assert!(tooltip(Lang::En, &SyncStatus::default(), &none).contains("Last sync: never"));
    }

    /// The worst case — a backlog draining after an outage, an error and a broken reader, in
    /// every language — still fits Windows' tooltip, keeping state, backlog and problems.
    #[test]
    fn tooltip_fits_windows_128_chars_in_every_language() {
        let s = SyncStatus {
            queue_depth: 123_456,
            dead_letters: 3,
            server_reachable: false,
            last_success: Some(chrono::DateTime::parse_from_rfc3339("2026-11-23T10:05:00+01:00").unwrap()),
            last_error: Some(
                "server unreachable: error sending request for url (http://10.0.0.1/v1/receipts/batch)".into(),
            ),
            reader_problems: vec!["serial reader on COM3 disconnected: device removed".into()],
            ..Default::default()
        };
        let b = Backlog::from_rate(123_456, 4_321, std::time::Duration::from_secs(300));
        for lang in Lang::ALL {
            let tip = tooltip(lang, &s, &b);
            assert!(
                tip.encode_utf16().count() <= TOOLTIP_MAX_UTF16,
                "{lang:?} {} units: {tip}",
                tip.encode_utf16().count()
            );
            assert!(tip.contains(&b.text(lang)), "{lang:?}: {tip}");
            assert!(
                tip.contains(&crate::ui::reasons::sync_error(lang, s.last_error.as_ref().unwrap())),
                "{tip}"
            );
            assert!(!tip.contains("http"), "English detail leaked: {tip}");
        }
    }

    #[test]
    fn a_card_reader_that_does_not_work_is_an_error_at_a_glance() {
        let s = SyncStatus {
            server_reachable: true,
            reader_problems: vec!["serial reader on COM3 disconnected: device removed".into()],
            ..Default::default()
        };
        assert_eq!(TrayState::from_status(&s), TrayState::Error);
        let b = Backlog::from_rate(0, 0, std::time::Duration::ZERO);
        let tip = tooltip(Lang::Cs, &s, &b);
        assert!(tip.contains("\nČtečka karet nefunguje\n"), "{tip}");
        assert_eq!(
            TrayState::from_status(&SyncStatus {
                reader_problems: vec![],
                ..s
            }),
            TrayState::Synced
        );
    }
}
