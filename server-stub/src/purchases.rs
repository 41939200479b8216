//! Every purchase counts: receipts that reach an account late or without a scan.
//!
//! - **Receipt tags** (`receipt_tag` sync item, "add purchase to card"): the store's receipt with
//!   that POS number and date (± 1 day, the tag's till first) is credited to the card's account
//!   once — at once when it is already here without a card, or when it arrives
//!   ([`tag_for_receipt`] from the ingest). A receipt credited to (or scanned with) another card
//!   refuses the tag with the reason. A tag with a total whose receipt has not come after the
//!   program's `tag_total_wait_minutes` becomes a totals-only receipt ([`settle_due_tags`]); a
//!   receipt arriving after that is kept but earns nothing more.
//! - **Purchases before registration**: a receipt whose card is valid but unknown or not yet
//!   assigned is stored with no account (unmatched). Registering or pairing that card credits
//!   its unmatched receipts of the last `unmatched_window_days` ([`credit_unmatched`]), each once
//!   (the row gets its account in the same transaction), returns of them included.
//! - **Cashier messages**: `rules::cashier_messages` on the quote, minus the causes acknowledged
//!   by any till (`message_ack` items, [`ack_message`]).
//! - **Contact lookup keys** for the change feed ([`contact_keys`]).
//!
//! Ledger kinds stay those of the ledger: a tagged or late receipt is a `receipt` entry.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use protocol::contact;
use protocol::rules::{self, MessageFacts, Program, RulesSnapshot};
use protocol::v1::{
    AckResult, CardStatus, CashierMessage, Customer, CustomerQuote, CustomerState, LedgerKind, MessageAck, Receipt,
    ReceiptTag,
};
use protocol::{CardId, CustomerId, ReceiptId};

use crate::digest::payload_hash;
use crate::error::ApiError;
use crate::ledger::{credit_account, earning_account};
use crate::store::{MessageAckRow, RequestRow, StoredReceipt, TagRow, TagState, Tx};

fn rejected(code: &str, reason: impl Into<String>) -> AckResult {
    AckResult::Rejected {
        code: code.to_string(),
        reason: reason.into(),
    }
}

fn masked(card: &CardId) -> String {
    card.to_string()
}

/// What a new card-less receipt found among the tags of its number and day.
#[derive(Debug)]
pub enum TagMatch {
    None,
    /// A waiting tag: the receipt earns for its card.
    Card(Box<TagRow>),
    /// A tag already counted as a totals-only receipt: this receipt earns nothing more.
    AlreadyCounted(Box<TagRow>),
}

/// The tag a new receipt belongs to (same store, POS number and date ± 1 day; a card on the
/// receipt decides itself and the waiting tags are closed in [`receipt_stored`]).
pub fn tag_for_receipt(tx: &mut dyn Tx, r: &Receipt) -> Result<TagMatch, ApiError> {
    let day = r.issued_at.date_naive();
    let tags = tx.tags_for(
        &r.store_id,
        &r.pos_receipt_no,
        day - Duration::days(1),
        day + Duration::days(1),
    )?;
    let mut tags: Vec<TagRow> = tags
        .into_iter()
        .filter(|t| matches!(t.state, TagState::Waiting | TagState::TotalsOnly))
        .collect();
    // the exact day first, then the tag's till
    tags.sort_by_key(|t| (t.tag.date != day, t.tag.till_id != r.till_id));
    Ok(match tags.into_iter().next() {
        None => TagMatch::None,
        Some(t) if t.state == TagState::TotalsOnly => TagMatch::AlreadyCounted(Box::new(t)),
        Some(t) => TagMatch::Card(Box::new(t)),
    })
}

/// After a receipt is stored: close the tag it used (credited / unmatched), note a receipt that
/// came after its tag's totals-only receipt, and close waiting tags a carded receipt overrides.
pub fn receipt_stored(
    tx: &mut dyn Tx,
    r: &Receipt,
    account: Option<&CustomerId>,
    tag: TagMatch,
) -> Result<(), ApiError> {
    match tag {
        TagMatch::Card(t) => {
            let mut t = *t;
            tx.set_receipt_account(&r.id, account, &t.tag.card)?;
            t.state = if account.is_some() {
                TagState::Credited
            } else {
                TagState::Unmatched
            };
            t.receipt_id = Some(r.id.clone());
            tx.put_tag(&t)?;
        }
        TagMatch::AlreadyCounted(t) => {
            let mut t = *t;
            t.note = Some(format!(
                "receipt {} arrived after the tag's totals-only receipt; it earns nothing more",
                r.id
            ));
            tx.put_tag(&t)?;
        }
        TagMatch::None => {
            if let Some(card) = &r.card {
                let day = r.issued_at.date_naive();
                for mut t in tx.tags_for(&r.store_id, &r.pos_receipt_no, day, day)? {
                    if t.state != TagState::Waiting {
                        continue;
                    }
                    t.receipt_id = Some(r.id.clone());
                    if &t.tag.card == card {
                        t.state = TagState::Credited;
                    } else {
                        t.state = TagState::Superseded;
                        t.note = Some(format!("the receipt arrived with card {}", masked(card)));
                    }
                    tx.put_tag(&t)?;
                }
            }
        }
    }
    Ok(())
}

