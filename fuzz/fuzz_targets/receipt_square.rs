#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::parse_as_in(till_agent::formats::FormatKind::Square, data, protocol::Currency::EUR));
