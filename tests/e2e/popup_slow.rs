//! A server slow to answer a scan's quote, under Xvfb with the real GUI agent, the real
//! server-stub and the fault proxy between them: the popup shows the offline quote from the
//! cache at once (marked offline and "waiting for the server"), then the server's quote replaces
//! it; when the server does not answer within the quote timeout, the final popup is the offline
//! quote without the "waiting" line.
use std::time::Duration;

use e2e::proxy::{Fault, Proxy};
use e2e::*;
use serde_json::Value;

/// The JSON of a `popup=` log line.
fn popup_json(line: &str) -> Value {
    let start = line.find("popup=").expect("popup= in the line") + "popup=".len();
    let mut de = serde_json::Deserializer::from_str(&line[start..]).into_iter::<Value>();
    de.next().expect("a JSON popup").expect("valid JSON")
}

#[test]
fn slow_server_popup_shows_the_offline_quote_first_then_the_servers() {
    if !need_tools(&["Xvfb", "xdotool"]) {
        return;
    }
    let xv = start_xvfb(1280, 1024);
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let proxy = Proxy::start(format!("127.0.0.1:{}", srv.port).parse().unwrap());
    let till = Till::new(
        &tmp.path().join("till"),
        &token,
        AgentToml::new(&proxy.url()).hide_after_secs(0),
    );
    let agent = GuiAgent::start(&till, &token, d);
    // The offline quote needs the cache: the first sync fills it (rules and the demo card).
    assert!(
        till.wait_cache_has(DEMO_CARD),
        "the cache never got the demo card:\n{}",
        agent.stderr()
    );

    // Server answers after 150 ms: beyond [popup] offline_first_ms (10), within the 300 ms timeout.
    proxy.set_slow_ms(150);
    proxy.set(Fault::Slow);
    let finals = |a: &GuiAgent| a.stderr().matches("popup shown").count();
    let before = finals(&agent);
    let shown = (0..4).find_map(|_| {
        agent.scan(DEMO_CARD);
        wait_for(Duration::from_secs(6), || (finals(&agent) > before).then_some(()))
    });
    assert!(shown.is_some(), "no popup for the scan:\n{}", agent.stderr());
    let log = agent.stderr();
    let lines: Vec<&str> = log.lines().collect();
    let early = lines
        .iter()
        .position(|l| l.contains("offline quote shown while the server answers"))
        .unwrap_or_else(|| panic!("the slow server's scan showed no early offline popup:\n{log}"));
    let last = lines.iter().rposition(|l| l.contains("popup shown")).unwrap();
    assert!(early < last, "the offline popup came before the server's:\n{log}");
    let first = popup_json(lines[early]);
    assert_eq!(first["kind"], "customer");
    assert!(
        first["offline"].as_str().is_some_and(|o| o.starts_with("Offline")),
        "the early popup says offline: {first}"
    );
    assert_eq!(first["waiting"], "Čekám na odpověď serveru…", "{first}");
    let fin = popup_json(lines[last]);
    assert_eq!(fin["title"], first["title"]);
    assert!(
        fin.get("offline").is_none() && fin.get("waiting").is_none(),
        "the server's quote replaced it: {fin}"
    );
    assert!(proxy.hits(Fault::Slow) > 0);

    // No answer within the quote timeout: the final popup is the offline quote, no longer waiting.
    x_ok(d, "xdotool", &["key", "Escape"]);
    proxy.set_slow_ms(3000);
    let early_n = |a: &GuiAgent| {
        a.stderr()
            .matches("offline quote shown while the server answers")
            .count()
    };
    let (e0, f0) = (early_n(&agent), finals(&agent));
    let shown = (0..4).find_map(|_| {
        agent.scan(DEMO_CARD);
        wait_for(Duration::from_secs(6), || (finals(&agent) > f0).then_some(()))
    });
    assert!(shown.is_some(), "no popup for the scan:\n{}", agent.stderr());
    assert!(early_n(&agent) > e0, "an early offline popup:\n{}", agent.stderr());
    let fin = popup_json(&agent.last_line(&["popup shown"]).unwrap());
    assert!(
        fin["offline"].as_str().is_some_and(|o| o.starts_with("Offline")),
        "{fin}"
    );
    assert!(fin.get("waiting").is_none(), "final: not waiting any more: {fin}");
}
