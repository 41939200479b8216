//! Serial (COM) barcode / magstripe readers through the `serialport` crate.
//!
//! - Port settings from `[[reader.serial]]` (baud 9600 8N1 by default). A line ends at CR, LF, CRLF
//!   or ETX whatever `terminator` names ([`LineSplitter`]).
//! - Partial lines are kept across read timeouts (`TimedOut` is "no data yet", not an error).
//! - Unplug: the read fails (POLLHUP / `NoDevice`); the handle is dropped and the reader is looked
//!   for again every `RETRY` — by USB VID/PID/serial number when configured (the COM name may
//!   change after a replug: COM3 → COM7), else by its path reappearing. The port enumeration
//!   (`serialport::available_ports`) is behind [`PortLister`], so [`find_port`]'s rules are tested
//!   with scripted listings: the configured `port` wins among USB matches, two identical
//!   scanners are told apart by `usb_serial` (several matches without it is an error naming
//!   them), a configured port now held by another USB device is not opened, and an absent
//!   identity is [`SerialError::NoUsbMatch`].
//! - "Port in use" (another program holds it) and "no such port" are distinct errors.
//!
//! The reader runs on its own OS thread (blocking IO) and reports through a callback; the async
//! side bridges it into a channel.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serialport::{SerialPort, SerialPortType};

use super::config::{Parity, SerialConfig};

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
    #[error("several serial ports match USB {what}: {ports} (set `usb_serial` to tell the readers apart)")]
    AmbiguousUsb { what: String, ports: String },
    #[error("serial port {port}: {message}")]
    Other { port: String, message: String },
}

/// Splits the byte stream into lines; keeps partial lines (across read timeouts). Any line end
/// ends a line, whatever `terminator` says: CR, LF, CRLF, and ETX (readers that frame a code in
/// STX … ETX) — a reader set to LF on a till configured for CR still scans. Control characters
/// around a line (STX, a stray half of a CRLF) are dropped, and so are empty lines.
pub struct LineSplitter {
    buf: Vec<u8>,
}

/// Never the bytes waiting (a partial card number): how many.
impl std::fmt::Debug for LineSplitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSplitter")
            .field("pending", &self.buf.len())
            .finish()
    }
}

/// ETX (end of text).
const ETX: u8 = 0x03;

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter { buf: Vec::new() }
    }

    /// Feed bytes; returns the complete lines (without terminator; empty lines dropped).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|b| matches!(*b, b'\r' | b'\n' | ETX)) {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let text = trim_edges(&line);
            if !text.is_empty() {
                out.push(String::from_utf8_lossy(text).into_owned());
            }
        }
        out
    }

    /// Bytes waiting for their terminator.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new()
    }
}

/// The line without spaces and ASCII control characters (STX, ETX, CR, LF, tab, NUL…) at its ends.
fn trim_edges(mut b: &[u8]) -> &[u8] {
    let edge = |c: &u8| *c == b' ' || c.is_ascii_control();
    while let [first, rest @ ..] = b {
        if !edge(first) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !edge(last) {
            break;
        }
        b = rest;
    }
    b
}

/// What the reader thread reports.
#[derive(Clone, PartialEq, Eq)]
pub enum SerialEvent {
    Connected {
        port: String,
    },
    /// A complete line; `at` is when its terminator byte was read.
    Line {
        port: String,
        text: String,
        at: Instant,
    },
    Disconnected {
        port: String,
        reason: String,
    },
    /// Opening failed (reported once per distinct error until it changes).
    Unavailable {
        error: SerialError,
    },
}

/// Never a line's text (it may be a payment card): its length.
impl std::fmt::Debug for SerialEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SerialEvent::Connected { port } => f.debug_struct("Connected").field("port", port).finish(),
            SerialEvent::Line { port, text, at } => f
                .debug_struct("Line")
                .field("port", port)
                .field("chars", &text.chars().count())
                .field("at", at)
                .finish(),
            SerialEvent::Disconnected { port, reason } => f
                .debug_struct("Disconnected")
                .field("port", port)
                .field("reason", reason)
                .finish(),
            SerialEvent::Unavailable { error } => f.debug_struct("Unavailable").field("error", error).finish(),
        }
    }
}

/// One entry of the system's serial-port list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedPort {
    pub name: String,
    /// USB identity when the port is a USB device (CDC / virtual COM).
    pub usb: Option<UsbId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbId {
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
}

/// The system's serial ports (`serialport::available_ports` in production; scripted in tests).
pub trait PortLister: Send + Sync {
    fn list(&self) -> Result<Vec<ListedPort>, String>;
}

