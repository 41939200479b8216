//! Stormware POHODA sales receipts (`prodejka`, schema `http://www.stormware.cz/schema/version_2/
//! prodejka.xsd`), the common Czech/Slovak accounting and POS export. Names are local names.
//!
//! - The file is a `dataPack` of `dataPackItem`s, each holding one `prodejka`, or a bare `prodejka`.
//!   One receipt per `prodejka`, each read on its own (a bad one does not stop the others).
//! - `pos_receipt_no` = `prodejkaHeader/number/numberRequested`, else `prodejkaHeader/number/ids`,
//!   else `prodejkaHeader/id`, else the `dataPackItem`'s `id` attribute.
//! - Time: `prodejkaHeader/date` (a date; POHODA keeps no time of day on a receipt: local midnight),
//!   or a date-time where the export writes one.
//! - Lines: `prodejkaDetail/prodejkaItem`; name `text` (else the stock code), sku
//!   `stockItem/stockItem/ids`, quantity `quantity`. Amounts in `homeCurrency`: the line total is
//!   `priceSum` (with VAT) when present; otherwise `unitPrice` × quantity, which includes VAT when
//!   `payVAT` is true and is without VAT when `payVAT` is false or missing (POHODA's default) — then
//!   the item's VAT rate is added. `discountPercentage` is applied. Negative quantity → return.
//! - VAT: `rateVAT` is a level, not a rate — `none`, `low`, `third`, `high` — mapped to percent by
//!   `[receipts.pohoda]` in agent.toml (the rates change by law: CZ high 21 / low 12 since 2024,
//!   SK high 23 / low 19 / third 5 since 2025). `none` is 0. A line whose level has no configured
//!   rate keeps no VAT rate when its price includes VAT, and is an error (naming the level and the
//!   setting) when the price is without VAT.
//! - Total: `prodejkaSummary/homeCurrency`: `priceNone` + `priceLowSum` + `price3Sum` +
//!   `priceHighSum` + `round/priceRound` when the summary has them; else the sum of the lines.
//! - Currency: `prodejkaHeader`/`prodejkaSummary` `foreignCurrency/currency/ids`, if any, must be
//!   the program currency (home-currency amounts are read).
//! - No loyalty card in the format: a card scanned at the till is attached by time, as for every
//!   card-less receipt.

use protocol::v1::{LineKind, Receipt, ReceiptLine};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::text::parse_datetime;
use super::xml::{self, El};
use super::{check_currency, finish, make_line, Draft, FileReceipts, ParseContext, ParseError};

/// `[receipts.pohoda]`: VAT percent per POHODA VAT level (strings, e.g. `high = "21"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PohodaSpec {
    pub low: Option<Decimal>,
    pub third: Option<Decimal>,
    pub high: Option<Decimal>,
}

impl PohodaSpec {
    /// The VAT percent of a level (`none` is 0); `Err` for a name that is not a level.
    pub(crate) fn rate(&self, level: &str) -> Result<Option<Decimal>, ()> {
        match level.trim() {
            "none" | "historyNone" => Ok(Some(Decimal::ZERO)),
            "low" | "historyLow" => Ok(self.low),
            "third" | "historyThird" => Ok(self.third),
            "high" | "historyHigh" => Ok(self.high),
            _ => Err(()),
        }
    }
}

pub(crate) fn parse_each(
    spec: &PohodaSpec,
    src: &str,
    ctx: &ParseContext,
    out: &mut FileReceipts,
) -> Result<(), ParseError> {
    let doc = xml::parse(src)?;
    let root = doc.root();
    // Each receipt with its dataPackItem and the element its extract is wrapped in: the items of
    // every dataPack (the root, or several under another root), else every bare prodejka.
    let packs: Vec<El> = root.find_all("dataPack").collect();
    let docs: Vec<(El, Option<El>, El)> = if !packs.is_empty() {
        packs
            .iter()
            .flat_map(|pack| {
                pack.children_named("dataPackItem")
                    .filter_map(move |item| item.child("prodejka").map(|p| (p, Some(item), *pack)))
            })
            .collect()
    } else {
        root.find_all("prodejka").map(|p| (p, None, root)).collect()
    };
    if docs.is_empty() && packs.is_empty() {
        return Err(
            ParseError::new("not a POHODA receipt file: no <dataPack> or <prodejka> element")
                .line(root.line())
                .field(root.name().to_string()),
        );
    }
    for (p, item, around) in docs {
        out.take(receipt(spec, p, item, ctx), "xml", || {
            (receipt_no(p, item), item.unwrap_or(p).standalone(around))
        });
    }
    Ok(())
}

fn text(parent: El, path: &[&str]) -> Option<String> {
    parent.text_of(path).filter(|s| !s.is_empty())
}

fn opt_dec(parent: El, path: &[&str]) -> Result<Option<Decimal>, ParseError> {
    parent.path(path).map(|e| e.decimal()).transpose()
}

fn receipt_no(p: El, item: Option<El>) -> Option<String> {
    let h = p.child("prodejkaHeader")?;
    text(h, &["number", "numberRequested"])
        .or_else(|| text(h, &["number", "ids"]))
        .or_else(|| text(h, &["id"]))
        .or_else(|| item.and_then(|i| i.attr("id")).map(str::to_string))
}

