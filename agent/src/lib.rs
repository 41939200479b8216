//! The till agent. See ARCHITECTURE.md for the code map.
pub mod cache;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod enrol;
pub mod events;
pub mod formats;
pub mod input;
pub mod install;
pub mod outbox;
pub mod quote;
pub mod replicator;
pub mod runtime;
pub mod status;
pub mod synclog;
pub mod ui;
pub mod watcher;
