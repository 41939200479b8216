//! The points ledger and redemption through the service API on a real SQLite file: a property
//! test over random operation sequences (balance == sum(ledger), replays debit nothing, voids
//! credit once) and the offline-overdraw and receipt-matching rules.

use chrono::Duration;
use proptest::prelude::*;
use protocol::rules;
use protocol::v1::{AckResult, LineKind, Receipt, RedeemRequest};
use protocol::v1::{
    Consents, Contact, CustomerName, OriginalReceipt, ReceiptLine, Registration, SyncBatch, SyncItem, SyncPayload,
};
use protocol::ReceiptId;
use protocol::{CardId, CustomerId, StoreId, TillId};
use rust_decimal::Decimal;
use server_stub::ledger::*;
use server_stub::service::{self, SeedFile};
use server_stub::store::sqlite::SqliteRepo;
use server_stub::store::{transact, Repository, TillRow};

const CARDS: [&str; 6] = [
    "1900000009000018",
    "1900000009000026",
    "1900000009000034",
    "1900000009000059",
    "1900000009000067",
    "1900000009000075",
];

fn seeded() -> (tempfile::TempDir, SqliteRepo, TillRow) {
    let dir = tempfile::tempdir().unwrap();
    let repo = SqliteRepo::open(&dir.path().join("s.db")).unwrap();
    let seed: SeedFile = serde_json::from_str(include_str!("../../fixtures/seed/demo.json")).unwrap();
    service::seed(&repo, &seed).unwrap();
    let till = TillRow {
        store_id: StoreId::from("CZ-PRG-01"),
        till_id: TillId::from("T1"),
        revoked: false,
    };
    (dir, repo, till)
}

fn card(i: usize) -> CardId {
    CardId::normalise(CARDS[i % CARDS.len()]).unwrap()
}

fn sync_one(repo: &dyn Repository, till: &TillRow, item_id: String, payload: SyncPayload) -> AckResult {
    let batch = SyncBatch {
        version: "v1".into(),
        store_id: till.store_id.clone(),
        till_id: till.till_id.clone(),
        items: vec![SyncItem { item_id, payload }],
    };
    service::sync(repo, till, &batch).unwrap().acks.remove(0).result
}

fn receipt(n: usize, card: Option<CardId>, total: Decimal, day: u32, original: Option<&Receipt>) -> Receipt {
    let issued_at =
        chrono::DateTime::parse_from_rfc3339("2026-07-01T10:00:00+02:00").unwrap() + Duration::days(i64::from(day));
    let ret = original.is_some();
    Receipt {
        id: ReceiptId::derive(
            &StoreId::from("CZ-PRG-01"),
            &TillId::from("T1"),
            &format!("{n}"),
            &issued_at,
        ),
        store_id: StoreId::from("CZ-PRG-01"),
        till_id: TillId::from("T1"),
        pos_receipt_no: format!("{n}"),
        issued_at,
        currency: protocol::Currency::CZK,
        total: if ret { -total } else { total },
        card,
        original: original.map(|o| OriginalReceipt {
            receipt_id: Some(o.id.clone()),
            pos_receipt_no: None,
        }),
        lines: vec![ReceiptLine {
            sku: Some("123".into()),
            name: "zboží".into(),
            category: Some("drogerie".into()),
            quantity: if ret { -Decimal::ONE } else { Decimal::ONE },
            unit_price: total,
            line_total: if ret { -total } else { total },
            vat_rate: None,
            kind: if ret { LineKind::Return } else { LineKind::Sale },
        }],
        vat: Vec::new(),
    }
}

