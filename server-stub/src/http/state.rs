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
}

impl AppState {
    pub fn new(repo: Arc<dyn Repository>, admin_token: Option<String>, server_id: Option<Arc<str>>) -> AppState {
        AppState {
            repo,
            admin_token,
            server_id,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Run blocking storage work off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Repository) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let repo = self.repo.clone();
        // The request's span (with its id) goes along, so storage log lines carry the id too.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&*repo)))
            .await
            .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
    }
}
