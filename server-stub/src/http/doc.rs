//! The OpenAPI document's frame (info, security schemes) and its examples. Paths and schemas come
//! from the handlers' `#[utoipa::path]` and the wire types' `ToSchema` derives (`protocol`'s
//! `schema` feature); [`finish`] adds serialised samples of the real types as examples.

use std::collections::BTreeMap;

use protocol::ids::CardPolicy;
use protocol::rules::{Campaign, CampaignScope, Program, Redemption, RewardKind, RulesSnapshot, Tier, TurnoverWindow};
use protocol::v1::*;
use protocol::{CardId, Currency, CustomerId, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};

fn v<T: Serialize>(x: &T) -> Value {
    serde_json::to_value(x).expect("sample serialises")
}

fn d(s: &str) -> Decimal {
    s.parse().expect("sample decimal")
}

fn t(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s).expect("sample time")
}

fn card(s: &str) -> CardId {
    CardId::normalise(s).expect("sample card")
}

fn sample_program() -> Program {
    Program {
        name: "Věrnostní klub".into(),
        currency: Currency::CZK,
        card_policy: CardPolicy {
            min_len: 16,
            max_len: 16,
            prefixes: vec!["1900".into()],
            luhn: true,
        },
        tiers: vec![
            Tier {
                name: "Základ".into(),
                threshold: d("0"),
                discount_percent: d("0"),
            },
            Tier {
                name: "Zlatá".into(),
                threshold: d("20000"),
                discount_percent: d("5"),
            },
        ],
        turnover_window: TurnoverWindow::RollingMonths { months: 12 },
        default_points_percent: d("10"),
        item_points_percent: BTreeMap::from([("8594001234567".into(), d("0"))]),
        category_points_percent: BTreeMap::from([("drogerie".into(), d("20"))]),
        campaigns: vec![Campaign {
            id: "vikend".into(),
            name: "Víkend dvojnásobných bodů".into(),
            active: true,
            priority: 1,
            min_receipt_total: d("200"),
            valid_from: Some(t("2026-01-01T00:00:00+01:00")),
            valid_to: None,
            days_of_week: vec![chrono::Weekday::Sat, chrono::Weekday::Sun],
            hours: Some((8, 20)),
            points_expire_days: Some(90),
            scope: CampaignScope::AllMembers,
            points_percent: d("20"),
        }],
        redemption: Some(Redemption {
            points: d("100"),
            value: d("50"),
            reward: RewardKind::Voucher,
            min_points: d("100"),
            offline_redemption_limit: d("200"),
            match_window_minutes: Some(120),
        }),
        allow_negative_balance: false,
        purchases: Default::default(),
    }
}

fn sample_customer_quote() -> CustomerQuote {
    CustomerQuote {
        display_name: "Jiří Dvořák".into(),
        anonymous: false,
        tier: "Základ".into(),
        discount_percent: d("0"),
        points_balance: d("42.5"),
        points_to_next_reward: Some(d("57.5")),
        turnover_to_next_tier: Some(d("15000")),
        next_tier: Some("Zlatá".into()),
        campaign: Some("Víkend dvojnásobných bodů".into()),
        currency: Currency::CZK,
        redeemable: vec![RedeemOption {
            points: d("100"),
            value: d("50"),
            reward: RewardKind::Voucher,
        }],
        recent: vec![sample_ledger_entry()],
        messages: vec![CashierMessage {
            cause: "tier:C-000123:Gold".into(),
            what: MessageWhat::TierReached {
                tier: "Gold".into(),
                discount_percent: Decimal::new(5, 0),
            },
        }],
    }
}

fn sample_ledger_entry() -> LedgerEntry {
    LedgerEntry {
        seq: 17,
        account_id: CustomerId::from("C000001"),
        at: t("2026-11-23T10:15:00+01:00"),
        kind: LedgerKind::Receipt,
        cause_id: "r-CZ-PRG-01-T1-20261123-000123".into(),
        store_id: Some(StoreId::from("CZ-PRG-01")),
        till_id: Some(TillId::from("T1")),
        points: d("12.9"),
        balance_after: d("142.5"),
        note: None,
    }
}

