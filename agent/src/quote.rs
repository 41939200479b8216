//! The quote a scan produces: asked from the server (`GET /v1/cards/{card}/quote`) with a short
//! timeout (~300 ms, `[reader] quote_timeout_ms`); when the server does not answer in time (or is
//! unreachable / refuses), computed on the till by the shared rules engine from the cached rules
//! and customer data, marked `offline, as of <time of the newest cached data>`.
//!
//! Unknown card → `unknown_card` (the popup offers registration / migration pairing, which core
//! queues in the outbox); blocked → `blocked` with the reason; replaced → the new card's quote.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use protocol::ids::{CardId, CardPolicy};
use protocol::rules::customer_quote;
use protocol::v1::{CardStatus, Quote, QuoteResult, QuoteSource};

use crate::cache::Cache;
use crate::config::Config;
use crate::sync::client::ServerClient;

/// Where a scan's quote comes from: [`QuoteService`] in the agent / the service, the service over
/// the pipe in a session app (`session.rs`).
pub trait Quoter: Send + Sync {
    /// The card policy scans are classified with.
    fn card_policy(&self) -> CardPolicy;
    fn quote<'a>(
        &'a self,
        card: &'a CardId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Quote>> + Send + 'a>>;
    /// The quote was shown: acknowledge its messages (see [`QuoteService::ack_shown`]).
    fn ack_shown(&self, quote: &Quote) -> anyhow::Result<Vec<String>>;
    /// [`Quoter::quote`]; a quoter that can answer offline at once and whose server is slow gives
    /// `provisional` the offline quote first (see [`QuoteService::quote_staged`]).
    fn quote_staged<'a>(
        &'a self,
        card: &'a CardId,
        provisional: &'a (dyn Fn(Quote) + Send + Sync),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Quote>> + Send + 'a>> {
        let _ = provisional;
        self.quote(card)
    }
}

impl Quoter for QuoteService {
    fn card_policy(&self) -> CardPolicy {
        QuoteService::card_policy(self)
    }
    fn quote<'a>(
        &'a self,
        card: &'a CardId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Quote>> + Send + 'a>> {
        Box::pin(QuoteService::quote(self, card))
    }
    fn ack_shown(&self, quote: &Quote) -> anyhow::Result<Vec<String>> {
        QuoteService::ack_shown(self, quote)
    }
    fn quote_staged<'a>(
        &'a self,
        card: &'a CardId,
        provisional: &'a (dyn Fn(Quote) + Send + Sync),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Quote>> + Send + 'a>> {
        Box::pin(QuoteService::quote_staged(self, card, self.early, provisional))
    }
}

pub struct QuoteService {
    client: ServerClient,
    token: Option<String>,
    cache_path: PathBuf,
    outbox_path: PathBuf,
    cache: std::sync::Mutex<Option<std::sync::Arc<Cache>>>,
    policy_override: Option<CardPolicy>,
    store_id: protocol::StoreId,
    till_id: protocol::TillId,
    /// `[popup] offline_first_ms`: how long a scan waits for the server before the offline quote
    /// shows meanwhile (scans only; `till-agent quote` and the search box wait for the answer).
    early: Duration,
}

