//! ARTS POSLog XML (NRF/ARTS IXRetail, incl. NCR ACS extensions). Names are matched on local names,
//! so both ARTS namespaces and vendor prefixes work.
//!
//! - One receipt per `Transaction` holding a `RetailTransaction`; other transactions (sign-on,
//!   `ControlTransaction`, tender control) are skipped, as are `TrainingModeFlag="true"` and
//!   `CancelFlag="true"` transactions and line items with `VoidFlag`/`CancelFlag`. A file with no
//!   retail transaction yields no receipts (not an error).
//! - `pos_receipt_no` = `Transaction/SequenceNumber`; time = `RetailTransaction/ReceiptDateTime`, else
//!   `Transaction/EndDateTime` (local time unless it has an offset). `RetailStoreID`/`WorkstationID`
//!   are the POS's own ids and are not checked against the till's. `CurrencyCode` must be the
//!   program currency.
//! - Lines: `LineItem/Sale` → sale (negative `Quantity` → return), `LineItem/Return` → return;
//!   name `Description`, sku `ItemID` (else `POSIdentity/POSItemID`), category `MerchandiseHierarchy`,
//!   unit price `ActualSalesUnitPrice` else `RegularSalesUnitPrice`, total `ExtendedAmount`, VAT
//!   `Tax/Percent`. Each `RetailPriceModifier/Amount` under an item, each `LineItem/Discount/Amount`
//!   and each `LoyaltyReward` with a negative `ExtendedRewardAmount`/`Amount` → discount line.
//!   NCR ACS reports a monetary reward twice (`acs:detailedData` and a summary with only
//!   `acs:summarizedActivity`): the summary-only copy is skipped.
//! - Total: `Total[@TotalType="TransactionGrandAmount"]` (required).
//! - Card: `LoyaltyAccount/LoyaltyCard/PrimaryAccountNumber`, else NCR `LoyaltyMembership/LoyaltyID`,
//!   else `LoyaltyAccount/LoyaltyAccountID` or `LoyaltyAccount/CustomerID`. Tender (payment) card
//!   numbers are never read.
//! - Original of a return: `TransactionLink/SequenceNumber` (in the transaction or inside `Return`).

use encoding_rs::Encoding;
use protocol::v1::{LineKind, OriginalReceipt, Receipt, ReceiptLine};
use rust_decimal::Decimal;

use super::text::{decode, parse_datetime, parse_decimal};
use super::xml::{self, El};
use super::{card, check_currency, finish, make_line, Draft, ParseContext, ParseError};

pub fn parse(bytes: &[u8], legacy: &'static Encoding, ctx: &ParseContext) -> Result<Vec<Receipt>, ParseError> {
    let (src, _) = decode(bytes, legacy)?;
    let doc = xml::parse(&src)?;
    let root = doc.root();
    let txs: Vec<El> = match root.name() {
        "POSLog" => root.children_named("Transaction").collect(),
        "Transaction" => vec![root],
        other => {
            return Err(
                ParseError::new("not a POSLog file: root element should be <POSLog> or <Transaction>")
                    .line(root.line())
                    .field(other.to_string()),
            )
        }
    };
    let mut out = Vec::new();
    for tx in txs {
        if tx.flag("TrainingModeFlag") || tx.flag("CancelFlag") {
            continue;
        }
        if let Some(rt) = tx.child("RetailTransaction") {
            out.push(transaction(tx, rt, ctx)?);
        }
    }
    Ok(out)
}

fn dec(el: El<'_>) -> Result<Decimal, ParseError> {
    let raw = el.text();
    let t = raw.trim();
    parse_decimal(t, Some('.')).ok_or_else(|| {
        ParseError::new("not a number")
            .line(el.line())
            .field(el.name().to_string())
            .value(t)
    })
}

fn opt_dec(parent: El<'_>, name: &str) -> Result<Option<Decimal>, ParseError> {
    parent.child(name).map(dec).transpose()
}

fn text(parent: El<'_>, path: &[&str]) -> Option<String> {
    parent.text_of(path).filter(|s| !s.is_empty())
}

