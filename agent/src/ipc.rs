//! The protocol between the till-agent service (export folder, outbox, replicator, cache, token)
//! and the session apps (card readers, tray, popup; one per logged-on user). JSON lines over a
//! local endpoint (`os::ipc`: a named pipe admitting interactive users on Windows, a Unix socket
//! beside the data on Linux).
//!
//! Every line is one [`Frame`]: the session sends `{"id":N,"req":{…}}`, the service answers
//! `{"id":N,"resp":{…}}` (in any order: a slow quote does not hold a status answer back) and,
//! after `subscribe`, pushes `{"event":{…}}` (status changes, enrol / redeem outcomes, "exit for
//! upgrade"). No payment card number ever travels: the session classifies a scan itself and asks
//! for a quote only for a loyalty card. The till token never travels either.
//!
//! This file is pure (types, framing, the request dispatch over a [`Handler`]); the transports are
//! in `os::ipc`, the service side in `service.rs`, the session side in `session.rs`.
use protocol::ids::{CardId, CardPolicy};
use protocol::v1::{Quote, RedeemRequest};
use serde::{Deserialize, Serialize};

use crate::events::{EnrolEvent, LookupEvent, QuoteEvent, RedeemEvent, SyncStatus, TagEvent};
use crate::sync::outbox::LogRow;
use crate::ui::synclog_view::Hour;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Bumped when a request or answer changes incompatibly; `hello` compares it.
pub const PROTOCOL_VERSION: u32 = 1;

/// A line longer than this is refused (a quote is ~2 KiB; a 500-row sync log ~100 KiB).
pub const MAX_LINE: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// First request of a session: who is asking (for the service's log and the upgrade relaunch).
    Hello {
        protocol: u32,
        version: String,
        /// Windows session id / user, or the Unix user and display.
        session: String,
    },
    Status,
    /// The quote for a scanned loyalty card (server within the quote timeout, else the cache).
    /// `shown`: a session app shows it to the cashier (its messages are then acknowledged and
    /// the card goes to the next card-less receipt); `quote CARD` on the command line does not.
    Quote {
        card: CardId,
        #[serde(default)]
        shown: bool,
    },
    /// Queue a registration / pairing; the outcome comes as `Event::Enrol`.
    Enrol {
        request: crate::enrol::Request,
    },
    /// Redeem points; the outcome comes as `Event::Redeem`.
    Redeem {
        request: RedeemRequest,
    },
    /// Void a redemption; the outcome comes as `Event::Redeem` with `void`.
    Void {
        redemption_id: String,
    },
    /// The search box: find a customer by card number, phone or e-mail (the service runs the
    /// agent's own search); the outcome comes as `Event::Lookup`, with the found quote.
    Find {
        request_id: String,
        query: String,
    },
    /// The "Add purchase to card" form as typed: checked and queued in the service's outbox;
    /// the outcome comes as `Event::Tag`.
    Tag {
        request_id: String,
        form: crate::tag::TagForm,
    },
    SyncNow,
    /// The newest `limit` sync-log rows (newest last), or those after row `after`; with
    /// `hours`, also the sync-log window's timeline of the last `hours` hours.
    SyncLog {
        #[serde(default)]
        after: Option<i64>,
        limit: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        hours: u32,
    },
    /// From now on push events on this connection.
    Subscribe,
    /// The installer is about to replace the files: tell every subscribed session app to exit.
    ExitForUpgrade,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resp", rename_all = "snake_case")]
pub enum Response {
    Hello(Hello),
    Status {
        status: SyncStatus,
        /// Why the service does not run the agent (bad agent.toml, held data folder…).
        start_error: Option<String>,
        /// Session apps connected and subscribed now.
        #[serde(default)]
        sessions: usize,
    },
    Quote {
        quote: Quote,
    },
    /// Accepted; the outcome follows as an event.
    Accepted,
    SyncLog {
        rows: Vec<LogRow>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hours: Vec<Hour>,
    },
    Subscribed,
    /// `exit_for_upgrade`: how many session apps were told.
    SessionsTold {
        count: usize,
    },
    /// The request could not be served (no quote, service not started, bad request…).
    Error {
        message: String,
    },
}

/// What the service tells a new session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub version: String,
    /// The program's card policy (the session classifies scans with it: the cache is not readable
    /// by users). `None` while the service has not started.
    pub card_policy: Option<CardPolicy>,
    pub start_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Status {
        status: SyncStatus,
        start_error: Option<String>,
    },
    Enrol(EnrolEvent),
    Redeem(RedeemEvent),
    /// A search's outcome (every subscribed session gets it; the one that asked shows `found`).
    Lookup {
        lookup: LookupEvent,
        found: Option<Box<QuoteEvent>>,
    },
    Tag(TagEvent),
    /// Exit now (the installer replaces the program); the new version starts the app again.
    ExitForUpgrade,
}

