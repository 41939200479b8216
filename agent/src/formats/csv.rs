//! CSV exports with a configurable column mapping, as Czech, Slovak and Croatian POS systems write
//! them: `;` or `,` delimiter, decimal comma (`1 234,50`), Windows-1250 or UTF-8 with/without BOM.
//!
//! Layout: a header row, then **one row per receipt line**. Receipt-level columns (receipt number,
//! date/time, total, card, original receipt, currency) repeat on each row or are given on the first
//! row of the receipt only. Consecutive rows with the same receipt number form one receipt, so a file
//! may hold one receipt or a whole day. Rows of one receipt must be together; a receipt-level value
//! that differs between rows of the same receipt is an error.
//!
//! Columns are mapped by header name (`[receipts.csv.columns]`, matched case-insensitively). An
//! unmapped field falls back to a header with the field's own name (`receipt_no`, `name`, …); a
//! mapped header missing from the file is an error. Required: `receipt_no`, `name`, `issued_at` or
//! `date` (+ optional `time`), and `unit_price` or `line_total`. Missing `quantity` means 1; missing
//! `total` means the sum of the lines.
//!
//! Line kind: a `kind` column (sale/return/discount/rounding, also `K`/`V`/`Z`, `prodej`, `vratka`,
//! `sleva`, `zľava`, `popust`, `zaokrouhlení`, …). Without it: a name starting with
//! `zaokrouhl`/`zaokrúhl`/`zaokruž`/`rounding` is a rounding line, a negative quantity a return, a
//! negative total with positive quantity a discount.

use std::collections::HashMap;

use protocol::v1::{LineKind, OriginalReceipt, Receipt};
use serde::{Deserialize, Serialize};

use super::text::{normalise_vat, parse_datetime, parse_decimal};
use super::{card, check_currency, finish, make_line, Draft, FileReceipts, ParseContext, ParseError};

/// `[receipts.csv]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvSpec {
    /// `;`, `,` or tab; omitted → detected from the header line.
    pub delimiter: Option<char>,
    /// `,` or `.`; omitted → detected per number.
    pub decimal_separator: Option<char>,
    /// chrono `strftime` formats tried before the built-in ones (`%d.%m.%Y %H:%M:%S`, ISO, …).
    pub date_formats: Vec<String>,
    pub columns: CsvColumns,
}

/// `[receipts.csv.columns]`: receipt field → header name in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvColumns {
    pub receipt_no: Option<String>,
    pub issued_at: Option<String>,
    pub date: Option<String>,
    pub time: Option<String>,
    pub total: Option<String>,
    pub card: Option<String>,
    pub original_receipt_no: Option<String>,
    pub currency: Option<String>,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub quantity: Option<String>,
    pub unit_price: Option<String>,
    pub line_total: Option<String>,
    pub vat_rate: Option<String>,
    pub kind: Option<String>,
}