/// The `receipt_tag` sync item.
pub fn tag_receipt(
    tx: &mut dyn Tx,
    program: &Program,
    item_id: &str,
    t: &ReceiptTag,
    hash: &str,
) -> Result<AckResult, ApiError> {
    if item_id != t.request_id {
        return Ok(rejected(
            "item_id_mismatch",
            format!("item_id {item_id:?} must equal body.request_id {:?}", t.request_id),
        ));
    }
    if let Some(row) = tx.tag(&t.request_id)? {
        return Ok(if row.payload_hash == hash {
            AckResult::Duplicate
        } else {
            rejected(
                "conflict",
                format!("request id {} was already used with a different payload", t.request_id),
            )
        });
    }
    let no = t.pos_receipt_no.trim();
    if no.is_empty() {
        return Ok(rejected("missing_field", "body.pos_receipt_no is empty"));
    }
    if let Err(e) = t.card.validate(&program.card_policy) {
        return Ok(rejected("invalid_card", format!("body.card: {e}")));
    }
    if let Some(total) = t.total {
        if total <= rust_decimal::Decimal::ZERO {
            return Ok(rejected(
                "invalid_field",
                format!("body.total: {total} must be more than 0"),
            ));
        }
    }
    if let Some(card) = tx.card(&t.card)? {
        match &card.status {
            CardStatus::Blocked { reason } => {
                return Ok(rejected("card_blocked", format!("body.card is blocked ({reason})")))
            }
            CardStatus::Replaced { by } => {
                return Ok(rejected(
                    "card_replaced",
                    format!("body.card was replaced by card {}; tag the new card", masked(by)),
                ))
            }
            CardStatus::Active => {}
        }
    }
    let what = format!("receipt {no:?} of {} at store {}", t.date, t.store_id);
    let tag_account = earning_account(tx, &t.card)?;
    let mut row = TagRow {
        tag: t.clone(),
        payload_hash: hash.to_string(),
        state: TagState::Waiting,
        receipt_id: None,
        note: None,
    };

    // The receipt itself: same store, that number, the tag's date (± 1 day), not a return.
    let mut found: Vec<StoredReceipt> = tx
        .receipts_by_pos_no(&t.store_id, no)?
        .into_iter()
        .filter(|s| s.receipt.original.is_none())
        .filter(|s| (s.receipt.issued_at.date_naive() - t.date).num_days().abs() <= 1)
        .collect();
    found.sort_by_key(|s| {
        (
            s.receipt.issued_at.date_naive() != t.date,
            s.receipt.till_id != t.till_id,
        )
    });
    // Other tags of this receipt.
    let earlier = tx.tags_for(&t.store_id, no, t.date - Duration::days(1), t.date + Duration::days(1))?;

    if let Some(s) = found.into_iter().next() {
        row.receipt_id = Some(s.receipt.id.clone());
        let other_tag = earlier
            .iter()
            .find(|e| e.receipt_id.as_ref() == Some(&s.receipt.id) && e.tag.card != t.card);
        match (&s.account, &s.receipt.card, other_tag) {
            (Some(a), _, _) if Some(a) == tag_account.as_ref() => {
                // Already credited to this card's account (scanned, or an earlier tag).
                row.state = TagState::Credited;
                row.note = Some("the receipt was already credited to this card's account".into());
            }
            (Some(_), card, _) => {
                let by = card
                    .as_ref()
                    .map_or_else(|| "by an earlier tag".into(), |c| format!("to card {}", masked(c)));
                return Ok(rejected(
                    "receipt_taken",
                    format!("{what} is already credited to another account ({by})"),
                ));
            }
            (None, Some(c), _) if c != &t.card => {
                return Ok(rejected(
                    "receipt_taken",
                    format!(
                        "{what} was scanned with another card ({}); it earns for that card",
                        masked(c)
                    ),
                ));
            }
            (None, _, Some(o)) => {
                return Ok(rejected(
                    "receipt_taken",
                    format!("{what} is already tagged to another card ({})", masked(&o.tag.card)),
                ));
            }
            (None, _, None) => match &tag_account {
                Some(acct) => {
                    if let Err(ack) = credit_account(tx, program, 0, acct, &s.receipt, &s.effect, LedgerKind::Receipt)?
                    {
                        return Ok(ack);
                    }
                    tx.set_receipt_account(&s.receipt.id, Some(acct), &t.card)?;
                    credit_returns_of(tx, program, &s.receipt.id, acct, &t.card)?;
                    row.state = TagState::Credited;
                }
                None => {
                    // The card has no account yet: the receipt waits for its registration.
                    tx.set_receipt_account(&s.receipt.id, None, &t.card)?;
                    row.state = TagState::Unmatched;
                }
            },
        }
    } else if let Some(o) = earlier
        .iter()
        .find(|e| e.tag.date == t.date && e.state == TagState::Waiting && e.tag.card != t.card)
    {
        return Ok(rejected(
            "receipt_taken",
            format!("{what} is already tagged to another card ({})", masked(&o.tag.card)),
        ));
    }
    tx.put_tag(&row)?;
    tracing::info!(tag = %t.request_id, card = %t.card, state = row.state.as_str(), "receipt tag");
    Ok(AckResult::Applied)
}

