//! The durable outbox (`outbox.db`): every item the server must get — receipts, customer
//! registrations, card/migration-code pairings, offline redemptions, receipt tags, cashier-message acks — and the
//! content hashes of ingested files.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a commit is on disk before the receipt file is
//! moved to `processed/`. Schema migrations run by `PRAGMA user_version`.
//!
//! Item life: `pending` → `sent` (acked: applied or duplicate) | `rejected` (dead letter, with
//! the server's reason; kept and visible; `requeue` puts it back to `pending`).
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use protocol::v1::{SyncItem, SyncPayload};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

const MIGRATIONS: &[&str] = &[
    // 1: items, ingested files, sync log, meta
    "CREATE TABLE items(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('receipt','registration','migration_pairing')),
        item_id TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','rejected')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        source_file TEXT
     );
     CREATE INDEX items_state_seq ON items(state, seq);
     CREATE TABLE ingested_files(
        hash TEXT PRIMARY KEY,
        file_name TEXT NOT NULL,
        receipts INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
     );
     CREATE TABLE sync_log(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        item_id TEXT,
        message TEXT NOT NULL
     );
     CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);",
    // 2: offline redemptions are items too (the kind CHECK is rebuilt; seq values are kept)
    "CREATE TABLE items_new(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('receipt','registration','migration_pairing','redemption')),
        item_id TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','rejected')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        source_file TEXT
     );
     INSERT INTO items_new SELECT seq, kind, item_id, payload, state, attempts, next_attempt_at, last_error,
        created_at, sent_at, source_file FROM items;
     DROP TABLE items;
     ALTER TABLE items_new RENAME TO items;
     CREATE INDEX items_state_seq ON items(state, seq);",
    // 3: O(1) status and cheap pruning: per-state counters kept by triggers; indexes for the oldest
    // pending item, the prune of sent items, file hashes and log rows by age.
    "CREATE TABLE item_counts(state TEXT PRIMARY KEY, n INTEGER NOT NULL);
     INSERT INTO item_counts(state, n) VALUES('pending',0),('sent',0),('rejected',0);
     UPDATE item_counts SET n=(SELECT COUNT(*) FROM items WHERE items.state=item_counts.state);
     CREATE TRIGGER items_count_ins AFTER INSERT ON items BEGIN
        UPDATE item_counts SET n=n+1 WHERE state=NEW.state;
     END;
     CREATE TRIGGER items_count_del AFTER DELETE ON items BEGIN
        UPDATE item_counts SET n=n-1 WHERE state=OLD.state;
     END;
     CREATE TRIGGER items_count_upd AFTER UPDATE OF state ON items WHEN OLD.state<>NEW.state BEGIN
        UPDATE item_counts SET n=n-1 WHERE state=OLD.state;
        UPDATE item_counts SET n=n+1 WHERE state=NEW.state;
     END;
     CREATE INDEX items_state_created ON items(state, created_at);
     CREATE INDEX items_state_sent ON items(state, sent_at);
     CREATE INDEX ingested_files_at ON ingested_files(ingested_at);
     CREATE INDEX sync_log_ts ON sync_log(ts);",
    // 4: receipt tags and message acks are items too (the kind CHECK is rebuilt; seq values,
    // counters, indexes and the counting triggers are kept)
    "CREATE TABLE items_new(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('receipt','registration','migration_pairing','redemption',
            'receipt_tag','message_ack')),
        item_id TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','rejected')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        source_file TEXT
     );
     INSERT INTO items_new SELECT seq, kind, item_id, payload, state, attempts, next_attempt_at, last_error,
        created_at, sent_at, source_file FROM items;
     DROP TABLE items;
     ALTER TABLE items_new RENAME TO items;
     CREATE INDEX items_state_seq ON items(state, seq);
     CREATE INDEX items_state_created ON items(state, created_at);
     CREATE INDEX items_state_sent ON items(state, sent_at);
     CREATE TRIGGER items_count_ins AFTER INSERT ON items BEGIN
        UPDATE item_counts SET n=n+1 WHERE state=NEW.state;
     END;
     CREATE TRIGGER items_count_del AFTER DELETE ON items BEGIN
        UPDATE item_counts SET n=n-1 WHERE state=OLD.state;
     END;
     CREATE TRIGGER items_count_upd AFTER UPDATE OF state ON items WHEN OLD.state<>NEW.state BEGIN
        UPDATE item_counts SET n=n-1 WHERE state=OLD.state;
        UPDATE item_counts SET n=n+1 WHERE state=NEW.state;
     END;",
    // 5: partial indexes, one per state a query looks for. An ack (pending → sent) now leaves two
    // small indexes and enters one, instead of moving an entry in each of three (state, …) indexes.
    "DROP INDEX items_state_seq;
     DROP INDEX items_state_created;
     DROP INDEX items_state_sent;
     CREATE INDEX items_pending_seq ON items(seq) WHERE state='pending';
     CREATE INDEX items_pending_created ON items(created_at) WHERE state='pending';
     CREATE INDEX items_sent_at ON items(sent_at) WHERE state='sent';
     CREATE INDEX items_rejected_seq ON items(seq) WHERE state='rejected';",
    // 6: a state change moves the counters once per statement (`moved`), not twice per row in a
    // trigger (200 counter updates for an acknowledged batch of 100). Inserts and deletes keep
    // their triggers. The counters are recounted once here.
    "DROP TRIGGER items_count_upd;
     UPDATE item_counts SET n=(SELECT COUNT(*) FROM items WHERE items.state=item_counts.state);",
    // 7: when an item was deferred (ms, the till's clock then): a clock now before that moment went
    // back since, and the item is due at once however short the jump (`due_after`).
    "ALTER TABLE items ADD COLUMN deferred_at INTEGER NOT NULL DEFAULT 0;",
    // 8: the waiting items that are not receipts, for the copy beside the outbox (`unsent`): a few
    // rows however many receipts wait.
    "CREATE INDEX items_waiting_other ON items(seq) WHERE kind<>'receipt' AND state IN ('pending','rejected');",
];

/// The waiting items of [`MIGRATIONS`] 8's index, oldest first.
const WAITING_OTHER: &str = "SELECT item_id, payload FROM items
     WHERE kind<>'receipt' AND state IN ('pending','rejected') ORDER BY seq";

pub struct Outbox {
    conn: Connection,
    /// The copy of the waiting non-receipt items beside the file (see [`crate::sync::unsent`]).
    unsent: PathBuf,
    /// The connection's `synchronous` mode (FULL; see [`Outbox::mark_sent`] for the exception).
    sync: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Receipt,
    Registration,
    MigrationPairing,
    Redemption,
    ReceiptTag,
    MessageAck,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Receipt => "receipt",
            ItemKind::Registration => "registration",
            ItemKind::MigrationPairing => "migration_pairing",
            ItemKind::Redemption => "redemption",
            ItemKind::ReceiptTag => "receipt_tag",
            ItemKind::MessageAck => "message_ack",
        }
    }
    pub fn of(p: &SyncPayload) -> ItemKind {
        match p {
            SyncPayload::Receipt(_) => ItemKind::Receipt,
            SyncPayload::Registration(_) => ItemKind::Registration,
            SyncPayload::MigrationPairing(_) => ItemKind::MigrationPairing,
            SyncPayload::Redemption(_) => ItemKind::Redemption,
            SyncPayload::ReceiptTag(_) => ItemKind::ReceiptTag,
            SyncPayload::MessageAck(_) => ItemKind::MessageAck,
        }
    }
}

/// An item due for sending, its payload as stored (the JSON the wire carries): a batch is spliced
/// from these texts without decoding them ([`batch_body`]); [`Pending::item`] decodes on demand.
#[derive(Clone, Debug)]
pub struct Pending {
    pub seq: i64,
    pub item_id: String,
    pub attempts: u32,
    /// The `kind` column (`receipt`, `registration`, …).
    pub kind: String,
    /// The payload's JSON text (`{"type":…,"body":…}`).
    pub payload: String,
}

impl Pending {
    pub fn payload(&self) -> anyhow::Result<SyncPayload> {
        serde_json::from_str(&self.payload)
            .map_err(|e| anyhow::anyhow!("outbox item {} (seq {}): bad payload: {e}", self.item_id, self.seq))
    }

    pub fn item(&self) -> anyhow::Result<SyncItem> {
        Ok(SyncItem {
            item_id: self.item_id.clone(),
            payload: self.payload()?,
        })
    }
}