fn receipt(spec: &PohodaSpec, p: El, item: Option<El>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let h = p.child("prodejkaHeader").ok_or_else(|| {
        ParseError::new("<prodejka> has no <prodejkaHeader>")
            .line(p.line())
            .field("prodejkaHeader")
    })?;
    let no = receipt_no(p, item).ok_or_else(|| {
        ParseError::new("receipt has no number (prodejkaHeader/number/numberRequested or dataPackItem id)")
            .line(h.line())
            .field("number")
    })?;
    let date = h
        .child("date")
        .ok_or_else(|| ParseError::new("receipt has no date").line(h.line()).field("date"))?;
    let raw_date = date.text().trim().to_string();
    let with_time = if raw_date.len() == 10 {
        format!("{raw_date}T00:00:00")
    } else {
        raw_date.clone()
    };
    let issued_at = parse_datetime(&with_time, &[], &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date (expected yyyy-mm-dd)")
            .line(date.line())
            .field("date")
            .value(&raw_date)
    })?;
    for el in [Some(h), p.child("prodejkaSummary")].into_iter().flatten() {
        if let Some(c) = el.path(&["foreignCurrency", "currency", "ids"]) {
            check_currency(&c.text(), ctx, Some(c.line()), "foreignCurrency/currency/ids")?;
        }
    }
    let mut d = Draft::new(Some(p.line()), no, issued_at);
    if let Some(detail) = p.child("prodejkaDetail") {
        for it in detail.children_named("prodejkaItem") {
            d.lines.push(line(spec, it)?);
        }
    }
    if let Some(hc) = p.path(&["prodejkaSummary", "homeCurrency"]) {
        let mut total: Option<Decimal> = None;
        for path in [
            &["priceNone"][..],
            &["priceLowSum"],
            &["price3Sum"],
            &["priceHighSum"],
            &["round", "priceRound"],
        ] {
            if let Some(v) = opt_dec(hc, path)? {
                total = Some(total.unwrap_or_default() + v);
            }
        }
        if total.is_some() {
            d.total = total;
            (d.total_field, d.total_line) = ("prodejkaSummary/homeCurrency".into(), Some(hc.line()));
        }
    }
    finish(d, ctx)
}

fn line(spec: &PohodaSpec, it: El) -> Result<ReceiptLine, ParseError> {
    let at = it.line();
    let sku = text(it, &["stockItem", "stockItem", "ids"]).or_else(|| text(it, &["code"]));
    let name = text(it, &["text"]).or_else(|| sku.clone()).ok_or_else(|| {
        ParseError::new("item has neither text nor a stock code")
            .line(at)
            .field("prodejkaItem/text")
    })?;
    let qty = opt_dec(it, &["quantity"])?.unwrap_or(Decimal::ONE);
    let level = text(it, &["rateVAT"]).unwrap_or_else(|| "none".into());
    let rate = spec.rate(&level).map_err(|_| {
        ParseError::new("unknown VAT level (none, low, third, high)")
            .line(at)
            .field("rateVAT")
            .value(&level)
    })?;
    let pay_vat = it
        .child("payVAT")
        .is_some_and(|e| e.text().trim().eq_ignore_ascii_case("true"));
    let hc = it.child("homeCurrency");
    let price_sum = match hc {
        Some(h) => opt_dec(h, &["priceSum"])?,
        None => None,
    };
    let unit = match hc {
        Some(h) => opt_dec(h, &["unitPrice"])?,
        None => None,
    };
    let discount = opt_dec(it, &["discountPercentage"])?.unwrap_or_default();
    let overflow = || ParseError::new("amount out of range").line(at).field("unitPrice");
    let keep = |v: Decimal| -> Result<Decimal, ParseError> {
        let factor = (Decimal::ONE_HUNDRED - discount) / Decimal::ONE_HUNDRED;
        v.checked_mul(factor).ok_or_else(overflow)
    };
    let (unit_gross, total) = match (price_sum, unit) {
        (Some(sum), _) => (None, sum),
        (None, Some(u)) => {
            let u = if pay_vat {
                u
            } else {
                let r = rate.ok_or_else(|| {
                    ParseError::new(format!(
                        "price is without VAT (payVAT is not true) and VAT level {level:?} has no rate: \
                         set [receipts.pohoda] {level} = \"<percent>\" in agent.toml"
                    ))
                    .line(at)
                    .field("rateVAT")
                    .value(&level)
                })?;
                u.checked_mul(Decimal::ONE + r / Decimal::ONE_HUNDRED)
                    .ok_or_else(overflow)?
            };
            let u = keep(u)?;
            (
                Some(u.round_dp(6)),
                qty.checked_mul(u).ok_or_else(overflow)?.round_dp(2),
            )
        }
        (None, None) => {
            return Err(ParseError::new("item has no homeCurrency/unitPrice or priceSum")
                .line(at)
                .field("homeCurrency/unitPrice"))
        }
    };
    let kind = if qty.is_sign_negative() {
        Some(LineKind::Return)
    } else {
        None
    };
    make_line(
        kind,
        name,
        sku,
        None,
        Some(qty),
        unit_gross.map(|u| u.abs()),
        Some(total),
        rate,
    )
    .map_err(|e| e.line(at))
}
