//! `[popup]` section of agent.toml.
//!
//! ```toml
//! [popup]
//! position = "bottom-right"   # bottom-right (default) | bottom-left | top-right | top-left
//! # x = 100                   # or an explicit top-left corner in logical pixels (both x and y)
//! # y = 200
//! margin = 16                 # distance from the screen edge for the corner positions
//! hide_after_secs = 8         # 0 = stay until Esc / click
//! font_scale = 1.0            # 0.5 ..= 4.0; multiplies the popup's text, spacing, frame and width
//! width = 440                 # logical pixels (× font_scale); a wide table may grow it up to the screen
//! find_hotkey = "Ctrl+Shift+F12"  # global hotkey of "Find customer…"; "" = none (see ui::hotkey)
//! offline_first_ms = 10       # server silent this long after a scan: show the offline quote, marked
//!                             # as such, until the server's answer replaces it; 0 = wait for the server
//! ```
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corner {
    #[default]
    BottomRight,
    BottomLeft,
    TopRight,
    TopLeft,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopupConfig {
    pub position: Corner,
    /// Explicit position (logical pixels, top-left corner of the popup); overrides `position`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<i32>,
    pub margin: u32,
    /// Seconds until the popup hides by itself; 0 = never.
    pub hide_after_secs: u64,
    /// Text scale factor (a UI size, not an amount: a float is fine here).
    pub font_scale: f32,
    pub width: u32,
    /// Global hotkey that opens the "Find customer" search box (`ui::hotkey::HotKey::parse`);
    /// empty = no hotkey (the tray entry stays).
    pub find_hotkey: String,
    /// Milliseconds a scan's popup waits for the server's quote before it shows the offline quote
    /// from the cache (marked offline and "waiting for the server"), replaced when the server
    /// answers within `reader.quote_timeout_ms`; 0 = no early offline popup.
    pub offline_first_ms: u64,
}

impl Default for PopupConfig {
    fn default() -> Self {
        PopupConfig {
            position: Corner::BottomRight,
            x: None,
            y: None,
            margin: 16,
            hide_after_secs: 8,
            font_scale: 1.0,
            width: 440,
            find_hotkey: super::hotkey::DEFAULT_FIND_HOTKEY.to_string(),
            offline_first_ms: 10,
        }
    }
}

impl PopupConfig {
    /// Check values serde cannot; the error names the key (`popup.font_scale`).
    pub fn validate(&self) -> Result<(), String> {
        if self.x.is_some() != self.y.is_some() {
            return Err("popup.x and popup.y must be given together (or neither, to use popup.position)".into());
        }
        if !(0.5..=4.0).contains(&self.font_scale) {
            return Err(format!(
                "popup.font_scale = {} is out of range 0.5..=4.0",
                self.font_scale
            ));
        }
        if !(200..=2000).contains(&self.width) {
            return Err(format!("popup.width = {} is out of range 200..=2000", self.width));
        }
        if self.offline_first_ms > 1000 {
            return Err(format!(
                "popup.offline_first_ms = {} is more than 1000 ms (a scan's popup should not wait that long)",
                self.offline_first_ms
            ));
        }
        if self.hide_after_secs > 3600 {
            return Err(format!(
                "popup.hide_after_secs = {} is more than an hour; use 0 for \"never\"",
                self.hide_after_secs
            ));
        }
        if let Err(e) = self.hotkey() {
            return Err(format!("popup.find_hotkey = {e}"));
        }
        Ok(())
    }

    /// The configured "Find customer" hotkey (`None` when switched off with `""`).
    pub fn hotkey(&self) -> Result<Option<super::hotkey::HotKey>, String> {
        if self.find_hotkey.trim().is_empty() {
            return Ok(None);
        }
        super::hotkey::HotKey::parse(&self.find_hotkey).map(Some)
    }

    /// Top-left corner of a popup of `size` on a screen of `screen` (both logical pixels).
    pub fn place(&self, screen: (f32, f32), size: (f32, f32)) -> (f32, f32) {
        if let (Some(x), Some(y)) = (self.x, self.y) {
            return (x as f32, y as f32);
        }
        let m = self.margin as f32;
        let right = (screen.0 - size.0 - m).max(0.0);
        // Leave room for a bottom taskbar / panel beside the tray.
        let bottom = (screen.1 - size.1 - m - 40.0).max(0.0);
        match self.position {
            Corner::BottomRight => (right, bottom),
            Corner::BottomLeft => (m, bottom),
            Corner::TopRight => (right, m),
            Corner::TopLeft => (m, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_sections() {
        let c: PopupConfig = toml::from_str("").unwrap();
        assert_eq!(c, PopupConfig::default());
        let c: PopupConfig = toml::from_str("position = \"top-left\"\nhide_after_secs = 3").unwrap();
        assert_eq!(c.position, Corner::TopLeft);
        assert_eq!(c.hide_after_secs, 3);
        assert_eq!(c.font_scale, 1.0);
    }

    #[test]
    fn unknown_key_and_bad_values_are_named() {
        let e = toml::from_str::<PopupConfig>("hide_after = 3").unwrap_err().to_string();
        assert!(e.contains("hide_after"), "{e}");
        let e = toml::from_str::<PopupConfig>("position = \"middle\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("middle"), "{e}");
        let c: PopupConfig = toml::from_str("x = 5").unwrap();
        assert!(c.validate().unwrap_err().contains("popup.y"));
        let c: PopupConfig = toml::from_str("font_scale = 9.0").unwrap();
        assert!(c.validate().unwrap_err().contains("popup.font_scale"));
        assert!(PopupConfig::default().validate().is_ok());
        let c: PopupConfig = toml::from_str("find_hotkey = \"Ctrl+Alt+F\"").unwrap();
        let e = c.validate().unwrap_err();
        assert!(
            e.starts_with("popup.find_hotkey = \"Ctrl+Alt+F\"") && e.contains("AltGr"),
            "{e}"
        );
        let c: PopupConfig = toml::from_str("find_hotkey = \"\"").unwrap();
        assert_eq!((c.validate(), c.hotkey()), (Ok(()), Ok(None)));
    }

    #[test]
    fn placement() {
        let c = PopupConfig::default();
        assert_eq!(
            c.place((1920.0, 1080.0), (440.0, 300.0)),
            (1920.0 - 456.0, 1080.0 - 356.0)
        );
        let c = PopupConfig {
            x: Some(10),
            y: Some(20),
            ..Default::default()
        };
        assert_eq!(c.place((1920.0, 1080.0), (440.0, 300.0)), (10.0, 20.0));
        let c = PopupConfig {
            position: Corner::TopLeft,
            ..Default::default()
        };
        assert_eq!(c.place((800.0, 600.0), (440.0, 300.0)), (16.0, 16.0));
    }
}
