//! Reader diagnostics: what support staff see while setting up a reader — per device, each key
//! as `digit` / `letter` / key name (never which digit: card numbers must not appear on screen)
//! with the gap since the previous key, and the detector's decision at each terminator (scan or
//! not, and why), for keyboard wedges and serial readers.
//!
//! One formatting for both views: `till-agent reader-test` (CLI, [`line`] per event) and the
//! GUI's Reader-test window, which gets the same [`ReaderDiag`]s over the bus
//! (`AgentEvent::Reader`). The runtime publishes them only while a reader test is active
//! (`runtime::Command::ReaderTest`), so an idle till pays one relaxed atomic load per key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::detect::Action;
use super::keys::Key;
use super::keys::KeyEvent;
use super::oskbd::DeviceInfo;
use super::serial::SerialEvent;
pub use crate::events::ReaderDiag;
use crate::events::{AgentEvent, Bus, Classified};

/// What the wedge loop saw (for `reader-test`).
#[derive(Debug)]
pub enum WedgeReport<'a> {
    Device {
        info: &'a DeviceInfo,
        added: bool,
        dedicated: bool,
    },
    Key {
        ev: &'a KeyEvent,
        gap_ms: Option<u64>,
        device: Option<&'a DeviceInfo>,
    },
    Action {
        action: &'a Action,
        device: Option<&'a DeviceInfo>,
    },
    /// Something support staff should know (the source lost keys and did something about it).
    Notice(&'a str),
}

/// A key as the reader test shows it: digits and letters only by class (a payment card's
/// number or holder name must not appear), everything else by name.
pub fn key_label(key: Key, shift: bool) -> String {
    match key.us_char(shift) {
        Some(c) if c.is_ascii_digit() => "digit".into(),
        Some(c) if c.is_ascii_alphabetic() => "letter".into(),
        Some(c) => format!("{} '{c}'", key.name()),
        None => key.name(),
    }
}

fn classified_text(c: &Classified) -> String {
    match c {
        // `CardId`'s Display is masked.
        Classified::LoyaltyCard { card } => format!("loyalty card {card}"),
        Classified::PaymentCard { last4 } => format!(
            "payment card …{} (not a loyalty card)",
            &last4[last4.len().saturating_sub(4)..]
        ),
        Classified::ReadError { detail } => format!("read error: {detail}"),
        Classified::Other { reason } => format!("not a card: {reason}"),
    }
}

/// The human line for one event (CLI output, GUI window, `till_agent::reader_test` log).
pub fn line(d: &ReaderDiag) -> String {
    let s = match d {
        ReaderDiag::Listening { source } => format!("{source}: listening"),
        ReaderDiag::Device {
            source,
            id,
            name,
            added,
            dedicated,
        } => format!(
            "{source} device {id} {name:?}{}{}",
            if *added { "" } else { " removed" },
            if *dedicated { " [dedicated scanner]" } else { "" }
        ),
        ReaderDiag::Key { source, key, gap_ms } => {
            format!(
                "  {source:<10} {key:<22} {}",
                gap_ms.map(|g| format!("+{g} ms")).unwrap_or_default()
            )
        }
        ReaderDiag::Scan {
            source,
            chars,
            span_ms,
            fast_run,
            how,
            classified,
        } => {
            let mut s = format!("SCAN {source} ({how}: {chars} chars in {span_ms} ms, fast run {fast_run})");
            if let Some(c) = classified {
                s.push_str(" → ");
                s.push_str(&classified_text(c));
            }
            s
        }
        ReaderDiag::NotScan {
            source,
            reason,
            read_error,
        } => {
            format!(
                "{} ({source}): {reason}",
                if *read_error { "READ ERROR" } else { "not a scan" }
            )
        }
        ReaderDiag::Serial { port, event } => format!("serial {port}: {event}"),
        ReaderDiag::Error { source, error } => format!("{source}: {error}"),
    };
    // Belt and braces: no 12–19 digit run leaves here unmasked, whatever a reason says.
    crate::synclog::mask_card_numbers(&s)
}

/// Turns one keyboard source's [`WedgeReport`]s into [`ReaderDiag`]s (tracks Shift per device
/// for the key labels).
pub struct WedgeDiag {
    kind: &'static str,
    shift: HashMap<u32, bool>,
}

impl WedgeDiag {
    pub fn new(kind: &'static str) -> WedgeDiag {
        WedgeDiag {
            kind,
            shift: HashMap::new(),
        }
    }

    pub fn listening(&self) -> ReaderDiag {
        ReaderDiag::Listening {
            source: self.kind.to_string(),
        }
    }

