//! The repository layer: everything the handlers and the service need from storage, behind two
//! object-safe traits. [`Repository`] runs a unit of work in one transaction; [`Tx`] is what the
//! unit of work can read and write. SQL lives only in the backends (`sqlite.rs`, `pg.rs`), which
//! share the schema list (`migrations.rs`) and the row encodings (`codec.rs`). Errors are `crate::error`'s, never HTTP's.

pub mod batch;
mod codec;
pub mod migrations;
pub mod pg;
pub mod sqlite;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use protocol::rules::{Program, ReceiptEffect, RewardKind, RulesSnapshot};
use protocol::v1::{AckResult, CardStatus, Customer, CustomerState, LedgerEntry, LedgerKind, Receipt, ReceiptTag};
use protocol::{CardId, CustomerId, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::ApiError;

pub use crate::error::{StoreError, StoreResult};
/// How an account's state is stored (the ingest bench's floor writes the same columns).
pub use codec::state_columns;

/// A till's credentials row (the token itself is never stored, only its SHA-256).
#[derive(Clone, Debug)]
pub struct TillRow {
    pub store_id: StoreId,
    pub till_id: TillId,
    pub revoked: bool,
}

/// A receipt as stored: the payload, its hash (dedupe) and what it did.
#[derive(Clone, Debug)]
pub struct StoredReceipt {
    pub receipt: std::sync::Arc<Receipt>,
    pub payload_hash: String,
    /// The account points/turnover went to (None: no card, unknown or blocked card).
    pub account: Option<CustomerId>,
    /// The engine's effect (points are credited only when `account` is set).
    pub effect: std::sync::Arc<ReceiptEffect>,
    /// `receipt` as JSON when already made (sync ingest hashes it); None: made when stored.
    pub payload_json: Option<std::sync::Arc<str>>,
}

impl StoredReceipt {
    /// The points its account got (none without an account).
    pub fn points_credited(&self) -> Decimal {
        if self.account.is_some() {
            self.effect.points_delta
        } else {
            Decimal::ZERO
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CardRow {
    pub number: CardId,
    pub customer_id: Option<CustomerId>,
    pub status: CardStatus,
    pub issued_store: Option<StoreId>,
    pub issued_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct CustomerRow {
    /// Shared: a sync batch hands the same account around many times (prefetch, each item's
    /// savepoint, the buffer, the account cache), and a copy of it is a count, not its fields.
    pub customer: std::sync::Arc<Customer>,
    pub state: std::sync::Arc<CustomerState>,
    pub change_seq: i64,
}

/// An idempotent request (registration, migration pairing) already handled.
#[derive(Clone, Debug)]
pub struct RequestRow {
    pub request_id: String,
    pub kind: String,
    pub payload_hash: String,
    pub result: AckResult,
}

#[derive(Clone, Debug)]
pub struct MigrationCodeRow {
    pub code: String,
    pub customer_id: CustomerId,
    pub used_by_card: Option<CardId>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Message {
    pub id: i64,
    /// Unique cause key (`welcome:C000001`, `tier_upgrade:C000001:Gold`, `birthday:C000001:2026`).
    pub cause: String,
    pub kind: String,
    pub customer_id: String,
    /// `email` or `sms` (the first the customer has).
    pub channel: String,
    pub recipient: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// Where a receipt tag is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagState {
    /// No receipt with that number yet.
    Waiting,
    /// Its receipt is credited to the tag's card's account (by the tag or already before).
    Credited,
    /// Its receipt is tied to the card, which has no account yet (credited on registration).
    Unmatched,
    /// No receipt came in time: the tag's total was credited as a totals-only receipt.
    TotalsOnly,
    /// The receipt arrived with another card; the receipt's own card won.
    Superseded,
}

impl TagState {
    pub fn as_str(self) -> &'static str {
        match self {
            TagState::Waiting => "waiting",
            TagState::Credited => "credited",
            TagState::Unmatched => "unmatched",
            TagState::TotalsOnly => "totals_only",
            TagState::Superseded => "superseded",
        }
    }
    pub fn parse(s: &str) -> Option<TagState> {
        Some(match s {
            "waiting" => TagState::Waiting,
            "credited" => TagState::Credited,
            "unmatched" => TagState::Unmatched,
            "totals_only" => TagState::TotalsOnly,
            "superseded" => TagState::Superseded,
            _ => return None,
        })
    }
}

/// A receipt tag as stored.
#[derive(Clone, Debug)]
pub struct TagRow {
    pub tag: ReceiptTag,
    pub payload_hash: String,
    pub state: TagState,
    pub receipt_id: Option<ReceiptId>,
    pub note: Option<String>,
}

/// A cashier message shown at a till (its cause is never shown again).
#[derive(Clone, Debug)]
pub struct MessageAckRow {
    pub cause: String,
    pub customer_id: CustomerId,
    pub card: CardId,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub shown_at: DateTime<FixedOffset>,
}

/// One receipt row as the reports need it.
#[derive(Clone, Debug)]
pub struct ReceiptFacts {
    pub store_id: StoreId,
    pub business_day: NaiveDate,
    pub turnover: Decimal,
    pub points_credited: Decimal,
    pub campaign: Option<String>,
}

/// A ledger entry to append (the store assigns `seq`).
#[derive(Clone, Debug)]
pub struct NewLedgerEntry {
    pub account_id: CustomerId,
    pub at: DateTime<Utc>,
    pub kind: LedgerKind,
    pub cause_id: String,
    pub store_id: Option<StoreId>,
    pub till_id: Option<TillId>,
    pub points: Decimal,
    pub balance_after: Decimal,
    pub note: Option<String>,
}

/// A redemption as stored. `id` is the till-made request id.
#[derive(Clone, Debug, PartialEq)]
pub struct RedemptionRow {
    pub id: String,
    pub payload_hash: String,
    pub account_id: CustomerId,
    pub card: CardId,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub points: Decimal,
    pub value: Decimal,
    pub reward: RewardKind,
    pub code: String,
    /// Came through the outbox (the discount was given offline).
    pub offline: bool,
    pub requested_at: DateTime<FixedOffset>,
    /// The server's local day when it was recorded (void is allowed on this day only).
    pub business_day: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
    pub matched_receipt: Option<ReceiptId>,
    pub matched_at: Option<DateTime<Utc>>,
}

/// What a unit of work may do. Every method runs inside the transaction of the enclosing
/// [`Repository::with_tx`] call. `savepoint`/`release`/`rollback_to_savepoint` make one batch
/// item atomic inside the batch's transaction.
pub trait Tx {
    fn savepoint(&mut self) -> StoreResult<()>;
    fn release_savepoint(&mut self) -> StoreResult<()>;
    fn rollback_to_savepoint(&mut self) -> StoreResult<()>;

    /// Before a batch touches accounts: lock the accounts (holders and the accounts they earn
    /// into) of these cards, in one fixed order, so that concurrent batches of other server
    /// processes wait for each other instead of deadlocking. A no-op where writers are serialised
    /// anyway (SQLite).
    fn lock_accounts_of(&mut self, _cards: &[CardId]) -> StoreResult<()> {
        Ok(())
    }

    fn program(&mut self) -> StoreResult<Option<RulesSnapshot>>;
    /// Store a new program version; returns the new snapshot (version + 1).
    fn put_program(&mut self, program: &Program) -> StoreResult<RulesSnapshot>;

    fn till_by_token_hash(&mut self, token_sha256: &str) -> StoreResult<Option<TillRow>>;
    fn put_till(&mut self, store: &StoreId, till: &TillId, token_sha256: &str) -> StoreResult<()>;
    fn revoke_till(&mut self, store: &StoreId, till: &TillId) -> StoreResult<bool>;

    fn receipt(&mut self, id: &ReceiptId) -> StoreResult<Option<StoredReceipt>>;
    /// Receipts of any till of `store` with this POS number, newest first.
    fn receipts_by_pos_no(&mut self, store: &StoreId, pos_receipt_no: &str) -> StoreResult<Vec<StoredReceipt>>;
    /// `original`: the receipt a return refers to (resolved), so [`Tx::returns_of`] finds it.
    fn insert_receipt(&mut self, r: StoredReceipt, original: Option<&ReceiptId>) -> StoreResult<()>;
    /// Earlier returns of `original`, oldest first (for cumulative partial-return reversal).
    fn returns_of(&mut self, original: &ReceiptId) -> StoreResult<Vec<Receipt>>;
    fn receipts_between(&mut self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<ReceiptFacts>>;

    fn request(&mut self, request_id: &str) -> StoreResult<Option<RequestRow>>;
    fn insert_request(&mut self, row: &RequestRow) -> StoreResult<()>;

    fn card(&mut self, number: &CardId) -> StoreResult<Option<CardRow>>;
    fn put_card(&mut self, card: &CardRow) -> StoreResult<()>;
    fn cards_of(&mut self, customer: &CustomerId) -> StoreResult<Vec<CardRow>>;
    fn cards_issued_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<CardRow>>;
    /// Next value of a named counter (card serials, customer numbers).
    fn next_counter(&mut self, name: &str) -> StoreResult<i64>;

    fn customer(&mut self, id: &CustomerId) -> StoreResult<Option<CustomerRow>>;
    /// A customer's parent account: None when there is no such customer, Some(None) for a
    /// customer without a parent. (A backend may read just that column.)
    fn customer_parent(&mut self, id: &CustomerId) -> StoreResult<Option<Option<CustomerId>>> {
        Ok(self.customer(id)?.map(|c| c.customer.parent.clone()))
    }
    /// Insert or update; bumps the customer's change sequence.
    fn put_customer(&mut self, customer: &Customer, state: &CustomerState) -> StoreResult<()>;
    /// Bump the change sequence without changing data (e.g. a card of theirs changed).
    fn touch_customer(&mut self, id: &CustomerId) -> StoreResult<()>;
    fn sub_customers(&mut self, parent: &CustomerId) -> StoreResult<Vec<CustomerId>>;
    fn all_customers(&mut self) -> StoreResult<Vec<CustomerRow>>;
    /// Customers whose change sequence is above `since`, ascending, at most `limit`.
    fn changed_since(&mut self, since: i64, limit: usize) -> StoreResult<Vec<CustomerRow>>;
    fn max_change_seq(&mut self) -> StoreResult<i64>;

    fn migration_code(&mut self, code: &str) -> StoreResult<Option<MigrationCodeRow>>;
    fn put_migration_code(&mut self, row: &MigrationCodeRow) -> StoreResult<()>;

    /// Append to the points ledger (the store assigns the entry's sequence number).
    fn append_ledger(&mut self, e: &NewLedgerEntry) -> StoreResult<()>;
    /// An account's ledger, newest first, entries with `seq < before` (all when None), at most `limit`.
    fn ledger(&mut self, account: &CustomerId, before: Option<i64>, limit: usize) -> StoreResult<Vec<LedgerEntry>>;
    /// Every entry's points per account, in ledger order (for the balance == sum(ledger) check).
    fn ledger_points(&mut self) -> StoreResult<Vec<(CustomerId, Decimal)>>;
    fn redemption(&mut self, id: &str) -> StoreResult<Option<RedemptionRow>>;
    /// Insert or replace (void and matching update the row).
    fn put_redemption(&mut self, r: &RedemptionRow) -> StoreResult<()>;
    /// Not voided, not matched, of this store, oldest first.
    fn open_redemptions(&mut self, store: &StoreId) -> StoreResult<Vec<RedemptionRow>>;
    fn all_redemptions(&mut self) -> StoreResult<Vec<RedemptionRow>>;
    /// Points preloaded on a (prize) card, credited when the card is assigned.
    fn set_card_preload(&mut self, card: &CardId, points: Decimal) -> StoreResult<()>;
    /// Take (and clear) a card's preloaded points.
    fn take_card_preload(&mut self, card: &CardId) -> StoreResult<Option<Decimal>>;

    /// Record a message unless one with the same cause exists; true if recorded now.
    fn record_message(&mut self, m: &Message) -> StoreResult<bool>;
    /// Is a message with this cause recorded?
    fn message_recorded(&mut self, cause: &str) -> StoreResult<bool>;
    fn messages(&mut self, kind: Option<&str>, limit: usize) -> StoreResult<Vec<Message>>;

    fn tag(&mut self, id: &str) -> StoreResult<Option<TagRow>>;
    /// Insert, or update state / receipt / note of an existing tag.
    fn put_tag(&mut self, t: &TagRow) -> StoreResult<()>;
    /// Tags of `store` for this POS number with a date in `from..=to`, oldest first.
    fn tags_for(
        &mut self,
        store: &StoreId,
        pos_receipt_no: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<TagRow>>;
    /// Waiting tags that carry a total, tagged at or before `tagged_before`, oldest first.
    fn waiting_tags_with_total(&mut self, tagged_before: DateTime<Utc>) -> StoreResult<Vec<TagRow>>;
    /// Credit a stored receipt to `account` (None: kept unmatched for `card`); `points_credited`
    /// follows its stored effect.
    fn set_receipt_account(&mut self, id: &ReceiptId, account: Option<&CustomerId>, card: &CardId) -> StoreResult<()>;
    /// Sale receipts of `card` credited to no account, issued on or after `since`, oldest first.
    fn unmatched_receipts(&mut self, card: &CardId, since: NaiveDate) -> StoreResult<Vec<StoredReceipt>>;
    fn message_acked(&mut self, cause: &str) -> StoreResult<bool>;
    /// Record an ack; false when the cause was acknowledged before.
    fn put_message_ack(&mut self, a: &MessageAckRow) -> StoreResult<bool>;

    // --- Many rows at once: a sync batch reads what its items need up front ([`batch::BatchTx`])
    // and writes its receipts, ledger entries and accounts in one go. Each default runs the
    // single-row method per key; the backends answer with one statement.

    /// The stored receipts among `ids` (absent ones are left out).
    fn receipts_in(&mut self, ids: &[ReceiptId]) -> StoreResult<Vec<StoredReceipt>> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.receipt(id)?);
        }
        Ok(out)
    }
    /// The cards among `numbers` (as [`Tx::card`] reads them, locks included).
    fn cards_in(&mut self, numbers: &[CardId]) -> StoreResult<Vec<CardRow>> {
        let mut out = Vec::new();
        for n in numbers {
            out.extend(self.card(n)?);
        }
        Ok(out)
    }
    /// The customers among `ids` (as [`Tx::customer`] reads them, locks included, in id order).
    fn customers_in(&mut self, ids: &[CustomerId]) -> StoreResult<Vec<CustomerRow>> {
        let mut sorted: Vec<&CustomerId> = ids.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut out = Vec::new();
        for id in sorted {
            out.extend(self.customer(id)?);
        }
        Ok(out)
    }
    /// `(parent, sub)` for every sub-card holder of `parents`, subs in id order.
    fn sub_customers_in(&mut self, parents: &[CustomerId]) -> StoreResult<Vec<(CustomerId, CustomerId)>> {
        let mut out = Vec::new();
        for p in parents {
            out.extend(self.sub_customers(p)?.into_iter().map(|s| (p.clone(), s)));
        }
        Ok(out)
    }
    /// Every tag of `store` for these POS numbers (any day), oldest first as [`Tx::tags_for`].
    fn tags_of_numbers(&mut self, store: &StoreId, pos_receipt_nos: &[String]) -> StoreResult<Vec<TagRow>> {
        let (from, to) = (
            NaiveDate::from_ymd_opt(1, 1, 1).expect("valid"),
            NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid"),
        );
        let mut out = Vec::new();
        for no in pos_receipt_nos {
            out.extend(self.tags_for(store, no, from, to)?);
        }
        Ok(out)
    }
    /// Write what a sync batch buffered, in this order: customers (each gets a new change
    /// sequence number), touched customers (a new number only), ledger entries, receipts,
    /// messages (their causes are new: [`batch::BatchTx`] checked).
    fn write_batch(&mut self, w: &BatchWrites) -> StoreResult<()> {
        for (c, s) in &w.customers {
            self.put_customer(c, s)?;
        }
        for id in &w.touched {
            self.touch_customer(id)?;
        }
        for e in &w.ledger {
            self.append_ledger(e)?;
        }
        for (r, original) in &w.receipts {
            self.insert_receipt(r.clone(), original.as_ref())?;
        }
        for m in &w.messages {
            self.record_message(m)?;
        }
        Ok(())
    }
}

/// A sync batch's buffered writes (see [`Tx::write_batch`]).
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub customers: Vec<(std::sync::Arc<Customer>, std::sync::Arc<CustomerState>)>,
    /// Customers whose change sequence moves without a data change (not in `customers`).
    pub touched: Vec<CustomerId>,
    pub ledger: Vec<NewLedgerEntry>,
    /// Receipts with the original a return refers to.
    pub receipts: Vec<(StoredReceipt, Option<ReceiptId>)>,
    pub messages: Vec<Message>,
}

impl BatchWrites {
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
            && self.touched.is_empty()
            && self.ledger.is_empty()
            && self.receipts.is_empty()
            && self.messages.is_empty()
    }
}

/// Connection figures of a backend (for `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub backend: &'static str,
    /// Open connections (SQLite: the writer plus the read connections).
    pub connections: u64,
    pub idle: u64,
    pub max: u64,
    /// Units of work run again after a serialization conflict (PostgreSQL).
    pub retries: u64,
}

/// Runs units of work. `with_tx` commits when `f` returns Ok and rolls back on Err; a backend
/// may run `f` again after a conflict with a concurrent transaction (so `f` must have no effects
/// outside the transaction that a second run would repeat wrongly). `with_read` runs a unit of
/// work that only reads, without waiting for writers.
pub trait Repository: Send + Sync + 'static {
    fn with_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError>;
    fn with_read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError> {
        self.with_tx(f)
    }
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

/// Typed convenience over [`Repository::with_tx`] (the unit of work may run more than once).
pub fn transact<T>(
    repo: &dyn Repository,
    mut f: impl FnMut(&mut dyn Tx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut out = None;
    repo.with_tx(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    Ok(out.expect("unit of work returned"))
}

/// Typed convenience over [`Repository::with_read`].
pub fn read<T>(repo: &dyn Repository, mut f: impl FnMut(&mut dyn Tx) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let mut out = None;
    repo.with_read(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    Ok(out.expect("unit of work returned"))
}

/// A plain test customer (a person, program rules accepted, nothing else) for the store's unit tests.
#[cfg(test)]
pub(crate) fn test_customer(id: &str) -> protocol::v1::Customer {
    protocol::v1::Customer {
        id: protocol::CustomerId(id.into()),
        name: protocol::v1::CustomerName::Person {
            first_name: "Jana".into(),
            surname: "Nováková".into(),
        },
        contact: Default::default(),
        consents: protocol::v1::Consents {
            program_rules: true,
            marketing: false,
        },
        birthday: None,
        tier: None,
        parent: None,
        discount_override: None,
    }
}
