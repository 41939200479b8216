//! Receipts in the protocol's own JSON shape (`protocol::v1::Receipt`), one object or an array.
//!
//! Differences from the wire type, because a POS writes these files:
//! - `id` is optional; when present it must equal `ReceiptId::derive(store, till, pos_receipt_no,
//!   issued_at)` (the derived id is what makes the server's dedupe survive a rewritten file).
//! - `store_id`, `till_id`, `currency` are optional; when present they must be this till's.
//! - Amounts may be JSON strings (`"12.90"`, the wire form) or JSON numbers; a number is read from its
//!   literal text, never through a float.
//! - `issued_at` may lack an offset (then the till's local offset applies).
//! - `pos_receipt_no` may be a number.
//!
//! Unknown keys are errors (as on the wire). Line signs must already follow the protocol's
//! conventions (this is the protocol's format: nothing is re-signed), and `line_total` must equal
//! `quantity × unit_price` within 0.01.

use protocol::v1::{LineKind, OriginalReceipt, Receipt, ReceiptLine, VatSummary};
use protocol::ReceiptId;
use rust_decimal::Decimal;

use super::jtree::{self, JNode, JVal};
use super::text::parse_datetime;
use super::{card, check_currency, finish, Draft, FileReceipts, ParseContext, ParseError};

const RECEIPT_KEYS: &[&str] = &[
    "id",
    "store_id",
    "till_id",
    "pos_receipt_no",
    "issued_at",
    "currency",
    "total",
    "card",
    "original",
    "lines",
    "vat",
];
const LINE_KEYS: &[&str] = &[
    "sku",
    "name",
    "category",
    "quantity",
    "unit_price",
    "line_total",
    "vat_rate",
    "kind",
];
const VAT_KEYS: &[&str] = &["rate", "base", "amount"];
const ORIGINAL_KEYS: &[&str] = &["receipt_id", "pos_receipt_no"];

/// A receipt object, or an array of them: each element that fails goes to `out.bad` on its own.
pub(crate) fn parse_each(src: &str, ctx: &ParseContext, out: &mut FileReceipts) -> Result<(), ParseError> {
    let root = jtree::parse(src)?;
    match &root.v {
        JVal::Obj(_) => out.receipts.push(receipt(&root, "", ctx)?),
        JVal::Arr(items) => {
            if items.is_empty() {
                return Err(root.err("receipts", "the file holds an empty array: no receipts"));
            }
            let raw = jtree::element_texts(src)?;
            for (i, n) in items.iter().enumerate() {
                out.take(receipt(n, &format!("[{i}]."), ctx), "json", || {
                    (
                        n.some("pos_receipt_no").and_then(|v| v.as_text("pos_receipt_no").ok()),
                        raw.get(i).cloned().unwrap_or_default(),
                    )
                });
            }
        }
        _ => {
            return Err(root.err(
                "receipt",
                format!("expected a receipt object or an array of them, found {}", root.kind()),
            ))
        }
    }
    Ok(())
}

fn no_unknown(obj: &JNode<'_>, allowed: &[&str], prefix: &str) -> Result<(), ParseError> {
    for (k, v) in obj.keys() {
        if !allowed.contains(&k) {
            return Err(
                ParseError::new(format!("unknown field (expected one of: {})", allowed.join(", ")))
                    .line(v.line)
                    .field(format!("{prefix}{k}")),
            );
        }
    }
    Ok(())
}

fn required<'n, 'a>(obj: &'n JNode<'a>, key: &str, prefix: &str) -> Result<&'n JNode<'a>, ParseError> {
    obj.some(key).ok_or_else(|| {
        ParseError::new("required field is missing")
            .line(obj.line)
            .field(format!("{prefix}{key}"))
    })
}

fn object<'n, 'a>(n: &'n JNode<'a>, field: &str) -> Result<&'n JNode<'a>, ParseError> {
    if n.is_object() {
        Ok(n)
    } else {
        Err(n.err(field, format!("expected an object, found {}", n.kind())))
    }
}

