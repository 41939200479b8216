//! Unix implementations of [`super`]'s facade.
use std::path::{Path, PathBuf};

use super::SettingsStore;

pub fn installer_settings() -> Option<Box<dyn SettingsStore>> {
    None
}

pub fn default_config_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("till-agent").join("agent.toml")
}

pub fn exclusive_open_ok(_p: &Path) -> bool {
    true
}

pub fn ui_langid() -> Option<u16> {
    None
}

pub async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn open_with_desktop(p: &Path) -> std::io::Result<()> {
    std::process::Command::new("xdg-open").arg(p).spawn().map(drop)
}

pub fn serial_port_missing(port: &str) -> bool {
    !Path::new(port).exists()
}

pub fn attach_parent_console() {}
