//! The server's domain logic over the repository: sync ingest (dedupe + rules engine in one
//! transaction), quotes, the change feed, registrations, migration pairing, admin operations.
//! Handlers call these; nothing here knows SQL or HTTP routing.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use protocol::rules::{self, Program, RulesSnapshot};
use protocol::v1::{
    Ack, AckResult, Card, CardStatus, ChangeFeed, Customer, CustomerChange, CustomerName, CustomerQuote, CustomerState,
    LedgerKind, LineKind, MigrationPairing, Quote, QuoteResult, QuoteSource, Receipt, Registration, SyncBatch,
    SyncPayload, SyncResponse,
};
use protocol::{CardId, CustomerId, StoreId, TillId, WIRE_VERSION};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use crate::digest::payload_hash;
use crate::digest::sha256_hex;
use crate::error::ApiError;
use crate::ledger::{
    self, account_of, credit_account, earning_account, overflow_rejected, record_message, require_program, Cause,
};
use crate::store::batch::BatchTx;
use crate::store::{
    read, transact, CardRow, Message, MigrationCodeRow, Repository, RequestRow, StoredReceipt, TillRow, Tx,
};

/// Most items one sync batch may carry (the body limit bounds it too).
pub const MAX_BATCH_ITEMS: usize = 1000;
pub const DEFAULT_FEED_LIMIT: usize = 500;
pub const MAX_FEED_LIMIT: usize = 1000;

fn now_local() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

fn rejected(code: &str, reason: impl Into<String>) -> AckResult {
    AckResult::Rejected {
        code: code.to_string(),
        reason: reason.into(),
    }
}

// ------------------------------------------------------------------------------------------
// Tills

pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Issue (or re-issue) a till's token; returns the token, which is stored only as its SHA-256.
pub fn till_add(repo: &dyn Repository, store: &StoreId, till: &TillId) -> Result<String, ApiError> {
    let token = new_token();
    let hash = sha256_hex(token.as_bytes());
    transact(repo, |tx| Ok(tx.put_till(store, till, &hash)?))?;
    Ok(token)
}

pub fn till_revoke(repo: &dyn Repository, store: &StoreId, till: &TillId) -> Result<bool, ApiError> {
    transact(repo, |tx| Ok(tx.revoke_till(store, till)?))
}

pub fn authenticate(repo: &dyn Repository, token: &str) -> Result<TillRow, ApiError> {
    let hash = sha256_hex(token.as_bytes());
    match read(repo, |tx| Ok(tx.till_by_token_hash(&hash)?))? {
        None => Err(ApiError::unauthorized("unknown till token")),
        Some(t) if t.revoked => Err(ApiError::unauthorized(format!(
            "the token of till {}/{} was revoked",
            t.store_id, t.till_id
        ))),
        Some(t) => Ok(t),
    }
}

// ------------------------------------------------------------------------------------------
// Sync

/// Whole-batch checks (version, store/till ownership, size), then each item in its own
/// savepoint inside one transaction: an item either fully applies or leaves no trace.
pub fn sync(repo: &dyn Repository, till: &TillRow, batch: &SyncBatch) -> Result<SyncResponse, ApiError> {
    sync_texts(repo, till, batch, &[])
}

/// [`sync`], with the request's text of the items' receipts by item index where the caller has
/// it (`texts[i]` parsed as item `i`'s receipt): that text is stored and hashed as it is.
pub fn sync_texts(
    repo: &dyn Repository,
    till: &TillRow,
    batch: &SyncBatch,
    texts: &[Option<&str>],
) -> Result<SyncResponse, ApiError> {
    if batch.version != WIRE_VERSION {
        return Err(ApiError::bad_request(
            "unsupported_version",
            format!(
                "batch version {:?} is not supported; this server speaks {WIRE_VERSION:?}",
                batch.version
            ),
            Some("version"),
        ));
    }
    if batch.store_id != till.store_id {
        return Err(ApiError::forbidden(
            format!(
                "this token belongs to store {}; the batch is for store {}",
                till.store_id, batch.store_id
            ),
            "store_id",
        ));
    }
    if batch.till_id != till.till_id {
        return Err(ApiError::forbidden(
            format!(
                "this token belongs to till {}/{}; the batch is for till {}",
                till.store_id, till.till_id, batch.till_id
            ),
            "till_id",
        ));
    }
    if batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::new(
            crate::error::ErrorKind::PayloadTooLarge,
            "too_many_items",
            format!(
                "a batch may carry at most {MAX_BATCH_ITEMS} items; this one has {}",
                batch.items.len()
            ),
            Some("items"),
        ));
    }
    for (i, item) in batch.items.iter().enumerate() {
        let (store, t) = match &item.payload {
            SyncPayload::Receipt(r) => (&r.store_id, &r.till_id),
            SyncPayload::Registration(r) => (&r.store_id, &r.till_id),
            SyncPayload::MigrationPairing(p) => (&p.store_id, &p.till_id),
            SyncPayload::Redemption(r) => (&r.store_id, &r.till_id),
            SyncPayload::ReceiptTag(r) => (&r.store_id, &r.till_id),
            SyncPayload::MessageAck(r) => (&r.store_id, &r.till_id),
        };
        if store != &till.store_id {
            return Err(ApiError::forbidden(
                format!(
                    "item {i} is for store {store}; this token belongs to store {}",
                    till.store_id
                ),
                &format!("items[{i}].body.store_id"),
            ));
        }
        if t != &till.till_id {
            return Err(ApiError::forbidden(
                format!("item {i} is for till {t}; this token belongs to till {}", till.till_id),
                &format!("items[{i}].body.till_id"),
            ));
        }
    }

    // The items' pure work (stored text, hash, a receipt's id check) before the transaction, so
    // the writer's lock is held for less.
    let prepared: Vec<Prepared> = batch
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| prepare(it, texts.get(i).copied().flatten()))
        .collect();
    transact(repo, |tx| {
        let Some(snap) = tx.program()? else {
            let acks = batch
                .items
                .iter()
                .map(|it| Ack {
                    item_id: it.item_id.clone(),
                    result: AckResult::Retry {
                        reason: "no program is loaded on the server yet".into(),
                    },
                })
                .collect();
            return Ok(SyncResponse { acks });
        };
        let cards: Vec<CardId> = batch
            .items
            .iter()
            .filter_map(|it| match &it.payload {
                SyncPayload::Receipt(r) => r.card.clone(),
                SyncPayload::Redemption(r) => Some(r.card.clone()),
                SyncPayload::ReceiptTag(t) => Some(t.card.clone()),
                SyncPayload::Registration(_) | SyncPayload::MigrationPairing(_) | SyncPayload::MessageAck(_) => None,
            })
            .collect();
        tx.lock_accounts_of(&cards)?;
        // The items read from what the batch prefetched and write into its buffer, written
        // set-based at the end (item atomicity stays: see store::batch).
        let mut btx = BatchTx::new(tx);
        btx.prefetch(batch)?;
        let tx: &mut dyn Tx = &mut btx;
        let mut acks = Vec::with_capacity(batch.items.len());
        for ((i, item), prep) in batch.items.iter().enumerate().zip(&prepared) {
            let hash = &prep.hash;
            tx.savepoint()?;
            let result = match &item.payload {
                SyncPayload::Receipt(r) => ingest_receipt(tx, &snap.program, i, &item.item_id, r, prep),
                SyncPayload::Registration(r) => register(tx, &snap.program, &item.item_id, r, hash),
                SyncPayload::MigrationPairing(p) => pair_migration(tx, &snap.program, &item.item_id, p, hash),
                SyncPayload::Redemption(r) => ledger::sync_redemption(tx, &snap.program, &item.item_id, r, hash),
                SyncPayload::ReceiptTag(t) => crate::purchases::tag_receipt(tx, &snap.program, &item.item_id, t, hash),
                SyncPayload::MessageAck(a) => crate::purchases::ack_message(tx, &item.item_id, a, hash),
            };
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    tx.rollback_to_savepoint()?;
                    return Err(e);
                }
            };
            if matches!(result, AckResult::Applied | AckResult::Duplicate) {
                tx.release_savepoint()?;
            } else {
                tx.rollback_to_savepoint()?;
            }
            acks.push(Ack {
                item_id: item.item_id.clone(),
                result,
            });
        }
        // Tags with a total whose receipt never came count now (the wait is a program setting).
        crate::purchases::settle_due_tags(tx, &snap.program, Utc::now())?;
        btx.finish()?;
        Ok(SyncResponse { acks })
    })
}

