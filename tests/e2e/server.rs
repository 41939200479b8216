//! End-to-end tests of `server-stub`: the real binary on loopback, a real SQLite file, real HTTP.
//! Expected numbers come from the shared rules engine (`protocol::rules`) applied to the seed
//! fixture, plus a hand-computed figure as a cross-check.

use std::path::Path;
use std::sync::{Arc, Barrier};

use e2e::{add_till, assert_ledger_balanced, fixture, revoke_till, Backend, ServerHandle, STORE, TILL};
use protocol::rules::{self, Program};
use protocol::v1::{CustomerState, LineKind, OriginalReceipt, Receipt, ReceiptLine};
use protocol::{CardId, Currency, ReceiptId, StoreId, TillId};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Seeded customers' cards (fixtures/seed/demo.json).
const JIRI: &str = "1900000009000018"; // C000001, Stříbrná, 412.30 points
const VERA_BLOCKED: &str = "1900000009000026"; // C000002, blocked
const TOMAS_OLD: &str = "1900000009000034"; // C000003, replaced by …042
const TOMAS_NEW: &str = "1900000009000042";
const KATERINA_PARENT: &str = "1900000009000059"; // C000004
const MATEJ_SUB: &str = "1900000009000067"; // C000005, sub-card of C000004
const ONDREJ: &str = "1900000009000083"; // C000008, 4 850 CZK this month: 150 short of Stříbrná
const PRINTED_1: &str = "1900000009001016"; // unassigned printed cards
const PRINTED_2: &str = "1900000009001024";

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn seed_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("seed/demo.json")).unwrap()).unwrap()
}

fn demo_program() -> Program {
    serde_json::from_value(seed_json()["program"].clone()).unwrap()
}

fn seeded_state(customer_id: &str) -> CustomerState {
    let seed = seed_json();
    let c = seed["customers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer"]["id"] == customer_id)
        .unwrap();
    serde_json::from_value(c.get("state").cloned().unwrap_or(json!({"points_balance": "0"}))).unwrap()
}

struct Api {
    url: String,
    token: String,
    admin: String,
    http: Client,
}

impl Api {
    fn new(srv: &ServerHandle, store: &str, till: &str) -> Api {
        Api {
            url: srv.url.clone(),
            token: add_till(&srv.db, store, till),
            admin: srv.admin_token.clone(),
            http: Client::new(),
        }
    }

    fn post_raw(&self, path: &str, body: Vec<u8>, ct: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap();
        let s = r.status();
        (s, r.json().unwrap_or(Value::Null))
    }

    fn sync(&self, batch: &Value) -> (StatusCode, Value) {
        self.post_raw("/v1/sync", serde_json::to_vec(batch).unwrap(), "application/json")
    }

    fn sync_ok(&self, batch: &Value) -> Vec<Value> {
        let (s, v) = self.sync(batch);
        assert_eq!(s, StatusCode::OK, "{v}");
        v["acks"].as_array().unwrap().clone()
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        let s = r.status();
        (s, r.json().unwrap_or(Value::Null))
    }

    fn quote(&self, card: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/cards/{card}/quote"));
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    fn balance(&self, card: &str) -> Decimal {
        let q = self.quote(card);
        d(q["quote"]["points_balance"]
            .as_str()
            .unwrap_or_else(|| panic!("no quote in {q}")))
    }

    fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rq = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().unwrap();
        let s = r.status();
        (s, r.json().unwrap_or(Value::Null))
    }

    fn messages(&self, kind: &str) -> Vec<Value> {
        let (s, v) = self.admin(reqwest::Method::GET, &format!("/admin/messages?kind={kind}"), None);
        assert_eq!(s, StatusCode::OK, "{v}");
        v["messages"].as_array().unwrap().clone()
    }
}

fn line(sku: Option<&str>, name: &str, category: Option<&str>, qty: &str, price: &str, kind: LineKind) -> ReceiptLine {
    let quantity = d(qty);
    ReceiptLine {
        sku: sku.map(str::to_string),
        name: name.into(),
        category: category.map(str::to_string),
        quantity,
        unit_price: d(price),
        line_total: quantity * d(price),
        vat_rate: Some(d("21")),
        kind,
    }
}

/// A Monday-morning receipt from CZ-PRG-01/T1 (the weekend campaign does not apply; the
/// cosmetics campaign does).
fn receipt(no: &str, card: Option<&str>, lines: Vec<ReceiptLine>) -> Receipt {
    let (s, t) = (StoreId::from(STORE), TillId::from(TILL));
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:15:00+01:00").unwrap();
    Receipt {
        id: ReceiptId::derive(&s, &t, no, &at),
        store_id: s,
        till_id: t,
        pos_receipt_no: no.into(),
        issued_at: at,
        currency: Currency::CZK,
        total: lines.iter().map(|l| l.line_total).sum(),
        card: card.map(|c| CardId::normalise(c).unwrap()),
        original: None,
        lines,
        vat: vec![],
    }
}

/// Shampoo (drogerie 20 %), lipstick (kosmetika: campaign 30 %), cigarettes (SKU with 0 %),
/// bread (default 10 %): 25.98 + 59.70 + 0 + 3.55 = 89.23 points, turnover 484.40.
fn mixed_receipt(no: &str, card: Option<&str>) -> Receipt {
    receipt(
        no,
        card,
        vec![
            line(
                Some("8590001"),
                "Šampon heřmánkový 250 ml",
                Some("drogerie"),
                "1",
                "129.90",
                LineKind::Sale,
            ),
            line(
                Some("8590002"),
                "Rtěnka Růžová",
                Some("kosmetika"),
                "1",
                "199.00",
                LineKind::Sale,
            ),
            line(
                Some("8594000000019"),
                "Cigarety",
                Some("tabák"),
                "1",
                "120.00",
                LineKind::Sale,
            ),
            line(None, "Chléb kmínový", None, "1", "35.50", LineKind::Sale),
        ],
    )
}

fn receipt_item(r: &Receipt) -> Value {
    json!({"item_id": r.id.0, "type": "receipt", "body": r})
}

fn batch(items: Vec<Value>) -> Value {
    json!({"version": "v1", "store_id": STORE, "till_id": TILL, "items": items})
}

fn results(acks: &[Value]) -> Vec<String> {
    acks.iter().map(|a| a["result"].as_str().unwrap().to_string()).collect()
}

fn expected_balance(customer: &str, receipts: &[&Receipt]) -> Decimal {
    let p = demo_program();
    let mut st = seeded_state(customer);
    for r in receipts {
        let eff = rules::evaluate_receipt(&p, r);
        st = rules::apply_effect(&p, &st, &eff, r.issued_at.date_naive()).0;
    }
    st.points_balance
}

use e2e::LIBFAKETIME;

/// The seeded demo server with its clock set by libfaketime (`FAKETIME` syntax, e.g.
/// `@2027-03-01 10:00:00`, or `+400d`).
fn start_server_faked(dir: &Path, faketime: &str, seed: bool) -> ServerHandle {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run scripts/setup.sh (package faketime)"
    );
    let db = dir.join("server.db");
    if seed {
        e2e::seed_db(&db, &fixture("seed/demo.json"));
    }
    let port = e2e::free_port();
    let log = dir.join("server-stub.log");
    let mut cmd = std::process::Command::new(e2e::bin("server-stub"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--db",
        db.to_str().unwrap(),
    ])
    .env("SERVER_STUB_ADMIN_TOKEN", e2e::TEST_ADMIN_TOKEN)
    .env("LD_PRELOAD", LIBFAKETIME)
    .env("FAKETIME", faketime)
    .env("FAKETIME_DONT_RESET", "1")
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    let proc = e2e::Proc::spawn("server-stub", &mut cmd);
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let up = (0..200).any(|_| {
        let ok = client
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ok
    });
    assert!(
        up,
        "faked server did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    ServerHandle {
        url,
        admin_token: e2e::TEST_ADMIN_TOKEN.to_string(),
        db,
        backend: e2e::Backend::Sqlite,
        port,
        log,
        proc,
    }
}

fn setup() -> (tempfile::TempDir, ServerHandle, Api) {
    setup_on(Backend::Sqlite)
}

/// The demo-seeded server on `backend` and a till API of the demo store.
fn setup_on(backend: Backend) -> (tempfile::TempDir, ServerHandle, Api) {
    let dir = tempfile::tempdir().unwrap();
    let srv = e2e::start_server_on(dir.path(), Some(&fixture("seed/demo.json")), backend);
    let api = Api::new(&srv, STORE, TILL);
    (dir, srv, api)
}

/// A test body run against both backends, as `NAME::sqlite` and `NAME::postgres` (the latter on
/// the test process's throw-away PostgreSQL cluster, `e2e::pg`).
macro_rules! on_both {
    (fn $name:ident($b:ident: Backend) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($b: Backend) $body
            #[test]
            fn sqlite() {
                body(Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                if e2e::need_postgres() {
                    body(Backend::Postgres)
                }
            }
        }
    };
}

#[test]
fn the_server_runs_without_transparent_huge_pages() {
    // src/os.rs: zeroing a fresh 2 MiB huge page for each new region of the allocator's heap cost
    // the ingest ≈ 13 % of its CPU (README → Performance). The kernel shows the process's flag.
    let dir = tempfile::tempdir().unwrap();
    let srv = e2e::start_server(dir.path());
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.proc.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled line in /proc/PID/status:\n{status}"));
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

on_both! {
fn same_batch_twice_is_applied_once(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let r1 = mixed_receipt("1001", Some(JIRI));
    let r2 = receipt(
        "1002",
        None,
        vec![line(None, "Rohlík", None, "10", "3.90", LineKind::Sale)],
    );
    let b = batch(vec![receipt_item(&r1), receipt_item(&r2)]);
    assert_eq!(results(&api.sync_ok(&b)), ["applied", "applied"]);
    assert_eq!(results(&api.sync_ok(&b)), ["duplicate", "duplicate"]);
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &[&r1]));
    assert_eq!(api.balance(JIRI), d("501.53"), "412.30 seeded + 89.23 (hand-computed)");
    assert_ledger_balanced(&srv);
}
}

