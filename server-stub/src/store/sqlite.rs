//! SQLite backend of the repository: one connection in WAL mode behind a mutex (SQLite has one
//! writer anyway), versioned migrations through `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use protocol::rules::{Program, RulesSnapshot};
use protocol::v1::{CardStatus, Customer, CustomerState, LedgerEntry, Receipt};
use protocol::{CardId, CustomerId, ReceiptId, StoreId, TillId};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use rust_decimal::Decimal;

use super::codec::*;
use super::migrations::MIGRATIONS;
use super::{
    BatchWrites, CardRow, CustomerRow, Message, MessageAckRow, MigrationCodeRow, NewLedgerEntry, ReceiptFacts,
    RedemptionRow, Repository, RequestRow, StoreError, StoreResult, StoreStats, StoredReceipt, TagRow, TillRow, Tx,
};
use crate::error::ApiError;

/// Read connections kept open for reuse (more are opened under load and closed after).
const KEEP_READERS: usize = 8;

pub struct SqliteRepo {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Idle read connections: reads run beside the writer (WAL), never behind its mutex.
    readers: Mutex<Vec<Connection>>,
    open_readers: AtomicU64,
    /// Wakes the checkpointer after a commit; dropped with the repository, which ends it.
    checkpoints: std::sync::mpsc::SyncSender<()>,
    /// Accounts as last committed by this server, parsed: see [`AccountCache`].
    accounts: AccountCache,
}

/// Accounts (customer rows) parsed from their JSON, by id, each with the change number it was
/// written with. A sync batch's prefetch reads the change numbers and parses only the rows whose
/// number moved (every write of a customer row takes a new one). Filled at commit from the rows
/// the transaction wrote or parsed; a transaction that rolled back to a savepoint drops its rows
/// from it instead (a rolled-back change number can be taken again). Emptied past
/// [`ACCOUNT_CACHE_MAX`] entries.
type AccountCache = Mutex<std::collections::HashMap<String, CustomerRow>>;
const ACCOUNT_CACHE_MAX: usize = 50_000;

/// The WAL is copied into the database file by a thread of its own ([`checkpointer`]), off the
/// commit path: at most this long after a commit, so under load one checkpoint takes many
/// batches' pages (an account's page rewritten by each batch is copied once).
const CHECKPOINT_AFTER: std::time::Duration = std::time::Duration::from_millis(100);
/// The writer still checkpoints itself when the WAL grows past this many pages (≈ 40 MB): the
/// checkpointer could not keep up or could not run.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// How long every connection of the server waits for another one's lock (`till add` from the CLI
/// runs beside a live server); also how long a new file's switch to WAL is tried.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A passive checkpoint that found more than this many pages in the WAL (the writer kept
/// committing while the pages were copied, so the WAL never started over) is followed by a FULL
/// one: the writer waits for the pages committed meanwhile to be copied, and its next commit
/// starts the WAL from the beginning again. Without it a busy server's WAL only grew (to [`WRITER_CHECKPOINT_PAGES`]), and every
/// commit extended the file: the file system allocated and zeroed each new block (5 % of the
/// ingest's CPU).
const WAL_RESTART_PAGES: i64 = 1_000;
/// How long the FULL checkpoint waits for the writer's batch and for readers on older snapshots;
/// past it, it ends as a passive one (new commits wait while it is pending).
const WAL_RESTART_PATIENCE: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection [`CHECKPOINT_AFTER`] a commit
/// woke it (never blocking the writer or readers), then a short FULL one when the writer outran
/// it past [`WAL_RESTART_PAGES`], until the repository is dropped.
fn checkpointer(conn: Connection, wake: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::TryRecvError;
    while wake.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_AFTER);
        let gone = loop {
            match wake.try_recv() {
                Ok(()) => continue,
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if let Err(e) = checkpoint(&conn) {
            tracing::warn!(error = %e, "WAL checkpoint failed (the writer checkpoints past {WRITER_CHECKPOINT_PAGES} pages)");
        }
        if gone {
            return;
        }
    }
}

/// One round of the [`checkpointer`]: PASSIVE, then FULL if the writer outran it past
/// [`WAL_RESTART_PAGES`]; whether the FULL one ran.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    let frames = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
    };
    // The WAL's frames when the passive checkpoint began: the writer may have added more since,
    // so past the limit the FULL one runs whatever the passive one copied.
    let (in_wal, _copied) = frames("PASSIVE")?;
    if in_wal <= WAL_RESTART_PAGES {
        return Ok(false);
    }
    conn.busy_timeout(WAL_RESTART_PATIENCE)?;
    let full = frames("FULL");
    conn.busy_timeout(BUSY_TIMEOUT)?;
    full.map(|_| true)
}

/// Open (creating if needed) and migrate. WAL, synchronous=FULL (a commit survives power loss),
/// foreign keys on, 5 s busy timeout so `till add` from the CLI can run beside a live server.
pub fn open_connection(path: &Path) -> StoreResult<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // On a new file the server and `till add` (or two connections) may switch at the same
    // moment. The loser holds a shared lock when it asks for the write lock, which SQLite refuses
    // at once (no busy wait: it could deadlock); it holds nothing after the failure, so try again.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => break other?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "could not switch {} to WAL (journal_mode={mode})",
            path.display()
        )));
    }
    // temp_store=MEMORY: the statement journal of each batch item's savepoint stays in memory
    // (else SQLite writes every page an item touches to a temp file first: a third of the
    // server's ingest time went to those writes). Durability is the WAL's, unchanged.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;")?;
    migrate(&mut conn)?;
    Ok(conn)
}

