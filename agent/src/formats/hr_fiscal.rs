//! Croatian fiscalisation request `RacunZahtjev` (Porezna uprava schema `f73`), also inside a SOAP
//! envelope. Totals and VAT only — these receipts have no items, yet still count for turnover-based
//! discounts and total-based points.
//!
//! - `pos_receipt_no` = `BrRac`: `BrOznRac/OznPosPr/OznNapUr` (the printed receipt number, e.g.
//!   `1/123/1`); `issued_at` = `DatVrijeme` (`dd.mm.yyyyThh:mm:ss`, local time).
//! - `total` = `IznosUkupno` (negative for a cancellation); `vat` = one summary per `Pdv/Porez`
//!   (`Stopa` rate, `Osnovica` base, `Iznos` amount). `Pnp` (consumption tax) and `OstaliPor` are not
//!   VAT and are not summarised.
//! - `lines` stays empty. The total is not cross-checked against the tax rows: the request also
//!   carries exempt, margin and non-taxable amounts, public samples do not add up, and the tax
//!   authority validates the sums; `IznosUkupno` is authoritative.
//! - No currency in the file (HRK before 2023, EUR since): the program currency applies. No card.

use encoding_rs::Encoding;
use protocol::v1::{Receipt, VatSummary};
use rust_decimal::Decimal;

use super::text::{decode, parse_datetime, parse_decimal};
use super::xml::{self, El};
use super::{finish, Draft, ParseContext, ParseError};

fn required<'a>(parent: El<'a>, name: &str) -> Result<El<'a>, ParseError> {
    parent.child(name).ok_or_else(|| {
        ParseError::new(format!("<{}> has no <{name}>", parent.name()))
            .line(parent.line())
            .field(name.to_string())
    })
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

pub fn parse(bytes: &[u8], legacy: &'static Encoding, ctx: &ParseContext) -> Result<Vec<Receipt>, ParseError> {
    let (src, _) = decode(bytes, legacy)?;
    let doc = xml::parse(&src)?;
    let root = doc.root();
    let rz = root.find("RacunZahtjev").ok_or_else(|| {
        ParseError::new("not a Croatian fiscal receipt: no <RacunZahtjev> element")
            .line(root.line())
            .field(root.name().to_string())
    })?;
    let racun = required(rz, "Racun")?;
    let br = required(racun, "BrRac")?;
    let mut parts = Vec::new();
    for p in ["BrOznRac", "OznPosPr", "OznNapUr"] {
        let t = required(br, p)?.text().trim().to_string();
        if t.is_empty() {
            return Err(ParseError::new("receipt number part is empty")
                .line(br.line())
                .field(p.to_string()));
        }
        parts.push(t);
    }
    let at = required(racun, "DatVrijeme")?;
    let issued_at = parse_datetime(&at.text(), &[], &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date-time (expected dd.mm.yyyyThh:mm:ss)")
            .line(at.line())
            .field("DatVrijeme")
            .value(at.text().trim())
    })?;
    let mut d = Draft::new(Some(racun.line()), parts.join("/"), issued_at);
    d.total = Some(dec(required(racun, "IznosUkupno")?)?);
    if let Some(pdv) = racun.child("Pdv") {
        for p in pdv.children_named("Porez") {
            d.vat.push(VatSummary {
                rate: dec(required(p, "Stopa")?)?,
                base: dec(required(p, "Osnovica")?)?,
                amount: dec(required(p, "Iznos")?)?,
            });
        }
    }
    finish(d, ctx).map(|r| vec![r])
}
