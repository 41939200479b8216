//! Wire types, version `v1` (serde JSON). Decimals travel as JSON strings (`"12.90"`) so no
//! client can turn them into floats. Unknown fields are rejected (`deny_unknown_fields`) so a
//! typo in a field name is an error naming the field, not silently dropped data.
//!
//! Sign conventions for receipt lines: `sale` lines have positive quantity and total; `return`
//! lines have *negative* quantity and total and the receipt must carry `original`; `discount`
//! lines have a negative total; `rounding` lines carry the cash-rounding difference (±).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{CardId, CustomerId, ReceiptId, StoreId, TillId};
use crate::money::Currency;

// ---------------------------------------------------------------------------------------------
// Receipts

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Sale,
    Return,
    Discount,
    Rounding,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReceiptLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Decimal quantity (`0.350` kg). Negative on return lines.
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub quantity: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub unit_price: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub line_total: Decimal,
    /// VAT rate in percent (`21`, `12`, `23`, `25`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wire::opt_decimal"
    )]
    #[cfg_attr(feature = "schema", schema(value_type = Option<crate::money::DecimalString>))]
    pub vat_rate: Option<Decimal>,
    pub kind: LineKind,
}

/// VAT summary row (Croatian fiscal receipts carry only these, no items).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VatSummary {
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub rate: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub base: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub amount: Decimal,
}

/// Reference to the original receipt of a return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OriginalReceipt {
    /// The original's idempotency key when the till knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<ReceiptId>,
    /// The original's POS receipt number (same store and till unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_receipt_no: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub id: ReceiptId,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub pos_receipt_no: String,
    pub issued_at: DateTime<FixedOffset>,
    pub currency: Currency,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    #[serde(deserialize_with = "crate::wire::decimal")]
    pub total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wire::opt_object"
    )]
    pub original: Option<OriginalReceipt>,
    #[serde(default, deserialize_with = "crate::wire::objects")]
    pub lines: Vec<ReceiptLine>,
    /// VAT breakdown; for totals-only receipts (Croatian `RacunZahtjev`) this is all there is.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::objects"
    )]
    pub vat: Vec<VatSummary>,
}

impl Receipt {
    /// True when the receipt has no item lines (totals only): points are computed on the total.
    pub fn is_totals_only(&self) -> bool {
        self.lines.iter().all(|l| l.kind == LineKind::Rounding)
    }

    pub fn has_return_lines(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.kind == LineKind::Return || l.quantity.is_sign_negative())
    }
}

// ---------------------------------------------------------------------------------------------
// Customers and cards

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CustomerName {
    Person {
        first_name: String,
        surname: String,
    },
    Company {
        company_name: String,
    },
    /// The account of an anonymous card (issued in a batch, never registered): it earns, and
    /// becomes the customer's when the card is registered.
    Anonymous,
}

