//! Square orders (Orders API JSON) as a POS integration saves them: a `RetrieveOrder` response
//! (`{"order": {…}}`), a search / batch response (`{"orders": […]}`), an array of orders, or one
//! bare order object. Unknown keys are ignored (an order carries many the agent has no use for).
//!
//! - `pos_receipt_no` = the order's `id`; `issued_at` = `closed_at`, else `created_at` (RFC 3339).
//! - Money is `{"amount": <integer in minor units>, "currency": "USD"}`: 550 USD is 5.50. Every
//!   currency must be the program's. Quantities are decimal strings (`"2"`, `"0.5"`).
//! - Each line item is a sale line of what it cost before its discounts (`total_money` +
//!   `total_discount_money`: tax included whether it was added or inclusive, apportioned service
//!   charges included), followed by a discount line of `total_discount_money` named after the
//!   order's discounts it applied. Order-level service charges (subtotal or total phase) are sale
//!   lines; apportioned ones are already inside the items. `rounding_adjustment` is a rounding line.
//! - Returns (`returns[].return_line_items`) are return lines of what was refunded (`total_money`);
//!   the original is `returns[].source_order_id`. The total is then `net_amounts.total_money`
//!   (sales minus returns), else `total_money` minus `return_amounts.total_money`.
//! - A tip is not a purchase: when the total includes it (total − tip = the lines), it is taken off.
//! - `state`: COMPLETED and OPEN orders are read (an order with fulfilments stays OPEN after it was
//!   paid); CANCELED and DRAFT orders are skipped and counted.
//! - A line's `vat_rate` is the percentage of its one applied tax (none when it has several). No VAT
//!   summary (Square taxes are not always VAT) and no card (`customer_id` is not a loyalty card).
//! - A response that carries `errors` and no order is refused with Square's error codes.

use protocol::v1::{LineKind, OriginalReceipt, Receipt, ReceiptLine};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::jtree::{self, JNode, JVal};
use super::text::parse_datetime;
use super::{check_currency, finish, make_line, Draft, FileReceipts, ParseContext, ParseError};

pub(crate) fn parse_each(src: &str, ctx: &ParseContext, out: &mut FileReceipts) -> Result<(), ParseError> {
    let root = jtree::parse(src)?;
    // (the order, its path in the file for error fields, its text for an extract)
    let orders: Vec<(&JNode, String, String)> = if let Some(o) = root.some("order") {
        vec![(o, "order.".into(), src.to_string())]
    } else if let Some(list) = root.some("orders") {
        let nodes = list.as_array("orders")?;
        let texts = jtree::element_texts(&jtree::member_text(src, "orders")?.unwrap_or_else(|| "[]".into()))?;
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n, format!("orders[{i}]."), texts.get(i).cloned().unwrap_or_default()))
            .collect()
    } else if let JVal::Arr(nodes) = &root.v {
        let texts = jtree::element_texts(src)?;
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n, format!("[{i}]."), texts.get(i).cloned().unwrap_or_default()))
            .collect()
    } else if root.some("errors").is_some() {
        return Err(square_errors(&root));
    } else {
        vec![(&root, String::new(), src.to_string())]
    };
    if orders.is_empty() {
        return Err(root
            .some("orders")
            .unwrap_or(&root)
            .err("orders", "the file holds no orders"));
    }
    for (n, prefix, text) in orders {
        let state = n
            .some("state")
            .and_then(|s| s.as_text("state").ok())
            .unwrap_or_default()
            .to_ascii_uppercase();
        match state.as_str() {
            "CANCELED" | "CANCELLED" => {
                out.skip("canceled");
                continue;
            }
            "DRAFT" => {
                out.skip("draft");
                continue;
            }
            _ => {}
        }
        out.take(order(n, &prefix, ctx), "json", || {
            (n.some("id").and_then(|v| v.as_text("id").ok()), text)
        });
    }
    Ok(())
}

