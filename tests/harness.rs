//! A small harness for end-to-end tests: temp dirs, the workspace's built binaries, free ports,
//! and waiting for conditions. The binaries are the ones `cargo build --workspace` produced (the
//! README's test command builds them once before running the suite).

pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
// server-stub helpers (shared by the server and agent tests)

/// The admin token `start_server` passes to the server.
pub const TEST_ADMIN_TOKEN: &str = "e2e-admin-token";

/// Run `server-stub ARGS…` to completion; panics with its output if it fails.
pub fn server_stub_cmd(args: &[&str]) -> String {
    let out = std::process::Command::new(bin("server-stub"))
        .args(args)
        .output()
        .expect("run server-stub");
    assert!(
        out.status.success(),
        "server-stub {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Seed a database with a fixture (e.g. `fixture("seed/demo.json")`).
pub fn seed_db(db: &Path, fixture_file: &Path) {
    server_stub_cmd(&["seed", "--db", db.to_str().unwrap(), fixture_file.to_str().unwrap()]);
}

/// Issue a till token with the real CLI; returns the token (the last stdout line).
pub fn add_till(db: &Path, store: &str, till: &str) -> String {
    let out = server_stub_cmd(&[
        "till",
        "add",
        "--db",
        db.to_str().unwrap(),
        "--store",
        store,
        "--till",
        till,
    ]);
    out.lines().last().expect("token line").trim().to_string()
}

pub fn revoke_till(db: &Path, store: &str, till: &str) {
    server_stub_cmd(&[
        "till",
        "revoke",
        "--db",
        db.to_str().unwrap(),
        "--store",
        store,
        "--till",
        till,
    ]);
}

/// A running `server-stub serve` on a free loopback port with its own SQLite file.
pub struct ServerHandle {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub admin_token: String,
    pub db: PathBuf,
    pub port: u16,
    /// stderr of the server (tracing log), appended across restarts.
    pub log: PathBuf,
    pub proc: Proc,
}

impl ServerHandle {
    /// Kill the server hard (SIGKILL: no graceful shutdown, like a crash).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Start again on the same port and database (after `kill`).
    pub fn restart(&mut self) {
        self.proc.kill();
        self.proc = spawn_server(&self.db, self.port, &self.log);
        wait_healthy(&self.url, &self.log);
    }
}

fn spawn_server(db: &Path, port: u16, log: &Path) -> Proc {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    let mut cmd = std::process::Command::new(bin("server-stub"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--db",
        db.to_str().unwrap(),
    ])
    .env("SERVER_STUB_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
    .env("RUST_LOG", "info")
    .stdout(std::process::Stdio::null())
    .stderr(log_file);
    Proc::spawn("server-stub", &mut cmd)
}

fn wait_healthy(url: &str, log: &Path) {
    let client = reqwest::blocking::Client::new();
    let ok = wait_for(Duration::from_secs(20), || {
        client
            .get(format!("{url}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    });
    assert!(
        ok.is_some(),
        "server-stub at {url} did not become healthy; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Seed `dir/server.db` with the demo fixture (`fixtures/seed/demo.json`) and serve it.
pub fn start_server(dir: &Path) -> ServerHandle {
    start_server_with(dir, Some(&fixture("seed/demo.json")))
}

/// Serve `dir/server.db`, seeding it first with `seed` if given.
pub fn start_server_with(dir: &Path, seed: Option<&Path>) -> ServerHandle {
    let db = dir.join("server.db");
    if let Some(s) = seed {
        seed_db(&db, s);
    }
    let port = free_port();
    let log = dir.join("server-stub.log");
    let url = format!("http://127.0.0.1:{port}");
    let proc = spawn_server(&db, port, &log);
    wait_healthy(&url, &log);
    ServerHandle {
        url,
        admin_token: TEST_ADMIN_TOKEN.to_string(),
        db,
        port,
        log,
        proc,
    }
}

// ---------------------------------------------------------------------------------------------
// X server

/// Our own Xvfb (killed on drop). `-displayfd`: Xvfb picks a free display itself and reports it
/// once it is ready, so parallel tests (and other Xvfbs on the machine) never collide.
pub struct Xvfb {
    /// `:N`
    pub display: String,
    pub proc: Proc,
}

/// Start an Xvfb with one `width`x`height`x24 screen and wait until it answers `xdpyinfo`.
pub fn start_xvfb(width: u32, height: u32) -> Xvfb {
    use std::process::{Command, Stdio};
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
    let stdout = proc.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let n = rx
        .recv_timeout(Duration::from_secs(20))
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
    Xvfb { display, proc }
}
