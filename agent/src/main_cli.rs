//! `till-agent-cli`: the console-subsystem companion of `till-agent.exe` (same library, same
//! commands). Typed in cmd or PowerShell, the console waits for it and its output lands in the
//! caller's console or pipe; `login` reads the token from the console without echo. On Linux it
//! is the same program as `till-agent`.
use std::process::ExitCode;

fn main() -> ExitCode {
    till_agent::cli::main()
}