impl CsvColumns {
    fn configured(&self) -> [(&'static str, Option<&str>); 16] {
        [
            ("receipt_no", self.receipt_no.as_deref()),
            ("issued_at", self.issued_at.as_deref()),
            ("date", self.date.as_deref()),
            ("time", self.time.as_deref()),
            ("total", self.total.as_deref()),
            ("card", self.card.as_deref()),
            ("original_receipt_no", self.original_receipt_no.as_deref()),
            ("currency", self.currency.as_deref()),
            ("sku", self.sku.as_deref()),
            ("name", self.name.as_deref()),
            ("category", self.category.as_deref()),
            ("quantity", self.quantity.as_deref()),
            ("unit_price", self.unit_price.as_deref()),
            ("line_total", self.line_total.as_deref()),
            ("vat_rate", self.vat_rate.as_deref()),
            ("kind", self.kind.as_deref()),
        ]
    }
}

impl CsvSpec {
    pub(crate) fn validate(&self) -> Result<(), ParseError> {
        if let Some(d) = self.delimiter {
            if !matches!(d, ';' | ',' | '\t' | '|') {
                return Err(ParseError::new("CSV delimiter must be ; , | or a tab")
                    .field("csv.delimiter")
                    .value(&d.to_string()));
            }
        }
        if let Some(d) = self.decimal_separator {
            if !matches!(d, ',' | '.') {
                return Err(ParseError::new("decimal separator must be , or .")
                    .field("csv.decimal_separator")
                    .value(&d.to_string()));
            }
        }
        Ok(())
    }
}

/// Resolved columns: field → (index, header as written in the file).
struct Cols(HashMap<&'static str, (usize, String)>);

impl Cols {
    fn has(&self, f: &str) -> bool {
        self.0.contains_key(f)
    }

    /// Trimmed non-empty cell.
    fn get<'r>(&self, rec: &'r ::csv::StringRecord, f: &str) -> Option<&'r str> {
        let (i, _) = self.0.get(f)?;
        rec.get(*i).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Error field name: the file's header with the receipt field (`Množství (quantity)`).
    fn label(&self, f: &str) -> String {
        match self.0.get(f) {
            Some((_, h)) if h != f => format!("{h} ({f})"),
            _ => f.to_string(),
        }
    }
}

fn detect_delimiter(first_line: &str) -> u8 {
    let count = |c: char| first_line.matches(c).count();
    let (semi, comma, tab, bar) = (count(';'), count(','), count('\t'), count('|'));
    if tab > semi && tab > comma && tab >= bar {
        b'\t'
    } else if bar > semi && bar > comma {
        b'|'
    } else if comma > semi {
        b','
    } else {
        b';'
    }
}

fn kind_word(raw: &str) -> Option<LineKind> {
    let w = raw.trim().to_lowercase();
    Some(match w.as_str() {
        "sale" | "s" | "k" | "prodej" | "predaj" | "prodaja" | "položka" | "polozka" | "item" => LineKind::Sale,
        "return" | "r" | "v" | "vratka" | "vrácení" | "vraceni" | "vrátenie" | "vratenie" | "povrat" | "storno" => {
            LineKind::Return
        }
        "discount" | "d" | "z" | "sleva" | "zľava" | "zlava" | "popust" | "rabat" => LineKind::Discount,
        "rounding" | "zaokrouhlení" | "zaokrouhleni" | "zaokrúhlenie" | "zaokruhlenie" | "zaokruživanje"
        | "zaokruzivanje" => LineKind::Rounding,
        _ => return None,
    })
}

fn is_rounding_name(name: &str) -> bool {
    let n = name.trim().to_lowercase();
    ["zaokrouhl", "zaokrúhl", "zaokruhl", "zaokruž", "zaokruz", "rounding"]
        .iter()
        .any(|p| n.starts_with(p))
}

/// Receipt-level values of the group being read; the first non-empty value of each wins.
#[derive(Default)]
struct Head {
    values: HashMap<&'static str, (String, usize)>,
}

const HEAD_FIELDS: &[&str] = &[
    "issued_at",
    "date",
    "time",
    "total",
    "card",
    "original_receipt_no",
    "currency",
];

struct Group {
    no: String,
    line: usize,
    head: Head,
    rows: Vec<(usize, ::csv::StringRecord)>,
}

/// All receipts of a CSV file, receipt by receipt: a receipt whose rows fail (totals, a value) goes to
/// `out.bad` with the header line and its rows as the extract; row-structure errors (field counts,
/// rows of a receipt not together, head fields that differ within a receipt) fail the file.
pub(crate) fn parse_each(
    spec: &CsvSpec,
    src: &str,
    ctx: &ParseContext,
    out: &mut FileReceipts,
) -> Result<(), ParseError> {
    spec.validate()?;
    let src = src.trim_start_matches('\u{feff}');
    let delim = match spec.delimiter {
        Some(d) => d as u8,
        None => detect_delimiter(src.lines().next().unwrap_or("")),
    };
    let mut rdr = ::csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(true)
        .flexible(false)
        .from_reader(src.as_bytes());
    let csv_err = |e: ::csv::Error| {
        let line = e.position().map(|p| p.line() as usize);
        let msg = match e.kind() {
            ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!(
                    "row has {len} fields but the header has {expected_len} (delimiter {:?})",
                    delim as char
                )
            }
            _ => format!("malformed CSV: {e}"),
        };
        ParseError::new(msg).line(line)
    };
    let headers = rdr.headers().map_err(csv_err)?.clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(ParseError::new("file is empty or has no header row").line(1));
    }
    let cols = resolve(&spec.columns, &headers)?;

    let mut groups: Vec<Group> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let no = cols
            .get(&rec, "receipt_no")
            .ok_or_else(|| {
                ParseError::new("receipt number is empty")
                    .line(line)
                    .field(cols.label("receipt_no"))
            })?
            .to_string();
        let same = groups.last().is_some_and(|g| g.no == no);
        if !same {
            if let Some(first) = seen.get(&no) {
                return Err(ParseError::new(format!(
                    "rows of receipt {no} are not together (the receipt started on line {first})"
                ))
                .line(line)
                .field(cols.label("receipt_no"))
                .value(&no));
            }
            seen.insert(no.clone(), line);
            groups.push(Group {
                no: no.clone(),
                line,
                head: Head::default(),
                rows: Vec::new(),
            });
        }
        let g = groups.last_mut().expect("a group was just pushed or matched");
        for f in HEAD_FIELDS {
            if let Some(v) = cols.get(&rec, f) {
                match g.head.values.get(f) {
                    Some((prev, prev_line)) if prev != v => {
                        let shown = |s: &str| {
                            if *f == "card" {
                                protocol::ids::mask_digits(s)
                            } else {
                                s.to_string()
                            }
                        };
                        let e = ParseError::new(format!(
                            "receipt {no} has {:?} here but {:?} on line {prev_line}",
                            shown(v),
                            shown(prev)
                        ))
                        .line(line)
                        .field(cols.label(f));
                        return Err(if *f == "card" { e.card_value(v) } else { e.value(v) });
                    }
                    Some(_) => {}
                    None => {
                        g.head.values.insert(f, (v.to_string(), line));
                    }
                }
            }
        }
        g.rows.push((line, rec));
    }
    if groups.is_empty() {
        return Err(ParseError::new("no receipt rows after the header").line(2));
    }
    let text_lines: Vec<&str> = src.lines().collect();
    let header_line = text_lines.first().copied().unwrap_or("");
    for g in groups {
        let no = g.no.clone();
        let mut extract = String::from(header_line);
        extract.push('\n');
        for (line, _) in &g.rows {
            extract.push_str(text_lines.get(line.saturating_sub(1)).copied().unwrap_or(""));
            extract.push('\n');
        }
        out.take(receipt(spec, &cols, g, ctx), "csv", || (Some(no), extract));
    }
    Ok(())
}

