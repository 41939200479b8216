//! Windows keyboard wedge.
//!
//! - **Raw Input** (passthrough mode): `RegisterRawInputDevices` for usage page 1 / usage 6 with
//!   `RIDEV_INPUTSINK | RIDEV_DEVNOTIFY` on a hidden message-only window, so keys are seen while
//!   the POS has the focus. `header.hDevice` tells the keyboards apart; its
//!   `GetRawInputDeviceInfoW(RIDI_DEVICENAME)` path carries `VID_xxxx&PID_yyyy` (matched against
//!   `[reader] dedicated`); `WM_INPUT_DEVICE_CHANGE` reports arrival / removal. `hDevice == 0`
//!   (injected input) is ignored.
//! - **Intercept mode**: a `WH_KEYBOARD_LL` hook. The callback only queues the event (bounded,
//!   never blocks, falls back to passing the key when the queue is full) and blocks the key;
//!   events flagged `LLKHF_INJECTED` (our own replays) pass untouched. The detector decides; this
//!   module executes `Action::Replay` with `SendInput` (scan codes, tagged with `REPLAY_TAG`).
//!   The LL hook has no device handle, so intercept mode uses timing only.
//!   Windows drops an LL hook silently when its callback is too slow (`LowLevelHooksTimeout`);
//!   Raw Input keeps listening in intercept mode and [`HookWatch`] compares the two: a Raw Input
//!   key the hook did not see means the hook is gone — it is reinstalled at once, the sync log
//!   says so, and the detector is told which keys went past (`SourceEvent::InputLost`).
//!   `TILL_AGENT_FAULT_DROP_HOOK_AFTER=N` (tests only) unhooks after N hook events, as Windows would.
//!
//! Everything runs on the one thread that created the window and the hook; `next()` pumps that
//! thread's messages, which is also what keeps the hook alive (it must return within
//! `LowLevelHooksTimeout`).
//!
//! Run for real under Wine 8 on Xvfb by `tests/e2e/wine_input.rs` (xdotool → Wine's X11 driver →
//! hardware input; a POS stand-in window logs what reaches it). What Wine does differently from
//! Windows, as observed there:
//! - keyboard input exists only while a Wine window has the X focus (the POS here), then Raw
//!   Input reaches our message-only sink; there is one keyboard (handle 2; the mouse is 1), path
//!   `\\?\HID#VID_845E&PID_0002#0&0000&0&0#{884b96c3-…}` (Wine's made-up VID), whatever X
//!   devices exist: a new X master/slave keyboard (`xinput create-master`) gives no
//!   `WM_INPUT_DEVICE_CHANGE` and no second device, so arrival / removal cannot be produced there;
//! - key times (hook `time`, `GetMessageTime`) are the X server's event times: xdotool at 8 ms/key
//!   shows as 8–9 ms gaps (up to 15 ms with both cores busy);
//! - physical keys reach the LL hook first, then `WM_INPUT` (as on Windows); Right Shift comes
//!   with `LLKHF_EXTENDED` in the hook but without E0 in Raw Input;
//! - `SendInput` with `KEYEVENTF_SCANCODE` keeps `wVk` as given (Windows derives it from the scan
//!   code), so replays carry the mapped virtual key too;
//! - keys injected by `SendInput` reach Raw Input with the keyboard's handle (Windows: 0) — our
//!   replays are recognised by their `dwExtraInfo` tag as well;
//! - a key blocked by the LL hook is still delivered as `WM_INPUT` (not relied on: intercept mode
//!   reads keys from the hook only); the hook sees our replays with `LLKHF_INJECTED` and the tag,
//!   as on Windows.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HANDLE, HWND, LPARAM, LRESULT, WPARAM};
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::UI::Input::KeyboardAndMouse::{
    GetKeyboardLayout, MapVirtualKeyExW, SendInput, INPUT, INPUT_0, INPUT_KEYBOARD, KEYBDINPUT, KEYEVENTF_EXTENDEDKEY,
    KEYEVENTF_KEYUP, KEYEVENTF_SCANCODE, MAPVK_VSC_TO_VK_EX,
};
use windows_sys::Win32::UI::Input::{
    GetRawInputData, GetRawInputDeviceInfoW, GetRawInputDeviceList, GetRegisteredRawInputDevices,
    RegisterRawInputDevices, HRAWINPUT, RAWINPUT, RAWINPUTDEVICE, RAWINPUTDEVICELIST, RAWINPUTHEADER, RIDEV_DEVNOTIFY,
    RIDEV_INPUTSINK, RIDI_DEVICENAME, RID_INPUT, RIM_TYPEKEYBOARD,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CallNextHookEx, CreateWindowExW, DefWindowProcW, DispatchMessageW, GetForegroundWindow, GetWindowThreadProcessId,
    MsgWaitForMultipleObjects, PeekMessageW, RegisterClassExW, SetWindowsHookExW, TranslateMessage,
    UnhookWindowsHookEx, GIDC_ARRIVAL, HC_ACTION, HHOOK, HWND_MESSAGE, KBDLLHOOKSTRUCT, LLKHF_EXTENDED, LLKHF_INJECTED,
    LLKHF_UP, MSG, PM_REMOVE, QS_ALLINPUT, WH_KEYBOARD_LL, WM_INPUT, WM_INPUT_DEVICE_CHANGE, WNDCLASSEXW,
};

