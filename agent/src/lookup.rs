//! Find a customer without a scanner: the cashier types a card number, a phone number or an
//! e-mail; the answer is the same [`Quote`] a scan produces (online within the quote timeout,
//! else offline from `cache.db`).
//!
//! Phone numbers and e-mails resolve through the cache's keyed hashes: the typed text is
//! normalised (`protocol::contact`, national numbers in the program's `phone_country`), hashed
//! with the program's lookup key from the rules snapshot, and the key is looked up in
//! `cache.db`. The plain contact is never stored; it is not logged either (only its kind).

use anyhow::Context;
use protocol::contact::{contact_key, normalise_email, normalise_phone, ContactKind};
use protocol::ids::CardPolicy;
use protocol::v1::{CardStatus, Quote};
use protocol::CardId;

use crate::cache::Cache;
use crate::quote::QuoteService;

/// What the cashier typed, recognised and normalised.
#[derive(Clone, PartialEq, Eq)]
pub enum Query {
    Card(CardId),
    /// E.164 (`+420601111222`).
    Phone(String),
    /// Lower-cased.
    Email(String),
}

impl std::fmt::Debug for Query {
    /// Never shows a contact (log lines): the kind and, for a card, the masked number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Card(c) => write!(f, "Card({c})"),
            Query::Phone(_) => f.write_str("Phone(…)"),
            Query::Email(_) => f.write_str("Email(…)"),
        }
    }
}

/// Why a lookup found nothing usable; `Display` is the English text (CLI, logs). Nothing here
/// carries the typed phone or e-mail back.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Empty input.
    #[error("type a card number, a phone number or an e-mail")]
    Empty,
    /// A digits-only input that is neither a card of the program's policy nor a phone number.
    #[error("not a card number ({card}) and not a phone number ({phone})")]
    NotCardNorPhone { card: String, phone: String },
    #[error("card number: {0}")]
    BadCard(String),
    /// A payment card's number was typed: never looked up (only its last 4 digits are kept).
    #[error("card number …{0} is a payment card, not a loyalty card: not looked up")]
    PaymentCard(String),
    #[error("{0}")]
    BadContact(String),
    /// The cache has no rules / lookup key yet (never synced with a server that hands one out).
    #[error("cannot look up phones or e-mails offline yet: {0}")]
    NoLookupKey(String),
    #[error("no customer with this {0} (offline data as of {1})")]
    NotFound(&'static str, String),
    #[error("the customer with this {0} has no active card")]
    NoActiveCard(&'static str),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Recognise typed text: an `@` means an e-mail; otherwise a number the card policy accepts is a
/// card, else a phone number (national ones in `phone_country`).
pub fn parse_query(text: &str, policy: &CardPolicy, phone_country: &str) -> Result<Query, LookupError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(LookupError::Empty);
    }
    if t.contains('@') {
        return parse_email(t);
    }
    payment_guard(t, policy)?;
    if !t.starts_with('+') {
        match CardId::parse(t, policy) {
            Ok(c) => return Ok(Query::Card(c)),
            Err(card_err) => {
                return match normalise_phone(t, phone_country) {
                    Ok(p) => Ok(Query::Phone(p)),
                    Err(phone_err) => Err(LookupError::NotCardNorPhone {
                        card: card_err.to_string(),
                        phone: phone_err.to_string(),
                    }),
                }
            }
        }
    }
    parse_phone(t, phone_country)
}

/// A payment card's number (by IIN and Luhn, not of the program's prefixes) is refused before
/// anything else could echo it.
fn payment_guard(text: &str, policy: &CardPolicy) -> Result<(), LookupError> {
    if let Ok(c) = CardId::normalise(text) {
        if protocol::payment::payment_not_ours(c.expose(), policy) {
            return Err(LookupError::PaymentCard(
                protocol::payment::last4(c.expose()).to_string(),
            ));
        }
    }
    Ok(())
}

/// `--card`: the program's card policy decides.
pub fn parse_card(text: &str, policy: &CardPolicy) -> Result<Query, LookupError> {
    payment_guard(text, policy)?;
    CardId::parse(text, policy)
        .map(Query::Card)
        .map_err(|e| LookupError::BadCard(e.to_string()))
}

