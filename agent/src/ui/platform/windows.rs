//! Windows: the popup gets `WS_EX_NOACTIVATE | WS_EX_TOPMOST | WS_EX_TOOLWINDOW` (never
//! activated, even when clicked; on top; not in Alt-Tab or the taskbar) and is shown with
//! `SW_SHOWNOACTIVATE`, so the POS keeps the keyboard focus.

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use windows_sys::Win32::Foundation::HWND;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    GetForegroundWindow, GetWindowLongPtrW, IsWindow, SetForegroundWindow, SetWindowLongPtrW, SetWindowPos, ShowWindow,
    GWL_EXSTYLE, HWND_TOPMOST, SWP_NOACTIVATE, SWP_NOMOVE, SWP_NOSIZE, SWP_SHOWWINDOW, SW_HIDE, SW_SHOWNOACTIVATE,
    WS_EX_NOACTIVATE, WS_EX_TOOLWINDOW, WS_EX_TOPMOST,
};

use super::PopupPlatform;

/// `RegisterHotKey` (no window: `WM_HOTKEY` is posted to the registering thread's queue) on a
/// thread of its own that runs the message loop; `MOD_NOREPEAT` so holding the keys opens once.
pub fn register_hotkey(hk: crate::ui::hotkey::HotKey, on_press: Box<dyn Fn() + Send>) -> Result<(), String> {
    use windows_sys::Win32::Foundation::GetLastError;
    use windows_sys::Win32::UI::Input::KeyboardAndMouse::{
        RegisterHotKey, MOD_ALT, MOD_CONTROL, MOD_NOREPEAT, MOD_SHIFT, MOD_WIN,
    };
    use windows_sys::Win32::UI::WindowsAndMessaging::{GetMessageW, MSG, WM_HOTKEY};
    let mut mods = MOD_NOREPEAT;
    for (on, m) in [
        (hk.ctrl, MOD_CONTROL),
        (hk.alt, MOD_ALT),
        (hk.shift, MOD_SHIFT),
        (hk.super_key, MOD_WIN),
    ] {
        if on {
            mods |= m;
        }
    }
    let vk = hk.windows_vk();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("hotkey".into())
        .spawn(move || {
            // SAFETY: plain Win32 calls on this thread's own message queue.
            unsafe {
                if RegisterHotKey(std::ptr::null_mut(), 1, mods, vk) == 0 {
                    let _ = tx.send(Err(format!(
                        "{hk} is taken by another program (RegisterHotKey error {})",
                        GetLastError()
                    )));
                    return;
                }
                let _ = tx.send(Ok(()));
                let mut msg: MSG = std::mem::zeroed();
                while GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) > 0 {
                    if msg.message == WM_HOTKEY {
                        tracing::info!(target: "till_agent::ui", "hotkey pressed");
                        on_press();
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

pub struct WindowsPopup;

fn hwnd(window: &dyn HasWindowHandle) -> Option<HWND> {
    match window.window_handle().ok()?.as_raw() {
        RawWindowHandle::Win32(h) => Some(h.hwnd.get() as HWND),
        _ => None,
    }
}

impl PopupPlatform for WindowsPopup {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn popup_builder(&self, b: egui::ViewportBuilder) -> egui::ViewportBuilder {
        super::common_builder(b)
    }

    fn after_create(&self, window: &dyn HasWindowHandle) {
        let Some(h) = hwnd(window) else {
            tracing::warn!("popup: not a Win32 window handle; WS_EX_NOACTIVATE not set");
            return;
        };
        // SAFETY: `h` is the live popup window owned by this thread's event loop.
        unsafe {
            let ex = GetWindowLongPtrW(h, GWL_EXSTYLE);
            SetWindowLongPtrW(
                h,
                GWL_EXSTYLE,
                ex | (WS_EX_NOACTIVATE | WS_EX_TOPMOST | WS_EX_TOOLWINDOW) as isize,
            );
        }
    }

    fn set_visible(&self, ctx: &egui::Context, window: &dyn HasWindowHandle, visible: bool) {
        let Some(h) = hwnd(window) else {
            ctx.send_viewport_cmd(egui::ViewportCommand::Visible(visible));
            return;
        };
        // SAFETY: as above; these calls never activate the window.
        unsafe {
            if visible {
                ShowWindow(h, SW_SHOWNOACTIVATE);
                SetWindowPos(
                    h,
                    HWND_TOPMOST,
                    0,
                    0,
                    0,
                    0,
                    SWP_NOACTIVATE | SWP_NOMOVE | SWP_NOSIZE | SWP_SHOWWINDOW,
                );
            } else {
                ShowWindow(h, SW_HIDE);
            }
        }
        ctx.request_repaint();
    }

    fn focused_window(&self) -> Option<u64> {
        // SAFETY: no arguments; returns null when no window is in the foreground.
        let h = unsafe { GetForegroundWindow() };
        (!h.is_null()).then_some(h as usize as u64)
    }

    fn restore_focus(&self, window: u64) {
        let h = window as usize as HWND;
        // SAFETY: IsWindow accepts any value; SetForegroundWindow only for a live window. The
        // agent owned the foreground while its window was active, so it may hand it back.
        let ok = unsafe { IsWindow(h) != 0 && SetForegroundWindow(h) != 0 };
        if ok {
            tracing::info!(target: "till_agent::ui", "foreground given back to window {window:#x}");
        } else {
            tracing::warn!("cannot give the foreground back to window {window:#x}");
        }
    }
}
