//! Property tests of the rules engine (proptest).

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use proptest::prelude::*;
use protocol::rules::*;
use protocol::v1::{CustomerState, LineKind, OriginalReceipt, Receipt, ReceiptLine};
use protocol::{CardPolicy, Currency, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const SKUS: &[&str] = &["A", "B", "C", "D", "CIG", "WINE"];
const CATS: &[&str] = &["dairy", "bakery", "tobacco", "wine"];

fn money() -> impl Strategy<Value = Decimal> {
    (1i64..2_000_000).prop_map(|n| Decimal::new(n, 2))
}

fn quantity() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (1i64..20).prop_map(Decimal::from),
        (1i64..5000).prop_map(|n| Decimal::new(n, 3))
    ]
}

fn percent() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(dec!(0)),
        Just(dec!(100)),
        (0i64..100_000).prop_map(|n| Decimal::new(n, 2))
    ]
}

fn sale_line() -> impl Strategy<Value = ReceiptLine> {
    (0..SKUS.len(), proptest::option::of(0..CATS.len()), quantity(), money()).prop_map(|(s, c, q, price)| ReceiptLine {
        sku: Some(SKUS[s].to_string()),
        name: SKUS[s].to_lowercase(),
        category: c.map(|c| CATS[c].to_string()),
        quantity: q,
        unit_price: price,
        line_total: (q * price).round_dp(2),
        vat_rate: Some(dec!(21)),
        kind: LineKind::Sale,
    })
}

fn campaign_strategy(id: usize) -> impl Strategy<Value = Campaign> {
    (
        any::<bool>(),
        1u32..5,
        percent(),
        prop_oneof![Just(None), Just(Some(30u32))],
        0usize..3,
        money(),
    )
        .prop_map(move |(active, priority, pct, expire, scope, min)| Campaign {
            id: format!("c{id}"),
            name: format!("Campaign {id}"),
            active,
            priority,
            min_receipt_total: if id == 0 { Decimal::ZERO } else { min },
            valid_from: None,
            valid_to: None,
            days_of_week: vec![],
            hours: None,
            points_expire_days: expire,
            scope: match scope {
                0 => CampaignScope::AllMembers,
                1 => CampaignScope::Items {
                    skus: vec!["A".into(), "CIG".into()],
                },
                _ => CampaignScope::Categories {
                    categories: vec!["bakery".into(), "tobacco".into()],
                },
            },
            points_percent: pct,
        })
}

pub(super) fn program_strategy() -> impl Strategy<Value = Program> {
    (
        percent(),
        proptest::collection::btree_map(prop::sample::select(SKUS), percent(), 0..4),
        proptest::collection::btree_map(prop::sample::select(CATS), percent(), 0..3),
        proptest::collection::vec(any::<usize>(), 0..3)
            .prop_flat_map(|v| (0..v.len()).map(campaign_strategy).collect::<Vec<_>>()),
        any::<bool>(),
    )
        .prop_map(|(default, items, cats, campaigns, neg)| Program {
            name: "P".into(),
            currency: Currency::CZK,
            card_policy: CardPolicy::default(),
            tiers: vec![
                Tier {
                    name: "Bronze".into(),
                    threshold: dec!(0),
                    discount_percent: dec!(0),
                },
                Tier {
                    name: "Silver".into(),
                    threshold: dec!(5000),
                    discount_percent: dec!(5),
                },
                Tier {
                    name: "Gold".into(),
                    threshold: dec!(15000),
                    discount_percent: dec!(10),
                },
            ],
            turnover_window: TurnoverWindow::Lifetime,
            default_points_percent: default,
            item_points_percent: items.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            category_points_percent: cats.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            campaigns,
            redemption: None,
            allow_negative_balance: neg,
            purchases: Default::default(),
        })
}

fn issued_at() -> impl Strategy<Value = DateTime<FixedOffset>> {
    (0i64..365 * 24 * 60)
        .prop_map(|m| DateTime::parse_from_rfc3339("2026-01-01T00:00:00+01:00").unwrap() + Duration::minutes(m))
}