use super::{DeviceInfo, KeySource, SourceEvent};
use crate::input::detect::Action;
use crate::input::hookwatch::HookWatch;
use crate::input::keys::{Key, KeyEvent};

/// `dwExtraInfo` of our replays (besides `LLKHF_INJECTED`, for diagnostics).
const REPLAY_TAG: usize = 0x7111_A6E7;
const QUEUE_CAP: usize = 4096;
const RI_KEY_BREAK: u16 = 1;
const RI_KEY_E0: u16 = 2;
const RI_KEY_E1: u16 = 4;

enum Raw {
    Key {
        handle: isize,
        scan: u16,
        e0: bool,
        e1: bool,
        up: bool,
        time: u32,
    },
    /// A key the hook blocked (the detector decides about it).
    Hook {
        key: Key,
        scan: u16,
        up: bool,
        time: u32,
    },
    /// A key the hook saw and passed on (no position of ours, or the queue was full).
    Seen {
        scan: u16,
        up: bool,
        time: u32,
    },
    Arrival(isize),
    Removal(isize),
}

thread_local! {
    static QUEUE: RefCell<VecDeque<Raw>> = RefCell::new(VecDeque::with_capacity(QUEUE_CAP));
}

/// Queue without blocking; false when full.
fn try_send(r: Raw) -> bool {
    QUEUE.with(|q| match q.try_borrow_mut() {
        Ok(mut q) if q.len() < QUEUE_CAP => {
            q.push_back(r);
            true
        }
        _ => false,
    })
}

unsafe extern "system" fn wndproc(hwnd: HWND, msg: u32, wparam: WPARAM, lparam: LPARAM) -> LRESULT {
    match msg {
        WM_INPUT => {
            let mut raw: RAWINPUT = std::mem::zeroed();
            let mut size = std::mem::size_of::<RAWINPUT>() as u32;
            let n = GetRawInputData(
                lparam as HRAWINPUT,
                RID_INPUT,
                &mut raw as *mut RAWINPUT as *mut _,
                &mut size,
                std::mem::size_of::<RAWINPUTHEADER>() as u32,
            );
            // Injected input has no device on Windows (`hDevice == 0`); Wine gives injected keys
            // the keyboard's handle, so our own replays (e.g. of another agent instance in
            // intercept mode while `reader-test` runs) are also recognised by their tag.
            if n != u32::MAX
                && raw.header.dwType == RIM_TYPEKEYBOARD
                && !raw.header.hDevice.is_null()
                && raw.data.keyboard.ExtraInformation as usize != REPLAY_TAG
            {
                let kb = raw.data.keyboard;
                let time = windows_sys::Win32::UI::WindowsAndMessaging::GetMessageTime() as u32;
                try_send(Raw::Key {
                    handle: raw.header.hDevice as isize,
                    scan: kb.MakeCode,
                    e0: kb.Flags & RI_KEY_E0 != 0,
                    e1: kb.Flags & RI_KEY_E1 != 0,
                    up: kb.Flags & RI_KEY_BREAK != 0,
                    time,
                });
            }
            DefWindowProcW(hwnd, msg, wparam, lparam)
        }
        WM_INPUT_DEVICE_CHANGE => {
            if wparam as u32 == GIDC_ARRIVAL {
                try_send(Raw::Arrival(lparam));
            } else {
                try_send(Raw::Removal(lparam));
            }
            0
        }
        _ => DefWindowProcW(hwnd, msg, wparam, lparam),
    }
}

