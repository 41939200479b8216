//! `till-agent`: thin main; everything lives in the library's `cli::main`.
//!
//! On Windows the exe uses the GUI subsystem so that the tray app started at login (HKLM `Run`)
//! opens no console window. CLI subcommands started from a console (`till-agent status --json`
//! in cmd/PowerShell) still print there: `os::attach_parent_console` attaches to the parent's
//! console first thing (a no-op elsewhere).
#![cfg_attr(windows, windows_subsystem = "windows")]
use std::process::ExitCode;

fn main() -> ExitCode {
    till_agent::os::attach_parent_console();
    till_agent::cli::main()
}
