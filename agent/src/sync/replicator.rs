//! Outbox → server. One tokio task sends pending items in order, in batches, to `POST /v1/sync`;
//! marks only acknowledged items (`applied` / `duplicate` = sent; `rejected` = dead letter with the
//! server's reason; `retry` = again later). Only that per-item verdict dead-letters an item (and
//! the server's own refusal of a single item, found by sending one by one). Everything else backs
//! off exponentially with jitter, honouring `Retry-After`: network errors (with a cheap `/healthz`
//! probe noticing the server coming back), 5xx, and answers that are not the server's (a proxy's
//! 404, an HTML page: `Failure::NotTheServer`); version skew waits with its own status. A new
//! outbox item wakes the task at once. At the start of each cycle (at most every
//! [`IDENTITY_EVERY`], and at once after a failure) the server's identity (`/healthz` `server_id`)
//! is compared with the last one seen: a new one means its database was restored from a backup,
//! so acknowledged items are sent again and the customer-change feed is read from the start.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use protocol::v1::{AckResult, SyncResponse};
use rand::Rng;

use super::client::{Failure, ServerClient};
use super::outbox::now_ms;
use crate::context::Shared;
use crate::events::{SyncProblem, SyncProblemKind};

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

/// Isolating an item the server fails on: a batch answered 5xx [`PoisonSplit::STRIKES`] times in a
/// row is split in halves (smaller `limit`) until the item that fails alone is found; that item is
/// a suspect, sent alone with its own backoff, while the others go through. After successes the
/// batch size doubles back to the configured one.
#[derive(Debug)]
pub struct PoisonSplit {
    max: usize,
    pub limit: usize,
    strikes: u32,
    suspects: std::collections::BTreeSet<String>,
}

/// What to do after a 5xx.
#[derive(Debug, PartialEq, Eq)]
pub enum OnServerError {
    /// Back off and send the same batch again.
    Retry,
    /// Send smaller batches (the new limit) now.
    Split(usize),
    /// This item fails alone: back it off on its own; the others are not held up.
    Isolated(String),
}

impl PoisonSplit {
    pub const STRIKES: u32 = 3;

    pub fn new(max: usize) -> PoisonSplit {
        PoisonSplit {
            max,
            limit: max,
            strikes: 0,
            suspects: Default::default(),
        }
    }

    /// How many of `due` (oldest first) to send: a due suspect goes alone (it is first among
    /// the due items or is moved there by the caller), otherwise all of them.
    pub fn pick<'a>(&self, due: &'a [super::outbox::Pending]) -> Vec<&'a super::outbox::Pending> {
        match due.iter().find(|p| self.suspects.contains(&p.item_id)) {
            Some(s) => vec![s],
            None => due.iter().collect(),
        }
    }

    /// No suspect, no strike, full batches: the next batch may go out while this one's acks are
    /// written (pipelining).
    pub fn calm(&self) -> bool {
        self.suspects.is_empty() && self.strikes == 0 && self.limit == self.max
    }

    pub fn on_success(&mut self, sent: &[&str]) {
        self.strikes = 0;
        for id in sent {
            self.suspects.remove(*id);
        }
        self.limit = (self.limit.saturating_mul(2)).min(self.max);
    }

    /// The batch `ids` was answered 5xx.
    pub fn on_server_error(&mut self, ids: &[&str]) -> OnServerError {
        if let [one] = ids {
            if self.suspects.contains(*one) || self.strikes + 1 >= Self::STRIKES {
                self.strikes = 0;
                self.suspects.insert(one.to_string());
                return OnServerError::Isolated(one.to_string());
            }
        }
        self.strikes += 1;
        if self.strikes >= Self::STRIKES && ids.len() > 1 {
            self.strikes = 0;
            self.limit = ids.len().div_ceil(2);
            return OnServerError::Split(self.limit);
        }
        OnServerError::Retry
    }

    /// Forget the streak (the failure was not a 5xx of this batch).
    pub fn clear_strikes(&mut self) {
        self.strikes = 0;
    }
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    if ms < 2 {
        return d;
    }
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

