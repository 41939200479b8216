//! First-run bootstrap from the MSI's install-time settings.
//!
//! `msiexec /i till-agent.msi /qn SERVER_URL=… STORE_ID=… TILL_ID=… EXPORT_DIR=… TILL_TOKEN=…` writes
//! those properties to `HKLM\Software\TillAgent` (values `ServerUrl`, `StoreId`, `TillId`, `ExportDir`,
//! `TillToken`; see installer/till-agent.wxs). Every agent start calls [`first_run`] before loading
//! the configuration:
//!
//! 1. if `agent.toml` does not exist yet and the four settings are there, it is written from them
//!    (validated by the real config loader first; an existing file is never overwritten, so the
//!    installer's values only seed a till once and later edits of agent.toml win);
//! 2. a non-empty `TillToken` is moved into the OS credential store (Windows Credential Manager,
//!    service `till-agent`, user `<store>/<till>`, via [`crate::credentials::store_token`]) and the
//!    registry value is deleted, so the token stays neither in the registry nor in any file.
//!    The import happens ONCE per installer token: its SHA-256 fingerprint is remembered in
//!    `<data>/installer-token.imported` (a hash, never the token). When the value cannot be
//!    deleted (the agent runs as a standard user, HKLM is read-only to it), later starts see the
//!    same fingerprint and leave the credential store alone, so a token set since with
//!    `till-agent login` is never overwritten by the installer's older one. A different value (a
//!    reinstall with a new `TILL_TOKEN`) is newer than anything before it and is imported.
//!
//! Empty values count as "not set" (wixl cannot make a registry value conditional, so the MSI
//! writes an empty string for a property that was not given). On other platforms there is no
//! installer store and [`first_run`] does nothing.
use std::path::Path;

use anyhow::Context;

use crate::config::Config;

pub use crate::os::{SettingsStore, REGISTRY_KEY};

/// Registry value names, in the order of the MSI properties.
pub const SERVER_URL: &str = "ServerUrl";
pub const STORE_ID: &str = "StoreId";
pub const TILL_ID: &str = "TillId";
pub const EXPORT_DIR: &str = "ExportDir";
pub const TILL_TOKEN: &str = "TillToken";
/// Optional (MSI property LANGUAGE = cs | sk | hr | en): pins `language` in the written agent.toml;
/// not given, the agent follows the OS display language of each session.
pub const LANGUAGE: &str = "Language";
/// Optional (MSI property SERVER_CA_FILE = a path the installer can read, e.g. on a share): the
/// certificate (PEM) of the private CA that issued the server's certificate. Copied beside
/// agent.toml as [`CA_COPY`] and named there as `server_ca_file`, so the till keeps its own copy.
pub const SERVER_CA_FILE: &str = "ServerCaFile";
/// The copy of the installer's CA certificate, beside agent.toml.
pub const CA_COPY: &str = "server-ca.pem";

/// What [`first_run`] did (for the log; never contains the token).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FirstRun {
    /// agent.toml was written from the installer settings.
    pub wrote_config: bool,
    /// A till token was moved into the credential store.
    pub imported_token: bool,
}

/// Run the bootstrap against the platform's installer store (no-op outside Windows).
pub fn first_run(config_path: &Path) -> anyhow::Result<FirstRun> {
    match crate::os::installer_settings() {
        Some(store) => first_run_with(config_path, store.as_ref(), &|cfg: &Config, token: &str| {
            crate::credentials::store_token(cfg, token)
        }),
        None => Ok(FirstRun::default()),
    }
}

