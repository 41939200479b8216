//! What every handler and extractor shares: the repository and the admin token.

use std::sync::Arc;

use crate::error::ApiError;
use crate::store::Repository;

#[derive(Clone)]
pub struct AppState {
    pub repo: Arc<dyn Repository>,
    pub admin_token: Option<String>,
    /// Changes when the database is restored (`identity.rs`); served in `/healthz`.
    pub server_id: Option<Arc<str>>,
}

impl AppState {
    /// Run blocking storage work off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Repository) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || f(&*repo))
            .await
            .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
    }
}
