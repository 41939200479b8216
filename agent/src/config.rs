//! `agent.toml`: the till's configuration. Loaded strictly: unknown keys, wrong types and
//! missing required keys are errors that name the file, the line and the key, and the agent
//! refuses to start half-configured.
//!
//! ```toml
//! server_url = "https://loyalty.example.com"
//! store_id = "CZ-PRG-01"
//! till_id = "T1"
//! export_dir = 'C:\POS\export'
//! currency = "CZK"                 # program currency (ISO 4217: CZK, EUR, HUF, PLN, …), default CZK
//! # cash_step = "0.05"            # smallest cash amount (default per currency: CZK 1, HUF 5, else the minor unit)
//! # timezone = "Europe/Prague"    # IANA zone for receipt times without an offset (default: the OS zone)
//! # tz_offset = "+01:00"           # or one fixed offset all year (old setting; not with timezone)
//! language = "cs"                  # cs | sk | hr | en (default: from the OS)
//! # data_dir = 'D:\TillAgent'      # default: the folder holding agent.toml
//! scan_attach_window_secs = 600    # card scanned → attached to the next card-less receipt
//! rescan_interval_secs = 30        # full export-folder rescan (notify events can be lost)
//! stable_ms = 200                  # a file must keep size+mtime this long before it is read
//! batch_size = 100                 # receipts per POST /v1/sync
//! cache_refresh_secs = 60          # rules + customer changes pull
//! http_timeout_secs = 15           # per server request
//! # server_ca_file = 'C:\ProgramData\TillAgent\loyalty-ca.pem'   # a server whose certificate a private CA issued:
//! #                                  # its CA certificate(s), PEM, trusted besides the public roots
//! [receipts]   # formats::FormatSpec
//! [reader]     # input::config::ReaderConfig
//! [popup]      # ui::config::PopupConfig
//! ```
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use protocol::{Currency, StoreId, TillId};
use serde::Deserialize;

use crate::formats::{FormatSpec, ParseContext};
use crate::input::config::ReaderConfig;
use crate::ui::config::PopupConfig;

/// The loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was loaded from (None when built in code).
    pub path: Option<PathBuf>,
    pub server_url: String,
    pub store_id: StoreId,
    pub till_id: TillId,
    pub export_dir: PathBuf,
    pub currency: Currency,
    /// Smallest cash amount (cash rounding), default `Currency::cash_step`.
    pub cash_step: rust_decimal::Decimal,
    /// The zone receipt times without an offset are read in (`timezone`, or `tz_offset`, or the OS zone).
    pub zone: crate::formats::LocalZone,
    pub language: Option<String>,
    /// The country of this till's national phone numbers (`phone_country`, upper-case ISO 3166
    /// alpha-2), overriding the program's: a chain with stores in CZ and SK sets it per store.
    pub phone_country: Option<String>,
    /// outbox.db, cache.db, logs/.
    pub data_dir: PathBuf,
    pub scan_attach_window_secs: u64,
    pub rescan_interval_secs: u64,
    pub stable_ms: u64,
    pub batch_size: usize,
    pub cache_refresh_secs: u64,
    /// Whole-request timeout for server calls.
    pub http_timeout_secs: u64,
    /// `server_ca_file`: CA certificates (PEM) trusted for the server besides the public roots.
    pub server_ca_pem: Option<Vec<u8>>,
    pub receipts: FormatSpec,
    pub reader: ReaderConfig,
    pub popup: PopupConfig,
    /// Sent items and ingested-file hashes older than this are pruned (dead letters never are).
    pub retention_days: u32,
    /// `sync_log` rows and `logs/till-agent.log.DATE` files older than this are deleted.
    pub log_retention_days: u32,
    /// Export files larger than this are quarantined unread.
    pub max_export_file_bytes: u64,
}

/// The file as written (everything optional so that a missing key gets our own error).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server_url: Option<String>,
    store_id: Option<String>,
    till_id: Option<String>,
    export_dir: Option<PathBuf>,
    currency: Option<String>,
    cash_step: Option<String>,
    tz_offset: Option<String>,
    timezone: Option<String>,
    language: Option<String>,
    phone_country: Option<String>,
    data_dir: Option<PathBuf>,
    scan_attach_window_secs: Option<u64>,
    rescan_interval_secs: Option<u64>,
    stable_ms: Option<u64>,
    batch_size: Option<usize>,
    cache_refresh_secs: Option<u64>,
    http_timeout_secs: Option<u64>,
    server_ca_file: Option<PathBuf>,
    retention_days: Option<u32>,
    log_retention_days: Option<u32>,
    max_export_file_mib: Option<u64>,
    #[serde(default)]
    receipts: FormatSpec,
    #[serde(default)]
    reader: ReaderConfig,
    #[serde(default)]
    popup: PopupConfig,
}

