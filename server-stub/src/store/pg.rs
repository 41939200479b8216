//! PostgreSQL backend of the repository, for a chain's central server with several server
//! processes on one database. Blocking `postgres` client (the synchronous face of tokio-postgres:
//! the store traits are synchronous and run on the blocking pool) with an r2d2 pool.
//!
//! Concurrency without a process lock:
//! - write units of work run READ COMMITTED with row locks: an account row is read FOR UPDATE
//!   (balances change one writer at a time, and the reader sees the last committed balance), a
//!   sync batch first locks all its cards' accounts in id order ([`Tx::lock_accounts_of`]) so two
//!   batches never deadlock over them; cards are read FOR SHARE, migration codes, redemptions and
//!   a return's original FOR UPDATE. Dedupe is the primary key: a unique violation (two servers
//!   inserting the same receipt), a deadlock or a serialization failure rolls the whole unit back
//!   and runs it again, where the dedupe read now sees the other's row.
//! - the change feed's sequence: rows get their final `change_seq` just before COMMIT, under a
//!   transaction-scoped advisory lock, so sequence order is commit order and a feed reader never
//!   skips a change that commits later with a smaller number.
//! - read units of work (quotes, token checks, the feed) are READ ONLY REPEATABLE READ: no locks,
//!   never wait behind ingest.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Statement};
use protocol::rules::{Program, RulesSnapshot};
use protocol::v1::{CardStatus, Customer, CustomerState, LedgerEntry, Receipt};
use protocol::{CardId, CustomerId, ReceiptId, StoreId, TillId};
use r2d2_postgres::PostgresConnectionManager;
use rust_decimal::Decimal;

use super::codec::*;
use super::migrations::MIGRATIONS;
use super::{
    BatchWrites, CardRow, CustomerRow, Message, MessageAckRow, MigrationCodeRow, NewLedgerEntry, ReceiptFacts,
    RedemptionRow, Repository, RequestRow, StoreError, StoreResult, StoreStats, StoredReceipt, TagRow, TillRow, Tx,
};
use crate::error::ApiError;

type Pool = r2d2::Pool<Manager>;

/// A pooled connection: the client and its prepared statements, by SQL text. Every statement the
/// repository runs is prepared once per connection (the SQL texts are a fixed set), so a unit of
/// work pays one round trip per statement instead of a parse and an execute.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// The pool's connection manager: r2d2_postgres connects and checks, each connection gets its
/// statement cache.
pub struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.0.connect()?,
            statements: HashMap::new(),
        })
    }
    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }
    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// How often a unit of work is tried when it meets a serialization failure.
pub const MAX_ATTEMPTS: u32 = 30;
/// Advisory lock keys (arbitrary, fixed): schema migration, change-sequence assignment.
const LOCK_MIGRATE: i64 = 0x7111_0001;
const LOCK_CHANGE_SEQ: i64 = 0x7111_0002;

