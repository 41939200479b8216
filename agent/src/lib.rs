//! The till agent. See ARCHITECTURE.md for the code map.
pub mod cli;
pub mod events;
pub mod input;
pub mod ui;