/// Square's `errors` array as one error: `CODE (category): detail` each.
fn square_errors(root: &JNode<'_>) -> ParseError {
    let errors = root.some("errors");
    let text: Vec<String> = errors
        .and_then(|e| e.as_array("errors").ok())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let get = |k: &str| e.some(k).and_then(|v| v.as_text(k).ok()).unwrap_or_default();
            format!("{} ({}): {}", get("code"), get("category"), get("detail"))
        })
        .collect();
    ParseError::new(format!("a Square error response, not an order: {}", text.join("; ")))
        .line(errors.map(|e| e.line))
        .field("errors")
}

fn text_of(n: &JNode<'_>, key: &str, field: &str) -> Result<Option<String>, ParseError> {
    n.some(key).map(|v| v.as_text(field)).transpose()
}

/// A Money object as an amount in the program currency (minor units → decimal).
fn money(n: Option<&JNode<'_>>, field: &str, ctx: &ParseContext) -> Result<Option<Decimal>, ParseError> {
    let Some(m) = n else {
        return Ok(None);
    };
    if !m.is_object() {
        return Err(m.err(
            field,
            format!("expected a Money object {{amount, currency}}, found {}", m.kind()),
        ));
    }
    if let Some(c) = m.some("currency") {
        check_currency(
            &c.as_text(&format!("{field}.currency"))?,
            ctx,
            Some(c.line),
            &format!("{field}.currency"),
        )?;
    }
    let Some(a) = m.some("amount") else {
        return Ok(None);
    };
    let field = format!("{field}.amount");
    let units = a.as_decimal(&field)?;
    let units = units
        .fract()
        .is_zero()
        .then(|| units.to_i64())
        .flatten()
        .ok_or_else(|| {
            a.err(
                &field,
                "not a whole number of minor units (Square amounts are integers: 550 = 5.50)",
            )
        })?;
    Ok(Some(Decimal::new(units, ctx.currency.minor_digits())))
}

