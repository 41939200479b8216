//! Our own X server (Xvfb on a free display) with its own D-Bus session bus (a desktop session:
//! the tray is a StatusNotifierItem on that bus), and the X clients the tests drive it with
//! (xdotool, xwininfo, import): one Xvfb starter, one `find_window`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{wait_for, Proc};

/// Our own Xvfb (killed on drop). `-displayfd`: Xvfb picks a free display itself and reports it
/// once it is ready, so parallel tests (and other Xvfbs on the machine) never collide.
pub struct Xvfb {
    /// `:N`
    pub display: String,
    pub proc: Proc,
    /// The session bus of this display's "desktop" ([`session_bus`] finds it by display).
    pub bus: SessionBus,
}

/// A private D-Bus session bus (`dbus-daemon --session`, killed on drop).
pub struct SessionBus {
    /// For `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
    pub proc: Proc,
}

/// Start a private session bus and wait for its address. No `dbus-daemon`: the test fails (the
/// tray needs a bus; `need_tools` with "Xvfb" also asks for `dbus-daemon`).
pub fn start_session_bus() -> SessionBus {
    let mut proc = Proc::spawn(
        "dbus-daemon",
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let address = first_line(&mut proc, Duration::from_secs(10))
        .expect("dbus-daemon did not print its address (is dbus-daemon installed? scripts/setup.sh)");
    let address = address.trim().to_string();
    assert!(address.starts_with("unix:"), "dbus-daemon said {address:?}");
    SessionBus { address, proc }
}

/// The first line `proc` prints on its (piped) stdout, waited for up to `timeout` (a daemon that
/// announces its address or display that way).
fn first_line(proc: &mut Proc, timeout: Duration) -> Option<String> {
    let stdout = proc.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(timeout).ok()
}

fn buses() -> &'static std::sync::Mutex<HashMap<String, String>> {
    static BUSES: std::sync::OnceLock<std::sync::Mutex<HashMap<String, String>>> = std::sync::OnceLock::new();
    BUSES.get_or_init(Default::default)
}

/// The session bus address of the Xvfb on `display` (for `DBUS_SESSION_BUS_ADDRESS` of a GUI agent
/// started there).
pub fn session_bus(display: &str) -> String {
    buses()
        .lock()
        .unwrap()
        .get(display)
        .cloned()
        .unwrap_or_else(|| panic!("no session bus for display {display} (start it with start_xvfb)"))
}

