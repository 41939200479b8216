//! Serial (COM) barcode / magstripe readers through the `serialport` crate.
//!
//! - Port settings from `[[reader.serial]]` (baud 9600 8N1 by default), terminator CR, LF or CRLF.
//! - Partial lines are kept across read timeouts (`TimedOut` is "no data yet", not an error).
//! - Unplug: the read fails (POLLHUP / `NoDevice`); the handle is dropped and the reader is looked
//!   for again every `RETRY` — by USB VID/PID/serial number when configured (the COM name may
//!   change after a replug), else by its path reappearing.
//! - "Port in use" (another program holds it) and "no such port" are distinct errors.
//!
//! The reader runs on its own OS thread (blocking IO) and reports through a callback; the async
//! side bridges it into a channel.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serialport::{SerialPort, SerialPortType};

use super::config::{Parity, SerialConfig, Terminator};

const READ_TIMEOUT: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SerialError {
    #[error("serial port {port} is in use by another program (close the other program or pick another port)")]
    InUse { port: String },
    #[error("serial port {port} does not exist (is the reader plugged in? is the port name right?)")]
    NoSuchPort { port: String },
    #[error("no serial port matches USB {what} (is the reader plugged in?)")]
    NoUsbMatch { what: String },
    #[error("serial port {port}: {message}")]
    Other { port: String, message: String },
}

/// Splits the byte stream into lines at the configured terminator; keeps partial lines.
#[derive(Debug)]
pub struct LineSplitter {
    term: Terminator,
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn new(term: Terminator) -> LineSplitter {
        LineSplitter { term, buf: Vec::new() }
    }

    /// Feed bytes; returns the complete lines (without terminator; empty lines dropped).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let split = match self.term {
            Terminator::Cr => b'\r',
            Terminator::Lf | Terminator::Crlf => b'\n',
        };
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|b| *b == split) {
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            line.pop();
            // Tolerate the other half of a CRLF pair (a reader sending CRLF to a CR config).
            while matches!(line.last(), Some(b'\r' | b'\n')) {
                line.pop();
            }
            while matches!(line.first(), Some(b'\r' | b'\n')) {
                line.remove(0);
            }
            if !line.is_empty() {
                out.push(String::from_utf8_lossy(&line).into_owned());
            }
        }
        out
    }

    /// Bytes waiting for their terminator.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// What the reader thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialEvent {
    Connected { port: String },
    /// A complete line; `at` is when its terminator byte was read.
    Line { port: String, text: String, at: Instant },
    Disconnected { port: String, reason: String },
    /// Opening failed (reported once per distinct error until it changes).
    Unavailable { error: SerialError },
}

fn hex_eq(cfg: &Option<String>, v: u16) -> bool {
    cfg.as_deref().is_none_or(|c| u16::from_str_radix(c, 16).ok() == Some(v))
}

/// Which port to open now: the USB identity wins over the name (the COM name may change).
pub fn find_port(cfg: &SerialConfig) -> Result<String, SerialError> {
    if cfg.usb_vid.is_some() || cfg.usb_pid.is_some() || cfg.usb_serial.is_some() {
        let ports = serialport::available_ports().unwrap_or_default();
        for p in ports {
            if let SerialPortType::UsbPort(u) = &p.port_type {
                let serial_ok = cfg.usb_serial.as_deref().is_none_or(|s| u.serial_number.as_deref() == Some(s));
                if hex_eq(&cfg.usb_vid, u.vid) && hex_eq(&cfg.usb_pid, u.pid) && serial_ok {
                    return Ok(p.port_name);
                }
            }
        }
        if cfg.port.is_none() {
            let what = format!(
                "{}:{}{}",
                cfg.usb_vid.as_deref().unwrap_or("*"),
                cfg.usb_pid.as_deref().unwrap_or("*"),
                cfg.usb_serial.as_deref().map(|s| format!(" serial {s}")).unwrap_or_default()
            );
            return Err(SerialError::NoUsbMatch { what });
        }
    }
    cfg.port.clone().ok_or_else(|| SerialError::NoUsbMatch { what: "(none configured)".into() })
}

