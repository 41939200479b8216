//! Row values <-> domain types, shared by both backends (the same TEXT encodings in SQLite and
//! PostgreSQL: RFC 3339 times, decimal strings, JSON payloads, snake_case enum names).

use chrono::{DateTime, Utc};
use protocol::v1::{CardStatus, LedgerEntry, LedgerKind};
use protocol::{CardId, CustomerId, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;

use super::{CardRow, CustomerRow, StoreError, StoreResult, StoredReceipt, TagRow, TagState};

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("wire types serialise")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|source| StoreError::Corrupt {
        what: what.to_string(),
        source,
    })
}

pub(crate) fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.with_timezone(&Utc))
}

pub(crate) fn dec(what: &str, s: &str) -> StoreResult<Decimal> {
    s.parse::<Decimal>()
        .map_err(|e| StoreError::Other(format!("stored {what} {s:?} is not a decimal: {e}")))
}

pub(crate) fn to_stored(row: (String, String, Option<String>, String)) -> StoreResult<StoredReceipt> {
    Ok(StoredReceipt {
        receipt: from_json("receipt payload", &row.0)?,
        payload_hash: row.1,
        account: row.2.map(CustomerId),
        effect: from_json("receipt effect", &row.3)?,
        payload_json: None,
    })
}

pub(crate) type RawCard = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) fn to_card(c: RawCard) -> StoreResult<CardRow> {
    let number = CardId::normalise(&c.0).map_err(|e| StoreError::Other(format!("stored card number: {e}")))?;
    let status = match c.2.as_str() {
        "active" => CardStatus::Active,
        "blocked" => CardStatus::Blocked {
            reason: c.3.unwrap_or_default(),
        },
        "replaced" => CardStatus::Replaced {
            by: CardId::normalise(c.4.as_deref().unwrap_or_default())
                .map_err(|e| StoreError::Other(format!("stored replacement card: {e}")))?,
        },
        other => return Err(StoreError::Other(format!("stored card status {other:?}"))),
    };
    Ok(CardRow {
        number,
        customer_id: c.1.map(CustomerId),
        status,
        issued_store: c.5.map(StoreId),
        issued_at: parse_time(c.6),
    })
}

pub(crate) fn to_customer(c: (String, String, i64)) -> StoreResult<CustomerRow> {
    Ok(CustomerRow {
        customer: from_json("customer", &c.0)?,
        state: from_json("customer state", &c.1)?,
        change_seq: c.2,
    })
}

/// snake_case name of a serde unit variant (ledger kinds, reward kinds).
pub(crate) fn enum_name<T: serde::Serialize>(v: &T) -> String {
    json(v).trim_matches('"').to_string()
}

pub(crate) fn enum_from<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> StoreResult<T> {
    from_json(what, &format!("\"{s}\""))
}

pub(crate) type RawLedger = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

pub(crate) fn to_ledger(l: RawLedger) -> StoreResult<LedgerEntry> {
    let at = DateTime::parse_from_rfc3339(&l.2)
        .map_err(|e| StoreError::Other(format!("stored ledger time {:?}: {e}", l.2)))?;
    Ok(LedgerEntry {
        seq: l.0,
        account_id: CustomerId(l.1),
        at,
        kind: enum_from::<LedgerKind>("ledger kind", &l.3)?,
        cause_id: l.4,
        store_id: l.5.map(StoreId),
        till_id: l.6.map(TillId),
        points: dec("ledger points", &l.7)?,
        balance_after: dec("ledger balance", &l.8)?,
        note: l.9,
    })
}

pub(crate) type RawTag = (String, String, String, Option<String>, Option<String>);

pub(crate) fn to_tag(row: RawTag) -> StoreResult<TagRow> {
    Ok(TagRow {
        tag: from_json("receipt tag payload", &row.0)?,
        payload_hash: row.1,
        state: TagState::parse(&row.2).ok_or_else(|| StoreError::Other(format!("receipt tag state {:?}", row.2)))?,
        receipt_id: row.3.map(ReceiptId),
        note: row.4,
    })
}
