//! `till-agent formats suggest FILE`: guess how to read an unknown CSV export — encoding, delimiter,
//! decimal separator and the column mapping — from its header and its values, and print the
//! `[receipts]` section for agent.toml.
//!
//! - Encoding: a BOM, else valid UTF-8, else Windows-1250 or ISO-8859-2, told apart by the bytes of
//!   Š š Ž ž Ť ť Ś ś Ź ź (they differ between the two; Windows-1250 when in doubt — what Czech and
//!   Slovak Windows POS software writes).
//! - Delimiter: the one of `;` tab `|` `,` that splits the header and the first rows into the same
//!   number (≥ 2) of fields.
//! - Columns: header names (case, accents, spaces and punctuation ignored) against the names Czech,
//!   Slovak, Croatian and English exports use for each receipt field; an exact name beats a name
//!   that merely contains one. Unmatched columns whose values are all dates become the date.
//! - Decimal separator: from the values of the amount columns (`12,50` → `,`; `1.234,50` → `,`;
//!   `12.50` → `.`).

use std::fmt::Write as _;

use super::csv::{CsvColumns, CsvSpec};
use super::text::decode;
use super::{FormatKind, FormatSpec, ParseError};

/// The guess, with what it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub spec: FormatSpec,
    /// One line per decision (what was seen) and per column left unmapped.
    pub notes: Vec<String>,
}

/// Receipt field → names exports use (already normalised: lower case, no accents, no spaces).
const NAMES: &[(&str, &[&str])] = &[
    (
        "receipt_no",
        &[
            "doklad",
            "cislodokladu",
            "cdokladu",
            "uctenka",
            "cislouctenky",
            "blocek",
            "bon",
            "receipt",
            "receiptno",
            "receiptnumber",
            "posreceiptno",
            "racun",
            "brojracuna",
            "brracuna",
            "paragon",
            "transaction",
            "transactionid",
            "invoice",
            "ucet",
        ],
    ),
    (
        "issued_at",
        &[
            "datumacas",
            "datumcas",
            "datetime",
            "timestamp",
            "issuedat",
            "vystaveno",
            "datumvrijeme",
        ],
    ),
    ("date", &["datum", "date", "den", "dan", "datumprodeje", "datumpredaja"]),
    ("time", &["cas", "time", "vrijeme", "hodina"]),
    (
        "total",
        &[
            "celkemdokladu",
            "celkomdokladu",
            "sumadokladu",
            "sumauctenky",
            "celkemuctenky",
            "totalreceipt",
            "receipttotal",
            "ukupno",
            "ukupnoracun",
            "celkovacastka",
            "grandtotal",
            "doklad celkem",
        ],
    ),
    (
        "card",
        &[
            "karta",
            "card",
            "vernostnikarta",
            "zakaznickakarta",
            "loyaltycard",
            "cardno",
            "kartica",
        ],
    ),
    (
        "original_receipt_no",
        &[
            "puvodnidoklad",
            "povodnydoklad",
            "original",
            "originalreceipt",
            "refdoklad",
        ],
    ),
    ("currency", &["mena", "currency", "valuta"]),
    (
        "sku",
        &[
            "kod",
            "sku",
            "ean",
            "plu",
            "sifra",
            "itemid",
            "artikl",
            "kodzbozi",
            "kodtovaru",
            "barcode",
        ],
    ),
    (
        "name",
        &[
            "nazev",
            "nazov",
            "name",
            "polozka",
            "zbozi",
            "tovar",
            "naziv",
            "popis",
            "description",
            "item",
            "artikel",
            "nazevpolozky",
            "nazovpolozky",
        ],
    ),
    (
        "category",
        &[
            "kategorie",
            "kategoria",
            "category",
            "skupina",
            "grupa",
            "oddeleni",
            "department",
        ],
    ),
    (
        "quantity",
        &["mnozstvi", "mnozstvo", "qty", "quantity", "ks", "kolicina", "pocet"],
    ),
    (
        "unit_price",
        &[
            "cena",
            "jednotkovacena",
            "jedncena",
            "cenazaks",
            "unitprice",
            "price",
            "cijena",
            "jcena",
        ],
    ),
    (
        "line_total",
        &[
            "celkem",
            "spolu",
            "celkom",
            "linetotal",
            "amount",
            "iznos",
            "suma",
            "cenacelkem",
            "total",
        ],
    ),
    (
        "vat_rate",
        &[
            "dph",
            "sazbadph",
            "sadzbadph",
            "vat",
            "vatrate",
            "pdv",
            "stopa",
            "dphpercent",
            "dph%",
        ],
    ),
    ("kind", &["typ", "type", "kind", "druh", "vrsta"]),
];

