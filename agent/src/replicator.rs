//! Outbox → server. One tokio task sends pending items in order, in batches, to `POST /v1/sync`;
//! marks only acknowledged items (`applied` / `duplicate` = sent; `rejected` = dead letter with the
//! server's reason; `retry` = again later). Network errors and 5xx back off exponentially with
//! jitter, honouring `Retry-After`; while backing off after a network error a cheap `/healthz`
//! probe notices the server coming back. A new outbox item wakes the task at once.
//!
//! A second task pulls `/v1/rules` (ETag) and `/v1/changes` into the cache for offline quotes.
use std::sync::Arc;
use std::time::Duration;

use protocol::v1::{AckResult, ChangeFeed, ErrorBody, SyncBatch, SyncResponse};
use rand::Rng;
use reqwest::{header, StatusCode};

use crate::context::Shared;
use crate::outbox::now_ms;

/// Exponential backoff with jitter: the n-th delay is uniformly random in
/// `[d/2, d]` where `d = min(max, base · 2ⁿ)`.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max, attempt: 0 }
    }

    /// The ceiling of the n-th delay (no jitter).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let f = 2u64.saturating_pow(attempt.min(32));
        let ms = (self.base.as_millis() as u64).saturating_mul(f);
        Duration::from_millis(ms).min(self.max)
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        jitter(d)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    if ms < 2 {
        return d;
    }
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = t.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

/// How a batch send failed.
#[derive(Debug)]
pub enum SendError {
    /// Connection refused / timeout / DNS: the server is not there.
    Network(String),
    /// 5xx or 429: the server is there but busy.
    Server {
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 401/403: the till's token or identity is wrong; nothing will work until fixed.
    Auth { status: u16, reason: String },
    /// Other 4xx: the batch itself was refused (bad JSON, too large).
    Batch { status: u16, reason: String },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Network(r) => write!(f, "server unreachable: {r}"),
            SendError::Server { status, reason, .. } => write!(f, "server error {status}: {reason}"),
            SendError::Auth { status, reason } => write!(f, "not authorised ({status}): {reason}"),
            SendError::Batch { status, reason } => write!(f, "batch refused ({status}): {reason}"),
        }
    }
}

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    http_client_with_timeout(Duration::from_secs(15))
}

