//! Headless popup: every popup the cashier would see, as one JSON line ([`PopupView`]) on
//! stdout, and a `popup` tracing event (target `till_agent::popup`) for the logs. Used by
//! `till-agent run --headless` and as the GUI's fallback when there is no display.

use std::io::Write;

use tokio::sync::broadcast::{self, error::RecvError};

use super::i18n::Lang;
use super::viewmodel::PopupView;
use crate::events::AgentEvent;

/// Turn bus events into popups until the bus closes. Each popup is written to `out` as one JSON
/// line (flushed) and passed to `sink` (the caller's sync-log writer, if any).
pub async fn run_with<W: Write>(
    mut rx: broadcast::Receiver<AgentEvent>,
    lang: Lang,
    mut out: W,
    mut sink: impl FnMut(&PopupView),
) -> anyhow::Result<()> {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(target: "till_agent::popup", skipped = n, "popup output fell behind; {n} events skipped");
                continue;
            }
            Err(RecvError::Closed) => return Ok(()),
        };
        // A provisional (offline, server still awaited) quote is for a cashier's screen; the line is
        // the scan's final quote.
        if matches!(&ev, AgentEvent::Quote(q) if q.provisional) {
            continue;
        }
        if let Some(view) = PopupView::from_event(&ev, lang) {
            let line = view.to_json_line();
            tracing::info!(target: "till_agent::popup", kind = ?view.kind, popup = %line, "popup shown");
            writeln!(out, "{line}")?;
            out.flush()?;
            sink(&view);
        }
    }
}

/// [`run_with`] on stdout, no extra sink.
pub async fn run(rx: broadcast::Receiver<AgentEvent>, lang: Lang) -> anyhow::Result<()> {
    run_with(rx, lang, std::io::stdout(), |_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Classified, ScanEvent, SyncStatus};

    #[tokio::test]
    async fn prints_one_json_line_per_popup_and_skips_status() {
        let bus = crate::events::bus();
        let rx = bus.subscribe();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:05:00+01:00").unwrap();
        let scan = |c| {
            AgentEvent::Scan(ScanEvent {
                at,
                source: "cli".into(),
                classified: c,
            })
        };
        bus.send(AgentEvent::Status(SyncStatus::default())).unwrap();
        bus.send(scan(Classified::LoyaltyCard {
            card: protocol::CardId::normalise("19001234").unwrap(),
        }))
        .unwrap();
        // A provisional quote (offline while the server is awaited) is not a line of its own.
        let card = protocol::CardId::normalise("19001234").unwrap();
        let quote = |provisional| {
            AgentEvent::Quote(crate::events::QuoteEvent {
                scan: ScanEvent {
                    at,
                    source: "cli".into(),
                    classified: Classified::LoyaltyCard { card: card.clone() },
                },
                quote: protocol::v1::Quote {
                    result: protocol::v1::QuoteResult::UnknownCard { card: card.clone() },
                    source: protocol::v1::QuoteSource::Offline { as_of: at },
                },
                provisional,
            })
        };
        bus.send(quote(true)).unwrap();
        bus.send(quote(false)).unwrap();
        bus.send(scan(Classified::PaymentCard { last4: "4242".into() }))
            .unwrap();
        bus.send(scan(Classified::ReadError { detail: "noise".into() }))
            .unwrap();
        drop(bus);
        let mut out = Vec::new();
        let mut seen = 0;
        run_with(rx, Lang::Sk, &mut out, |_| seen += 1).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(seen, 3);
        let quoted: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(quoted["kind"], "unknown_card");
        assert!(quoted.get("waiting").is_none(), "the final quote's line: {quoted}");
        let first: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(first["kind"], "payment_card");
        assert_eq!(first["title"], "Platobná karta!");
        let second: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(second["kind"], "read_error");
    }
}
