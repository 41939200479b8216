//! What a reader sent → what it is. ISO/IEC 7813 magstripe tracks (with or without sentinels,
//! MagTek read-error tracks `%E?` `;E?` `+E?`), barcodes (Code 128 / EAN-13, with or without an
//! AIM symbology identifier such as `]C0` / `]E0`), and the classification into
//! [`Classified`]: loyalty card, payment card (only the last 4 digits survive), read error, other.
//!
//! Payment card guard: a number in a payment scheme's IIN range with a valid Luhn digit
//! (`protocol::payment`) is never a loyalty card unless the program's configured prefixes
//! explicitly cover it, and a magstripe track whose account field is such a number is a payment
//! card whatever else is missing (cut-short track 2, empty expiry, track 1 without expiry or
//! service code). A payment card's number lives only inside [`Track`] / [`Payload`] values on the
//! stack of [`classify`]; their `Debug` is masked and nothing here logs.

use std::fmt;

use protocol::ids::{luhn_valid, CardId, CardPolicy};
use protocol::payment;

use crate::events::Classified;

/// One parsed magstripe track.
#[derive(Clone, PartialEq, Eq)]
pub struct Track {
    /// 1, 2 or 3.
    pub number: u8,
    /// The reader reported this track unreadable (`E`).
    pub error: bool,
    pub no_start_sentinel: bool,
    pub no_end_sentinel: bool,
    /// Track 1 format code (`B` for payment-style cards).
    pub format: Option<char>,
    /// Primary account number, spaces removed (tracks 1/2). Never print it.
    pub pan: Option<String>,
    pub exp_field: Option<String>,
    pub service_code: Option<String>,
    pub discretionary: Option<String>,
    /// Why the track could not be split into fields.
    pub malformed: Option<String>,
}

impl fmt::Debug for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Track")
            .field("number", &self.number)
            .field("error", &self.error)
            .field("pan", &self.pan.as_deref().map(protocol::ids::mask_digits))
            .field("exp_field", &self.exp_field)
            .field("service_code", &self.service_code)
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

impl Track {
    fn empty(number: u8) -> Track {
        Track {
            number,
            error: false,
            no_start_sentinel: false,
            no_end_sentinel: false,
            format: None,
            pan: None,
            exp_field: None,
            service_code: None,
            discretionary: None,
            malformed: None,
        }
    }

    pub fn luhn(&self) -> bool {
        self.pan.as_deref().is_some_and(luhn_valid)
    }

    /// YYMM with month 01–12 (the date itself is not checked: expired payment cards are still
    /// payment cards).
    pub fn exp_yymm_valid(&self) -> bool {
        match self.exp_field.as_deref() {
            Some(e) if e.len() == 4 && e.bytes().all(|b| b.is_ascii_digit()) => {
                matches!(e[2..].parse::<u8>(), Ok(1..=12))
            }
            _ => false,
        }
    }

    /// Luhn-valid PAN + valid YYMM + payment service code (first digit 1, 2, 5, 6; 9 = test
    /// cards, also treated as payment so their numbers are guarded too).
    pub fn is_payment(&self) -> bool {
        self.luhn()
            && self.exp_yymm_valid()
            && self
                .service_code
                .as_deref()
                .and_then(|s| s.chars().next())
                .is_some_and(|c| matches!(c, '1' | '2' | '5' | '6' | '9'))
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    Magstripe(Vec<Track>),
    /// Vendor-encrypted reader output (e.g. the `<E1…|…>` "E3" envelope): not ISO-parsable.
    Encrypted,
    /// Anything else: a barcode or typed text, with the AIM symbology identifier if present.
    Barcode {
        symbology: Option<String>,
        data: String,
    },
}

impl fmt::Debug for Payload {
    /// Never the raw text: tracks are masked by [`Track`]'s `Debug`, a barcode shows its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Magstripe(t) => f.debug_tuple("Magstripe").field(t).finish(),
            Payload::Encrypted => f.write_str("Encrypted"),
            Payload::Barcode { symbology, data } => f
                .debug_struct("Barcode")
                .field("symbology", symbology)
                .field("chars", &data.chars().count())
                .finish_non_exhaustive(),
        }
    }
}