fn redeem_req(id: usize, card: CardId, units: u32) -> RedeemRequest {
    RedeemRequest {
        request_id: format!("rdm-test-{id}"),
        card,
        points: Decimal::from(units * 100),
        store_id: StoreId::from("CZ-PRG-01"),
        till_id: TillId::from("T1"),
        requested_at: chrono::Local::now().fixed_offset(),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Sale { card: usize, total: u32, day: u32 },
    Return { of: usize },
    RedeemOnline { card: usize, units: u32 },
    RedeemOffline { card: usize, units: u32 },
    Replay { of: usize },
    Void { of: usize },
    Adjust { card: usize, points: i32 },
    Reissue { card: usize },
    Merge { child: usize, parent: usize },
    PrizeCard { points: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6usize, 1..3000u32, 0..120u32).prop_map(|(card, total, day)| Op::Sale { card, total, day }),
        1 => (0..50usize).prop_map(|of| Op::Return { of }),
        2 => (0..6usize, 1..4u32).prop_map(|(card, units)| Op::RedeemOnline { card, units }),
        2 => (0..6usize, 1..4u32).prop_map(|(card, units)| Op::RedeemOffline { card, units }),
        1 => (0..50usize).prop_map(|of| Op::Replay { of }),
        1 => (0..50usize).prop_map(|of| Op::Void { of }),
        1 => (0..6usize, -300..300i32).prop_map(|(card, points)| Op::Adjust { card, points }),
        1 => (0..6usize).prop_map(|card| Op::Reissue { card }),
        1 => (0..6usize, 0..6usize).prop_map(|(child, parent)| Op::Merge { child, parent }),
        1 => (1..1000u32).prop_map(|points| Op::PrizeCard { points }),
    ]
}

fn customer_of(repo: &dyn Repository, c: &CardId) -> Option<CustomerId> {
    transact(repo, |tx| Ok(tx.card(c)?.and_then(|r| r.customer_id))).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Whatever happens to the accounts, each balance equals the sum of its ledger, the last
    /// entry's balance_after is the balance, and a replayed redemption debits nothing.
    #[test]
    fn balance_is_the_sum_of_the_ledger(ops in proptest::collection::vec(op(), 1..30)) {
        let (_dir, repo, till) = seeded();
        let mut cards: Vec<CardId> = (0..6).map(card).collect();
        let mut sales: Vec<Receipt> = Vec::new();
        let mut reds: Vec<RedeemRequest> = Vec::new();
        let mut n = 0usize;
        for op in ops {
            n += 1;
            match op {
                Op::Sale { card, total, day } => {
                    let r = receipt(n, Some(cards[card].clone()), Decimal::from(total), day, None);
                    let ack = sync_one(&repo, &till, r.id.0.clone(), SyncPayload::Receipt(r.clone()));
                    prop_assert_eq!(ack, AckResult::Applied);
                    sales.push(r);
                }
                Op::Return { of } => {
                    if sales.is_empty() { continue; }
                    let o = sales.remove(of % sales.len());
                    let day = 1 + (o.issued_at.date_naive() - chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap()).num_days() as u32;
                    let r = receipt(n, None, o.total, day, Some(&o));
                    let ack = sync_one(&repo, &till, r.id.0.clone(), SyncPayload::Receipt(r.clone()));
                    prop_assert_eq!(ack, AckResult::Applied);
                }
                Op::RedeemOnline { card, units } => {
                    let req = redeem_req(n, cards[card].clone(), units);
                    if redeem(&repo, &till, &req).is_ok() { reds.push(req); }
                }
                Op::RedeemOffline { card, units } => {
                    let req = redeem_req(n, cards[card].clone(), units);
                    let ack = sync_one(&repo, &till, req.request_id.clone(), SyncPayload::Redemption(req.clone()));
                    if ack == AckResult::Applied { reds.push(req); }
                }
                Op::Replay { of } => {
                    if reds.is_empty() { continue; }
                    let req = reds[of % reds.len()].clone();
                    let before = balance_check(&repo).unwrap();
                    let acct = account_of_card(&repo, &req.card);
                    let b0 = acct.as_ref().map(|a| bal(&repo, a));
                    let ack = sync_one(&repo, &till, req.request_id.clone(), SyncPayload::Redemption(req.clone()));
                    prop_assert_eq!(ack, AckResult::Duplicate);
                    prop_assert!(redeem(&repo, &till, &req).is_ok());
                    prop_assert_eq!(acct.as_ref().map(|a| bal(&repo, a)), b0, "a replay debits nothing");
                    prop_assert_eq!(balance_check(&repo).unwrap(), before);
                }
                Op::Void { of } => {
                    if reds.is_empty() { continue; }
                    let id = reds[of % reds.len()].request_id.clone();
                    let first = void(&repo, &till, &id).unwrap();
                    let again = void(&repo, &till, &id).unwrap();
                    prop_assert!(first.voided && again.voided);
                    prop_assert_eq!(first.balance_after, again.balance_after, "points come back once");
                }
                Op::Adjust { card, points } => {
                    if let Some(c) = customer_of(&repo, &cards[card]) {
                        let req = AdjustRequest { reason: "test".into(), points: Decimal::from(points) };
                        let _ = adjust(&repo, &c, &format!("k{n}"), &req);
                    }
                }
                Op::Reissue { card } => {
                    if let Ok(r) = service::reissue_card(&repo, &cards[card]) {
                        cards[card] = r.new_card;
                    }
                }
                Op::Merge { child, parent } => {
                    if let (Some(c), Some(p)) = (customer_of(&repo, &cards[child]), customer_of(&repo, &cards[parent])) {
                        let _ = service::set_parent(&repo, &c, Some(&p));
                    }
                }
                Op::PrizeCard { points } => {
                    let issued = service::issue_cards(&repo, &service::IssueCardsRequest {
                        count: 1,
                        initial_points: Some(Decimal::from(points)),
                        // every other prize card is anonymous: credited at issue, adopted on registration
                        anonymous: points % 2 == 0,
                    }).unwrap().cards.remove(0);
                    let reg = Registration {
                        request_id: format!("reg-{n}"),
                        card: issued.clone(),
                        name: CustomerName::Person { first_name: "Eva".into(), surname: "Malá".into() },
                        contact: Contact { email: None, phone: None, address: None },
                        consents: Consents { program_rules: true, marketing: false },
                        birthday: None,
                        store_id: till.store_id.clone(),
                        till_id: till.till_id.clone(),
                    };
                    let ack = sync_one(&repo, &till, reg.request_id.clone(), SyncPayload::Registration(reg));
                    prop_assert_eq!(ack, AckResult::Applied);
                    let c = customer_of(&repo, &issued).unwrap();
                    prop_assert_eq!(bal(&repo, &c), Decimal::from(points), "prize points credited once");
                }
            }
        }
        prop_assert_eq!(balance_check(&repo).unwrap(), Vec::<Mismatch>::new());
        transact(&repo, |tx| {
            for row in tx.all_customers()? {
                let last = tx.ledger(&row.customer.id, None, 1)?;
                if let Some(e) = last.first() {
                    assert_eq!(e.balance_after, row.state.points_balance, "{}", row.customer.id);
                }
            }
            Ok(())
        }).unwrap();
    }
}

