//! The Windows keyboard wedge (`agent/src/input/oskbd/windows.rs`) run for real: the cross-built
//! `till-agent.exe` under Wine on our own Xvfb, keys typed with xdotool (XTEST → Wine's X11
//! driver → Windows hardware input), a POS stand-in (`tests/wine/pos-standin.c`, built here with
//! mingw) holding the focus and logging every `WM_KEYDOWN` / `WM_KEYUP` / `WM_CHAR` it receives.
//!
//! One test function (one Wine prefix, ~15 s to create):
//! - **Passthrough** (`reader-test --json`, Raw Input sink on a message-only window): a card typed
//!   at scanner speed is a `loyalty_card` scan with the normalised id, human typing (120 ms/key and
//!   a fast typist's burst) is not; the POS receives every key. The device path Wine reports is
//!   parsed to `VID_xxxx&PID_yyyy`, and a config naming it as `dedicated` makes the same keyboard a
//!   scanner whatever its timing (the device-path match, for real).
//! - **The tray app** (`run`, GUI, passthrough): the wedge still hears the scan although winit
//!   registers keyboard Raw Input for the GUI in the same process (one target per process).
//! - **Intercept** (`run --headless` with `mode = "intercept"`, `WH_KEYBOARD_LL` hook + `SendInput`
//!   replays): the scan produces the customer's quote popup (server-stub on loopback) and the POS
//!   receives none of its keys; human typing reaches the POS exactly once, in order (replays are
//!   not re-captured).
//! - **Intercept, hook dropped** (as Windows drops a slow hook; fault-injected): noticed through
//!   Raw Input, reinstalled, the partial scan is a read error and its rest never reaches the POS.
//! - **The popup's DPI awareness** on the Windows path (`popup-demo` at LogPixels 96 and 192):
//!   twice the size and twice the corner margin at 192 DPI, and the POS keeps the focus.
//!
//! Timing: xdotool's 8 ms/key arrives as 8–9 ms gaps (X server timestamps, which Wine passes on
//! as the hook's / message's time); the detector's margins (≤ 20 ms gaps, ≤ 30 ms/char average,
//! bursts split only by a gap > 50 ms) are wide against that. The human inputs keep their own
//! margin: the fast typist's quick gaps come in pairs, so no single scheduling stall can make 4
//! consecutive quick gaps out of them.
//!
//! Needs wine, wineserver, x86_64-w64-mingw32-gcc, Xvfb, xdotool (scripts/setup.sh) and the
//! cross-built exe (see `wine::windows_exe`). Skips, saying why, only when wine itself is absent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{
    add_till, find_window, is, need_tools, repo_root, run_ok, start_server, wait_for, win_info, win_path, windows_exe,
    x, x_ok, AgentToml, Lines, Proc, Wine, DEMO_CARD, STORE, TILL,
};
use serde_json::Value;

/// X keycode (evdev + 8) of a US-layout character without Shift: digits, lower-case letters,
/// `-`, `=`, `;`, `/`, space, `\n` = Enter. [`shifted`] gives the others.
fn keycode(c: char) -> u8 {
    let evdev = match c {
        '1'..='9' => c as u8 - b'1' + 2,
        '0' => 11,
        '-' => 12,
        '=' => 13,
        ';' => 39,
        '/' => 53,
        ' ' => 57,
        '\n' => 28,
        'a'..='z' => {
            const ROWS: [(&str, u8); 3] = [("qwertyuiop", 16), ("asdfghjkl", 30), ("zxcvbnm", 44)];
            let (row, first) = ROWS.iter().find(|(r, _)| r.contains(c)).unwrap();
            first + row.find(c).unwrap() as u8
        }
        _ => panic!("no keycode for {c:?}"),
    };
    evdev + 8
}

/// The POS stand-in window (its log and X window id).
struct Pos {
    log: PathBuf,
    window: String,
    display: String,
    _proc: Proc,
}