unsafe extern "system" fn ll_hook(code: i32, wparam: WPARAM, lparam: LPARAM) -> LRESULT {
    if code == HC_ACTION as i32 {
        let k = &*(lparam as *const KBDLLHOOKSTRUCT);
        // Only keys we can replay are taken: anything else (media keys, Apps, Print Screen,
        // the fake E0 Shift events of the numeric keypad …) passes straight to the POS instead
        // of being blocked and then dropped for want of a key position.
        if k.flags & LLKHF_INJECTED == 0 {
            let (scan, up) = (k.scanCode as u16, k.flags & LLKHF_UP != 0);
            if let Some(key) = hook_key(scan, k.flags & LLKHF_EXTENDED != 0) {
                if try_send(Raw::Hook {
                    key,
                    scan,
                    up,
                    time: k.time,
                }) {
                    // Blocked here; the detector replays it if it is human typing.
                    return 1;
                }
            }
            // passed on: the hook watch must still know the hook saw it
            try_send(Raw::Seen { scan, up, time: k.time });
        }
    }
    CallNextHookEx(std::ptr::null_mut(), code, wparam, lparam)
}

/// The key position of a low-level hook event. Right Shift comes flagged `LLKHF_EXTENDED` in the
/// hook (seen under Wine; Raw Input reports it without E0), where E0 36 means nothing else.
fn hook_key(scan: u16, extended: bool) -> Option<Key> {
    Key::from_windows_scan(scan, extended).or_else(|| {
        if scan == 0x36 && extended {
            Key::from_windows_scan(scan, false)
        } else {
            None
        }
    })
}

fn device_name(handle: HANDLE) -> String {
    unsafe {
        let mut len = 0u32;
        GetRawInputDeviceInfoW(handle, RIDI_DEVICENAME, std::ptr::null_mut(), &mut len);
        if len == 0 {
            return String::new();
        }
        let mut buf = vec![0u16; len as usize + 1];
        let n = GetRawInputDeviceInfoW(handle, RIDI_DEVICENAME, buf.as_mut_ptr() as *mut _, &mut len);
        if n == u32::MAX {
            return String::new();
        }
        let end = buf.iter().position(|c| *c == 0).unwrap_or(buf.len());
        String::from_utf16_lossy(&buf[..end])
    }
}

pub struct RawInputSource {
    hwnd: HWND,
    hook: HHOOK,
    intercept: bool,
    ids: HashMap<isize, u32>,
    devices: Vec<DeviceInfo>,
    clock: Option<(u64, Instant)>,
    /// Last check that the keyboard registration is still ours (see [`Self::keep_registration`]).
    checked: Instant,
    taken_back: u32,
    /// Intercept mode: is the hook still called? (Raw Input vs hook, by scan code)
    watch: HookWatch,
    reinstalled: u32,
    last_reinstall: Option<Instant>,
    /// Fault injection for tests: unhook after this many hook events, as Windows does to a slow hook.
    drop_hook_after: Option<u64>,
    hook_events: u64,
}

fn install_hook() -> anyhow::Result<HHOOK> {
    unsafe {
        let h = SetWindowsHookExW(WH_KEYBOARD_LL, Some(ll_hook), GetModuleHandleW(std::ptr::null()), 0);
        anyhow::ensure!(
            !h.is_null(),
            "SetWindowsHookExW(WH_KEYBOARD_LL) failed: {}",
            std::io::Error::last_os_error()
        );
        Ok(h)
    }
}

/// Register our window as the process's keyboard Raw Input target.
fn register(hwnd: HWND) -> bool {
    let rid = RAWINPUTDEVICE {
        usUsagePage: 1,
        usUsage: 6,
        dwFlags: RIDEV_INPUTSINK | RIDEV_DEVNOTIFY,
        hwndTarget: hwnd,
    };
    unsafe { RegisterRawInputDevices(&rid, 1, std::mem::size_of::<RAWINPUTDEVICE>() as u32) != 0 }
}