/// The real enumeration (SetupAPI on Windows, udev / sysfs on Linux).
pub struct SystemPorts;

impl PortLister for SystemPorts {
    fn list(&self) -> Result<Vec<ListedPort>, String> {
        let ports = serialport::available_ports().map_err(|e| e.to_string())?;
        Ok(ports
            .into_iter()
            .map(|p| ListedPort {
                usb: match &p.port_type {
                    SerialPortType::UsbPort(u) => Some(UsbId {
                        vid: u.vid,
                        pid: u.pid,
                        serial: u.serial_number.clone(),
                    }),
                    _ => None,
                },
                name: p.port_name,
            })
            .collect())
    }
}

fn hex_eq(cfg: &Option<String>, v: u16) -> bool {
    cfg.as_deref()
        .is_none_or(|c| u16::from_str_radix(c, 16).ok() == Some(v))
}

fn usb_matches(cfg: &SerialConfig, u: &UsbId) -> bool {
    let serial_ok = cfg.usb_serial.as_deref().is_none_or(|s| {
        u.serial
            .as_deref()
            .is_some_and(|have| have.trim().eq_ignore_ascii_case(s.trim()))
    });
    hex_eq(&cfg.usb_vid, u.vid) && hex_eq(&cfg.usb_pid, u.pid) && serial_ok
}

fn usb_what(cfg: &SerialConfig) -> String {
    format!(
        "{}:{}{}",
        cfg.usb_vid.as_deref().unwrap_or("*"),
        cfg.usb_pid.as_deref().unwrap_or("*"),
        cfg.usb_serial
            .as_deref()
            .map(|s| format!(" serial {s}"))
            .unwrap_or_default()
    )
}

/// Which port to open now: the USB identity wins over the name (the COM name may change).
pub fn find_port(cfg: &SerialConfig) -> Result<String, SerialError> {
    find_port_in(cfg, &SystemPorts)
}