    /// `None` for key-ups, modifiers' bookkeeping and replay/swallow actions. A scan's
    /// classification is filled in by `classify` (the CLI) or later by whoever classifies it.
    pub fn report(&mut self, r: &WedgeReport<'_>, classify: Option<&dyn Fn(&str) -> Classified>) -> Option<ReaderDiag> {
        let kind = self.kind;
        Some(match r {
            WedgeReport::Notice(_) => return None,
            WedgeReport::Device { info, added, dedicated } => ReaderDiag::Device {
                source: kind.into(),
                id: info.id,
                name: info.name.clone(),
                added: *added,
                dedicated: *dedicated,
            },
            WedgeReport::Key { ev, gap_ms, .. } => {
                if ev.key.is_shift() {
                    self.shift.insert(ev.device, ev.down);
                }
                if !ev.down {
                    return None;
                }
                let shift = self.shift.get(&ev.device).copied().unwrap_or(false);
                ReaderDiag::Key {
                    source: format!("{kind}:{}", ev.device),
                    key: key_label(ev.key, shift),
                    gap_ms: *gap_ms,
                }
            }
            WedgeReport::Action { action, .. } => match action {
                Action::Scan(s) => ReaderDiag::Scan {
                    source: format!("{kind}:{}", s.device),
                    chars: s.stats.chars,
                    span_ms: s.stats.span_ms,
                    fast_run: s.stats.longest_fast_run,
                    how: if s.prefixed {
                        "prefix key".into()
                    } else if s.dedicated && s.by_timeout {
                        "dedicated device, ended by idle time".into()
                    } else if s.dedicated {
                        "dedicated device".into()
                    } else {
                        "by timing".into()
                    },
                    classified: classify.map(|f| f(&s.text)),
                },
                Action::NotScan {
                    device,
                    reason,
                    read_error,
                    ..
                } => ReaderDiag::NotScan {
                    source: format!("{kind}:{device}"),
                    reason: reason.clone(),
                    read_error: *read_error,
                },
                Action::Replay(_) | Action::Swallow(_) => return None,
            },
        })
    }
}

/// A serial reader's event as a [`ReaderDiag`]; a line is always a scan (no timing to judge).
pub fn serial(ev: &SerialEvent, classify: Option<&dyn Fn(&str) -> Classified>) -> ReaderDiag {
    match ev {
        SerialEvent::Connected { port } => ReaderDiag::Serial {
            port: port.clone(),
            event: "connected".into(),
        },
        SerialEvent::Disconnected { port, reason } => ReaderDiag::Serial {
            port: port.clone(),
            event: format!("disconnected ({reason})"),
        },
        SerialEvent::Unavailable { error } => ReaderDiag::Error {
            source: "serial".into(),
            error: error.to_string(),
        },
        SerialEvent::Line { port, text, .. } => ReaderDiag::Scan {
            source: format!("serial:{port}"),
            chars: text.chars().count(),
            span_ms: 0,
            fast_run: 0,
            how: "serial line".into(),
            classified: classify.map(|f| f(text)),
        },
    }
}

/// Where the runtime's readers publish diagnostics: the bus, only while `active`.
#[derive(Clone)]
pub struct DiagSink {
    pub active: Arc<AtomicBool>,
    pub bus: Bus,
}

impl DiagSink {
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub fn publish(&self, d: ReaderDiag) {
        let _ = self.bus.send(AgentEvent::Reader(d));
    }

