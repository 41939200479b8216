//! ARTS POSLog XML (NRF/ARTS IXRetail v2 and v6, incl. NCR ACS extensions). Names are matched on
//! local names, so every ARTS namespace (`…/IXRetail/namespace/`, `…/IXRetail/v6.0.0/poslog`) and
//! vendor prefixes work.
//!
//! - One receipt per `Transaction` holding a `RetailTransaction`, each read on its own: a bad
//!   transaction does not stop the others ([`super::FileReceipts::bad`] gets it with an extract).
//!   Skipped, and counted per kind in [`super::FileReceipts::skipped`]: transactions without a
//!   `RetailTransaction` (`control`: `ControlTransaction`, `TenderControlTransaction`, sign-on …),
//!   `training` (`TrainingModeFlag` true, as attribute or element), `voided` (`CancelFlag`/`VoidFlag`
//!   true, or `TransactionStatus` `Voided`/`Canceled`/`Cancelled`), `suspended` (`SuspendFlag` true
//!   or `TransactionStatus` `Suspended`). Line items with `VoidFlag`/`CancelFlag` are left out; one
//!   with a negative amount is the entry voiding an earlier line (NCR ACS writes the void as its
//!   own line and leaves the voided one unflagged), so that earlier line (same item, opposite
//!   amount, the latest such) is left out too.
//!   A file with no retail transaction yields no receipts (not an error).
//! - `pos_receipt_no` = `Transaction/SequenceNumber`, else `ReceiptNumber` (transaction or
//!   retail-transaction level), else `TransactionID`.
//! - Time: `RetailTransaction/ReceiptDateTime`, else `POSLogDateTime[@TypeCode="Transaction"]`
//!   (transaction or retail-transaction level), else `EndDateTime` (either level), else the first
//!   `POSLogDateTime`. Local time unless it has an offset. `RetailStoreID`/`WorkstationID` are the
//!   POS's own ids and are not checked against the till's. `CurrencyCode` must be the program currency.
//! - Lines: `LineItem/Sale` → sale (negative `Quantity` → return), `LineItem/Return` → return;
//!   name from `Description`, `ItemDescription`, the item's `Description`/`Name` attribute or
//!   `ItemID`'s `Description`/`Name` attribute, else the sku; sku `ItemID` (else
//!   `POSIdentity/POSItemID`), category `MerchandiseHierarchy`, unit price `ActualSalesUnitPrice`
//!   else `RegularSalesUnitPrice`, total `ExtendedAmount`, VAT `Tax/Percent`. Each
//!   `RetailPriceModifier/Amount` under an item, each `LineItem/Discount/Amount` and each
//!   `LoyaltyReward` with a negative `ExtendedRewardAmount`/`Amount` → discount line (its sign kept:
//!   always negative). NCR ACS reports a monetary reward twice (`acs:detailedData` and a summary with
//!   only `acs:summarizedActivity`): the summary-only copy is skipped.
//! - Total: `Total[@TotalType="TransactionGrandAmount"]` (required) — what the customer paid.
//! - Tax-exclusive files (US style: prices without tax, tax added at the end) are recognised by the
//!   totals: tax = the `LineItem/Tax/Amount` lines, else `Total[@TotalType="TransactionTaxAmount"]`,
//!   else the sum of the items' own `Tax/Amount`. If the grand total equals the lines, the prices
//!   include tax and nothing changes. If it equals lines + tax, the tax is added to the lines
//!   (each item its own `Tax/Amount` when these add up to the tax; otherwise the tax is shared out
//!   in proportion to the lines' amounts, discounts included, the last line taking the remainder),
//!   so every line, like the total, is what the customer paid. Anything else is the usual totals
//!   error. See README "Receipt formats" for the rule.
//! - Card: `LoyaltyAccount/LoyaltyCard/PrimaryAccountNumber`, else NCR `LoyaltyMembership/LoyaltyID`,
//!   else `LoyaltyAccount/LoyaltyAccountID` or `LoyaltyAccount/CustomerID` (`LoyaltyAccount` in the
//!   retail transaction or in a line item). Tender (payment) card numbers are never read.
//! - Original of a return: `TransactionLink/SequenceNumber` (in the transaction or inside `Return`).

