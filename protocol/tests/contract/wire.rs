//! Serde round-trips for every v1 wire type, and the JSON shapes other programs rely on.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use protocol::rules::{Campaign, CampaignScope, Program, Redemption, RewardKind, RulesSnapshot, Tier, TurnoverWindow};
use protocol::v1::*;
use protocol::{CardId, CardPolicy, Currency, CustomerId, ReceiptId, StoreId, TillId};
use rust_decimal_macros::dec;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Serialise, deserialise, compare; and serialising again gives the same JSON.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) -> Value {
    let text = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, v, "{text}");
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    serde_json::from_str(&text).unwrap()
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn card(n: &str) -> CardId {
    CardId::normalise(n).unwrap()
}

fn sale_receipt() -> Receipt {
    let (s, t) = (StoreId::from("CZ-PRG-01"), TillId::from("T1"));
    let issued_at = at("2026-03-02T10:15:00+01:00");
    Receipt {
        id: ReceiptId::derive(&s, &t, "2026/0042", &issued_at),
        store_id: s,
        till_id: t,
        pos_receipt_no: "2026/0042".into(),
        issued_at,
        currency: Currency::CZK,
        total: dec!(125.00),
        card: Some(card("1900-1234-5678-9012")),
        original: None,
        lines: vec![
            ReceiptLine {
                sku: Some("8594001234567".into()),
                name: "Sýr Eidam".into(),
                category: Some("dairy".into()),
                quantity: dec!(0.350),
                unit_price: dec!(189.90),
                line_total: dec!(66.47),
                vat_rate: Some(dec!(12)),
                kind: LineKind::Sale,
            },
            ReceiptLine {
                sku: None,
                name: "Chléb".into(),
                category: None,
                quantity: dec!(1),
                unit_price: dec!(59.00),
                line_total: dec!(59.00),
                vat_rate: None,
                kind: LineKind::Sale,
            },
            ReceiptLine {
                sku: None,
                name: "Sleva".into(),
                category: None,
                quantity: dec!(1),
                unit_price: dec!(-0.50),
                line_total: dec!(-0.50),
                vat_rate: None,
                kind: LineKind::Discount,
            },
            ReceiptLine {
                sku: None,
                name: "Zaokrouhlení".into(),
                category: None,
                quantity: dec!(1),
                unit_price: dec!(0.03),
                line_total: dec!(0.03),
                vat_rate: None,
                kind: LineKind::Rounding,
            },
        ],
        vat: vec![VatSummary {
            rate: dec!(12),
            base: dec!(111.61),
            amount: dec!(13.39),
        }],
    }
}

fn return_receipt() -> Receipt {
    let orig = sale_receipt();
    let mut r = sale_receipt();
    r.pos_receipt_no = "2026/0050".into();
    r.id = ReceiptId::derive(&r.store_id, &r.till_id, "2026/0050", &r.issued_at);
    r.total = dec!(-59.00);
    r.lines = vec![ReceiptLine {
        sku: None,
        name: "Chléb".into(),
        category: None,
        quantity: dec!(-1),
        unit_price: dec!(59.00),
        line_total: dec!(-59.00),
        vat_rate: Some(dec!(12)),
        kind: LineKind::Return,
    }];
    r.vat.clear();
    r.original = Some(OriginalReceipt {
        receipt_id: Some(orig.id),
        pos_receipt_no: Some(orig.pos_receipt_no),
    });
    r
}

fn person() -> Customer {
    Customer {
        id: CustomerId::from("C-1001"),
        name: CustomerName::Person {
            first_name: "Jana".into(),
            surname: "Nováková".into(),
        },
        contact: Contact {
            email: Some("jana@example.cz".into()),
            phone: Some("+420 601 123 456".into()),
            address: Some(Address {
                street: "Dlouhá 12".into(),
                postcode: "110 00".into(),
                city: "Praha".into(),
                country: Some("CZ".into()),
            }),
        },
        consents: Consents {
            program_rules: true,
            marketing: true,
        },
        birthday: NaiveDate::from_ymd_opt(1985, 6, 30),
        tier: Some("Silver".into()),
        parent: None,
        discount_override: None,
    }
}

