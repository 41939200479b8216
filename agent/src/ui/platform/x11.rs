//! X11: the popup is an override-redirect window (the window manager neither decorates, moves
//! nor focuses it) typed `_NET_WM_WINDOW_TYPE_NOTIFICATION`, with `WM_HINTS.input = False`
//! and `_NET_WM_STATE_ABOVE` for window managers that look at it anyway. Mapping an
//! override-redirect window puts it on top of the stack and does not move the keyboard focus.

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConfigureWindowAux, ConnectionExt, GrabMode, InputFocus, ModMask, PropMode, StackMode,
};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;

use super::PopupPlatform;

/// `conn`: the connection that raises the popup, opened with the first popup and kept (an idle
/// socket costs nothing), so a scan after an hour hidden does not connect, authenticate and wait
/// for a round trip before the map.
#[derive(Default)]
pub struct X11Popup {
    conn: std::sync::Mutex<Option<x11rb::rust_connection::RustConnection>>,
}

pub fn display_available() -> Result<(), String> {
    match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => x11rb::connect(None)
            .map(|_| ())
            .map_err(|e| format!("cannot connect to X display {d}: {e}")),
        _ => Err("DISPLAY is not set".into()),
    }
}

fn window_id(window: &dyn HasWindowHandle) -> Option<u32> {
    match window.window_handle().ok()?.as_raw() {
        RawWindowHandle::Xlib(h) => Some(h.window as u32),
        RawWindowHandle::Xcb(h) => Some(h.window.get()),
        _ => None,
    }
}

fn set_hints(win: u32) -> Result<(), Box<dyn std::error::Error>> {
    let (conn, _) = x11rb::connect(None)?;
    // WM_HINTS: flags = InputHint (1), input = False.
    let hints: [u32; 9] = [1, 0, 0, 0, 0, 0, 0, 0, 0];
    // Checked requests: the connection closes right after, and a request that was only flushed
    // can be lost with it (seen: a raise that never happened under load).
    conn.change_property32(PropMode::REPLACE, win, AtomEnum::WM_HINTS, AtomEnum::WM_HINTS, &hints)?
        .check()?;
    let state = conn.intern_atom(false, b"_NET_WM_STATE")?.reply()?.atom;
    let above = conn.intern_atom(false, b"_NET_WM_STATE_ABOVE")?.reply()?.atom;
    conn.change_property32(PropMode::REPLACE, win, state, AtomEnum::ATOM, &[above])?
        .check()?;
    Ok(())
}

impl X11Popup {
    /// Put `win` on top: one request flushed on the kept connection, no round trip (an error, e.g.
    /// the window gone, is discarded). A broken connection is dropped and reopened next time.
    fn raise(&self, win: u32) -> Result<(), Box<dyn std::error::Error>> {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(x11rb::connect(None)?.0);
        }
        let Some(conn) = g.as_ref() else { return Ok(()) };
        let sent = (|| -> Result<(), Box<dyn std::error::Error>> {
            // Nothing else is asked on this connection: drop whatever events queued up.
            while conn.poll_for_event()?.is_some() {}
            conn.configure_window(win, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE))?
                .ignore_error();
            conn.flush()?;
            Ok(())
        })();
        if sent.is_err() {
            *g = None;
        }
        sent
    }
}

/// `GetInputFocus`; `None` when the focus is `None` or `PointerRoot` (no window to give it back to).
fn input_focus() -> Result<Option<u32>, Box<dyn std::error::Error>> {
    let (conn, _) = x11rb::connect(None)?;
    let focus = conn.get_input_focus()?.reply()?.focus;
    // 0 = None, 1 = PointerRoot
    Ok((focus > 1).then_some(focus))
}

fn set_input_focus(win: u32) -> Result<(), Box<dyn std::error::Error>> {
    let (conn, _) = x11rb::connect(None)?;
    // Checked (BadWindow when the POS window is gone; BadMatch when it is unmapped).
    conn.set_input_focus(InputFocus::PARENT, win, x11rb::CURRENT_TIME)?
        .check()?;
    Ok(())
}

