//! Row values <-> domain types, shared by both backends (the same TEXT encodings in SQLite and
//! PostgreSQL: RFC 3339 times, decimal strings, JSON payloads, snake_case enum names; an
//! account's expiring points in a compact text column of their own, see [`state_columns`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use protocol::v1::{CardStatus, CustomerState, ExpiringPoints, LedgerEntry, LedgerKind};
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
        receipt: std::sync::Arc::new(from_json("receipt payload", &row.0)?),
        payload_hash: row.1,
        account: row.2.map(CustomerId),
        effect: std::sync::Arc::new(from_json("receipt effect", &row.3)?),
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

/// An account's state as the customers table stores it: the `state` column is the state's JSON
/// without its expiring points, the `expiring` column those points compactly (None: none).
///
/// The expiring points are the largest part of an account that earns campaign points (one entry
/// per receipt, ≈ 45 bytes of JSON each), and the account row is rewritten with every batch that
/// touches it. The compact text writes each expiry date once for the entries that follow it:
/// `2027-02-21=79.60,12.30;2027-02-22=5.00` (entries in their order; the points as the decimal
/// strings of the JSON, scale kept), ≈ 6 bytes per entry. Rows written before this column
/// existed keep the points in the JSON (`expiring` NULL) and read the same.
pub fn state_columns(s: &CustomerState) -> (String, Option<String>) {
    #[derive(serde::Serialize)]
    struct StateColumn<'a> {
        turnover_by_month: &'a BTreeMap<String, Decimal>,
        points_balance: &'a Decimal,
    }
    let state = json(&StateColumn {
        turnover_by_month: &s.turnover_by_month,
        points_balance: &s.points_balance,
    });
    (state, encode_expiring(&s.expiring_points))
}

fn encode_expiring(list: &[ExpiringPoints]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(list.len() * 7 + 16);
    let mut day: Option<NaiveDate> = None;
    for e in list {
        if day == Some(e.expires_on) {
            out.push(',');
        } else {
            if day.is_some() {
                out.push(';');
            }
            write!(out, "{}=", e.expires_on).expect("a String takes any write");
            day = Some(e.expires_on);
        }
        write!(out, "{}", e.points).expect("a String takes any write");
    }
    Some(out)
}

/// The entries of an `expiring` column (see [`state_columns`]); the error names the bad part.
fn decode_expiring(text: &str) -> Result<Vec<ExpiringPoints>, String> {
    let mut out = Vec::new();
    for group in text.split(';') {
        let (day, points) = group
            .split_once('=')
            .ok_or_else(|| format!("{group:?} is not <date>=<points>,…"))?;
        let expires_on: NaiveDate = day.parse().map_err(|e| format!("date {day:?}: {e}"))?;
        for p in points.split(',') {
            out.push(ExpiringPoints {
                points: p.parse().map_err(|e| format!("points {p:?} of {day}: {e}"))?,
                expires_on,
            });
        }
    }
    Ok(out)
}