/// One line on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    Request { id: u64, req: Request },
    Response { id: u64, resp: Response },
    Event { event: Event },
}

/// A line that is not a frame: the error names what was wrong (never echoes the whole line).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("line of {0} bytes is longer than the limit of {MAX_LINE}")]
    TooLong(usize),
    #[error("not a till-agent frame: {0}")]
    Malformed(String),
}

pub fn encode(frame: &Frame) -> String {
    let mut s = serde_json::to_string(frame).expect("frames always serialise");
    s.push('\n');
    s
}

pub fn decode(line: &str) -> Result<Frame, FrameError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE {
        return Err(FrameError::TooLong(line.len()));
    }
    // The untagged enum's own error is useless ("did not match any variant"): look at the shape
    // first so the message says which part is wrong.
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| FrameError::Malformed("a frame is a JSON object".into()))?;
    let field = |k: &str| obj.get(k).cloned();
    let id = || {
        field("id")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| FrameError::Malformed("field `id`: missing or not a number".into()))
    };
    if let Some(r) = field("req") {
        let req = serde_json::from_value(r).map_err(|e| FrameError::Malformed(format!("field `req`: {e}")))?;
        Ok(Frame::Request { id: id()?, req })
    } else if let Some(r) = field("resp") {
        let resp = serde_json::from_value(r).map_err(|e| FrameError::Malformed(format!("field `resp`: {e}")))?;
        Ok(Frame::Response { id: id()?, resp })
    } else if let Some(e) = field("event") {
        let event = serde_json::from_value(e).map_err(|e| FrameError::Malformed(format!("field `event`: {e}")))?;
        Ok(Frame::Event { event })
    } else {
        Err(FrameError::Malformed("none of `req`, `resp`, `event`".into()))
    }
}

