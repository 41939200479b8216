//! The cashier's "find the customer / add a purchase / history" path under Xvfb with the real GUI
//! agent and the real server-stub (one agent start for all of it): receipts synced → a scan →
//! the popup's history expands to the ledger's newest entries; the global hotkey (default
//! Ctrl+Shift+F12) grabbed by the agent opens the search box over the POS, a phone number typed on
//! the Czech layout finds the customer → the same popup as a scan, and the POS has the keyboard
//! focus again; the tray's "Add purchase to card" form gets a scanned card into its card field and
//! its tag reaches the server. Screenshots in `target/<profile>/ui-screenshots/find-*.png`.
use std::time::Duration;

use e2e::*;

const SERVER_TAGS: &str = "SELECT COUNT(*) FROM receipt_tags WHERE pos_receipt_no = 'R-2001'";

/// The window `screen` ended fitted: its last "screen fit" line says `clipped=false` (while it
/// grows to fit, earlier ones may say otherwise).
fn assert_fits(agent: &GuiAgent, screen: &str) {
    let line = agent
        .last_line(&["screen fit", &format!("screen=\"{screen}\"")])
        .unwrap_or_else(|| panic!("{screen} never laid out:\n{}", agent.stderr()));
    assert!(line.contains("clipped=false"), "{screen} clips its content: {line}");
}

