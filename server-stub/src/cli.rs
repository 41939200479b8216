//! Command line: `serve`, `seed`, `till add|revoke`, `openapi`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use protocol::{StoreId, TillId};

use crate::http::{router, AppState};
use crate::store::sqlite::SqliteRepo;

#[derive(Parser, Debug)]
#[command(
    name = "server-stub",
    version,
    about = "The central loyalty server for development, demos and tests (real HTTP, real SQLite)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// SQLite database file (created and migrated on first start).
        #[arg(long, default_value = "server.db")]
        db: PathBuf,
        /// Bearer token for /admin/... endpoints (admin endpoints are off without one).
        #[arg(long, env = "SERVER_STUB_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Load a program, customers, cards and migration codes from a JSON fixture (upsert).
    Seed {
        #[arg(long, default_value = "server.db")]
        db: PathBuf,
        file: PathBuf,
    },
    /// Till credentials.
    Till {
        #[command(subcommand)]
        command: TillCommand,
    },
    /// Print the OpenAPI document (regenerate the checked-in copy:
    /// `cargo run -p server-stub -- openapi > server-stub/openapi.json`).
    Openapi,
}

#[derive(Subcommand, Debug)]
pub enum TillCommand {
    /// Issue a token for a till (printed once, on the last line; stored only as SHA-256).
    Add {
        #[arg(long, default_value = "server.db")]
        db: PathBuf,
        #[arg(long)]
        store: String,
        #[arg(long)]
        till: String,
    },
    /// Revoke a till's token.
    Revoke {
        #[arg(long, default_value = "server.db")]
        db: PathBuf,
        #[arg(long)]
        store: String,
        #[arg(long)]
        till: String,
    },
}

fn open(db: &std::path::Path) -> anyhow::Result<SqliteRepo> {
    SqliteRepo::open(db).with_context(|| format!("opening database {}", db.display()))
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            db,
            admin_token,
        } => {
            let repo = open(&db)?;
            let identity = crate::identity::Identity::establish(&db, &repo)?;
            tracing::info!(server_id = %identity.id, "server identity");
            let repo = Arc::new(repo);
            let admin_token = admin_token.filter(|t| !t.trim().is_empty());
            if admin_token.is_none() {
                tracing::warn!(
                    "no admin token: /admin endpoints answer 401 (set --admin-token or SERVER_STUB_ADMIN_TOKEN)"
                );
            }
            let state = AppState {
                repo: repo.clone(),
                admin_token,
                server_id: Some(identity.id.as_str().into()),
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.spawn(settle_tags(repo.clone()));
            rt.spawn(note_watermark(repo, identity));
            rt.block_on(serve(listen, state, db))
        }
        Command::Seed { db, file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let seed: crate::service::SeedFile = crate::http::extract::parse_json(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message))?;
            let repo = open(&db)?;
            let summary = crate::service::seed(&repo, &seed).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "seeded {}: program version {}, {} customers, {} cards, {} migration codes",
                db.display(),
                summary.program_version,
                summary.customers,
                summary.cards,
                summary.migration_codes
            );
            Ok(())
        }
        Command::Till {
            command: TillCommand::Add { db, store, till },
        } => {
            let repo = open(&db)?;
            let token = crate::service::till_add(&repo, &StoreId(store.clone()), &TillId(till.clone()))?;
            eprintln!("till {store}/{till} added; the token is shown once:");
            println!("{token}");
            Ok(())
        }
        Command::Till {
            command: TillCommand::Revoke { db, store, till },
        } => {
            let repo = open(&db)?;
            if crate::service::till_revoke(&repo, &StoreId(store.clone()), &TillId(till.clone()))? {
                println!("till {store}/{till} revoked");
                Ok(())
            } else {
                anyhow::bail!("no active till {store}/{till} in {}", db.display())
            }
        }
        Command::Openapi => {
            print!("{}", crate::openapi::document_pretty());
            Ok(())
        }
    }
}

/// Receipt tags with a total whose receipt never came count as totals-only receipts once the
/// program's wait is over: checked every 5 s (and after each sync batch).
async fn settle_tags(repo: Arc<SqliteRepo>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let r = repo.clone();
        match tokio::task::spawn_blocking(move || crate::purchases::settle_due(&*r, chrono::Utc::now())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not settle the receipt tags"),
            Err(e) => tracing::error!(error = %e, "receipt tag task failed"),
        }
    }
}

/// Keeps the identity sidecar's watermark current (every 5 s) so a later restore is noticed.
async fn note_watermark(repo: Arc<SqliteRepo>, identity: crate::identity::Identity) {
    let mut last = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let (r, i) = (repo.clone(), identity.clone());
        let noted = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let wm = r.watermark()?;
            if last != Some(wm) {
                i.note(wm)?;
            }
            Ok(wm)
        })
        .await;
        match noted {
            Ok(Ok(wm)) => last = Some(wm),
            Ok(Err(e)) => tracing::error!(error = %e, "could not record the database watermark"),
            Err(e) => tracing::error!(error = %e, "watermark task failed"),
        }
    }
}

async fn serve(listen: SocketAddr, state: AppState, db: PathBuf) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %db.display(), "server-stub listening");
    println!("server-stub listening on http://{addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(crate::os::shutdown_signal())
        .await?;
    tracing::info!("server-stub stopped");
    Ok(())
}