/// The header's columns for an error message, at most 300 characters (a file that is not CSV at all
/// has one huge "column").
fn columns_list(headers: &::csv::StringRecord) -> String {
    let all = headers.iter().map(str::trim).collect::<Vec<_>>().join(", ");
    match all.char_indices().nth(300) {
        Some((i, _)) => format!("{}…; `till-agent formats suggest FILE` guesses a mapping", &all[..i]),
        None => all,
    }
}

fn resolve(map: &CsvColumns, headers: &::csv::StringRecord) -> Result<Cols, ParseError> {
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut cols = HashMap::new();
    for (field, configured) in map.configured() {
        let want = configured.unwrap_or(field);
        match names.iter().position(|h| *h == want.trim().to_lowercase()) {
            Some(i) => {
                cols.insert(field, (i, headers.get(i).unwrap_or(field).trim().to_string()));
            }
            None if configured.is_some() => {
                return Err(ParseError::new(format!(
                    "mapped column not found in the header (columns: {})",
                    columns_list(headers)
                ))
                .line(1)
                .field(format!("csv.columns.{field}"))
                .value(want))
            }
            None => {}
        }
    }
    let cols = Cols(cols);
    let missing = |f: &str| {
        ParseError::new(format!(
            "required column is missing; map it in [receipts.csv.columns] (columns: {})",
            columns_list(headers)
        ))
        .line(1)
        .field(format!("csv.columns.{f}"))
    };
    for f in ["receipt_no", "name"] {
        if !cols.has(f) {
            return Err(missing(f));
        }
    }
    if !cols.has("issued_at") && !cols.has("date") {
        return Err(missing("issued_at"));
    }
    if !cols.has("unit_price") && !cols.has("line_total") {
        return Err(missing("line_total"));
    }
    Ok(cols)
}

