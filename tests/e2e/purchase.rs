//! Every purchase counts, end to end: the real `till-agent` (headless agent, `lookup` and `tag`
//! CLI) against the real `server-stub` (SQLite file, loopback HTTP). Finding a customer by phone
//! offline (and the phone absent from `cache.db`), receipt tags before / after their receipt,
//! a tag refused for another card's receipt, a tag with a total and no receipt, purchases with an
//! unassigned or unknown card credited on registration, cashier messages shown once.

use std::time::Duration;

use e2e::*;
use rust_decimal::Decimal;
use serde_json::Value;

const JIRI: &str = DEMO_CARD; // C000001, +420601111222, jiri.dvorak@example.cz
const ADAM: &str = "1900000009000075"; // C000006
const UNASSIGNED: &str = "1900000009001016"; // issued, no customer (seed)

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The ledger entries of `customer` caused by `cause`.
fn entries_for(srv: &ServerHandle, customer: &str, cause: &str) -> Vec<Value> {
    srv.entries(customer, |e| e["cause_id"] == cause)
}

/// A 16-digit card of the demo policy (prefix 1900, Luhn) that nobody issued.
fn unknown_valid_card() -> String {
    let body = "190000000900201";
    let digits: Vec<u32> = body.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 0 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A receipt file (protocol JSON) issued a minute ago at the till's offset (+01:00).
fn receipt_file(no: &str, card: Option<&str>, total: &str) -> String {
    let at = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let card = card.map(|c| format!("\"card\": \"{c}\",")).unwrap_or_default();
    format!(
        r#"{{"pos_receipt_no": "{no}", "issued_at": "{at}", "total": "{total}", {card}
  "lines": [ {{"name": "Chléb", "quantity": "1", "unit_price": "{total}", "line_total": "{total}", "vat_rate": "12", "kind": "sale"}} ] }}"#
    )
}

/// The server's receipt id of POS number `no`.
fn receipt_id(srv: &ServerHandle, no: &str) -> Option<String> {
    server_conn(&srv.db)
        .query_row("SELECT id FROM receipts WHERE pos_receipt_no = ?1", [no], |r| r.get(0))
        .ok()
}

fn wait_receipt(srv: &ServerHandle, till: &Till, no: &str) -> String {
    wait_for(Duration::from_secs(30), || receipt_id(srv, no))
        .unwrap_or_else(|| panic!("receipt {no} never reached the server; agent log:\n{}", till.stderr()))
}

/// Wait until the till has sent everything (nothing pending).
fn wait_drained(till: &Till) {
    let ok = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='pending'") == 0).then_some(())
    });
    assert!(ok.is_some(), "items still pending; agent log:\n{}", till.stderr());
}