on_both! {
fn an_overflowing_receipt_is_rejected_alone_and_the_rest_of_the_batch_applies(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let r1 = mixed_receipt("1101", Some(JIRI));
    // Every value within the wire schema (≤ 15 integer digits), but the item lines net to
    // 0.000000000001 and a receipt-level line of +999999999999999 makes the discount factor
    // ~10^27: line value × factor × coefficient leaves the decimal range (about 7.9·10^28).
    let big = d("999999999999999");
    let mut huge = receipt(
        "1102",
        Some(JIRI),
        vec![
            line(None, "A", None, "1", "999999999999999", LineKind::Sale),
            line(None, "B", None, "1", "-999999999999998.999999999999", LineKind::Sale),
            line(None, "Sleva", None, "1", "999999999999999", LineKind::Discount),
        ],
    );
    huge.total = big + d("0.000000000001");
    let r3 = receipt(
        "1103",
        Some(JIRI),
        vec![line(None, "Rohlík", None, "10", "3.90", LineKind::Sale)],
    );
    let b = batch(vec![receipt_item(&r1), receipt_item(&huge), receipt_item(&r3)]);
    let acks = api.sync_ok(&b);
    assert_eq!(results(&acks), ["applied", "rejected", "applied"], "{acks:?}");
    assert_eq!(acks[1]["code"], "overflow", "{acks:?}");
    let reason = acks[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("items[1].body.lines[0].line_total: 999999999999999"),
        "{reason}"
    );
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &[&r1, &r3]));
    // The server is still healthy and answers the same batch per item again.
    let h: Value = Client::new()
        .get(format!("{}/healthz", srv.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(results(&api.sync_ok(&b)), ["duplicate", "rejected", "duplicate"]);
}
}

on_both! {
fn points_applied_once_and_return_reverses_them(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let sale = mixed_receipt("2001", Some(JIRI));
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&sale)]))), ["applied"]);
    // Return of the lipstick, referencing the original by POS number, no card on the return:
    // the account the sale credited is debited with the points the sale gave for that line.
    let mut ret = receipt(
        "2002",
        None,
        vec![line(
            Some("8590002"),
            "Rtěnka Růžová",
            Some("kosmetika"),
            "-1",
            "199.00",
            LineKind::Return,
        )],
    );
    ret.original = Some(OriginalReceipt {
        receipt_id: None,
        pos_receipt_no: Some("2001".into()),
    });
    let b = batch(vec![receipt_item(&ret)]);
    assert_eq!(results(&api.sync_ok(&b)), ["applied"]);
    assert_eq!(results(&api.sync_ok(&b)), ["duplicate"]);

    let p = demo_program();
    let eff_sale = rules::evaluate_receipt(&p, &sale);
    let eff_ret = rules::evaluate_return(&p, &sale, &eff_sale, &ret);
    let mut st = seeded_state("C000001");
    st = rules::apply_effect(&p, &st, &eff_sale, sale.issued_at.date_naive()).0;
    st = rules::apply_effect(&p, &st, &eff_ret, ret.issued_at.date_naive()).0;
    assert_eq!(api.balance(JIRI), st.points_balance);
    assert_eq!(
        api.balance(JIRI),
        d("441.83"),
        "501.53 - 59.70 for the returned lipstick"
    );
    assert_ledger_balanced(&srv);
}
}

/// ARCHITECTURE.md: an `applied` ack means credited. Another till of the store asks for the
/// card's quote the moment each answer is in (no wait, no retry): every purchase is in it.
fn applied_means_credited(sender: &Api, asker: &Api) {
    assert_eq!(
        asker.balance(JIRI),
        expected_balance("C000001", &[]),
        "the seeded balance"
    );
    let mut sent = Vec::new();
    for n in 0..12 {
        let r = mixed_receipt(&format!("{}", 7100 + n), Some(JIRI));
        assert_eq!(results(&sender.sync_ok(&batch(vec![receipt_item(&r)]))), ["applied"]);
        sent.push(r);
        let want = expected_balance("C000001", &sent.iter().collect::<Vec<_>>());
        assert_eq!(asker.balance(JIRI), want, "the quote right after receipt {n}'s ack");
    }
}

on_both! {
fn an_applied_ack_means_credited_for_the_next_quote_at_another_till(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    applied_means_credited(&api, &Api::new(&srv, STORE, "T2"));
    assert_ledger_balanced(&srv);
}
}

/// The same across two server processes on one PostgreSQL database: the till's receipt goes to
/// one, the other till's quotes to the other (which has read the account before: no cached
/// state of it may answer).
#[test]
fn an_applied_ack_means_credited_for_a_quote_from_another_server_process() {
    if !e2e::need_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = e2e::new_database(dir.path(), Some(&fixture("seed/demo.json")), Backend::Postgres);
    let a = e2e::serve_db(dir.path(), &db, Backend::Postgres, "server-a.log");
    let b = e2e::serve_db(dir.path(), &db, Backend::Postgres, "server-b.log");
    applied_means_credited(&Api::new(&a, STORE, TILL), &Api::new(&b, STORE, "T2"));
}

on_both! {
fn partial_returns_add_up_to_exactly_the_original_points(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let before = api.balance(JIRI);
    // 3 lipsticks; returned one at a time in three separate return receipts.
    let sale = receipt(
        "2101",
        Some(JIRI),
        vec![line(
            Some("8590002"),
            "Rtěnka Růžová",
            Some("kosmetika"),
            "3",
            "66.71",
            LineKind::Sale,
        )],
    );
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&sale)]))), ["applied"]);
    let p = demo_program();
    let credited = rules::evaluate_receipt(&p, &sale).points_delta;
    assert!(credited > Decimal::ZERO);
    let ret = |no: &str| {
        let mut r = receipt(
            no,
            None,
            vec![line(
                Some("8590002"),
                "Rtěnka Růžová",
                Some("kosmetika"),
                "-1",
                "66.71",
                LineKind::Return,
            )],
        );
        r.original = Some(OriginalReceipt {
            receipt_id: Some(sale.id.clone()),
            pos_receipt_no: None,
        });
        r
    };
    // The case this guards: reversing each third on its own does not add up to what was credited.
    let one_third = rules::evaluate_return(&p, &sale, &rules::evaluate_receipt(&p, &sale), &ret("x")).points_delta;
    assert_ne!(
        one_third * d("3"),
        -credited,
        "pick a price whose points do not split into exact thirds"
    );
    for no in ["2102", "2103", "2104"] {
        assert_eq!(
            results(&api.sync_ok(&batch(vec![receipt_item(&ret(no))]))),
            ["applied"],
            "return {no}"
        );
    }
    assert_eq!(
        api.balance(JIRI),
        before,
        "sale {credited} points, then three thirds back: exactly the start balance"
    );
    // A fourth return of the same item (more than was bought) reverses nothing more.
    assert_eq!(
        results(&api.sync_ok(&batch(vec![receipt_item(&ret("2105"))]))),
        ["applied"]
    );
    assert_eq!(api.balance(JIRI), before);
    assert_ledger_balanced(&srv);
}
}

#[test]
fn campaign_points_lapse_on_the_server_after_their_expiry() {
    // The server's clock (libfaketime) is the day after the sale; expiry never runs ahead of it.
    let dir = tempfile::tempdir().unwrap();
    let mut srv = start_server_faked(dir.path(), "@2026-11-24 10:00:00", true);
    let api = Api::new(&srv, STORE, TILL);
    let p = demo_program();
    let before = api.balance(JIRI);
    // Lipstick in November: the kosmetika campaign's points expire after 90 days.
    let sale = receipt(
        "2201",
        Some(JIRI),
        vec![line(
            Some("8590002"),
            "Rtěnka Růžová",
            Some("kosmetika"),
            "1",
            "199.00",
            LineKind::Sale,
        )],
    );
    let eff = rules::evaluate_receipt(&p, &sale);
    let expiring = eff.expiring.clone().expect("campaign points expire");
    assert!(expiring.points > Decimal::ZERO);
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&sale)]))), ["applied"]);
    assert_eq!(api.balance(JIRI), before + eff.points_delta);
    // The server's clock moves past the expiry (restart with a later clock).
    srv.kill();
    let srv = start_server_faked(dir.path(), "@2027-03-01 10:00:00", false);
    let api = Api::new(&srv, STORE, TILL);
    // Bread the day after the expiry: the lapsed campaign points leave the balance, the bread earns.
    let mut later = receipt(
        "2202",
        Some(JIRI),
        vec![line(None, "Chléb kmínový", None, "1", "35.50", LineKind::Sale)],
    );
    later.issued_at = chrono::DateTime::parse_from_rfc3339(&format!(
        "{}T09:00:00+01:00",
        expiring.expires_on + chrono::Days::new(1)
    ))
    .unwrap();
    later.id = ReceiptId::derive(&later.store_id, &later.till_id, &later.pos_receipt_no, &later.issued_at);
    let bread = rules::evaluate_receipt(&p, &later).points_delta;
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&later)]))), ["applied"]);
    assert_eq!(api.balance(JIRI), before + eff.points_delta - expiring.points + bread);
    assert_ledger_balanced(&srv);
}

