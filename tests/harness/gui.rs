//! The GUI agent under Xvfb, started the way the cashier's tests need it: a POS stand-in window
//! (`xmessage`) that has the keyboard focus, then `till-agent run` on that display with its own
//! `XDG_RUNTIME_DIR` (single-instance socket) and its stderr in a file; helpers for what every
//! GUI test does with it (wait for a log line, a tray menu entry, a scanner's keys, the focus).
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{bin, click, find_window, scanner_keys, wait_for, widget_rect, x, x_ok, Proc, Till};

/// The POS stand-in: an `xmessage` window titled "POS stand-in" holding the keyboard focus.
pub struct Pos {
    pub window: u64,
    pub proc: Proc,
}

pub fn start_pos(display: &str) -> Pos {
    let proc = Proc::spawn(
        "xmessage",
        Command::new("xmessage")
            .args(["-geometry", "400x200+40+40", "-title", "POS stand-in", "POS stand-in"])
            .env("DISPLAY", display),
    );
    let window = wait_for(Duration::from_secs(10), || find_window(display, "POS stand-in")).expect("POS window");
    x_ok(display, "xdotool", &["windowfocus", "--sync", &window.to_string()]);
    Pos { window, proc }
}

/// A running `till-agent run` (GUI) on an Xvfb display.
pub struct GuiAgent {
    pub display: String,
    pub runtime: PathBuf,
    pub log: PathBuf,
    pub proc: Proc,
}

impl GuiAgent {
    /// Start the GUI agent of `till` with `token` on `display` and its session bus (`LANG` =
    /// cs_CZ.UTF-8, ui debug logging) and wait for its tray icon.
    pub fn start(till: &Till, token: &str, display: &str) -> GuiAgent {
        let runtime = till.dir.join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        let log = till.dir.join("gui.stderr");
        let proc = Proc::spawn(
            "till-agent run",
            Command::new(bin("till-agent"))
                .arg("--config")
                .arg(&till.config)
                .arg("run")
                .env("DISPLAY", display)
                .env("DBUS_SESSION_BUS_ADDRESS", crate::session_bus(display))
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("TILL_AGENT_TOKEN", token)
                .env("LANG", "cs_CZ.UTF-8")
                .env("TILL_AGENT_LOG", "info,till_agent::ui=debug,till_agent::input=debug")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        let g = GuiAgent {
            display: display.to_string(),
            runtime,
            log,
            proc,
        };
        g.wait_log(Duration::from_secs(30), "tray icon started", "GUI did not start");
        g
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the agent logged `needle`; panics with `what` and the log otherwise.
    pub fn wait_log(&self, timeout: Duration, needle: &str, what: &str) {
        let ok = wait_for(timeout, || self.stderr().contains(needle).then_some(()));
        assert!(
            ok.is_some(),
            "{what} (no {needle:?} in the agent log):\n{}",
            self.stderr()
        );
    }

    /// The last log line containing every one of `needles`.
    pub fn last_line(&self, needles: &[&str]) -> Option<String> {
        self.stderr()
            .lines()
            .rev()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
    }

    /// A tray menu entry, through the single-instance socket (the same channel a tray click uses).
    pub fn menu(&self, id: &str) {
        let out = Command::new(bin("till-agent"))
            .args(["popup-demo", "--menu", id])
            .env("DISPLAY", &self.display)
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "menu {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A card at scanner speed (8 ms per key, US-programmed scanner) into the focused window.
    pub fn scan(&self, card: &str) {
        let mut keys = vec!["key".to_string(), "--delay".into(), "8".into()];
        keys.extend(scanner_keys(card));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        x_ok(&self.display, "xdotool", &keys);
    }

    /// The search hotkey (Ctrl+Shift+F12) pressed in the POS window `pos`: waits for the search
    /// box, gives it the focus (as a window manager would) and clicks its query field.
    pub fn open_search(&self, pos: u64) {
        let d = self.display.as_str();
        x_ok(d, "xdotool", &["windowfocus", "--sync", &pos.to_string()]);
        x_ok(d, "xdotool", &["key", "ctrl+shift+F12"]);
        let find = wait_for(Duration::from_secs(15), || find_window(d, "^Naj"))
            .unwrap_or_else(|| panic!("no search box after the hotkey; agent log:\n{}", self.stderr()));
        x_ok(d, "xdotool", &["windowfocus", "--sync", &find.to_string()]);
        assert!(
            wait_for(Duration::from_secs(10), || widget_rect(&self.stderr(), "find.query")).is_some(),
            "search box not laid out:\n{}",
            self.stderr()
        );
        std::thread::sleep(Duration::from_millis(400));
        click(d, find, &self.log, "find.query");
    }

    /// The window that has the keyboard focus.
    pub fn focus(&self) -> Option<u64> {
        String::from_utf8_lossy(&x(&self.display, "xdotool", &["getwindowfocus"]).stdout)
            .trim()
            .parse()
            .ok()
    }

    /// Wait until `window` has the keyboard focus; panics naming `after`.
    pub fn assert_focus_back(&self, window: u64, after: &str) {
        let back = wait_for(Duration::from_secs(5), || (self.focus() == Some(window)).then_some(()));
        assert!(
            back.is_some(),
            "the POS did not get the focus back after {after}: focus {:?} (POS {window}); agent log:\n{}",
            self.focus(),
            self.stderr()
        );
    }

    /// Screenshot of the whole screen into `target/<profile>/ui-screenshots/NAME`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        screenshot(&self.display, name)
    }

    /// Stop it with SIGTERM and expect a clean exit.
    pub fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.proc.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let exit = wait_for(Duration::from_secs(20), || self.proc.child.try_wait().unwrap());
        assert!(exit.is_some_and(|s| s.success()), "no clean stop:\n{}", self.stderr());
        self.proc.kill();
    }
}

/// Screenshot of the whole screen of `display` into `target/<profile>/ui-screenshots/NAME`.
pub fn screenshot(display: &str, name: &str) -> PathBuf {
    let shots = crate::bin_dir().join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(name);
    x_ok(display, "import", &["-window", "root", shot.to_str().unwrap()]);
    eprintln!("screenshot: {}", shot.display());
    shot
}