/// The window this process's keyboard Raw Input goes to (None: not registered / unknown).
fn registered_keyboard_target() -> Option<HWND> {
    let mut list: [RAWINPUTDEVICE; 16] = unsafe { std::mem::zeroed() };
    let mut n = list.len() as u32;
    let got = unsafe {
        GetRegisteredRawInputDevices(list.as_mut_ptr(), &mut n, std::mem::size_of::<RAWINPUTDEVICE>() as u32)
    };
    if got == u32::MAX {
        return None;
    }
    list.iter()
        .take(got as usize)
        .find(|d| d.usUsagePage == 1 && d.usUsage == 6)
        .map(|d| d.hwndTarget)
}

// The window and the hook belong to the thread that created them; the source is created and
// used on that one thread (the wedge thread), `Send` only lets it be boxed.
unsafe impl Send for RawInputSource {}

impl RawInputSource {
    pub fn start(intercept: bool) -> anyhow::Result<RawInputSource> {
        unsafe {
            let hinstance = GetModuleHandleW(std::ptr::null());
            let class: Vec<u16> = "TillAgentRawInput\0".encode_utf16().collect();
            let mut wc: WNDCLASSEXW = std::mem::zeroed();
            wc.cbSize = std::mem::size_of::<WNDCLASSEXW>() as u32;
            wc.lpfnWndProc = Some(wndproc);
            wc.hInstance = hinstance;
            wc.lpszClassName = class.as_ptr();
            RegisterClassExW(&wc);
            let hwnd = CreateWindowExW(
                0,
                class.as_ptr(),
                class.as_ptr(),
                0,
                0,
                0,
                0,
                0,
                HWND_MESSAGE,
                std::ptr::null_mut(),
                hinstance,
                std::ptr::null(),
            );
            anyhow::ensure!(
                !hwnd.is_null(),
                "CreateWindowExW(HWND_MESSAGE) failed: {}",
                std::io::Error::last_os_error()
            );
            anyhow::ensure!(
                register(hwnd),
                "RegisterRawInputDevices failed: {}",
                std::io::Error::last_os_error()
            );
            let hook = if intercept {
                install_hook()?
            } else {
                std::ptr::null_mut()
            };
            let mut s = RawInputSource {
                hwnd,
                hook,
                intercept,
                ids: HashMap::new(),
                devices: Vec::new(),
                clock: None,
                checked: Instant::now(),
                taken_back: 0,
                watch: HookWatch::new(),
                reinstalled: 0,
                last_reinstall: None,
                drop_hook_after: std::env::var("TILL_AGENT_FAULT_DROP_HOOK_AFTER")
                    .ok()
                    .and_then(|v| v.parse().ok()),
                hook_events: 0,
            };
            s.enumerate();
            tracing::info!(
                "keyboard wedge: Raw Input sink on {} keyboard(s){}",
                s.devices.len(),
                if intercept {
                    ", intercept mode: low-level keyboard hook installed"
                } else {
                    ", passthrough (listen only)"
                }
            );
            Ok(s)
        }
    }

    fn enumerate(&mut self) {
        unsafe {
            let mut n = 0u32;
            let sz = std::mem::size_of::<RAWINPUTDEVICELIST>() as u32;
            GetRawInputDeviceList(std::ptr::null_mut(), &mut n, sz);
            let mut list: Vec<RAWINPUTDEVICELIST> = vec![std::mem::zeroed(); n as usize];
            let got = GetRawInputDeviceList(list.as_mut_ptr(), &mut n, sz);
            if got == u32::MAX {
                return;
            }
            for d in list.iter().take(got as usize) {
                if d.dwType == RIM_TYPEKEYBOARD {
                    self.add(d.hDevice as isize);
                }
            }
        }
    }

    fn add(&mut self, handle: isize) -> DeviceInfo {
        let next = self.ids.len() as u32 + 1;
        let id = *self.ids.entry(handle).or_insert(next);
        let info = DeviceInfo {
            id,
            name: device_name(handle as HANDLE),
        };
        self.devices.retain(|d| d.id != id);
        self.devices.push(info.clone());
        info
    }

