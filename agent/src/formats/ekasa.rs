//! Slovak eKasa receipt registration, XML (`RegisterReceiptRequest/ReceiptData/Items/Item`, the
//! Financial Administration's schema, also inside a SOAP envelope) or JSON (eKasa cloud/ORP APIs:
//! `{"request": {...}}` or the request object itself, camelCase keys). Detected by content.
//!
//! Mapping (XML attribute / JSON key):
//! - `pos_receipt_no` = `ReceiptNumber`/`receiptNumber`; for an offline paper receipt
//!   (`Paragon="true"` without a receipt number) `paragon-<ParagonNumber>`.
//! - `issued_at` = `IssueDate`/`issueDate`; `total` = `Amount`/`amount`.
//! - Items: type `K`/`Positive` → sale; `V`/`Returned` → return (its `ReferenceReceiptId` /
//!   `referenceReceiptId` becomes the receipt's `original.pos_receipt_no`; required);
//!   `Z`/`Discount` → discount; `VO`/`ReturnedContainer` (deposit bottles bought back),
//!   `OD`/`Advance` (deducted advance), `VP`/`Voucher` (voucher exchanged) → discount lines (negative,
//!   not products); `O`/`Correction` → sale or return by sign. eKasa writes negative prices for
//!   V/Z/VO/OD/VP; signs are normalised to the protocol's conventions.
//! - Item total `Price`/`price`; unit price `UnitPrice`/`unitPrice` (computed if absent); quantity
//!   `Quantity` or `quantity.amount`; VAT `VatRate`/`vatRate` (percent).
//! - eKasa's receipt-level VAT fields (`TaxBaseBasic`, `BasicVatAmount`, …) carry no rate, and rates
//!   change (SK 20/10 → 23/19/5 in 2025), so no `vat` summary is built from them; rates stay on items.
//! - eKasa has no loyalty card field (`CustomerId` is a tax id): `card` is left empty for the agent's
//!   scanned-card association. Other keys are ignored (the JSON carries signatures, printer options…).

use protocol::v1::{LineKind, OriginalReceipt, Receipt};
use rust_decimal::Decimal;

use super::jtree::{self, JNode};
use super::text::{parse_datetime, parse_decimal};
use super::xml::{self, El};
use super::{finish, make_line, Draft, FileReceipts, ParseContext, ParseError};

/// Every receipt of the file, each on its own: an XML file may hold several requests (a POS's log
/// of what it registered, SOAP envelopes included), a JSON file an array of request objects; a bad
/// one is set aside with its extract, the others are taken.
pub(crate) fn parse_each(src: &str, ctx: &ParseContext, out: &mut FileReceipts) -> Result<(), ParseError> {
    let s = src.trim_start_matches('\u{feff}').trim_start();
    if s.starts_with('<') {
        let doc = xml::parse(src)?;
        let root = doc.root();
        // A request is the record (its extract keeps the request around the data); a file of bare
        // `ReceiptData` elements is read too.
        let mut records: Vec<El> = root.find_all("RegisterReceiptRequest").collect();
        if records.is_empty() {
            records = root.find_all("ReceiptData").collect();
        }
        if records.is_empty() {
            return Err(ParseError::new("not an eKasa receipt: no <ReceiptData> element")
                .line(root.line())
                .field(root.name().to_string()));
        }
        for rec in records {
            out.take(xml_receipt(rec, ctx), "xml", || {
                let no = rec.find("ReceiptData").and_then(|rd| rd.attr("ReceiptNumber"));
                (no.map(|n| n.trim().to_string()), rec.standalone(root))
            });
        }
        Ok(())
    } else if s.starts_with('{') {
        out.receipts.push(json_receipt(&jtree::parse(src)?, ctx)?);
        Ok(())
    } else if s.starts_with('[') {
        let root = jtree::parse(src)?;
        let items = root.as_array("requests")?;
        if items.is_empty() {
            return Err(root.err("requests", "the file holds an empty array: no receipts"));
        }
        let raw = jtree::element_texts(src)?;
        for (i, n) in items.iter().enumerate() {
            out.take(json_receipt(n, ctx), "json", || {
                let no = request_of(n).some("receiptNumber");
                (
                    no.and_then(|v| v.as_text("receiptNumber").ok()),
                    raw.get(i).cloned().unwrap_or_default(),
                )
            });
        }
        Ok(())
    } else {
        Err(ParseError::new(
            "not an eKasa receipt: expected XML (RegisterReceiptRequest) or JSON (a request object or an array of them)",
        )
        .line(1))
    }
}

