//! What every handler and extractor shares: the repository and the admin token.

use std::sync::Arc;

use super::metrics::Metrics;
use crate::error::ApiError;
use crate::store::Repository;

#[derive(Clone)]
pub struct AppState {
    pub repo: Arc<dyn Repository>,
    pub admin_token: Option<String>,
    /// Changes when the database is restored (`identity.rs`); served in `/healthz`.
    pub server_id: Option<Arc<str>>,
    pub metrics: Arc<Metrics>,
    /// Sync batches worked on at once (token check, body, apply); the others queue for a permit
    /// before any of their work starts, so a storm of batches cannot take the CPU from quotes.
    pub ingest: Arc<tokio::sync::Semaphore>,
}

/// The default number of sync batches worked on at once: the machine's cores.
pub fn default_ingest_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl AppState {
    pub fn new(repo: Arc<dyn Repository>, admin_token: Option<String>, server_id: Option<Arc<str>>) -> AppState {
        AppState {
            repo,
            admin_token,
            server_id,
            metrics: Arc::new(Metrics::new()),
            ingest: Arc::new(tokio::sync::Semaphore::new(default_ingest_limit())),
        }
    }

    /// At most `n` (≥ 1) sync batches worked on at once.
    pub fn with_ingest_limit(mut self, n: usize) -> AppState {
        self.ingest = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// Run blocking storage work off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Repository) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let repo = self.repo.clone();
        // The request's span (with its id) goes along, so storage log lines carry the id too.
        let span = tracing::Span::current();
        // On the multi-threaded runtime (the server's) the work runs right here, on this worker
        // (its other tasks move to another one): no hand-off to a pool thread and back on the
        // request's path. A current-thread runtime cannot do that: the pool there.
        if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| span.in_scope(|| f(&*repo)));
        }
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&*repo)))
            .await
            .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
    }
}