/// An item's work that needs no database: its payload hash, a receipt's stored JSON (the one
/// its hash is made from, one serialisation) and its id check.
struct Prepared {
    hash: String,
    receipt_json: Option<std::sync::Arc<str>>,
    id_error: Option<AckResult>,
}

fn prepare(item: &protocol::v1::SyncItem, text: Option<&str>) -> Prepared {
    match &item.payload {
        SyncPayload::Receipt(r) => {
            let (json, hash) = crate::digest::receipt_payload(r, text);
            Prepared {
                hash,
                receipt_json: Some(json),
                id_error: check_receipt_id(r),
            }
        }
        other => Prepared {
            hash: payload_hash(other),
            receipt_json: None,
            id_error: None,
        },
    }
}

/// Validate a receipt against the program; the error names the field.
fn validate_receipt(
    tx: &mut dyn Tx,
    program: &Program,
    r: &Receipt,
) -> Result<Result<Option<StoredReceipt>, AckResult>, ApiError> {
    if r.currency != program.currency {
        return Ok(Err(rejected(
            "wrong_currency",
            format!(
                "body.currency: {} but the program {:?} runs in {}",
                r.currency, program.name, program.currency
            ),
        )));
    }
    if let Some(card) = &r.card {
        if let Err(e) = card.validate(&program.card_policy) {
            return Ok(Err(rejected("invalid_card", format!("body.card: {e}"))));
        }
    }
    for (i, l) in r.lines.iter().enumerate() {
        let negative = l.quantity.is_sign_negative() && !l.quantity.is_zero();
        if (negative || l.kind == LineKind::Return) && r.original.is_none() {
            return Ok(Err(rejected(
                "return_without_reference",
                format!(
                    "body.lines[{i}].quantity: {} on a {:?} line needs body.original (the receipt being returned)",
                    l.quantity, l.kind
                ),
            )));
        }
        if l.kind == LineKind::Sale && negative {
            return Ok(Err(rejected(
                "negative_sale",
                format!(
                    "body.lines[{i}].quantity: {} on a sale line; use a return line",
                    l.quantity
                ),
            )));
        }
    }
    let Some(orig) = &r.original else { return Ok(Ok(None)) };
    resolve_original(tx, r, orig)
}

/// How long before a return its original may have been issued (POS numbers restart; a window
/// keeps an old receipt with the same number from being taken).
pub const RETURN_WINDOW_DAYS: i64 = 90;
/// How long a return whose original has not arrived yet is answered `retry` (the original may
/// still be in another till's outbox) before it is refused as `unknown_original`.
pub const WAIT_FOR_ORIGINAL_DAYS: i64 = 7;

/// The original of a return, within the return's store: by explicit `receipt_id` first; else by
/// POS number among the store's receipts issued in the [`RETURN_WINDOW_DAYS`] before the return —
/// the same till's newest first, then another till's if exactly one matches.
fn resolve_original(
    tx: &mut dyn Tx,
    r: &Receipt,
    orig: &protocol::v1::OriginalReceipt,
) -> Result<Result<Option<StoredReceipt>, AckResult>, ApiError> {
    let found = match (&orig.receipt_id, &orig.pos_receipt_no) {
        (Some(id), _) => tx.receipt(id)?.filter(|o| o.receipt.store_id == r.store_id),
        (None, Some(no)) => {
            let earliest = r.issued_at - chrono::Duration::days(RETURN_WINDOW_DAYS);
            let candidates: Vec<StoredReceipt> = tx
                .receipts_by_pos_no(&r.store_id, no)?
                .into_iter()
                .filter(|o| o.receipt.issued_at <= r.issued_at && o.receipt.issued_at >= earliest)
                .collect();
            let same_till = candidates.iter().find(|o| o.receipt.till_id == r.till_id).cloned();
            match same_till {
                Some(o) => Some(o),
                None if candidates.len() > 1 => {
                    return Ok(Err(rejected(
                        "ambiguous_original",
                        format!(
                        "body.original.pos_receipt_no: {} receipts {no:?} of other tills of store {} in the {} days \
                             before the return; send body.original.receipt_id",
                        candidates.len(),
                        r.store_id,
                        RETURN_WINDOW_DAYS
                    ),
                    )))
                }
                None => candidates.into_iter().next(),
            }
        }
        (None, None) => {
            return Ok(Err(rejected(
                "invalid_original",
                "body.original: give receipt_id or pos_receipt_no of the returned receipt",
            )));
        }
    };
    if let Some(o) = found {
        return Ok(Ok(Some(o)));
    }
    let what = match (&orig.receipt_id, &orig.pos_receipt_no) {
        (Some(id), _) => format!(
            "body.original.receipt_id: no receipt {id} of store {} is known",
            r.store_id
        ),
        (_, Some(no)) => format!(
            "body.original.pos_receipt_no: no receipt {no:?} of store {} from the {} days before the return is known",
            r.store_id, RETURN_WINDOW_DAYS
        ),
        _ => unreachable!(),
    };
    let age = now_local().signed_duration_since(r.issued_at);
    if age < chrono::Duration::days(WAIT_FOR_ORIGINAL_DAYS) {
        // The original may still be on its way (another till's outbox): not a permanent refusal.
        return Ok(Err(AckResult::Retry {
            reason: format!("waiting for the original: {what}"),
        }));
    }
    Ok(Err(rejected("unknown_original", what)))
}

fn ingest_receipt(
    tx: &mut dyn Tx,
    program: &Program,
    index: usize,
    item_id: &str,
    r: &Receipt,
    prep: &Prepared,
) -> Result<AckResult, ApiError> {
    let hash = prep.hash.as_str();
    if item_id != r.id.0 {
        return Ok(rejected(
            "item_id_mismatch",
            format!("items[{index}].item_id {item_id:?} must equal body.id {:?}", r.id.0),
        ));
    }
    if let Some(ack) = &prep.id_error {
        return Ok(ack.clone());
    }
    if let Some(existing) = tx.receipt(&r.id)? {
        // The hashes are of the texts as they came: the same receipt laid out otherwise is
        // still the same (compared in one canonical form).
        return Ok(
            if existing.payload_hash == hash || crate::digest::same_receipt(&existing.receipt, r) {
                AckResult::Duplicate
            } else {
                rejected("conflict", conflict_reason(&existing.receipt, r))
            },
        );
    }
    if let Some(ack) = issued_in_future(r) {
        return Ok(ack);
    }
    let original = match validate_receipt(tx, program, r)? {
        Ok(o) => o,
        Err(ack) => return Ok(ack),
    };
    let mut tag = crate::purchases::TagMatch::None;
    let (effect, account) = match &original {
        Some(o) => {
            // A return debits the account the original credited (even if the return has no card),
            // cumulatively after earlier returns of the same original so partial returns add up.
            let earlier = tx.returns_of(&o.receipt.id)?;
            match rules::try_evaluate_return_after(program, &o.receipt, &o.effect, &earlier, r) {
                Ok(effect) => (effect, o.account.clone()),
                Err(e) => return Ok(overflow_rejected(index, &e)),
            }
        }
        None => {
            let effect = match rules::try_evaluate_receipt(program, r) {
                Ok(effect) => effect,
                Err(e) => return Ok(overflow_rejected(index, &e)),
            };
            // A card-less receipt takes the card of a waiting "add purchase to card" tag.
            tag = crate::purchases::tag_for_receipt(tx, r)?;
            let account = match (&r.card, &tag) {
                (Some(c), _) => earning_account(tx, c)?,
                (None, crate::purchases::TagMatch::Card(t)) => earning_account(tx, &t.tag.card)?,
                (None, _) => None,
            };
            (effect, account)
        }
    };
    if let Some(acct) = &account {
        let kind = if original.is_some() {
            LedgerKind::Return
        } else {
            LedgerKind::Receipt
        };
        if let Err(ack) = credit_account(tx, program, index, acct, r, &effect, kind)? {
            return Ok(ack);
        }
    }
    if original.is_none() {
        ledger::match_receipt(tx, program, r, account.as_ref())?;
    }
    let original_id = original.as_ref().map(|o| o.receipt.id.clone());
    tx.insert_receipt(
        StoredReceipt {
            receipt: std::sync::Arc::new(r.clone()),
            payload_hash: hash.to_string(),
            account: account.clone(),
            effect: std::sync::Arc::new(effect),
            payload_json: prep.receipt_json.clone(),
        },
        original_id.as_ref(),
    )?;
    crate::purchases::receipt_stored(tx, r, account.as_ref(), tag)?;
    Ok(AckResult::Applied)
}