fn account_of_card(repo: &dyn Repository, c: &CardId) -> Option<CustomerId> {
    let cust = customer_of(repo, c)?;
    transact(repo, |tx| {
        Ok(tx.customer(&cust)?.and_then(|r| r.customer.parent.clone()))
    })
    .unwrap()
    .or(Some(cust))
}

fn bal(repo: &dyn Repository, a: &CustomerId) -> Decimal {
    transact(repo, |tx| {
        Ok(tx.customer(a)?.map(|r| r.state.points_balance).unwrap_or_default())
    })
    .unwrap()
}

#[test]
fn offline_redemptions_of_the_same_points_both_apply_and_overdraw() {
    let (_dir, repo, till) = seeded();
    // C000006 has 345 points: two tills redeem 200 each offline.
    let t2 = TillRow {
        till_id: TillId::from("T2"),
        ..till.clone()
    };
    let a = redeem_req(1, card(5), 2);
    let mut b = redeem_req(2, card(5), 2);
    b.till_id = t2.till_id.clone();
    assert_eq!(
        sync_one(&repo, &till, a.request_id.clone(), SyncPayload::Redemption(a.clone())),
        AckResult::Applied
    );
    assert_eq!(
        sync_one(&repo, &t2, b.request_id.clone(), SyncPayload::Redemption(b)),
        AckResult::Applied
    );
    let c6 = CustomerId::from("C000006");
    assert_eq!(bal(&repo, &c6), Decimal::from(-55));
    let t = server_stub::reports::run(
        &repo,
        "overdrawn",
        &server_stub::reports::Params {
            hours: None,
            from: None,
            to: None,
            limit: None,
        },
    )
    .unwrap();
    assert_eq!(t.rows.len(), 1);
    assert_eq!(t.rows[0][0], serde_json::json!("C000006"));
    // Online, the same account is refused now, naming the balance.
    let err = redeem(&repo, &till, &redeem_req(3, card(5), 1)).unwrap_err();
    assert_eq!(err.code, "insufficient_points");
    assert!(err.message.contains("-55"), "{}", err.message);
    // The till's code is the server's code.
    let ans = redeem(&repo, &till, &redeem_req(4, card(0), 2)).unwrap();
    assert_eq!(ans.code, rules::redemption_code("rdm-test-4"));
    assert_eq!(ans.value, Decimal::from(100));
    assert!(check_balances_ok(&repo));
}

