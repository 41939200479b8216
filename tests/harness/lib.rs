//! The one harness of the end-to-end tests (ripgrep style): every test module takes its helpers
//! from here and never from another test module.
//!
//! - this file: the workspace's built binaries, fixtures, free ports, waiting, child processes
//!   ([`Proc`], [`Lines`]), the tools a test needs ([`need_tools`]: a missing tool fails the test
//!   when `CI` is set, and skips it with a message otherwise);
//! - [`server`]: a seeded `server-stub serve` on loopback and its database;
//! - [`pg`]: the test process's throw-away PostgreSQL cluster, one database per test;
//! - [`till`]: `agent.toml` from a struct ([`AgentToml`]) and a headless till ([`Till`]);
//! - [`x`]: our own Xvfb, X clients on it, the one `find_window`;
//! - [`gui`]: the POS stand-in window and the GUI agent on an Xvfb display ([`GuiAgent`]);
//! - [`serial`]: socat pty pairs as serial card readers;
//! - [`wine`]: the throwaway Wine prefix and the cross-built `till-agent.exe`;
//! - [`proxy`]: the fault-injecting TCP proxy.
//!
//! The binaries are the ones `cargo build --workspace` produced (the README's test command builds
//! them once before running the suite).

pub mod gui;
pub mod msi;
pub mod pe;
pub mod pg;
pub mod powerfs;
pub mod proxy;
pub mod serial;
pub mod server;
pub mod sni;
pub mod till;
pub mod wine;
pub mod x;

pub use gui::{screenshot, start_pos, GuiAgent, Pos};
pub use pg::{need_postgres, Backend};
pub use serial::Socat;
pub use server::*;
pub use till::*;
pub use wine::{win_path, windows_exe, Wine};
pub use x::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Directory holding the built binaries: `$TILL_BIN_DIR`, else the profile dir this test
/// executable lives in (`target/debug/deps/e2e-* → target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TILL_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf()
}

/// Path of a workspace binary; panics with a hint if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The repository root (for fixtures).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("fixtures").join(rel)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: std::process::Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut std::process::Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Tools a test needs

/// Is `tool` on PATH?
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Is this a CI run (`CI` set to anything but empty, `0` or `false`)? The README's test command
/// (scripts/test.sh) sets `CI=1` when it is unset.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The external tools the calling test needs. All on PATH → true. One missing: with `CI` set
/// the test FAILS naming it (a test never passes by skipping); without `CI` it prints
/// `SKIPPED <test>: …` and returns false, and the test returns at once:
/// `if !need_tools(&["socat"]) { return; }`. "Xvfb" also needs `dbus-daemon` ([`start_xvfb`]
/// gives each display a session bus).
#[must_use]
pub fn need_tools(tools: &[&str]) -> bool {
    let mut tools = tools.to_vec();
    if tools.contains(&"Xvfb") {
        tools.push("dbus-daemon");
    }
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    let msg = format!(
        "{test}: {} not installed (scripts/setup.sh installs it)",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{msg}; CI is set, so a missing tool fails the test");
    }
    eprintln!("SKIPPED {msg}; CI is not set, so the test is skipped");
    false
}

/// Run a command to completion; panics with its output when it cannot start or fails.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------------------------------------
// A child's JSON lines

/// A child whose stdout lines arrive on a channel (`reader-test --json`, `run --headless` with
/// JSON output).
pub struct Lines {
    pub rx: Receiver<String>,
    pub seen: Vec<String>,
    _proc: Proc,
}

impl Lines {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self._proc.child.id()
    }

    pub fn spawn(name: &str, cmd: &mut Command) -> Lines {
        cmd.stdout(Stdio::piped());
        let mut proc = Proc::spawn(name, cmd);
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            _proc: proc,
        }
    }

    /// The next JSON line matching `pred` within `timeout`.
    pub fn wait(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self.rx.recv_timeout(left).ok()?;
            self.seen.push(l.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                if pred(&v) {
                    return Some(v);
                }
            }
        }
    }

    pub fn transcript(&self) -> String {
        self.seen.join("\n")
    }

    /// The child's exit status if it ends within `timeout`.
    pub fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_for(timeout, || self._proc.child.try_wait().ok().flatten())
    }
}

/// `v[key]` is the string `want`.
pub fn is(v: &Value, key: &str, want: &str) -> bool {
    v.get(key).and_then(Value::as_str) == Some(want)
}