on_both! {
fn accounts_written_by_the_previous_schema_keep_their_expiring_points(backend: Backend) {
    // A database of the previous schema (4): without the `expiring` column, the account's
    // expiring points in its state JSON. Made from a seeded database by undoing migration 5.
    let dir = tempfile::tempdir().unwrap();
    let db = e2e::server::new_database(dir.path(), Some(&fixture("seed/demo.json")), backend);
    let old_points = json!([
        {"points": "1.50", "expires_on": "2027-02-21"},
        {"points": "2.25", "expires_on": "2027-02-21"},
        {"points": "0.75", "expires_on": "2027-01-05"}
    ]);
    let with_points = |state: &str| {
        let mut v: Value = serde_json::from_str(state).unwrap();
        v["expiring_points"] = old_points.clone();
        v.to_string()
    };
    match backend {
        Backend::Sqlite => {
            let c = rusqlite::Connection::open(&db).unwrap();
            let state: String = c
                .query_row("SELECT state FROM customers WHERE id = 'C000001'", [], |r| r.get(0))
                .unwrap();
            c.execute_batch("ALTER TABLE customers DROP COLUMN expiring; PRAGMA user_version = 4;")
                .unwrap();
            c.execute("UPDATE customers SET state = ?1 WHERE id = 'C000001'", [with_points(&state)])
                .unwrap();
        }
        Backend::Postgres => {
            let url = db.to_str().unwrap();
            let mut c = e2e::pg::cluster().client(e2e::pg::db_name(url));
            let state: String = c
                .query_one("SELECT state FROM customers WHERE id = 'C000001'", &[])
                .unwrap()
                .get(0);
            c.batch_execute("ALTER TABLE customers DROP COLUMN expiring; UPDATE schema_version SET version = 4;")
                .unwrap();
            c.execute("UPDATE customers SET state = $1 WHERE id = 'C000001'", &[&with_points(&state)])
                .unwrap();
        }
    }
    // The server migrates it and reads the account as it was.
    let srv = e2e::server::serve_db(dir.path(), &db, backend, "server-stub.log");
    let api = Api::new(&srv, STORE, TILL);
    let feed_state = |api: &Api| -> Value {
        let (s, page) = api.get("/v1/changes?limit=100");
        assert_eq!(s, StatusCode::OK, "{page}");
        let change = page["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["customer"]["id"] == "C000001")
            .cloned()
            .expect("C000001 in the change feed");
        change["state"].clone()
    };
    assert_eq!(feed_state(&api)["expiring_points"], old_points);
    // A campaign sale's expiring points lapse on a day the old ones have (2027-02-21): they join
    // that day's last entry, and the list is in expiry order; written in the compact form.
    let sale = receipt(
        "2301",
        Some(JIRI),
        vec![line(Some("8590002"), "Rtěnka", Some("kosmetika"), "1", "199.00", LineKind::Sale)],
    );
    let eff = rules::evaluate_receipt(&demo_program(), &sale);
    let new = eff.expiring.clone().expect("campaign points expire");
    if new.expires_on.to_string() != "2027-02-21" {
        panic!("the campaign's points expire on {} (the test expects 2027-02-21)", new.expires_on);
    }
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&sale)]))), ["applied"]);
    let joined = (Decimal::new(225, 2) + new.points).to_string();
    let want = json!([
        {"points": "0.75", "expires_on": "2027-01-05"},
        {"points": "1.50", "expires_on": "2027-02-21"},
        {"points": joined, "expires_on": "2027-02-21"}
    ]);
    assert_eq!(feed_state(&api)["expiring_points"], want);
    let (state, expiring): (String, Option<String>) = match backend {
        Backend::Sqlite => e2e::server::server_conn(&db)
            .query_row("SELECT state, expiring FROM customers WHERE id = 'C000001'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap(),
        Backend::Postgres => {
            let row = e2e::pg::cluster()
                .client(e2e::pg::db_name(db.to_str().unwrap()))
                .query_one("SELECT state, expiring FROM customers WHERE id = 'C000001'", &[])
                .unwrap();
            (row.get(0), row.get(1))
        }
    };
    assert!(!state.contains("expiring"), "{state}");
    let compact = format!("2027-01-05=0.75;2027-02-21=1.50,{joined}");
    assert_eq!(expiring.as_deref(), Some(compact.as_str()));
    assert_ledger_balanced(&srv);
}
}

on_both! {
fn same_batch_concurrently_on_two_connections(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let receipts: Vec<Receipt> = (0..20)
        .map(|i| mixed_receipt(&format!("3{i:03}"), Some(JIRI)))
        .collect();
    let b = Arc::new(batch(receipts.iter().map(receipt_item).collect()));
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (b, barrier, url, token) = (b.clone(), barrier.clone(), api.url.clone(), api.token.clone());
            std::thread::spawn(move || {
                // A client each: two separate TCP connections.
                let http = Client::new();
                barrier.wait();
                let r = http
                    .post(format!("{url}/v1/sync"))
                    .bearer_auth(token)
                    .json(&*b)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                r.json::<Value>().unwrap()["acks"].as_array().unwrap().clone()
            })
        })
        .collect();
    let acks: Vec<Vec<Value>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!((acks[0].len(), acks[1].len()), (receipts.len(), receipts.len()));
    for (i, (a, b)) in acks[0].iter().zip(&acks[1]).enumerate() {
        let mut pair = [a["result"].as_str().unwrap(), b["result"].as_str().unwrap()];
        pair.sort();
        assert_eq!(pair, ["applied", "duplicate"], "item {i}");
    }
    let refs: Vec<&Receipt> = receipts.iter().collect();
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &refs));
    assert_ledger_balanced(&srv);
}
}

on_both! {
fn server_restarted_between_send_and_retry(backend: Backend) {
    let (_dir, mut srv, api) = setup_on(backend);
    let r = mixed_receipt("4001", Some(JIRI));
    let b = batch(vec![receipt_item(&r)]);
    assert_eq!(results(&api.sync_ok(&b)), ["applied"]);
    // The till never saw the ack (say), the server crashes, comes back, the till retries.
    srv.kill();
    srv.restart();
    assert_eq!(results(&api.sync_ok(&b)), ["duplicate"]);
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &[&r]));
    // Same id, different payload: refused, never overwritten.
    let mut changed = r.clone();
    changed.total += d("1");
    let acks = api.sync_ok(&batch(vec![receipt_item(&changed)]));
    assert_eq!(acks[0]["result"], "rejected");
    assert_eq!(acks[0]["code"], "conflict");
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &[&r]));
}
}

on_both! {
fn a_receipt_sent_again_in_another_layout_is_a_duplicate_and_a_changed_one_a_conflict(backend: Backend) {
    // The server stores and hashes each receipt's text as it came; the same receipt laid out
    // otherwise (another key order, whitespace) must still be a duplicate, never a conflict.
    let (_dir, _srv, api) = setup_on(backend);
    let r = mixed_receipt("4101", Some(JIRI));
    let b = batch(vec![receipt_item(&r)]);
    // serde_json::Value writes the keys sorted: not the receipt's field order.
    assert_eq!(results(&api.sync_ok(&b)), ["applied"]);
    let pretty = serde_json::to_vec_pretty(&b).unwrap();
    let (s, v) = api.post_raw("/v1/sync", pretty, "application/json");
    assert_eq!((s, results(v["acks"].as_array().unwrap())), (StatusCode::OK, vec!["duplicate".to_string()]));
    let typed = protocol::v1::SyncBatch {
        version: "v1".into(),
        store_id: STORE.into(),
        till_id: TILL.into(),
        items: vec![protocol::v1::SyncItem {
            item_id: r.id.0.clone(),
            payload: protocol::v1::SyncPayload::Receipt(r.clone()),
        }],
    };
    let (s, v) = api.post_raw("/v1/sync", serde_json::to_vec(&typed).unwrap(), "application/json");
    assert_eq!((s, results(v["acks"].as_array().unwrap())), (StatusCode::OK, vec!["duplicate".to_string()]));
    // The total one haléř more is another payload: a conflict.
    let mut text = serde_json::to_string(&typed).unwrap();
    let total = format!("\"total\":\"{}\"", r.total);
    assert!(text.contains(&total), "{text}");
    text = text.replacen(&total, &format!("\"total\":\"{}\"", r.total + d("0.01")), 1);
    let (s, v) = api.post_raw("/v1/sync", text.into_bytes(), "application/json");
    assert_eq!(s, StatusCode::OK);
    assert_eq!((v["acks"][0]["result"].as_str(), v["acks"][0]["code"].as_str()), (Some("rejected"), Some("conflict")));
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &[&r]));
}
}

#[test]
fn the_server_binary_allocates_with_mimalloc() {
    // src/main.rs sets it as the global allocator (the ingest's CPU, see README → Performance);
    // the library's own messages are in the binary only when it is linked in.
    let exe = std::fs::read(e2e::bin("server-stub")).expect("the server binary");
    let needle = b"mimalloc: ";
    assert!(
        exe.windows(needle.len()).any(|w| w == needle),
        "server-stub is not linked with mimalloc"
    );
}

on_both! {
fn cross_store_is_403_and_writes_nothing(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let r = mixed_receipt("5001", Some(JIRI));
    let mut b = batch(vec![receipt_item(&r)]);
    b["store_id"] = json!("CZ-BRN-01");
    let (s, v) = api.sync(&b);
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["field"], "store_id");
    // Envelope right, one item for another store.
    let mut other = mixed_receipt("5002", Some(JIRI));
    other.store_id = StoreId::from("CZ-BRN-01");
    let (s, v) = api.sync(&batch(vec![receipt_item(&r), receipt_item(&other)]));
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["field"], "items[1].body.store_id");
    // Another till of the same store.
    let mut b = batch(vec![receipt_item(&r)]);
    b["till_id"] = json!("T2");
    assert_eq!(api.sync(&b).0, StatusCode::FORBIDDEN);
    assert_eq!(api.balance(JIRI), d("412.30"), "nothing was applied");
    // The right till of the other store may write its own receipts.
    let brno = Api::new(&srv, "CZ-BRN-01", "T1");
    let mut own = mixed_receipt("5003", None);
    own.store_id = StoreId::from("CZ-BRN-01");
    own.id = ReceiptId::derive(&own.store_id, &own.till_id, "5003", &own.issued_at);
    let mut b = batch(vec![receipt_item(&own)]);
    b["store_id"] = json!("CZ-BRN-01");
    assert_eq!(results(&brno.sync_ok(&b)), ["applied"]);
}
}