impl CustomerName {
    pub fn display(&self) -> String {
        match self {
            CustomerName::Person { first_name, surname } => format!("{first_name} {surname}"),
            CustomerName::Company { company_name } => company_name.clone(),
            CustomerName::Anonymous => "Anonymous card".into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: String,
    pub postcode: String,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Consents {
    /// Consent to the program rules (required to enrol).
    pub program_rules: bool,
    #[serde(default)]
    pub marketing: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub id: CustomerId,
    pub name: CustomerName,
    #[serde(default)]
    pub contact: Contact,
    #[serde(default)]
    pub consents: Consents,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<NaiveDate>,
    /// Tier name as last computed (informational; the engine recomputes it from turnover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Family / company card: the account this customer earns into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<CustomerId>,
    /// Per-customer discount override in percent ("silver"/"gold" customers with their own rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<crate::money::DecimalString>))]
    pub discount_override: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CardStatus {
    Active,
    Blocked { reason: String },
    Replaced { by: CardId },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Card {
    pub number: CardId,
    /// None for a printed, not yet issued card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    #[serde(flatten)]
    pub status: CardStatus,
}

/// A migration code sent by SMS/e-mail to customers of the old (spreadsheet) program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MigrationCode {
    pub code: String,
    pub customer_id: CustomerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by_card: Option<CardId>,
}

/// Customer registration from the till's application form. Idempotent by `request_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub request_id: String,
    pub card: CardId,
    pub name: CustomerName,
    pub contact: Contact,
    pub consents: Consents,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<NaiveDate>,
    pub store_id: StoreId,
    pub till_id: TillId,
}

/// Pair a new card with a migration code: the old customer's discount moves onto the card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MigrationPairing {
    pub request_id: String,
    pub card: CardId,
    pub code: String,
    pub store_id: StoreId,
    pub till_id: TillId,
}

// ---------------------------------------------------------------------------------------------
// Quote: what the cashier sees

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum QuoteSource {
    Online,
    /// Computed on the till from cached rules and customer data, as of `as_of` (the time of the
    /// newest data the cache holds).
    Offline {
        as_of: DateTime<FixedOffset>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerQuote {
    pub display_name: String,
    /// The account of an anonymous card (`display_name` is then only a placeholder: the till
    /// shows "anonymous card" in its own language).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    pub tier: String,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub discount_percent: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points_balance: Decimal,
    /// Points still missing for the next reward (redemption threshold); None if no reward rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<crate::money::DecimalString>))]
    pub points_to_next_reward: Option<Decimal>,
    /// Turnover still missing for the next tier; None at the top tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<crate::money::DecimalString>))]
    pub turnover_to_next_tier: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    pub currency: Currency,
    /// What the customer can redeem now (points → money or percent), smallest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redeemable: Vec<RedeemOption>,
    /// The newest entries of the account's points ledger (at most 5, newest first; online only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<LedgerEntry>,
    /// What the cashier should tell the customer, each shown once per cause (acknowledged back
    /// with a `message_ack` sync item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<CashierMessage>,
}

/// One thing to tell the customer. `cause` is stable (`welcome:<customer>`,
/// `tier:<customer>:<tier>`, `birthday:<customer>:<year>`, `reward:<customer>:<points>`,
/// `campaign:<customer>:<campaign id>:<date>`): the same cause is shown once per customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CashierMessage {
    pub cause: String,
    #[serde(flatten)]
    pub what: MessageWhat,
}

/// The kind of a cashier message with what its text needs (the till words it in its language).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageWhat {
    /// The customer's first purchase.
    Welcome,
    /// A tier reached since the last visit, with its discount.
    TierReached {
        tier: String,
        #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
        discount_percent: Decimal,
    },
    /// The birthday (this year's date) falls in this week (Monday–Sunday).
    Birthday { on: NaiveDate },
    /// The balance reaches a reward now: the largest one.
    RewardReachable {
        #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
        points: Decimal,
        #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
        value: Decimal,
        reward: RewardKind,
    },
    /// A campaign runs today.
    Campaign { name: String },
}

/// The till showed a cashier message: the server shows that cause to that customer no more.
/// Idempotent by `request_id` (`ack-…`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessageAck {
    #[cfg_attr(feature = "schema", schema(pattern = "^ack-[0-9A-Za-z_.:-]{4,200}$"))]
    pub request_id: String,
    pub cause: String,
    /// The card the message was shown for.
    pub card: CardId,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub shown_at: DateTime<FixedOffset>,
}

/// "Add purchase to card": the cashier ties POS receipt `pos_receipt_no` of `date` (the store's
/// local day) to `card`. The server credits that receipt of the store to the card's account once,
/// whether it arrives before or after the tag; a receipt credited to another card is refused.
/// With a `total` and no receipt after the program's `tag_total_wait_minutes`, the tag itself
/// counts as a totals-only receipt. Idempotent by `request_id` (`tag-…`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReceiptTag {
    #[cfg_attr(feature = "schema", schema(pattern = "^tag-[0-9A-Za-z_.:-]{4,76}$"))]
    pub request_id: String,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub pos_receipt_no: String,
    pub date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<crate::money::DecimalString>))]
    pub total: Option<Decimal>,
    pub card: CardId,
    pub tagged_at: DateTime<FixedOffset>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// A voucher of a fixed amount.
    Voucher,
    /// A discount on the next purchase (amount).
    Discount,
    /// A percentage discount on the next purchase: `value` is the percent.
    PercentDiscount,
}

/// One redemption the customer can take: `points` for `value` (an amount in the program
/// currency, or a percentage for `percent_discount`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedeemOption {
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub value: Decimal,
    pub reward: RewardKind,
}

// ---------------------------------------------------------------------------------------------
// Points ledger and redemption

/// Why an account's balance changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// The balance the account had when it was loaded (seed / migration).
    Opening,
    Receipt,
    Return,
    Redemption,
    /// A voided redemption gives its points back.
    Void,
    Adjustment,
    Expiry,
    /// A card was reissued (the balance stays on the account; 0 points, for the trail).
    CardReissue,
    /// Points moved into (+) or out of (−) an account: a sub-card holder's into its parent's, or
    /// an anonymous card's account into the customer's it was paired with.
    FamilyMerge,
    /// Points preloaded on a prize card, credited when the card is assigned.
    PrizeCard,
}

