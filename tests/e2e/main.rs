//! End-to-end tests across binaries, one test binary (ripgrep style). Each module owns an area.
mod agent;
mod architecture;
mod dpi;
mod enrol;
mod faults;
mod input;
mod poison;
mod power;
mod redeem;
mod redeem_gui;
mod restore;
mod screens;
mod server;
mod sync;
mod ui;
mod wine;
mod wine_input;