    /// Raw Input has one target window per device class *per process*: a later
    /// `RegisterRawInputDevices` for keyboards anywhere in the process (winit does one for the
    /// GUI's device events) silently takes every `WM_INPUT` away from us — found under Wine, where
    /// the tray app's wedge saw no key at all. Checked every second; we take it back (the card
    /// reader matters more than the GUI's raw key events) and say so.
    fn keep_registration(&mut self) {
        if self.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.checked = Instant::now();
        match registered_keyboard_target() {
            Some(h) if h == self.hwnd => {}
            other => {
                self.taken_back += 1;
                let ok = register(self.hwnd);
                let msg = format!(
                    "keyboard wedge: keyboard Raw Input was registered to another window of this process ({}); re-registered ours: {}",
                    other.map(|h| format!("{h:?}")).unwrap_or_else(|| "none".into()),
                    if ok { "ok".to_string() } else { std::io::Error::last_os_error().to_string() }
                );
                // once at GUI start is expected (winit); again means something keeps taking it
                match self.taken_back {
                    1 => tracing::info!("{msg}"),
                    2..=5 => tracing::warn!("{msg} (time {})", self.taken_back),
                    _ => {}
                }
            }
        }
    }

    /// A key (press: `down`) went past the hook: reinstall it. Raw Input keys still queued from
    /// before the reinstall also miss; they are reported, but the hook is not churned for them.
    fn hook_lost(&mut self, down: bool) -> Option<String> {
        if self
            .last_reinstall
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return None;
        }
        self.last_reinstall = Some(Instant::now());
        self.reinstalled += 1;
        unsafe { UnhookWindowsHookEx(self.hook) }; // fails when Windows already dropped it: fine
        self.watch.reset();
        let how = match install_hook() {
            Ok(h) => {
                self.hook = h;
                "reinstalled it".to_string()
            }
            Err(e) => {
                self.hook = std::ptr::null_mut();
                format!("could NOT reinstall it ({e:#}): scans now reach the POS")
            }
        };
        Some(format!(
            "keyboard wedge: the low-level keyboard hook was gone (a key {} went past it to the POS; Windows drops a hook \
             that answers too slowly, LowLevelHooksTimeout); {how} ({} time(s) since start)",
            if down { "press" } else { "release" },
            self.reinstalled
        ))
    }

    fn pump(&mut self, timeout: Duration) {
        unsafe {
            MsgWaitForMultipleObjects(0, std::ptr::null(), 0, timeout.as_millis() as u32, QS_ALLINPUT);
            let mut msg: MSG = std::mem::zeroed();
            while PeekMessageW(&mut msg, std::ptr::null_mut(), 0, 0, PM_REMOVE) != 0 {
                TranslateMessage(&msg);
                DispatchMessageW(&msg);
            }
        }
    }

    fn convert(&mut self, r: Raw) -> Option<SourceEvent> {
        match r {
            Raw::Key {
                handle,
                scan,
                e0,
                e1,
                up,
                time,
            } => {
                if self.intercept {
                    // The hook is the source in intercept mode; Raw Input only checks it is there.
                    // (Pause comes as E1 1D 45 here and differently in the hook: not compared.)
                    if e1 || self.watch.raw(scan, !up, time as u64) {
                        return None;
                    }
                    let notice = self.hook_lost(!up);
                    let leaked = Key::from_windows_scan(scan, e0).map(|key| KeyEvent {
                        time_ms: time as u64,
                        device: 0,
                        key,
                        down: !up,
                        injected: false,
                    });
                    return Some(SourceEvent::InputLost {
                        device: 0,
                        leaked: leaked.into_iter().collect(),
                        notice,
                    });
                }
                let device = match self.ids.get(&handle) {
                    Some(id) => *id,
                    None => self.add(handle).id,
                };
                let key = Key::from_windows_scan(scan, e0)?;
                self.clock = Some((time as u64, Instant::now()));
                Some(SourceEvent::Key(KeyEvent {
                    time_ms: time as u64,
                    device,
                    key,
                    down: !up,
                    injected: false,
                }))
            }
            Raw::Seen { scan, up, time } => {
                self.watch.hooked(scan, !up, time as u64);
                None
            }
            Raw::Hook { key, scan, up, time } => {
                self.watch.hooked(scan, !up, time as u64);
                self.hook_events += 1;
                if self.drop_hook_after == Some(self.hook_events) {
                    // what Windows does to a hook that answered too slowly: no message, no error
                    unsafe { UnhookWindowsHookEx(self.hook) };
                    tracing::info!(
                        "fault injection: dropped the low-level keyboard hook after {} events",
                        self.hook_events
                    );
                }
                self.clock = Some((time as u64, Instant::now()));
                Some(SourceEvent::Key(KeyEvent {
                    time_ms: time as u64,
                    device: 0,
                    key,
                    down: !up,
                    injected: false,
                }))
            }
            Raw::Arrival(h) => Some(SourceEvent::DeviceAdded(self.add(h))),
            Raw::Removal(h) => self.ids.get(&h).copied().map(|id| {
                self.devices.retain(|d| d.id != id);
                SourceEvent::DeviceRemoved(id)
            }),
        }
    }

    fn send(keys: &[KeyEvent]) {
        // The virtual key as well as the scan code: Windows ignores `wVk` with
        // `KEYEVENTF_SCANCODE` and derives it from the scan code, but Wine (8.0) takes `wVk` as
        // given, so a 0 there reaches the POS as `WM_KEYDOWN` VK 0 and no `WM_CHAR` at all. The
        // layout is the foreground thread's (the POS's), which is what Windows would use.
        let layout = unsafe {
            let fg = GetForegroundWindow();
            let tid = if fg.is_null() {
                0
            } else {
                GetWindowThreadProcessId(fg, std::ptr::null_mut())
            };
            GetKeyboardLayout(tid)
        };
        let inputs: Vec<INPUT> = keys
            .iter()
            .filter_map(|k| {
                let (scan, ext) = k.key.windows_scan()?;
                let mut flags = KEYEVENTF_SCANCODE;
                if ext {
                    flags |= KEYEVENTF_EXTENDEDKEY;
                }
                if !k.down {
                    flags |= KEYEVENTF_KEYUP;
                }
                let ext_scan = if ext { 0xE000 | scan as u32 } else { scan as u32 };
                let vk = unsafe { MapVirtualKeyExW(ext_scan, MAPVK_VSC_TO_VK_EX, layout) } as u16;
                Some(INPUT {
                    r#type: INPUT_KEYBOARD,
                    Anonymous: INPUT_0 {
                        ki: KEYBDINPUT {
                            wVk: vk,
                            wScan: scan,
                            dwFlags: flags,
                            time: 0,
                            dwExtraInfo: REPLAY_TAG,
                        },
                    },
                })
            })
            .collect();
        if !inputs.is_empty() {
            let sent = unsafe {
                SendInput(
                    inputs.len() as u32,
                    inputs.as_ptr(),
                    std::mem::size_of::<INPUT>() as i32,
                )
            };
            if sent as usize != inputs.len() {
                tracing::error!(
                    "SendInput replayed {sent} of {} keys: {}",
                    inputs.len(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

impl KeySource for RawInputSource {
    fn kind(&self) -> &'static str {
        "rawinput"
    }

    fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<SourceEvent>> {
        let deadline = Instant::now() + timeout;
        self.keep_registration();
        loop {
            while let Some(r) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
                if let Some(ev) = self.convert(r) {
                    return Ok(Some(ev));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.pump(left);
        }
    }

    fn now_ms(&self) -> u64 {
        match self.clock {
            Some((t, at)) => t + at.elapsed().as_millis() as u64,
            None => 0,
        }
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        self.devices.clone()
    }

    fn execute(&mut self, action: &Action) {
        if let Action::Replay(keys) = action {
            if self.intercept {
                Self::send(keys);
            }
        }
    }
}

impl Drop for RawInputSource {
    fn drop(&mut self) {
        unsafe {
            if !self.hook.is_null() {
                UnhookWindowsHookEx(self.hook);
            }
            windows_sys::Win32::UI::WindowsAndMessaging::DestroyWindow(self.hwnd);
        }
    }
}