fn sample_redeem_request() -> RedeemRequest {
    RedeemRequest {
        request_id: "rdm-5b0e6c1a2f9d4e7c".into(),
        card: card("1900000000000017"),
        points: d("100"),
        store_id: StoreId::from("CZ-PRG-01"),
        till_id: TillId::from("T1"),
        requested_at: t("2026-11-23T10:14:00+01:00"),
    }
}

fn sample_customer_change() -> CustomerChange {
    CustomerChange {
        customer: Customer {
            id: CustomerId::from("C000001"),
            name: CustomerName::Person {
                first_name: "Jiří".into(),
                surname: "Dvořák".into(),
            },
            contact: Contact {
                email: Some("jiri.dvorak@example.cz".into()),
                phone: Some("+420601234567".into()),
                address: Some(Address {
                    street: "Na Příkopě 12".into(),
                    postcode: "110 00".into(),
                    city: "Praha".into(),
                    country: Some("CZ".into()),
                }),
            },
            consents: Consents {
                program_rules: true,
                marketing: false,
            },
            birthday: Some(chrono::NaiveDate::from_ymd_opt(1980, 5, 17).expect("date")),
            tier: Some("Základ".into()),
            parent: None,
            discount_override: None,
        },
        cards: vec![Card {
            number: card("1900000000000017"),
            customer_id: Some(CustomerId::from("C000001")),
            status: CardStatus::Active,
        }],
        state: CustomerState {
            turnover_by_month: BTreeMap::from([("2026-11".into(), d("5000"))]),
            points_balance: d("42.5"),
            expiring_points: vec![ExpiringPoints {
                points: d("10"),
                expires_on: chrono::NaiveDate::from_ymd_opt(2027, 2, 21).expect("date"),
            }],
        },
        contact_keys: Vec::new(),
    }
}

fn sample_receipt() -> Receipt {
    let (s, tl) = (StoreId::from("CZ-PRG-01"), TillId::from("T1"));
    let at = t("2026-11-23T10:15:00+01:00");
    Receipt {
        id: ReceiptId::derive(&s, &tl, "000123", &at),
        store_id: s,
        till_id: tl,
        pos_receipt_no: "000123".into(),
        issued_at: at,
        currency: Currency::CZK,
        total: d("129.90"),
        card: Some(card("1900000000000017")),
        original: None,
        lines: vec![ReceiptLine {
            sku: Some("8594001234567".into()),
            name: "Šampon heřmánkový 250 ml".into(),
            category: Some("drogerie".into()),
            quantity: d("1"),
            unit_price: d("129.90"),
            line_total: d("129.90"),
            vat_rate: Some(d("21")),
            kind: LineKind::Sale,
        }],
        vat: vec![],
    }
}