/// Is `db` a PostgreSQL URL (else it is a SQLite file path)?
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The URL without its password (for logs and errors).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &user[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub struct PgRepo {
    /// Always Some until dropped (see the Drop impl). Units of work that write.
    pool: Option<Pool>,
    /// Reads (quotes, token checks, the change feed, reports) have connections of their own, so a
    /// storm of sync batches holding every write connection does not make a quote wait.
    read_pool: Option<Pool>,
    retries: AtomicU64,
}

impl Drop for PgRepo {
    fn drop(&mut self) {
        // A `postgres::Client` blocks on its own runtime when dropped, which panics on a thread of
        // the server's tokio runtime (where the last AppState goes at shutdown): close the pool's
        // connections on a plain thread.
        let pools = (self.pool.take(), self.read_pool.take());
        let _ = std::thread::spawn(move || drop(pools)).join();
    }
}

fn pool_err(e: r2d2::Error) -> StoreError {
    StoreError::Other(format!("no PostgreSQL connection: {e}"))
}

impl PgRepo {
    /// Connect (pool of `pool_size`) and migrate.
    pub fn open(url: &str, pool_size: u32) -> StoreResult<PgRepo> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Other(format!("database URL {}: {e}", redact(url))))?;
        let build = |size: u32| {
            r2d2::Pool::builder()
                .max_size(size)
                .min_idle(Some(1))
                .connection_timeout(Duration::from_secs(15))
                .build(Manager(PostgresConnectionManager::new(config.clone(), NoTls)))
                .map_err(|e| StoreError::Other(format!("connecting to {}: {e}", redact(url))))
        };
        let pool = build(pool_size.max(1))?;
        // A quarter of the write pool, at least 2: reads are short and never wait for a lock.
        let read_pool = build((pool_size / 4).max(2))?;
        let repo = PgRepo {
            pool: Some(pool),
            read_pool: Some(read_pool),
            retries: AtomicU64::new(0),
        };
        repo.migrate()?;
        Ok(repo)
    }

    fn pool(&self) -> &Pool {
        self.pool
            .as_ref()
            .expect("the pool lives until the repository is dropped")
    }

    fn read_pool(&self) -> &Pool {
        self.read_pool
            .as_ref()
            .expect("the pool lives until the repository is dropped")
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool().get().map_err(pool_err)?;
        let mut tx = conn.client.transaction()?;
        // Two servers starting at once: one migrates, the other waits and finds it done.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        let current: Option<i64> = tx
            .query_opt("SELECT version FROM schema_version", &[])?
            .map(|r| r.get(0));
        if current.is_none() {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
        }
        let current = current.unwrap_or(0) as usize;
        if current > MIGRATIONS.len() {
            return Err(StoreError::Other(format!(
                "database schema version {current} is newer than this server-stub knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(current) {
            tx.batch_execute(m.pg)?;
            tx.execute("UPDATE schema_version SET version = $1", &[&((i + 1) as i64)])?;
            tracing::info!(version = i + 1, "applied schema migration (postgres)");
        }
        tx.commit()?;
        Ok(())
    }

    pub fn schema_version(&self) -> StoreResult<usize> {
        let mut conn = self.pool().get().map_err(pool_err)?;
        let v: i64 = conn.client.query_one("SELECT version FROM schema_version", &[])?.get(0);
        Ok(v as usize)
    }

    /// The server identity of this database, created by the first server that starts on it
    /// (every server process on the database shares it).
    pub fn identity_or(&self, new_id: &str) -> StoreResult<String> {
        let mut conn = self.pool().get().map_err(pool_err)?;
        let conn = &mut conn.client;
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS server_identity (one BIGINT PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL)",
        )?;
        conn.execute(
            "INSERT INTO server_identity (one, id) VALUES (1, $1) ON CONFLICT (one) DO NOTHING",
            &[&new_id],
        )?;
        Ok(conn.query_one("SELECT id FROM server_identity", &[])?.get(0))
    }

    fn run(&self, write: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pool = if write { self.pool() } else { self.read_pool() };
            let mut conn = pool.get().map_err(pool_err)?;
            let PgConn { client, statements } = &mut *conn;
            let tx = if write {
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
            } else {
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
            }
            .start()
            .map_err(StoreError::from)?;
            let mut ptx = PgTx {
                tx,
                statements,
                write,
                touched: BTreeSet::new(),
                failure: None,
            };
            let out = match f(&mut ptx) {
                Ok(()) => ptx.commit(),
                Err(e) => Err((e, ptx.failure.take())),
            };
            match out {
                Ok(()) => return Ok(()),
                Err((_, Some(code))) if retryable(&code) && attempt < MAX_ATTEMPTS => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(attempt, code = code.code(), "transaction conflict; running it again");
                    // Back off a little (randomised) so the contenders do not meet again at once.
                    let ms = rand::random_range(1..=(2u64 << attempt.min(6)));
                    std::thread::sleep(Duration::from_millis(ms));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

fn retryable(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::UNIQUE_VIOLATION
        || *code == SqlState::LOCK_NOT_AVAILABLE
}

impl Repository for PgRepo {
    fn with_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError> {
        self.run(true, f)
    }

    fn with_read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError> {
        self.run(false, f)
    }

    fn stats(&self) -> StoreStats {
        let (w, r) = (self.pool().state(), self.read_pool().state());
        StoreStats {
            backend: "postgres",
            connections: (w.connections + r.connections) as u64,
            idle: (w.idle_connections + r.idle_connections) as u64,
            max: (self.pool().max_size() + self.read_pool().max_size()) as u64,
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

struct PgTx<'c> {
    tx: postgres::Transaction<'c>,
    /// The connection's prepared statements.
    statements: &'c mut HashMap<String, Statement>,
    /// A write unit of work (reads that precede a write take row locks).
    write: bool,
    /// Customers whose change sequence is to be assigned at commit.
    touched: BTreeSet<String>,
    /// The SQLSTATE of the last failed statement (decides whether the unit is run again).
    failure: Option<SqlState>,
}

type P<'a> = &'a (dyn ToSql + Sync);

impl PgTx<'_> {
    fn note<T>(&mut self, r: Result<T, postgres::Error>) -> StoreResult<T> {
        r.map_err(|e| {
            if let Some(c) = e.code() {
                self.failure = Some(c.clone());
            }
            StoreError::from(e)
        })
    }
    /// The connection's prepared statement for `sql` (prepared on first use).
    fn statement(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let r = self.tx.prepare(sql);
        let st = self.note(r)?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
    fn query(&mut self, sql: &str, p: &[P<'_>]) -> StoreResult<Vec<Row>> {
        let st = self.statement(sql)?;
        let r = self.tx.query(&st, p);
        self.note(r)
    }
    fn query_opt(&mut self, sql: &str, p: &[P<'_>]) -> StoreResult<Option<Row>> {
        let st = self.statement(sql)?;
        let r = self.tx.query_opt(&st, p);
        self.note(r)
    }
    fn query_one(&mut self, sql: &str, p: &[P<'_>]) -> StoreResult<Row> {
        let st = self.statement(sql)?;
        let r = self.tx.query_one(&st, p);
        self.note(r)
    }
    fn execute(&mut self, sql: &str, p: &[P<'_>]) -> StoreResult<u64> {
        let st = self.statement(sql)?;
        let r = self.tx.execute(&st, p);
        self.note(r)
    }
    fn batch(&mut self, sql: &str) -> StoreResult<()> {
        let r = self.tx.batch_execute(sql);
        self.note(r)
    }

    /// ` FOR UPDATE` / ` FOR SHARE` in a write unit of work, nothing in a read-only one.
    fn lock(&self, mode: &'static str) -> &'static str {
        if self.write {
            mode
        } else {
            ""
        }
    }

    /// Give the touched customers their change sequence numbers in commit order, then commit.
    fn commit(mut self) -> Result<(), (ApiError, Option<SqlState>)> {
        let fail = |e: StoreError, code: Option<SqlState>| (ApiError::from(e), code);
        if !self.touched.is_empty() {
            let ids: Vec<String> = std::mem::take(&mut self.touched).into_iter().collect();
            let r = self
                .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CHANGE_SEQ])
                .and_then(|_| {
                    self.execute(
                        "UPDATE customers SET change_seq = nextval('change_seq') WHERE id = ANY($1)",
                        &[&ids],
                    )
                });
            if let Err(e) = r {
                let code = self.failure.take();
                return Err(fail(e, code));
            }
        }
        self.tx.commit().map_err(|e| {
            let code = e.code().cloned();
            fail(e.into(), code)
        })
    }
}

fn receipt_of(r: &Row) -> StoreResult<StoredReceipt> {
    to_stored((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
}

const RECEIPT_COLS: &str = "payload, payload_hash, account_id, effect";
const CARD_COLS: &str = "number, customer_id, status, reason, replaced_by, issued_store, issued_at";
const CUSTOMER_COLS: &str = "customer, state, expiring, change_seq";
const MESSAGE_COLS: &str = "id, cause, kind, customer_id, channel, recipient, text, created_at";
const LEDGER_COLS: &str = "seq, account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note";
const REDEMPTION_COLS: &str = "id, payload_hash, account_id, card, store_id, till_id, points, value, reward, code, \
                               offline, requested_at, business_day, created_at, voided_at, matched_receipt, matched_at";

const TAG_COLS: &str = "payload, payload_hash, state, receipt_id, note";

fn tag_of(r: &Row) -> StoreResult<TagRow> {
    to_tag((
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
    ))
}

fn card_of(r: &Row) -> StoreResult<CardRow> {
    to_card((
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
    ))
}

fn customer_of(r: &Row) -> StoreResult<CustomerRow> {
    to_customer((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
}

fn message_of(r: &Row) -> StoreResult<Message> {
    Ok(Message {
        id: r.try_get(0)?,
        cause: r.try_get(1)?,
        kind: r.try_get(2)?,
        customer_id: r.try_get(3)?,
        channel: r.try_get(4)?,
        recipient: r.try_get(5)?,
        text: r.try_get(6)?,
        created_at: parse_time(Some(r.try_get(7)?)).unwrap_or_default(),
    })
}

fn ledger_of(r: &Row) -> StoreResult<LedgerEntry> {
    to_ledger((
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
        r.try_get(9)?,
    ))
}

fn redemption_of(r: &Row) -> StoreResult<RedemptionRow> {
    let text = |i: usize| -> StoreResult<String> { Ok(r.try_get::<_, String>(i)?) };
    let opt = |i: usize| -> StoreResult<Option<String>> { Ok(r.try_get::<_, Option<String>>(i)?) };
    let card = CardId::normalise(&text(3)?).map_err(|e| StoreError::Other(format!("stored card number: {e}")))?;
    let offline: i64 = r.try_get(10)?;
    Ok(RedemptionRow {
        id: text(0)?,
        payload_hash: text(1)?,
        account_id: CustomerId(text(2)?),
        card,
        store_id: StoreId(text(4)?),
        till_id: TillId(text(5)?),
        points: dec("redemption points", &text(6)?)?,
        value: dec("redemption value", &text(7)?)?,
        reward: enum_from("reward kind", &text(8)?)?,
        code: text(9)?,
        offline: offline == 1,
        requested_at: DateTime::parse_from_rfc3339(&text(11)?)
            .map_err(|e| StoreError::Other(format!("stored requested_at: {e}")))?,
        business_day: text(12)?
            .parse()
            .map_err(|e| StoreError::Other(format!("stored business_day: {e}")))?,
        created_at: parse_time(opt(13)?).unwrap_or_default(),
        voided_at: parse_time(opt(14)?),
        matched_receipt: opt(15)?.map(ReceiptId),
        matched_at: parse_time(opt(16)?),
    })
}

fn millis(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Tx for PgTx<'_> {
    fn savepoint(&mut self) -> StoreResult<()> {
        self.batch("SAVEPOINT item")
    }
    fn release_savepoint(&mut self) -> StoreResult<()> {
        self.batch("RELEASE SAVEPOINT item")
    }
    fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        self.batch("ROLLBACK TO SAVEPOINT item; RELEASE SAVEPOINT item")
    }

    fn lock_accounts_of(&mut self, cards: &[CardId]) -> StoreResult<()> {
        if cards.is_empty() || !self.write {
            return Ok(());
        }
        let numbers: Vec<&str> = cards.iter().map(|c| c.expose()).collect();
        self.query(
            "SELECT id FROM customers WHERE id IN (
                 SELECT h.id FROM cards c JOIN customers h ON h.id = c.customer_id WHERE c.number = ANY($1)
                 UNION
                 SELECT h.parent_id FROM cards c JOIN customers h ON h.id = c.customer_id
                 WHERE c.number = ANY($1) AND h.parent_id IS NOT NULL)
             ORDER BY id FOR UPDATE",
            &[&numbers],
        )?;
        Ok(())
    }

    fn program(&mut self) -> StoreResult<Option<RulesSnapshot>> {
        let row = self.query_opt("SELECT snapshot FROM program WHERE id = 1", &[])?;
        row.map(|r| from_json("rules snapshot", &r.try_get::<_, String>(0)?))
            .transpose()
    }

    fn put_program(&mut self, program: &Program) -> StoreResult<RulesSnapshot> {
        let current = self.query_opt("SELECT snapshot FROM program WHERE id = 1 FOR UPDATE", &[])?;
        let previous: Option<RulesSnapshot> = current
            .map(|r| from_json("rules snapshot", &r.try_get::<_, String>(0)?))
            .transpose()?;
        let version = previous.as_ref().map(|s| s.version).unwrap_or(0) + 1;
        let snap = RulesSnapshot {
            version,
            program: program.clone(),
            lookup_key: Some(crate::digest::lookup_key_for(previous.as_ref())),
        };
        self.execute(
            "INSERT INTO program (id, version, snapshot, updated_at) VALUES (1, $1, $2, $3)
             ON CONFLICT(id) DO UPDATE SET version = excluded.version, snapshot = excluded.snapshot, updated_at = excluded.updated_at",
            &[&(version as i64), &json(&snap), &now()],
        )?;
        Ok(snap)
    }

    fn till_by_token_hash(&mut self, token_sha256: &str) -> StoreResult<Option<TillRow>> {
        let row = self.query_opt(
            "SELECT store_id, till_id, revoked_at IS NOT NULL FROM tills WHERE token_sha256 = $1",
            &[&token_sha256],
        )?;
        row.map(|r| {
            Ok(TillRow {
                store_id: StoreId(r.try_get(0)?),
                till_id: TillId(r.try_get(1)?),
                revoked: r.try_get(2)?,
            })
        })
        .transpose()
    }

    fn put_till(&mut self, store: &StoreId, till: &TillId, token_sha256: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO tills (store_id, till_id, token_sha256, revoked_at, created_at) VALUES ($1, $2, $3, NULL, $4)
             ON CONFLICT(store_id, till_id) DO UPDATE SET token_sha256 = excluded.token_sha256, revoked_at = NULL,
             created_at = excluded.created_at",
            &[&store.0, &till.0, &token_sha256, &now()],
        )?;
        Ok(())
    }

    fn revoke_till(&mut self, store: &StoreId, till: &TillId) -> StoreResult<bool> {
        let n = self.execute(
            "UPDATE tills SET revoked_at = $3 WHERE store_id = $1 AND till_id = $2 AND revoked_at IS NULL",
            &[&store.0, &till.0, &now()],
        )?;
        Ok(n > 0)
    }

    fn receipt(&mut self, id: &ReceiptId) -> StoreResult<Option<StoredReceipt>> {
        let row = self.query_opt(&format!("SELECT {RECEIPT_COLS} FROM receipts WHERE id = $1"), &[&id.0])?;
        row.as_ref().map(receipt_of).transpose()
    }

    fn receipts_by_pos_no(&mut self, store: &StoreId, pos_receipt_no: &str) -> StoreResult<Vec<StoredReceipt>> {
        let rows = self.query(
            &format!(
                "SELECT {RECEIPT_COLS} FROM receipts WHERE store_id = $1 AND pos_receipt_no = $2
                 ORDER BY business_day DESC, issued_at DESC LIMIT 1000"
            ),
            &[&store.0, &pos_receipt_no.trim()],
        )?;
        let mut out: Vec<StoredReceipt> = rows.iter().map(receipt_of).collect::<StoreResult<_>>()?;
        out.sort_by_key(|r| std::cmp::Reverse(r.receipt.issued_at));
        Ok(out)
    }

    fn insert_receipt(&mut self, s: StoredReceipt, original: Option<&ReceiptId>) -> StoreResult<()> {
        let (r, credited) = (&s.receipt, s.points_credited());
        self.execute(
            "INSERT INTO receipts (id, payload_hash, store_id, till_id, pos_receipt_no, issued_at, business_day, card,
             account_id, total, turnover, points_credited, campaign, effect, payload, received_at, original_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            &[
                &r.id.0,
                &s.payload_hash,
                &r.store_id.0,
                &r.till_id.0,
                &r.pos_receipt_no.trim(),
                &r.issued_at.to_rfc3339(),
                &r.issued_at.date_naive().to_string(),
                &r.card.as_ref().map(|c| c.expose().to_string()),
                &s.account.as_ref().map(|a| a.0.clone()),
                &r.total.to_string(),
                &s.effect.turnover_delta.to_string(),
                &credited.to_string(),
                &s.effect.campaign,
                &json(&*s.effect),
                &json(&**r),
                &now(),
                &original.map(|o| o.0.clone()),
            ],
        )?;
        Ok(())
    }

    fn returns_of(&mut self, original: &ReceiptId) -> StoreResult<Vec<Receipt>> {
        if self.write {
            // Returns of one original, one at a time: the second sees the first's reversal.
            self.query("SELECT 1 FROM receipts WHERE id = $1 FOR UPDATE", &[&original.0])?;
        }
        let rows = self.query(
            "SELECT payload FROM receipts WHERE original_id = $1 ORDER BY issued_at, rowid",
            &[&original.0],
        )?;
        rows.iter()
            .map(|r| from_json("receipt payload", &r.try_get::<_, String>(0)?))
            .collect()
    }

    fn receipts_between(&mut self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<ReceiptFacts>> {
        let rows = self.query(
            "SELECT store_id, business_day, turnover, points_credited, campaign FROM receipts
             WHERE business_day >= $1 AND business_day <= $2 ORDER BY business_day, store_id",
            &[&from.to_string(), &to.to_string()],
        )?;
        rows.iter()
            .map(|r| {
                let day: String = r.try_get(1)?;
                Ok(ReceiptFacts {
                    store_id: StoreId(r.try_get(0)?),
                    business_day: day
                        .parse()
                        .map_err(|e| StoreError::Other(format!("stored business day {day:?}: {e}")))?,
                    turnover: dec("turnover", &r.try_get::<_, String>(2)?)?,
                    points_credited: dec("points", &r.try_get::<_, String>(3)?)?,
                    campaign: r.try_get(4)?,
                })
            })
            .collect()
    }

    fn request(&mut self, request_id: &str) -> StoreResult<Option<RequestRow>> {
        let row = self.query_opt(
            "SELECT request_id, kind, payload_hash, result FROM requests WHERE request_id = $1",
            &[&request_id],
        )?;
        row.map(|r| {
            Ok(RequestRow {
                request_id: r.try_get(0)?,
                kind: r.try_get(1)?,
                payload_hash: r.try_get(2)?,
                result: from_json("request result", &r.try_get::<_, String>(3)?)?,
            })
        })
        .transpose()
    }

    fn insert_request(&mut self, row: &RequestRow) -> StoreResult<()> {
        self.execute(
            "INSERT INTO requests (request_id, kind, payload_hash, result, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &row.request_id,
                &row.kind,
                &row.payload_hash,
                &json(&row.result),
                &now(),
            ],
        )?;
        Ok(())
    }

    fn card(&mut self, number: &CardId) -> StoreResult<Option<CardRow>> {
        let row = self.query_opt(
            &format!(
                "SELECT {CARD_COLS} FROM cards WHERE number = $1{}",
                self.lock(" FOR SHARE")
            ),
            &[&number.expose()],
        )?;
        row.as_ref().map(card_of).transpose()
    }

    fn put_card(&mut self, c: &CardRow) -> StoreResult<()> {
        let (status, reason, by) = match &c.status {
            CardStatus::Active => ("active", None, None),
            CardStatus::Blocked { reason } => ("blocked", Some(reason.clone()), None),
            CardStatus::Replaced { by } => ("replaced", None, Some(by.expose().to_string())),
        };
        self.execute(
            "INSERT INTO cards (number, customer_id, status, reason, replaced_by, issued_store, issued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT(number) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
             reason = excluded.reason, replaced_by = excluded.replaced_by, issued_store = excluded.issued_store,
             issued_at = excluded.issued_at",
            &[
                &c.number.expose(),
                &c.customer_id.as_ref().map(|x| x.0.clone()),
                &status,
                &reason,
                &by,
                &c.issued_store.as_ref().map(|s| s.0.clone()),
                &c.issued_at.as_ref().map(millis),
            ],
        )?;
        Ok(())
    }

    fn cards_of(&mut self, customer: &CustomerId) -> StoreResult<Vec<CardRow>> {
        let rows = self.query(
            &format!("SELECT {CARD_COLS} FROM cards WHERE customer_id = $1 ORDER BY number"),
            &[&customer.0],
        )?;
        rows.iter().map(card_of).collect()
    }

    fn cards_issued_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<CardRow>> {
        let rows = self.query(
            &format!("SELECT {CARD_COLS} FROM cards WHERE issued_at >= $1 AND issued_at < $2 ORDER BY issued_at"),
            &[&millis(&from), &millis(&to)],
        )?;
        rows.iter().map(card_of).collect()
    }

    fn next_counter(&mut self, name: &str) -> StoreResult<i64> {
        Ok(self
            .query_one(
                "INSERT INTO counters (name, value) VALUES ($1, 1)
                 ON CONFLICT(name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                &[&name],
            )?
            .try_get(0)?)
    }

    fn customer(&mut self, id: &CustomerId) -> StoreResult<Option<CustomerRow>> {
        let row = self.query_opt(
            &format!(
                "SELECT {CUSTOMER_COLS} FROM customers WHERE id = $1{}",
                self.lock(" FOR UPDATE")
            ),
            &[&id.0],
        )?;
        row.as_ref().map(customer_of).transpose()
    }

    fn put_customer(&mut self, customer: &Customer, state: &CustomerState) -> StoreResult<()> {
        let (state, expiring) = state_columns(state);
        self.execute(
            "INSERT INTO customers (id, parent_id, customer, state, expiring, change_seq)
             VALUES ($1, $2, $3, $4, $5, nextval('change_seq'))
             ON CONFLICT(id) DO UPDATE SET parent_id = excluded.parent_id, customer = excluded.customer,
             state = excluded.state, expiring = excluded.expiring, change_seq = excluded.change_seq",
            &[
                &customer.id.0,
                &customer.parent.as_ref().map(|p| p.0.clone()),
                &json(customer),
                &state,
                &expiring,
            ],
        )?;
        self.touched.insert(customer.id.0.clone());
        Ok(())
    }

    fn touch_customer(&mut self, id: &CustomerId) -> StoreResult<()> {
        self.touched.insert(id.0.clone());
        Ok(())
    }

    fn sub_customers(&mut self, parent: &CustomerId) -> StoreResult<Vec<CustomerId>> {
        let rows = self.query(
            "SELECT id FROM customers WHERE parent_id = $1 ORDER BY id",
            &[&parent.0],
        )?;
        rows.iter().map(|r| Ok(CustomerId(r.try_get(0)?))).collect()
    }

    fn all_customers(&mut self) -> StoreResult<Vec<CustomerRow>> {
        let rows = self.query(&format!("SELECT {CUSTOMER_COLS} FROM customers ORDER BY id"), &[])?;
        rows.iter().map(customer_of).collect()
    }

    fn changed_since(&mut self, since: i64, limit: usize) -> StoreResult<Vec<CustomerRow>> {
        let rows = self.query(
            &format!("SELECT {CUSTOMER_COLS} FROM customers WHERE change_seq > $1 ORDER BY change_seq LIMIT $2"),
            &[&since, &(limit as i64)],
        )?;
        rows.iter().map(customer_of).collect()
    }

    fn max_change_seq(&mut self) -> StoreResult<i64> {
        Ok(self
            .query_one("SELECT COALESCE(MAX(change_seq), 0)::BIGINT FROM customers", &[])?
            .try_get(0)?)
    }

    fn migration_code(&mut self, code: &str) -> StoreResult<Option<MigrationCodeRow>> {
        let row = self.query_opt(
            &format!(
                "SELECT code, customer_id, used_by_card FROM migration_codes WHERE code = $1{}",
                self.lock(" FOR UPDATE")
            ),
            &[&code],
        )?;
        row.map(|r| {
            let used: Option<String> = r.try_get(2)?;
            Ok(MigrationCodeRow {
                code: r.try_get(0)?,
                customer_id: CustomerId(r.try_get(1)?),
                used_by_card: used
                    .map(|u| CardId::normalise(&u).map_err(|e| StoreError::Other(format!("stored card: {e}"))))
                    .transpose()?,
            })
        })
        .transpose()
    }

    fn put_migration_code(&mut self, row: &MigrationCodeRow) -> StoreResult<()> {
        self.execute(
            "INSERT INTO migration_codes (code, customer_id, used_by_card, used_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT(code) DO UPDATE SET customer_id = excluded.customer_id, used_by_card = excluded.used_by_card,
             used_at = excluded.used_at",
            &[
                &row.code,
                &row.customer_id.0,
                &row.used_by_card.as_ref().map(|c| c.expose().to_string()),
                &row.used_by_card.as_ref().map(|_| now()),
            ],
        )?;
        Ok(())
    }

    fn append_ledger(&mut self, e: &NewLedgerEntry) -> StoreResult<()> {
        self.execute(
            "INSERT INTO ledger (account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &e.account_id.0,
                &millis(&e.at),
                &enum_name(&e.kind),
                &e.cause_id,
                &e.store_id.as_ref().map(|s| s.0.clone()),
                &e.till_id.as_ref().map(|t| t.0.clone()),
                &e.points.normalize().to_string(),
                &e.balance_after.normalize().to_string(),
                &e.note,
            ],
        )?;
        Ok(())
    }

    fn ledger(&mut self, account: &CustomerId, before: Option<i64>, limit: usize) -> StoreResult<Vec<LedgerEntry>> {
        let rows = self.query(
            &format!("SELECT {LEDGER_COLS} FROM ledger WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"),
            &[&account.0, &before.unwrap_or(i64::MAX), &(limit as i64)],
        )?;
        rows.iter().map(ledger_of).collect()
    }

    fn ledger_points(&mut self) -> StoreResult<Vec<(CustomerId, Decimal)>> {
        let rows = self.query("SELECT account_id, points FROM ledger ORDER BY seq", &[])?;
        rows.iter()
            .map(|r| {
                Ok((
                    CustomerId(r.try_get(0)?),
                    dec("ledger points", &r.try_get::<_, String>(1)?)?,
                ))
            })
            .collect()
    }

    fn redemption(&mut self, id: &str) -> StoreResult<Option<RedemptionRow>> {
        let row = self.query_opt(
            &format!(
                "SELECT {REDEMPTION_COLS} FROM redemptions WHERE id = $1{}",
                self.lock(" FOR UPDATE")
            ),
            &[&id],
        )?;
        row.as_ref().map(redemption_of).transpose()
    }

    fn put_redemption(&mut self, r: &RedemptionRow) -> StoreResult<()> {
        let updates = REDEMPTION_COLS
            .split(',')
            .map(str::trim)
            .filter(|c| *c != "id")
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.execute(
            &format!(
                "INSERT INTO redemptions ({REDEMPTION_COLS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 ON CONFLICT (id) DO UPDATE SET {updates}"
            ),
            &[
                &r.id,
                &r.payload_hash,
                &r.account_id.0,
                &r.card.expose(),
                &r.store_id.0,
                &r.till_id.0,
                &r.points.normalize().to_string(),
                &r.value.normalize().to_string(),
                &enum_name(&r.reward),
                &r.code,
                &(r.offline as i64),
                &r.requested_at.to_rfc3339(),
                &r.business_day.to_string(),
                &millis(&r.created_at),
                &r.voided_at.as_ref().map(millis),
                &r.matched_receipt.as_ref().map(|m| m.0.clone()),
                &r.matched_at.as_ref().map(millis),
            ],
        )?;
        Ok(())
    }

    fn open_redemptions(&mut self, store: &StoreId) -> StoreResult<Vec<RedemptionRow>> {
        let rows = self.query(
            &format!(
                "SELECT {REDEMPTION_COLS} FROM redemptions \
                 WHERE store_id = $1 AND voided_at IS NULL AND matched_receipt IS NULL ORDER BY created_at"
            ),
            &[&store.0],
        )?;
        rows.iter().map(redemption_of).collect()
    }

    fn all_redemptions(&mut self) -> StoreResult<Vec<RedemptionRow>> {
        let rows = self.query(
            &format!("SELECT {REDEMPTION_COLS} FROM redemptions ORDER BY created_at"),
            &[],
        )?;
        rows.iter().map(redemption_of).collect()
    }

    fn set_card_preload(&mut self, card: &CardId, points: Decimal) -> StoreResult<()> {
        self.execute(
            "UPDATE cards SET preload_points = $2 WHERE number = $1",
            &[&card.expose(), &points.normalize().to_string()],
        )?;
        Ok(())
    }

    fn take_card_preload(&mut self, card: &CardId) -> StoreResult<Option<Decimal>> {
        let row = self.query_opt(
            "SELECT preload_points FROM cards WHERE number = $1 FOR UPDATE",
            &[&card.expose()],
        )?;
        let Some(row) = row else { return Ok(None) };
        let Some(s): Option<String> = row.try_get(0)? else {
            return Ok(None);
        };
        self.execute(
            "UPDATE cards SET preload_points = NULL WHERE number = $1",
            &[&card.expose()],
        )?;
        Ok(Some(dec("card preload", &s)?))
    }

    fn record_message(&mut self, m: &Message) -> StoreResult<bool> {
        let n = self.execute(
            "INSERT INTO messages (cause, kind, customer_id, channel, recipient, text, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(cause) DO NOTHING",
            &[
                &m.cause,
                &m.kind,
                &m.customer_id,
                &m.channel,
                &m.recipient,
                &m.text,
                &now(),
            ],
        )?;
        Ok(n > 0)
    }

    fn message_recorded(&mut self, cause: &str) -> StoreResult<bool> {
        Ok(self
            .query_opt("SELECT 1 FROM messages WHERE cause = $1", &[&cause])?
            .is_some())
    }

    fn tag(&mut self, id: &str) -> StoreResult<Option<TagRow>> {
        let row = self.query_opt(
            &format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE id = $1{}",
                self.lock(" FOR UPDATE")
            ),
            &[&id],
        )?;
        row.as_ref().map(tag_of).transpose()
    }

    fn put_tag(&mut self, t: &TagRow) -> StoreResult<()> {
        self.execute(
            "INSERT INTO receipt_tags (id, payload_hash, store_id, pos_receipt_no, business_day, has_total,
             tagged_at, state, receipt_id, note, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, receipt_id = excluded.receipt_id,
             note = excluded.note",
            &[
                &t.tag.request_id,
                &t.payload_hash,
                &t.tag.store_id.0,
                &t.tag.pos_receipt_no.trim(),
                &t.tag.date.to_string(),
                &(t.tag.total.is_some() as i64),
                &millis(&t.tag.tagged_at.with_timezone(&Utc)),
                &t.state.as_str(),
                &t.receipt_id.as_ref().map(|r| r.0.clone()),
                &t.note,
                &json(&t.tag),
                &now(),
            ],
        )?;
        Ok(())
    }

    fn tags_for(
        &mut self,
        store: &StoreId,
        pos_receipt_no: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<TagRow>> {
        let rows = self.query(
            &format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE store_id = $1 AND pos_receipt_no = $2
                 AND business_day >= $3 AND business_day <= $4 ORDER BY created_at, id"
            ),
            &[&store.0, &pos_receipt_no.trim(), &from.to_string(), &to.to_string()],
        )?;
        rows.iter().map(tag_of).collect()
    }

    fn waiting_tags_with_total(&mut self, tagged_before: DateTime<Utc>) -> StoreResult<Vec<TagRow>> {
        let rows = self.query(
            &format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE state = 'waiting' AND has_total = 1 AND tagged_at <= $1
                 ORDER BY tagged_at, id LIMIT 1000"
            ),
            &[&millis(&tagged_before)],
        )?;
        rows.iter().map(tag_of).collect()
    }

    fn set_receipt_account(&mut self, id: &ReceiptId, account: Option<&CustomerId>, card: &CardId) -> StoreResult<()> {
        self.execute(
            "UPDATE receipts SET account_id = $2, card = $3,
             points_credited = CASE WHEN $2::text IS NULL THEN '0' ELSE effect::jsonb ->> 'points_delta' END
             WHERE id = $1",
            &[&id.0, &account.map(|a| a.0.clone()), &card.expose()],
        )?;
        Ok(())
    }

    fn unmatched_receipts(&mut self, card: &CardId, since: NaiveDate) -> StoreResult<Vec<StoredReceipt>> {
        let rows = self.query(
            &format!(
                "SELECT {RECEIPT_COLS} FROM receipts WHERE card = $1 AND account_id IS NULL AND original_id IS NULL
                 AND business_day >= $2 ORDER BY issued_at, id"
            ),
            &[&card.expose(), &since.to_string()],
        )?;
        rows.iter().map(receipt_of).collect()
    }

    fn message_acked(&mut self, cause: &str) -> StoreResult<bool> {
        Ok(self
            .query_opt("SELECT 1 FROM message_acks WHERE cause = $1", &[&cause])?
            .is_some())
    }

    fn put_message_ack(&mut self, a: &MessageAckRow) -> StoreResult<bool> {
        let n = self.execute(
            "INSERT INTO message_acks (cause, customer_id, card, store_id, till_id, shown_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(cause) DO NOTHING",
            &[
                &a.cause,
                &a.customer_id.0,
                &a.card.expose(),
                &a.store_id.0,
                &a.till_id.0,
                &a.shown_at.to_rfc3339(),
                &now(),
            ],
        )?;
        Ok(n == 1)
    }

    fn messages(&mut self, kind: Option<&str>, limit: usize) -> StoreResult<Vec<Message>> {
        let rows = self.query(
            &format!("SELECT {MESSAGE_COLS} FROM messages WHERE ($1::text IS NULL OR kind = $1) ORDER BY id LIMIT $2"),
            &[&kind, &(limit as i64)],
        )?;
        rows.iter().map(message_of).collect()
    }

    fn receipts_in(&mut self, ids: &[ReceiptId]) -> StoreResult<Vec<StoredReceipt>> {
        let keys: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
        let rows = self.query(
            &format!("SELECT {RECEIPT_COLS} FROM receipts WHERE id = ANY($1)"),
            &[&keys],
        )?;
        rows.iter().map(receipt_of).collect()
    }

    fn cards_in(&mut self, numbers: &[CardId]) -> StoreResult<Vec<CardRow>> {
        let keys: Vec<&str> = numbers.iter().map(|c| c.expose()).collect();
        let rows = self.query(
            &format!(
                "SELECT {CARD_COLS} FROM cards WHERE number = ANY($1) ORDER BY number{}",
                self.lock(" FOR SHARE")
            ),
            &[&keys],
        )?;
        rows.iter().map(card_of).collect()
    }

    fn customers_in(&mut self, ids: &[CustomerId]) -> StoreResult<Vec<CustomerRow>> {
        // In id order, as lock_accounts_of locks them: concurrent batches do not deadlock.
        let keys: Vec<&str> = ids.iter().map(|c| c.0.as_str()).collect();
        let rows = self.query(
            &format!(
                "SELECT {CUSTOMER_COLS} FROM customers WHERE id = ANY($1) ORDER BY id{}",
                self.lock(" FOR UPDATE")
            ),
            &[&keys],
        )?;
        rows.iter().map(customer_of).collect()
    }

    fn sub_customers_in(&mut self, parents: &[CustomerId]) -> StoreResult<Vec<(CustomerId, CustomerId)>> {
        let keys: Vec<&str> = parents.iter().map(|c| c.0.as_str()).collect();
        let rows = self.query(
            "SELECT parent_id, id FROM customers WHERE parent_id = ANY($1) ORDER BY id",
            &[&keys],
        )?;
        rows.iter()
            .map(|r| Ok((CustomerId(r.try_get(0)?), CustomerId(r.try_get(1)?))))
            .collect()
    }

    fn tags_of_numbers(&mut self, store: &StoreId, pos_receipt_nos: &[String]) -> StoreResult<Vec<TagRow>> {
        let keys: Vec<&str> = pos_receipt_nos.iter().map(|n| n.trim()).collect();
        let rows = self.query(
            &format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE store_id = $1 AND pos_receipt_no = ANY($2)
                 ORDER BY created_at, id"
            ),
            &[&store.0, &keys],
        )?;
        rows.iter().map(tag_of).collect()
    }

    fn write_batch(&mut self, w: &BatchWrites) -> StoreResult<()> {
        // One statement per table, the rows as arrays (unnest keeps their order, so ledger
        // sequence numbers follow the booking order).
        if !w.customers.is_empty() {
            let ids: Vec<&str> = w.customers.iter().map(|(c, _)| c.id.0.as_str()).collect();
            let parents: Vec<Option<&str>> = w
                .customers
                .iter()
                .map(|(c, _)| c.parent.as_ref().map(|p| p.0.as_str()))
                .collect();
            let customers: Vec<String> = w.customers.iter().map(|(c, _)| json(&**c)).collect();
            let (states, expiring): (Vec<String>, Vec<Option<String>>) =
                w.customers.iter().map(|(_, s)| state_columns(s)).unzip();
            self.execute(
                "INSERT INTO customers (id, parent_id, customer, state, expiring, change_seq)
                 SELECT id, parent_id, customer, state, expiring, nextval('change_seq')
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                 AS u(id, parent_id, customer, state, expiring)
                 ON CONFLICT(id) DO UPDATE SET parent_id = excluded.parent_id, customer = excluded.customer,
                 state = excluded.state, expiring = excluded.expiring, change_seq = excluded.change_seq",
                &[&ids, &parents, &customers, &states, &expiring],
            )?;
            for id in ids {
                self.touched.insert(id.to_string());
            }
        }
        for id in &w.touched {
            self.touched.insert(id.0.clone());
        }
        if !w.ledger.is_empty() {
            let l = &w.ledger;
            let account: Vec<&str> = l.iter().map(|e| e.account_id.0.as_str()).collect();
            let at: Vec<String> = l.iter().map(|e| millis(&e.at)).collect();
            let kind: Vec<String> = l.iter().map(|e| enum_name(&e.kind)).collect();
            let cause: Vec<&str> = l.iter().map(|e| e.cause_id.as_str()).collect();
            let store: Vec<Option<&str>> = l.iter().map(|e| e.store_id.as_ref().map(|s| s.0.as_str())).collect();
            let till: Vec<Option<&str>> = l.iter().map(|e| e.till_id.as_ref().map(|t| t.0.as_str())).collect();
            let points: Vec<String> = l.iter().map(|e| e.points.normalize().to_string()).collect();
            let after: Vec<String> = l.iter().map(|e| e.balance_after.normalize().to_string()).collect();
            let note: Vec<Option<&str>> = l.iter().map(|e| e.note.as_deref()).collect();
            self.execute(
                "INSERT INTO ledger (account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note)
                 SELECT a, b, c, d, e, f, g, h, i FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                 $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, i, n) ORDER BY n",
                &[&account, &at, &kind, &cause, &store, &till, &points, &after, &note],
            )?;
        }
        if !w.receipts.is_empty() {
            let rs = &w.receipts;
            let col = |f: &dyn Fn(&StoredReceipt, Option<&ReceiptId>) -> Option<String>| -> Vec<Option<String>> {
                rs.iter().map(|(s, o)| f(s, o.as_ref())).collect()
            };
            let cols: Vec<Vec<Option<String>>> = vec![
                col(&|s, _| Some(s.receipt.id.0.clone())),
                col(&|s, _| Some(s.payload_hash.clone())),
                col(&|s, _| Some(s.receipt.store_id.0.clone())),
                col(&|s, _| Some(s.receipt.till_id.0.clone())),
                col(&|s, _| Some(s.receipt.pos_receipt_no.trim().to_string())),
                col(&|s, _| Some(s.receipt.issued_at.to_rfc3339())),
                col(&|s, _| Some(s.receipt.issued_at.date_naive().to_string())),
                col(&|s, _| s.receipt.card.as_ref().map(|c| c.expose().to_string())),
                col(&|s, _| s.account.as_ref().map(|a| a.0.clone())),
                col(&|s, _| Some(s.receipt.total.to_string())),
                col(&|s, _| Some(s.effect.turnover_delta.to_string())),
                col(&|s, _| {
                    Some(
                        if s.account.is_some() {
                            s.effect.points_delta
                        } else {
                            Decimal::ZERO
                        }
                        .to_string(),
                    )
                }),
                col(&|s, _| s.effect.campaign.clone()),
                col(&|s, _| Some(json(&*s.effect))),
                col(&|s, _| {
                    Some(
                        s.payload_json
                            .as_deref()
                            .map_or_else(|| json(&*s.receipt), str::to_string),
                    )
                }),
                col(&|_, _| Some(now())),
                col(&|_, o| o.map(|o| o.0.clone())),
            ];
            let params: Vec<P<'_>> = cols.iter().map(|c| c as P<'_>).collect();
            self.execute(
                "INSERT INTO receipts (id, payload_hash, store_id, till_id, pos_receipt_no, issued_at, business_day, card,
                 account_id, total, turnover, points_credited, campaign, effect, payload, received_at, original_id)
                 SELECT a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r FROM unnest($1::text[], $2::text[],
                 $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                 $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
                 WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q, r, n) ORDER BY n",
                &params,
            )?;
        }
        for m in &w.messages {
            self.record_message(m)?;
        }
        Ok(())
    }
}
