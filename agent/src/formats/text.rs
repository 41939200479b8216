//! Text-level helpers shared by the parsers: decoding, numbers, dates, VAT rates.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use encoding_rs::Encoding;
use rust_decimal::Decimal;

use super::ParseError;

/// The configured legacy encoding (WHATWG label, e.g. `windows-1250`).
pub(crate) fn legacy_encoding(label: &str) -> Result<&'static Encoding, ParseError> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        ParseError::new("unknown text encoding (use a WHATWG label such as windows-1250, iso-8859-2, utf-8)")
            .field("encoding")
            .value(label)
    })
}

/// Decode a whole file: BOM → that encoding; valid UTF-8 → UTF-8; an XML declaration's
/// `encoding` → that; else `legacy`. Returns the text (BOM stripped) and the encoding used.
pub(crate) fn decode<'a>(
    bytes: &'a [u8],
    legacy: &'static Encoding,
) -> Result<(Cow<'a, str>, &'static Encoding), ParseError> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        return match enc.decode_without_bom_handling_and_without_replacement(&bytes[bom_len..]) {
            Some(s) => Ok((s, enc)),
            None => Err(ParseError::new(format!(
                "file starts with a {} byte-order mark but is not valid {}",
                enc.name(),
                enc.name()
            ))
            .field("encoding")),
        };
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((Cow::Borrowed(s), encoding_rs::UTF_8));
    }
    let enc = xml_declared_encoding(bytes)
        .filter(|e| *e != encoding_rs::UTF_8)
        .unwrap_or(legacy);
    let (s, _) = enc.decode_without_bom_handling(bytes);
    if enc == encoding_rs::UTF_8 {
        // Not valid UTF-8 and UTF-8 configured: name the first bad byte.
        let pos = std::str::from_utf8(bytes).err().map(|e| e.valid_up_to()).unwrap_or(0);
        let line = bytes[..pos].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(ParseError::new(format!("invalid UTF-8 at byte {pos}"))
            .line(line)
            .field("encoding"));
    }
    Ok((s, enc))
}

/// Decode just enough for sniffing, never failing.
pub(crate) fn decode_lossy_head(bytes: &[u8]) -> Cow<'_, str> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        return enc.decode_without_bom_handling(&bytes[bom_len..]).0;
    }
    String::from_utf8_lossy(bytes)
}

/// `<?xml version="1.0" encoding="windows-1250"?>` → that encoding.
fn xml_declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(200)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = &head[..end];
    let pos = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = &decl[pos + 8..];
    let q = rest.iter().position(|b| *b == b'"' || *b == b'\'')?;
    let quote = rest[q];
    let rest = &rest[q + 1..];
    let e = rest.iter().position(|b| *b == quote)?;
    Encoding::for_label(&rest[..e])
}

/// 1-based line of a byte offset (one-off; for many lookups use [`Lines`]).
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

/// Newline index of a text: byte offset → 1-based line in O(log n).
pub(crate) struct Lines(Vec<usize>);

impl Lines {
    pub fn new(src: &str) -> Lines {
        Lines(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    pub fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&p| p < offset) + 1
    }
}

/// Parse an amount as POS exports write it: `1234.56`, `1 234,56`, `1.234,56`, `1,234.56`,
/// non-breaking spaces, leading `+`/`-`. `decimal` forces the decimal separator (`,` or `.`);
/// `None` guesses: with both separators the last one is decimal; a single `,` or `.` is decimal;
/// a repeated one is grouping. Grouping must be in threes ([`grouped_in_threes`]).
pub(crate) fn parse_decimal(raw: &str, decimal: Option<char>) -> Option<Decimal> {
    let s: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\''))
        .collect();
    let (neg, body) = match s.strip_prefix('-').or_else(|| s.strip_prefix('\u{2212}')) {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    if body.is_empty() || body.len() > 40 {
        return None;
    }
    let commas = body.matches(',').count();
    let dots = body.matches('.').count();
    let dec = match decimal {
        Some(c) => Some(c),
        None => match (commas, dots) {
            (0, 0) => None,
            (c, d) if c > 0 && d > 0 => {
                if body.rfind(',') > body.rfind('.') {
                    Some(',')
                } else {
                    Some('.')
                }
            }
            (1, 0) => Some(','),
            (0, 1) => Some('.'),
            _ => None, // only grouping separators
        },
    };
    if !grouped_in_threes(body, dec) {
        return None;
    }
    let mut out = String::with_capacity(body.len() + 1);
    if neg {
        out.push('-');
    }
    let mut seen_dec = false;
    for c in body.chars() {
        match c {
            '0'..='9' => out.push(c),
            ',' | '.' if Some(c) == dec => {
                if seen_dec {
                    return None;
                }
                seen_dec = true;
                out.push('.');
            }
            ',' | '.' => {} // grouping
            _ => return None,
        }
    }
    if !out.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    Decimal::from_str(&out).ok()
}

