//! Receipt file parsers: one module per POS export format, all producing
//! [`protocol::v1::Receipt`]s.
//!
//! Entry point: [`parse_file`]. The format comes from the `[receipts]` section of `agent.toml`
//! ([`FormatSpec`]); `format = "auto"` (the default) picks one by content ([`sniff`]).
//!
//! Rules shared by every format (see [`finish`]):
//! - Money and quantities are `rust_decimal::Decimal`, parsed from the file's text — never via floats
//!   (JSON numbers are read as their literal text).
//! - Text encodings: a BOM wins (UTF-8/UTF-16); otherwise valid UTF-8 is UTF-8; otherwise an XML
//!   `encoding="…"` declaration; otherwise the configured legacy encoding (default `windows-1250`).
//! - Times without an offset are local till time in the till's zone (`ParseContext::zone`), each by
//!   the summer-time rules of its own date ([`zone`]).
//! - Line signs follow `protocol::v1`: sale +qty/+total, return −qty/−total (the receipt must name the
//!   original receipt), discount −total, rounding ±.
//! - Totals: `total − Σ line_total` must be 0. When the receipt has no rounding line and the difference
//!   is within a cash-rounding step (CZK: ≤ 0.50, EUR: ≤ 0.02 — SK rounds cash to 0.05) a `rounding`
//!   line carrying the difference is added, so lines always add up to the total. When the receipt
//!   already has a rounding line, a difference of at most 0.01 (cent rounding of 3-decimal line amounts)
//!   is accepted as is. Anything else is an error. Totals-only receipts (no lines) are not checked.
//! - A card number found in the file goes through `CardId::normalise`; errors show it masked.
//! - Receipt ids are `ReceiptId::derive(store, till, pos_receipt_no, issued_at)`. A JSON file may carry
//!   an `id`; it must equal the derived one (a foreign id would break the server's dedupe).
//! - Every error is a [`ParseError`] naming line (CSV/JSON line; XML line computed from the byte
//!   offset), field, value and what is wrong. No input makes a parser panic (see `tests::no_panic_*`).

use std::fmt;

use chrono::{DateTime, FixedOffset};
use protocol::ids::mask_digits;
use protocol::v1::{LineKind, OriginalReceipt, Receipt, ReceiptLine, VatSummary};
use protocol::{CardId, Currency, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub mod csv;
pub mod eet;
pub mod ekasa;
pub mod hr_fiscal;
pub mod json;
mod jtree;
pub mod pohoda;
pub mod poslog;
pub mod square;
pub mod suggest;
mod text;
mod xml;
pub mod zone;

#[cfg(test)]
mod tests;

pub use self::csv::{CsvColumns, CsvSpec};
pub use self::pohoda::PohodaSpec;
pub use self::zone::LocalZone;

/// Which parser reads the export folder's files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// Detect per file by content ([`sniff`]).
    #[default]
    Auto,
    Csv,
    /// The protocol's own receipt shape (`protocol::v1::Receipt`, `id` optional).
    Json,
    /// ARTS POSLog XML.
    Poslog,
    /// Slovak eKasa receipt registration (JSON or XML, detected by content).
    Ekasa,
    /// Croatian fiscalisation `RacunZahtjev` XML (totals and VAT only).
    HrFiscal,
    /// Stormware POHODA sales receipts (`prodejka` XML, in a `dataPack` or alone).
    Pohoda,
    /// Czech EET sale record `Trzba` XML (totals and VAT only).
    Eet,
    /// Square orders (Orders API JSON: one order, a response, or a list).
    Square,
}