pub fn http_client_with_timeout(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .user_agent(concat!("till-agent/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

fn error_reason(status: StatusCode, body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => match e.field {
            Some(f) => format!("{}: {} (field {f})", e.code, e.detail),
            None => format!("{}: {}", e.code, e.detail),
        },
        Err(_) => {
            let b: String = body.chars().take(200).collect();
            if b.is_empty() {
                status.to_string()
            } else {
                b
            }
        }
    }
}

pub async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    batch: &SyncBatch,
) -> Result<SyncResponse, SendError> {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(batch)
        .send()
        .await
        .map_err(|e| SendError::Network(crate::context::error_chain(&e)))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = resp
        .text()
        .await
        .map_err(|e| SendError::Network(crate::context::error_chain(&e)))?;
    if status.is_success() {
        return serde_json::from_str(&body).map_err(|e| SendError::Server {
            status: status.as_u16(),
            reason: format!("unreadable sync response: {e}"),
            retry_after: None,
        });
    }
    let reason = error_reason(status, &body);
    Err(match status.as_u16() {
        401 | 403 => SendError::Auth {
            status: status.as_u16(),
            reason,
        },
        429 | 500..=599 | 408 => SendError::Server {
            status: status.as_u16(),
            reason,
            retry_after,
        },
        s => SendError::Batch { status: s, reason },
    })
}

/// `GET /healthz` answered 200 within a short timeout.
pub async fn probe(client: &reqwest::Client, base: &str) -> bool {
    matches!(
        client.get(format!("{base}/healthz")).timeout(Duration::from_millis(800)).send().await,
        Ok(r) if r.status().is_success()
    )
}

/// The sender task.
pub async fn run(sh: Arc<Shared>) {
    let client = match http_client_with_timeout(Duration::from_secs(sh.cfg.http_timeout_secs)) {
        Ok(c) => c,
        Err(e) => {
            sh.log
                .error("replicator", None, &format!("cannot build the HTTP client: {e:#}"));
            return;
        }
    };
    let url = sh.cfg.url("/v1/sync");
    let mut shutdown = sh.shutdown_rx();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(60));
    let mut limit = sh.cfg.batch_size;
    let mut token: Option<String> = None;
    let mut token_error_logged = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if token.is_none() {
            match crate::credentials::till_token(&sh.cfg) {
                Ok(t) => token = Some(t),
                Err(e) => {
                    if !token_error_logged {
                        sh.log.error(
                            "auth",
                            None,
                            &format!("{e:#}; receipts are queued until a token is set"),
                        );
                        sh.set_error(Some(format!("{e:#}")));
                        token_error_logged = true;
                    }
                    sh.wait(Duration::from_secs(10), &mut shutdown, true).await;
                    continue;
                }
            }
        }
        let due_res = sh.outbox().due(limit, now_ms());
        let due = match due_res {
            Ok(d) => d,
            Err(e) => {
                sh.log
                    .error("outbox", None, &format!("reading the outbox failed: {e:#}"));
                sh.wait(Duration::from_secs(5), &mut shutdown, true).await;
                continue;
            }
        };
        if due.is_empty() {
            let next = { sh.outbox().next_due_at().ok().flatten() };
            let wait = match next {
                Some(t) => Duration::from_millis((t - now_ms()).clamp(1, 5_000) as u64),
                None => Duration::from_secs(5),
            };
            sh.publish_status();
            sh.wait(wait, &mut shutdown, true).await;
            continue;
        }
        let batch = SyncBatch {
            version: "v1".into(),
            store_id: sh.cfg.store_id.clone(),
            till_id: sh.cfg.till_id.clone(),
            items: due.iter().map(|p| p.item.clone()).collect(),
        };
        let n = batch.items.len();
        match post_batch(&client, &url, token.as_deref().unwrap_or_default(), &batch).await {
            Ok(resp) => {
                backoff.reset();
                limit = sh.cfg.batch_size;
                apply_acks(&sh, &due, &resp);
                sh.mark_success();
            }
            Err(e) => {
                let msg = e.to_string();
                let network = matches!(e, SendError::Network(_));
                sh.set_reachable(!network);
                sh.set_error(Some(msg.clone()));
                match e {
                    SendError::Batch { status, reason } if n > 1 => {
                        // one of the items makes the whole batch fail: send one by one to find it
                        sh.log.warn(
                            "retry",
                            None,
                            &format!("batch of {n} refused ({status}: {reason}); sending items one by one"),
                        );
                        limit = 1;
                    }
                    SendError::Batch { reason, .. } => {
                        let id = &due[0].item_id;
                        sh.log.error("rejected", Some(id), &format!("dead letter: {reason}"));
                        let _ = sh.outbox().mark_rejected(id, &reason);
                    }
                    SendError::Auth { .. } => {
                        sh.log.error(
                            "auth",
                            None,
                            &format!("{msg}; check the till token (`till-agent login`)"),
                        );
                        token = None;
                        token_error_logged = false;
                        let d = backoff.next_delay().max(Duration::from_secs(5));
                        sh.publish_status();
                        sh.wait(d, &mut shutdown, false).await;
                    }
                    SendError::Server { retry_after, .. } => {
                        let d = retry_after
                            .map(|r| r.min(Duration::from_secs(600)))
                            .unwrap_or_else(|| backoff.next_delay());
                        sh.log.warn(
                            "retry",
                            None,
                            &format!("{n} item(s) not sent: {msg}; next try in {} ms", d.as_millis()),
                        );
                        sh.publish_status();
                        sh.wait(d, &mut shutdown, false).await;
                    }
                    SendError::Network(_) => {
                        let d = backoff.next_delay();
                        if backoff.attempt() <= 1 || backoff.attempt().is_multiple_of(10) {
                            sh.log.warn(
                                "retry",
                                None,
                                &format!("{n} item(s) not sent: {msg}; retrying with backoff"),
                            );
                        }
                        sh.publish_status();
                        wait_for_server(&sh, &client, d, &mut shutdown).await;
                    }
                }
            }
        }
    }
}

