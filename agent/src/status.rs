//! Support-staff views: `till-agent status [--json]` and `till-agent doctor`.
//! Both read `outbox.db` directly (the running agent need not be asked) and probe the server.
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::sync::client::{Failure, ServerClient};
use crate::sync::outbox::{DeadLetter, Outbox};

#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub store_id: String,
    pub till_id: String,
    pub server_url: String,
    /// Items waiting to be sent.
    pub queue_depth: u64,
    /// Items acknowledged per minute over the last 10 minutes (None: none sent).
    pub drain_per_min: Option<f64>,
    /// Time left for the queue at that rate.
    pub eta_secs: Option<u64>,
    pub oldest_pending: Option<DateTime<Utc>>,
    pub oldest_pending_age_secs: Option<i64>,
    pub sent: u64,
    pub dead_letters: u64,
    pub dead_letter_items: Vec<DeadLetter>,
    /// Last batch the server acknowledged (as recorded by the agent).
    pub last_success: Option<String>,
    /// Probed now (`GET /healthz`).
    pub server_reachable: bool,
    /// What the running agent last saw.
    pub agent_saw_server_reachable: Option<bool>,
    pub last_error: Option<String>,
    /// Card readers that did not work when the running agent last said (empty: all fine).
    pub reader_problems: Vec<String>,
    /// Why receipts did not move when the running agent last tried (classified), `None` if they did.
    pub sync_problem: Option<crate::events::SyncProblem>,
    /// Background tasks the running agent had to restart (until they run cleanly again).
    pub task_problems: Vec<String>,
    /// This till's offline redemptions (newest first, at most 20; card masked).
    pub redemptions: Vec<crate::redeem::QueuedRedemption>,
    /// The last time the server's database was found restored (when, ids, items sent again).
    pub last_restore: Option<String>,
    pub outbox: String,
}