/// How often an idle or draining replicator re-reads the server's identity.
pub const IDENTITY_EVERY: Duration = Duration::from_secs(10);

/// What the server identity seen now means, against the last one recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum IdentityChange<'a> {
    /// The server sends none (an older server): nothing to do.
    Unknown,
    /// The first one seen: record it.
    First(&'a str),
    Same,
    /// Another server identity: the server's database was restored (or replaced).
    Restored {
        from: &'a str,
        to: &'a str,
    },
}

/// The pure step of the identity check.
pub fn identity_change<'a>(known: Option<&'a str>, seen: Option<&'a str>) -> IdentityChange<'a> {
    match (known, seen) {
        (_, None) => IdentityChange::Unknown,
        (None, Some(s)) => IdentityChange::First(s),
        (Some(k), Some(s)) if k == s => IdentityChange::Same,
        (Some(k), Some(s)) => IdentityChange::Restored { from: k, to: s },
    }
}

/// Read `/healthz` and act on a changed server identity. `false` when the server did not answer
/// (check again at the next cycle).
async fn check_server_identity(sh: &Shared, client: &ServerClient) -> bool {
    let Ok(health) = client.health(Duration::from_millis(800)).await else {
        return false;
    };
    let known = match sh.outbox().meta("server_id") {
        Ok(k) => k,
        Err(e) => {
            sh.log
                .error("outbox", None, &format!("reading the server identity failed: {e:#}"));
            return false;
        }
    };
    match identity_change(known.as_deref(), health.server_id.as_deref()) {
        IdentityChange::Unknown | IdentityChange::Same => true,
        IdentityChange::First(id) => {
            if let Err(e) = sh.outbox().set_meta("server_id", Some(id)) {
                sh.log
                    .error("outbox", None, &format!("recording the server identity failed: {e:#}"));
            }
            true
        }
        IdentityChange::Restored { from, to } => {
            // Cursor first: should the agent stop in between, the identity is still the old one
            // and the whole step runs again at the next start.
            if let Err(e) = sh.cache.reset_cursor() {
                sh.log.error(
                    "cache",
                    None,
                    &format!("resetting the change-feed cursor failed: {e:#}"),
                );
                return false;
            }
            let msg = |n: usize| {
                format!(
                    "the server's database was restored (server id {from} → {to}): {n} acknowledged items are sent again, the customer cache is reloaded"
                )
            };
            let res = sh
                .outbox()
                .resend_acknowledged(to, |n| format!("{}: {}", chrono::Utc::now().to_rfc3339(), msg(n)));
            match res {
                Ok(n) => {
                    sh.log.warn("sync", None, &msg(n));
                    sh.cache_now.notify_one();
                    true
                }
                Err(e) => {
                    sh.log
                        .error("outbox", None, &format!("resending acknowledged items failed: {e:#}"));
                    false
                }
            }
        }
    }
}

/// A batch read from the outbox and encoded, ready to go the moment the batch before it is
/// answered.
struct Ready {
    due: Vec<super::outbox::Pending>,
    body: Vec<u8>,
    /// How long reading and encoding took.
    took: Duration,
}

/// A batch on its way: its items, the send, when it left.
struct InFlight {
    due: Vec<super::outbox::Pending>,
    send: tokio::task::JoinHandle<Result<SyncResponse, Failure>>,
    sent: std::time::Instant,
}

/// The batch's body, spliced from the stored payloads (no decode / re-encode per item).
fn encode(sh: &Shared, due: &[super::outbox::Pending]) -> Result<Vec<u8>, Failure> {
    Ok(super::outbox::batch_body(
        sh.cfg.store_id.as_str(),
        sh.cfg.till_id.as_str(),
        due,
    ))
}

/// Read and encode the items due after `seq` (the last of the batch in flight), if there are any.
fn prepare_after(sh: &Shared, seq: i64, limit: usize) -> Option<Ready> {
    let t0 = std::time::Instant::now();
    let due = sh.outbox().due_after(seq, limit, now_ms()).ok()?;
    if due.is_empty() {
        return None;
    }
    let body = encode(sh, &due).ok()?;
    Some(Ready {
        due,
        body,
        took: t0.elapsed(),
    })
}

