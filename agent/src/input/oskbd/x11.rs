//! Linux/X11 keyboard wedge: XInput2 raw key events (`XI_RawKeyPress` / `XI_RawKeyRelease`)
//! selected on the root window for all master devices, so keys are seen whatever window has the
//! focus, with the *source* (slave) device id — the X counterpart of Windows Raw Input. Raw events
//! carry the keycode (position), not a character, so the cashier's layout does not matter.
//! Listen-only: X11 offers no way to swallow keys of other clients here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::{DeviceInfo, KeySource, SourceEvent};
use crate::input::keys::{Key, KeyEvent};

pub struct X11Source {
    conn: RustConnection,
    devices: BTreeMap<u32, String>,
    /// (server time, local instant) of the last event, to extrapolate `now_ms`.
    clock: Option<(u64, Instant)>,
    pending: Vec<SourceEvent>,
}

impl X11Source {
    pub fn connect(display: Option<&str>) -> anyhow::Result<X11Source> {
        let (conn, screen) = x11rb::connect(display).with_context(|| {
            format!(
                "cannot connect to the X display {}",
                display
                    .map(str::to_string)
                    .or_else(|| std::env::var("DISPLAY").ok())
                    .unwrap_or_default()
            )
        })?;
        let v = conn
            .xinput_xi_query_version(2, 2)
            .context("XInput extension missing")?
            .reply()
            .context("XIQueryVersion failed (XInput2 not supported by this X server)")?;
        anyhow::ensure!(
            v.major_version >= 2,
            "the X server has XInput {}.{}, need 2.x",
            v.major_version,
            v.minor_version
        );
        let root = conn.setup().roots[screen].root;
        let mask = xinput::XIEventMask::RAW_KEY_PRESS | xinput::XIEventMask::RAW_KEY_RELEASE;
        conn.xinput_xi_select_events(
            root,
            &[
                xinput::EventMask {
                    deviceid: xinput::Device::ALL_MASTER.into(),
                    mask: vec![mask],
                },
                xinput::EventMask {
                    deviceid: xinput::Device::ALL.into(),
                    mask: vec![xinput::XIEventMask::HIERARCHY],
                },
            ],
        )?
        .check()
        .context("XISelectEvents(raw key events) failed")?;
        conn.flush()?;
        let mut s = X11Source {
            conn,
            devices: BTreeMap::new(),
            clock: None,
            pending: Vec::new(),
        };
        s.devices = s.query_devices()?;
        Ok(s)
    }

    fn query_devices(&self) -> anyhow::Result<BTreeMap<u32, String>> {
        let r = self.conn.xinput_xi_query_device(xinput::Device::ALL)?.reply()?;
        Ok(r.infos
            .iter()
            .filter(|d| d.type_ == xinput::DeviceType::SLAVE_KEYBOARD || d.type_ == xinput::DeviceType::FLOATING_SLAVE)
            .map(|d| (d.deviceid as u32, String::from_utf8_lossy(&d.name).into_owned()))
            .collect())
    }

    fn refresh_devices(&mut self) -> anyhow::Result<()> {
        let now = self.query_devices()?;
        for (id, name) in &now {
            if !self.devices.contains_key(id) {
                self.pending.push(SourceEvent::DeviceAdded(DeviceInfo {
                    id: *id,
                    name: name.clone(),
                }));
            }
        }
        for id in self.devices.keys() {
            if !now.contains_key(id) {
                self.pending.push(SourceEvent::DeviceRemoved(*id));
            }
        }
        self.devices = now;
        Ok(())
    }
}

impl KeySource for X11Source {
    fn kind(&self) -> &'static str {
        "x11"
    }

    fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<SourceEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.pending.is_empty() {
                return Ok(Some(self.pending.remove(0)));
            }
            match self.conn.poll_for_event().context("X connection lost")? {
                Some(Event::XinputRawKeyPress(e)) | Some(Event::XinputRawKeyRelease(e)) => {
                    let down = e.event_type == xinput::RAW_KEY_PRESS_EVENT;
                    self.clock = Some((e.time as u64, Instant::now()));
                    let Some(key) = Key::from_x11(e.detail) else { continue };
                    return Ok(Some(SourceEvent::Key(KeyEvent {
                        time_ms: e.time as u64,
                        device: e.sourceid as u32,
                        key,
                        down,
                        injected: false,
                    })));
                }
                Some(Event::XinputHierarchy(_)) => self.refresh_devices()?,
                Some(_) => {}
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // Sleep in the kernel until the X socket has data or the deadline passes
                    // (no busy polling: an idle till must cost no CPU).
                    wait_readable(self.conn.stream(), left)?;
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        match self.clock {
            Some((t, at)) => t + at.elapsed().as_millis() as u64,
            None => 0,
        }
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        self.devices
            .iter()
            .map(|(id, name)| DeviceInfo {
                id: *id,
                name: name.clone(),
            })
            .collect()
    }
}

/// Block until `fd` is readable or `timeout` passes (poll(2)); EINTR counts as a wake-up.
fn wait_readable(fd: &impl std::os::fd::AsFd, timeout: Duration) -> anyhow::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let t = timeout.max(Duration::from_millis(1));
    let ts = rustix::event::Timespec {
        tv_sec: t.as_secs() as _,
        tv_nsec: t.subsec_nanos() as _,
    };
    match poll(&mut fds, Some(&ts)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("waiting for the X connection failed: {e}")),
    }
}