pub fn schema_version(conn: &Connection) -> StoreResult<usize> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(v as usize)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = current as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Other(format!(
            "database schema version {current} is newer than this server-stub knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(m.sqlite)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    tx.commit()?;
    Ok(())
}

impl SqliteRepo {
    pub fn open(path: &Path) -> StoreResult<SqliteRepo> {
        let conn = open_connection(path)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        let ck = Connection::open(path)?;
        ck.busy_timeout(BUSY_TIMEOUT)?;
        let (checkpoints, wake) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(ck, wake))
            .map_err(|e| StoreError::Other(format!("starting the WAL checkpointer: {e}")))?;
        Ok(SqliteRepo {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            open_readers: AtomicU64::new(0),
            checkpoints,
            accounts: Mutex::new(Default::default()),
        })
    }

    fn reader(&self) -> StoreResult<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        let c = Connection::open(&self.path)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.execute_batch("PRAGMA query_only=ON;")?;
        self.open_readers.fetch_add(1, Ordering::Relaxed);
        Ok(c)
    }

    fn give_back(&self, c: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP_READERS {
            idle.push(c);
        } else {
            self.open_readers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl SqliteRepo {
    /// The server identity recorded in this database (see `identity.rs`).
    pub fn identity(&self) -> StoreResult<Option<String>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute_batch("CREATE TABLE IF NOT EXISTS server_identity (id TEXT NOT NULL)")?;
        Ok(conn
            .query_row("SELECT id FROM server_identity LIMIT 1", [], |r| r.get(0))
            .optional()?)
    }

    /// A number that only grows while the server runs (receipts stored + customer changes); a
    /// restored database has a smaller one if anything was written after its backup.
    pub fn watermark(&self) -> StoreResult<i64> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn.query_row(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM receipts) + (SELECT coalesce(max(change_seq), 0) FROM customers)",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn set_identity(&self, id: &str) -> StoreResult<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS server_identity (id TEXT NOT NULL); DELETE FROM server_identity")?;
        tx.execute("INSERT INTO server_identity (id) VALUES (?1)", [id])?;
        tx.commit()?;
        Ok(())
    }
}

impl Repository for SqliteRepo {
    fn with_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError> {
        // A panic inside a unit of work drops its transaction (rollback), so the connection is
        // still consistent: recover it from a poisoned mutex.
        {
            let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut stx = SqliteTx {
                tx,
                accounts: Some(&self.accounts),
                seen: Vec::new(),
                rolled_back: false,
            };
            f(&mut stx)?;
            stx.tx.commit()?;
            let mut cache = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            if stx.rolled_back {
                for row in &stx.seen {
                    cache.remove(&row.customer.id.0);
                }
            } else {
                if cache.len() + stx.seen.len() > ACCOUNT_CACHE_MAX {
                    cache.clear();
                }
                for row in stx.seen {
                    cache.insert(row.customer.id.0.clone(), row);
                }
            }
        }
        // Full: a wake-up is pending already.
        let _ = self.checkpoints.try_send(());
        Ok(())
    }

    fn with_read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>) -> Result<(), ApiError> {
        let mut conn = self.reader()?;
        let out = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let mut stx = SqliteTx {
                tx,
                accounts: None,
                seen: Vec::new(),
                rolled_back: false,
            };
            f(&mut stx)?;
            stx.tx.commit()?;
            Ok(())
        })();
        self.give_back(conn);
        out
    }

    fn stats(&self) -> StoreStats {
        let idle = self.readers.lock().map(|r| r.len() as u64).unwrap_or(0);
        StoreStats {
            backend: "sqlite",
            connections: 1 + self.open_readers.load(Ordering::Relaxed),
            idle,
            max: 1 + KEEP_READERS as u64,
            retries: 0,
        }
    }
}

struct SqliteTx<'c> {
    tx: rusqlite::Transaction<'c>,
    /// The writer's account cache (None in read transactions).
    accounts: Option<&'c AccountCache>,
    /// Customer rows this transaction wrote or parsed, for the cache at commit.
    seen: Vec<CustomerRow>,
    /// A ROLLBACK TO a savepoint ran: the rows in `seen` may not be what is committed.
    rolled_back: bool,
}

const RECEIPT_COLS: &str = "payload, payload_hash, account_id, effect";

fn receipt_row(r: &Row<'_>) -> rusqlite::Result<(String, String, Option<String>, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

const TAG_COLS: &str = "payload, payload_hash, state, receipt_id, note";

fn tag_row(r: &Row<'_>) -> rusqlite::Result<RawTag> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

const CARD_COLS: &str = "number, customer_id, status, reason, replaced_by, issued_store, issued_at";

fn card_row(r: &Row<'_>) -> rusqlite::Result<RawCard> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

const CUSTOMER_COLS: &str = "customer, state, expiring, change_seq";

fn customer_row(r: &Row<'_>) -> rusqlite::Result<(String, String, Option<String>, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

const MESSAGE_COLS: &str = "id, cause, kind, customer_id, channel, recipient, text, created_at";

fn message_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    let created: String = r.get(7)?;
    Ok(Message {
        id: r.get(0)?,
        cause: r.get(1)?,
        kind: r.get(2)?,
        customer_id: r.get(3)?,
        channel: r.get(4)?,
        recipient: r.get(5)?,
        text: r.get(6)?,
        created_at: parse_time(Some(created)).unwrap_or_default(),
    })
}

const LEDGER_COLS: &str = "seq, account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note";

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<RawLedger> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

const REDEMPTION_COLS: &str = "id, payload_hash, account_id, card, store_id, till_id, points, value, reward, code, \
                               offline, requested_at, business_day, created_at, voided_at, matched_receipt, matched_at";

fn redemption_row(r: &Row<'_>) -> rusqlite::Result<Vec<rusqlite::types::Value>> {
    (0..17).map(|i| r.get::<_, rusqlite::types::Value>(i)).collect()
}

fn to_redemption(v: Vec<rusqlite::types::Value>) -> StoreResult<RedemptionRow> {
    use rusqlite::types::Value as V;
    let text = |i: usize| -> StoreResult<String> {
        match &v[i] {
            V::Text(s) => Ok(s.clone()),
            other => Err(StoreError::Other(format!("redemptions column {i}: {other:?}"))),
        }
    };
    let opt = |i: usize| -> Option<String> {
        match &v[i] {
            V::Text(s) => Some(s.clone()),
            _ => None,
        }
    };
    let card = CardId::normalise(&text(3)?).map_err(|e| StoreError::Other(format!("stored card number: {e}")))?;
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
        offline: matches!(v[10], V::Integer(1)),
        requested_at: DateTime::parse_from_rfc3339(&text(11)?)
            .map_err(|e| StoreError::Other(format!("stored requested_at: {e}")))?,
        business_day: text(12)?
            .parse()
            .map_err(|e| StoreError::Other(format!("stored business_day: {e}")))?,
        created_at: parse_time(opt(13)).unwrap_or_default(),
        voided_at: parse_time(opt(14)),
        matched_receipt: opt(15).map(ReceiptId),
        matched_at: parse_time(opt(16)),
    })
}

impl SqliteTx<'_> {
    fn parse_customers_in(&mut self, ids: &[CustomerId]) -> StoreResult<Vec<CustomerRow>> {
        let keys = serde_json::to_string(&ids.iter().map(|c| c.0.as_str()).collect::<Vec<_>>()).expect("strings");
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {CUSTOMER_COLS} FROM customers WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
            ))?
            .query_map([keys], customer_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_customer).collect()
    }

    fn bump_change_seq(&mut self) -> StoreResult<i64> {
        self.next_counter("change_seq")
    }

    fn write_customer(&mut self, customer: &Arc<Customer>, state: &Arc<CustomerState>, seq: i64) -> StoreResult<()> {
        let (id, parent) = (&customer.id.0, customer.parent.as_ref().map(|p| p.0.as_str()));
        let (state_json, expiring) = state_columns(state);
        // The usual credit leaves the customer as the account cache has it, the very same shared
        // copy: the cache only hands out a row whose change number is the database's, and a
        // changed customer is always a new copy (`BatchTx::put_customer`). Its JSON column is
        // then as it was; only the state is written.
        let cached = self.accounts.is_some_and(|c| {
            let c = c.lock().unwrap_or_else(|e| e.into_inner());
            c.get(id).is_some_and(|row| Arc::ptr_eq(&row.customer, customer))
        });
        let state_only = cached
            && self
                .tx
                .prepare_cached(
                    "UPDATE customers SET state = ?3, expiring = ?4, change_seq = ?5 WHERE id = ?1 AND parent_id IS ?2",
                )?
                .execute(params![id, parent, state_json, expiring, seq])?
                == 1;
        if !state_only {
            self.write_customer_whole(customer, &state_json, expiring.as_deref(), seq)?;
        }
        if self.accounts.is_some() {
            self.seen.push(CustomerRow {
                customer: Arc::clone(customer),
                state: Arc::clone(state),
                change_seq: seq,
            });
        }
        Ok(())
    }

    /// [`Self::write_customer`] with the customer's JSON column too.
    fn write_customer_whole(
        &mut self,
        customer: &Customer,
        state_json: &str,
        expiring: Option<&str>,
        seq: i64,
    ) -> StoreResult<()> {
        let (id, parent) = (&customer.id.0, customer.parent.as_ref().map(|p| p.0.as_str()));
        let customer_json = json(customer);
        // The usual case, an account whose parent stays: a plain UPDATE leaves the parent index
        // alone (an upsert rewrites every index of the columns it sets).
        let updated = self
            .tx
            .prepare_cached(
                "UPDATE customers SET customer = ?3, state = ?4, expiring = ?5, change_seq = ?6
                 WHERE id = ?1 AND parent_id IS ?2",
            )?
            .execute(params![id, parent, customer_json, state_json, expiring, seq])?;
        if updated == 0 {
            self.tx
                .prepare_cached(
                    "INSERT INTO customers (id, parent_id, customer, state, expiring, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(id) DO UPDATE SET parent_id = excluded.parent_id, customer = excluded.customer,
                     state = excluded.state, expiring = excluded.expiring, change_seq = excluded.change_seq",
                )?
                .execute(params![id, parent, customer_json, state_json, expiring, seq])?;
        }
        Ok(())
    }
}