on_both! {
fn revoked_or_unknown_token_is_401(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    assert_eq!(api.get("/v1/rules").0, StatusCode::OK);
    revoke_till(&srv.db, STORE, TILL);
    let (s, v) = api.get("/v1/rules");
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("revoked"), "{v}");
    assert_eq!(api.sync(&batch(vec![])).0, StatusCode::UNAUTHORIZED);
    let stranger = Api {
        token: "not-a-token".into(),
        ..Api::new(&srv, "X", "Y")
    };
    assert_eq!(stranger.get("/v1/changes").0, StatusCode::UNAUTHORIZED);
    let r = Client::new().get(format!("{}/v1/rules", srv.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().unwrap()["field"], "Authorization");
    // A new token for the till works again.
    let again = Api::new(&srv, STORE, TILL);
    assert_eq!(again.get("/v1/rules").0, StatusCode::OK);
    // Admin endpoints need the admin token, not a till token.
    let r = Client::new()
        .get(format!("{}/admin/messages", srv.url))
        .bearer_auth(&again.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
}

on_both! {
fn tier_upgrade_message_recorded_once(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    // Ondřej has 4 850 CZK this month; Stříbrná starts at 5 000.
    let r1 = receipt(
        "6001",
        Some(ONDREJ),
        vec![line(
            None,
            "Prací prášek",
            Some("drogerie"),
            "1",
            "249.00",
            LineKind::Sale,
        )],
    );
    let r2 = receipt(
        "6002",
        Some(ONDREJ),
        vec![line(None, "Mýdlo", Some("drogerie"), "2", "39.90", LineKind::Sale)],
    );
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&r1)]))), ["applied"]);
    assert_eq!(
        results(&api.sync_ok(&batch(vec![receipt_item(&r1), receipt_item(&r2)]))),
        ["duplicate", "applied"]
    );
    let msgs: Vec<Value> = api
        .messages("tier_upgrade")
        .into_iter()
        .filter(|m| m["customer_id"] == "C000008")
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["cause"], "tier_upgrade:C000008:Stříbrná");
    assert_eq!(msgs[0]["channel"], "email");
    assert!(msgs[0]["text"].as_str().unwrap().contains("Stříbrná"));
    assert_eq!(api.quote(ONDREJ)["quote"]["tier"], "Stříbrná");
}
}

on_both! {
fn card_reissue_moves_the_balance(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let before = api.balance(JIRI);
    let (s, v) = api.admin(reqwest::Method::POST, &format!("/admin/cards/{JIRI}/reissue"), None);
    assert_eq!(s, StatusCode::OK, "{v}");
    let new_card = v["new_card"].as_str().unwrap().to_string();
    assert_ne!(new_card, JIRI);
    assert!(
        CardId::parse(&new_card, &demo_program().card_policy).is_ok(),
        "prefix + Luhn: {new_card}"
    );
    assert_eq!(d(v["points_balance"].as_str().unwrap()), before);
    let old = api.quote(JIRI);
    assert_eq!(old["kind"], "replaced");
    assert_eq!(old["new_card"], new_card.as_str());
    assert_eq!(d(old["quote"]["points_balance"].as_str().unwrap()), before);
    let new = api.quote(&new_card);
    assert_eq!(new["kind"], "customer");
    assert_eq!(d(new["quote"]["points_balance"].as_str().unwrap()), before);
    // The new card earns into the same account.
    let r = mixed_receipt("7001", Some(&new_card));
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&r)]))), ["applied"]);
    assert_eq!(api.balance(&new_card), expected_balance("C000001", &[&r]));
    // Reissuing a replaced card is a conflict; an unknown card is 404.
    assert_eq!(
        api.admin(reqwest::Method::POST, &format!("/admin/cards/{JIRI}/reissue"), None)
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.admin(reqwest::Method::POST, "/admin/cards/1900000000000000/reissue", None)
            .0,
        StatusCode::NOT_FOUND
    );
    assert_ledger_balanced(&srv);
}
}

on_both! {
fn quote_kinds_are_distinct(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    assert_eq!(api.quote(JIRI)["kind"], "customer");
    assert_eq!(api.quote(JIRI)["source"], "online");
    let b = api.quote(VERA_BLOCKED);
    assert_eq!(b["kind"], "blocked");
    assert!(b["reason"].as_str().unwrap().contains("ztráta"));
    let r = api.quote(TOMAS_OLD);
    assert_eq!(r["kind"], "replaced");
    assert_eq!(r["new_card"], TOMAS_NEW);
    assert_eq!(r["quote"]["display_name"], "Tomáš Černý");
    assert_eq!(api.quote("1900-0000-0000-0000")["kind"], "unknown_card");
    assert_eq!(api.quote(PRINTED_1)["kind"], "unknown_card", "printed, not yet issued");
    let (s, v) = api.get("/v1/cards/19x0/quote");
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("card")));
}
}

on_both! {
fn blocked_card_earns_nothing_and_sub_card_earns_into_parent(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let before_vera = seeded_state("C000002").points_balance;
    let rb = mixed_receipt("8001", Some(VERA_BLOCKED));
    let rs = mixed_receipt("8002", Some(MATEJ_SUB));
    assert_eq!(
        results(&api.sync_ok(&batch(vec![receipt_item(&rb), receipt_item(&rs)]))),
        ["applied", "applied"]
    );
    let (_, cust) = api.admin(reqwest::Method::GET, "/admin/customers/C000002", None);
    assert_eq!(d(cust["state"]["points_balance"].as_str().unwrap()), before_vera);
    let parent = expected_balance("C000004", &[&rs]);
    assert_eq!(api.balance(KATERINA_PARENT), parent);
    assert_eq!(api.balance(MATEJ_SUB), parent, "a sub-card shows the parent account");
    // Block via admin: the card stops earning.
    let (s, v) = api.admin(
        reqwest::Method::POST,
        &format!("/admin/cards/{KATERINA_PARENT}/block"),
        Some(json!({"reason": "zneužití"})),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(api.quote(KATERINA_PARENT)["kind"], "blocked");
    let r3 = mixed_receipt("8003", Some(KATERINA_PARENT));
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&r3)]))), ["applied"]);
    assert_eq!(api.balance(MATEJ_SUB), parent);
    assert_ledger_balanced(&srv);
}
}

fn registration(request_id: &str, card: &str, name: Value, consent: bool) -> Value {
    json!({"item_id": request_id, "type": "registration", "body": {
        "request_id": request_id, "card": card, "name": name,
        "contact": {"email": "eliska.horakova@example.cz", "address": {"street": "Nádražní 7", "postcode": "120 00", "city": "Praha"}},
        "consents": {"program_rules": consent, "marketing": false},
        "birthday": "1999-11-25", "store_id": STORE, "till_id": TILL}})
}

on_both! {
fn registration_is_idempotent_and_needs_consent(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    let (_, feed) = api.get("/v1/changes");
    let cursor = feed["cursor"].as_str().unwrap().to_string();
    let person = json!({"type": "person", "first_name": "Eliška", "surname": "Horáková"});
    let reg = registration("reg-1", PRINTED_1, person.clone(), true);
    assert_eq!(results(&api.sync_ok(&batch(vec![reg.clone()]))), ["applied"]);
    assert_eq!(results(&api.sync_ok(&batch(vec![reg]))), ["duplicate"]);
    let changed = registration("reg-1", PRINTED_2, person.clone(), true);
    let acks = api.sync_ok(&batch(vec![changed]));
    assert_eq!(
        (acks[0]["result"].as_str(), acks[0]["code"].as_str()),
        (Some("rejected"), Some("conflict"))
    );
    let acks = api.sync_ok(&batch(vec![registration("reg-2", PRINTED_2, person, false)]));
    assert_eq!(acks[0]["code"], "consent_required");
    assert!(acks[0]["reason"].as_str().unwrap().contains("consents.program_rules"));
    let company = json!({"type": "company", "company_name": "Květinářství Šípek s.r.o."});
    let acks = api.sync_ok(&batch(vec![registration("reg-3", PRINTED_2, company, true)]));
    assert_eq!(results(&acks), ["applied"]);
    let q = api.quote(PRINTED_1);
    assert_eq!(
        (q["kind"].as_str(), q["quote"]["display_name"].as_str()),
        (Some("customer"), Some("Eliška Horáková"))
    );
    assert_eq!(
        api.quote(PRINTED_2)["quote"]["display_name"],
        "Květinářství Šípek s.r.o."
    );
    // Card taken.
    let acks = api.sync_ok(&batch(vec![registration(
        "reg-4",
        JIRI,
        json!({"type": "person", "first_name": "A", "surname": "B"}),
        true,
    )]));
    assert_eq!(acks[0]["code"], "card_taken");
    // Welcome messages, one per new customer; the feed after the cursor carries both.
    let welcome = api.messages("welcome");
    assert_eq!(welcome.len(), 2, "{welcome:?}");
    let (_, feed) = api.get(&format!("/v1/changes?since={cursor}"));
    let names: Vec<String> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"]["name"].to_string())
        .collect();
    assert_eq!(names.len(), 2, "{feed}");
    assert!(names[0].contains("Horáková") && names[1].contains("Šípek"), "{names:?}");
    let (_, feed2) = api.get(&format!("/v1/changes?since={}", feed["cursor"].as_str().unwrap()));
    assert_eq!(feed2["changes"].as_array().unwrap().len(), 0);
}
}

on_both! {
fn migration_code_pairing_moves_the_old_discount(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    let pairing = |rid: &str, card: &str, code: &str| {
        json!({"item_id": rid, "type": "migration_pairing",
               "body": {"request_id": rid, "card": card, "code": code, "store_id": STORE, "till_id": TILL}})
    };
    assert_eq!(api.quote(PRINTED_1)["kind"], "unknown_card");
    assert_eq!(
        results(&api.sync_ok(&batch(vec![pairing("p-1", PRINTED_1, "KLUB-4821")]))),
        ["applied"]
    );
    assert_eq!(
        results(&api.sync_ok(&batch(vec![pairing("p-1", PRINTED_1, "KLUB-4821")]))),
        ["duplicate"]
    );
    let q = api.quote(PRINTED_1);
    assert_eq!(q["kind"], "customer");
    assert_eq!(q["quote"]["display_name"], "Zdeňka Procházková");
    assert_eq!(
        d(q["quote"]["discount_percent"].as_str().unwrap()),
        d("7"),
        "the old spreadsheet discount"
    );
    let acks = api.sync_ok(&batch(vec![
        pairing("p-2", PRINTED_2, "KLUB-4821"),
        pairing("p-3", PRINTED_2, "NEZNÁMÝ"),
    ]));
    assert_eq!(acks[0]["code"], "code_used");
    assert_eq!(acks[1]["code"], "unknown_code");
    assert_eq!(
        api.quote(PRINTED_2)["kind"],
        "unknown_card",
        "rejected pairings leave nothing behind"
    );
}
}