/// Returns of a receipt that was credited late and that arrived while it had no account: they
/// debit the account now (in the order they came).
fn credit_returns_of(
    tx: &mut dyn Tx,
    program: &Program,
    original: &ReceiptId,
    acct: &CustomerId,
    card: &CardId,
) -> Result<(), ApiError> {
    for ret in tx.returns_of(original)? {
        let Some(s) = tx.receipt(&ret.id)? else { continue };
        if s.account.is_some() {
            continue;
        }
        if credit_account(tx, program, 0, acct, &s.receipt, &s.effect, LedgerKind::Return)?.is_ok() {
            tx.set_receipt_account(&s.receipt.id, Some(acct), card)?;
        }
    }
    Ok(())
}

/// A card was registered or paired: credit its unmatched receipts of the program's window
/// (`unmatched_window_days`) to `acct`, oldest first. `Err(ack)`: a value overflows.
pub fn credit_unmatched(
    tx: &mut dyn Tx,
    program: &Program,
    card: &CardId,
    acct: &CustomerId,
) -> Result<Result<usize, AckResult>, ApiError> {
    let since = chrono::Local::now().date_naive() - Duration::days(i64::from(program.purchases.unmatched_window_days));
    let mut n = 0;
    for s in tx.unmatched_receipts(card, since)? {
        if let Err(ack) = credit_account(tx, program, 0, acct, &s.receipt, &s.effect, LedgerKind::Receipt)? {
            return Ok(Err(ack));
        }
        tx.set_receipt_account(&s.receipt.id, Some(acct), card)?;
        credit_returns_of(tx, program, &s.receipt.id, acct, card)?;
        n += 1;
    }
    if n > 0 {
        tracing::info!(card = %card, account = %acct, receipts = n, "credited purchases made before registration");
    }
    Ok(Ok(n))
}

/// [`settle_due_tags`] in its own transaction (the server's periodic task).
pub fn settle_due(repo: &dyn crate::store::Repository, now: DateTime<Utc>) -> Result<usize, ApiError> {
    crate::store::transact(repo, |tx| match tx.program()? {
        Some(snap) => settle_due_tags(tx, &snap.program, now),
        None => Ok(0),
    })
}