/// Strip an AIM / ISO 15424 symbology identifier: `]` + code character + modifier.
pub fn strip_aim(raw: &str) -> (Option<String>, &str) {
    let b = raw.as_bytes();
    if b.len() >= 3 && b[0] == b']' && b[1].is_ascii_alphabetic() && b[2].is_ascii_alphanumeric() {
        (Some(raw[..3].to_string()), &raw[3..])
    } else {
        (None, raw)
    }
}

pub fn parse(raw: &str) -> Payload {
    let s = raw.trim_matches(|c| c == '\r' || c == '\n');
    if s.starts_with('<') && s.contains('|') {
        return Payload::Encrypted;
    }
    if s.starts_with(['%', ';', '+']) {
        return Payload::Magstripe(split_tracks(s));
    }
    // Readers configured without sentinels.
    let b = s.as_bytes();
    if b.len() > 2 && b[0] == b'B' && b[1].is_ascii_digit() && s.matches('^').count() >= 2 {
        let mut t = parse_t1(s);
        t.no_start_sentinel = true;
        return Payload::Magstripe(vec![t]);
    }
    if let Some((pan, rest)) = s.split_once('=') {
        if (12..=19).contains(&pan.len())
            && pan.bytes().all(|c| c.is_ascii_digit())
            && rest.len() >= 4
            && rest.bytes().all(|c| c.is_ascii_digit() || c == b'=')
        {
            let mut t = parse_t2(s, 2);
            t.no_start_sentinel = true;
            return Payload::Magstripe(vec![t]);
        }
    }
    let (symbology, data) = strip_aim(s);
    Payload::Barcode {
        symbology,
        data: data.to_string(),
    }
}

fn split_tracks(s: &str) -> Vec<Track> {
    let mut tracks = Vec::new();
    let mut rest = s;
    let mut seen_t2 = false;
    while let Some(c) = rest.chars().next() {
        let number = match c {
            '%' => 1,
            ';' if !seen_t2 => {
                seen_t2 = true;
                2
            }
            ';' | '+' => 3,
            _ => {
                // Junk between tracks (an LRC character): skip it.
                rest = &rest[c.len_utf8()..];
                continue;
            }
        };
        let body_start = &rest[1..];
        let (body, end, next) = match body_start.find('?') {
            Some(i) => (&body_start[..i], true, &body_start[i + 1..]),
            None => (body_start, false, ""),
        };
        let mut t = if body == "E" {
            Track {
                error: true,
                ..Track::empty(number)
            }
        } else {
            match number {
                1 => parse_t1(body),
                2 => parse_t2(body, 2),
                _ => Track::empty(3),
            }
        };
        t.no_end_sentinel = !end;
        tracks.push(t);
        rest = next;
    }
    tracks
}

/// Track 1: FC PAN ^ NAME ^ ED(4|^) SC(3|^) DD. The name is not kept.
fn parse_t1(body: &str) -> Track {
    let mut t = Track::empty(1);
    let mut chars = body.chars();
    t.format = chars.next();
    let rest = chars.as_str();
    let parts: Vec<&str> = rest.splitn(3, '^').collect();
    if parts.len() < 3 {
        t.malformed = Some("track 1 has fewer than 2 field separators (^)".into());
        t.pan = payment_account(parts[0]);
        return t;
    }
    t.pan = Some(parts[0].replace(' ', ""));
    let (exp, sc, dd) = split_ed_sc(parts[2], '^');
    t.exp_field = exp;
    t.service_code = sc;
    t.discretionary = Some(dd);
    t
}

/// Track 2: PAN = ED(4|=) SC(3|=) DD.
fn parse_t2(body: &str, number: u8) -> Track {
    let mut t = Track::empty(number);
    let Some((pan, rest)) = body.split_once('=') else {
        t.malformed = Some("track 2 has no field separator (=)".into());
        t.pan = payment_account(body);
        return t;
    };
    t.pan = Some(pan.to_string());
    let (exp, sc, dd) = split_ed_sc(rest, '=');
    t.exp_field = exp;
    t.service_code = sc;
    t.discretionary = Some(dd);
    t
}

/// The account field of a track that could not be split, kept only when it is a payment card
/// number (so the guard sees it; a malformed loyalty track stays unreadable as before).
fn payment_account(field: &str) -> Option<String> {
    let digits = field.replace(' ', "");
    payment::is_payment_pan(&digits).then_some(digits)
}

/// The payment card number in a track's account field, if it is one.
fn track_payment_pan(t: &Track) -> Option<&str> {
    t.pan.as_deref().filter(|p| payment::is_payment_pan(p))
}

