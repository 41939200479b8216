//! Key positions (kanata style): evdev key codes with their `KEY_*` names, conversion from X11
//! keycodes and Windows scan codes, and decoding a sequence of (position, shift) into the
//! characters a **US layout** would produce.
//!
//! Why positions: a wedge scanner types by HID key position assuming a US layout. On the
//! cashier's Czech layout the same positions produce `+íéé=+ěšč` instead of `1900-1234`; decoding
//! the positions ourselves gives the same text on every layout. Dead keys are a character-level
//! phenomenon (the OS composes them later), so at position level a dead-key position is just a
//! key like any other (`KEY_EQUAL` → `=`).

use std::fmt;

/// A key position: the Linux evdev code (`KEY_1` = 2, `KEY_A` = 30 …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u16);

/// (evdev code, name, US unshifted char, US shifted char)
const TABLE: &[(u16, &str, Option<char>, Option<char>)] = &[
    (1, "KEY_ESC", None, None),
    (2, "KEY_1", Some('1'), Some('!')),
    (3, "KEY_2", Some('2'), Some('@')),
    (4, "KEY_3", Some('3'), Some('#')),
    (5, "KEY_4", Some('4'), Some('$')),
    (6, "KEY_5", Some('5'), Some('%')),
    (7, "KEY_6", Some('6'), Some('^')),
    (8, "KEY_7", Some('7'), Some('&')),
    (9, "KEY_8", Some('8'), Some('*')),
    (10, "KEY_9", Some('9'), Some('(')),
    (11, "KEY_0", Some('0'), Some(')')),
    (12, "KEY_MINUS", Some('-'), Some('_')),
    (13, "KEY_EQUAL", Some('='), Some('+')),
    (14, "KEY_BACKSPACE", None, None),
    (15, "KEY_TAB", None, None),
    (16, "KEY_Q", Some('q'), Some('Q')),
    (17, "KEY_W", Some('w'), Some('W')),
    (18, "KEY_E", Some('e'), Some('E')),
    (19, "KEY_R", Some('r'), Some('R')),
    (20, "KEY_T", Some('t'), Some('T')),
    (21, "KEY_Y", Some('y'), Some('Y')),
    (22, "KEY_U", Some('u'), Some('U')),
    (23, "KEY_I", Some('i'), Some('I')),
    (24, "KEY_O", Some('o'), Some('O')),
    (25, "KEY_P", Some('p'), Some('P')),
    (26, "KEY_LEFTBRACE", Some('['), Some('{')),
    (27, "KEY_RIGHTBRACE", Some(']'), Some('}')),
    (28, "KEY_ENTER", None, None),
    (29, "KEY_LEFTCTRL", None, None),
    (30, "KEY_A", Some('a'), Some('A')),
    (31, "KEY_S", Some('s'), Some('S')),
    (32, "KEY_D", Some('d'), Some('D')),
    (33, "KEY_F", Some('f'), Some('F')),
    (34, "KEY_G", Some('g'), Some('G')),
    (35, "KEY_H", Some('h'), Some('H')),
    (36, "KEY_J", Some('j'), Some('J')),
    (37, "KEY_K", Some('k'), Some('K')),
    (38, "KEY_L", Some('l'), Some('L')),
    (39, "KEY_SEMICOLON", Some(';'), Some(':')),
    (40, "KEY_APOSTROPHE", Some('\''), Some('"')),
    (41, "KEY_GRAVE", Some('`'), Some('~')),
    (42, "KEY_LEFTSHIFT", None, None),
    (43, "KEY_BACKSLASH", Some('\\'), Some('|')),
    (44, "KEY_Z", Some('z'), Some('Z')),
    (45, "KEY_X", Some('x'), Some('X')),
    (46, "KEY_C", Some('c'), Some('C')),
    (47, "KEY_V", Some('v'), Some('V')),
    (48, "KEY_B", Some('b'), Some('B')),
    (49, "KEY_N", Some('n'), Some('N')),
    (50, "KEY_M", Some('m'), Some('M')),
    (51, "KEY_COMMA", Some(','), Some('<')),
    (52, "KEY_DOT", Some('.'), Some('>')),
    (53, "KEY_SLASH", Some('/'), Some('?')),
    (54, "KEY_RIGHTSHIFT", None, None),
    (55, "KEY_KPASTERISK", Some('*'), Some('*')),
    (56, "KEY_LEFTALT", None, None),
    (57, "KEY_SPACE", Some(' '), Some(' ')),
    (58, "KEY_CAPSLOCK", None, None),
    (59, "KEY_F1", None, None),
    (60, "KEY_F2", None, None),
    (61, "KEY_F3", None, None),
    (62, "KEY_F4", None, None),
    (63, "KEY_F5", None, None),
    (64, "KEY_F6", None, None),
    (65, "KEY_F7", None, None),
    (66, "KEY_F8", None, None),
    (67, "KEY_F9", None, None),
    (68, "KEY_F10", None, None),
    (69, "KEY_NUMLOCK", None, None),
    (70, "KEY_SCROLLLOCK", None, None),
    (71, "KEY_KP7", Some('7'), Some('7')),
    (72, "KEY_KP8", Some('8'), Some('8')),
    (73, "KEY_KP9", Some('9'), Some('9')),
    (74, "KEY_KPMINUS", Some('-'), Some('-')),
    (75, "KEY_KP4", Some('4'), Some('4')),
    (76, "KEY_KP5", Some('5'), Some('5')),
    (77, "KEY_KP6", Some('6'), Some('6')),
    (78, "KEY_KPPLUS", Some('+'), Some('+')),
    (79, "KEY_KP1", Some('1'), Some('1')),
    (80, "KEY_KP2", Some('2'), Some('2')),
    (81, "KEY_KP3", Some('3'), Some('3')),
    (82, "KEY_KP0", Some('0'), Some('0')),
    (83, "KEY_KPDOT", Some('.'), Some('.')),
    (86, "KEY_102ND", None, None),
    (87, "KEY_F11", None, None),
    (88, "KEY_F12", None, None),
    (96, "KEY_KPENTER", None, None),
    (97, "KEY_RIGHTCTRL", None, None),
    (98, "KEY_KPSLASH", Some('/'), Some('/')),
    (100, "KEY_RIGHTALT", None, None),
    (102, "KEY_HOME", None, None),
    (103, "KEY_UP", None, None),
    (104, "KEY_PAGEUP", None, None),
    (105, "KEY_LEFT", None, None),
    (106, "KEY_RIGHT", None, None),
    (107, "KEY_END", None, None),
    (108, "KEY_DOWN", None, None),
    (109, "KEY_PAGEDOWN", None, None),
    (110, "KEY_INSERT", None, None),
    (111, "KEY_DELETE", None, None),
    (125, "KEY_LEFTMETA", None, None),
    (126, "KEY_RIGHTMETA", None, None),
    (183, "KEY_F13", None, None),
    (184, "KEY_F14", None, None),
    (185, "KEY_F15", None, None),
    (186, "KEY_F16", None, None),
];

