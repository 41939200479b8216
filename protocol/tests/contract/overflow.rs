//! Extreme decimals through the rules engine: values near the decimal range (±7.9·10^28) never
//! panic; the checked entry points answer an `Overflow` naming the field and its value.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use protocol::rules::*;
use protocol::v1::{CustomerState, LineKind};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::props::{full_return, program_strategy, sale_strategy};

/// Ordinary and extreme values: the range ends, half of it, 10^27, and random 96-bit mantissas.
fn extreme() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::MAX / dec!(2) + Decimal::ONE),
        Just(dec!(1000000000000000000000000000)),
        (any::<i64>(), any::<u32>(), 0u32..29).prop_map(|(hi, lo, scale)| {
            let m = (hi as i128) << 32 | lo as i128; // fits 96 bits
            Decimal::from_i128_with_scale(m, scale)
        }),
        (1i64..2_000_000).prop_map(|n| Decimal::new(n, 2)),
    ]
}

fn assert_named(e: &Overflow) {
    assert!(!e.field.is_empty() && !e.value.is_empty(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&e.field) && text.contains(&e.value) && text.contains("overflow"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A panic inside fails the case (proptest catches it), so "no panic" is what is tested.
    #[test]
    fn extreme_values_never_panic(
        mut p in program_strategy(),
        mut r in sale_strategy(),
        picks in proptest::collection::vec((0usize..8, 0u8..4, extreme()), 1..4),
        pct in extreme(),
        balance in extreme(),
        turnover in extreme(),
    ) {
        p.default_points_percent = pct.abs();
        for (k, what, v) in picks {
            let n = r.lines.len();
            let l = &mut r.lines[k % n];
            match what {
                0 => l.line_total = v.abs(),
                1 => { l.quantity = v.abs(); l.line_total = v.abs() }
                2 => r.total = v.abs(),
                _ => if l.kind == LineKind::Discount { l.line_total = -v.abs() } else { l.line_total = v.abs() },
            }
        }
        let state = CustomerState {
            turnover_by_month: [("2026-01".to_string(), turnover)].into(),
            points_balance: balance,
            expiring_points: vec![],
        };
        let day = r.issued_at.date_naive();
        match try_evaluate_receipt(&p, &r) {
            Err(e) => assert_named(&e),
            Ok(eff) => {
                match try_apply_effect(&p, &state, &eff, day) {
                    Err(e) => assert_named(&e),
                    Ok((s, _)) => { let _ = expire_points(&s, day); }
                }
                let ret = full_return(&r);
                match try_evaluate_return_after(&p, &r, &eff, &[], &ret) {
                    Err(e) => assert_named(&e),
                    Ok(re) => if let Err(e) = try_apply_effect(&p, &state, &re, day) { assert_named(&e) },
                }
            }
        }
    }
}

#[test]
fn named_overflows() {
    let sale = || {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        sale_strategy().new_tree(&mut runner).unwrap().current()
    };
    let mut p = {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        program_strategy().new_tree(&mut runner).unwrap().current()
    };
    p.campaigns.clear();
    p.item_points_percent.clear();
    p.category_points_percent.clear();
    p.default_points_percent = dec!(500);

    // One line at the top of the range × 500 % overflows on that line.
    let mut r = sale();
    r.lines.retain(|l| l.kind == LineKind::Sale);
    r.lines.truncate(1);
    r.lines[0].line_total = Decimal::MAX;
    let e = try_evaluate_receipt(&p, &r).unwrap_err();
    assert_eq!(e.field, "receipt.lines[0].line_total");
    assert_eq!(e.value, Decimal::MAX.to_string());

    // Two lines that fit alone but not together: the sum overflows at the second line.
    let mut r2 = r.clone();
    r2.lines[0].line_total = Decimal::MAX / dec!(2) + Decimal::ONE;
    r2.lines.push(r2.lines[0].clone());
    let e = try_evaluate_receipt(&p, &r2).unwrap_err();
    assert_eq!(e.field, "receipt.lines[1].line_total", "{e}");

    // A huge but valid receipt on an account already near the limit: the balance is named.
    r.lines[0].line_total = dec!(1000);
    let eff = try_evaluate_receipt(&p, &r).unwrap();
    let state = CustomerState {
        turnover_by_month: Default::default(),
        points_balance: Decimal::MAX - dec!(1),
        expiring_points: vec![],
    };
    let e = try_apply_effect(&p, &state, &eff, r.issued_at.date_naive()).unwrap_err();
    assert_eq!(e.field, "account.points_balance");
    let month = r.issued_at.format("%Y-%m").to_string();
    let state = CustomerState {
        turnover_by_month: [(month.clone(), Decimal::MAX)].into(),
        points_balance: Decimal::ZERO,
        expiring_points: vec![],
    };
    let e = try_apply_effect(&p, &state, &eff, r.issued_at.date_naive()).unwrap_err();
    assert_eq!(e.field, format!("account.turnover_by_month[{month}]"));
}
