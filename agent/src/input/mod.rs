//! Card input: readers (serial, keyboard wedge), scan detection, payload decoding. (issue 5)
pub mod config;