/// A customers row: (customer JSON, state JSON, expiring column, change number).
pub(crate) fn to_customer(c: (String, String, Option<String>, i64)) -> StoreResult<CustomerRow> {
    let customer: protocol::v1::Customer = from_json("customer", &c.0)?;
    let mut state: CustomerState = from_json("customer state", &c.1)?;
    if let Some(text) = c.2 {
        if !state.expiring_points.is_empty() {
            return Err(StoreError::Other(format!(
                "customer {}: expiring points both in the state JSON and in the expiring column {text:?}",
                customer.id
            )));
        }
        state.expiring_points = decode_expiring(&text)
            .map_err(|e| StoreError::Other(format!("customer {}: expiring column {text:?}: {e}", customer.id)))?;
    }
    Ok(CustomerRow {
        customer: customer.into(),
        state: state.into(),
        change_seq: c.3,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(entries: &[(&str, &str)]) -> CustomerState {
        CustomerState {
            turnover_by_month: [("2026-11".to_string(), "1234.50".parse().unwrap())].into(),
            points_balance: "987.65".parse().unwrap(),
            expiring_points: entries
                .iter()
                .map(|(d, p)| ExpiringPoints {
                    points: p.parse().unwrap(),
                    expires_on: d.parse().unwrap(),
                })
                .collect(),
        }
    }

    fn row(s: &CustomerState) -> (String, String, Option<String>, i64) {
        let (state, expiring) = state_columns(s);
        (json(&crate::store::test_customer("C1")), state, expiring, 7)
    }

    /// Every state reads back equal (entry order, dates, scales, signs, extremes), the state JSON
    /// carries no expiring points, and equal dates are written once.
    #[test]
    fn the_compact_expiring_column_reads_back_exactly() {
        let max = Decimal::MAX.to_string();
        let min = Decimal::MIN.to_string();
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("2027-02-21", "79.60")],
            vec![("2027-02-21", "79.60"), ("2027-02-21", "12.3"), ("2027-02-22", "5.00")],
            // out of date order and a date coming back: kept as written
            vec![("2027-03-01", "1"), ("2027-02-01", "2"), ("2027-03-01", "3")],
            vec![("2027-02-21", "0"), ("2027-02-21", "0.000"), ("2027-02-21", "-0.5")],
            vec![
                ("0001-01-01", &max),
                ("9999-12-31", &min),
                ("2027-01-01", "0.0000000000000000000000000001"),
            ],
        ];
        for entries in cases {
            let s = state(&entries);
            let r = row(&s);
            assert!(!r.1.contains("expiring"), "{}", r.1);
            assert_eq!(r.2.is_none(), entries.is_empty());
            let back = to_customer(r.clone()).unwrap();
            assert_eq!(*back.state, s, "{:?}", r.2);
            // the scale is kept (79.60 stays 79.60)
            let strs: Vec<String> = back
                .state
                .expiring_points
                .iter()
                .map(|e| e.points.to_string())
                .collect();
            let want: Vec<&str> = entries.iter().map(|(_, p)| *p).collect();
            assert_eq!(strs, want);
        }
        let r = row(&state(&[
            ("2027-02-21", "79.60"),
            ("2027-02-21", "12.30"),
            ("2027-02-22", "5.00"),
        ]));
        assert_eq!(r.2.as_deref(), Some("2027-02-21=79.60,12.30;2027-02-22=5.00"));
    }

    /// A row written before the column existed (points in the JSON, column NULL) reads the same.
    #[test]
    fn an_old_row_with_the_points_in_the_json_reads_the_same() {
        let s = state(&[("2027-02-21", "79.60"), ("2027-02-22", "5.00")]);
        let old = (json(&crate::store::test_customer("C1")), json(&s), None, 3);
        assert!(old.1.contains("expiring_points"));
        assert_eq!(*to_customer(old).unwrap().state, s);
    }

    #[test]
    fn a_bad_expiring_column_is_an_error_naming_customer_and_value() {
        let s = state(&[]);
        for (text, part) in [
            ("2027-02-21", "is not <date>=<points>"),
            ("2027-13-01=1", "date \"2027-13-01\""),
            ("2027-02-21=1,x", "points \"x\" of 2027-02-21"),
            ("2027-02-21=", "points \"\""),
        ] {
            let mut r = row(&s);
            r.2 = Some(text.to_string());
            let e = to_customer(r).unwrap_err().to_string();
            assert!(e.contains("customer C1") && e.contains(part), "{text}: {e}");
        }
        let both = state(&[("2027-02-21", "1")]);
        let r = (
            json(&crate::store::test_customer("C1")),
            json(&both),
            Some("2027-02-21=1".to_string()),
            1,
        );
        let e = to_customer(r).unwrap_err().to_string();
        assert!(e.contains("customer C1") && e.contains("both"), "{e}");
    }
}