fn apply_acks(sh: &Shared, due: &[crate::outbox::Pending], resp: &SyncResponse) {
    let mut sent: Vec<&str> = Vec::new();
    let mut enrolled = false;
    let mut outbox = sh.outbox();
    for p in due {
        let ack = resp.acks.iter().find(|a| a.item_id == p.item_id);
        // Registrations / pairings: the server's answer in words (the cashier's form is gone).
        if let Some(msg) = ack.and_then(|a| crate::enrol::ack_message(&p.item.payload, &a.result)) {
            match ack.map(|a| &a.result) {
                Some(AckResult::Applied | AckResult::Duplicate) => {
                    enrolled = true;
                    sh.log.info("enrol", Some(&p.item_id), &msg);
                }
                Some(AckResult::Rejected { .. }) => sh.log.error("enrol", Some(&p.item_id), &msg),
                _ => sh.log.warn("enrol", Some(&p.item_id), &msg),
            }
        }
        match ack.map(|a| &a.result) {
            Some(AckResult::Applied) => sent.push(&p.item_id),
            Some(AckResult::Duplicate) => {
                sent.push(&p.item_id);
            }
            Some(AckResult::Rejected { code, reason }) => {
                let r = format!("{code}: {reason}");
                let _ = outbox.mark_rejected(&p.item_id, &r);
                sh.log.error("rejected", Some(&p.item_id), &format!("dead letter: {r}"));
            }
            Some(AckResult::Retry { reason }) => {
                let next = now_ms()
                    + Backoff::new(Duration::from_millis(500), Duration::from_secs(300))
                        .ceiling(p.attempts)
                        .as_millis() as i64;
                let _ = outbox.mark_retry(&p.item_id, reason, next);
                sh.log
                    .warn("retry", Some(&p.item_id), &format!("server asked to retry: {reason}"));
            }
            None => {
                let next = now_ms() + 1_000;
                let _ = outbox.mark_retry(&p.item_id, "no ack in the server's response", next);
                sh.log.warn(
                    "retry",
                    Some(&p.item_id),
                    "no ack for this item in the server's response; will resend",
                );
            }
        }
    }
    if let Err(e) = outbox.mark_sent(&sent) {
        drop(outbox);
        sh.log
            .error("outbox", None, &format!("marking items sent failed: {e:#}"));
        return;
    }
    drop(outbox);
    if enrolled {
        // A new customer / card: refresh the offline cache now, not at the next interval.
        sh.cache_now.notify_one();
    }
    let dup = due
        .iter()
        .filter(|p| {
            resp.acks
                .iter()
                .any(|a| a.item_id == p.item_id && a.result == AckResult::Duplicate)
        })
        .count();
    if !sent.is_empty() {
        let msg = if dup > 0 {
            format!("acked {} item(s) ({dup} already on the server)", sent.len())
        } else {
            format!("acked {} item(s)", sent.len())
        };
        let item = (sent.len() == 1).then(|| sent[0]);
        sh.log.info("ack", item, &msg);
    }
}

/// Back off for `d`, but probe `/healthz` meanwhile (every 250 ms, growing to 2 s) and return
/// as soon as the server answers, or on "Sync now" / shutdown.
async fn wait_for_server(
    sh: &Shared,
    client: &reqwest::Client,
    d: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + d;
    let mut every = Duration::from_millis(250);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        let step = every.min(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = sh.sync_now.notified() => return,
            _ = shutdown.changed() => return,
        }
        if probe(client, &sh.cfg.server_url).await {
            sh.log.info("server", None, "server is reachable again; sending");
            sh.set_reachable(true);
            return;
        }
        every = (every * 2).min(Duration::from_secs(2));
    }
}

/// Cache sync task: rules (ETag) and the customer-change feed, now and every
/// `cache_refresh_secs` (or on "Sync now").
pub async fn run_cache_sync(sh: Arc<Shared>) {
    let client = match http_client_with_timeout(Duration::from_secs(sh.cfg.http_timeout_secs)) {
        Ok(c) => c,
        Err(_) => return,
    };
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
}

/// One refresh; returns the number of customer changes applied.
pub async fn pull_cache(sh: &Shared, client: &reqwest::Client, token: &str) -> anyhow::Result<usize> {
    let mut req = client.get(sh.cfg.url("/v1/rules")).bearer_auth(token);
    if let Some(etag) = sh.cache.rules_etag()? {
        req = req.header(header::IF_NONE_MATCH, etag);
    }
    let resp = req.send().await?;
    match resp.status() {
        StatusCode::NOT_MODIFIED => {}
        s if s.is_success() => {
            let etag = resp
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let rules = resp.json().await?;
            sh.cache.store_rules(&rules, etag.as_deref())?;
        }
        s => {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("GET /v1/rules: {}", error_reason(s, &body));
        }
    }
    let mut total = 0;
    for _ in 0..1000 {
        let mut url = reqwest::Url::parse(&sh.cfg.url("/v1/changes"))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = sh.cache.cursor()? {
                q.append_pair("since", &c);
            }
            q.append_pair("limit", "500");
        }
        let resp = client.get(url).bearer_auth(token).send().await?;
        let s = resp.status();
        if !s.is_success() {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("GET /v1/changes: {}", error_reason(s, &body));
        }
        let feed: ChangeFeed = resp.json().await?;
        total += feed.changes.len();
        sh.cache.apply_feed(&feed)?;
        if !feed.more {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let ceilings: Vec<u128> = (0..8).map(|i| b.ceiling(i).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        for i in 0..8 {
            let d = b.next_delay();
            let c = b.ceiling(i);
            assert!(d <= c && d >= c / 2, "attempt {i}: {d:?} not in [{:?}, {c:?}]", c / 2);
        }
        // jitter: not all equal over many draws
        let draws: std::collections::HashSet<u128> = (0..50)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_millis(1000), Duration::from_secs(60));
                b.next_delay().as_millis()
            })
            .collect();
        assert!(draws.len() > 5);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling(1000), Duration::from_secs(2), "no overflow");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(95) && d <= Duration::from_secs(100), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