fn launch(client: &ServerClient, token: &str, r: Ready) -> InFlight {
    let (client, token) = (client.clone(), token.to_string());
    let body = r.body;
    InFlight {
        due: r.due,
        send: tokio::spawn(async move { client.sync_body(&token, body).await }),
        sent: std::time::Instant::now(),
    }
}

/// Where a drained batch's time went (the `till_agent::sync::timing` debug line; the pipeline
/// bench reads it).
#[derive(Default)]
struct Timing {
    /// Reading + encoding the batch (done while the batch before it was on its way, when pipelined).
    read: Duration,
    /// POST → answer.
    post: Duration,
    /// Answer → the next batch's POST: the time the server waits for this till.
    gap: Option<Duration>,
    /// Writing the acks (outbox + sync log) and the status.
    acks: Duration,
}

/// The sender task.
pub async fn run(sh: Arc<Shared>) -> anyhow::Result<()> {
    let client = ServerClient::new(&sh.cfg).map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e:#}"))?;
    let mut shutdown = sh.shutdown_rx();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(60));
    let mut split = PoisonSplit::new(sh.cfg.batch_size);
    let mut token: Option<String> = None;
    let mut token_error_logged = false;
    // When the server identity was last read successfully (None: read it at the next cycle).
    let mut identity_checked: Option<tokio::time::Instant> = None;
    // Retention runs at start and then once a day, from the idle path (never between a send and its acks).
    run_retention(&sh, Utc::now());
    let mut next_retention = std::time::Instant::now() + Duration::from_secs(24 * 3600);
    let mut inflight: Option<InFlight> = None;
    let mut ready: Option<Ready> = None;
    // A backlog is being sent (batches back to back): the outbox's checkpoints wait until it is.
    let mut draining = false;
    // How long the batch in flight took to read and encode.
    let mut f_read = Duration::ZERO;
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
        if identity_checked.is_none_or(|t| t.elapsed() >= IDENTITY_EVERY) {
            identity_checked = check_server_identity(&sh, &client)
                .await
                .then(tokio::time::Instant::now);
        }
        // A batch already on its way (sent while the previous batch's acks were written), or the
        // next due items sent now.
        let mut timing = Timing::default();
        let (due, res) = if let Some(f) = inflight.take() {
            let res = match f.send.await {
                Ok(r) => r,
                Err(e) => Err(Failure::Network(format!("the send task failed: {e}"))),
            };
            timing.post = f.sent.elapsed();
            timing.read = f_read;
            (f.due, res)
        } else {
            ready = None;
            let t0 = std::time::Instant::now();
            let due_res = sh.outbox().due(split.limit, now_ms());
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
                if std::mem::take(&mut draining) {
                    if let Err(e) = sh.outbox().set_draining(false) {
                        tracing::warn!("copying the outbox's WAL after a backlog: {e:#}");
                    }
                }
                if std::time::Instant::now() >= next_retention {
                    run_retention(&sh, Utc::now());
                    next_retention = std::time::Instant::now() + Duration::from_secs(24 * 3600);
                }
                let next = { sh.outbox().next_due_at().ok().flatten() };
                let wait = match next {
                    Some(t) => Duration::from_millis((t - now_ms()).clamp(1, 5_000) as u64),
                    None => Duration::from_secs(5),
                };
                sh.publish_status();
                sh.wait(wait, &mut shutdown, true).await;
                continue;
            }
            let due: Vec<_> = split.pick(&due).into_iter().cloned().collect();
            let res = match encode(&sh, &due) {
                Ok(body) => {
                    timing.read = t0.elapsed();
                    let sent = std::time::Instant::now();
                    let r = client.sync_body(token.as_deref().unwrap_or_default(), body).await;
                    timing.post = sent.elapsed();
                    r
                }
                Err(e) => Err(e),
            };
            (due, res)
        };
        let answered = std::time::Instant::now();
        let n = due.len();
        match res {
            Ok(resp) => {
                backoff.reset();
                split.on_success(&due.iter().map(|p| p.item_id.as_str()).collect::<Vec<_>>());
                // Backlog: the next batch (read and encoded while this one was on its way) goes
                // out now; this batch's acks are written while it travels. One batch at a time
                // on the server keeps the outbox order.
                f_read = Duration::ZERO;
                if split.calm() && n == split.limit && !sh.is_shutting_down() {
                    if !draining {
                        draining = true;
                        if let Err(e) = sh.outbox().set_draining(true) {
                            tracing::warn!("outbox checkpoints during a backlog: {e:#}");
                        }
                    }
                    let next = ready
                        .take()
                        .or_else(|| prepare_after(&sh, due.last().map_or(-1, |p| p.seq), split.limit));
                    if let Some(r) = next {
                        f_read = r.took;
                        inflight = Some(launch(&client, token.as_deref().unwrap_or_default(), r));
                        timing.gap = Some(answered.elapsed());
                    }
                }
                // The batch behind the one now in flight is read and encoded while it travels.
                let behind = inflight
                    .as_ref()
                    .filter(|f| f.due.len() == split.limit)
                    .map(|f| (f.due.last().map_or(-1, |p| p.seq), split.limit));
                // The acks and the read-ahead are blocking SQLite work: on a thread of the blocking
                // pool, so that the send just spawned is written to the socket at once. (Run here,
                // they held this worker, and the send task waited in its slot until they were done:
                // the next POST left 2-3 ms after the answer.)
                let sh2 = sh.clone();
                let work = tokio::task::spawn_blocking(move || {
                    let t_acks = std::time::Instant::now();
                    apply_acks(&sh2, &due, &resp);
                    let acks = t_acks.elapsed();
                    (acks, behind.and_then(|(seq, limit)| prepare_after(&sh2, seq, limit)))
                });
                match work.await {
                    Ok((acks, next)) => {
                        timing.acks = acks;
                        ready = next;
                    }
                    Err(e) => {
                        sh.log
                            .error("outbox", None, &format!("writing the acknowledgements failed: {e}"));
                        ready = None;
                    }
                }
                tracing::debug!(
                    target: "till_agent::sync::timing",
                    "batch of {n}: read+encode {} ms, post→answer {} ms, acks {} ms, answer→next post {}",
                    millis(timing.read),
                    millis(timing.post),
                    millis(timing.acks),
                    timing.gap.map_or("-".to_string(), |g| format!("{} ms", millis(g))),
                );
            }
            Err(e) => {
                // Nothing goes out behind a failed batch: what was read ahead is read again later.
                ready = None;
                let msg = e.to_string();
                let network = matches!(e, Failure::Network(_));
                if network {
                    // The server was away: it may come back restored.
                    identity_checked = None;
                }
                sh.set_reachable(!network);
                sh.set_error(Some(msg.clone()));
                sh.set_problem(Some(problem_of(&e)));
                // 503 means "unavailable", not "this batch": only other 5xx count towards a split.
                let item_fault = matches!(e, Failure::Busy { status, .. } if status >= 500 && status != 503);
                if !item_fault {
                    split.clear_strikes();
                }
                match e {
                    Failure::Refused { status, reason } if n > 1 => {
                        // one of the items makes the whole batch fail: send one by one to find it
                        sh.log.warn(
                            "retry",
                            None,
                            &format!("batch of {n} refused ({status}: {reason}); sending items one by one"),
                        );
                        split.limit = 1;
                    }
                    Failure::Refused { reason, .. } => {
                        let id = &due[0].item_id;
                        sh.log.error("rejected", Some(id), &format!("dead letter: {reason}"));
                        let _ = sh.outbox().mark_rejected(id, &reason);
                    }
                    Failure::Auth { .. } => {
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
                    Failure::UnsupportedVersion { .. } => {
                        // Version skew: no item is at fault, none is dead-lettered; wait for an update.
                        let d = backoff.next_delay().max(Duration::from_secs(30));
                        if backoff.attempt() <= 1 || backoff.attempt().is_multiple_of(10) {
                            sh.log.error(
                                "version",
                                None,
                                &format!("{msg}; {n} item(s) stay queued until the agent or the server is updated"),
                            );
                        }
                        sh.publish_status();
                        sh.wait(d, &mut shutdown, false).await;
                    }
                    Failure::NotTheServer { status, .. } => {
                        // A proxy, a maintenance page, a wrong URL: nothing was decided about the
                        // items. Smaller batches for 413, then the same backoff as for a busy server.
                        if status == 413 {
                            split.limit = (split.limit / 2).max(1);
                        }
                        let d = e
                            .retry_after()
                            .map(|r| r.min(Duration::from_secs(600)))
                            .unwrap_or_else(|| backoff.next_delay());
                        if backoff.attempt() <= 1 || backoff.attempt().is_multiple_of(10) {
                            sh.log.warn(
                                "retry",
                                None,
                                &format!("{n} item(s) not sent: {msg}; next try in {} ms", d.as_millis()),
                            );
                        }
                        sh.publish_status();
                        sh.wait(d, &mut shutdown, false).await;
                    }
                    Failure::Busy { .. } if item_fault => {
                        let ids: Vec<&str> = due.iter().map(|p| p.item_id.as_str()).collect();
                        match split.on_server_error(&ids) {
                            OnServerError::Retry => {
                                let d = e
                                    .retry_after()
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
                            OnServerError::Split(l) => {
                                sh.log.warn(
                                    "retry",
                                    None,
                                    &format!(
                                        "batch of {n} failed {} times on the server ({msg}); splitting into batches of {l} to find the item it fails on",
                                        PoisonSplit::STRIKES
                                    ),
                                );
                                backoff.reset();
                            }
                            OnServerError::Isolated(id) => {
                                let attempts = due[0].attempts + 1;
                                let d = Backoff::new(Duration::from_secs(1), super::outbox::MAX_RETRY_DELAY)
                                    .ceiling(attempts);
                                let why = format!(
                                    "the server fails on this item ({msg}); it is retried alone, next try in {} s",
                                    d.as_secs()
                                );
                                sh.log.error("retry", Some(&id), &why);
                                sh.set_error(Some(format!("item {id}: {why}")));
                                let now = now_ms();
                                let _ = sh.outbox().mark_retry(&id, &msg, now, now + d.as_millis() as i64);
                                backoff.reset();
                                sh.publish_status();
                            }
                        }
                    }
                    Failure::Busy { .. } => {
                        let d = e
                            .retry_after()
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
                    Failure::Network(_) => {
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
    Ok(())
}

/// One retention pass: outbox rows (see [`super::outbox::Outbox::prune`]) and old log files.
/// Failures are logged, never fatal.
pub fn run_retention(sh: &Shared, now: DateTime<Utc>) {
    let items_before = now - chrono::Duration::days(i64::from(sh.cfg.retention_days));
    let log_before = now - chrono::Duration::days(i64::from(sh.cfg.log_retention_days));
    let res = sh.outbox().prune(items_before, log_before);
    match res {
        Ok(p) if p != Default::default() => sh.log.info(
            "retention",
            None,
            &format!(
                "pruned {} sent item(s) and {} file hash(es) older than {} days, {} log row(s) older than {} days",
                p.sent_items, p.file_hashes, sh.cfg.retention_days, p.log_rows, sh.cfg.log_retention_days
            ),
        ),
        Ok(_) => {}
        Err(e) => sh
            .log
            .error("retention", None, &format!("pruning the outbox failed: {e:#}")),
    }
    match crate::synclog::prune_log_files(&sh.cfg.log_dir(), log_before.date_naive()) {
        Ok(gone) if !gone.is_empty() => sh.log.info(
            "retention",
            None,
            &format!("deleted old log files: {}", gone.join(", ")),
        ),
        Ok(_) => {}
        Err(e) => sh.log.warn(
            "retention",
            None,
            &format!("cannot prune log files in {}: {e}", sh.cfg.log_dir().display()),
        ),
    }
}

pub fn problem_of(f: &Failure) -> SyncProblem {
    let kind = match f {
        Failure::Network(_) => SyncProblemKind::Unreachable,
        Failure::Busy { .. } => SyncProblemKind::ServerBusy,
        Failure::Auth { .. } => SyncProblemKind::Unauthorised,
        Failure::UnsupportedVersion { .. } => SyncProblemKind::UnsupportedVersion,
        Failure::Refused { .. } => SyncProblemKind::Refused,
        Failure::NotTheServer { .. } => SyncProblemKind::NotTheServer,
    };
    SyncProblem {
        kind,
        detail: f.to_string(),
    }
}

/// What the server's answer means for one sent item.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Sent {
        duplicate: bool,
    },
    /// A per-item `rejected`: the only way an item becomes a dead letter from an answer.
    DeadLetter(String),
    Retry {
        reason: String,
        at_ms: i64,
    },
}

/// The pure step: the items sent (id, attempts so far) and the server's answer → what to do with
/// each, in order. No IO; [`apply_acks`] carries it out.
pub fn plan_acks<'a>(
    due: impl IntoIterator<Item = (&'a str, u32)>,
    resp: &SyncResponse,
    now_ms: i64,
) -> Vec<(&'a str, Outcome)> {
    let acks = acks_by_item(resp);
    due.into_iter()
        .map(|(id, attempts)| {
            let outcome = match acks.get(id).copied() {
                Some(AckResult::Applied) => Outcome::Sent { duplicate: false },
                Some(AckResult::Duplicate) => Outcome::Sent { duplicate: true },
                Some(AckResult::Rejected { code, reason }) => Outcome::DeadLetter(format!("{code}: {reason}")),
                Some(AckResult::Retry { reason }) => Outcome::Retry {
                    reason: reason.clone(),
                    at_ms: now_ms
                        + Backoff::new(Duration::from_millis(500), Duration::from_secs(300))
                            .ceiling(attempts)
                            .as_millis() as i64,
                },
                None => Outcome::Retry {
                    reason: "no ack in the server's response".into(),
                    at_ms: now_ms + 1_000,
                },
            };
            (id, outcome)
        })
        .collect()
}

/// The server's answer per item id (looked up, not searched: a batch is hundreds of items); an id
/// answered twice keeps its first answer.
fn acks_by_item(resp: &SyncResponse) -> std::collections::HashMap<&str, &AckResult> {
    let mut by_id = std::collections::HashMap::with_capacity(resp.acks.len());
    for a in &resp.acks {
        by_id.entry(a.item_id.as_str()).or_insert(&a.result);
    }
    by_id
}

/// Write what the server answered for `due`: acks, dead letters, retries, their sync-log rows and
/// the status, in one transaction ([`Shared::record_acks`]).
fn apply_acks(sh: &Shared, due: &[super::outbox::Pending], resp: &SyncResponse) {
    use crate::synclog::{row, Level};
    let acks = acks_by_item(resp);
    let mut batch = super::outbox::AckBatch::default();
    // Registrations / pairings: the server's answer in words (the cashier's form is gone). Receipts
    // and message acks have none: their payloads are not decoded.
    let mut enrolled = false;
    for p in due
        .iter()
        .filter(|p| !matches!(p.kind.as_str(), "receipt" | "message_ack"))
    {
        let Some(ack) = acks.get(p.item_id.as_str()).copied() else {
            continue;
        };
        let Ok(payload) = p.payload() else {
            continue;
        };
        if let Some(msg) = crate::enrol::ack_message(&payload, ack) {
            let level = match ack {
                AckResult::Applied | AckResult::Duplicate => {
                    enrolled = true;
                    Level::Info
                }
                AckResult::Rejected { .. } => Level::Error,
                _ => Level::Warn,
            };
            batch.log.push(row(level, "enrol", Some(&p.item_id), &msg));
        }
    }
    let plan = plan_acks(due.iter().map(|p| (p.item_id.as_str(), p.attempts)), resp, now_ms());
    let mut dup = 0;
    let mut sent: Vec<&str> = Vec::with_capacity(plan.len());
    for ((id, outcome), p) in plan.iter().zip(due) {
        match outcome {
            Outcome::Sent { duplicate } => {
                sent.push(id);
                batch.sent_seqs.push(p.seq);
                dup += usize::from(*duplicate);
            }
            Outcome::DeadLetter(r) => {
                batch.rejected.push((id, r.clone()));
                batch
                    .log
                    .push(row(Level::Error, "rejected", Some(id), &format!("dead letter: {r}")));
            }
            Outcome::Retry { reason, at_ms } => {
                batch.retry.push((id, reason.clone(), *at_ms));
                let msg = if acks.contains_key(id) {
                    format!("server asked to retry: {reason}")
                } else {
                    "no ack for this item in the server's response; will resend".to_string()
                };
                batch.log.push(row(Level::Warn, "retry", Some(id), &msg));
            }
        }
    }
    if !sent.is_empty() {
        let msg = if dup > 0 {
            format!("acked {} item(s) ({dup} already on the server)", sent.len())
        } else {
            format!("acked {} item(s)", sent.len())
        };
        let item = (sent.len() == 1).then(|| sent[0]);
        batch.log.push(row(Level::Info, "ack", item, &msg));
    }
    if let Err(e) = sh.record_acks(&batch) {
        sh.log
            .error("outbox", None, &format!("writing the acknowledgements failed: {e:#}"));
        sh.mark_success();
        return;
    }
    batch.log.iter().for_each(crate::synclog::trace_row);
    if enrolled {
        // A new customer / card: refresh the offline cache now, not at the next interval.
        sh.cache_now.notify_one();
    }
}

/// Back off for `d`, but probe `/healthz` meanwhile (every 250 ms, growing to 2 s) and return
/// as soon as the server answers, or on "Sync now" / shutdown.
async fn wait_for_server(
    sh: &Shared,
    client: &ServerClient,
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
        if client.probe().await {
            sh.log.info("server", None, "server is reachable again; sending");
            sh.set_reachable(true);
            return;
        }
        every = (every * 2).min(Duration::from_secs(2));
    }
}

/// `1.234` (milliseconds, three decimals) for the timing line, in integers: this module moves
/// money, and floats stay out of it.
fn millis(d: std::time::Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_lines_print_milliseconds_with_three_decimals() {
        use std::time::Duration;
        assert_eq!(millis(Duration::from_micros(1_234)), "1.234");
        assert_eq!(millis(Duration::from_micros(5)), "0.005");
        assert_eq!(millis(Duration::from_millis(38)), "38.000");
    }

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
    fn the_ack_plan_dead_letters_only_a_per_item_rejection() {
        use protocol::v1::Ack;
        let ack = |id: &str, result: AckResult| Ack {
            item_id: id.into(),
            result,
        };
        let resp = SyncResponse {
            acks: vec![
                ack("a", AckResult::Applied),
                ack("b", AckResult::Duplicate),
                ack(
                    "c",
                    AckResult::Rejected {
                        code: "invalid".into(),
                        reason: "total".into(),
                    },
                ),
                ack("d", AckResult::Retry { reason: "busy".into() }),
            ],
        };
        let plan = plan_acks([("a", 0), ("b", 0), ("c", 0), ("d", 2), ("e", 0)], &resp, 10_000);
        assert_eq!(
            plan,
            vec![
                ("a", Outcome::Sent { duplicate: false }),
                ("b", Outcome::Sent { duplicate: true }),
                ("c", Outcome::DeadLetter("invalid: total".into())),
                (
                    "d",
                    Outcome::Retry {
                        reason: "busy".into(),
                        at_ms: 12_000
                    }
                ),
                (
                    "e",
                    Outcome::Retry {
                        reason: "no ack in the server's response".into(),
                        at_ms: 11_000
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_changed_server_identity_is_a_restore_but_the_first_or_a_missing_one_is_not() {
        use IdentityChange::*;
        assert_eq!(identity_change(None, None), Unknown);
        assert_eq!(identity_change(Some("a"), None), Unknown);
        assert_eq!(identity_change(None, Some("a")), First("a"));
        assert_eq!(identity_change(Some("a"), Some("a")), Same);
        assert_eq!(identity_change(Some("a"), Some("b")), Restored { from: "a", to: "b" });
    }

    /// A simulated server that answers 5xx whenever `bad` is in the batch: the splitter delivers
    /// every other item and isolates `bad`.
    #[test]
    fn a_poison_item_is_isolated_and_the_others_are_delivered() {
        let ids: Vec<String> = (0..10).map(|i| format!("i{i}")).collect();
        let bad = "i6";
        let mut pending: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut delivered = Vec::new();
        let mut isolated = None;
        let mut sp = PoisonSplit::new(8);
        for _round in 0..200 {
            // the isolated item is backed off: not due
            let due: Vec<&str> = pending
                .iter()
                .copied()
                .filter(|i| Some(*i) != isolated.as_deref())
                .take(sp.limit)
                .collect();
            if due.is_empty() {
                break;
            }
            if due.contains(&bad) {
                if let OnServerError::Isolated(id) = sp.on_server_error(&due) {
                    assert_eq!(id, bad);
                    isolated = Some(id);
                }
            } else {
                sp.on_success(&due);
                pending.retain(|i| !due.contains(i));
                delivered.extend(due);
            }
        }
        assert_eq!(pending, [bad]);
        assert_eq!(delivered.len(), 9);
        assert_eq!(isolated.as_deref(), Some(bad));
        assert!(sp.suspects.contains(bad));
        assert!(sp.limit >= 4, "the batch size grows back after successes: {}", sp.limit);
    }

    #[test]
    fn a_passing_5xx_does_not_split_and_429_like_failures_clear_the_streak() {
        let mut sp = PoisonSplit::new(4);
        let b = ["a", "b", "c", "d"];
        assert_eq!(sp.on_server_error(&b), OnServerError::Retry);
        assert_eq!(sp.on_server_error(&b), OnServerError::Retry);
        sp.clear_strikes();
        assert_eq!(sp.on_server_error(&b), OnServerError::Retry);
        sp.on_success(&b);
        assert_eq!(sp.on_server_error(&b), OnServerError::Retry);
        assert_eq!(sp.on_server_error(&b), OnServerError::Retry);
        assert_eq!(sp.on_server_error(&b), OnServerError::Split(2));
        assert_eq!(sp.limit, 2);
    }

    #[test]
    fn the_retention_pass_prunes_the_outbox_and_old_log_files() {
        let d = tempfile::tempdir().unwrap();
        let toml = "server_url = \"http://127.0.0.1:9\"\nstore_id = \"S1\"\ntill_id = \"T1\"\nexport_dir = \"export\"\nlog_retention_days = 10\n";
        let cfg = crate::config::Config::from_str(toml, &d.path().join("agent.toml")).unwrap();
        assert_eq!((cfg.retention_days, cfg.log_retention_days), (90, 10));
        let sh = Shared::open(cfg, crate::events::bus()).unwrap();
        let logs = sh.cfg.log_dir();
        std::fs::create_dir_all(&logs).unwrap();
        let now = Utc::now();
        let old = format!(
            "till-agent.log.{}",
            (now - chrono::Duration::days(11)).format("%Y-%m-%d")
        );
        let today = format!("till-agent.log.{}", now.format("%Y-%m-%d"));
        std::fs::write(logs.join(&old), "old").unwrap();
        std::fs::write(logs.join(&today), "new").unwrap();
        sh.log.info("ingest", None, "an old line");
        sh.outbox()
            .conn()
            .execute("UPDATE sync_log SET ts='2000-01-01T00:00:00.000Z'", [])
            .unwrap();
        run_retention(&sh, now);
        assert!(!logs.join(&old).exists());
        assert!(logs.join(&today).exists());
        let msgs: Vec<String> = sh
            .outbox()
            .log_tail(10)
            .unwrap()
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert!(!msgs.iter().any(|m| m == "an old line"), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("deleted old log files: till-agent.log.")),
            "{msgs:?}"
        );
    }
}