/// Lower case, accents dropped (Czech/Slovak/Croatian letters), only letters, digits and `%`.
fn norm(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'ä' => 'a',
            'č' | 'ć' => 'c',
            'ď' | 'đ' => 'd',
            'é' | 'ě' => 'e',
            'í' => 'i',
            'ĺ' | 'ľ' => 'l',
            'ň' => 'n',
            'ó' | 'ô' | 'ö' => 'o',
            'ř' | 'ŕ' => 'r',
            'š' => 's',
            'ť' => 't',
            'ú' | 'ů' | 'ü' => 'u',
            'ý' => 'y',
            'ž' => 'z',
            c => c,
        })
        .filter(|c| c.is_alphanumeric() || *c == '%')
        .collect()
}

fn guess_encoding(bytes: &[u8]) -> (&'static str, String) {
    if encoding_rs::Encoding::for_bom(bytes).is_some() {
        return ("utf-8", "byte-order mark".into());
    }
    if std::str::from_utf8(bytes).is_ok() {
        return ("utf-8", "valid UTF-8".into());
    }
    // Š š Ž ž Ť ť Ś ś Ź ź: Windows-1250 vs ISO-8859-2 byte values.
    const CP1250: &[u8] = &[0x8A, 0x9A, 0x8E, 0x9E, 0x8D, 0x9D, 0x8C, 0x9C, 0x8F, 0x9F];
    const ISO: &[u8] = &[0xA9, 0xB9, 0xAE, 0xBE, 0xAB, 0xBB, 0xA6, 0xB6, 0xAC, 0xBC];
    let cp = bytes.iter().filter(|b| CP1250.contains(b)).count();
    let iso = bytes.iter().filter(|b| ISO.contains(b)).count();
    if iso > cp {
        (
            "iso-8859-2",
            format!("not UTF-8; {iso} bytes of Š/š/Ž/ž/Ť/ť as ISO-8859-2 writes them"),
        )
    } else {
        (
            "windows-1250",
            format!("not UTF-8; {cp} bytes of Š/š/Ž/ž/Ť/ť as Windows-1250 writes them"),
        )
    }
}

fn split(line: &str, d: char) -> Vec<String> {
    let mut r = ::csv::ReaderBuilder::new()
        .delimiter(d as u8)
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    r.records()
        .next()
        .and_then(Result::ok)
        .map(|rec| rec.iter().map(str::to_string).collect())
        .unwrap_or_default()
}

fn looks_like_date(v: &str) -> bool {
    let v = v.trim();
    ["%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%d. %m. %Y"]
        .iter()
        .any(|f| chrono::NaiveDate::parse_from_str(v, f).is_ok())
}