/// Wrong migration codes per till: at most [`pairing_attempts::MAX_FAILURES`] in
/// [`pairing_attempts::WINDOW_SECS`]; beyond that a till's pairings wait (`retry`), so a 4-digit
/// code cannot be tried exhaustively. Kept in memory (a restart forgets it).
pub mod pairing_attempts {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use protocol::v1::AckResult;
    use protocol::{StoreId, TillId};

    pub const MAX_FAILURES: usize = 10;
    pub const WINDOW_SECS: u64 = 3600;

    type Key = (String, String);
    static FAILURES: Mutex<Option<HashMap<Key, VecDeque<Instant>>>> = Mutex::new(None);

    fn with<T>(f: impl FnOnce(&mut HashMap<Key, VecDeque<Instant>>) -> T) -> T {
        let mut g = FAILURES.lock().unwrap_or_else(|e| e.into_inner());
        f(g.get_or_insert_with(HashMap::new))
    }

    fn recent(q: &mut VecDeque<Instant>) -> usize {
        let window = Duration::from_secs(WINDOW_SECS);
        while q.front().is_some_and(|t| t.elapsed() > window) {
            q.pop_front();
        }
        q.len()
    }

    /// `retry` when this till has had too many wrong codes lately.
    pub fn refused(store: &StoreId, till: &TillId) -> Option<AckResult> {
        with(|m| {
            let q = m.get_mut(&(store.0.clone(), till.0.clone()))?;
            let n = recent(q);
            let oldest = *q.front()?;
            (n >= MAX_FAILURES).then(|| {
                let wait = Duration::from_secs(WINDOW_SECS).saturating_sub(oldest.elapsed());
                AckResult::Retry {
                    reason: format!(
                        "too_many_attempts: {n} wrong migration codes from till {store}/{till} in the last {} \
                         minutes; pairing from this till resumes in {} minutes",
                        WINDOW_SECS / 60,
                        wait.as_secs().div_ceil(60)
                    ),
                }
            })
        })
    }

    pub fn failed(store: &StoreId, till: &TillId) {
        with(|m| {
            let q = m.entry((store.0.clone(), till.0.clone())).or_default();
            recent(q);
            q.push_back(Instant::now());
        })
    }
}

/// How far ahead of the server's clock a receipt's `issued_at` may be (till clocks drift; a
/// receipt from the future would run point expiry forward).
pub const MAX_CLOCK_AHEAD_MINUTES: i64 = 15;

/// A receipt dated ahead of the server's clock by more than [`MAX_CLOCK_AHEAD_MINUTES`] but at
/// most this many hours waits (`retry`) until that time has passed: a till whose clock or time
/// zone is set wrong (a summer-time setting, a zone hours off) still has its purchases credited,
/// without anyone requeueing them. Further ahead (a clock years off) it is refused.
pub const MAX_CLOCK_AHEAD_WAIT_HOURS: i64 = 24;

fn issued_in_future(r: &Receipt) -> Option<AckResult> {
    let now = now_local();
    let ahead = r.issued_at.signed_duration_since(now);
    if ahead <= chrono::Duration::minutes(MAX_CLOCK_AHEAD_MINUTES) {
        return None;
    }
    if ahead <= chrono::Duration::hours(MAX_CLOCK_AHEAD_WAIT_HOURS) {
        return Some(AckResult::Retry {
            reason: format!(
                "issued_in_future: body.issued_at {} is {} minutes ahead of the server's clock ({}); it is taken \
                 once that time has passed — set the till's clock and time zone",
                r.issued_at.to_rfc3339(),
                ahead.num_minutes(),
                now.to_rfc3339()
            ),
        });
    }
    Some(rejected(
        "issued_in_future",
        format!(
            "body.issued_at: {} is more than {MAX_CLOCK_AHEAD_WAIT_HOURS} hours ahead of the server's clock ({}); \
             set the till's clock and requeue",
            r.issued_at.to_rfc3339(),
            now.to_rfc3339()
        ),
    ))
}

/// A receipt's id is derived from its store, till, POS number and issue time, so an id names
/// one receipt of one store: a till cannot take (or collide with) another store's receipt id.
fn check_receipt_id(r: &Receipt) -> Option<AckResult> {
    let expected = protocol::ReceiptId::derive(&r.store_id, &r.till_id, &r.pos_receipt_no, &r.issued_at);
    (expected != r.id).then(|| {
        rejected(
            "receipt_id_mismatch",
            format!(
                "body.id: {} is not the id of receipt {:?} of {}/{} issued {} (expected {})",
                r.id,
                r.pos_receipt_no,
                r.store_id,
                r.till_id,
                r.issued_at.to_rfc3339(),
                expected
            ),
        )
    })
}

/// Why a re-sent receipt with the same id is refused: what changed (the POS re-exported it with
/// other content). The first version stays; a correction needs a return and a new receipt.
fn conflict_reason(old: &Receipt, new: &Receipt) -> String {
    let mut changed = Vec::new();
    if old.total != new.total {
        changed.push(format!("total {} → {}", old.total, new.total));
    }
    if old.card != new.card {
        changed.push("card".to_string());
    }
    if old.lines != new.lines {
        changed.push(format!("lines ({} → {})", old.lines.len(), new.lines.len()));
    }
    if old.original != new.original {
        changed.push("original".to_string());
    }
    if changed.is_empty() {
        changed.push("other fields".to_string());
    }
    format!(
        "receipt {} ({:?}) was already applied with other content ({}); the applied version stands — correct it \
         with a return and a new receipt",
        new.id,
        new.pos_receipt_no,
        changed.join(", ")
    )
}

/// Dedupe an idempotent request: Some(ack) if it was seen before.
fn seen_request(tx: &mut dyn Tx, request_id: &str, hash: &str) -> Result<Option<AckResult>, ApiError> {
    Ok(tx.request(request_id)?.map(|row| {
        if row.payload_hash == hash {
            AckResult::Duplicate
        } else {
            rejected(
                "conflict",
                format!("request id {request_id} was already used with a different payload"),
            )
        }
    }))
}

