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

pub fn service_config_path() -> PathBuf {
    default_config_path()
}

pub fn exclusive_open_ok(_p: &Path) -> bool {
    true
}

#[cfg(target_os = "linux")]
pub fn writer_holds(p: &Path) -> Option<bool> {
    use std::os::fd::AsRawFd;
    // A lease holder is sent SIGIO when another process opens the file while the lease is held
    // (for the microseconds between taking and dropping it); its default action ends the process.
    static IGNORE_SIGIO: std::sync::Once = std::sync::Once::new();
    IGNORE_SIGIO.call_once(|| {
        // SAFETY: installs SIG_IGN for SIGIO, which nothing else in the agent uses.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    });
    let f = std::fs::File::open(p).ok()?;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_SETLEASE takes an int argument.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Some(false);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // EAGAIN: open for writing by someone (or a conflicting lease).
        Some(libc::EAGAIN) => Some(true),
        // EACCES (not the owner, no CAP_LEASE), EINVAL/ENOLCK (file system without leases): unknown.
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
pub fn writer_holds(_p: &Path) -> Option<bool> {
    None
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

pub fn spawn_detached(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).spawn()
}

pub fn default_ipc_endpoint(data_dir: &Path) -> String {
    data_dir.join("till-agent.sock").to_string_lossy().into_owned()
}

pub struct IpcListener {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

impl IpcListener {
    pub fn bind(endpoint: &str) -> std::io::Result<IpcListener> {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from(endpoint);
        // A socket file left by a killed service: nobody answers on it, so it may go.
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{endpoint}: another till-agent service serves it"),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        Ok(IpcListener { listener, path })
    }

    pub async fn accept(&mut self) -> std::io::Result<Box<dyn super::IpcStream>> {
        let (s, _) = self.listener.accept().await?;
        Ok(Box::new(s))
    }
}

impl Drop for IpcListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub async fn ipc_connect(endpoint: &str) -> std::io::Result<Box<dyn super::IpcStream>> {
    Ok(Box::new(tokio::net::UnixStream::connect(endpoint).await?))
}

pub fn ipc_endpoint_security(endpoint: &str) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    Ok(format!(
        "{:04o}",
        std::fs::metadata(endpoint)?.permissions().mode() & 0o7777
    ))
}

pub fn event_log(_level: super::EventLevel, _id: u32, _message: &str) {}

pub fn run_as_service(_body: super::ServiceBody) -> anyhow::Result<()> {
    anyhow::bail!("no service manager here: run `till-agent service --console` (systemd: as a simple service)")
}

pub fn machine_token_store(_data_dir: &Path) -> Option<Box<dyn super::SecretStore>> {
    None
}

pub fn secure_data_dir(_data_dir: &Path) -> anyhow::Result<Option<String>> {
    Ok(None)
}
