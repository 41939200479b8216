//! Local cache for offline quotes (`cache.db`): the server's rules snapshot (by ETag) and the
//! customer-change feed (`/v1/changes`), pulled by the replicator's cache-sync task. Read by the
//! quote service when the server does not answer in time. Phones and e-mails are only here as
//! keyed hashes (`contact_keys`, see `protocol::contact`); the feed carries no plain contacts.
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, FixedOffset};
use protocol::rules::RulesSnapshot;
use protocol::v1::{ChangeFeed, CustomerChange};
use protocol::CardId;
use rusqlite::{params, Connection, OptionalExtension};

const MIGRATIONS: &[&str] = &["CREATE TABLE rules(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, etag TEXT, body TEXT NOT NULL);
     CREATE TABLE customers(customer_id TEXT PRIMARY KEY, body TEXT NOT NULL);
     CREATE TABLE cards(card TEXT PRIMARY KEY, customer_id TEXT NOT NULL);
     CREATE INDEX cards_customer ON cards(customer_id);
     CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);",
    // 2: keyed hashes of customers' phones and e-mails (never the contacts themselves)
    "CREATE TABLE contact_keys(key TEXT PRIMARY KEY, customer_id TEXT NOT NULL);
     CREATE INDEX contact_keys_customer ON contact_keys(customer_id);",
];

/// Thread-safe handle (one connection behind a mutex; reads are short).
pub struct Cache {
    conn: Mutex<Connection>,
}

impl Cache {
    pub fn open(path: &Path) -> anyhow::Result<Cache> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        crate::sync::outbox::use_wal(&conn, std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        crate::sync::outbox::migrate(&mut conn, MIGRATIONS)?;
        Ok(Cache { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached rules snapshot, if any was pulled.
    pub fn rules(&self) -> anyhow::Result<Option<RulesSnapshot>> {
        let body: Option<String> = self
            .conn()
            .query_row("SELECT body FROM rules WHERE id=1", [], |r| r.get(0))
            .optional()?;
        Ok(match body {
            Some(b) => Some(serde_json::from_str(&b)?),
            None => None,
        })
    }

    /// The ETag of the cached rules (for `If-None-Match`).
    pub fn rules_etag(&self) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT etag FROM rules WHERE id=1", [], |r| r.get(0))
            .optional()?
            .flatten())
    }

    pub fn store_rules(&self, rules: &RulesSnapshot, etag: Option<&str>) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO rules(id,version,etag,body) VALUES(1,?1,?2,?3)",
            params![rules.version as i64, etag, serde_json::to_string(rules)?],
        )?;
        Ok(())
    }

    /// The customer record whose `cards` contain `card` (any status: blocked / replaced included).
    pub fn lookup_card(&self, card: &CardId) -> anyhow::Result<Option<CustomerChange>> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT c.body FROM cards k JOIN customers c ON c.customer_id = k.customer_id WHERE k.card=?1",
                [card.expose()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match body {
            Some(b) => Some(serde_json::from_str(&b)?),
            None => None,
        })
    }

    /// The customer whose phone or e-mail has this lookup key (`protocol::contact::contact_key`).
    pub fn lookup_contact_key(&self, key: &str) -> anyhow::Result<Option<CustomerChange>> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT c.body FROM contact_keys k JOIN customers c ON c.customer_id = k.customer_id WHERE k.key=?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match body {
            Some(b) => Some(serde_json::from_str(&b)?),
            None => None,
        })
    }

    /// `server_time` of the last applied feed page: how fresh the offline data is.
    pub fn as_of(&self) -> anyhow::Result<Option<DateTime<FixedOffset>>> {
        let v = self.meta("as_of")?;
        Ok(v.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()))
    }

    /// The feed cursor to continue from.
    pub fn cursor(&self) -> anyhow::Result<Option<String>> {
        self.meta("cursor")
    }

    /// Forget the feed cursor: the next refresh reads the server's change feed from the start.
    pub fn reset_cursor(&self) -> anyhow::Result<()> {
        self.conn().execute("DELETE FROM meta WHERE key='cursor'", [])?;
        Ok(())
    }

    /// Apply one feed page in one transaction (customers upserted, their card list replaced).
    pub fn apply_feed(&self, feed: &ChangeFeed) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = crate::sync::outbox::write_tx(&mut conn)?;
        for ch in &feed.changes {
            let cid = ch.customer.id.as_str();
            tx.execute(
                "INSERT OR REPLACE INTO customers(customer_id, body) VALUES(?1,?2)",
                params![cid, serde_json::to_string(ch)?],
            )?;
            tx.execute("DELETE FROM cards WHERE customer_id=?1", [cid])?;
            tx.execute("DELETE FROM contact_keys WHERE customer_id=?1", [cid])?;
            for key in &ch.contact_keys {
                tx.execute(
                    "INSERT OR REPLACE INTO contact_keys(key, customer_id) VALUES(?1,?2)",
                    params![key, cid],
                )?;
            }
            for card in &ch.cards {
                tx.execute(
                    "INSERT OR REPLACE INTO cards(card, customer_id) VALUES(?1,?2)",
                    params![card.number.expose(), cid],
                )?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta(key,value) VALUES('cursor',?1)",
            [&feed.cursor],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key,value) VALUES('as_of',?1)",
            [feed.server_time.to_rfc3339()],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn customer_count(&self) -> anyhow::Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0))?)
    }

    fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::v1::{Card, CardStatus, Customer, CustomerName, CustomerState};

    fn change(id: &str, cards: &[&str]) -> CustomerChange {
        CustomerChange {
            customer: Customer {
                id: id.into(),
                name: CustomerName::Person {
                    first_name: "Jiří".into(),
                    surname: "Čížek".into(),
                },
                contact: Default::default(),
                consents: Default::default(),
                birthday: None,
                tier: None,
                parent: None,
                discount_override: None,
            },
            cards: cards
                .iter()
                .map(|c| Card {
                    number: CardId::normalise(c).unwrap(),
                    customer_id: Some(id.into()),
                    status: CardStatus::Active,
                })
                .collect(),
            state: CustomerState::default(),
            contact_keys: Vec::new(),
        }
    }

    #[test]
    fn feed_pages_upsert_and_move_cards() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(&d.path().join("cache.db")).unwrap();
        let card = CardId::normalise("1900123456789012").unwrap();
        assert!(c.lookup_card(&card).unwrap().is_none());
        assert!(c.as_of().unwrap().is_none());
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap();
        c.apply_feed(&ChangeFeed {
            changes: vec![change("c1", &["1900123456789012"])],
            cursor: "5".into(),
            more: false,
            server_time: t,
        })
        .unwrap();
        let got = c.lookup_card(&card).unwrap().unwrap();
        assert_eq!(got.customer.name.display(), "Jiří Čížek");
        assert_eq!(c.as_of().unwrap(), Some(t));
        assert_eq!(c.cursor().unwrap().as_deref(), Some("5"));
        // the card moves to another customer: old mapping replaced
        c.apply_feed(&ChangeFeed {
            changes: vec![change("c1", &["1900000000000001"])],
            cursor: "6".into(),
            more: false,
            server_time: t,
        })
        .unwrap();
        assert!(c.lookup_card(&card).unwrap().is_none());
        assert_eq!(c.customer_count().unwrap(), 1);
        // a restored server: the feed is read from the start again (the cached customers stay
        // for offline quotes until the feed replaces them)
        c.reset_cursor().unwrap();
        assert_eq!(c.cursor().unwrap(), None);
        assert_eq!(c.customer_count().unwrap(), 1);
    }
}
