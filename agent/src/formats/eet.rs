//! Czech EET sale record (`Trzba`, schema `http://fs.mfcr.cz/eet/schema/v3`), alone or inside the
//! SOAP envelope the POS sent to the tax authority (signature and certificate ignored). Totals and
//! VAT only — an EET record has no items, yet it counts for turnover-based discounts and
//! total-based points, like the Croatian fiscal request.
//!
//! - Everything is in the attributes of `Trzba/Data`: `pos_receipt_no` = `porad_cis` (the receipt's
//!   serial number as printed); `issued_at` = `dat_trzby` (ISO date-time with its offset);
//!   `total` = `celk_trzba` (negative for a refund). Amounts have a decimal point.
//! - VAT: `zakl_dan1`/`dan1` (standard rate), `zakl_dan2`/`dan2` (first reduced), `zakl_dan3`/`dan3`
//!   (second reduced) become one summary each. The file does not name the rates: they come from the
//!   same VAT levels as POHODA (`[receipts.pohoda] high` / `low` / `third`), else the level's Czech
//!   rate on the sale's day when the pair fits it (21 %; 15 %, since 2024 12 %; 10 % in 2015–2023),
//!   else from the pair itself (tax ÷ base, whole percent). `zakl_nepodl_dph` (not subject to VAT)
//!   is a 0 % summary.
//!   Travel services, used goods and voucher amounts are not VAT and are not summarised.
//! - The total is not cross-checked against the bases: the record also carries amounts outside VAT,
//!   and the tax authority validates it; `celk_trzba` is authoritative.
//! - A record sent in verification mode (`Hlavicka overeni="true"`) is a test, not a sale: skipped
//!   and counted ("verification"). A repeated sending (`prvni_zaslani="false"`) is the same sale:
//!   same number and time, so the same receipt id, counted once by the server.
//! - EET records are in CZK: a program in another currency cannot take them. No card, no lines.
//! - A file may hold several `Trzba` records: each is read on its own (a bad one is set aside with
//!   its extract, the others are taken).

use chrono::NaiveDate;
use protocol::v1::{Receipt, VatSummary};
use protocol::Currency;
use rust_decimal::Decimal;

use super::pohoda::PohodaSpec;
use super::text::{parse_datetime, parse_decimal};
use super::xml::{self, El};
use super::{finish, Draft, FileReceipts, ParseContext, ParseError};

/// The VAT pairs of `Data`: (base attribute, tax attribute, POHODA level).
const VAT_PAIRS: [(&str, &str, &str); 3] = [
    ("zakl_dan1", "dan1", "high"),
    ("zakl_dan2", "dan2", "low"),
    ("zakl_dan3", "dan3", "third"),
];

pub(crate) fn parse_each(
    levels: &PohodaSpec,
    src: &str,
    ctx: &ParseContext,
    out: &mut FileReceipts,
) -> Result<(), ParseError> {
    let doc = xml::parse(src)?;
    let root = doc.root();
    let records: Vec<El> = root.find_all("Trzba").collect();
    if records.is_empty() {
        return Err(ParseError::new("not an EET sale record: no <Trzba> element")
            .line(root.line())
            .field(root.name().to_string()));
    }
    if ctx.currency != Currency::CZK {
        return Err(ParseError::new(format!(
            "EET records are in CZK; this program's currency is {}",
            ctx.currency
        ))
        .line(records[0].line())
        .field("celk_trzba"));
    }
    for t in records {
        if t.child("Hlavicka").is_some_and(|h| h.flag("overeni")) {
            out.skip("verification");
            continue;
        }
        out.take(record(levels, t, ctx), "xml", || {
            let no = t.child("Data").and_then(|d| d.attr("porad_cis"));
            (no.map(|s| s.trim().to_string()), t.standalone(root))
        });
    }
    Ok(())
}

fn attr<'a>(data: El<'a>, name: &str) -> Result<&'a str, ParseError> {
    match data.attr(name).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParseError::new("required attribute is missing or empty")
            .line(data.line())
            .field(name.to_string())),
    }
}