impl FormatKind {
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Auto => "auto",
            FormatKind::Csv => "csv",
            FormatKind::Json => "json",
            FormatKind::Poslog => "poslog",
            FormatKind::Ekasa => "ekasa",
            FormatKind::HrFiscal => "hr_fiscal",
            FormatKind::Pohoda => "pohoda",
            FormatKind::Eet => "eet",
            FormatKind::Square => "square",
        }
    }

    pub fn from_name(s: &str) -> Option<FormatKind> {
        Some(match s {
            "auto" => FormatKind::Auto,
            "csv" => FormatKind::Csv,
            "json" => FormatKind::Json,
            "poslog" => FormatKind::Poslog,
            "ekasa" => FormatKind::Ekasa,
            "hr_fiscal" => FormatKind::HrFiscal,
            "pohoda" => FormatKind::Pohoda,
            "eet" => FormatKind::Eet,
            "square" => FormatKind::Square,
            _ => return None,
        })
    }
}

/// The `[receipts]` section of `agent.toml`.
///
/// ```toml
/// [receipts]
/// format = "csv"              # auto | csv | json | poslog | ekasa | hr_fiscal | pohoda | eet | square (default auto)
/// encoding = "windows-1250"   # used when a file has no BOM and is not valid UTF-8
///
/// [receipts.csv]
/// delimiter = ";"             # omit to detect from the header line (; , or tab)
/// decimal_separator = ","     # omit to detect per number ("1 234,50", "1.234,56", "12.90")
/// date_formats = ["%d.%m.%Y %H:%M:%S"]   # tried before the built-in list
///
/// [receipts.csv.columns]      # receipt field = header name in the file
/// receipt_no = "Doklad"
/// date = "Datum"
/// time = "Čas"
/// name = "Název"
///
/// [receipts.pohoda]           # VAT percent per Czech VAT level (POHODA levels, EET dan1/dan2/dan3)
/// high = "21"
/// low = "12"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatSpec {
    pub format: FormatKind,
    /// WHATWG encoding label for files that are neither BOM-marked nor valid UTF-8.
    pub encoding: String,
    pub csv: CsvSpec,
    /// VAT percent per POHODA VAT level (`[receipts.pohoda] high = "21"`, `low = "12"`); also the
    /// rates of an EET record's `dan1` (high), `dan2` (low) and `dan3` (third).
    pub pohoda: PohodaSpec,
}

impl Default for FormatSpec {
    fn default() -> Self {
        FormatSpec {
            format: FormatKind::Auto,
            encoding: "windows-1250".into(),
            csv: CsvSpec::default(),
            pohoda: PohodaSpec::default(),
        }
    }
}

impl FormatSpec {
    /// Check the settings that serde cannot (encoding label, delimiter, separators). For config load.
    pub fn validate(&self) -> Result<(), ParseError> {
        text::legacy_encoding(&self.encoding)?;
        self.csv.validate()
    }
}

/// Where the receipts come from: fills the receipt fields the file does not carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseContext {
    pub store_id: StoreId,
    pub till_id: TillId,
    /// The program currency; a file naming another currency is an error.
    pub currency: Currency,
    /// Smallest cash amount (`Currency::cash_step`, or `cash_step` in agent.toml): differences up to
    /// half of it between total and lines become a rounding line.
    pub cash_step: Decimal,
    /// The till's time zone, for timestamps written without an offset (each resolved by the rules
    /// of its own date, see [`zone`]).
    pub zone: LocalZone,
}

/// What is wrong with a receipt file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line in the file.
    pub line: Option<usize>,
    /// The column / key / element / attribute.
    pub field: Option<String>,
    /// The offending value (card numbers masked, long values shortened).
    pub value: Option<String>,
    pub message: String,
}

impl ParseError {
    pub fn new(message: impl Into<String>) -> ParseError {
        ParseError {
            line: None,
            field: None,
            value: None,
            message: message.into(),
        }
    }