    /// Esc on a keyboard (any time, not only during a reader test): the popup hides.
    pub fn escape(&self) {
        let _ = self.bus.send(AgentEvent::Escape);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::detect::{DetectConfig, Detector};
    use crate::input::oskbd::DeviceInfo;
    use crate::input::script::{parse, typed};
    use protocol::ids::CardPolicy;

    /// A whole session through the shared formatting: a card at scanner speed, a person typing
    /// the same digits, a payment card over serial. No digit key and no card number shows.
    #[test]
    fn reader_test_lines_show_classes_and_timings_never_the_digits() {
        let card = "1900123456789012";
        let pan = ";4111111111111111=2612101123?";
        let policy = CardPolicy::default();
        let classify = |t: &str| super::super::payload::classify(t, &policy);
        let mut wd = WedgeDiag::new("x11");
        let info = DeviceInfo {
            id: 3,
            name: "Virtual core XTEST keyboard".into(),
        };
        let mut lines = vec![line(&wd.listening())];
        lines.extend(
            wd.report(
                &WedgeReport::Device {
                    info: &info,
                    added: true,
                    dedicated: false,
                },
                None,
            )
            .map(|d| line(&d)),
        );
        let mut det = Detector::new(DetectConfig::default());
        let script = format!(
            "{} t:500 {} t:500 {}",
            typed(card, &[8], 3, 3, true),
            typed(card, &[130], 60, 3, true),
            typed(pan, &[8], 3, 3, true)
        );
        let mut last_down: HashMap<u32, u64> = HashMap::new();
        let mut diags = Vec::new();
        for ev in parse(&script).unwrap() {
            let gap = if ev.down {
                last_down.insert(ev.device, ev.time_ms).map(|t| ev.time_ms - t)
            } else {
                None
            };
            diags.extend(wd.report(
                &WedgeReport::Key {
                    ev: &ev,
                    gap_ms: gap,
                    device: Some(&info),
                },
                Some(&classify),
            ));
            for a in det.feed(ev) {
                diags.extend(wd.report(
                    &WedgeReport::Action {
                        action: &a,
                        device: Some(&info),
                    },
                    Some(&classify),
                ));
            }
        }
        diags.push(serial(
            &SerialEvent::Line {
                port: "/dev/ttyACM0".into(),
                text: card.into(),
                at: std::time::Instant::now(),
            },
            Some(&classify),
        ));
        lines.extend(diags.iter().map(line));
        let all = lines.join("\n");
        println!("{all}");

        let keys: Vec<&String> = lines.iter().filter(|l| l.trim_start().starts_with("x11:3")).collect();
        let downs = parse(&script).unwrap().iter().filter(|e| e.down).count();
        assert_eq!(keys.len(), downs, "one line per key down:\n{all}");
        assert!(keys.iter().filter(|l| l.contains(" digit ")).count() >= 3 * 16, "{all}");
        assert!(
            keys.iter().any(|l| l.contains("+8 ms")) && keys.iter().any(|l| l.contains("+130 ms")),
            "{all}"
        );
        assert!(
            keys.iter()
                .all(|l| !l.contains("KEY_1") && !l.contains("KEY_9") && !l.contains("KEY_0")),
            "digit keys by name:\n{all}"
        );
        // The decisions, with the reason for the person's typing.
        assert!(
            all.contains("SCAN x11:3 (by timing: 16 chars in 120 ms, fast run 16) → loyalty card 1900-****-****-9012"),
            "{all}"
        );
        assert!(
            all.contains("not a scan (x11:3): 16 characters typed with gaps over 50 ms (human typing)"),
            "{all}"
        );
        assert!(all.contains("→ payment card …1111 (not a loyalty card)"), "{all}");
        assert!(all.contains("SCAN serial:/dev/ttyACM0 (serial line: 16 chars"), "{all}");
        // No card number anywhere, not even a long piece of one.
        for secret in [card, "4111111111111111", "12345678", "41111111"] {
            assert!(!all.contains(secret), "{secret} leaked:\n{all}");
        }
        // …and a reason that quotes digits is masked on the way out.
        let d = ReaderDiag::NotScan {
            source: "x11:3".into(),
            reason: format!("odd input {card}"),
            read_error: true,
        };
        assert!(
            !line(&d).contains(card) && line(&d).starts_with("READ ERROR (x11:3)"),
            "{}",
            line(&d)
        );
    }

    #[test]
    fn prefix_scan_and_dedicated_device_say_how() {
        let mut wd = WedgeDiag::new("rawinput");
        let mut det = Detector::new(DetectConfig {
            prefix: Key::from_name("KEY_F13"),
            ..Default::default()
        });
        let ev = parse("d:KEY_F13 u:KEY_F13 t:70 d:KEY_1 u:KEY_1 t:70 d:KEY_2 u:KEY_2 t:70 d:KEY_ENTER u:KEY_ENTER")
            .unwrap();
        let mut out = Vec::new();
        for e in &ev {
            out.extend(
                wd.report(
                    &WedgeReport::Key {
                        ev: e,
                        gap_ms: None,
                        device: None,
                    },
                    None,
                )
                .map(|d| line(&d)),
            );
            for a in det.feed(*e) {
                out.extend(
                    wd.report(
                        &WedgeReport::Action {
                            action: &a,
                            device: None,
                        },
                        None,
                    )
                    .map(|d| line(&d)),
                );
            }
        }
        assert!(out[0].contains("KEY_F13"), "{out:?}");
        assert_eq!(
            out.last().unwrap(),
            "SCAN rawinput:1 (prefix key: 2 chars in 70 ms, fast run 0)"
        );
    }
}