fn ok_out(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lookup_json(till: &Till, args: &[&str]) -> Value {
    let mut a = vec!["lookup"];
    a.extend_from_slice(args);
    a.push("--json");
    serde_json::from_str(&ok_out(&till.cli(&a))).unwrap()
}

fn wait_cache_has(till: &Till, card: &str) {
    assert!(
        till.wait_cache_has(card),
        "the till's cache never got card {card}; agent log:\n{}",
        till.stderr()
    );
}

fn started(srv: &ServerHandle, dir: &std::path::Path) -> Till {
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&dir.join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    till
}

#[test]
fn lookup_by_phone_and_email_offline_after_the_cache_sync_without_plain_contacts_in_cache_db() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = start_server(tmp.path());
    let mut till = started(&srv, tmp.path());
    wait_cache_has(&till, JIRI);
    till.kill();
    srv.kill();
    // The server is gone: the typed phone (national, with spaces) resolves from the cache.
    for args in [
        ["--phone", "601 111 222"],
        ["--phone", "+420 601-111-222"],
        ["--email", " Jiri.Dvorak@EXAMPLE.cz"],
    ] {
        let q = lookup_json(&till, &args);
        assert_eq!(q["kind"], "customer", "{args:?}: {q}");
        assert_eq!(q["source"], "offline", "{q}");
        assert_eq!(q["card"], JIRI, "{q}");
        assert_eq!(q["quote"]["display_name"], "Jiří Dvořák", "{q}");
    }
    // Not found / bad input: exit 2, the reason named, the number not echoed in the not-found text.
    let out = till.cli(&["lookup", "--phone", "602 000 999"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--phone: no customer with this phone number"), "{err}");
    let out = till.cli(&["lookup", "--email", "jiri"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no @"));
    // The cache holds keyed hashes only: no spelling of the phone or e-mail in its bytes.
    let keys = rusqlite::Connection::open(till.dir.join("cache.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM contact_keys", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert!(keys >= 8, "contact keys in cache.db: {keys}");
    let mut bytes = Vec::new();
    for f in ["cache.db", "cache.db-wal", "cache.db-shm"] {
        if let Ok(b) = std::fs::read(till.dir.join(f)) {
            bytes.extend(b);
        }
    }
    let hay = String::from_utf8_lossy(&bytes);
    for needle in ["601111222", "601 111 222", "jiri.dvorak@example.cz", "777333444"] {
        assert!(!hay.contains(needle), "{needle:?} is in cache.db");
    }
}

#[test]
fn tags_before_and_after_the_receipt_credit_it_once_and_another_card_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let till = started(&srv, tmp.path());
    let start = srv.balance("C000001");

    // Tag first, receipt later.
    ok_out(&till.cli(&["tag", "--receipt", "P-1", "--card", JIRI]));
    wait_drained(&till);
    assert_eq!(srv.balance("C000001"), start, "nothing to credit before the receipt");
    till.drop_file("p1.json", receipt_file("P-1", None, "500.00").as_bytes());
    let p1 = wait_receipt(&srv, &till, "P-1");
    let e1 = entries_for(&srv, "C000001", &p1);
    assert_eq!(e1.len(), 1, "{e1:?}");
    let earned1 = d(e1[0]["points"].as_str().unwrap());
    assert!(earned1 > Decimal::ZERO);

    // Receipt first (no card), tag later — twice: credited once.
    till.drop_file("p2.json", receipt_file("P-2", None, "300.00").as_bytes());
    let p2 = wait_receipt(&srv, &till, "P-2");
    wait_drained(&till);
    assert!(entries_for(&srv, "C000001", &p2).is_empty());
    ok_out(&till.cli(&["tag", "--receipt", "P-2", "--card", JIRI, "--total", "300"]));
    ok_out(&till.cli(&["tag", "--receipt", "P-2", "--card", JIRI]));
    wait_drained(&till);
    let e2 = entries_for(&srv, "C000001", &p2);
    assert_eq!(e2.len(), 1, "credited once: {e2:?}");
    let earned2 = d(e2[0]["points"].as_str().unwrap());
    assert_eq!(srv.balance("C000001"), start + earned1 + earned2);
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no IN ('P-1','P-2')"
        ),
        2,
        "no extra totals-only receipt"
    );

    // The same receipt tagged to another card: refused with the reason, nothing moves.
    let adam = srv.balance("C000006");
    ok_out(&till.cli(&["tag", "--receipt", "P-2", "--card", ADAM]));
    let refused = wait_for(Duration::from_secs(30), || {
        let c = rusqlite::Connection::open(till.dir.join("outbox.db")).ok()?;
        c.query_row(
            "SELECT last_error FROM items WHERE kind='receipt_tag' AND state='rejected'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
    })
    .unwrap_or_else(|| panic!("the conflicting tag was not refused; agent log:\n{}", till.stderr()));
    assert!(
        refused.contains("receipt_taken") && refused.contains("already credited to another account"),
        "{refused}"
    );
    assert_eq!(srv.balance("C000006"), adam);
    let log = String::from_utf8_lossy(&till.cli(&["log", "--tail", "50"]).stdout).into_owned();
    assert!(
        log.contains("receipt tag for card 1900-****-****-0075 refused"),
        "{log}"
    );
    assert!(!log.contains(ADAM) && !log.contains(JIRI), "{log}");
    // Bad input names the field.
    let out = till.cli(&["tag", "--receipt", "", "--card", "1900000009000019", "--total", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--receipt: the POS receipt number is required")
            && err.contains("--card: 1900-****-****-0019")
            && err.contains("--total: \"abc\": not an amount"),
        "{err}"
    );
    assert_ledger_balanced(&srv);
}

#[test]
fn a_tag_with_a_total_and_no_receipt_counts_after_the_program_wait_and_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let till = started(&srv, tmp.path());
    let start = srv.balance("C000001");
    ok_out(&till.cli(&["tag", "--receipt", "N-7", "--card", JIRI, "--total", "250,00"]));
    wait_drained(&till);
    // The default wait is a day: nothing yet.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(srv.balance("C000001"), start);
    // The program now waits 0 minutes: the server's periodic check counts the tag.
    let seed: Value = serde_json::from_str(&std::fs::read_to_string(fixture("seed/demo.json")).unwrap()).unwrap();
    let mut program = seed["program"].clone();
    program["purchases"] = serde_json::json!({ "tag_total_wait_minutes": 0 });
    srv.admin(reqwest::Method::PUT, "/admin/program", Some(&program));
    let id = wait_for(Duration::from_secs(20), || {
        server_conn(&srv.db)
            .query_row("SELECT id FROM receipts WHERE pos_receipt_no = 'N-7'", [], |r| {
                r.get::<_, String>(0)
            })
            .ok()
    })
    .expect("the tag became a totals-only receipt");
    assert!(id.starts_with("tag:tag-"), "{id}");
    let e = entries_for(&srv, "C000001", &id);
    assert_eq!(e.len(), 1, "{e:?}");
    // Totals-only, earned on the total by the rules engine: 10 % of 250 = 25 points, more when
    // a campaign of the day covers it (the weekend one does on Saturdays and Sundays).
    let earned = d(e[0]["points"].as_str().unwrap());
    assert!(earned >= d("25"), "{earned}");
    assert_eq!(srv.balance("C000001"), start + earned);
    // The POS file turns up after all: kept, earns nothing more.
    till.drop_file("n7.json", receipt_file("N-7", None, "250.00").as_bytes());
    let ok = wait_for(Duration::from_secs(30), || {
        (server_count(&srv.db, "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no = 'N-7'") == 2).then_some(())
    });
    assert!(ok.is_some(), "agent log:\n{}", till.stderr());
    assert_eq!(srv.balance("C000001"), start + earned);
    assert_ledger_balanced(&srv);
}

/// A chain with stores in CZ and SK: the Slovak till (agent.toml `phone_country = "SK"`) reads a
/// national number as Slovak when it registers a customer and when it searches; the server holds
/// E.164, so a Czech till finds the customer by the international number, and by the Slovak
/// national spelling nowhere.
#[test]
fn a_slovak_till_registers_and_finds_national_numbers_as_slovak_and_the_server_holds_e164() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let sk_token = add_till(&srv.db, STORE, "T-SK");
    let mut sk = Till::new(
        &tmp.path().join("sk"),
        &sk_token,
        AgentToml::new(&srv.url).ids(STORE, "T-SK").phone_country("sk"),
    );
    sk.start();
    let card = unknown_valid_card();
    ok_out(&sk.cli(&[
        "register",
        &card,
        "--name",
        "Zuzana Horváthová",
        "--phone",
        "0903 123 456",
        "--consent",
    ]));
    wait_drained(&sk);
    // The Czech till starts now: its first cache refresh brings the new customer.
    let cz = started(&srv, tmp.path());
    let customer: String = server_conn(&srv.db)
        .query_row("SELECT customer_id FROM cards WHERE number = ?1", [&card], |r| r.get(0))
        .unwrap();
    let stored = srv.admin(reqwest::Method::GET, &format!("/admin/customers/{customer}"), None);
    assert_eq!(stored["customer"]["contact"]["phone"], "+421903123456", "{stored}");
    for (till, phone) in [(&sk, "0903 123 456"), (&sk, "+421 903 123 456"), (&cz, "+421903123456")] {
        wait_cache_has(till, &card);
        let q = lookup_json(till, &["--phone", phone]);
        assert_eq!(q["kind"], "customer", "{phone}: {q}");
        assert_eq!(q["card"], card.as_str(), "{phone}: {q}");
    }
    // On the Czech till the same national digits are a Czech number: nobody.
    let out = cz.cli(&["lookup", "--phone", "0903 123 456"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    // A country the program cannot read national numbers of is a config error naming the key.
    let bad = Till::new(
        &tmp.path().join("bad"),
        &sk_token,
        AgentToml::new(&srv.url).phone_country("XX"),
    );
    let out = bad.cli(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("phone_country") && err.contains("\"XX\""), "{err}");
}

#[test]
fn purchases_with_unassigned_unknown_or_anonymous_cards_earn_on_registration_once_and_messages_show_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let till = started(&srv, tmp.path());
    let unknown = unknown_valid_card();
    till.drop_file("u1.json", receipt_file("U-1", Some(UNASSIGNED), "400.00").as_bytes());
    till.drop_file("u2.json", receipt_file("U-2", Some(&unknown), "200.00").as_bytes());
    let u1 = wait_receipt(&srv, &till, "U-1");
    let u2 = wait_receipt(&srv, &till, "U-2");
    wait_drained(&till);
    // Kept, not rejected, credited to nobody yet.
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no IN ('U-1','U-2') AND account_id IS NULL"
        ),
        2
    );
    ok_out(&till.cli(&[
        "register",
        UNASSIGNED,
        "--name",
        "Eva Malá",
        "--phone",
        "731 222 333",
        "--consent",
    ]));
    ok_out(&till.cli(&["register", &unknown, "--name", "Petr Velký", "--consent"]));
    wait_drained(&till);
    let owner = |card: &str| -> String {
        server_conn(&srv.db)
            .query_row("SELECT customer_id FROM cards WHERE number = ?1", [card], |r| r.get(0))
            .unwrap()
    };
    let (eva, petr) = (owner(UNASSIGNED), owner(&unknown));
    for (cust, rid) in [(&eva, &u1), (&petr, &u2)] {
        let e = entries_for(&srv, cust, rid);
        assert_eq!(e.len(), 1, "{cust}: {e:?}");
        assert_eq!(srv.balance(cust), d(e[0]["points"].as_str().unwrap()));
    }
    // A second registration of the card is refused; the purchase stays credited once.
    ok_out(&till.cli(&["register", UNASSIGNED, "--name", "Eva Malá", "--consent"]));
    wait_drained(&till);
    assert_eq!(entries_for(&srv, &eva, &u1).len(), 1);

    // An anonymous card (issued in a batch) earns into an account of its own from the first
    // purchase; registering the card makes that account the customer's.
    let batch = srv.admin(
        reqwest::Method::POST,
        "/admin/cards/batch",
        Some(&serde_json::json!({ "count": 1, "anonymous": true })),
    );
    let anon = batch["cards"][0].as_str().unwrap().to_string();
    let anon_owner = owner(&anon);
    assert!(anon_owner.starts_with('A'), "{anon_owner}");
    till.drop_file("a1.json", receipt_file("A-1", Some(&anon), "600.00").as_bytes());
    let a1 = wait_receipt(&srv, &till, "A-1");
    wait_drained(&till);
    let earned = d(entries_for(&srv, &anon_owner, &a1)[0]["points"].as_str().unwrap());
    assert_eq!(srv.balance(&anon_owner), earned);
    // The till names the account in its own language (cs), not the server's placeholder.
    let out = ok_out(&till.cli(&["lookup", "--card", &anon]));
    assert!(out.contains("Anonymní karta") && !out.contains("Anonymous"), "{out}");
    ok_out(&till.cli(&["register", &anon, "--name", "Karel Anonym", "--consent"]));
    wait_drained(&till);
    assert_eq!(owner(&anon), anon_owner, "same account");
    let named: String = server_conn(&srv.db)
        .query_row(
            "SELECT json_extract(customer, '$.name.surname') FROM customers WHERE id = ?1",
            [&anon_owner],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(named, "Anonym");
    assert_eq!(srv.balance(&anon_owner), earned, "the balance stays with the account");
    assert_eq!(entries_for(&srv, &anon_owner, &a1).len(), 1);

    // Messages: Jiří's quote has something to say (a reward reachable with 412 points, today's
    // campaign…); the `lookup` output counts as shown: each cause once, acknowledged to the server.
    let q = lookup_json(&till, &["--card", JIRI]);
    let first: Vec<String> = q["quote"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["cause"].as_str().unwrap().to_string())
        .collect();
    assert!(!first.is_empty(), "{q}");
    assert!(first.iter().all(|c| c.contains(":C000001")), "{first:?}");
    wait_drained(&till);
    let acked = server_count(
        &srv.db,
        "SELECT COUNT(*) FROM message_acks WHERE customer_id = 'C000001'",
    );
    assert_eq!(acked, first.len() as i64);
    let again = lookup_json(&till, &["--card", JIRI]);
    assert!(again["quote"].get("messages").is_none(), "shown once: {again}");
    // A customer registered without a purchase yet is welcomed, in the till's language (cs), once.
    ok_out(&till.cli(&["register", "1900000009001024", "--name", "Jana Nová", "--consent"]));
    wait_drained(&till);
    let out = ok_out(&till.cli(&["lookup", "--card", "1900000009001024"]));
    assert!(out.contains("say: Vítejte v programu"), "{out}");
    wait_drained(&till);
    let out = ok_out(&till.cli(&["lookup", "--card", "1900000009001024"]));
    assert!(!out.contains("Vítejte"), "welcome shown once: {out}");
    assert_ledger_balanced(&srv);
}
