//! Spending points at the till, end to end: the real `till-agent redeem` / `void` CLI and the
//! headless agent against the real `server-stub` (SQLite file, loopback HTTP, the fault proxy).
//! Every test ends with balance == sum(ledger) on the server.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::proxy::{Fault, Proxy};
use e2e::*;
use protocol::rules::redemption_code;
use rust_decimal::Decimal;
use serde_json::Value;

const JIRI: &str = DEMO_CARD; // C000001, 412.30 points
const ADAM: &str = "1900000009000075"; // C000006, 345 points

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn entries_of(srv: &ServerHandle, customer: &str, kind: &str) -> Vec<Value> {
    srv.entries(customer, |e| e["kind"] == kind)
}

fn report(srv: &ServerHandle, query: &str) -> Vec<Value> {
    srv.admin(reqwest::Method::GET, &format!("/admin/reports/{query}"), None)["rows"]
        .as_array()
        .unwrap()
        .clone()
}

/// The demo program with offline redemption allowed up to `limit` points per card per day.
fn allow_offline(srv: &ServerHandle, limit: &str) {
    let seed: Value = serde_json::from_str(&std::fs::read_to_string(fixture("seed/demo.json")).unwrap()).unwrap();
    let mut program = seed["program"].clone();
    program["redemption"]["offline_redemption_limit"] = Value::from(limit);
    srv.admin(reqwest::Method::PUT, "/admin/program", Some(&program));
}

fn redeem_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "redeem failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_cache_has(till: &Till, card: &str) {
    assert!(
        till.wait_cache_has(card),
        "the till's cache never got card {card}; agent log:\n{}",
        till.stderr()
    );
}

fn upstream(srv: &ServerHandle) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", srv.port).parse().unwrap()
}

#[test]
fn online_redeem_debits_once_when_the_answer_is_dropped_and_the_till_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let proxy = Proxy::start(upstream(&srv));
    let till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&proxy.url()));
    proxy.set(Fault::DropResponse);
    // The demo program allows no offline redemption: the CLI retries online with the same id.
    let child = Command::new(bin("till-agent"))
        .arg("--config")
        .arg(&till.config)
        .args(["redeem", JIRI, "--points", "200", "--json"])
        .env("TILL_AGENT_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dropped = wait_for(Duration::from_secs(10), || {
        (proxy.hits(Fault::DropResponse) >= 1).then_some(())
    });
    assert!(dropped.is_some(), "the proxy never dropped an answer");
    proxy.set(Fault::Pass);
    let out = child.wait_with_output().unwrap();
    let v = redeem_json(&out);
    assert_eq!(v["mode"], "online", "{v}");
    let id = v["redemption_id"].as_str().unwrap();
    assert!(id.starts_with("rdm-"), "{id}");
    assert_eq!(v["code"].as_str().unwrap(), redemption_code(id));
    assert_eq!(
        (d(v["points"].as_str().unwrap()), d(v["value"].as_str().unwrap())),
        (d("200"), d("100"))
    );
    // The server committed the first request (its answer was dropped) and answered the retry
    // from that record: one redemption, one debit.
    assert_eq!(server_count(&srv.db, "SELECT COUNT(*) FROM redemptions"), 1);
    assert_eq!(entries_of(&srv, "C000001", "redemption").len(), 1);
    assert_eq!(srv.balance("C000001"), d("212.3"));
    assert_ledger_balanced(&srv);
}