/// What a ledger entry was, for the cashier's "history at a glance".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Purchase,
    Return,
    Redemption,
    Adjustment,
}

impl LedgerKind {
    /// The history line kind: receipts (tagged, late or on time) are purchases, a voided
    /// redemption is a redemption (its reversal), everything else an adjustment.
    pub fn history_kind(self) -> HistoryKind {
        match self {
            LedgerKind::Receipt => HistoryKind::Purchase,
            LedgerKind::Return => HistoryKind::Return,
            LedgerKind::Redemption | LedgerKind::Void => HistoryKind::Redemption,
            LedgerKind::Opening
            | LedgerKind::Adjustment
            | LedgerKind::Expiry
            | LedgerKind::CardReissue
            | LedgerKind::FamilyMerge
            | LedgerKind::PrizeCard => HistoryKind::Adjustment,
        }
    }
}

/// One balance change of an earning account. The balance is the sum of the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub seq: i64,
    pub account_id: CustomerId,
    pub at: DateTime<FixedOffset>,
    pub kind: LedgerKind,
    /// The receipt id, redemption id, adjustment key, card (masked) or customer id behind it.
    pub cause_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<StoreId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till_id: Option<TillId>,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub balance_after: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A till asks to redeem `points` from the account of `card`. `request_id` is made once by the
/// till (`rdm-…`); the server debits exactly once per request id and the redemption id is the
/// request id. Online: `POST /v1/redemptions`; offline: the `redemption` sync item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    #[cfg_attr(feature = "schema", schema(pattern = "^rdm-.{4,76}$"))]
    pub request_id: String,
    pub card: CardId,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub requested_at: DateTime<FixedOffset>,
}

/// The answer to a redemption (and to its void): what the cashier keys into the POS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedeemAnswer {
    pub redemption_id: String,
    /// Short code for the POS discount line (`rules::redemption_code`).
    pub code: String,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    /// Money in `currency`, or a percentage for `percent_discount`.
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub value: Decimal,
    pub reward: RewardKind,
    pub currency: Currency,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub balance_after: Decimal,
    #[serde(default)]
    pub voided: bool,
}

