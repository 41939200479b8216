//! The points ledger and redemption: every balance change of an earning account is a ledger
//! entry (the balance is the sum of the ledger), redemptions debit exactly once per till-made
//! request id (online and through the outbox), voids give the points back once, receipts confirm
//! redemptions, admins adjust balances idempotently. Nothing here knows SQL or HTTP routing.

use chrono::{Duration, Utc};
use protocol::rules::TierChange;
use protocol::rules::{self, Program, RulesSnapshot};
use protocol::v1::{
    AckResult, CardStatus, Customer, CustomerState, LedgerEntry, LedgerKind, LineKind, Receipt, RedeemAnswer,
    RedeemRequest,
};
use protocol::{CardId, CustomerId, StoreId, TillId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::digest::{payload_hash, sha256_hex};
use crate::error::ApiError;
use crate::store::{read, transact, Message, NewLedgerEntry, RedemptionRow, Repository, RequestRow, TillRow, Tx};

/// Most entries one ledger page may carry.
pub const MAX_LEDGER_PAGE: usize = 500;
/// How many ledger entries a quote carries (`recent`).
pub const RECENT_ENTRIES: usize = 5;

/// The account a card earns into: its customer's parent if any, else the customer. Blocked,
/// unassigned and unknown cards earn nothing.
pub(crate) fn earning_account(tx: &mut dyn Tx, card: &CardId) -> Result<Option<CustomerId>, ApiError> {
    let Some(row) = tx.card(card)? else { return Ok(None) };
    if matches!(row.status, CardStatus::Blocked { .. }) {
        return Ok(None);
    }
    let Some(cid) = row.customer_id else { return Ok(None) };
    Ok(Some(account_of(tx, &cid)?))
}

pub(crate) fn account_of(tx: &mut dyn Tx, customer: &CustomerId) -> Result<CustomerId, ApiError> {
    Ok(tx
        .customer_parent(customer)?
        .flatten()
        .unwrap_or_else(|| customer.clone()))
}

pub(crate) fn require_program(tx: &mut dyn Tx) -> Result<RulesSnapshot, ApiError> {
    tx.program()?.ok_or_else(|| {
        ApiError::new(
            crate::error::ErrorKind::Unavailable,
            "no_program",
            "no program is loaded; run `server-stub seed`",
            None,
        )
    })
}

/// Who / where caused a ledger entry.
pub struct Cause<'a> {
    pub kind: LedgerKind,
    pub cause_id: &'a str,
    pub store: Option<&'a StoreId>,
    pub till: Option<&'a TillId>,
    pub note: Option<String>,
}

impl<'a> Cause<'a> {
    pub fn new(kind: LedgerKind, cause_id: &'a str) -> Cause<'a> {
        Cause {
            kind,
            cause_id,
            store: None,
            till: None,
            note: None,
        }
    }
    pub fn at(mut self, store: &'a StoreId, till: &'a TillId) -> Cause<'a> {
        self.store = Some(store);
        self.till = Some(till);
        self
    }
}

/// Append the entry for a balance change of `account` from `before` to `after`. Zero changes
/// are not booked, except card reissues (kept for the trail).
pub fn book(
    tx: &mut dyn Tx,
    account: &CustomerId,
    before: Decimal,
    after: Decimal,
    cause: Cause<'_>,
) -> Result<(), ApiError> {
    let points = after - before;
    if points.is_zero() && cause.kind != LedgerKind::CardReissue {
        return Ok(());
    }
    tx.append_ledger(&NewLedgerEntry {
        account_id: account.clone(),
        at: Utc::now(),
        kind: cause.kind,
        cause_id: cause.cause_id.to_string(),
        store_id: cause.store.cloned(),
        till_id: cause.till.cloned(),
        points,
        balance_after: after,
        note: cause.note,
    })?;
    Ok(())
}

