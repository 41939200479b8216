//! Tray icon, cashier popup, sync-log window, and the headless popup output. (issue 6)
pub mod config;
pub mod i18n;
pub mod viewmodel;
pub mod headless;