/// Expiry (4 chars, or the separator as "absent"), service code (3 chars, or the separator),
/// then discretionary data.
fn split_ed_sc(s: &str, sep: char) -> (Option<String>, Option<String>, String) {
    let mut rest = s;
    let exp = if let Some(r) = rest.strip_prefix(sep) {
        rest = r;
        None
    } else {
        let n = rest.char_indices().nth(4).map(|(i, _)| i).unwrap_or(rest.len());
        let e = &rest[..n];
        rest = &rest[n..];
        Some(e.to_string())
    };
    let sc = if let Some(r) = rest.strip_prefix(sep) {
        rest = r;
        None
    } else if rest.chars().count() >= 3 {
        let n = rest.char_indices().nth(3).map(|(i, _)| i).unwrap_or(rest.len());
        let c = &rest[..n];
        rest = &rest[n..];
        Some(c.to_string())
    } else {
        None
    };
    (exp, sc, rest.to_string())
}

/// The reference splitter's hint for a payload (see `fixtures/input/swipes.tsv`).
pub fn hint(p: &Payload) -> &'static str {
    match p {
        Payload::Encrypted => "encrypted",
        Payload::Barcode { .. } => "barcode",
        Payload::Magstripe(tracks) => {
            if tracks.iter().any(Track::is_payment) {
                "payment_card"
            } else if !tracks.is_empty() && tracks.iter().all(|t| t.error) {
                "read_error"
            } else if tracks.iter().any(|t| {
                t.pan
                    .as_deref()
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            }) {
                "non_payment_id"
            } else {
                "malformed"
            }
        }
    }
}