fn company_sub_card() -> Customer {
    Customer {
        id: CustomerId::from("C-2002"),
        name: CustomerName::Company {
            company_name: "Pekárna Novák s.r.o.".into(),
        },
        contact: Contact::default(),
        consents: Consents {
            program_rules: true,
            marketing: false,
        },
        birthday: None,
        tier: None,
        parent: Some(CustomerId::from("C-2000")),
        discount_override: Some(dec!(7.5)),
    }
}

fn customer_quote() -> CustomerQuote {
    CustomerQuote {
        display_name: "Jana Nováková".into(),
        anonymous: false,
        tier: "Silver".into(),
        discount_percent: dec!(5),
        points_balance: dec!(1234.56),
        points_to_next_reward: Some(dec!(65.44)),
        turnover_to_next_tier: Some(dec!(8200.00)),
        next_tier: Some("Gold".into()),
        campaign: Some("Dvojnásobné body".into()),
        currency: Currency::CZK,
        redeemable: Vec::new(),
        recent: Vec::new(),
        messages: Vec::new(),
    }
}

pub fn demo_rules() -> RulesSnapshot {
    RulesSnapshot {
        version: 7,
        program: Program {
            name: "Klub".into(),
            currency: Currency::CZK,
            card_policy: CardPolicy {
                min_len: 16,
                max_len: 16,
                prefixes: vec!["1900".into()],
                luhn: true,
            },
            tiers: vec![
                Tier {
                    name: "Bronze".into(),
                    threshold: dec!(0),
                    discount_percent: dec!(0),
                },
                Tier {
                    name: "Gold".into(),
                    threshold: dec!(15000),
                    discount_percent: dec!(10),
                },
            ],
            turnover_window: TurnoverWindow::RollingMonths { months: 12 },
            default_points_percent: dec!(100),
            item_points_percent: [("X".to_string(), dec!(0))].into(),
            category_points_percent: [("tobacco".to_string(), dec!(0)), ("wine".to_string(), dec!(200.5))].into(),
            campaigns: vec![
                Campaign {
                    id: "c1".into(),
                    name: "Happy hour".into(),
                    active: true,
                    priority: 1,
                    min_receipt_total: dec!(300),
                    valid_from: Some(at("2026-03-01T00:00:00+01:00")),
                    valid_to: None,
                    days_of_week: vec![chrono::Weekday::Mon, chrono::Weekday::Fri],
                    hours: Some((16, 18)),
                    points_expire_days: Some(30),
                    scope: CampaignScope::Categories {
                        categories: vec!["bakery".into()],
                    },
                    points_percent: dec!(300),
                },
                Campaign {
                    id: "c2".into(),
                    name: "Coffee".into(),
                    active: false,
                    priority: 2,
                    min_receipt_total: dec!(0),
                    valid_from: None,
                    valid_to: Some(at("2026-12-31T23:59:59+01:00")),
                    days_of_week: vec![],
                    hours: None,
                    points_expire_days: None,
                    scope: CampaignScope::Items {
                        skus: vec!["COFFEE".into()],
                    },
                    points_percent: dec!(200),
                },
                Campaign {
                    id: "c3".into(),
                    name: "Members".into(),
                    active: true,
                    priority: 9,
                    min_receipt_total: dec!(0),
                    valid_from: None,
                    valid_to: None,
                    days_of_week: vec![],
                    hours: None,
                    points_expire_days: None,
                    scope: CampaignScope::AllMembers,
                    points_percent: dec!(150),
                },
            ],
            redemption: Some(Redemption {
                points: dec!(100),
                value: dec!(10),
                reward: RewardKind::Voucher,
                min_points: dec!(100),
                offline_redemption_limit: rust_decimal::Decimal::ZERO,
                match_window_minutes: None,
            }),
            allow_negative_balance: false,
            purchases: Default::default(),
        },
        lookup_key: None,
    }
}

#[test]
fn receipt_sale_round_trip_and_decimals_as_strings() {
    let v = round_trip(&sale_receipt());
    assert_eq!(v["total"], json!("125.00"));
    assert_eq!(v["lines"][0]["quantity"], json!("0.350"));
    assert_eq!(
        v["card"],
        json!("1900123456789012"),
        "the wire carries the full card number"
    );
    assert_eq!(v["lines"][2]["kind"], json!("discount"));
    assert!(v.get("original").is_none());
}

#[test]
fn receipt_return_with_original_round_trip() {
    let r = return_receipt();
    assert!(r.has_return_lines());
    let v = round_trip(&r);
    assert_eq!(v["lines"][0]["kind"], json!("return"));
    assert_eq!(v["original"]["pos_receipt_no"], json!("2026/0042"));
}

