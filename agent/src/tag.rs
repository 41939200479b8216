//! "Add purchase to card": the cashier ties a POS receipt number (and its date, today by
//! default in the store's zone, and optionally its total) to a loyalty card. The form is checked
//! here (all errors at once, each naming the field), then a `receipt_tag` item goes into the
//! outbox with a fresh `tag-…` request id; the replicator sends it. The server credits the
//! receipt once, whether it arrives before or after the tag (see the server's `purchases`).
//! Shared by the GUI form and `till-agent tag`.

use chrono::NaiveDate;
use protocol::ids::CardPolicy;
use protocol::v1::{ReceiptTag, SyncItem, SyncPayload};
use protocol::{CardId, StoreId, TillId};
use rust_decimal::Decimal;

use crate::sync::outbox::Outbox;
use crate::synclog::SyncLog;

/// The form as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagForm {
    pub receipt: String,
    pub card: String,
    /// Empty = today. `YYYY-MM-DD` or `D.M.YYYY`.
    pub date: String,
    /// Empty = no total. `123.50`, `123,50`, `1 234,50`.
    pub total: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagField {
    Receipt,
    Card,
    Date,
    Total,
}

impl TagField {
    pub fn key(self) -> &'static str {
        match self {
            TagField::Receipt => "receipt",
            TagField::Card => "card",
            TagField::Date => "date",
            TagField::Total => "total",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagProblem {
    Missing,
    /// Receipt numbers are at most 40 printable characters.
    ReceiptTooLong,
    BadCard,
    BadDate,
    /// The date is after today.
    FutureDate,
    /// More than 400 days ago.
    TooOld,
    BadTotal,
    /// Zero or negative.
    NotPositive,
}

/// One field's problem; `detail` is the English reason (the card policy's message for a card).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagError {
    pub field: TagField,
    pub problem: TagProblem,
    pub detail: String,
}

impl std::fmt::Display for TagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field.key(), self.detail)
    }
}

/// A checked form.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub receipt: String,
    pub card: CardId,
    pub date: NaiveDate,
    pub total: Option<Decimal>,
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&s.replace(' ', ""), "%d.%m.%Y"))
        .ok()
}

/// `123.50`, `123,50`, `1 234,50` (space or NBSP thousands), at most 2 decimals.
pub fn parse_total(s: &str) -> Option<Decimal> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .collect();
    let t = t.replace(',', ".");
    if t.is_empty() || t.matches('.').count() > 1 || !t.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-') {
        return None;
    }
    let d: Decimal = t.parse().ok()?;
    (d.scale() <= 2).then_some(d)
}

impl TagForm {
    /// Check every field against `policy` and `today` (the store's local date).
    pub fn validate(&self, policy: &CardPolicy, today: NaiveDate) -> Result<Tag, Vec<TagError>> {
        let mut errs = Vec::new();
        let mut err = |field, problem, detail: String| errs.push(TagError { field, problem, detail });
        let receipt = self.receipt.trim().to_string();
        if receipt.is_empty() {
            err(
                TagField::Receipt,
                TagProblem::Missing,
                "the POS receipt number is required".into(),
            );
        } else if receipt.chars().count() > 40 || receipt.chars().any(char::is_control) {
            err(
                TagField::Receipt,
                TagProblem::ReceiptTooLong,
                format!("{receipt:?}: at most 40 printable characters"),
            );
        }
        let card = if self.card.trim().is_empty() {
            err(
                TagField::Card,
                TagProblem::Missing,
                "scan or type the loyalty card".into(),
            );
            None
        } else {
            match CardId::parse(&self.card, policy) {
                Ok(c) => Some(c),
                Err(e) => {
                    let digits: String = self.card.chars().filter(char::is_ascii_digit).collect();
                    err(
                        TagField::Card,
                        TagProblem::BadCard,
                        format!("{}: {e}", protocol::ids::mask_digits(&digits)),
                    );
                    None
                }
            }
        };
        let date = if self.date.trim().is_empty() {
            Some(today)
        } else {
            match parse_date(&self.date) {
                None => {
                    err(
                        TagField::Date,
                        TagProblem::BadDate,
                        format!("{:?}: not a date (YYYY-MM-DD or D.M.YYYY)", self.date.trim()),
                    );
                    None
                }
                Some(d) if d > today => {
                    err(
                        TagField::Date,
                        TagProblem::FutureDate,
                        format!("{d}: after today ({today})"),
                    );
                    None
                }
                Some(d) if (today - d).num_days() > 400 => {
                    err(
                        TagField::Date,
                        TagProblem::TooOld,
                        format!("{d}: more than 400 days ago"),
                    );
                    None
                }
                Some(d) => Some(d),
            }
        };
        let total = if self.total.trim().is_empty() {
            None
        } else {
            match parse_total(&self.total) {
                None => {
                    err(
                        TagField::Total,
                        TagProblem::BadTotal,
                        format!("{:?}: not an amount (123.50 or 123,50)", self.total.trim()),
                    );
                    None
                }
                Some(t) if t <= Decimal::ZERO => {
                    err(
                        TagField::Total,
                        TagProblem::NotPositive,
                        format!("{t}: must be more than 0"),
                    );
                    None
                }
                Some(t) => Some(t),
            }
        };
        match (errs.is_empty(), card, date) {
            (true, Some(card), Some(date)) => Ok(Tag {
                receipt,
                card,
                date,
                total,
            }),
            _ => Err(errs),
        }
    }
}

