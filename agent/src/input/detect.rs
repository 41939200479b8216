//! The scan detector: a pure state machine from key events to decisions. No OS code here — the
//! X11 source and the Windows Raw Input / low-level hook only feed events in and execute the
//! [`Action`]s that come out.
//!
//! Rules (anchors in `fixtures/input/SOURCES.md`):
//! - **Dedicated device** (configured as the scanner): every key of it belongs to a scan whatever
//!   its timing; the scan ends at the terminator key, or after `idle_ms` without a key.
//! - **Burst detection** for every other keyboard: the characters typed since the last gap longer
//!   than `max_gap_ms` form the burst. At the terminator key (Enter / keypad Enter) the burst is a
//!   scan when it has at least `min_len` characters, its span (first → last character) is at most
//!   `len × avg_ms` (onScan.js), *and* it contains at least `fast_run` consecutive gaps
//!   ≤ `fast_gap_ms` (humans produce 2–3, never 4). Decided at once — no waiting after the
//!   terminator — and a quick human Enter is never eaten: it only completes a burst that already
//!   qualifies as machine typing.
//! - **Intercept mode** (Windows low-level hook): the hook blocks every physical key and this
//!   machine decides what the POS gets: keys that may still become a scan are held; held keys that
//!   turn out to be human typing come out as [`Action::Replay`] in their original order (a human key
//!   is delayed by at most `max_gap_ms`); scan keys come out as [`Action::Swallow`]. Events marked
//!   `injected` (our own replays) are ignored, so replays are never captured again.
//!   In passthrough mode only [`Action::Scan`] / [`Action::NotScan`] are produced.
//! - **Prefix key** (`prefix`, e.g. `KEY_F13`, a key nobody types; the scanner is programmed to
//!   send it first): when it goes down on any device, that device's following keys up to the
//!   terminator are a scan whatever their timing — decided at the first key, so in intercept
//!   mode the prefix and every scan key are swallowed as they come (nothing held or replayed).
//!   Keys held before the prefix are human and replayed first. A gap longer than `idle_ms` ends
//!   the prefix scan without a terminator: [`Action::NotScan`] with `read_error` (when something
//!   was typed), and the key after the gap is handled as an ordinary key (never lost).
//! - **Lost input** ([`Detector::input_lost`]; intercept mode): the Windows hook was gone for a
//!   moment and some keys went straight to the POS. The burst in progress cannot be a whole scan:
//!   if it still ends like a scan, its keys are swallowed (the POS must not get the rest of the
//!   number and its Enter) and the cashier is told to scan again ([`Action::NotScan`] with
//!   `read_error`); human typing is replayed as usual. Ups of leaked downs are passed at once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::keys::{Key, KeyEvent};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectConfig {
    pub min_len: usize,
    pub avg_ms: u64,
    pub fast_gap_ms: u64,
    pub fast_run: usize,
    pub max_gap_ms: u64,
    /// Dedicated devices without a terminator: the scan ends after this much silence.
    pub idle_ms: u64,
    pub terminators: Vec<Key>,
    /// A key that announces a scan (the scanner's programmed prefix, e.g. `KEY_F13`).
    pub prefix: Option<Key>,
    pub intercept: bool,
    /// Device ids configured as dedicated scanners.
    pub dedicated: HashSet<u32>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            min_len: 6,
            avg_ms: 30,
            fast_gap_ms: 20,
            fast_run: 4,
            max_gap_ms: 50,
            idle_ms: 100,
            terminators: vec![Key::ENTER, Key::KPENTER],
            prefix: None,
            intercept: false,
            dedicated: HashSet::new(),
        }
    }
}

/// Why a burst was (not) taken as a scan — shown by `reader-test`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BurstStats {
    pub chars: usize,
    pub span_ms: u64,
    /// Key-down gaps in ms, including the one to the terminator.
    pub gaps_ms: Vec<u64>,
    pub longest_fast_run: usize,
}

#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Scan {
    pub device: u32,
    /// The decoded US-layout text (never logged: it may be a payment card).
    #[serde(skip)]
    pub text: String,
    pub dedicated: bool,
    pub stats: BurstStats,
    /// Ended by the idle timeout rather than a terminator key (dedicated devices only).
    pub by_timeout: bool,
    /// Announced by the prefix key.
    pub prefixed: bool,
}

/// Never the scanned text (it may be a payment card): its length only.
impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("device", &self.device)
            .field("chars", &self.text.chars().count())
            .field("dedicated", &self.dedicated)
            .field("stats", &self.stats)
            .field("by_timeout", &self.by_timeout)
            .field("prefixed", &self.prefixed)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// Intercept mode: send these keys to the POS now, in this order.
    Replay(Vec<KeyEvent>),
    /// Intercept mode: these keys were part of a scan and are dropped.
    Swallow(Vec<KeyEvent>),
    Scan(Scan),
    /// A terminator ended a burst that is not a scan (human typing), or a prefix scan ended
    /// without its terminator (`read_error` when characters were typed after the prefix).
    NotScan {
        device: u32,
        reason: String,
        stats: BurstStats,
        read_error: bool,
    },
}

/// Never the keys of a scan (they spell a card number): how many.
impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Replay(k) => write!(f, "Replay({} keys)", k.len()),
            Action::Swallow(k) => write!(f, "Swallow({} keys)", k.len()),
            Action::Scan(s) => f.debug_tuple("Scan").field(s).finish(),
            Action::NotScan {
                device,
                reason,
                stats,
                read_error,
            } => f
                .debug_struct("NotScan")
                .field("device", device)
                .field("reason", reason)
                .field("stats", stats)
                .field("read_error", read_error)
                .finish(),
        }
    }
}