#[cfg(test)]
use encoding_rs::Encoding;
use protocol::v1::{LineKind, OriginalReceipt, Receipt, ReceiptLine};
use rust_decimal::Decimal;

use super::text::parse_datetime;
use super::xml::{self, El};
use super::{card, cash_tolerance, check_currency, finish, make_line, Draft, FileReceipts, ParseContext, ParseError};

pub(crate) fn parse_each(src: &str, ctx: &ParseContext, out: &mut FileReceipts) -> Result<(), ParseError> {
    let doc = xml::parse(src)?;
    let root = doc.root();
    // Each transaction with the element its extract is wrapped in: its POSLog (one or several
    // POSLog elements, at the root, under another root or in a SOAP body), or the root.
    let logs: Vec<El> = root.find_all("POSLog").collect();
    let txs: Vec<(El, El)> = if !logs.is_empty() {
        logs.iter()
            .flat_map(|log| log.children_named("Transaction").map(move |tx| (tx, *log)))
            .collect()
    } else if root.name() == "Transaction" {
        vec![(root, root)]
    } else if matches!(root.name(), "Envelope" | "Body") {
        // a transaction posted alone in a SOAP message
        root.find_all("Transaction")
            .filter(|tx| !tx.has_ancestor("Transaction"))
            .map(|tx| (tx, root))
            .collect()
    } else {
        Vec::new()
    };
    if txs.is_empty() && logs.is_empty() {
        return Err(ParseError::new(
            "not a POSLog file: no <POSLog> element, and the root element is not a <Transaction>",
        )
        .line(root.line())
        .field(root.name().to_string()));
    }
    for (tx, around) in txs {
        let rt = tx.child("RetailTransaction");
        if let Some(kind) = skipped_kind(tx, rt) {
            out.skip(kind);
            continue;
        }
        let Some(rt) = rt else { continue };
        out.take(transaction(tx, rt, ctx), "xml", || {
            (receipt_no(tx, rt), tx.standalone(around))
        });
    }
    Ok(())
}

/// All receipts, or the first error (tests and callers that want the whole file or nothing).
#[cfg(test)]
pub fn parse(bytes: &[u8], legacy: &'static Encoding, ctx: &ParseContext) -> Result<Vec<Receipt>, ParseError> {
    let mut out = FileReceipts::new(super::FormatKind::Poslog, String::new());
    parse_each(&super::text::decode(bytes, legacy)?.0, ctx, &mut out)?;
    match out.bad.is_empty() {
        true => Ok(out.receipts),
        false => Err(out.bad.swap_remove(0).error),
    }
}

/// A flag as attribute or as child element (`<TrainingModeFlag>true</TrainingModeFlag>`).
fn flag(el: El, name: &str) -> bool {
    el.flag(name)
        || el
            .child(name)
            .is_some_and(|c| matches!(c.text().trim().to_ascii_lowercase().as_str(), "true" | "1"))
}

fn status(el: El) -> Option<String> {
    el.attr("TransactionStatus")
        .map(str::to_string)
        .or_else(|| el.text_of(&["TransactionStatus"]))
        .map(|s| s.trim().to_ascii_lowercase())
}

fn skipped_kind(tx: El, rt: Option<El>) -> Option<&'static str> {
    let Some(rt) = rt else {
        return Some("control");
    };
    if flag(tx, "TrainingModeFlag") || flag(rt, "TrainingModeFlag") {
        return Some("training");
    }
    let st = status(tx).or_else(|| status(rt)).unwrap_or_default();
    if flag(tx, "CancelFlag") || flag(tx, "VoidFlag") || matches!(st.as_str(), "voided" | "canceled" | "cancelled") {
        return Some("voided");
    }
    if flag(tx, "SuspendFlag") || flag(rt, "SuspendFlag") || st == "suspended" {
        return Some("suspended");
    }
    None
}

fn receipt_no(tx: El, rt: El) -> Option<String> {
    text(tx, &["SequenceNumber"])
        .or_else(|| text(tx, &["ReceiptNumber"]))
        .or_else(|| text(rt, &["ReceiptNumber"]))
        .or_else(|| text(tx, &["TransactionID"]))
}

fn opt_dec(parent: El, name: &str) -> Result<Option<Decimal>, ParseError> {
    parent.child(name).map(|e| e.decimal()).transpose()
}

