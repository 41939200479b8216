//! Everything between the till and the server, in one place: the [`outbox`] (receipts and
//! enrolments waiting to be sent, SQLite), the [`replicator`] that sends them, the
//! [`cache_sync`] that pulls rules and customer changes for offline quotes, and the one typed
//! server [`client`] every caller goes through (replicator, cache sync, quote, `status`,
//! `doctor`; enrolments travel through the outbox and the replicator).
pub mod cache_sync;
pub mod client;
pub mod outbox;
pub mod replicator;
pub mod unsent;

pub use self::client::{Failure, ServerClient};