/// [`find_port`] over a given port list:
/// - no USB identity configured: the configured `port` (opening it says whether it exists);
/// - USB ports matching VID/PID (and `usb_serial` when set): the one named `port` if it is among
///   them, else the only one; several → [`SerialError::AmbiguousUsb`];
/// - none matches: `NoUsbMatch` — unless the list could not be read, or the configured `port`
///   is listed without a USB identity (a driver that reports none), then `port` is used. A
///   `port` listed as a *different* USB device is never opened.
pub fn find_port_in(cfg: &SerialConfig, lister: &dyn PortLister) -> Result<String, SerialError> {
    let usb_configured = cfg.usb_vid.is_some() || cfg.usb_pid.is_some() || cfg.usb_serial.is_some();
    if !usb_configured {
        return cfg.port.clone().ok_or_else(|| SerialError::NoUsbMatch {
            what: "(none configured)".into(),
        });
    }
    let what = usb_what(cfg);
    let ports = match lister.list() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot list serial ports: {e}");
            return cfg.port.clone().ok_or(SerialError::NoUsbMatch {
                what: format!("{what} (listing the ports failed: {e})"),
            });
        }
    };
    let same_name = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let matches: Vec<&ListedPort> = ports
        .iter()
        .filter(|p| p.usb.as_ref().is_some_and(|u| usb_matches(cfg, u)))
        .collect();
    if let Some(named) = cfg
        .port
        .as_deref()
        .and_then(|n| matches.iter().find(|p| same_name(&p.name, n)))
    {
        return Ok(named.name.clone());
    }
    match matches.as_slice() {
        [one] => return Ok(one.name.clone()),
        [] => {}
        many => {
            return Err(SerialError::AmbiguousUsb {
                what,
                ports: many.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    if let Some(port) = cfg.port.as_deref() {
        match ports.iter().find(|p| same_name(&p.name, port)) {
            Some(ListedPort { usb: None, name }) => return Ok(name.clone()),
            Some(ListedPort { usb: Some(u), .. }) => {
                return Err(SerialError::NoUsbMatch {
                    what: format!("{what} ({port} is now another device, USB {:04X}:{:04X})", u.vid, u.pid),
                });
            }
            None => {}
        }
    }
    Err(SerialError::NoUsbMatch { what })
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
    let stop_bits = if cfg.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
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
            _ if crate::os::serial_port_missing(port) => SerialError::NoSuchPort { port: port.to_string() },
            _ => SerialError::Other {
                port: port.to_string(),
                message: e.to_string(),
            },
        })?;
    let _ = sp.clear(serialport::ClearBuffer::Input);
    Ok(sp)
}

/// Run one reader until `stop` is set: open, read lines, reopen after unplug.
pub fn run_reader(cfg: &SerialConfig, stop: Arc<AtomicBool>, report: impl FnMut(SerialEvent)) {
    run_reader_with(cfg, &SystemPorts, stop, report)
}

/// [`run_reader`] finding the port through `lister` (each (re)open asks it again).
pub fn run_reader_with(
    cfg: &SerialConfig,
    lister: &dyn PortLister,
    stop: Arc<AtomicBool>,
    mut report: impl FnMut(SerialEvent),
) {
    let mut last_error: Option<SerialError> = None;
    while !stop.load(Ordering::Relaxed) {
        let opened = find_port_in(cfg, lister).and_then(|name| open(cfg, &name).map(|p| (name, p)));
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
        let mut lines = LineSplitter::new();
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
                        report(SerialEvent::Line {
                            port: name.clone(),
                            text,
                            at,
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::Interrupted => {
                    continue
                }
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
        let mut s = LineSplitter::new();
        assert!(s.push(b"1900-12").is_empty());
        assert_eq!(s.pending(), 7);
        assert_eq!(s.push(b"34\r5901"), ["1900-1234"]);
        assert_eq!(s.push(b"234123457\r\r"), ["5901234123457"]);
        // CRLF, split across reads: the LF ends nothing more
        assert_eq!(s.push(b"abc\r\ndef\r"), ["abc", "def"]);
        assert_eq!(s.push(b"\n"), Vec::<String>::new());
        assert_eq!(s.pending(), 0);
        // LF only (a reader set to LF, whatever agent.toml says), CR only, mixed
        assert_eq!(s.push(b"x1\ny2\n"), ["x1", "y2"]);
        assert_eq!(s.push(b"a1\r\nb2\rc3\n"), ["a1", "b2", "c3"]);
        // STX … ETX framing, with or without a line end after the ETX
        assert_eq!(
            s.push(b"\x021900123456789012\x03\r\n\x025901234123457\x03"),
            ["1900123456789012", "5901234123457"]
        );
        // a magstripe track keeps its sentinels; spaces around a code are not part of it
        assert_eq!(s.push(b" ;98700223563013312=0000?\t\r"), [";98700223563013312=0000?"]);
    }

    /// A port list the test changes as it goes (plug, unplug, replug elsewhere).
    struct Scripted(std::sync::Mutex<Result<Vec<ListedPort>, String>>);

    impl Scripted {
        fn new(ports: Vec<ListedPort>) -> Scripted {
            Scripted(std::sync::Mutex::new(Ok(ports)))
        }
        fn set(&self, ports: Result<Vec<ListedPort>, String>) {
            *self.0.lock().unwrap() = ports;
        }
    }

    impl PortLister for Scripted {
        fn list(&self) -> Result<Vec<ListedPort>, String> {
            self.0.lock().unwrap().clone()
        }
    }

    fn usb(name: &str, vid: u16, pid: u16, serial: Option<&str>) -> ListedPort {
        ListedPort {
            name: name.into(),
            usb: Some(UsbId {
                vid,
                pid,
                serial: serial.map(str::to_string),
            }),
        }
    }

    fn plain(name: &str) -> ListedPort {
        ListedPort {
            name: name.into(),
            usb: None,
        }
    }

    fn reader(port: Option<&str>, serial: Option<&str>) -> SerialConfig {
        SerialConfig {
            port: port.map(str::to_string),
            usb_vid: Some("0C2E".into()),
            usb_pid: Some("0B61".into()),
            usb_serial: serial.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn refinds_the_reader_by_usb_identity_when_its_com_name_changes() {
        let cfg = reader(Some("COM3"), Some("A1"));
        let ports = Scripted::new(vec![plain("COM1"), usb("COM3", 0x0C2E, 0x0B61, Some("A1"))]);
        assert_eq!(find_port_in(&cfg, &ports), Ok("COM3".into()));
        // Unplugged.
        ports.set(Ok(vec![plain("COM1")]));
        let e = find_port_in(&cfg, &ports).unwrap_err();
        assert_eq!(
            e,
            SerialError::NoUsbMatch {
                what: "0C2E:0B61 serial A1".into()
            }
        );
        // Replugged into another USB socket: Windows gives it COM7.
        ports.set(Ok(vec![plain("COM1"), usb("COM7", 0x0C2E, 0x0B61, Some("a1"))]));
        assert_eq!(find_port_in(&cfg, &ports), Ok("COM7".into()));
        // Meanwhile COM3 went to another USB device: it is not opened by its old name.
        ports.set(Ok(vec![
            usb("COM3", 0x1234, 0x5678, None),
            usb("COM7", 0x0C2E, 0x0B61, Some("A1")),
        ]));
        assert_eq!(find_port_in(&cfg, &ports), Ok("COM7".into()));
        ports.set(Ok(vec![usb("COM3", 0x1234, 0x5678, None)]));
        let e = find_port_in(&cfg, &ports).unwrap_err().to_string();
        assert!(
            e.contains("0C2E:0B61 serial A1") && e.contains("COM3 is now another device, USB 1234:5678"),
            "{e}"
        );
        // A driver that reports no USB identity for the configured port: the name is used.
        ports.set(Ok(vec![plain("COM3")]));
        assert_eq!(find_port_in(&cfg, &ports), Ok("COM3".into()));
        // The list cannot be read: fall back to the name, or say why nothing can be found.
        ports.set(Err("SetupDiGetClassDevs failed".into()));
        assert_eq!(find_port_in(&cfg, &ports), Ok("COM3".into()));
        let e = find_port_in(&reader(None, Some("A1")), &ports).unwrap_err().to_string();
        assert!(
            e.contains("listing the ports failed: SetupDiGetClassDevs failed"),
            "{e}"
        );
    }

    #[test]
    fn two_identical_scanners_are_told_apart_by_serial_number() {
        let ports = Scripted::new(vec![
            usb("COM4", 0x0C2E, 0x0B61, Some("S-1")),
            usb("COM5", 0x0C2E, 0x0B61, Some("S-2")),
        ]);
        assert_eq!(find_port_in(&reader(None, Some("S-1")), &ports), Ok("COM4".into()));
        assert_eq!(find_port_in(&reader(None, Some("S-2")), &ports), Ok("COM5".into()));
        // Replugged the other way round: each config follows its own scanner, not the COM name.
        ports.set(Ok(vec![
            usb("COM4", 0x0C2E, 0x0B61, Some("S-2")),
            usb("COM5", 0x0C2E, 0x0B61, Some("S-1")),
        ]));
        assert_eq!(
            find_port_in(&reader(Some("COM5"), Some("S-2")), &ports),
            Ok("COM4".into())
        );
        assert_eq!(
            find_port_in(&reader(Some("COM4"), Some("S-1")), &ports),
            Ok("COM5".into())
        );
        // Without serial numbers the configured name decides; without that it is ambiguous.
        assert_eq!(find_port_in(&reader(Some("com5"), None), &ports), Ok("COM5".into()));
        let e = find_port_in(&reader(None, None), &ports).unwrap_err();
        assert_eq!(
            e,
            SerialError::AmbiguousUsb {
                what: "0C2E:0B61".into(),
                ports: "COM4, COM5".into()
            }
        );
        assert!(e.to_string().contains("set `usb_serial`"), "{e}");
        // A serial number nobody has.
        let e = find_port_in(&reader(None, Some("S-3")), &ports).unwrap_err();
        assert_eq!(
            e,
            SerialError::NoUsbMatch {
                what: "0C2E:0B61 serial S-3".into()
            }
        );
    }

    #[test]
    fn absent_usb_identity_is_a_clear_no_usb_match() {
        let ports = Scripted::new(vec![plain("COM1"), usb("COM3", 0x0C2E, 0x0B61, None)]);
        let cfg = SerialConfig {
            usb_vid: Some("FFFE".into()),
            usb_pid: Some("0001".into()),
            ..Default::default()
        };
        let e = find_port_in(&cfg, &ports).unwrap_err();
        assert_eq!(
            e,
            SerialError::NoUsbMatch {
                what: "FFFE:0001".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "no serial port matches USB FFFE:0001 (is the reader plugged in?)"
        );
        // VID only: any product of that vendor.
        let cfg = SerialConfig {
            usb_vid: Some("0c2e".into()),
            ..Default::default()
        };
        assert_eq!(find_port_in(&cfg, &ports), Ok("COM3".into()));
        // No USB identity: the port name as configured, without asking the system.
        ports.set(Err("must not be asked".into()));
        let cfg = SerialConfig {
            port: Some("/dev/ttyACM0".into()),
            ..Default::default()
        };
        assert_eq!(find_port_in(&cfg, &ports), Ok("/dev/ttyACM0".into()));
    }

    /// Real pseudo-terminals (socat): the reader is found by its USB identity in the (scripted)
    /// port list, unplugged (the pty pair disappears), and replugged under another name.
    #[test]
    fn reader_follows_its_usb_identity_to_a_new_port_name_over_real_ptys() {
        use std::process::{Command, Stdio};
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let start = |n: &str| {
            let (a, b) = (
                dir.path().join(format!("scanner{n}")),
                dir.path().join(format!("ttyACM{n}")),
            );
            let child = Command::new("socat")
                .args([
                    format!("pty,raw,echo=0,link={}", a.display()),
                    format!("pty,raw,echo=0,link={}", b.display()),
                ])
                .stderr(Stdio::null())
                .spawn()
                .expect("socat (scripts/setup.sh installs it)");
            let t0 = Instant::now();
            while !(a.exists() && b.exists()) {
                assert!(t0.elapsed() < Duration::from_secs(5), "socat did not create the ptys");
                std::thread::sleep(Duration::from_millis(20));
            }
            (child, a, b.to_string_lossy().into_owned())
        };
        let write = |a: &std::path::Path, bytes: &[u8]| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(a).unwrap();
            f.write_all(bytes).unwrap();
        };
        let (mut socat, a0, b0) = start("0");
        let ports = Arc::new(Scripted::new(vec![
            plain("/dev/ttyS0"),
            usb(&b0, 0x0C2E, 0x0B61, Some("A1")),
        ]));
        let cfg = reader(None, Some("A1"));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let th = {
            let (ports, stop) = (ports.clone(), stop.clone());
            std::thread::spawn(move || run_reader_with(&cfg, &*ports, stop, |e| drop(tx.send(e))))
        };
        let next = |what: &str, pred: &dyn Fn(&SerialEvent) -> bool| -> SerialEvent {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let e = rx
                    .recv_timeout(end.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|_| panic!("no {what}"));
                if pred(&e) {
                    return e;
                }
            }
        };
        assert_eq!(
            next("connect", &|e| matches!(e, SerialEvent::Connected { .. })),
            SerialEvent::Connected { port: b0.clone() }
        );
        write(&a0, b"1900000009000018\r");
        assert!(
            matches!(next("line", &|e| matches!(e, SerialEvent::Line { .. })), SerialEvent::Line { port, text, .. } if port == b0 && text == "1900000009000018")
        );
        // Unplug: the pty pair goes away and the USB identity leaves the list.
        ports.set(Ok(vec![plain("/dev/ttyS0")]));
        socat.kill().unwrap();
        socat.wait().unwrap();
        next("disconnect", &|e| matches!(e, SerialEvent::Disconnected { .. }));
        let e = next("unavailable", &|e| matches!(e, SerialEvent::Unavailable { .. }));
        assert_eq!(
            e,
            SerialEvent::Unavailable {
                error: SerialError::NoUsbMatch {
                    what: "0C2E:0B61 serial A1".into()
                }
            }
        );
        // Replug: same scanner, new name.
        let (mut socat, a1, b1) = start("1");
        ports.set(Ok(vec![plain("/dev/ttyS0"), usb(&b1, 0x0C2E, 0x0B61, Some("A1"))]));
        assert_eq!(
            next("reconnect", &|e| matches!(e, SerialEvent::Connected { .. })),
            SerialEvent::Connected { port: b1.clone() }
        );
        write(&a1, b"5901234123457\r");
        assert!(
            matches!(next("line", &|e| matches!(e, SerialEvent::Line { .. })), SerialEvent::Line { port, text, .. } if port == b1 && text == "5901234123457")
        );
        stop.store(true, Ordering::Relaxed);
        th.join().unwrap();
        socat.kill().unwrap();
        let _ = socat.wait();
    }

    #[test]
    fn missing_port_is_not_in_use() {
        let cfg = SerialConfig {
            port: Some("/dev/tty-does-not-exist".into()),
            ..Default::default()
        };
        let e = open(&cfg, "/dev/tty-does-not-exist").err().unwrap();
        assert_eq!(
            e,
            SerialError::NoSuchPort {
                port: "/dev/tty-does-not-exist".into()
            }
        );
        assert!(e.to_string().contains("does not exist"));
        let cfg = SerialConfig {
            usb_vid: Some("FFFE".into()),
            usb_pid: Some("0001".into()),
            ..Default::default()
        };
        assert!(matches!(find_port(&cfg), Err(SerialError::NoUsbMatch { what }) if what == "FFFE:0001"));
    }
}