impl Pos {
    fn start(wine: &Wine, work: &Path) -> Pos {
        let exe = work.join("pos-standin.exe");
        run_ok(
            "x86_64-w64-mingw32-gcc (POS stand-in)",
            Command::new("x86_64-w64-mingw32-gcc")
                .args(["-O2", "-Wall", "-o"])
                .arg(&exe)
                .arg(repo_root().join("tests/wine/pos-standin.c"))
                .args(["-luser32", "-lgdi32"]),
        );
        let log = work.join("pos.log");
        let proc = Proc::spawn(
            "pos-standin.exe",
            wine.cmd(exe.to_str().unwrap())
                .arg(win_path(&log))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let window = wait_for(Duration::from_secs(60), || {
            let ready = std::fs::read_to_string(&log).ok()?.lines().any(|l| l == "ready");
            let w = find_window(&wine.display, "^pos-standin$")?;
            ready.then(|| w.to_string())
        })
        .expect("the POS stand-in window did not come up under wine");
        Pos {
            log,
            window,
            display: wine.display.clone(),
            _proc: proc,
        }
    }

    /// Give the POS window the X input focus (Xvfb has no window manager) and check it has it.
    fn focus(&self) {
        let xdo = |args: &[&str]| {
            Command::new("xdotool")
                .args(args)
                .env("DISPLAY", &self.display)
                .output()
                .expect("xdotool")
        };
        xdo(&["windowfocus", "--sync", &self.window]);
        let f = String::from_utf8_lossy(&xdo(&["getwindowfocus"]).stdout)
            .trim()
            .to_string();
        assert_eq!(f, self.window, "the POS stand-in does not have the X focus");
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| *l != "ready")
            .map(str::to_string)
            .collect()
    }

    /// The characters (`WM_CHAR`) among `lines`; Enter shows as `\r`.
    fn chars(lines: &[String]) -> String {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("C "))
            .map(|h| char::from_u32(u32::from_str_radix(h, 16).unwrap()).unwrap())
            .collect()
    }

    /// Wait until the POS has received `want` (as characters) after line `from`; panic with
    /// everything it got otherwise. Returns all its lines after `from`.
    fn wait_chars(&self, from: usize, want: &str, what: &str) -> Vec<String> {
        let got = wait_for(Duration::from_secs(10), || {
            let l = self.lines();
            (Self::chars(&l[from.min(l.len())..]).len() >= want.chars().count()).then_some(())
        });
        std::thread::sleep(Duration::from_millis(300)); // anything extra (a double replay) lands too
        let l = self.lines()[from..].to_vec();
        assert!(
            got.is_some() && Self::chars(&l) == want,
            "{what}: the POS received {:?}, want {want:?}\n{}",
            Self::chars(&l),
            l.join("\n")
        );
        l
    }
}

/// The unshifted character on the key of a shifted one (`?` → `/`, `A` → `a`).
fn shifted(c: char) -> Option<char> {
    match c {
        '?' => Some('/'),
        'A'..='Z' => Some(c.to_ascii_lowercase()),
        _ => None,
    }
}

/// Type `text` with xdotool by keycode, `delay_ms` per key; shifted characters with Left Shift
/// held around them (one chained xdotool call).
fn type_text(display: &str, text: &str, delay_ms: u32) {
    let delay = delay_ms.to_string();
    let mut args: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, args: &mut Vec<String>| {
        if !run.is_empty() {
            args.extend(["key".to_string(), "--delay".into(), delay.clone()]);
            args.append(run);
        }
    };
    for c in text.chars() {
        match shifted(c) {
            None => run.push(keycode(c).to_string()),
            Some(base) => {
                flush(&mut run, &mut args);
                let k = keycode(base).to_string();
                for cmd in [["keydown", "50"], ["key", k.as_str()], ["keyup", "50"]] {
                    args.extend([cmd[0].to_string(), "--delay".into(), delay.clone(), cmd[1].to_string()]);
                }
            }
        }
    }
    flush(&mut run, &mut args);
    run_ok(
        "xdotool key",
        Command::new("xdotool").args(&args).env("DISPLAY", display),
    );
}