/// Guess the `[receipts]` settings for a CSV export.
pub fn suggest(bytes: &[u8]) -> Result<Suggestion, ParseError> {
    let mut notes = Vec::new();
    let (enc_label, why) = guess_encoding(bytes);
    notes.push(format!("encoding {enc_label}: {why}"));
    let legacy = super::text::legacy_encoding(enc_label)?;
    let (src, _) = decode(bytes, legacy)?;
    let src = src.trim_start_matches('\u{feff}');
    let lines: Vec<&str> = src.lines().filter(|l| !l.trim().is_empty()).take(51).collect();
    let header = *lines
        .first()
        .ok_or_else(|| ParseError::new("the file is empty").line(1))?;
    let delim = [';', '\t', '|', ',']
        .into_iter()
        .find(|d| {
            let n = split(header, *d).len();
            n >= 2 && lines.iter().skip(1).take(20).all(|l| split(l, *d).len() == n)
        })
        .ok_or_else(|| {
            ParseError::new("no delimiter (; tab | ,) splits the header and the rows into the same number of fields")
                .line(1)
                .value(header)
        })?;
    notes.push(format!(
        "delimiter {:?}: the header and the rows split into {} fields",
        delim,
        split(header, delim).len()
    ));
    let heads = split(header, delim);
    let rows: Vec<Vec<String>> = lines.iter().skip(1).map(|l| split(l, delim)).collect();
    let column = |i: usize| {
        rows.iter()
            .filter_map(move |r| r.get(i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };

    // Header names → fields: best score first (2 exact, 1 contains), each header used once.
    let normed: Vec<String> = heads.iter().map(|h| norm(h)).collect();
    let mut cands: Vec<(u8, usize, usize, &'static str)> = Vec::new(); // (score, name len, header, field)
    for (field, names) in NAMES {
        for (i, h) in normed.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            for n in names.iter() {
                let n = norm(n);
                if *h == n {
                    cands.push((2, n.len(), i, field));
                } else if n.len() >= 3 && h.contains(&n) {
                    cands.push((1, n.len(), i, field));
                }
            }
        }
    }
    cands.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut chosen: Vec<(&'static str, usize)> = Vec::new();
    for (_, _, i, field) in cands {
        if chosen.iter().any(|(f, j)| *f == field || *j == i) {
            continue;
        }
        chosen.push((field, i));
    }
    // A date-valued column nobody claimed is the date.
    if !chosen.iter().any(|(f, _)| matches!(*f, "date" | "issued_at")) {
        if let Some(i) = (0..heads.len()).find(|i| {
            !chosen.iter().any(|(_, j)| j == i) && column(*i).next().is_some() && column(*i).all(looks_like_date)
        }) {
            notes.push(format!("column {:?} holds dates: the date", heads[i]));
            chosen.push(("date", i));
        }
    }
    let mut cols = CsvColumns::default();
    for (field, i) in &chosen {
        let h = Some(heads[*i].trim().to_string());
        match *field {
            "receipt_no" => cols.receipt_no = h,
            "issued_at" => cols.issued_at = h,
            "date" => cols.date = h,
            "time" => cols.time = h,
            "total" => cols.total = h,
            "card" => cols.card = h,
            "original_receipt_no" => cols.original_receipt_no = h,
            "currency" => cols.currency = h,
            "sku" => cols.sku = h,
            "name" => cols.name = h,
            "category" => cols.category = h,
            "quantity" => cols.quantity = h,
            "unit_price" => cols.unit_price = h,
            "line_total" => cols.line_total = h,
            "vat_rate" => cols.vat_rate = h,
            "kind" => cols.kind = h,
            _ => {}
        }
    }
    for (i, h) in heads.iter().enumerate() {
        if !chosen.iter().any(|(_, j)| *j == i) {
            notes.push(format!("column {h:?} not mapped (not a receipt field the agent reads)"));
        }
    }
    if cols.receipt_no.is_none() {
        notes.push("no receipt-number column recognised: map receipt_no by hand".into());
    }

    // Decimal separator from the amount columns' values.
    let amount_cols: Vec<usize> = chosen
        .iter()
        .filter(|(f, _)| matches!(*f, "quantity" | "unit_price" | "line_total" | "total" | "vat_rate"))
        .map(|(_, i)| *i)
        .collect();
    let (mut comma, mut dot) = (0, 0);
    for i in amount_cols {
        for v in column(i) {
            let v: String = v.chars().filter(|c| !c.is_whitespace() && *c != '\u{a0}').collect();
            match (v.rfind(','), v.rfind('.')) {
                (Some(c), Some(d)) if c > d => comma += 1,
                (Some(_), Some(_)) => dot += 1,
                (Some(c), None) if v.len() - c - 1 != 3 || v[..c].contains(',') => comma += 1,
                (None, Some(d)) if v.len() - d - 1 != 3 || v[..d].contains('.') => dot += 1,
                _ => {}
            }
        }
    }
    let decimal_separator = match (comma, dot) {
        (0, 0) => None,
        (c, d) if c >= d => Some(','),
        _ => Some('.'),
    };
    match decimal_separator {
        Some(d) => notes.push(format!(
            "decimal separator {d:?}: {comma} amounts with a decimal comma, {dot} with a decimal point"
        )),
        None => notes.push("decimal separator not decided (no decimals seen): detected per number".into()),
    }
    let spec = FormatSpec {
        format: FormatKind::Csv,
        encoding: enc_label.to_string(),
        csv: CsvSpec {
            delimiter: Some(delim),
            decimal_separator,
            date_formats: Vec::new(),
            columns: cols,
        },
        ..FormatSpec::default()
    };
    Ok(Suggestion { spec, notes })
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Suggestion {
    /// The `[receipts]` section to paste into agent.toml (notes as comments).
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Suggested by `till-agent formats suggest`; check with `till-agent parse --receipts <this file> FILE`.\n",
        );
        for n in &self.notes {
            let _ = writeln!(out, "# {n}");
        }
        let s = &self.spec;
        let _ = writeln!(
            out,
            "[receipts]\nformat = \"csv\"\nencoding = {}",
            toml_str(&s.encoding)
        );
        let _ = writeln!(out, "\n[receipts.csv]");
        if let Some(d) = s.csv.delimiter {
            let _ = writeln!(out, "delimiter = {}", toml_str(&d.to_string()));
        }
        if let Some(d) = s.csv.decimal_separator {
            let _ = writeln!(out, "decimal_separator = {}", toml_str(&d.to_string()));
        }
        let _ = writeln!(out, "\n[receipts.csv.columns]");
        let c = &s.csv.columns;
        for (field, v) in [
            ("receipt_no", &c.receipt_no),
            ("issued_at", &c.issued_at),
            ("date", &c.date),
            ("time", &c.time),
            ("total", &c.total),
            ("card", &c.card),
            ("original_receipt_no", &c.original_receipt_no),
            ("currency", &c.currency),
            ("sku", &c.sku),
            ("name", &c.name),
            ("category", &c.category),
            ("quantity", &c.quantity),
            ("unit_price", &c.unit_price),
            ("line_total", &c.line_total),
            ("vat_rate", &c.vat_rate),
            ("kind", &c.kind),
        ] {
            if let Some(h) = v {
                let _ = writeln!(out, "{field} = {}", toml_str(h));
            }
        }
        out
    }
}