/// The answer to "who is this card?". Each case is distinct on the wire (`kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuoteResult {
    Customer {
        card: CardId,
        quote: CustomerQuote,
    },
    /// The card is not known: offer registration or migration-code pairing.
    UnknownCard {
        card: CardId,
    },
    /// Blocked cards neither earn nor redeem.
    Blocked {
        card: CardId,
        reason: String,
    },
    /// The card was replaced; the quote is the new card's (balance moved there).
    Replaced {
        card: CardId,
        new_card: CardId,
        quote: CustomerQuote,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Quote {
    #[serde(flatten)]
    pub result: QuoteResult,
    #[serde(flatten)]
    pub source: QuoteSource,
}

// ---------------------------------------------------------------------------------------------
// Sync

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum SyncPayload {
    Receipt(Receipt),
    Registration(Registration),
    MigrationPairing(MigrationPairing),
    /// An offline redemption (the discount was already given): applied even below zero.
    Redemption(RedeemRequest),
    /// "Add purchase to card": a POS receipt number tied to a card.
    ReceiptTag(ReceiptTag),
    /// A cashier message was shown.
    MessageAck(MessageAck),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SyncItem {
    /// Idempotency key: the receipt id, or the registration/pairing request id.
    pub item_id: String,
    #[serde(flatten)]
    pub payload: SyncPayload,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncBatch {
    #[cfg_attr(feature = "schema", schema(pattern = "^v1$", example = "v1"))]
    pub version: String,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub items: Vec<SyncItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AckResult {
    Applied,
    /// Already applied earlier with the same payload: success for the till.
    Duplicate,
    /// Permanently refused; the till dead-letters the item with this reason.
    Rejected {
        code: String,
        reason: String,
    },
    /// Temporarily not applied; send again later.
    Retry {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Ack {
    pub item_id: String,
    #[serde(flatten)]
    pub result: AckResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncResponse {
    pub acks: Vec<Ack>,
}

// ---------------------------------------------------------------------------------------------
// Offline data: rules snapshot and customer-change feed

/// Per-customer state the engine needs (the server's truth; the till caches it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerState {
    /// Turnover per calendar month, key `YYYY-MM`, in the program currency.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = BTreeMap<String, crate::money::DecimalString>))]
    pub turnover_by_month: BTreeMap<String, Decimal>,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points_balance: Decimal,
    /// Points credited with an expiry (campaign points), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiring_points: Vec<ExpiringPoints>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExpiringPoints {
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    pub expires_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerChange {
    pub customer: Customer,
    pub cards: Vec<Card>,
    pub state: CustomerState,
    /// Keyed hashes of the customer's phone and e-mail (`contact::contact_key` under the
    /// snapshot's `lookup_key`): a till finds the customer by them, never by plain contacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeFeed {
    pub changes: Vec<CustomerChange>,
    /// Opaque cursor; pass as `since=` to get what changed after this page.
    pub cursor: String,
    /// More pages are available right now.
    pub more: bool,
    pub server_time: DateTime<FixedOffset>,
}

/// `GET /healthz`: liveness and the server's clock (the till's doctor measures clock skew with it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub time: DateTime<FixedOffset>,
    /// The server's identity: it changes when the server's database is restored from a backup.
    /// A till that sees it change resends what it had acknowledged and restarts its change feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
}

/// Error body for every 4xx/5xx answer: RFC 9457 problem details (`application/problem+json`)
/// with two extension members, a machine-readable `code` and the `field` that is wrong.
/// Unknown members are ignored (problem details are extensible).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A URI naming the problem type: `urn:till-agent:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type (the HTTP status's reason phrase).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What is wrong, for a person.
    pub detail: String,
    /// Machine-readable code (`invalid_field`, `unauthorized`, …).
    pub code: String,
    /// The request field, parameter or header that is wrong, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// The `type` URI for a code.
    pub fn type_for(code: &str) -> String {
        format!("urn:till-agent:problem:{code}")
    }
}

/// The contract's checks of [`crate::wire::strictly`] on the receipt types (the checks are in
/// their `deserialize_with` fields).
#[cfg(test)]
mod strict_reading {
    use super::*;
    use crate::wire::strictly;

    fn line(quantity: &str) -> String {
        format!(r#"{{"name":"Chléb","quantity":{quantity},"unit_price":"10","line_total":"10","kind":"sale"}}"#)
    }

    #[test]
    fn strictly_a_decimal_is_a_string_of_the_pattern_and_outside_serde_is_as_lenient_as_before() {
        for (text, strict_ok) in [
            (r#""1.5""#, true),
            (r#""-0.000000000001""#, true),
            ("1.5", false),
            (r#""1e3""#, false),
            (r#""+1""#, false),
            (r#"".5""#, false),
            (r#""1234567890123456""#, false),
            (r#""1.1234567890123""#, false),
        ] {
            let l = line(text);
            assert_eq!(
                strictly(|| serde_json::from_str::<ReceiptLine>(&l)).is_ok(),
                strict_ok,
                "{l}"
            );
            // The lenient reading takes what rust_decimal takes, as before.
            assert!(serde_json::from_str::<ReceiptLine>(&l).is_ok(), "{l}");
        }
        let strict = strictly(|| serde_json::from_str::<ReceiptLine>(&line(r#""0.350""#))).unwrap();
        assert_eq!(strict.quantity.to_string(), "0.350");
    }

    #[test]
    fn strictly_lines_and_originals_are_objects_and_cards_of_the_pattern() {
        let receipt = |lines: &str, original: &str, card: &str| {
            format!(
                r#"{{"id":"x","store_id":"S","till_id":"T","pos_receipt_no":"1","issued_at":"2026-11-23T10:15:00+01:00",
                "currency":"CZK","total":"10","card":{card},"original":{original},"lines":[{lines}]}}"#
            )
        };
        let ok = receipt(&line(r#""1""#), r#"{"pos_receipt_no":"7"}"#, r#""1900 0000 0000 0017""#);
        assert!(strictly(|| serde_json::from_str::<Receipt>(&ok)).is_ok(), "{ok}");
        for bad in [
            receipt(r#"["1","Chléb",null,"1","10","10",null,"sale"]"#, "null", "null"),
            receipt(&line(r#""1""#), r#"[null,"7"]"#, "null"),
            receipt(&line(r#""1""#), "null", r#""\t1900000000000017""#),
        ] {
            assert!(strictly(|| serde_json::from_str::<Receipt>(&bad)).is_err(), "{bad}");
            // serde alone takes each of them.
            assert!(serde_json::from_str::<Receipt>(&bad).is_ok(), "{bad}");
        }
        // The checks end with the closure, even when it panics.
        let lenient = || serde_json::from_str::<ReceiptLine>(&line("1.5")).is_ok();
        assert!(lenient());
        let _ = std::panic::catch_unwind(|| strictly(|| panic!("inside")));
        assert!(lenient());
    }
}
