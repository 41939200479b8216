//! Windows: the service side of the split — the service control manager (windows-service), the
//! named pipe with its security descriptor, the Event Log, the till token sealed with DPAPI's
//! machine key, and the data folder's access rules. Re-exported by `windows.rs`.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use windows_sys::Win32::Foundation::{LocalFree, ERROR_PIPE_BUSY, ERROR_SUCCESS, HLOCAL};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    GetSecurityInfo, SetNamedSecurityInfoW, SE_FILE_OBJECT, SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{
    GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES,
};

use super::{EventLevel, IpcStream, SecretStore, ServiceBody, EVENT_SOURCE, PIPE_SDDL, SERVICE_NAME};

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn wide_path(p: &Path) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    p.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// A security descriptor built from SDDL (freed on drop).
struct Sd(PSECURITY_DESCRIPTOR);

impl Sd {
    fn from_sddl(sddl: &str) -> std::io::Result<Sd> {
        let w = wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: NUL-terminated string, out-pointer to a local; freed with LocalFree in Drop.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(w.as_ptr(), 1, &mut sd, std::ptr::null_mut())
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Sd(sd))
    }

    fn dacl(&self) -> std::io::Result<*mut ACL> {
        let (mut present, mut defaulted) = (0, 0);
        let mut acl: *mut ACL = std::ptr::null_mut();
        // SAFETY: a valid descriptor; out-pointers to locals.
        let ok = unsafe { GetSecurityDescriptorDacl(self.0, &mut present, &mut acl, &mut defaulted) };
        if ok == 0 || present == 0 {
            return Err(std::io::Error::other("the descriptor has no DACL"));
        }
        Ok(acl)
    }
}

impl Drop for Sd {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}

// ---------------------------------------------------------------------------------------------
// The named pipe

pub fn default_ipc_endpoint(_data_dir: &Path) -> String {
    r"\\.\pipe\till-agent-service".to_string()
}

pub struct IpcListener {
    name: String,
    sd: Sd,
    next: tokio::net::windows::named_pipe::NamedPipeServer,
}

impl IpcListener {
    fn create(name: &str, sd: &Sd, first: bool) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeServer> {
        let mut sa = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd.0,
            bInheritHandle: 0,
        };
        // SAFETY: `sa` and the descriptor it points to live across the call.
        unsafe {
            tokio::net::windows::named_pipe::ServerOptions::new()
                .first_pipe_instance(first)
                .reject_remote_clients(true)
                .create_with_security_attributes_raw(
                    name,
                    &mut sa as *mut SECURITY_ATTRIBUTES as *mut core::ffi::c_void,
                )
        }
    }

    pub fn bind(endpoint: &str) -> std::io::Result<IpcListener> {
        let sd = Sd::from_sddl(PIPE_SDDL)?;
        let next = Self::create(endpoint, &sd, true).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{endpoint}: {e} (does another till-agent service run?)"),
            )
        })?;
        Ok(IpcListener {
            name: endpoint.to_string(),
            sd,
            next,
        })
    }

    pub async fn accept(&mut self) -> std::io::Result<Box<dyn IpcStream>> {
        self.next.connect().await?;
        let fresh = Self::create(&self.name, &self.sd, false)?;
        let connected = std::mem::replace(&mut self.next, fresh);
        Ok(Box::new(connected))
    }
}

// SAFETY: the descriptor is only read (by CreateNamedPipeW) and freed once.
unsafe impl Send for Sd {}
unsafe impl Sync for Sd {}

