//! Is the low-level keyboard hook still there? (intercept mode)
//!
//! Windows removes a `WH_KEYBOARD_LL` hook without telling anyone when its callback does not
//! return within `LowLevelHooksTimeout` (a till that stalls for a second under load is enough);
//! from then on every key goes straight to the POS and a scanned card number lands in the POS
//! field. `UnhookWindowsHookEx` / `SetWindowsHookExW` cannot tell us: the handle stays "valid".
//!
//! What can tell us is Raw Input, which the Windows source keeps listening to in intercept mode.
//! Every physical key passes the hook first: on Windows a key the hook blocked never reaches Raw
//! Input, under Wine it does (after the hook). So a Raw Input key that the hook did not see just
//! before means the hook is gone. [`HookWatch`] is that comparison, pure (the Windows source feeds
//! it and reinstalls the hook when it says so); both event streams carry the input's own time
//! (`KBDLLHOOKSTRUCT::time`, `GetMessageTime`). The Windows source identifies keys by their scan
//! code alone: the hook and Raw Input disagree on the extended flag of some keys (Num Lock is
//! "extended" in the hook; Right Shift under Wine), and every key the hook sees counts, blocked or
//! passed on.

use std::collections::VecDeque;

/// A Raw Input key matches a hook event of the same key and direction this close in time.
pub const MATCH_MS: u64 = 100;
/// Hook events kept for matching (on Windows the blocked ones are never matched: bounded).
const KEEP: usize = 64;

/// Keys are identified by their scan code in both streams.
#[derive(Debug, Default)]
pub struct HookWatch {
    /// Recent hook events not yet matched by a Raw Input key: (scan code, down, time).
    seen: VecDeque<(u16, bool, u64)>,
}

impl HookWatch {
    pub fn new() -> HookWatch {
        HookWatch::default()
    }

    /// The hook saw this key (whether it blocked it or not).
    pub fn hooked(&mut self, key: u16, down: bool, time_ms: u64) {
        if self.seen.len() == KEEP {
            self.seen.pop_front();
        }
        self.seen.push_back((key, down, time_ms));
    }

    /// Raw Input delivered this physical key (not injected). True: the hook saw it too; false:
    /// it went past the hook — the hook is gone.
    pub fn raw(&mut self, key: u16, down: bool, time_ms: u64) -> bool {
        // older entries can never match again (input times only grow)
        while self.seen.front().is_some_and(|e| e.2 + MATCH_MS < time_ms) {
            self.seen.pop_front();
        }
        match self
            .seen
            .iter()
            .position(|e| e.0 == key && e.1 == down && e.2.abs_diff(time_ms) <= MATCH_MS)
        {
            Some(i) => {
                self.seen.remove(i);
                true
            }
            None => false,
        }
    }

    /// After reinstalling the hook: nothing seen before counts.
    pub fn reset(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::script::parse;

    /// Feed a trace as Windows would with the hook alive until `dies_after` events: each event
    /// reaches the hook (and, `wine`, Raw Input after it); once the hook is gone, Raw Input only.
    /// Returns the indexes of the events reported as missed.
    fn replay(script: &str, dies_after: usize, wine: bool) -> Vec<usize> {
        let mut w = HookWatch::new();
        let mut missed = Vec::new();
        // (the key's code stands in for its scan code)
        for (i, e) in parse(script).unwrap().iter().enumerate() {
            if i < dies_after {
                w.hooked(e.key.0, e.down, e.time_ms);
                // Windows: the hook blocked it, Raw Input never sees it
                if wine && !w.raw(e.key.0, e.down, e.time_ms) {
                    missed.push(i);
                }
            } else if !w.raw(e.key.0, e.down, e.time_ms) {
                missed.push(i);
            }
        }
        missed
    }

    const SCAN: &str =
        "d:KEY_1 u:KEY_1 t:8 d:KEY_9 u:KEY_9 t:8 d:KEY_0 u:KEY_0 t:8 d:KEY_0 u:KEY_0 t:8 d:KEY_ENTER u:KEY_ENTER";

    #[test]
    fn a_live_hook_is_never_reported() {
        assert_eq!(replay(SCAN, usize::MAX, true), Vec::<usize>::new());
        assert_eq!(replay(SCAN, usize::MAX, false), Vec::<usize>::new());
        // the same key typed again and again (held-down repeat, "0000"): each raw matches its own
        assert_eq!(
            replay("d:KEY_0 t:30 d:KEY_0 t:30 d:KEY_0 t:30 u:KEY_0", usize::MAX, true),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn the_first_key_past_a_dead_hook_is_reported() {
        // died after "1" (down + up): the "9" down is the first key past it, on Windows and Wine
        assert_eq!(replay(SCAN, 2, false)[0], 2);
        assert_eq!(replay(SCAN, 2, true)[0], 2);
        // every later key too (the source reinstalls at the first one)
        assert_eq!(replay(SCAN, 2, true).len(), 8);
    }

    #[test]
    fn an_old_hook_event_of_the_same_key_does_not_hide_a_dead_hook() {
        // Windows: the "1" was blocked (never in Raw Input); a second later the hook is gone and
        // the "1" comes again — past the hook
        let s = "d:KEY_1 u:KEY_1 t:1000 d:KEY_1 u:KEY_1";
        assert_eq!(replay(s, 2, false), vec![2, 3]);
    }

    #[test]
    fn bounded_when_nothing_is_matched() {
        let mut w = HookWatch::new();
        let enter = 0x1C;
        for t in 0..10_000 {
            w.hooked(enter, true, t);
        }
        assert_eq!(w.seen.len(), KEEP);
        assert!(w.raw(enter, true, 9_999));
        w.reset();
        assert!(!w.raw(enter, true, 9_999));
    }
}