pub fn open(cfg: &SerialConfig, port: &str) -> Result<Box<dyn SerialPort>, SerialError> {
    use serialport::{DataBits, ErrorKind, StopBits};
    let data_bits = match cfg.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match cfg.parity {
        Parity::None => serialport::Parity::None,
        Parity::Odd => serialport::Parity::Odd,
        Parity::Even => serialport::Parity::Even,
    };
    let stop_bits = if cfg.stop_bits == 2 { StopBits::Two } else { StopBits::One };
    let sp = serialport::new(port, cfg.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .timeout(READ_TIMEOUT)
        .dtr_on_open(cfg.dtr)
        .open()
        .map_err(|e| match e.kind() {
            ErrorKind::NoDevice => SerialError::InUse { port: port.to_string() },
            ErrorKind::Io(std::io::ErrorKind::NotFound) => SerialError::NoSuchPort { port: port.to_string() },
            _ if !cfg!(windows) && !std::path::Path::new(port).exists() => SerialError::NoSuchPort { port: port.to_string() },
            _ => SerialError::Other { port: port.to_string(), message: e.to_string() },
        })?;
    let _ = sp.clear(serialport::ClearBuffer::Input);
    Ok(sp)
}

/// Run one reader until `stop` is set: open, read lines, reopen after unplug.
pub fn run_reader(cfg: &SerialConfig, stop: Arc<AtomicBool>, mut report: impl FnMut(SerialEvent)) {
    let mut last_error: Option<SerialError> = None;
    while !stop.load(Ordering::Relaxed) {
        let opened = find_port(cfg).and_then(|name| open(cfg, &name).map(|p| (name, p)));
        let (name, mut port) = match opened {
            Ok(x) => x,
            Err(e) => {
                if last_error.as_ref() != Some(&e) {
                    report(SerialEvent::Unavailable { error: e.clone() });
                    last_error = Some(e);
                }
                std::thread::sleep(RETRY);
                continue;
            }
        };
        last_error = None;
        report(SerialEvent::Connected { port: name.clone() });
        let mut lines = LineSplitter::new(cfg.terminator);
        let mut buf = [0u8; 512];
        let reason = loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match port.read(&mut buf) {
                Ok(0) => break "end of file".to_string(),
                Ok(n) => {
                    let at = Instant::now();
                    for text in lines.push(&buf[..n]) {
                        report(SerialEvent::Line { port: name.clone(), text, at });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break e.to_string(),
            }
        };
        // Drop the handle before reopening (required after a USB unplug on Windows).
        drop(port);
        report(SerialEvent::Disconnected { port: name, reason });
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partials() {
        let mut s = LineSplitter::new(Terminator::Cr);
        assert!(s.push(b"1900-12").is_empty());
        assert_eq!(s.pending(), 7);
        assert_eq!(s.push(b"34\r5901"), ["1900-1234"]);
        assert_eq!(s.push(b"234123457\r\r"), ["5901234123457"]);
        let mut s = LineSplitter::new(Terminator::Crlf);
        assert_eq!(s.push(b"abc\r\ndef\r"), ["abc"]);
        assert_eq!(s.push(b"\n"), ["def"]);
        let mut s = LineSplitter::new(Terminator::Lf);
        assert_eq!(s.push(b"x1\ny2\n"), ["x1", "y2"]);
        // A CRLF reader on a CR config: the LF does not leak into the next line.
        let mut s = LineSplitter::new(Terminator::Cr);
        assert_eq!(s.push(b"a1\r\nb2\r\n"), ["a1", "b2"]);
    }

    #[test]
    fn missing_port_is_not_in_use() {
        let cfg = SerialConfig { port: Some("/dev/tty-does-not-exist".into()), ..Default::default() };
        let e = open(&cfg, "/dev/tty-does-not-exist").err().unwrap();
        assert_eq!(e, SerialError::NoSuchPort { port: "/dev/tty-does-not-exist".into() });
        assert!(e.to_string().contains("does not exist"));
        let cfg = SerialConfig { usb_vid: Some("FFFE".into()), usb_pid: Some("0001".into()), ..Default::default() };
        assert!(matches!(find_port(&cfg), Err(SerialError::NoUsbMatch { what }) if what == "FFFE:0001"));
    }
}