/// eKasa item type → line kind (None = by sign).
fn item_kind(code: &str) -> Option<Option<LineKind>> {
    Some(match code.trim() {
        "K" | "Positive" => Some(LineKind::Sale),
        "V" | "Returned" => Some(LineKind::Return),
        "Z" | "Discount" | "VO" | "ReturnedContainer" | "OD" | "Advance" | "VP" | "Voucher" => Some(LineKind::Discount),
        "O" | "Correction" => None,
        _ => return None,
    })
}

struct Item {
    line: usize,
    type_field: &'static str,
    ty: String,
    name: Option<String>,
    qty: Option<Decimal>,
    unit: Option<Decimal>,
    price: Option<Decimal>,
    vat: Option<Decimal>,
    reference: Option<String>,
}

fn build(mut d: Draft, items: Vec<Item>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    for it in items {
        let kind = item_kind(&it.ty).ok_or_else(|| {
            ParseError::new(
                "unknown eKasa item type (expected K, V, Z, VO, OD, VP, O or Positive, Returned, Discount, …)",
            )
            .line(it.line)
            .field(it.type_field)
            .value(&it.ty)
        })?;
        let name = it.name.unwrap_or_default();
        let l = make_line(kind, name, None, None, it.qty, it.unit, it.price, it.vat).map_err(|e| e.line(it.line))?;
        if l.kind == LineKind::Return && d.original.is_none() {
            let reference = it.reference.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
                ParseError::new("returned item without the original receipt's id")
                    .line(it.line)
                    .field("ReferenceReceiptId")
            })?;
            d.original = Some(OriginalReceipt {
                receipt_id: None,
                pos_receipt_no: Some(reference),
            });
        }
        d.lines.push(l);
    }
    finish(d, ctx)
}

// --- XML -----------------------------------------------------------------------------------------

fn attr_dec(el: El<'_>, name: &str) -> Result<Option<Decimal>, ParseError> {
    match el.attr(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_decimal(v, Some('.')).map(Some).ok_or_else(|| {
            ParseError::new("not a number")
                .line(el.line())
                .field(name.to_string())
                .value(v)
        }),
    }
}

fn xml_receipt(rec: El<'_>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let rd = rec.find("ReceiptData").ok_or_else(|| {
        ParseError::new("not an eKasa receipt: no <ReceiptData> element")
            .line(rec.line())
            .field(rec.name().to_string())
    })?;
    let no = match rd.attr("ReceiptNumber").map(str::trim).filter(|v| !v.is_empty()) {
        Some(n) => n.to_string(),
        None => match (
            rd.flag("Paragon"),
            rd.attr("ParagonNumber").map(str::trim).filter(|v| !v.is_empty()),
        ) {
            (true, Some(p)) => format!("paragon-{p}"),
            _ => {
                return Err(
                    ParseError::new("receipt has no ReceiptNumber (nor Paragon=\"true\" with ParagonNumber)")
                        .line(rd.line())
                        .field("ReceiptNumber"),
                )
            }
        },
    };
    let at_raw = rd.attr("IssueDate").ok_or_else(|| {
        ParseError::new("required attribute is missing")
            .line(rd.line())
            .field("IssueDate")
    })?;
    let issued_at = parse_datetime(at_raw, &[], &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date-time")
            .line(rd.line())
            .field("IssueDate")
            .value(at_raw)
    })?;
    let mut d = Draft::new(Some(rd.line()), no, issued_at);
    d.total_field = "Amount".into();
    d.total = Some(attr_dec(rd, "Amount")?.ok_or_else(|| {
        ParseError::new("required attribute is missing")
            .line(rd.line())
            .field("Amount")
    })?);
    let mut items = Vec::new();
    if let Some(list) = rd.child("Items") {
        for it in list.children_named("Item") {
            items.push(Item {
                line: it.line(),
                type_field: "ItemType",
                ty: it
                    .attr("ItemType")
                    .ok_or_else(|| {
                        ParseError::new("required attribute is missing")
                            .line(it.line())
                            .field("ItemType")
                    })?
                    .to_string(),
                name: it.attr("Name").map(|s| s.trim().to_string()),
                qty: attr_dec(it, "Quantity")?,
                unit: attr_dec(it, "UnitPrice")?,
                price: attr_dec(it, "Price")?,
                vat: attr_dec(it, "VatRate")?,
                reference: it.attr("ReferenceReceiptId").map(str::to_string),
            });
        }
    }
    build(d, items, ctx)
}

