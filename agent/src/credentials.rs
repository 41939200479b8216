//! The till token. Never in agent.toml, never in plain text in a file, never logged. Windows: at
//! machine scope for the service — sealed with DPAPI's machine key in `<data>/till-token.dpapi`,
//! a file only SYSTEM and administrators may open (`os::machine_token_store`); the per-user
//! Credential Manager entry of older versions is still read. Linux: the OS keyring (`keyring`:
//! the kernel keyring), service `till-agent`, user `<store>/<till>`. `TILL_AGENT_TOKEN`
//! overrides both (tests, CI).
use anyhow::Context;

use crate::config::Config;

pub const SERVICE: &str = "till-agent";
pub const ENV: &str = "TILL_AGENT_TOKEN";

fn user(cfg: &Config) -> String {
    format!("{}/{}", cfg.store_id, cfg.till_id)
}

/// Where the token came from (for `doctor`; never the token itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Env,
    /// The machine-scope store (Windows: DPAPI machine key).
    Machine,
    Keyring,
}

pub fn till_token(cfg: &Config) -> anyhow::Result<String> {
    till_token_with_source(cfg).map(|(t, _)| t)
}

pub fn till_token_with_source(cfg: &Config) -> anyhow::Result<(String, TokenSource)> {
    if let Ok(t) = std::env::var(ENV) {
        if !t.trim().is_empty() {
            return Ok((t.trim().to_string(), TokenSource::Env));
        }
    }
    if let Some(store) = crate::os::machine_token_store(&cfg.data_dir) {
        if let Some(t) = store.load()? {
            return Ok((t, TokenSource::Machine));
        }
    }
    let entry = keyring::Entry::new(SERVICE, &user(cfg)).context("opening the OS credential store")?;
    match entry.get_password() {
        Ok(t) => Ok((t, TokenSource::Keyring)),
        Err(keyring::Error::NoEntry) => anyhow::bail!(
            "no till token stored for {} (run `till-agent login`, or set {ENV})",
            user(cfg)
        ),
        Err(e) => Err(anyhow::anyhow!(e).context("reading the till token from the OS credential store")),
    }
}

/// Store the token (from `till-agent login`).
pub fn store_token(cfg: &Config, token: &str) -> anyhow::Result<()> {
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("the token is empty");
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("the token contains whitespace; paste it exactly as `server-stub till add` printed it");
    }
    if let Some(store) = crate::os::machine_token_store(&cfg.data_dir) {
        store.store(token)?;
        anyhow::ensure!(
            store.load()?.as_deref() == Some(token),
            "{} did not keep the token",
            store.describe()
        );
        return Ok(());
    }
    let entry = keyring::Entry::new(SERVICE, &user(cfg)).context("opening the OS credential store")?;
    entry
        .set_password(token)
        .context("storing the till token in the OS credential store")?;
    // read back: some stores accept and drop silently
    let back = entry.get_password().context("reading the stored token back")?;
    if back != token {
        anyhow::bail!("the OS credential store did not keep the token");
    }
    Ok(())
}

/// Where `store_token` puts the token, in words (for `login`).
pub fn store_description(cfg: &Config) -> String {
    match crate::os::machine_token_store(&cfg.data_dir) {
        Some(s) => s.describe(),
        None => format!("the OS credential store (service {SERVICE}, user {})", user(cfg)),
    }
}
