use std::process::ExitCode;

use clap::Parser;

/// The server's allocator. A sync batch's ingest makes and frees a parsed receipt's many small
/// parts several times over; with glibc's malloc that was about 15 % of the ingest's CPU, with
/// mimalloc the ingest needs ≈ 8 % less CPU (scripts/bench.sh, `server-stub ingest`, which uses
/// the same allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    server_stub::os::no_transparent_huge_pages();
    let cli = server_stub::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        server_stub::cli::LogFormat::Json => logs.json().flatten_event(true).with_current_span(true).init(),
        server_stub::cli::LogFormat::Text => logs.init(),
    }
    match server_stub::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server-stub: {e:#}");
            ExitCode::FAILURE
        }
    }
}