/// A fast typist: pairs of keys 12 ms apart, ~40 ms between pairs (measured 12 / 37–45 ms under
/// Wine: one burst, so intercept mode holds every key until the Enter decides; many quick gaps,
/// but never 4 in a row), Enter last. A stall can only lengthen a gap or squash one pause, which
/// leaves it human typing either way.
fn type_fast_typist(display: &str, text: &str) {
    let mut args: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, pair) in chars.chunks(2).enumerate() {
        if i > 0 {
            args.extend(["sleep".into(), "0.025".into()]);
        }
        args.extend(["key".into(), "--delay".into(), "12".into()]);
        args.extend(pair.iter().map(|c| keycode(*c).to_string()));
    }
    args.extend(["sleep".into(), "0.025".into(), "key".into(), keycode('\n').to_string()]);
    run_ok(
        "xdotool (fast typist)",
        Command::new("xdotool").args(&args).env("DISPLAY", display),
    );
}

fn decision(rt: &mut Lines, what: &str) -> Value {
    rt.wait(Duration::from_secs(15), |v| {
        is(v, "type", "scan") || is(v, "type", "not_scan")
    })
    .unwrap_or_else(|| panic!("{what}: no decision from reader-test\n{}", rt.transcript()))
}

/// `reader-test --json` of the Windows build, ready (its device line seen).
fn reader_test(wine: &Wine, exe: &Path, config: Option<&Path>, err: &Path) -> (Lines, Value) {
    let mut cmd = wine.cmd(exe.to_str().unwrap());
    if let Some(c) = config {
        cmd.arg("--config").arg(win_path(c));
    }
    cmd.args(["reader-test", "--json", "--seconds", "120"])
        .stderr(std::fs::File::create(err).unwrap());
    let mut rt = Lines::spawn("till-agent.exe reader-test", &mut cmd);
    let dev = rt
        .wait(Duration::from_secs(60), |v| is(v, "type", "device"))
        .unwrap_or_else(|| {
            panic!(
                "reader-test under wine reported no keyboard\n{}\nstderr: {}",
                rt.transcript(),
                std::fs::read_to_string(err).unwrap_or_default()
            )
        });
    assert!(
        rt.seen
            .iter()
            .any(|l| l.contains(r#""type":"ready""#) && l.contains("rawinput")),
        "{}",
        rt.transcript()
    );
    (rt, dev)
}

/// `VID_xxxx&PID_yyyy` of a Raw Input device path (`\\?\HID#VID_045E&PID_00DB&MI_00#…`).
fn vid_pid(path: &str) -> Option<String> {
    let up = path.to_ascii_uppercase();
    let i = up.find("VID_")?;
    let s = &up[i..];
    let ok = s.len() >= 17
        && s[4..8].chars().all(|c| c.is_ascii_hexdigit())
        && &s[8..13] == "&PID_"
        && s[13..17].chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| s[..17].to_string())
}

/// `run --headless` of the Windows build in intercept mode, its stderr in `err`, once its hook is in.
fn intercept_agent(wine: &Wine, exe: &Path, config: &Path, token: &str, err: &Path, env: &[(&str, &str)]) -> Lines {
    let mut cmd = wine.cmd(exe.to_str().unwrap());
    cmd.arg("--config")
        .arg(win_path(config))
        .args(["run", "--headless"])
        .env("TILL_AGENT_TOKEN", token)
        .envs(env.iter().copied());
    cmd.stderr(std::fs::File::create(err).unwrap());
    let agent = Lines::spawn("till-agent.exe run --headless (intercept)", &mut cmd);
    let log = || std::fs::read_to_string(err).unwrap_or_default();
    let hooked = wait_for(Duration::from_secs(60), || {
        log().contains("low-level keyboard hook installed").then_some(())
    });
    assert!(
        hooked.is_some(),
        "the agent did not install its keyboard hook:\n{}",
        log()
    );
    agent
}

#[test]
fn wine_keyboard_wedge_raw_input_passthrough_and_intercept() {
    if !need_tools(&[
        "wine",
        "wineserver",
        "x86_64-w64-mingw32-gcc",
        "Xvfb",
        "xdpyinfo",
        "xdotool",
        "xwininfo",
        "import",
    ]) {
        return;
    }
    let t0 = Instant::now();
    let exe = windows_exe();
    let work = tempfile::tempdir().unwrap();
    let xvfb = e2e::start_xvfb(1024, 768);
    let d = xvfb.display.clone();
    let wine = Wine::create(work.path(), &d);
    let pos = Pos::start(&wine, work.path());
    eprintln!(
        "wine input: prefix + POS stand-in ready after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // ---------------------------------------------------------------- passthrough (Raw Input)
    let (mut rt, dev) = reader_test(&wine, &exe, None, &work.path().join("reader-test.err"));
    let name = dev["name"].as_str().unwrap().to_string();
    eprintln!("wine input: Raw Input keyboard: id {} path {name}", dev["id"]);
    assert!(name.starts_with(r"\\?\HID#"), "device path {name:?}");
    let vidpid = vid_pid(&name).unwrap_or_else(|| panic!("no VID/PID in the device path {name:?}"));
    assert_eq!(dev["dedicated"], false);

    pos.focus();
    let from = pos.lines().len();
    type_text(&d, "1900-1234-5678-9012\n", 8);
    let v = decision(&mut rt, "scanner speed");
    assert_eq!(
        (v["type"].as_str(), v["class"].as_str()),
        (Some("scan"), Some("loyalty_card")),
        "{v}"
    );
    assert_eq!(v["card"], "1900123456789012", "{v}");
    assert_eq!(v["source"], format!("rawinput:{}", dev["id"]), "{v}");
    assert_eq!(v["device_name"], name.as_str(), "{v}");
    eprintln!(
        "wine input: scan gaps (ms) as the agent saw them: {}",
        v["stats"]["gaps_ms"]
    );
    // listen only: the POS gets the scan too
    pos.wait_chars(from, "1900-1234-5678-9012\r", "passthrough scan");

    // A magstripe track 2 (`;` `=` and a shifted `?`): decoded by scan code through Raw Input.
    let from = pos.lines().len();
    type_text(&d, ";98700223563013312=0000000000000004120?\n", 8);
    let v = decision(&mut rt, "track 2 at scanner speed");
    assert_eq!(
        (v["type"].as_str(), v["class"].as_str(), v["card"].as_str()),
        (Some("scan"), Some("loyalty_card"), Some("98700223563013312")),
        "{v}"
    );
    assert_eq!(v["payload"]["kind"], "magstripe", "{v}");
    pos.wait_chars(from, ";98700223563013312=0000000000000004120?\r", "passthrough track 2");

    let from = pos.lines().len();
    type_text(&d, "abc 12\n", 120);
    let v = decision(&mut rt, "human typing at 120 ms/key");
    assert_eq!(v["type"], "not_scan", "human typing taken as a scan: {v}");
    pos.wait_chars(from, "abc 12\r", "passthrough human typing");

    let from = pos.lines().len();
    type_fast_typist(&d, "abc 123x");
    let v = decision(&mut rt, "fast typist");
    assert_eq!(v["type"], "not_scan", "a fast typist taken as a scan: {v}");
    eprintln!(
        "wine input: fast typist: {} (gaps ms {})",
        v["reason"], v["stats"]["gaps_ms"]
    );
    pos.wait_chars(from, "abc 123x\r", "passthrough fast typist");
    // reader-test shows digits only as `digit`
    assert!(rt
        .seen
        .iter()
        .filter(|l| l.contains(r#""type":"key""#))
        .all(|l| !l.contains("KEY_1") && !l.contains("KEY_9")));
    drop(rt);

    // ---------------------------------------------------------------- dedicated device by VID/PID
    // The keyboard Wine reports, configured as the scanner by its path's VID&PID: a card typed
    // at human speed is a scan all the same.
    let till = work.path().join("till");
    let vidpid_lower = vidpid.to_lowercase();
    let ded_config = AgentToml::offline()
        .language(None)
        .rescan_secs(None)
        .dedicated(&[vidpid_lower.as_str()])
        .write(&till.join("dedicated.toml"));
    let (mut rt, dev) = reader_test(
        &wine,
        &exe,
        Some(&ded_config),
        &work.path().join("reader-test-dedicated.err"),
    );
    assert_eq!(dev["dedicated"], true, "{vidpid} configured as dedicated: {dev}");
    pos.focus();
    type_text(&d, "1900-1234-5678-9012\n", 120);
    let v = decision(&mut rt, "dedicated device at human speed");
    assert_eq!(
        (v["type"].as_str(), v["dedicated"].as_bool(), v["card"].as_str()),
        (Some("scan"), Some(true), Some("1900123456789012")),
        "{v}"
    );
    drop(rt);

    let server = start_server(work.path());
    let token = add_till(&server.db, STORE, TILL);
    let agent_config = |mode: &str| -> PathBuf {
        AgentToml::new(&server.url)
            .language(None)
            .rescan_secs(None)
            .mode(mode)
            .write(&till.join(format!("agent-{mode}.toml")))
    };

    // ---------------------------------------------------------------- the tray app (GUI), passthrough
    // The GUI's winit loop registers keyboard Raw Input for its own device events; Raw Input has
    // one target per device class per process, so the wedge must take it back or hear nothing.
    let gui_err = work.path().join("agent-gui.err");
    let mut cmd = wine.cmd(exe.to_str().unwrap());
    cmd.arg("--config")
        .arg(win_path(&agent_config("passthrough")))
        .arg("run")
        .env("TILL_AGENT_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&gui_err).unwrap());
    let mut gui = Proc::spawn("till-agent.exe run (GUI)", &mut cmd);
    let gui_log = || std::fs::read_to_string(&gui_err).unwrap_or_default();
    let up = wait_for(Duration::from_secs(60), || {
        (gui_log().contains("keyboard wedge: Raw Input sink") && gui_log().contains("tray icon started")).then_some(())
    });
    assert!(
        up.is_some(),
        "the tray app did not start its wedge and tray:\n{}",
        gui_log()
    );
    std::thread::sleep(Duration::from_millis(2500)); // the wedge checks its registration every second
    pos.focus();
    type_text(&d, "1900-0000-0900-0018\n", 8);
    let scanned = wait_for(Duration::from_secs(15), || {
        gui_log()
            .contains("loyalty card scanned source=rawinput:1 card=1900-****-****-0018")
            .then_some(())
    });
    let log = gui_log();
    assert!(
        scanned.is_some() || log.contains("loyalty card scanned source=rawinput:1"),
        "the tray app's wedge heard no scan:\n{log}"
    );
    assert!(
        scanned.is_some(),
        "scan logged, but not as the masked demo card:\n{log}"
    );
    eprintln!(
        "wine input: tray app: {}",
        log.lines()
            .find(|l| l.contains("re-registered ours"))
            .unwrap_or("(the wedge registered after the GUI: nothing to take back)")
    );
    gui.kill();

    // ---------------------------------------------------------------- intercept (LL hook + SendInput)
    let config = agent_config("intercept");
    let agent_err = work.path().join("agent.err");
    let mut agent = intercept_agent(&wine, &exe, &config, &token, &agent_err, &[]);
    let agent_log = || std::fs::read_to_string(&agent_err).unwrap_or_default();

    pos.focus();
    let from = pos.lines().len();
    type_text(&d, "1900-0000-0900-0018\n", 8);
    let popup = agent
        .wait(Duration::from_secs(20), |v| {
            v["source"].as_str().is_some_and(|s| s.starts_with("rawinput"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no popup for the intercepted scan\nstdout:\n{}\nstderr:\n{}",
                agent.transcript(),
                agent_log()
            )
        });
    assert_eq!(popup["kind"], "customer", "{popup}");
    assert_eq!(popup["title"], "Jiří Dvořák", "{popup}");
    assert!(
        popup["card"].as_str().unwrap().ends_with("0018") && !popup.to_string().contains(DEMO_CARD),
        "{popup}"
    );
    std::thread::sleep(Duration::from_millis(500)); // a (wrong) replay would land by now
    let got = pos.lines()[from..].to_vec();
    assert!(
        got.is_empty(),
        "intercept: the POS received keys of the scan:\n{}",
        got.join("\n")
    );

    // Human typing at 120 ms/key with Right Shift held for `!`, the Menu (Apps) key (no position
    // in our table: it must pass, not be blocked and lost), Left arrow and keypad Enter (E0 keys,
    // replayed as extended keys), Num Lock twice (extended in the hook, not in Raw Input: the
    // hook watchdog must not take it for a key that went past the hook).
    let from = pos.lines().len();
    let mut args: Vec<String> = vec!["key".into(), "--delay".into(), "120".into()];
    args.extend("abc ".chars().map(|c| keycode(c).to_string()));
    for step in [
        "keydown 62",
        "key 10",
        "keyup 62",
        "key 11",
        "key 135",
        "key 113",
        "key 77",
        "key 77",
        "key 104",
    ] {
        args.extend(["sleep".to_string(), "0.12".into()]);
        args.extend(step.split(' ').map(str::to_string));
    }
    run_ok(
        "xdotool (human typing)",
        Command::new("xdotool").args(&args).env("DISPLAY", &d),
    );
    let l = pos.wait_chars(from, "abc !2\r", "intercept: human typing replayed");
    // each key once, in order, with the virtual key the POS needs (VK_A = 0x41 …, VK_SHIFT for
    // Right Shift, scan 0x36) and up after down
    let downs: Vec<&str> = l.iter().filter_map(|l| l.strip_prefix("K ")).collect();
    assert_eq!(
        downs,
        [
            "41 1e", "42 30", "43 2e", "20 39", "10 36", "31 02", "32 03", "5d 15d", "25 14b", "90 145", "90 145",
            "0d 11c"
        ],
        "{}",
        l.join("\n")
    );
    let ups: Vec<&str> = l.iter().filter_map(|l| l.strip_prefix("U ")).collect();
    assert_eq!(
        ups,
        [
            "41 1e", "42 30", "43 2e", "20 39", "31 02", "10 36", "32 03", "5d 15d", "25 14b", "90 145", "90 145",
            "0d 11c"
        ],
        "{}",
        l.join("\n")
    );

    let from = pos.lines().len();
    type_fast_typist(&d, "abc 123x");
    pos.wait_chars(from, "abc 123x\r", "intercept: fast typist replayed");

    // and the card again: still swallowed after the replays (the hook is still there, not re-fed)
    let from = pos.lines().len();
    type_text(&d, "1900-0000-0900-0018\n", 8);
    assert!(
        agent
            .wait(Duration::from_secs(20), |v| is(v, "kind", "customer"))
            .is_some(),
        "no popup for the second scan\n{}",
        agent_log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = pos.lines()[from..].to_vec();
    assert!(
        got.is_empty(),
        "intercept: the POS received keys of the second scan:\n{}",
        got.join("\n")
    );
    let popups = agent.seen.iter().filter(|l| l.contains(r#""kind""#)).count();
    assert_eq!(
        popups,
        2,
        "one popup per scan, none for typing:\n{}",
        agent.transcript()
    );
    assert!(
        !agent_log().contains(DEMO_CARD),
        "the full card number is in the agent's log"
    );
    // the hook watchdog saw every key in Raw Input match a hook event: no false alarm
    assert!(
        !agent_log().contains("hook was gone"),
        "the hook watchdog fired with the hook in place:\n{}",
        agent_log()
    );
    drop(agent);

    // ---------------------------------------------------------------- intercept: the hook is dropped
    // Windows unhooks an LL hook that answers too slowly, without a word. Simulated: the agent
    // unhooks itself after 2 hook events (the "z" below, down + up). The next key goes past to
    // the POS; Raw Input (still listening) shows the agent that the hook did not see it: the hook
    // is reinstalled, the scan in progress becomes a read error ("scan again"), the rest of its
    // keys are swallowed (no Enter reaches the POS), and the next scan works again.
    let agent_err = work.path().join("agent-unhook.err");
    let mut agent = intercept_agent(
        &wine,
        &exe,
        &config,
        &token,
        &agent_err,
        &[("TILL_AGENT_FAULT_DROP_HOOK_AFTER", "2")],
    );
    let agent_log = || std::fs::read_to_string(&agent_err).unwrap_or_default();
    pos.focus();
    let from = pos.lines().len();
    type_text(&d, "z", 8);
    pos.wait_chars(from, "z", "intercept: the key before the hook is dropped");
    assert!(
        agent_log().contains("fault injection: dropped the low-level keyboard hook"),
        "{}",
        agent_log()
    );

    let from = pos.lines().len();
    type_text(&d, "1900-0000-0900-0018\n", 8);
    let popup = agent
        .wait(Duration::from_secs(20), |v| v.get("kind").is_some())
        .unwrap_or_else(|| {
            panic!(
                "no popup for the scan past the dropped hook\nstdout:\n{}\nstderr:\n{}",
                agent.transcript(),
                agent_log()
            )
        });
    assert_eq!(
        popup["kind"], "read_error",
        "a scan that partly went to the POS must not be taken as a card: {popup}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = agent_log();
    assert!(
        log.contains("low-level keyboard hook was gone") && log.contains("reinstalled it (1 time(s) since start)"),
        "{log}"
    );
    // and support staff find it in the sync log
    let shown = run_ok(
        "till-agent.exe log",
        wine.cmd(exe.to_str().unwrap())
            .arg("--config")
            .arg(win_path(&config))
            .args(["log", "--tail", "50"]),
    );
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.contains("WARN") && l.contains("reader") && l.contains("hook was gone")),
        "till-agent log:\n{shown}"
    );
    // `doctor` of the Windows build sees the Raw Input keyboard (and the server, with the token)
    let doc = wine
        .cmd(exe.to_str().unwrap())
        .arg("--config")
        .arg(win_path(&config))
        .arg("doctor")
        .env("TILL_AGENT_TOKEN", &token)
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&doc.stdout).replace("\r\n", "\n");
    assert!(
        doc.lines()
            .any(|l| l == "ok   keyboard wedge: rawinput, 1 keyboard(s), mode intercept"),
        "doctor:\n{doc}"
    );
    assert!(
        doc.lines().any(|l| l == "ok   till token valid: server accepted it"),
        "doctor:\n{doc}"
    );
    let got = pos.lines()[from..].to_vec();
    let leaked = Pos::chars(&got);
    assert!(
        // one key here; a loaded machine may let more through before the agent's thread runs, up
        // to the whole scan with its Enter (seen in CI): the read error then comes from the
        // leaked Enter (unit `input::detect::tests::a_scan_that_lost_keys_past_the_hook_…`)
        !leaked.is_empty() && "1900-0000-0900-0018\r".starts_with(&leaked),
        "the POS should have got only the first key(s) of the scan (went past the dropped hook), got {leaked:?}:\n{}",
        got.join("\n")
    );
    // every key that went past is released at the POS too (its up was replayed if the new hook took it)
    let downs: Vec<&str> = got.iter().filter_map(|l| l.strip_prefix("K ")).collect();
    let ups: Vec<&str> = got.iter().filter_map(|l| l.strip_prefix("U ")).collect();
    assert_eq!(downs, ups, "{}", got.join("\n"));

    let from = pos.lines().len();
    type_text(&d, "1900-0000-0900-0018\n", 8);
    assert!(
        agent
            .wait(Duration::from_secs(20), |v| is(v, "kind", "customer"))
            .is_some(),
        "no popup for the scan after the hook was reinstalled\n{}",
        agent_log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = pos.lines()[from..].to_vec();
    assert!(
        got.is_empty(),
        "intercept: the POS received keys of the scan after the reinstall:\n{}",
        got.join("\n")
    );
    eprintln!("wine input: the dropped hook let {leaked:?} through to the POS; reinstalled");
    drop(agent);

    // ---------------------------------------------------------------- the popup's DPI awareness (Windows path)
    // winit makes the process per-monitor DPI aware; Wine reports the DPI set in the prefix
    // (HKCU\Control Panel\Desktop\LogPixels) to such a process. At 192 DPI the popup must be twice
    // as large and twice as far from the screen corner as at 96 DPI (margins are logical), its
    // egui scale 2, and the POS must keep the focus (WS_EX_NOACTIVATE). font_scale 0.5 keeps the
    // 2× popup inside this 1024×768 screen.
    let popup_toml = work.path().join("popup.toml");
    std::fs::write(&popup_toml, "font_scale = 0.5\n").unwrap();
    let quote = repo_root().join("fixtures/ui/quote-customer-cs.json");
    let (sw, sh) = {
        let o = run_ok(
            "xdotool getdisplaygeometry",
            Command::new("xdotool").arg("getdisplaygeometry").env("DISPLAY", &d),
        );
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        let (w, h) = t.trim().split_once(' ').unwrap();
        (w.parse::<i64>().unwrap(), h.parse::<i64>().unwrap())
    };
    let show = |dpi: u32| -> (i64, i64, i64, i64) {
        run_ok(
            "reg add LogPixels",
            wine.cmd("reg").args([
                "add",
                r"HKCU\Control Panel\Desktop",
                "/v",
                "LogPixels",
                "/t",
                "REG_DWORD",
                "/d",
                &dpi.to_string(),
                "/f",
            ]),
        );
        pos.focus();
        let err = work.path().join(format!("popup-{dpi}.err"));
        let mut cmd = wine.cmd(exe.to_str().unwrap());
        cmd.args([
            "popup-demo",
            "--quote",
            &win_path(&quote),
            "--lang",
            "cs",
            "--no-tray",
            "--popup-config",
            &win_path(&popup_toml),
        ])
        .env("TILL_AGENT_LOG", "info,till_agent::ui=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
        let mut gui = Proc::spawn("till-agent.exe popup-demo", &mut cmd);
        let log = || std::fs::read_to_string(&err).unwrap_or_default();
        let win = wait_for(Duration::from_secs(60), || {
            log().contains("popup fitted").then_some(())?;
            find_window(&d, "^till-agent popup$")
        })
        .unwrap_or_else(|| panic!("{dpi} DPI: no popup under wine:\n{}", log()));
        std::thread::sleep(Duration::from_millis(800)); // resize, move and paint settle
        let i = win_info(&d, win);
        let g = (i.x, i.y, i.w, i.h);
        let shots = e2e::bin_dir().join("ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        x_ok(
            &d,
            "import",
            &[
                "-window",
                "root",
                shots.join(format!("wine-popup-{dpi}dpi.png")).to_str().unwrap(),
            ],
        );
        let focus = String::from_utf8_lossy(&x(&d, "xdotool", &["getwindowfocus"]).stdout)
            .trim()
            .to_string();
        assert_eq!(focus, pos.window, "{dpi} DPI: the popup took the focus from the POS");
        let ppp = if dpi == 192 { "ppp=2" } else { "ppp=1" };
        assert!(
            log().contains(ppp),
            "{dpi} DPI: want {ppp} in the GUI's log:\n{}",
            log()
        );
        gui.kill();
        let gone = wait_for(Duration::from_secs(20), || {
            find_window(&d, "^till-agent popup$").is_none().then_some(())
        });
        assert!(
            gone.is_some(),
            "{dpi} DPI: the popup stayed after its process was killed"
        );
        g
    };
    let (x1, y1, w1, h1) = show(96);
    let (x2, y2, w2, h2) = show(192);
    eprintln!("wine input: popup at 96 DPI {w1}x{h1}+{x1}+{y1}, at 192 DPI {w2}x{h2}+{x2}+{y2} (screen {sw}x{sh})");
    assert!(
        (w2 - 2 * w1).abs() <= 4 && (h2 - 2 * h1).abs() <= 4,
        "192 DPI: {w2}x{h2} is not twice {w1}x{h1}"
    );
    let (r1, b1, r2, b2) = (sw - x1 - w1, sh - y1 - h1, sw - x2 - w2, sh - y2 - h2);
    assert!(
        r1 > 0 && b1 > 0 && (r2 - 2 * r1).abs() <= 2 && (b2 - 2 * b1).abs() <= 2,
        "bottom-right margins {r1},{b1} at 96 DPI, {r2},{b2} at 192"
    );
    eprintln!("wine input: done in {:.1} s", t0.elapsed().as_secs_f64());
}
