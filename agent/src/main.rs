//! `till-agent`: thin main; everything lives in the library's `cli::main`.
//!
//! On Windows the exe uses the GUI subsystem so that the tray app started at login (HKLM `Run`)
//! opens no console window. CLI subcommands started from a console (`till-agent status --json`
//! in cmd/PowerShell) still print there: we attach to the parent's console first thing.
#![cfg_attr(windows, windows_subsystem = "windows")]
use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(windows)]
    attach_parent_console();
    till_agent::cli::main()
}

/// Attach stdout/stderr to the console of the process that started us, if it has one.
/// When std handles were redirected by the parent (pipes, files — e.g. a test or a script),
/// they are valid already and are left alone: `AttachConsole` would not replace them anyway
/// but checking first avoids a pointless console attach for headless runs.
#[cfg(windows)]
fn attach_parent_console() {
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
