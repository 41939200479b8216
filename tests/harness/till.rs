//! A till: its `agent.toml` built from a struct ([`AgentToml`], defaults + builder methods,
//! rendered with the `toml` crate; no test writes agent.toml text by hand) and the real
//! `till-agent run --headless` on it ([`Till`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use crate::{bin, wait_for, Lines, Proc, STORE, TILL};

/// A server URL nothing listens on (port 9, discard): an offline till.
pub const OFFLINE_URL: &str = "http://127.0.0.1:9";

/// `agent.toml` as a struct. `None` / empty fields are left out of the file (the agent's own
/// default applies).
#[derive(Clone, Debug, Serialize)]
pub struct AgentToml {
    pub server_url: String,
    pub store_id: String,
    pub till_id: String,
    pub export_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz_offset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescan_interval_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_ca_file: Option<String>,
    #[serde(skip_serializing_if = "ReaderToml::is_empty")]
    pub reader: ReaderToml,
    #[serde(skip_serializing_if = "PopupToml::is_empty")]
    pub popup: PopupToml,
    /// Whole TOML sections appended verbatim (a fixture's `[receipts]` mapping).
    #[serde(skip)]
    pub raw: String,
}

/// `[reader]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReaderToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wedge: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dedicated: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serial: Vec<SerialToml>,
}

impl ReaderToml {
    fn is_empty(&self) -> bool {
        self.wedge.is_none()
            && self.mode.is_none()
            && self.prefix_key.is_none()
            && self.dedicated.is_empty()
            && self.serial.is_empty()
    }
}

/// One `[[reader.serial]]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SerialToml {
    pub port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parity: Option<String>,
}

impl SerialToml {
    pub fn port(port: &Path) -> SerialToml {
        SerialToml {
            port: port.display().to_string(),
            ..SerialToml::default()
        }
    }
}

/// `[popup]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PopupToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_after_secs: Option<u32>,
}

impl PopupToml {
    fn is_empty(&self) -> bool {
        self.hide_after_secs.is_none()
    }
}

impl AgentToml {
    /// The demo store's till [`STORE`]/[`TILL`] against `server_url`: export folder `export`
    /// (beside agent.toml), `tz_offset = "+01:00"`, Czech, a 5 s rescan.
    pub fn new(server_url: &str) -> AgentToml {
        AgentToml {
            server_url: server_url.to_string(),
            store_id: STORE.to_string(),
            till_id: TILL.to_string(),
            export_dir: "export".to_string(),
            data_dir: None,
            tz_offset: Some("+01:00".to_string()),
            language: Some("cs".to_string()),
            phone_country: None,
            rescan_interval_secs: Some(5),
            http_timeout_secs: None,
            batch_size: None,
            server_ca_file: None,
            reader: ReaderToml::default(),
            popup: PopupToml::default(),
            raw: String::new(),
        }
    }

    /// [`AgentToml::new`] with a server nobody answers ([`OFFLINE_URL`]).
    pub fn offline() -> AgentToml {
        AgentToml::new(OFFLINE_URL)
    }

    /// A card reader till: one serial reader on `port` (a socat pty), no keyboard wedge, the
    /// agent's own language and rescan.
    pub fn serial_reader(server_url: &str, port: &Path) -> AgentToml {
        AgentToml::new(server_url)
            .language(None)
            .rescan_secs(None)
            .wedge(false)
            .serial(SerialToml::port(port))
    }

    /// Only what the agent requires (server, store, till, export folder): every other key is
    /// left to the agent's defaults.
    pub fn minimal(server_url: &str) -> AgentToml {
        AgentToml::new(server_url)
            .tz_offset(None)
            .language(None)
            .rescan_secs(None)
    }

    pub fn ids(mut self, store: &str, till: &str) -> Self {
        self.store_id = store.to_string();
        self.till_id = till.to_string();
        self
    }
    pub fn tz_offset(mut self, tz: Option<&str>) -> Self {
        self.tz_offset = tz.map(str::to_string);
        self
    }
    pub fn language(mut self, lang: Option<&str>) -> Self {
        self.language = lang.map(str::to_string);
        self
    }
    pub fn phone_country(mut self, country: &str) -> Self {
        self.phone_country = Some(country.to_string());
        self
    }
    pub fn rescan_secs(mut self, secs: Option<u64>) -> Self {
        self.rescan_interval_secs = secs;
        self
    }
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }
    pub fn http_timeout_secs(mut self, secs: u64) -> Self {
        self.http_timeout_secs = Some(secs);
        self
    }
    /// `server_ca_file`: as written (a relative path is beside agent.toml).
    pub fn server_ca_file(mut self, file: &str) -> Self {
        self.server_ca_file = Some(file.to_string());
        self
    }
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.display().to_string());
        self
    }
    pub fn wedge(mut self, on: bool) -> Self {
        self.reader.wedge = Some(on);
        self
    }
    pub fn mode(mut self, mode: &str) -> Self {
        self.reader.mode = Some(mode.to_string());
        self
    }
    pub fn prefix_key(mut self, key: &str) -> Self {
        self.reader.prefix_key = Some(key.to_string());
        self
    }
    pub fn dedicated(mut self, devices: &[&str]) -> Self {
        self.reader.dedicated = devices.iter().map(|d| d.to_string()).collect();
        self
    }
    /// Add a `[[reader.serial]]` port.
    pub fn serial(mut self, port: SerialToml) -> Self {
        self.reader.serial.push(port);
        self
    }
    pub fn hide_after_secs(mut self, secs: u32) -> Self {
        self.popup.hide_after_secs = Some(secs);
        self
    }
    /// Append whole TOML sections verbatim (e.g. a fixture's `[receipts]` mapping).
    pub fn raw(mut self, sections: &str) -> Self {
        self.raw.push_str(sections);
        self
    }

    pub fn render(&self) -> String {
        let mut text = toml::to_string(self).expect("agent.toml renders");
        if !self.raw.is_empty() {
            text.push('\n');
            text.push_str(&self.raw);
        }
        text
    }

    /// Write to `path` (creating its folder and the export folder beside it); returns `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        let dir = path.parent().expect("agent.toml in a folder");
        std::fs::create_dir_all(dir.join(&self.export_dir)).unwrap();
        std::fs::write(path, self.render()).unwrap();
        path.to_path_buf()
    }
}

