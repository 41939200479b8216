//! Popup latency benchmark (printed figures, not a timed test): card terminator key → cashier
//! popup window mapped and painted on the X display, measured from OUTSIDE the agent process.
//!
//! Set-up: our own Xvfb, a real `server-stub` on loopback seeded with fixtures/seed/demo.json, and
//! the real GUI agent (`till-agent run`, release build) on that display, online. xdotool types the
//! demo card at scanner speed (8 ms per key) and Enter; the agent's own keyboard-wedge reader
//! (XInput2 raw events) decides the scan, quotes it and shows the popup. This process is a small X
//! client (x11rb) on the same display that records, in X server time (ms):
//!   - the terminator: the Enter key's XI_RawKeyPress on the root window (the event's own time);
//!   - mapped: the popup's MapNotify (SubstructureNotify on the root; MapNotify carries no time, so
//!     it is stamped by a zero-length property append on a window of ours right after it is read:
//!     an upper bound, one round trip late at most);
//!   - painted: the first DamageNotify (DAMAGE extension, the event's own time) on the popup after
//!     it was mapped. The window has no background (winit sets none), so the server paints
//!     nothing itself: the first damage is the agent's first frame put on the window (the frame
//!     rasterised on the CPU, put by softbuffer with MIT-SHM or PutImage) — "first frame drawn".
//!
//! Esc (from xdotool, seen by the agent's wedge reader) hides the popup between scans. N scans
//! (BENCH_POPUP_SCANS, 50) after one warm-up, then one more scan after the popup stayed hidden for
//! BENCH_POPUP_IDLE_SECS (300; a stand-in for an hour hidden).
//!
//! Baseline in the same run: terminator → quote in memory (the detector fed a scanner trace, the
//! Enter key decided, classified, quoted by the agent's QuoteService against the same server-stub).
//!
//! BENCH_POPUP_OFFLINE_FIRST_MS sets the agent's `[popup] offline_first_ms` (0 = wait for the server).
//!
//! Run: `cargo build --release -p server-stub -p till-agent && cargo bench -p till-agent --bench popup`
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use till_agent::input::detect::{Action, Detector};
use till_agent::input::{payload, script};
use x11rb::connection::Connection;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

const STORE: &str = "CZ-PRG-01";
/// An active card of fixtures/seed/demo.json.
const CARD: &str = "1900000009000018";
/// X keycode of Return (evdev 28 + 8): the scanner's terminator.
const ENTER: u32 = 36;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// target/<profile>/deps/popup-… → target/<profile>/<name>; BENCH_AGENT_BIN / BENCH_SERVER_BIN override
/// (e.g. this bench built in the dev profile against the release binaries).
fn sibling_bin(name: &str) -> PathBuf {
    let var = if name == "till-agent" {
        "BENCH_AGENT_BIN"
    } else {
        "BENCH_SERVER_BIN"
    };
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let p = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(name);
    assert!(
        p.exists(),
        "{} missing: cargo build --release -p server-stub -p till-agent first",
        p.display()
    );
    p
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    (at(50), at(99), v[v.len() - 1])
}

/// X keycodes a US-programmed scanner presses for the digits of `text`, then Enter.
fn keycodes(text: &str) -> Vec<String> {
    text.chars()
        .map(|c| match c {
            '1'..='9' => (c as u8 - b'1' + 10).to_string(),
            '0' => "19".into(),
            _ => panic!("{c}"),
        })
        .chain(std::iter::once(ENTER.to_string()))
        .collect()
}

