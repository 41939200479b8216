//! `till-agent`: thin main; everything lives in the library's `cli::run`.
use std::process::ExitCode;

fn main() -> ExitCode {
    till_agent::cli::main()
}