const INSERT_RECEIPT: &str =
    "INSERT INTO receipts (id, payload_hash, store_id, till_id, pos_receipt_no, issued_at, business_day, card,
     account_id, total, turnover, points_credited, campaign, effect, payload, received_at, original_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// One receipt row through `st` (the prepared [`INSERT_RECEIPT`]; a batch prepares it once),
/// received at `received_at`.
fn write_receipt_row(
    st: &mut rusqlite::CachedStatement<'_>,
    s: &StoredReceipt,
    original: Option<&ReceiptId>,
    received_at: &str,
) -> StoreResult<()> {
    let (r, credited) = (&s.receipt, s.points_credited());
    st.execute(params![
        r.id.0,
        s.payload_hash,
        r.store_id.0,
        r.till_id.0,
        r.pos_receipt_no.trim(),
        r.issued_at.to_rfc3339(),
        r.issued_at.date_naive().to_string(),
        r.card.as_ref().map(|c| c.expose()),
        s.account.as_ref().map(|a| a.0.as_str()),
        r.total.to_string(),
        s.effect.turnover_delta.to_string(),
        credited.to_string(),
        s.effect.campaign,
        json(&*s.effect),
        s.payload_json
            .as_deref()
            .map_or_else(|| json(&**r).into(), std::borrow::Cow::Borrowed),
        received_at,
        original.map(|o| o.0.as_str()),
    ])?;
    Ok(())
}