pub fn collect(cfg: &Config) -> anyhow::Result<StatusReport> {
    let o = Outbox::open_existing(&cfg.outbox_path())?;
    let s = o.stats()?;
    let reachable = block_on(async { Ok(ServerClient::new(cfg)?.probe().await) })?;
    let backlog = crate::ui::human::backlog_from_outbox(&cfg.outbox_path())?;
    Ok(StatusReport {
        store_id: cfg.store_id.to_string(),
        till_id: cfg.till_id.to_string(),
        server_url: cfg.server_url.clone(),
        queue_depth: s.pending,
        drain_per_min: backlog.per_min,
        eta_secs: backlog.eta.map(|d| d.as_secs()),
        oldest_pending_age_secs: s.oldest_pending.map(|t| (Utc::now() - t).num_seconds().max(0)),
        oldest_pending: s.oldest_pending,
        sent: s.sent,
        dead_letters: s.dead_letters,
        dead_letter_items: o.dead_letters()?,
        last_success: o.meta("last_success")?,
        server_reachable: reachable,
        agent_saw_server_reachable: o.meta("server_reachable")?.map(|v| v == "true"),
        last_error: o.meta("last_error")?,
        reader_problems: o
            .meta("reader_problems")?
            .map(|p| p.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        sync_problem: o.meta("sync_problem")?.and_then(|p| serde_json::from_str(&p).ok()),
        task_problems: o
            .meta("task_problems")?
            .map(|p| p.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        redemptions: crate::redeem::queued(&o, 20)?,
        last_restore: o.meta("last_restore")?,
        outbox: cfg.outbox_path().display().to_string(),
    })
}

/// The human form: English (support staff share it in tickets, like `log` and `doctor`), times
/// in this computer's local time, ages as `3 h 12 min`.
pub fn print_human(r: &StatusReport) {
    use crate::ui::human;
    let lang = crate::ui::Lang::En;
    println!("Store / till:         {} / {}", r.store_id, r.till_id);
    println!(
        "Server:               {} ({})",
        r.server_url,
        if r.server_reachable {
            "reachable"
        } else {
            "NOT reachable"
        }
    );
    let backlog = human::Backlog {
        depth: r.queue_depth,
        per_min: r.drain_per_min,
        eta: r.eta_secs.map(Duration::from_secs),
    };
    println!("Queue:                {}", human::backlog_en(&backlog));
    if let (Some(t), Some(a)) = (&r.oldest_pending, r.oldest_pending_age_secs) {
        println!(
            "Oldest pending:       {} ({} ago)",
            human::local(lang, t),
            human::duration_secs(a)
        );
    }
    println!("Sent:                 {}", r.sent);
    println!(
        "Last successful sync: {}",
        r.last_success
            .as_deref()
            .map(|t| human::local_str(lang, t))
            .unwrap_or_else(|| "never".into())
    );
    println!("Last error:           {}", r.last_error.as_deref().unwrap_or("none"));
    if let Some(n) = &r.last_restore {
        println!("Server restored:      {n}");
    }
    if let Some(p) = &r.sync_problem {
        println!("Sync problem:         {}: {}", p.kind.describe(), p.detail);
    }
    for p in &r.task_problems {
        println!("Background task:      {p}");
    }
    if r.reader_problems.is_empty() {
        println!("Card readers:         ok");
    }
    for p in &r.reader_problems {
        println!("Card reader:          {p}");
    }
    for q in &r.redemptions {
        println!(
            "Offline redemption:   {} {} points, card {}, {} ({})",
            q.requested_at.format("%Y-%m-%d %H:%M"),
            q.points,
            q.card,
            q.state,
            q.redemption_id
        );
    }
    println!("Dead letters:         {}", r.dead_letters);
    for d in &r.dead_letter_items {
        println!(
            "  {} {} (attempts {}, queued {}): {}",
            d.kind,
            d.item_id,
            d.attempts,
            human::local_str(lang, &d.created_at),
            d.reason.as_deref().unwrap_or("?")
        );
    }
    if r.dead_letters > 0 {
        println!("  after fixing the cause: till-agent requeue");
    }
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// One doctor line.
struct Check {
    ok: Option<bool>, // None = warning
    what: String,
    detail: String,
}

fn writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create: {e}"))?;
    let p = dir.join(format!(".till-agent-doctor-{}", std::process::id()));
    std::fs::write(&p, b"x").map_err(|e| format!("not writable: {e}"))?;
    std::fs::remove_file(&p).map_err(|e| format!("cannot delete files: {e}"))?;
    Ok(())
}

/// Run the checks, print them; returns true when nothing failed.
/// The card readers of `[reader]`: each serial reader found and opened (a port in use is only a
/// warning: the running agent holds it), the keyboard wedge's input (X display / Raw Input) with
/// its keyboards and which `dedicated` entries match one now.
fn reader_checks(r: &crate::input::config::ReaderConfig) -> Vec<Check> {
    use crate::input::serial::{self, SerialError, SystemPorts};
    let mut out = Vec::new();
    for (i, sc) in r.serial.iter().enumerate() {
        let what = format!("serial reader {}", i + 1);
        let settings = format!(
            "{} baud {}{}{}",
            sc.baud,
            sc.data_bits,
            sc.parity.letter(),
            sc.stop_bits
        );
        let (ok, detail) =
            match serial::find_port_in(sc, &SystemPorts).and_then(|name| serial::open(sc, &name).map(|_| name)) {
                Ok(name) => (Some(true), format!("{name} opened ({settings})")),
                Err(e @ SerialError::InUse { .. }) => (None, format!("{e} — fine if it is this till's running agent")),
                Err(e) => (Some(false), e.to_string()),
            };
        out.push(Check { ok, what, detail });
    }
    if !r.wedge {
        out.push(Check {
            ok: None,
            what: "keyboard wedge".into(),
            detail: "off (`[reader] wedge = false`)".into(),
        });
        return out;
    }
    match crate::input::oskbd::open(None, false) {
        Ok(src) => {
            let kind = src.kind();
            let devices = src.devices();
            let dedicated: Vec<String> = devices
                .iter()
                .filter(|d| r.is_dedicated(&[&d.name, &d.label(kind), &format!("{kind}:{}", d.name)]))
                .map(|d| format!("{} ({})", d.label(kind), d.name))
                .collect();
            let mode = match r.mode {
                crate::input::config::Mode::Intercept => "intercept",
                crate::input::config::Mode::Passthrough => "passthrough",
            };
            out.push(Check {
                ok: Some(true),
                what: "keyboard wedge".into(),
                detail: format!("{kind}, {} keyboard(s), mode {mode}", devices.len()),
            });
            if !r.dedicated.is_empty() {
                out.push(Check {
                    ok: if dedicated.is_empty() { None } else { Some(true) },
                    what: "dedicated scanner".into(),
                    detail: if dedicated.is_empty() {
                        format!("none of {:?} matches a keyboard now (plugged in? `till-agent reader-test` shows the names)", r.dedicated)
                    } else {
                        dedicated.join(", ")
                    },
                });
            }
        }
        // A till without a desktop session (service, ssh) has no keyboard input to listen to.
        Err(e) => out.push(Check {
            ok: None,
            what: "keyboard wedge".into(),
            detail: format!("unavailable here: {e:#}"),
        }),
    }
    out
}

pub fn doctor(config_path: Option<&Path>) -> anyhow::Result<bool> {
    let mut checks = Vec::new();
    let cfg = match Config::load(config_path) {
        Ok(c) => {
            checks.push(Check {
                ok: Some(true),
                what: "configuration".into(),
                detail: c.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            });
            c
        }
        Err(e) => {
            println!("FAIL configuration: {e}");
            return Ok(false);
        }
    };
    for (what, dir) in [
        ("export folder", cfg.export_dir.clone()),
        ("processed folder", cfg.processed_dir()),
        ("quarantine folder", cfg.quarantine_dir()),
        ("data folder", cfg.data_dir.clone()),
        ("log folder", cfg.log_dir()),
    ] {
        match writable(&dir) {
            Ok(()) => checks.push(Check {
                ok: Some(true),
                what: what.into(),
                detail: format!("{} (read/write)", dir.display()),
            }),
            Err(e) => checks.push(Check {
                ok: Some(false),
                what: what.into(),
                detail: format!("{}: {e}", dir.display()),
            }),
        }
    }
    match Outbox::open(&cfg.outbox_path()).and_then(|o| o.stats()) {
        Ok(s) => checks.push(Check {
            ok: Some(s.dead_letters == 0).filter(|b| *b).or(None),
            what: "outbox".into(),
            detail: format!(
                "{} pending, {} sent, {} dead letter(s)",
                s.pending, s.sent, s.dead_letters
            ),
        }),
        Err(e) => checks.push(Check {
            ok: Some(false),
            what: "outbox".into(),
            detail: format!("{e:#}"),
        }),
    }
    // The service half (Windows service / `service --console`): does it answer, and who may open
    // its endpoint (read back from the system). Informational: `run` needs no service.
    let endpoint = crate::os::ipc_endpoint(&cfg.data_dir);
    let access = crate::os::ipc_endpoint_security(&endpoint)
        .map(|a| format!("access {a}"))
        .unwrap_or_else(|e| format!("access unknown: {e}"));
    match crate::session::ask_service(&endpoint, crate::ipc::Request::Status) {
        Some(Ok(crate::ipc::Response::Status {
            start_error, sessions, ..
        })) => checks.push(Check {
            ok: Some(start_error.is_none()),
            what: "till-agent service".into(),
            detail: match start_error {
                None => format!("{endpoint} answers; {sessions} session app(s); {access}"),
                Some(e) => format!("{endpoint} answers but could not start: {e}"),
            },
        }),
        Some(Ok(other)) => checks.push(Check {
            ok: Some(false),
            what: "till-agent service".into(),
            detail: format!("{endpoint}: unexpected answer {other:?}"),
        }),
        Some(Err(e)) => checks.push(Check {
            ok: Some(false),
            what: "till-agent service".into(),
            detail: format!("{endpoint}: {e:#}"),
        }),
        None => checks.push(Check {
            ok: None,
            what: "till-agent service".into(),
            detail: format!("none answers at {endpoint} (fine for `till-agent run`)"),
        }),
    }
    let token = crate::credentials::till_token_with_source(&cfg);
    match &token {
        Ok((_, src)) => checks.push(Check {
            ok: Some(true),
            what: "till token present".into(),
            detail: format!("from {src:?}"),
        }),
        Err(e) => checks.push(Check {
            ok: Some(false),
            what: "till token present".into(),
            detail: format!("{e:#}"),
        }),
    }
    checks.extend(reader_checks(&cfg.reader));
    let net: anyhow::Result<Vec<Check>> = block_on(async {
        let mut out = Vec::new();
        let c = ServerClient::new(&cfg)?;
        match c.health(Duration::from_secs(3).min(c.timeout())).await {
            Ok(h) => {
                out.push(Check {
                    ok: Some(true),
                    what: "server reachable".into(),
                    detail: format!("{} ({} ms)", cfg.server_url, h.rtt.as_millis()),
                });
                match h.time {
                    Some(server) => {
                        let skew = (Utc::now() - server.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0;
                        let ok = if skew.abs() > 300.0 {
                            Some(false)
                        } else if skew.abs() > 60.0 {
                            None
                        } else {
                            Some(true)
                        };
                        out.push(Check {
                            ok,
                            what: "clock skew vs server".into(),
                            detail: format!(
                                "{skew:+.1} s (till {} server)",
                                if skew >= 0.0 { "ahead of" } else { "behind" }
                            ),
                        });
                    }
                    None => out.push(Check {
                        ok: None,
                        what: "clock skew vs server".into(),
                        detail: "server sent no `time`".into(),
                    }),
                }
            }
            Err(Failure::Network(e)) => {
                let clock = e.contains(crate::sync::client::CERT_CLOCK);
                out.push(Check {
                    ok: Some(false),
                    what: "server reachable".into(),
                    detail: e,
                });
                if clock {
                    // The skew cannot be measured without the server: say what the till believes.
                    out.push(Check {
                        ok: Some(false),
                        what: "till clock".into(),
                        detail: format!(
                            "{} — the server's certificate is not valid at this time; check the till's date, time and time zone",
                            chrono::Local::now().format("%Y-%m-%d %H:%M:%S %:z")
                        ),
                    });
                }
            }
            Err(e) => out.push(Check {
                ok: Some(false),
                what: "server reachable".into(),
                detail: format!("/healthz: {e}"),
            }),
        }
        if let Ok((t, _)) = &token {
            match c.check_token(t, Duration::from_secs(5).min(c.timeout())).await {
                Ok(()) => out.push(Check {
                    ok: Some(true),
                    what: "till token valid".into(),
                    detail: "server accepted it".into(),
                }),
                Err(Failure::Network(e)) => out.push(Check {
                    ok: None,
                    what: "till token valid".into(),
                    detail: format!("could not ask the server: {e}"),
                }),
                Err(e) => out.push(Check {
                    ok: Some(false),
                    what: "till token valid".into(),
                    detail: e.to_string(),
                }),
            }
        }
        Ok(out)
    });
    checks.extend(net?);
    let mut all_ok = true;
    for c in &checks {
        let tag = match c.ok {
            Some(true) => "ok  ",
            None => "warn",
            Some(false) => {
                all_ok = false;
                "FAIL"
            }
        };
        println!("{tag} {}: {}", c.what, c.detail);
    }
    Ok(all_ok)
}
