//! The demo program fixture (`fixtures/rules/demo-program.json`) loads, validates and computes
//! a worked example.

use chrono::{DateTime, NaiveDate};
use protocol::rules::*;
use protocol::v1::{
    Consents, Contact, Customer, CustomerName, CustomerState, LineKind, OriginalReceipt, Receipt, ReceiptLine,
};
use protocol::{CardId, Currency, CustomerId, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const DEMO: &str = include_str!("../../../fixtures/rules/demo-program.json");

fn demo() -> RulesSnapshot {
    serde_json::from_str(DEMO).unwrap_or_else(|e| panic!("fixtures/rules/demo-program.json: {e}"))
}

fn line(sku: &str, cat: &str, qty: Decimal, price: Decimal) -> ReceiptLine {
    ReceiptLine {
        sku: Some(sku.into()),
        name: sku.into(),
        category: Some(cat.into()),
        quantity: qty,
        unit_price: price,
        line_total: qty * price,
        vat_rate: Some(dec!(12)),
        kind: if qty.is_sign_negative() {
            LineKind::Return
        } else {
            LineKind::Sale
        },
    }
}

fn receipt(no: &str, when: &str, lines: Vec<ReceiptLine>) -> Receipt {
    let issued_at = DateTime::parse_from_rfc3339(when).unwrap();
    let (s, t) = (StoreId::from("CZ-PRG-01"), TillId::from("T1"));
    let goods: Decimal = lines.iter().map(|l| l.line_total).sum();
    Receipt {
        id: ReceiptId::derive(&s, &t, no, &issued_at),
        store_id: s,
        till_id: t,
        pos_receipt_no: no.into(),
        issued_at,
        currency: Currency::CZK,
        total: goods,
        card: None,
        original: None,
        lines,
        vat: vec![],
    }
}

#[test]
fn demo_program_loads_validates_and_round_trips() {
    let snap = demo();
    let p = &snap.program;
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(p.currency, Currency::CZK);
    assert_eq!(
        p.tiers
            .iter()
            .map(|t| (t.name.as_str(), t.threshold, t.discount_percent))
            .collect::<Vec<_>>(),
        vec![
            ("Bronze", dec!(0), dec!(0)),
            ("Silver", dec!(5000), dec!(5)),
            ("Gold", dec!(15000), dec!(10))
        ]
    );
    let payload = "190012345678901";
    let good = format!("{payload}{}", protocol::ids::luhn_check_digit(payload));
    assert_eq!(good, "1900123456789014");
    assert!(CardId::parse("1900-1234-5678-9014", &p.card_policy).is_ok());
    assert!(
        CardId::parse("1900-1234-5678-9012", &p.card_policy).is_err(),
        "Luhn is on"
    );
    assert!(
        CardId::parse("2900-1234-5678-9014", &p.card_policy).is_err(),
        "prefix 1900"
    );
    let again: RulesSnapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
    assert_eq!(again, snap);
}

/// Worked example, Friday 2026-03-06 17:30 (happy hour on bakery, priority 1, 300 %):
///
/// | line                      | value   | coefficient            | points  |
/// |---------------------------|---------|------------------------|---------|
/// | 2 × rohlík (bakery)       |    7.80 | happy hour 300 %       |   23.40 |
/// | 0.350 kg eidam (dairy)    |   66.47 | default 100 %          |   66.47 |
/// | 1 × Marlboro (tobacco)    |  165.00 | category tobacco 0 %   |    0    |
/// | 1 × Bohemia Sekt (wine)   |  189.00 | item 200 % (not 150 %) |  378.00 |
/// | 1 × čokoláda (sweets)     |   39.90 | category sweets 50 %   |   19.95 |
///
/// Total 468.17 CZK (≥ 300 minimum), 487.82 points; 23.40 of them expire after 30 days.
#[test]
fn demo_program_worked_example() {
    let p = demo().program;
    let mut r = receipt(
        "2026/0311",
        "2026-03-06T17:30:00+01:00",
        vec![
            line("RH-01", "bakery", dec!(2), dec!(3.90)),
            line("EID-350", "dairy", dec!(0.350), dec!(189.90)),
            line("MARL-RED", "tobacco", dec!(1), dec!(165.00)),
            line("8594009420157", "wine", dec!(1), dec!(189.00)),
            line("COKO-1", "sweets", dec!(1), dec!(39.90)),
        ],
    );
    r.lines[1].line_total = dec!(66.47); // 0.350 × 189.90 = 66.465, rounded on the receipt
    r.total = r.lines.iter().map(|l| l.line_total).sum();
    assert_eq!(r.total, dec!(468.17));
    let e = evaluate_receipt(&p, &r);
    assert_eq!(
        e.lines.iter().map(|l| l.points).collect::<Vec<_>>(),
        vec![dec!(23.40), dec!(66.47), dec!(0), dec!(378.00), dec!(19.95)]
    );
    assert_eq!(e.points_delta, dec!(487.82));
    assert_eq!(e.campaign.as_deref(), Some("happy-hour-bakery"));
    assert_eq!(
        e.expiring.as_ref().map(|x| (x.points, x.expires_on)),
        Some((dec!(23.40), NaiveDate::from_ymd_opt(2026, 4, 5).unwrap()))
    );

    // The same basket on Saturday morning: the all-members weekend campaign (priority 5, 250 %,
    // no expiry) applies instead; its rate replaces every base rate except the 0 on tobacco.
    let sat = receipt("2026/0400", "2026-03-07T09:00:00+01:00", r.lines.clone());
    let e2 = evaluate_receipt(&p, &sat);
    assert_eq!(e2.campaign.as_deref(), Some("weekend-members"));
    assert_eq!(
        e2.lines.iter().map(|l| l.points).collect::<Vec<_>>(),
        vec![dec!(19.50), dec!(166.18), dec!(0), dec!(472.50), dec!(99.75)]
    );
    assert_eq!(e2.expiring, None);

    // The customer had 4 800 CZK turnover and 40 points: the sale lifts her to Silver.
    // (A Wednesday 15:59 receipt would miss the happy hour: hours are [16, 18).)
    let wed = receipt("2026/0300", "2026-03-04T15:59:00+01:00", r.lines.clone());
    assert_eq!(evaluate_receipt(&p, &wed).campaign, None);
    let state = CustomerState {
        turnover_by_month: [("2026-02".to_string(), dec!(4800))].into(),
        points_balance: dec!(40),
        expiring_points: vec![],
    };
    let (s, change) = apply_effect(&p, &state, &e, r.issued_at.date_naive());
    assert_eq!(
        change,
        Some(TierChange {
            from: "Bronze".into(),
            to: "Silver".into(),
            upgrade: true
        })
    );
    assert_eq!(s.points_balance, dec!(527.82));

    // Quote: 527.82 points → 72.18 to the next 100-point step; 5 % Silver; 9 731.83 CZK to Gold.
    let jana = Customer {
        id: CustomerId::from("C-1"),
        name: CustomerName::Person {
            first_name: "Jana".into(),
            surname: "Nováková".into(),
        },
        contact: Contact::default(),
        consents: Consents {
            program_rules: true,
            marketing: false,
        },
        birthday: None,
        tier: None,
        parent: None,
        discount_override: None,
    };
    let q = customer_quote(&p, &jana, &s, &r.issued_at);
    assert_eq!((q.tier.as_str(), q.discount_percent), ("Silver", dec!(5)));
    assert_eq!(q.points_to_next_reward, Some(dec!(72.18)));
    assert_eq!(q.turnover_to_next_tier, Some(dec!(9731.83)));
    assert_eq!(q.campaign.as_deref(), Some("Šťastná hodina: pečivo 3× body"));

    // She redeems 500 points: a 50 CZK voucher, the 23.40 expiring points are spent first.
    let (red, s) = redeem_from(&p, &s, dec!(527.82)).unwrap();
    assert_eq!(
        (red.points_used, red.value, red.reward),
        (dec!(500), dec!(50), RewardKind::Voucher)
    );
    assert_eq!(s.points_balance, dec!(27.82));
    assert!(s.expiring_points.is_empty());

    // Then returns the wine: 378 points reversed, balance floors at 0 (voucher not taken back);
    // turnover 5 268.17 − 189 = 5 079.17 keeps her in Silver.
    let mut ret = receipt(
        "2026/0420",
        "2026-03-09T11:00:00+01:00",
        vec![line("8594009420157", "wine", dec!(-1), dec!(189.00))],
    );
    ret.original = Some(OriginalReceipt {
        receipt_id: Some(r.id.clone()),
        pos_receipt_no: Some(r.pos_receipt_no.clone()),
    });
    let re = evaluate_return(&p, &r, &e, &ret);
    assert_eq!((re.points_delta, re.turnover_delta), (dec!(-378.00), dec!(-189.00)));
    let (s, change) = apply_effect(&p, &s, &re, ret.issued_at.date_naive());
    assert_eq!(s.points_balance, dec!(0));
    assert_eq!(change, None);
    assert_eq!(s.turnover_by_month.get("2026-03"), Some(&dec!(279.17)));
}
