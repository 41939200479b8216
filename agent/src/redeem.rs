//! Spending points at the till. Online: `POST /v1/redemptions` with a request id made once here
//! (`rdm-…`), answered within the quote timeout; the server debits exactly once per request id,
//! so a retry after a lost answer gets the same redemption. Offline: the redemption is checked
//! against the program's `offline_redemption_limit` (points per card per day at this till) and
//! the true offline balance (cached balance + this till's unsent receipts' points, by the same
//! engine, − this till's unsent redemptions), then queued as a `redemption` outbox item with the
//! same request id — if the online attempt did reach the server, the item is a duplicate there.
//! The redemption code is `rules::redemption_code(request id)`, the same on both sides.
//!
//! Its two server calls (redeem, void) go through `sync::client::ServerClient`, like every other.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use protocol::rules::{self, Program};
use protocol::v1::{ErrorBody, RedeemAnswer, RedeemRequest, SyncItem, SyncPayload};
use protocol::{CardId, CustomerId, StoreId, TillId};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::cache::Cache;
use crate::config::Config;
use crate::sync::outbox::Outbox;
use crate::synclog::SyncLog;

/// What `redeem` did.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub answer: RedeemAnswer,
    /// `online` (the server answered) or `offline` (queued in the outbox).
    pub mode: &'static str,
}

/// Why a redemption did not happen; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The server answered no (insufficient points, blocked card, …).
    #[error("the server refused: {}: {}", .0.code, .0.detail)]
    Server(ErrorBody),
    /// The server did not answer and the offline rules do not allow it.
    #[error("{0}")]
    Offline(String),
}

/// Outcome of one online call (through the one server client).
type Online = crate::sync::client::Verdict<RedeemAnswer>;

async fn post_redeem(cfg: &Config, token: &str, req: &RedeemRequest, timeout: Duration) -> Online {
    match crate::sync::client::ServerClient::for_config(cfg, timeout) {
        Ok(c) => c.redeem(token, req).await,
        Err(e) => Online::NoAnswer(format!("{e:#}")),
    }
}

async fn post_void(cfg: &Config, token: &str, id: &str, timeout: Duration) -> Online {
    match crate::sync::client::ServerClient::for_config(cfg, timeout) {
        Ok(c) => c.void_redemption(token, id).await,
        Err(e) => Online::NoAnswer(format!("{e:#}")),
    }
}

/// The account's balance as this till knows it offline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OfflineBalance {
    pub account: CustomerId,
    /// The server's balance in the cache, as of `as_of`.
    pub cached: Decimal,
    /// Points of this till's receipts not yet sent (same engine as the server).
    pub unsent_receipts: Decimal,
    /// Points of this till's redemptions not yet sent.
    pub unsent_redemptions: Decimal,
    pub balance: Decimal,
    pub as_of: DateTime<FixedOffset>,
}

/// Items of `kind` in the outbox with their state.
fn items(outbox: &Outbox, kind: &str) -> anyhow::Result<Vec<(SyncPayload, String)>> {
    let mut st = outbox
        .conn()
        .prepare("SELECT payload, state FROM items WHERE kind = ?1 ORDER BY seq")?;
    let rows = st
        .query_map([kind], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(p, s)| Ok((serde_json::from_str(&p).context("outbox payload")?, s)))
        .collect()
}

/// The account a card earns into per the cache (the parent's for a sub-card), with its cards.
fn account_cards(cache: &Cache, card: &CardId) -> anyhow::Result<Option<(CustomerId, Decimal, Vec<CardId>)>> {
    let Some(ch) = cache.lookup_card(card)? else {
        return Ok(None);
    };
    let account = ch.customer.parent.clone().unwrap_or_else(|| ch.customer.id.clone());
    let cards = ch.cards.iter().map(|c| c.number.clone()).collect();
    Ok(Some((account, ch.state.points_balance, cards)))
}