/// Start an Xvfb with one `width`x`height`x24 screen and wait until it answers `xdpyinfo`.
pub fn start_xvfb(width: u32, height: u32) -> Xvfb {
    let mut cmd = Command::new("Xvfb");
    cmd.args([
        "-displayfd",
        "1",
        "-screen",
        "0",
        &format!("{width}x{height}x24"),
        "-nolisten",
        "tcp",
        "-noreset",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut proc = Proc::spawn("Xvfb", &mut cmd);
    let n = first_line(&mut proc, Duration::from_secs(20))
        .expect("Xvfb did not report a display (is xvfb installed? scripts/setup.sh)");
    assert!(n.trim().parse::<u32>().is_ok(), "Xvfb said {n:?}");
    let display = format!(":{}", n.trim());
    let up = wait_for(Duration::from_secs(10), || {
        let ok = Command::new("xdpyinfo")
            .args(["-display", &display])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then_some(())
    });
    assert!(up.is_some(), "Xvfb {display} does not answer");
    let bus = start_session_bus();
    buses().lock().unwrap().insert(display.clone(), bus.address.clone());
    Xvfb { display, proc, bus }
}

impl Xvfb {
    /// Run the X client `prog` on this display; it must succeed.
    pub fn run(&self, prog: &str, args: &[&str]) {
        x_ok(&self.display, prog, args)
    }
}

/// Run the X client `prog` on `display` to completion (it must start).
pub fn x(display: &str, prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .env("DISPLAY", display)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
}

/// [`x`], and it must succeed.
pub fn x_ok(display: &str, prog: &str, args: &[&str]) {
    let o = x(display, prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// [`x`]'s stdout, trimmed.
pub fn x_stdout(display: &str, prog: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&x(display, prog, args).stdout)
        .trim()
        .to_string()
}

fn search(display: &str, name: &str, only_visible: bool) -> Option<u64> {
    let mut args = vec!["search"];
    if only_visible {
        args.push("--onlyvisible");
    }
    args.extend(["--name", name]);
    x_stdout(display, "xdotool", &args).lines().next()?.trim().parse().ok()
}

/// The first VISIBLE (mapped) window whose title matches the regex `name`. Only visible ones:
/// toolkits and Wine keep unmapped windows of the same title around (winit's hidden popups, Wine's
/// message-only windows), and a test that picked one of those would click or measure the wrong
/// window. Whether a window is gone for good is [`any_window`].
pub fn find_window(display: &str, name: &str) -> Option<u64> {
    search(display, name, true)
}

/// Any window whose title matches `name`, mapped or not (to see that a window was destroyed, not
/// only hidden).
pub fn any_window(display: &str, name: &str) -> Option<u64> {
    search(display, name, false)
}

/// What `xwininfo -id` says of a window: its client area (absolute), whether it is viewable
/// (mapped, parents mapped) and override-redirect (no window-manager focus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinInfo {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub viewable: bool,
    pub override_redirect: bool,
}

impl WinInfo {
    /// No pixel of one is inside the other.
    pub fn apart(&self, o: &WinInfo) -> bool {
        self.x + self.w <= o.x || o.x + o.w <= self.x || self.y + self.h <= o.y || o.y + o.h <= self.y
    }
}

/// [`WinInfo`] of window `id` (`xwininfo`; panics naming the missing field).
pub fn win_info(display: &str, id: u64) -> WinInfo {
    let out = x_stdout(display, "xwininfo", &["-id", &id.to_string()]);
    let num = |key: &str| -> i64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .trim()
            .parse()
            .unwrap()
    };
    WinInfo {
        x: num("Absolute upper-left X:"),
        y: num("Absolute upper-left Y:"),
        w: num("Width:"),
        h: num("Height:"),
        viewable: out.contains("Map State: IsViewable"),
        override_redirect: out.contains("Override Redirect State: yes"),
    }
}

/// Absolute (x, y) of a window's client area (`xwininfo`).
pub fn origin(display: &str, id: u64) -> (i64, i64) {
    let i = win_info(display, id);
    (i.x, i.y)
}

/// The last `laid out widget="NAME" x= y= w= h=` line the GUI logged (physical px, window-relative).
pub fn widget_rect(log: &str, name: &str) -> Option<(i64, i64, i64, i64)> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("laid out") && l.contains(&format!("widget=\"{name}\"")))?;
    let field = |k: &str| -> Option<i64> { line.split_whitespace().find_map(|t| t.strip_prefix(k))?.parse().ok() };
    Some((field("x=")?, field("y=")?, field("w=")?, field("h=")?))
}

/// Click the middle of a logged widget of window `win`.
pub fn click(display: &str, win: u64, log: &Path, name: &str) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (wx, wy, w, h) = widget_rect(&text, name).unwrap_or_else(|| panic!("{name} never laid out; log:\n{text}"));
    let (ox, oy) = origin(display, win);
    let (cx, cy) = ((ox + wx + w / 2).to_string(), (oy + wy + h / 2).to_string());
    x_ok(display, "xdotool", &["mousemove", "--sync", &cx, &cy]);
    std::thread::sleep(Duration::from_millis(150));
    x_ok(display, "xdotool", &["click", "1"]);
    std::thread::sleep(Duration::from_millis(250));
}

/// X keycodes (evdev + 8) a US-programmed scanner presses for the digits of `card`, then Enter.
pub fn scanner_keys(card: &str) -> Vec<String> {
    card.chars()
        .map(|c| match c {
            '1'..='9' => (c as u8 - b'1' + 10).to_string(),
            '0' => "19".into(),
            _ => panic!("{c}"),
        })
        .chain(std::iter::once("36".to_string()))
        .collect()
}
