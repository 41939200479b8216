//! One GUI instance per user session: the local endpoint (Unix socket / named pipe) lives in
//! `os::instance`.
pub use crate::os::instance::{acquire, endpoint, signal, Acquired, Instance};