fn text(parent: El, path: &[&str]) -> Option<String> {
    parent.text_of(path).filter(|s| !s.is_empty())
}

fn time_el<'a>(tx: El<'a>, rt: El<'a>) -> Option<El<'a>> {
    let typed = |el: El<'a>| {
        el.children_named("POSLogDateTime").find(|d| {
            d.attr("TypeCode")
                .is_some_and(|t| t.eq_ignore_ascii_case("Transaction"))
        })
    };
    rt.child("ReceiptDateTime")
        .or_else(|| typed(tx))
        .or_else(|| typed(rt))
        .or_else(|| tx.child("EndDateTime"))
        .or_else(|| rt.child("EndDateTime"))
        .or_else(|| tx.child("POSLogDateTime"))
        .or_else(|| rt.child("POSLogDateTime"))
}

/// A line read from the file with its own tax amount (tax-exclusive files), if it has one.
struct Read {
    line: ReceiptLine,
    tax: Option<Decimal>,
}

fn transaction(tx: El, rt: El, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let no = receipt_no(tx, rt).ok_or_else(|| {
        ParseError::new("transaction has no SequenceNumber, ReceiptNumber or TransactionID (the receipt number)")
            .line(tx.line())
            .field("SequenceNumber")
    })?;
    let time_el = time_el(tx, rt).ok_or_else(|| {
        ParseError::new("transaction has no ReceiptDateTime, POSLogDateTime TypeCode=\"Transaction\" or EndDateTime")
            .line(tx.line())
            .field("EndDateTime")
    })?;
    let issued_at = parse_datetime(&time_el.text(), &[], &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date-time")
            .line(time_el.line())
            .field(time_el.name().to_string())
            .value(time_el.text().trim())
    })?;
    if let Some(c) = tx.child("CurrencyCode").or_else(|| rt.child("CurrencyCode")) {
        check_currency(&c.text(), ctx, Some(c.line()), "CurrencyCode")?;
    }
    let mut d = Draft::new(Some(tx.line()), no.clone(), issued_at);

    let loyalty_account = rt
        .child("LoyaltyAccount")
        .or_else(|| rt.children_named("LineItem").find_map(|li| li.child("LoyaltyAccount")));
    let card_el = loyalty_account
        .and_then(|a| a.path(&["LoyaltyCard", "PrimaryAccountNumber"]))
        .or_else(|| {
            rt.children_named("LineItem")
                .find_map(|li| li.path(&["LoyaltyMembership", "LoyaltyID"]))
        })
        .or_else(|| loyalty_account.and_then(|a| a.child("LoyaltyAccountID")))
        .or_else(|| loyalty_account.and_then(|a| a.child("CustomerID")));
    if let Some(c) = card_el {
        d.card = card(&c.text(), Some(c.line()), c.name())?;
    }

    let mut lines: Vec<Read> = Vec::new();
    let mut tax_lines: Option<Decimal> = None;
    let mut link = rt.child("TransactionLink");
    for li in rt.children_named("LineItem") {
        let line_voided = li.flag("VoidFlag") || li.flag("CancelFlag");
        for item in li.children() {
            if line_voided || item.flag("VoidFlag") || item.flag("CancelFlag") {
                // A voided line with a negative amount is the entry that voids an earlier line
                // (NCR ACS writes the correction as its own line; the line it voids stays
                // unflagged): that earlier line goes. A voided line of its own amount is left out.
                if matches!(item.name(), "Sale" | "Return") {
                    cancel_voided(&mut lines, item)?;
                }
                continue;
            }
            match item.name() {
                "Sale" | "Return" => {
                    let kind = if item.name() == "Return" {
                        LineKind::Return
                    } else {
                        LineKind::Sale
                    };
                    if kind == LineKind::Return && link.is_none() {
                        link = item.child("TransactionLink");
                    }
                    let tax = item
                        .children_named("Tax")
                        .filter_map(|t| t.child("Amount"))
                        .map(|e| e.decimal())
                        .try_fold(None, |acc: Option<Decimal>, a| {
                            a.map(|a| Some(acc.unwrap_or_default() + a))
                        })?;
                    let line = item_line(item, kind)?;
                    // A return's tax goes back with it: same sign as the line.
                    let tax = tax.map(|t| {
                        if line.line_total.is_sign_negative() {
                            -t.abs()
                        } else {
                            t
                        }
                    });
                    lines.push(Read { line, tax });
                    for m in item.children_named("RetailPriceModifier") {
                        if let Some(a) = m.child("Amount") {
                            let amount = a.decimal()?;
                            let name = text(m, &["Description"])
                                .or_else(|| text(m, &["ReasonCode"]))
                                .unwrap_or_else(|| "price modifier".into());
                            lines.push(Read {
                                line: discount(name, amount, a)?,
                                tax: None,
                            });
                        }
                    }
                }
                "Discount" => {
                    if let Some(a) = item.child("Amount") {
                        let amount = a.decimal()?;
                        let name = text(item, &["Description"])
                            .or_else(|| text(item, &["ReasonCode"]))
                            .unwrap_or_else(|| "discount".into());
                        lines.push(Read {
                            line: discount(name, amount, a)?,
                            tax: None,
                        });
                    }
                }
                "Tax" => {
                    if let Some(a) = item.child("Amount") {
                        tax_lines = Some(tax_lines.unwrap_or_default() + a.decimal()?);
                    }
                }
                "LoyaltyReward" => {
                    if item.flag("summarizedActivity") && !item.flag("detailedData") {
                        continue;
                    }
                    let Some(a) = item.child("ExtendedRewardAmount").or_else(|| item.child("Amount")) else {
                        continue;
                    };
                    let amount = a.decimal()?;
                    if amount < Decimal::ZERO {
                        let name = match text(item, &["PromotionID"]) {
                            Some(p) => format!("loyalty reward {p}"),
                            None => "loyalty reward".into(),
                        };
                        lines.push(Read {
                            line: discount(name, amount, a)?,
                            tax: None,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(l) = link {
        let no = text(l, &["SequenceNumber"]).ok_or_else(|| {
            ParseError::new("TransactionLink has no SequenceNumber")
                .line(l.line())
                .field("TransactionLink/SequenceNumber")
        })?;
        d.original = Some(OriginalReceipt {
            receipt_id: None,
            pos_receipt_no: Some(no),
        });
    }
    let total_el = rt
        .children_named("Total")
        .find(|t| t.attr("TotalType") == Some("TransactionGrandAmount"))
        .ok_or_else(|| {
            ParseError::new("no Total with TotalType=\"TransactionGrandAmount\"")
                .line(rt.line())
                .field("Total")
        })?;
    let total = total_el.decimal()?;
    let tax_total = match tax_lines {
        Some(t) => Some(t),
        None => match rt
            .children_named("Total")
            .find(|t| t.attr("TotalType") == Some("TransactionTaxAmount"))
        {
            Some(t) => Some(t.decimal()?),
            None => lines.iter().filter_map(|l| l.tax).reduce(|a, b| a + b),
        },
    };
    add_tax_if_exclusive(&mut lines, total, tax_total, ctx, total_el.line())?;
    d.lines = lines.into_iter().map(|r| r.line).collect();
    d.total = Some(total);
    (d.total_field, d.total_line) = ("Total".into(), Some(total_el.line()));
    finish(d, ctx)
}

/// `item` is a voided `Sale`/`Return`. When its amount is negative it is the correction entry of an
/// earlier line (same item — else any item — with the opposite amount): that line, the latest one,
/// is taken out. A voided item with a positive amount is simply left out.
fn cancel_voided(lines: &mut Vec<Read>, item: El) -> Result<(), ParseError> {
    let Some(a) = item.child("ExtendedAmount") else {
        return Ok(());
    };
    let amount = a.decimal()?;
    if !amount.is_sign_negative() || amount.is_zero() {
        return Ok(());
    }
    let sku = text(item, &["ItemID"]).or_else(|| text(item, &["POSIdentity", "POSItemID"]));
    let reverses = |r: &Read| r.line.kind != LineKind::Discount && r.line.line_total == -amount;
    let at = lines
        .iter()
        .rposition(|r| reverses(r) && r.line.sku == sku)
        .or_else(|| lines.iter().rposition(reverses));
    if let Some(i) = at {
        lines.remove(i);
    }
    Ok(())
}

/// Tax-exclusive prices: when the grand total is the lines plus the tax (and not the lines alone),
/// add the tax to the lines so that they are what the customer paid (see the module docs).
fn add_tax_if_exclusive(
    lines: &mut [Read],
    total: Decimal,
    tax: Option<Decimal>,
    ctx: &ParseContext,
    total_line: usize,
) -> Result<(), ParseError> {
    let Some(tax) = tax.filter(|t| !t.is_zero()) else {
        return Ok(());
    };
    let overflow = || ParseError::new("amounts out of range").line(total_line).field("Total");
    let mut sum = Decimal::ZERO;
    for r in lines.iter() {
        sum = sum.checked_add(r.line.line_total).ok_or_else(overflow)?;
    }
    let tol = cash_tolerance(ctx);
    let with_tax = sum.checked_add(tax).ok_or_else(overflow)?;
    let inclusive_gap = (total - sum).abs();
    let exclusive_gap = (total - with_tax).abs();
    if inclusive_gap <= tol && inclusive_gap <= exclusive_gap {
        return Ok(()); // prices include tax: compare lines with the total as they are
    }
    if exclusive_gap > tol {
        return Ok(()); // neither: `finish` reports the totals error
    }
    let own: Option<Decimal> = lines.iter().filter_map(|r| r.tax).reduce(|a, b| a + b);
    let shares: Vec<Decimal> = if own == Some(tax) {
        lines.iter().map(|r| r.tax.unwrap_or_default()).collect()
    } else {
        if sum.is_zero() {
            return Err(
                ParseError::new(format!("tax {tax} cannot be shared out over lines that add up to 0"))
                    .line(total_line)
                    .field("Tax"),
            );
        }
        let idx: Vec<usize> = (0..lines.len())
            .filter(|i| lines[*i].line.kind != LineKind::Rounding)
            .collect();
        let mut shares = vec![Decimal::ZERO; lines.len()];
        let mut given = Decimal::ZERO;
        for (n, i) in idx.iter().enumerate() {
            let share = if n + 1 == idx.len() {
                tax - given
            } else {
                (tax * lines[*i].line.line_total / sum).round_dp(2)
            };
            shares[*i] = share;
            given += share;
        }
        shares
    };
    for (r, share) in lines.iter_mut().zip(shares) {
        if share.is_zero() {
            continue;
        }
        let l = &mut r.line;
        l.line_total = l.line_total.checked_add(share).ok_or_else(overflow)?;
        l.unit_price = if l.quantity.is_zero() {
            l.line_total
        } else {
            (l.line_total / l.quantity).abs().round_dp(6)
                * if l.kind == LineKind::Discount {
                    -Decimal::ONE
                } else {
                    Decimal::ONE
                }
        };
    }
    Ok(())
}

fn item_name(item: El) -> Option<String> {
    text(item, &["Description"])
        .or_else(|| text(item, &["ItemDescription"]))
        .or_else(|| {
            ["Description", "Name", "ItemName"]
                .iter()
                .find_map(|a| item.attr(a))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| {
            let id = item.child("ItemID")?;
            ["Description", "Name"]
                .iter()
                .find_map(|a| id.attr(a))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
}

fn item_line(item: El, kind: LineKind) -> Result<ReceiptLine, ParseError> {
    let sku = text(item, &["ItemID"]).or_else(|| text(item, &["POSIdentity", "POSItemID"]));
    let name = item_name(item).or_else(|| sku.clone()).ok_or_else(|| {
        ParseError::new("line item has neither Description, ItemDescription nor ItemID")
            .line(item.line())
            .field(format!("{}/Description", item.name()))
    })?;
    let category = text(item, &["MerchandiseHierarchy"]);
    let qty = opt_dec(item, "Quantity")?;
    let unit = match opt_dec(item, "ActualSalesUnitPrice")? {
        Some(u) => Some(u),
        None => opt_dec(item, "RegularSalesUnitPrice")?,
    };
    let total = opt_dec(item, "ExtendedAmount")?;
    let vat = item.path(&["Tax", "Percent"]).map(|e| e.decimal()).transpose()?;
    make_line(Some(kind), name, sku, category, qty, unit, total, vat).map_err(|e| e.line(item.line()))
}

fn discount(name: String, amount: Decimal, at: El) -> Result<ReceiptLine, ParseError> {
    make_line(
        Some(LineKind::Discount),
        name,
        None,
        None,
        None,
        None,
        Some(amount),
        None,
    )
    .map_err(|e| e.line(at.line()))
}
