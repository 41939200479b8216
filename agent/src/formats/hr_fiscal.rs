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
//! - A file may hold several requests (a POS's log of what it sent, SOAP envelopes included): each
//!   `RacunZahtjev` / `RacunPDZahtjev` (a receipt with an accompanying document) is read on its own,
//!   a bad one set aside with its extract. A `ProvjeraZahtjev` is the fiscal service's test request
//!   (skipped, counted "verification"); a `PromijeniNacPlacZahtjev` changes the payment method of a
//!   receipt already sent, it is no purchase (skipped, counted "payment method change").

use protocol::v1::{Receipt, VatSummary};

use super::text::parse_datetime;
use super::xml::{self, El};
use super::{finish, Draft, FileReceipts, ParseContext, ParseError};

/// Requests that are receipts.
const RECEIPTS: [&str; 2] = ["RacunZahtjev", "RacunPDZahtjev"];
/// Requests that hold a receipt but are no purchase, with the name they are counted under.
const NOT_PURCHASES: [(&str, &str); 2] = [
    ("ProvjeraZahtjev", "verification"),
    ("PromijeniNacPlacZahtjev", "payment method change"),
];
const ALL: [&str; 4] = [RECEIPTS[0], RECEIPTS[1], NOT_PURCHASES[0].0, NOT_PURCHASES[1].0];

fn required<'a>(parent: El<'a>, name: &str) -> Result<El<'a>, ParseError> {
    parent.child(name).ok_or_else(|| {
        ParseError::new(format!("<{}> has no <{name}>", parent.name()))
            .line(parent.line())
            .field(name.to_string())
    })
}

pub(crate) fn parse_each(src: &str, ctx: &ParseContext, out: &mut FileReceipts) -> Result<(), ParseError> {
    let doc = xml::parse(src)?;
    let root = doc.root();
    let requests: Vec<El> = root.find_all_of(&ALL).collect();
    if requests.is_empty() {
        return Err(
            ParseError::new("not a Croatian fiscal receipt: no <RacunZahtjev> element")
                .line(root.line())
                .field(root.name().to_string()),
        );
    }
    for rz in requests {
        if let Some((_, kind)) = NOT_PURCHASES.iter().find(|(n, _)| *n == rz.name()) {
            out.skip(kind);
            continue;
        }
        out.take(receipt(rz, ctx), "xml", || (number(rz).ok(), rz.standalone(root)));
    }
    Ok(())
}

/// `BrOznRac/OznPosPr/OznNapUr` of the request's `Racun`.
fn number(rz: El<'_>) -> Result<String, ParseError> {
    let br = required(required(rz, "Racun")?, "BrRac")?;
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
    Ok(parts.join("/"))
}

fn receipt(rz: El<'_>, ctx: &ParseContext) -> Result<Receipt, ParseError> {
    let racun = required(rz, "Racun")?;
    let no = number(rz)?;
    let at = required(racun, "DatVrijeme")?;
    let issued_at = parse_datetime(&at.text(), &[], &ctx.zone).ok_or_else(|| {
        ParseError::new("not a date-time (expected dd.mm.yyyyThh:mm:ss)")
            .line(at.line())
            .field("DatVrijeme")
            .value(at.text().trim())
    })?;
    let mut d = Draft::new(Some(racun.line()), no, issued_at);
    d.total = Some(required(racun, "IznosUkupno")?.decimal()?);
    if let Some(pdv) = racun.child("Pdv") {
        for p in pdv.children_named("Porez") {
            d.vat.push(VatSummary {
                rate: required(p, "Stopa")?.decimal()?,
                base: required(p, "Osnovica")?.decimal()?,
                amount: required(p, "Iznos")?.decimal()?,
            });
        }
    }
    finish(d, ctx)
}