// ---------------------------------------------------------------------------------------------
// Files a run left behind

/// Every regular file under `root` (recursively; symlinks such as socat's pty links and other
/// special files are not followed: reading a pty would block).
pub fn list_tree(root: &Path, out: &mut Vec<PathBuf>) {
    let rd = std::fs::read_dir(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            list_tree(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

/// Files under `root` whose bytes contain `needle`.
pub fn grep_tree(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    list_tree(root, &mut files);
    files
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// The local ports of process `pid`'s established IPv4 TCP connections to port `port` (its socket
/// descriptors in `/proc/PID/fd`, matched by inode with `/proc/PID/net/tcp`).
pub fn tcp_connections_to(pid: u32, port: u16) -> std::collections::BTreeSet<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let port_of = |addr: &str| addr.split(':').nth(1).and_then(|p| u16::from_str_radix(p, 16).ok());
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st … inode (column 10); st 01 = ESTABLISHED
            (f.len() > 9 && f[3] == "01" && port_of(f[2]) == Some(port) && inodes.contains(f[9]))
                .then(|| port_of(f[1]))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// Test modules take helpers from the harness only: no test module of `tests/e2e/` names
    /// another (`crate::agent::…`, `super::enrol::…`, `use crate::{input, …}`); `main.rs` only
    /// declares them.
    #[test]
    fn test_modules_never_import_each_other() {
        let dir = super::repo_root().join("tests/e2e");
        let mut modules = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("main.rs") {
                modules.push((p.file_stem().unwrap().to_string_lossy().into_owned(), p));
            }
        }
        assert!(
            modules.len() >= 5,
            "only {} test modules in {}",
            modules.len(),
            dir.display()
        );
        let mut bad = Vec::new();
        for (_, p) in &modules {
            for (i, line) in std::fs::read_to_string(p).unwrap().lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let names_one = modules.iter().any(|(m, _)| {
                    ["crate::", "super::"].iter().any(|root| {
                        code.match_indices(&format!("{root}{m}")).any(|(at, hit)| {
                            // a whole module name, not a prefix of a longer identifier
                            !code[at + hit.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                        })
                    })
                });
                let group =
                    code.trim_start().starts_with("use crate::{") || code.trim_start().starts_with("use super::{");
                if names_one || group {
                    bad.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "test modules import each other (use the harness):\n{}",
            bad.join("\n")
        );
    }

    /// A missing tool fails the test when `CI` is set (scripts/test.sh sets it) and skips it
    /// otherwise; a present one lets it run either way.
    #[test]
    fn a_missing_tool_fails_the_test_in_ci_and_skips_it_elsewhere() {
        let tool = "till-agent-test-no-such-tool";
        let got = std::panic::catch_unwind(|| super::need_tools(&[tool]));
        if super::in_ci() {
            let e = got.expect_err("CI is set: a missing tool must fail the test, not skip it");
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(msg.contains(tool) && msg.contains("CI is set"), "{msg}");
        } else {
            assert_eq!(got.ok(), Some(false), "without CI a missing tool skips the test");
        }
        assert!(super::need_tools(&["sh"]), "a tool on PATH");
    }

    #[test]
    fn agent_toml_renders_every_section() {
        let t = super::AgentToml::new("http://127.0.0.1:1")
            .http_timeout_secs(2)
            .wedge(false)
            .serial(super::SerialToml {
                baud: Some(19200),
                ..super::SerialToml::port(std::path::Path::new("/dev/ttyS0"))
            })
            .hide_after_secs(0)
            .raw("[receipts]\nformat = \"auto\"\n")
            .render();
        let v: toml::Table = t.parse().unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert_eq!(v["server_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(v["store_id"].as_str(), Some(super::STORE));
        assert_eq!(v["http_timeout_secs"].as_integer(), Some(2));
        assert_eq!(v["reader"]["wedge"].as_bool(), Some(false));
        assert_eq!(v["reader"]["serial"][0]["port"].as_str(), Some("/dev/ttyS0"));
        assert_eq!(v["reader"]["serial"][0]["baud"].as_integer(), Some(19200));
        assert_eq!(v["popup"]["hide_after_secs"].as_integer(), Some(0));
        assert_eq!(v["receipts"]["format"].as_str(), Some("auto"));
    }
}
