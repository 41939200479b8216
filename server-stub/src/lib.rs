//! server-stub: the central loyalty server for development, demos and tests.
//!
//! - `store` — repository traits and the SQLite backend (the only place with SQL).
//! - `service` — domain logic: sync ingest with permanent dedupe, quotes, change feed,
//!   registrations, migration pairing, admin operations, seeding.
//! - `ledger` — the points ledger (balance == sum of entries), redemption, void, adjustments.
//! - `purchases` — receipt tags, purchases before registration (unmatched receipts), cashier
//!   messages and their acks, contact lookup keys for the change feed.
//! - `reports` — admin reports (JSON/CSV).
//! - `http` — axum router built from one route table, extractors answering `ErrorBody`.
//! - `openapi` — the OpenAPI document generated from the route table and wire-type samples.
//! - `cli` — `serve`, `seed`, `till add|revoke`, `openapi`.
//! - `identity` — the server identity that changes when the database is restored.
//! - `os` — platform code (the stop signal); the only module with `cfg(unix|windows)`.
//! - `error` — storage and request errors, free of HTTP (`http::problem` maps them).

pub mod cli;
pub mod digest;
pub mod error;
pub mod http;
pub mod identity;
pub mod ledger;
pub mod openapi;
pub mod os;
pub mod purchases;
pub mod reports;
pub mod service;
pub mod store;
