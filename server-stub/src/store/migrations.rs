//! The schema of both backends, from one list: each migration is the SQL for SQLite and for
//! PostgreSQL, written once where the two agree ([`Migration::same`]) and twice only where the
//! dialects differ (integer widths, auto-increment, JSON functions). The number applied is kept
//! per database (`PRAGMA user_version` / the `schema_version` table). Append, never edit.

/// One schema step.
pub struct Migration {
    pub sqlite: &'static str,
    pub pg: &'static str,
}

impl Migration {
    /// A step whose SQL is portable (the same text on both backends).
    pub const fn same(sql: &'static str) -> Migration {
        Migration { sqlite: sql, pg: sql }
    }
}

pub const MIGRATIONS: &[Migration] = &[
    // 1: initial schema
    Migration {
        sqlite: r#"
    CREATE TABLE program (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE tills (
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        revoked_at TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (store_id, till_id)
    );
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        parent_id TEXT,
        customer TEXT NOT NULL,
        state TEXT NOT NULL,
        change_seq INTEGER NOT NULL
    );
    CREATE INDEX customers_change ON customers(change_seq);
    CREATE INDEX customers_parent ON customers(parent_id);
    CREATE TABLE cards (
        number TEXT PRIMARY KEY,
        customer_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'replaced')),
        reason TEXT,
        replaced_by TEXT,
        issued_store TEXT,
        issued_at TEXT
    );
    CREATE INDEX cards_customer ON cards(customer_id);
    CREATE INDEX cards_issued ON cards(issued_at);
    CREATE TABLE receipts (
        id TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        pos_receipt_no TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        business_day TEXT NOT NULL,
        card TEXT,
        account_id TEXT,
        total TEXT NOT NULL,
        turnover TEXT NOT NULL,
        points_credited TEXT NOT NULL,
        campaign TEXT,
        effect TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at TEXT NOT NULL
    );
    CREATE INDEX receipts_pos ON receipts(store_id, till_id, pos_receipt_no);
    CREATE INDEX receipts_day ON receipts(business_day);
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        payload_hash TEXT NOT NULL,
        result TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE migration_codes (
        code TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        used_by_card TEXT,
        used_at TEXT
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cause TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    "#,
        pg: r#"
    CREATE TABLE program (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL,
        snapshot TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE tills (
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        revoked_at TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (store_id, till_id)
    );
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        parent_id TEXT,
        customer TEXT NOT NULL,
        state TEXT NOT NULL,
        change_seq BIGINT NOT NULL
    );
    CREATE INDEX customers_change ON customers(change_seq);
    CREATE INDEX customers_parent ON customers(parent_id);
    CREATE TABLE cards (
        number TEXT PRIMARY KEY,
        customer_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'replaced')),
        reason TEXT,
        replaced_by TEXT,
        issued_store TEXT,
        issued_at TEXT
    );
    CREATE INDEX cards_customer ON cards(customer_id);
    CREATE INDEX cards_issued ON cards(issued_at);
    CREATE TABLE receipts (
        rowid BIGSERIAL NOT NULL,
        id TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        pos_receipt_no TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        business_day TEXT NOT NULL,
        card TEXT,
        account_id TEXT,
        total TEXT NOT NULL,
        turnover TEXT NOT NULL,
        points_credited TEXT NOT NULL,
        campaign TEXT,
        effect TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at TEXT NOT NULL
    );
    CREATE INDEX receipts_pos ON receipts(store_id, till_id, pos_receipt_no);
    CREATE INDEX receipts_day ON receipts(business_day);
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        payload_hash TEXT NOT NULL,
        result TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE migration_codes (
        code TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        used_by_card TEXT,
        used_at TEXT
    );
    CREATE TABLE messages (
        id BIGSERIAL PRIMARY KEY,
        cause TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
        -- the change feed's sequence (assigned in commit order, see store/pg.rs)
    CREATE SEQUENCE change_seq;
    "#,
    },
    // 2: returns point at their original, so partial returns reverse cumulatively
    Migration {
        sqlite: r#"
    ALTER TABLE receipts ADD COLUMN original_id TEXT;
    UPDATE receipts SET original_id = json_extract(payload, '$.original.receipt_id')
        WHERE json_extract(payload, '$.original.receipt_id') IS NOT NULL;
    CREATE INDEX receipts_original ON receipts(original_id);
    "#,
        pg: r#"
    ALTER TABLE receipts ADD COLUMN original_id TEXT;
    UPDATE receipts SET original_id = payload::jsonb #>> '{original,receipt_id}'
        WHERE payload::jsonb #>> '{original,receipt_id}' IS NOT NULL;
    CREATE INDEX receipts_original ON receipts(original_id);
    "#,
    },
    // 3: the points ledger (balance == sum of entries; existing balances become opening entries),
    // redemptions, points preloaded on prize cards
    Migration {
        sqlite: r#"
    CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        cause_id TEXT NOT NULL,
        store_id TEXT,
        till_id TEXT,
        points TEXT NOT NULL,
        balance_after TEXT NOT NULL,
        note TEXT
    );
    CREATE INDEX ledger_account ON ledger(account_id, seq);
    INSERT INTO ledger (account_id, at, kind, cause_id, points, balance_after)
        SELECT id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'opening', id,
               json_extract(state, '$.points_balance'), json_extract(state, '$.points_balance')
        FROM customers WHERE CAST(json_extract(state, '$.points_balance') AS REAL) <> 0;
    CREATE TABLE redemptions (
        id TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        account_id TEXT NOT NULL,
        card TEXT NOT NULL,
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        points TEXT NOT NULL,
        value TEXT NOT NULL,
        reward TEXT NOT NULL,
        code TEXT NOT NULL,
        offline INTEGER NOT NULL,
        requested_at TEXT NOT NULL,
        business_day TEXT NOT NULL,
        created_at TEXT NOT NULL,
        voided_at TEXT,
        matched_receipt TEXT,
        matched_at TEXT
    );
    CREATE INDEX redemptions_open ON redemptions(store_id) WHERE voided_at IS NULL AND matched_receipt IS NULL;
    ALTER TABLE cards ADD COLUMN preload_points TEXT;
    "#,
        pg: r#"
    CREATE TABLE ledger (
        seq BIGSERIAL PRIMARY KEY,
        account_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        cause_id TEXT NOT NULL,
        store_id TEXT,
        till_id TEXT,
        points TEXT NOT NULL,
        balance_after TEXT NOT NULL,
        note TEXT
    );
    CREATE INDEX ledger_account ON ledger(account_id, seq);
    INSERT INTO ledger (account_id, at, kind, cause_id, points, balance_after)
        SELECT id, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'opening', id,
               state::jsonb ->> 'points_balance', state::jsonb ->> 'points_balance'
        FROM customers WHERE (state::jsonb ->> 'points_balance')::numeric <> 0;
    CREATE TABLE redemptions (
        id TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        account_id TEXT NOT NULL,
        card TEXT NOT NULL,
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        points TEXT NOT NULL,
        value TEXT NOT NULL,
        reward TEXT NOT NULL,
        code TEXT NOT NULL,
        offline BIGINT NOT NULL,
        requested_at TEXT NOT NULL,
        business_day TEXT NOT NULL,
        created_at TEXT NOT NULL,
        voided_at TEXT,
        matched_receipt TEXT,
        matched_at TEXT
    );
    CREATE INDEX redemptions_open ON redemptions(store_id) WHERE voided_at IS NULL AND matched_receipt IS NULL;
    ALTER TABLE cards ADD COLUMN preload_points TEXT;
    "#,
    },
    // 4: receipt tags ("add purchase to card"), cashier-message acks, unmatched receipts by card
    Migration {
        sqlite: r#"
    CREATE TABLE receipt_tags (
        id TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        store_id TEXT NOT NULL,
        pos_receipt_no TEXT NOT NULL,
        business_day TEXT NOT NULL,
        has_total INTEGER NOT NULL,
        tagged_at TEXT NOT NULL,
        state TEXT NOT NULL,
        receipt_id TEXT,
        note TEXT,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX receipt_tags_pos ON receipt_tags(store_id, pos_receipt_no, business_day);
    CREATE INDEX receipt_tags_waiting ON receipt_tags(state, tagged_at);
    CREATE TABLE message_acks (
        cause TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        card TEXT NOT NULL,
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        shown_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX receipts_card ON receipts(card, business_day);
    "#,
        pg: r#"
    CREATE TABLE receipt_tags (
        id TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        store_id TEXT NOT NULL,
        pos_receipt_no TEXT NOT NULL,
        business_day TEXT NOT NULL,
        has_total BIGINT NOT NULL,
        tagged_at TEXT NOT NULL,
        state TEXT NOT NULL,
        receipt_id TEXT,
        note TEXT,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX receipt_tags_pos ON receipt_tags(store_id, pos_receipt_no, business_day);
    CREATE INDEX receipt_tags_waiting ON receipt_tags(state, tagged_at);
    CREATE TABLE message_acks (
        cause TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        card TEXT NOT NULL,
        store_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        shown_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX receipts_card ON receipts(card, business_day);
    "#,
    },
    // 5: an account's expiring points in a compact column of their own (see store/codec.rs);
    // rows written before keep them in the state JSON until their next write
    Migration::same("ALTER TABLE customers ADD COLUMN expiring TEXT;"),
];
