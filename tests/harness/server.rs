//! A seeded `server-stub serve` on loopback with its own SQLite file, and the server-side CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pg::Backend;
use crate::{bin, fixture, free_port, wait_for, Proc};

/// The store and till of the demo seed (fixtures/seed/demo.json) most tests enrol.
pub const STORE: &str = "CZ-PRG-01";
pub const TILL: &str = "T1";
/// A Luhn-valid card of the demo program, customer "Jiří Dvořák".
pub const DEMO_CARD: &str = "1900000009000018";

/// The admin token `start_server` passes to the server.
pub const TEST_ADMIN_TOKEN: &str = "e2e-admin-token";

/// libfaketime's preload library (package `faketime`, installed by scripts/setup.sh): a process
/// started with `LD_PRELOAD` = this and `FAKETIME` (`+1d`, `@2027-03-01 10:00:00`) sees that clock.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Run `server-stub ARGS…` to completion; panics with its output if it fails.
pub fn server_stub_cmd(args: &[&str]) -> String {
    let out = std::process::Command::new(bin("server-stub"))
        .args(args)
        .output()
        .expect("run server-stub");
    assert!(
        out.status.success(),
        "server-stub {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Seed a database with a fixture (e.g. `fixture("seed/demo.json")`).
pub fn seed_db(db: &Path, fixture_file: &Path) {
    server_stub_cmd(&["seed", "--db", db.to_str().unwrap(), fixture_file.to_str().unwrap()]);
}

/// Issue a till token with the real CLI; returns the token (the last stdout line).
pub fn add_till(db: &Path, store: &str, till: &str) -> String {
    let out = server_stub_cmd(&[
        "till",
        "add",
        "--db",
        db.to_str().unwrap(),
        "--store",
        store,
        "--till",
        till,
    ]);
    out.lines().last().expect("token line").trim().to_string()
}

pub fn revoke_till(db: &Path, store: &str, till: &str) {
    server_stub_cmd(&[
        "till",
        "revoke",
        "--db",
        db.to_str().unwrap(),
        "--store",
        store,
        "--till",
        till,
    ]);
}

/// A running `server-stub serve` on a free loopback port with its own database.
pub struct ServerHandle {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub admin_token: String,
    /// What `--db` gets: the SQLite file, or the PostgreSQL URL (as a path, so the CLI helpers
    /// `add_till(&srv.db, …)` take either).
    pub db: PathBuf,
    pub backend: Backend,
    pub port: u16,
    /// stderr of the server (tracing log), appended across restarts.
    pub log: PathBuf,
    pub proc: Proc,
}

impl ServerHandle {
    /// Kill the server hard (SIGKILL: no graceful shutdown, like a crash).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// An admin call (`SERVER_STUB_ADMIN_TOKEN`) that must succeed; its JSON answer.
    pub fn admin(&self, method: reqwest::Method, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        let mut r = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().unwrap()
    }

    /// `GET /admin/customers/{customer}/ledger`.
    pub fn ledger(&self, customer: &str) -> serde_json::Value {
        self.admin(
            reqwest::Method::GET,
            &format!("/admin/customers/{customer}/ledger"),
            None,
        )
    }

    /// The customer's points balance.
    pub fn balance(&self, customer: &str) -> rust_decimal::Decimal {
        self.ledger(customer)["points_balance"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The customer's ledger entries for which `keep` holds.
    pub fn entries(&self, customer: &str, keep: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        self.ledger(customer)["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    }

    /// Start again on the same port and database (after `kill`).
    pub fn restart(&mut self) {
        self.proc.kill();
        self.proc = spawn_server(&self.db, self.port, &self.log, &[]);
        wait_healthy(&self.url, &self.log);
    }
}

fn spawn_server(db: &Path, port: u16, log: &Path, env: &[(&str, &str)]) -> Proc {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    let mut cmd = std::process::Command::new(bin("server-stub"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--db",
        db.to_str().unwrap(),
    ])
    .env("SERVER_STUB_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
    .env("RUST_LOG", "info")
    .envs(env.iter().copied())
    .stdout(std::process::Stdio::null())
    .stderr(log_file);
    Proc::spawn("server-stub", &mut cmd)
}

fn wait_healthy(url: &str, log: &Path) {
    let client = reqwest::blocking::Client::new();
    let ok = wait_for(Duration::from_secs(20), || {
        client
            .get(format!("{url}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    });
    assert!(
        ok.is_some(),
        "server-stub at {url} did not become healthy; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Seed `dir/server.db` with the demo fixture (`fixtures/seed/demo.json`) and serve it.
pub fn start_server(dir: &Path) -> ServerHandle {
    start_server_with(dir, Some(&fixture("seed/demo.json")))
}

/// Serve `dir/server.db`, seeding it first with `seed` if given.
pub fn start_server_with(dir: &Path, seed: Option<&Path>) -> ServerHandle {
    start_server_on(dir, seed, Backend::Sqlite)
}

/// The database a server on `backend` gets: `dir/server.db`, or a new database of the test
/// cluster (copied from a seeded template when `seed` is given).
pub fn new_database(dir: &Path, seed: Option<&Path>, backend: Backend) -> PathBuf {
    match backend {
        Backend::Sqlite => {
            let db = dir.join("server.db");
            if let Some(s) = seed {
                seed_db(&db, s);
            }
            db
        }
        Backend::Postgres => {
            let c = crate::pg::cluster();
            PathBuf::from(match seed {
                Some(s) => c.new_seeded_db(s),
                None => c.new_db(),
            })
        }
    }
}

/// Serve a database on `backend`, seeding it first with `seed` if given (the log is in `dir`).
pub fn start_server_on(dir: &Path, seed: Option<&Path>, backend: Backend) -> ServerHandle {
    let db = new_database(dir, seed, backend);
    serve_db(dir, &db, backend, "server-stub.log")
}

/// Another `server-stub serve` on a database (several servers on one PostgreSQL database).
pub fn serve_db(dir: &Path, db: &Path, backend: Backend, log_name: &str) -> ServerHandle {
    serve_db_env(dir, db, backend, log_name, &[])
}

/// [`serve_db`] with extra environment variables for the server (e.g. its log format).
pub fn serve_db_env(dir: &Path, db: &Path, backend: Backend, log_name: &str, env: &[(&str, &str)]) -> ServerHandle {
    let db = db.to_path_buf();
    let port = free_port();
    let log = dir.join(log_name);
    let url = format!("http://127.0.0.1:{port}");
    let proc = spawn_server(&db, port, &log, env);
    wait_healthy(&url, &log);
    ServerHandle {
        url,
        admin_token: TEST_ADMIN_TOKEN.to_string(),
        db,
        backend,
        port,
        log,
        proc,
    }
}

/// A read-only connection to a server database (the server may be running).
pub fn server_conn(db: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// One number from the server database (-1 when the query fails).
pub fn server_count(db: &Path, sql: &str) -> i64 {
    server_conn(db).query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

/// End-of-test check for every test that touches points: each account's balance equals the sum
/// of its points ledger (`GET /admin/ledger/check` on the running server).
pub fn assert_ledger_balanced(srv: &ServerHandle) {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/admin/ledger/check", srv.url))
        .bearer_auth(&srv.admin_token)
        .send()
        .expect("ledger check")
        .json()
        .expect("ledger check JSON");
    let m = v["mismatches"].as_array().expect("mismatches");
    assert!(m.is_empty(), "balance != sum(ledger): {m:?}");
}

/// [`assert_ledger_balanced`] read straight from a server database (the server may be running
/// or stopped): every customer's `points_balance` equals the sum of its ledger entries.
pub fn assert_ledger_balanced_db(db: &Path) {
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;
    let c = server_conn(db);
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut st = c.prepare("SELECT account_id, points FROM ledger").unwrap();
    for row in st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (a, p) = row.unwrap();
        *sums.entry(a).or_default() += p.parse::<Decimal>().unwrap();
    }
    let mut st = c
        .prepare("SELECT id, json_extract(state, '$.points_balance') FROM customers")
        .unwrap();
    for row in st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (id, bal) = row.unwrap();
        let bal: Decimal = bal.parse().unwrap();
        let sum = sums.remove(&id).unwrap_or_default();
        assert_eq!(bal, sum, "customer {id}: balance {bal} != sum(ledger) {sum}");
    }
    assert!(
        sums.values().all(|s| s.is_zero()),
        "ledger entries of accounts that do not exist: {sums:?}"
    );
}
