//! Everything that differs between Windows and Unix, behind one facade (espanso style): this
//! file declares the functions and picks the implementation with one `cfg` each; `windows.rs` and
//! `unix.rs` hold the code. The rest of the agent calls `crate::os::…` and has no platform `cfg`
//! (the card readers' key sources live in `input::oskbd`, the popup's window rules in
//! `ui::platform`).
use std::path::{Path, PathBuf};

pub mod instance;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use self::unix as imp;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use self::windows as imp;

/// Registry key (HKLM, 64-bit view) the MSI writes.
pub const REGISTRY_KEY: &str = r"Software\TillAgent";

/// Where the installer left its settings (the registry on Windows).
pub trait SettingsStore {
    /// The value, `None` when absent or empty.
    fn get(&self, name: &str) -> anyhow::Result<Option<String>>;
    /// Delete the value (absent is fine).
    fn delete(&self, name: &str) -> anyhow::Result<()>;
    /// Human-readable location for messages.
    fn describe(&self) -> String;
}

/// The installer's settings store of this platform: the registry on Windows, none elsewhere.
pub fn installer_settings() -> Option<Box<dyn SettingsStore>> {
    imp::installer_settings()
}

/// Default config file: `%ProgramData%\TillAgent\agent.toml` on Windows;
/// `$XDG_CONFIG_HOME/till-agent/agent.toml` (or `~/.config/…`) elsewhere.
pub fn default_config_path() -> PathBuf {
    imp::default_config_path()
}

/// Can `p` be opened exclusively now? On Windows a file the POS still writes cannot; elsewhere
/// there is no such lock and the answer is always yes (the watcher's size/mtime settling decides).
pub fn exclusive_open_ok(p: &Path) -> bool {
    imp::exclusive_open_ok(p)
}

/// Does some process (the POS) still hold `p` open for writing? `Some(false)` only when the OS can
/// tell for sure: Linux takes and at once drops a read lease (refused while anyone has the file open
/// for writing; needs the file's owner or CAP_LEASE and a local file system), Windows an exclusive
/// open. `None` when it cannot tell (other owner, network share, other Unix): the caller waits for
/// the file to settle instead.
pub fn writer_holds(p: &Path) -> Option<bool> {
    imp::writer_holds(p)
}

/// The user's UI language as a Windows LANGID (`GetUserDefaultUILanguage`); `None` on Unix,
/// where the locale variables (`LC_ALL`, `LC_MESSAGES`, `LANG`) decide.
pub fn ui_langid() -> Option<u16> {
    imp::ui_langid()
}

/// Wait for Ctrl-C or (Unix) SIGTERM.
pub async fn terminate_signal() {
    imp::terminate_signal().await
}

/// Open a file or folder with the desktop's handler (Explorer, `xdg-open`).
pub fn open_with_desktop(p: &Path) -> std::io::Result<()> {
    imp::open_with_desktop(p)
}

/// After a serial port failed to open with an unspecific error: is the port's device missing?
/// (Unix: the device file is gone; Windows has no file to look at and says so in the error.)
pub fn serial_port_missing(port: &str) -> bool {
    imp::serial_port_missing(port)
}

/// Windows: attach stdout/stderr to the console of the process that started us (the exe uses
/// the GUI subsystem). Nothing elsewhere.
pub fn attach_parent_console() {
    imp::attach_parent_console()
}
