//! Server → offline cache: `/v1/rules` (ETag) and the customer-change feed `/v1/changes`, pulled
//! now and every `cache_refresh_secs` (or on "Sync now"), for quotes when the server is away.
use std::sync::Arc;
use std::time::Duration;

use super::client::{Rules, ServerClient};
use crate::context::Shared;

/// Cache sync task: rules (ETag) and the customer-change feed, now and every
/// `cache_refresh_secs` (or on "Sync now").
pub async fn run_cache_sync(sh: Arc<Shared>) -> anyhow::Result<()> {
    let client = ServerClient::new(&sh.cfg).map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e:#}"))?;
    let mut shutdown = sh.shutdown_rx();
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match crate::credentials::till_token(&sh.cfg) {
            Ok(token) => match pull_cache(&sh, &client, &token).await {
                Ok(n) => {
                    if failing || n > 0 {
                        tracing::info!(target: "till_agent::sync", "cache refreshed ({n} customer change(s))");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(target: "till_agent::sync", "cache refresh failed: {e:#}");
                    }
                    failing = true;
                }
            },
            Err(_) => failing = true,
        }
        let d = Duration::from_secs(if failing {
            sh.cfg.cache_refresh_secs.min(15)
        } else {
            sh.cfg.cache_refresh_secs
        });
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = sh.cache_now.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
    Ok(())
}

/// One refresh; returns the number of customer changes applied.
pub async fn pull_cache(sh: &Shared, client: &ServerClient, token: &str) -> anyhow::Result<usize> {
    let etag = sh.cache.rules_etag()?;
    match client
        .rules(token, etag.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("GET /v1/rules: {e}"))?
    {
        Rules::NotModified => {}
        Rules::New { rules, etag } => sh.cache.store_rules(&rules, etag.as_deref())?,
    }
    let mut total = 0;
    for _ in 0..1000 {
        let since = sh.cache.cursor()?;
        let feed = client
            .changes(token, since.as_deref(), 500)
            .await
            .map_err(|e| anyhow::anyhow!("GET /v1/changes: {e}"))?;
        total += feed.changes.len();
        sh.cache.apply_feed(&feed)?;
        if !feed.more {
            break;
        }
    }
    Ok(total)
}
