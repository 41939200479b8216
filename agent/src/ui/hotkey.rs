//! The global hotkey that opens "Find customer…" (`[popup] find_hotkey` in agent.toml).
//!
//! Default `Ctrl+Shift+F12`: POS software uses plain and Shift function keys, rarely Ctrl+Shift+F12;
//! it types no character on any layout (Ctrl+Alt+letter is AltGr+letter on cs/sk/hr keyboards —
//! AltGr+F is `[` there — so such a hotkey would eat a character the cashier types), and it is not
//! one of the Ctrl+Alt+F1…F12 console switches of Linux. Pure parsing here; the grab is the
//! platform's (`platform::register_hotkey`: X11 `XGrabKey` on the root window, Win32
//! `RegisterHotKey`).

use std::fmt;

pub const DEFAULT_FIND_HOTKEY: &str = "Ctrl+Shift+F12";

/// The key itself, by position-independent name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotKeyCode {
    /// `A`..=`Z` (as the uppercase ASCII letter).
    Letter(char),
    /// `0`..=`9`.
    Digit(char),
    /// `F1`..=`F24`.
    F(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotKey {
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
    /// The Windows / Super key.
    pub super_key: bool,
    pub key: HotKeyCode,
}

impl HotKey {
    /// Parse `Ctrl+Shift+F12`, `ctrl+alt+k`, `Super+F9` (case-insensitive, `+`-separated; the key
    /// last). At least one of Ctrl, Alt or Super is required: a hotkey grabbed from every window
    /// must not take a key the cashier types. The error says what is wrong with `s`.
    pub fn parse(s: &str) -> Result<HotKey, String> {
        let parts: Vec<&str> = s.split('+').map(str::trim).collect();
        let (key, mods) = parts.split_last().ok_or("empty")?;
        let mut hk = HotKey {
            ctrl: false,
            alt: false,
            shift: false,
            super_key: false,
            key: HotKeyCode::F(1),
        };
        for m in mods {
            let flag = match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => &mut hk.ctrl,
                "alt" => &mut hk.alt,
                "shift" => &mut hk.shift,
                "super" | "win" | "windows" => &mut hk.super_key,
                "" => return Err(format!("{s:?}: empty part")),
                other => return Err(format!("{s:?}: unknown modifier {other:?} (Ctrl, Alt, Shift, Super)")),
            };
            if *flag {
                return Err(format!("{s:?}: {m} given twice"));
            }
            *flag = true;
        }
        let k = key.to_ascii_uppercase();
        hk.key = match k.as_bytes() {
            [c @ b'A'..=b'Z'] => HotKeyCode::Letter(*c as char),
            [c @ b'0'..=b'9'] => HotKeyCode::Digit(*c as char),
            [b'F', rest @ ..] if !rest.is_empty() => match k[1..].parse::<u8>() {
                Ok(n @ 1..=24) => HotKeyCode::F(n),
                _ => return Err(format!("{s:?}: no key {key:?} (F1…F24)")),
            },
            [] => return Err(format!("{s:?}: the key is missing after the last +")),
            _ => return Err(format!("{s:?}: unsupported key {key:?} (A–Z, 0–9, F1–F24)")),
        };
        if !(hk.ctrl || hk.alt || hk.super_key) {
            return Err(format!(
                "{s:?}: needs Ctrl, Alt or Super (a key without them would be taken from the POS)"
            ));
        }
        if hk.ctrl && hk.alt && !matches!(hk.key, HotKeyCode::F(_)) {
            return Err(format!(
                "{s:?}: Ctrl+Alt with a letter or digit is AltGr on cs/sk/hr keyboards and would eat a typed character"
            ));
        }
        if hk.ctrl && hk.alt && matches!(hk.key, HotKeyCode::F(1..=12)) {
            return Err(format!("{s:?}: Ctrl+Alt+F1…F12 switch consoles on Linux"));
        }
        Ok(hk)
    }

    /// X11 keysym of the key (lowercase letters, as a keyboard map lists them first).
    pub fn x11_keysym(&self) -> u32 {
        match self.key {
            HotKeyCode::Letter(c) => c.to_ascii_lowercase() as u32,
            HotKeyCode::Digit(c) => c as u32,
            // XK_F1 = 0xffbe, consecutive
            HotKeyCode::F(n) => 0xffbe + u32::from(n) - 1,
        }
    }

    /// Win32 virtual-key code.
    pub fn windows_vk(&self) -> u32 {
        match self.key {
            HotKeyCode::Letter(c) | HotKeyCode::Digit(c) => c as u32,
            // VK_F1 = 0x70, consecutive to VK_F24 = 0x87
            HotKeyCode::F(n) => 0x70 + u32::from(n) - 1,
        }
    }
}

impl fmt::Display for HotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, name) in [
            (self.ctrl, "Ctrl+"),
            (self.alt, "Alt+"),
            (self.shift, "Shift+"),
            (self.super_key, "Super+"),
        ] {
            if on {
                f.write_str(name)?;
            }
        }
        match self.key {
            HotKeyCode::Letter(c) | HotKeyCode::Digit(c) => write!(f, "{c}"),
            HotKeyCode::F(n) => write!(f, "F{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_and_others_and_names_what_is_wrong() {
        let d = HotKey::parse(DEFAULT_FIND_HOTKEY).unwrap();
        assert_eq!(
            (d.ctrl, d.alt, d.shift, d.super_key, d.key),
            (true, false, true, false, HotKeyCode::F(12))
        );
        assert_eq!(d.to_string(), "Ctrl+Shift+F12");
        assert_eq!((d.x11_keysym(), d.windows_vk()), (0xffc9, 0x7b));
        let k = HotKey::parse(" super + k ").unwrap();
        assert_eq!(
            (k.to_string(), k.x11_keysym(), k.windows_vk()),
            ("Super+K".into(), 'k' as u32, 'K' as u32)
        );
        assert_eq!(HotKey::parse("ctrl+alt+f13").unwrap().to_string(), "Ctrl+Alt+F13");
        for (bad, why) in [
            ("F12", "needs Ctrl, Alt or Super"),
            ("Shift+F", "needs Ctrl, Alt or Super"),
            ("Ctrl+Alt+F", "AltGr"),
            ("Ctrl+Alt+F2", "switch consoles"),
            ("Ctrl+Hyper+F", "unknown modifier \"hyper\""),
            ("Ctrl+Ctrl+F", "given twice"),
            ("Ctrl+F25", "no key \"F25\""),
            ("Ctrl+Enter", "unsupported key \"Enter\""),
            ("Ctrl+", "the key is missing"),
        ] {
            let e = HotKey::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }
}
