//! Support-staff commands of the input area: `decode`, `reader-test`, `quote`. `cli.rs` only
//! dispatches here.
//!
//! Nothing here prints a payment card's number: classifications carry at most the last 4
//! digits, and `reader-test` shows digit and letter keys as `digit` / `letter` (with timings),
//! never which digit.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::ids::{CardId, CardPolicy};
use serde_json::{json, Value};

use super::config::{ReaderConfig, SerialConfig};
use super::detect::{Action, Detector};
use super::diag::{self, ReaderDiag, WedgeDiag};
use super::payload::{self, Payload};
use super::run::{run_wedge, WedgeReport};
use super::serial::{self, SerialEvent};
use crate::config::Config;

/// The card policy without contacting anything: `[reader] card_policy`, the cached program's,
/// or the generic default.
pub fn policy_for(cfg: Option<&Config>) -> CardPolicy {
    let Some(cfg) = cfg else { return CardPolicy::default() };
    if let Some(p) = &cfg.reader.card_policy {
        return p.clone();
    }
    let path = cfg.cache_path();
    if path.exists() {
        if let Ok(Some(r)) = crate::cache::Cache::open(&path).and_then(|c| c.rules()) {
            return r.program.card_policy;
        }
    }
    CardPolicy::default()
}

fn payload_kind(p: &Payload) -> Value {
    match p {
        Payload::Magstripe(t) => json!({"kind": "magstripe", "tracks": t.iter().map(|t| t.number).collect::<Vec<_>>(),
            "read_errors": t.iter().filter(|t| t.error).map(|t| t.number).collect::<Vec<_>>()}),
        Payload::Encrypted => json!({"kind": "encrypted"}),
        Payload::Barcode { symbology, .. } => json!({"kind": "barcode", "symbology": symbology}),
    }
}

/// JSON for one payload: the classification (`class`, `card` / `last4` / `detail` / `reason`)
/// plus what kind of payload it was.
pub fn decode_json(text: &str, policy: &CardPolicy) -> Value {
    let p = payload::parse(text);
    let c = payload::classify_payload(&p, policy);
    let mut v = serde_json::to_value(&c).expect("classification serialises");
    v["payload"] = payload_kind(&p);
    v
}

pub fn decode(cfg: Option<&Config>, raw: Option<&str>, trace: Option<&Path>) -> anyhow::Result<ExitCode> {
    let policy = policy_for(cfg);
    if let Some(raw) = raw {
        println!("{}", decode_json(raw, &policy));
        return Ok(ExitCode::SUCCESS);
    }
    let path = trace.context("give --raw TEXT or --trace FILE")?;
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let events = super::script::parse(&text).with_context(|| path.display().to_string())?;
    let reader = cfg.map(|c| c.reader.clone()).unwrap_or_default();
    let mut det = Detector::new(reader.detect_config());
    let mut decisions = Vec::new();
    for a in det.run(&events) {
        match a {
            Action::Scan(s) => {
                let mut v = decode_json(&s.text, &policy);
                v["decision"] = json!("scan");
                v["device"] = json!(s.device);
                v["dedicated"] = json!(s.dedicated);
                v["stats"] = serde_json::to_value(&s.stats)?;
                decisions.push(v);
            }
            Action::NotScan {
                device, reason, stats, ..
            } => {
                decisions.push(json!({"decision": "not_scan", "device": device, "reason": reason, "stats": stats}));
            }
            Action::Replay(_) | Action::Swallow(_) => {}
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"trace": path.display().to_string(), "events": events.len(), "decisions": decisions})
        )?
    );
    Ok(ExitCode::SUCCESS)
}

pub struct ReaderTestArgs {
    pub json: bool,
    pub seconds: Option<u64>,
    pub display: Option<String>,
    pub serial: Vec<String>,
    pub baud: Option<u32>,
    pub no_wedge: bool,
}