#[test]
fn two_offline_tills_redeem_the_same_points_both_apply_and_the_account_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    allow_offline(&srv, "300");
    let proxy = Proxy::start(upstream(&srv));
    let mk = |till_id: &str| {
        let token = add_till(&srv.db, STORE, till_id);
        let cfg = AgentToml::new(&proxy.url()).ids(STORE, till_id);
        let mut t = Till::new(&tmp.path().join(till_id), &token, cfg);
        t.start();
        t
    };
    let (t1, t2) = (mk("T1"), mk("T2"));
    wait_cache_has(&t1, ADAM);
    wait_cache_has(&t2, ADAM);
    proxy.set(Fault::Refuse);
    let a = redeem_json(&t1.cli(&["redeem", ADAM, "--points", "200", "--json"]));
    let b = redeem_json(&t2.cli(&["redeem", ADAM, "--points", "200", "--json"]));
    assert_eq!(
        (a["mode"].as_str(), b["mode"].as_str()),
        (Some("offline"), Some("offline"))
    );
    assert_eq!(
        a["code"].as_str().unwrap(),
        redemption_code(a["redemption_id"].as_str().unwrap())
    );
    assert_eq!(d(a["value"].as_str().unwrap()), d("100"));
    // Beyond the offline limit (300 per card per day at this till): refused, saying why.
    let over = t1.cli(&["redeem", ADAM, "--points", "200"]);
    assert_eq!(over.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&over.stderr);
    assert!(
        msg.contains("offline limit") && msg.contains("at most 300 points per card per day"),
        "{msg}"
    );
    // Nothing reached the server yet.
    assert_eq!(srv.balance("C000006"), d("345"));
    proxy.set(Fault::Pass);
    let both = wait_for(Duration::from_secs(30), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM redemptions WHERE offline = 1") == 2).then_some(())
    });
    assert!(both.is_some(), "T1:\n{}\nT2:\n{}", t1.stderr(), t2.stderr());
    // Both discounts were given: both apply, the account is 55 below zero and reported.
    assert_eq!(srv.balance("C000006"), d("-55"));
    let overdrawn = report(&srv, "overdrawn");
    assert_eq!(overdrawn.len(), 1, "{overdrawn:?}");
    assert_eq!(overdrawn[0]["customer_id"], "C000006");
    assert_eq!(overdrawn[0]["points_balance"], "-55");
    // The sync log shows the redemption with the card masked.
    let log = t1.cli(&["log", "--tail", "50"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("offline redemption of 200 points"), "{log}");
    assert!(log.contains("1900-****-****-0075") && !log.contains(ADAM), "{log}");
    // `status` lists the till's offline redemptions, card masked, sent once acknowledged.
    let sent = wait_for(Duration::from_secs(20), || {
        let out = t1.cli(&["status", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let r = v["redemptions"].as_array()?.first()?.clone();
        (r["state"] == "sent").then_some(r)
    });
    let sent = sent.expect("status shows the redemption as sent");
    assert_eq!(sent["card"], "1900-****-****-0075");
    assert_eq!(sent["redemption_id"], a["redemption_id"]);
    assert_ledger_balanced(&srv);
}

/// Fault scenario: an offline redemption (a discount the customer already got) waits in the
/// outbox, and the till's disk hands back garbage for `outbox.db`. It has no receipt file to be
/// read again from: it comes back from the outbox's copy of unsent items, and the server debits
/// it once.
#[test]
fn an_offline_redemption_in_a_damaged_outbox_still_reaches_the_server_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    allow_offline(&srv, "300");
    let proxy = Proxy::start(upstream(&srv));
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&proxy.url()));
    till.start();
    wait_cache_has(&till, ADAM);
    proxy.set(Fault::Refuse);
    let a = redeem_json(&till.cli(&["redeem", ADAM, "--points", "200", "--json"]));
    assert_eq!(a["mode"].as_str(), Some("offline"));
    let copy = till.dir.join("outbox.db-unsent");
    let copied = std::fs::read_to_string(&copy).unwrap_or_default();
    assert!(copied.contains(a["redemption_id"].as_str().unwrap()), "{copied:?}");
    till.kill();
    let garbage: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(till.dir.join("outbox.db"), &garbage).unwrap();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(till.dir.join(format!("outbox.db{side}")));
    }
    proxy.set(Fault::Pass);
    till.start();
    let arrived = wait_for(Duration::from_secs(30), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM redemptions WHERE offline = 1") == 1).then_some(())
    });
    assert!(
        arrived.is_some(),
        "the redemption did not arrive; agent log:\n{}",
        till.stderr()
    );
    assert_eq!(srv.balance("C000006"), d("145"), "debited once");
    let log = String::from_utf8_lossy(&till.cli(&["log", "--tail", "50"]).stdout).to_string();
    assert!(
        log.contains("outbox.db was damaged")
            && log.contains("1 more offline redemption(s), registration(s) or tag(s) from its copy"),
        "{log}"
    );
    // acknowledged: the new outbox's copy is empty again, the damaged one's kept with it
    let gone = wait_for(Duration::from_secs(10), || (!copy.exists()).then_some(()));
    assert!(gone.is_some(), "{:?}", std::fs::read_to_string(&copy));
    let aside: Vec<String> = std::fs::read_dir(&till.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("outbox.db.damaged-") && n.ends_with("-unsent"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    till.kill();
    till.start();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        server_count(&srv.db, "SELECT COUNT(*) FROM redemptions"),
        1,
        "a restart sends nothing again"
    );
    assert_ledger_balanced(&srv);
}