impl QuoteService {
    pub fn new(cfg: &Config) -> anyhow::Result<QuoteService> {
        let token = match crate::credentials::till_token(cfg) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("no till token ({e:#}): quotes are computed offline from the cache");
                None
            }
        };
        let timeout = Duration::from_millis(cfg.reader.quote_timeout_ms);
        Ok(QuoteService {
            client: ServerClient::for_config(cfg, timeout)?,
            token,
            cache_path: cfg.cache_path(),
            outbox_path: cfg.outbox_path(),
            cache: std::sync::Mutex::new(None),
            policy_override: cfg.reader.card_policy.clone(),
            store_id: cfg.store_id.clone(),
            till_id: cfg.till_id.clone(),
            early: Duration::from_millis(cfg.popup.offline_first_ms),
        })
    }

    /// The offline cache (opened on first use; an error when the agent never synced).
    pub fn cache(&self) -> anyhow::Result<std::sync::Arc<Cache>> {
        let mut g = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        anyhow::ensure!(
            self.cache_path.exists(),
            "no offline cache yet ({} missing)",
            self.cache_path.display()
        );
        let c = std::sync::Arc::new(
            Cache::open(&self.cache_path).with_context(|| format!("open {}", self.cache_path.display()))?,
        );
        *g = Some(c.clone());
        Ok(c)
    }

    /// The card policy: `[reader] card_policy`, else the program's from the cached rules, else
    /// the generic 8–19 digits.
    pub fn card_policy(&self) -> CardPolicy {
        if let Some(p) = &self.policy_override {
            return p.clone();
        }
        self.cache()
            .ok()
            .and_then(|c| c.rules().ok().flatten())
            .map(|r| r.program.card_policy)
            .unwrap_or_default()
    }

    /// Online within the timeout, else offline.
    pub async fn quote(&self, card: &CardId) -> anyhow::Result<Quote> {
        match self.online(card).await {
            Ok(q) => self.finish_online(q),
            Err(online_err) => self.offline_or(card, online_err),
        }
    }

    /// [`QuoteService::quote`], but when the server has not answered within `early` the offline
    /// quote goes to `provisional` at once, and the wait for the server goes on (up to the
    /// quote timeout): the server's quote is returned when it comes, else the same offline quote
    /// (recomputed: the cache may have changed meanwhile). `early` zero = [`QuoteService::quote`].
    pub async fn quote_staged(
        &self,
        card: &CardId,
        early: Duration,
        provisional: &(dyn Fn(Quote) + Send + Sync),
    ) -> anyhow::Result<Quote> {
        if early.is_zero() {
            return self.quote(card).await;
        }
        let online = self.online(card);
        tokio::pin!(online);
        match tokio::time::timeout(early, &mut online).await {
            Ok(Ok(q)) => return self.finish_online(q),
            Ok(Err(online_err)) => return self.offline_or(card, online_err),
            Err(_) => {}
        }
        let t0 = std::time::Instant::now();
        match self.offline_or(card, anyhow::anyhow!("no answer within {} ms yet", early.as_millis())) {
            Ok(q) => {
                tracing::debug!(target: "till_agent::quote", card = %card, offline_us = t0.elapsed().as_micros() as u64,
                    "server silent after {} ms: offline quote shown meanwhile", early.as_millis());
                provisional(q)
            }
            // No cache yet: nothing to show early; the server's answer (or its error) decides.
            Err(e) => tracing::debug!(target: "till_agent::quote", card = %card, "no early offline quote: {e:#}"),
        }
        match online.await {
            Ok(q) => self.finish_online(q),
            Err(online_err) => self.offline_or(card, online_err),
        }
    }

    /// The server's quote: its messages less those this till already acknowledged (unsent acks).
    fn finish_online(&self, mut q: Quote) -> anyhow::Result<Quote> {
        // Shown once per cause: an ack of this till's still in the outbox is not on the
        // server yet.
        if crate::messages::messages_of(&q).is_some_and(|(_, m)| !m.is_empty()) && self.outbox_path.exists() {
            match crate::sync::outbox::Outbox::open_existing(&self.outbox_path) {
                Ok(outbox) => crate::messages::drop_acked(&mut q, &crate::messages::acked_causes(&outbox)?),
                Err(e) => tracing::warn!("quote messages not checked against this till's acks: {e:#}"),
            }
        }
        Ok(q)
    }

    /// The offline quote (the server failed with `online_err`, or has not answered yet).
    fn offline_or(&self, card: &CardId, online_err: anyhow::Error) -> anyhow::Result<Quote> {
        tracing::info!(card = %card, "quote offline: {online_err:#}");
        let now = chrono::Local::now().fixed_offset();
        let cache = self.cache().with_context(|| format!("server: {online_err:#}"))?;
        let mut q = offline_quote(&cache, card, now).with_context(|| format!("server: {online_err:#}"))?;
        // The true offline balance: + this till's unsent receipts, − its unsent redemptions.
        let mut acked = Default::default();
        if self.outbox_path.exists() {
            match crate::sync::outbox::Outbox::open_existing(&self.outbox_path) {
                Ok(outbox) => {
                    crate::redeem::apply_unsent(&cache, &outbox, &mut q, now)?;
                    acked = crate::messages::acked_causes(&outbox)?;
                }
                Err(e) => tracing::warn!("offline quote without the unsent items: {e:#}"),
            }
        }
        // What to tell the customer, by the same engine as the server (minus birthdays).
        let target = match &q.result {
            QuoteResult::Replaced { new_card, .. } => Some(new_card.clone()),
            QuoteResult::Customer { .. } => Some(card.clone()),
            _ => None,
        };
        if let (Some(c), Some(rules)) = (target, cache.rules()?) {
            if let Some(change) = cache.lookup_card(&c)? {
                crate::messages::fill_offline(&rules.program, &change, &mut q, now, &acked);
            }
        }
        Ok(q)
    }

    /// The quote was shown to the cashier: acknowledge its messages through the outbox (once per
    /// cause). Returns the ack item ids newly queued.
    pub fn ack_shown(&self, quote: &Quote) -> anyhow::Result<Vec<String>> {
        if crate::messages::messages_of(quote).is_none_or(|(_, m)| m.is_empty()) {
            return Ok(Vec::new());
        }
        let mut outbox = crate::sync::outbox::Outbox::open(&self.outbox_path)?;
        let log = crate::synclog::SyncLog::open(&self.outbox_path)?;
        let now = chrono::Local::now().fixed_offset();
        crate::messages::enqueue_acks(&mut outbox, &log, quote, &self.store_id, &self.till_id, now)
    }

    pub async fn online(&self, card: &CardId) -> anyhow::Result<Quote> {
        let token = self.token.as_deref().context("no till token")?;
        Ok(self.client.quote(token, card).await?)
    }
}