fn xdotool(display: &str, args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("xdotool").args(args).env("DISPLAY", display).status()?;
    anyhow::ensure!(st.success(), "xdotool {args:?}: {st}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    for tool in ["Xvfb", "xdotool", "dbus-daemon"] {
        anyhow::ensure!(
            Command::new("which")
                .arg(tool)
                .stdout(Stdio::null())
                .status()?
                .success(),
            "{tool} missing (scripts/setup.sh installs it)"
        );
    }
    let scans = env_u64("BENCH_POPUP_SCANS", 50) as usize;
    let idle_secs = env_u64("BENCH_POPUP_IDLE_SECS", 300);
    let mut dir = tempfile::tempdir()?;
    if std::env::var_os("BENCH_POPUP_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!(
            "popup bench: keeping {} (the agent's log: till/agent.stderr)",
            dir.path().display()
        );
    }
    let (server, url, token) = start_server(dir.path())?;
    let baseline = rt_baseline(&url, &token, dir.path())?;

    let (xvfb, display) = start_xvfb()?;
    let (_bus, bus) = start_session_bus()?;
    let till = dir.path().join("till");
    std::fs::create_dir_all(till.join("export"))?;
    std::fs::create_dir_all(till.join("run"))?;
    std::fs::write(
        till.join("agent.toml"),
        format!(
            "server_url = \"{url}\"\nstore_id = \"{STORE}\"\ntill_id = \"T1\"\nexport_dir = \"export\"\n\
             tz_offset = \"+01:00\"\n\n[popup]\nhide_after_secs = 0\n{}",
            // BENCH_POPUP_OFFLINE_FIRST_MS: the agent's [popup] offline_first_ms (0 = always wait for
            // the server, as before the early offline popup); unset = the agent's default.
            std::env::var("BENCH_POPUP_OFFLINE_FIRST_MS")
                .map(|v| format!("offline_first_ms = {v}\n"))
                .unwrap_or_default()
        ),
    )?;
    let err_path = till.join("agent.stderr");
    let agent = Kill(
        Command::new(sibling_bin("till-agent"))
            .arg("--config")
            .arg(till.join("agent.toml"))
            .arg("run")
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .env("XDG_RUNTIME_DIR", till.join("run"))
            .env("HOME", &till)
            .env("TILL_AGENT_TOKEN", &token)
            .env(
                "TILL_AGENT_LOG",
                std::env::var("BENCH_POPUP_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()?,
    );
    let t0 = Instant::now();
    while !std::fs::read_to_string(&err_path)?.contains("tray icon started") {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(60),
            "GUI agent did not start:\n{}",
            std::fs::read_to_string(&err_path)?
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut x = Watcher::new(&display)?;
    let codes = keycodes(CARD);
    let type_card = || -> anyhow::Result<()> {
        let mut args = vec!["key", "--delay", "8"];
        args.extend(codes.iter().map(String::as_str));
        xdotool(&display, &args)
    };
    // Warm-up (and find the popup window): the wedge reader may need a moment after the tray.
    let mut popup = None;
    for _ in 0..10 {
        type_card()?;
        if let Some(w) = x.wait_popup_map(Duration::from_secs(5))? {
            popup = Some(w);
            break;
        }
    }
    let popup = popup.ok_or_else(|| {
        anyhow::anyhow!(
            "no popup window mapped after 10 scans:\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )
    })?;
    x.watch(popup)?;
    xdotool(&display, &["key", "Escape"])?;
    x.wait_unmap(popup, Duration::from_secs(10))?;

    let (mut mapped, mut painted) = (Vec::new(), Vec::new());
    for i in 0..scans {
        std::thread::sleep(Duration::from_millis(300));
        type_card()?;
        let m = x
            .measure(popup, Duration::from_secs(10))
            .map_err(|e| e.context(format!("scan {i}")))?;
        mapped.push(m.0);
        painted.push(m.1);
        xdotool(&display, &["key", "Escape"])?;
        x.wait_unmap(popup, Duration::from_secs(10))?;
    }
    eprintln!("popup bench: {scans} scans done; popup hidden now for {idle_secs} s");
    std::thread::sleep(Duration::from_secs(idle_secs));
    // Major page faults (pages read back from disk) of the scan after the idle time: after an hour
    // beside other work the kernel may have reclaimed the popup path's code and data pages.
    let faults_before = major_faults(agent.0.id());
    // The same for the X server and the server-stub (their pages may have gone too).
    let others_before = (major_faults(xvfb.0.id()), major_faults(server.0.id()));
    let early_before = early_offline(&err_path);
    type_card()?;
    let after_idle = x.measure(popup, Duration::from_secs(10))?;
    let idle_faults = major_faults(agent.0.id()).saturating_sub(faults_before);
    let others = (
        major_faults(xvfb.0.id()).saturating_sub(others_before.0),
        major_faults(server.0.id()).saturating_sub(others_before.1),
    );
    // Let the server's quote (if it was late) land in the log before counting.
    std::thread::sleep(Duration::from_millis(500));
    let idle_early = early_offline(&err_path) - early_before;
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", agent.0.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    drop(agent);
    drop(server);
    if std::env::var_os("BENCH_POPUP_KEEP").is_some() {
        let _ = dir.keep();
    }

    let (m50, m99, mmax) = pct(mapped);
    let (p50, p99, pmax) = pct(painted);
    let (b50, b99) = baseline;
    println!(
        "card terminator -> popup, {scans} scans (after 1 warm-up), X server time, agent {} on Xvfb; this bench debug={}",
        sibling_bin("till-agent").display(),
        cfg!(debug_assertions)
    );
    println!("  mapped (MapNotify)             p50 {m50:>6.1} ms  p99 {m99:>6.1} ms  max {mmax:>6.1} ms");
    println!("  painted (first DamageNotify)   p50 {p50:>6.1} ms  p99 {p99:>6.1} ms  max {pmax:>6.1} ms");
    println!(
        "  after {idle_secs} s hidden: mapped {:.1} ms, painted {:.1} ms (major page faults during that scan: agent {idle_faults}, Xvfb {}, server {})",
        after_idle.0, after_idle.1, others.0, others.1
    );
    println!(
        "  popups that showed the offline quote first (server silent > [popup] offline_first_ms): {early_before} before the idle time (warm-up + {scans} scans); after it: {}",
        if idle_early > 0 { "yes" } else { "no (the server's quote came first)" }
    );
    if idle_early > 0 {
        if let Some(ms) = replaced_after_ms(&err_path) {
            println!("  after the idle time the server's quote replaced the offline one {ms:.1} ms later (agent log)");
        }
    }
    println!("  baseline terminator -> quote in memory p50 {b50:.3} ms  p99 {b99:.3} ms");
    println!("  agent RSS after the bench: {:.1} MiB", rss_kib as f64 / 1024.0);
    println!(
        "TABLE\tcard terminator → popup mapped / first frame painted (X server time), p99 of {scans} scans\t{m99:.0} / {p99:.0} ms (p50 {m50:.0} / {p50:.0})\tterminator → quote in memory p99 {b99:.3} ms (p50 {b50:.3})"
    );
    println!(
        "TABLE\tcard terminator → popup mapped / painted after {idle_secs} s hidden\t{:.0} / {:.0} ms\tsame, popup hidden 0.3 s: p99 {m99:.0} / {p99:.0} ms",
        after_idle.0, after_idle.1
    );
    Ok(())
}

/// How many popups showed the offline quote while the server's answer was awaited (agent log).
fn early_offline(err_path: &Path) -> usize {
    std::fs::read_to_string(err_path)
        .unwrap_or_default()
        .matches("offline quote shown while the server answers")
        .count()
}

/// Agent log: the last early offline popup → the last `popup shown` (the final quote), in ms.
fn replaced_after_ms(err_path: &Path) -> Option<f64> {
    let log = std::fs::read_to_string(err_path).ok()?;
    let at = |needle: &str| {
        let line = log.lines().rev().find(|l| l.contains(needle))?;
        chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next()?).ok()
    };
    let early = at("offline quote shown while the server answers")?;
    let fin = at("popup shown")?;
    Some((fin - early).num_microseconds()? as f64 / 1000.0)
}

/// The process's major page faults so far (`/proc/PID/stat` field 12); 0 when unreadable.
fn major_faults(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(9)?.parse().ok())
        .unwrap_or(0)
}

/// The real server-stub on a free loopback port with the demo seed and one till. (url, token)
fn start_server(dir: &Path) -> anyhow::Result<(Kill, String, String)> {
    let bin = sibling_bin("server-stub");
    let db = dir.join("server.db");
    let db_s = db.to_str().unwrap();
    let seed = repo().join("fixtures/seed/demo.json");
    anyhow::ensure!(
        Command::new(&bin)
            .args(["seed", "--db", db_s])
            .arg(&seed)
            .status()?
            .success(),
        "seed failed"
    );
    let out = Command::new(&bin)
        .args(["till", "add", "--db", db_s, "--store", STORE, "--till", "T1"])
        .output()?;
    let token = String::from_utf8(out.stdout)?
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server = Kill(
        Command::new(&bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db", db_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(20), "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((server, url, token))
}

/// Xvfb on a display it picks itself (-displayfd). (process, ":N")
fn start_xvfb() -> anyhow::Result<(Kill, String)> {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
    let n: u32 = line.trim().parse().map_err(|_| anyhow::anyhow!("Xvfb said {line:?}"))?;
    Ok((Kill(child), format!(":{n}")))
}

/// A private D-Bus session bus (the tray's StatusNotifierItem lives there). (process, address)
fn start_session_bus() -> anyhow::Result<(Kill, String)> {
    let mut child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("dbus-daemon (scripts/setup.sh installs it): {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
    anyhow::ensure!(line.starts_with("unix:"), "dbus-daemon said {line:?}");
    Ok((Kill(child), line.trim().to_string()))
}

/// Terminator → quote in memory, p50/p99 ms (300 iterations after 20 warm-up): the detector fed a
/// scanner trace, the Enter key decided and classified, quoted online by the agent's QuoteService.
fn rt_baseline(url: &str, token: &str, dir: &Path) -> anyhow::Result<(f64, f64)> {
    let data = dir.join("baseline");
    std::fs::create_dir_all(data.join("export"))?;
    let text = format!(
        "server_url = \"{url}\"\nstore_id = \"{STORE}\"\ntill_id = \"T1\"\nexport_dir = \"export\"\ntz_offset = \"+01:00\"\n"
    );
    let cfg = till_agent::config::Config::from_str(&text, &data.join("agent.toml"))?;
    std::env::set_var("TILL_AGENT_TOKEN", token);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let online = till_agent::quote::QuoteService::new(&cfg)?;
        let policy = online.card_policy();
        let trace = script::parse(&script::typed(CARD, &[8], 3, 1, true))?;
        let enter_at = trace
            .iter()
            .position(|e| e.down && e.key == till_agent::input::keys::Key::ENTER)
            .unwrap();
        let mut v = Vec::new();
        for i in 0..320 {
            let mut det = Detector::new(Default::default());
            for e in &trace[..enter_at] {
                det.feed(*e);
            }
            let t = Instant::now();
            let text = det
                .feed(trace[enter_at])
                .iter()
                .find_map(|a| match a {
                    Action::Scan(s) => Some(s.text.clone()),
                    _ => None,
                })
                .ok_or_else(|| anyhow::anyhow!("the trace was not decided a scan"))?;
            let till_agent::events::Classified::LoyaltyCard { card } = payload::classify(&text, &policy) else {
                anyhow::bail!("not a loyalty card")
            };
            let q = online.quote(&card).await?;
            let d = t.elapsed();
            anyhow::ensure!(
                q.source == protocol::v1::QuoteSource::Online,
                "expected an online quote"
            );
            if i >= 20 {
                v.push(d.as_secs_f64() * 1e3);
            }
        }
        let (p50, p99, _) = pct(v);
        Ok((p50, p99))
    })
}

/// The bench's X client: XI2 raw key presses and root substructure events, DAMAGE on the popup,
/// and a window of its own to read the server time (PropertyNotify) when an event carries none.
struct Watcher {
    conn: RustConnection,
    root: u32,
    stamp_win: u32,
    damage: Option<u32>,
}

impl Watcher {
    fn new(display: &str) -> anyhow::Result<Watcher> {
        let (conn, screen) = x11rb::connect(Some(display))?;
        let root = conn.setup().roots[screen].root;
        conn.xinput_xi_query_version(2, 2)?.reply()?;
        conn.damage_query_version(1, 1)?.reply()?;
        conn.xinput_xi_select_events(
            root,
            &[xinput::EventMask {
                deviceid: 1, // XIAllMasterDevices
                mask: vec![xinput::XIEventMask::RAW_KEY_PRESS],
            }],
        )?
        .check()?;
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::SUBSTRUCTURE_NOTIFY),
        )?
        .check()?;
        let stamp_win = conn.generate_id()?;
        conn.create_window(
            0,
            stamp_win,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?
        .check()?;
        Ok(Watcher {
            conn,
            root,
            stamp_win,
            damage: None,
        })
    }

    /// Select structure + DAMAGE on the popup window.
    fn watch(&mut self, popup: u32) -> anyhow::Result<()> {
        self.conn
            .change_window_attributes(
                popup,
                &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
            )?
            .check()?;
        let d = self.conn.generate_id()?;
        self.conn
            .damage_create(d, popup, damage::ReportLevel::NON_EMPTY)?
            .check()?;
        self.damage = Some(d);
        Ok(())
    }

    fn next(&self, deadline: Instant) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some(e) = self.conn.poll_for_event()? {
                return Ok(Some(e));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The X server time now (a property append on our own window: PropertyNotify carries it).
    /// Events read meanwhile are returned to the caller, in order.
    fn server_time(&self) -> anyhow::Result<(u32, Vec<Event>)> {
        self.conn.change_property8(
            PropMode::APPEND,
            self.stamp_win,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            &[],
        )?;
        self.conn.flush()?;
        let mut other = Vec::new();
        loop {
            match self.conn.wait_for_event()? {
                Event::PropertyNotify(p) if p.window == self.stamp_win => return Ok((p.time, other)),
                e => other.push(e),
            }
        }
    }

    /// Warm-up: the first override-redirect window mapped after the terminator is the popup.
    fn wait_popup_map(&self, timeout: Duration) -> anyhow::Result<Option<u32>> {
        let deadline = Instant::now() + timeout;
        while let Some(e) = self.next(deadline)? {
            if let Event::MapNotify(m) = e {
                if m.event == self.root && m.override_redirect {
                    return Ok(Some(m.window));
                }
            }
        }
        Ok(None)
    }

    fn wait_unmap(&self, popup: u32, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while let Some(e) = self.next(deadline)? {
            if matches!(e, Event::UnmapNotify(u) if u.window == popup) {
                // Re-arm DAMAGE (NON_EMPTY reports once until the region is emptied again).
                if let Some(d) = self.damage {
                    self.conn.damage_subtract(d, 0u32, 0u32)?.check()?;
                }
                return Ok(());
            }
        }
        anyhow::bail!("the popup was not hidden by Esc within {timeout:?}")
    }

    /// One scan: (terminator → mapped, terminator → first frame painted), ms of X server time.
    fn measure(&self, popup: u32, timeout: Duration) -> anyhow::Result<(f64, f64)> {
        let damage = self.damage.expect("watch() first");
        let deadline = Instant::now() + timeout;
        let (mut key, mut mapped, mut painted) = (None, None, None);
        let mut queue: std::collections::VecDeque<Event> = Default::default();
        while key.is_none() || mapped.is_none() || painted.is_none() {
            let e = match queue.pop_front() {
                Some(e) => e,
                None => match self.next(deadline)? {
                    Some(e) => e,
                    None => anyhow::bail!("timed out: terminator {key:?}, mapped {mapped:?}, painted {painted:?}"),
                },
            };
            match e {
                Event::XinputRawKeyPress(k) if k.detail == ENTER && key.is_none() => key = Some(k.time),
                Event::MapNotify(m) if m.window == popup && key.is_some() && mapped.is_none() => {
                    let (t, more) = self.server_time()?;
                    queue.extend(more);
                    mapped = Some(t);
                }
                Event::DamageNotify(d) if d.damage == damage => {
                    if mapped.is_some() && painted.is_none() {
                        painted = Some(d.timestamp);
                    }
                    self.conn.damage_subtract(damage, 0u32, 0u32)?;
                    self.conn.flush()?;
                }
                _ => {}
            }
        }
        let k = key.unwrap();
        let ms = |t: u32| f64::from(t.wrapping_sub(k));
        Ok((ms(mapped.unwrap()), ms(painted.unwrap())))
    }
}