/// A sale receipt: 1–8 item lines, maybe a receipt-level discount, maybe a cash-rounding line.
pub(super) fn sale_strategy() -> impl Strategy<Value = Receipt> {
    (
        proptest::collection::vec(sale_line(), 1..8),
        0u32..30,
        any::<bool>(),
        issued_at(),
        0u32..100_000,
    )
        .prop_map(|(mut lines, disc_pct, rounding, issued_at, no)| {
            let items: Decimal = lines.iter().map(|l| l.line_total).sum();
            if disc_pct > 0 {
                let d = -(items * Decimal::from(disc_pct) / dec!(100)).round_dp(2);
                lines.push(ReceiptLine {
                    sku: None,
                    name: "Sleva".into(),
                    category: None,
                    quantity: dec!(1),
                    unit_price: d,
                    line_total: d,
                    vat_rate: None,
                    kind: LineKind::Discount,
                });
            }
            let before: Decimal = lines.iter().map(|l| l.line_total).sum();
            let (total, diff) = protocol::Money::new(before, Currency::CZK).cash_rounding();
            if rounding && !diff.is_zero() {
                lines.push(ReceiptLine {
                    sku: None,
                    name: "Zaokrouhlení".into(),
                    category: None,
                    quantity: dec!(1),
                    unit_price: diff,
                    line_total: diff,
                    vat_rate: None,
                    kind: LineKind::Rounding,
                });
            }
            let total = if rounding { total } else { before };
            let (s, t) = (StoreId::from("S"), TillId::from("T"));
            let no = no.to_string();
            Receipt {
                id: ReceiptId::derive(&s, &t, &no, &issued_at),
                store_id: s,
                till_id: t,
                pos_receipt_no: no,
                issued_at,
                currency: Currency::CZK,
                total,
                card: None,
                original: None,
                lines,
                vat: vec![],
            }
        })
}

/// The full return of `sale`: every line mirrored with the opposite sign, a few days later.
pub(super) fn full_return(sale: &Receipt) -> Receipt {
    let mut r = sale.clone();
    r.pos_receipt_no = format!("R{}", sale.pos_receipt_no);
    r.issued_at = sale.issued_at + Duration::days(3);
    r.id = ReceiptId::derive(&r.store_id, &r.till_id, &r.pos_receipt_no, &r.issued_at);
    r.total = -sale.total;
    r.original = Some(OriginalReceipt {
        receipt_id: Some(sale.id.clone()),
        pos_receipt_no: Some(sale.pos_receipt_no.clone()),
    });
    r.lines = sale
        .lines
        .iter()
        .map(|l| {
            let mut m = l.clone();
            m.line_total = -l.line_total;
            if l.kind == LineKind::Sale {
                m.quantity = -l.quantity;
                m.kind = LineKind::Return;
            }
            m
        })
        .collect();
    r
}