/// `--phone`: E.164 with `phone_country` for national numbers.
pub fn parse_phone(text: &str, phone_country: &str) -> Result<Query, LookupError> {
    normalise_phone(text, phone_country)
        .map(Query::Phone)
        .map_err(|e| LookupError::BadContact(e.to_string()))
}

/// `--email`: trimmed, lower-cased, checked.
pub fn parse_email(text: &str) -> Result<Query, LookupError> {
    normalise_email(text)
        .map(Query::Email)
        .map_err(|e| LookupError::BadContact(e.to_string()))
}

/// The country of national phone numbers typed on this till: agent.toml's `phone_country`
/// (`over`), else the cached program's (`purchases.phone_country`), else `CZ`.
pub fn phone_country(over: Option<&str>, cache: Option<&Cache>) -> String {
    if let Some(c) = over {
        return c.to_string();
    }
    cache
        .and_then(|c| c.rules().ok().flatten())
        .map(|r| r.program.purchases.phone_country)
        .unwrap_or_else(|| "CZ".into())
}

/// [`phone_country`] for `cfg`, reading its offline cache when there is one.
pub fn till_phone_country(cfg: &crate::config::Config) -> String {
    let path = cfg.cache_path();
    let cache = path.exists().then(|| Cache::open(&path).ok()).flatten();
    phone_country(cfg.phone_country.as_deref(), cache.as_ref())
}

/// The card a query stands for: a card as typed; a phone / e-mail through the cache's keyed
/// hashes → that customer's first active card.
pub fn resolve_card(cache: &Cache, q: &Query) -> Result<CardId, LookupError> {
    let (kind, what, value) = match q {
        Query::Card(c) => return Ok(c.clone()),
        Query::Phone(p) => (ContactKind::Phone, "phone number", p),
        Query::Email(e) => (ContactKind::Email, "e-mail", e),
    };
    let rules = cache
        .rules()
        .map_err(LookupError::Other)?
        .ok_or_else(|| LookupError::NoLookupKey("the till never synced with the server".into()))?;
    let key_hex = rules
        .lookup_key
        .ok_or_else(|| LookupError::NoLookupKey("the server's rules carry no lookup key".into()))?;
    let key = hex::decode(key_hex.trim())
        .map_err(|e| LookupError::NoLookupKey(format!("the cached lookup key is not hex: {e}")))?;
    let as_of = cache
        .as_of()
        .ok()
        .flatten()
        .map_or_else(|| "never synced".to_string(), |t| t.to_rfc3339());
    let change = cache
        .lookup_contact_key(&contact_key(&key, kind, value))
        .map_err(LookupError::Other)?
        .ok_or(LookupError::NotFound(what, as_of))?;
    change
        .cards
        .iter()
        .find(|c| c.status == CardStatus::Active)
        .map(|c| c.number.clone())
        .ok_or(LookupError::NoActiveCard(what))
}

