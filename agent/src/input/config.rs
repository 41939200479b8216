//! `[reader]` section of agent.toml.
//!
//! ```toml
//! [reader]
//! mode = "passthrough"          # or "intercept" (Windows: scan keys never reach the POS)
//! wedge = true                  # listen to keyboard-wedge readers
//! dedicated = ["VID_0C2E&PID_0B61", "x11:Virtual core XTEST keyboard"]  # always a scanner:
//!                               # a VID/PID fragment of the device path, a device name, `x11:<name>` or `x11:<id>`
//! quote_timeout_ms = 300
//! prefix_key = "KEY_F13"        # the scanner's programmed prefix: a scan from its first key
//! card_policy = { min_len = 16, max_len = 16, prefixes = ["1900"] }    # default: 8-19 digits, any
//!
//! [reader.detect]               # burst detection (defaults shown)
//! min_len = 6
//! avg_ms = 30
//! fast_gap_ms = 20
//! fast_run = 4
//! max_gap_ms = 50
//!
//! [[reader.serial]]
//! port = "COM3"                 # and/or the USB identity, used to find it again after replug
//! usb_vid = "0C2E"
//! usb_pid = "0B61"
//! baud = 9600
//! terminator = "cr"             # "lf" | "crlf" (any of them, and ETX, ends a line)
//! ```
use protocol::ids::CardPolicy;
use serde::{Deserialize, Serialize};

