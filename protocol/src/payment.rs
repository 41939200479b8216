//! Payment card numbers (PANs): the issuer identification number (IIN) ranges of the payment
//! schemes and the Luhn check. A number that [`is_payment_pan`] is treated as a payment card
//! wherever it appears (a scan, a receipt file's card column, a log message) unless the loyalty
//! program's configured prefixes explicitly cover it ([`payment_not_ours`]). Pure functions.

use crate::ids::{luhn_valid, CardPolicy};

/// The schemes guarded. Ranges are the schemes' published IIN ranges (first digits) with the
/// number lengths they issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    Maestro,
    UnionPay,
}

/// `digits` starts with a number in `lo..=hi` (both of `lo`'s width).
fn in_range(digits: &str, lo: u32, hi: u32) -> bool {
    let w = lo.to_string().len();
    digits.len() >= w && digits[..w].parse::<u32>().is_ok_and(|p| (lo..=hi).contains(&p))
}

/// The payment scheme whose IIN range and lengths `digits` falls in (no check digit test).
pub fn scheme_of(digits: &str) -> Option<Scheme> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.len();
    let any = |ranges: &[(u32, u32)]| ranges.iter().any(|&(lo, hi)| in_range(digits, lo, hi));
    if any(&[(4, 4)]) && (13..=19).contains(&n) {
        return Some(Scheme::Visa);
    }
    if any(&[(51, 55), (2221, 2720)]) && n == 16 {
        return Some(Scheme::Mastercard);
    }
    if any(&[(34, 34), (37, 37)]) && n == 15 {
        return Some(Scheme::Amex);
    }
    if any(&[(6011, 6011), (644, 649), (65, 65), (622126, 622925)]) && (16..=19).contains(&n) {
        return Some(Scheme::Discover);
    }
    if any(&[(3528, 3589)]) && (16..=19).contains(&n) {
        return Some(Scheme::Jcb);
    }
    if any(&[(300, 305), (3095, 3095), (36, 36), (38, 39)]) && (14..=19).contains(&n) {
        return Some(Scheme::Diners);
    }
    if any(&[
        (5018, 5018),
        (5020, 5020),
        (5038, 5038),
        (5893, 5893),
        (6304, 6304),
        (6759, 6759),
        (6761, 6763),
        (676770, 676770),
        (676774, 676774),
    ]) && (12..=19).contains(&n)
    {
        return Some(Scheme::Maestro);
    }
    if any(&[(62, 62)]) && (16..=19).contains(&n) {
        return Some(Scheme::UnionPay);
    }
    None
}

/// In a payment scheme's IIN range, at one of its lengths, with a valid Luhn check digit.
pub fn is_payment_pan(digits: &str) -> bool {
    scheme_of(digits).is_some() && luhn_valid(digits)
}

/// The program's configured prefixes explicitly cover `digits` (an empty list covers nothing).
pub fn prefixes_cover(policy: &CardPolicy, digits: &str) -> bool {
    policy
        .prefixes
        .iter()
        .any(|p| !p.is_empty() && digits.starts_with(p.as_str()))
}

/// A payment card number that is not one of the program's own cards: never a loyalty card,
/// never stored, logged or sent (at most its last 4 digits).
pub fn payment_not_ours(digits: &str, policy: &CardPolicy) -> bool {
    is_payment_pan(digits) && !prefixes_cover(policy, digits)
}

/// The last 4 digits (what may be shown of a payment card).
pub fn last4(digits: &str) -> String {
    digits[digits.len().saturating_sub(4)..].to_string()
}

/// Payment card numbers anywhere in `text`: runs of 12–19 digits, optionally grouped by single
/// spaces or dashes, whatever surrounds them (letters too: `%B4111…^`). Returns the digits of
/// each run that [`is_payment_pan`], with its char range in `text`.
pub fn find_pans(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].1.is_ascii_digit() {
            i += 1;
            continue;
        }
        let (mut j, mut end, mut digits) = (i, i, String::new());
        while j < chars.len() {
            let c = chars[j].1;
            if c.is_ascii_digit() {
                digits.push(c);
                j += 1;
                end = j;
            } else if (c == ' ' || c == '-') && j + 1 < chars.len() && chars[j + 1].1.is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        if is_payment_pan(&digits) {
            let to = chars.get(end).map(|c| c.0).unwrap_or(text.len());
            out.push((chars[i].0..to, digits));
        }
        i = end.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Public test numbers of the schemes (gateway sandboxes' documented test PANs).
    pub const TEST_PANS: &[(&str, Scheme)] = &[
        ("4111111111111111", Scheme::Visa),
        ("4012888888881881", Scheme::Visa),
        ("4222222222222", Scheme::Visa),
        ("5555555555554444", Scheme::Mastercard),
        ("5105105105105100", Scheme::Mastercard),
        ("2223003122003222", Scheme::Mastercard),
        ("378282246310005", Scheme::Amex),
        ("371449635398431", Scheme::Amex),
        ("6011111111111117", Scheme::Discover),
        ("6445644564456445", Scheme::Discover),
        ("3530111333300000", Scheme::Jcb),
        ("3566002020360505", Scheme::Jcb),
        ("30569309025904", Scheme::Diners),
        ("36227206271667", Scheme::Diners),
        ("6759649826438453", Scheme::Maestro),
        ("6304000000000000", Scheme::Maestro),
        ("6200000000000005", Scheme::UnionPay),
        ("6250941006528599", Scheme::UnionPay),
    ];

    #[test]
    fn public_test_pans_are_payment_cards() {
        for (pan, scheme) in TEST_PANS {
            assert_eq!(scheme_of(pan), Some(*scheme), "{pan}");
            assert!(is_payment_pan(pan), "{pan}");
            assert!(payment_not_ours(pan, &CardPolicy::default()), "{pan}");
        }
    }

    #[test]
    fn loyalty_numbers_and_bad_check_digits_are_not() {
        for n in [
            "1900000009000018",    // the demo program's cards
            "98700223563013312",   // a loyalty magstripe
            "5901234123457",       // an EAN-13 product code
            "4111111111111112",    // Visa range, bad Luhn
            "5022440000000000098", // a gift card (502244 is no scheme's range)
            "2200000000000004",    // below Mastercard's 2-series
            "411111111111",        // Visa too short
        ] {
            assert!(!is_payment_pan(n), "{n}");
        }
        // a program whose configured prefix covers the range owns its numbers
        let p = CardPolicy {
            prefixes: vec!["4111".into()],
            ..CardPolicy::default()
        };
        assert!(!payment_not_ours("4111111111111111", &p));
        assert!(payment_not_ours("5555555555554444", &p));
    }

    #[test]
    fn finds_pans_touching_letters_and_grouped() {
        let t = "%B4111111111111111^DOE/J^? x 5555-5555-5555-4444 y 1900000009000018 z;4012888888881881=2612?";
        let found: Vec<String> = find_pans(t).into_iter().map(|(_, d)| d).collect();
        assert_eq!(found, ["4111111111111111", "5555555555554444", "4012888888881881"]);
        let (r, _) = &find_pans("card 5555 5555 5555 4444.")[0];
        assert_eq!(&"card 5555 5555 5555 4444."[r.clone()], "5555 5555 5555 4444");
    }
}