/// EAN-13 check digit.
pub fn ean13_valid(d: &str) -> bool {
    if d.len() != 13 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = d
        .bytes()
        .take(12)
        .enumerate()
        .map(|(i, b)| (b - b'0') as u32 * if i % 2 == 1 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == (d.as_bytes()[12] - b'0') as u32
}

/// Classify what a reader sent. `policy` is the program's card policy (length, prefixes).
pub fn classify(raw: &str, policy: &CardPolicy) -> Classified {
    classify_payload(&parse(raw), policy)
}

pub fn classify_payload(p: &Payload, policy: &CardPolicy) -> Classified {
    match p {
        Payload::Encrypted => Classified::Other {
            reason: "encrypted card-reader output (E3 envelope): not a loyalty card".into(),
        },
        Payload::Magstripe(tracks) => {
            if let Some(t) = tracks.iter().find(|t| t.is_payment()) {
                let pan = t.pan.as_deref().unwrap_or("");
                return Classified::PaymentCard {
                    last4: payment::last4(pan),
                };
            }
            // A payment scheme's number on any track, whatever else is missing (cut short, no
            // expiry, no service code), unless the program's prefixes claim it.
            if let Some(pan) = tracks
                .iter()
                .filter_map(track_payment_pan)
                .find(|p| !payment::prefixes_cover(policy, p))
            {
                return Classified::PaymentCard {
                    last4: payment::last4(pan),
                };
            }
            if !tracks.is_empty() && tracks.iter().all(|t| t.error) {
                let which: Vec<String> = tracks.iter().map(|t| t.number.to_string()).collect();
                return Classified::ReadError {
                    detail: format!("the reader could not read track {} — swipe again", which.join(", ")),
                };
            }
            // Track 2 carries the id most reliably; then track 1.
            let mut ordered: Vec<&Track> = tracks.iter().filter(|t| t.number == 2).collect();
            ordered.extend(tracks.iter().filter(|t| t.number == 1));
            for t in &ordered {
                if let Some(pan) = t
                    .pan
                    .as_deref()
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                {
                    return match CardId::parse(pan, policy) {
                        Ok(card) => Classified::LoyaltyCard { card },
                        Err(e) => Classified::Other {
                            reason: format!("magstripe card number not accepted: {e}"),
                        },
                    };
                }
            }
            let why = tracks
                .iter()
                .find_map(|t| t.malformed.clone())
                .unwrap_or_else(|| "no card number on any track".into());
            Classified::Other {
                reason: format!("unreadable magstripe data: {why}"),
            }
        }
        Payload::Barcode { symbology, data } => {
            let data = data.trim();
            if data.is_empty() {
                return Classified::Other {
                    reason: "empty input".into(),
                };
            }
            // A payment card number (bare, grouped, or inside other text) is never a loyalty
            // card unless the program's prefixes claim it; an EAN-marked product code is not one.
            let ean_marked = symbology.as_deref().is_some_and(|s| s.starts_with("]E"));
            if !ean_marked {
                if let Some((_, pan)) = payment::find_pans(data)
                    .into_iter()
                    .find(|(_, p)| !payment::prefixes_cover(policy, p))
                {
                    return Classified::PaymentCard {
                        last4: payment::last4(&pan),
                    };
                }
            }
            let card = match CardId::normalise(data) {
                Ok(c) => c,
                Err(e) => {
                    return Classified::Other {
                        reason: format!("not a card number: {e}"),
                    }
                }
            };
            let digits = card.expose();
            if !ean_marked && payment::payment_not_ours(digits, policy) {
                return Classified::PaymentCard {
                    last4: payment::last4(digits),
                };
            }
            let prefixed =
                !policy.prefixes.is_empty() && policy.prefixes.iter().any(|p| digits.starts_with(p.as_str()));
            let is_ean = symbology.as_deref().is_some_and(|s| s.starts_with("]E"))
                || (symbology.is_none() && ean13_valid(digits));
            // GS1 restricted-circulation prefixes 020-029 / 200-299 are in-store numbers (loyalty
            // cards use them); any other valid EAN-13 is a product.
            let in_store = digits.starts_with('2') || digits.starts_with("02");
            if is_ean && !prefixed && !in_store {
                return Classified::Other {
                    reason: format!("product barcode (EAN-13 GTIN {digits}), not a loyalty card"),
                };
            }
            match card.validate(policy) {
                Ok(()) => Classified::LoyaltyCard { card },
                Err(e) => Classified::Other {
                    reason: format!("not a loyalty card number: {e}"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn rows(name: &str) -> Vec<Vec<String>> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/input")
            .join(name);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    fn check_track(id: &str, t: &Track, want: &Value) {
        if want.get("error").is_some() {
            assert!(t.error, "{id}: track {} should be a read error", t.number);
            return;
        }
        if let Some(p) = want.get("pan").and_then(Value::as_str) {
            assert_eq!(t.pan.as_deref(), Some(p), "{id} t{} pan", t.number);
            assert_eq!(t.luhn(), want["luhn"].as_bool().unwrap(), "{id} t{} luhn", t.number);
            assert_eq!(
                t.exp_field.as_deref(),
                want["exp_field"].as_str(),
                "{id} t{} exp",
                t.number
            );
            assert_eq!(
                t.exp_yymm_valid(),
                want["exp_yymm_valid"].as_bool().unwrap(),
                "{id} t{} exp valid",
                t.number
            );
            assert_eq!(
                t.service_code.as_deref(),
                want["service_code"].as_str(),
                "{id} t{} sc",
                t.number
            );
            assert_eq!(
                t.discretionary.as_deref(),
                want["discretionary"].as_str(),
                "{id} t{} dd",
                t.number
            );
        }
        if want.get("note").is_some() {
            assert!(t.malformed.is_some(), "{id}: t{} should be malformed", t.number);
        }
        match want.get("flag").and_then(Value::as_str) {
            Some("no_start_sentinel") => assert!(t.no_start_sentinel, "{id}"),
            Some("no_end_sentinel") => assert!(t.no_end_sentinel, "{id}"),
            _ => {}
        }
    }

    #[test]
    fn every_reference_swipe() {
        let rows = rows("swipes.tsv");
        assert_eq!(rows.len(), 19, "all rows of the reference file");
        for r in &rows {
            let (id, raw, want) = (&r[0], &r[1], serde_json::from_str::<Value>(&r[2]).unwrap());
            let p = parse(raw);
            let want_hint = want["hint"].as_str().unwrap();
            let got_hint = hint(&p);
            assert_eq!(got_hint, want_hint, "{id}");
            if let Payload::Magstripe(tracks) = &p {
                for (key, n) in [("t1", 1), ("t2", 2), ("t3", 3)] {
                    match want.get(key) {
                        Some(w) => check_track(
                            id,
                            tracks
                                .iter()
                                .find(|t| t.number == n)
                                .unwrap_or_else(|| panic!("{id}: no {key}")),
                            w,
                        ),
                        None => assert!(tracks.iter().all(|t| t.number != n), "{id}: unexpected {key}"),
                    }
                }
            }
            // Classification: payment cards keep only the last 4 digits.
            let c = classify(raw, &CardPolicy::default());
            let json = serde_json::to_string(&c).unwrap();
            match want_hint {
                "payment_card" => {
                    let pan = want["t2"]["pan"].as_str().or(want["t1"]["pan"].as_str()).unwrap();
                    assert_eq!(
                        c,
                        Classified::PaymentCard {
                            last4: pan[pan.len() - 4..].to_string()
                        },
                        "{id}"
                    );
                    assert!(!json.contains(&pan[..pan.len() - 4]), "{id}: {json}");
                }
                "non_payment_id" => assert!(matches!(c, Classified::LoyaltyCard { .. }), "{id}: {c:?}"),
                "read_error" => assert!(matches!(c, Classified::ReadError { .. }), "{id}: {c:?}"),
                _ => assert!(matches!(c, Classified::Other { .. }), "{id}: {c:?}"),
            }
            // Nothing classified ever carries a payment PAN, whatever the hint.
            for w in [&want["t1"]["pan"], &want["t2"]["pan"]] {
                if let (Some(pan), "payment_card") = (w.as_str(), want_hint) {
                    assert!(!format!("{c:?} {json}").contains(pan), "{id}");
                }
            }
        }
    }

    #[test]
    fn loyalty_ids_from_swipes() {
        let c = classify(";98700223563013312=0000000000000004120?", &CardPolicy::default());
        assert_eq!(
            c,
            Classified::LoyaltyCard {
                card: CardId::normalise("98700223563013312").unwrap()
            }
        );
        // Narrowed by program prefixes.
        let p = CardPolicy {
            prefixes: vec!["1900".into()],
            ..CardPolicy::default()
        };
        assert!(
            matches!(classify(";98700223563013312=0000000000000004120?", &p), Classified::Other { reason } if reason.contains("prefix"))
        );
        // Partial read error: the readable track wins.
        let c = classify("%E?;98700223563013312=0000000000000004120?+E?", &CardPolicy::default());
        assert!(matches!(c, Classified::LoyaltyCard { .. }), "{c:?}");
    }

    #[test]
    fn every_reference_barcode() {
        let rows = rows("barcodes.tsv");
        assert_eq!(rows.len(), 6);
        let policy = CardPolicy::default();
        let loyalty = Classified::LoyaltyCard {
            card: CardId::normalise("1900123456789012").unwrap(),
        };
        for r in &rows {
            let (id, raw) = (r[0].as_str(), r[1].as_str());
            let c = classify(raw, &policy);
            match id {
                "ean13-gs1" | "ean13-gs1-aim" => {
                    assert!(
                        matches!(&c, Classified::Other { reason } if reason.contains("GTIN 5901234123457")),
                        "{id}: {c:?}"
                    );
                    assert!(ean13_valid("5901234123457"));
                }
                "loyalty-c128" | "loyalty-c128-it" | "loyalty-digits-only" => assert_eq!(c, loyalty, "{id}"),
                // As a payload it is a valid 8-digit id; timing decides that it is not a scan
                // (see detect::tests::humans_are_never_scans).
                "human-typo" => assert_eq!(
                    c,
                    Classified::LoyaltyCard {
                        card: CardId::normalise("19001234").unwrap()
                    },
                    "{id}"
                ),
                other => panic!("unhandled barcode row {other}"),
            }
        }
        // AIM Code 128 prefix stripped.
        assert_eq!(classify("]C01900-1234-5678-9012", &policy), loyalty);
        assert_eq!(strip_aim("]E05901234123457"), (Some("]E0".into()), "5901234123457"));
        // A product EAN becomes a card when the program's prefix says so.
        let p = CardPolicy {
            prefixes: vec!["590".into()],
            ..CardPolicy::default()
        };
        assert!(matches!(
            classify("]E05901234123457", &p),
            Classified::LoyaltyCard { .. }
        ));
        // Text and lengths.
        assert!(matches!(classify("hello", &policy), Classified::Other { reason } if reason.contains("'h'")));
        assert!(matches!(classify("1234", &policy), Classified::Other { reason } if reason.contains("4 digits")));
    }

    /// The guard's gaps on main: each of these was taken for a LOYALTY card and its full number
    /// printed. Public test PANs of every guarded scheme, in every shape a reader produces.
    #[test]
    fn payment_numbers_in_any_shape_are_payment_cards() {
        let policy = CardPolicy::default();
        let pans = [
            "4111111111111111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6759649826438453",
            "6250941006528599",
        ];
        for pan in pans {
            let dashed: Vec<String> = pan
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let shapes = [
                format!(";{pan}=2612?"),          // track 2 cut short after the expiry
                format!(";{pan}=?"),              // track 2 with an empty expiry
                format!(";{pan}==101?"),          // no expiry, service code only
                format!(";{pan}?"),               // no separator at all
                format!("{pan}=2612"),            // no sentinels
                format!("%B{pan}^DOE/JOHN^?"),    // track 1 without expiry / service code
                format!("%B{pan}^DOE/JOHN?"),     // track 1 cut short after the name
                format!("%B{pan}^DOE/JOHN^?;E?"), // track 2 unreadable
                pan.to_string(),                  // bare
                dashed.join("-"),                 // dash-separated
                dashed.join(" "),                 // space-separated
                dashed.join("'"),                 // a US scanner on an Italian layout
                format!("]C0{pan}"),              // Code 128 with its AIM id
            ];
            for raw in &shapes {
                let c = classify(raw, &policy);
                assert_eq!(
                    c,
                    Classified::PaymentCard {
                        last4: pan[pan.len() - 4..].into()
                    },
                    "{raw}"
                );
                let shown = format!("{c:?} {} {:?}", serde_json::to_string(&c).unwrap(), parse(raw));
                assert!(!shown.contains(&pan[..pan.len() - 4]), "{raw}: {shown}");
            }
        }
        // The program's own prefix covering the range: its numbers are loyalty cards.
        let own = CardPolicy {
            prefixes: vec!["4111".into()],
            ..CardPolicy::default()
        };
        assert!(matches!(
            classify("4111111111111111", &own),
            Classified::LoyaltyCard { .. }
        ));
        assert!(matches!(
            classify(";4111111111111111=2612?", &own),
            Classified::LoyaltyCard { .. }
        ));
        // ...but never a full payment track (valid expiry and service code).
        assert!(matches!(
            classify(";4111111111111111=26121019761186800000?", &own),
            Classified::PaymentCard { .. }
        ));
        // Bad check digit in the Visa range: not a payment card (the loyalty rules decide).
        assert!(matches!(
            classify("4111111111111112", &policy),
            Classified::LoyaltyCard { .. }
        ));
    }

    #[test]
    fn debug_of_scan_types_never_prints_raw_text() {
        use crate::input::detect::{Action, BurstStats, Scan};
        use crate::input::keys::{Key, KeyEvent};
        use crate::input::serial::{LineSplitter, SerialEvent};
        let pan = "4111111111111111";
        let scan = Scan {
            device: 3,
            text: pan.into(),
            dedicated: false,
            stats: BurstStats {
                chars: 16,
                span_ms: 120,
                gaps_ms: vec![8; 16],
                longest_fast_run: 16,
            },
            by_timeout: false,
            prefixed: false,
        };
        let key = KeyEvent {
            time_ms: 1,
            device: 3,
            key: Key::ENTER,
            down: true,
            injected: false,
        };
        let mut split = LineSplitter::new();
        assert!(split.push(pan.as_bytes()).is_empty());
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            Action::Scan(scan),
            Action::Replay(vec![key; 17]),
            SerialEvent::Line {
                port: "/dev/ttyS0".into(),
                text: format!("%B{pan}^DOE/J^2612101?"),
                at: std::time::Instant::now(),
            },
            split
        );
        assert!(!shown.contains("4111") && !shown.contains("1111"), "{shown}");
        assert!(shown.contains("chars: 16") && shown.contains("17 keys"), "{shown}");
    }

    #[test]
    fn debug_of_a_barcode_is_masked() {
        let d = format!("{:?}", parse("4111-1111-1111-1111"));
        assert!(!d.contains("4111") && !d.contains("1111"), "{d}");
    }

    #[test]
    fn debug_of_a_track_is_masked() {
        let Payload::Magstripe(t) = parse(";4111111111111111=26121019761186800000?") else {
            panic!()
        };
        let d = format!("{t:?}");
        assert!(!d.contains("4111111111111111"), "{d}");
        assert!(d.contains("1111"), "{d}");
    }
}
