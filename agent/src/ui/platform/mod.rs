//! Platform code for the popup window, behind [`PopupPlatform`] with a `cfg(target_os)` factory
//! (espanso style). The popup must stay on top and never take keyboard focus from the POS.

use raw_window_handle::HasWindowHandle;

pub mod notify;
mod tray_host;
#[cfg(windows)]
mod windows;
#[cfg(target_os = "linux")]
mod x11;

pub use self::tray_host::{MenuEntry, TrayHost, TrayLook};

pub trait PopupPlatform {
    fn name(&self) -> &'static str;
    /// Window attributes for the popup (no decorations, on top, not focusable…).
    fn popup_builder(&self, b: egui::ViewportBuilder) -> egui::ViewportBuilder;
    /// Called once the native window exists (extended styles, WM hints).
    fn after_create(&self, window: &dyn HasWindowHandle);
    /// Show or hide the popup without activating it.
    fn set_visible(&self, ctx: &egui::Context, window: &dyn HasWindowHandle, visible: bool);
    /// The window that has the keyboard focus now (an opaque id), remembered when a window that
    /// may take the focus (the enrol form, the Redeem confirm) opens.
    fn focused_window(&self) -> Option<u64> {
        None
    }
    /// Give the keyboard focus back to `window` (from [`PopupPlatform::focused_window`]) once
    /// that window has closed.
    fn restore_focus(&self, window: u64) {
        let _ = window;
    }
}

/// Grab the global hotkey `key` from every window of the session and call `on_press` (on a thread
/// of its own) each time it is pressed. X11: `XGrabKey` on the root window (also with Caps Lock /
/// Num Lock on); Win32: `RegisterHotKey` with a message loop. The error says why (e.g. another
/// program holds the key).
pub fn register_hotkey(key: crate::ui::hotkey::HotKey, on_press: Box<dyn Fn() + Send>) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        x11::grab_hotkey(key, on_press)
    }
    #[cfg(windows)]
    {
        windows::register_hotkey(key, on_press)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (key, on_press);
        Err("no global hotkeys on this OS".into())
    }
}

/// Builder settings shared by every platform.
pub fn common_builder(b: egui::ViewportBuilder) -> egui::ViewportBuilder {
    b.with_decorations(false)
        .with_window_level(egui::WindowLevel::AlwaysOnTop)
        .with_active(false)
        .with_taskbar(false)
        .with_resizable(false)
        .with_visible(false)
        .with_title("till-agent popup")
        .with_app_id("till-agent")
}

/// Is there a display to open windows on? (Linux: `$DISPLAY` and an X server answering.)
pub fn display_available() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        x11::display_available()
    }
    #[cfg(windows)]
    {
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Err("no popup platform for this OS".into())
    }
}

pub fn popup_platform() -> Box<dyn PopupPlatform> {
    #[cfg(target_os = "linux")]
    {
        Box::new(x11::X11Popup::default())
    }
    #[cfg(windows)]
    {
        Box::new(windows::WindowsPopup)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Box::new(Generic)
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
struct Generic;
#[cfg(not(any(target_os = "linux", windows)))]
impl PopupPlatform for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }
    fn popup_builder(&self, b: egui::ViewportBuilder) -> egui::ViewportBuilder {
        common_builder(b)
    }
    fn after_create(&self, _window: &dyn HasWindowHandle) {}
    fn set_visible(&self, ctx: &egui::Context, _window: &dyn HasWindowHandle, visible: bool) {
        ctx.send_viewport_cmd(egui::ViewportCommand::Visible(visible));
    }
}