/// Tags with a total whose receipt has not come within `tag_total_wait_minutes` become a
/// totals-only receipt (id `tag:<request id>`, issued at the tag's time, or noon of its date).
pub fn settle_due_tags(tx: &mut dyn Tx, program: &Program, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let wait = Duration::minutes(i64::from(program.purchases.tag_total_wait_minutes));
    let mut n = 0;
    for mut row in tx.waiting_tags_with_total(now - wait)? {
        let t = row.tag.clone();
        let Some(total) = t.total else { continue };
        let issued_at = if t.tagged_at.date_naive() == t.date {
            t.tagged_at
        } else {
            let noon = t.date.and_time(NaiveTime::from_hms_opt(12, 0, 0).expect("noon"));
            t.tagged_at
                .offset()
                .from_local_datetime(&noon)
                .single()
                .unwrap_or(t.tagged_at)
        };
        let receipt = Receipt {
            id: ReceiptId(format!("tag:{}", t.request_id)),
            store_id: t.store_id.clone(),
            till_id: t.till_id.clone(),
            pos_receipt_no: t.pos_receipt_no.trim().to_string(),
            issued_at,
            currency: program.currency,
            total,
            card: Some(t.card.clone()),
            original: None,
            lines: Vec::new(),
            vat: Vec::new(),
        };
        let effect = match rules::try_evaluate_receipt(program, &receipt) {
            Ok(e) => e,
            Err(e) => {
                row.state = TagState::Superseded;
                row.note = Some(format!("the total overflows: {e:?}"));
                tx.put_tag(&row)?;
                continue;
            }
        };
        let account = earning_account(tx, &t.card)?;
        tx.savepoint()?;
        if let Some(acct) = &account {
            if let Err(ack) = credit_account(tx, program, 0, acct, &receipt, &effect, LedgerKind::Receipt)? {
                tx.rollback_to_savepoint()?;
                row.state = TagState::Superseded;
                row.note = Some(format!("not credited: {ack:?}"));
                tx.put_tag(&row)?;
                continue;
            }
        }
        let hash = payload_hash(&protocol::v1::SyncPayload::Receipt(receipt.clone()));
        tx.insert_receipt(
            StoredReceipt {
                receipt: std::sync::Arc::new(receipt.clone()),
                payload_hash: hash,
                account: account.clone(),
                effect: std::sync::Arc::new(effect),
                payload_json: None,
            },
            None,
        )?;
        tx.release_savepoint()?;
        row.state = TagState::TotalsOnly;
        row.receipt_id = Some(receipt.id.clone());
        tx.put_tag(&row)?;
        tracing::info!(tag = %t.request_id, card = %t.card, "tag counted as a totals-only receipt");
        n += 1;
    }
    Ok(n)
}

/// The `message_ack` sync item: the cause (`<kind>:<customer>:…`) must be the card's customer's.
pub fn ack_message(tx: &mut dyn Tx, item_id: &str, a: &MessageAck, hash: &str) -> Result<AckResult, ApiError> {
    if item_id != a.request_id {
        return Ok(rejected(
            "item_id_mismatch",
            format!("item_id {item_id:?} must equal body.request_id {:?}", a.request_id),
        ));
    }
    let Some(customer) = tx.card(&a.card)?.and_then(|c| c.customer_id) else {
        return Ok(rejected(
            "unknown_card",
            format!("body.card {} belongs to no customer", masked(&a.card)),
        ));
    };
    let owner = a.cause.split(':').nth(1).unwrap_or_default();
    let account = crate::ledger::account_of(tx, &customer)?;
    if owner != customer.0 && owner != account.0 {
        return Ok(rejected(
            "foreign_cause",
            format!("body.cause {:?} is not a message of the card's customer", a.cause),
        ));
    }
    if tx.request(&a.request_id)?.is_some_and(|r| r.payload_hash != hash) {
        return Ok(rejected(
            "conflict",
            format!("request id {} was already used with a different payload", a.request_id),
        ));
    }
    let new = tx.put_message_ack(&MessageAckRow {
        cause: a.cause.clone(),
        customer_id: customer,
        card: a.card.clone(),
        store_id: a.store_id.clone(),
        till_id: a.till_id.clone(),
        shown_at: a.shown_at,
    })?;
    if !new {
        return Ok(AckResult::Duplicate);
    }
    tx.insert_request(&RequestRow {
        request_id: a.request_id.clone(),
        kind: "message_ack".into(),
        payload_hash: hash.to_string(),
        result: AckResult::Applied,
    })?;
    Ok(AckResult::Applied)
}

/// The messages a quote carries: the engine's, minus causes any till acknowledged.
pub fn quote_messages(
    tx: &mut dyn Tx,
    program: &Program,
    customer: &Customer,
    state: &CustomerState,
    q: &CustomerQuote,
    at: &DateTime<FixedOffset>,
) -> Result<Vec<CashierMessage>, ApiError> {
    let facts = MessageFacts {
        first_purchase: state.turnover_by_month.is_empty(),
        birthday: customer.birthday,
    };
    let mut out = Vec::new();
    for m in rules::cashier_messages(program, &customer.id, q, &facts, at.date_naive()) {
        if !tx.message_acked(&m.cause)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The keyed hashes of a customer's phone and e-mail for the change feed (none without a
/// lookup key).
pub fn contact_keys(snap: Option<&RulesSnapshot>, c: &Customer) -> Vec<String> {
    let Some(snap) = snap else { return Vec::new() };
    let Some(key) = snap.lookup_key.as_deref().and_then(|k| hex::decode(k).ok()) else {
        return Vec::new();
    };
    contact::keys_of(
        &key,
        c.contact.phone.as_deref(),
        c.contact.email.as_deref(),
        &snap.program.purchases.phone_country,
    )
}