/// What the service does for each request (implemented by `service::Serving`; tests use a
/// recording one). Requests that need the running agent answer `Error` while it has not started.
pub trait Handler: Send + Sync {
    fn hello(&self) -> Hello;
    fn status(&self) -> (SyncStatus, Option<String>);
    fn sessions(&self) -> usize;
    fn quote(
        &self,
        card: CardId,
        shown: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>>;
    fn command(&self, req: Request) -> Response;
    fn sync_log(&self, after: Option<i64>, limit: usize, hours: u32) -> Response;
    fn exit_for_upgrade(&self) -> Response;
}

/// Answer one request (everything except `subscribe`, which the connection loop handles).
pub async fn dispatch(h: &dyn Handler, req: Request) -> Response {
    match req {
        Request::Hello { protocol, .. } if protocol != PROTOCOL_VERSION => Response::Error {
            message: format!(
                "protocol {protocol} not supported by the service (speaks {PROTOCOL_VERSION}); update the program"
            ),
        },
        Request::Hello { .. } => Response::Hello(h.hello()),
        Request::Status => {
            let (status, start_error) = h.status();
            Response::Status {
                status,
                start_error,
                sessions: h.sessions(),
            }
        }
        Request::Quote { card, shown } => h.quote(card, shown).await,
        Request::SyncLog { after, limit, hours } => h.sync_log(after, limit.min(5000), hours.min(31 * 24)),
        Request::ExitForUpgrade => h.exit_for_upgrade(),
        Request::Subscribe => Response::Subscribed,
        r @ (Request::Enrol { .. }
        | Request::Redeem { .. }
        | Request::Void { .. }
        | Request::Find { .. }
        | Request::Tag { .. }
        | Request::SyncNow) => h.command(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> CardId {
        CardId::parse("1900000009000018", &CardPolicy::default()).unwrap()
    }

    #[test]
    fn frames_round_trip_one_per_line() {
        let frames = vec![
            Frame::Request {
                id: 1,
                req: Request::Hello {
                    protocol: PROTOCOL_VERSION,
                    version: "0.1.0".into(),
                    session: "1/jana".into(),
                },
            },
            Frame::Request {
                id: 2,
                req: Request::Quote {
                    card: card(),
                    shown: true,
                },
            },
            Frame::Request {
                id: 3,
                req: Request::Enrol {
                    request: crate::enrol::Request::pair(card(), "KLUB-4821".into()),
                },
            },
            Frame::Request {
                id: 4,
                req: Request::SyncLog {
                    after: Some(10),
                    limit: 50,
                    hours: 0,
                },
            },
            Frame::Request {
                id: 5,
                req: Request::Find {
                    request_id: "find-1".into(),
                    query: "601 111 222".into(),
                },
            },
            Frame::Request {
                id: 6,
                req: Request::Tag {
                    request_id: "tag-1".into(),
                    form: crate::tag::TagForm {
                        receipt: "R-1".into(),
                        card: "1900000009000018".into(),
                        date: String::new(),
                        total: "12,50".into(),
                    },
                },
            },
            Frame::Response {
                id: 2,
                resp: Response::Error { message: "x".into() },
            },
            Frame::Response {
                id: 5,
                resp: Response::Status {
                    status: SyncStatus {
                        queue_depth: 3,
                        service_problem: None,
                        ..Default::default()
                    },
                    start_error: Some("agent.toml:3:1: key `server_url`: missing".into()),
                    sessions: 2,
                },
            },
            Frame::Event {
                event: Event::ExitForUpgrade,
            },
            Frame::Event {
                event: Event::Enrol(EnrolEvent {
                    request_id: "pair-1".into(),
                    error: None,
                }),
            },
        ];
        for f in frames {
            let line = encode(&f);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line}");
            assert_eq!(decode(&line).unwrap(), f, "{line}");
        }
    }

    #[test]
    fn a_card_travels_in_full_only_inside_a_quote_request() {
        // The wire needs the number (the service looks it up); the Debug form stays masked.
        let f = Frame::Request {
            id: 1,
            req: Request::Quote {
                card: card(),
                shown: true,
            },
        };
        assert!(encode(&f).contains("1900000009000018"));
        assert!(!format!("{f:?}").contains("1900000009000018"));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(
            decode("[1,2]"),
            Err(FrameError::Malformed("a frame is a JSON object".into()))
        );
        assert!(matches!(decode("{\"id\":1"), Err(FrameError::Malformed(_))));
        let e = decode(r#"{"id":1,"req":{"req":"launch_missiles"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `req`") && e.contains("launch_missiles"), "{e}");
        let e = decode(r#"{"req":{"req":"status"}}"#).unwrap_err().to_string();
        assert!(e.contains("field `id`"), "{e}");
        let e = decode(r#"{"id":1,"req":{"req":"void","redemption_id":"rdm-1","extra":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        let long = format!("\"{}\"", "a".repeat(MAX_LINE + 1));
        assert_eq!(decode(&long), Err(FrameError::TooLong(MAX_LINE + 3)));
    }

    /// A handler that records the commands it got.
    struct Rec(std::sync::Mutex<Vec<Request>>);
    impl Handler for Rec {
        fn hello(&self) -> Hello {
            Hello {
                protocol: PROTOCOL_VERSION,
                version: "t".into(),
                card_policy: None,
                start_error: None,
            }
        }
        fn status(&self) -> (SyncStatus, Option<String>) {
            (
                SyncStatus {
                    queue_depth: 7,
                    ..Default::default()
                },
                None,
            )
        }
        fn sessions(&self) -> usize {
            1
        }
        fn quote(
            &self,
            card: CardId,
            _shown: bool,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
            Box::pin(async move {
                Response::Error {
                    message: format!("no quote for {card}"),
                }
            })
        }
        fn command(&self, req: Request) -> Response {
            self.0.lock().unwrap().push(req);
            Response::Accepted
        }
        fn sync_log(&self, _after: Option<i64>, limit: usize, _hours: u32) -> Response {
            Response::SyncLog {
                hours: Vec::new(),
                rows: vec![LogRow {
                    id: limit as i64,
                    ts: "t".into(),
                    level: "info".into(),
                    kind: "k".into(),
                    item_id: None,
                    message: "m".into(),
                }],
            }
        }
        fn exit_for_upgrade(&self) -> Response {
            Response::SessionsTold { count: 2 }
        }
    }

    #[tokio::test]
    async fn dispatch_routes_each_request() {
        let h = Rec(Default::default());
        let old = Request::Hello {
            protocol: 99,
            version: "9".into(),
            session: "s".into(),
        };
        assert!(matches!(dispatch(&h, old).await, Response::Error { message } if message.contains("protocol 99")));
        assert!(matches!(
            dispatch(&h, Request::Status).await,
            Response::Status { status, .. } if status.queue_depth == 7
        ));
        // The error names the card masked (Display of CardId).
        match dispatch(
            &h,
            Request::Quote {
                card: card(),
                shown: true,
            },
        )
        .await
        {
            Response::Error { message } => assert!(!message.contains("1900000009000018"), "{message}"),
            r => panic!("{r:?}"),
        }
        assert_eq!(dispatch(&h, Request::SyncNow).await, Response::Accepted);
        assert_eq!(
            dispatch(
                &h,
                Request::Void {
                    redemption_id: "rdm-1".into()
                }
            )
            .await,
            Response::Accepted
        );
        assert!(matches!(
            dispatch(&h, Request::SyncLog { after: None, limit: 1_000_000, hours: 0 }).await,
            Response::SyncLog { rows, .. } if rows[0].id == 5000
        ));
        assert_eq!(
            dispatch(&h, Request::ExitForUpgrade).await,
            Response::SessionsTold { count: 2 }
        );
        assert_eq!(h.0.lock().unwrap().len(), 2);
    }
}
