//! Events flowing between the agent's tasks (watchexec style: sources publish, subscribers —
//! popup, sync log, receipt association, tray — listen). One `tokio::sync::broadcast` bus.

use chrono::{DateTime, FixedOffset};
use protocol::v1::Quote;
use protocol::CardId;
use serde::{Deserialize, Serialize};

/// What a scan turned out to be. A payment card's number is never carried: at most its last 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Classified {
    LoyaltyCard { card: CardId },
    PaymentCard { last4: String },
    ReadError { detail: String },
    Other { reason: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanEvent {
    pub at: DateTime<FixedOffset>,
    /// Which reader: `serial:/dev/ttyUSB0`, `x11:12`, `rawinput:VID_0C2E&PID_0B61`, `cli`.
    pub source: String,
    pub classified: Classified,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuoteEvent {
    pub scan: ScanEvent,
    pub quote: Quote,
    /// The offline quote from the cache, shown while the server's answer for the same scan is
    /// still awaited (it did not come within `[popup] offline_first_ms`). Never final: the next
    /// quote event of this scan (the server's, or the same offline quote when the server fails)
    /// replaces it; its messages are not acknowledged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

/// One reader-test line, as data (formatted by `input::diag`). Carries no card number: keys are classes, a scan's
/// classification masks the card (`CardId`) and a payment card is its last 4 digits.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "diag", rename_all = "snake_case")]
pub enum ReaderDiag {
    Listening {
        source: String,
    },
    Device {
        source: String,
        id: u32,
        name: String,
        added: bool,
        dedicated: bool,
    },
    /// A key going down: `digit`, `letter`, `KEY_MINUS '-'`, `KEY_ENTER`…
    Key {
        source: String,
        key: String,
        gap_ms: Option<u64>,
    },
    /// A scan: `how` = by timing / dedicated device / prefix key / serial line.
    Scan {
        source: String,
        chars: usize,
        span_ms: u64,
        fast_run: usize,
        how: String,
        classified: Option<Classified>,
    },
    NotScan {
        source: String,
        reason: String,
        read_error: bool,
    },
    Serial {
        port: String,
        event: String,
    },
    Error {
        source: String,
        error: String,
    },
}

/// Sync state for the tray and `status` (also sent from the service to the session apps).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SyncStatus {
    pub queue_depth: u64,
    pub dead_letters: u64,
    pub last_success: Option<DateTime<FixedOffset>>,
    pub server_reachable: bool,
    pub last_error: Option<String>,
    /// Card readers that do not work right now (unplugged, port missing, no keyboard input), in
    /// words; empty when every configured reader is fine.
    pub reader_problems: Vec<String>,
    /// Why receipts do not move right now (the last send failed), classified; `None` after a
    /// successful send.
    pub sync_problem: Option<SyncProblem>,
    /// Background tasks that failed and were restarted (`replicator: panicked: … (restarted 1×)`),
    /// until they run cleanly again.
    pub task_problems: Vec<String>,
    /// Session app only: the till-agent service cannot be reached or could not start (the
    /// reason, in English); the tray is red and names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_problem: Option<String>,
}

/// A failed send, as `status` and the tray show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SyncProblem {
    pub kind: SyncProblemKind,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncProblemKind {
    /// No answer from the server address.
    Unreachable,
    /// 5xx / 429: the server is busy or failing.
    ServerBusy,
    /// The token or the till's identity was refused.
    Unauthorised,
    /// The server speaks another protocol version; nothing is dead-lettered.
    UnsupportedVersion,
    /// The server refused an item's content (it goes to the dead letters).
    Refused,
    /// The address answered, but not as the loyalty server (proxy, maintenance page, wrong URL).
    NotTheServer,
}

impl SyncProblemKind {
    pub fn describe(self) -> &'static str {
        match self {
            SyncProblemKind::Unreachable => "server unreachable",
            SyncProblemKind::ServerBusy => "server busy or failing",
            SyncProblemKind::Unauthorised => "till token refused",
            SyncProblemKind::UnsupportedVersion => "protocol version not supported by the server",
            SyncProblemKind::Refused => "an item was refused",
            SyncProblemKind::NotTheServer => "the server address does not answer as the loyalty server",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
// Quotes dominate the traffic; boxing them would only add an allocation per scan.
#[allow(clippy::large_enum_variant)]
pub enum AgentEvent {
    /// Reader-test diagnostics (keys, decisions), published only while a reader test runs.
    Reader(ReaderDiag),
    Scan(ScanEvent),
    Quote(QuoteEvent),
    Status(SyncStatus),
    /// A registration / migration pairing was queued (or could not be): the form shows it.
    Enrol(EnrolEvent),
    /// A redemption (or a void) from the till's Redeem button finished: the popup shows it.
    Redeem(RedeemEvent),
    /// A customer search from the search box finished (found: the quote is published as `Quote`
    /// first).
    Lookup(LookupEvent),
    /// A receipt tag from the "Add purchase to card" form was queued (or not).
    Tag(TagEvent),
    /// Esc pressed on a keyboard, seen by the keyboard-wedge reader: hides the popup, which never
    /// has the focus. (On Windows the wedge owns the process's Raw Input registration, so the GUI
    /// toolkit sees no raw keys; on X11 the GUI could, but uses this same path when a wedge runs.)
    Escape,
}

/// The outcome of queueing an `enrol::Request` (matched by request id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnrolEvent {
    pub request_id: String,
    /// `None` = queued; `Some(error)` = not queued.
    pub error: Option<String>,
}

/// The outcome of a `runtime::Command::Find` (matched by request id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LookupEvent {
    pub request_id: String,
    /// `None` = found (its `Quote` was published).
    pub problem: Option<LookupProblem>,
    /// The found customer's quote, as published just before (the service sends it to the
    /// session app that searched, which publishes it there: `session.rs`).
    #[serde(skip)]
    pub found: Option<Box<QuoteEvent>>,
}

/// Why the search box found nothing (the GUI words it in the screen's language); never carries
/// the typed phone or e-mail.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum LookupProblem {
    Empty,
    NotCardNorPhone,
    BadCard,
    /// A payment card's number was typed (its last 4 digits).
    PaymentCard {
        last4: String,
    },
    BadContact,
    /// Phone / e-mail cannot be resolved offline yet (no lookup key cached).
    NoLookupKey,
    NotFound {
        phone: bool,
    },
    NoActiveCard,
    Other {
        detail: String,
    },
}

/// The outcome of a `runtime::Command::Tag` (matched by request id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TagEvent {
    pub request_id: String,
    /// The queued outbox item (`tag-…`).
    pub item_id: Option<String>,
    /// The form's problems, each naming its field (`tag::TagForm::validate`).
    #[serde(default)]
    pub errors: Vec<crate::tag::TagError>,
    /// Could not be queued (disk…).
    pub error: Option<String>,
}

/// The outcome of a `runtime::Command::Redeem` / `Command::Void` (matched by request id; for a
/// void the request id is the redemption id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RedeemEvent {
    pub request_id: String,
    /// `true` for the answer to a void.
    pub void: bool,
    /// The server's (or the offline engine's) answer: value to key into the POS and the code.
    pub answer: Option<protocol::v1::RedeemAnswer>,
    /// `online` / `offline` (queued) for a redemption.
    pub mode: Option<String>,
    /// Why nothing was redeemed / voided.
    pub refused: Option<String>,
}

pub type Bus = tokio::sync::broadcast::Sender<AgentEvent>;

pub fn bus() -> Bus {
    tokio::sync::broadcast::channel(256).0
}