fn check_balances_ok(repo: &dyn Repository) -> bool {
    balance_check(repo).unwrap().is_empty()
}

#[test]
fn a_receipt_with_the_card_or_the_code_confirms_and_its_return_restores_nothing() {
    let (_dir, repo, till) = seeded();
    let c1 = CustomerId::from("C000001");
    let mut req = redeem_req(1, card(0), 2);
    req.requested_at = chrono::DateTime::parse_from_rfc3339("2026-07-01T09:55:00+02:00").unwrap();
    let ans = redeem(&repo, &till, &req).unwrap();
    let after_redeem = bal(&repo, &c1);
    // A receipt of another customer 5 minutes later confirms nothing.
    let other = receipt(10, Some(card(1)), Decimal::from(100), 0, None);
    sync_one(&repo, &till, other.id.0.clone(), SyncPayload::Receipt(other));
    assert!(transact(&repo, |tx| Ok(tx.redemption(&ans.redemption_id)?))
        .unwrap()
        .unwrap()
        .matched_receipt
        .is_none());
    // The customer's receipt (card attached) at 10:00 confirms it.
    let sale = receipt(11, Some(card(0)), Decimal::from(500), 0, None);
    assert_eq!(
        sync_one(&repo, &till, sale.id.0.clone(), SyncPayload::Receipt(sale.clone())),
        AckResult::Applied
    );
    let red = transact(&repo, |tx| Ok(tx.redemption(&ans.redemption_id)?))
        .unwrap()
        .unwrap();
    assert_eq!(red.matched_receipt, Some(sale.id.clone()));
    let after_sale = bal(&repo, &c1);
    // Its return takes back the sale's points only; the redeemed points stay spent.
    let ret = receipt(12, None, Decimal::from(500), 1, Some(&sale));
    sync_one(&repo, &till, ret.id.0.clone(), SyncPayload::Receipt(ret));
    assert_eq!(
        bal(&repo, &c1),
        after_redeem,
        "{after_sale} back to the balance right after the redemption"
    );
    // By code: a card-less receipt with the code in a discount line.
    let req2 = redeem_req(2, card(0), 1);
    let ans2 = redeem(&repo, &till, &req2).unwrap();
    let mut coded = receipt(13, None, Decimal::from(300), 30, None);
    coded.lines.push(ReceiptLine {
        sku: None,
        name: format!("Věrnostní sleva {}", ans2.code),
        category: None,
        quantity: Decimal::ONE,
        unit_price: Decimal::from(-50),
        line_total: Decimal::from(-50),
        vat_rate: None,
        kind: LineKind::Discount,
    });
    coded.total -= Decimal::from(50);
    sync_one(&repo, &till, coded.id.0.clone(), SyncPayload::Receipt(coded.clone()));
    let red2 = transact(&repo, |tx| Ok(tx.redemption(&ans2.redemption_id)?))
        .unwrap()
        .unwrap();
    assert_eq!(red2.matched_receipt, Some(coded.id));
    assert!(check_balances_ok(&repo));
}
