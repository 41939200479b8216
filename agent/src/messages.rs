//! Cashier messages ("tell the customer…") on the till side: a quote carries them
//! (`CustomerQuote.messages`, computed by the server, or offline by the same
//! `protocol::rules::cashier_messages` from the cache); once shown, each cause is acknowledged
//! with a `message_ack` outbox item so the server shows it no more. The item id is derived from
//! the cause, so showing the same message twice before the ack is sent queues one ack.
//! Offline, causes this till already acknowledged (its outbox) are left out; the birthday message
//! needs the server (the cache has no birthdays).

use std::collections::HashSet;

use chrono::{DateTime, FixedOffset};
use protocol::rules::{cashier_messages, MessageFacts, Program};
use protocol::v1::{CashierMessage, CustomerChange, MessageAck, Quote, QuoteResult, SyncItem, SyncPayload};
use protocol::{CardId, StoreId, TillId};
use sha2::{Digest, Sha256};

use crate::sync::outbox::Outbox;
use crate::synclog::SyncLog;

/// `ack-<32 hex of SHA-256(cause)>`: one ack item per cause.
pub fn ack_id(cause: &str) -> String {
    let h = Sha256::digest(cause.as_bytes());
    format!("ack-{}", &hex::encode(h)[..32])
}

/// The outbox item acknowledging `msg` shown for `card`.
pub fn ack_item(
    msg: &CashierMessage,
    card: &CardId,
    store_id: &StoreId,
    till_id: &TillId,
    now: DateTime<FixedOffset>,
) -> SyncItem {
    let request_id = ack_id(&msg.cause);
    SyncItem {
        item_id: request_id.clone(),
        payload: SyncPayload::MessageAck(MessageAck {
            request_id,
            cause: msg.cause.clone(),
            card: card.clone(),
            store_id: store_id.clone(),
            till_id: till_id.clone(),
            shown_at: now,
        }),
    }
}

/// The messages of a quote (customer or replaced card), with the card they were shown for.
pub fn messages_of(q: &Quote) -> Option<(&CardId, &[CashierMessage])> {
    match &q.result {
        QuoteResult::Customer { card, quote } => Some((card, &quote.messages)),
        QuoteResult::Replaced { new_card, quote, .. } => Some((new_card, &quote.messages)),
        _ => None,
    }
}

/// Queue an ack for every message of a shown quote; returns the ids newly queued.
pub fn enqueue_acks(
    outbox: &mut Outbox,
    log: &SyncLog,
    q: &Quote,
    store_id: &StoreId,
    till_id: &TillId,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let Some((card, msgs)) = messages_of(q) else {
        return Ok(out);
    };
    for m in msgs {
        let item = ack_item(m, card, store_id, till_id, now);
        if outbox.enqueue(&item)? {
            log.info(
                "message",
                Some(&item.item_id),
                &format!("message {} shown for card {card}", m.cause),
            );
            out.push(item.item_id);
        }
    }
    Ok(out)
}

/// Causes this till has acknowledged (any state: pending, sent or refused).
pub fn acked_causes(outbox: &Outbox) -> anyhow::Result<HashSet<String>> {
    let mut st = outbox
        .conn()
        .prepare("SELECT payload FROM items WHERE kind='message_ack'")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = HashSet::new();
    for p in rows {
        if let Ok(SyncPayload::MessageAck(a)) = serde_json::from_str::<SyncPayload>(&p?) {
            out.insert(a.cause);
        }
    }
    Ok(out)
}

/// Fill an offline quote's messages from the cached customer (first purchase = no turnover yet),
/// leaving out causes in `acked`.
/// Leaves out the messages whose cause this till already acknowledged (an ack still in the
/// outbox has not reached the server, whose quote then still carries the message).
pub fn drop_acked(q: &mut Quote, acked: &HashSet<String>) {
    if let QuoteResult::Customer { quote, .. } | QuoteResult::Replaced { quote, .. } = &mut q.result {
        quote.messages.retain(|m| !acked.contains(&m.cause));
    }
}

pub fn fill_offline(
    program: &Program,
    change: &CustomerChange,
    q: &mut Quote,
    now: DateTime<FixedOffset>,
    acked: &HashSet<String>,
) {
    let quote = match &mut q.result {
        QuoteResult::Customer { quote, .. } | QuoteResult::Replaced { quote, .. } => quote,
        _ => return,
    };
    let facts = MessageFacts {
        first_purchase: change.state.turnover_by_month.is_empty(),
        birthday: None,
    };
    quote.messages = cashier_messages(program, &change.customer.id, quote, &facts, now.date_naive());
    drop_acked(q, acked);
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::v1::MessageWhat;

    #[test]
    fn one_ack_item_per_cause() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("outbox.db");
        let mut outbox = Outbox::open(&p).unwrap();
        let log = SyncLog::open(&p).unwrap();
        let card = CardId::normalise("1900000009000018").unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:00:00+01:00").unwrap();
        let msg = |cause: &str| CashierMessage {
            cause: cause.into(),
            what: MessageWhat::Welcome,
        };
        let quote = |msgs: Vec<CashierMessage>| Quote {
            result: QuoteResult::Customer {
                card: card.clone(),
                quote: protocol::v1::CustomerQuote {
                    display_name: "X".into(),
                    anonymous: false,
                    tier: "Základ".into(),
                    discount_percent: Default::default(),
                    points_balance: Default::default(),
                    points_to_next_reward: None,
                    turnover_to_next_tier: None,
                    next_tier: None,
                    campaign: None,
                    currency: protocol::Currency::CZK,
                    redeemable: vec![],
                    recent: vec![],
                    messages: msgs,
                },
            },
            source: protocol::v1::QuoteSource::Online,
        };
        let q = quote(vec![msg("welcome:C1"), msg("reward:C1:100")]);
        let (s, t) = (StoreId::from("S"), TillId::from("T"));
        assert_eq!(enqueue_acks(&mut outbox, &log, &q, &s, &t, now).unwrap().len(), 2);
        assert_eq!(enqueue_acks(&mut outbox, &log, &q, &s, &t, now).unwrap().len(), 0);
        let acked = acked_causes(&outbox).unwrap();
        assert!(acked.contains("welcome:C1") && acked.contains("reward:C1:100"));
        assert_eq!(ack_id("welcome:C1").len(), 36);
    }

    #[test]
    fn offline_messages_leave_out_what_this_till_acknowledged() {
        let seed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/seed/demo.json")).unwrap(),
        )
        .unwrap();
        let program: Program = serde_json::from_value(seed["program"].clone()).unwrap();
        let change: CustomerChange = serde_json::from_value(seed["customers"][0].clone()).unwrap();
        let card = change.cards[0].number.clone();
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:00:00+01:00").unwrap();
        let quote = protocol::rules::customer_quote(&program, &change.customer, &change.state, &now);
        let mut q = Quote {
            result: QuoteResult::Customer { card, quote },
            source: protocol::v1::QuoteSource::Offline { as_of: now },
        };
        fill_offline(&program, &change, &mut q, now, &HashSet::new());
        let causes: Vec<String> = messages_of(&q).unwrap().1.iter().map(|m| m.cause.clone()).collect();
        assert!(causes.contains(&"reward:C000001:400".to_string()), "{causes:?}");
        let acked: HashSet<String> = causes.iter().take(1).cloned().collect();
        fill_offline(&program, &change, &mut q, now, &acked);
        let left: Vec<String> = messages_of(&q).unwrap().1.iter().map(|m| m.cause.clone()).collect();
        assert_eq!(left.len(), causes.len() - 1);
        assert!(!left.contains(&causes[0]));
    }
}