impl Tx for SqliteTx<'_> {
    fn savepoint(&mut self) -> StoreResult<()> {
        self.tx.prepare_cached("SAVEPOINT item")?.execute([])?;
        Ok(())
    }
    fn release_savepoint(&mut self) -> StoreResult<()> {
        self.tx.prepare_cached("RELEASE item")?.execute([])?;
        Ok(())
    }
    fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        self.rolled_back = true;
        self.tx.execute_batch("ROLLBACK TO item; RELEASE item")?;
        Ok(())
    }

    fn program(&mut self) -> StoreResult<Option<RulesSnapshot>> {
        let s: Option<String> = self
            .tx
            .prepare_cached("SELECT snapshot FROM program WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        s.map(|s| from_json("rules snapshot", &s)).transpose()
    }

    fn put_program(&mut self, program: &Program) -> StoreResult<RulesSnapshot> {
        let previous = self.program()?;
        let version = previous.as_ref().map(|s| s.version).unwrap_or(0) + 1;
        let snap = RulesSnapshot {
            version,
            program: program.clone(),
            lookup_key: Some(crate::digest::lookup_key_for(previous.as_ref())),
        };
        self.tx.execute(
            "INSERT INTO program (id, version, snapshot, updated_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET version = excluded.version, snapshot = excluded.snapshot, updated_at = excluded.updated_at",
            params![version as i64, json(&snap), now()],
        )?;
        Ok(snap)
    }

    fn till_by_token_hash(&mut self, token_sha256: &str) -> StoreResult<Option<TillRow>> {
        Ok(self
            .tx
            .prepare_cached("SELECT store_id, till_id, revoked_at IS NOT NULL FROM tills WHERE token_sha256 = ?1")?
            .query_row([token_sha256], |r| {
                Ok(TillRow {
                    store_id: StoreId(r.get(0)?),
                    till_id: TillId(r.get(1)?),
                    revoked: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn put_till(&mut self, store: &StoreId, till: &TillId, token_sha256: &str) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO tills (store_id, till_id, token_sha256, revoked_at, created_at) VALUES (?1, ?2, ?3, NULL, ?4)
             ON CONFLICT(store_id, till_id) DO UPDATE SET token_sha256 = excluded.token_sha256, revoked_at = NULL,
             created_at = excluded.created_at",
            params![store.0, till.0, token_sha256, now()],
        )?;
        Ok(())
    }

    fn revoke_till(&mut self, store: &StoreId, till: &TillId) -> StoreResult<bool> {
        let n = self.tx.execute(
            "UPDATE tills SET revoked_at = ?3 WHERE store_id = ?1 AND till_id = ?2 AND revoked_at IS NULL",
            params![store.0, till.0, now()],
        )?;
        Ok(n > 0)
    }

    fn receipt(&mut self, id: &ReceiptId) -> StoreResult<Option<StoredReceipt>> {
        let row = self
            .tx
            .prepare_cached(&format!("SELECT {RECEIPT_COLS} FROM receipts WHERE id = ?1"))?
            .query_row([&id.0], receipt_row)
            .optional()?;
        row.map(to_stored).transpose()
    }

    fn receipts_by_pos_no(&mut self, store: &StoreId, pos_receipt_no: &str) -> StoreResult<Vec<StoredReceipt>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {RECEIPT_COLS} FROM receipts WHERE store_id = ?1 AND pos_receipt_no = ?2
                 ORDER BY business_day DESC, issued_at DESC LIMIT 1000"
            ))?
            .query_map(params![store.0, pos_receipt_no.trim()], receipt_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out: Vec<StoredReceipt> = rows.into_iter().map(to_stored).collect::<StoreResult<_>>()?;
        out.sort_by_key(|r| std::cmp::Reverse(r.receipt.issued_at));
        Ok(out)
    }

    fn insert_receipt(&mut self, s: StoredReceipt, original: Option<&ReceiptId>) -> StoreResult<()> {
        let mut st = self.tx.prepare_cached(INSERT_RECEIPT)?;
        write_receipt_row(&mut st, &s, original, &now())
    }

    fn returns_of(&mut self, original: &ReceiptId) -> StoreResult<Vec<Receipt>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT payload FROM receipts WHERE original_id = ?1 ORDER BY issued_at, rowid")?;
        let rows = st.query_map([&original.0], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for p in rows {
            out.push(from_json("receipt payload", &p?)?);
        }
        Ok(out)
    }

    fn receipts_between(&mut self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<ReceiptFacts>> {
        let mut st = self.tx.prepare_cached(
            "SELECT store_id, business_day, turnover, points_credited, campaign FROM receipts
             WHERE business_day >= ?1 AND business_day <= ?2 ORDER BY business_day, store_id",
        )?;
        let rows = st.query_map(params![from.to_string(), to.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (store, day, turnover, points, campaign) = row?;
            out.push(ReceiptFacts {
                store_id: StoreId(store),
                business_day: day
                    .parse()
                    .map_err(|e| StoreError::Other(format!("stored business day {day:?}: {e}")))?,
                turnover: dec("turnover", &turnover)?,
                points_credited: dec("points", &points)?,
                campaign,
            });
        }
        Ok(out)
    }

    fn request(&mut self, request_id: &str) -> StoreResult<Option<RequestRow>> {
        let row: Option<(String, String, String, String)> = self
            .tx
            .prepare_cached("SELECT request_id, kind, payload_hash, result FROM requests WHERE request_id = ?1")?
            .query_row([request_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        row.map(|(request_id, kind, payload_hash, result)| {
            Ok(RequestRow {
                request_id,
                kind,
                payload_hash,
                result: from_json("request result", &result)?,
            })
        })
        .transpose()
    }

    fn insert_request(&mut self, row: &RequestRow) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO requests (request_id, kind, payload_hash, result, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.request_id, row.kind, row.payload_hash, json(&row.result), now()],
        )?;
        Ok(())
    }

    fn card(&mut self, number: &CardId) -> StoreResult<Option<CardRow>> {
        let row = self
            .tx
            .prepare_cached(&format!("SELECT {CARD_COLS} FROM cards WHERE number = ?1"))?
            .query_row([number.expose()], card_row)
            .optional()?;
        row.map(to_card).transpose()
    }

    fn put_card(&mut self, c: &CardRow) -> StoreResult<()> {
        let (status, reason, by) = match &c.status {
            CardStatus::Active => ("active", None, None),
            CardStatus::Blocked { reason } => ("blocked", Some(reason.clone()), None),
            CardStatus::Replaced { by } => ("replaced", None, Some(by.expose().to_string())),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO cards (number, customer_id, status, reason, replaced_by, issued_store, issued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(number) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
                 reason = excluded.reason, replaced_by = excluded.replaced_by, issued_store = excluded.issued_store,
                 issued_at = excluded.issued_at",
            )?
            .execute(params![
                c.number.expose(),
                c.customer_id.as_ref().map(|x| x.0.clone()),
                status,
                reason,
                by,
                c.issued_store.as_ref().map(|s| s.0.clone()),
                c.issued_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            ])?;
        Ok(())
    }

    fn cards_of(&mut self, customer: &CustomerId) -> StoreResult<Vec<CardRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {CARD_COLS} FROM cards WHERE customer_id = ?1 ORDER BY number"
        ))?;
        let rows: Vec<RawCard> = st
            .query_map([&customer.0], card_row)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(to_card).collect()
    }

    fn cards_issued_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<CardRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {CARD_COLS} FROM cards WHERE issued_at >= ?1 AND issued_at < ?2 ORDER BY issued_at"
        ))?;
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let rows: Vec<RawCard> = st
            .query_map(params![f(from), f(to)], card_row)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(to_card).collect()
    }

    fn next_counter(&mut self, name: &str) -> StoreResult<i64> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, 1)
                 ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            )?
            .query_row([name], |r| r.get(0))?)
    }

    fn customer(&mut self, id: &CustomerId) -> StoreResult<Option<CustomerRow>> {
        let row = self
            .tx
            .prepare_cached(&format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id = ?1"))?
            .query_row([&id.0], customer_row)
            .optional()?;
        row.map(to_customer).transpose()
    }

    fn customer_parent(&mut self, id: &CustomerId) -> StoreResult<Option<Option<CustomerId>>> {
        // The column only: no JSON of the customer and its state to parse (once per receipt).
        let parent: Option<Option<String>> = self
            .tx
            .prepare_cached("SELECT parent_id FROM customers WHERE id = ?1")?
            .query_row([&id.0], |r| r.get(0))
            .optional()?;
        Ok(parent.map(|p| p.map(CustomerId)))
    }

    fn put_customer(&mut self, customer: &Customer, state: &CustomerState) -> StoreResult<()> {
        let seq = self.bump_change_seq()?;
        self.write_customer(&Arc::new(customer.clone()), &Arc::new(state.clone()), seq)
    }

    fn touch_customer(&mut self, id: &CustomerId) -> StoreResult<()> {
        let seq = self.bump_change_seq()?;
        self.tx
            .prepare_cached("UPDATE customers SET change_seq = ?2 WHERE id = ?1")?
            .execute(params![id.0, seq])?;
        Ok(())
    }

    fn sub_customers(&mut self, parent: &CustomerId) -> StoreResult<Vec<CustomerId>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT id FROM customers WHERE parent_id = ?1 ORDER BY id")?;
        let ids = st
            .query_map([&parent.0], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids.into_iter().map(CustomerId).collect())
    }

    fn all_customers(&mut self) -> StoreResult<Vec<CustomerRow>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("SELECT {CUSTOMER_COLS} FROM customers ORDER BY id"))?;
        let rows = st.query_map([], customer_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(to_customer).collect()
    }

    fn changed_since(&mut self, since: i64, limit: usize) -> StoreResult<Vec<CustomerRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {CUSTOMER_COLS} FROM customers WHERE change_seq > ?1 ORDER BY change_seq LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![since, limit as i64], customer_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(to_customer).collect()
    }

    fn max_change_seq(&mut self) -> StoreResult<i64> {
        Ok(self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(change_seq), 0) FROM customers")?
            .query_row([], |r| r.get(0))?)
    }

    fn migration_code(&mut self, code: &str) -> StoreResult<Option<MigrationCodeRow>> {
        let row: Option<(String, String, Option<String>)> = self
            .tx
            .prepare_cached("SELECT code, customer_id, used_by_card FROM migration_codes WHERE code = ?1")?
            .query_row([code], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        row.map(|(code, customer, used)| {
            Ok(MigrationCodeRow {
                code,
                customer_id: CustomerId(customer),
                used_by_card: used
                    .map(|u| CardId::normalise(&u).map_err(|e| StoreError::Other(format!("stored card: {e}"))))
                    .transpose()?,
            })
        })
        .transpose()
    }

    fn put_migration_code(&mut self, row: &MigrationCodeRow) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO migration_codes (code, customer_id, used_by_card, used_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(code) DO UPDATE SET customer_id = excluded.customer_id, used_by_card = excluded.used_by_card,
             used_at = excluded.used_at",
            params![
                row.code,
                row.customer_id.0,
                row.used_by_card.as_ref().map(|c| c.expose().to_string()),
                row.used_by_card.as_ref().map(|_| now())
            ],
        )?;
        Ok(())
    }

    fn append_ledger(&mut self, e: &NewLedgerEntry) -> StoreResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO ledger (account_id, at, kind, cause_id, store_id, till_id, points, balance_after, note) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                e.account_id.0,
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                enum_name(&e.kind),
                e.cause_id,
                e.store_id.as_ref().map(|s| s.0.as_str()),
                e.till_id.as_ref().map(|t| t.0.as_str()),
                e.points.normalize().to_string(),
                e.balance_after.normalize().to_string(),
                e.note,
            ])?;
        Ok(())
    }

    fn ledger(&mut self, account: &CustomerId, before: Option<i64>, limit: usize) -> StoreResult<Vec<LedgerEntry>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {LEDGER_COLS} FROM ledger WHERE account_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
            ))?
            .query_map(params![account.0, before.unwrap_or(i64::MAX), limit as i64], ledger_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_ledger).collect()
    }

    fn ledger_points(&mut self) -> StoreResult<Vec<(CustomerId, Decimal)>> {
        let rows = self
            .tx
            .prepare_cached("SELECT account_id, points FROM ledger ORDER BY seq")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(a, p)| Ok((CustomerId(a), dec("ledger points", &p)?)))
            .collect()
    }

    fn redemption(&mut self, id: &str) -> StoreResult<Option<RedemptionRow>> {
        let row = self
            .tx
            .prepare_cached(&format!("SELECT {REDEMPTION_COLS} FROM redemptions WHERE id = ?1"))?
            .query_row([id], redemption_row)
            .optional()?;
        row.map(to_redemption).transpose()
    }

    fn put_redemption(&mut self, r: &RedemptionRow) -> StoreResult<()> {
        let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.tx
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO redemptions ({REDEMPTION_COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ))?
            .execute(params![
                r.id,
                r.payload_hash,
                r.account_id.0,
                r.card.expose(),
                r.store_id.0,
                r.till_id.0,
                r.points.normalize().to_string(),
                r.value.normalize().to_string(),
                enum_name(&r.reward),
                r.code,
                r.offline as i64,
                r.requested_at.to_rfc3339(),
                r.business_day.to_string(),
                t(&r.created_at),
                r.voided_at.as_ref().map(t),
                r.matched_receipt.as_ref().map(|m| m.0.clone()),
                r.matched_at.as_ref().map(t),
            ])?;
        Ok(())
    }

    fn open_redemptions(&mut self, store: &StoreId) -> StoreResult<Vec<RedemptionRow>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {REDEMPTION_COLS} FROM redemptions \
                 WHERE store_id = ?1 AND voided_at IS NULL AND matched_receipt IS NULL ORDER BY created_at"
            ))?
            .query_map([&store.0], redemption_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_redemption).collect()
    }

    fn all_redemptions(&mut self) -> StoreResult<Vec<RedemptionRow>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {REDEMPTION_COLS} FROM redemptions ORDER BY created_at"
            ))?
            .query_map([], redemption_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_redemption).collect()
    }

    fn set_card_preload(&mut self, card: &CardId, points: Decimal) -> StoreResult<()> {
        self.tx.execute(
            "UPDATE cards SET preload_points = ?2 WHERE number = ?1",
            params![card.expose(), points.normalize().to_string()],
        )?;
        Ok(())
    }

    fn take_card_preload(&mut self, card: &CardId) -> StoreResult<Option<Decimal>> {
        let v: Option<Option<String>> = self
            .tx
            .query_row(
                "SELECT preload_points FROM cards WHERE number = ?1",
                [card.expose()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(Some(s)) = v else { return Ok(None) };
        self.tx.execute(
            "UPDATE cards SET preload_points = NULL WHERE number = ?1",
            [card.expose()],
        )?;
        Ok(Some(dec("card preload", &s)?))
    }

    fn record_message(&mut self, m: &Message) -> StoreResult<bool> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO messages (cause, kind, customer_id, channel, recipient, text, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(cause) DO NOTHING",
            )?
            .execute(params![
                m.cause,
                m.kind,
                m.customer_id,
                m.channel,
                m.recipient,
                m.text,
                now()
            ])?;
        Ok(n > 0)
    }

    fn message_recorded(&mut self, cause: &str) -> StoreResult<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM messages WHERE cause = ?1")?
            .query_row([cause], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn tag(&mut self, id: &str) -> StoreResult<Option<TagRow>> {
        self.tx
            .prepare_cached(&format!("SELECT {TAG_COLS} FROM receipt_tags WHERE id = ?1"))?
            .query_row([id], tag_row)
            .optional()?
            .map(to_tag)
            .transpose()
    }

    fn put_tag(&mut self, t: &TagRow) -> StoreResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO receipt_tags (id, payload_hash, store_id, pos_receipt_no, business_day, has_total,
                 tagged_at, state, receipt_id, note, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET state = excluded.state, receipt_id = excluded.receipt_id,
                 note = excluded.note",
            )?
            .execute(params![
                t.tag.request_id,
                t.payload_hash,
                t.tag.store_id.0,
                t.tag.pos_receipt_no.trim(),
                t.tag.date.to_string(),
                t.tag.total.is_some(),
                t.tag
                    .tagged_at
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                t.state.as_str(),
                t.receipt_id.as_ref().map(|r| r.0.clone()),
                t.note,
                json(&t.tag),
                now(),
            ])?;
        Ok(())
    }

    fn tags_for(
        &mut self,
        store: &StoreId,
        pos_receipt_no: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<TagRow>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE store_id = ?1 AND pos_receipt_no = ?2
                 AND business_day >= ?3 AND business_day <= ?4 ORDER BY created_at, id"
            ))?
            .query_map(
                params![store.0, pos_receipt_no.trim(), from.to_string(), to.to_string()],
                tag_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_tag).collect()
    }

    fn waiting_tags_with_total(&mut self, tagged_before: DateTime<Utc>) -> StoreResult<Vec<TagRow>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE state = 'waiting' AND has_total = 1 AND tagged_at <= ?1
                 ORDER BY tagged_at, id LIMIT 1000"
            ))?
            .query_map(
                [tagged_before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
                tag_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_tag).collect()
    }

    fn set_receipt_account(&mut self, id: &ReceiptId, account: Option<&CustomerId>, card: &CardId) -> StoreResult<()> {
        self.tx
            .prepare_cached(
                "UPDATE receipts SET account_id = ?2, card = ?3,
                 points_credited = CASE WHEN ?2 IS NULL THEN '0' ELSE json_extract(effect, '$.points_delta') END
                 WHERE id = ?1",
            )?
            .execute(params![id.0, account.map(|a| a.0.clone()), card.expose()])?;
        Ok(())
    }

    fn unmatched_receipts(&mut self, card: &CardId, since: NaiveDate) -> StoreResult<Vec<StoredReceipt>> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {RECEIPT_COLS} FROM receipts WHERE card = ?1 AND account_id IS NULL AND original_id IS NULL
                 AND business_day >= ?2 ORDER BY issued_at, id"
            ))?
            .query_map(params![card.expose(), since.to_string()], receipt_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_stored).collect()
    }

    fn message_acked(&mut self, cause: &str) -> StoreResult<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM message_acks WHERE cause = ?1")?
            .query_row([cause], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn put_message_ack(&mut self, a: &MessageAckRow) -> StoreResult<bool> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO message_acks (cause, customer_id, card, store_id, till_id, shown_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(cause) DO NOTHING",
            )?
            .execute(params![
                a.cause,
                a.customer_id.0,
                a.card.expose(),
                a.store_id.0,
                a.till_id.0,
                a.shown_at.to_rfc3339(),
                now(),
            ])?;
        Ok(n == 1)
    }

    fn messages(&mut self, kind: Option<&str>, limit: usize) -> StoreResult<Vec<Message>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE (?1 IS NULL OR kind = ?1) ORDER BY id LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![kind, limit as i64], message_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn receipts_in(&mut self, ids: &[ReceiptId]) -> StoreResult<Vec<StoredReceipt>> {
        let keys = serde_json::to_string(&ids.iter().map(|i| i.0.as_str()).collect::<Vec<_>>()).expect("strings");
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {RECEIPT_COLS} FROM receipts WHERE id IN (SELECT value FROM json_each(?1))"
            ))?
            .query_map([keys], receipt_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_stored).collect()
    }

    fn cards_in(&mut self, numbers: &[CardId]) -> StoreResult<Vec<CardRow>> {
        let keys = serde_json::to_string(&numbers.iter().map(|c| c.expose()).collect::<Vec<_>>()).expect("strings");
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {CARD_COLS} FROM cards WHERE number IN (SELECT value FROM json_each(?1))"
            ))?
            .query_map([keys], card_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_card).collect()
    }

    fn customers_in(&mut self, ids: &[CustomerId]) -> StoreResult<Vec<CustomerRow>> {
        let Some(cache) = self.accounts else {
            return self.parse_customers_in(ids);
        };
        // The change numbers first: a row whose number the cache holds is not parsed again.
        let keys = serde_json::to_string(&ids.iter().map(|c| c.0.as_str()).collect::<Vec<_>>()).expect("strings");
        let seqs = self
            .tx
            .prepare_cached("SELECT id, change_seq FROM customers WHERE id IN (SELECT value FROM json_each(?1))")?
            .query_map([keys], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut missing = Vec::new();
        {
            let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
            for (id, seq) in seqs {
                match cache.get(&id) {
                    Some(row) if row.change_seq == seq => out.push(row.clone()),
                    _ => missing.push(CustomerId(id)),
                }
            }
        }
        if !missing.is_empty() {
            let parsed = self.parse_customers_in(&missing)?;
            self.seen.extend(parsed.iter().cloned());
            out.extend(parsed);
        }
        out.sort_by(|a, b| a.customer.id.cmp(&b.customer.id));
        Ok(out)
    }

    fn sub_customers_in(&mut self, parents: &[CustomerId]) -> StoreResult<Vec<(CustomerId, CustomerId)>> {
        let keys = serde_json::to_string(&parents.iter().map(|c| c.0.as_str()).collect::<Vec<_>>()).expect("strings");
        let rows = self
            .tx
            .prepare_cached(
                "SELECT parent_id, id FROM customers WHERE parent_id IN (SELECT value FROM json_each(?1)) ORDER BY id",
            )?
            .query_map([keys], |r| Ok((CustomerId(r.get(0)?), CustomerId(r.get(1)?))))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn tags_of_numbers(&mut self, store: &StoreId, pos_receipt_nos: &[String]) -> StoreResult<Vec<TagRow>> {
        let keys =
            serde_json::to_string(&pos_receipt_nos.iter().map(|n| n.trim()).collect::<Vec<_>>()).expect("strings");
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {TAG_COLS} FROM receipt_tags WHERE store_id = ?1
                 AND pos_receipt_no IN (SELECT value FROM json_each(?2)) ORDER BY created_at, id"
            ))?
            .query_map(params![store.0, keys], tag_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_tag).collect()
    }

    fn write_batch(&mut self, w: &BatchWrites) -> StoreResult<()> {
        // One change-sequence bump for the batch: its customers get the numbers in order.
        let n = (w.customers.len() + w.touched.len()) as i64;
        let mut seq = if n > 0 {
            let last: i64 = self
                .tx
                .prepare_cached(
                    "INSERT INTO counters (name, value) VALUES ('change_seq', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = value + ?1 RETURNING value",
                )?
                .query_row([n], |r| r.get(0))?;
            last - n
        } else {
            0
        };
        for (customer, state) in &w.customers {
            seq += 1;
            self.write_customer(customer, state, seq)?;
        }
        for id in &w.touched {
            seq += 1;
            self.tx
                .prepare_cached("UPDATE customers SET change_seq = ?2 WHERE id = ?1")?
                .execute(params![id.0, seq])?;
        }
        for e in &w.ledger {
            self.append_ledger(e)?;
        }
        if !w.receipts.is_empty() {
            let (mut st, at) = (self.tx.prepare_cached(INSERT_RECEIPT)?, now());
            for (r, original) in &w.receipts {
                write_receipt_row(&mut st, r, original.as_ref(), &at)?;
            }
        }
        for m in &w.messages {
            self.record_message(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::transact;

    #[test]
    fn migrations_are_versioned_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        {
            let c = open_connection(&p).unwrap();
            assert_eq!(schema_version(&c).unwrap(), MIGRATIONS.len());
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal");
        }
        let c = open_connection(&p).unwrap();
        assert_eq!(schema_version(&c).unwrap(), MIGRATIONS.len());
    }

    /// A writer that commits again and again (a short pause between, as between two sync
    /// batches) outruns every passive checkpoint, so its WAL never starts over by itself; the
    /// checkpointer's FULL round past [`WAL_RESTART_PAGES`] lets it.
    /// The WAL file stays a fraction of what was written instead of growing with it (80 MB here).
    #[test]
    fn a_writer_that_keeps_committing_still_gets_its_wal_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        let writer = open_connection(&p).unwrap();
        // As the server's writer: no checkpoint of its own below WRITER_CHECKPOINT_PAGES (here:
        // none at all); not fsynced, to be quick (the WAL's frames are the same).
        writer
            .execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=OFF; CREATE TABLE blobs(b BLOB);")
            .unwrap();
        let ck = Connection::open(&p).unwrap();
        ck.busy_timeout(BUSY_TIMEOUT).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writing = {
            let done = done.clone();
            std::thread::spawn(move || {
                let blob = vec![7u8; 12_000];
                for _ in 0..4_000 {
                    writer.execute("INSERT INTO blobs(b) VALUES (?1)", [&blob]).unwrap();
                    // between two batches: the answer goes out, the next request is read
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let mut full_rounds = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            full_rounds += usize::from(checkpoint(&ck).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        writing.join().unwrap();
        let wal_pages = std::fs::metadata(dir.path().join("s.db-wal")).unwrap().len() / 4096;
        assert!(full_rounds > 0, "the FULL round ran");
        // 20 336 pages when only passive checkpoints ran; about 1 150 with the FULL rounds
        let written = 4_000 * 5; // a 12 000-byte row takes five pages
        assert!(
            wal_pages < written / 4,
            "the WAL grew to {wal_pages} pages of the {written} or more written ({full_rounds} FULL rounds)"
        );
    }

    /// The server starting on a new database while `server-stub till add` opens it: every opener
    /// gets a migrated WAL database, none fails with "database is locked".
    #[test]
    fn many_openers_of_a_new_database_at_once_all_get_it() {
        for round in 0..30 {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("s.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(4));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let (p, start) = (p.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        open_connection(&p).map(|c| schema_version(&c).unwrap())
                    })
                })
                .collect();
            for t in openers {
                let v = t.join().unwrap();
                assert!(matches!(v, Ok(n) if n == MIGRATIONS.len()), "round {round}: {v:?}");
            }
        }
    }

    /// A database of the previous schema (4 migrations) whose accounts hold their expiring points
    /// in the state JSON: the server opens it, reads those accounts unchanged, and writes them
    /// back in the compact form (the JSON without the points, the `expiring` column with them).
    #[test]
    fn accounts_of_the_previous_schema_read_the_same_and_are_rewritten_compact() {
        use protocol::v1::ExpiringPoints;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        let c1 = CustomerId("C1".into());
        let customer = crate::store::test_customer(&c1.0);
        let state = CustomerState {
            turnover_by_month: [("2026-11".to_string(), Decimal::new(123450, 2))].into(),
            points_balance: Decimal::new(9170, 2),
            expiring_points: vec![
                ExpiringPoints {
                    points: Decimal::new(7960, 2),
                    expires_on: NaiveDate::from_ymd_opt(2027, 2, 21).unwrap(),
                },
                ExpiringPoints {
                    points: Decimal::new(1210, 2),
                    expires_on: NaiveDate::from_ymd_opt(2027, 2, 21).unwrap(),
                },
            ],
        };
        {
            let mut c = Connection::open(&p).unwrap();
            let tx = c.transaction().unwrap();
            for m in &MIGRATIONS[..4] {
                tx.execute_batch(m.sqlite).unwrap();
            }
            tx.pragma_update(None, "user_version", 4).unwrap();
            tx.execute(
                "INSERT INTO customers (id, parent_id, customer, state, change_seq) VALUES ('C1', NULL, ?1, ?2, 1)",
                params![json(&customer), json(&state)],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let repo = SqliteRepo::open(&p).unwrap();
        let read_back = || transact(&repo, |tx| Ok(tx.customer(&c1)?.unwrap())).unwrap();
        assert_eq!(*read_back().state, state);
        let mut more = state.clone();
        more.expiring_points.push(ExpiringPoints {
            points: Decimal::new(500, 2),
            expires_on: NaiveDate::from_ymd_opt(2027, 2, 22).unwrap(),
        });
        transact(&repo, |tx| Ok(tx.put_customer(&customer, &more)?)).unwrap();
        assert_eq!(*read_back().state, more);
        let c = Connection::open(&p).unwrap();
        let (json_col, expiring): (String, Option<String>) = c
            .query_row("SELECT state, expiring FROM customers WHERE id = 'C1'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(!json_col.contains("expiring"), "{json_col}");
        assert_eq!(expiring.as_deref(), Some("2027-02-21=79.60,12.10;2027-02-22=5.00"));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        open_connection(&p)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = open_connection(&p).expect_err("refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    /// The account cache never answers with a row the database does not hold: a change made
    /// elsewhere (another process), a change rolled back to a savepoint, and a change number
    /// taken again after that rollback are all read from the database.
    #[test]
    fn cached_accounts_follow_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let repo = SqliteRepo::open(&path).unwrap();
        let c1 = CustomerId("C1".into());
        let customer = crate::store::test_customer(&c1.0);
        let balance = |p: i64| CustomerState {
            points_balance: Decimal::from(p),
            ..Default::default()
        };
        let points = || {
            transact(&repo, |tx| Ok(tx.customers_in(std::slice::from_ref(&c1))?))
                .unwrap()
                .iter()
                .map(|r| r.state.points_balance)
                .collect::<Vec<_>>()
        };
        transact(&repo, |tx| Ok(tx.put_customer(&customer, &balance(1))?)).unwrap();
        assert_eq!(points(), [Decimal::from(1)]);
        assert_eq!(points(), [Decimal::from(1)], "from the cache");
        // Another process writes the row (with a new change number).
        let other = Connection::open(&path).unwrap();
        other
            .execute(
                "UPDATE customers SET state = '{\"points_balance\":\"7\"}', change_seq = change_seq + 100 WHERE id = 'C1'",
                [],
            )
            .unwrap();
        assert_eq!(points(), [Decimal::from(7)]);
        // A write rolled back to its savepoint, then the same change number taken again.
        transact(&repo, |tx| {
            tx.savepoint()?;
            tx.put_customer(&customer, &balance(9))?;
            tx.rollback_to_savepoint()?;
            Ok(())
        })
        .unwrap();
        other
            .execute(
                "UPDATE customers SET state = '{\"points_balance\":\"8\"}',
                 change_seq = (SELECT value + 1 FROM counters WHERE name = 'change_seq') WHERE id = 'C1'",
                [],
            )
            .unwrap();
        assert_eq!(
            points(),
            [Decimal::from(8)],
            "the rolled-back write's change number, other content"
        );
        transact(&repo, |tx| Ok(tx.put_customer(&customer, &balance(11))?)).unwrap();
        assert_eq!(points(), [Decimal::from(11)]);
        // A failed unit of work leaves the cache as it was.
        let _ = transact(&repo, |tx| -> Result<(), ApiError> {
            tx.put_customer(&customer, &balance(12))?;
            Err(ApiError::internal("boom"))
        });
        assert_eq!(points(), [Decimal::from(11)]);
        assert_eq!(
            transact(&repo, |tx| Ok(tx.customers_in(&[CustomerId("nobody".into())])?))
                .unwrap()
                .len(),
            0
        );
    }

    /// A batch that writes an account with the customer the cache handed out (the usual credit)
    /// writes only its state; a changed customer (a new copy) is written whole.
    #[test]
    fn an_account_written_with_the_cached_customer_writes_only_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let repo = SqliteRepo::open(&path).unwrap();
        let c1 = CustomerId("C1".into());
        let balance = |p: i64| {
            Arc::new(CustomerState {
                points_balance: Decimal::from(p),
                ..Default::default()
            })
        };
        transact(&repo, |tx| {
            Ok(tx.put_customer(&crate::store::test_customer(&c1.0), &balance(1))?)
        })
        .unwrap();
        let columns = || -> (String, String) {
            Connection::open(&path)
                .unwrap()
                .query_row("SELECT customer, state FROM customers WHERE id = 'C1'", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap()
        };
        // A probe: the customer column marked behind the server's back (change number kept, so
        // the cache still answers for the row). Written whole, the mark would be gone.
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE customers SET customer = json_set(customer, '$.tier', 'probe') WHERE id = 'C1'",
                [],
            )
            .unwrap();
        let write = |customer: Option<Customer>, points: i64| {
            transact(&repo, |tx| {
                let row = tx.customers_in(std::slice::from_ref(&c1))?.remove(0);
                let customer = customer.clone().map_or(row.customer, Arc::new);
                tx.write_batch(&BatchWrites {
                    customers: vec![(customer, balance(points))],
                    ..Default::default()
                })?;
                Ok(())
            })
            .unwrap()
        };
        write(None, 2);
        let (customer, state) = columns();
        assert!(
            customer.contains("probe"),
            "the customer column was not written: {customer}"
        );
        assert!(state.contains("\"2\""), "{state}");
        let mut gold = crate::store::test_customer(&c1.0);
        gold.tier = Some("Gold".into());
        write(Some(gold), 3);
        let (customer, state) = columns();
        assert!(customer.contains("Gold") && !customer.contains("probe"), "{customer}");
        assert!(state.contains("\"3\""), "{state}");
        // The cache now holds the written customer: the next credit writes the state only again.
        write(None, 4);
        assert!(columns().0.contains("Gold"));
        assert!(columns().1.contains("\"4\""));
    }

    #[test]
    fn message_cause_is_unique_and_savepoint_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let repo = SqliteRepo::open(&dir.path().join("s.db")).unwrap();
        let m = Message {
            id: 0,
            cause: "welcome:C1".into(),
            kind: "welcome".into(),
            customer_id: "C1".into(),
            channel: "email".into(),
            recipient: "a@b.cz".into(),
            text: "Vítejte".into(),
            created_at: Utc::now(),
        };
        let (a, b) = transact(&repo, |tx| Ok((tx.record_message(&m)?, tx.record_message(&m)?))).unwrap();
        assert!(a && !b);
        transact(&repo, |tx| {
            tx.savepoint()?;
            tx.next_counter("x")?;
            tx.rollback_to_savepoint()?;
            Ok(())
        })
        .unwrap();
        let v = transact(&repo, |tx| Ok(tx.next_counter("x")?)).unwrap();
        assert_eq!(v, 1, "the rolled-back increment is gone");
        assert_eq!(transact(&repo, |tx| Ok(tx.messages(None, 10)?)).unwrap().len(), 1);
    }
}