on_both! {
fn an_anonymous_card_paired_by_migration_code_brings_its_points_to_the_customer_once(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let (s, v) = api.admin(
        reqwest::Method::POST,
        "/admin/cards/batch",
        Some(json!({ "count": 2, "anonymous": true })),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    let anon = v["cards"][0].as_str().unwrap().to_string();
    let other = v["cards"][1].as_str().unwrap().to_string();
    // The anonymous card earns into its own account first.
    let r = mixed_receipt("ANON-1", Some(&anon));
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&r)]))), ["applied"]);
    let earned = api.balance(&anon);
    assert_eq!(earned, d("89.23"));
    // The batch's first anonymous account (ids count up from A000001 on a fresh server).
    let anon_owner = "A000001";
    let (s, c) = api.admin(reqwest::Method::GET, &format!("/admin/customers/{anon_owner}"), None);
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["cards"][0]["number"], anon.as_str(), "{c}");
    let ledger = |customer: &str| -> Value {
        let (s, l) = api.admin(reqwest::Method::GET, &format!("/admin/customers/{customer}/ledger"), None);
        assert_eq!(s, StatusCode::OK, "{l}");
        l
    };
    let balance_of = |customer: &str| d(ledger(customer)["points_balance"].as_str().unwrap());
    let zdenka_before = balance_of("C000007");
    let pairing = |rid: &str, card: &str| {
        json!({"item_id": rid, "type": "migration_pairing",
               "body": {"request_id": rid, "card": card, "code": "KLUB-4821", "store_id": STORE, "till_id": TILL}})
    };
    // A registered customer's card stays refused (only anonymous accounts merge).
    let acks = api.sync_ok(&batch(vec![pairing("pa-0", JIRI)]));
    assert_eq!(acks[0]["code"], "card_taken", "{acks:?}");
    assert_eq!(results(&api.sync_ok(&batch(vec![pairing("pa-1", &anon)]))), ["applied"]);
    assert_eq!(results(&api.sync_ok(&batch(vec![pairing("pa-1", &anon)]))), ["duplicate"]);
    let q = api.quote(&anon);
    assert_eq!(q["quote"]["display_name"], "Zdeňka Procházková", "{q}");
    assert_eq!(d(q["quote"]["discount_percent"].as_str().unwrap()), d("7"));
    assert_eq!(balance_of("C000007"), zdenka_before + earned, "the points came once");
    assert_eq!(balance_of(anon_owner), Decimal::ZERO);
    // Booked on both sides as a points transfer.
    let moved = |customer: &str| -> Vec<Decimal> {
        ledger(customer)["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "family_merge")
            .map(|e| d(e["points"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(moved("C000007"), [earned]);
    assert_eq!(moved(anon_owner), [-earned]);
    // The code is used now: another anonymous card cannot take it.
    let acks = api.sync_ok(&batch(vec![pairing("pa-2", &other)]));
    assert_eq!(acks[0]["code"], "code_used", "{acks:?}");
    assert_eq!(balance_of("C000007"), zdenka_before + earned);
    assert_ledger_balanced(&srv);
}
}

on_both! {
fn rules_etag_and_change_feed_pages(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let r = api
        .http
        .get(format!("{}/v1/rules", srv.url))
        .bearer_auth(&api.token)
        .send()
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let snap: Value = r.json().unwrap();
    assert_eq!(etag, format!("\"{}\"", snap["version"]));
    let r = api
        .http
        .get(format!("{}/v1/rules", srv.url))
        .bearer_auth(&api.token)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // A new program version changes the ETag.
    let mut program = snap["program"].clone();
    program["default_points_percent"] = json!("12");
    assert_eq!(
        api.admin(reqwest::Method::PUT, "/admin/program", Some(program)).0,
        StatusCode::OK
    );
    let r = api
        .http
        .get(format!("{}/v1/rules", srv.url))
        .bearer_auth(&api.token)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    // Pages of 3 over the 8 seeded customers, cursor strictly increasing.
    let mut since = String::new();
    let mut seen = 0;
    let mut last = -1i64;
    loop {
        let q = if since.is_empty() {
            "/v1/changes?limit=3".to_string()
        } else {
            format!("/v1/changes?limit=3&since={since}")
        };
        let (s, page) = api.get(&q);
        assert_eq!(s, StatusCode::OK, "{page}");
        seen += page["changes"].as_array().unwrap().len();
        let c: i64 = page["cursor"].as_str().unwrap().parse().unwrap();
        assert!(c > last);
        last = c;
        since = c.to_string();
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen, 8);
    let (_, feed) = api.get("/v1/changes");
    let matej = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer"]["id"] == "C000005")
        .unwrap()
        .clone();
    assert_eq!(
        matej["state"]["points_balance"], "2140.00",
        "a sub-card carries the parent account's state"
    );
    let (s, v) = api.get("/v1/changes?since=abc");
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("since")));
    let (s, v) = api.get("/v1/changes?snice=1");
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("snice")));
}
}

on_both! {
fn bad_input_is_4xx_naming_the_field_and_writes_nothing(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    // Malformed JSON.
    let (s, v) = api.post_raw("/v1/sync", b"{\"version\": \"v1\", ".to_vec(), "application/json");
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json")),
        "{v}"
    );
    // Over the 1 MiB limit.
    let (s, v) = api.post_raw("/v1/sync", vec![b' '; 1024 * 1024 + 10], "application/json");
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")),
        "{v}"
    );
    // Unknown field inside a receipt.
    let r = mixed_receipt("9001", Some(JIRI));
    let mut item = receipt_item(&r);
    item["body"]["totl"] = json!("1");
    let (s, v) = api.sync(&batch(vec![item]));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "unknown_field");
    assert!(v["field"].as_str().unwrap().ends_with("totl"), "{v}");
    // Wrong type for a field of the envelope.
    let (s, v) = api.sync(&json!({"version": "v1", "store_id": STORE, "till_id": TILL, "items": 5}));
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("items")),
        "{v}"
    );
    let (s, v) = api.sync(&json!({"version": "v9", "store_id": STORE, "till_id": TILL, "items": []}));
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("version")),
        "{v}"
    );
    let (s, _) = api.post_raw("/v1/sync", serde_json::to_vec(&batch(vec![])).unwrap(), "text/plain");
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Per-item problems: rejected acks naming the field; the good receipt in between applies.
    let mut eur = mixed_receipt("9002", Some(JIRI));
    eur.currency = Currency::EUR;
    let good = mixed_receipt("9003", Some(JIRI));
    let negative = receipt(
        "9004",
        Some(JIRI),
        vec![line(
            Some("8590002"),
            "Rtěnka",
            Some("kosmetika"),
            "-1",
            "199.00",
            LineKind::Sale,
        )],
    );
    let mut orphan = receipt(
        "9005",
        Some(JIRI),
        vec![line(
            Some("8590002"),
            "Rtěnka",
            Some("kosmetika"),
            "-1",
            "199.00",
            LineKind::Return,
        )],
    );
    orphan.original = Some(OriginalReceipt {
        receipt_id: Some(ReceiptId("0".repeat(32))),
        pos_receipt_no: None,
    });
    // Issued a month ago: its original will not come any more.
    orphan.issued_at = (chrono::Local::now() - chrono::Duration::days(30)).fixed_offset();
    orphan.id = ReceiptId::derive(
        &orphan.store_id,
        &orphan.till_id,
        &orphan.pos_receipt_no,
        &orphan.issued_at,
    );
    let acks = api.sync_ok(&batch(vec![
        receipt_item(&eur),
        receipt_item(&good),
        receipt_item(&negative),
        receipt_item(&orphan),
    ]));
    assert_eq!(results(&acks), ["rejected", "applied", "rejected", "rejected"]);
    assert_eq!(acks[0]["code"], "wrong_currency");
    assert!(acks[0]["reason"].as_str().unwrap().contains("body.currency"));
    assert_eq!(acks[2]["code"], "return_without_reference");
    assert!(acks[2]["reason"].as_str().unwrap().contains("body.lines[0].quantity"));
    assert_eq!(acks[3]["code"], "unknown_original");
    assert!(acks[3]["reason"].as_str().unwrap().contains("body.original.receipt_id"));
    assert_eq!(
        api.balance(JIRI),
        expected_balance("C000001", &[&good]),
        "only the good receipt counted"
    );
    // Rejected receipts left no row: the turnover report has exactly the good one.
    let (s, rep) = api.admin(
        reqwest::Method::GET,
        "/admin/reports/turnover?from=2026-11-23&to=2026-11-23",
        None,
    );
    assert_eq!(s, StatusCode::OK, "{rep}");
    assert_eq!(rep["rows"][0]["receipts"], 1);
    assert_eq!(rep["rows"][0]["turnover"], "484.4");
    // Admin body errors too.
    let (s, v) = api.admin(reqwest::Method::POST, "/admin/cards/batch", Some(json!({"count": 0})));
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("count"))
    );
    let (s, v) = api.admin(reqwest::Method::POST, "/admin/cards/batch", Some(json!({"cnt": 3})));
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cnt")),
        "{v}"
    );
}
}