/// `,` / `.` that is not the decimal separator groups thousands: before the decimal separator,
/// every group after the first of exactly three digits, the first of one to three not starting
/// with 0. `2,40` with a decimal point, or `0.250` with a decimal comma, is no number: read as
/// grouping it would be 240 / 250, a quantity or price a hundred times too large.
fn grouped_in_threes(body: &str, dec: Option<char>) -> bool {
    let is_group = |c: char| matches!(c, ',' | '.') && Some(c) != dec;
    let (whole, fraction) = match dec.and_then(|d| body.split_once(d)) {
        Some((w, f)) => (w, f),
        None => (body, ""),
    };
    if fraction.contains(is_group) {
        return false;
    }
    if !whole.contains(is_group) {
        return true;
    }
    let mut groups = whole.split(is_group);
    let first = groups.next().unwrap_or("");
    (1..=3).contains(&first.len())
        && !first.starts_with('0')
        && first.bytes().all(|b| b.is_ascii_digit())
        && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// A JSON number literal (`12.9`, `-1e2`) → Decimal, exactly.
pub(crate) fn parse_json_number(raw: &str) -> Option<Decimal> {
    if raw.contains(['e', 'E']) {
        Decimal::from_scientific(raw).ok()
    } else {
        Decimal::from_str(raw).ok()
    }
}

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%YT%H:%M:%S",
    "%d. %m. %Y %H:%M:%S",
    "%d. %m. %Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
];

/// Parse a timestamp: RFC 3339 (offset kept), `extra` formats, then common local formats
/// (interpreted at `tz`).
pub(crate) fn parse_datetime(raw: &str, extra: &[String], tz: &super::LocalZone) -> Option<DateTime<FixedOffset>> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d);
        }
    }
    let naive = extra
        .iter()
        .map(String::as_str)
        .chain(NAIVE_FORMATS.iter().copied())
        .find_map(|f| {
            NaiveDateTime::parse_from_str(s, f).ok().or_else(|| {
                NaiveDate::parse_from_str(s, f)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
        })?;
    tz.resolve(&naive)
}

/// VAT rate in percent: `21`, `21.00`, `0.21` (fraction) and `1.21` (multiplier) all give 21.
/// No real rate lies in (0, 1) or (1, 2) percent, so those ranges are read as fraction/multiplier.
pub(crate) fn normalise_vat(d: Decimal) -> Option<Decimal> {
    let hundred = Decimal::ONE_HUNDRED;
    let r = if d > Decimal::ZERO && d < Decimal::ONE {
        d.checked_mul(hundred)?
    } else if d > Decimal::ONE && d < Decimal::TWO {
        (d - Decimal::ONE).checked_mul(hundred)?
    } else {
        d
    };
    if r.is_sign_negative() || r > hundred {
        return None;
    }
    Some(r.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn numbers_as_pos_exports_write_them() {
        for (raw, want) in [
            ("1234.56", dec!(1234.56)),
            ("1 234,50", dec!(1234.50)),
            ("1\u{a0}234,50", dec!(1234.50)),
            ("1.234,56", dec!(1234.56)),
            ("1,234.56", dec!(1234.56)),
            ("-12,90", dec!(-12.90)),
            ("26.990", dec!(26.990)),
            ("+3", dec!(3)),
            ("1.234.567", dec!(1234567)),
        ] {
            assert_eq!(parse_decimal(raw, None), Some(want), "{raw}");
        }
        assert_eq!(parse_decimal("1.234", Some(',')), Some(dec!(1234)));
        assert_eq!(parse_decimal("1,000,000.5", Some('.')), Some(dec!(1000000.5)));
        for bad in [
            "",
            "abc",
            "1,2,3.4.5",
            "--1",
            "12x",
            "-",
            ",",
            "1e5",
            "1.5.6",
            "12,34,567",
        ] {
            assert_eq!(parse_decimal(bad, None), None, "{bad}");
        }
        // A separator that is not the decimal one groups thousands, in threes: otherwise the text
        // is no number (read as grouping, `2,40` would be 240).
        for (bad, decimal) in [
            ("2,40", '.'),
            ("0.250", ','),
            ("1.2345", ','),
            ("1,23.5", '.'),
            ("1.234,5", '.'),
            ("1234,567.5", '.'),
            (",500", '.'),
        ] {
            assert_eq!(parse_decimal(bad, Some(decimal)), None, "{bad} with decimal {decimal}");
        }
    }

    #[test]
    fn vat_rates_in_all_spellings() {
        assert_eq!(normalise_vat(dec!(21.00)), Some(dec!(21)));
        assert_eq!(normalise_vat(dec!(0.21)), Some(dec!(21)));
        assert_eq!(normalise_vat(dec!(1.12)), Some(dec!(12)));
        assert_eq!(normalise_vat(dec!(0)), Some(dec!(0)));
        assert_eq!(normalise_vat(dec!(120)), None);
    }

    #[test]
    fn dates_local_and_with_offset() {
        let tz = &super::super::LocalZone::from(FixedOffset::east_opt(3600).unwrap());
        let d = parse_datetime("21.10.2012T10:10:22", &[], tz).unwrap();
        assert_eq!(d.to_rfc3339(), "2012-10-21T10:10:22+01:00");
        let d = parse_datetime("2021-07-14T08:20:03.8016655Z", &[], tz).unwrap();
        assert_eq!(d.to_rfc3339(), "2021-07-14T08:20:03.801665500+00:00");
        assert!(parse_datetime("31.02.2026 10:00", &[], tz).is_none());
    }

    #[test]
    fn decoding_bom_utf8_legacy() {
        let cp = encoding_rs::WINDOWS_1250;
        assert_eq!(decode(b"\xEF\xBB\xBFab", cp).unwrap().0, "ab");
        assert_eq!(decode("čaj".as_bytes(), cp).unwrap().0, "čaj");
        let (s, e) = decode(b"\xE8aj \x9A", cp).unwrap();
        assert_eq!((s.as_ref(), e.name()), ("čaj š", "windows-1250"));
        // ISO-8859-2 differs from windows-1250 exactly on š/ž/ť/ľ/Š/Ž/Ť/Ľ.
        let (s, _) = decode(b"\xB9", encoding_rs::ISO_8859_2).unwrap();
        assert_eq!(s, "š");
    }
}
