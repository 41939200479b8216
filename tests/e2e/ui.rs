//! End-to-end tests: the cashier popup on a real X server (our own Xvfb on a free display).
//! A POS stand-in window (`xmessage`) holds the keyboard focus; the real `till-agent` popup is
//! opened by the `popup-demo` hook (a quote exactly as a scan produces it); the window is found
//! with xdotool/xwininfo, its geometry, override-redirect and stacking checked, the focus must
//! still be on the POS window, and a screenshot (`import -window root`) is kept in the target
//! dir for a human to look at (Czech diacritics).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{
    any_window, bin, find_window, fixture, need_tools, wait_for, win_info, x, x_stdout, AgentToml, Proc, WinInfo, Xvfb,
};

fn start_xvfb() -> Xvfb {
    e2e::start_xvfb(1280, 1024)
}

fn focus(display: &str) -> String {
    x_stdout(display, "xdotool", &["getwindowfocus"])
}

/// Top-level windows, topmost first (`xwininfo -children` lists the stacking order top-down).
fn stacking(display: &str) -> Vec<u64> {
    x_stdout(display, "xwininfo", &["-root", "-children"])
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h.split_whitespace().next()?, 16).ok())
        })
        .collect()
}

fn above(display: &str, top: u64, below: u64) -> bool {
    let s = stacking(display);
    let pos = |w| s.iter().position(|&x| x == w);
    matches!((pos(top), pos(below)), (Some(a), Some(b)) if a < b)
}

fn agent(display: &str, runtime: &Path, args: &[&str], out: &Path, err: &Path) -> Command {
    let mut c = Command::new(bin("till-agent"));
    c.arg("popup-demo")
        .args(args)
        .env("DISPLAY", display)
        .env("DBUS_SESSION_BUS_ADDRESS", e2e::session_bus(display))
        .env("XDG_RUNTIME_DIR", runtime)
        .env("TILL_AGENT_LOG", "info")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(err).unwrap());
    c
}