/// Set an account's state and book the balance change in the ledger, in one step.
pub fn put_account_state(
    tx: &mut dyn Tx,
    account: &CustomerId,
    state: &CustomerState,
    cause: Cause<'_>,
) -> Result<(), ApiError> {
    let row = tx
        .customer(account)?
        .ok_or_else(|| ApiError::internal(format!("account {account} vanished")))?;
    let before = row.state.points_balance;
    tx.put_customer(&row.customer, state)?;
    for sub in tx.sub_customers(account)? {
        tx.touch_customer(&sub)?;
    }
    book(tx, account, before, state.points_balance, cause)
}

/// An account whose balance is not the sum of its ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub account_id: CustomerId,
    #[schema(value_type = protocol::money::DecimalString)]
    pub balance: Decimal,
    #[schema(value_type = protocol::money::DecimalString)]
    pub ledger_sum: Decimal,
}

/// balance == sum(ledger) for every customer row (sub-card holders hold 0 on both sides).
pub fn check_balances(tx: &mut dyn Tx) -> Result<Vec<Mismatch>, ApiError> {
    let mut sums = std::collections::BTreeMap::<CustomerId, Decimal>::new();
    for (a, p) in tx.ledger_points()? {
        *sums.entry(a).or_default() += p;
    }
    let mut out = Vec::new();
    for row in tx.all_customers()? {
        let sum = sums.remove(&row.customer.id).unwrap_or_default();
        if sum != row.state.points_balance {
            out.push(Mismatch {
                account_id: row.customer.id.clone(),
                balance: row.state.points_balance,
                ledger_sum: sum,
            });
        }
    }
    for (a, sum) in sums {
        if !sum.is_zero() {
            out.push(Mismatch {
                account_id: a,
                balance: Decimal::ZERO,
                ledger_sum: sum,
            });
        }
    }
    Ok(out)
}

pub fn balance_check(repo: &dyn Repository) -> Result<Vec<Mismatch>, ApiError> {
    read(repo, check_balances)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerPage {
    pub account_id: CustomerId,
    #[schema(value_type = protocol::money::DecimalString)]
    pub points_balance: Decimal,
    /// Newest first.
    pub entries: Vec<LedgerEntry>,
    /// Pass as `before=` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The ledger of the account `id` earns into (the parent's for a sub-card holder).
pub fn ledger_page(
    repo: &dyn Repository,
    id: &CustomerId,
    before: Option<i64>,
    limit: usize,
) -> Result<LedgerPage, ApiError> {
    read(repo, |tx| {
        if tx.customer(id)?.is_none() {
            return Err(ApiError::not_found(
                "unknown_customer",
                format!("customer {id} is not known"),
                Some("id"),
            ));
        }
        let acct = account_of(tx, id)?;
        let balance = tx.customer(&acct)?.map(|r| r.state.points_balance).unwrap_or_default();
        let mut entries = tx.ledger(&acct, before, limit + 1)?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next = more.then(|| entries.last().map(|e| e.seq.to_string())).flatten();
        Ok(LedgerPage {
            account_id: acct,
            points_balance: balance,
            entries,
            next,
        })
    })
}

pub fn parse_before(before: Option<&str>) -> Result<Option<i64>, ApiError> {
    before
        .map(|s| {
            s.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    format!("before={s:?} is not a cursor from a ledger page"),
                    Some("before"),
                )
            })
        })
        .transpose()
}

// ------------------------------------------------------------------------------------------
// Redemption

fn answer(r: &RedemptionRow, currency: protocol::Currency, balance_after: Decimal) -> RedeemAnswer {
    RedeemAnswer {
        redemption_id: r.id.clone(),
        code: r.code.clone(),
        points: r.points,
        value: r.value,
        reward: r.reward,
        currency,
        balance_after,
        voided: r.voided_at.is_some(),
    }
}

