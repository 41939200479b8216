//! A fault-injecting TCP proxy between the agent and the server (loopback only).
//!
//! The proxy forwards HTTP/1.1 connections byte for byte and can be switched at run time into
//! fault modes that real networks and servers produce: connection refused, black hole, reset in
//! the middle of a response, response dropped after the server committed, 5xx answers and answers
//! slower than the client's timeout. It counts what it did so tests can assert a fault was hit.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Forward everything.
    Pass = 0,
    /// Close new connections at once (the client sees a reset / connection refused).
    Refuse = 1,
    /// Accept and read, never answer, never close.
    BlackHole = 2,
    /// Forward the request; forward half the response, then reset the connection.
    ResetMidBody = 3,
    /// Forward the request and let the server answer (and commit), but drop the answer.
    DropResponse = 4,
    /// Answer `503 Service Unavailable` with `Retry-After: 1` without forwarding.
    ServiceUnavailable = 5,
    /// Forward, but hold the answer for `slow_ms` before sending it.
    Slow = 6,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::Refuse,
            2 => Fault::BlackHole,
            3 => Fault::ResetMidBody,
            4 => Fault::DropResponse,
            5 => Fault::ServiceUnavailable,
            6 => Fault::Slow,
            _ => Fault::Pass,
        }
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    fault: Arc<AtomicU8>,
    slow_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Connections handled per fault mode (index = `Fault as usize`).
    pub hits: Arc<Mutex<[u64; 7]>>,
}

impl Proxy {
    /// Start a proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let fault = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let slow_ms = Arc::new(AtomicU64::new(3000));
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new([0u64; 7]));
        let (f, s, st, h) = (fault.clone(), slow_ms.clone(), stop.clone(), hits.clone());
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let ctx = Ctx {
                            fault: f.clone(),
                            slow_ms: s.clone(),
                            stop: st.clone(),
                            hits: h.clone(),
                        };
                        thread::spawn(move || handle(client, upstream, ctx));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            fault,
            slow_ms,
            stop,
            hits,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    pub fn set_slow_ms(&self, ms: u64) {
        self.slow_ms.store(ms, Ordering::SeqCst);
    }

    pub fn hits(&self, fault: Fault) -> u64 {
        self.hits.lock().unwrap()[fault as usize]
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Read one HTTP/1.1 message (headers + Content-Length body) from `s`. Returns None on EOF.
fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let header_end;
    loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            header_end = p + 4;
            break;
        }
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let chunked = head.contains("transfer-encoding: chunked");
    if chunked {
        while find(&buf[header_end..], b"0\r\n\r\n").is_none() {
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    } else {
        while buf.len() < header_end + len {
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    }
    Some(buf)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reset(s: &TcpStream) {
    // SO_LINGER 0 turns close into a RST.
    let _ = socket_linger_zero(s);
    let _ = s.shutdown(Shutdown::Both);
}

#[cfg(unix)]
fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const core::ffi::c_void, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and a correctly sized struct.
    let r = unsafe { setsockopt(s.as_raw_fd(), SOL_SOCKET, SO_LINGER, &l as *const _ as *const _, 8) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn socket_linger_zero(_s: &TcpStream) -> std::io::Result<()> {
    Ok(())
}

struct Ctx {
    fault: Arc<AtomicU8>,
    slow_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<[u64; 7]>>,
}

impl Ctx {
    /// The mode in force now, counted as one hit.
    fn take(&self) -> Fault {
        let m = Fault::from_u8(self.fault.load(Ordering::SeqCst));
        self.hits.lock().unwrap()[m as usize] += 1;
        m
    }
}

fn black_hole(mut client: TcpStream, stop: &AtomicBool) {
    let mut sink = [0u8; 4096];
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    while !stop.load(Ordering::SeqCst) {
        if let Ok(0) = client.read(&mut sink) {
            return;
        }
    }
}

fn handle(mut client: TcpStream, upstream: SocketAddr, ctx: Ctx) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    // Connection-level faults are decided when the connection arrives.
    match Fault::from_u8(ctx.fault.load(Ordering::SeqCst)) {
        Fault::Refuse => {
            ctx.take();
            reset(&client);
            return;
        }
        Fault::BlackHole => {
            ctx.take();
            black_hole(client, &ctx.stop);
            return;
        }
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        reset(&client);
        return;
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(30)));
    // Keep-alive: serve requests on this connection until either side closes.
    // Request-level faults are decided per request, so a kept-alive connection follows the switch.
    while let Some(req) = read_message(&mut client) {
        let mode = ctx.take();
        match mode {
            Fault::Refuse => {
                reset(&client);
                return;
            }
            Fault::BlackHole => {
                black_hole(client, &ctx.stop);
                return;
            }
            _ => {}
        }
        if mode == Fault::ServiceUnavailable {
            let body = br#"{"code":"unavailable","message":"injected 503"}"#;
            let head = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = client.write_all(head.as_bytes());
            let _ = client.write_all(body);
            continue;
        }
        if server.write_all(&req).is_err() {
            reset(&client);
            return;
        }
        let Some(resp) = read_message(&mut server) else {
            reset(&client);
            return;
        };
        match mode {
            Fault::DropResponse => {
                reset(&client);
                return;
            }
            Fault::ResetMidBody => {
                let _ = client.write_all(&resp[..resp.len() / 2]);
                let _ = client.flush();
                reset(&client);
                return;
            }
            Fault::Slow => thread::sleep(Duration::from_millis(ctx.slow_ms.load(Ordering::SeqCst))),
            _ => {}
        }
        if client.write_all(&resp).is_err() {
            return;
        }
    }
}