fn receipt(spec: &CsvSpec, cols: &Cols, g: Group, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let head = |f: &str| g.head.values.get(f).map(|(v, l)| (v.as_str(), *l));
    let dec_of = |raw: &str, line: usize, f: &str| {
        parse_decimal(raw, spec.decimal_separator).ok_or_else(|| {
            ParseError::new("not a number")
                .line(line)
                .field(cols.label(f))
                .value(raw)
        })
    };
    let (at_raw, at_line, at_field) = match (head("issued_at"), head("date"), head("time")) {
        (Some((v, l)), _, _) => (v.to_string(), l, "issued_at"),
        (None, Some((d, l)), Some((t, _))) => (format!("{d} {t}"), l, "date"),
        (None, Some((d, l)), None) => (d.to_string(), l, "date"),
        (None, None, _) => {
            let f = if cols.has("issued_at") { "issued_at" } else { "date" };
            return Err(ParseError::new(format!("receipt {} has no date", g.no))
                .line(g.line)
                .field(cols.label(f)));
        }
    };
    let issued_at = parse_datetime(&at_raw, &spec.date_formats, &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date-time (add its format to [receipts.csv] date_formats)")
            .line(at_line)
            .field(cols.label(at_field))
            .value(&at_raw)
    })?;
    let mut d = Draft::new(Some(g.line), g.no.clone(), issued_at);
    if let Some((v, l)) = head("total") {
        d.total = Some(dec_of(v, l, "total")?);
        (d.total_field, d.total_line) = (cols.label("total"), Some(l));
    }
    if let Some((v, l)) = head("card") {
        d.card = card(v, Some(l), &cols.label("card"))?;
    }
    if let Some((v, _)) = head("original_receipt_no") {
        d.original = Some(OriginalReceipt {
            receipt_id: None,
            pos_receipt_no: Some(v.to_string()),
        });
    }
    if let Some((v, l)) = head("currency") {
        check_currency(v, ctx, Some(l), &cols.label("currency"))?;
    }
    for (line, rec) in &g.rows {
        let line = *line;
        let opt_dec = |f: &str| cols.get(rec, f).map(|v| dec_of(v, line, f)).transpose();
        let name = cols
            .get(rec, "name")
            .ok_or_else(|| {
                ParseError::new("item name is empty")
                    .line(line)
                    .field(cols.label("name"))
            })?
            .to_string();
        let kind = match cols.get(rec, "kind") {
            Some(k) => Some(kind_word(k).ok_or_else(|| {
                ParseError::new("unknown line kind (expected sale, return, discount, rounding or K/V/Z)")
                    .line(line)
                    .field(cols.label("kind"))
                    .value(k)
            })?),
            None if is_rounding_name(&name) => Some(LineKind::Rounding),
            None => None,
        };
        let vat_rate = match cols.get(rec, "vat_rate") {
            Some(v) => {
                let raw = v.trim_end_matches('%');
                let r = dec_of(raw, line, "vat_rate")?;
                Some(normalise_vat(r).ok_or_else(|| {
                    ParseError::new("VAT rate out of range (0–100 %)")
                        .line(line)
                        .field(cols.label("vat_rate"))
                        .value(v)
                })?)
            }
            None => None,
        };
        let (unit, total) = (opt_dec("unit_price")?, opt_dec("line_total")?);
        if unit.is_none() && total.is_none() {
            return Err(ParseError::new("line has neither a unit price nor a line total")
                .line(line)
                .field(cols.label("line_total")));
        }
        let qty = opt_dec("quantity")?;
        let l = make_line(
            kind,
            name,
            cols.get(rec, "sku").map(str::to_string),
            cols.get(rec, "category").map(str::to_string),
            qty,
            unit,
            total,
            vat_rate,
        )
        .map_err(|e| e.line(line))?;
        if let (Some(_), Some(_)) = (unit, total) {
            if matches!(l.kind, LineKind::Sale | LineKind::Return) {
                let expect = l.quantity.checked_mul(l.unit_price);
                let off = expect.and_then(|x| x.checked_sub(l.line_total)).map(|x| x.abs());
                if off.is_none_or(|x| x > rust_decimal::Decimal::new(1, 2)) {
                    return Err(ParseError::new(format!(
                        "line total is not quantity × unit price ({} × {} = {})",
                        l.quantity,
                        l.unit_price,
                        expect.map(|x| x.to_string()).unwrap_or_else(|| "out of range".into())
                    ))
                    .line(line)
                    .field(cols.label("line_total"))
                    .value(cols.get(rec, "line_total").unwrap_or("")));
                }
            }
        }
        d.lines.push(l);
    }
    finish(d, ctx)
}