fn order(n: &JNode<'_>, prefix: &str, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let f = |k: &str| format!("{prefix}{k}");
    if !n.is_object() {
        return Err(n.err(
            prefix.trim_end_matches('.'),
            format!("expected an order object, found {}", n.kind()),
        ));
    }
    let id = text_of(n, "id", &f("id"))?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ParseError::new("the order has no id").line(n.line).field(f("id")))?;
    let (at_key, at) = match n.some("closed_at") {
        Some(v) => ("closed_at", v),
        None => (
            "created_at",
            n.some("created_at").ok_or_else(|| {
                ParseError::new("the order has neither closed_at nor created_at")
                    .line(n.line)
                    .field(f("created_at"))
            })?,
        ),
    };
    let raw_at = at.as_text(&f(at_key))?;
    let issued_at = parse_datetime(&raw_at, &[], &ctx.zone).ok_or_else(|| {
        at.err(
            &f(at_key),
            "not a date-time (expected RFC 3339, e.g. 2020-05-18T16:30:49.614Z)",
        )
    })?;
    let mut d = Draft::new(Some(n.line), id, issued_at);

    // The order's taxes and discounts by uid: percentages for vat_rate, names for discount lines.
    let by_uid = |key: &str| -> Vec<(String, &JNode)> {
        n.some(key)
            .and_then(|l| l.as_array(key).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| Some((t.some("uid")?.as_text("uid").ok()?, t)))
            .collect()
    };
    let taxes = by_uid("taxes");
    let discounts = by_uid("discounts");
    let qty = |li: &JNode, field: &str| -> Result<Decimal, ParseError> {
        match li.some("quantity") {
            Some(q) => q.as_decimal(field),
            None => Ok(Decimal::ONE),
        }
    };
    let name_of = |li: &JNode, field: &str| -> Result<String, ParseError> {
        let name = text_of(li, "name", field)?.filter(|s| !s.trim().is_empty());
        let variation = text_of(li, "variation_name", field)?.filter(|s| !s.trim().is_empty());
        Ok(match (name, variation) {
            (Some(n), Some(v)) => format!("{} ({})", n.trim(), v.trim()),
            (Some(n), None) => n.trim().to_string(),
            (None, Some(v)) => v.trim().to_string(),
            (None, None) => "item".to_string(),
        })
    };
    let at_line = |e: ParseError, li: &JNode, field: &str| {
        let e = if e.line.is_none() { e.line(li.line) } else { e };
        if e.field.is_none() {
            e.field(field.to_string())
        } else {
            e
        }
    };

    let items = match n.some("line_items") {
        Some(l) => l.as_array(&f("line_items"))?,
        None => &[],
    };
    for (i, li) in items.iter().enumerate() {
        let p = f(&format!("line_items[{i}]."));
        let q = qty(li, &format!("{p}quantity"))?;
        let total = money(li.some("total_money"), &format!("{p}total_money"), ctx)?;
        let discount = money(
            li.some("total_discount_money"),
            &format!("{p}total_discount_money"),
            ctx,
        )?
        .unwrap_or_default();
        let base = money(li.some("base_price_money"), &format!("{p}base_price_money"), ctx)?;
        // The catalogue price as the unit price when it makes the line (weighed goods are rounded
        // to the minor unit); else (tax added on top) the unit price is computed from the line.
        let (unit, gross) = match total {
            Some(t) => {
                let gross = t + discount;
                let fits = base
                    .and_then(|b| b.checked_mul(q))
                    .and_then(|bq| bq.checked_sub(gross))
                    .is_some_and(|diff| diff.abs() <= Decimal::new(1, 2));
                (if fits { base } else { None }, Some(gross))
            }
            None => (base, None),
        };
        let applied: Vec<&str> = li
            .some("applied_taxes")
            .and_then(|a| a.as_array("applied_taxes").ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| match t.some("tax_uid").map(|u| &u.v) {
                Some(JVal::Str(s)) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        let vat_rate = match applied.as_slice() {
            [one] => taxes
                .iter()
                .find(|(u, _)| u == one)
                .and_then(|(_, t)| t.some("percentage"))
                .map(|p| p.as_decimal("percentage"))
                .transpose()?,
            _ => None,
        };
        let sku = text_of(li, "catalog_object_id", &format!("{p}catalog_object_id"))?;
        let line = make_line(
            Some(LineKind::Sale),
            name_of(li, &format!("{p}name"))?,
            sku,
            None,
            Some(q),
            unit,
            gross,
            vat_rate,
        )
        .map_err(|e| at_line(e, li, &format!("{p}total_money")))?;
        d.lines.push(line);
        if !discount.is_zero() {
            let names: Vec<String> = li
                .some("applied_discounts")
                .and_then(|a| a.as_array("applied_discounts").ok())
                .unwrap_or_default()
                .iter()
                .filter_map(|a| {
                    let uid = a.some("discount_uid")?.as_text("discount_uid").ok()?;
                    let (_, dn) = discounts.iter().find(|(u, _)| *u == uid)?;
                    dn.some("name")?.as_text("name").ok()
                })
                .collect();
            let name = if names.is_empty() {
                "discount".to_string()
            } else {
                names.join(", ")
            };
            d.lines.push(make_line(
                Some(LineKind::Discount),
                name,
                None,
                None,
                None,
                None,
                Some(discount),
                None,
            )?);
        }
    }

    let charges = match n.some("service_charges") {
        Some(l) => l.as_array(&f("service_charges"))?,
        None => &[],
    };
    for (i, sc) in charges.iter().enumerate() {
        let p = f(&format!("service_charges[{i}]."));
        let phase = text_of(sc, "calculation_phase", &format!("{p}calculation_phase"))?.unwrap_or_default();
        if phase.starts_with("APPORTIONED") {
            continue; // already in the items' totals
        }
        let total = money(sc.some("total_money"), &format!("{p}total_money"), ctx)?;
        let total = match total {
            Some(t) => t,
            None => money(sc.some("applied_money"), &format!("{p}applied_money"), ctx)?.unwrap_or_default(),
        };
        if total.is_zero() {
            continue;
        }
        let name = text_of(sc, "name", &format!("{p}name"))?.unwrap_or_else(|| "service charge".into());
        d.lines.push(ReceiptLine {
            sku: None,
            name,
            category: None,
            quantity: Decimal::ONE,
            unit_price: total,
            line_total: total,
            vat_rate: None,
            kind: LineKind::Sale,
        });
    }

    let returns = match n.some("returns") {
        Some(l) => l.as_array(&f("returns"))?,
        None => &[],
    };
    for (r, ret) in returns.iter().enumerate() {
        let p = f(&format!("returns[{r}]."));
        if d.original.is_none() {
            if let Some(src_id) = text_of(ret, "source_order_id", &format!("{p}source_order_id"))? {
                d.original = Some(OriginalReceipt {
                    receipt_id: None,
                    pos_receipt_no: Some(src_id),
                });
            }
        }
        let lines = match ret.some("return_line_items") {
            Some(l) => l.as_array(&format!("{p}return_line_items"))?,
            None => &[],
        };
        for (i, li) in lines.iter().enumerate() {
            let p = format!("{p}return_line_items[{i}].");
            let q = qty(li, &format!("{p}quantity"))?;
            let total = money(li.some("total_money"), &format!("{p}total_money"), ctx)?;
            let base = money(li.some("base_price_money"), &format!("{p}base_price_money"), ctx)?;
            let sku = text_of(li, "catalog_object_id", &format!("{p}catalog_object_id"))?;
            let line = make_line(
                Some(LineKind::Return),
                name_of(li, &format!("{p}name"))?,
                sku,
                None,
                Some(q),
                if total.is_some() { None } else { base },
                total,
                None,
            )
            .map_err(|e| at_line(e, li, &format!("{p}total_money")))?;
            d.lines.push(line);
        }
    }

    if let Some(adj) = n.some("rounding_adjustment") {
        if let Some(a) = money(adj.some("amount_money"), &f("rounding_adjustment.amount_money"), ctx)? {
            if !a.is_zero() {
                d.lines.push(ReceiptLine {
                    sku: None,
                    name: "cash rounding".into(),
                    category: None,
                    quantity: Decimal::ONE,
                    unit_price: a,
                    line_total: a,
                    vat_rate: None,
                    kind: LineKind::Rounding,
                });
            }
        }
    }

    // The total: net of returns, without a tip when it holds one.
    let (total_node, total_field, tip) = match n.some("net_amounts") {
        Some(net) => (
            net.some("total_money"),
            f("net_amounts.total_money"),
            money(net.some("tip_money"), &f("net_amounts.tip_money"), ctx)?,
        ),
        None => (
            n.some("total_money"),
            f("total_money"),
            money(n.some("total_tip_money"), &f("total_tip_money"), ctx)?,
        ),
    };
    let mut total = money(total_node, &total_field, ctx)?;
    let mut tip = tip;
    if n.some("net_amounts").is_none() {
        if let (Some(t), Some(ret)) = (total, n.some("return_amounts")) {
            let back = money(ret.some("total_money"), &f("return_amounts.total_money"), ctx)?.unwrap_or_default();
            let tip_back = money(ret.some("tip_money"), &f("return_amounts.tip_money"), ctx)?.unwrap_or_default();
            total = Some(t - back);
            tip = tip.map(|t| t - tip_back);
        }
    }
    let sum = d
        .lines
        .iter()
        .try_fold(Decimal::ZERO, |acc, l| acc.checked_add(l.line_total));
    if let (Some(t), Some(tip), Some(sum)) = (total, tip.filter(|t| !t.is_zero()), sum) {
        let gap = |x: Decimal| x.checked_sub(sum).map(|g| g.abs());
        if let (Some(without), Some(with)) = (gap(t - tip), gap(t)) {
            if without < with {
                total = Some(t - tip);
            }
        }
    }
    d.total = total;
    d.total_field = total_field;
    d.total_line = total_node.map(|t| t.line);
    finish(d, ctx)
}