#[derive(Default)]
struct DevState {
    chars: Vec<(u64, char)>,
    shift: BTreeSet<Key>,
    command: BTreeSet<Key>,
    /// Keys waiting for the decision, in order; `true` = to be dropped whatever is decided (the
    /// up of a key whose down was swallowed), kept in line so nothing overtakes a held key.
    held: Vec<(KeyEvent, bool)>,
    last_time: Option<u64>,
    /// Keys whose down was swallowed: their up is swallowed too.
    swallowed_down: HashSet<Key>,
    /// Characters typed since the last terminator (not reset by slow gaps): lets a terminator
    /// after slow typing report *why* it was not a scan.
    typed: usize,
    /// In a prefix scan since this time (the prefix key's down).
    prefix_at: Option<u64>,
    /// Keys of the burst in progress went past us to the POS (the hook was lost, see
    /// [`Detector::input_lost`]): it cannot be a complete scan.
    tainted: bool,
    /// Keys whose down went past us to the POS: their up is passed on at once.
    leaked_down: HashSet<Key>,
}

/// Never the characters typed: counts only.
impl std::fmt::Debug for DevState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevState")
            .field("chars", &self.chars.len())
            .field("held", &self.held.len())
            .field("typed", &self.typed)
            .field("prefix_at", &self.prefix_at)
            .field("tainted", &self.tainted)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Detector {
    cfg: DetectConfig,
    devs: BTreeMap<u32, DevState>,
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Detector {
        Detector {
            cfg,
            devs: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// Mark a device as dedicated scanner (e.g. when it arrives and matches the configuration).
    pub fn set_dedicated(&mut self, device: u32, dedicated: bool) {
        if dedicated {
            self.cfg.dedicated.insert(device);
        } else {
            self.cfg.dedicated.remove(&device);
        }
    }

    /// Run a whole trace, ticking at the end (`now` = last event + `idle_ms` + 1).
    pub fn run(&mut self, events: &[KeyEvent]) -> Vec<Action> {
        let mut out = Vec::new();
        for e in events {
            out.extend(self.feed(*e));
        }
        if let Some(last) = events.last() {
            out.extend(self.tick(last.time_ms + self.cfg.idle_ms.max(self.cfg.max_gap_ms) + 1));
        }
        out
    }

    pub fn feed(&mut self, ev: KeyEvent) -> Vec<Action> {
        if ev.injected {
            return Vec::new();
        }
        let cfg = &self.cfg;
        let dedicated = cfg.dedicated.contains(&ev.device);
        let st = self.devs.entry(ev.device).or_default();
        let mut out = Vec::new();

        track_modifiers(st, &ev);

        // A new down of a key whose down went past us: its up belongs to this one.
        if ev.down {
            st.leaked_down.remove(&ev.key);
        }

        // A prefix scan ends after `idle_ms` without a key; this key is then an ordinary one.
        if let (Some(_), Some(last)) = (st.prefix_at, st.last_time) {
            if ev.time_ms.saturating_sub(last) > cfg.idle_ms {
                out.push(end_prefix_unterminated(st, ev.device, last, cfg));
            }
        }

        // The prefix key: what follows is a scan. Keys held so far are human: out first.
        if ev.down && !dedicated && cfg.prefix == Some(ev.key) {
            if st.prefix_at.is_some() {
                let last = st.last_time.unwrap_or(ev.time_ms);
                out.push(end_prefix_unterminated(st, ev.device, last, cfg));
            }
            st.chars.clear();
            st.typed = 0;
            flush_held(st, cfg, &mut out);
            st.prefix_at = Some(ev.time_ms);
            st.last_time = Some(ev.time_ms);
            if cfg.intercept {
                st.swallowed_down.insert(ev.key);
                out.push(Action::Swallow(vec![ev]));
            }
            return out;
        }

        // A slow gap ends the burst: what was held is human typing.
        if let Some(last) = st.last_time {
            if !dedicated && st.prefix_at.is_none() && ev.time_ms.saturating_sub(last) > cfg.max_gap_ms {
                st.chars.clear();
                st.tainted = false;
                flush_held(st, cfg, &mut out);
            }
        }
        st.last_time = Some(ev.time_ms);

        if !ev.down {
            if st.leaked_down.remove(&ev.key) {
                // its down reached the POS past us: so must its up
                if cfg.intercept {
                    out.push(Action::Replay(vec![ev]));
                }
                return out;
            }
            let drop = dedicated || st.swallowed_down.remove(&ev.key);
            if cfg.intercept {
                if !st.held.is_empty() {
                    st.held.push((ev, drop));
                } else if drop {
                    out.push(Action::Swallow(vec![ev]));
                } else {
                    out.push(Action::Replay(vec![ev]));
                }
            }
            return out;
        }

        let shift = !st.shift.is_empty();
        let ch = if st.command.is_empty() {
            ev.key.us_char(shift)
        } else {
            None
        };

        if st.prefix_at.is_some() {
            // Inside a prefix scan every key belongs to it, swallowed at once.
            if cfg.intercept {
                st.swallowed_down.insert(ev.key);
                out.push(Action::Swallow(vec![ev]));
            }
            if cfg.terminators.contains(&ev.key) {
                st.prefix_at = None;
                let stats = stats(&st.chars, ev.time_ms, cfg);
                let text: String = st.chars.drain(..).map(|(_, c)| c).collect();
                if std::mem::take(&mut st.tainted) {
                    out.push(Action::NotScan {
                        device: ev.device,
                        reason: LOST_REASON.into(),
                        stats,
                        read_error: true,
                    });
                } else if text.is_empty() {
                    let reason = format!("prefix {} then the terminator with nothing between", prefix_name(cfg));
                    out.push(Action::NotScan {
                        device: ev.device,
                        reason,
                        stats,
                        read_error: false,
                    });
                } else {
                    out.push(Action::Scan(Scan {
                        device: ev.device,
                        text,
                        dedicated: false,
                        stats,
                        by_timeout: false,
                        prefixed: true,
                    }));
                }
            } else if let Some(c) = ch {
                st.chars.push((ev.time_ms, c));
            }
            return out;
        }

        if cfg.terminators.contains(&ev.key) {
            let stats = stats(&st.chars, ev.time_ms, cfg);
            let text: String = st.chars.iter().map(|(_, c)| *c).collect();
            st.chars.clear();
            let typed = std::mem::take(&mut st.typed);
            let tainted = std::mem::take(&mut st.tainted);
            let verdict = if dedicated {
                if text.is_empty() {
                    Err("nothing typed before the terminator".to_string())
                } else {
                    Ok(())
                }
            } else {
                judge(&stats, cfg)
            };
            match verdict {
                Ok(()) => {
                    if cfg.intercept {
                        let keys = swallow_held(st, Some(ev));
                        out.push(Action::Swallow(keys));
                    }
                    if tainted {
                        out.push(Action::NotScan {
                            device: ev.device,
                            reason: LOST_REASON.into(),
                            stats,
                            read_error: true,
                        });
                    } else {
                        out.push(Action::Scan(Scan {
                            device: ev.device,
                            text,
                            dedicated,
                            stats,
                            by_timeout: false,
                            prefixed: false,
                        }));
                    }
                }
                Err(mut reason) => {
                    if stats.chars == 0 && typed > 0 {
                        reason = format!(
                            "{typed} characters typed with gaps over {} ms (human typing)",
                            cfg.max_gap_ms
                        );
                    }
                    if stats.chars > 0 || typed > 0 {
                        out.push(Action::NotScan {
                            device: ev.device,
                            reason,
                            stats,
                            read_error: false,
                        });
                    }
                    if cfg.intercept {
                        st.held.push((ev, false));
                        flush_held(st, cfg, &mut out);
                    }
                }
            }
            return out;
        }

        if dedicated {
            if let Some(c) = ch {
                st.chars.push((ev.time_ms, c));
            }
            if cfg.intercept {
                st.swallowed_down.insert(ev.key);
                out.push(Action::Swallow(vec![ev]));
            }
            return out;
        }

        if let Some(c) = ch {
            st.chars.push((ev.time_ms, c));
            st.typed += 1;
            if cfg.intercept {
                st.held.push((ev, false));
            }
        } else if ev.key.is_shift() {
            if cfg.intercept {
                st.held.push((ev, false));
            }
        } else {
            // Any other key (Backspace, arrows, Ctrl+…, F-keys) is a person at work.
            st.chars.clear();
            if cfg.intercept {
                st.held.push((ev, false));
                flush_held(st, cfg, &mut out);
            }
        }
        out
    }

    /// Keys of `device` went past the detector to the POS (`leaked`, in order): the intercept
    /// hook was lost and has been reinstalled. The burst in progress is tainted until it ends.
    ///
    /// Leaked keys count for the burst (its characters and timing) but are never held, replayed
    /// or swallowed: the POS has them. When a busy till lets a whole scan through before the
    /// agent's thread runs, its terminator is among the leaked keys: a burst that ends like a scan
    /// there is a read error (the number reached the POS, so the cashier scans again), its held
    /// keys are swallowed; one that does not is human typing and its held keys are replayed.
    pub fn input_lost(&mut self, device: u32, leaked: &[KeyEvent]) -> Vec<Action> {
        let cfg = &self.cfg;
        let dedicated = cfg.dedicated.contains(&device);
        let st = self.devs.entry(device).or_default();
        let mut out = Vec::new();
        st.tainted = true;
        for k in leaked {
            track_modifiers(st, k);
            if k.down {
                st.leaked_down.insert(k.key);
            } else {
                st.leaked_down.remove(&k.key);
            }
            if let Some(last) = st.last_time {
                if !dedicated && st.prefix_at.is_none() && k.time_ms.saturating_sub(last) > cfg.max_gap_ms {
                    st.chars.clear();
                    flush_held(st, cfg, &mut out);
                }
            }
            st.last_time = Some(st.last_time.map_or(k.time_ms, |t| t.max(k.time_ms)));
            st.tainted = true;
            if !k.down {
                continue;
            }
            if cfg.terminators.contains(&k.key) {
                let stats = stats(&st.chars, k.time_ms, cfg);
                let scan_like = st.prefix_at.take().is_some()
                    || (dedicated && !st.chars.is_empty())
                    || (!dedicated && judge(&stats, cfg).is_ok());
                st.chars.clear();
                st.typed = 0;
                st.tainted = false;
                if scan_like {
                    if cfg.intercept && !st.held.is_empty() {
                        let keys = swallow_held(st, None);
                        out.push(Action::Swallow(keys));
                    }
                    out.push(Action::NotScan {
                        device,
                        reason: LOST_REASON.into(),
                        stats,
                        read_error: true,
                    });
                } else {
                    flush_held(st, cfg, &mut out);
                }
            } else if st.command.is_empty() {
                if let Some(c) = k.key.us_char(!st.shift.is_empty()) {
                    st.chars.push((k.time_ms, c));
                    st.typed += 1;
                }
            }
        }
        out
    }

    /// The clock moved to `now` with no key: release held human keys after `max_gap_ms`, end
    /// terminator-less scans of dedicated devices after `idle_ms`.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let cfg = &self.cfg;
        for (dev, st) in self.devs.iter_mut() {
            let Some(last) = st.last_time else { continue };
            let idle = now.saturating_sub(last);
            if st.prefix_at.is_some() {
                if idle > cfg.idle_ms {
                    out.push(end_prefix_unterminated(st, *dev, last, cfg));
                }
            } else if cfg.dedicated.contains(dev) {
                if idle > cfg.idle_ms && !st.chars.is_empty() {
                    let stats = stats(&st.chars, last, cfg);
                    let text = st.chars.drain(..).map(|(_, c)| c).collect();
                    if std::mem::take(&mut st.tainted) {
                        out.push(Action::NotScan {
                            device: *dev,
                            reason: LOST_REASON.into(),
                            stats,
                            read_error: true,
                        });
                    } else {
                        out.push(Action::Scan(Scan {
                            device: *dev,
                            text,
                            dedicated: true,
                            stats,
                            by_timeout: true,
                            prefixed: false,
                        }));
                    }
                }
            } else if idle > cfg.max_gap_ms {
                st.chars.clear();
                st.tainted = false;
                flush_held(st, cfg, &mut out);
            }
        }
        out
    }
}

/// Why a burst that looked like a scan was not taken (see [`Detector::input_lost`]).
pub const LOST_REASON: &str = "read error: keys of this scan went past the keyboard hook to the POS (the hook was lost and has been reinstalled); scan again";

fn prefix_name(cfg: &DetectConfig) -> String {
    cfg.prefix.map(Key::name).unwrap_or_default()
}

/// A prefix scan that got no terminator within `idle_ms` of its last key (`last`). Its keys
/// were swallowed as they came (intercept); the cashier is told it was a read error.
fn end_prefix_unterminated(st: &mut DevState, device: u32, last: u64, cfg: &DetectConfig) -> Action {
    st.prefix_at = None;
    st.tainted = false;
    let stats = stats(&st.chars, last, cfg);
    st.chars.clear();
    let read_error = stats.chars > 0;
    let reason = if read_error {
        format!(
            "read error: prefix {} and {} characters but no terminator within {} ms",
            prefix_name(cfg),
            stats.chars,
            cfg.idle_ms
        )
    } else {
        format!(
            "prefix {} with nothing after it within {} ms",
            prefix_name(cfg),
            cfg.idle_ms
        )
    };
    Action::NotScan {
        device,
        reason,
        stats,
        read_error,
    }
}

/// Which Shift and command modifiers (Ctrl, Alt, …) are down.
fn track_modifiers(st: &mut DevState, ev: &KeyEvent) {
    let held = if ev.key.is_shift() {
        &mut st.shift
    } else if ev.key.is_command_modifier() {
        &mut st.command
    } else {
        return;
    };
    if ev.down {
        held.insert(ev.key);
    } else {
        held.remove(&ev.key);
    }
}

/// The held keys (and `last`) are part of a scan: swallowed, their downs remembered so their ups
/// are swallowed too.
fn swallow_held(st: &mut DevState, last: Option<KeyEvent>) -> Vec<KeyEvent> {
    let mut keys: Vec<KeyEvent> = st.held.drain(..).map(|(k, _)| k).collect();
    keys.extend(last);
    for k in &keys {
        if k.down {
            st.swallowed_down.insert(k.key);
        } else {
            st.swallowed_down.remove(&k.key);
        }
    }
    keys
}

fn flush_held(st: &mut DevState, cfg: &DetectConfig, out: &mut Vec<Action>) {
    if !cfg.intercept {
        return;
    }
    // Human keys are replayed; ups of swallowed downs among them stay dropped, in line.
    for (ev, drop) in st.held.drain(..) {
        match (out.last_mut(), drop) {
            (Some(Action::Replay(keys)), false) | (Some(Action::Swallow(keys)), true) => keys.push(ev),
            (_, false) => out.push(Action::Replay(vec![ev])),
            (_, true) => out.push(Action::Swallow(vec![ev])),
        }
    }
}

fn stats(chars: &[(u64, char)], end: u64, cfg: &DetectConfig) -> BurstStats {
    let mut gaps: Vec<u64> = chars.windows(2).map(|w| w[1].0 - w[0].0).collect();
    if let Some(last) = chars.last() {
        gaps.push(end.saturating_sub(last.0));
    }
    let mut run = 0;
    let mut longest = 0;
    for g in &gaps {
        if *g <= cfg.fast_gap_ms {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let span = match (chars.first(), chars.last()) {
        (Some(f), Some(l)) => l.0 - f.0,
        _ => 0,
    };
    BurstStats {
        chars: chars.len(),
        span_ms: span,
        gaps_ms: gaps,
        longest_fast_run: longest,
    }
}

fn judge(s: &BurstStats, cfg: &DetectConfig) -> Result<(), String> {
    if s.chars < cfg.min_len {
        return Err(format!("{} characters < minimum {}", s.chars, cfg.min_len));
    }
    if s.span_ms > s.chars as u64 * cfg.avg_ms {
        return Err(format!(
            "{} ms for {} characters is slower than {} ms/char on average",
            s.span_ms, s.chars, cfg.avg_ms
        ));
    }
    if s.longest_fast_run < cfg.fast_run {
        return Err(format!(
            "only {} consecutive gaps <= {} ms (a machine produces >= {})",
            s.longest_fast_run, cfg.fast_gap_ms, cfg.fast_run
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::script::{parse, typed};

    fn scans(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| {
                if let Action::Scan(s) = a {
                    Some(s.text.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    fn run(cfg: DetectConfig, script: &str) -> Vec<Action> {
        Detector::new(cfg).run(&parse(script).unwrap())
    }

    /// What the POS receives in intercept mode: replayed keys (down events) as US text, plus
    /// `⏎` for Enter.
    fn pos_text(actions: &[Action]) -> String {
        let mut shift = false;
        let mut s = String::new();
        for a in actions {
            if let Action::Replay(keys) = a {
                for k in keys {
                    if k.key.is_shift() {
                        shift = k.down;
                    } else if k.down {
                        if k.key == Key::ENTER {
                            s.push('⏎');
                        } else if let Some(c) = k.key.us_char(shift) {
                            s.push(c);
                        }
                    }
                }
            }
        }
        s
    }

    #[test]
    fn scanners_from_1_to_19_ms_per_key_are_scans() {
        // Measured per-key gaps: Datalogic 1, Netum 6, scanner 7-8, Honeywell 10, 16, NSC750 19 ms.
        for gap in [1, 6, 8, 10, 16, 19] {
            let a = run(
                DetectConfig::default(),
                &typed("1900-1234-5678-9012", &[gap], 1.min(gap), 1, true),
            );
            assert_eq!(scans(&a), ["1900-1234-5678-9012"], "gap {gap}: {a:?}");
        }
        // Shifted characters (magstripe track) at 8 ms.
        let a = run(
            DetectConfig::default(),
            &typed(";4111111111111111=2612101?", &[8], 3, 1, true),
        );
        assert_eq!(scans(&a), [";4111111111111111=2612101?"]);
    }

    #[test]
    fn fixture_traces() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/input");
        let cases: &[(&str, Option<&str>)] = &[
            ("scanner-8ms.trace", Some("1900-1234-5678-9012")),
            ("scanner-19ms.trace", Some("1900-1234-5678-9012")),
            ("scanner-1ms-kpenter.trace", Some("19001234")),
            ("human-120ms.trace", None),
            ("human-fast-typist.trace", None),
            ("human-quick-enter.trace", None),
            ("layout-cz-scanner.trace", Some("1900-1234")),
            ("deadkey-human-cz.trace", None),
            (
                "deadkey-scanner-track2.trace",
                Some(";5266092201416174=16042010000056700100?"),
            ),
        ];
        for (name, want) in cases {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let a = run(DetectConfig::default(), &text);
            let got = scans(&a);
            match want {
                Some(w) => assert_eq!(got, [*w], "{name}: {a:?}"),
                None => assert!(got.is_empty(), "{name}: {a:?}"),
            }
        }
    }

    #[test]
    fn humans_are_never_scans() {
        // Ordinary cashier typing, 120 ms per key: the Enter reports why it is not a scan.
        let a = run(DetectConfig::default(), &typed("19001234", &[120], 60, 1, true));
        assert!(scans(&a).is_empty());
        assert!(
            matches!(&a[..], [Action::NotScan { reason, .. }] if reason.contains("8 characters typed with gaps over 50 ms")),
            "{a:?}"
        );
        // A fast typist: bursts of 2-3 gaps <= 20 ms but never 4, then a quick Enter (15 ms).
        let a = run(
            DetectConfig::default(),
            &typed("19001234567", &[18, 15, 12, 45, 19, 14, 40, 16, 18, 35, 15], 8, 1, true),
        );
        assert!(scans(&a).is_empty(), "{a:?}");
        assert!(
            matches!(&a[0], Action::NotScan { reason, .. } if reason.contains("consecutive")),
            "{a:?}"
        );
        // Short codes never count.
        let a = run(DetectConfig::default(), &typed("12345", &[5], 2, 1, true));
        assert!(
            matches!(&a[0], Action::NotScan { reason, .. } if reason.contains("minimum")),
            "{a:?}"
        );
    }

    #[test]
    fn a_slow_prefix_does_not_spoil_a_following_scan() {
        let human = typed("abc", &[150], 50, 1, false);
        let scan = typed("1900123456789012", &[8], 3, 1, true);
        let a = run(DetectConfig::default(), &format!("{human} t:400 {scan}"));
        assert_eq!(scans(&a), ["1900123456789012"]);
    }

    #[test]
    fn dedicated_device_is_a_scan_whatever_its_timing() {
        let mut cfg = DetectConfig::default();
        cfg.dedicated.insert(7);
        let a = run(cfg.clone(), &typed("1900123", &[200], 50, 7, true));
        assert_eq!(scans(&a), ["1900123"]);
        // ...and without a terminator, after the idle time.
        let a = run(cfg.clone(), &typed("19001234", &[3], 1, 7, false));
        assert!(matches!(&a[..], [Action::Scan(Scan { by_timeout: true, .. })]), "{a:?}");
        // Another device typing at the same time stays human.
        let mixed = "dev:7 d:KEY_1 t:1 dev:1 d:KEY_A t:1 dev:7 u:KEY_1 d:KEY_2 t:300 u:KEY_2 d:KEY_ENTER dev:1 u:KEY_A";
        let a = run(cfg, mixed);
        assert_eq!(scans(&a), ["12"]);
    }

    #[test]
    fn intercept_swallows_scan_keys_and_replays_human_keys_in_order() {
        let cfg = DetectConfig {
            intercept: true,
            ..Default::default()
        };
        // A scan: everything swallowed, nothing reaches the POS, incl. the Enter's key-up.
        let a = run(cfg.clone(), &typed("1900123456789012", &[8], 3, 1, true));
        assert_eq!(scans(&a).len(), 1);
        assert_eq!(pos_text(&a), "");
        let swallowed: usize = a
            .iter()
            .map(|x| if let Action::Swallow(k) = x { k.len() } else { 0 })
            .sum();
        assert_eq!(swallowed, 17 * 2, "{a:?}");

        // A human: every key reaches the POS, in order, incl. shift and a quick Enter.
        let a = run(cfg.clone(), &typed("Ab1-x", &[18, 15, 12, 90], 8, 1, true));
        assert_eq!(pos_text(&a), "Ab1-x⏎");
        let replayed: Vec<KeyEvent> = a
            .iter()
            .flat_map(|x| if let Action::Replay(k) = x { k.clone() } else { vec![] })
            .collect();
        let original = parse(&typed("Ab1-x", &[18, 15, 12, 90], 8, 1, true)).unwrap();
        assert_eq!(
            replayed, original,
            "every event replayed exactly once, in original order"
        );

        // Fast typist then Backspace: held keys come out before the Backspace.
        let a = run(
            cfg.clone(),
            "d:KEY_A t:10 u:KEY_A d:KEY_B t:5 u:KEY_B d:KEY_BACKSPACE t:5 u:KEY_BACKSPACE",
        );
        let order: Vec<String> = a
            .iter()
            .flat_map(|x| if let Action::Replay(k) = x { k.clone() } else { vec![] })
            .filter(|k| k.down)
            .map(|k| k.key.name())
            .collect();
        assert_eq!(order, ["KEY_A", "KEY_B", "KEY_BACKSPACE"]);
    }

    #[test]
    fn replayed_keys_are_not_captured_again() {
        let cfg = DetectConfig {
            intercept: true,
            ..Default::default()
        };
        let mut d = Detector::new(cfg);
        let first = d.run(&parse("d:KEY_A t:5 u:KEY_A").unwrap());
        let replayed: Vec<KeyEvent> = first
            .iter()
            .flat_map(|x| if let Action::Replay(k) = x { k.clone() } else { vec![] })
            .collect();
        assert_eq!(replayed.len(), 2);
        // The OS hands our own replays back to the hook marked injected: they produce nothing.
        for mut k in replayed {
            k.injected = true;
            k.time_ms += 200;
            assert!(d.feed(k).is_empty());
        }
        assert!(d.tick(10_000).is_empty());
    }

    fn prefix_cfg(intercept: bool) -> DetectConfig {
        DetectConfig {
            prefix: Key::from_name("KEY_F13"),
            intercept,
            ..Default::default()
        }
    }

    fn fixture(name: &str) -> Vec<KeyEvent> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/input")
            .join(name);
        parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"))).unwrap()
    }

    fn replayed(actions: &[Action]) -> Vec<KeyEvent> {
        actions
            .iter()
            .flat_map(|x| if let Action::Replay(k) = x { k.clone() } else { vec![] })
            .collect()
    }

    fn swallowed(actions: &[Action]) -> Vec<KeyEvent> {
        actions
            .iter()
            .flat_map(|x| if let Action::Swallow(k) = x { k.clone() } else { vec![] })
            .collect()
    }

    #[test]
    fn prefix_key_scan_is_decided_at_the_first_key() {
        let ev = fixture("prefix-f13-scanner.trace");
        // Passthrough: a scan, marked as announced by the prefix.
        let a = Detector::new(prefix_cfg(false)).run(&ev);
        assert!(
            matches!(
                &a[..],
                [Action::Scan(Scan {
                    prefixed: true,
                    dedicated: false,
                    ..
                })]
            ),
            "{a:?}"
        );
        assert_eq!(scans(&a), ["1900-1234-5678-9012"]);
        // Intercept: each key is swallowed the moment it arrives (nothing held, nothing replayed).
        let mut d = Detector::new(prefix_cfg(true));
        let mut all = Vec::new();
        for e in &ev {
            let out = d.feed(*e);
            assert!(
                matches!(&out[..], [Action::Swallow(k), ..] if k == &vec![*e]),
                "{e:?} → {out:?}"
            );
            all.extend(out);
        }
        all.extend(d.tick(10_000));
        assert_eq!(scans(&all), ["1900-1234-5678-9012"]);
        assert_eq!(swallowed(&all), ev);
        assert_eq!(pos_text(&all), "");
    }

    #[test]
    fn prefix_makes_a_slow_scanner_a_scan() {
        let ev = fixture("prefix-f13-slow-scanner.trace");
        assert_eq!(scans(&Detector::new(prefix_cfg(false)).run(&ev)), ["19001234"]);
        // Without the prefix setting the same keys are (slow) human typing.
        let a = Detector::new(DetectConfig::default()).run(&ev);
        assert!(
            scans(&a).is_empty() && matches!(&a[..], [Action::NotScan { .. }]),
            "{a:?}"
        );
        let a = Detector::new(prefix_cfg(true)).run(&ev);
        assert_eq!(
            (scans(&a).len(), pos_text(&a).as_str(), swallowed(&a).len()),
            (1, "", ev.len())
        );
    }

    #[test]
    fn human_typing_slowly_after_a_prefix_scan_reaches_the_pos() {
        let ev = fixture("prefix-f13-then-human-slow.trace");
        let a = Detector::new(prefix_cfg(true)).run(&ev);
        assert_eq!(scans(&a), ["1900-1234-5678-9012"]);
        assert_eq!(pos_text(&a), "abc⏎");
        // Exactly the person's events, in order; exactly the scanner's swallowed.
        let split = ev
            .iter()
            .position(|e| e.key == Key::from_name("KEY_A").unwrap())
            .unwrap();
        assert_eq!(replayed(&a), ev[split..]);
        assert_eq!(swallowed(&a), ev[..split]);
        assert!(
            a.iter().any(|x| matches!(x, Action::NotScan { read_error: false, .. })),
            "the person's Enter: not a scan"
        );
    }

    #[test]
    fn prefix_key_pressed_at_human_speed_loses_no_key() {
        let ev = fixture("prefix-f13-human-speed.trace");
        let a = Detector::new(prefix_cfg(true)).run(&ev);
        assert!(scans(&a).is_empty(), "{a:?}");
        assert!(
            a.iter().any(|x| matches!(x, Action::NotScan { reason, read_error: false, .. } if reason.contains("nothing after it"))),
            "{a:?}"
        );
        assert_eq!(pos_text(&a), "12ab⏎");
        assert_eq!(
            replayed(&a),
            ev[2..],
            "every key after the prefix reaches the POS, in order"
        );
        assert_eq!(swallowed(&a), ev[..2], "only the prefix key itself is dropped");
    }

    #[test]
    fn prefix_without_terminator_is_a_read_error_and_the_next_keys_are_ordinary() {
        let ev = fixture("prefix-f13-no-terminator.trace");
        for intercept in [false, true] {
            let a = Detector::new(prefix_cfg(intercept)).run(&ev);
            assert!(scans(&a).is_empty(), "{a:?}");
            let errors: Vec<&String> = a
                .iter()
                .filter_map(|x| {
                    if let Action::NotScan {
                        reason,
                        read_error: true,
                        ..
                    } = x
                    {
                        Some(reason)
                    } else {
                        None
                    }
                })
                .collect();
            assert_eq!(errors.len(), 1, "{a:?}");
            assert!(
                errors[0].contains("read error") && errors[0].contains("8 characters") && errors[0].contains("KEY_F13"),
                "{}",
                errors[0]
            );
            if intercept {
                assert_eq!(pos_text(&a), "x1⏎");
                assert_eq!(swallowed(&a).len(), 18, "F13 + 8 keys, down and up");
            }
        }
        // The same read error from the clock alone (no further key): tick after idle_ms.
        let mut d = Detector::new(prefix_cfg(true));
        for e in &ev[..18] {
            d.feed(*e);
        }
        let last = ev[17].time_ms;
        assert!(d.tick(last + 100).is_empty(), "not before idle_ms");
        assert!(matches!(
            &d.tick(last + 101)[..],
            [Action::NotScan { read_error: true, .. }]
        ));
    }

    #[test]
    fn keys_before_the_prefix_and_other_devices_are_unaffected() {
        // Fast human keys held by intercept come out (in order) before the prefix is swallowed.
        let s = format!(
            "d:KEY_A t:10 u:KEY_A t:10 d:KEY_B t:5 {}",
            typed("123456", &[8], 3, 1, true).replace("dev:1", "d:KEY_F13 u:KEY_F13 u:KEY_B")
        );
        let a = run(prefix_cfg(true), &s);
        assert_eq!(scans(&a), ["123456"]);
        let i_replay = a.iter().position(|x| matches!(x, Action::Replay(_))).unwrap();
        let i_swallow = a.iter().position(|x| matches!(x, Action::Swallow(_))).unwrap();
        assert!(i_replay < i_swallow, "{a:?}");
        // KEY_B's up comes during the prefix scan; its down was the person's, so is its up.
        assert_eq!(
            replayed(&a).iter().map(|k| (k.key.name(), k.down)).collect::<Vec<_>>(),
            [
                ("KEY_A".to_string(), true),
                ("KEY_A".to_string(), false),
                ("KEY_B".to_string(), true),
                ("KEY_B".to_string(), false)
            ]
        );
        // A prefix scan on device 2 while device 1 (a person) types: device 1 is untouched.
        let s = "dev:2 d:KEY_F13 u:KEY_F13 t:5 d:KEY_1 dev:1 d:KEY_X t:3 dev:2 u:KEY_1 t:80 d:KEY_2 u:KEY_2 dev:1 u:KEY_X t:60 dev:2 d:KEY_ENTER u:KEY_ENTER";
        let a = run(prefix_cfg(true), s);
        assert_eq!(scans(&a), ["12"]);
        assert_eq!(pos_text(&a), "x");
        assert!(
            replayed(&a).iter().all(|k| k.device == 1) && swallowed(&a).iter().all(|k| k.device == 2),
            "{a:?}"
        );
    }

    #[test]
    fn intercept_with_prefix_never_loses_duplicates_or_reorders_a_key() {
        // Pseudo-random key streams (two devices, prefix, terminators, shift, slow and fast gaps).
        let pool: Vec<Key> = [
            "KEY_F13",
            "KEY_ENTER",
            "KEY_1",
            "KEY_2",
            "KEY_A",
            "KEY_LEFTSHIFT",
            "KEY_BACKSPACE",
            "KEY_MINUS",
        ]
        .iter()
        .map(|n| Key::from_name(n).unwrap())
        .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let mut d = Detector::new(prefix_cfg(true));
            let (mut t, mut fed, mut out) = (0u64, Vec::new(), Vec::new());
            for _ in 0..60 {
                t += [1, 5, 8, 30, 60, 120, 250][rnd(7) as usize];
                let ev = KeyEvent {
                    time_ms: t,
                    device: rnd(2) as u32,
                    key: pool[rnd(pool.len() as u64) as usize],
                    down: rnd(2) == 0,
                    injected: false,
                };
                fed.push(ev);
                out.extend(d.feed(ev));
            }
            out.extend(d.tick(t + 10_000));
            for dev in 0..2 {
                let want: Vec<KeyEvent> = fed.iter().filter(|k| k.device == dev).copied().collect();
                let got: Vec<KeyEvent> = out
                    .iter()
                    .flat_map(|x| {
                        if let Action::Replay(k) | Action::Swallow(k) = x {
                            k.clone()
                        } else {
                            vec![]
                        }
                    })
                    .filter(|k| k.device == dev)
                    .collect();
                assert_eq!(got, want, "device {dev}");
            }
        }
    }

    #[test]
    fn passthrough_emits_no_key_actions() {
        let a = run(DetectConfig::default(), &typed("hello world", &[90], 40, 1, true));
        assert!(
            a.iter().all(|x| matches!(x, Action::NotScan { .. } | Action::Scan(_))),
            "{a:?}"
        );
    }

    /// Feed `script` with the hook dying after `alive` events: the events after it up to
    /// `alive + leaked` go past the detector (to the POS) and are reported with `input_lost`
    /// (as the Windows source does at the first one), the rest reach the detector again.
    fn run_with_lost_hook(
        cfg: DetectConfig,
        script: &str,
        alive: usize,
        leaked: usize,
    ) -> (Vec<Action>, Vec<KeyEvent>) {
        let evs = parse(script).unwrap();
        let mut d = Detector::new(cfg);
        let mut out = Vec::new();
        let gone = &evs[alive..alive + leaked];
        for (i, e) in evs.iter().enumerate() {
            if i == alive {
                out.extend(d.input_lost(e.device, gone));
            }
            if !(alive..alive + leaked).contains(&i) {
                out.extend(d.feed(*e));
            }
        }
        out.extend(d.tick(evs.last().unwrap().time_ms + 1000));
        (out, gone.to_vec())
    }

    #[test]
    fn a_scan_that_lost_keys_past_the_hook_is_a_read_error_and_the_rest_is_swallowed() {
        let cfg = DetectConfig {
            intercept: true,
            ..Default::default()
        };
        let script = typed("1900123456789012", &[8], 3, 1, true);
        let n = parse(&script).unwrap().len();
        // the last three: the whole scan (or all of it after the first keys) went past before the
        // agent's thread ran, its Enter too (with and without the Enter's release)
        for (alive, leaked) in [(0, 1), (0, 2), (4, 1), (6, 3), (30, 2), (0, n), (4, n - 4), (0, n - 1)] {
            let (a, gone) = run_with_lost_hook(cfg.clone(), &script, alive, leaked);
            assert!(
                scans(&a).is_empty(),
                "alive {alive} leaked {leaked}: a partial number taken as a card: {a:?}"
            );
            let errors: Vec<&Action> = a
                .iter()
                .filter(|x| matches!(x, Action::NotScan { read_error: true, .. }))
                .collect();
            assert_eq!(errors.len(), 1, "alive {alive} leaked {leaked}: {a:?}");
            // the POS gets no more of the number and no Enter; only the ups of leaked downs
            let replayed: Vec<KeyEvent> = a
                .iter()
                .flat_map(|x| if let Action::Replay(k) = x { k.clone() } else { vec![] })
                .collect();
            assert!(
                replayed.iter().all(|k| !k.down),
                "alive {alive} leaked {leaked}: {replayed:?}"
            );
            for up in &replayed {
                assert!(
                    gone.iter().any(|g| g.down && g.key == up.key),
                    "{up:?} replayed but its down did not leak"
                );
            }
            // every leaked down has its up at the POS, exactly once
            let downs = gone.iter().filter(|g| g.down).count();
            let ups_at_pos = gone.iter().filter(|g| !g.down).count() + replayed.len();
            assert_eq!(
                downs, ups_at_pos,
                "alive {alive} leaked {leaked}: {gone:?} / {replayed:?}"
            );
        }
        // the next scan is a scan again
        let mut d = Detector::new(cfg.clone());
        d.input_lost(1, &[]);
        let evs = parse(&format!("{script} t:500 {script}")).unwrap();
        let a: Vec<Action> = evs.iter().flat_map(|e| d.feed(*e)).collect();
        assert_eq!(scans(&a), ["1900123456789012"], "{a:?}");
    }

    #[test]
    fn human_typing_that_lost_keys_past_the_hook_is_still_replayed() {
        let cfg = DetectConfig {
            intercept: true,
            ..Default::default()
        };
        let script = typed("abc", &[120], 30, 1, true);
        // "a" (down + up) went to the POS past the dead hook; "bc⏎" are replayed
        let (a, _) = run_with_lost_hook(cfg.clone(), &script, 0, 2);
        assert_eq!(pos_text(&a), "bc⏎");
        assert!(
            !a.iter().any(|x| matches!(x, Action::NotScan { read_error: true, .. })),
            "{a:?}"
        );
        // all of it, Enter too, went past: nothing to replay and no read error
        let all = parse(&script).unwrap().len();
        let (a, _) = run_with_lost_hook(cfg.clone(), &script, 0, all);
        assert_eq!(pos_text(&a), "");
        assert!(
            !a.iter().any(|x| matches!(x, Action::NotScan { read_error: true, .. })),
            "{a:?}"
        );
        // and a fast typist's burst with a leaked key is not a read error either
        let (a, _) = run_with_lost_hook(
            cfg,
            "d:KEY_A t:10 u:KEY_A d:KEY_B t:5 u:KEY_B t:9 d:KEY_ENTER t:5 u:KEY_ENTER",
            0,
            1,
        );
        assert_eq!(pos_text(&a), "b⏎");
        assert!(
            !a.iter().any(|x| matches!(x, Action::NotScan { read_error: true, .. })),
            "{a:?}"
        );
    }

    #[test]
    fn ctrl_shortcuts_are_not_characters() {
        let s = "d:KEY_LEFTCTRL t:1 d:KEY_V t:1 u:KEY_V t:1 u:KEY_LEFTCTRL t:1 ".to_string()
            + &typed("123456", &[3], 1, 1, true);
        let a = run(DetectConfig::default(), &s);
        assert_eq!(scans(&a), ["123456"]);
    }
}