// --- JSON ----------------------------------------------------------------------------------------

/// The request object: `{"request": {...}}` or the object itself.
fn request_of<'n, 'a>(root: &'n JNode<'a>) -> &'n JNode<'a> {
    match root.some("request") {
        Some(r) if r.is_object() => r,
        _ => root,
    }
}

fn json_receipt(root: &JNode<'_>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    if !root.is_object() {
        return Err(root.err(
            "request",
            format!("expected an eKasa request object, found {}", root.kind()),
        ));
    }
    let r = request_of(root);
    let req = |k: &str| {
        r.some(k).ok_or_else(|| {
            ParseError::new("required field is missing")
                .line(r.line)
                .field(k.to_string())
        })
    };
    let no = match r.some("receiptNumber") {
        Some(n) => n.as_text("receiptNumber")?,
        None => match (
            r.some("paragon").map(|p| p.as_bool("paragon")).transpose()?,
            r.some("paragonNumber"),
        ) {
            (Some(true), Some(p)) => format!("paragon-{}", p.as_text("paragonNumber")?),
            _ => {
                return Err(
                    ParseError::new("receipt has no receiptNumber (nor paragon=true with paragonNumber)")
                        .line(r.line)
                        .field("receiptNumber"),
                )
            }
        },
    };
    let at = req("issueDate")?;
    let at_raw = at.as_text("issueDate")?;
    let issued_at = parse_datetime(&at_raw, &[], &ctx.zone).ok_or_else(|| at.err("issueDate", "not a date-time"))?;
    let mut d = Draft::new(Some(r.line), no, issued_at);
    let amount = req("amount")?;
    d.total = Some(amount.as_decimal("amount")?);
    (d.total_field, d.total_line) = ("amount".into(), Some(amount.line));
    let mut items = Vec::new();
    if let Some(list) = r.some("items") {
        for (i, it) in list.as_array("items")?.iter().enumerate() {
            let f = |k: &str| format!("items[{i}].{k}");
            let opt_dec = |k: &str| it.some(k).map(|v| v.as_decimal(&f(k))).transpose();
            let qty = match it.some("quantity") {
                Some(q) if q.is_object() => q
                    .some("amount")
                    .map(|a| a.as_decimal(&f("quantity.amount")))
                    .transpose()?,
                Some(q) => Some(q.as_decimal(&f("quantity"))?),
                None => None,
            };
            let ty_node = it.some("type").ok_or_else(|| {
                ParseError::new("required field is missing")
                    .line(it.line)
                    .field(f("type"))
            })?;
            items.push(Item {
                line: it.line,
                type_field: "type",
                ty: ty_node.as_text(&f("type"))?,
                name: it.some("name").map(|n| n.as_text(&f("name"))).transpose()?,
                qty,
                unit: opt_dec("unitPrice")?,
                price: opt_dec("price")?,
                vat: opt_dec("vatRate")?,
                reference: it
                    .some("referenceReceiptId")
                    .map(|n| n.as_text(&f("referenceReceiptId")))
                    .transpose()?,
            });
        }
    }
    build(d, items, ctx).map_err(fix_json_field)
}

/// JSON items are named `items[i].type`; `build` names XML-style fields — map them back.
fn fix_json_field(mut e: ParseError) -> ParseError {
    if e.field.as_deref() == Some("ReferenceReceiptId") {
        e.field = Some("referenceReceiptId".into());
    }
    e
}
