//! Command line: `till-agent <subcommand>`. Thin: each subcommand calls into its module.
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(name = "till-agent", version, about = "Loyalty-program companion for shop tills")]
pub struct Cli {
    /// agent.toml to use (default: %ProgramData%\TillAgent\agent.toml on Windows,
    /// ~/.config/till-agent/agent.toml elsewhere).
    #[arg(long, global = true, env = "TILL_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the version.
    Version,
    /// Run the agent: export-folder watcher, outbox replication, card input, popup (tray GUI;
    /// `--headless` prints each popup as a JSON line instead). Stops cleanly on Ctrl-C / SIGTERM.
    Run {
        #[arg(long)]
        headless: bool,
    },
    /// The machine-wide half (Windows service `TillAgent`, started by the service control
    /// manager): export folder, outbox, replication, cache, till token; serves the session apps.
    /// `--console` runs the same in the foreground (Linux: always).
    Service {
        #[arg(long)]
        console: bool,
    },
    /// The per-user half (started at logon): card readers, tray and popup; quotes, status,
    /// enrol and redeem from the service. `--headless` prints each popup as a JSON line.
    Session {
        #[arg(long)]
        headless: bool,
    },
    /// Before an upgrade (the installer runs it): the service tells every session app to exit;
    /// waits until they are gone (exit 3 after 10 s if some are not).
    UpgradePrepare,
    /// Started by a session app told to exit for an upgrade, from a copy in the temp folder:
    /// waits until the service was stopped and answers again (at most `--wait-secs`), then
    /// starts `EXE ARGS…` (the session app as it was started) and deletes the copy.
    #[command(hide = true)]
    RelaunchWait {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        exe: PathBuf,
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run by the MSI after it wrote the installer settings (deferred custom action, as LocalSystem,
    /// before the service starts): agent.toml from the settings, the till token out of the registry
    /// into the machine's token store, the data folder's access rules.
    #[command(hide = true)]
    InstallFinish,
    /// Queue depth, oldest pending item, last successful sync, server reachability, last error,
    /// dead letters.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The sync log (ingests, sends, acks, retries, rejections, quarantines).
    Log {
        /// Show the last N entries.
        #[arg(long, default_value_t = 50)]
        tail: usize,
        /// Keep printing new entries.
        #[arg(long, short)]
        follow: bool,
    },
    /// Check configuration, folders, server, token and clock.
    Doctor,
    /// Parse a receipt file: the normalised receipts as JSON (stdout), the reader used and why, and
    /// each bad receipt's exact error (line, field, value) on stderr. Works without agent.toml.
    Parse {
        file: PathBuf,
        /// Reader to use instead of the configured / detected one (csv, json, poslog, …).
        #[arg(long)]
        format: Option<String>,
        /// Program currency (ISO 4217) instead of the configured one (default CZK without config).
        #[arg(long)]
        currency: Option<String>,
        /// A file with a `[receipts]` section (as printed by `formats suggest`) to read with.
        #[arg(long)]
        receipts: Option<PathBuf>,
    },
    /// Receipt formats: `formats suggest FILE` guesses the `[receipts]` section for an unknown CSV.
    Formats {
        #[command(subcommand)]
        cmd: FormatsCmd,
    },
    /// Put dead-lettered (rejected) items back into the queue after the cause was fixed.
    Requeue,
    /// Store the till token in the OS credential store (read from stdin; never written to a file).
    Login {
        /// Read the token from stdin without a prompt (scripts).
        #[arg(long)]
        token_stdin: bool,
    },
    /// Show the cashier popup for a quote file as a scan would (test hook / trying languages).
    #[command(hide = true)]
    PopupDemo(crate::ui::demo::PopupDemoArgs),
    /// Decode what a card reader sent: classification, card id (never a payment card's number),
    /// or the reason it is not a loyalty card. JSON.
    Decode {
        /// The characters the reader typed before its terminator.
        #[arg(long, conflicts_with = "trace")]
        raw: Option<String>,
        /// A key-event trace (`d:KEY_1 t:8 u:KEY_1 …`): runs the scan detector on it.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Live view of every input device: keys with per-key timings, and the scan decision.
    ReaderTest {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Stop after N seconds.
        #[arg(long)]
        seconds: Option<u64>,
        /// X display (default $DISPLAY).
        #[arg(long)]
        display: Option<String>,
        /// Also listen on this serial port (repeatable).
        #[arg(long)]
        serial: Vec<String>,
        #[arg(long)]
        baud: Option<u32>,
        /// Do not listen to keyboards.
        #[arg(long)]
        no_wedge: bool,
    },
    /// The quote the popup would show for CARD (server within the timeout, else offline cache).
    Quote { card: String },
    /// Register a customer for a new CARD (support / scripts; the till's form does the same):
    /// checked like the form, queued in the outbox, sent by the agent (a running agent picks it
    /// up within seconds). The server's answer appears in `till-agent log`.
    Register(RegisterArgs),
    /// Pair a new CARD with a migration code of the old program (the old discount moves to it).
    Pair {
        card: String,
        #[arg(long)]
        code: String,
    },
    /// Redeem N points from CARD's account: online if the server answers within the quote
    /// timeout, else offline (queued; within the program's offline limit and offline balance).
    /// Prints the redemption id, the code for the POS, the money value and online/offline.
    Redeem {
        card: String,
        #[arg(long)]
        points: String,
        #[arg(long)]
        json: bool,
    },
    /// Void a redemption of this till (same business day): the points go back once.
    Void { redemption_id: String },
    /// Find a customer without a scanner: by card, phone number (national numbers in the
    /// program's country) or e-mail. Prints what the popup shows (the quote, with the messages
    /// for the cashier, which count as shown); phone and e-mail resolve offline through the
    /// cache's keyed hashes. Exit 0 found, 2 not found / bad input.
    Lookup(LookupArgs),
    /// Add a purchase to a card: tie POS receipt NO (of --date, default today) to CARD; queued
    /// in the outbox, the server credits that receipt once (also if it arrives later). With
    /// --total the tag counts as a totals-only receipt when no receipt file ever comes.
    Tag {
        #[arg(long)]
        receipt: String,
        #[arg(long)]
        card: String,
        /// YYYY-MM-DD or D.M.YYYY (default: today in the store's zone).
        #[arg(long)]
        date: Option<String>,
        /// The receipt's total (`123.50` / `123,50`).
        #[arg(long)]
        total: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct LookupArgs {
    #[arg(long, required_unless_present_any = ["phone", "email"], conflicts_with_all = ["phone", "email"])]
    pub card: Option<String>,
    #[arg(long, conflicts_with = "email")]
    pub phone: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// Print the quote as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FormatsCmd {
    /// Guess delimiter, encoding, decimal separator and column mapping of a CSV export and print the
    /// `[receipts]` section for agent.toml (check it with `parse --receipts`).
    Suggest { file: PathBuf },
}

#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    pub card: String,
    /// Full name, split at the last space into first name and surname (`"Jiří Dvořák"`).
    #[arg(long, conflicts_with_all = ["first_name", "surname", "company"])]
    pub name: Option<String>,
    #[arg(long)]
    pub first_name: Option<String>,
    #[arg(long)]
    pub surname: Option<String>,
    /// A company card: the company's name instead of a person's.
    #[arg(long, conflicts_with_all = ["first_name", "surname"])]
    pub company: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
    /// YYYY-MM-DD or D.M.YYYY.
    #[arg(long)]
    pub birthday: Option<String>,
    /// The customer consents to the program rules (required to enrol).
    #[arg(long)]
    pub consent: bool,
    /// The customer consents to marketing messages.
    #[arg(long)]
    pub marketing: bool,
}

impl RegisterArgs {
    pub fn form(&self) -> crate::enrol::RegistrationForm {
        let (first, last) = match &self.name {
            Some(n) => match n.trim().rsplit_once(char::is_whitespace) {
                Some((f, l)) => (f.trim().to_string(), l.to_string()),
                None => (n.trim().to_string(), String::new()),
            },
            None => (
                self.first_name.clone().unwrap_or_default(),
                self.surname.clone().unwrap_or_default(),
            ),
        };
        crate::enrol::RegistrationForm {
            company: self.company.is_some(),
            first_name: first,
            surname: last,
            company_name: self.company.clone().unwrap_or_default(),
            email: self.email.clone().unwrap_or_default(),
            phone: self.phone.clone().unwrap_or_default(),
            birthday: self.birthday.clone().unwrap_or_default(),
            consent_rules: self.consent,
            consent_marketing: self.marketing,
        }
    }
}

pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("till-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    // After an MSI install: seed agent.toml and the till token from the installer settings
    // (install.rs). Fatal only while there is no agent.toml to run with.
    let file = path.clone().unwrap_or_else(crate::config::default_path);
    if let Err(e) = crate::install::first_run(&file) {
        if !file.exists() {
            return Err(e);
        }
        tracing::warn!("installer settings: {e:#}");
        eprintln!("till-agent: warning: installer settings: {e:#}");
    }
    Ok(Config::load(path.as_deref())?)
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("till-agent {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::PopupDemo(args) => {
            let _guard = crate::synclog::init_tracing(None, false);
            crate::ui::demo::run(args)
        }
        Command::Decode { raw, trace } => {
            let cfg = crate::input::cli::optional_config(cli.config.as_deref())?;
            crate::input::cli::decode(cfg.as_ref(), raw.as_deref(), trace.as_deref())
        }
        Command::ReaderTest {
            json,
            seconds,
            display,
            serial,
            baud,
            no_wedge,
        } => {
            let cfg = crate::input::cli::optional_config(cli.config.as_deref())?;
            let args = crate::input::cli::ReaderTestArgs {
                json,
                seconds,
                display,
                serial,
                baud,
                no_wedge,
            };
            crate::input::cli::reader_test(cfg.as_ref(), args)
        }
        Command::Quote { card } => {
            let cfg = load(&cli.config)?;
            let id = crate::input::cli::quote_card(&cfg, &card)?;
            // A running service answers (a Windows user may read neither the cache nor the token).
            match crate::session::service_quote(&crate::os::ipc_endpoint(&cfg.data_dir), &id) {
                Some(q) => {
                    eprintln!("till-agent: quote from the till-agent service");
                    println!("{}", serde_json::to_string_pretty(&q?)?);
                    Ok(ExitCode::SUCCESS)
                }
                None => crate::input::cli::quote(&cfg, &card),
            }
        }
        Command::Run { headless } => run_agent(load(&cli.config)?, headless),
        Command::Service { console } => crate::service::main(cli.config, console),
        Command::Session { headless } => {
            // agent.toml as it is: the installer's first-run import is the service's business.
            crate::session::main(Config::load(cli.config.as_deref())?, headless)
        }
        Command::RelaunchWait {
            endpoint,
            exe,
            wait_secs,
            args,
        } => crate::session::relaunch_wait(&endpoint, &exe, &args, Duration::from_secs(wait_secs)),
        Command::InstallFinish => {
            let path = cli.config.clone().unwrap_or_else(crate::config::default_path);
            let done = crate::install::first_run(&path)?;
            let data_dir = match Config::load(Some(&path)) {
                Ok(cfg) => cfg.data_dir,
                Err(_) => path.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
            };
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating the data folder {}", data_dir.display()))?;
            let acl = crate::os::secure_data_dir(&data_dir)?;
            println!(
                "install-finish: agent.toml {}; till token {}; data folder {}",
                if done.wrote_config { "written" } else { "unchanged" },
                if done.imported_token {
                    "moved into the machine store"
                } else {
                    "unchanged"
                },
                acl.as_deref().unwrap_or("unchanged")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::UpgradePrepare => {
            let path = cli.config.clone().unwrap_or_else(crate::config::default_path);
            let data_dir = match Config::load(Some(&path)) {
                Ok(cfg) => cfg.data_dir,
                Err(_) => path.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
            };
            crate::session::upgrade_prepare(&crate::os::ipc_endpoint(&data_dir), Duration::from_secs(10))
        }
        Command::Register(args) => {
            let cfg = load(&cli.config)?;
            let card = cli_card(&cfg, &args.card)?;
            match args.form().validate(chrono::Local::now().date_naive()) {
                Ok(details) => enrol_cli(&cfg, crate::enrol::Request::register(card, details)),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("till-agent: {}: {e}", e.field.cli_flag());
                    }
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Pair { card, code } => {
            let cfg = load(&cli.config)?;
            let card = cli_card(&cfg, &card)?;
            match crate::enrol::validate_code(&code) {
                Ok(code) => enrol_cli(&cfg, crate::enrol::Request::pair(card, code)),
                Err(e) => {
                    eprintln!("till-agent: {}: {e}", e.field.cli_flag());
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Redeem { card, points, json } => {
            let cfg = load(&cli.config)?;
            let card = cli_card(&cfg, &card)?;
            redeem_cli(&cfg, card, &points, json)
        }
        Command::Void { redemption_id } => void_cli(&load(&cli.config)?, &redemption_id),
        Command::Lookup(args) => lookup_cli(&load(&cli.config)?, &args),
        Command::Tag {
            receipt,
            card,
            date,
            total,
        } => {
            let cfg = load(&cli.config)?;
            let form = crate::tag::TagForm {
                receipt,
                card,
                date: date.unwrap_or_default(),
                total: total.unwrap_or_default(),
            };
            tag_cli(&cfg, &form)
        }
        Command::Status { json } => {
            let cfg = load(&cli.config)?;
            let r = crate::status::collect(&cfg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                crate::status::print_human(&r);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Log { tail, follow } => {
            let cfg = load(&cli.config)?;
            print_log(&cfg, tail, follow)
        }
        Command::Doctor => Ok(if crate::status::doctor(cli.config.as_deref())? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Parse {
            file,
            format,
            currency,
            receipts,
        } => {
            let cfg = crate::input::cli::optional_config(cli.config.as_deref())?;
            let opts = crate::formats_cli::ParseOpts {
                format,
                currency,
                receipts,
            };
            crate::formats_cli::parse(cfg.as_ref(), &file, &opts)
        }
        Command::Formats {
            cmd: FormatsCmd::Suggest { file },
        } => crate::formats_cli::suggest(&file),
        Command::Requeue => {
            let cfg = load(&cli.config)?;
            let mut o = crate::sync::outbox::Outbox::open_existing(&cfg.outbox_path())?;
            let dead = o.dead_letters()?;
            let n = o.requeue()?;
            for d in &dead {
                o.log(
                    "info",
                    "requeue",
                    Some(&d.item_id),
                    &format!(
                        "dead letter put back into the queue (was: {})",
                        d.reason.as_deref().unwrap_or("?")
                    ),
                )?;
            }
            println!("{n} dead letter(s) put back into the queue");
            Ok(ExitCode::SUCCESS)
        }
        Command::Login { token_stdin } => {
            let cfg = load(&cli.config)?;
            let token = read_token(token_stdin)?;
            crate::credentials::store_token(&cfg, &token)?;
            println!("till token stored in {}", crate::credentials::store_description(&cfg));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// CARD of `register` / `pair`, checked against the program's card policy (as a scan is).
fn cli_card(cfg: &Config, raw: &str) -> anyhow::Result<protocol::CardId> {
    let policy = crate::input::cli::policy_for(Some(cfg));
    protocol::CardId::parse(raw, &policy).map_err(|e| {
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        anyhow::anyhow!("CARD {}: {e}", protocol::ids::mask_digits(&digits))
    })
}

/// Queue a registration / pairing into the outbox (the agent may run or not: SQLite WAL).
fn enrol_cli(cfg: &Config, req: crate::enrol::Request) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(None, false);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data folder {}", cfg.data_dir.display()))?;
    let mut outbox = crate::sync::outbox::Outbox::open(&cfg.outbox_path())?;
    let log = crate::synclog::SyncLog::open(&cfg.outbox_path())?;
    let country = crate::lookup::till_phone_country(cfg);
    let new = crate::enrol::enqueue(&mut outbox, &log, &req, &cfg.store_id, &cfg.till_id, &country)?;
    println!(
        "{} for card {} {} (request {}); the agent sends it within seconds when it runs, else at its next start; see `till-agent log`",
        req.what(),
        req.card(),
        if new { "queued" } else { "was already queued" },
        req.request_id()
    );
    Ok(ExitCode::SUCCESS)
}

/// `lookup (--card|--phone|--email) [--json]`: the popup's quote; its messages count as shown.
fn lookup_cli(cfg: &Config, args: &LookupArgs) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(None, false);
    let svc = crate::quote::QuoteService::new(cfg)?;
    let cache = svc.cache().ok();
    let policy = svc.card_policy();
    let parsed = match (&args.card, &args.phone, &args.email) {
        (Some(c), _, _) => crate::lookup::parse_card(c, &policy),
        (_, Some(p), _) => crate::lookup::parse_phone(
            p,
            &crate::lookup::phone_country(cfg.phone_country.as_deref(), cache.as_deref()),
        ),
        (_, _, Some(e)) => crate::lookup::parse_email(e),
        _ => unreachable!("clap requires one of --card, --phone, --email"),
    };
    let flag = match (&args.card, &args.phone) {
        (Some(_), _) => "--card",
        (_, Some(_)) => "--phone",
        _ => "--email",
    };
    let q = match parsed {
        Ok(q) => q,
        Err(e) => {
            eprintln!("till-agent: {flag}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (card, quote) = match cli_runtime()?.block_on(crate::lookup::lookup(&svc, &q)) {
        Ok(found) => found,
        Err(e @ crate::lookup::LookupError::Other(_)) => return Err(anyhow::anyhow!("{e}")),
        Err(e) => {
            eprintln!("till-agent: {flag}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(e) = svc.ack_shown(&quote) {
        eprintln!("till-agent: the messages were shown but their acks could not be queued: {e:#}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&quote)?);
        return Ok(ExitCode::SUCCESS);
    }
    let lang = crate::locale::Lang::resolve(cfg.language.as_deref()).unwrap_or(crate::locale::Lang::En);
    println!("card {card}");
    match &quote.result {
        protocol::v1::QuoteResult::Customer { quote: cq, .. }
        | protocol::v1::QuoteResult::Replaced { quote: cq, .. } => {
            println!(
                "{} · {} · {}",
                crate::ui::viewmodel::customer_title(lang, cq),
                cq.tier,
                crate::ui::plural::count(lang, cq.points_balance, crate::ui::plural::Noun::Point)
            );
            for m in &cq.messages {
                println!("say: {}", crate::ui::say::message(lang, m, cq.currency));
            }
        }
        protocol::v1::QuoteResult::UnknownCard { .. } => println!("unknown card"),
        protocol::v1::QuoteResult::Blocked { reason, .. } => println!("blocked: {reason}"),
    }
    if let protocol::v1::QuoteSource::Offline { as_of } = &quote.source {
        println!("offline, as of {as_of}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `tag --receipt NO --card CARD [--date D] [--total T]`: exit 0 queued, 2 bad input.
fn tag_cli(cfg: &Config, form: &crate::tag::TagForm) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(None, false);
    let policy = crate::input::cli::policy_for(Some(cfg));
    let now = chrono::Utc::now();
    let tag = match form.validate(&policy, cfg.zone.date_at(now)) {
        Ok(t) => t,
        Err(errors) => {
            for e in &errors {
                eprintln!("till-agent: --{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data folder {}", cfg.data_dir.display()))?;
    let mut outbox = crate::sync::outbox::Outbox::open(&cfg.outbox_path())?;
    let log = crate::synclog::SyncLog::open(&cfg.outbox_path())?;
    let id = crate::tag::enqueue(&mut outbox, &log, &tag, &cfg.store_id, &cfg.till_id, cfg.zone.at(now))?;
    println!(
        "receipt {} of {} tagged to card {} (request {id}); queued, the agent sends it within seconds when it runs; see `till-agent log`",
        tag.receipt, tag.date, tag.card
    );
    Ok(ExitCode::SUCCESS)
}

fn cli_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// `redeem CARD --points N [--json]`: exit 0 redeemed (online or queued offline), 2 refused.
fn redeem_cli(cfg: &Config, card: protocol::CardId, points: &str, json: bool) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(None, false);
    let points: rust_decimal::Decimal = match points.trim().parse() {
        Ok(p) if p > rust_decimal::Decimal::ZERO => p,
        _ => {
            eprintln!("till-agent: --points: {points:?} is not a positive number of points");
            return Ok(ExitCode::from(2));
        }
    };
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data folder {}", cfg.data_dir.display()))?;
    let req = crate::redeem::new_request(&card, points, &cfg.store_id, &cfg.till_id);
    match cli_runtime()?.block_on(crate::redeem::redeem(cfg, &req))? {
        Ok(out) => {
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                let a = &out.answer;
                println!(
                    "{} points = {} {} for card {} — code {} — redemption {} ({}; balance {})",
                    a.points, a.value, a.currency, card, a.code, a.redemption_id, out.mode, a.balance_after
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(refused) => {
            eprintln!("till-agent: redeem: {refused}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `void REDEMPTION_ID`: exit 0 voided, 2 refused.
fn void_cli(cfg: &Config, id: &str) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(None, false);
    match cli_runtime()?.block_on(crate::redeem::void(cfg, id))? {
        Ok(crate::redeem::Voided::Unsent(r)) => {
            println!(
                "redemption {id} of {} points for card {} was not sent yet: removed from the queue",
                r.points, r.card
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(crate::redeem::Voided::Server(a)) => {
            println!(
                "redemption {id} voided: {} points back (balance {})",
                a.points, a.balance_after
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(refused) => {
            eprintln!("till-agent: void: {refused}");
            Ok(ExitCode::from(2))
        }
    }
}

/// The till token: typed at a terminal (cmd, PowerShell, a Linux tty) it is read from the console
/// itself without echo (rpassword); piped in (scripts, `--token-stdin`) it is one line of stdin.
fn read_token(no_prompt: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !no_prompt && stdin.is_terminal() {
        let token = rpassword::prompt_password("Till token (from `server-stub till add` / the admin; not shown): ")
            .context("reading the token from the console")?;
        return Ok(token.trim().to_string());
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the token from stdin")?;
    Ok(line.trim().to_string())
}

fn print_log(cfg: &Config, tail: usize, follow: bool) -> anyhow::Result<ExitCode> {
    let o = crate::sync::outbox::Outbox::open_existing(&cfg.outbox_path())?;
    let fmt = |r: &crate::sync::outbox::LogRow| {
        format!(
            "{} {:<5} {:<10} {} {}",
            // Local time (the table keeps UTC): what a person at the till compares with a clock.
            crate::ui::human::local_secs(crate::ui::Lang::En, &r.ts),
            r.level.to_uppercase(),
            r.kind,
            r.item_id.as_deref().unwrap_or("-"),
            r.message
        )
    };
    // Follow from the newest entry even when none of the old ones are printed (`--tail 0`).
    let mut last = o.log_tail(1)?.last().map_or(0, |r| r.id);
    for r in o.log_tail(tail)? {
        println!("{}", fmt(&r));
        last = r.id;
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        for r in o.log_after(last)? {
            println!("{}", fmt(&r));
            last = r.id;
        }
        std::io::stdout().flush()?;
    }
}

/// `till-agent run [--headless]`.
fn run_agent(cfg: Config, headless: bool) -> anyhow::Result<ExitCode> {
    let _guard = crate::synclog::init_tracing(Some(&cfg.log_dir()), false);
    let lang = crate::ui::Lang::resolve(cfg.language.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    if !headless && crate::ui::activate_running_instance()? {
        tracing::info!("till-agent already runs in this session; asked it to show its last popup");
        eprintln!("till-agent: already running in this session; it was asked to show its last popup");
        return Ok(ExitCode::SUCCESS);
    }
    let _lock = crate::runtime::lock_data_dir(&cfg.data_dir)?;
    // A data folder that cannot be opened (read-only, disk full) is a runtime problem, not a
    // configuration one: say so and retry until it works or we are told to stop.
    let bg = loop {
        match crate::runtime::start_background(cfg.clone()) {
            Ok(bg) => break bg,
            Err(e) => {
                tracing::error!("cannot start: {e:#}; retrying in 2 s (receipts stay in the export folder)");
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let stop = rt.block_on(async {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => false,
                        _ = crate::runtime::terminate_signal() => true,
                    }
                });
                if stop {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    };
    if headless {
        let rx = bg.bus.subscribe();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            tokio::select! {
                // Each popup as a JSON line on stdout and in the sync log (`till-agent log`).
                r = crate::ui::headless::run_with(rx, lang, std::io::stdout(), |v| {
                    bg.shared.log.info("popup", None, &v.to_json_line())
                }) => r,
                _ = crate::runtime::terminate_signal() => Ok(()),
            }
        })?;
    } else {
        let commands = bg.commands.clone();
        let ctx = crate::ui::GuiContext {
            lang,
            popup: cfg.popup.clone(),
            about: crate::ui::AboutInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                store_id: cfg.store_id.to_string(),
                till_id: cfg.till_id.to_string(),
                server_url: cfg.server_url.clone(),
            },
            config_path: cfg.path.clone(),
            log_dir: Some(cfg.log_dir()),
            sync_log: Some(crate::ui::synclog_view::SyncLogSource::File(cfg.outbox_path())),
            bus: bg.bus.clone(),
            status: Some(bg.status.clone()),
            requests: std::sync::Arc::new(move |r| match r {
                crate::ui::UiRequest::SyncNow => {
                    let _ = commands.send(crate::runtime::Command::SyncNow);
                }
                crate::ui::UiRequest::Enrol(req) => {
                    let _ = commands.send(crate::runtime::Command::Enrol(req));
                }
                crate::ui::UiRequest::Redeem(req) => {
                    let _ = commands.send(crate::runtime::Command::Redeem(req));
                }
                crate::ui::UiRequest::Void(id) => {
                    let _ = commands.send(crate::runtime::Command::Void(id));
                }
                crate::ui::UiRequest::ReaderTest(on) => {
                    let _ = commands.send(crate::runtime::Command::ReaderTest(on));
                }
                crate::ui::UiRequest::Find { request_id, query } => {
                    let _ = commands.send(crate::runtime::Command::Find { request_id, query });
                }
                crate::ui::UiRequest::Tag(t) => {
                    let _ = commands.send(crate::runtime::Command::Tag {
                        request_id: t.request_id,
                        form: Box::new(t.form),
                    });
                }
                _ => {}
            }),
            tray: true,
            escape_from_wedge: cfg.reader.wedge,
            initial: Vec::new(),
        };
        crate::ui::run_gui(ctx)?;
    }
    tracing::info!("shutting down: flushing the outbox");
    bg.shutdown()?;
    Ok(ExitCode::SUCCESS)
}