#[test]
fn receipt_totals_only_round_trip() {
    let mut r = sale_receipt();
    r.lines.clear();
    assert!(r.is_totals_only());
    round_trip(&r);
}

#[test]
fn customer_person_and_company_round_trip() {
    let v = round_trip(&person());
    assert_eq!(
        v["name"],
        json!({"type": "person", "first_name": "Jana", "surname": "Nováková"})
    );
    assert_eq!(v["birthday"], json!("1985-06-30"));
    let v = round_trip(&company_sub_card());
    assert_eq!(
        v["name"],
        json!({"type": "company", "company_name": "Pekárna Novák s.r.o."})
    );
    assert_eq!(v["parent"], json!("C-2000"));
    assert_eq!(v["discount_override"], json!("7.5"));
}

#[test]
fn card_in_each_status_round_trip() {
    let n = card("1900123456789012");
    let active = Card {
        number: n.clone(),
        customer_id: Some("C-1".into()),
        status: CardStatus::Active,
    };
    assert_eq!(
        round_trip(&active),
        json!({"number": "1900123456789012", "customer_id": "C-1", "status": "active"})
    );
    let blocked = Card {
        number: n.clone(),
        customer_id: Some("C-1".into()),
        status: CardStatus::Blocked { reason: "lost".into() },
    };
    assert_eq!(
        round_trip(&blocked),
        json!({"number": "1900123456789012", "customer_id": "C-1", "status": "blocked", "reason": "lost"})
    );
    let replaced = Card {
        number: n,
        customer_id: None,
        status: CardStatus::Replaced {
            by: card("1900000000000018"),
        },
    };
    assert_eq!(
        round_trip(&replaced),
        json!({"number": "1900123456789012", "status": "replaced", "by": "1900000000000018"})
    );
}

#[test]
fn migration_code_registration_pairing_round_trip() {
    round_trip(&MigrationCode {
        code: "K7Q-2M9".into(),
        customer_id: "C-1".into(),
        used_by_card: None,
    });
    round_trip(&MigrationCode {
        code: "K7Q-2M9".into(),
        customer_id: "C-1".into(),
        used_by_card: Some(card("1900123456789012")),
    });
    let p = person();
    round_trip(&Registration {
        request_id: "reg-01".into(),
        card: card("1900123456789012"),
        name: p.name,
        contact: p.contact,
        consents: p.consents,
        birthday: p.birthday,
        store_id: "S1".into(),
        till_id: "T1".into(),
    });
    round_trip(&MigrationPairing {
        request_id: "mig-01".into(),
        card: card("1900123456789012"),
        code: "K7Q-2M9".into(),
        store_id: "S1".into(),
        till_id: "T1".into(),
    });
}

#[test]
fn quote_each_kind_online_and_offline_round_trip() {
    let c = card("1900123456789012");
    let results = [
        QuoteResult::Customer {
            card: c.clone(),
            quote: customer_quote(),
        },
        QuoteResult::UnknownCard { card: c.clone() },
        QuoteResult::Blocked {
            card: c.clone(),
            reason: "stolen".into(),
        },
        QuoteResult::Replaced {
            card: c.clone(),
            new_card: card("1900000000000018"),
            quote: customer_quote(),
        },
    ];
    let sources = [
        QuoteSource::Online,
        QuoteSource::Offline {
            as_of: at("2026-03-02T09:59:00+01:00"),
        },
    ];
    for r in &results {
        for s in &sources {
            let v = round_trip(&Quote {
                result: r.clone(),
                source: s.clone(),
            });
            assert!(v["kind"].is_string() && v["source"].is_string(), "{v}");
        }
    }
    // Decimals inside a flattened, internally tagged enum keep their exact value.
    let v = round_trip(&Quote {
        result: results[0].clone(),
        source: sources[1].clone(),
    });
    assert_eq!(v["kind"], json!("customer"));
    assert_eq!(v["source"], json!("offline"));
    assert_eq!(v["as_of"], json!("2026-03-02T09:59:00+01:00"));
    assert_eq!(v["quote"]["points_balance"], json!("1234.56"));
    let unknown = round_trip(&Quote {
        result: results[1].clone(),
        source: QuoteSource::Online,
    });
    assert_eq!(
        unknown,
        json!({"kind": "unknown_card", "card": "1900123456789012", "source": "online"})
    );
}