/// Samples per schema name; several samples (variants) become `oneOf`.
/// Examples of a schema: serialised values of the real types (one per variant of a tagged union).
pub fn samples(name: &str) -> Vec<Value> {
    let q = |result: QuoteResult| {
        v(&Quote {
            result,
            source: QuoteSource::Online,
        })
    };
    match name {
        "Health" => vec![v(&Health {
            status: "ok".into(),
            time: t("2026-11-23T10:15:00+01:00"),
            server_id: Some("5f0c6a1e9b2d4c7f8a3e1d2c4b6a8f90".into()),
        })],
        "ErrorBody" => vec![v(&ErrorBody {
            type_uri: ErrorBody::type_for("unknown_field"),
            title: "Unprocessable Entity".into(),
            status: 422,
            code: "unknown_field".into(),
            detail: "items[0].body.totl: unknown field `totl`".into(),
            field: Some("items[0].body.totl".into()),
        })],
        "SyncBatch" => {
            let r = sample_receipt();
            vec![v(&SyncBatch {
                version: "v1".into(),
                store_id: r.store_id.clone(),
                till_id: r.till_id.clone(),
                items: vec![
                    SyncItem {
                        item_id: r.id.0.clone(),
                        payload: SyncPayload::Receipt(r.clone()),
                    },
                    SyncItem {
                        item_id: "reg-7f3a".into(),
                        payload: SyncPayload::Registration(Registration {
                            request_id: "reg-7f3a".into(),
                            card: card("1900000000000025"),
                            name: CustomerName::Company {
                                company_name: "Řeznictví Novák s.r.o.".into(),
                            },
                            contact: Contact {
                                email: Some("objednavky@reznictvi-novak.cz".into()),
                                phone: None,
                                address: None,
                            },
                            consents: Consents {
                                program_rules: true,
                                marketing: true,
                            },
                            birthday: None,
                            store_id: r.store_id.clone(),
                            till_id: r.till_id.clone(),
                        }),
                    },
                    SyncItem {
                        item_id: "rdm-5b0e6c1a2f9d4e7c".into(),
                        payload: SyncPayload::Redemption(sample_redeem_request()),
                    },
                    SyncItem {
                        item_id: "pair-91c2".into(),
                        payload: SyncPayload::MigrationPairing(MigrationPairing {
                            request_id: "pair-91c2".into(),
                            card: card("1900000000000033"),
                            code: "KLUB-4821".into(),
                            store_id: r.store_id.clone(),
                            till_id: r.till_id.clone(),
                        }),
                    },
                ],
            })]
        }
        "SyncResponse" => vec![v(&SyncResponse {
            acks: vec![
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
                        code: "wrong_currency".into(),
                        reason: "body.currency: EUR but the program runs in CZK".into(),
                    },
                },
                Ack {
                    item_id: "d".into(),
                    result: AckResult::Retry {
                        reason: "no program is loaded on the server yet".into(),
                    },
                },
            ],
        })],
        "Quote" => vec![
            q(QuoteResult::Customer {
                card: card("1900000000000017"),
                quote: sample_customer_quote(),
            }),
            q(QuoteResult::UnknownCard {
                card: card("1900000000000041"),
            }),
            q(QuoteResult::Blocked {
                card: card("1900000000000058"),
                reason: "ztráta karty".into(),
            }),
            q(QuoteResult::Replaced {
                card: card("1900000000000066"),
                new_card: card("1900000000000074"),
                quote: sample_customer_quote(),
            }),
        ],
        "RulesSnapshot" => vec![v(&RulesSnapshot {
            version: 3,
            program: sample_program(),
            lookup_key: None,
        })],
        "Program" => vec![v(&sample_program())],
        "ChangeFeed" => vec![v(&ChangeFeed {
            // What a till gets: no contact data, birthday or consents.
            changes: vec![{
                let mut c = sample_customer_change();
                c.customer.contact = Contact::default();
                c.customer.birthday = None;
                c.customer.consents = Consents::default();
                c
            }],
            cursor: "42".into(),
            more: false,
            server_time: t("2026-11-23T10:15:00+01:00"),
        })],
        "CustomerChange" => vec![v(&sample_customer_change())],
        "IssueCardsRequest" => vec![v(&crate::service::IssueCardsRequest {
            count: 2,
            initial_points: Some(d("500")),
            anonymous: false,
        })],
        "RedeemRequest" => vec![v(&sample_redeem_request())],
        "RedeemAnswer" => vec![v(&RedeemAnswer {
            redemption_id: "rdm-5b0e6c1a2f9d4e7c".into(),
            code: protocol::rules::redemption_code("rdm-5b0e6c1a2f9d4e7c"),
            points: d("100"),
            value: d("50"),
            reward: RewardKind::Voucher,
            currency: Currency::CZK,
            balance_after: d("42.5"),
            voided: false,
        })],
        "LedgerPage" => vec![v(&crate::ledger::LedgerPage {
            account_id: CustomerId::from("C000001"),
            points_balance: d("142.5"),
            entries: vec![sample_ledger_entry()],
            next: Some("17".into()),
        })],
        "AdjustRequest" => vec![v(&crate::ledger::AdjustRequest {
            reason: "reklamace – body za nezapočtený nákup".into(),
            points: d("-20"),
        })],
        "AdjustAnswer" => vec![v(&crate::ledger::AdjustAnswer {
            account_id: CustomerId::from("C000001"),
            points: d("-20"),
            balance_after: d("122.5"),
            duplicate: false,
        })],
        "BalanceCheck" => vec![json!({"mismatches": [v(&crate::ledger::Mismatch {
            account_id: CustomerId::from("C000001"),
            balance: d("142.5"),
            ledger_sum: d("140"),
        })]})],
        "IssueCardsResponse" => vec![v(&crate::service::IssueCardsResponse {
            cards: vec![card("1900000000000082"), card("1900000000000090")],
        })],
        "BlockRequest" => vec![v(&crate::service::BlockRequest {
            reason: "ztráta karty".into(),
        })],
        "Card" => vec![v(&Card {
            number: card("1900000000000058"),
            customer_id: Some(CustomerId::from("C000002")),
            status: CardStatus::Blocked {
                reason: "ztráta karty".into(),
            },
        })],
        "ReissueResponse" => vec![v(&crate::service::ReissueResponse {
            old_card: card("1900000000000066"),
            new_card: card("1900000000000074"),
            customer_id: CustomerId::from("C000003"),
            points_balance: d("310"),
        })],
        "ParentRequest" => vec![v(&crate::service::ParentRequest {
            parent: Some(CustomerId::from("C000001")),
        })],
        "Messages" => vec![v(&super::handlers::Messages {
            messages: vec![crate::store::Message {
                id: 1,
                cause: "tier_upgrade:C000001:Zlatá".into(),
                kind: "tier_upgrade".into(),
                customer_id: "C000001".into(),
                channel: "email".into(),
                recipient: "jiri.dvorak@example.cz".into(),
                text: "Gratulujeme, Jiří Dvořák! V programu Věrnostní klub jste nově na úrovni Zlatá se slevou 5 %."
                    .into(),
                created_at: chrono::DateTime::parse_from_rfc3339("2026-11-23T09:15:00Z")
                    .expect("time")
                    .to_utc(),
            }],
        })],
        "BirthdayRun" => vec![v(&crate::service::BirthdayRun {
            date: chrono::NaiveDate::from_ymd_opt(2026, 5, 17).expect("date"),
            celebrating: 1,
            recorded: 1,
        })],
        "Report" => vec![json!({"report": "turnover", "from": "2026-11-01", "to": "2026-11-30",
            "rows": [{"store_id": "CZ-PRG-01", "day": "2026-11-23", "receipts": 2, "turnover": "1234.5"}]})],
        _ => Vec::new(),
    }
}