/// The outbox's items (kind, state, last error) for a failure message.
fn outbox_items(till: &Till) -> Vec<String> {
    let c = rusqlite::Connection::open(till.dir.join("outbox.db")).unwrap();
    let mut st = c
        .prepare(
            "SELECT kind || ' ' || state || ' attempts=' || attempts || ' next=' || next_attempt_at || ' ' || coalesce(last_error, '') FROM items",
        )
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn receipts_on_server(srv: &ServerHandle) -> i64 {
    server_count(&srv.db, "SELECT COUNT(*) FROM receipts")
}

#[test]
fn gui_history_hotkey_search_in_czech_and_tag_form_with_a_scanned_card() {
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
    // Two purchases of the demo customer, so the history has them.
    for f in ["R-1001.json", "R-1002.json"] {
        std::fs::copy(
            fixture(&format!("agent/demo-receipts/{f}")),
            till.dir.join("export").join(f),
        )
        .unwrap();
    }
    let pos = start_pos(d);
    let agent = GuiAgent::start(&till, &token, d);
    assert!(
        wait_for(Duration::from_secs(30), || (receipts_on_server(&srv) >= 2)
            .then_some(()))
        .is_some(),
        "receipts not synced:\n{}",
        agent.stderr()
    );

    // 1. History at a glance: scan → customer popup → its History button → the newest entries.
    let popup = (0..4).find_map(|_| {
        agent.scan(DEMO_CARD);
        wait_for(Duration::from_secs(6), || {
            widget_rect(&agent.stderr(), "popup.history")?;
            find_window(d, "till-agent popup")
        })
    });
    let popup = popup.unwrap_or_else(|| panic!("no customer popup with History; agent log:\n{}", agent.stderr()));
    let shown = agent.last_line(&["popup shown", "\"kind\":\"customer\""]).unwrap();
    assert!(
        shown.contains("\"history\":[{"),
        "the quote's ledger entries are in the popup: {shown}"
    );
    assert!(
        shown.contains("\"what\":\"nákup\""),
        "a purchase in the history: {shown}"
    );
    // What to tell the customer, in Czech (ui::say), on the first popup of this customer.
    assert!(
        shown.contains("\"say\":[\"Nová úroveň Stříbrná"),
        "cashier messages: {shown}"
    );
    std::thread::sleep(Duration::from_millis(700)); // fit + placement settle
    click(d, popup, &agent.log, "popup.history");
    agent.wait_log(
        Duration::from_secs(5),
        "popup history toggled open=true",
        "history did not expand",
    );
    assert!(
        wait_for(Duration::from_secs(5), || widget_rect(
            &agent.stderr(),
            "popup.history_table"
        ))
        .is_some(),
        "history table not drawn:\n{}",
        agent.stderr()
    );
    std::thread::sleep(Duration::from_millis(600));
    agent.screenshot("find-history-cs.png");
    assert_eq!(
        agent.focus(),
        Some(pos.window),
        "clicking the popup left the focus to the POS"
    );
    assert_fits(&agent, "popup");

    // 2. The hotkey, pressed in the POS: the agent's grab opens the search box.
    x_ok(d, "setxkbmap", &["-display", d, "cz"]);
    // No window manager under Xvfb: the helper gives the new window the focus, as a WM would.
    agent.open_search(pos.window);
    // Digits on the Czech layout are shifted keys (ě š č ř … on the top row unshifted).
    x_ok(d, "xdotool", &["type", "--delay", "60", "601 111 222"]);
    std::thread::sleep(Duration::from_millis(300));
    agent.screenshot("find-search-box-cs.png");
    assert_fits(&agent, "find");
    x_ok(d, "xdotool", &["key", "Return"]);
    let found = wait_for(Duration::from_secs(15), || {
        agent.last_line(&["popup shown", "\"kind\":\"customer\"", "\"source\":\"search\""])
    })
    .unwrap_or_else(|| panic!("no popup for the typed phone number; agent log:\n{}", agent.stderr()));
    assert!(found.contains("\"title\":\"Jiří Dvořák\""), "{found}");
    assert!(
        !found.contains("\"say\""),
        "each message is shown once per cause: {found}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || find_window(d, "^Naj")
            .is_none()
            .then_some(()))
        .is_some(),
        "search box did not close"
    );
    agent.assert_focus_back(pos.window, "the search box");
    std::thread::sleep(Duration::from_millis(600));
    agent.screenshot("find-found-popup-cs.png");

    // Not found: the reason is named in the box, in Czech; Esc closes it, focus back to the POS.
    x_ok(d, "xdotool", &["key", "ctrl+shift+F12"]);
    let find = wait_for(Duration::from_secs(15), || find_window(d, "^Naj"))
        .unwrap_or_else(|| panic!("no search box after the hotkey; agent log:\n{}", agent.stderr()));
    x_ok(d, "xdotool", &["windowfocus", "--sync", &find.to_string()]);
    std::thread::sleep(Duration::from_millis(400));
    click(d, find, &agent.log, "find.query");
    x_ok(d, "xdotool", &["type", "--delay", "60", "nikdo@x.cz"]);
    x_ok(d, "xdotool", &["key", "Return"]);
    assert!(
        wait_for(Duration::from_secs(20), || widget_rect(&agent.stderr(), "find.error")).is_some(),
        "no error in the search box:\n{}",
        agent.stderr()
    );
    std::thread::sleep(Duration::from_millis(400));
    agent.screenshot("find-not-found-cs.png");
    assert_fits(&agent, "find");
    x_ok(d, "xdotool", &["key", "Escape"]);
    assert!(
        wait_for(Duration::from_secs(5), || find_window(d, "^Naj")
            .is_none()
            .then_some(()))
        .is_some(),
        "Esc did not close the search box"
    );
    agent.assert_focus_back(pos.window, "closing the search box");
    x_ok(d, "setxkbmap", &["-display", d, "us"]);

    // 3. "Add purchase to card" from the tray: receipt number typed, the card scanned into the form.
    assert_eq!(server_count(&srv.db, SERVER_TAGS), 0);
    agent.menu("tag_purchase");
    let form = wait_for(Duration::from_secs(15), || find_window(d, "kup na kartu"))
        .unwrap_or_else(|| panic!("no tag form; agent log:\n{}", agent.stderr()));
    x_ok(d, "xdotool", &["windowfocus", "--sync", &form.to_string()]);
    assert!(
        wait_for(Duration::from_secs(10), || widget_rect(&agent.stderr(), "tag.submit")).is_some(),
        "tag form not laid out:\n{}",
        agent.stderr()
    );
    std::thread::sleep(Duration::from_millis(400));
    click(d, form, &agent.log, "tag.receipt");
    x_ok(d, "xdotool", &["type", "--delay", "60", "R-2001"]);
    // The cashier picks up the card: a pause ends the typed burst (the detector's slow gap).
    std::thread::sleep(Duration::from_millis(1000));
    // The scanner types into the focused receipt field; the agent moves the card into its field.
    agent.scan(DEMO_CARD);
    agent.wait_log(
        Duration::from_secs(10),
        "scan routed into the tag form's card field",
        "the scan did not reach the form",
    );
    std::thread::sleep(Duration::from_millis(800));
    agent.screenshot("find-tag-form-cs.png");
    assert_fits(&agent, "tag");
    click(d, form, &agent.log, "tag.submit");
    agent.wait_log(
        Duration::from_secs(10),
        "receipt tag submitted from the form",
        "tag not submitted",
    );
    assert!(
        wait_for(Duration::from_secs(20), || (server_count(&srv.db, SERVER_TAGS) == 1)
            .then_some(()))
        .is_some(),
        "the tag did not reach the server; outbox: {:?} (now {}); server log:\n{}\nagent log:\n{}",
        outbox_items(&till),
        chrono::Utc::now().timestamp_millis(),
        std::fs::read_to_string(&srv.log).unwrap_or_default(),
        agent.stderr()
    );
    let tag_card: String = server_conn(&srv.db)
        .query_row(
            "SELECT json_extract(payload, '$.card') FROM receipt_tags WHERE pos_receipt_no = 'R-2001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        tag_card, DEMO_CARD,
        "the scanned card, not the typed receipt field's digits"
    );
    assert!(
        wait_for(Duration::from_secs(10), || find_window(d, "kup na kartu")
            .is_none()
            .then_some(()))
        .is_some(),
        "tag form did not close"
    );
    agent.assert_focus_back(pos.window, "the tag form");
    assert!(
        !agent.stderr().contains(DEMO_CARD),
        "full card number in the agent's log"
    );
    agent.stop();
}