fn register(
    tx: &mut dyn Tx,
    program: &Program,
    item_id: &str,
    reg: &Registration,
    hash: &str,
) -> Result<AckResult, ApiError> {
    if item_id != reg.request_id {
        return Ok(rejected(
            "item_id_mismatch",
            format!("item_id {item_id:?} must equal body.request_id {:?}", reg.request_id),
        ));
    }
    if let Some(ack) = seen_request(tx, &reg.request_id, hash)? {
        return Ok(ack);
    }
    if !reg.consents.program_rules {
        return Ok(rejected(
            "consent_required",
            "body.consents.program_rules: consent to the program rules is required to enrol",
        ));
    }
    match &reg.name {
        CustomerName::Person { first_name, surname } => {
            if first_name.trim().is_empty() {
                return Ok(rejected("missing_field", "body.name.first_name is empty"));
            }
            if surname.trim().is_empty() {
                return Ok(rejected("missing_field", "body.name.surname is empty"));
            }
        }
        CustomerName::Company { company_name } => {
            if company_name.trim().is_empty() {
                return Ok(rejected("missing_field", "body.name.company_name is empty"));
            }
        }
        CustomerName::Anonymous => {
            return Ok(rejected(
                "missing_field",
                "body.name: a registration needs a person's or a company's name",
            ));
        }
    }
    if let Some(e) = &reg.contact.email {
        if !e.contains('@') {
            return Ok(rejected(
                "invalid_field",
                format!("body.contact.email {e:?} is not an e-mail address"),
            ));
        }
    }
    if let Err(e) = reg.card.validate(&program.card_policy) {
        return Ok(rejected("invalid_card", format!("body.card: {e}")));
    }
    let existing = tx.card(&reg.card)?;
    if let Some(c) = &existing {
        if let CardStatus::Blocked { reason } = &c.status {
            return Ok(rejected("card_blocked", format!("body.card is blocked ({reason})")));
        }
        if matches!(c.status, CardStatus::Replaced { .. }) {
            return Ok(rejected("card_replaced", "body.card was replaced by another card"));
        }
        if let Some(owner) = &c.customer_id {
            match tx.customer(owner)? {
                Some(row) if row.customer.name == CustomerName::Anonymous => {
                    return adopt_anonymous(tx, program, reg, hash, row);
                }
                _ => return Ok(rejected("card_taken", "body.card already belongs to a customer")),
            }
        }
    }
    let id = CustomerId(format!("C{:06}", tx.next_counter("customer")?));
    let customer = Customer {
        id: id.clone(),
        name: reg.name.clone(),
        contact: reg.contact.clone(),
        consents: reg.consents.clone(),
        birthday: reg.birthday,
        tier: Some(program.tiers.first().map(|t| t.name.clone()).unwrap_or_default()),
        parent: None,
        discount_override: None,
    };
    tx.put_customer(&customer, &CustomerState::default())?;
    tx.put_card(&CardRow {
        number: reg.card.clone(),
        customer_id: Some(id.clone()),
        status: CardStatus::Active,
        issued_store: Some(reg.store_id.clone()),
        issued_at: Some(Utc::now()),
    })?;
    ledger::credit_preload(tx, &reg.card, &id, &reg.store_id, &reg.till_id)?;
    if let Err(ack) = crate::purchases::credit_unmatched(tx, program, &reg.card, &id)? {
        return Ok(ack);
    }
    welcome_and_record(tx, program, &customer, reg, hash)?;
    tracing::info!(customer = %id, card = %reg.card, store = %reg.store_id, "registered customer");
    Ok(AckResult::Applied)
}

/// Registering an anonymous card: its account (balance, ledger, turnover) becomes the customer's
/// — the same customer id, now with the registration's name, contact, consents and birthday.
fn adopt_anonymous(
    tx: &mut dyn Tx,
    program: &Program,
    reg: &Registration,
    hash: &str,
    row: crate::store::CustomerRow,
) -> Result<AckResult, ApiError> {
    let mut customer = std::sync::Arc::unwrap_or_clone(row.customer);
    customer.name = reg.name.clone();
    customer.contact = reg.contact.clone();
    customer.consents = reg.consents.clone();
    customer.birthday = reg.birthday;
    tx.put_customer(&customer, &row.state)?;
    if let Err(ack) = crate::purchases::credit_unmatched(tx, program, &reg.card, &customer.id)? {
        return Ok(ack);
    }
    welcome_and_record(tx, program, &customer, reg, hash)?;
    tracing::info!(customer = %customer.id, card = %reg.card, "anonymous card registered: its account is the customer's");
    Ok(AckResult::Applied)
}

/// The end of every applied registration: the welcome message for the cashier and the request
/// row that makes a retry of the same request id answer the same.
fn welcome_and_record(
    tx: &mut dyn Tx,
    program: &Program,
    customer: &Customer,
    reg: &Registration,
    hash: &str,
) -> Result<(), ApiError> {
    record_message(
        tx,
        customer,
        &format!("welcome:{}", customer.id.0),
        "welcome",
        format!(
            "Vítejte v programu {}, {}! Vaše karta je aktivní.",
            program.name,
            customer.name.display()
        ),
    )?;
    tx.insert_request(&RequestRow {
        request_id: reg.request_id.clone(),
        kind: "registration".into(),
        payload_hash: hash.to_string(),
        result: AckResult::Applied,
    })?;
    Ok(())
}

fn pair_migration(
    tx: &mut dyn Tx,
    program: &Program,
    item_id: &str,
    p: &MigrationPairing,
    hash: &str,
) -> Result<AckResult, ApiError> {
    if item_id != p.request_id {
        return Ok(rejected(
            "item_id_mismatch",
            format!("item_id {item_id:?} must equal body.request_id {:?}", p.request_id),
        ));
    }
    if let Some(ack) = seen_request(tx, &p.request_id, hash)? {
        return Ok(ack);
    }
    let code = p.code.trim();
    if let Some(ack) = pairing_attempts::refused(&p.store_id, &p.till_id) {
        return Ok(ack);
    }
    let Some(mut mc) = tx.migration_code(code)? else {
        pairing_attempts::failed(&p.store_id, &p.till_id);
        return Ok(rejected(
            "unknown_code",
            format!("body.code {code:?} is not a known migration code"),
        ));
    };
    if let Some(used) = &mc.used_by_card {
        if used != &p.card {
            return Ok(rejected(
                "code_used",
                format!("body.code {code:?} was already paired with card {used}"),
            ));
        }
    }
    if let Err(e) = p.card.validate(&program.card_policy) {
        return Ok(rejected("invalid_card", format!("body.card: {e}")));
    }
    let existing = tx.card(&p.card)?;
    // An anonymous card (its own account, no name) may be paired: its account merges into the
    // customer's.
    let mut anonymous = None;
    if let Some(c) = &existing {
        if let CardStatus::Blocked { reason } = &c.status {
            return Ok(rejected("card_blocked", format!("body.card is blocked ({reason})")));
        }
        if matches!(c.status, CardStatus::Replaced { .. }) {
            return Ok(rejected("card_replaced", "body.card was replaced by another card"));
        }
        if let Some(owner) = c.customer_id.as_ref().filter(|owner| *owner != &mc.customer_id) {
            match tx.customer(owner)? {
                Some(row) if row.customer.name == CustomerName::Anonymous => anonymous = Some(row),
                _ => return Ok(rejected("card_taken", "body.card already belongs to another customer")),
            }
        }
    }
    let Some(cust) = tx.customer(&mc.customer_id)? else {
        return Ok(rejected(
            "unknown_code",
            format!("body.code {code:?} points to a customer that no longer exists"),
        ));
    };
    if let Some(anon) = anonymous {
        let acct = ledger::account_of(tx, &mc.customer_id)?;
        if let Err(ack) = merge_anonymous(tx, anon, &acct)? {
            return Ok(ack);
        }
    }
    // The old discount lives on the customer (discount_override); linking the card to the
    // customer moves it onto the card.
    tx.put_card(&CardRow {
        number: p.card.clone(),
        customer_id: Some(mc.customer_id.clone()),
        status: CardStatus::Active,
        issued_store: Some(p.store_id.clone()),
        issued_at: Some(Utc::now()),
    })?;
    ledger::credit_preload(tx, &p.card, &mc.customer_id, &p.store_id, &p.till_id)?;
    let acct = ledger::account_of(tx, &mc.customer_id)?;
    if let Err(ack) = crate::purchases::credit_unmatched(tx, program, &p.card, &acct)? {
        return Ok(ack);
    }
    mc.used_by_card = Some(p.card.clone());
    tx.put_migration_code(&mc)?;
    tx.touch_customer(&mc.customer_id)?;
    record_message(
        tx,
        &cust.customer,
        &format!("welcome:{}", mc.customer_id.0),
        "welcome",
        format!(
            "Vítejte v programu {}, {}! Vaše sleva přešla na novou kartu.",
            program.name,
            cust.customer.name.display()
        ),
    )?;
    tx.insert_request(&RequestRow {
        request_id: p.request_id.clone(),
        kind: "migration_pairing".into(),
        payload_hash: hash.to_string(),
        result: AckResult::Applied,
    })?;
    tracing::info!(customer = %mc.customer_id, card = %p.card, "paired migration code");
    Ok(AckResult::Applied)
}