#[test]
fn quote_accepts_decimals_as_json_numbers_too() {
    // Another client might send numbers; through the flatten buffer they must still parse exactly.
    let text = r#"{"kind":"customer","card":"1900123456789012","source":"online",
        "quote":{"display_name":"A","tier":"Gold","discount_percent":10,"points_balance":"0.10","currency":"CZK"}}"#;
    let q: Quote = serde_json::from_str(text).unwrap();
    match q.result {
        QuoteResult::Customer { quote, .. } => {
            assert_eq!(quote.discount_percent, dec!(10));
            assert_eq!(quote.points_balance, dec!(0.10));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sync_batch_with_each_payload_kind_round_trip() {
    let p = person();
    let reg = Registration {
        request_id: "reg-01".into(),
        card: card("1900123456789012"),
        name: p.name,
        contact: p.contact,
        consents: p.consents,
        birthday: None,
        store_id: "S1".into(),
        till_id: "T1".into(),
    };
    let pair = MigrationPairing {
        request_id: "mig-01".into(),
        card: card("1900123456789012"),
        code: "K7Q".into(),
        store_id: "S1".into(),
        till_id: "T1".into(),
    };
    let batch = SyncBatch {
        version: protocol::WIRE_VERSION.into(),
        store_id: "CZ-PRG-01".into(),
        till_id: "T1".into(),
        items: vec![
            SyncItem {
                item_id: sale_receipt().id.0,
                payload: SyncPayload::Receipt(sale_receipt()),
            },
            SyncItem {
                item_id: return_receipt().id.0,
                payload: SyncPayload::Receipt(return_receipt()),
            },
            SyncItem {
                item_id: "reg-01".into(),
                payload: SyncPayload::Registration(reg),
            },
            SyncItem {
                item_id: "mig-01".into(),
                payload: SyncPayload::MigrationPairing(pair),
            },
        ],
    };
    let v = round_trip(&batch);
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["receipt", "receipt", "registration", "migration_pairing"]);
    assert_eq!(v["items"][0]["body"]["lines"][0]["line_total"], json!("66.47"));
}

#[test]
fn ack_of_each_result_round_trip() {
    let acks = vec![
        Ack {
            item_id: "a".into(),
            result: AckResult::Applied,
        },
        Ack {
            item_id: "b".into(),
            result: AckResult::Duplicate,
        },
        Ack {
            item_id: "c".into(),
            result: AckResult::Rejected {
                code: "unknown_card".into(),
                reason: "card 1900-****-****-9012 is not registered".into(),
            },
        },
        Ack {
            item_id: "d".into(),
            result: AckResult::Retry {
                reason: "database busy".into(),
            },
        },
    ];
    let v = round_trip(&SyncResponse { acks });
    assert_eq!(v["acks"][0], json!({"item_id": "a", "result": "applied"}));
    assert_eq!(v["acks"][2]["code"], json!("unknown_card"));
    assert_eq!(
        v["acks"][3],
        json!({"item_id": "d", "result": "retry", "reason": "database busy"})
    );
}

#[test]
fn change_feed_round_trip() {
    let mut months = BTreeMap::new();
    months.insert("2026-02".to_string(), dec!(4200.50));
    let feed = ChangeFeed {
        changes: vec![
            CustomerChange {
                customer: person(),
                cards: vec![Card {
                    number: card("1900123456789012"),
                    customer_id: Some("C-1001".into()),
                    status: CardStatus::Active,
                }],
                state: CustomerState {
                    turnover_by_month: months,
                    points_balance: dec!(420.05),
                    expiring_points: vec![ExpiringPoints {
                        points: dec!(50),
                        expires_on: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
                    }],
                },
                contact_keys: vec!["5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843".into()],
            },
            CustomerChange {
                customer: company_sub_card(),
                cards: vec![],
                state: CustomerState::default(),
                contact_keys: Vec::new(),
            },
        ],
        cursor: "000042".into(),
        more: false,
        server_time: at("2026-03-02T10:00:00+01:00"),
    };
    let v = round_trip(&feed);
    assert_eq!(
        v["changes"][0]["state"]["turnover_by_month"]["2026-02"],
        json!("4200.50")
    );
}

#[test]
fn error_body_round_trip() {
    let v = round_trip(&ErrorBody {
        type_uri: ErrorBody::type_for("bad_field"),
        title: "Unprocessable Entity".into(),
        status: 422,
        code: "bad_field".into(),
        detail: "items[0].body.total: invalid decimal".into(),
        field: Some("items[0].body.total".into()),
    });
    assert_eq!(v["field"], json!("items[0].body.total"));
    assert_eq!(v["type"], json!("urn:till-agent:problem:bad_field"));
    round_trip(&ErrorBody {
        type_uri: ErrorBody::type_for("unauthorized"),
        title: "Unauthorized".into(),
        status: 401,
        code: "unauthorized".into(),
        detail: "unknown till token".into(),
        field: None,
    });
}

#[test]
fn rules_snapshot_round_trip() {
    let v = round_trip(&demo_rules());
    let c1 = &v["program"]["campaigns"][0];
    assert_eq!(c1["days_of_week"], json!(["Mon", "Fri"]));
    assert_eq!(c1["hours"], json!([16, 18]));
    assert_eq!(c1["scope"], json!({"type": "categories", "categories": ["bakery"]}));
    assert_eq!(v["program"]["campaigns"][2]["scope"], json!({"type": "all_members"}));
    assert_eq!(
        v["program"]["turnover_window"],
        json!({"type": "rolling_months", "months": 12})
    );
    let mut lifetime = demo_rules();
    lifetime.program.turnover_window = TurnoverWindow::Lifetime;
    lifetime.program.redemption = Some(Redemption {
        points: dec!(500),
        value: dec!(10),
        reward: RewardKind::PercentDiscount,
        min_points: dec!(500),
        offline_redemption_limit: rust_decimal::Decimal::ZERO,
        match_window_minutes: None,
    });
    let v = round_trip(&lifetime);
    assert_eq!(v["program"]["turnover_window"], json!({"type": "lifetime"}));
    assert_eq!(v["program"]["redemption"]["reward"], json!("percent_discount"));
}

/// The serde error for `text` parsed as `T` (must fail).
fn error_of<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
    serde_json::from_str::<T>(text)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn unknown_fields_are_rejected_naming_the_field() {
    let mut v = serde_json::to_value(sale_receipt()).unwrap();
    v["totl"] = json!("1");
    assert!(error_of::<Receipt>(&v.to_string()).contains("unknown field `totl`"));

    let mut v = serde_json::to_value(sale_receipt()).unwrap();
    v["lines"][1]["vat"] = json!("21");
    assert!(error_of::<Receipt>(&v.to_string()).contains("unknown field `vat`"));

    let mut v = serde_json::to_value(person()).unwrap();
    v["name"]["middle_name"] = json!("X");
    assert!(error_of::<Customer>(&v.to_string()).contains("unknown field `middle_name`"));

    let mut v = serde_json::to_value(demo_rules()).unwrap();
    v["program"]["campaigns"][0]["prio"] = json!(1);
    assert!(error_of::<RulesSnapshot>(&v.to_string()).contains("unknown field `prio`"));

    // Problem details are extensible (RFC 9457): unknown members are ignored.
    let mut v = serde_json::to_value(ErrorBody {
        type_uri: ErrorBody::type_for("x"),
        title: "Bad Request".into(),
        status: 400,
        code: "x".into(),
        detail: "y".into(),
        field: None,
    })
    .unwrap();
    v["instance"] = json!("/v1/sync");
    assert_eq!(serde_json::from_value::<ErrorBody>(v).unwrap().detail, "y");

    // Inside a SyncBatch the receipt body is still strict.
    let batch = SyncBatch {
        version: "v1".into(),
        store_id: "S".into(),
        till_id: "T".into(),
        items: vec![SyncItem {
            item_id: "i".into(),
            payload: SyncPayload::Receipt(sale_receipt()),
        }],
    };
    let mut v = serde_json::to_value(batch).unwrap();
    v["items"][0]["body"]["cashier"] = json!("Eva");
    assert!(error_of::<SyncBatch>(&v.to_string()).contains("unknown field `cashier`"));

    // Wrong values name what is wrong too.
    let mut v = serde_json::to_value(sale_receipt()).unwrap();
    v["currency"] = json!("XYZ");
    assert!(error_of::<Receipt>(&v.to_string()).contains("XYZ"));
    let mut v = serde_json::to_value(sale_receipt()).unwrap();
    v["card"] = json!("1900-12a4");
    assert!(error_of::<Receipt>(&v.to_string()).contains("'a'"));
}