pub fn reader_test(cfg: Option<&Config>, args: ReaderTestArgs) -> anyhow::Result<ExitCode> {
    let mut reader: ReaderConfig = cfg.map(|c| c.reader.clone()).unwrap_or_default();
    for port in &args.serial {
        reader.serial.push(SerialConfig {
            port: Some(port.clone()),
            baud: args.baud.unwrap_or(9600),
            ..Default::default()
        });
    }
    if args.no_wedge {
        reader.wedge = false;
    }
    reader.validate().map_err(anyhow::Error::msg)?;
    let policy = policy_for(cfg);
    let json_out = args.json;
    let (tx, rx) = std::sync::mpsc::channel::<(Value, String)>();
    let stop = Arc::new(AtomicBool::new(false));

    for sc in reader.serial.clone() {
        let tx = tx.clone();
        let stop = stop.clone();
        let policy = policy.clone();
        std::thread::spawn(move || {
            let classify = |t: &str| payload::classify(t, &policy);
            serial::run_reader(&sc, stop, |ev| {
                let human = diag::line(&diag::serial(&ev, Some(&classify)));
                let v = match ev {
                    SerialEvent::Connected { port } => json!({"type": "serial", "event": "connected", "port": port}),
                    SerialEvent::Disconnected { port, reason } => {
                        json!({"type": "serial", "event": "disconnected", "port": port, "reason": reason})
                    }
                    SerialEvent::Unavailable { error } => {
                        json!({"type": "serial", "event": "unavailable", "error": error.to_string()})
                    }
                    SerialEvent::Line { port, text, at } => {
                        let mut v = decode_json(&text, &policy);
                        v["type"] = json!("scan");
                        v["source"] = json!(format!("serial:{port}"));
                        v["decode_us"] = json!(at.elapsed().as_micros() as u64);
                        v
                    }
                };
                let _ = tx.send((v, human));
            });
        });
    }
    if reader.wedge {
        let tx = tx.clone();
        let stop = stop.clone();
        let policy = policy.clone();
        let reader = reader.clone();
        let display = args.display.clone();
        std::thread::spawn(move || {
            let source = match super::oskbd::open(display.as_deref(), false) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send((
                        json!({"type": "error", "source": "wedge", "error": format!("{e:#}")}),
                        format!("keyboard wedge: {e:#}"),
                    ));
                    return;
                }
            };
            let kind = source.kind();
            let mut wd = WedgeDiag::new(kind);
            let _ = tx.send((json!({"type": "ready", "source": kind}), diag::line(&wd.listening())));
            let classify = |t: &str| payload::classify(t, &policy);
            let r = run_wedge(source, &reader, &stop, |r| {
                // The human line is the shared reader-test formatting (the GUI window shows the same).
                let Some(d) = wd.report(&r, Some(&classify)) else {
                    return;
                };
                let human = diag::line(&d);
                let v = match (&r, &d) {
                    (WedgeReport::Device { info, added, dedicated }, _) => {
                        json!({"type": "device", "source": kind, "id": info.id, "name": info.name, "added": added, "dedicated": dedicated})
                    }
                    (WedgeReport::Key { ev, gap_ms, .. }, ReaderDiag::Key { key, .. }) => {
                        json!({"type": "key", "device": ev.device, "key": key, "gap_ms": gap_ms, "time_ms": ev.time_ms})
                    }
                    (
                        WedgeReport::Action {
                            action: Action::Scan(s),
                            device,
                        },
                        _,
                    ) => {
                        let mut v = decode_json(&s.text, &policy);
                        v["type"] = json!("scan");
                        v["source"] = json!(format!("{kind}:{}", s.device));
                        v["device_name"] = json!(device.map(|d| d.name.clone()));
                        v["dedicated"] = json!(s.dedicated);
                        v["prefixed"] = json!(s.prefixed);
                        v["stats"] = serde_json::to_value(&s.stats).unwrap_or_default();
                        v
                    }
                    (
                        WedgeReport::Action {
                            action:
                                Action::NotScan {
                                    device,
                                    reason,
                                    stats,
                                    read_error,
                                },
                            ..
                        },
                        _,
                    ) => json!({
                        "type": "not_scan", "source": format!("{kind}:{device}"), "reason": reason, "stats": stats, "read_error": read_error
                    }),
                    _ => return,
                };
                let _ = tx.send((v, human));
            });
            if let Err(e) = r {
                let _ = tx.send((
                    json!({"type": "error", "source": kind, "error": format!("{e:#}")}),
                    format!("{kind}: {e:#}"),
                ));
            }
        });
    }
    drop(tx);
    let deadline = args.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let out = std::io::stdout();
    loop {
        let wait = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        if wait.is_zero() {
            break;
        }
        match rx.recv_timeout(wait) {
            Ok((v, human)) => {
                let mut o = out.lock();
                let _ = if json_out {
                    writeln!(o, "{v}")
                } else {
                    writeln!(o, "{human}")
                };
                let _ = o.flush();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(ExitCode::SUCCESS)
}

pub fn quote(cfg: &Config, card: &str) -> anyhow::Result<ExitCode> {
    let card = quote_card(cfg, card)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let svc = crate::quote::QuoteService::new(cfg)?;
    let q = rt.block_on(svc.quote(&card))?;
    println!("{}", serde_json::to_string_pretty(&q)?);
    Ok(ExitCode::SUCCESS)
}

/// The card of `quote CARD`, checked: never a payment card, valid for the program's policy.
pub fn quote_card(cfg: &Config, card: &str) -> anyhow::Result<CardId> {
    let policy = policy_for(Some(cfg));
    // A payment card typed in is not looked up: its number never goes to the server (and the
    // error says so before any other rule of the program could name it otherwise).
    if let Ok(c) = CardId::normalise(card) {
        if protocol::payment::payment_not_ours(c.expose(), &policy) {
            anyhow::bail!(
                "card number …{} is a payment card, not a loyalty card: not looked up",
                protocol::payment::last4(c.expose())
            );
        }
    }
    CardId::parse(card, &policy).with_context(|| "card number".to_string())
}

/// `--config PATH` if given (errors are errors), else the default agent.toml if it exists.
pub fn optional_config(path: Option<&Path>) -> anyhow::Result<Option<Config>> {
    match path {
        Some(p) => Ok(Some(Config::load(Some(p))?)),
        None if crate::config::default_path().exists() => Ok(Some(Config::load(None)?)),
        None => Ok(None),
    }
}