/// An anonymous card's account merged into `into` (the paired customer's earning account): its
/// points, turnover and expiring points move, booked on both ledgers as a points transfer; the
/// anonymous account is left empty (its history stays with it). An overflow refuses the pairing
/// before anything is written.
fn merge_anonymous(
    tx: &mut dyn Tx,
    anon: crate::store::CustomerRow,
    into: &CustomerId,
) -> Result<Result<(), AckResult>, ApiError> {
    let mut target = tx
        .customer(into)?
        .ok_or_else(|| ApiError::internal(format!("account {into} vanished")))?;
    let s = anon.state;
    let before = target.state.points_balance;
    let overflow = |what: &str| {
        rejected(
            "overflow",
            format!(
                "{what} of {into} and the anonymous account {} together overflow",
                anon.customer.id
            ),
        )
    };
    let Some(balance) = before.checked_add(s.points_balance) else {
        return Ok(Err(overflow("the points balances")));
    };
    let mut turnover = target.state.turnover_by_month.clone();
    for (m, v) in &s.turnover_by_month {
        let e = turnover.entry(m.clone()).or_default();
        let Some(sum) = e.checked_add(*v) else {
            return Ok(Err(overflow("the turnovers")));
        };
        *e = sum;
    }
    let state = std::sync::Arc::make_mut(&mut target.state);
    state.points_balance = balance;
    state.turnover_by_month = turnover;
    state.expiring_points.extend(s.expiring_points.iter().cloned());
    tx.put_customer(&target.customer, &target.state)?;
    for sub in tx.sub_customers(into)? {
        tx.touch_customer(&sub)?;
    }
    ledger::book(
        tx,
        into,
        before,
        balance,
        Cause::new(LedgerKind::FamilyMerge, &anon.customer.id.0),
    )?;
    tx.put_customer(&anon.customer, &CustomerState::default())?;
    ledger::book(
        tx,
        &anon.customer.id,
        s.points_balance,
        Decimal::ZERO,
        Cause::new(LedgerKind::FamilyMerge, &into.0),
    )?;
    tracing::info!(anonymous = %anon.customer.id, into = %into, points = %s.points_balance, "anonymous account merged on pairing");
    Ok(Ok(()))
}

// ------------------------------------------------------------------------------------------
// Quote, rules, change feed

pub fn parse_card(raw: &str, field: &str) -> Result<CardId, ApiError> {
    CardId::normalise(raw).map_err(|e| ApiError::bad_request("invalid_card", format!("{field}: {e}"), Some(field)))
}

fn customer_quote(
    tx: &mut dyn Tx,
    program: &Program,
    customer: &CustomerId,
    at: &DateTime<FixedOffset>,
) -> Result<Option<CustomerQuote>, ApiError> {
    let Some(row) = tx.customer(customer)? else {
        return Ok(None);
    };
    let state = account_state(tx, &row.customer, (*row.state).clone())?;
    let mut q = rules::customer_quote(program, &row.customer, &state, at);
    let acct = row.customer.parent.clone().unwrap_or_else(|| customer.clone());
    q.recent = tx.ledger(&acct, None, ledger::RECENT_ENTRIES)?;
    q.messages = crate::purchases::quote_messages(tx, program, &row.customer, &state, &q, at)?;
    Ok(Some(q))
}

/// The state that counts for a customer: their parent's for a sub-card holder.
fn account_state(tx: &mut dyn Tx, c: &Customer, own: CustomerState) -> Result<CustomerState, ApiError> {
    match &c.parent {
        Some(p) => Ok(tx
            .customer(p)?
            .map(|r| std::sync::Arc::unwrap_or_clone(r.state))
            .unwrap_or_default()),
        None => Ok(own),
    }
}

pub fn quote(repo: &dyn Repository, card: &CardId) -> Result<Quote, ApiError> {
    let at = now_local();
    read(repo, |tx| {
        let snap = require_program(tx)?;
        let program = &snap.program;
        let unknown = || QuoteResult::UnknownCard { card: card.clone() };
        let result = match tx.card(card)? {
            None => unknown(),
            Some(row) => match row.status {
                CardStatus::Blocked { reason } => QuoteResult::Blocked {
                    card: card.clone(),
                    reason,
                },
                CardStatus::Replaced { by } => {
                    // Follow the chain to the card in use now (bounded: a cycle is a data error).
                    let mut cur = tx.card(&by)?;
                    let mut hops = 0;
                    while let Some(CardRow {
                        status: CardStatus::Replaced { by },
                        ..
                    }) = &cur
                    {
                        hops += 1;
                        if hops > 16 {
                            return Err(ApiError::internal("card replacement chain is longer than 16"));
                        }
                        cur = tx.card(&by.clone())?;
                    }
                    match cur {
                        Some(CardRow {
                            number,
                            customer_id: Some(cid),
                            ..
                        }) => match customer_quote(tx, program, &cid, &at)? {
                            Some(quote) => QuoteResult::Replaced {
                                card: card.clone(),
                                new_card: number,
                                quote,
                            },
                            None => unknown(),
                        },
                        _ => unknown(),
                    }
                }
                CardStatus::Active => match row.customer_id {
                    None => unknown(),
                    Some(cid) => match customer_quote(tx, program, &cid, &at)? {
                        Some(quote) => QuoteResult::Customer {
                            card: card.clone(),
                            quote,
                        },
                        None => unknown(),
                    },
                },
            },
        };
        Ok(Quote {
            result,
            source: QuoteSource::Online,
        })
    })
}

pub fn rules_snapshot(repo: &dyn Repository) -> Result<RulesSnapshot, ApiError> {
    read(repo, require_program)
}

fn change_of(tx: &mut dyn Tx, row: crate::store::CustomerRow) -> Result<CustomerChange, ApiError> {
    let cards = tx
        .cards_of(&row.customer.id)?
        .into_iter()
        .map(|c| Card {
            number: c.number,
            customer_id: c.customer_id,
            status: c.status,
        })
        .collect();
    let state = account_state(tx, &row.customer, std::sync::Arc::unwrap_or_clone(row.state))?;
    Ok(CustomerChange {
        customer: std::sync::Arc::unwrap_or_clone(row.customer),
        cards,
        state,
        contact_keys: Vec::new(),
    })
}

pub fn parse_cursor(since: Option<&str>) -> Result<i64, ApiError> {
    match since {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                format!("since={s:?} is not a cursor this server issued"),
                Some("since"),
            )
        }),
    }
}

pub fn parse_limit(limit: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit={s:?}: expected a whole number 1..={max}"),
                    Some("limit"),
                )
            }),
    }
}

