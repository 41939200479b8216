//! Card input: readers (serial, keyboard wedge), scan detection, payload decoding. (issue 5)
//!
//! - `keys` — key positions, X11 keycodes / Windows scan codes, US-layout decoding by position.
//! - `script` — the key-event script language the detector is tested with.
//! - `detect` — the pure scan-detection state machine (burst rules, dedicated devices, intercept).
//! - `hookwatch` — notices that Windows dropped the intercept hook (pure; compares hook and Raw Input).
//! - `payload` — ISO 7813 tracks, barcodes, classification (payment-card guard).
//! - `diag` — reader-test diagnostics shared by the CLI and the GUI window.
pub mod config;
pub mod detect;
pub mod diag;
pub mod hookwatch;
pub mod keys;
pub mod oskbd;
pub mod payload;
pub mod run;
pub mod script;
pub mod serial;

pub use run::run_inputs;
pub mod cli;
