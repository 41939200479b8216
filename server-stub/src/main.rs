use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