fn transaction(tx: El<'_>, rt: El<'_>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let no = text(tx, &["SequenceNumber"]).ok_or_else(|| {
        ParseError::new("transaction has no SequenceNumber (the receipt number)")
            .line(tx.line())
            .field("SequenceNumber")
    })?;
    let time_el = rt
        .child("ReceiptDateTime")
        .or_else(|| tx.child("EndDateTime"))
        .ok_or_else(|| {
            ParseError::new("transaction has no ReceiptDateTime or EndDateTime")
                .line(tx.line())
                .field("EndDateTime")
        })?;
    let issued_at = parse_datetime(&time_el.text(), &[], ctx.tz_offset).ok_or_else(|| {
        ParseError::new("not a date-time")
            .line(time_el.line())
            .field(time_el.name().to_string())
            .value(time_el.text().trim())
    })?;
    if let Some(c) = tx.child("CurrencyCode").or_else(|| rt.child("CurrencyCode")) {
        check_currency(&c.text(), ctx, Some(c.line()), "CurrencyCode")?;
    }
    let mut d = Draft::new(Some(tx.line()), no, issued_at);

    let card_el = rt
        .path(&["LoyaltyAccount", "LoyaltyCard", "PrimaryAccountNumber"])
        .or_else(|| {
            rt.children_named("LineItem")
                .find_map(|li| li.path(&["LoyaltyMembership", "LoyaltyID"]))
        })
        .or_else(|| rt.path(&["LoyaltyAccount", "LoyaltyAccountID"]))
        .or_else(|| rt.path(&["LoyaltyAccount", "CustomerID"]));
    if let Some(c) = card_el {
        d.card = card(&c.text(), Some(c.line()), c.name())?;
    }

    let mut link = rt.child("TransactionLink");
    for li in rt.children_named("LineItem") {
        if li.flag("VoidFlag") || li.flag("CancelFlag") {
            continue;
        }
        for item in li.children() {
            if item.flag("VoidFlag") || item.flag("CancelFlag") {
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
                    d.lines.push(item_line(item, kind)?);
                    for m in item.children_named("RetailPriceModifier") {
                        if let Some(a) = m.child("Amount") {
                            let amount = dec(a)?;
                            let name = text(m, &["Description"])
                                .or_else(|| text(m, &["ReasonCode"]))
                                .unwrap_or_else(|| "price modifier".into());
                            d.lines.push(discount(name, amount, a)?);
                        }
                    }
                }
                "Discount" => {
                    if let Some(a) = item.child("Amount") {
                        let amount = dec(a)?;
                        let name = text(item, &["Description"])
                            .or_else(|| text(item, &["ReasonCode"]))
                            .unwrap_or_else(|| "discount".into());
                        d.lines.push(discount(name, amount, a)?);
                    }
                }
                "LoyaltyReward" => {
                    if item.flag("summarizedActivity") && !item.flag("detailedData") {
                        continue;
                    }
                    let Some(a) = item.child("ExtendedRewardAmount").or_else(|| item.child("Amount")) else {
                        continue;
                    };
                    let amount = dec(a)?;
                    if amount < Decimal::ZERO {
                        let name = match text(item, &["PromotionID"]) {
                            Some(p) => format!("loyalty reward {p}"),
                            None => "loyalty reward".into(),
                        };
                        d.lines.push(discount(name, amount, a)?);
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
    let total = rt
        .children_named("Total")
        .find(|t| t.attr("TotalType") == Some("TransactionGrandAmount"))
        .ok_or_else(|| {
            ParseError::new("no Total with TotalType=\"TransactionGrandAmount\"")
                .line(rt.line())
                .field("Total")
        })?;
    d.total = Some(dec(total)?);
    (d.total_field, d.total_line) = ("Total".into(), Some(total.line()));
    finish(d, ctx)
}

fn item_line(item: El<'_>, kind: LineKind) -> Result<ReceiptLine, ParseError> {
    let sku = text(item, &["ItemID"]).or_else(|| text(item, &["POSIdentity", "POSItemID"]));
    let name = text(item, &["Description"]).or_else(|| sku.clone()).ok_or_else(|| {
        ParseError::new("line item has neither Description nor ItemID")
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
    let vat = item.path(&["Tax", "Percent"]).map(dec).transpose()?;
    make_line(Some(kind), name, sku, category, qty, unit, total, vat).map_err(|e| e.line(item.line()))
}

fn discount(name: String, amount: Decimal, at: El<'_>) -> Result<ReceiptLine, ParseError> {
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