on_both! {
fn admin_card_batch_messages_and_reports(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    let (s, v) = api.admin(reqwest::Method::POST, "/admin/cards/batch", Some(json!({"count": 5})));
    assert_eq!(s, StatusCode::OK, "{v}");
    let cards: Vec<String> = v["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cards.len(), 5);
    let policy = demo_program().card_policy;
    for c in &cards {
        assert!(
            CardId::parse(c, &policy).is_ok(),
            "{c} fits prefix 1900, 16 digits, Luhn"
        );
        assert_eq!(api.quote(c)["kind"], "unknown_card");
    }
    // Birthdays: Ondřej (25 Nov) — recorded once however often the job runs.
    for _ in 0..2 {
        let (s, v) = api.admin(reqwest::Method::POST, "/admin/messages/birthdays?date=2026-11-25", None);
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let b = api.messages("birthday");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["cause"], "birthday:C000008:2026");
    // Reports: JSON and CSV.
    let r = mixed_receipt("9101", Some(JIRI));
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&r)]))), ["applied"]);
    let (s, rank) = api.admin(reqwest::Method::GET, "/admin/reports/points-ranking?limit=2", None);
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rank["rows"][0]["customer_id"], "C000004");
    assert_eq!(rank["rows"][1]["customer_id"], "C000001");
    let (_, bd) = api.admin(
        reqwest::Method::GET,
        "/admin/reports/birthdays?from=2026-11-20&to=2026-12-31",
        None,
    );
    let ids: Vec<&str> = bd["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C000007", "C000008", "C000002", "C000005"]);
    let (_, camp) = api.admin(
        reqwest::Method::GET,
        "/admin/reports/campaigns?from=2026-11-01&to=2026-11-30",
        None,
    );
    assert_eq!(camp["rows"][0]["campaign"], "kosmetika-x3");
    assert_eq!(camp["rows"][0]["points"], "89.23");
    let (_, issued) = api.admin(
        reqwest::Method::GET,
        "/admin/reports/cards-issued?from=2026-11-01&to=2026-11-30",
        None,
    );
    assert_eq!(
        issued["rows"],
        json!([{"store_id": "CZ-PRG-01", "cards": 1}]),
        "Ondřej's card, 1 Nov"
    );
    let csv = Client::new()
        .get(format!(
            "{}/admin/reports/turnover?from=2026-11-23&to=2026-11-23&format=csv",
            srv.url
        ))
        .bearer_auth(&srv.admin_token)
        .send()
        .unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(
        csv.text().unwrap(),
        "store_id,day,receipts,turnover\nCZ-PRG-01,2026-11-23,1,484.4\n"
    );
    assert_eq!(
        api.admin(reqwest::Method::GET, "/admin/reports/nope", None).0,
        StatusCode::NOT_FOUND
    );
}
}