#[test]
fn void_gives_the_points_back_once_and_the_quote_shows_options_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    let v = redeem_json(&till.cli(&["redeem", JIRI, "--points", "100", "--json"]));
    let id = v["redemption_id"].as_str().unwrap().to_string();
    assert_eq!(srv.balance("C000001"), d("312.3"));
    // The quote offers what 312.30 points buy now and the last ledger entries.
    let q: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/cards/{JIRI}/quote", srv.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let options: Vec<&str> = q["quote"]["redeemable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["points"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["100", "200", "300"], "{q}");
    assert_eq!(q["quote"]["recent"][0]["kind"], "redemption", "{q}");
    // Another till may not void it.
    let t2_token = add_till(&srv.db, STORE, "T2");
    let t2 = Till::new(
        &tmp.path().join("t2"),
        &t2_token,
        AgentToml::new(&srv.url).ids(STORE, "T2"),
    );
    let other = t2.cli(&["void", &id]);
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("only that till may void it"));
    for _ in 0..2 {
        let out = till.cli(&["void", &id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("100 points back (balance 412.30)"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(srv.balance("C000001"), d("412.3"));
    assert_eq!(entries_of(&srv, "C000001", "void").len(), 1, "points back once");
    assert_ledger_balanced(&srv);
}

fn now_local() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[test]
fn the_receipt_with_the_code_confirms_and_its_return_restores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    let v = redeem_json(&till.cli(&["redeem", JIRI, "--points", "200", "--json"]));
    let code = v["code"].as_str().unwrap();
    let unmatched = |srv: &ServerHandle| report(srv, "unmatched-redemptions?hours=0");
    assert_eq!(unmatched(&srv).len(), 1);
    let after_redeem = srv.balance("C000001");
    // The POS prints the code on the voucher's discount line; the cashier does not scan again.
    let sale = format!(
        r#"{{"pos_receipt_no": "RDM-1", "issued_at": "{}", "total": "400.00", "card": "{JIRI}",
      "lines": [{{"name": "Krém", "quantity": "1", "unit_price": "500.00", "line_total": "500.00", "kind": "sale"}},
                {{"name": "Věrnostní poukaz {code}", "quantity": "1", "unit_price": "-100.00", "line_total": "-100.00", "kind": "discount"}}]}}"#,
        now_local()
    );
    till.drop_file("sale.json", sale.as_bytes());
    let confirmed = wait_for(Duration::from_secs(30), || unmatched(&srv).is_empty().then_some(()));
    assert!(confirmed.is_some(), "agent log:\n{}", till.stderr());
    assert!(srv.balance("C000001") > after_redeem, "the sale earned points");
    // Its return takes back what the sale earned; the redeemed points are not restored.
    let ret = format!(
        r#"{{"pos_receipt_no": "RDM-1-R", "issued_at": "{}", "total": "-500.00", "original": {{"pos_receipt_no": "RDM-1"}},
      "lines": [{{"name": "Krém", "quantity": "-1", "unit_price": "500.00", "line_total": "-500.00", "kind": "return"}}]}}"#,
        now_local()
    );
    till.drop_file("ret.json", ret.as_bytes());
    let back = wait_for(Duration::from_secs(30), || {
        (server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no = 'RDM-1-R'",
        ) == 1)
            .then_some(())
    });
    assert!(back.is_some(), "agent log:\n{}", till.stderr());
    assert_eq!(srv.balance("C000001"), after_redeem, "the redeemed points stay spent");
    assert!(unmatched(&srv).is_empty());
    let redeemed = report(
        &srv,
        &format!("redeemed?from={0}&to={0}", chrono::Local::now().date_naive()),
    );
    assert_eq!(redeemed.len(), 1);
    assert_eq!(
        (redeemed[0]["points"].as_str(), redeemed[0]["value"].as_str()),
        (Some("200"), Some("100"))
    );
    assert_ledger_balanced(&srv);
}