pub async fn ipc_connect(endpoint: &str) -> std::io::Result<Box<dyn IpcStream>> {
    for _ in 0..50 {
        match tokio::net::windows::named_pipe::ClientOptions::new().open(endpoint) {
            Ok(c) => return Ok(Box::new(c)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{endpoint}: all pipe instances busy"),
    ))
}

/// The pipe's DACL as the system holds it, read through a client handle.
pub fn ipc_endpoint_security(endpoint: &str) -> std::io::Result<String> {
    use std::os::windows::io::AsRawHandle;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(endpoint)?;
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: an open handle; out-pointer to a local descriptor freed below.
    let rc = unsafe {
        GetSecurityInfo(
            f.as_raw_handle() as _,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    let sd = Sd(sd);
    let mut s: windows_sys::core::PWSTR = std::ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: a valid descriptor; the string is freed with LocalFree.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(sd.0, 1, DACL_SECURITY_INFORMATION, &mut s, &mut len)
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `s` holds `len` UTF-16 units (the count may include the NUL).
    let text = unsafe { String::from_utf16_lossy(std::slice::from_raw_parts(s, len as usize)) };
    // SAFETY: allocated by the conversion above.
    unsafe { LocalFree(s as HLOCAL) };
    Ok(text.trim_end_matches('\0').to_string())
}

// ---------------------------------------------------------------------------------------------
// Event Log

pub fn event_log(level: EventLevel, id: u32, message: &str) {
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE,
        EVENTLOG_WARNING_TYPE,
    };
    let source = wide(EVENT_SOURCE);
    let text = wide(message);
    let kind = match level {
        EventLevel::Info => EVENTLOG_INFORMATION_TYPE,
        EventLevel::Warning => EVENTLOG_WARNING_TYPE,
        EventLevel::Error => EVENTLOG_ERROR_TYPE,
    };
    // SAFETY: NUL-terminated strings alive across the calls; the handle is deregistered once.
    unsafe {
        let h = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
        if h.is_null() {
            tracing::warn!(
                "cannot open the Event Log source {EVENT_SOURCE}: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        let strings = [text.as_ptr()];
        if ReportEventW(
            h,
            kind,
            0,
            id,
            std::ptr::null_mut(),
            1,
            0,
            strings.as_ptr(),
            std::ptr::null(),
        ) == 0
        {
            tracing::warn!("cannot write to the Event Log: {}", std::io::Error::last_os_error());
        }
        DeregisterEventSource(h);
    }
}

// ---------------------------------------------------------------------------------------------
// The service control manager

static BODY: Mutex<Option<ServiceBody>> = Mutex::new(None);

windows_service::define_windows_service!(ffi_service_main, service_main);

pub fn run_as_service(body: ServiceBody) -> anyhow::Result<()> {
    *BODY.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
    windows_service::service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|e| {
        anyhow::anyhow!(
            "not started by the service control manager ({e}); `till-agent service --console` runs it in the foreground"
        )
    })
}

fn service_main(_args: Vec<OsString>) {
    use windows_service::service::{
        ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    let Some(body) = BODY.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handler = move |c| match c {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = match service_control_handler::register(SERVICE_NAME, handler) {
        Ok(s) => s,
        Err(e) => {
            event_log(
                EventLevel::Error,
                1000,
                &format!("cannot register the service control handler: {e}"),
            );
            return;
        }
    };
    let report = |state, code, accept| {
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: code,
            checkpoint: 0,
            wait_hint: Duration::from_secs(15),
            process_id: None,
        });
    };
    // Running at once: the body serves the pipe and retries a failed start on its own.
    report(
        ServiceState::Running,
        ServiceExitCode::Win32(0),
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
    );
    let code = match body(rx) {
        Ok(()) => ServiceExitCode::Win32(0),
        Err(e) => {
            event_log(EventLevel::Error, 1000, &format!("till-agent service failed: {e:#}"));
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    report(ServiceState::Stopped, code, ServiceControlAccept::empty());
}

// ---------------------------------------------------------------------------------------------
// The till token: DPAPI, machine key

/// Binds the blob to this use (another program's DPAPI blob is not accepted as the token).
const ENTROPY: &[u8] = b"till-agent/till-token/v1";
/// The token file: SYSTEM, administrators and the service's account (LocalService) only.
const TOKEN_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;LS)";

pub fn machine_token_store(data_dir: &Path) -> Option<Box<dyn SecretStore>> {
    Some(Box::new(DpapiFile {
        path: data_dir.join("till-token.dpapi"),
    }))
}

struct DpapiFile {
    path: PathBuf,
}

fn blob(b: &[u8]) -> windows_sys::Win32::Security::Cryptography::CRYPT_INTEGER_BLOB {
    windows_sys::Win32::Security::Cryptography::CRYPT_INTEGER_BLOB {
        cbData: b.len() as u32,
        pbData: b.as_ptr() as *mut u8,
    }
}

/// Take the bytes of a blob DPAPI allocated, and free it.
fn take(out: windows_sys::Win32::Security::Cryptography::CRYPT_INTEGER_BLOB) -> Vec<u8> {
    // SAFETY: DPAPI returned `cbData` bytes at `pbData`, freed with LocalFree once.
    unsafe {
        let v = std::slice::from_raw_parts(out.pbData, out.cbData as usize).to_vec();
        LocalFree(out.pbData as HLOCAL);
        v
    }
}

impl SecretStore for DpapiFile {
    fn load(&self) -> anyhow::Result<Option<String>> {
        use windows_sys::Win32::Security::Cryptography::{
            CryptUnprotectData, CRYPTPROTECT_UI_FORBIDDEN, CRYPT_INTEGER_BLOB,
        };
        let sealed = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let (input, entropy) = (blob(&sealed), blob(ENTROPY));
        let mut out = CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: std::ptr::null_mut(),
        };
        // SAFETY: input blobs point into live slices; `out` is allocated by DPAPI and taken once.
        let ok = unsafe {
            CryptUnprotectData(
                &input,
                std::ptr::null_mut(),
                &entropy,
                std::ptr::null(),
                std::ptr::null(),
                CRYPTPROTECT_UI_FORBIDDEN,
                &mut out,
            )
        };
        if ok == 0 {
            bail!(
                "{}: cannot unseal the till token ({}); store it again with `till-agent login`",
                self.path.display(),
                std::io::Error::last_os_error()
            );
        }
        let plain = take(out);
        Ok(Some(
            String::from_utf8(plain).context("the unsealed till token is not UTF-8")?,
        ))
    }

    fn store(&self, secret: &str) -> anyhow::Result<()> {
        use windows_sys::Win32::Security::Cryptography::{
            CryptProtectData, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN, CRYPT_INTEGER_BLOB,
        };
        let (input, entropy) = (blob(secret.as_bytes()), blob(ENTROPY));
        let descr = wide("till-agent till token");
        let mut out = CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: std::ptr::null_mut(),
        };
        // SAFETY: as in `load`.
        let ok = unsafe {
            CryptProtectData(
                &input,
                descr.as_ptr(),
                &entropy,
                std::ptr::null(),
                std::ptr::null(),
                CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN,
                &mut out,
            )
        };
        if ok == 0 {
            bail!("cannot seal the till token: {}", std::io::Error::last_os_error());
        }
        let sealed = take(out);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("dpapi.tmp");
        std::fs::write(&tmp, &sealed).with_context(|| format!("writing {}", tmp.display()))?;
        set_dacl(&tmp, TOKEN_SDDL)?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} (DPAPI, machine key)", self.path.display())
    }
}

// ---------------------------------------------------------------------------------------------
// The data folder's access rules

fn set_dacl(path: &Path, sddl: &str) -> anyhow::Result<()> {
    let sd = Sd::from_sddl(sddl).with_context(|| format!("SDDL {sddl}"))?;
    let acl = sd.dacl()?;
    let w = wide_path(path);
    // SAFETY: NUL-terminated path; the ACL lives in `sd` across the call.
    let rc = unsafe {
        SetNamedSecurityInfoW(
            w.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            acl,
            std::ptr::null(),
        )
    };
    if rc != ERROR_SUCCESS {
        bail!("{}: {}", path.display(), std::io::Error::from_raw_os_error(rc as i32));
    }
    Ok(())
}

/// The folder: SYSTEM, administrators and the service's account (LocalService) full (inherited by
/// everything in it); interactive users
/// list the folder itself only (read + execute on it, not inherited).
const DATA_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;LS)(A;;0x1200a9;;;IU)";
/// agent.toml and logs\: interactive users may read (support looks at them).
const READABLE_FILE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;LS)(A;;FR;;;IU)";
const READABLE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;LS)(A;OICI;0x1200a9;;;IU)";

pub fn secure_data_dir(data_dir: &Path) -> anyhow::Result<Option<String>> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    set_dacl(data_dir, DATA_SDDL)?;
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    set_dacl(&logs, READABLE_DIR_SDDL)?;
    let toml = data_dir.join("agent.toml");
    if toml.exists() {
        set_dacl(&toml, READABLE_FILE_SDDL)?;
    }
    let token = data_dir.join("till-token.dpapi");
    if token.exists() {
        set_dacl(&token, TOKEN_SDDL)?;
    }
    Ok(Some(format!(
        "access rules set: folder {DATA_SDDL}; agent.toml {READABLE_FILE_SDDL}; logs {READABLE_DIR_SDDL}"
    )))
}
