//! Windows implementations of [`super`]'s facade.
use std::path::{Path, PathBuf};

use super::SettingsStore;

pub use super::winsvc::*;

pub fn installer_settings() -> Option<Box<dyn SettingsStore>> {
    Some(Box::new(registry::Registry))
}

pub fn default_config_path() -> PathBuf {
    let base = std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
    base.join("TillAgent").join("agent.toml")
}

/// The service's: the known folder, not `%ProgramData%` (a wine service's variable points to
/// `C:\users\Public`). Not for the CLI: shell32 starts wine's desktop process, which inherits
/// the caller's stdout.
pub fn service_config_path() -> PathBuf {
    match program_data() {
        Some(base) => base.join("TillAgent").join("agent.toml"),
        None => default_config_path(),
    }
}

/// `FOLDERID_ProgramData` (`C:\ProgramData`).
fn program_data() -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath, KF_FLAG_DEFAULT};
    let mut p: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: a static GUID, out-pointer to a local; the string is freed with CoTaskMemFree.
    let hr = unsafe {
        SHGetKnownFolderPath(
            &FOLDERID_ProgramData,
            KF_FLAG_DEFAULT as u32,
            std::ptr::null_mut(),
            &mut p,
        )
    };
    let out = (hr >= 0 && !p.is_null()).then(|| {
        // SAFETY: a NUL-terminated string from the call above.
        let len = (0..).take_while(|&i| unsafe { *p.add(i) } != 0).count();
        // SAFETY: `len` units before the NUL.
        PathBuf::from(std::ffi::OsString::from_wide(unsafe {
            std::slice::from_raw_parts(p, len)
        }))
    });
    // SAFETY: allocated by SHGetKnownFolderPath (null is allowed).
    unsafe { CoTaskMemFree(p as *const core::ffi::c_void) };
    out
}

pub fn exclusive_open_ok(p: &Path) -> bool {
    use std::os::windows::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).share_mode(0).open(p).is_ok()
}

pub fn writer_holds(p: &Path) -> Option<bool> {
    Some(!exclusive_open_ok(p))
}

pub fn ui_langid() -> Option<u16> {
    // SAFETY: no arguments, returns a LANGID.
    Some(unsafe { windows_sys::Win32::Globalization::GetUserDefaultUILanguage() })
}

pub async fn terminate_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

pub fn open_with_desktop(p: &Path) -> std::io::Result<()> {
    std::process::Command::new("explorer").arg(p).spawn().map(drop)
}

pub fn serial_port_missing(_port: &str) -> bool {
    false
}

/// Attach stdout/stderr to the console of the process that started us, if it has one.
/// When std handles were redirected by the parent (pipes, files — e.g. a test or a script),
/// they are valid already and are left alone: `AttachConsole` would not replace them anyway
/// but checking first avoids a pointless console attach for headless runs.
pub fn spawn_detached(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    use std::os::windows::process::CommandExt;
    use windows_sys::Win32::System::Threading::{CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS};
    cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP).spawn()
}

pub fn attach_parent_console() {
    use windows_sys::Win32::System::Console::{
        AttachConsole, GetStdHandle, ATTACH_PARENT_PROCESS, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE,
    };
    // SAFETY: plain Win32 calls without pointers; failure (no parent console) is harmless.
    unsafe {
        let out = GetStdHandle(STD_OUTPUT_HANDLE);
        let err = GetStdHandle(STD_ERROR_HANDLE);
        let has = |h: windows_sys::Win32::Foundation::HANDLE| !h.is_null() && h as isize != -1;
        if has(out) && has(err) {
            return;
        }
        AttachConsole(ATTACH_PARENT_PROCESS);
    }
}

pub mod registry {
    //! `HKLM\Software\TillAgent` in the 64-bit registry view.
    use anyhow::bail;
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        RegCloseKey, RegDeleteValueW, RegGetValueW, RegOpenKeyExW, HKEY, HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE,
        KEY_SET_VALUE, KEY_WOW64_64KEY, RRF_RT_REG_SZ,
    };

    use crate::os::{SettingsStore, REGISTRY_KEY};

    pub struct Registry;

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(Some(0)).collect()
    }

    /// An open key, closed on drop. `None` when the key does not exist.
    struct Key(HKEY);
    impl Key {
        fn open(access: u32) -> anyhow::Result<Option<Key>> {
            let path = wide(REGISTRY_KEY);
            let mut h: HKEY = std::ptr::null_mut();
            // SAFETY: valid NUL-terminated path, out-pointer to a local.
            let rc = unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, path.as_ptr(), 0, access | KEY_WOW64_64KEY, &mut h) };
            match rc {
                ERROR_SUCCESS => Ok(Some(Key(h))),
                ERROR_FILE_NOT_FOUND => Ok(None),
                e => bail!("opening HKLM\\{REGISTRY_KEY}: Windows error {e}"),
            }
        }
    }
    impl Drop for Key {
        fn drop(&mut self) {
            // SAFETY: the handle came from RegOpenKeyExW and is closed once.
            unsafe { RegCloseKey(self.0) };
        }
    }

    impl SettingsStore for Registry {
        fn get(&self, name: &str) -> anyhow::Result<Option<String>> {
            let Some(key) = Key::open(KEY_QUERY_VALUE)? else {
                return Ok(None);
            };
            let value = wide(name);
            let mut bytes: u32 = 0;
            // SAFETY: size query with null data pointer.
            let rc = unsafe {
                RegGetValueW(
                    key.0,
                    std::ptr::null(),
                    value.as_ptr(),
                    RRF_RT_REG_SZ,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut bytes,
                )
            };
            match rc {
                ERROR_SUCCESS => {}
                ERROR_FILE_NOT_FOUND => return Ok(None),
                e => bail!("reading HKLM\\{REGISTRY_KEY}\\{name}: Windows error {e}"),
            }
            let mut buf = vec![0u16; bytes as usize / 2 + 1];
            let mut bytes = (buf.len() * 2) as u32;
            // SAFETY: buf holds `bytes` bytes.
            let rc = unsafe {
                RegGetValueW(
                    key.0,
                    std::ptr::null(),
                    value.as_ptr(),
                    RRF_RT_REG_SZ,
                    std::ptr::null_mut(),
                    buf.as_mut_ptr().cast(),
                    &mut bytes,
                )
            };
            if rc != ERROR_SUCCESS {
                bail!("reading HKLM\\{REGISTRY_KEY}\\{name}: Windows error {rc}");
            }
            buf.truncate(bytes as usize / 2);
            while buf.last() == Some(&0) {
                buf.pop();
            }
            let s = String::from_utf16(&buf)
                .map_err(|_| anyhow::anyhow!("HKLM\\{REGISTRY_KEY}\\{name} is not valid UTF-16"))?;
            Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty()))
        }

        fn delete(&self, name: &str) -> anyhow::Result<()> {
            let Some(key) = Key::open(KEY_SET_VALUE)? else {
                return Ok(());
            };
            let value = wide(name);
            // SAFETY: open key, NUL-terminated name.
            match unsafe { RegDeleteValueW(key.0, value.as_ptr()) } {
                ERROR_SUCCESS | ERROR_FILE_NOT_FOUND => Ok(()),
                5 => bail!(
                    "access denied deleting HKLM\\{REGISTRY_KEY}\\{name} (run the agent once as an administrator)"
                ),
                e => bail!("deleting HKLM\\{REGISTRY_KEY}\\{name}: Windows error {e}"),
            }
        }

        fn describe(&self) -> String {
            format!("HKLM\\{REGISTRY_KEY}")
        }
    }
}