/// Customers (with their cards and account state) changed after `since`. For a sub-card holder
/// the state is the parent account's; a parent's change re-emits its sub-card holders.
/// What a till may hold of a customer (data minimisation): name, tier, discount override,
/// parent link, cards with their status and the account state. Contact data, birthday and
/// consents stay on the server.
fn for_till(mut c: CustomerChange) -> CustomerChange {
    c.customer.contact = Default::default();
    c.customer.birthday = None;
    c.customer.consents = Default::default();
    c
}

/// The change feed for tills (see [`for_till`]).
pub fn changes(repo: &dyn Repository, since: i64, limit: usize) -> Result<ChangeFeed, ApiError> {
    read(repo, |tx| {
        let mut rows = tx.changed_since(since, limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let cursor = rows.last().map(|r| r.change_seq).unwrap_or(since);
        let snap = tx.program()?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            let mut c = change_of(tx, row)?;
            c.contact_keys = crate::purchases::contact_keys(snap.as_ref(), &c.customer);
            changes.push(for_till(c));
        }
        Ok(ChangeFeed {
            changes,
            cursor: cursor.to_string(),
            more,
            server_time: now_local(),
        })
    })
}

// ------------------------------------------------------------------------------------------
// Administration

pub fn put_program(repo: &dyn Repository, program: &Program) -> Result<RulesSnapshot, ApiError> {
    validate_program(program)?;
    transact(repo, |tx| Ok(tx.put_program(program)?))
}

pub fn validate_program(p: &Program) -> Result<(), ApiError> {
    if p.tiers.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_program",
            "program.tiers must not be empty",
            Some("program.tiers"),
        ));
    }
    if p.card_policy.min_len > p.card_policy.max_len || p.card_policy.max_len == 0 {
        return Err(ApiError::unprocessable(
            "invalid_program",
            "card_policy.min_len > max_len",
            Some("program.card_policy"),
        ));
    }
    Ok(())
}

/// A new card number: first prefix + zero-padded serial (+ Luhn digit), length = min_len.
fn next_card_number(tx: &mut dyn Tx, program: &Program) -> Result<CardId, ApiError> {
    let pol = &program.card_policy;
    let prefix = pol.prefixes.first().cloned().unwrap_or_default();
    let len = pol.min_len.max(prefix.len() + 6);
    let body = len - prefix.len() - usize::from(pol.luhn);
    for _ in 0..1000 {
        let serial = tx.next_counter("card_serial")?;
        let digits = serial.to_string();
        if digits.len() > body {
            return Err(ApiError::conflict(
                "card_numbers_exhausted",
                "no card numbers left under this prefix",
                None,
            ));
        }
        let mut n = format!("{prefix}{digits:0>body$}");
        if pol.luhn {
            n.push(protocol::ids::luhn_check_digit(&n));
        }
        let id = CardId::normalise(&n).expect("digits");
        if tx.card(&id)?.is_none() {
            return Ok(id);
        }
    }
    Err(ApiError::internal("could not find a free card number in 1000 tries"))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCardsRequest {
    #[schema(minimum = 1, maximum = 10_000)]
    pub count: usize,
    /// Prize cards: points preloaded on each card, credited (in the ledger) when it is assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<protocol::money::DecimalString>)]
    pub initial_points: Option<Decimal>,
    /// Anonymous cards: each gets an account of its own (customer `A…`, name `anonymous`) that
    /// earns from the first purchase and becomes the customer's when the card is registered.
    #[serde(default)]
    pub anonymous: bool,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct IssueCardsResponse {
    pub cards: Vec<CardId>,
}

pub const MAX_ISSUE: usize = 10_000;

/// Printed, non-personalised cards: known to the server, not yet issued to anyone.
pub fn issue_cards(repo: &dyn Repository, req: &IssueCardsRequest) -> Result<IssueCardsResponse, ApiError> {
    if req.count == 0 || req.count > MAX_ISSUE {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("count must be 1..={MAX_ISSUE}"),
            Some("count"),
        ));
    }
    if req.initial_points.is_some_and(|p| p <= Decimal::ZERO) {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "initial_points must be positive",
            Some("initial_points"),
        ));
    }
    transact(repo, |tx| {
        let snap = require_program(tx)?;
        let mut cards = Vec::with_capacity(req.count);
        for _ in 0..req.count {
            let n = next_card_number(tx, &snap.program)?;
            let owner = if req.anonymous {
                let id = CustomerId(format!("A{:06}", tx.next_counter("anonymous")?));
                tx.put_customer(
                    &Customer {
                        id: id.clone(),
                        name: CustomerName::Anonymous,
                        contact: Default::default(),
                        consents: Default::default(),
                        birthday: None,
                        tier: Some(snap.program.tiers.first().map(|t| t.name.clone()).unwrap_or_default()),
                        parent: None,
                        discount_override: None,
                    },
                    &CustomerState::default(),
                )?;
                Some(id)
            } else {
                None
            };
            tx.put_card(&CardRow {
                number: n.clone(),
                customer_id: owner.clone(),
                status: CardStatus::Active,
                issued_store: None,
                issued_at: None,
            })?;
            if let Some(owner) = &owner {
                // the account exists from the start: a preload is credited now
                if let Some(p) = req.initial_points {
                    tx.set_card_preload(&n, p)?;
                }
                ledger::credit_preload(tx, &n, owner, &StoreId("HQ".into()), &TillId("admin".into()))?;
                cards.push(n);
                continue;
            }
            if let Some(p) = req.initial_points {
                tx.set_card_preload(&n, p)?;
            }
            cards.push(n);
        }
        Ok(IssueCardsResponse { cards })
    })
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    #[schema(pattern = r"\S")]
    pub reason: String,
}

fn existing_card(tx: &mut dyn Tx, card: &CardId) -> Result<CardRow, ApiError> {
    tx.card(card)?
        .ok_or_else(|| ApiError::not_found("unknown_card", format!("card {card} is not known"), Some("card")))
}

pub fn block_card(repo: &dyn Repository, card: &CardId, reason: &str) -> Result<Card, ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "missing_field",
            "reason must not be empty",
            Some("reason"),
        ));
    }
    transact(repo, |tx| {
        let mut row = existing_card(tx, card)?;
        if let CardStatus::Replaced { by } = &row.status {
            return Err(ApiError::conflict(
                "card_replaced",
                format!("card {card} was already replaced by {by}"),
                Some("card"),
            ));
        }
        row.status = CardStatus::Blocked {
            reason: reason.trim().to_string(),
        };
        tx.put_card(&row)?;
        if let Some(c) = &row.customer_id {
            tx.touch_customer(c)?;
        }
        tracing::info!(card = %card, reason, "blocked card");
        Ok(Card {
            number: row.number,
            customer_id: row.customer_id,
            status: row.status,
        })
    })
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ReissueResponse {
    pub old_card: CardId,
    pub new_card: CardId,
    pub customer_id: CustomerId,
    #[schema(value_type = protocol::money::DecimalString)]
    pub points_balance: Decimal,
}