/// The quote from the offline cache, as of the newest cached data.
pub fn offline_quote(cache: &Cache, card: &CardId, now: DateTime<FixedOffset>) -> anyhow::Result<Quote> {
    let rules = cache
        .rules()?
        .context("offline cache has no rules yet (never synced with the server)")?;
    let as_of = cache
        .as_of()?
        .context("offline cache has no customer data yet (never synced with the server)")?;
    let source = QuoteSource::Offline { as_of };
    let Some(change) = cache.lookup_card(card)? else {
        return Ok(Quote {
            result: QuoteResult::UnknownCard { card: card.clone() },
            source,
        });
    };
    let status = change
        .cards
        .iter()
        .find(|c| &c.number == card)
        .map(|c| c.status.clone())
        .unwrap_or(CardStatus::Active);
    let result = match status {
        CardStatus::Active => QuoteResult::Customer {
            card: card.clone(),
            quote: customer_quote(&rules.program, &change.customer, &change.state, &now),
        },
        CardStatus::Blocked { reason } => QuoteResult::Blocked {
            card: card.clone(),
            reason,
        },
        CardStatus::Replaced { by } => {
            let target = cache.lookup_card(&by)?.unwrap_or(change);
            QuoteResult::Replaced {
                card: card.clone(),
                new_card: by,
                quote: customer_quote(&rules.program, &target.customer, &target.state, &now),
            }
        }
    };
    Ok(Quote { result, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::rules::Program;
    use protocol::rules::RulesSnapshot;
    use protocol::v1::{ChangeFeed, CustomerChange};

    /// A real cache.db filled with the demo program and customers (fixtures/seed/demo.json).
    fn demo_cache(dir: &std::path::Path) -> Cache {
        let seed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/seed/demo.json")).unwrap(),
        )
        .unwrap();
        let program: Program = serde_json::from_value(seed["program"].clone()).unwrap();
        // Seed rows without a `state` are customers without history: not feed records here.
        let changes: Vec<CustomerChange> = seed["customers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("state").is_some())
            .map(|c| serde_json::from_value(c.clone()).unwrap())
            .collect();
        let cache = Cache::open(&dir.join("cache.db")).unwrap();
        cache
            .store_rules(
                &RulesSnapshot {
                    version: 1,
                    program,
                    lookup_key: None,
                },
                None,
            )
            .unwrap();
        let server_time = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap();
        cache
            .apply_feed(&ChangeFeed {
                changes,
                cursor: "1".into(),
                more: false,
                server_time,
            })
            .unwrap();
        cache
    }

    #[test]
    fn offline_quotes_customer_blocked_replaced_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let cache = demo_cache(dir.path());
        let now = DateTime::parse_from_rfc3339("2026-11-23T11:00:00+01:00").unwrap();
        let as_of = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap();
        let card = |s: &str| CardId::normalise(s).unwrap();

        let q = offline_quote(&cache, &card("1900000009000018"), now).unwrap();
        assert_eq!(q.source, QuoteSource::Offline { as_of });
        let QuoteResult::Customer { quote, .. } = &q.result else {
            panic!("{q:?}")
        };
        assert_eq!(quote.display_name, "Jiří Dvořák");
        assert_eq!(quote.points_balance, rust_decimal::Decimal::new(41230, 2));

        let q = offline_quote(&cache, &card("1900000009000026"), now).unwrap();
        assert!(
            matches!(&q.result, QuoteResult::Blocked { reason, .. } if reason.contains("ztráta")),
            "{q:?}"
        );

        let q = offline_quote(&cache, &card("1900000009000034"), now).unwrap();
        let QuoteResult::Replaced { new_card, .. } = &q.result else {
            panic!("{q:?}")
        };
        assert_eq!(new_card.expose(), "1900000009000042");

        let q = offline_quote(&cache, &card("1900000009001016"), now).unwrap();
        assert!(matches!(q.result, QuoteResult::UnknownCard { .. }), "{q:?}");
    }

    #[test]
    fn offline_balance_counts_unsent_receipts_by_the_engine_and_unsent_redemptions() {
        use protocol::v1::{LineKind, Receipt, ReceiptLine, SyncItem, SyncPayload};
        use protocol::{Currency, ReceiptId, StoreId, TillId};
        use rust_decimal::Decimal;
        let dir = tempfile::tempdir().unwrap();
        let cache = demo_cache(dir.path());
        let mut outbox = crate::sync::outbox::Outbox::open(&dir.path().join("outbox.db")).unwrap();
        let card = CardId::normalise("1900000009000018").unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00+01:00").unwrap();
        let sale = Receipt {
            id: ReceiptId("r1".into()),
            store_id: StoreId::from("CZ-PRG-01"),
            till_id: TillId::from("T1"),
            pos_receipt_no: "1".into(),
            issued_at: now,
            currency: Currency::CZK,
            total: "500".parse().unwrap(),
            card: Some(card.clone()),
            original: None,
            lines: vec![ReceiptLine {
                sku: None,
                name: "Krém".into(),
                category: None,
                quantity: Decimal::ONE,
                unit_price: "500".parse().unwrap(),
                line_total: "500".parse().unwrap(),
                vat_rate: None,
                kind: LineKind::Sale,
            }],
            vat: Vec::new(),
        };
        let earned = protocol::rules::evaluate_receipt(&cache.rules().unwrap().unwrap().program, &sale).points_delta;
        assert!(earned > Decimal::ZERO);
        outbox
            .enqueue(&SyncItem {
                item_id: "r1".into(),
                payload: SyncPayload::Receipt(sale),
            })
            .unwrap();
        let red = crate::redeem::new_request(
            &card,
            "200".parse().unwrap(),
            &StoreId::from("CZ-PRG-01"),
            &TillId::from("T1"),
        );
        outbox
            .enqueue(&SyncItem {
                item_id: red.request_id.clone(),
                payload: SyncPayload::Redemption(red),
            })
            .unwrap();
        let mut q = offline_quote(&cache, &card, now).unwrap();
        crate::redeem::apply_unsent(&cache, &outbox, &mut q, now).unwrap();
        let QuoteResult::Customer { quote, .. } = &q.result else {
            panic!("{q:?}")
        };
        let want = "412.30".parse::<Decimal>().unwrap() + earned - Decimal::from(200);
        assert_eq!(quote.points_balance, want);
        assert_eq!(
            quote.redeemable.last().map(|o| o.points),
            Some((want / Decimal::from(100)).trunc() * Decimal::from(100))
        );
        assert!(
            matches!(q.source, QuoteSource::Offline { .. }),
            "still offline with its as-of"
        );
    }

    /// A server that accepts connections and never answers (hung), the quote timeout 250 ms:
    /// the offline quote goes out after `early`, long before the timeout, and is also the final
    /// quote; with `early` zero nothing goes out early.
    #[tokio::test]
    async fn staged_quote_gives_the_offline_quote_early_when_the_server_is_silent() {
        let dir = tempfile::tempdir().unwrap();
        drop(demo_cache(dir.path()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
        });
        let svc = QuoteService {
            client: ServerClient::with_timeout(&url, Duration::from_millis(250)).unwrap(),
            token: Some("token".into()),
            cache_path: dir.path().join("cache.db"),
            outbox_path: dir.path().join("outbox.db"),
            cache: std::sync::Mutex::new(None),
            policy_override: None,
            store_id: protocol::StoreId::from("CZ-PRG-01"),
            till_id: protocol::TillId::from("T1"),
            early: Duration::from_millis(10),
        };
        let card = CardId::normalise("1900000009000018").unwrap();
        let early = std::sync::Mutex::new(Vec::new());
        let t0 = std::time::Instant::now();
        let record = |q: Quote| early.lock().unwrap().push((t0.elapsed(), q));
        let fin = Quoter::quote_staged(&svc, &card, &record).await.unwrap();
        let total = t0.elapsed();
        let early = early.into_inner().unwrap();
        assert_eq!(early.len(), 1, "{early:?}");
        let (at, q) = &early[0];
        assert!(matches!(q.source, QuoteSource::Offline { .. }), "{q:?}");
        assert!(
            matches!(&q.result, QuoteResult::Customer { quote, .. } if quote.display_name == "Jiří Dvořák"),
            "{q:?}"
        );
        assert!(*at < Duration::from_millis(200), "early offline quote after {at:?}");
        assert!(
            total >= Duration::from_millis(250),
            "the final waited for the timeout: {total:?}"
        );
        assert_eq!(&fin, q, "the final quote is the same offline quote");

        let calls = std::sync::atomic::AtomicUsize::new(0);
        let count = |_: Quote| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let fin = svc.quote_staged(&card, Duration::ZERO, &count).await.unwrap();
        assert!(matches!(fin.source, QuoteSource::Offline { .. }));
        assert_eq!(calls.into_inner(), 0, "early zero: no early quote");
    }

    #[test]
    fn offline_without_synced_data_is_an_error_not_unknown_card() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache.db")).unwrap();
        let e = offline_quote(
            &cache,
            &CardId::normalise("1900000009000018").unwrap(),
            chrono::Local::now().fixed_offset(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("never synced"), "{e}");
    }
}
