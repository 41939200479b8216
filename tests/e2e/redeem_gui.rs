//! The cashier's Redeem path under Xvfb with the real agent GUI and the real server-stub:
//! scan → customer popup with the option → Redeem → confirm window → the popup shows, large, the
//! money to key into the POS and the code; the server's ledger has exactly one debit. The POS
//! stand-in gets the keyboard focus back when the confirm window closes (cancel and confirm; no
//! window manager runs, so only the agent can give it back), and the tray's "Void last
//! redemption" gives the points back once.
use std::time::Duration;

use e2e::*;
use serde_json::Value;

fn redemptions(srv: &ServerHandle, customer: &str) -> Vec<Value> {
    entries(srv, customer, "redemption")
}

fn entries(srv: &ServerHandle, customer: &str, kind: &str) -> Vec<Value> {
    srv.entries(customer, |e| e["kind"] == kind)
}

#[test]
fn gui_redeem_button_confirm_shows_value_and_code_and_debits_once() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "xmessage", "import"]) {
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
    assert!(redemptions(&srv, "C000001").is_empty());

    let pos_stand_in = start_pos(d);
    let agent = GuiAgent::start(&till, &token, d);
    let stderr = || agent.stderr();
    let log = agent.log.clone();

    let popup = (0..4).find_map(|_| {
        agent.scan(DEMO_CARD);
        wait_for(Duration::from_secs(6), || {
            widget_rect(&stderr(), "popup.redeem")?;
            find_window(d, "till-agent popup")
        })
    });
    let popup = popup.unwrap_or_else(|| panic!("no customer popup with Redeem; agent log:\n{}", stderr()));
    std::thread::sleep(Duration::from_millis(700)); // fit + placement settle
    let pos = pos_stand_in.window;
    assert_eq!(
        agent.focus(),
        Some(pos),
        "the popup with the Redeem button left the focus to the POS"
    );
    // The confirm window takes the focus (xdotool stands in for the window manager); once it
    // closes, the POS must have it again.
    let open_confirm = || {
        let confirm = wait_for(Duration::from_secs(15), || find_window(d, "1900-\\*\\*\\*\\*"))
            .unwrap_or_else(|| panic!("no confirm window; agent log:\n{}", stderr()));
        x_ok(d, "xdotool", &["windowfocus", "--sync", &confirm.to_string()]);
        assert!(
            wait_for(Duration::from_secs(10), || widget_rect(&stderr(), "redeem.confirm")
                .map(|_| ()))
            .is_some(),
            "confirm window not laid out:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            agent.focus(),
            Some(confirm),
            "the confirm window has the focus while open"
        );
        confirm
    };
    click(d, popup, &log, "popup.redeem");
    let confirm = open_confirm();
    click(d, confirm, &log, "redeem.cancel");
    assert!(
        wait_for(Duration::from_secs(5), || find_window(d, "1900-\\*\\*\\*\\*")
            .is_none()
            .then_some(()))
        .is_some(),
        "confirm window closed on cancel"
    );
    agent.assert_focus_back(pos, "cancel");
    assert!(redemptions(&srv, "C000001").is_empty(), "cancel debits nothing");

    agent.menu("redeem_last");
    let confirm = open_confirm();
    click(d, confirm, &log, "redeem.confirm");

    // The answer in the popup: the value to key in and the code, with exactly one server debit.
    let shown = wait_for(Duration::from_secs(15), || {
        stderr()
            .lines()
            .rev()
            .find(|l| l.contains("popup shown") && l.contains("\"source\":\"redeem\""))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no redemption result popup; agent log:\n{}", stderr()));
    let debits = redemptions(&srv, "C000001");
    assert_eq!(debits.len(), 1, "exactly one debit: {debits:?}");
    assert!(!shown.contains("\"severity\":\"error\""), "refused: {shown}");
    let rows = shown.matches("\"emphasis\":true").count();
    assert_eq!(rows, 2, "value + code rows: {shown}");
    assert!(find_window(d, "1900-\\*\\*\\*\\*").is_none(), "confirm window closed");
    agent.assert_focus_back(pos, "confirm");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.focus(), Some(pos), "the result popup left the focus to the POS");
    std::thread::sleep(Duration::from_millis(600));
    agent.screenshot("redeem-result.png");

    // Tray → Void last redemption: the popup says so and the points come back exactly once.
    agent.menu("void_last");
    let voided = wait_for(Duration::from_secs(15), || {
        stderr()
            .lines()
            .rev()
            .find(|l| l.contains("popup shown") && l.contains("Uplatnění stornováno"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no void popup; agent log:\n{}", stderr()));
    assert!(voided.contains("\"severity\":\"warning\""), "{voided}");
    let voids = entries(&srv, "C000001", "void");
    assert_eq!(voids.len(), 1, "exactly one void: {voids:?}");
    let debit: rust_decimal::Decimal = debits[0]["points"].as_str().unwrap().parse().unwrap();
    let back: rust_decimal::Decimal = voids[0]["points"].as_str().unwrap().parse().unwrap();
    assert!(debit < rust_decimal::Decimal::ZERO, "debit {debit}");
    assert_eq!(back, -debit, "the void gives the redeemed points back");
    assert_eq!(agent.focus(), Some(pos), "the void popup left the focus to the POS");
    assert!(!stderr().contains(DEMO_CARD), "full card number in the agent's log");
    assert_ledger_balanced(&srv);
}
