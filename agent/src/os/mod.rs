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
mod winsvc;
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

/// The service's default agent.toml: the same file as [`default_config_path`], found without
/// the environment (Windows: `FOLDERID_ProgramData`; a service's `%ProgramData%` may differ).
pub fn service_config_path() -> PathBuf {
    imp::service_config_path()
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

/// Wait for Ctrl-C, (Unix) SIGTERM, or [`request_exit`].
pub async fn terminate_signal() {
    let mut asked = EXIT.subscribe();
    tokio::select! {
        _ = imp::terminate_signal() => {}
        _ = asked.wait_for(|v| *v) => {}
    }
}

static EXIT: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Make every [`terminate_signal`] of this process fire, as a termination signal would (the
/// session app told by the service to exit for an upgrade).
pub fn request_exit() {
    EXIT.send_replace(true);
}

/// Start `cmd` so that it outlives this process and its console / terminal: Windows
/// `DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP`; Unix a process group of its own.
pub fn spawn_detached(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    imp::spawn_detached(cmd)
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

/// A connected local stream between the service and a session app (`ipc`).
pub trait IpcStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> IpcStream for T {}

/// Env override of the service endpoint (tests; two services on one machine).
pub const IPC_ENDPOINT_ENV: &str = "TILL_AGENT_ENDPOINT";

/// The service's endpoint: `TILL_AGENT_ENDPOINT`, else `\\.\pipe\till-agent-service` on Windows,
/// `<data_dir>/till-agent.sock` elsewhere.
pub fn ipc_endpoint(data_dir: &Path) -> String {
    match std::env::var(IPC_ENDPOINT_ENV) {
        Ok(e) if !e.trim().is_empty() => e,
        _ => imp::default_ipc_endpoint(data_dir),
    }
}

/// The service side of the endpoint: a named pipe whose security descriptor is
/// [`PIPE_SDDL`] (Windows), a Unix socket (mode 0660) elsewhere.
pub struct IpcListener(imp::IpcListener);

/// Windows: who may open the service's pipe — SYSTEM, administrators and the service's own account
/// (LocalService, which creates the pipe instances) fully, interactive users
/// read/write (a network logon, a service or a batch job is none of these); protected (no
/// inherited entries).
pub const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;LS)(A;;GRGW;;;IU)";

impl IpcListener {
    /// Bind the endpoint. Fails if another service already serves it.
    pub fn bind(endpoint: &str) -> std::io::Result<IpcListener> {
        imp::IpcListener::bind(endpoint).map(IpcListener)
    }

    pub async fn accept(&mut self) -> std::io::Result<Box<dyn IpcStream>> {
        self.0.accept().await
    }
}

/// Connect to the service's endpoint.
pub async fn ipc_connect(endpoint: &str) -> std::io::Result<Box<dyn IpcStream>> {
    imp::ipc_connect(endpoint).await
}

/// Windows: the security descriptor of the pipe `endpoint` read back from the system, as SDDL
/// (`GetSecurityInfo` + `ConvertSecurityDescriptorToStringSecurityDescriptorW`). Unix: the
/// socket file's mode, e.g. `0660`.
pub fn ipc_endpoint_security(endpoint: &str) -> std::io::Result<String> {
    imp::ipc_endpoint_security(endpoint)
}

/// Levels of [`event_log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventLevel {
    Info,
    Warning,
    Error,
}

/// Event Log source name of the service (Windows `Application` log).
pub const EVENT_SOURCE: &str = "TillAgent";

/// Windows: write to the Event Log (source [`EVENT_SOURCE`]); event ids: 1000 start failure,
/// 1001 started, 1002 stopped. Elsewhere: nothing (the service's stderr is the journal).
pub fn event_log(level: EventLevel, id: u32, message: &str) {
    imp::event_log(level, id, message)
}

/// How the service body is told to stop.
pub type ServiceStop = tokio::sync::watch::Receiver<bool>;
/// The service body: runs until its `ServiceStop` turns true.
pub type ServiceBody = Box<dyn FnOnce(ServiceStop) -> anyhow::Result<()> + Send>;

/// Is there a service control manager to hand the process to (Windows)?
pub const HAS_SERVICE_MANAGER: bool = cfg!(windows);

/// Windows: connect to the service control manager as service [`SERVICE_NAME`] and run `body`
/// until the SCM says stop (reporting start pending → running → stopped). Fails at once when
/// the process was not started by the SCM. Elsewhere: an error (run the body in the foreground).
pub fn run_as_service(body: ServiceBody) -> anyhow::Result<()> {
    imp::run_as_service(body)
}

/// The service's name in the service control manager.
pub const SERVICE_NAME: &str = "TillAgent";

/// Where the till token lives at machine scope: Windows — a DPAPI blob sealed with the machine
/// key (`CRYPTPROTECT_LOCAL_MACHINE`) in `<data_dir>/till-token.dpapi`, whose file ACL admits
/// SYSTEM and administrators only. `None` elsewhere (the OS keyring is used).
pub fn machine_token_store(data_dir: &Path) -> Option<Box<dyn SecretStore>> {
    imp::machine_token_store(data_dir)
}

/// A secret kept by the OS for the machine (not for a user).
pub trait SecretStore {
    /// `Ok(None)` when nothing is stored.
    fn load(&self) -> anyhow::Result<Option<String>>;
    fn store(&self, secret: &str) -> anyhow::Result<()>;
    fn describe(&self) -> String;
}

/// Windows: give the data folder its access rules (the service runs this at each start):
/// SYSTEM and administrators full control; interactive users read `agent.toml` and `logs\`
/// only — `outbox.db`, `cache.db` and the token are theirs to neither read nor write. Returns
/// what was set, for the log. Elsewhere: nothing (`Ok(None)`).
pub fn secure_data_dir(data_dir: &Path) -> anyhow::Result<Option<String>> {
    imp::secure_data_dir(data_dir)
}