fn state_strategy() -> impl Strategy<Value = CustomerState> {
    (money(), 0i64..100_000).prop_map(|(turnover, balance)| CustomerState {
        turnover_by_month: [("2025-12".to_string(), turnover)].into(),
        points_balance: Decimal::new(balance, 2),
        expiring_points: vec![],
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_sale_never_earns_negative_points(p in program_strategy(), r in sale_strategy()) {
        let e = evaluate_receipt(&p, &r);
        prop_assert!(e.points_delta >= Decimal::ZERO, "{}", e.points_delta);
        prop_assert!(e.lines.iter().all(|l| l.points >= Decimal::ZERO));
        prop_assert!(e.turnover_delta >= Decimal::ZERO);
        prop_assert!(e.expiring.as_ref().is_none_or(|x| x.points > Decimal::ZERO && x.points <= e.points_delta));
    }

    #[test]
    fn sale_then_full_return_nets_zero(p in program_strategy(), r in sale_strategy(), s in state_strategy()) {
        let e = evaluate_receipt(&p, &r);
        let ret = full_return(&r);
        let re = evaluate_return(&p, &r, &e, &ret);
        prop_assert_eq!(e.points_delta + re.points_delta, Decimal::ZERO);
        prop_assert_eq!(e.turnover_delta + re.turnover_delta, Decimal::ZERO);
        // Applied to an account (no redemption in between), the account is back where it was.
        let (after_sale, _) = apply_effect(&p, &s, &e, r.issued_at.date_naive());
        let (after_ret, _) = apply_effect(&p, &after_sale, &re, ret.issued_at.date_naive());
        prop_assert_eq!(after_ret.points_balance, s.points_balance);
        prop_assert!(after_ret.expiring_points.is_empty());
        let lifetime = |st: &CustomerState| turnover(&p, st, NaiveDate::from_ymd_opt(2027, 6, 1).unwrap());
        prop_assert_eq!(lifetime(&after_ret), lifetime(&s));
    }

    #[test]
    fn partial_returns_in_any_split_sum_to_the_full_reversal(p in program_strategy(), r in sale_strategy(), parts in 1usize..4) {
        let e = evaluate_receipt(&p, &r);
        let full = full_return(&r);
        // Split every returned line's quantity into `parts` returns (the last takes the rest).
        let mut returns: Vec<Receipt> = Vec::new();
        for k in 0..parts {
            let mut rk = full.clone();
            rk.pos_receipt_no = format!("{}-{k}", full.pos_receipt_no);
            rk.lines = full.lines.iter().filter(|l| l.kind == LineKind::Return).map(|l| {
                let share = (l.quantity / Decimal::from(parts as u64)).round_dp(3);
                let q = if k + 1 == parts { l.quantity - share * Decimal::from((parts - 1) as u64) } else { share };
                ReceiptLine { quantity: q, line_total: (q * l.unit_price).round_dp(2), ..l.clone() }
            }).collect();
            returns.push(rk);
        }
        let mut total = Decimal::ZERO;
        for k in 0..parts {
            total += evaluate_return_after(&p, &r, &e, &returns[..k], &returns[k]).points_delta;
        }
        prop_assert_eq!(total, -e.points_delta);
    }

    #[test]
    fn the_same_receipt_twice_gives_the_same_result(p in program_strategy(), r in sale_strategy()) {
        prop_assert_eq!(evaluate_receipt(&p, &r), evaluate_receipt(&p, &r.clone()));
        let ret = full_return(&r);
        let e = evaluate_receipt(&p, &r);
        prop_assert_eq!(evaluate_return(&p, &r, &e, &ret), evaluate_return(&p, &r, &e, &ret));
    }

    #[test]
    fn line_order_does_not_change_the_result(p in program_strategy(), r in sale_strategy(), seed in any::<u64>()) {
        let mut shuffled = r.clone();
        // Deterministic Fisher–Yates from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.lines.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.lines.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let (a, b) = (evaluate_receipt(&p, &r), evaluate_receipt(&p, &shuffled));
        prop_assert_eq!(a.points_delta, b.points_delta);
        prop_assert_eq!(a.turnover_delta, b.turnover_delta);
        prop_assert_eq!(a.campaign, b.campaign);
        prop_assert_eq!(a.expiring, b.expiring);
        let mut pa: Vec<Decimal> = a.lines.iter().map(|l| l.points).collect();
        let mut pb: Vec<Decimal> = b.lines.iter().map(|l| l.points).collect();
        pa.sort();
        pb.sort();
        prop_assert_eq!(pa, pb);
    }

    #[test]
    fn tier_is_monotone_in_turnover(
        thresholds in proptest::collection::btree_set(0i64..50_000, 1..6),
        a in 0i64..6_000_000,
        b in 0i64..6_000_000,
        rev in any::<bool>(),
    ) {
        // Discounts ascend with thresholds, as programs configure them; tier order in the list is arbitrary.
        let mut tiers: Vec<Tier> = thresholds.iter().enumerate().map(|(i, t)| Tier { name: format!("T{i}"), threshold: Decimal::from(*t), discount_percent: Decimal::from(i as u64) }).collect();
        if rev { tiers.reverse(); }
        let p = Program {
            name: "P".into(), currency: Currency::EUR, card_policy: CardPolicy::default(), tiers,
            turnover_window: TurnoverWindow::Lifetime, default_points_percent: dec!(100),
            item_points_percent: Default::default(), category_points_percent: Default::default(),
            campaigns: vec![], redemption: None, allow_negative_balance: false, purchases: Default::default(),
        };
        let (lo, hi) = (Decimal::new(a.min(b), 2), Decimal::new(a.max(b), 2));
        prop_assert!(p.tier_for(lo).threshold <= p.tier_for(hi).threshold);
        prop_assert!(p.tier_for(lo).discount_percent <= p.tier_for(hi).discount_percent);
        if let Some(n) = p.next_tier(lo) {
            prop_assert!(n.threshold > lo && n.threshold > p.tier_for(lo).threshold);
        }
    }
}