fn receipt(n: &JNode<'_>, prefix: &str, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let f = |k: &str| format!("{prefix}{k}");
    let n = object(
        n,
        if prefix.is_empty() {
            "receipt"
        } else {
            prefix.trim_end_matches('.')
        },
    )?;
    no_unknown(n, RECEIPT_KEYS, prefix)?;
    for (key, want) in [("store_id", ctx.store_id.as_str()), ("till_id", ctx.till_id.as_str())] {
        if let Some(v) = n.some(key) {
            let got = v.as_text(&f(key))?;
            if got != want {
                return Err(v.err(
                    &f(key),
                    format!(
                        "receipt is for another {} (this till is {want})",
                        key.trim_end_matches("_id")
                    ),
                ));
            }
        }
    }
    if let Some(c) = n.some("currency") {
        check_currency(&c.as_text(&f("currency"))?, ctx, Some(c.line), &f("currency"))?;
    }
    let no_node = required(n, "pos_receipt_no", prefix)?;
    let no = no_node.as_text(&f("pos_receipt_no"))?;
    let at_node = required(n, "issued_at", prefix)?;
    let at_raw = at_node.as_text(&f("issued_at"))?;
    let issued_at = parse_datetime(&at_raw, &[], &ctx.zone).ok_or_else(|| {
        at_node.err(
            &f("issued_at"),
            "not a date-time (expected RFC 3339, e.g. 2026-11-23T10:00:00+01:00)",
        )
    })?;
    let mut d = Draft::new(Some(n.line), no, issued_at);
    if let Some(id) = n.some("id") {
        d.id = Some((id.as_text(&f("id"))?, Some(id.line)));
    }
    let total = required(n, "total", prefix)?;
    d.total = Some(total.as_decimal(&f("total"))?);
    (d.total_field, d.total_line) = (f("total"), Some(total.line));
    if let Some(c) = n.some("card") {
        d.card = card(&c.as_text(&f("card"))?, Some(c.line), &f("card"))?;
    }
    if let Some(o) = n.some("original") {
        let o = object(o, &f("original"))?;
        no_unknown(o, ORIGINAL_KEYS, &f("original."))?;
        let receipt_id = o
            .some("receipt_id")
            .map(|v| v.as_text(&f("original.receipt_id")))
            .transpose()?
            .map(ReceiptId);
        let pos_receipt_no = o
            .some("pos_receipt_no")
            .map(|v| v.as_text(&f("original.pos_receipt_no")))
            .transpose()?;
        if receipt_id.is_none() && pos_receipt_no.is_none() {
            return Err(ParseError::new("original names neither receipt_id nor pos_receipt_no")
                .line(o.line)
                .field(f("original")));
        }
        d.original = Some(OriginalReceipt {
            receipt_id,
            pos_receipt_no,
        });
    }
    if let Some(lines) = n.some("lines") {
        for (i, l) in lines.as_array(&f("lines"))?.iter().enumerate() {
            d.lines.push(line(l, &format!("{prefix}lines[{i}]."))?);
        }
    }
    if let Some(vat) = n.some("vat") {
        for (i, v) in vat.as_array(&f("vat"))?.iter().enumerate() {
            let p = format!("{prefix}vat[{i}].");
            let v = object(v, p.trim_end_matches('.'))?;
            no_unknown(v, VAT_KEYS, &p)?;
            let get = |k: &str| required(v, k, &p).and_then(|x| x.as_decimal(&format!("{p}{k}")));
            d.vat.push(VatSummary {
                rate: get("rate")?,
                base: get("base")?,
                amount: get("amount")?,
            });
        }
    }
    finish(d, ctx)
}

fn line(n: &JNode<'_>, p: &str) -> Result<ReceiptLine, ParseError> {
    let f = |k: &str| format!("{p}{k}");
    let n = object(n, p.trim_end_matches('.'))?;
    no_unknown(n, LINE_KEYS, p)?;
    let text = |k: &str| n.some(k).map(|v| v.as_text(&f(k))).transpose();
    let dec = |k: &str| required(n, k, p).and_then(|v| v.as_decimal(&f(k)));
    let kind_node = required(n, "kind", p)?;
    let kind = match kind_node.as_text(&f("kind"))?.as_str() {
        "sale" => LineKind::Sale,
        "return" => LineKind::Return,
        "discount" => LineKind::Discount,
        "rounding" => LineKind::Rounding,
        _ => {
            return Err(kind_node.err(
                &f("kind"),
                "unknown line kind (expected sale, return, discount or rounding)",
            ))
        }
    };
    let name = required(n, "name", p)?.as_text(&f("name"))?;
    let quantity = dec("quantity")?;
    let unit_price = dec("unit_price")?;
    let line_total = dec("line_total")?;
    let vat_rate = n.some("vat_rate").map(|v| v.as_decimal(&f("vat_rate"))).transpose()?;
    let total_node = required(n, "line_total", p)?;
    let neg = |d: Decimal| d.is_sign_negative() && !d.is_zero();
    let sign_err = match kind {
        LineKind::Sale if neg(quantity) || neg(line_total) => Some("a sale line needs a positive quantity and total"),
        LineKind::Return if !neg(quantity) || !neg(line_total) => {
            Some("a return line needs a negative quantity and total")
        }
        LineKind::Discount if !neg(line_total) => Some("a discount line needs a negative total"),
        _ => None,
    };
    if let Some(msg) = sign_err {
        return Err(total_node.err(&f("line_total"), msg));
    }
    if kind != LineKind::Rounding {
        let expect = quantity
            .checked_mul(unit_price)
            .ok_or_else(|| total_node.err(&f("line_total"), "quantity × unit_price is out of range"))?;
        let diff = expect.checked_sub(line_total).map(|d| d.abs());
        if diff.is_none_or(|d| d > Decimal::new(1, 2)) {
            return Err(total_node.err(
                &f("line_total"),
                format!("line_total is not quantity × unit_price ({quantity} × {unit_price} = {expect})"),
            ));
        }
    }
    Ok(ReceiptLine {
        sku: text("sku")?,
        name,
        category: text("category")?,
        quantity,
        unit_price,
        line_total,
        vat_rate,
        kind,
    })
}