on_both! {
fn healthz_and_openapi_need_no_token(backend: Backend) {
    let (_dir, srv, _api) = setup_on(backend);
    let h: Value = Client::new()
        .get(format!("{}/healthz", srv.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert!(chrono::DateTime::parse_from_rfc3339(h["time"].as_str().unwrap()).is_ok());
    let doc: Value = Client::new()
        .get(format!("{}/openapi.json", srv.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let checked_in: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&e2e::repo_root()).join("server-stub/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc, checked_in, "served document = checked-in copy");
    assert!(doc["paths"]["/v1/sync"]["post"].is_object());
}
}

/// A receipt of `till` issued `at`, with its derived id.
fn receipt_at(till: &str, no: &str, card: Option<&str>, at: chrono::DateTime<chrono::FixedOffset>) -> Receipt {
    let mut r = receipt(
        no,
        card,
        vec![line(None, "Chléb kmínový", None, "2", "35.50", LineKind::Sale)],
    );
    r.till_id = TillId::from(till);
    r.issued_at = at;
    r.id = ReceiptId::derive(&r.store_id, &r.till_id, no, &at);
    r
}

fn batch_of(till: &str, items: Vec<Value>) -> Value {
    json!({"version": "v1", "store_id": STORE, "till_id": till, "items": items})
}

fn return_of(till: &str, no: &str, original: OriginalReceipt, at: chrono::DateTime<chrono::FixedOffset>) -> Receipt {
    let mut r = receipt_at(till, no, None, at);
    r.lines = vec![line(None, "Chléb kmínový", None, "-1", "35.50", LineKind::Return)];
    r.total = r.lines[0].line_total;
    r.original = Some(original);
    r
}

on_both! {
fn a_receipt_from_the_future_is_refused_and_runs_no_expiry(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    let before = api.balance(JIRI);
    let now = chrono::Local::now().fixed_offset();
    // A till whose clock is a year ahead: refused (hours ahead waits: the test above).
    let ahead = receipt_at(TILL, "7001", Some(JIRI), now + chrono::Duration::days(365));
    // Within the documented tolerance (15 minutes): accepted.
    let skewed = receipt_at(TILL, "7002", Some(JIRI), now + chrono::Duration::minutes(5));
    let acks = api.sync_ok(&batch(vec![receipt_item(&ahead), receipt_item(&skewed)]));
    assert_eq!(results(&acks), ["rejected", "applied"], "{acks:?}");
    assert_eq!(acks[0]["code"], "issued_in_future");
    assert!(
        acks[0]["reason"].as_str().unwrap().contains("body.issued_at"),
        "{acks:?}"
    );
    // Only the skewed receipt's points arrived; nothing expired early.
    let p = demo_program();
    let earned = rules::evaluate_receipt(&p, &skewed).points_delta;
    assert_eq!(api.balance(JIRI), before + earned);
}
}

/// A till whose clock (or time zone) is hours ahead: its receipt is neither applied nor refused,
/// it waits (`retry`, saying why) and is taken once the server's clock has passed its time —
/// libfaketime moves the server's clock three hours on. Nobody has to requeue it.
#[test]
fn a_receipt_dated_hours_ahead_waits_for_the_servers_clock_and_is_then_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = start_server_faked(dir.path(), "+0", true);
    let api = Api::new(&srv, STORE, TILL);
    let before = api.balance(JIRI);
    let now = chrono::Local::now().fixed_offset();
    let ahead = receipt_at(TILL, "7021", Some(JIRI), now + chrono::Duration::hours(2));
    let acks = api.sync_ok(&batch(vec![receipt_item(&ahead)]));
    assert_eq!(results(&acks), ["retry"], "{acks:?}");
    let reason = acks[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("issued_in_future") && reason.contains("set the till's clock"),
        "{reason}"
    );
    assert_eq!(api.balance(JIRI), before, "not applied while ahead");
    srv.kill();
    let srv = start_server_faked(dir.path(), "+3h", false);
    let api = Api::new(&srv, STORE, TILL);
    let acks = api.sync_ok(&batch(vec![receipt_item(&ahead)]));
    assert_eq!(results(&acks), ["applied"], "{acks:?}");
    let earned = rules::evaluate_receipt(&demo_program(), &ahead).points_delta;
    assert_eq!(api.balance(JIRI), before + earned);
    assert_ledger_balanced(&srv);
}

on_both! {
fn a_receipt_id_names_one_receipt_of_the_senders_store_and_a_changed_reexport_says_what_changed(backend: Backend) {
    let (_dir, _srv, api) = setup_on(backend);
    let now = chrono::Local::now().fixed_offset() - chrono::Duration::hours(1);
    let r = receipt_at(TILL, "7101", Some(JIRI), now);
    assert_eq!(results(&api.sync_ok(&batch(vec![receipt_item(&r)]))), ["applied"]);
    // Another store's receipt id (derived from store CZ-BRQ-02) sent by this store's till.
    let mut foreign = receipt_at(TILL, "7102", None, now);
    foreign.id = ReceiptId::derive(&StoreId::from("CZ-BRQ-02"), &TillId::from(TILL), "7102", &now);
    let acks = api.sync_ok(&batch(vec![receipt_item(&foreign)]));
    assert_eq!(results(&acks), ["rejected"]);
    assert_eq!(acks[0]["code"], "receipt_id_mismatch");
    // The POS re-exports 7101 with another total: refused, and the reason says what changed.
    let mut changed = r.clone();
    changed.lines[0].quantity = "3".parse().unwrap();
    changed.lines[0].line_total = "106.50".parse().unwrap();
    changed.total = changed.lines[0].line_total;
    let acks = api.sync_ok(&batch(vec![receipt_item(&changed)]));
    assert_eq!(results(&acks), ["rejected"]);
    assert_eq!(acks[0]["code"], "conflict");
    let reason = acks[0]["reason"].as_str().unwrap();
    assert!(reason.contains("total 71.00 → 106.50"), "{reason}");
    assert!(!reason.contains(JIRI), "no card number in a reason: {reason}");
}
}

on_both! {
fn a_return_at_another_till_of_the_store_finds_its_original_and_an_early_return_waits(backend: Backend) {
    let (dir, srv, api1) = setup_on(backend);
    let _ = dir;
    let api2 = Api::new(&srv, STORE, "T2");
    let now = chrono::Local::now().fixed_offset();
    // POS numbering restarted: an old "7201" on T1 (200 days ago, outside the window) and the
    // real original on T1 two days ago.
    let old = receipt_at(TILL, "7201", None, now - chrono::Duration::days(200));
    let orig = receipt_at(TILL, "7201", Some(JIRI), now - chrono::Duration::days(2));
    assert_eq!(
        results(&api1.sync_ok(&batch(vec![receipt_item(&old), receipt_item(&orig)]))),
        ["applied", "applied"]
    );
    let after_sale = api1.balance(JIRI);
    // Returned at T2 by POS number: resolved within the store, the recent one.
    let by_no = OriginalReceipt {
        receipt_id: None,
        pos_receipt_no: Some("7201".into()),
    };
    let ret = return_of("T2", "9201", by_no, now - chrono::Duration::hours(1));
    let acks = api2.sync_ok(&batch_of("T2", vec![receipt_item(&ret)]));
    assert_eq!(results(&acks), ["applied"], "{acks:?}");
    assert!(
        api1.balance(JIRI) < after_sale,
        "the return debited the original's account"
    );
    // A return whose original has not arrived yet: retry (waiting), not a permanent refusal.
    let early = return_of(
        "T2",
        "9202",
        OriginalReceipt {
            receipt_id: None,
            pos_receipt_no: Some("7299".into()),
        },
        now - chrono::Duration::hours(1),
    );
    let acks = api2.sync_ok(&batch_of("T2", vec![receipt_item(&early)]));
    assert_eq!(results(&acks), ["retry"], "{acks:?}");
    assert!(acks[0]["reason"].as_str().unwrap().contains("waiting for the original"));
    // Its original arrives from T1; the resent return is applied.
    let late_orig = receipt_at(TILL, "7299", Some(JIRI), now - chrono::Duration::hours(3));
    assert_eq!(
        results(&api1.sync_ok(&batch(vec![receipt_item(&late_orig)]))),
        ["applied"]
    );
    assert_eq!(
        results(&api2.sync_ok(&batch_of("T2", vec![receipt_item(&early)]))),
        ["applied"]
    );
    // An explicit receipt id of another store is not resolved there.
    let foreign = return_of(
        "T2",
        "9203",
        OriginalReceipt {
            receipt_id: Some(ReceiptId::derive(
                &StoreId::from("CZ-BRQ-02"),
                &TillId::from(TILL),
                "1",
                &now,
            )),
            pos_receipt_no: None,
        },
        now - chrono::Duration::days(30),
    );
    let acks = api2.sync_ok(&batch_of("T2", vec![receipt_item(&foreign)]));
    assert_eq!(acks[0]["code"], "unknown_original", "{acks:?}");
}
}

on_both! {
fn the_change_feed_carries_no_contact_data_and_wrong_migration_codes_are_rate_limited_per_till(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    // The feed has what an offline quote needs, and no e-mail, phone, address or birthday.
    let (s, feed) = api.get("/v1/changes?limit=1000");
    assert_eq!(s, StatusCode::OK, "{feed}");
    let changes = feed["changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        let cust = &c["customer"];
        assert!(
            cust["name"].is_object() && c["cards"].is_array() && c["state"].is_object(),
            "{c}"
        );
        assert_eq!(cust["contact"], json!({}), "{c}");
        assert!(cust.get("birthday").is_none(), "{c}");
    }
    let text = feed.to_string();
    assert!(!text.contains('@'), "no e-mail address in the feed");
    // The admin still sees the contact data.
    let (_, full) = api.admin(reqwest::Method::GET, "/admin/customers/C000001", None);
    assert!(
        full["customer"]["contact"].as_object().is_some_and(|c| !c.is_empty()),
        "{full}"
    );

    // Wrong migration codes: after 10 from one till, its pairings wait (retry) with a clear
    // reason, even with the right code; another till is not affected.
    let pairing = |till: &str, rid: &str, card: &str, code: &str| {
        json!({"item_id": rid, "type": "migration_pairing",
               "body": {"request_id": rid, "card": card, "code": code, "store_id": STORE, "till_id": till}})
    };
    let wrong: Vec<Value> = (0..10)
        .map(|i| pairing(TILL, &format!("w-{i}"), PRINTED_2, &format!("KLUB-{i:04}")))
        .collect();
    let acks = api.sync_ok(&batch(wrong));
    assert!(acks.iter().all(|a| a["code"] == "unknown_code"), "{acks:?}");
    let acks = api.sync_ok(&batch(vec![pairing(TILL, "ok-1", PRINTED_1, "KLUB-4821")]));
    assert_eq!(results(&acks), ["retry"], "{acks:?}");
    assert!(
        acks[0]["reason"].as_str().unwrap().starts_with("too_many_attempts"),
        "{acks:?}"
    );
    let api2 = Api::new(&srv, STORE, "T9");
    let acks = api2.sync_ok(&batch_of("T9", vec![pairing("T9", "ok-2", PRINTED_1, "KLUB-4821")]));
    assert_eq!(results(&acks), ["applied"], "{acks:?}");
}
}

fn server_id(api: &Api) -> String {
    let (s, v) = api.get("/healthz");
    assert_eq!(s, StatusCode::OK, "{v}");
    v["server_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no server_id in {v}"))
        .to_string()
}

/// Copy the database files (the WAL too: the server was killed) from `from` to `to`.
fn copy_db(from: &Path, to: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let (f, t) = (format!("{}{ext}", from.display()), format!("{}{ext}", to.display()));
        let _ = std::fs::remove_file(&t);
        if Path::new(&f).exists() {
            std::fs::copy(&f, &t).unwrap();
        }
    }
}

#[test]
fn a_restored_database_gets_a_new_server_identity_and_takes_the_lost_receipts_once() {
    let (dir, mut srv, api) = setup();
    let id1 = server_id(&api);
    srv.restart();
    assert_eq!(server_id(&api), id1, "a restart keeps the identity");
    // Nightly backup (server stopped), then a day of 20 receipts, acknowledged.
    srv.kill();
    let backup = dir.path().join("backup.db");
    copy_db(&srv.db, &backup);
    srv.restart();
    let now = chrono::Local::now().fixed_offset() - chrono::Duration::hours(2);
    let day: Vec<Receipt> = (0..20)
        .map(|i| {
            receipt_at(
                TILL,
                &format!("80{i:02}"),
                Some(JIRI),
                now + chrono::Duration::minutes(i),
            )
        })
        .collect();
    let items: Vec<Value> = day.iter().map(receipt_item).collect();
    assert!(results(&api.sync_ok(&batch(items.clone())))
        .iter()
        .all(|r| r == "applied"));
    // The server notes its watermark every 5 s; then the disk dies and the backup is restored.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    srv.kill();
    copy_db(&backup, &srv.db);
    srv.restart();
    let id2 = server_id(&api);
    assert_ne!(id2, id1, "a restored database is another server identity");
    // The till notices and resends: all 20 arrive again, once.
    assert!(results(&api.sync_ok(&batch(items.clone())))
        .iter()
        .all(|r| r == "applied"));
    assert!(results(&api.sync_ok(&batch(items))).iter().all(|r| r == "duplicate"));
    srv.restart();
    assert_eq!(server_id(&api), id2);
}

/// Two server-stub processes on one PostgreSQL database behind fault proxies that drop answers
/// after the server committed; 20 tills send overlapping batches (each receipt in two batches)
/// to either server and resend until answered. Every receipt is stored once, booked once, and
/// every balance equals the rules engine's.
#[test]
fn two_servers_on_one_postgres_apply_every_receipt_once() {
    use e2e::proxy::{Fault, Proxy};
    use std::sync::atomic::{AtomicBool, Ordering};
    if !e2e::need_postgres() {
        return;
    }
    const TILLS: usize = 20;
    const RECEIPTS: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let db = e2e::new_database(dir.path(), Some(&fixture("seed/demo.json")), Backend::Postgres);
    let servers = [
        e2e::serve_db(dir.path(), &db, Backend::Postgres, "server-a.log"),
        e2e::serve_db(dir.path(), &db, Backend::Postgres, "server-b.log"),
    ];
    let proxies: Vec<Proxy> = servers
        .iter()
        .map(|s| Proxy::start(format!("127.0.0.1:{}", s.port).parse().unwrap()))
        .collect();
    let cards = [JIRI, TOMAS_NEW, KATERINA_PARENT, ONDREJ];
    let day = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00+01:00").unwrap();
    let tills: Vec<(String, String, Vec<Receipt>)> = (0..TILLS)
        .map(|t| {
            let till = format!("P{t:02}");
            let token = add_till(&db, STORE, &till);
            let receipts = (0..RECEIPTS)
                .map(|i| {
                    let card = cards[(t + i) % cards.len()];
                    let at = day + chrono::Duration::seconds((t * 1000 + i) as i64);
                    receipt_at(&till, &format!("{}", 9000 + i), Some(card), at)
                })
                .collect();
            (till, token, receipts)
        })
        .collect();

    // Faults: each proxy drops answers a third of the time, out of step with the other.
    let done = Arc::new(AtomicBool::new(false));
    let proxies = Arc::new(proxies);
    let flipper = {
        let (done, proxies) = (done.clone(), proxies.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) && n < 3000 {
                for (i, p) in proxies.iter().enumerate() {
                    let drop = (n + i as u64).is_multiple_of(3);
                    p.set(if drop { Fault::DropResponse } else { Fault::Pass });
                }
                std::thread::sleep(std::time::Duration::from_millis(40));
                n += 1;
            }
            for p in proxies.iter() {
                p.set(Fault::Pass);
            }
        })
    };
    let urls: Vec<String> = proxies.iter().map(|p| p.url()).collect();
    let workers: Vec<_> = tills
        .iter()
        .cloned()
        .enumerate()
        .map(|(t, (till, token, receipts))| {
            let urls = urls.clone();
            std::thread::spawn(move || {
                let http = Client::builder()
                    .timeout(std::time::Duration::from_secs(20))
                    .build()
                    .unwrap();
                let mut resent = 0;
                // Windows of 6 receipts moving by 3: every receipt goes in two batches.
                for start in (0..RECEIPTS).step_by(3) {
                    let items: Vec<Value> = receipts[start..(start + 6).min(RECEIPTS)]
                        .iter()
                        .map(receipt_item)
                        .collect();
                    let body = batch_of(&till, items);
                    let mut attempt = 0;
                    loop {
                        let url = &urls[(t + start / 3 + attempt) % urls.len()];
                        let r = http
                            .post(format!("{url}/v1/sync"))
                            .bearer_auth(&token)
                            .json(&body)
                            .send();
                        match r {
                            Ok(r) if r.status() == StatusCode::OK => {
                                let v: Value = r.json().unwrap();
                                for a in v["acks"].as_array().unwrap() {
                                    let res = a["result"].as_str().unwrap();
                                    assert!(res == "applied" || res == "duplicate", "till {till}: {a}");
                                }
                                break;
                            }
                            Ok(r) => panic!("till {till}: {} {}", r.status(), r.text().unwrap_or_default()),
                            Err(_) => {
                                attempt += 1;
                                resent += 1;
                                assert!(attempt < 100, "till {till}: batch at {start} never answered");
                            }
                        }
                    }
                }
                resent
            })
        })
        .collect();
    let resent: usize = workers.into_iter().map(|w| w.join().expect("till thread")).sum();
    done.store(true, Ordering::SeqCst);
    flipper.join().unwrap();
    let dropped: u64 = proxies.iter().map(|p| p.hits(Fault::DropResponse)).sum();
    assert!(
        dropped > 0 && resent > 0,
        "no answer was dropped: the test tested nothing"
    );

    // Every receipt once, one ledger entry each.
    let c = e2e::pg::cluster();
    let mut client = c.client(e2e::pg::db_name(db.to_str().unwrap()));
    let one = |client: &mut postgres::Client, sql: &str| -> i64 { client.query_one(sql, &[]).unwrap().get(0) };
    let total = (TILLS * RECEIPTS) as i64;
    assert_eq!(
        one(&mut client, "SELECT count(*) FROM receipts WHERE till_id LIKE 'P%'"),
        total
    );
    assert_eq!(
        one(&mut client, "SELECT count(*) FROM ledger WHERE kind = 'receipt'"),
        total,
        "one ledger entry per receipt"
    );
    assert_eq!(
        one(
            &mut client,
            "SELECT count(*) FROM (SELECT cause_id FROM ledger WHERE kind = 'receipt' \
             GROUP BY cause_id HAVING count(*) > 1) d"
        ),
        0
    );
    // Balances: what the rules engine gives for each account's receipts, read from both servers.
    let api = Api::new(&servers[0], STORE, "P00");
    let api_b = Api {
        url: servers[1].url.clone(),
        token: api.token.clone(),
        admin: api.admin.clone(),
        http: Client::new(),
    };
    for (card, customer) in [
        (JIRI, "C000001"),
        (TOMAS_NEW, "C000003"),
        (KATERINA_PARENT, "C000004"),
        (ONDREJ, "C000008"),
    ] {
        let mine: Vec<&Receipt> = tills
            .iter()
            .flat_map(|(_, _, rs)| rs.iter())
            .filter(|r| r.card.as_ref().map(|c| c.expose()) == Some(card))
            .collect();
        let want = expected_balance(customer, &mine);
        assert_eq!(api.balance(card), want, "{customer} on server A");
        assert_eq!(api_b.balance(card), want, "{customer} on server B");
    }
    for s in &servers {
        assert_ledger_balanced(s);
    }
    let metrics = api
        .http
        .get(format!("{}/metrics", servers[0].url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let retries = metrics
        .lines()
        .find(|l| l.starts_with("server_stub_db_transaction_retries"))
        .unwrap_or("?")
        .to_string();
    eprintln!("{TILLS} tills x {RECEIPTS} receipts on 2 servers: {dropped} answers dropped, {resent} batches resent; server A {retries}");
}

on_both! {
fn metrics_count_requests_and_every_log_line_of_a_request_names_its_id(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = e2e::new_database(dir.path(), Some(&fixture("seed/demo.json")), backend);
    let srv = e2e::serve_db_env(dir.path(), &db, backend, "server-json.log", &[("SERVER_STUB_LOG_FORMAT", "json")]);
    let api = Api::new(&srv, STORE, TILL);
    // The client's request id is echoed; without one the server makes one.
    let r = api.http.get(format!("{}/healthz", srv.url)).header("x-request-id", "e2e-req-1").send().unwrap();
    assert_eq!(r.headers()["x-request-id"], "e2e-req-1");
    let r = api.http.get(format!("{}/healthz", srv.url)).send().unwrap();
    assert!(r.headers()["x-request-id"].to_str().unwrap().len() >= 32, "a made id: {:?}", r.headers());
    let sale = receipt("8801", Some(JIRI), vec![line(None, "Chléb", None, "1", "35.50", LineKind::Sale)]);
    let r = api
        .http
        .post(format!("{}/v1/sync", srv.url))
        .bearer_auth(&api.token)
        .header("x-request-id", "e2e-req-2")
        .json(&batch(vec![receipt_item(&sale), receipt_item(&sale)]))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Bad token: 401, counted under its route.
    let r = api.http.get(format!("{}/v1/cards/{JIRI}/quote", srv.url)).bearer_auth("nope").send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let m = api.http.get(format!("{}/metrics", srv.url)).send().unwrap();
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let m = m.text().unwrap();
    // /healthz: ours and the harness's readiness polls.
    let healthz = m
        .lines()
        .find_map(|l| l.strip_prefix("server_stub_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} "))
        .unwrap_or_else(|| panic!("no /healthz count in\n{m}"));
    assert!(healthz.parse::<u64>().unwrap() >= 2, "{healthz}");
    for want in [
        "server_stub_http_requests_total{method=\"POST\",route=\"/v1/sync\",status=\"200\"} 1",
        "server_stub_http_requests_total{method=\"GET\",route=\"/v1/cards/{card}/quote\",status=\"401\"} 1",
        // the same receipt twice in one batch: applied, then duplicate
        "server_stub_sync_items_total{result=\"applied\"} 1",
        "server_stub_sync_items_total{result=\"duplicate\"} 1",
        "server_stub_sync_pending 0",
    ] {
        assert!(m.lines().any(|l| l == want), "no {want:?} in\n{m}");
    }
    // PostgreSQL: 16 write connections (--db-pool) + 4 of their own for reads; SQLite: 1 writer + 8 readers.
    let max = if backend == Backend::Postgres { "20" } else { "9" };
    assert!(m.lines().any(|l| l == format!("server_stub_db_connections_max {max}")), "{m}");
    assert!(m.contains("server_stub_http_request_duration_seconds_bucket{le=\"0.005\",route=\"/v1/sync\"}"), "{m}");

    // JSON log lines; each line logged while serving the sync request carries its id.
    let log = std::fs::read_to_string(&srv.log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let of_sync: Vec<&Value> = lines.iter().filter(|l| l["span"]["path"] == "/v1/sync").collect();
    assert!(!of_sync.is_empty(), "no log line of the sync request:\n{log}");
    for l in &of_sync {
        assert_eq!(l["span"]["request_id"], "e2e-req-2", "{l}");
    }
    assert!(lines.iter().any(|l| l["span"]["request_id"] == "e2e-req-1"), "{log}");
}
}

/// Another client holding the database's write side: SQLite's write lock (BEGIN IMMEDIATE), or
/// PostgreSQL's customers table locked against row locks (plain reads still pass).
enum WriteHolder {
    Sqlite(rusqlite::Connection),
    Pg(postgres::Client),
}

impl WriteHolder {
    fn take(backend: Backend, db: &std::path::Path) -> WriteHolder {
        match backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(db).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteHolder::Sqlite(c)
            }
            Backend::Postgres => {
                let mut c = e2e::pg::cluster().client(e2e::pg::db_name(db.to_str().unwrap()));
                c.batch_execute("BEGIN; LOCK TABLE customers IN EXCLUSIVE MODE")
                    .unwrap();
                WriteHolder::Pg(c)
            }
        }
    }

    fn release(self) {
        match self {
            WriteHolder::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            WriteHolder::Pg(mut c) => c.batch_execute("ROLLBACK").unwrap(),
        }
    }
}