/// `XGrabKey` of the hotkey on the root window, with every combination of Caps Lock and Num Lock
/// (a passive grab matches the modifier state exactly); a thread waits for the key presses.
pub fn grab_hotkey(hk: crate::ui::hotkey::HotKey, on_press: Box<dyn Fn() + Send>) -> Result<(), String> {
    let (conn, screen) = x11rb::connect(None).map_err(|e| format!("cannot connect to the X display: {e}"))?;
    let (root, min, max) = {
        let s = conn.setup();
        (s.roots[screen].root, s.min_keycode, s.max_keycode)
    };
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    let per = usize::from(map.keysyms_per_keycode.max(1));
    let want = hk.x11_keysym();
    let upper = char::from_u32(want)
        .map(|c| c.to_ascii_uppercase() as u32)
        .unwrap_or(want);
    let keycode = map
        .keysyms
        .chunks(per)
        .position(|syms| syms.iter().any(|&k| k == want || k == upper))
        .map(|i| min + i as u8)
        .ok_or_else(|| format!("the keyboard map has no key {hk}"))?;
    let mut mods = ModMask::from(0u16);
    for (on, m) in [
        (hk.ctrl, ModMask::CONTROL),
        (hk.alt, ModMask::M1),
        (hk.shift, ModMask::SHIFT),
        (hk.super_key, ModMask::M4),
    ] {
        if on {
            mods |= m;
        }
    }
    for extra in [
        ModMask::from(0u16),
        ModMask::LOCK,
        ModMask::M2,
        ModMask::LOCK | ModMask::M2,
    ] {
        conn.grab_key(true, root, mods | extra, keycode, GrabMode::ASYNC, GrabMode::ASYNC)
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| format!("{hk} is taken by another program ({e:?})"))?;
    }
    std::thread::Builder::new()
        .name("hotkey".into())
        .spawn(move || loop {
            match conn.wait_for_event() {
                Ok(Event::KeyPress(e)) if e.detail == keycode => {
                    tracing::info!(target: "till_agent::ui", "hotkey pressed");
                    on_press();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("hotkey: X connection lost: {e}");
                    return;
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

impl PopupPlatform for X11Popup {
    fn name(&self) -> &'static str {
        "x11"
    }

    fn popup_builder(&self, b: egui::ViewportBuilder) -> egui::ViewportBuilder {
        super::common_builder(b)
            .with_override_redirect(true)
            .with_window_type(egui::X11WindowType::Notification)
    }

    fn after_create(&self, window: &dyn HasWindowHandle) {
        match window_id(window) {
            Some(w) => {
                if let Err(e) = set_hints(w) {
                    tracing::warn!("popup: cannot set X11 hints on window {w:#x}: {e}");
                }
            }
            None => tracing::warn!("popup: not an X11 window handle; focus hints not set"),
        }
    }

    fn set_visible(&self, ctx: &egui::Context, window: &dyn HasWindowHandle, visible: bool) {
        ctx.send_viewport_cmd(egui::ViewportCommand::Visible(visible));
        if visible {
            // Already mapped (a second popup while the first shows): put it back on top.
            match window_id(window).map(|w| (w, self.raise(w))) {
                Some((w, Ok(()))) => tracing::debug!("popup window {w:#x} raised"),
                Some((w, Err(e))) => tracing::warn!("popup: cannot raise window {w:#x}: {e}"),
                None => tracing::warn!("popup: no X11 window handle to raise"),
            }
        }
    }

    fn focused_window(&self) -> Option<u64> {
        match input_focus() {
            Ok(w) => w.map(u64::from),
            Err(e) => {
                tracing::warn!("cannot read the X11 input focus: {e}");
                None
            }
        }
    }

    fn restore_focus(&self, window: u64) {
        let Ok(w) = u32::try_from(window) else { return };
        match set_input_focus(w) {
            Ok(()) => tracing::info!(target: "till_agent::ui", "keyboard focus given back to window {w:#x}"),
            Err(e) => tracing::warn!("cannot give the keyboard focus back to window {w:#x}: {e}"),
        }
    }
}