/// The bootstrap with its two effects injectable: where the settings come from and where the
/// token goes.
pub fn first_run_with(
    config_path: &Path,
    store: &dyn SettingsStore,
    store_token: &dyn Fn(&Config, &str) -> anyhow::Result<()>,
) -> anyhow::Result<FirstRun> {
    let mut done = FirstRun::default();
    if !config_path.exists() {
        let values = [SERVER_URL, STORE_ID, TILL_ID, EXPORT_DIR]
            .into_iter()
            .map(|n| store.get(n).map(|v| (n, v)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let given: Vec<_> = values.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| *n).collect();
        if given.len() == values.len() {
            let get = |n: &str| {
                values
                    .iter()
                    .find(|(k, _)| *k == n)
                    .and_then(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let mut text = render_config(&get(SERVER_URL), &get(STORE_ID), &get(TILL_ID), &get(EXPORT_DIR));
            if let Some(lang) = store.get(LANGUAGE)? {
                text.push_str(&format!(
                    "language = {}\n",
                    toml::Value::String(lang.trim().to_string())
                ));
            }
            if let Some(dir) = config_path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let ca_copy = config_path.with_file_name(CA_COPY);
            if let Some(ca) = store.get(SERVER_CA_FILE)? {
                let pem =
                    std::fs::read(ca.trim()).with_context(|| format!("SERVER_CA_FILE: cannot read {}", ca.trim()))?;
                std::fs::write(&ca_copy, pem).with_context(|| format!("writing {}", ca_copy.display()))?;
                text.push_str(&format!("server_ca_file = {}\n", toml::Value::String(CA_COPY.into())));
            }
            // Validate with the real loader before writing: a bad SERVER_URL is reported against the
            // installer setting, not as a broken agent.toml the manager never wrote.
            if let Err(e) = Config::from_str(&text, config_path) {
                let _ = std::fs::remove_file(&ca_copy);
                anyhow::bail!(
                    "the installer settings in {} do not make a valid configuration: {e}",
                    store.describe()
                );
            }
            write_new(config_path, &text)?;
            done.wrote_config = true;
            tracing::info!(config = %config_path.display(), "first run: wrote the configuration from the installer settings");
        } else if !given.is_empty() {
            let missing: Vec<_> = values
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| property_of(n))
                .collect();
            anyhow::bail!(
                "{} does not exist and the installer settings in {} are incomplete: missing {} (give them to msiexec, or write agent.toml by hand)",
                config_path.display(),
                store.describe(),
                missing.join(", ")
            );
        }
    }
    if let Some(token) = store.get(TILL_TOKEN)? {
        let cfg = Config::load(Some(config_path)).with_context(|| {
            format!(
                "a till token is waiting in {} but the configuration cannot be loaded",
                store.describe()
            )
        })?;
        let marker = imported_marker(&cfg);
        let fingerprint = token_fingerprint(&token);
        let seen = std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == fingerprint);
        if !seen {
            store_token(&cfg, &token).context("moving the installer's till token into the credential store")?;
            remember_import(&marker, &fingerprint).with_context(|| {
                format!(
                    "the installer's till token is in the credential store, but the import could not be \
                     remembered in {} (it would be imported again over a later `till-agent login`)",
                    marker.display()
                )
            })?;
            done.imported_token = true;
            tracing::info!(store = %cfg.store_id, till = %cfg.till_id, "first run: till token moved from the installer settings to the credential store");
        }
        if let Err(e) = store.delete(TILL_TOKEN) {
            // Harmless for the credential store (the import is remembered); said once per start.
            tracing::warn!(
                "the installer's till token was imported but cannot be deleted from {} ({e:#}); \
                 it will not be imported again",
                store.describe()
            );
        }
    }
    Ok(done)
}

/// Where the fingerprint of the imported installer token is kept.
pub fn imported_marker(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join("installer-token.imported")
}

/// SHA-256 of the token, hex (what is remembered: never the token itself).
fn token_fingerprint(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn remember_import(marker: &Path, fingerprint: &str) -> anyhow::Result<()> {
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = marker.with_extension("tmp");
    std::fs::write(&tmp, format!("{fingerprint}\n"))?;
    std::fs::rename(&tmp, marker)?;
    Ok(())
}

/// The MSI property behind a registry value name (for messages).
fn property_of(value_name: &str) -> &'static str {
    match value_name {
        SERVER_URL => "SERVER_URL",
        STORE_ID => "STORE_ID",
        TILL_ID => "TILL_ID",
        EXPORT_DIR => "EXPORT_DIR",
        _ => "TILL_TOKEN",
    }
}

/// agent.toml text for the installer settings (values TOML-escaped).
pub fn render_config(server_url: &str, store_id: &str, till_id: &str, export_dir: &str) -> String {
    let q = |s: &str| toml::Value::String(s.trim().to_string()).to_string();
    format!(
        "# Written by till-agent on its first run from the installer settings (msiexec SERVER_URL, STORE_ID,\n\
         # TILL_ID, EXPORT_DIR). The installer never overwrites this file: edit it here. Keys: see README.\n\
         server_url = {}\nstore_id = {}\ntill_id = {}\nexport_dir = {}\n",
        q(server_url),
        q(store_id),
        q(till_id),
        q(export_dir)
    )
}

/// Create `path` with `text`, failing if it appeared meanwhile (two sessions starting at once).
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    /// The installer's values as a map (the registry itself is exercised under Wine, tests/e2e/wine.rs).
    struct Values(RefCell<BTreeMap<String, String>>);
    impl Values {
        fn new(pairs: &[(&str, &str)]) -> Values {
            Values(RefCell::new(
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ))
        }
    }
    impl SettingsStore for Values {
        fn get(&self, name: &str) -> anyhow::Result<Option<String>> {
            Ok(self
                .0
                .borrow()
                .get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()))
        }
        fn delete(&self, name: &str) -> anyhow::Result<()> {
            self.0.borrow_mut().remove(name);
            Ok(())
        }
        fn describe(&self) -> String {
            "test values".into()
        }
    }

    const ALL: &[(&str, &str)] = &[
        (SERVER_URL, "http://127.0.0.1:8080"),
        (STORE_ID, "CZ-PRG-01"),
        (TILL_ID, "T1"),
        (EXPORT_DIR, r"C:\POS\export"),
        (TILL_TOKEN, "tok-123"),
    ];

    #[test]
    fn writes_config_and_moves_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("TillAgent").join("agent.toml");
        let values = Values::new(ALL);
        let stored = RefCell::new(Vec::new());
        let sink = |cfg: &Config, t: &str| {
            stored
                .borrow_mut()
                .push(format!("{}/{}={t}", cfg.store_id, cfg.till_id));
            Ok(())
        };
        let done = first_run_with(&path, &values, &sink).unwrap();
        assert_eq!(
            done,
            FirstRun {
                wrote_config: true,
                imported_token: true
            }
        );
        let cfg = Config::load(Some(&path)).unwrap();
        assert_eq!(cfg.server_url, "http://127.0.0.1:8080");
        assert_eq!(cfg.store_id.to_string(), "CZ-PRG-01");
        assert!(
            cfg.export_dir.ends_with(r"C:\POS\export"),
            "{}",
            cfg.export_dir.display()
        );
        assert_eq!(stored.borrow().as_slice(), ["CZ-PRG-01/T1=tok-123"]);
        assert_eq!(
            values.get(TILL_TOKEN).unwrap(),
            None,
            "token left in the installer store"
        );
        assert!(!std::fs::read_to_string(&path).unwrap().contains("tok-123"));
        // second start: nothing to do
        assert_eq!(first_run_with(&path, &values, &sink).unwrap(), FirstRun::default());
    }

    #[test]
    fn existing_config_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let mine = render_config("https://edited.example", "S9", "T9", "D:/pos");
        std::fs::write(&path, &mine).unwrap();
        let values = Values::new(&ALL[..4]);
        let done = first_run_with(&path, &values, &|_, _| unreachable!()).unwrap();
        assert_eq!(done, FirstRun::default());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), mine);
    }

    #[test]
    fn incomplete_or_invalid_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let values = Values::new(&[(SERVER_URL, "http://x"), (STORE_ID, "S1"), (TILL_ID, "  ")]);
        let e = first_run_with(&path, &values, &|_, _| Ok(())).unwrap_err().to_string();
        assert!(
            e.contains("TILL_ID") && e.contains("EXPORT_DIR") && !e.contains("STORE_ID"),
            "{e}"
        );
        assert!(!path.exists());

        let values = Values::new(&[
            (SERVER_URL, "ftp://x"),
            (STORE_ID, "S1"),
            (TILL_ID, "T1"),
            (EXPORT_DIR, "C:/x"),
        ]);
        let e = format!("{:#}", first_run_with(&path, &values, &|_, _| Ok(())).unwrap_err());
        assert!(e.contains("server_url") && e.contains("test values"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn nothing_given_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let done = first_run_with(&path, &Values::new(&[]), &|_, _| unreachable!()).unwrap();
        assert_eq!(done, FirstRun::default());
        assert!(!path.exists());
    }

    /// A standard user cannot delete HKLM values: the installer's token stays in the store. It is
    /// imported once; a token set later with `till-agent login` is never overwritten by it; a
    /// reinstall with a different token is imported (it is the newer one).
    #[test]
    fn installer_token_is_imported_once_never_over_a_later_login() {
        struct ReadOnly(Values);
        impl SettingsStore for ReadOnly {
            fn get(&self, name: &str) -> anyhow::Result<Option<String>> {
                self.0.get(name)
            }
            fn delete(&self, _: &str) -> anyhow::Result<()> {
                anyhow::bail!("access denied (HKLM, standard user)")
            }
            fn describe(&self) -> String {
                "read-only test values".into()
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let values = ReadOnly(Values::new(ALL));
        let credential = RefCell::new(None::<String>);
        let sink = |_: &Config, t: &str| {
            *credential.borrow_mut() = Some(t.to_string());
            Ok(())
        };
        let done = first_run_with(&path, &values, &sink).unwrap();
        assert!(done.imported_token && done.wrote_config, "{done:?}");
        assert_eq!(credential.borrow().as_deref(), Some("tok-123"));
        assert_eq!(
            values.get(TILL_TOKEN).unwrap().as_deref(),
            Some("tok-123"),
            "not deletable"
        );
        // support rotates the token: `till-agent login` puts a new one into the credential store
        *credential.borrow_mut() = Some("rotated-456".into());
        for _ in 0..3 {
            let done = first_run_with(&path, &values, &sink).unwrap();
            assert_eq!(done, FirstRun::default());
            assert_eq!(
                credential.borrow().as_deref(),
                Some("rotated-456"),
                "installer token came back"
            );
        }
        // the marker holds a fingerprint, never the token
        let cfg = Config::load(Some(&path)).unwrap();
        let marker = std::fs::read_to_string(imported_marker(&cfg)).unwrap();
        assert!(!marker.contains("tok-123") && marker.trim().len() == 64, "{marker}");
        // a reinstall with a new TILL_TOKEN: newer than the login, imported once
        values
            .0
             .0
            .borrow_mut()
            .insert(TILL_TOKEN.into(), "reinstalled-789".into());
        assert!(first_run_with(&path, &values, &sink).unwrap().imported_token);
        assert_eq!(credential.borrow().as_deref(), Some("reinstalled-789"));
        *credential.borrow_mut() = Some("rotated-again".into());
        assert_eq!(first_run_with(&path, &values, &sink).unwrap(), FirstRun::default());
        assert_eq!(credential.borrow().as_deref(), Some("rotated-again"));
    }

    #[test]
    fn token_is_kept_when_the_credential_store_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let values = Values::new(ALL);
        let e = first_run_with(&path, &values, &|_, _| anyhow::bail!("no credential store")).unwrap_err();
        assert!(format!("{e:#}").contains("no credential store"));
        assert_eq!(
            values.get(TILL_TOKEN).unwrap().as_deref(),
            Some("tok-123"),
            "token must not be lost"
        );
    }

    #[test]
    fn the_installer_language_is_pinned_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let mut with_lang = ALL[..4].to_vec();
        with_lang.push((LANGUAGE, "sk"));
        first_run_with(&path, &Values::new(&with_lang), &|_, _| Ok(())).unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().language.as_deref(), Some("sk"));

        let other = dir.path().join("other.toml");
        let mut bad = ALL[..4].to_vec();
        bad.push((LANGUAGE, "de"));
        let e = first_run_with(&other, &Values::new(&bad), &|_, _| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("language"), "{e:#}");
        assert!(!other.exists());
    }

    #[test]
    fn the_installers_ca_certificate_is_copied_beside_agent_toml_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/agent/test-ca.pem");
        let path = dir.path().join("till").join("agent.toml");
        let mut with_ca = ALL[..4].to_vec();
        let ca_text = ca.display().to_string();
        with_ca.push((SERVER_CA_FILE, &ca_text));
        first_run_with(&path, &Values::new(&with_ca), &|_, _| Ok(())).unwrap();
        let copy = dir.path().join("till").join(CA_COPY);
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&ca).unwrap());
        let cfg = Config::load(Some(&path)).unwrap();
        assert_eq!(
            cfg.server_ca_pem.as_deref(),
            Some(std::fs::read(&ca).unwrap().as_slice())
        );

        // a file that is no certificate: refused, nothing written
        let other = dir.path().join("other").join("agent.toml");
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem_text = not_pem.display().to_string();
        let mut bad = ALL[..4].to_vec();
        bad.push((SERVER_CA_FILE, &not_pem_text));
        let e = first_run_with(&other, &Values::new(&bad), &|_, _| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("server_ca_file"), "{e:#}");
        assert!(!other.exists() && !other.with_file_name(CA_COPY).exists());
        // a path that cannot be read names the property
        let mut missing = ALL[..4].to_vec();
        missing.push((SERVER_CA_FILE, r"\\nas\it\missing.pem"));
        let e = first_run_with(&other, &Values::new(&missing), &|_, _| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("SERVER_CA_FILE: cannot read"), "{e:#}");
    }

    #[test]
    fn rendered_values_are_toml_escaped() {
        let text = render_config("http://h", "S \"1\"", "T1", r"C:\POS\export");
        let v: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(v["store_id"].as_str(), Some("S \"1\""));
        assert_eq!(v["export_dir"].as_str(), Some(r"C:\POS\export"));
    }
}
