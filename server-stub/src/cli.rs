//! Command line: `serve`, `seed`, `till add|revoke`, `openapi`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use protocol::{StoreId, TillId};

use crate::http::{router, AppState};
use crate::store::pg::{self, PgRepo};
use crate::store::sqlite::SqliteRepo;
use crate::store::Repository;

#[derive(Parser, Debug)]
#[command(
    name = "server-stub",
    version,
    about = "The central loyalty server for development, demos and tests (real HTTP, real SQLite)"
)]
pub struct Cli {
    /// Log lines as text or as JSON objects (one per line, for a log collector).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SERVER_STUB_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--db`: a SQLite file path (created and migrated on first start), or a PostgreSQL URL
/// `postgres://user[:password]@host[:port]/database` (migrated on start).
const DB_HELP: &str = "SQLite database file, or a PostgreSQL URL postgres://user@host:port/database";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "server.db", help = DB_HELP)]
        db: String,
        /// PostgreSQL connections for writes (reads get max(2, N/4) connections of their own).
        #[arg(long, default_value_t = 16)]
        db_pool: u32,
        /// Sync batches worked on at once (default: the number of cores); more queue until one
        /// is answered, so quotes and token checks keep CPU during a morning storm.
        #[arg(long, env = "SERVER_STUB_INGEST_CONCURRENCY")]
        ingest_concurrency: Option<usize>,
        /// Bearer token for /admin/... endpoints (admin endpoints are off without one).
        #[arg(long, env = "SERVER_STUB_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Load a program, customers, cards and migration codes from a JSON fixture (upsert).
    Seed {
        #[arg(long, default_value = "server.db", help = DB_HELP)]
        db: String,
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
        #[arg(long, default_value = "server.db", help = DB_HELP)]
        db: String,
        #[arg(long)]
        store: String,
        #[arg(long)]
        till: String,
    },
    /// Revoke a till's token.
    Revoke {
        #[arg(long, default_value = "server.db", help = DB_HELP)]
        db: String,
        #[arg(long)]
        store: String,
        #[arg(long)]
        till: String,
    },
}

/// An opened database of either backend.
enum Opened {
    Sqlite(Arc<SqliteRepo>, PathBuf),
    Postgres(Arc<PgRepo>),
}

impl Opened {
    fn repo(&self) -> Arc<dyn Repository> {
        match self {
            Opened::Sqlite(r, _) => r.clone(),
            Opened::Postgres(r) => r.clone(),
        }
    }
}

fn open(db: &str, pool: u32) -> anyhow::Result<Opened> {
    if crate::store::pg::is_url(db) {
        let repo = PgRepo::open(db, pool).with_context(|| format!("opening database {}", pg::redact(db)))?;
        Ok(Opened::Postgres(Arc::new(repo)))
    } else {
        let path = PathBuf::from(db);
        let repo = SqliteRepo::open(&path).with_context(|| format!("opening database {}", path.display()))?;
        Ok(Opened::Sqlite(Arc::new(repo), path))
    }
}

/// The database as named in messages (a URL without its password).
fn shown(db: &str) -> String {
    pg::redact(db)
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            db,
            db_pool,
            ingest_concurrency,
            admin_token,
        } => {
            let opened = open(&db, db_pool)?;
            let identity = match &opened {
                Opened::Sqlite(repo, path) => crate::identity::Identity::establish(path, repo)?,
                Opened::Postgres(repo) => crate::identity::Identity::shared(repo)?,
            };
            tracing::info!(server_id = %identity.id, "server identity");
            let repo = opened.repo();
            let admin_token = admin_token.filter(|t| !t.trim().is_empty());
            if admin_token.is_none() {
                tracing::warn!(
                    "no admin token: /admin endpoints answer 401 (set --admin-token or SERVER_STUB_ADMIN_TOKEN)"
                );
            }
            let ingest = ingest_concurrency.unwrap_or_else(crate::http::state::default_ingest_limit);
            tracing::info!(ingest_concurrency = ingest, "sync batches worked on at once");
            let state =
                AppState::new(repo.clone(), admin_token, Some(identity.id.as_str().into())).with_ingest_limit(ingest);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.spawn(settle_tags(repo.clone()));
            if let Opened::Sqlite(repo, _) = &opened {
                rt.spawn(note_watermark(repo.clone(), identity));
            }
            rt.block_on(serve(listen, state, shown(&db)))
        }
        Command::Seed { db, file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let seed: crate::service::SeedFile = crate::http::extract::parse_json(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message))?;
            let repo = open(&db, 2)?.repo();
            let summary =
                crate::service::seed(&*repo, &seed).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "seeded {}: program version {}, {} customers, {} cards, {} migration codes",
                shown(&db),
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
            let repo = open(&db, 1)?.repo();
            let token = crate::service::till_add(&*repo, &StoreId(store.clone()), &TillId(till.clone()))?;
            eprintln!("till {store}/{till} added; the token is shown once:");
            println!("{token}");
            Ok(())
        }
        Command::Till {
            command: TillCommand::Revoke { db, store, till },
        } => {
            let repo = open(&db, 1)?.repo();
            if crate::service::till_revoke(&*repo, &StoreId(store.clone()), &TillId(till.clone()))? {
                println!("till {store}/{till} revoked");
                Ok(())
            } else {
                anyhow::bail!("no active till {store}/{till} in {}", shown(&db))
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
async fn settle_tags(repo: Arc<dyn Repository>) {
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

async fn serve(listen: SocketAddr, state: AppState, db: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %db, "server-stub listening");
    println!("server-stub listening on http://{addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(crate::os::shutdown_signal())
        .await?;
    tracing::info!("server-stub stopped");
    Ok(())
}
