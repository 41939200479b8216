//! `till-agent parse FILE` and `till-agent formats suggest FILE`: the receipt readers for support,
//! with or without an agent.toml.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use protocol::Currency;

use crate::config::Config;
use crate::formats::{self, FormatKind, FormatSpec, ParseContext};

/// Options of `parse` that override the configuration (or stand in for it).
#[derive(Debug, Default)]
pub struct ParseOpts {
    pub format: Option<String>,
    pub currency: Option<String>,
    /// A `[receipts]` section (e.g. printed by `formats suggest`) to read the file with.
    pub receipts: Option<std::path::PathBuf>,
}

/// What to read the file with: the till's settings, or defaults when there is no agent.toml.
fn setup(cfg: Option<&Config>, opts: &ParseOpts) -> anyhow::Result<(FormatSpec, ParseContext, Vec<String>)> {
    let mut notes = Vec::new();
    let (mut spec, mut ctx) = match cfg {
        Some(c) => (c.receipts.clone(), c.parse_context()),
        None => {
            notes.push(
                "no agent.toml: store and till are placeholders (receipt ids differ from the till's), \
                 times without an offset are read in this computer's time zone"
                    .to_string(),
            );
            let ctx = ParseContext {
                store_id: "PARSE".into(),
                till_id: "PARSE".into(),
                currency: Currency::CZK,
                cash_step: Currency::CZK.cash_step(),
                zone: formats::LocalZone::os_default(),
            };
            (FormatSpec::default(), ctx)
        }
    };
    if let Some(path) = &opts.receipts {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        #[derive(serde::Deserialize)]
        struct Wrapper {
            receipts: FormatSpec,
        }
        let w: Wrapper = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        w.receipts
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: [receipts] {e}", path.display()))?;
        spec = w.receipts;
        notes.push(format!("[receipts] from {}", path.display()));
    }
    if let Some(f) = &opts.format {
        spec.format = FormatKind::from_name(f.trim()).ok_or_else(|| {
            anyhow::anyhow!("--format {f:?}: use auto, csv, json, poslog, ekasa, hr_fiscal, pohoda, eet or square")
        })?;
    }
    match &opts.currency {
        Some(c) => {
            ctx.currency = Currency::parse(c).ok_or_else(|| {
                anyhow::anyhow!("--currency {c:?} is not an ISO 4217 currency code (CZK, EUR, HUF, …)")
            })?;
            ctx.cash_step = ctx.currency.cash_step();
        }
        None if cfg.is_none() => notes.push("currency CZK (say --currency EUR etc. for another)".into()),
        None => {}
    }
    Ok((spec, ctx, notes))
}

/// Print the receipts as JSON (stdout) and what the reader did (stderr). Exit 2 when the file or
/// any receipt in it cannot be read.
pub fn parse(cfg: Option<&Config>, file: &Path, opts: &ParseOpts) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (spec, ctx, notes) = setup(cfg, opts)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    let got = match formats::parse_file_each(&spec, &name, &bytes, &ctx) {
        Ok(g) => g,
        Err(e) => {
            if let Ok((kind, why)) = formats::choose_reader(&spec, &name, &bytes) {
                eprintln!("reader: {} ({why})", kind.name());
            }
            eprintln!("{}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    eprintln!("reader: {} ({})", got.format.name(), got.why);
    if !got.skipped.is_empty() {
        eprintln!("skipped: {} (not sales receipts)", got.skipped_text());
    }
    eprintln!("receipts: {} read, {} bad", got.receipts.len(), got.bad.len());
    for b in &got.bad {
        let no = b.pos_receipt_no.as_deref().unwrap_or("(no number)");
        eprintln!("{}: receipt {no}: {}", file.display(), b.error);
    }
    print_stdout(&serde_json::to_string_pretty(&got.receipts)?)?;
    Ok(if got.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// stdout, where a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// `formats suggest FILE`: the guessed `[receipts]` section on stdout (notes as comments); exit 2
/// when the file is not a CSV the agent could read.
pub fn suggest(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    match formats::suggest::suggest(&bytes) {
        Ok(s) => {
            print_stdout(s.to_toml().trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::from(2))
        }
    }
}