/// Cached balance + this till's unsent receipts (engine) − this till's unsent redemptions.
/// The cards of the account are those the cache knows for the card's customer.
pub fn offline_balance(cache: &Cache, outbox: &Outbox, card: &CardId) -> anyhow::Result<Option<OfflineBalance>> {
    let Some(rules) = cache.rules()? else { return Ok(None) };
    let Some(as_of) = cache.as_of()? else { return Ok(None) };
    let Some((account, cached, cards)) = account_cards(cache, card)? else {
        return Ok(None);
    };
    let mut unsent_receipts = Decimal::ZERO;
    for (p, state) in items(outbox, "receipt")? {
        if let (SyncPayload::Receipt(r), "pending") = (p, state.as_str()) {
            if r.original.is_none() && r.card.as_ref().is_some_and(|c| cards.contains(c)) {
                unsent_receipts += rules::evaluate_receipt(&rules.program, &r).points_delta;
            }
        }
    }
    let mut unsent_redemptions = Decimal::ZERO;
    for (p, state) in items(outbox, "redemption")? {
        if let (SyncPayload::Redemption(r), "pending") = (p, state.as_str()) {
            if cards.contains(&r.card) {
                unsent_redemptions += r.points;
            }
        }
    }
    Ok(Some(OfflineBalance {
        account,
        cached,
        unsent_receipts,
        unsent_redemptions,
        balance: cached + unsent_receipts - unsent_redemptions,
        as_of,
    }))
}

/// Make an offline quote's balance the true offline balance (cached + unsent receipts − unsent
/// redemptions), with the redeem options for it; the quote stays marked offline with its as-of.
pub fn apply_unsent(
    cache: &Cache,
    outbox: &Outbox,
    q: &mut protocol::v1::Quote,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    use protocol::v1::QuoteResult;
    let (card, quote) = match &mut q.result {
        QuoteResult::Customer { card, quote } => (card.clone(), quote),
        QuoteResult::Replaced { new_card, quote, .. } => (new_card.clone(), quote),
        _ => return Ok(()),
    };
    let (Some(rules), Some(bal)) = (cache.rules()?, offline_balance(cache, outbox, &card)?) else {
        return Ok(());
    };
    if bal.balance == quote.points_balance {
        return Ok(());
    }
    let Some(mut change) = cache.lookup_card(&card)? else {
        return Ok(());
    };
    change.state.points_balance = bal.balance;
    *quote = rules::customer_quote(&rules.program, &change.customer, &change.state, &now);
    Ok(())
}

/// An offline redemption in this till's outbox, for `status`.
#[derive(Clone, Debug, Serialize)]
pub struct QueuedRedemption {
    pub redemption_id: String,
    /// Masked (`1900-****-****-0018`).
    pub card: String,
    pub points: Decimal,
    pub requested_at: DateTime<FixedOffset>,
    /// pending | sent | rejected
    pub state: String,
}

/// The newest `limit` offline redemptions of this till.
pub fn queued(outbox: &Outbox, limit: usize) -> anyhow::Result<Vec<QueuedRedemption>> {
    let mut out: Vec<QueuedRedemption> = items(outbox, "redemption")?
        .into_iter()
        .filter_map(|(p, state)| match p {
            SyncPayload::Redemption(r) => Some(QueuedRedemption {
                redemption_id: r.request_id,
                card: r.card.to_string(),
                points: r.points,
                requested_at: r.requested_at,
                state,
            }),
            _ => None,
        })
        .collect();
    out.reverse();
    out.truncate(limit);
    Ok(out)
}

/// Points this till redeemed offline for `card` on `day` (queued, sent or not; refused ones excluded).
fn redeemed_offline_on(outbox: &Outbox, card: &CardId, day: chrono::NaiveDate) -> anyhow::Result<Decimal> {
    Ok(items(outbox, "redemption")?
        .into_iter()
        .filter_map(|(p, state)| match p {
            SyncPayload::Redemption(r)
                if state != "rejected" && &r.card == card && r.requested_at.date_naive() == day =>
            {
                Some(r.points)
            }
            _ => None,
        })
        .sum())
}

/// The offline decision: allowed (the answer the cashier gets) or refused with the reason.
pub fn check_offline(
    program: &Program,
    bal: &OfflineBalance,
    already_today: Decimal,
    req: &RedeemRequest,
) -> Result<RedeemAnswer, String> {
    let Some(rule) = program.redemption.as_ref() else {
        return Err("the program has no redemption rule".into());
    };
    let limit = rule.offline_redemption_limit;
    if limit <= Decimal::ZERO {
        return Err(
            "the server is not reachable and this program does not allow offline redemption \
                    (offline_redemption_limit is 0); try again when the server answers"
                .into(),
        );
    }
    if already_today + req.points > limit {
        return Err(format!(
            "offline limit: this till may redeem at most {limit} points per card per day while the server is \
             not reachable; {already_today} already redeemed today, {} more asked",
            req.points
        ));
    }
    if req.points > bal.balance {
        return Err(format!(
            "offline balance {} (as of {}; cached {} + unsent receipts {} − unsent redemptions {}) is less than {} points",
            bal.balance,
            bal.as_of.format("%Y-%m-%d %H:%M"),
            bal.cached,
            bal.unsent_receipts,
            bal.unsent_redemptions,
            req.points
        ));
    }
    match rules::redeem(program, bal.balance, req.points) {
        Some((used, value, after)) if used == req.points => Ok(RedeemAnswer {
            redemption_id: req.request_id.clone(),
            code: rules::redemption_code(&req.request_id),
            points: used,
            value,
            reward: rule.reward,
            currency: program.currency,
            balance_after: after,
            voided: false,
        }),
        _ => Err(format!(
            "{} points is not a redeemable step ({} points = {} {}, at least {})",
            req.points, rule.points, rule.value, program.currency, rule.min_points
        )),
    }
}