/// A configuration error: file, line (when known) and key.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {}", file.display(), line.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), describe(key, message))]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column.
    pub line: Option<(usize, usize)>,
    pub key: Option<String>,
    pub message: String,
}

fn describe(key: &Option<String>, message: &str) -> String {
    match key {
        Some(k) => format!("key `{k}`: {message}"),
        None => message.to_string(),
    }
}

/// Default config file: `%ProgramData%\TillAgent\agent.toml` on Windows;
/// `$XDG_CONFIG_HOME/till-agent/agent.toml` (or `~/.config/…`) elsewhere.
pub fn default_path() -> PathBuf {
    crate::os::default_config_path()
}

impl Config {
    /// Load `path`, or the default location.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = path.map(Path::to_path_buf).unwrap_or_else(default_path);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            file: path.clone(),
            line: None,
            key: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Config::from_str(&text, &path)
    }

    /// Parse and validate `text` as if read from `path`.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, path, &e))?;
        let err = |key: &str, message: String| ConfigError {
            file: path.to_path_buf(),
            line: find_key_line(text, key),
            key: Some(key.to_string()),
            message,
        };
        let missing = |key: &str| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: Some(key.to_string()),
            message: "required key is missing; the agent does not start half-configured".into(),
        };
        let nonempty = |key: &str, v: Option<String>| -> Result<String, ConfigError> {
            match v {
                None => Err(missing(key)),
                Some(s) if s.trim().is_empty() => Err(err(key, "must not be empty".into())),
                Some(s) => Ok(s.trim().to_string()),
            }
        };
        let server_url = nonempty("server_url", raw.server_url)?;
        if !(server_url.starts_with("http://") || server_url.starts_with("https://"))
            || reqwest::Url::parse(&server_url).is_err()
        {
            return Err(err("server_url", format!("{server_url:?} is not an http(s) URL")));
        }
        let store_id = nonempty("store_id", raw.store_id)?;
        let till_id = nonempty("till_id", raw.till_id)?;
        let export_dir = raw.export_dir.ok_or_else(|| missing("export_dir"))?;
        if export_dir.as_os_str().is_empty() {
            return Err(err("export_dir", "must not be empty".into()));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let export_dir = if export_dir.is_relative() {
            base.join(export_dir)
        } else {
            export_dir
        };
        let currency = match raw.currency {
            None => Currency::CZK,
            Some(c) => Currency::parse(&c).ok_or_else(|| {
                err(
                    "currency",
                    format!("{c:?} is not an ISO 4217 currency code (CZK, EUR, HUF, …)"),
                )
            })?,
        };
        let cash_step = match raw.cash_step {
            None => currency.cash_step(),
            Some(s) => s
                .trim()
                .parse::<rust_decimal::Decimal>()
                .ok()
                .filter(|d| *d > rust_decimal::Decimal::ZERO)
                .ok_or_else(|| err("cash_step", format!("{s:?} is not a positive amount like \"0.05\"")))?,
        };
        let zone = match (raw.timezone, raw.tz_offset) {
            (Some(_), Some(_)) => return Err(err("tz_offset", "set either timezone or tz_offset, not both".into())),
            (Some(z), None) => crate::formats::LocalZone::parse(&z).ok_or_else(|| {
                err(
                    "timezone",
                    format!("{z:?} is not an IANA time zone like \"Europe/Prague\""),
                )
            })?,
            (None, Some(s)) => parse_offset(&s)
                .ok_or_else(|| err("tz_offset", format!("{s:?} is not an offset like +01:00")))?
                .into(),
            (None, None) => crate::formats::LocalZone::os_default(),
        };
        let data_dir = match raw.data_dir {
            Some(d) if d.is_relative() => base.join(d),
            Some(d) => d,
            None => base.clone(),
        };
        let batch_size = raw.batch_size.unwrap_or(100);
        if batch_size == 0 || batch_size > 1000 {
            return Err(err("batch_size", format!("{batch_size} is outside 1..=1000")));
        }
        let rescan_interval_secs = raw.rescan_interval_secs.unwrap_or(30);
        if rescan_interval_secs == 0 {
            return Err(err("rescan_interval_secs", "must be at least 1".into()));
        }
        let retention_days = raw.retention_days.unwrap_or(90);
        if !(7..=3650).contains(&retention_days) {
            return Err(err("retention_days", format!("{retention_days} is outside 7..=3650")));
        }
        let log_retention_days = raw.log_retention_days.unwrap_or(30);
        if !(1..=3650).contains(&log_retention_days) {
            return Err(err(
                "log_retention_days",
                format!("{log_retention_days} is outside 1..=3650"),
            ));
        }
        let server_ca_pem = match raw.server_ca_file {
            None => None,
            Some(f) => {
                let f = if f.is_relative() { base.join(f) } else { f };
                let pem = std::fs::read(&f)
                    .map_err(|e| err("server_ca_file", format!("cannot read {}: {e}", f.display())))?;
                use rustls::pki_types::{pem::PemObject, CertificateDer};
                match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
                    Ok(certs) if !certs.is_empty() => Some(pem),
                    Ok(_) => {
                        return Err(err(
                            "server_ca_file",
                            format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", f.display()),
                        ))
                    }
                    Err(e) => {
                        return Err(err(
                            "server_ca_file",
                            format!("{}: not a PEM certificate file ({e})", f.display()),
                        ))
                    }
                }
            }
        };
        let max_export_file_mib = raw.max_export_file_mib.unwrap_or(50);
        if !(1..=4096).contains(&max_export_file_mib) {
            return Err(err(
                "max_export_file_mib",
                format!("{max_export_file_mib} is outside 1..=4096"),
            ));
        }
        if let Err(e) = raw.receipts.validate() {
            let key = e
                .field
                .clone()
                .map(|f| format!("receipts.{f}"))
                .unwrap_or_else(|| "receipts".into());
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: find_key_line(text, &key),
                key: Some(key),
                message: e.message,
            });
        }
        if let Err(e) = raw.reader.validate() {
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: find_key_line(text, "reader"),
                key: Some("reader".into()),
                message: e,
            });
        }
        if let Err(e) = raw.popup.validate() {
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: Some("popup".into()),
                message: e,
            });
        }
        if let Some(l) = &raw.language {
            if let Err(e) = crate::locale::Lang::resolve(Some(l)) {
                return Err(err("language", e));
            }
        }
        let phone_country = match raw.phone_country {
            None => None,
            Some(c) => Some(protocol::contact::phone_country(&c).map_err(|e| err("phone_country", e.to_string()))?),
        };
        Ok(Config {
            path: Some(path.to_path_buf()),
            server_url: server_url.trim_end_matches('/').to_string(),
            store_id: StoreId::new(store_id),
            till_id: TillId::new(till_id),
            export_dir,
            currency,
            cash_step,
            zone,
            language: raw.language,
            phone_country,
            data_dir,
            scan_attach_window_secs: raw.scan_attach_window_secs.unwrap_or(600),
            rescan_interval_secs,
            stable_ms: raw.stable_ms.unwrap_or(200),
            batch_size,
            cache_refresh_secs: raw.cache_refresh_secs.unwrap_or(60).max(1),
            http_timeout_secs: raw.http_timeout_secs.unwrap_or(15).max(1),
            server_ca_pem,
            receipts: raw.receipts,
            reader: raw.reader,
            popup: raw.popup,
            retention_days,
            log_retention_days,
            max_export_file_bytes: max_export_file_mib * 1024 * 1024,
        })
    }

    pub fn outbox_path(&self) -> PathBuf {
        self.data_dir.join("outbox.db")
    }
    pub fn cache_path(&self) -> PathBuf {
        self.data_dir.join("cache.db")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
    pub fn processed_dir(&self) -> PathBuf {
        self.export_dir.join("processed")
    }
    pub fn quarantine_dir(&self) -> PathBuf {
        self.export_dir.join("quarantine")
    }
    pub fn parse_context(&self) -> ParseContext {
        ParseContext {
            store_id: self.store_id.clone(),
            till_id: self.till_id.clone(),
            currency: self.currency,
            cash_step: self.cash_step,
            zone: self.zone,
        }
    }
    /// `https://host/v1/sync` etc.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server_url, path)
    }
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// 1-based (line, column) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// The table header (`[receipts.csv]`) in force at `line` (1-based).
fn section_at(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            (t.starts_with('[') && !t.starts_with("[["))
                .then(|| t.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        })
        .last()
}

fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().to_string();
    let pos = e.span().map(|s| line_col(text, s.start));
    let mut key = None;
    // `unknown field `foo`, expected one of …`
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        key = rest.split('`').next().map(str::to_string);
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        key = rest.split('`').next().map(str::to_string);
    } else if let Some((line, _)) = pos {
        if let Some(l) = text.lines().nth(line - 1) {
            if let Some((k, _)) = l.split_once('=') {
                let k = k.trim().trim_matches('"');
                if !k.is_empty() && !k.starts_with('[') {
                    key = Some(k.to_string());
                }
            }
        }
    }
    if let (Some(k), Some((line, _))) = (&key, pos) {
        if let Some(sec) = section_at(text, line) {
            key = Some(format!("{sec}.{k}"));
        }
    }
    ConfigError {
        file: path.to_path_buf(),
        line: pos,
        key,
        message: msg,
    }
}

/// Line of `a.b.key = …` (looks for `key =` under section `[a.b]`, or at top level).
fn find_key_line(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let (sec, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (Some(s), k),
        None => (None, dotted),
    };
    let mut cur: Option<String> = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            cur = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            continue;
        }
        if let Some((k, _)) = t.split_once('=') {
            if k.trim().trim_matches('"') == key && cur.as_deref() == sec {
                return Some((i + 1, l.len() - l.trim_start().len() + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "server_url = \"http://127.0.0.1:8080\"\nstore_id = \"S1\"\ntill_id = \"T1\"\nexport_dir = \"export\"\n";

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, Path::new("/etc/till/agent.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_paths_beside_it() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.export_dir, PathBuf::from("/etc/till/export"));
        assert_eq!(c.outbox_path(), PathBuf::from("/etc/till/outbox.db"));
        assert_eq!(c.scan_attach_window_secs, 600);
        assert_eq!(c.rescan_interval_secs, 30);
        assert_eq!(c.currency, Currency::CZK);
        assert_eq!(c.processed_dir(), PathBuf::from("/etc/till/export/processed"));
    }

    #[test]
    fn missing_required_key_is_named() {
        for key in ["server_url", "store_id", "till_id", "export_dir"] {
            let text: String = GOOD
                .lines()
                .filter(|l| !l.starts_with(key))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = load(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key));
            let s = e.to_string();
            assert!(s.contains("/etc/till/agent.toml") && s.contains(key), "{s}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = load(&format!("{GOOD}\n[receipts]\nformat = \"csv\"\ndelimitr = \";\"\n")).unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(8), "{e}");
        assert_eq!(e.key.as_deref(), Some("receipts.delimitr"));
        assert!(e.to_string().starts_with("/etc/till/agent.toml:8:"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = load(&format!("{GOOD}scan_attach_window_secs = \"ten\"\n")).unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("scan_attach_window_secs"));
    }

    #[test]
    fn server_ca_file_is_read_beside_agent_toml_and_its_problems_are_named() {
        let e = load(&format!("{GOOD}server_ca_file = \"ca.pem\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server_ca_file"));
        assert!(e.to_string().contains("cannot read /etc/till/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let e = load(&format!("{GOOD}server_ca_file = '{}'\n", ca.display())).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        let e = load(&format!("{GOOD}server_ca_file = '{}'\n", ca.display())).unwrap_err();
        assert!(e.to_string().contains("not a PEM certificate file"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = load(&GOOD.replace("http://127.0.0.1:8080", "ftp://x")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server_url"));
        assert_eq!(e.line.map(|l| l.0), Some(1));
        assert_eq!(
            load(&format!("{GOOD}currency = \"HUF\"\n")).unwrap().cash_step,
            rust_decimal::Decimal::new(5, 0)
        );
        let e = load(&format!("{GOOD}cash_step = \"-1\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("cash_step"));
        let e = load(&format!("{GOOD}currency = \"XYZ\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("currency"));
        assert_eq!(
            load(&format!("{GOOD}timezone = \"Europe/Prague\"\n"))
                .unwrap()
                .zone
                .to_string(),
            "Europe/Prague"
        );
        let e = load(&format!("{GOOD}timezone = \"CET+1\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timezone"));
        let e = load(&format!("{GOOD}tz_offset = \"CET\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("tz_offset"));
        let e = load(&format!("{GOOD}[receipts]\nencoding = \"klingon\"\n")).unwrap_err();
        assert!(e.key.as_deref().unwrap().starts_with("receipts"), "{e}");
        assert_eq!(load(GOOD).unwrap().phone_country, None);
        assert_eq!(
            load(&format!("{GOOD}phone_country = \"sk\"\n"))
                .unwrap()
                .phone_country
                .as_deref(),
            Some("SK")
        );
        let e = load(&format!("{GOOD}phone_country = \"Slovakia\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("phone_country"));
        assert!(e.to_string().contains("\"Slovakia\""), "{e}");
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+01:00"), FixedOffset::east_opt(3600));
        assert_eq!(parse_offset("-05:30"), FixedOffset::east_opt(-(5 * 3600 + 1800)));
        assert_eq!(parse_offset("Z"), FixedOffset::east_opt(0));
        assert_eq!(parse_offset("1"), None);
    }
}