#[test]
fn admin_adjustments_apply_once_per_key_and_prize_card_points_arrive_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let c = reqwest::blocking::Client::new();
    let adjust = |key: Option<&str>, body: Value| {
        let mut r = c
            .post(format!("{}/admin/customers/C000001/adjust", srv.url))
            .bearer_auth(&srv.admin_token)
            .json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let body = serde_json::json!({"reason": "reklamace", "points": "-12.30"});
    let (s1, a1) = adjust(Some("adj-1"), body.clone());
    let (s2, a2) = adjust(Some("adj-1"), body.clone());
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        (a1["duplicate"].as_bool(), a2["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(srv.balance("C000001"), d("400"));
    let (s3, p3) = adjust(Some("adj-1"), serde_json::json!({"reason": "jiný", "points": "5"}));
    assert_eq!((s3, p3["code"].as_str()), (409, Some("conflict")), "{p3}");
    let (s4, p4) = adjust(None, body);
    assert_eq!((s4, p4["field"].as_str()), (400, Some("Idempotency-Key")), "{p4}");
    assert_eq!(entries_of(&srv, "C000001", "adjustment").len(), 1);
    // The ledger pages newest first.
    let page1 = srv.admin(reqwest::Method::GET, "/admin/customers/C000001/ledger?limit=1", None);
    assert_eq!(page1["entries"][0]["kind"], "adjustment");
    let next = page1["next"].as_str().expect("a second page");
    let page2 = srv.admin(
        reqwest::Method::GET,
        &format!("/admin/customers/C000001/ledger?limit=1&before={next}"),
        None,
    );
    assert_eq!(page2["entries"][0]["kind"], "opening");
    // A prize card: 500 points preloaded, credited when the card is registered (once).
    let issued = srv.admin(
        reqwest::Method::POST,
        "/admin/cards/batch",
        Some(&serde_json::json!({"count": 1, "initial_points": "500"})),
    );
    let prize = issued["cards"][0].as_str().unwrap().to_string();
    let reg = serde_json::json!({"version": "v1", "store_id": STORE, "till_id": TILL, "items": [
        {"item_id": "reg-prize-1", "type": "registration", "body": {"request_id": "reg-prize-1", "card": prize,
         "name": {"type": "person", "first_name": "Eva", "surname": "Malá"}, "contact": {},
         "consents": {"program_rules": true, "marketing": false}, "store_id": STORE, "till_id": TILL}}]});
    for _ in 0..2 {
        let resp = c
            .post(format!("{}/v1/sync", srv.url))
            .bearer_auth(&token)
            .json(&reg)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text());
    }
    let q: Value = c
        .get(format!("{}/v1/cards/{prize}/quote", srv.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(q["quote"]["points_balance"], "500", "{q}");
    assert_eq!(q["quote"]["recent"][0]["kind"], "prize_card", "{q}");
    assert_ledger_balanced(&srv);
}
