//! OS keyboard sources (kanata style: all OS keyboard code lives below this module). Each
//! platform implements [`KeySource`]; [`open`] picks the one for this OS. The sources only
//! deliver key events (with a source-device id and the source's clock) and execute the
//! detector's decisions; the decisions themselves are made by the pure
//! [`crate::input::detect::Detector`].

use std::time::Duration;

use super::detect::Action;
use super::keys::KeyEvent;

#[cfg(windows)]
pub mod windows;
#[cfg(target_os = "linux")]
pub mod x11;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: u32,
    /// Human name (X input device name) or device path (Windows Raw Input, contains VID/PID).
    pub name: String,
}

impl DeviceInfo {
    /// The `source` string of scan events: `x11:<id>`, `rawinput:<path>`.
    pub fn label(&self, prefix: &str) -> String {
        format!("{prefix}:{}", self.id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    Key(KeyEvent),
    DeviceAdded(DeviceInfo),
    DeviceRemoved(u32),
    /// These keys of `device` went past the source to the POS (intercept mode: Windows had
    /// dropped the low-level hook; the source has reinstalled it). See `Detector::input_lost`.
    /// `notice`: what the source did about it, for the sync log (once per incident).
    InputLost {
        device: u32,
        leaked: Vec<KeyEvent>,
        notice: Option<String>,
    },
}

pub trait KeySource: Send {
    /// `x11`, `rawinput`.
    fn kind(&self) -> &'static str;
    /// Wait up to `timeout` for the next event.
    fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<SourceEvent>>;
    /// Now, on the clock of the events' `time_ms` (for the detector's ticks).
    fn now_ms(&self) -> u64;
    /// Keyboards currently known.
    fn devices(&self) -> Vec<DeviceInfo>;
    /// Execute intercept decisions (replay / swallow); a listen-only source ignores them.
    fn execute(&mut self, _action: &Action) {}
}

/// The keyboard source for this OS. `display` selects the X display on Linux (default `$DISPLAY`).
pub fn open(display: Option<&str>, intercept: bool) -> anyhow::Result<Box<dyn KeySource>> {
    #[cfg(target_os = "linux")]
    {
        if intercept {
            tracing::warn!("reader mode \"intercept\" needs the Windows low-level hook; on X11 the agent listens only");
        }
        Ok(Box::new(x11::X11Source::connect(display)?))
    }
    #[cfg(windows)]
    {
        let _ = display;
        Ok(Box::new(windows::RawInputSource::start(intercept)?))
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (display, intercept);
        anyhow::bail!("no keyboard-wedge support on this OS")
    }
}