/// The frame the router's operations are added to.
pub fn base() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    let bearer = |desc: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(desc))
                .build(),
        )
    };
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("till-agent central server (server-stub)")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "HTTP API v1 between the till agent and the central loyalty server. Every error is RFC 9457 \
                     problem details (application/problem+json) with a machine-readable `code` and the `field` \
                     that is wrong. Generated from server-stub's handlers and the protocol types; regenerate \
                     with `cargo run -p server-stub -- openapi > server-stub/openapi.json`.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme("tillToken", bearer("till token from `server-stub till add`"))
                .security_scheme("adminToken", bearer("--admin-token / SERVER_STUB_ADMIN_TOKEN"))
                .build(),
        ))
        .build()
}

/// The document as JSON, with examples.
pub fn finish(api: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).expect("document serialises");
    // A sync item is its id plus a flattened payload (an `allOf`); serde refuses members of
    // neither, which JSON Schema says with `unevaluatedProperties` (utoipa has no attribute for it).
    if let Some(item) = doc
        .pointer_mut("/components/schemas/SyncItem")
        .and_then(Value::as_object_mut)
    {
        item.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    // Variants of a customer name are closed (`deny_unknown_fields`), which utoipa does not
    // carry over to the variants of an internally tagged enum.
    if let Some(variants) = doc
        .pointer_mut("/components/schemas/CustomerName/oneOf")
        .and_then(Value::as_array_mut)
    {
        for v in variants.iter_mut().filter_map(Value::as_object_mut) {
            v.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut() {
            let ex = samples(name);
            if !ex.is_empty() {
                if let Some(o) = schema.as_object_mut() {
                    o.insert("examples".into(), Value::Array(ex));
                }
            }
        }
    }
    doc
}
