//! The till token. Never in agent.toml, never in a file we write, never logged: it lives in the
//! OS credential store (`keyring`: Windows Credential Manager; the kernel keyring on Linux),
//! service `till-agent`, user `<store>/<till>`. `TILL_AGENT_TOKEN` overrides it (tests, CI).
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