/// The `POST /v1/sync` body for `due`, spliced from the stored payload texts: the same JSON as
/// serialising a `SyncBatch` of the decoded items (a `SyncItem` is its id beside the flattened
/// payload's `type` and `body`), without decoding and re-encoding every receipt. A stored payload
/// that is not a JSON object goes out as it is: the server refuses the batch, the replicator sends
/// one by one and the item is dead-lettered with the server's reason.
pub fn batch_body(store_id: &str, till_id: &str, due: &[Pending]) -> Vec<u8> {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = Vec::with_capacity(
        64 + due
            .iter()
            .map(|p| p.payload.len() + p.item_id.len() + 16)
            .sum::<usize>(),
    );
    out.extend_from_slice(b"{\"version\":\"v1\",\"store_id\":");
    out.extend_from_slice(quoted(store_id).as_bytes());
    out.extend_from_slice(b",\"till_id\":");
    out.extend_from_slice(quoted(till_id).as_bytes());
    out.extend_from_slice(b",\"items\":[");
    for (i, p) in due.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"item_id\":");
        out.extend_from_slice(quoted(&p.item_id).as_bytes());
        let rest = p.payload.trim_start();
        match rest.strip_prefix('{') {
            Some(fields) if fields.trim_start().starts_with('}') => {
                out.extend_from_slice(fields.trim_start().as_bytes())
            }
            Some(fields) => {
                out.push(b',');
                out.extend_from_slice(fields.as_bytes());
            }
            None => {
                out.extend_from_slice(b",\"payload\":");
                out.extend_from_slice(rest.as_bytes());
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// What a file commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    pub inserted: usize,
    /// Items whose id was already in the outbox (the POS re-exported the same receipt).
    pub already_queued: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub pending: u64,
    pub sent: u64,
    pub dead_letters: u64,
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// What one retention pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sent_items: usize,
    pub file_hashes: usize,
    pub log_rows: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    pub item_id: String,
    pub kind: String,
    pub attempts: u32,
    pub reason: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct LogRow {
    pub id: i64,
    pub ts: String,
    pub level: String,
    pub kind: String,
    pub item_id: Option<String>,
    pub message: String,
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Outbox {
    pub fn open(path: &Path) -> anyhow::Result<Outbox> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        Self::init(conn, path)
    }

    /// Open read-mostly (CLI `status`, `log`): same schema checks, no directory creation.
    pub fn open_existing(path: &Path) -> anyhow::Result<Outbox> {
        if !path.exists() {
            anyhow::bail!(
                "{} does not exist yet (the agent has not run with this configuration)",
                path.display()
            );
        }
        Self::init(Connection::open(path)?, path).map_err(|e| {
            let hint = if crate::recover::is_damaged(&e) {
                " (damaged: the agent sets it aside and starts a new one when it starts)"
            } else {
                ""
            };
            e.context(format!("{}{hint}", path.display()))
        })
    }

    fn init(mut conn: Connection, path: &Path) -> anyhow::Result<Outbox> {
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        use_wal(&conn, std::time::Duration::from_secs(10))?;
        // TILL_AGENT_FAULT_SYNC_OFF: a test-only fault (commits not fsynced) that the power-cut test
        // (tests/e2e/power.rs) must catch.
        let sync = if std::env::var_os("TILL_AGENT_FAULT_SYNC_OFF").is_some() {
            "OFF"
        } else {
            "FULL"
        };
        conn.pragma_update(None, "synchronous", sync)?;
        let fresh = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? == 0;
        migrate(&mut conn, MIGRATIONS)?;
        let mut outbox = Outbox {
            conn,
            unsent: crate::sync::unsent::path_for(path),
            sync,
        };
        if fresh {
            // A new outbox beside a copy of unsent items: the old file was deleted (by hand, say).
            // Its redemptions, registrations and tags are queued again (the server dedupes by id).
            let copy = outbox.unsent.clone();
            let (queued, bad) = outbox.queue_copy(&copy)?;
            if queued > 0 {
                tracing::warn!(
                    "a new outbox: {queued} unsent item(s) queued again from {}",
                    copy.display()
                );
            }
            for b in bad {
                tracing::warn!("{}: {b} (not queued again)", copy.display());
            }
        }
        outbox.tidy_unsent();
        Ok(outbox)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn is_ingested(&self, hash: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM ingested_files WHERE hash=?1", [hash], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Commit all items of one file together with the file's content hash, in ONE transaction.
    /// Items already queued (same id) are counted, not duplicated.
    pub fn commit_file(&mut self, hash: &str, file_name: &str, items: &[SyncItem]) -> anyhow::Result<Committed> {
        let tx = write_tx(&mut self.conn)?;
        let mut out = Committed::default();
        let now = now_text();
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO items(kind,item_id,payload,created_at,source_file) VALUES(?1,?2,?3,?4,?5)",
            )?;
            for it in items {
                let payload = serde_json::to_string(&it.payload)?;
                let n = ins.execute(params![
                    ItemKind::of(&it.payload).as_str(),
                    it.item_id,
                    payload,
                    now,
                    file_name
                ])?;
                if n == 1 {
                    out.inserted += 1;
                } else {
                    out.already_queued += 1;
                }
            }
            tx.execute(
                "INSERT OR IGNORE INTO ingested_files(hash,file_name,receipts,ingested_at) VALUES(?1,?2,?3,?4)",
                params![hash, file_name, items.len() as i64, now],
            )?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Queue one item (registration / pairing from the till UI). Returns false if the id exists.
    /// An item that is not a receipt is copied to the `unsent` file too, once committed: it exists
    /// nowhere else on the till. The item is queued even when that copy cannot be written (said
    /// in the agent's log): the outbox is what sends it.
    pub fn enqueue(&mut self, item: &SyncItem) -> anyhow::Result<bool> {
        let payload = serde_json::to_string(&item.payload)?;
        let kind = ItemKind::of(&item.payload);
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO items(kind,item_id,payload,created_at) VALUES(?1,?2,?3,?4)",
            params![kind.as_str(), item.item_id, payload, now_text()],
        )?;
        if n == 1 && kind != ItemKind::Receipt {
            let copied = crate::sync::unsent::line(&item.item_id, &payload)
                .and_then(|l| Ok(crate::sync::unsent::append(&self.unsent, &l)?));
            if let Err(e) = copied {
                tracing::warn!(
                    "{} {} is queued, but its copy in {} failed: {e:#}",
                    kind.as_str(),
                    item.item_id,
                    self.unsent.display()
                );
            }
        }
        Ok(n == 1)
    }

    /// Queue the items of an `unsent` copy (this outbox's own, or the one set aside with a damaged
    /// outbox) that are not queued yet: how many, and what of the copy could not be read ("line N:
    /// why", or why the file could not be read at all).
    pub fn queue_copy(&mut self, copy: &Path) -> anyhow::Result<(usize, Vec<String>)> {
        let read = match crate::sync::unsent::read(copy) {
            Ok(read) => read,
            Err(e) => return Ok((0, vec![format!("cannot read it: {e}")])),
        };
        let mut queued = 0;
        for item in &read.items {
            queued += usize::from(self.enqueue(item)?);
        }
        Ok((queued, read.bad))
    }

    /// The file that copies the waiting items that are not receipts.
    pub fn unsent_path(&self) -> &Path {
        &self.unsent
    }

    /// Rewrite the `unsent` copy when it is not the waiting items' lines (the server acknowledged
    /// some, or an append doubled a line): a read of a small file, and an indexed query only while
    /// there is one, under the outbox's write lock. Failures are logged, never fatal: the outbox
    /// itself is what sends.
    pub fn tidy_unsent(&self) {
        if let Err(e) = self.try_tidy_unsent(false) {
            tracing::warn!("tidying {}: {e:#}", self.unsent.display());
        }
    }

    fn try_tidy_unsent(&self, always: bool) -> anyhow::Result<()> {
        if !always && !self.unsent.exists() {
            return Ok(());
        }
        // The outbox's write lock from the query to the rename: another process's item (a CLI
        // command queuing offline) is committed either before (then in the query, so in the new
        // file) or after (then its append, which follows its commit, goes into the new file).
        // Without it, an item committed after the query and appended before the rename was only
        // in the file that the rename threw away.
        let lock = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let now = crate::sync::unsent::contents(&self.unsent)?;
        if now.is_none() && !always {
            return Ok(());
        }
        let mut st = self.conn.prepare_cached(WAITING_OTHER)?;
        let waiting = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .map(|row| {
                let (id, payload) = row?;
                crate::sync::unsent::line(&id, &payload)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if now.as_deref().unwrap_or_default() != waiting.concat().as_bytes() {
            crate::sync::unsent::rewrite(&self.unsent, &waiting)?;
        }
        drop(st);
        lock.commit()?;
        Ok(())
    }

    /// Pending items due at `now_ms`, oldest first. An item deferred at a time after `now_ms`
    /// (`deferred_at`) is due too: the clock went back since (a till whose clock ran ahead and was
    /// corrected), and it would otherwise wait out the jump. Rows deferred before that column
    /// existed: due when deferred further ahead than any retry defers ([`MAX_DEFER_MS`]).
    pub fn due(&self, limit: usize, now_ms: i64) -> anyhow::Result<Vec<Pending>> {
        self.due_after(-1, limit, now_ms)
    }

    /// Like [`Self::due`], only items queued after `seq` (the next batch while one is in flight).
    /// The payloads are not decoded (see [`Pending`]).
    pub fn due_after(&self, seq: i64, limit: usize, now_ms: i64) -> anyhow::Result<Vec<Pending>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq,item_id,payload,attempts,kind FROM items WHERE state='pending'
             AND (next_attempt_at<=?1 OR deferred_at>?1 OR next_attempt_at>?1+?4) AND seq>?3 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![now_ms, limit as i64, seq, MAX_DEFER_MS], |r| {
            Ok(Pending {
                seq: r.get(0)?,
                item_id: r.get(1)?,
                payload: r.get(2)?,
                attempts: r.get(3)?,
                kind: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Earliest `next_attempt_at` among pending items (ms), if any.
    pub fn next_due_at(&self) -> anyhow::Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM items WHERE state='pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Acknowledged items, in one transaction that is not fsynced (`synchronous=NORMAL` for this
    /// commit only): an ack that a power cut takes back leaves the items pending, they are sent
    /// again and the server answers `duplicate`. The WAL keeps the outbox consistent either way,
    /// and the next FULL commit (a new receipt) makes it durable too. One fsync per batch fewer:
    /// on a till the fsync is the disk the server (or the POS) waits for as well.
    /// The ids go in as one JSON array: one statement for the whole batch.
    pub fn mark_sent(&mut self, ids: &[&str]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write_acks(
            &AckBatch {
                sent: ids.to_vec(),
                ..Default::default()
            },
            |_| Ok(()),
        )
    }

    /// Everything an answered batch changes, in ONE transaction (not fsynced, as [`Self::mark_sent`]):
    /// the acknowledged items, dead letters, retries, their sync-log rows, then `then` (the status
    /// meta rows) on the same connection. One commit per batch, on the connection whose page
    /// cache the next read uses.
    pub fn write_acks(
        &mut self,
        acks: &AckBatch,
        then: impl FnOnce(&Connection) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.unsynced(|tx| {
            let now = now_text();
            // By rowid where the caller has it: no walk down the item_id index (long text keys) per item.
            let by_id = (!acks.sent.is_empty()).then(|| serde_json::to_string(&acks.sent));
            let by_seq = (!acks.sent_seqs.is_empty()).then(|| serde_json::to_string(&acks.sent_seqs));
            for (column, keys) in [("item_id", by_id), ("seq", by_seq)] {
                let Some(keys) = keys.transpose()? else { continue };
                let n = tx
                    .prepare_cached(&format!(
                        "UPDATE items SET state='sent', sent_at=?2, attempts=attempts+1, last_error=NULL
                         WHERE {column} IN (SELECT value FROM json_each(?1)) AND state='pending'"
                    ))?
                    .execute(params![keys, now])?;
                moved(tx, "pending", "sent", n)?;
            }
            for (id, reason) in &acks.rejected {
                reject(tx, id, reason)?;
            }
            for (id, reason, at) in &acks.retry {
                tx.prepare_cached(MARK_RETRY)?
                    .execute(params![id, reason, at, now_ms()])?;
            }
            for r in &acks.log {
                insert_log(tx, &now, r.level, &r.kind, r.item_id.as_deref(), &r.message)?;
            }
            then(tx)
        })?;
        self.tidy_unsent();
        Ok(())
    }

    /// One transaction committed with `synchronous=NORMAL` (not fsynced), then the connection's
    /// own setting again, whether `f` worked or not.
    fn unsynced(&mut self, f: impl FnOnce(&rusqlite::Transaction) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let res = (|| -> anyhow::Result<()> {
            let tx = write_tx(&mut self.conn)?;
            f(&tx)?;
            tx.commit()?;
            Ok(())
        })();
        let back = self.conn.pragma_update(None, "synchronous", self.sync);
        res?;
        back?;
        Ok(())
    }

    pub fn mark_rejected(&mut self, id: &str, reason: &str) -> anyhow::Result<()> {
        let tx = write_tx(&mut self.conn)?;
        reject(&tx, id, reason)?;
        tx.commit()?;
        Ok(())
    }

    /// Temporarily failed at `now_ms`: try again at `next_ms`.
    pub fn mark_retry(&mut self, id: &str, reason: &str, now_ms: i64, next_ms: i64) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(MARK_RETRY)?
            .execute(params![id, reason, next_ms, now_ms])?;
        Ok(())
    }

    /// Dead letters back to pending (after a fix on the server). Returns how many.
    pub fn requeue(&mut self) -> anyhow::Result<usize> {
        let tx = write_tx(&mut self.conn)?;
        let n = tx.execute(
            "UPDATE items SET state='pending', next_attempt_at=0 WHERE state='rejected'",
            [],
        )?;
        moved(&tx, "rejected", "pending", n)?;
        tx.commit()?;
        Ok(n)
    }

    /// The server lost what it had acknowledged (its database was restored): every item still kept
    /// as sent goes back to pending, due now (the server dedupes what it still has), and the new
    /// server identity and `note(n)` are recorded (meta `server_id`, `last_restore`), in one
    /// transaction. Returns how many items go again.
    pub fn resend_acknowledged(
        &mut self,
        server_id: &str,
        note: impl FnOnce(usize) -> String,
    ) -> anyhow::Result<usize> {
        let tx = write_tx(&mut self.conn)?;
        let n = tx.execute(
            "UPDATE items SET state='pending', next_attempt_at=0 WHERE state='sent'",
            [],
        )?;
        moved(&tx, "sent", "pending", n)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key,value) VALUES('server_id',?1)",
            [server_id],
        )?;
        let note = note(n);
        tx.execute(
            "INSERT OR REPLACE INTO meta(key,value) VALUES('last_restore',?1)",
            [&note],
        )?;
        tx.commit()?;
        // the items acknowledged before wait again: into the copy with them
        if let Err(e) = self.try_tidy_unsent(true) {
            tracing::warn!("rewriting {}: {e:#}", self.unsent.display());
        }
        Ok(n)
    }

    /// Make every pending item due now (server came back / "Sync now").
    pub fn make_all_due(&mut self) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE items SET next_attempt_at=0 WHERE state='pending' AND next_attempt_at>0",
            [],
        )?;
        Ok(())
    }

    /// Counts per state from the trigger-kept `item_counts` table and the oldest pending item by
    /// index: O(1)/O(log n) whatever the size of the outbox.
    pub fn stats(&self) -> anyhow::Result<Stats> {
        stats_of(&self.conn)
    }

    /// Retention: delete items sent before `items_before`, file hashes ingested before it, and
    /// sync-log rows older than `log_before`. Pending items and dead letters are never pruned.
    pub fn prune(&mut self, items_before: DateTime<Utc>, log_before: DateTime<Utc>) -> anyhow::Result<Pruned> {
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (items_cut, log_cut) = (fmt(items_before), fmt(log_before));
        let tx = write_tx(&mut self.conn)?;
        let p = Pruned {
            sent_items: tx.execute("DELETE FROM items WHERE state='sent' AND sent_at<?1", [&items_cut])?,
            file_hashes: tx.execute("DELETE FROM ingested_files WHERE ingested_at<?1", [&items_cut])?,
            log_rows: tx.execute("DELETE FROM sync_log WHERE ts<?1", [&log_cut])?,
        };
        tx.commit()?;
        Ok(p)
    }

    pub fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        let mut st = self.conn.prepare(
            "SELECT item_id, kind, attempts, last_error, created_at FROM items WHERE state='rejected' ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok(DeadLetter {
                item_id: r.get(0)?,
                kind: r.get(1)?,
                attempts: r.get(2)?,
                reason: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // --- sync log table -------------------------------------------------------------------

    /// Append to the `sync_log` table (the message must already be masked: see `synclog`).
    pub fn log(&self, level: &str, kind: &str, item_id: Option<&str>, message: &str) -> anyhow::Result<()> {
        insert_log(&self.conn, &now_text(), level, kind, item_id, message)
    }

    /// The last `n` log rows, oldest first.
    pub fn log_tail(&self, n: usize) -> anyhow::Result<Vec<LogRow>> {
        let mut v = self.log_query(
            "SELECT id,ts,level,kind,item_id,message FROM sync_log ORDER BY id DESC LIMIT ?1",
            n as i64,
        )?;
        v.reverse();
        Ok(v)
    }

    /// Log rows after id `after`, oldest first.
    pub fn log_after(&self, after: i64) -> anyhow::Result<Vec<LogRow>> {
        self.log_query(
            "SELECT id,ts,level,kind,item_id,message FROM sync_log WHERE id>?1 ORDER BY id",
            after,
        )
    }

    fn log_query(&self, sql: &str, arg: i64) -> anyhow::Result<Vec<LogRow>> {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map([arg], |r| {
            Ok(LogRow {
                id: r.get(0)?,
                ts: r.get(1)?,
                level: r.get(2)?,
                kind: r.get(3)?,
                item_id: r.get(4)?,
                message: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // --- meta ----------------------------------------------------------------------------

    pub fn set_meta(&self, key: &str, value: Option<&str>) -> anyhow::Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO meta(key,value) VALUES(?1,?2)")?
            .execute(params![key, value])?;
        Ok(())
    }

    /// Several meta values in one transaction that is not fsynced (like [`Self::mark_sent`]): the
    /// status the agent keeps for `till-agent status` changes with every acknowledged batch, and
    /// a power cut that takes the last one back loses nothing but that snapshot.
    pub fn set_metas(&mut self, values: &[(&str, Option<&str>)]) -> anyhow::Result<()> {
        self.unsynced(|tx| set_metas_in(tx, values))
    }

    pub fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// A backlog is being sent (`true`) or has been sent (`false`). While it is sent, the
    /// outbox does not copy its WAL into the main file every [`WAL_CHECKPOINT_PAGES`] pages but
    /// only past [`WAL_CHECKPOINT_PAGES_DRAINING`]: each batch's acks dirty the pages of its
    /// items, and a checkpoint mid-drain writes them and syncs twice on the disk the till (and on
    /// one machine, the server) is waiting on. When it has been sent, the pages are copied once
    /// (a passive checkpoint: it waits for nobody) and the usual limit is back.
    pub fn set_draining(&self, draining: bool) -> anyhow::Result<()> {
        let pages = if draining {
            WAL_CHECKPOINT_PAGES_DRAINING
        } else {
            WAL_CHECKPOINT_PAGES
        };
        self.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
        if !draining {
            self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Checkpoint the WAL into the main file (clean shutdown).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// WAL pages after which a commit copies the WAL into the main file (SQLite's default).
const WAL_CHECKPOINT_PAGES: i64 = 1000;
/// The same while a backlog is sent ([`Outbox::set_draining`]): ≈ 64 MiB of WAL, a backlog of
/// ≈ 25 000 receipts of ≈ 1 KB written into it twice (queued, then acknowledged).
const WAL_CHECKPOINT_PAGES_DRAINING: i64 = 16_384;

/// `n` items went from state `from` to `to`: the counters follow (every UPDATE of `items.state`
/// calls this in its transaction; inserts and deletes are counted by triggers).
fn moved(conn: &Connection, from: &str, to: &str, n: usize) -> anyhow::Result<()> {
    if n > 0 && from != to {
        let mut st = conn.prepare_cached("UPDATE item_counts SET n=n+?2 WHERE state=?1")?;
        st.execute(params![from, -(n as i64)])?;
        st.execute(params![to, n as i64])?;
    }
    Ok(())
}

/// A dead letter (from whatever state the item is in), counters moved.
fn reject(conn: &Connection, id: &str, reason: &str) -> anyhow::Result<()> {
    let was: Option<String> = conn
        .prepare_cached("SELECT state FROM items WHERE item_id=?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(was) = was {
        conn.prepare_cached("UPDATE items SET state='rejected', attempts=attempts+1, last_error=?2 WHERE item_id=?1")?
            .execute(params![id, reason])?;
        moved(conn, &was, "rejected", 1)?;
    }
    Ok(())
}

/// The longest a retry defers one item (the ceiling of an isolated suspect's backoff; the server's
/// "retry" defers 5 min at most).
pub const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(3600);

/// [`MAX_RETRY_DELAY`] with room for jitter: a `next_attempt_at` further ahead than this was set by a
/// clock that has since gone back.
pub const MAX_DEFER_MS: i64 = 2 * MAX_RETRY_DELAY.as_millis() as i64;

const MARK_RETRY: &str =
    "UPDATE items SET attempts=attempts+1, last_error=?2, next_attempt_at=?3, deferred_at=?4 WHERE item_id=?1 AND state='pending'";

/// A `sync_log` row to write with the acks (its message already masked: see `synclog`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewLogRow {
    pub level: &'static str,
    pub kind: String,
    pub item_id: Option<String>,
    pub message: String,
}

/// What one answered batch changes ([`Outbox::write_acks`]).
#[derive(Clone, Debug, Default)]
pub struct AckBatch<'a> {
    /// Applied or duplicate: sent (by item id).
    pub sent: Vec<&'a str>,
    /// The same by `seq` (what the replicator knows of the items it sent: the cheaper lookup).
    pub sent_seqs: Vec<i64>,
    /// Dead letters: (id, the server's reason).
    pub rejected: Vec<(&'a str, String)>,
    /// Again later: (id, reason, next attempt in ms).
    pub retry: Vec<(&'a str, String, i64)>,
    pub log: Vec<NewLogRow>,
}

fn insert_log(
    conn: &Connection,
    ts: &str,
    level: &str,
    kind: &str,
    item_id: Option<&str>,
    message: &str,
) -> anyhow::Result<()> {
    conn.prepare_cached("INSERT INTO sync_log(ts,level,kind,item_id,message) VALUES(?1,?2,?3,?4,?5)")?
        .execute(params![ts, level, kind, item_id, message])?;
    Ok(())
}

/// Meta rows on `conn` (inside the caller's transaction).
pub fn set_metas_in(conn: &Connection, values: &[(&str, Option<&str>)]) -> anyhow::Result<()> {
    let mut st = conn.prepare_cached("INSERT OR REPLACE INTO meta(key,value) VALUES(?1,?2)")?;
    for (k, v) in values {
        st.execute(params![k, v])?;
    }
    Ok(())
}

/// [`Outbox::stats`] on `conn` (inside a transaction it sees that transaction's changes).
pub fn stats_of(conn: &Connection) -> anyhow::Result<Stats> {
    let mut s = Stats::default();
    let mut st = conn.prepare_cached("SELECT state, n FROM item_counts")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        let n = n.max(0) as u64;
        match state.as_str() {
            "pending" => s.pending = n,
            "sent" => s.sent = n,
            "rejected" => s.dead_letters = n,
            _ => {}
        }
    }
    let oldest: Option<String> = conn
        .prepare_cached("SELECT MIN(created_at) FROM items WHERE state='pending'")?
        .query_row([], |r| r.get(0))?;
    s.oldest_pending = oldest
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    Ok(s)
}

/// Switch `conn`'s database to WAL, waiting up to `patience` for other processes.
///
/// On a brand-new file two processes (the agent's first start and a CLI command) switch at the
/// same moment. The switch reads the header under a shared lock and then asks for the write
/// lock; SQLite refuses that upgrade at once while another connection holds a lock (waiting
/// could deadlock), so the busy timeout does not help. The switch holds nothing once it failed:
/// try it again.
pub fn use_wal(conn: &Connection, patience: std::time::Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => anyhow::bail!("the database cannot use WAL (journal_mode={mode})"),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A write transaction that holds the write lock from its first statement (`BEGIN IMMEDIATE`),
/// so the busy timeout applies. A deferred one that reads first would fail at once when
/// another process writes meanwhile.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Apply `migrations[user_version..]`, each in its own transaction, bumping `user_version`.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> anyhow::Result<()> {
    let v: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if v > migrations.len() {
        anyhow::bail!(
            "database schema version {v} is newer than this agent knows ({}); upgrade the agent",
            migrations.len()
        );
    }
    for (i, m) in migrations.iter().enumerate().skip(v) {
        // Another process (the agent and a CLI command starting together) may migrate at the
        // same time: take the write lock first, then look at the version again.
        let tx = write_tx(conn)?;
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now as usize > i {
            continue;
        }
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::v1::MigrationPairing;
    use protocol::CardId;

    fn item(id: &str) -> SyncItem {
        SyncItem {
            item_id: id.into(),
            payload: SyncPayload::MigrationPairing(MigrationPairing {
                request_id: id.into(),
                card: CardId::normalise("19001234").unwrap(),
                code: "ABC".into(),
                store_id: "S1".into(),
                till_id: "T1".into(),
            }),
        }
    }

    /// The agent starting on a new data folder and a CLI command (`register`) opening the same
    /// outbox at that moment: whoever comes second waits for the other's switch to WAL and
    /// migrations instead of failing with "database is locked".
    #[test]
    fn an_outbox_being_created_by_another_process_is_waited_for() {
        for mode in ["rollback", "wal"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.db");
            let other = Connection::open(&path).unwrap();
            if mode == "wal" {
                other.pragma_update(None, "journal_mode", "WAL").unwrap();
            }
            other.execute_batch("BEGIN EXCLUSIVE; CREATE TABLE t(x);").unwrap();
            let release = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(400));
                other.execute_batch("COMMIT").unwrap();
            });
            let t0 = std::time::Instant::now();
            let opened = Outbox::open(&path);
            release.join().unwrap();
            assert!(opened.is_ok(), "{mode}: {:#}", opened.err().unwrap());
            assert!(
                t0.elapsed() >= std::time::Duration::from_millis(300),
                "{mode}: it waited"
            );
        }
    }

    /// Several processes opening one brand-new outbox at the same moment (the agent's first start
    /// and a CLI command): the loser of the switch to WAL holds a read lock when it asks for the
    /// write lock, which SQLite refuses at once (no busy wait, to avoid a deadlock). Every opener
    /// must still get the outbox and queue its item.
    #[test]
    fn many_openers_of_a_new_outbox_at_once_all_get_it() {
        const OPENERS: usize = 4;
        for round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(OPENERS));
            let openers: Vec<_> = (0..OPENERS)
                .map(|i| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let mut o = Outbox::open(&path)?;
                        o.enqueue(&item(&format!("r{round}-{i}")))
                    })
                })
                .collect();
            for (i, t) in openers.into_iter().enumerate() {
                let r = t.join().unwrap();
                assert!(matches!(r, Ok(true)), "round {round}, opener {i}: {r:?}");
            }
            let o = Outbox::open(&path).unwrap();
            let n: i64 = o
                .conn
                .query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, OPENERS as i64, "round {round}");
        }
    }

    #[test]
    fn schema_is_versioned_and_reopen_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("outbox.db");
        drop(Outbox::open(&p).unwrap());
        let o = Outbox::open(&p).unwrap();
        let v: i64 = o.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = o.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = o.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn file_commit_is_atomic_with_hash_and_dedupes_ids() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        assert!(!o.is_ingested("h1").unwrap());
        let c = o.commit_file("h1", "a.csv", &[item("a"), item("b")]).unwrap();
        assert_eq!(
            c,
            Committed {
                inserted: 2,
                already_queued: 0
            }
        );
        assert!(o.is_ingested("h1").unwrap());
        let c = o.commit_file("h2", "a2.csv", &[item("b"), item("c")]).unwrap();
        assert_eq!(
            c,
            Committed {
                inserted: 1,
                already_queued: 1
            }
        );
        assert_eq!(o.stats().unwrap().pending, 3);
        // a failing item rolls the hash back too
        let bad = o
            .conn
            .execute_batch("BEGIN; INSERT INTO ingested_files VALUES('h3','x',0,'t'); ROLLBACK;");
        assert!(bad.is_ok());
        assert!(!o.is_ingested("h3").unwrap());
    }

    /// While a backlog is sent the outbox leaves its WAL alone up to the draining limit (the
    /// usual limit would have copied these pages into the main file several times over), and
    /// copies it once when the backlog has been sent.
    #[test]
    fn while_a_backlog_is_sent_the_wal_is_copied_into_the_file_only_once_it_has_been_sent() {
        use protocol::v1::{LineKind, Receipt, ReceiptLine};
        use protocol::{Currency, ReceiptId, StoreId, TillId};
        use rust_decimal::Decimal;
        // 50 receipts of 15 lines (≈ 3 KB of JSON each) per file.
        let file = |k: usize| -> Vec<SyncItem> {
            let (st, t) = (StoreId::from("S1"), TillId::from("T1"));
            let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00+01:00").unwrap();
            (0..50)
                .map(|i| {
                    let no = format!("{k}-{i}");
                    let lines: Vec<ReceiptLine> = (0..15)
                        .map(|l| ReceiptLine {
                            sku: Some(format!("859000{l:04}")),
                            name: format!("Zboží číslo {l} s delším názvem"),
                            category: Some("drogerie".into()),
                            quantity: Decimal::ONE,
                            unit_price: Decimal::new(12990, 2),
                            line_total: Decimal::new(12990, 2),
                            vat_rate: Some(Decimal::from(21)),
                            kind: LineKind::Sale,
                        })
                        .collect();
                    let r = Receipt {
                        id: ReceiptId::derive(&st, &t, &no, &at),
                        store_id: st.clone(),
                        till_id: t.clone(),
                        pos_receipt_no: no,
                        issued_at: at,
                        currency: Currency::CZK,
                        total: Decimal::new(12990 * 15, 2),
                        card: None,
                        original: None,
                        lines,
                        vat: Vec::new(),
                    };
                    SyncItem {
                        item_id: r.id.0.clone(),
                        payload: SyncPayload::Receipt(r),
                    }
                })
                .collect()
        };
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let dir = tempfile::tempdir().unwrap();
        for draining in [false, true] {
            let db = dir.path().join(format!("outbox-{draining}.db"));
            let mut o = Outbox::open(&db).unwrap();
            o.set_draining(draining).unwrap();
            let before = size(&db);
            // ≈ 4.5 MB of receipts: more than the usual limit's 1 000 pages of WAL.
            for k in 0..30 {
                o.commit_file(&format!("h{k}"), "f.csv", &file(k)).unwrap();
            }
            let grown = size(&db) - before;
            if !draining {
                assert!(
                    grown > 2 << 20,
                    "the usual limit copies the WAL as it grows: {grown} bytes"
                );
                continue;
            }
            assert_eq!(grown, 0, "while a backlog is sent, nothing is copied into the file");
            o.set_draining(false).unwrap();
            let copied = size(&db) - before;
            assert!(
                copied > 4 << 20,
                "sent: the WAL is copied into the file ({copied} bytes)"
            );
            let (busy, log, done): (i64, i64, i64) = o
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            assert_eq!((busy, log), (0, done), "every frame of the WAL is in the file");
            let pages: i64 = o.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
            assert_eq!(pages, WAL_CHECKPOINT_PAGES, "the usual limit is back");
        }
    }

    #[test]
    fn the_spliced_batch_body_is_the_json_of_the_decoded_batch() {
        use protocol::v1::SyncBatch;
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        let rcpt = {
            use protocol::v1::{LineKind, Receipt, ReceiptLine};
            use protocol::{Currency, ReceiptId, StoreId, TillId};
            use rust_decimal::Decimal;
            let (st, t) = (StoreId::from("S1"), TillId::from("T1"));
            let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00+01:00").unwrap();
            let line = ReceiptLine {
                sku: Some("8590001".into()),
                name: "Šampon \"extra\"".into(),
                category: None,
                quantity: Decimal::new(15, 1),
                unit_price: Decimal::new(12990, 2),
                line_total: Decimal::new(194850, 3),
                vat_rate: Some(Decimal::from(21)),
                kind: LineKind::Sale,
            };
            let r = Receipt {
                id: ReceiptId::derive(&st, &t, "42", &at),
                store_id: st,
                till_id: t,
                pos_receipt_no: "42".into(),
                issued_at: at,
                currency: Currency::CZK,
                total: Decimal::new(194850, 3),
                card: None,
                original: None,
                lines: vec![line],
                vat: Vec::new(),
            };
            SyncItem {
                item_id: r.id.0.clone(),
                payload: SyncPayload::Receipt(r),
            }
        };
        let items = vec![item("a\"quoted\\id"), rcpt, item("ž-ünïcode")];
        o.commit_file("h", "f.csv", &items).unwrap();
        let due = o.due(10, now_ms()).unwrap();
        assert_eq!(
            due.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>(),
            ["migration_pairing", "receipt", "migration_pairing"]
        );
        let body = batch_body("S \"1\"", "T1", &due);
        let want = SyncBatch {
            version: "v1".into(),
            store_id: "S \"1\"".into(),
            till_id: "T1".into(),
            items: due.iter().map(|p| p.item().unwrap()).collect(),
        };
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
        let back: SyncBatch = serde_json::from_slice(&body).unwrap();
        assert_eq!(back.items, items, "decodes to the items queued");
        assert_eq!(
            batch_body("S", "T", &[]),
            br#"{"version":"v1","store_id":"S","till_id":"T","items":[]}"#
        );
        // Rows that are not a payload object still give well-formed JSON (the server refuses them).
        let odd = |payload: &str| Pending {
            seq: 1,
            item_id: "x".into(),
            attempts: 0,
            kind: "receipt".into(),
            payload: payload.into(),
        };
        let body = batch_body("S", "T", &[odd("{}"), odd(" { } "), odd("[1]")]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["items"],
            serde_json::json!([{"item_id": "x"}, {"item_id": "x"}, {"item_id": "x", "payload": [1]}])
        );
        assert!(odd("not json")
            .payload()
            .unwrap_err()
            .to_string()
            .contains("outbox item x (seq 1): bad payload"));
    }

    #[test]
    fn an_answered_batch_is_one_transaction_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        let ids = ["1", "2", "3", "4"];
        o.commit_file("h", "f.csv", &ids.map(item)).unwrap();
        let log = |m: &str| NewLogRow {
            level: "info",
            kind: "ack".into(),
            item_id: None,
            message: m.into(),
        };
        let seq_of = |id: &str| -> i64 {
            o.conn
                .query_row("SELECT seq FROM items WHERE item_id=?1", [id], |r| r.get(0))
                .unwrap()
        };
        let acks = AckBatch {
            sent: vec!["1"],
            sent_seqs: vec![seq_of("2"), seq_of("1"), 9_999],
            rejected: vec![("3", "invalid: total".into())],
            retry: vec![("4", "busy".into(), now_ms() + 60_000)],
            log: vec![log("acked 2 item(s)")],
        };
        // `then` fails: nothing of the batch is written
        let err = o.write_acks(&acks, |_| anyhow::bail!("disk full")).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(o.stats().unwrap().pending, 4);
        assert!(o.log_tail(5).unwrap().is_empty());
        let sync: i64 = o.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "FULL again after a failed ack commit");
        // `then` sees the batch's changes inside the same transaction
        let mut seen = None;
        o.write_acks(&acks, |tx| {
            seen = Some(stats_of(tx)?);
            set_metas_in(tx, &[("status_at", Some("now"))])
        })
        .unwrap();
        let seen = seen.unwrap();
        assert_eq!((seen.pending, seen.sent, seen.dead_letters), (1, 2, 1));
        assert_eq!(o.meta("status_at").unwrap().as_deref(), Some("now"));
        assert_eq!(o.log_tail(5).unwrap()[0].message, "acked 2 item(s)");
        assert_eq!(o.dead_letters().unwrap()[0].reason.as_deref(), Some("invalid: total"));
        assert!(o.due(10, now_ms()).unwrap().is_empty(), "4 waits for its retry time");
        let (attempts, err): (i64, String) = o
            .conn
            .query_row("SELECT attempts, last_error FROM items WHERE item_id='4'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((attempts, err.as_str()), (1, "busy"));
    }

    #[test]
    fn due_after_gives_the_batch_behind_the_one_in_flight() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        let items: Vec<SyncItem> = ["1", "2", "3", "4", "5"].iter().map(|i| item(i)).collect();
        o.commit_file("h", "a.csv", &items).unwrap();
        let ids = |v: Vec<Pending>| v.into_iter().map(|p| p.item_id).collect::<Vec<_>>();
        let first = o.due(2, now_ms()).unwrap();
        let last = first[1].seq;
        assert_eq!(ids(first), ["1", "2"]);
        // batch 1+2 is in flight (still pending): the next batch starts behind it, never repeats it
        assert_eq!(ids(o.due_after(last, 2, now_ms()).unwrap()), ["3", "4"]);
        o.mark_retry("3", "busy", now_ms(), now_ms() + 60_000).unwrap();
        assert_eq!(
            ids(o.due_after(last, 2, now_ms()).unwrap()),
            ["4", "5"],
            "not due yet: skipped"
        );
        o.mark_sent(&["1", "2"]).unwrap();
        assert_eq!(ids(o.due(10, now_ms()).unwrap()), ["4", "5"]);
    }

    /// A till whose clock ran a day ahead deferred an item by a minute; the clock is corrected: the
    /// item is due now, not in a day. A deferral within the longest backoff still waits.
    #[test]
    fn an_item_deferred_before_a_short_jump_back_of_the_clock_is_due_now() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        assert!(o.enqueue(&item("retry")).unwrap());
        let now = now_ms();
        // the server said "retry in 5 min" while the clock ran an hour ahead
        o.mark_retry("retry", "busy", now, now + 5 * 60_000).unwrap();
        assert!(o.due(10, now + 60_000).unwrap().is_empty(), "the clock as it was: wait");
        let ids: Vec<_> = o
            .due(10, now - 3600 * 1000)
            .unwrap()
            .into_iter()
            .map(|p| p.item_id)
            .collect();
        assert_eq!(ids, ["retry"], "an hour back: due now, not in 1 h 5 min");
    }

    #[test]
    fn an_item_deferred_before_the_clock_went_back_is_due_now() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        for id in ["ahead", "later", "edge"] {
            assert!(o.enqueue(&item(id)).unwrap());
        }
        let now = now_ms();
        let day = 24 * 3600 * 1000;
        o.mark_retry("ahead", "busy", now, now + day + 60_000).unwrap();
        o.mark_retry("later", "busy", now, now + 3600 * 1000).unwrap();
        o.mark_retry("edge", "busy", now, now + MAX_DEFER_MS).unwrap();
        let ids: Vec<_> = o.due(10, now).unwrap().into_iter().map(|p| p.item_id).collect();
        assert_eq!(
            ids,
            ["ahead"],
            "an hour's backoff still waits; a day ahead is a clock that went back"
        );
        let ids: Vec<_> = o
            .due(10, now + 3600 * 1000)
            .unwrap()
            .into_iter()
            .map(|p| p.item_id)
            .collect();
        assert_eq!(ids, ["ahead", "later"]);
    }

    #[test]
    fn states_order_retry_and_requeue() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        for id in ["1", "2", "3", "4"] {
            assert!(o.enqueue(&item(id)).unwrap());
        }
        assert!(!o.enqueue(&item("1")).unwrap());
        let due: Vec<_> = o.due(10, now_ms()).unwrap().into_iter().map(|p| p.item_id).collect();
        assert_eq!(due, ["1", "2", "3", "4"]);
        o.mark_sent(&["1"]).unwrap();
        let sync: i64 = o.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "FULL again after the ack commit (NORMAL for that commit only)");
        o.mark_rejected("2", "bad card").unwrap();
        o.mark_retry("3", "busy", now_ms(), now_ms() + 60_000).unwrap();
        let due: Vec<_> = o.due(10, now_ms()).unwrap().into_iter().map(|p| p.item_id).collect();
        assert_eq!(
            due,
            ["4"],
            "dead letter and backed-off item are not due; the queue is not blocked"
        );
        let s = o.stats().unwrap();
        assert_eq!((s.pending, s.sent, s.dead_letters), (2, 1, 1));
        assert_eq!(o.dead_letters().unwrap()[0].reason.as_deref(), Some("bad card"));
        assert_eq!(o.requeue().unwrap(), 1);
        o.make_all_due().unwrap();
        let due: Vec<_> = o.due(10, now_ms()).unwrap().into_iter().map(|p| p.item_id).collect();
        assert_eq!(due, ["2", "3", "4"]);
    }

    #[test]
    fn a_restored_server_gets_every_acknowledged_item_again_and_the_new_id_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        for id in ["1", "2", "3"] {
            o.enqueue(&item(id)).unwrap();
        }
        o.mark_sent(&["1", "2"]).unwrap();
        o.mark_rejected("3", "bad card").unwrap();
        let n = o.resend_acknowledged("B", |n| format!("{n} again")).unwrap();
        assert_eq!(n, 2);
        let due: Vec<_> = o.due(10, now_ms()).unwrap().into_iter().map(|p| p.item_id).collect();
        assert_eq!(due, ["1", "2"], "sent items are due again; a dead letter stays one");
        assert_eq!(o.meta("server_id").unwrap().as_deref(), Some("B"));
        assert_eq!(o.meta("last_restore").unwrap().as_deref(), Some("2 again"));
    }

    #[test]
    fn log_tail_and_follow() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox::open(&d.path().join("o.db")).unwrap();
        for i in 0..5 {
            o.log("info", "ingest", None, &format!("m{i}")).unwrap();
        }
        let t = o.log_tail(2).unwrap();
        assert_eq!(t.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);
        assert_eq!(o.log_after(t[0].id).unwrap().len(), 1);
    }

    fn set_time(o: &Outbox, sql: &str, t: DateTime<Utc>) {
        let t = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        o.conn.execute(sql, [t]).unwrap();
    }

    #[test]
    fn prune_keeps_pending_dead_letters_and_recent_rows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.db");
        let mut o = Outbox::open(&p).unwrap();
        o.commit_file(
            "old-hash",
            "old.csv",
            &[item("old-sent"), item("old-pending"), item("old-dead")],
        )
        .unwrap();
        o.commit_file("new-hash", "new.csv", &[item("new-sent")]).unwrap();
        o.mark_sent(&["old-sent", "new-sent"]).unwrap();
        o.mark_rejected("old-dead", "bad").unwrap();
        o.log("info", "ingest", None, "old line").unwrap();
        o.log("info", "ingest", None, "new line").unwrap();
        let now = Utc::now();
        let long_ago = now - chrono::Duration::days(200);
        set_time(
            &o,
            "UPDATE items SET created_at=?1, sent_at=CASE WHEN state='sent' THEN ?1 END WHERE item_id LIKE 'old-%'",
            long_ago,
        );
        set_time(
            &o,
            "UPDATE ingested_files SET ingested_at=?1 WHERE hash='old-hash'",
            long_ago,
        );
        set_time(&o, "UPDATE sync_log SET ts=?1 WHERE message='old line'", long_ago);
        drop(o);
        let mut o = Outbox::open(&p).unwrap();
        let pruned = o
            .prune(now - chrono::Duration::days(90), now - chrono::Duration::days(30))
            .unwrap();
        assert_eq!(
            pruned,
            Pruned {
                sent_items: 1,
                file_hashes: 1,
                log_rows: 1
            }
        );
        let ids: Vec<String> = o
            .conn
            .prepare("SELECT item_id FROM items ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            ids,
            ["old-pending", "old-dead", "new-sent"],
            "pending and dead letters are never pruned"
        );
        assert!(!o.is_ingested("old-hash").unwrap());
        assert!(o.is_ingested("new-hash").unwrap());
        assert_eq!(
            o.log_tail(10)
                .unwrap()
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>(),
            ["new line"]
        );
        let s = o.stats().unwrap();
        assert_eq!(
            (s.pending, s.sent, s.dead_letters),
            (1, 1, 1),
            "counters follow deletes"
        );
        assert_eq!(
            o.prune(now - chrono::Duration::days(90), now - chrono::Duration::days(30))
                .unwrap(),
            Pruned::default()
        );
    }

    #[test]
    fn counters_match_a_full_count_through_every_transition() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        let ids: Vec<String> = (0..50).map(|i| format!("i{i}")).collect();
        let items: Vec<_> = ids.iter().map(|i| item(i)).collect();
        o.commit_file("h", "f.csv", &items).unwrap();
        o.commit_file("h2", "f2.csv", &items[..10]).unwrap(); // duplicates: no count change
        let refs: Vec<&str> = ids[..20].iter().map(String::as_str).collect();
        o.mark_sent(&refs).unwrap();
        o.mark_sent(&refs).unwrap(); // already sent: no change
        for id in &ids[20..25] {
            o.mark_rejected(id, "x").unwrap();
        }
        o.mark_rejected("i21", "again").unwrap();
        o.mark_retry("i30", "busy", now_ms(), now_ms() + 1000).unwrap();
        let full = |o: &Outbox, st: &str| -> u64 {
            o.conn
                .query_row("SELECT COUNT(*) FROM items WHERE state=?1", [st], |r| r.get(0))
                .unwrap()
        };
        let check = |o: &Outbox| {
            let s = o.stats().unwrap();
            assert_eq!(
                (s.pending, s.sent, s.dead_letters),
                (full(o, "pending"), full(o, "sent"), full(o, "rejected"))
            );
        };
        check(&o);
        assert_eq!(o.stats().unwrap().dead_letters, 5);
        o.requeue().unwrap();
        check(&o);
        assert_eq!(o.stats().unwrap().pending, 30);
        assert!(o.stats().unwrap().oldest_pending.is_some());
    }

    #[test]
    fn migration_5_indexes_a_version_4_outbox_by_state_and_its_queries_use_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.db");
        {
            let mut c = Connection::open(&p).unwrap();
            migrate(&mut c, &MIGRATIONS[..4]).unwrap();
            for (id, state, created, sent) in [
                (
                    "a",
                    "sent",
                    "2026-01-01T00:00:00.000Z",
                    Some("2026-01-01T00:00:01.000Z"),
                ),
                ("b", "rejected", "2026-01-02T00:00:00.000Z", None),
                ("c", "pending", "2026-01-03T00:00:00.000Z", None),
            ] {
                let payload = serde_json::to_string(&item(id).payload).unwrap();
                c.execute(
                    "INSERT INTO items(kind,item_id,payload,state,created_at,sent_at) VALUES('migration_pairing',?1,?2,?3,?4,?5)",
                    params![id, payload, state, created, sent],
                )
                .unwrap();
            }
        }
        let mut o = Outbox::open(&p).unwrap();
        let s = o.stats().unwrap();
        assert_eq!((s.pending, s.sent, s.dead_letters), (1, 1, 1));
        assert_eq!(
            s.oldest_pending.unwrap().to_rfc3339(),
            "2026-01-03T00:00:00+00:00",
            "the oldest pending item, not the oldest item"
        );
        let plan = |o: &Outbox, sql: &str| -> String {
            let mut st = o.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = st.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let due = "SELECT seq FROM items WHERE state='pending' AND next_attempt_at<=1 AND seq>0 ORDER BY seq LIMIT 9";
        assert!(plan(&o, due).contains("items_pending_seq"), "{}", plan(&o, due));
        let oldest = "SELECT MIN(created_at) FROM items WHERE state='pending'";
        assert!(
            plan(&o, oldest).contains("items_pending_created"),
            "{}",
            plan(&o, oldest)
        );
        let prune = "DELETE FROM items WHERE state='sent' AND sent_at<'x'";
        assert!(plan(&o, prune).contains("items_sent_at"), "{}", plan(&o, prune));
        let dead = "SELECT seq FROM items WHERE state='rejected' ORDER BY seq";
        assert!(plan(&o, dead).contains("items_rejected_seq"), "{}", plan(&o, dead));
        // the states move through the new indexes
        o.mark_sent(&["c"]).unwrap();
        assert!(o.due(10, now_ms()).unwrap().is_empty());
        assert_eq!(o.requeue().unwrap(), 1);
        let due: Vec<_> = o.due(10, now_ms()).unwrap().into_iter().map(|p| p.item_id).collect();
        assert_eq!(due, ["b"]);
        let pruned = o
            .prune(
                Utc::now() + chrono::Duration::days(1),
                Utc::now() - chrono::Duration::days(1),
            )
            .unwrap();
        assert_eq!(pruned.sent_items, 2);
    }

    #[test]
    fn one_ack_statement_marks_only_the_pending_items_of_a_big_batch() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&d.path().join("o.db")).unwrap();
        let ids: Vec<String> = (0..500).map(|i| format!("id-{i}")).collect();
        let items: Vec<_> = ids.iter().map(|i| item(i)).collect();
        o.commit_file("h", "f.csv", &items).unwrap();
        o.mark_rejected("id-7", "bad").unwrap();
        let mut refs: Vec<&str> = ids[..400].iter().map(String::as_str).collect();
        refs.push("not-queued");
        refs.push("id-0"); // twice in one answer
        o.mark_sent(&refs).unwrap();
        o.mark_sent(&[]).unwrap();
        let s = o.stats().unwrap();
        assert_eq!(
            (s.pending, s.sent, s.dead_letters),
            (100, 399, 1),
            "a dead letter stays one"
        );
        let attempts: i64 = o
            .conn
            .query_row("SELECT attempts FROM items WHERE item_id='id-0'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(attempts, 1, "an id listed twice is acknowledged once");
        let first = o.due(1, now_ms()).unwrap();
        assert_eq!(first[0].item_id, "id-400");
    }

    #[test]
    fn migration_6_drops_the_per_row_counter_trigger_and_the_counts_still_follow_every_transition() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.db");
        {
            let mut c = Connection::open(&p).unwrap();
            migrate(&mut c, &MIGRATIONS[..5]).unwrap();
            for (id, state) in [("a", "pending"), ("b", "pending"), ("c", "sent"), ("d", "rejected")] {
                let payload = serde_json::to_string(&item(id).payload).unwrap();
                c.execute(
                    "INSERT INTO items(kind,item_id,payload,state,created_at) VALUES('migration_pairing',?1,?2,?3,'2026-01-01T00:00:00.000Z')",
                    params![id, payload, state],
                )
                .unwrap();
            }
            // a version-5 counter off by one (what the recount repairs)
            c.execute("UPDATE item_counts SET n=n+1 WHERE state='sent'", [])
                .unwrap();
        }
        let mut o = Outbox::open(&p).unwrap();
        let triggers: Vec<String> = o
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type='trigger' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(triggers, ["items_count_del", "items_count_ins"]);
        let counts = |o: &Outbox| {
            let s = o.stats().unwrap();
            (s.pending, s.sent, s.dead_letters)
        };
        assert_eq!(counts(&o), (2, 1, 1));
        o.mark_sent(&["a", "c"]).unwrap();
        assert_eq!(counts(&o), (1, 2, 1), "only the pending one moves");
        o.mark_rejected("c", "late refusal").unwrap();
        o.mark_rejected("d", "again").unwrap();
        o.mark_rejected("nope", "no such item").unwrap();
        assert_eq!(counts(&o), (1, 1, 2));
        assert_eq!(o.requeue().unwrap(), 2);
        assert_eq!(counts(&o), (3, 1, 0));
        assert_eq!(o.resend_acknowledged("B", |n| format!("{n}")).unwrap(), 1);
        assert_eq!(counts(&o), (4, 0, 0));
    }

    #[test]
    fn migration_3_counts_an_existing_version_2_outbox() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.db");
        {
            let mut c = Connection::open(&p).unwrap();
            migrate(&mut c, &MIGRATIONS[..2]).unwrap();
            c.execute_batch(
                "INSERT INTO items(kind,item_id,payload,state,created_at) VALUES
                 ('receipt','a','{}','pending','2026-01-01T00:00:00.000Z'),
                 ('receipt','b','{}','sent','2026-01-01T00:00:00.000Z'),
                 ('receipt','c','{}','sent','2026-01-01T00:00:00.000Z'),
                 ('receipt','d','{}','rejected','2026-01-01T00:00:00.000Z');",
            )
            .unwrap();
        }
        let o = Outbox::open(&p).unwrap();
        let s = o.stats().unwrap();
        assert_eq!((s.pending, s.sent, s.dead_letters), (1, 2, 1));
    }

    /// What `recover::salvage_items` reads from a damaged outbox is this schema: the items still
    /// waiting, oldest first.
    #[test]
    fn salvage_reads_the_waiting_items_of_an_outbox() {
        use crate::recover::salvage_items;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        let mut o = Outbox::open(&db).unwrap();
        for id in ["a", "b", "c"] {
            o.enqueue(&item(id)).unwrap();
        }
        o.mark_sent(&["b"]).unwrap();
        drop(o);
        let got = salvage_items(&db);
        assert_eq!(got, vec![item("a"), item("c")], "sent items are not taken again");
    }

    /// Another process (a CLI `redeem` offline) queues items while the agent rewrites the copy
    /// after acknowledgements: an item whose `enqueue` returned is in the copy at once, never only
    /// after the agent's next rewrite (the rewrite holds the outbox's write lock from its query to
    /// its rename, so the other process's commit, and the append after it, fall before or after).
    #[test]
    fn an_item_queued_by_another_process_during_a_rewrite_of_the_copy_is_in_it() {
        use crate::sync::unsent;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        let copy = unsent::path_for(&db);
        Outbox::open(&db).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let agent = {
            let (db, done) = (db.clone(), done.clone());
            std::thread::spawn(move || {
                let mut o = Outbox::open(&db).unwrap();
                let mut rewrites = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = format!("agent-{rewrites}");
                    assert!(o.enqueue(&item(&id)).unwrap());
                    o.mark_sent(&[id.as_str()]).unwrap(); // acknowledged: the copy is rewritten
                    rewrites += 1;
                    // (a pause as between two answers of the server: without it this loop takes
                    // the lock back at once and the CLI's inserts wait out SQLite's busy back-off)
                    std::thread::sleep(std::time::Duration::from_micros(300));
                }
                rewrites
            })
        };
        let mut cli = Outbox::open(&db).unwrap();
        for i in 0..150 {
            let id = format!("cli-{i}");
            assert!(cli.enqueue(&item(&id)).unwrap());
            let held: Vec<String> = unsent::read(&copy)
                .unwrap()
                .items
                .into_iter()
                .map(|it| it.item_id)
                .collect();
            if !held.contains(&id) {
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                agent.join().unwrap();
                panic!("{id} was queued but is not in the copy (a rewrite crossed its append): {held:?}");
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let rewrites = agent.join().unwrap();
        assert!(rewrites > 10, "the agent rewrote the copy {rewrites} times only");
        // (an append that came after a rewrite which had the item already is a second line of
        // it: harmless, the server dedupes by id, and the next tidy takes it out)
        cli.tidy_unsent();
        let held = unsent::read(&copy).unwrap().items;
        assert_eq!(
            held.len(),
            150,
            "the CLI's 150 items wait, the agent's were acknowledged"
        );
    }

    /// The items that are no receipt file have a second copy beside the outbox while they wait:
    /// written when queued, rewritten without what the server acknowledged, moved aside with a
    /// damaged outbox and read back from there.
    #[test]
    fn waiting_items_that_are_no_receipt_have_a_copy_that_goes_aside_with_a_damaged_outbox() {
        use crate::sync::unsent;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        let copy = unsent::path_for(&db);
        assert_eq!(copy.file_name().unwrap(), "outbox.db-unsent");
        let mut o = Outbox::open(&db).unwrap();
        assert_eq!(o.unsent_path(), copy);
        for id in ["a", "b", "c"] {
            assert!(o.enqueue(&item(id)).unwrap());
        }
        assert!(
            !o.enqueue(&item("a")).unwrap(),
            "the same id is not queued (nor copied) twice"
        );
        assert_eq!(
            unsent::read(&copy).unwrap().items,
            vec![item("a"), item("b"), item("c")]
        );
        // acknowledged: out of the copy; a dead letter still waits (for a requeue)
        o.mark_sent(&["b"]).unwrap();
        o.write_acks(
            &AckBatch {
                rejected: vec![("c", "refused".into())],
                ..Default::default()
            },
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(unsent::read(&copy).unwrap().items, vec![item("a"), item("c")]);
        // the copy is rewritten from the index of the few waiting non-receipt rows
        let plan: String = o
            .conn
            .query_row(&format!("EXPLAIN QUERY PLAN {WAITING_OTHER}"), [], |r| r.get(3))
            .unwrap();
        assert!(plan.contains("items_waiting_other"), "{plan}");
        // an append that crossed a rewrite (another process) is put right at the next tidy
        unsent::rewrite(
            &copy,
            &[unsent::line("a", &serde_json::to_string(&item("a").payload).unwrap()).unwrap()],
        )
        .unwrap();
        o.tidy_unsent();
        assert_eq!(unsent::read(&copy).unwrap().items, vec![item("a"), item("c")]);
        // as many lines as items waiting, but not the same items: put right too
        let line_of = |id: &str| unsent::line(id, &serde_json::to_string(&item(id).payload).unwrap()).unwrap();
        unsent::rewrite(&copy, &[line_of("a"), line_of("b")]).unwrap();
        o.tidy_unsent();
        assert_eq!(unsent::read(&copy).unwrap().items, vec![item("a"), item("c")]);
        // the server lost what it acknowledged: "b" waits again, and is in the copy again
        o.resend_acknowledged("new-server", |n| format!("{n} again")).unwrap();
        assert_eq!(unsent::read(&copy).unwrap().items.len(), 3);
        drop(o);
        // a torn last line (power cut while appending) is named, the others read
        unsent::append(&copy, "{\"item_id\":\"d\",\"payl").unwrap();
        let aside = crate::recover::set_aside(&db).unwrap();
        assert!(!copy.exists(), "the copy went with the damaged outbox");
        let read = unsent::read(&unsent::path_for(&aside)).unwrap();
        assert_eq!(read.items, vec![item("a"), item("b"), item("c")]);
        assert_eq!(read.bad.len(), 1, "{:?}", read.bad);
        assert!(read.bad[0].starts_with("line 4: "), "{:?}", read.bad);
        // an outbox deleted by hand: a new one queues what its copy holds
        let mut o = Outbox::open(&db).unwrap();
        o.enqueue(&item("f")).unwrap();
        drop(o);
        for f in ["outbox.db", "outbox.db-wal", "outbox.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let mut o = Outbox::open(&db).unwrap();
        assert_eq!(o.due(10, now_ms()).unwrap().len(), 1);
        assert_eq!(unsent::read(&copy).unwrap().items, vec![item("f")], "copied once");
        o.mark_sent(&["f"]).unwrap();
        drop(o);
        // nothing waiting: no copy at all
        let mut o = Outbox::open(&db).unwrap();
        o.enqueue(&item("e")).unwrap();
        o.mark_sent(&["e"]).unwrap();
        assert!(!copy.exists());
        assert_eq!(unsent::contents(&copy).unwrap(), None);
    }
}
