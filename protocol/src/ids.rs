//! Identifiers: loyalty card numbers, store/till/customer ids and the receipt idempotency key.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A loyalty card number, normalised to digits only.
///
/// `Display` and `Debug` are *masked* (`1900-****-****-9012`) so a card number can never reach a
/// log line by accident; the full number is only available through [`CardId::expose`], which is
/// what the wire format and the database use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(value_type = String, pattern = r"^[-0-9 '=/._ß]*[0-9][-0-9 '=/._ß]*$", example = "1900000000000017"))]
pub struct CardId(String);

/// Per-program card number rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CardPolicy {
    pub min_len: usize,
    pub max_len: usize,
    /// Accepted number prefixes (e.g. `["1900"]`); empty = any.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// The last digit is a Luhn check digit.
    #[serde(default)]
    pub luhn: bool,
}

impl Default for CardPolicy {
    /// The generic loyalty policy: 8–19 digits, any prefix, no check digit.
    fn default() -> Self {
        CardPolicy {
            min_len: 8,
            max_len: 19,
            prefixes: Vec::new(),
            luhn: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CardIdError {
    #[error("card number is empty")]
    Empty,
    #[error("card number contains {ch:?} at position {pos}; only digits and separators are allowed")]
    InvalidChar { ch: char, pos: usize },
    #[error("card number has {len} digits; this program expects {min}..={max}")]
    Length { len: usize, min: usize, max: usize },
    #[error("card number prefix is not one of this program's prefixes {allowed:?}")]
    Prefix { allowed: Vec<String> },
    #[error("card number check digit (Luhn) is wrong")]
    CheckDigit,
}

/// Characters that readers, printed cards and foreign keyboard layouts put between the digit
/// groups. A US-layout `-` arrives as `'` on a Croatian layout, `ß` on German, `=` on Czech/Slovak.
pub const SEPARATORS: &[char] = &[' ', '-', '\'', 'ß', '=', '/', '.', '_', '\t'];

impl CardId {
    /// Strip separators and check that what remains is digits only (no policy applied).
    pub fn normalise(raw: &str) -> Result<CardId, CardIdError> {
        let mut digits = String::with_capacity(raw.len());
        for (pos, ch) in raw.trim().chars().enumerate() {
            if ch.is_ascii_digit() {
                digits.push(ch);
            } else if !SEPARATORS.contains(&ch) {
                return Err(CardIdError::InvalidChar { ch, pos });
            }
        }
        if digits.is_empty() {
            return Err(CardIdError::Empty);
        }
        Ok(CardId(digits))
    }

    /// Normalise and validate against a program's policy.
    pub fn parse(raw: &str, policy: &CardPolicy) -> Result<CardId, CardIdError> {
        let id = Self::normalise(raw)?;
        id.validate(policy)?;
        Ok(id)
    }

    pub fn validate(&self, policy: &CardPolicy) -> Result<(), CardIdError> {
        let len = self.0.len();
        if len < policy.min_len || len > policy.max_len {
            return Err(CardIdError::Length {
                len,
                min: policy.min_len,
                max: policy.max_len,
            });
        }
        if !policy.prefixes.is_empty() && !policy.prefixes.iter().any(|p| self.0.starts_with(p.as_str())) {
            return Err(CardIdError::Prefix {
                allowed: policy.prefixes.clone(),
            });
        }
        if policy.luhn && !luhn_valid(&self.0) {
            return Err(CardIdError::CheckDigit);
        }
        Ok(())
    }

    /// The full number. Use only for the wire, the database and the operator's own screen.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `1900-****-****-9012`: first four and last four digits, groups of four.
    pub fn masked(&self) -> String {
        mask_digits(&self.0)
    }
}

/// Mask a digit string for logs: keep the first 4 and last 4 digits (fewer for short numbers).
pub fn mask_digits(d: &str) -> String {
    let chars: Vec<char> = d.chars().collect();
    let n = chars.len();
    let (keep_head, keep_tail) = if n >= 12 {
        (4, 4)
    } else if n >= 6 {
        (0, 4.min(n / 2))
    } else {
        (0, 0)
    };
    let mut out = String::with_capacity(n + n / 4);
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        if i < keep_head || i >= n - keep_tail {
            out.push(*c);
        } else {
            out.push('*');
        }
    }
    out
}

/// Luhn (mod 10) check over a digit string.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = (b - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// The Luhn check digit to append to `payload`.
pub fn luhn_check_digit(payload: &str) -> char {
    for d in b'0'..=b'9' {
        let mut s = payload.to_string();
        s.push(d as char);
        if luhn_valid(&s) {
            return d as char;
        }
    }
    unreachable!("one of ten digits always completes a Luhn sum")
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardId({})", self.masked())
    }
}

impl Serialize for CardId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CardId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::wire::check_card(&s)?;
        CardId::normalise(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

string_id!(
    /// A store, e.g. `CZ-PRG-01`.
    StoreId
);
string_id!(
    /// A till within a store, e.g. `T1`.
    TillId
);
string_id!(
    /// A customer account on the server.
    CustomerId
);

/// The receipt's idempotency key.
///
/// Choice: a *deterministic* key, the first 128 bits of SHA-256 over
/// `v1|store|till|pos_receipt_no|issued_at` (issue time in UTC, RFC 3339, seconds), printed as
/// 32 hex digits.
/// It is created once, when the agent first parses the receipt, and stored in the outbox.
/// Being derived from what the POS fiscally guarantees unique (store + till + its receipt number
/// and issue time), the same receipt gets the same key even if the POS rewrites the file or the
/// till's outbox is rebuilt, so the server's permanent dedupe catches it; a random UUIDv7 would
/// not survive a lost outbox.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ReceiptId(pub String);

impl ReceiptId {
    pub fn derive(
        store: &StoreId,
        till: &TillId,
        pos_receipt_no: &str,
        issued_at: &chrono::DateTime<chrono::FixedOffset>,
    ) -> ReceiptId {
        let mut h = Sha256::new();
        for part in [
            b"v1|",
            store.0.as_bytes(),
            b"|",
            till.0.as_bytes(),
            b"|",
            pos_receipt_no.trim().as_bytes(),
            b"|",
        ] {
            h.update(part);
        }
        match utc_seconds(issued_at) {
            Some(text) => h.update(text),
            None => h.update(
                issued_at
                    .naive_utc()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
                    .as_bytes(),
            ),
        }
        let digest = h.finalize();
        ReceiptId(hex::encode(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `issued_at` in UTC as chrono's `%Y-%m-%dT%H:%M:%SZ` writes it, without chrono's format machinery
/// (the server derives the id of every receipt it takes); None for a year outside 0–9999 or a leap
/// second (chrono's own format then).
fn utc_seconds(issued_at: &chrono::DateTime<chrono::FixedOffset>) -> Option<[u8; 20]> {
    use chrono::{Datelike, Timelike};
    let t = issued_at.naive_utc();
    if !(0..=9999).contains(&t.year()) || t.nanosecond() >= 1_000_000_000 {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00Z";
    put_digits(&mut out[0..4], t.year() as u32);
    put_digits(&mut out[5..7], t.month());
    put_digits(&mut out[8..10], t.day());
    put_digits(&mut out[11..13], t.hour());
    put_digits(&mut out[14..16], t.minute());
    put_digits(&mut out[17..19], t.second());
    Some(out)
}

/// `value`'s last `out.len()` decimal digits into `out`, zero-padded: the fields of a time or a
/// month key written without `format!` (also `rules`' month keys).
pub(crate) fn put_digits(out: &mut [u8], mut value: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Display for ReceiptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_separators_from_other_layouts() {
        for raw in [
            "1900-1234-5678-9012",
            "1900 1234 5678 9012",
            "1900'1234'5678'9012",
            "1900ß1234ß5678ß9012",
            "1900=1234=5678=9012",
        ] {
            assert_eq!(CardId::normalise(raw).unwrap().expose(), "1900123456789012", "{raw}");
        }
    }

    #[test]
    fn rejects_letters_with_position() {
        assert_eq!(
            CardId::normalise("1900-12a4"),
            Err(CardIdError::InvalidChar { ch: 'a', pos: 7 })
        );
        assert_eq!(CardId::normalise(" - "), Err(CardIdError::Empty));
    }

    #[test]
    fn policy_length_prefix_luhn() {
        let p = CardPolicy {
            min_len: 16,
            max_len: 16,
            prefixes: vec!["1900".into()],
            luhn: true,
        };
        let payload = "190012345678901";
        let full = format!("{payload}{}", luhn_check_digit(payload));
        assert!(CardId::parse(&full, &p).is_ok());
        assert!(matches!(
            CardId::parse("1900", &p),
            Err(CardIdError::Length { len: 4, .. })
        ));
        assert!(matches!(
            CardId::parse("2900123456789012", &p),
            Err(CardIdError::Prefix { .. })
        ));
        let wrong = format!("{payload}{}", if full.ends_with('0') { '1' } else { '0' });
        assert_eq!(CardId::parse(&wrong, &p), Err(CardIdError::CheckDigit));
    }

    #[test]
    fn display_and_debug_are_masked() {
        let c = CardId::normalise("1900-1234-5678-9012").unwrap();
        assert_eq!(c.to_string(), "1900-****-****-9012");
        assert_eq!(format!("{c:?}"), "CardId(1900-****-****-9012)");
        assert!(!format!("{c} {c:?}").contains("12345678"));
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
    }

    #[test]
    fn receipt_id_is_deterministic_and_offset_independent() {
        let s = StoreId::from("S1");
        let t = TillId::from("T1");
        let a = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap();
        let b = chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+00:00").unwrap();
        assert_eq!(ReceiptId::derive(&s, &t, "42", &a), ReceiptId::derive(&s, &t, "42", &b));
        assert_ne!(ReceiptId::derive(&s, &t, "42", &a), ReceiptId::derive(&s, &t, "43", &a));
        assert_eq!(ReceiptId::derive(&s, &t, "42", &a).0.len(), 32);
    }

    #[test]
    fn receipt_id_is_the_documented_hash_and_its_time_text_is_chronos() {
        // The key the tills have stored for years: SHA-256 of the documented text (Python's
        // hashlib gives the same), the POS number trimmed, the time in UTC.
        let at = chrono::DateTime::parse_from_rfc3339("2027-01-01T00:59:59+01:00").unwrap();
        assert_eq!(
            ReceiptId::derive(&StoreId::from("CZ-PRG-01"), &TillId::from("T1"), " 42 ", &at).0,
            "98dc431482e658f5eb3482d776c44338"
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:15:00+01:00").unwrap();
        assert_eq!(
            ReceiptId::derive(&StoreId::from("CZ-PRG-01"), &TillId::from("T1"), "42", &at).0,
            "faa65ebdd61254b3333ab61abd391e76"
        );
        // The time text written by hand equals chrono's format across offsets, days and years.
        for text in [
            "2026-11-23T10:15:00+01:00",
            "2027-01-01T00:30:00+02:00",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "1999-02-28T23:59:59-05:00",
            "2024-02-29T12:34:56.999+14:00",
        ] {
            let t = chrono::DateTime::parse_from_rfc3339(text).unwrap();
            let chrono_text = t.naive_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(
                utc_seconds(&t).map(|b| String::from_utf8(b.to_vec()).unwrap()),
                Some(chrono_text),
                "{text}"
            );
        }
        // Outside 0–9999 chrono's format is used.
        let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59-05:00").unwrap();
        assert_eq!(utc_seconds(&far), None);
    }

    #[test]
    fn card_serde_round_trip_keeps_full_number() {
        let c = CardId::normalise("1900-1234-5678-9012").unwrap();
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(j, "\"1900123456789012\"");
        assert_eq!(serde_json::from_str::<CardId>(&j).unwrap(), c);
    }
}