fn balance_of(tx: &mut dyn Tx, account: &CustomerId) -> Result<Decimal, ApiError> {
    Ok(tx
        .customer(account)?
        .map(|r| r.state.points_balance)
        .unwrap_or_default())
}

/// Why a redemption is refused: `(code, message naming the field)`.
type Refusal = (&'static str, String);

/// Debit the account of `req.card` once. `offline`: the discount was already given at the till,
/// so the debit applies even when the balance is short (it may go below zero by exactly that).
fn apply_redemption(
    tx: &mut dyn Tx,
    program: &Program,
    req: &RedeemRequest,
    hash: &str,
    offline: bool,
) -> Result<Result<RedeemAnswer, Refusal>, ApiError> {
    if let Some(existing) = tx.redemption(&req.request_id)? {
        if existing.payload_hash != hash {
            return Ok(Err((
                "conflict",
                format!(
                    "request_id {} was already used for a different redemption; it is not changed",
                    req.request_id
                ),
            )));
        }
        let bal = balance_of(tx, &existing.account_id)?;
        return Ok(Ok(answer(&existing, program.currency, bal)));
    }
    let chars = req.request_id.chars().count();
    if !req.request_id.starts_with("rdm-") || !(8..=80).contains(&chars) {
        return Ok(Err((
            "invalid_field",
            format!(
                "request_id {:?}: expected rdm-<unique id made by the till>",
                req.request_id
            ),
        )));
    }
    if program.redemption.is_none() {
        return Ok(Err(("no_redemption", "the program has no redemption rule".to_string())));
    }
    if req.points <= Decimal::ZERO {
        return Ok(Err((
            "invalid_field",
            format!("points: {} must be positive", req.points),
        )));
    }
    if let Err(e) = req.card.validate(&program.card_policy) {
        return Ok(Err(("invalid_card", format!("card: {e}"))));
    }
    let Some(card) = tx.card(&req.card)? else {
        return Ok(Err(("unknown_card", format!("card {} is not known", req.card))));
    };
    if let protocol::v1::CardStatus::Blocked { reason } = &card.status {
        return Ok(Err((
            "card_blocked",
            format!("card {} is blocked ({reason}); blocked cards do not redeem", req.card),
        )));
    }
    let Some(account) = earning_account(tx, &req.card)? else {
        return Ok(Err((
            "card_unassigned",
            format!("card {} belongs to no customer", req.card),
        )));
    };
    let row = tx
        .customer(&account)?
        .ok_or_else(|| ApiError::internal(format!("account {account} vanished")))?;
    // Expiry never runs ahead of the server's clock, whatever the till's clock says.
    let today = req.requested_at.date_naive().min(chrono::Local::now().date_naive());
    let current = rules::expire_points(&row.state, today);
    if current.points_balance != row.state.points_balance {
        put_account_state(tx, &account, &current, Cause::new(LedgerKind::Expiry, &req.request_id))?;
    }
    let (redeemed, state) = match rules::redeem_from(program, &current, req.points) {
        Some(r) if r.0.points_used == req.points => r,
        _ if offline => {
            // The till's engine granted it from its cached balance: apply the same step even if
            // the server's balance is short now (another till spent the same points).
            let mut lifted = current.clone();
            lifted.points_balance = current.points_balance.max(req.points);
            match rules::redeem_from(program, &lifted, req.points) {
                Some((r, mut s)) if r.points_used == req.points => {
                    s.points_balance = current.points_balance - r.points_used;
                    (r, s)
                }
                _ => {
                    return Ok(Err((
                        "invalid_points",
                        format!("points: {} is not a redeemable step of the program", req.points),
                    )))
                }
            }
        }
        Some(_) | None if current.points_balance < req.points => {
            return Ok(Err((
                "insufficient_points",
                format!(
                    "points: {} requested but the balance is {}",
                    req.points, current.points_balance
                ),
            )))
        }
        _ => {
            let r = program.redemption.as_ref().expect("checked");
            return Ok(Err((
                "invalid_points",
                format!(
                    "points: {} is not a redeemable step ({} points = {} {}, at least {})",
                    req.points, r.points, r.value, program.currency, r.min_points
                ),
            )));
        }
    };
    let row = RedemptionRow {
        id: req.request_id.clone(),
        payload_hash: hash.to_string(),
        account_id: account.clone(),
        card: req.card.clone(),
        store_id: req.store_id.clone(),
        till_id: req.till_id.clone(),
        points: redeemed.points_used,
        value: redeemed.value,
        reward: redeemed.reward,
        code: rules::redemption_code(&req.request_id),
        offline,
        requested_at: req.requested_at,
        business_day: chrono::Local::now().date_naive(),
        created_at: Utc::now(),
        voided_at: None,
        matched_receipt: None,
        matched_at: None,
    };
    tx.put_redemption(&row)?;
    let mut cause = Cause::new(LedgerKind::Redemption, &req.request_id).at(&req.store_id, &req.till_id);
    cause.note = Some(format!("{} {}", if offline { "offline" } else { "online" }, row.code));
    put_account_state(tx, &account, &state, cause)?;
    tracing::info!(redemption = %row.id, card = %req.card, points = %row.points, offline, "redeemed");
    Ok(Ok(answer(&row, program.currency, state.points_balance)))
}

/// A refusal as an HTTP answer: 404 for an unknown card, 422 for a request id the schema already
/// forbids, else 409 (the program's rules or the account's state say no: not a redeemable step,
/// card policy, balance, blocked card, request id reused).
fn refusal_error(code: &str, message: String) -> ApiError {
    let field = if code == "conflict" || message.starts_with("request_id") {
        "request_id"
    } else if message.starts_with("points") {
        "points"
    } else {
        "card"
    };
    match code {
        "unknown_card" => ApiError::not_found(code, message, Some("card")),
        "invalid_field" if field == "request_id" => ApiError::unprocessable(code, message, Some(field)),
        _ => ApiError::conflict(code, message, Some(field)),
    }
}

fn check_till(till: &TillRow, store: &StoreId, t: &TillId) -> Result<(), ApiError> {
    if store != &till.store_id {
        return Err(ApiError::forbidden(
            format!(
                "this token belongs to store {}; the request is for {store}",
                till.store_id
            ),
            "store_id",
        ));
    }
    if t != &till.till_id {
        return Err(ApiError::forbidden(
            format!("this token belongs to till {}; the request is for {t}", till.till_id),
            "till_id",
        ));
    }
    Ok(())
}

/// Online redemption (the cashier waits). The same request id always gets the same answer and
/// one debit; the same id with another payload is 409 `conflict`.
pub fn redeem(repo: &dyn Repository, till: &TillRow, req: &RedeemRequest) -> Result<RedeemAnswer, ApiError> {
    check_till(till, &req.store_id, &req.till_id)?;
    let hash = payload_hash(&protocol::v1::SyncPayload::Redemption(req.clone()));
    transact(repo, |tx| {
        let snap = require_program(tx)?;
        match apply_redemption(tx, &snap.program, req, &hash, false)? {
            Ok(a) => Ok(a),
            Err((code, msg)) => Err(refusal_error(code, msg)),
        }
    })
}

/// The `redemption` sync item (an offline redemption). Called inside the batch's savepoint.
pub fn sync_redemption(
    tx: &mut dyn Tx,
    program: &Program,
    item_id: &str,
    req: &RedeemRequest,
    hash: &str,
) -> Result<AckResult, ApiError> {
    if item_id != req.request_id {
        return Ok(AckResult::Rejected {
            code: "item_id_mismatch".into(),
            reason: format!("item_id {item_id:?} must equal body.request_id {:?}", req.request_id),
        });
    }
    let existed = tx.redemption(&req.request_id)?.is_some();
    Ok(match apply_redemption(tx, program, req, hash, true)? {
        Ok(_) if existed => AckResult::Duplicate,
        Ok(_) => AckResult::Applied,
        Err((code, reason)) => AckResult::Rejected {
            code: code.to_string(),
            reason: format!("body.{reason}"),
        },
    })
}

/// Void a redemption: same till, same business day; the points come back once (a second void
/// answers the same, crediting nothing).
pub fn void(repo: &dyn Repository, till: &TillRow, id: &str) -> Result<RedeemAnswer, ApiError> {
    transact(repo, |tx| {
        let snap = require_program(tx)?;
        let Some(mut r) = tx.redemption(id)? else {
            return Err(ApiError::not_found(
                "unknown_redemption",
                format!("no redemption {id} is known"),
                Some("id"),
            ));
        };
        if r.store_id != till.store_id || r.till_id != till.till_id {
            return Err(ApiError::forbidden(
                format!(
                    "redemption {id} was made at till {}/{}; only that till may void it",
                    r.store_id, r.till_id
                ),
                "id",
            ));
        }
        if r.voided_at.is_some() {
            let bal = balance_of(tx, &r.account_id)?;
            return Ok(answer(&r, snap.program.currency, bal));
        }
        let today = chrono::Local::now().date_naive();
        if r.business_day != today {
            return Err(ApiError::conflict(
                "void_too_late",
                format!(
                    "redemption {id} is from {}; a void is possible on the same business day only ({today})",
                    r.business_day
                ),
                Some("id"),
            ));
        }
        let row = tx
            .customer(&r.account_id)?
            .ok_or_else(|| ApiError::internal(format!("account {} vanished", r.account_id)))?;
        let mut state = (*row.state).clone();
        state.points_balance += r.points;
        r.voided_at = Some(Utc::now());
        tx.put_redemption(&r)?;
        let (store, t) = (r.store_id.clone(), r.till_id.clone());
        put_account_state(
            tx,
            &r.account_id,
            &state,
            Cause::new(LedgerKind::Void, id).at(&store, &t),
        )?;
        tracing::info!(redemption = %id, points = %r.points, "voided redemption");
        Ok(answer(&r, snap.program.currency, state.points_balance))
    })
}

/// A sale receipt confirms the open redemptions of its store it belongs to: the card's account
/// within the program's window after the redemption, or the redemption code in a discount line.
pub fn match_receipt(
    tx: &mut dyn Tx,
    program: &Program,
    r: &Receipt,
    account: Option<&CustomerId>,
) -> Result<(), ApiError> {
    let Some(rule) = program.redemption.as_ref() else {
        return Ok(());
    };
    let window = Duration::minutes(i64::from(rule.match_window_minutes()));
    let open = tx.open_redemptions(&r.store_id)?;
    for mut red in open {
        let by_code = r
            .lines
            .iter()
            .any(|l| l.kind == LineKind::Discount && l.name.to_uppercase().contains(&red.code));
        let by_card = account == Some(&red.account_id)
            && r.issued_at >= red.requested_at - Duration::minutes(5)
            && r.issued_at <= red.requested_at + window;
        if by_code || by_card {
            red.matched_receipt = Some(r.id.clone());
            red.matched_at = Some(Utc::now());
            tx.put_redemption(&red)?;
        }
    }
    Ok(())
}

/// Credit points preloaded on a prize card when it is assigned to `customer`.
pub fn credit_preload(
    tx: &mut dyn Tx,
    card: &CardId,
    customer: &CustomerId,
    store: &StoreId,
    till: &TillId,
) -> Result<(), ApiError> {
    let Some(points) = tx.take_card_preload(card)? else {
        return Ok(());
    };
    let acct = account_of(tx, customer)?;
    let Some(row) = tx.customer(&acct)? else { return Ok(()) };
    let mut state = (*row.state).clone();
    state.points_balance += points;
    let masked = card.to_string();
    let mut cause = Cause::new(LedgerKind::PrizeCard, &masked).at(store, till);
    cause.note = Some("points preloaded on the card".into());
    put_account_state(tx, &acct, &state, cause)
}

// ------------------------------------------------------------------------------------------
// Admin adjustment

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    #[schema(min_length = 1, pattern = "\\S")]
    pub reason: String,
    /// Positive credits, negative debits.
    #[schema(value_type = protocol::money::DecimalString)]
    pub points: Decimal,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdjustAnswer {
    pub account_id: CustomerId,
    #[schema(value_type = protocol::money::DecimalString)]
    pub points: Decimal,
    #[schema(value_type = protocol::money::DecimalString)]
    pub balance_after: Decimal,
    /// True when this Idempotency-Key was already applied (nothing changed now).
    pub duplicate: bool,
}

pub fn adjust(
    repo: &dyn Repository,
    id: &CustomerId,
    key: &str,
    req: &AdjustRequest,
) -> Result<AdjustAnswer, ApiError> {
    if req.reason.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "missing_field",
            "reason must not be empty",
            Some("reason"),
        ));
    }
    if req.points.is_zero() {
        return Err(ApiError::conflict(
            "nothing_to_adjust",
            "points: 0 changes nothing",
            Some("points"),
        ));
    }
    let request_id = format!("adjust:{key}");
    let hash = sha256_hex(
        serde_json::to_string(&(id, &req.reason, req.points.normalize()))
            .expect("serialises")
            .as_bytes(),
    );
    transact(repo, |tx| {
        let snap = require_program(tx)?;
        if tx.customer(id)?.is_none() {
            return Err(ApiError::not_found(
                "unknown_customer",
                format!("customer {id} is not known"),
                Some("id"),
            ));
        }
        let acct = account_of(tx, id)?;
        if let Some(seen) = tx.request(&request_id)? {
            if seen.payload_hash != hash {
                return Err(ApiError::conflict(
                    "conflict",
                    format!("Idempotency-Key {key:?} was already used for a different adjustment"),
                    Some("Idempotency-Key"),
                ));
            }
            return Ok(AdjustAnswer {
                balance_after: balance_of(tx, &acct)?,
                account_id: acct,
                points: req.points,
                duplicate: true,
            });
        }
        let row = tx.customer(&acct)?.expect("account exists");
        let mut state = (*row.state).clone();
        state.points_balance += req.points;
        if state.points_balance < Decimal::ZERO && !snap.program.allow_negative_balance {
            return Err(ApiError::conflict(
                "insufficient_points",
                format!(
                    "points: {} would take the balance {} below zero",
                    req.points, row.state.points_balance
                ),
                Some("points"),
            ));
        }
        let mut cause = Cause::new(LedgerKind::Adjustment, key);
        cause.note = Some(req.reason.trim().to_string());
        put_account_state(tx, &acct, &state, cause)?;
        tx.insert_request(&RequestRow {
            request_id: request_id.clone(),
            kind: "adjustment".into(),
            payload_hash: hash.clone(),
            result: AckResult::Applied,
        })?;
        Ok(AdjustAnswer {
            account_id: acct,
            points: req.points,
            balance_after: state.points_balance,
            duplicate: false,
        })
    })
}