    pub fn line(mut self, line: impl Into<Option<usize>>) -> Self {
        self.line = line.into();
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The value, shortened to 60 characters.
    pub fn value(mut self, value: &str) -> Self {
        let mut v: String = value.chars().take(60).collect();
        if value.chars().nth(60).is_some() {
            v.push('…');
        }
        self.value = Some(v);
        self
    }

    /// A card number as the value: masked (first 4 / last 4 kept).
    pub fn card_value(mut self, raw: &str) -> Self {
        let raw: String = raw.trim().chars().take(40).collect();
        self.value = Some(mask_digits(&raw));
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(l) = self.line {
            parts.push(format!("line {l}"));
        }
        if let Some(fl) = &self.field {
            parts.push(format!("field `{fl}`"));
        }
        if let Some(v) = &self.value {
            parts.push(format!("value {v:?}"));
        }
        if parts.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", parts.join(", "), self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// One receipt of a multi-receipt file that could not be read: quarantined on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadReceipt {
    /// The receipt's number in the file, when it could be read.
    pub pos_receipt_no: Option<String>,
    pub error: ParseError,
    /// That receipt alone, as a file the same reader accepts (POSLog: the transaction inside the
    /// file's root element; CSV: the header and the receipt's rows; JSON: the array element).
    pub extract: String,
    /// File extension for the extract (`xml`, `csv`, `json`).
    pub ext: &'static str,
}

/// What one file yields, receipt by receipt.
#[derive(Clone, Debug, PartialEq)]
pub struct FileReceipts {
    /// The reader used.
    pub format: FormatKind,
    /// Why that reader (configured, or what detection saw).
    pub why: String,
    pub receipts: Vec<Receipt>,
    pub bad: Vec<BadReceipt>,
    /// Transactions that are not sales receipts and were skipped on purpose, with a count per kind
    /// (e.g. `("control", 3)`, `("training", 1)`).
    pub skipped: Vec<(&'static str, usize)>,
}

impl FileReceipts {
    fn new(format: FormatKind, why: String) -> FileReceipts {
        FileReceipts {
            format,
            why,
            receipts: Vec::new(),
            bad: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// One record read: its receipt taken, or set aside with what `aside` makes of it — its receipt
    /// number when that can be read, and its extract (a file the same reader accepts) — made only
    /// for a bad record.
    pub(crate) fn take(
        &mut self,
        read: Result<Receipt, ParseError>,
        ext: &'static str,
        aside: impl FnOnce() -> (Option<String>, String),
    ) {
        match read {
            Ok(r) => self.receipts.push(r),
            Err(error) => {
                let (pos_receipt_no, extract) = aside();
                self.bad.push(BadReceipt {
                    pos_receipt_no,
                    error,
                    extract,
                    ext,
                });
            }
        }
    }

    pub(crate) fn skip(&mut self, kind: &'static str) {
        match self.skipped.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.skipped.push((kind, 1)),
        }
    }

    /// `"3 control, 1 training"`, or empty.
    pub fn skipped_text(&self) -> String {
        self.skipped
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parse one export file into receipts (one file may hold several: CSV groups, POSLog transactions,
/// JSON arrays). `file_name` only helps detection (extension) — content decides. The first bad
/// receipt makes the whole call fail; the watcher uses [`parse_file_each`] to isolate it instead.
pub fn parse_file(
    spec: &FormatSpec,
    file_name: &str,
    bytes: &[u8],
    ctx: &ParseContext,
) -> Result<Vec<Receipt>, ParseError> {
    let mut all = parse_file_each(spec, file_name, bytes, ctx)?;
    match all.bad.is_empty() {
        true => Ok(all.receipts),
        false => Err(all.bad.swap_remove(0).error),
    }
}

/// Which reader reads this file, and why.
pub fn choose_reader(spec: &FormatSpec, file_name: &str, bytes: &[u8]) -> Result<(FormatKind, String), ParseError> {
    match spec.format {
        FormatKind::Auto => match sniff_why(bytes) {
            Some((name, why)) => Ok((FormatKind::from_name(name).unwrap_or(FormatKind::Auto), why)),
            None => Err(ParseError::new(format!(
                "cannot tell the receipt format of {file_name:?} (not CSV, protocol JSON, POSLog, eKasa, RacunZahtjev, POHODA, EET or Square); \
                 set [receipts] format in agent.toml"
            ))),
        },
        k => Ok((k, "set by [receipts] format".into())),
    }
}

/// Parse one export file receipt by receipt: an error that concerns one receipt (its totals, a
/// field of one transaction / row group / array element) lands in [`FileReceipts::bad`] with an
/// extract of that receipt; the others are returned. `Err` only when the file as a whole cannot be
/// read (encoding, malformed XML/CSV/JSON, no receipts structure).
pub fn parse_file_each(
    spec: &FormatSpec,
    file_name: &str,
    bytes: &[u8],
    ctx: &ParseContext,
) -> Result<FileReceipts, ParseError> {
    let legacy = text::legacy_encoding(&spec.encoding)?;
    let (kind, why) = choose_reader(spec, file_name, bytes)?;
    let mut out = FileReceipts::new(kind, why);
    // every reader reads text: a BOM's encoding, else UTF-8, else the XML declaration's, else
    // [receipts] encoding
    let (src, _) = text::decode(bytes, legacy)?;
    let src = src.as_ref();
    match kind {
        FormatKind::Csv => csv::parse_each(&spec.csv, src, ctx, &mut out)?,
        FormatKind::Json => json::parse_each(src, ctx, &mut out)?,
        FormatKind::Poslog => poslog::parse_each(src, ctx, &mut out)?,
        FormatKind::Ekasa => ekasa::parse_each(src, ctx, &mut out)?,
        FormatKind::HrFiscal => hr_fiscal::parse_each(src, ctx, &mut out)?,
        FormatKind::Pohoda => pohoda::parse_each(&spec.pohoda, src, ctx, &mut out)?,
        FormatKind::Eet => eet::parse_each(&spec.pohoda, src, ctx, &mut out)?,
        FormatKind::Square => square::parse_each(src, ctx, &mut out)?,
        FormatKind::Auto => return Err(ParseError::new("format detection failed")),
    }
    Ok(out)
}

/// Guess the format from content: `"csv" | "json" | "poslog" | "ekasa" | "hr_fiscal" | "pohoda" |
/// "eet" | "square"`, or `None`.
///
/// XML: by root element (`POSLog`/`Transaction` → poslog, `RacunZahtjev` and the other fiscal
/// requests → hr_fiscal, `RegisterReceiptRequest` → ekasa, `dataPack`/`prodejka` → pohoda, `Trzba` →
/// eet; a SOAP `Envelope` by the first of these names inside; a root of another name by the first
/// record element it holds, `Transaction` excepted).
/// JSON: a `pos_receipt_no` key → json; eKasa keys (`receiptType`, `paragonNumber`, `cashRegisterCode`,
/// or a `request` object holding them) → ekasa; a Square order (`order` / `orders` holding one, or an
/// object with `location_id` and `line_items` / `total_money`, or with `line_items` and a Money
/// `total_money` `{"amount": …}`) → square. Otherwise text whose first line has `;`, `,`, `|` or tab → csv.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    sniff_why(bytes).map(|(n, _)| n)
}

/// [`sniff`] with the reason, for `till-agent parse`.
pub fn sniff_why(bytes: &[u8]) -> Option<(&'static str, String)> {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let decoded = text::decode_lossy_head(head);
    let s = decoded.trim_start_matches('\u{feff}').trim_start();
    if s.starts_with('<') {
        return xml::sniff_root(s);
    }
    if s.starts_with('{') || s.starts_with('[') {
        return jtree::sniff(bytes).map(|n| {
            let why = match n {
                "json" => "JSON with a `pos_receipt_no` key (the protocol's receipt)",
                "square" => "JSON with a Square order (order / orders, location_id, line_items)",
                _ => "JSON with eKasa keys (receiptType / paragonNumber / cashRegisterCode)",
            };
            (n, why.to_string())
        });
    }
    if s.chars()
        .take(4096)
        .any(|c| c == '\0' || (c.is_control() && !matches!(c, '\r' | '\n' | '\t')))
    {
        return None;
    }
    let first = s.lines().next().unwrap_or("");
    for (d, name) in [
        (';', "semicolons"),
        ('\t', "tabs"),
        ('|', "vertical bars"),
        (',', "commas"),
    ] {
        if first.contains(d) {
            return Some(("csv", format!("text whose first line is separated by {name}")));
        }
    }
    None
}

/// A receipt as read from a file, before the shared checks of [`finish`].
#[derive(Debug)]
pub(crate) struct Draft {
    /// Line where the receipt starts (for receipt-level errors).
    pub line: Option<usize>,
    pub pos_receipt_no: String,
    pub issued_at: DateTime<FixedOffset>,
    /// None → the sum of the lines.
    pub total: Option<Decimal>,
    pub card: Option<CardId>,
    pub original: Option<OriginalReceipt>,
    pub lines: Vec<ReceiptLine>,
    pub vat: Vec<VatSummary>,
    /// An id the file carries, with its line.
    pub id: Option<(String, Option<usize>)>,
    /// How the file names the total, and its line (for the totals error).
    pub total_field: String,
    pub total_line: Option<usize>,
}

impl Draft {
    pub fn new(line: Option<usize>, pos_receipt_no: String, issued_at: DateTime<FixedOffset>) -> Draft {
        Draft {
            line,
            pos_receipt_no,
            issued_at,
            total: None,
            card: None,
            original: None,
            lines: Vec::new(),
            vat: Vec::new(),
            id: None,
            total_field: "total".into(),
            total_line: None,
        }
    }
}

/// The largest difference between total and lines settled by adding a rounding line: half the cash
/// step (in minor units, rounded down), at least 2 minor units (CZK step 1 → 0.50; EUR step 0.01 or
/// 0.05 → 0.02; HUF step 5 → 2.50).
pub(crate) fn cash_tolerance(ctx: &ParseContext) -> Decimal {
    let digits = ctx.currency.minor_digits();
    let half = (ctx.cash_step / Decimal::TWO).round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::ToZero);
    half.max(Decimal::new(2, digits))
}

/// Shared checks and normalisation: totals, return → original, id.
pub(crate) fn finish(mut d: Draft, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let at = d.line;
    if d.pos_receipt_no.trim().is_empty() {
        return Err(ParseError::new("receipt number is empty")
            .line(at)
            .field("pos_receipt_no"));
    }
    let mut sum = Decimal::ZERO;
    for l in &d.lines {
        sum = sum.checked_add(l.line_total).ok_or_else(|| {
            ParseError::new("sum of line totals overflows")
                .line(at)
                .field("line_total")
        })?;
    }
    let total = d.total.unwrap_or(sum);
    if !d.lines.is_empty() {
        let diff = total
            .checked_sub(sum)
            .ok_or_else(|| ParseError::new("total minus lines overflows").line(at).field("total"))?;
        let has_rounding = d.lines.iter().any(|l| l.kind == LineKind::Rounding);
        if !diff.is_zero() {
            let tol = if has_rounding {
                Decimal::new(1, 2)
            } else {
                cash_tolerance(ctx)
            };
            if diff.abs() > tol {
                return Err(ParseError::new(format!(
                    "total {total} does not match the sum of the lines {sum} (difference {diff}; at most {tol} is accepted as rounding)"
                ))
                .line(d.total_line.or(at))
                .field(d.total_field.clone())
                .value(&total.to_string()));
            }
            if !has_rounding {
                d.lines.push(ReceiptLine {
                    sku: None,
                    name: "cash rounding".into(),
                    category: None,
                    quantity: Decimal::ONE,
                    unit_price: diff,
                    line_total: diff,
                    vat_rate: None,
                    kind: LineKind::Rounding,
                });
            }
        }
    }
    if d.original.is_none() && d.lines.iter().any(|l| l.kind == LineKind::Return) {
        return Err(
            ParseError::new("receipt has return lines but no reference to the original receipt")
                .line(at)
                .field("original"),
        );
    }
    let id = ReceiptId::derive(&ctx.store_id, &ctx.till_id, &d.pos_receipt_no, &d.issued_at);
    if let Some((given, line)) = &d.id {
        if given.trim() != id.as_str() {
            return Err(ParseError::new(format!(
                "id differs from the id derived from store, till, receipt number and time ({id}); omit `id` or send the derived one"
            ))
            .line(*line)
            .field("id")
            .value(given));
        }
    }
    Ok(Receipt {
        id,
        store_id: ctx.store_id.clone(),
        till_id: ctx.till_id.clone(),
        pos_receipt_no: d.pos_receipt_no.trim().to_string(),
        issued_at: d.issued_at,
        currency: ctx.currency,
        total,
        card: d.card,
        original: d.original,
        lines: d.lines,
        vat: d.vat,
    })
}

/// Normalise a card number found in a file; the error shows it masked.
pub(crate) fn card(raw: &str, line: Option<usize>, field: &str) -> Result<Option<CardId>, ParseError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    CardId::normalise(raw).map(Some).map_err(|e| {
        ParseError::new(format!("not a card number: {e}"))
            .line(line)
            .field(field)
            .card_value(raw)
    })
}

/// A currency named in a file must be the program's.
pub(crate) fn check_currency(
    raw: &str,
    ctx: &ParseContext,
    line: Option<usize>,
    field: &str,
) -> Result<(), ParseError> {
    if raw.trim().is_empty() {
        return Ok(());
    }
    match Currency::parse(raw) {
        Some(c) if c == ctx.currency => Ok(()),
        Some(_) | None => Err(
            ParseError::new(format!("currency is not this program's currency {}", ctx.currency))
                .line(line)
                .field(field)
                .value(raw),
        ),
    }
}

/// Build a line with the protocol's sign conventions from a kind (if the file says) and the file's
/// numbers. Without an explicit kind (or "sale"): negative quantity → return; positive quantity
/// with a negative total → discount. An explicit return/sale is
/// given return signs (−qty, −total, +unit); a discount gets −total and −unit; a rounding line keeps
/// its sign. The missing one of unit price / line total is computed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_line(
    kind: Option<LineKind>,
    name: String,
    sku: Option<String>,
    category: Option<String>,
    quantity: Option<Decimal>,
    unit_price: Option<Decimal>,
    line_total: Option<Decimal>,
    vat_rate: Option<Decimal>,
) -> Result<ReceiptLine, ParseError> {
    let q = quantity.unwrap_or(Decimal::ONE);
    let overflow = || ParseError::new("amount out of range").field("line_total");
    let total = match (line_total, unit_price) {
        (Some(t), _) => t,
        (None, Some(u)) => q.checked_mul(u).ok_or_else(overflow)?.round_dp(2),
        (None, None) => {
            return Err(ParseError::new("line has neither a unit price nor a line total").field("line_total"))
        }
    };
    let neg = |d: Decimal| d.is_sign_negative() && !d.is_zero();
    let kind = match kind {
        Some(LineKind::Sale) | None if neg(q) => LineKind::Return,
        Some(LineKind::Sale) | None if neg(total) => LineKind::Discount,
        Some(k) => k,
        None => LineKind::Sale,
    };
    let (q, total) = match kind {
        LineKind::Sale => (q, total),
        LineKind::Return => (-q.abs(), -total.abs()),
        LineKind::Discount => (q.abs(), -total.abs()),
        LineKind::Rounding => (Decimal::ONE, total),
    };
    let unit = match unit_price {
        _ if kind == LineKind::Rounding => total,
        Some(u) if kind == LineKind::Return => u.abs(),
        Some(u) if kind == LineKind::Discount => -u.abs(),
        Some(u) => u,
        None if q.is_zero() => total,
        None => total.checked_div(q).ok_or_else(overflow)?.round_dp(6),
    };
    Ok(ReceiptLine {
        sku,
        name,
        category,
        quantity: q,
        unit_price: unit,
        line_total: total,
        vat_rate,
        kind,
    })
}
