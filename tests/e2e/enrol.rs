//! End-to-end: new cards at the till — `till-agent register` / `pair` (the support CLI; the
//! cashier's form queues the same items, see `ui.rs`) → outbox → the real agent → the real
//! server-stub on loopback, checked through the server's own quote API and database.
use std::time::Duration;

use e2e::*;

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
    let sql = format!(
        "SELECT COUNT(*) FROM sync_log WHERE message LIKE '%{}%'",
        needle.replace('\'', "''")
    );
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
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url).wedge(false));
    assert_eq!(server_quote(&srv, &token, NEW_CARD)["kind"], "unknown_card");

    // Bad input: every problem named by its option, nothing queued.
    let out = till.cli(&["register", NEW_CARD, "--name", "Jiří", "--email", "jiri.example.cz"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "--surname (or --name): surname is required",
        "--email: email is not an e-mail address",
        "--consent: consent_rules must be given",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // (Before the agent first ran there is no cached program: the generic card policy applies
    // here and the server checks the program's — a wrong check digit is refused there.)
    let out = till.cli(&["register", "1900 12x", "--name", "Jiří Dvořák", "--consent"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("card number contains 'x'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = till.cli(&["pair", PAIR_CARD, "--code", "  "]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--code: code is required"));
    assert!(till.outbox_count("SELECT COUNT(*) FROM items") <= 0);

    // The agent is not running: queued in the outbox, sent when it starts.
    let out = till.cli(&[
        "register",
        "1900 0000 0900 1016",
        "--name",
        "Jiří Dvořák",
        "--email",
        "jiri@example.cz",
        "--birthday",
        "7. 3. 1985",
        "--consent",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("registration for card 1900-****-****-1016 queued"),
        "{stdout}"
    );
    assert!(!stdout.contains(NEW_CARD));
    assert_eq!(
        till.outbox_count("SELECT COUNT(*) FROM items WHERE kind='registration' AND state='pending'"),
        1
    );
    till.start();
    let q = wait_for(Duration::from_secs(20), || {
        Some(server_quote(&srv, &token, NEW_CARD)).filter(|q| q["kind"] == "customer")
    })
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
        wait_for(Duration::from_secs(10), || sync_log_has(
            &till,
            "registration for card 1900-****-****-1016 applied on the server"
        )
        .then_some(()))
        .is_some(),
        "ack not in the sync log; agent log:\n{}",
        till.stderr()
    );

    // The agent is running: another process queues a pairing; the replicator finds it on its
    // own (no restart, no signal) within its idle poll.
    let out = till.cli(&["pair", PAIR_CARD, "--code", "KLUB-4821"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let q = wait_for(Duration::from_secs(20), || {
        Some(server_quote(&srv, &token, PAIR_CARD)).filter(|q| q["kind"] == "customer")
    })
    .unwrap_or_else(|| panic!("pairing not applied; agent log:\n{}", till.stderr()));
    assert_eq!(q["quote"]["display_name"], "Zdeňka Procházková");
    assert_eq!(
        q["quote"]["discount_percent"], "7",
        "the old discount moved onto the new card: {q}"
    );

    // An unknown code: refused by the server, dead-lettered, the reason in the sync log.
    let out = till.cli(&["pair", BAD_CODE_CARD, "--code", "NOPE-0000"]);
    assert!(out.status.success());
    assert!(
        wait_for(Duration::from_secs(20), || sync_log_has(
            &till,
            "migration pairing for card 1900-****-****-1032 refused by the server: unknown_code"
        )
        .then_some(()))
        .is_some(),
        "refusal not in the sync log; agent log:\n{}",
        till.stderr()
    );
    // The log line is written as the ack is read; the item is marked in the same pass, just after.
    assert!(
        wait_for(Duration::from_secs(10), || (till
            .outbox_count("SELECT COUNT(*) FROM items WHERE state='rejected'")
            == 1)
            .then_some(()))
        .is_some(),
        "refused pairing not a dead letter"
    );
    assert_eq!(server_quote(&srv, &token, BAD_CODE_CARD)["kind"], "unknown_card");
    // Full card numbers are in the outbox payloads (they must reach the server), never in the log.
    for c in [NEW_CARD, PAIR_CARD, BAD_CODE_CARD] {
        assert_eq!(
            till.outbox_count(&format!("SELECT COUNT(*) FROM sync_log WHERE message LIKE '%{c}%'")),
            0,
            "{c} in the sync log"
        );
    }
}

// ------------------------------------------------------------------------------------------
// The cashier's path under Xvfb: scan → unknown-card popup → "Registrovat" → form → server.

#[test]
fn gui_unknown_card_register_form_typed_in_czech_reaches_the_server() {
    if !need_tools(&[
        "Xvfb",
        "xdpyinfo",
        "xdotool",
        "xwininfo",
        "xmessage",
        "setxkbmap",
        "import",
    ]) {
        return;
    }
    const CARD: &str = "1900000009001016";
    const NAME: (&str, &str) = ("Jiří", "Dvořák");
    let xv = start_xvfb(1280, 1024);
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let till = Till::new(
        &tmp.path().join("till"),
        &token,
        AgentToml::new(&srv.url).hide_after_secs(0),
    );
    assert_eq!(server_quote(&srv, &token, CARD)["kind"], "unknown_card");

    // The POS stand-in holds the keyboard focus; the scanner types into it.
    let pos_stand_in = start_pos(d);
    let pos = pos_stand_in.window;
    let agent = GuiAgent::start(&till, &token, d);
    let stderr = || agent.stderr();
    let log = agent.log.clone();

    // A scan at scanner speed (8 ms per key) through the keyboard wedge; the popup offers the buttons.
    let popup = (0..4).find_map(|_| {
        agent.scan(CARD);
        wait_for(Duration::from_secs(6), || {
            let log = stderr();
            (log.contains("\"kind\":\"unknown_card\"") && widget_rect(&log, "popup.register").is_some())
                .then_some(())?;
            find_window(d, "till-agent popup")
        })
    });
    let popup = popup.unwrap_or_else(|| panic!("no unknown-card popup; agent log:\n{}", stderr()));
    std::thread::sleep(Duration::from_millis(700)); // fit + placement settle
    assert!(!stderr().contains(CARD), "full card number in the agent's log");
    click(d, popup, &log, "popup.register");

    // The form opens (it may take the focus: the cashier asked for it; without a window manager
    // under Xvfb the test gives it the focus the way a WM would on a click).
    let form = wait_for(Duration::from_secs(15), || find_window(d, "^Registrace"))
        .unwrap_or_else(|| panic!("no form window; agent log:\n{}", stderr()));
    let title = String::from_utf8_lossy(&x(d, "xdotool", &["getwindowname", &form.to_string()]).stdout)
        .trim()
        .to_string();
    assert_eq!(title, "Registrace zákazníka – 1900-****-****-1016");
    x_ok(d, "xdotool", &["windowfocus", "--sync", &form.to_string()]);
    assert!(
        wait_for(Duration::from_secs(10), || widget_rect(&stderr(), "form.submit")
            .map(|_| ()))
        .is_some(),
        "form not laid out:\n{}",
        stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    let shots = e2e::bin_dir().join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // Submit empty: the errors name the fields, nothing is queued.
    click(d, form, &log, "form.submit");
    assert!(
        wait_for(Duration::from_secs(5), || stderr()
            .contains("form not submitted")
            .then_some(()))
        .is_some(),
        "no validation:\n{}",
        stderr()
    );
    let s = stderr();
    for want in [
        "first_name is required",
        "surname is required",
        "consent_rules must be given",
    ] {
        assert!(s.contains(want), "{want} not reported:\n{s}");
    }
    std::thread::sleep(Duration::from_millis(300));
    x_ok(
        d,
        "import",
        &[
            "-window",
            "root",
            shots.join("enrol-form-errors-cs.png").to_str().unwrap(),
        ],
    );

    // Type the name on the Czech layout (ř, í, á are keys of their own there).
    x_ok(d, "setxkbmap", &["-display", d, "cz"]);
    click(d, form, &log, "form.first_name");
    x_ok(d, "xdotool", &["type", "--delay", "80", NAME.0]);
    click(d, form, &log, "form.surname");
    x_ok(d, "xdotool", &["type", "--delay", "80", NAME.1]);
    click(d, form, &log, "form.consent_rules");
    std::thread::sleep(Duration::from_millis(400));
    let shot = shots.join("enrol-form-cs.png");
    x_ok(d, "import", &["-window", "root", shot.to_str().unwrap()]);
    eprintln!("screenshot: {}", shot.display());
    click(d, form, &log, "form.submit");

    // Queued → the form says so and closes; the agent sends it; the server has the customer.
    assert!(
        wait_for(Duration::from_secs(10), || stderr()
            .contains("registration submitted from the form")
            .then_some(()))
        .is_some(),
        "not submitted:\n{}",
        stderr()
    );
    assert!(
        wait_for(Duration::from_secs(10), || find_window(d, "^Registrace")
            .is_none()
            .then_some(()))
        .is_some(),
        "form did not close"
    );
    // The form took the focus; closing it gives the focus back to the POS (no window manager
    // runs here, so only the agent can).
    agent.assert_focus_back(pos, "the register form");
    let q = wait_for(Duration::from_secs(20), || {
        Some(server_quote(&srv, &token, CARD)).filter(|q| q["kind"] == "customer")
    })
    .unwrap_or_else(|| panic!("registration not on the server; agent log:\n{}", stderr()));
    assert_eq!(
        q["quote"]["display_name"],
        format!("{} {}", NAME.0, NAME.1),
        "typed name arrived differently: {q}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || sync_log_has(
            &till,
            "registration for card 1900-****-****-1016 applied on the server"
        )
        .then_some(()))
        .is_some(),
        "ack not in the sync log:\n{}",
        stderr()
    );
    assert!(!stderr().contains(CARD), "full card number in the agent's log");

    // The other button: a migration code for the next new card (Enter in the code field submits).
    const PAIR_CARD: &str = "1900000009001024";
    x_ok(d, "xdotool", &["windowfocus", "--sync", &pos.to_string()]);
    let shown = (0..4).find_map(|_| {
        agent.scan(PAIR_CARD);
        wait_for(Duration::from_secs(6), || {
            stderr().contains("\"card\":\"1900-****-****-1024\"").then_some(())
        })
    });
    assert!(shown.is_some(), "no popup for the second card:\n{}", stderr());
    std::thread::sleep(Duration::from_millis(700));
    click(d, popup, &log, "popup.migration_code");
    let form = wait_for(Duration::from_secs(15), || find_window(d, "ze star"))
        .unwrap_or_else(|| panic!("no code form:\n{}", stderr()));
    x_ok(d, "xdotool", &["windowfocus", "--sync", &form.to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    click(d, form, &log, "form.code");
    x_ok(d, "setxkbmap", &["-display", d, "us"]);
    x_ok(d, "xdotool", &["type", "--delay", "60", "KLUB-4821"]);
    x_ok(
        d,
        "import",
        &["-window", "root", shots.join("enrol-code-cs.png").to_str().unwrap()],
    );
    x_ok(d, "xdotool", &["key", "Return"]);
    let q = wait_for(Duration::from_secs(20), || {
        Some(server_quote(&srv, &token, PAIR_CARD)).filter(|q| q["kind"] == "customer")
    })
    .unwrap_or_else(|| panic!("pairing not on the server; agent log:\n{}", stderr()));
    assert_eq!(q["quote"]["display_name"], "Zdeňka Procházková");
    assert!(
        wait_for(Duration::from_secs(10), || find_window(d, "ze star")
            .is_none()
            .then_some(()))
        .is_some(),
        "code form did not close"
    );
    agent.assert_focus_back(pos, "the code form");

    // Esc typed into the POS hides the popup (the popup never has the focus). In `run` the key
    // comes from the keyboard-wedge reader (`AgentEvent::Escape`), as on Windows, where the wedge
    // owns the process's Raw Input registration and the GUI toolkit sees no raw keys.
    let viewable = |w: u64| win_info(d, w).viewable;
    x_ok(d, "xdotool", &["windowfocus", "--sync", &pos.to_string()]);
    let shown = (0..4).find_map(|_| {
        agent.scan(PAIR_CARD);
        wait_for(Duration::from_secs(6), || {
            stderr().contains("\"title\":\"Zdeňka Procházková\"").then_some(())
        })
    });
    assert!(shown.is_some(), "no customer popup after pairing:\n{}", stderr());
    assert!(
        wait_for(Duration::from_secs(5), || viewable(popup).then_some(())).is_some(),
        "popup not shown"
    );
    x_ok(d, "xdotool", &["key", "Escape"]);
    assert!(
        wait_for(Duration::from_secs(5), || (!viewable(popup)).then_some(())).is_some(),
        "Esc did not hide the popup:\n{}",
        stderr()
    );
    agent.stop();
}