/// Look the query up: its card, then the same quote a scan of that card gets (online within
/// `quote_timeout_ms`, else offline from the cache).
pub async fn lookup(qs: &QuoteService, q: &Query) -> Result<(CardId, Quote), LookupError> {
    let card = match q {
        Query::Card(c) => c.clone(),
        _ => {
            let cache = qs.cache().map_err(|e| LookupError::NoLookupKey(format!("{e:#}")))?;
            resolve_card(&cache, q)?
        }
    };
    tracing::info!(query = ?q, card = %card, "customer lookup");
    let quote = qs
        .quote(&card)
        .await
        .with_context(|| format!("quote for card {card}"))
        .map_err(LookupError::Other)?;
    Ok((card, quote))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::rules::RulesSnapshot;
    use protocol::v1::{Card, ChangeFeed, Customer, CustomerChange, CustomerName, CustomerState};

    fn policy() -> CardPolicy {
        CardPolicy {
            min_len: 16,
            max_len: 16,
            prefixes: vec!["1900".into()],
            luhn: true,
        }
    }

    #[test]
    fn typed_text_is_card_phone_or_email() {
        let p = policy();
        assert!(matches!(
            parse_query("1900 0000 0900 0018", &p, "CZ").unwrap(),
            Query::Card(_)
        ));
        assert_eq!(
            parse_query("601 111 222", &p, "CZ").unwrap(),
            Query::Phone("+420601111222".into())
        );
        assert_eq!(
            parse_query("+420 601 111 222", &p, "SK").unwrap(),
            Query::Phone("+420601111222".into())
        );
        assert_eq!(
            parse_query(" Jiri@Example.CZ", &p, "CZ").unwrap(),
            Query::Email("jiri@example.cz".into())
        );
        assert!(matches!(parse_query("  ", &p, "CZ"), Err(LookupError::Empty)));
        let e = parse_query("12", &p, "CZ").unwrap_err().to_string();
        assert!(e.contains("not a card number") && e.contains("too short"), "{e}");
        assert_eq!(format!("{:?}", Query::Phone("+420601111222".into())), "Phone(…)");
        // a payment card number is refused by its last 4 digits only, typed or as --card
        for e in [
            parse_query("4111 1111 1111 1111", &p, "CZ").unwrap_err(),
            parse_card("4111111111111111", &CardPolicy::default()).unwrap_err(),
        ] {
            assert!(matches!(&e, LookupError::PaymentCard(l) if l == "1111"), "{e}");
            assert!(!e.to_string().contains("4111"), "{e}");
        }
    }

    #[test]
    fn phone_and_email_resolve_through_keyed_hashes_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache.db")).unwrap();
        let seed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/seed/demo.json")).unwrap(),
        )
        .unwrap();
        let program = serde_json::from_value(seed["program"].clone()).unwrap();
        let key = b"0123456789abcdef0123456789abcdef";
        cache
            .store_rules(
                &RulesSnapshot {
                    version: 1,
                    program,
                    lookup_key: Some(hex::encode(key)),
                },
                None,
            )
            .unwrap();
        let card = CardId::normalise("1900000009000018").unwrap();
        let change = CustomerChange {
            customer: Customer {
                id: "C1".into(),
                name: CustomerName::Person {
                    first_name: "Jiří".into(),
                    surname: "Dvořák".into(),
                },
                contact: Default::default(),
                consents: Default::default(),
                birthday: None,
                tier: None,
                parent: None,
                discount_override: None,
            },
            cards: vec![Card {
                number: card.clone(),
                customer_id: Some("C1".into()),
                status: CardStatus::Active,
            }],
            state: CustomerState::default(),
            contact_keys: protocol::contact::keys_of(key, Some("+420 601 111 222"), Some("jiri@example.cz"), "CZ"),
        };
        cache
            .apply_feed(&ChangeFeed {
                changes: vec![change],
                cursor: "1".into(),
                more: false,
                server_time: chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap(),
            })
            .unwrap();
        let q = parse_query("601111222", &policy(), &phone_country(None, Some(&cache))).unwrap();
        assert_eq!(resolve_card(&cache, &q).unwrap(), card);
        // agent.toml's phone_country wins over the program's: the digits are a Slovak number there.
        assert_eq!(phone_country(Some("SK"), Some(&cache)), "SK");
        let q = parse_query("601111222", &policy(), &phone_country(Some("SK"), Some(&cache))).unwrap();
        assert!(resolve_card(&cache, &q).is_err());
        let q = parse_query("JIRI@example.cz", &policy(), "CZ").unwrap();
        assert_eq!(resolve_card(&cache, &q).unwrap(), card);
        let q = parse_query("602 000 000", &policy(), "CZ").unwrap();
        let e = resolve_card(&cache, &q).unwrap_err().to_string();
        assert!(e.starts_with("no customer with this phone number"), "{e}");
        assert!(!e.contains("602"), "{e}");
        drop(cache);
        // neither the phone (in any spelling) nor the e-mail is in cache.db's bytes
        let mut bytes = Vec::new();
        for f in ["cache.db", "cache.db-wal"] {
            if let Ok(b) = std::fs::read(dir.path().join(f)) {
                bytes.extend(b);
            }
        }
        let hay = String::from_utf8_lossy(&bytes);
        for needle in ["601111222", "601 111 222", "jiri@example.cz"] {
            assert!(!hay.contains(needle), "{needle} found in cache.db");
        }
    }
}