/// A till in its own folder: `agent.toml`, the export folder, and the headless agent (killed,
/// after a SIGTERM, on drop).
pub struct Till {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub export: PathBuf,
    pub token: String,
    pub proc: Option<Proc>,
}

impl Till {
    /// Write `cfg` to `dir/agent.toml`; the agent gets `token` through `TILL_AGENT_TOKEN`.
    pub fn new(dir: &Path, token: &str, cfg: AgentToml) -> Till {
        let export = dir.join(&cfg.export_dir);
        let config = cfg.write(&dir.join("agent.toml"));
        Till {
            dir: dir.to_path_buf(),
            config,
            export,
            token: token.to_string(),
            proc: None,
        }
    }

    pub fn start(&mut self) {
        self.start_env(&[]);
    }

    /// [`Till::start`] with extra environment variables for the agent (e.g. libfaketime's
    /// `LD_PRELOAD` = [`crate::LIBFAKETIME`] and `FAKETIME` for a till whose clock is off).
    pub fn start_env(&mut self, env: &[(&str, &str)]) {
        let mut cmd = self.headless();
        cmd.stdout(Stdio::null()).envs(env.iter().copied());
        self.proc = Some(Proc::spawn("till-agent", &mut cmd));
    }

    /// The headless agent with its stdout read as lines (its popups are JSON lines there), `HOME`
    /// = the till's folder, `RUST_LOG` = `rust_log` if given. The returned [`Lines`] owns the
    /// process (not [`Till::proc`]).
    pub fn start_lines(&self, rust_log: Option<&str>) -> Lines {
        let mut cmd = self.headless();
        cmd.env("HOME", &self.dir);
        if let Some(level) = rust_log {
            cmd.env("RUST_LOG", level);
        }
        Lines::spawn("till-agent run", &mut cmd)
    }

    /// `till-agent run --headless` on this till: its token, stderr appended to `agent.stderr`.
    fn headless(&self) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.stderr"))
            .unwrap();
        let mut cmd = Command::new(bin("till-agent"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(["run", "--headless"])
            .env("TILL_AGENT_TOKEN", &self.token)
            .stdin(Stdio::null())
            .stderr(log);
        cmd
    }

    /// SIGKILL: no flush, like a power cut of the process.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("till-agent"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("TILL_AGENT_TOKEN", &self.token)
            .output()
            .unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.stderr")).unwrap_or_default()
    }

    /// Wait (30 s at most) until the till's `cache.db` holds `card` and the rules: what an offline
    /// quote of that card needs. False if it never did.
    pub fn wait_cache_has(&self, card: &str) -> bool {
        let p = self.dir.join("cache.db");
        wait_for(Duration::from_secs(30), || {
            let c = rusqlite::Connection::open(&p).ok()?;
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM cards WHERE card = ?1", [card], |r| r.get(0))
                .ok()?;
            let rules: i64 = c.query_row("SELECT COUNT(*) FROM rules", [], |r| r.get(0)).ok()?;
            (n == 1 && rules == 1).then_some(())
        })
        .is_some()
    }

    /// Write a file the way a POS does it: to a temp name, then rename into place.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        let tmp = self.export.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.export.join(name)).unwrap();
    }

    pub fn outbox_count(&self, sql: &str) -> i64 {
        let p = self.dir.join("outbox.db");
        if !p.exists() {
            return -1;
        }
        let c = rusqlite::Connection::open(p).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
    }

    /// Like [`Self::outbox_count`], on what `outbox.db` itself holds: its WAL is not read (what
    /// the agent has copied into the file so far).
    pub fn outbox_file_count(&self, sql: &str) -> i64 {
        let p = self.dir.join("outbox.db");
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let Ok(c) = rusqlite::Connection::open_with_flags(format!("file:{}?immutable=1", p.display()), flags) else {
            return -1;
        };
        c.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
    }

    pub fn files_left(&self) -> Vec<String> {
        std::fs::read_dir(&self.export)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Till {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            // SIGTERM first so a passing run also exercises the clean stop
            let _ = Command::new("kill").arg("-TERM").arg(p.child.id().to_string()).status();
            let _ = wait_for(Duration::from_secs(5), || p.child.try_wait().ok().flatten());
            p.kill();
        }
    }
}
