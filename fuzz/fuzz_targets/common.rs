//! Shared by the receipt-format fuzz targets: parse `data` with one format and check the
//! parser's contract — never panic, and every receipt it returns is internally consistent.
use till_agent::formats::{parse_file, parse_file_each, FormatKind, FormatSpec, ParseContext, PohodaSpec};

#[allow(dead_code)]
pub fn parse_as(kind: FormatKind, data: &[u8]) {
    parse_as_in(kind, data, protocol::Currency::CZK)
}

/// [`parse_as`] for a program in `currency` (the Square seeds are in EUR).
#[allow(dead_code)]
pub fn parse_as_in(kind: FormatKind, data: &[u8], currency: protocol::Currency) {
    let spec = FormatSpec {
        format: kind,
        pohoda: PohodaSpec {
            low: Some("12".parse().unwrap()),
            third: None,
            high: Some("21".parse().unwrap()),
        },
        ..FormatSpec::default()
    };
    let ctx = ParseContext {
        store_id: "S1".into(),
        till_id: "T1".into(),
        currency,
        cash_step: currency.cash_step(),
        zone: chrono::FixedOffset::east_opt(3600).unwrap().into(),
    };
    if let Ok(receipts) = parse_file(&spec, "fuzz.dat", data, &ctx) {
        for r in receipts {
            // The idempotency key is the one derived from the receipt's identity.
            assert_eq!(
                r.id,
                protocol::ReceiptId::derive(&r.store_id, &r.till_id, &r.pos_receipt_no, &r.issued_at)
            );
        }
    }
    // Receipt by receipt: each bad receipt's extract is read again by the same reader without a
    // panic.
    if let Ok(each) = parse_file_each(&spec, "fuzz.dat", data, &ctx) {
        for b in each.bad.iter().take(4) {
            let _ = parse_file_each(&spec, "extract", b.extract.as_bytes(), &ctx);
        }
    }
}