use super::detect::DetectConfig;
use super::keys::Key;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Listen only; the POS also receives the keys.
    #[default]
    Passthrough,
    /// Windows low-level hook: the keys of a scan are swallowed, human keys replayed in order.
    Intercept,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderConfig {
    pub mode: Mode,
    pub wedge: bool,
    /// Keyboard devices that are scanners whatever their timing: `VID_xxxx&PID_yyyy` (Windows
    /// Raw Input path fragment), an X input device name, or `x11:<id>`.
    pub dedicated: Vec<String>,
    /// Overrides the program's card policy from the cached rules.
    pub card_policy: Option<CardPolicy>,
    pub quote_timeout_ms: u64,
    /// A key nobody types that the scanner sends before each scan (`KEY_F13`): the hook then
    /// decides at the first key (see `detect`).
    pub prefix_key: Option<String>,
    pub detect: DetectSettings,
    pub serial: Vec<SerialConfig>,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            mode: Mode::Passthrough,
            wedge: true,
            dedicated: Vec::new(),
            card_policy: None,
            quote_timeout_ms: 300,
            prefix_key: None,
            detect: DetectSettings::default(),
            serial: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSettings {
    pub min_len: usize,
    pub avg_ms: u64,
    pub fast_gap_ms: u64,
    pub fast_run: usize,
    pub max_gap_ms: u64,
    pub idle_ms: u64,
}

impl Default for DetectSettings {
    fn default() -> Self {
        let d = DetectConfig::default();
        DetectSettings {
            min_len: d.min_len,
            avg_ms: d.avg_ms,
            fast_gap_ms: d.fast_gap_ms,
            fast_run: d.fast_run,
            max_gap_ms: d.max_gap_ms,
            idle_ms: d.idle_ms,
        }
    }
}

impl ReaderConfig {
    pub fn detect_config(&self) -> DetectConfig {
        let s = &self.detect;
        DetectConfig {
            min_len: s.min_len,
            avg_ms: s.avg_ms,
            fast_gap_ms: s.fast_gap_ms,
            fast_run: s.fast_run,
            max_gap_ms: s.max_gap_ms,
            idle_ms: s.idle_ms,
            terminators: vec![Key::ENTER, Key::KPENTER],
            prefix: self.prefix_key.as_deref().and_then(Key::from_name),
            intercept: self.mode == Mode::Intercept,
            dedicated: Default::default(),
        }
    }

    /// Is a keyboard with this name / path / id configured as a dedicated scanner?
    pub fn is_dedicated(&self, names: &[&str]) -> bool {
        self.dedicated.iter().any(|d| {
            let want = usb_ids(d);
            let d = d.to_ascii_uppercase();
            names.iter().any(|n| {
                let n = n.to_ascii_uppercase();
                n == d || (d.contains("VID_") && n.contains(&d)) || (want.is_some() && usb_ids(&n) == want)
            })
        })
    }

    /// Check what serde cannot: each serial reader names a port or a USB identity.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.prefix_key {
            let bad = |why: &str| Err(format!("[reader] `prefix_key` = {name:?}: {why}"));
            match Key::from_name(name) {
                None => return bad("unknown key name (use an evdev name such as \"KEY_F13\")"),
                Some(k) if [Key::ENTER, Key::KPENTER].contains(&k) => return bad("is a terminator key"),
                Some(k) if k.is_shift() || k.is_command_modifier() || k == Key::CAPSLOCK => {
                    return bad("is a modifier key")
                }
                Some(k) if k.us_char(false).is_some() => {
                    return bad("types a character, so people type it too; pick a key nobody types, e.g. \"KEY_F13\"")
                }
                Some(_) => {}
            }
        }
        for (i, s) in self.serial.iter().enumerate() {
            if s.port.is_none() && s.usb_vid.is_none() {
                return Err(format!(
                    "[[reader.serial]] #{}: set `port` or `usb_vid`/`usb_pid`",
                    i + 1
                ));
            }
            for (key, v) in [("usb_vid", &s.usb_vid), ("usb_pid", &s.usb_pid)] {
                if let Some(v) = v {
                    if u16::from_str_radix(v, 16).is_err() {
                        return Err(format!(
                            "[[reader.serial]] #{}: `{key}` = {v:?} is not a 4-digit hex id",
                            i + 1
                        ));
                    }
                }
            }
            if !(5..=8).contains(&s.data_bits) {
                return Err(format!(
                    "[[reader.serial]] #{}: `data_bits` = {} (expected 5-8)",
                    i + 1,
                    s.data_bits
                ));
            }
            if !(1..=2).contains(&s.stop_bits) {
                return Err(format!(
                    "[[reader.serial]] #{}: `stop_bits` = {} (expected 1 or 2)",
                    i + 1,
                    s.stop_bits
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

impl Parity {
    /// `N`, `O`, `E` as in "9600 8N1".
    pub fn letter(self) -> char {
        match self {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terminator {
    #[default]
    Cr,
    Lf,
    Crlf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SerialConfig {
    /// `COM3`, `/dev/ttyACM0`.
    pub port: Option<String>,
    /// USB identity (hex) to find the reader again when its COM name changes after a replug.
    pub usb_vid: Option<String>,
    pub usb_pid: Option<String>,
    pub usb_serial: Option<String>,
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    /// What the reader is set to send after a code (documentation of the set-up: every line end,
    /// CR, LF, CRLF or ETX, ends a line whatever this says).
    pub terminator: Terminator,
    /// Raise DTR on open (some USB-CDC scanners stay silent without it).
    pub dtr: bool,
}

impl Default for SerialConfig {
    fn default() -> Self {
        SerialConfig {
            port: None,
            usb_vid: None,
            usb_pid: None,
            usb_serial: None,
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            terminator: Terminator::Cr,
            dtr: true,
        }
    }
}

/// The USB vendor and product id in a Windows device path or a configured fragment:
/// `VID_0C2E&PID_0B61` (USB HID) or `VID&0002046D_PID&B33B` (Bluetooth HID, where the
/// vendor field carries a 4-digit vendor-id source before the id). Case-insensitive.
pub fn usb_ids(s: &str) -> Option<(u16, u16)> {
    let u = s.to_ascii_uppercase();
    let hex_after = |tag: &str| -> Option<String> {
        let i = u.find(tag)? + tag.len();
        let rest = u[i..].strip_prefix(['_', '&'])?;
        let h: String = rest.chars().take_while(char::is_ascii_hexdigit).take(8).collect();
        (h.len() == 4 || h.len() == 8).then_some(h)
    };
    let vid = hex_after("VID")?;
    let pid = hex_after("PID")?;
    let last4 = |h: &str| u16::from_str_radix(&h[h.len() - 4..], 16).ok();
    Some((last4(&vid)?, last4(&pid)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_section() {
        let c: ReaderConfig = toml::from_str("").unwrap();
        assert_eq!(c, ReaderConfig::default());
        assert!(c.wedge && c.mode == Mode::Passthrough && c.quote_timeout_ms == 300);
        let c: ReaderConfig = toml::from_str(
            r#"
mode = "intercept"
dedicated = ["VID_0C2E&PID_0B61"]
card_policy = { min_len = 16, max_len = 16, prefixes = ["1900"] }
[detect]
max_gap_ms = 60
[[serial]]
port = "/dev/ttyACM0"
baud = 115200
terminator = "crlf"
"#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Intercept);
        assert!(c.detect_config().intercept);
        assert_eq!(c.detect.max_gap_ms, 60);
        assert_eq!(c.detect.min_len, 6);
        assert_eq!(c.serial[0].baud, 115200);
        assert_eq!(c.serial[0].data_bits, 8);
        assert_eq!(c.serial[0].terminator, Terminator::Crlf);
        assert!(c.is_dedicated(&[r"\\?\HID#VID_0C2E&PID_0B61&MI_00#7&1234#{884b96c3}"]));
        assert!(!c.is_dedicated(&["Virtual core XTEST keyboard"]));
    }

    #[test]
    fn dedicated_by_vid_pid_matches_usb_and_bluetooth_paths_in_any_case() {
        let c: ReaderConfig = toml::from_str("dedicated = [\"VID_046D&PID_B33B\"]").unwrap();
        // USB HID and Bluetooth HID device paths of the same reader (Windows Raw Input names).
        assert!(
            c.is_dedicated(&[r"\\?\HID#VID_046D&PID_B33B&MI_00#8&2a1b#0&0000#{884b96c3-56ef-11d1-bc8c-00a0c91405dd}"])
        );
        assert!(c.is_dedicated(&[r"\\?\HID#{00001124-0000-1000-8000-00805f9b34fb}_VID&0002046d_PID&b33b&Col01#9&1f0#0&0000#{884b96c3-56ef-11d1-bc8c-00a0c91405dd}"]));
        assert!(!c.is_dedicated(&[r"\\?\HID#VID_046D&PID_B33C#8&2a1b#0&0000#{884b96c3}"]));
        assert!(!c.is_dedicated(&["Logitech keyboard"]));
        assert_eq!(usb_ids("vid_0c2e&pid_0b61"), Some((0x0c2e, 0x0b61)));
        assert_eq!(usb_ids("VID_0C2E"), None);
        assert_eq!(usb_ids("VIDEO&PID_0001"), None);
        c.validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let e = toml::from_str::<ReaderConfig>("mode = \"sometimes\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sometimes") && e.contains("line 1"), "{e}");
        let e = toml::from_str::<ReaderConfig>("[[serial]]\nbaud_rate = 9600")
            .unwrap_err()
            .to_string();
        assert!(e.contains("baud_rate"), "{e}");
        let c: ReaderConfig = toml::from_str("[[serial]]\nbaud = 9600").unwrap();
        assert!(c.validate().unwrap_err().contains("`port`"));
        let c: ReaderConfig = toml::from_str("[[serial]]\nusb_vid = \"XYZ1\"").unwrap();
        assert!(c.validate().unwrap_err().contains("usb_vid"));
    }

    #[test]
    fn prefix_key_is_validated_and_reaches_the_detector() {
        let c: ReaderConfig = toml::from_str("prefix_key = \"KEY_F13\"").unwrap();
        c.validate().unwrap();
        assert_eq!(c.detect_config().prefix, Key::from_name("KEY_F13"));
        assert_eq!(ReaderConfig::default().detect_config().prefix, None);
        for (name, why) in [
            ("KEY_F99", "unknown key name"),
            ("KEY_ENTER", "terminator"),
            ("KEY_LEFTSHIFT", "modifier"),
            ("KEY_A", "types a character"),
        ] {
            let c: ReaderConfig = toml::from_str(&format!("prefix_key = {name:?}")).unwrap();
            let e = c.validate().unwrap_err();
            assert!(
                e.contains("prefix_key") && e.contains(name) && e.contains(why),
                "{name}: {e}"
            );
        }
    }
}
