use std::process::ExitCode;

fn main() -> ExitCode {
    println!("server-stub {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}