on_both! {
fn a_quote_and_a_token_check_answer_while_ingest_waits_for_the_database(backend: Backend) {
    let (_dir, srv, api) = setup_on(backend);
    // Another client holds the database's write side (WriteHolder).
    let holder = WriteHolder::take(backend, &srv.db);
    let sale = receipt("8901", Some(JIRI), vec![line(None, "Chléb", None, "1", "35.50", LineKind::Sale)]);
    let body = batch(vec![receipt_item(&sale)]);
    let (url, token) = (api.url.clone(), api.token.clone());
    let ingest = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let r = Client::new().post(format!("{url}/v1/sync")).bearer_auth(token).json(&body).send().unwrap();
        (r.status(), t0.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(400)); // the sync is waiting now
    let t0 = std::time::Instant::now();
    let q = api.quote(JIRI);
    let quoted = t0.elapsed();
    assert_eq!(q["kind"], "customer", "{q}");
    // The ingest stays held until the rollback below: a quote that waited behind it would not
    // answer at all. 5 s only bounds the test on a loaded machine (speed lives in bench.sh).
    assert!(quoted < std::time::Duration::from_secs(5), "the quote waited {quoted:?} behind ingest");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(!ingest.is_finished(), "the sync did not wait for the held database: the test tests nothing");
    holder.release();
    let (status, took) = ingest.join().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &[&sale]));
}
}

on_both! {
fn sync_batches_over_the_ingest_limit_queue_before_any_work_and_quotes_still_answer(backend: Backend) {
    // One batch worked on at a time (`--ingest-concurrency 1`). The database's write side is held
    // by another client (as above), so the first batch takes the permit and waits there; the
    // second waits for the permit, visible in /metrics, while a quote answers at once.
    let dir = tempfile::tempdir().unwrap();
    let db = e2e::new_database(dir.path(), Some(&fixture("seed/demo.json")), backend);
    let srv = e2e::serve_db_env(dir.path(), &db, backend, "server.log", &[("SERVER_STUB_INGEST_CONCURRENCY", "1")]);
    let api = Api::new(&srv, STORE, TILL);
    let holder = WriteHolder::take(backend, &srv.db);
    let sales: Vec<Receipt> = ["8951", "8952"]
        .iter()
        .map(|no| receipt(no, Some(JIRI), vec![line(None, "Chléb", None, "1", "35.50", LineKind::Sale)]))
        .collect();
    let send = |r: &Receipt| {
        let body = batch(vec![receipt_item(r)]);
        let (url, token) = (api.url.clone(), api.token.clone());
        std::thread::spawn(move || {
            Client::new().post(format!("{url}/v1/sync")).bearer_auth(token).json(&body).send().unwrap().status()
        })
    };
    let gauge = |name: &str| -> i64 {
        let m = api.http.get(format!("{}/metrics", srv.url)).send().unwrap().text().unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{m}"))
            .parse()
            .unwrap()
    };
    let first = send(&sales[0]);
    assert!(
        e2e::wait_for(std::time::Duration::from_secs(10), || (gauge("server_stub_sync_pending") == 1).then_some(()))
            .is_some(),
        "the first batch did not reach the database"
    );
    let second = send(&sales[1]);
    assert!(
        e2e::wait_for(std::time::Duration::from_secs(10), || (gauge("server_stub_sync_queued") == 1).then_some(()))
            .is_some(),
        "the second batch is not queued for a permit"
    );
    // Queued before any work: not counted as being applied.
    assert_eq!(gauge("server_stub_sync_pending"), 1);
    // The quote answers while both batches are still held (the database stays locked until the
    // rollback below), so it did not wait behind ingest; 5 s only bounds the test (speed lives in bench.sh).
    let t0 = std::time::Instant::now();
    let q = api.quote(JIRI);
    assert_eq!(q["kind"], "customer", "{q}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5), "the quote waited {:?}", t0.elapsed());
    assert!(!first.is_finished() && !second.is_finished());
    holder.release();
    assert_eq!(first.join().unwrap(), StatusCode::OK);
    assert_eq!(second.join().unwrap(), StatusCode::OK);
    assert_eq!((gauge("server_stub_sync_queued"), gauge("server_stub_sync_pending")), (0, 0));
    let both: Vec<&Receipt> = sales.iter().collect();
    assert_eq!(api.balance(JIRI), expected_balance("C000001", &both));
}
}
