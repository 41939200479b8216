//! Tray icon, cashier popup, sync-log window, and the headless popup output. (issue 6)
pub mod config;