fn shots_dir() -> PathBuf {
    let d = e2e::bin_dir().join("ui-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn popup_on_top_keeps_pos_focus_renders_czech_and_single_instance() {
    if !need_tools(&[
        "Xvfb", "xdpyinfo", "xdotool", "xwininfo", "xmessage", "import", "convert",
    ]) {
        return;
    }
    let xv = start_xvfb();
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();

    // The POS stand-in has the keyboard focus.
    let _pos_proc = Proc::spawn(
        "xmessage",
        Command::new("xmessage")
            .args(["-geometry", "400x200+40+40", "-title", "POS stand-in", "POS stand-in"])
            .env("DISPLAY", d),
    );
    let pos = wait_for(Duration::from_secs(10), || find_window(d, "POS stand-in")).expect("POS window");
    assert!(x(d, "xdotool", &["windowfocus", "--sync", &pos.to_string()])
        .status
        .success());
    assert_eq!(focus(d), pos.to_string());

    // A scan's quote opens the real popup.
    let quote = fixture("ui/quote-customer-cs.json");
    let (out, err) = (tmp.path().join("out.txt"), tmp.path().join("err.txt"));
    let mut gui = Proc::spawn(
        "till-agent",
        &mut agent(
            d,
            &runtime,
            &["--quote", quote.to_str().unwrap(), "--lang", "cs"],
            &out,
            &err,
        ),
    );
    let popup = wait_for(Duration::from_secs(30), || {
        let w = find_window(d, "till-agent popup")?;
        let i = win_info(d, w);
        (i.viewable && i.w >= 440).then_some(w)
    });
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let popup = popup.unwrap_or_else(|| panic!("popup window never appeared; agent stderr:\n{}", stderr()));
    // Let the fit-to-content resize and the first paint settle.
    std::thread::sleep(Duration::from_millis(700));

    let WinInfo {
        x: px,
        y: py,
        w: pw,
        h: ph,
        viewable: mapped,
        override_redirect,
    } = win_info(d, popup);
    assert!(
        mapped && override_redirect,
        "popup must be mapped and override-redirect (no WM focus)"
    );
    assert!(
        (440..=1248).contains(&pw) && (150..=800).contains(&ph),
        "popup size {pw}x{ph}"
    );
    // Bottom-right by default: 16 px from the right edge, 16 + 40 (panel) from the bottom.
    assert_eq!(
        (px + pw, py + ph),
        (1280 - 16, 1024 - 56),
        "popup at {px},{py} {pw}x{ph}"
    );
    assert!(
        above(d, popup, pos),
        "popup not above the POS window: {:?}",
        stacking(d)
    );
    assert_eq!(focus(d), pos.to_string(), "the POS window lost the keyboard focus");

    // What the cashier sees, also as the JSON line on stdout.
    let json_line = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value = serde_json::from_str(json_line.lines().next().expect("popup JSON line")).unwrap();
    assert_eq!(v["title"], "Jiří Čermák Žďárský");
    assert_eq!(v["rows"][4]["value"], "1\u{a0}234,50\u{a0}Kč");
    assert!(!json_line.contains("1900123456789012"), "full card number on stdout");
    // The tray starts under Xvfb (no StatusNotifier host needed).
    assert!(
        stderr().contains("tray icon started"),
        "tray did not start:\n{}",
        stderr()
    );

    // Screenshot: the popup area is not blank (many colours: anti-aliased text on white).
    let shot = shots_dir().join("popup-cs.png");
    assert!(x(d, "import", &["-window", "root", shot.to_str().unwrap()])
        .status
        .success());
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "screenshot too small");
    let colours = x_stdout(
        d,
        "convert",
        &[
            shot.to_str().unwrap(),
            "-crop",
            &format!("{pw}x{ph}+{px}+{py}"),
            "+repage",
            "-format",
            "%k",
            "info:",
        ],
    );
    let colours: u32 = colours.parse().unwrap_or_else(|_| panic!("convert said {colours:?}"));
    assert!(colours > 20, "popup area looks blank ({colours} colours)");
    // What the renderer drew, pixel by pixel: the customer popup's green frame (0x2e7d32, 6 px
    // wide) at its left edge, white inside it (a wrong colour order or an empty canvas fails).
    let pixel = |x: i64, y: i64| {
        x_stdout(
            d,
            "convert",
            &[
                shot.to_str().unwrap(),
                "-format",
                &format!("%[pixel:p{{{x},{y}}}]"),
                "info:",
            ],
        )
    };
    let frame_px = pixel(px + 3, py + ph / 2);
    assert!(
        frame_px == "srgb(46,125,50)" || frame_px == "rgb(46,125,50)",
        "popup frame pixel {frame_px}"
    );
    let inside = pixel(px + pw - 12, py + 12);
    assert!(
        inside == "white" || inside.ends_with("(255,255,255)"),
        "inside pixel {inside}"
    );
    eprintln!("screenshot: {}", shot.display());

    // The POS comes back on top; a second start signals the first (which shows its last popup
    // on top again, still without taking the focus) and exits.
    assert!(x(d, "xdotool", &["windowraise", &pos.to_string()]).status.success());
    assert!(wait_for(Duration::from_secs(5), || above(d, pos, popup).then_some(())).is_some());
    let (out2, err2) = (tmp.path().join("out2.txt"), tmp.path().join("err2.txt"));
    let mut second = agent(d, &runtime, &["--payment-last4", "9999"], &out2, &err2)
        .spawn()
        .unwrap();
    let status = wait_for(Duration::from_secs(20), || second.try_wait().unwrap());
    let status = status.unwrap_or_else(|| {
        let _ = second.kill();
        panic!("second instance did not exit")
    });
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&err2).unwrap().contains("already runs"),
        "{}",
        std::fs::read_to_string(&err2).unwrap()
    );
    assert!(
        wait_for(Duration::from_secs(10), || above(d, popup, pos).then_some(())).is_some(),
        "last popup not shown on top again: {:?}\nagent stderr:\n{}",
        stacking(d),
        stderr()
    );
    assert_eq!(focus(d), pos.to_string());

    // Esc, typed into the POS (the popup has no focus), hides the popup; the POS keeps the focus.
    assert!(x(d, "xdotool", &["key", "Escape"]).status.success());
    let hidden = wait_for(Duration::from_secs(10), || (!win_info(d, popup).viewable).then_some(()));
    assert!(hidden.is_some(), "popup still mapped after Esc");
    assert_eq!(focus(d), pos.to_string());

    // Shown again by a third start; a click hides it; the POS keeps the focus.
    let status = agent(d, &runtime, &["--payment-last4", "9999"], &out2, &err2)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_for(Duration::from_secs(10), || win_info(d, popup).viewable.then_some(())).is_some(),
        "not re-shown"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (cx, cy) = ((px + pw / 2).to_string(), (py + ph / 2).to_string());
    assert!(x(d, "xdotool", &["mousemove", &cx, &cy, "click", "1"]).status.success());
    let hidden = wait_for(Duration::from_secs(10), || (!win_info(d, popup).viewable).then_some(()));
    assert!(hidden.is_some(), "popup still mapped after a click");
    assert_eq!(focus(d), pos.to_string());
    gui.kill();
}