fn entry(code: u16) -> Option<&'static (u16, &'static str, Option<char>, Option<char>)> {
    TABLE.iter().find(|e| e.0 == code)
}

impl Key {
    pub const ESC: Key = Key(1);
    pub const ENTER: Key = Key(28);
    pub const KPENTER: Key = Key(96);
    pub const TAB: Key = Key(15);
    pub const LEFTSHIFT: Key = Key(42);
    pub const RIGHTSHIFT: Key = Key(54);
    pub const LEFTCTRL: Key = Key(29);
    pub const RIGHTCTRL: Key = Key(97);
    pub const LEFTALT: Key = Key(56);
    pub const RIGHTALT: Key = Key(100);
    pub const LEFTMETA: Key = Key(125);
    pub const RIGHTMETA: Key = Key(126);
    pub const CAPSLOCK: Key = Key(58);

    /// `KEY_1` → Key(2). Also accepts the name without the `KEY_` prefix.
    pub fn from_name(name: &str) -> Option<Key> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("KEY_") {
            upper
        } else {
            format!("KEY_{upper}")
        };
        TABLE.iter().find(|e| e.1 == full).map(|e| Key(e.0))
    }

    pub fn name(self) -> String {
        entry(self.0)
            .map(|e| e.1.to_string())
            .unwrap_or_else(|| format!("KEY_{}", self.0))
    }

    /// X11 keycode (evdev + 8 with the evdev/xkb keycodes every modern X server uses).
    pub fn from_x11(keycode: u32) -> Option<Key> {
        keycode.checked_sub(8).and_then(|c| u16::try_from(c).ok()).map(Key)
    }

    pub fn x11_keycode(self) -> u32 {
        self.0 as u32 + 8
    }

    /// Windows set-1 scan code (as in `KBDLLHOOKSTRUCT.scanCode` / `RAWKEYBOARD.MakeCode`) plus
    /// the extended (E0) flag.
    pub fn from_windows_scan(scan: u16, extended: bool) -> Option<Key> {
        let code = match (scan, extended) {
            (0x1C, true) => 96,  // keypad Enter
            (0x1D, true) => 97,  // right Ctrl
            (0x35, true) => 98,  // keypad /
            (0x38, true) => 100, // right Alt (AltGr)
            (0x47, true) => 102,
            (0x48, true) => 103,
            (0x49, true) => 104,
            (0x4B, true) => 105,
            (0x4D, true) => 106,
            (0x4F, true) => 107,
            (0x50, true) => 108,
            (0x51, true) => 109,
            (0x52, true) => 110,
            (0x53, true) => 111,
            (0x5B, true) => 125,
            (0x5C, true) => 126,
            (0x64..=0x67, false) => 183 + (scan - 0x64), // F13..F16
            (s @ 1..=88, false) => s,
            _ => return None,
        };
        Some(Key(code))
    }

    /// The inverse of [`Key::from_windows_scan`] (for `SendInput` with `KEYEVENTF_SCANCODE`).
    pub fn windows_scan(self) -> Option<(u16, bool)> {
        let (s, e) = match self.0 {
            96 => (0x1C, true),
            97 => (0x1D, true),
            98 => (0x35, true),
            100 => (0x38, true),
            102 => (0x47, true),
            103 => (0x48, true),
            104 => (0x49, true),
            105 => (0x4B, true),
            106 => (0x4D, true),
            107 => (0x4F, true),
            108 => (0x50, true),
            109 => (0x51, true),
            110 => (0x52, true),
            111 => (0x53, true),
            125 => (0x5B, true),
            126 => (0x5C, true),
            c @ 183..=186 => (0x64 + (c - 183), false),
            c @ 1..=88 => (c, false),
            _ => return None,
        };
        Some((s, e))
    }

    pub fn is_shift(self) -> bool {
        self == Key::LEFTSHIFT || self == Key::RIGHTSHIFT
    }

    /// Ctrl, Alt, AltGr, Win: a character typed with these held is a shortcut, not text.
    pub fn is_command_modifier(self) -> bool {
        matches!(
            self,
            Key::LEFTCTRL | Key::RIGHTCTRL | Key::LEFTALT | Key::RIGHTALT | Key::LEFTMETA | Key::RIGHTMETA
        )
    }

    /// The character this position produces on a US layout.
    pub fn us_char(self, shift: bool) -> Option<char> {
        entry(self.0).and_then(|e| if shift { e.3 } else { e.2 })
    }

    /// The key position (and shift) that types `c` on a US layout — how a scanner types it.
    pub fn for_us_char(c: char) -> Option<(Key, bool)> {
        // Prefer the main block over the keypad.
        TABLE.iter().filter(|e| !e.1.starts_with("KEY_KP")).find_map(|e| {
            if e.2 == Some(c) {
                Some((Key(e.0), false))
            } else if e.3 == Some(c) {
                Some((Key(e.0), true))
            } else {
                None
            }
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One key transition from a source (X11 raw event, Raw Input, LL hook, or a script).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// Milliseconds on the source's clock (X server time, `GetTickCount`, script time).
    pub time_ms: u64,
    /// Source device id (X input device id, Raw Input handle index, 0 = unknown).
    pub device: u32,
    pub key: Key,
    pub down: bool,
    /// Sent by ourselves (a replay in intercept mode): never captured again.
    pub injected: bool,
}

/// Decode a sequence of key-down positions with their shift state into US-layout text.
/// Positions without a character (modifiers, function keys) are skipped.
pub fn decode_us(keys: &[(Key, bool)]) -> String {
    keys.iter().filter_map(|(k, s)| k.us_char(*s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in TABLE {
            assert_eq!(Key::from_name(e.1), Some(Key(e.0)), "{}", e.1);
            assert_eq!(Key(e.0).name(), e.1);
        }
        assert_eq!(Key::from_name("enter"), Some(Key::ENTER));
        assert_eq!(Key::from_name("KEY_NOPE"), None);
    }

    #[test]
    fn x11_keycodes_are_evdev_plus_8() {
        // xev on any evdev X server: `1` is keycode 10, Return 36, Shift_L 50, minus 20.
        assert_eq!(Key::from_x11(10), Key::from_name("KEY_1"));
        assert_eq!(Key::from_x11(36), Some(Key::ENTER));
        assert_eq!(Key::from_x11(50), Some(Key::LEFTSHIFT));
        assert_eq!(Key::from_x11(20), Key::from_name("KEY_MINUS"));
        assert_eq!(Key::ENTER.x11_keycode(), 36);
        assert_eq!(Key::from_x11(3), None);
    }

    #[test]
    fn windows_scan_codes() {
        assert_eq!(Key::from_windows_scan(0x02, false), Key::from_name("KEY_1"));
        assert_eq!(Key::from_windows_scan(0x1C, false), Some(Key::ENTER));
        assert_eq!(Key::from_windows_scan(0x1C, true), Some(Key::KPENTER));
        assert_eq!(Key::from_windows_scan(0x38, true), Some(Key::RIGHTALT));
        assert_eq!(Key::from_windows_scan(0x64, false), Key::from_name("KEY_F13"));
        for e in TABLE {
            if let Some((s, x)) = Key(e.0).windows_scan() {
                assert_eq!(Key::from_windows_scan(s, x), Some(Key(e.0)), "{}", e.1);
            }
        }
    }

    #[test]
    fn us_round_trip_of_every_printable_ascii() {
        for c in (0x20u8..0x7f).map(char::from) {
            let (k, s) = Key::for_us_char(c).unwrap_or_else(|| panic!("{c:?}"));
            assert_eq!(k.us_char(s), Some(c));
        }
    }

    #[test]
    fn decodes_positions_not_characters() {
        // `1900-1234` typed by a US-programmed scanner: these positions are the same whatever the
        // cashier's layout (a Czech layout would *show* `+íéé=+ěšč`).
        let seq: Vec<(Key, bool)> = "1900-1234".chars().map(|c| Key::for_us_char(c).unwrap()).collect();
        assert_eq!(seq[4].0.name(), "KEY_MINUS");
        assert_eq!(decode_us(&seq), "1900-1234");
        // Track 2 with shifted `?` and the Czech/German dead-key position KEY_EQUAL.
        let seq: Vec<(Key, bool)> = ";123=45?".chars().map(|c| Key::for_us_char(c).unwrap()).collect();
        assert_eq!(decode_us(&seq), ";123=45?");
    }
}