/// Redemptions for the reports, as of `now`.
pub fn redemptions(repo: &dyn Repository) -> Result<Vec<RedemptionRow>, ApiError> {
    read(repo, |tx| Ok(tx.all_redemptions()?))
}

// ------------------------------------------------------------------------------------------
// Crediting a receipt to an account (sync ingest, receipt tags, purchases before registration)

/// Apply a receipt's effect to `acct`: lapsed campaign points expire first (up to the receipt's
/// day, never ahead of the server's), then the effect is booked (`kind`), the tier recomputed and
/// a tier upgrade recorded. `Err(ack)`: the values overflow (the item is refused).
pub(crate) fn credit_account(
    tx: &mut dyn Tx,
    program: &Program,
    index: usize,
    acct: &CustomerId,
    r: &Receipt,
    effect: &rules::ReceiptEffect,
    kind: LedgerKind,
) -> Result<Result<(), AckResult>, ApiError> {
    let Some(row) = tx.customer(acct)? else {
        return Ok(Ok(()));
    };
    // Campaign points that lapsed by the receipt's day leave the balance first.
    let day = r.issued_at.date_naive();
    // Expiry never runs ahead of the server's clock, whatever the till's clock says.
    let current = rules::expire_points(&row.state, day.min(chrono::Local::now().date_naive()));
    book(
        tx,
        acct,
        row.state.points_balance,
        current.points_balance,
        Cause::new(LedgerKind::Expiry, &r.id.0).at(&r.store_id, &r.till_id),
    )?;
    let (state, change) = match rules::try_apply_effect(program, &current, effect, day) {
        Ok(applied) => applied,
        Err(mut e) => {
            if let Some(f) = e.field.strip_prefix("account.") {
                e.field = format!("customer {}: {f}", acct.0);
            }
            return Ok(Err(overflow_rejected(index, &e)));
        }
    };
    book(
        tx,
        acct,
        current.points_balance,
        state.points_balance,
        Cause::new(kind, &r.id.0).at(&r.store_id, &r.till_id),
    )?;
    let tier = &program
        .tier_for(rules::turnover(program, &state, r.issued_at.date_naive()))
        .name;
    // Most receipts leave the tier as it was: the customer is then not copied.
    let customer: std::borrow::Cow<'_, Customer> = if row.customer.tier.as_ref() == Some(tier) {
        std::borrow::Cow::Borrowed(&*row.customer)
    } else {
        let mut c = (*row.customer).clone();
        c.tier = Some(tier.clone());
        std::borrow::Cow::Owned(c)
    };
    tx.put_customer(&customer, &state)?;
    for sub in tx.sub_customers(acct)? {
        tx.touch_customer(&sub)?;
    }
    if let Some(TierChange { to, upgrade: true, .. }) = change {
        let discount = program
            .tiers
            .iter()
            .find(|t| t.name == to)
            .map(|t| t.discount_percent)
            .unwrap_or_default();
        record_message(
            tx,
            &customer,
            &format!("tier_upgrade:{}:{to}", acct.0),
            "tier_upgrade",
            format!(
                "Gratulujeme, {}! V programu {} jste nově na úrovni {to} se slevou {discount} %.",
                customer.name.display(),
                program.name
            ),
        )?;
    }
    Ok(Ok(()))
}

/// A receipt whose values overflow the decimal range in the rules engine: that item is
/// rejected (naming the field and value), the rest of the batch goes on.
pub(crate) fn overflow_rejected(index: usize, e: &rules::Overflow) -> AckResult {
    let field = e
        .field
        .strip_prefix("receipt.")
        .map_or_else(|| e.field.clone(), |f| format!("items[{index}].body.{f}"));
    AckResult::Rejected {
        code: "overflow".into(),
        reason: format!("{field}: {} overflows the decimal range ({})", e.value, e.op),
    }
}

pub(crate) fn record_message(
    tx: &mut dyn Tx,
    c: &Customer,
    cause: &str,
    kind: &str,
    text: String,
) -> Result<bool, ApiError> {
    let (channel, recipient) = match (&c.contact.email, &c.contact.phone) {
        (Some(e), _) => ("email", e.clone()),
        (None, Some(p)) => ("sms", p.clone()),
        (None, None) => ("none", String::new()),
    };
    Ok(tx.record_message(&Message {
        id: 0,
        cause: cause.to_string(),
        kind: kind.to_string(),
        customer_id: c.id.0.clone(),
        channel: channel.to_string(),
        recipient,
        text,
        created_at: Utc::now(),
    })?)
}