pub fn new_request(card: &CardId, points: Decimal, store: &StoreId, till: &TillId) -> RedeemRequest {
    RedeemRequest {
        request_id: crate::enrol::new_request_id("rdm"),
        card: card.clone(),
        points,
        store_id: store.clone(),
        till_id: till.clone(),
        requested_at: chrono::Local::now().fixed_offset(),
    }
}

/// Redeem: online within the quote timeout, else offline (queued). When offline redemption is
/// not allowed, the online call is retried with the same request id (a lost answer is then
/// recovered, never debited twice).
pub async fn redeem(cfg: &Config, req: &RedeemRequest) -> anyhow::Result<Result<Outcome, Refused>> {
    let log = SyncLog::open(&cfg.outbox_path())?;
    let token = crate::credentials::till_token(cfg).ok();
    let quick = Duration::from_millis(cfg.reader.quote_timeout_ms);
    let mut why = "no till token".to_string();
    if let Some(t) = token.as_deref() {
        match post_redeem(cfg, t, req, quick).await {
            Online::Answer(a) => return Ok(Ok(online_done(&log, req, a))),
            Online::Refused(e) => {
                log.warn(
                    "redeem",
                    Some(&req.request_id),
                    &format!(
                        "redemption of {} points for card {} refused: {}: {}",
                        req.points, req.card, e.code, e.detail
                    ),
                );
                return Ok(Err(Refused::Server(e)));
            }
            Online::NoAnswer(w) => why = w,
        }
    }
    let mut outbox = Outbox::open(&cfg.outbox_path())?;
    let cache = Cache::open(&cfg.cache_path())?;
    let offline = match (cache.rules()?, offline_balance(&cache, &outbox, &req.card)?) {
        (Some(snap), Some(bal)) => {
            let today = redeemed_offline_on(&outbox, &req.card, req.requested_at.date_naive())?;
            check_offline(&snap.program, &bal, today, req)
        }
        (None, _) => Err("the offline cache has no rules yet (never synced with the server)".into()),
        (_, None) => Err(format!("card {} is not in the offline cache", req.card)),
    };
    match offline {
        Ok(answer) => {
            let item = SyncItem {
                item_id: req.request_id.clone(),
                payload: SyncPayload::Redemption(req.clone()),
            };
            outbox.enqueue(&item)?;
            log.info(
                "redeem",
                Some(&req.request_id),
                &format!(
                    "offline redemption of {} points = {} {} for card {} queued (code {}; {why})",
                    answer.points, answer.value, answer.currency, req.card, answer.code
                ),
            );
            Ok(Ok(Outcome {
                answer,
                mode: "offline",
            }))
        }
        Err(reason) => {
            // No offline redemption: retry online with the same id (a lost answer comes back).
            if let Some(t) = token.as_deref() {
                let slow = Duration::from_secs(cfg.http_timeout_secs.min(5));
                for _ in 0..3 {
                    match post_redeem(cfg, t, req, slow).await {
                        Online::Answer(a) => return Ok(Ok(online_done(&log, req, a))),
                        Online::Refused(e) => return Ok(Err(Refused::Server(e))),
                        Online::NoAnswer(w) => why = w,
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            let msg = format!(
                "not redeemed: {why}; {reason}. If the server did record it, `till-agent void {}` gives the points back",
                req.request_id
            );
            log.warn("redeem", Some(&req.request_id), &format!("card {}: {msg}", req.card));
            Ok(Err(Refused::Offline(msg)))
        }
    }
}

fn online_done(log: &SyncLog, req: &RedeemRequest, a: RedeemAnswer) -> Outcome {
    log.info(
        "redeem",
        Some(&req.request_id),
        &format!(
            "redeemed online {} points = {} {} for card {} (code {}, balance {})",
            a.points, a.value, a.currency, req.card, a.code, a.balance_after
        ),
    );
    Outcome {
        answer: a,
        mode: "online",
    }
}

/// What `void` did.
#[derive(Debug)]
pub enum Voided {
    /// The redemption was still in this till's outbox: removed, nothing reached the server.
    Unsent(RedeemRequest),
    /// The server gave the points back (or had already).
    Server(RedeemAnswer),
}

/// Void a redemption made at this till today: drop it from the outbox if it was never sent,
/// else ask the server.
pub async fn void(cfg: &Config, id: &str) -> anyhow::Result<Result<Voided, Refused>> {
    let log = SyncLog::open(&cfg.outbox_path())?;
    let outbox = Outbox::open(&cfg.outbox_path())?;
    let pending: Option<String> = outbox
        .conn()
        .query_row(
            "SELECT payload FROM items WHERE item_id = ?1 AND kind = 'redemption' AND state = 'pending'",
            [id],
            |r| r.get(0),
        )
        .ok();
    if let Some(p) = pending {
        let n = outbox.conn().execute(
            "DELETE FROM items WHERE item_id = ?1 AND kind = 'redemption' AND state = 'pending'",
            [id],
        )?;
        if n == 1 {
            let SyncPayload::Redemption(r) = serde_json::from_str(&p)? else {
                anyhow::bail!("outbox item {id} is not a redemption")
            };
            log.info(
                "void",
                Some(id),
                &format!(
                    "unsent redemption of {} points for card {} voided at the till",
                    r.points, r.card
                ),
            );
            return Ok(Ok(Voided::Unsent(r)));
        }
    }
    let token = crate::credentials::till_token(cfg)?;
    let timeout = Duration::from_secs(cfg.http_timeout_secs.min(10));
    let mut why = String::new();
    for _ in 0..3 {
        match post_void(cfg, &token, id, timeout).await {
            Online::Answer(a) => {
                log.info(
                    "void",
                    Some(id),
                    &format!(
                        "redemption voided: {} points back (balance {})",
                        a.points, a.balance_after
                    ),
                );
                return Ok(Ok(Voided::Server(a)));
            }
            Online::Refused(e) => {
                log.warn("void", Some(id), &format!("void refused: {}: {}", e.code, e.detail));
                return Ok(Err(Refused::Server(e)));
            }
            Online::NoAnswer(w) => why = w,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(Err(Refused::Offline(format!(
        "not voided: {why}; try again when the server answers"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::rules::{Redemption, RewardKind};
    use rust_decimal_macros::dec;

    fn program(limit: Decimal) -> Program {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/seed/demo.json")).expect("seed fixture");
        let mut p: Program = serde_json::from_value(v["program"].clone()).expect("program");
        p.redemption = Some(Redemption {
            points: dec!(100),
            value: dec!(50),
            reward: RewardKind::Voucher,
            min_points: dec!(100),
            offline_redemption_limit: limit,
            match_window_minutes: None,
        });
        p
    }

    fn bal(b: Decimal) -> OfflineBalance {
        OfflineBalance {
            account: CustomerId::from("C000001"),
            cached: b,
            unsent_receipts: Decimal::ZERO,
            unsent_redemptions: Decimal::ZERO,
            balance: b,
            as_of: chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap(),
        }
    }

    fn req(points: Decimal) -> RedeemRequest {
        new_request(
            &CardId::normalise("1900000009000018").unwrap(),
            points,
            &StoreId::from("S"),
            &TillId::from("T"),
        )
    }

    #[test]
    fn offline_rules_limit_balance_and_steps() {
        let r = req(dec!(200));
        let ok = check_offline(&program(dec!(300)), &bal(dec!(412.3)), dec!(0), &r).unwrap();
        assert_eq!(
            (ok.points, ok.value, ok.balance_after),
            (dec!(200), dec!(100), dec!(212.3))
        );
        assert_eq!(ok.code, rules::redemption_code(&r.request_id));
        let off = check_offline(&program(dec!(0)), &bal(dec!(412.3)), dec!(0), &r).unwrap_err();
        assert!(off.contains("offline_redemption_limit is 0"), "{off}");
        let lim = check_offline(&program(dec!(300)), &bal(dec!(412.3)), dec!(200), &r).unwrap_err();
        assert!(
            lim.contains("at most 300 points per card per day") && lim.contains("200 already"),
            "{lim}"
        );
        let short = check_offline(&program(dec!(300)), &bal(dec!(150)), dec!(0), &r).unwrap_err();
        assert!(short.contains("offline balance 150"), "{short}");
        let step = check_offline(&program(dec!(300)), &bal(dec!(412.3)), dec!(0), &req(dec!(150))).unwrap_err();
        assert!(step.contains("not a redeemable step"), "{step}");
    }
}