#[test]
fn popup_hides_by_itself_and_warns_for_a_payment_card() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "import"]) {
        return;
    }
    let xv = start_xvfb();
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let (out, err) = (tmp.path().join("out.txt"), tmp.path().join("err.txt"));
    let mut gui = Proc::spawn(
        "till-agent",
        &mut agent(
            d,
            tmp.path(),
            &[
                "--payment-last4",
                "4111111111111111",
                "--lang",
                "hr",
                "--hide-after",
                "2",
                "--no-tray",
            ],
            &out,
            &err,
        ),
    );
    let popup = wait_for(Duration::from_secs(30), || {
        let w = find_window(d, "till-agent popup")?;
        win_info(d, w).viewable.then_some(w)
    })
    .unwrap_or_else(|| panic!("no popup: {}", std::fs::read_to_string(&err).unwrap_or_default()));
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(v["kind"], "payment_card");
    assert_eq!(v["title"], "Platna kartica!");
    assert_eq!(v["card"], "…1111");
    let shot = shots_dir().join("popup-hr-payment.png");
    assert!(x(d, "import", &["-window", "root", shot.to_str().unwrap()])
        .status
        .success());
    let hidden = wait_for(Duration::from_secs(10), || (!win_info(d, popup).viewable).then_some(()));
    assert!(hidden.is_some(), "popup did not hide after 2 s");
    // SIGTERM ends it (popup-demo keeps no bus sender: its GUI bridge once stopped listening
    // for the signal when the bus closed, and the process ignored SIGTERM)
    assert!(Command::new("kill")
        .args(["-TERM", &gui.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let st = wait_for(Duration::from_secs(10), || gui.child.try_wait().ok().flatten());
    assert!(
        st.is_some_and(|s| s.success()),
        "popup-demo did not stop on SIGTERM: {st:?}\n{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
}

#[test]
fn popup_demo_without_display_falls_back_to_headless_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin("till-agent"))
        .args([
            "popup-demo",
            "--quote",
            fixture("ui/quote-customer-cs.json").to_str().unwrap(),
            "--lang",
            "en",
        ])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", tmp.path())
        .env("TILL_AGENT_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a JSON line")).unwrap();
    assert_eq!(v["kind"], "customer");
    assert_eq!(v["rows"][1]["value"], "5%");
    assert_eq!(v["rows"][4]["value"], "CZK\u{a0}1,234.50");
    assert_eq!(v["offline"], "Offline, as of 2026-11-22 18:30");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no GUI"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A till in `dir` for the GUI agent: offline (nothing listens on port 9: the GUI must not care),
/// Czech, popups hiding after `hide_secs`. Returns its `XDG_RUNTIME_DIR`.
fn offline_till(dir: &Path, hide_secs: u32) -> PathBuf {
    let runtime = dir.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    AgentToml::offline()
        .hide_after_secs(hide_secs)
        .write(&dir.join("agent.toml"));
    runtime
}

/// `till-agent run` (the GUI agent) for the till in `dir` on display `d`.
fn gui_run(d: &str, dir: &Path, runtime: &Path) -> Command {
    let mut c = Command::new(bin("till-agent"));
    c.arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("run")
        .env("DISPLAY", d)
        .env("DBUS_SESSION_BUS_ADDRESS", e2e::session_bus(d))
        .env("XDG_RUNTIME_DIR", runtime)
        .env("TILL_AGENT_TOKEN", "not-used-offline");
    c
}

#[test]
fn agent_run_gui_tray_menu_windows_and_clean_stop() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "import"]) {
        return;
    }
    let xv = start_xvfb();
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let runtime = offline_till(dir, 5);
    let err = dir.join("agent.stderr");
    let mut agent_proc = gui_run(d, dir, &runtime)
        .env("TILL_AGENT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let started = wait_for(Duration::from_secs(30), || {
        stderr().contains("tray icon started").then_some(())
    });
    if started.is_none() {
        let _ = agent_proc.kill();
        panic!("GUI did not start:\n{}", stderr());
    }
    let menu = |id: &str| {
        let out = Command::new(bin("till-agent"))
            .args(["popup-demo", "--menu", id])
            .env("DISPLAY", d)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "menu {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A second start (the Start-menu shortcut clicked again) only activates the first: it exits
    // at once without starting a second background (no second watcher, readers or replicator).
    let second = gui_run(d, dir, &runtime).output().unwrap();
    assert!(
        second.status.success() && String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{second:?}"
    );
    let starts: i64 = rusqlite::Connection::open(dir.join("outbox.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM sync_log WHERE kind = 'start'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(starts, 1, "the second start ran a background of its own");

    // The tray menu entries, through the same channel a tray click uses.
    menu("sync_log");
    let log_win = wait_for(Duration::from_secs(15), || find_window(d, "Protokol synchronizace"));
    assert!(log_win.is_some(), "sync-log window did not open:\n{}", stderr());
    menu("about");
    assert!(
        wait_for(Duration::from_secs(15), || find_window(d, "O programu")).is_some(),
        "About did not open"
    );
    std::thread::sleep(Duration::from_millis(800));
    let shot = shots_dir().join("run-synclog-about-cs.png");
    assert!(x(d, "import", &["-window", "root", shot.to_str().unwrap()])
        .status
        .success());
    menu("show_last"); // no customer yet: a log line, no crash
    menu("sync_now");

    // SIGTERM: the GUI closes, the runtime flushes, exit 0.
    assert!(Command::new("kill")
        .args(["-TERM", &agent_proc.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_for(Duration::from_secs(20), || agent_proc.try_wait().unwrap());
    let status = status.unwrap_or_else(|| {
        let _ = agent_proc.kill();
        panic!("agent did not stop on SIGTERM:\n{}", stderr());
    });
    assert!(status.success(), "exit {status:?}:\n{}", stderr());
    assert!(stderr().contains("termination signal: closing the GUI"), "{}", stderr());
}

/// The tray as a desktop panel sees it: the GUI agent starts before any tray host (no
/// StatusNotifierWatcher yet: it says so and keeps its item on the bus); a panel then takes
/// `org.kde.StatusNotifierWatcher` and the item registers with it; the panel reads the item's
/// id, tooltip, icon and its Czech menu over D-Bus and clicks "Otevřít protokol synchronizace"
/// (dbusmenu `Event "clicked"`): the sync-log window opens on the X display.
#[test]
fn agent_tray_is_a_status_notifier_item_a_panel_can_click() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo"]) {
        return;
    }
    let xv = start_xvfb();
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let runtime = offline_till(dir, 5);
    let err = dir.join("agent.stderr");
    let mut agent_proc = Proc::spawn(
        "till-agent run",
        gui_run(d, dir, &runtime)
            .env("TILL_AGENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap()),
    );
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(30), || stderr()
            .contains("tray icon started")
            .then_some(()))
        .is_some(),
        "GUI did not start:\n{}",
        stderr()
    );
    assert!(
        stderr().contains("no StatusNotifierWatcher on the session bus"),
        "no word on the missing tray host:\n{}",
        stderr()
    );

    // The panel starts: the item registers with its watcher.
    let mut panel = e2e::sni::Panel::start(&xv.bus.address);
    let (sender, service) = panel
        .next_item(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("the item did not register with the new watcher:\n{}", stderr()));
    let pid = agent_proc.child.id();
    assert_eq!(
        service,
        format!("org.kde.StatusNotifierItem-{pid}-1"),
        "sender {sender}"
    );
    let text = |name: &str| String::try_from(panel.item_property(&service, name)).unwrap();
    assert_eq!(text("Id"), "till-agent");
    assert_eq!(text("Category"), "ApplicationStatus");
    assert_eq!(text("Status"), "Active");
    type Pixmaps = Vec<(i32, i32, Vec<u8>)>;
    let tip: (String, Pixmaps, String, String) = panel.item_property(&service, "ToolTip").try_into().unwrap();
    assert!(tip.2.starts_with("till-agent – "), "tooltip title {tip:?}");
    assert!(tip.3.contains("Poslední synchronizace"), "tooltip text {tip:?}");
    let icons: Pixmaps = panel.item_property(&service, "IconPixmap").try_into().unwrap();
    assert!(
        icons
            .iter()
            .any(|(w, h, px)| (*w, *h) == (32, 32) && px.len() == 32 * 32 * 4),
        "no 32x32 ARGB pixmap: {:?}",
        icons.iter().map(|i| (i.0, i.1, i.2.len())).collect::<Vec<_>>()
    );
    let menu_path = zbus::zvariant::OwnedObjectPath::try_from(panel.item_property(&service, "Menu"))
        .unwrap()
        .to_string();
    let menu = panel.menu(&service, &menu_path);
    let labels: Vec<&str> = menu.iter().filter(|e| !e.separator).map(|e| e.label.as_str()).collect();
    for want in [
        "Zobrazit posledního zákazníka",
        "Otevřít protokol synchronizace",
        "Synchronizovat nyní",
        "O programu",
        "Ukončit",
    ] {
        assert!(labels.contains(&want), "no {want:?} in the menu {labels:?}");
    }
    assert_eq!(labels.len(), 14, "{labels:?}");
    assert_eq!(menu.iter().filter(|e| e.separator).count(), 3, "{menu:?}");

    // A click on the sync-log entry opens its window, as the tray menu does.
    assert!(find_window(d, "Protokol synchronizace").is_none());
    let sync_log = menu
        .iter()
        .find(|e| e.label == "Otevřít protokol synchronizace")
        .unwrap();
    panel.click(&service, &menu_path, sync_log.id);
    assert!(
        wait_for(Duration::from_secs(15), || find_window(d, "Protokol synchronizace")).is_some(),
        "the sync-log window did not open after the D-Bus click:\n{}",
        stderr()
    );

    // SIGTERM: the item leaves the bus with the agent, exit 0.
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_for(Duration::from_secs(20), || agent_proc.child.try_wait().unwrap());
    assert!(status.is_some_and(|s| s.success()), "no clean stop:\n{}", stderr());
}

/// The Linux GUI agent links no GTK stack: the tray is a StatusNotifierItem over zbus (pure Rust),
/// the windows are drawn on the CPU into X11 buffers. (`ldd` of the built binary.)
#[test]
fn the_linux_agent_links_no_gtk_glib_cairo_or_pango() {
    if !need_tools(&["ldd"]) {
        return;
    }
    let out = Command::new("ldd").arg(bin("till-agent")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(libs.contains("libc.so"), "ldd said {libs}");
    let gtk: Vec<&str> = libs
        .lines()
        .filter(|l| {
            [
                "gtk",
                "gdk",
                "glib",
                "gio-",
                "gobject",
                "cairo",
                "pango",
                "appindicator",
            ]
            .iter()
            .any(|n| l.contains(n))
        })
        .collect();
    assert!(gtk.is_empty(), "GTK stack linked: {gtk:?}");
}

/// The Linux agent is a position-independent executable (ASLR) whose relative relocations are packed
/// (DT_RELR, `agent/build.rs`): the table the loader reads at every start, and which then stays
/// resident, is kilobytes instead of megabytes. (`readelf` of the built binary.)
#[test]
fn the_linux_agent_is_pie_with_packed_relative_relocations() {
    if !need_tools(&["readelf"]) {
        return;
    }
    let exe = bin("till-agent");
    let out = Command::new("readelf")
        .args(["-h", "-d", "-S", "-W"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("Type:") && l.contains("DYN")),
        "{} is not position-independent:\n{text}",
        exe.display()
    );
    assert!(text.contains("(RELR)"), "no DT_RELR in {}:\n{text}", exe.display());
    // What is left in .rela.dyn is the few non-relative relocations.
    let rela = text
        .lines()
        .find(|l| l.contains(" .rela.dyn "))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != ".rela.dyn").nth(4))
        .map(|size| u64::from_str_radix(size, 16).unwrap());
    assert!(
        rela.is_some_and(|size| size < 256 * 1024),
        ".rela.dyn of {} is {rela:?} bytes",
        exe.display()
    );
}

/// A till without a D-Bus session bus (no `DBUS_SESSION_BUS_ADDRESS`, no `$XDG_RUNTIME_DIR/bus`):
/// the agent runs on (the popup shows), and one log line says why there is no tray icon.
#[test]
fn without_a_session_bus_the_popup_works_and_one_line_says_why_no_tray() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo"]) {
        return;
    }
    let xv = start_xvfb();
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let err = tmp.path().join("err.txt");
    let _p = Proc::spawn(
        "till-agent popup-demo",
        Command::new(bin("till-agent"))
            .args(["popup-demo", "--lang", "cs", "--quote"])
            .arg(fixture("ui/quote-customer-cs.json"))
            .env("DISPLAY", d)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", tmp.path())
            .env("TILL_AGENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap()),
    );
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(20), || find_window(d, "till-agent popup")).is_some(),
        "no popup without a session bus:\n{}",
        stderr()
    );
    let why: Vec<String> = stderr()
        .lines()
        .filter(|l| l.contains("tray icon not available"))
        .map(str::to_string)
        .collect();
    assert_eq!(why.len(), 1, "{}", stderr());
    assert!(why[0].contains("no D-Bus session bus"), "{}", why[0]);
    assert!(!stderr().contains("tray icon started"), "{}", stderr());
}

