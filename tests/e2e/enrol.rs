//! End-to-end: new cards at the till — `till-agent register` / `pair` (the support CLI; the
//! cashier's form queues the same items, see `ui.rs`) → outbox → the real agent → the real
//! server-stub on loopback, checked through the server's own quote API and database.
use std::time::Duration;

use e2e::*;

use crate::agent::{server_conn, Till, STORE, TILL};

/// `GET /v1/cards/{card}/quote` with the till's token (what a scan at the till shows).
pub fn server_quote(srv: &ServerHandle, token: &str, card: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(format!("{}/v1/cards/{card}/quote", srv.url))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn sync_log_has(till: &Till, needle: &str) -> bool {
    let sql = format!("SELECT COUNT(*) FROM sync_log WHERE message LIKE '%{}%'", needle.replace('\'', "''"));
    till.outbox_count(&sql) > 0
}

#[test]
fn register_and_pair_from_the_cli_reach_the_server_with_or_without_a_running_agent() {
    // Printed, not yet issued cards of the demo program (fixtures/seed/demo.json).
    const NEW_CARD: &str = "1900000009001016";
    const PAIR_CARD: &str = "1900000009001024";
    const BAD_CODE_CARD: &str = "1900000009001032";
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&tmp.path().join("till"), &srv.url, &token, "[reader]\nwedge = false\n");
    assert_eq!(server_quote(&srv, &token, NEW_CARD)["kind"], "unknown_card");

    // Bad input: every problem named by its option, nothing queued.
    let out = till.cli(&["register", NEW_CARD, "--name", "Jiří", "--email", "jiri.example.cz"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in ["--surname (or --name): surname is required", "--email: email is not an e-mail address", "--consent: consent_rules must be given"] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // (Before the agent first ran there is no cached program: the generic card policy applies
    // here and the server checks the program's — a wrong check digit is refused there.)
    let out = till.cli(&["register", "1900 12x", "--name", "Jiří Dvořák", "--consent"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("card number contains 'x'"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = till.cli(&["pair", PAIR_CARD, "--code", "  "]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--code: code is required"));
    assert!(till.outbox_count("SELECT COUNT(*) FROM items") <= 0);

    // The agent is not running: queued in the outbox, sent when it starts.
    let out = till.cli(&["register", "1900 0000 0900 1016", "--name", "Jiří Dvořák", "--email", "jiri@example.cz", "--birthday", "7. 3. 1985", "--consent"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("registration for card 1900-****-****-1016 queued"), "{stdout}");
    assert!(!stdout.contains(NEW_CARD));
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items WHERE kind='registration' AND state='pending'"), 1);
    till.start();
    let q = wait_for(Duration::from_secs(20), || Some(server_quote(&srv, &token, NEW_CARD)).filter(|q| q["kind"] == "customer"))
        .unwrap_or_else(|| panic!("registration not applied; agent log:\n{}", till.stderr()));
    assert_eq!(q["quote"]["display_name"], "Jiří Dvořák");
    let (email, birthday): (String, String) = server_conn(&srv.db)
        .query_row(
            "SELECT json_extract(c.customer,'$.contact.email'), json_extract(c.customer,'$.birthday') FROM customers c JOIN cards k ON k.customer_id=c.id WHERE k.number=?1",
            [NEW_CARD],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("customer row: {e}"));
    assert_eq!((email.as_str(), birthday.as_str()), ("jiri@example.cz", "1985-03-07"));
    assert!(
        wait_for(Duration::from_secs(10), || sync_log_has(&till, "registration for card 1900-****-****-1016 applied on the server").then_some(())).is_some(),
        "ack not in the sync log; agent log:\n{}",
        till.stderr()
    );

    // The agent is running: another process queues a pairing; the replicator finds it on its
    // own (no restart, no signal) within its idle poll.
    let out = till.cli(&["pair", PAIR_CARD, "--code", "KLUB-4821"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let q = wait_for(Duration::from_secs(20), || Some(server_quote(&srv, &token, PAIR_CARD)).filter(|q| q["kind"] == "customer"))
        .unwrap_or_else(|| panic!("pairing not applied; agent log:\n{}", till.stderr()));
    assert_eq!(q["quote"]["display_name"], "Zdeňka Procházková");
    assert_eq!(q["quote"]["discount_percent"], "7", "the old discount moved onto the new card: {q}");

    // An unknown code: refused by the server, dead-lettered, the reason in the sync log.
    let out = till.cli(&["pair", BAD_CODE_CARD, "--code", "NOPE-0000"]);
    assert!(out.status.success());
    assert!(
        wait_for(Duration::from_secs(20), || sync_log_has(&till, "migration pairing for card 1900-****-****-1032 refused by the server: unknown_code").then_some(()))
            .is_some(),
        "refusal not in the sync log; agent log:\n{}",
        till.stderr()
    );
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items WHERE state='rejected'"), 1);
    assert_eq!(server_quote(&srv, &token, BAD_CODE_CARD)["kind"], "unknown_card");
    // Full card numbers are in the outbox payloads (they must reach the server), never in the log.
    for c in [NEW_CARD, PAIR_CARD, BAD_CODE_CARD] {
        assert_eq!(till.outbox_count(&format!("SELECT COUNT(*) FROM sync_log WHERE message LIKE '%{c}%'")), 0, "{c} in the sync log");
    }
}