fn amount(data: El<'_>, name: &str) -> Result<Option<Decimal>, ParseError> {
    let Some(raw) = data.attr(name) else {
        return Ok(None);
    };
    let t = raw.trim();
    // The schema's amount: digits with a decimal point, no grouping (a comma is not read as one).
    plain_decimal(t)
        .then(|| parse_decimal(t, Some('.')))
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            ParseError::new("not an amount (expected e.g. 236.00)")
                .line(data.line())
                .field(name.to_string())
                .value(t)
        })
}

/// `236.00`, `-4.09`, `12`: digits, an optional minus and an optional decimal point between digits.
fn plain_decimal(t: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = t.strip_prefix('-').unwrap_or(t);
    match unsigned.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(unsigned),
    }
}

/// The Czech VAT rate of an EET level on the sale's day: standard 21 % (since 2013); first reduced
/// 15 %, 12 % since 2024; second reduced 10 % from 2015 to 2023 (none since).
fn statutory_rate(level: &str, day: NaiveDate) -> Option<Decimal> {
    let since = |y: i32| NaiveDate::from_ymd_opt(y, 1, 1).is_some_and(|d| day >= d);
    match level {
        "high" => Some(Decimal::from(21)),
        "low" if since(2024) => Some(Decimal::from(12)),
        "low" => Some(Decimal::from(15)),
        "third" if since(2015) && !since(2024) => Some(Decimal::from(10)),
        _ => None,
    }
}

/// The tax is this rate of the base, give or take the rounding of a receipt's lines: 5 hundredths,
/// or 2 % of the tax on a large one (rates a level could hold differ by far more).
fn fits(base: Decimal, tax: Decimal, rate: Decimal) -> bool {
    let expected = base * rate / Decimal::ONE_HUNDRED;
    let slack = (tax.abs() * Decimal::new(2, 2)).max(Decimal::new(5, 2));
    (expected - tax).abs() <= slack
}

fn record(levels: &PohodaSpec, t: El<'_>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let data = t
        .child("Data")
        .ok_or_else(|| ParseError::new("<Trzba> has no <Data>").line(t.line()).field("Data"))?;
    let no = attr(data, "porad_cis")?;
    let at = attr(data, "dat_trzby")?;
    let issued_at = parse_datetime(at, &[], &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date-time (expected e.g. 2019-08-11T15:36:14+02:00)")
            .line(data.line())
            .field("dat_trzby")
            .value(at)
    })?;
    let mut d = Draft::new(Some(data.line()), no.to_string(), issued_at);
    attr(data, "celk_trzba")?;
    d.total = amount(data, "celk_trzba")?;
    d.total_field = "celk_trzba".into();
    if let Some(base) = amount(data, "zakl_nepodl_dph")?.filter(|b| !b.is_zero()) {
        d.vat.push(VatSummary {
            rate: Decimal::ZERO,
            base,
            amount: Decimal::ZERO,
        });
    }
    for (base_name, tax_name, level) in VAT_PAIRS {
        let (base, tax) = (amount(data, base_name)?, amount(data, tax_name)?);
        if base.is_none() && tax.is_none() {
            continue;
        }
        let (base, tax) = (base.unwrap_or_default(), tax.unwrap_or_default());
        if base.is_zero() && tax.is_zero() {
            continue;
        }
        let configured = levels.rate(level).unwrap_or_default();
        let statutory = statutory_rate(level, d.issued_at.date_naive()).filter(|r| fits(base, tax, *r));
        let rate = match configured.or(statutory) {
            Some(r) => r,
            None if !base.is_zero() => tax
                .checked_mul(Decimal::ONE_HUNDRED)
                .and_then(|x| x.checked_div(base))
                .map(|r| r.round_dp(0))
                .ok_or_else(|| {
                    ParseError::new("VAT rate cannot be computed from this base and tax")
                        .line(data.line())
                        .field(tax_name.to_string())
                })?,
            None => {
                return Err(ParseError::new(format!(
                    "tax without a base: set [receipts.pohoda] {level} (the VAT percent of this level) to read it"
                ))
                .line(data.line())
                .field(tax_name.to_string())
                .value(&tax.to_string()))
            }
        };
        d.vat.push(VatSummary {
            rate,
            base,
            amount: tax,
        });
    }
    finish(d, ctx)
}