/// Tray menu → Reader test: the real agent's readers publish each key (as `digit` / `letter` /
/// key name, with its gap) and each decision into the window while it is open — the same lines
/// as `till-agent reader-test` — and stop when it closes. Keys come from xdotool on the Xvfb
/// (XInput2 raw events, the agent's own wedge reader); the lines are also logged under
/// `till_agent::reader_test`, where the test reads them.
#[test]
fn agent_gui_reader_test_window_shows_keys_and_decisions_masked() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "import", "convert"]) {
        return;
    }
    let xv = start_xvfb();
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let runtime = offline_till(dir, 2);
    let err = dir.join("agent.stderr");
    let mut agent_proc = gui_run(d, dir, &runtime)
        .env("TILL_AGENT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    // The log file (with targets): logs/till-agent.log.<date>.
    let log = || -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(dir.join("logs")).into_iter().flatten().flatten() {
            s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        s
    };
    let reader_lines = || -> Vec<String> {
        log()
            .lines()
            .filter(|l| l.contains("till_agent::reader_test:"))
            .map(|l| l.split("till_agent::reader_test: ").nth(1).unwrap_or("").to_string())
            .collect()
    };
    let kill = |p: &mut std::process::Child| {
        let _ = p.kill();
        let _ = p.wait();
    };
    if wait_for(Duration::from_secs(30), || {
        stderr().contains("tray icon started").then_some(())
    })
    .is_none()
    {
        kill(&mut agent_proc);
        panic!("GUI did not start:\n{}", stderr());
    }
    // X keycodes (evdev + 8) of a US-programmed scanner / a person.
    let codes = |text: &str| -> Vec<String> {
        text.chars()
            .map(|c| match c {
                '1'..='9' => (c as u8 - b'1' + 10).to_string(),
                '0' => "19".into(),
                'a' => "38".into(),
                'b' => "56".into(),
                _ => panic!("{c}"),
            })
            .chain(std::iter::once("36".to_string()))
            .collect()
    };
    let typ = |delay: &str, text: &str| {
        let c = codes(text);
        let mut args = vec!["key", "--delay", delay];
        args.extend(c.iter().map(String::as_str));
        assert!(x(d, "xdotool", &args).status.success());
    };
    let card = "1900123456789012";

    // Idle: keys produce no reader-test lines (nothing is published while no test runs).
    std::thread::sleep(Duration::from_secs(1));
    typ("8", card);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        reader_lines().is_empty(),
        "reader-test lines while no test runs:\n{}",
        log()
    );

    let out = Command::new(bin("till-agent"))
        .args(["popup-demo", "--menu", "reader_test"])
        .env("DISPLAY", d)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "menu reader_test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let win = wait_for(Duration::from_secs(15), || find_window(d, "^Test "));
    let Some(win) = win else {
        kill(&mut agent_proc);
        panic!("Reader-test window did not open:\n{}", stderr());
    };
    assert!(
        wait_for(Duration::from_secs(10), || stderr()
            .contains("reader test on")
            .then_some(()))
        .is_some(),
        "{}",
        stderr()
    );

    // A card at scanner speed (8 ms/key), then a person typing 12ab at 150 ms/key.
    typ("8", card);
    typ("150", "12ab");
    let got = wait_for(Duration::from_secs(15), || {
        let l = reader_lines();
        (l.iter().any(|l| l.starts_with("SCAN x11:")) && l.iter().any(|l| l.starts_with("not a scan (x11:")))
            .then_some(l)
    });
    let Some(lines) = got else {
        kill(&mut agent_proc);
        panic!("no reader-test decisions logged:\n{}\n{}", log(), stderr());
    };
    std::thread::sleep(Duration::from_millis(800));
    let shot = shots_dir().join("reader-test-window-cs.png");
    assert!(x(d, "import", &["-window", &win.to_string(), shot.to_str().unwrap()])
        .status
        .success());
    // The window shows them: its area below the title and button is no longer blank.
    let ink = |file: &Path| -> f64 {
        let out = Command::new("convert")
            .arg(file)
            .args([
                "-crop",
                "700x300+0+70",
                "-colorspace",
                "Gray",
                "-format",
                "%[fx:minima]",
                "info:",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("convert: {out:?}"))
    };
    assert!(
        ink(&shot) < 0.5,
        "no text in the Reader-test window ({})",
        shot.display()
    );
    let text = lines.join("\n");
    println!("{text}");
    let scan = lines.iter().find(|l| l.starts_with("SCAN x11:")).unwrap();
    assert!(
        scan.contains("by timing: 16 chars") && scan.contains("→ loyalty card 1900-****-****-9012"),
        "{scan}"
    );
    let not_scan = lines.iter().find(|l| l.starts_with("not a scan (x11:")).unwrap();
    assert!(not_scan.contains("human typing"), "{not_scan}");
    let keys: Vec<&String> = lines.iter().filter(|l| l.trim_start().starts_with("x11:")).collect();
    assert!(keys.iter().filter(|l| l.contains(" digit ")).count() >= 18, "{text}");
    assert!(keys.iter().filter(|l| l.contains(" letter ")).count() >= 2, "{text}");
    assert!(keys.iter().any(|l| l.contains("KEY_ENTER")), "{text}");
    assert!(keys.iter().any(|l| l.contains(" ms")), "gaps shown: {text}");
    // The card number is nowhere: not in the reader-test lines, not in the log, not on stderr.
    for (name, s) in [
        ("reader-test lines", text.clone()),
        ("log file", log()),
        ("stderr", stderr()),
    ] {
        assert!(
            !s.contains(card) && !s.contains("KEY_1 ") && !s.contains("'1'"),
            "{name} shows the digits:\n{s}"
        );
    }

    // Close the window with its button (below the title): the test stops, keys are quiet again.
    assert!(x(
        d,
        "xdotool",
        &["mousemove", "--window", &win.to_string(), "30", "48", "click", "1"]
    )
    .status
    .success());
    if wait_for(Duration::from_secs(10), || {
        stderr().contains("reader test off").then_some(())
    })
    .is_none()
    {
        let shot = shots_dir().join("reader-test-close-failed.png");
        let _ = x(d, "import", &["-window", "root", shot.to_str().unwrap()]);
        kill(&mut agent_proc);
        panic!("closing the Reader-test window did not stop the test:\n{}", stderr());
    }
    assert!(
        wait_for(Duration::from_secs(10), || any_window(d, "^Test ")
            .is_none()
            .then_some(()))
        .is_some(),
        "window still there"
    );
    let n = reader_lines().len();
    typ("8", card);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(reader_lines().len(), n, "reader-test lines after the window closed");

    assert!(Command::new("kill")
        .args(["-TERM", &agent_proc.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_for(Duration::from_secs(20), || agent_proc.try_wait().unwrap());
    if status.is_none() {
        kill(&mut agent_proc);
        panic!("agent did not stop:\n{}", stderr());
    }
}