/// New number for a customer's card; the balance (kept on the customer's account) goes with the
/// new card; the old one answers `replaced` and keeps pointing at the new one.
pub fn reissue_card(repo: &dyn Repository, card: &CardId) -> Result<ReissueResponse, ApiError> {
    transact(repo, |tx| {
        let snap = require_program(tx)?;
        let mut old = existing_card(tx, card)?;
        if let CardStatus::Replaced { by } = &old.status {
            return Err(ApiError::conflict(
                "card_replaced",
                format!("card {card} was already replaced by {by}"),
                Some("card"),
            ));
        }
        let Some(cid) = old.customer_id.clone() else {
            return Err(ApiError::conflict(
                "card_unassigned",
                format!("card {card} belongs to no customer; nothing to move"),
                Some("card"),
            ));
        };
        let new = next_card_number(tx, &snap.program)?;
        tx.put_card(&CardRow {
            number: new.clone(),
            customer_id: Some(cid.clone()),
            status: CardStatus::Active,
            issued_store: old.issued_store.clone(),
            issued_at: Some(Utc::now()),
        })?;
        old.status = CardStatus::Replaced { by: new.clone() };
        tx.put_card(&old)?;
        tx.touch_customer(&cid)?;
        let acct = account_of(tx, &cid)?;
        let balance = tx.customer(&acct)?.map(|r| r.state.points_balance).unwrap_or_default();
        let masked = format!("{card} -> {new}");
        ledger::book(
            tx,
            &acct,
            balance,
            balance,
            Cause::new(LedgerKind::CardReissue, &masked),
        )?;
        tracing::info!(old = %card, new = %new, customer = %cid, "reissued card");
        Ok(ReissueResponse {
            old_card: card.clone(),
            new_card: new,
            customer_id: cid,
            points_balance: balance,
        })
    })
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentRequest {
    /// The account to earn into; null detaches.
    pub parent: Option<CustomerId>,
}

/// Make `id` a sub-card holder of `parent` (family / company). Points and turnover already on
/// the sub account are merged into the parent's.
pub fn set_parent(
    repo: &dyn Repository,
    id: &CustomerId,
    parent: Option<&CustomerId>,
) -> Result<CustomerChange, ApiError> {
    transact(repo, |tx| {
        let mut row = tx.customer(id)?.ok_or_else(|| {
            ApiError::not_found("unknown_customer", format!("customer {id} is not known"), Some("id"))
        })?;
        if let Some(p) = parent {
            if p == id {
                return Err(ApiError::conflict(
                    "invalid_parent",
                    "a customer cannot be their own parent",
                    Some("parent"),
                ));
            }
            let mut prow = tx.customer(p)?.ok_or_else(|| {
                ApiError::not_found("unknown_customer", format!("parent {p} is not known"), Some("parent"))
            })?;
            if prow.customer.parent.is_some() {
                return Err(ApiError::conflict(
                    "invalid_parent",
                    format!("{p} is itself a sub-card holder"),
                    Some("parent"),
                ));
            }
            if !tx.sub_customers(id)?.is_empty() {
                return Err(ApiError::conflict(
                    "invalid_parent",
                    format!("{id} has sub-card holders of its own"),
                    Some("id"),
                ));
            }
            let s = std::sync::Arc::unwrap_or_clone(std::mem::take(&mut row.state));
            let moved = s.points_balance;
            let parent_before = prow.state.points_balance;
            let pstate = std::sync::Arc::make_mut(&mut prow.state);
            let too_big = |what: String| {
                ApiError::conflict(
                    "overflow",
                    format!("{what} of {p} and {id} together overflow the decimal range"),
                    Some("parent"),
                )
            };
            pstate.points_balance = pstate
                .points_balance
                .checked_add(s.points_balance)
                .ok_or_else(|| too_big("the points balances".into()))?;
            for (m, v) in s.turnover_by_month {
                let e = pstate.turnover_by_month.entry(m.clone()).or_default();
                *e = e.checked_add(v).ok_or_else(|| too_big(format!("the {m} turnovers")))?;
            }
            pstate.expiring_points.extend(s.expiring_points);
            tx.put_customer(&prow.customer, &prow.state)?;
            ledger::book(
                tx,
                p,
                parent_before,
                prow.state.points_balance,
                Cause::new(LedgerKind::FamilyMerge, &id.0),
            )?;
            ledger::book(tx, id, moved, Decimal::ZERO, Cause::new(LedgerKind::FamilyMerge, &p.0))?;
        }
        std::sync::Arc::make_mut(&mut row.customer).parent = parent.cloned();
        tx.put_customer(&row.customer, &row.state)?;
        let row = tx.customer(id)?.expect("just written");
        change_of(tx, row)
    })
}

pub fn customer_view(repo: &dyn Repository, id: &CustomerId) -> Result<CustomerChange, ApiError> {
    read(repo, |tx| {
        let row = tx.customer(id)?.ok_or_else(|| {
            ApiError::not_found("unknown_customer", format!("customer {id} is not known"), Some("id"))
        })?;
        change_of(tx, row)
    })
}

pub fn list_messages(repo: &dyn Repository, kind: Option<&str>, limit: usize) -> Result<Vec<Message>, ApiError> {
    read(repo, |tx| Ok(tx.messages(kind, limit)?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BirthdayRun {
    pub date: NaiveDate,
    pub celebrating: usize,
    pub recorded: usize,
}

/// The birthday day for `birthday` in `year` (29 February → 28 February in common years).
pub fn birthday_in(birthday: NaiveDate, year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, birthday.month(), birthday.day())
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(year, 2, 28).expect("valid"))
}

/// Record a birthday message for everyone whose birthday is `date` (once per customer per year).
pub fn birthday_messages(repo: &dyn Repository, date: NaiveDate) -> Result<BirthdayRun, ApiError> {
    transact(repo, |tx| {
        let program = require_program(tx)?.program;
        let mut celebrating = 0;
        let mut recorded = 0;
        for row in tx.all_customers()? {
            let Some(b) = row.customer.birthday else { continue };
            if birthday_in(b, date.year()) != date {
                continue;
            }
            celebrating += 1;
            let c = &row.customer;
            if record_message(
                tx,
                c,
                &format!("birthday:{}:{}", c.id.0, date.year()),
                "birthday",
                format!(
                    "Všechno nejlepší k narozeninám, {}! Váš {} ",
                    c.name.display(),
                    program.name
                )
                .trim_end()
                .to_string(),
            )? {
                recorded += 1;
            }
        }
        Ok(BirthdayRun {
            date,
            celebrating,
            recorded,
        })
    })
}

// ------------------------------------------------------------------------------------------
// Seed

/// A seed fixture: the program, customers with their cards and state, migration codes.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default, rename = "_source")]
    pub source: Option<String>,
    pub program: Program,
    #[serde(default)]
    pub customers: Vec<SeedCustomer>,
    #[serde(default)]
    pub unassigned_cards: Vec<SeedCard>,
    #[serde(default)]
    pub migration_codes: Vec<SeedMigrationCode>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCustomer {
    pub customer: Customer,
    #[serde(default)]
    pub state: CustomerState,
    #[serde(default)]
    pub cards: Vec<SeedCard>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct SeedCard {
    pub number: CardId,
    #[serde(flatten)]
    pub status: CardStatus,
    #[serde(default)]
    pub issued_store: Option<StoreId>,
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMigrationCode {
    pub code: String,
    pub customer_id: CustomerId,
}

#[derive(Debug, Serialize)]
pub struct SeedSummary {
    pub program_version: u64,
    pub customers: usize,
    pub cards: usize,
    pub migration_codes: usize,
}

pub fn seed(repo: &dyn Repository, s: &SeedFile) -> Result<SeedSummary, ApiError> {
    validate_program(&s.program)?;
    let policy = &s.program.card_policy;
    let all_cards = s
        .customers
        .iter()
        .flat_map(|c| c.cards.iter())
        .chain(s.unassigned_cards.iter());
    for (i, c) in all_cards.enumerate() {
        c.number.validate(policy).map_err(|e| {
            ApiError::unprocessable(
                "invalid_card",
                format!("card #{i} ({}): {e}", c.number),
                Some("cards.number"),
            )
        })?;
    }
    let ids: std::collections::BTreeSet<&CustomerId> = s.customers.iter().map(|c| &c.customer.id).collect();
    for c in &s.customers {
        if let Some(p) = &c.customer.parent {
            if !ids.contains(p) {
                return Err(ApiError::unprocessable(
                    "unknown_customer",
                    format!("customer {}: parent {p} is not in the file", c.customer.id),
                    Some("customer.parent"),
                ));
            }
        }
    }
    for m in &s.migration_codes {
        if !ids.contains(&m.customer_id) {
            return Err(ApiError::unprocessable(
                "unknown_customer",
                format!(
                    "migration code {}: customer {} is not in the file",
                    m.code, m.customer_id
                ),
                Some("migration_codes.customer_id"),
            ));
        }
    }
    transact(repo, |tx| {
        let version = match tx.program()? {
            Some(cur) if cur.program == s.program => cur.version,
            _ => tx.put_program(&s.program)?.version,
        };
        let mut cards = 0;
        for c in &s.customers {
            let before = tx
                .customer(&c.customer.id)?
                .map(|r| r.state.points_balance)
                .unwrap_or_default();
            tx.put_customer(&c.customer, &c.state)?;
            ledger::book(
                tx,
                &c.customer.id,
                before,
                c.state.points_balance,
                Cause::new(LedgerKind::Opening, "seed"),
            )?;
            for card in &c.cards {
                tx.put_card(&CardRow {
                    number: card.number.clone(),
                    customer_id: Some(c.customer.id.clone()),
                    status: card.status.clone(),
                    issued_store: card.issued_store.clone(),
                    issued_at: card.issued_at,
                })?;
                cards += 1;
            }
        }
        for card in &s.unassigned_cards {
            tx.put_card(&CardRow {
                number: card.number.clone(),
                customer_id: None,
                status: card.status.clone(),
                issued_store: card.issued_store.clone(),
                issued_at: card.issued_at,
            })?;
            cards += 1;
        }
        for m in &s.migration_codes {
            if tx.migration_code(&m.code)?.is_none() {
                tx.put_migration_code(&MigrationCodeRow {
                    code: m.code.clone(),
                    customer_id: m.customer_id.clone(),
                    used_by_card: None,
                })?;
            }
        }
        // Customer numbers from registrations must not collide with seeded ones (C000001…).
        let max_seeded = s
            .customers
            .iter()
            .filter_map(|c| c.customer.id.0.strip_prefix('C')?.parse::<i64>().ok())
            .max()
            .unwrap_or(0);
        while tx.next_counter("customer")? < max_seeded {}
        Ok(SeedSummary {
            program_version: version,
            customers: s.customers.len(),
            cards,
            migration_codes: s.migration_codes.len(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteRepo;

    fn program() -> Program {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/seed/demo.json")).expect("seed fixture is JSON");
        serde_json::from_value(v["program"].clone()).expect("program")
    }

    #[test]
    fn issued_card_numbers_follow_the_policy_and_skip_taken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let repo = SqliteRepo::open(&dir.path().join("s.db")).unwrap();
        let p = program();
        transact(&repo, |tx| Ok(tx.put_program(&p)?)).unwrap();
        let first = issue_cards(
            &repo,
            &IssueCardsRequest {
                count: 1,
                initial_points: None,
                anonymous: false,
            },
        )
        .unwrap()
        .cards
        .remove(0);
        assert_eq!(first.expose(), "1900000000000017");
        // Occupy the next number: the generator skips it.
        let taken = CardId::normalise("1900000000000025").unwrap();
        transact(&repo, |tx| {
            Ok(tx.put_card(&CardRow {
                number: taken.clone(),
                customer_id: None,
                status: CardStatus::Active,
                issued_store: None,
                issued_at: None,
            })?)
        })
        .unwrap();
        let next = issue_cards(
            &repo,
            &IssueCardsRequest {
                count: 3,
                initial_points: None,
                anonymous: false,
            },
        )
        .unwrap()
        .cards;
        assert!(!next.contains(&taken));
        for c in &next {
            c.validate(&p.card_policy).unwrap();
        }
        assert!(issue_cards(
            &repo,
            &IssueCardsRequest {
                count: 0,
                initial_points: None,
                anonymous: false,
            }
        )
        .is_err());
    }

    #[test]
    fn leap_day_birthdays_fall_on_28_february_in_common_years() {
        let b = NaiveDate::from_ymd_opt(2000, 2, 29).unwrap();
        assert_eq!(birthday_in(b, 2026), NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
        assert_eq!(birthday_in(b, 2028), NaiveDate::from_ymd_opt(2028, 2, 29).unwrap());
    }

    #[test]
    fn cursor_and_limit_parsing_name_the_parameter() {
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert_eq!(parse_cursor(Some("17")).unwrap(), 17);
        assert_eq!(parse_cursor(Some("-1")).unwrap_err().field.as_deref(), Some("since"));
        assert_eq!(
            parse_limit(Some("0"), 5, 10).unwrap_err().field.as_deref(),
            Some("limit")
        );
        assert_eq!(parse_limit(None, 5, 10).unwrap(), 5);
    }

    #[test]
    fn a_receipts_stored_json_and_hash_come_from_one_serialisation_and_match_the_items() {
        let p: SyncPayload = serde_json::from_str(
            r#"{"type":"receipt","body":{"id":"2be804bbdac84863d97a95790b358ab6","store_id":"S","till_id":"T",
            "pos_receipt_no":"1","issued_at":"2026-11-23T10:15:00+01:00","currency":"CZK","total":"12.50",
            "card":"1900 0000 0000 0017","lines":[{"name":"Šampon \"x\"","quantity":"1","unit_price":"12.50",
            "line_total":"12.50","kind":"sale"}]}}"#,
        )
        .unwrap();
        let SyncPayload::Receipt(r) = &p else { unreachable!() };
        let (json, hash) = crate::digest::receipt_payload(r, None);
        assert_eq!(hash, payload_hash(&p));
        assert_eq!(&*json, serde_json::to_string(r).unwrap());
        // The request's text as the agent sends it (serde's) is stored as it is and hashes the same.
        let (text_json, text_hash) = crate::digest::receipt_payload(r, Some(&json));
        assert_eq!((text_json, text_hash), (json.clone(), hash.clone()));
    }

    #[test]
    fn a_receipt_laid_out_otherwise_hashes_otherwise_but_is_the_same_receipt() {
        let a = r#"{"id":"2be804bbdac84863d97a95790b358ab6","store_id":"S","till_id":"T","pos_receipt_no":"1",
            "issued_at":"2026-11-23T10:15:00+01:00","currency":"CZK","total":"12.50","card":null,"lines":[]}"#;
        let b = r#"{ "total":"12.50", "currency":"CZK", "issued_at":"2026-11-23T10:15:00+01:00",
            "pos_receipt_no":"1", "till_id":"T", "store_id":"S", "id":"2be804bbdac84863d97a95790b358ab6" }"#;
        let c = a.replace(r#""12.50""#, r#""12.5""#);
        let [ra, rb, rc]: [protocol::v1::Receipt; 3] = [a, b, &c].map(|t| serde_json::from_str(t).unwrap());
        let (ja, ha) = crate::digest::receipt_payload(&ra, Some(a));
        let (_, hb) = crate::digest::receipt_payload(&rb, Some(b));
        assert_eq!(&*ja, a, "the text is stored as it came");
        assert_ne!(ha, hb);
        assert!(crate::digest::same_receipt(&ra, &rb));
        // 12.5 is not 12.50 in the canonical form (as before): a conflict, not a duplicate.
        assert!(!crate::digest::same_receipt(&ra, &rc));
    }

    #[test]
    fn payload_hash_ignores_formatting_but_not_content() {
        let a: SyncPayload = serde_json::from_str(r#"{"type":"migration_pairing","body":{"request_id":"r","card":"1900 0000 0000 0017","code":"K","store_id":"S","till_id":"T"}}"#).unwrap();
        let b: SyncPayload = serde_json::from_str(r#"{ "body": {"code":"K","request_id":"r","card":"1900000000000017","store_id":"S","till_id":"T"}, "type":"migration_pairing" }"#).unwrap();
        let c: SyncPayload = serde_json::from_str(r#"{"type":"migration_pairing","body":{"request_id":"r","card":"1900000000000017","code":"L","store_id":"S","till_id":"T"}}"#).unwrap();
        assert_eq!(payload_hash(&a), payload_hash(&b));
        assert_ne!(payload_hash(&a), payload_hash(&c));
    }
}