impl Tag {
    /// The wire item with a fresh `tag-<32 hex>` request id (= item id).
    pub fn to_item(
        &self,
        store_id: &StoreId,
        till_id: &TillId,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> SyncItem {
        let request_id = crate::enrol::new_request_id("tag");
        SyncItem {
            item_id: request_id.clone(),
            payload: SyncPayload::ReceiptTag(ReceiptTag {
                request_id,
                store_id: store_id.clone(),
                till_id: till_id.clone(),
                pos_receipt_no: self.receipt.clone(),
                date: self.date,
                total: self.total,
                card: self.card.clone(),
                tagged_at: now,
            }),
        }
    }
}

/// Queue the tag (outbox + a masked sync-log line); returns the outbox item id. The caller wakes
/// the replicator (a running agent's idle poll picks it up within seconds anyway).
pub fn enqueue(
    outbox: &mut Outbox,
    log: &SyncLog,
    tag: &Tag,
    store_id: &StoreId,
    till_id: &TillId,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> anyhow::Result<String> {
    let item = tag.to_item(store_id, till_id, now);
    outbox.enqueue(&item)?;
    log.info(
        "tag",
        Some(&item.item_id),
        &format!(
            "receipt {} of {} tagged to card {} queued for the server",
            tag.receipt, tag.date, tag.card
        ),
    );
    Ok(item.item_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CardPolicy {
        CardPolicy {
            min_len: 16,
            max_len: 16,
            prefixes: vec!["1900".into()],
            luhn: true,
        }
    }
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

    #[test]
    fn minimal_form_defaults_to_today_without_total() {
        let t = TagForm {
            receipt: " 2026/000123 ".into(),
            card: "1900 0000 0900 0018".into(),
            ..Default::default()
        }
        .validate(&policy(), today())
        .unwrap();
        assert_eq!(t.receipt, "2026/000123");
        assert_eq!(t.date, today());
        assert_eq!(t.total, None);
        assert_eq!(t.card.expose(), "1900000009000018");
    }

    #[test]
    fn totals_and_dates_in_local_spellings() {
        let t = TagForm {
            receipt: "7".into(),
            card: "1900000009000018".into(),
            date: "29.11.2026".into(),
            total: "1 234,50".into(),
        }
        .validate(&policy(), today())
        .unwrap();
        assert_eq!(t.date, NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
        assert_eq!(t.total, Some("1234.50".parse().unwrap()));
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let e = TagForm {
            receipt: "".into(),
            card: "1900000009000019".into(),
            date: "2026-12-01".into(),
            total: "12.345".into(),
        }
        .validate(&policy(), today())
        .unwrap_err();
        let got: Vec<_> = e.iter().map(|e| (e.field, e.problem)).collect();
        assert_eq!(
            got,
            vec![
                (TagField::Receipt, TagProblem::Missing),
                (TagField::Card, TagProblem::BadCard),
                (TagField::Date, TagProblem::FutureDate),
                (TagField::Total, TagProblem::BadTotal),
            ]
        );
        // the card is masked in the message
        assert!(!e[1].to_string().contains("1900000009000019"), "{}", e[1]);
        let e = TagForm {
            receipt: "1".into(),
            card: "1900000009000018".into(),
            date: "30.2.2026".into(),
            total: "-5".into(),
        }
        .validate(&policy(), today())
        .unwrap_err();
        assert_eq!(e[0].problem, TagProblem::BadDate);
        assert_eq!(e[1].problem, TagProblem::NotPositive);
        assert_eq!(
            e[0].to_string(),
            "date: \"30.2.2026\": not a date (YYYY-MM-DD or D.M.YYYY)"
        );
    }

    #[test]
    fn enqueue_writes_one_receipt_tag_item() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("outbox.db");
        let mut outbox = Outbox::open(&p).unwrap();
        let log = SyncLog::open(&p).unwrap();
        let tag = TagForm {
            receipt: "42".into(),
            card: "1900000009000018".into(),
            total: "100".into(),
            ..Default::default()
        }
        .validate(&policy(), today())
        .unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00+01:00").unwrap();
        let id = enqueue(&mut outbox, &log, &tag, &"S1".into(), &"T1".into(), now).unwrap();
        assert!(id.starts_with("tag-"), "{id}");
        let due = outbox.due(10, i64::MAX).unwrap();
        assert_eq!(due.len(), 1);
        let SyncPayload::ReceiptTag(t) = &due[0].payload().unwrap() else {
            panic!("{:?}", due[0].payload)
        };
        assert_eq!((t.pos_receipt_no.as_str(), t.total), ("42", Some(Decimal::from(100))));
    }
}
