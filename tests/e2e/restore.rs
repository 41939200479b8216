//! A restored server is noticed by the till: the server's database goes back to a backup taken
//! before 20 receipts the till had seen acknowledged; the server comes back on the same port with
//! a new identity, and the till sends all 20 again (each arrives once) and says so in its log
//! and `status`.
use std::path::Path;
use std::time::Duration;

use e2e::*;

/// A receipt in the protocol's JSON shape, numbered `RST-<no>`.
fn receipt(no: u32) -> String {
    format!(
        r#"{{"pos_receipt_no": "RST-{no}", "issued_at": "2026-11-23T10:{no:02}:00+01:00", "total": "{no}.50",
  "lines": [ {{"name": "Rohlík", "quantity": "1", "unit_price": "{no}.50", "line_total": "{no}.50", "vat_rate": "12", "kind": "sale"}} ] }}"#
    )
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

const RECEIPTS: &str = "SELECT COUNT(*) FROM receipts WHERE pos_receipt_no LIKE 'RST-%'";

#[test]
fn a_restored_server_gets_the_acknowledged_receipts_again_once_and_status_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = start_server(tmp.path());
    let token = add_till(&srv.db, STORE, TILL);
    let mut till = Till::new(&tmp.path().join("till"), &token, AgentToml::new(&srv.url));
    till.start();
    // The till has met the server (its identity is recorded) before the nightly backup.
    let met = wait_for(Duration::from_secs(30), || {
        (till.outbox_count("SELECT COUNT(*) FROM meta WHERE key='server_id'") == 1).then_some(())
    });
    assert!(
        met.is_some(),
        "no server identity recorded; agent log:\n{}",
        till.stderr()
    );
    srv.kill();
    let backup = tmp.path().join("backup.db");
    copy_db(&srv.db, &backup);
    srv.restart();

    // A day of 20 receipts, all acknowledged.
    for i in 1..=20 {
        till.drop_file(&format!("r{i}.json"), receipt(i).as_bytes());
    }
    let sent = wait_for(Duration::from_secs(40), || {
        (till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 20).then_some(())
    });
    assert!(sent.is_some(), "not all sent; agent log:\n{}", till.stderr());
    assert_eq!(server_count(&srv.db, RECEIPTS), 20);

    // The server notes its watermark every 5 s; then its disk dies and the backup is restored.
    std::thread::sleep(Duration::from_millis(5500));
    srv.kill();
    copy_db(&backup, &srv.db);
    assert_eq!(server_count(&srv.db, RECEIPTS), 0, "the backup predates the receipts");
    srv.restart();

    // The till notices the new identity and sends all 20 again.
    let again = wait_for(Duration::from_secs(60), || {
        (server_count(&srv.db, RECEIPTS) == 20
            && till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'") == 20)
            .then_some(())
    });
    assert!(
        again.is_some(),
        "the server has {} of 20 after the restore; agent log:\n{}",
        server_count(&srv.db, RECEIPTS),
        till.stderr()
    );
    assert_eq!(
        server_count(
            &srv.db,
            "SELECT COUNT(DISTINCT pos_receipt_no) FROM receipts WHERE pos_receipt_no LIKE 'RST-%'"
        ),
        20,
        "each receipt once"
    );
    let want = "acknowledged items are sent again, the customer cache is reloaded";
    let log = String::from_utf8(till.cli(&["log", "--tail", "500"]).stdout).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("the server's database was restored (server id "))
        .unwrap_or_else(|| panic!("no restore line in the sync log:\n{log}"));
    assert!(line.contains(&format!("20 {want}")), "{line}");
    let out = till.cli(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let note = st["last_restore"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_restore: {st}"));
    assert!(note.contains(&format!("20 {want}")), "{note}");
    let human = String::from_utf8(till.cli(&["status"]).stdout).unwrap();
    assert!(human.contains("Server restored:      "), "{human}");
    // A second check of the same (restored) server changes nothing: still 20, once each.
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(server_count(&srv.db, RECEIPTS), 20);
    assert_eq!(till.outbox_count("SELECT COUNT(*) FROM items WHERE state='sent'"), 20);
    let log = String::from_utf8(till.cli(&["log", "--tail", "500"]).stdout).unwrap();
    assert_eq!(log.matches("the server's database was restored").count(), 1, "{log}");
}
