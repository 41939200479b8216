//! The contract between till and server, and the loyalty rules engine both of them run.
//!
//! Invariant: this crate does no IO, no async and has no platform code. Everything here is a
//! pure function of its inputs, so the till (offline) and the server compute identical numbers.

pub mod contact;
pub mod ids;
pub mod money;
pub mod payment;
pub mod rules;
pub mod v1;
pub mod wire;

pub use ids::{CardId, CardIdError, CardPolicy, CustomerId, ReceiptId, StoreId, TillId};
pub use money::{Currency, Money};

/// Wire protocol version carried in URLs (`/v1/...`) and batch envelopes.
pub const WIRE_VERSION: &str = "v1";
