//! A desktop notification ("balloon") for a problem the cashier or support should see even with
//! the tray out of sight (the session app cannot reach the till-agent service, or the service
//! could not start). tray-icon has no balloon API, so: on Windows a notification-area icon of our
//! own (`Shell_NotifyIconW` with `NIF_INFO`, an error balloon; on Windows 10+ shown as a toast)
//! that is removed again after 20 s; on Linux a freedesktop notification
//! (`org.freedesktop.Notifications.Notify` over the session D-Bus, through zbus like the tray's
//! StatusNotifierItem). The caller decides when (once per distinct reason); this only shows.

/// Show `title` / `body`. Returns when the notification was handed over (Windows: the icon was
/// added; Linux: the notification server answered) or why it could not be.
pub fn show(title: &str, body: &str) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        linux(title, body)
    }
    #[cfg(windows)]
    {
        windows(title, body)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (title, body);
        Err("no desktop notifications on this OS".into())
    }
}

#[cfg(target_os = "linux")]
fn linux(title: &str, body: &str) -> Result<(), String> {
    // Called from a thread of its own (never inside the agent's runtime): a small runtime for the call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("notification runtime: {e}"))?;
    rt.block_on(async {
        let bus = zbus::Connection::session()
            .await
            .map_err(|e| format!("no D-Bus session bus: {e}"))?;
        notify_on(&bus, title, body).await
    })
}

#[cfg(target_os = "linux")]
async fn notify_on(bus: &zbus::Connection, title: &str, body: &str) -> Result<(), String> {
    use zbus::zvariant::Value;
    // Notify(app_name s, replaces_id u, app_icon s, summary s, body s, actions as, hints a{sv},
    // expire_timeout i) -> (id u)
    let hints: std::collections::HashMap<&str, Value> = [("urgency", Value::U8(2))].into();
    let args = (
        "till-agent",
        0u32,
        "dialog-error",
        title,
        body,
        Vec::<&str>::new(),
        hints,
        -1i32,
    );
    let call = bus.call_method(
        Some("org.freedesktop.Notifications"),
        "/org/freedesktop/Notifications",
        Some("org.freedesktop.Notifications"),
        "Notify",
        &args,
    );
    let reply = tokio::time::timeout(std::time::Duration::from_secs(5), call)
        .await
        .map_err(|_| "org.freedesktop.Notifications.Notify: no answer in 5 s".to_string())?
        .map_err(|e| format!("org.freedesktop.Notifications.Notify: {e}"))?;
    reply
        .body()
        .deserialize::<u32>()
        .map(|_| ())
        .map_err(|e| format!("org.freedesktop.Notifications.Notify: unexpected answer: {e}"))
}

#[cfg(windows)]
fn windows(title: &str, body: &str) -> Result<(), String> {
    use std::time::Duration;
    use windows_sys::Win32::UI::Shell::{
        Shell_NotifyIconW, NIF_ICON, NIF_INFO, NIF_TIP, NIIF_ERROR, NIM_ADD, NIM_DELETE, NOTIFYICONDATAW,
    };
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        CreateWindowExW, DestroyWindow, LoadIconW, HWND_MESSAGE, IDI_ERROR,
    };
    fn copy(dst: &mut [u16], s: &str) {
        // (truncated to the field, always NUL-terminated)
        let w: Vec<u16> = s.encode_utf16().take(dst.len() - 1).collect();
        dst[..w.len()].copy_from_slice(&w);
        dst[w.len()] = 0;
    }
    let (title, body) = (title.to_string(), body.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("balloon".into())
        .spawn(move || unsafe {
            // A message-only window owns the icon (nothing is drawn; no message loop needed).
            let class: Vec<u16> = "STATIC\0".encode_utf16().collect();
            let hwnd = CreateWindowExW(
                0,
                class.as_ptr(),
                std::ptr::null(),
                0,
                0,
                0,
                0,
                0,
                HWND_MESSAGE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            );
            if hwnd.is_null() {
                let _ = tx.send(Err(format!(
                    "CreateWindowExW(HWND_MESSAGE): {}",
                    std::io::Error::last_os_error()
                )));
                return;
            }
            let mut nid: NOTIFYICONDATAW = std::mem::zeroed();
            nid.cbSize = std::mem::size_of::<NOTIFYICONDATAW>() as u32;
            nid.hWnd = hwnd;
            nid.uID = 0x7a11;
            nid.uFlags = NIF_ICON | NIF_TIP | NIF_INFO;
            nid.hIcon = LoadIconW(std::ptr::null_mut(), IDI_ERROR);
            copy(&mut nid.szTip, "till-agent");
            copy(&mut nid.szInfoTitle, &title);
            copy(&mut nid.szInfo, &body);
            nid.dwInfoFlags = NIIF_ERROR;
            if Shell_NotifyIconW(NIM_ADD, &nid) == 0 {
                let _ = tx.send(Err(format!(
                    "Shell_NotifyIconW(NIM_ADD): {}",
                    std::io::Error::last_os_error()
                )));
                DestroyWindow(hwnd);
                return;
            }
            let _ = tx.send(Ok(()));
            std::thread::sleep(Duration::from_secs(20));
            Shell_NotifyIconW(NIM_DELETE, &nid);
            DestroyWindow(hwnd);
        })
        .map_err(|e| format!("cannot start the balloon thread: {e}"))?;
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the balloon thread did not answer".to_string())?
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// A private bus (dbus-daemon) watched by dbus-monitor: the Notify call goes out with the
    /// title and the reason. (No notification server owns the name there: the call itself is
    /// what is checked; its "not provided" answer is the expected error.)
    #[test]
    fn the_notify_call_reaches_the_session_bus() {
        let have = |t: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !have("dbus-daemon") || !have("dbus-monitor") {
            assert!(
                std::env::var_os("CI").is_none(),
                "dbus-daemon / dbus-monitor missing (scripts/setup.sh installs them) and CI is set"
            );
            eprintln!("SKIPPED: dbus-daemon / dbus-monitor not installed");
            return;
        }
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut addr = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut addr)
            .unwrap();
        let addr = addr.trim().to_string();
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("monitor.txt");
        let mut monitor = Command::new("dbus-monitor")
            .args(["--address", &addr, "interface='org.freedesktop.Notifications'"])
            .stdout(std::fs::File::create(&seen).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let read = || std::fs::read_to_string(&seen).unwrap_or_default();
        let t = Instant::now();
        while !read().contains("NameAcquired") && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            let bus = zbus::connection::Builder::address(addr.as_str())
                .unwrap()
                .build()
                .await
                .unwrap();
            super::notify_on(
                &bus,
                "Služba Till Agent neběží",
                "cannot connect to the till-agent service at /x.sock: Connection refused",
            )
            .await
        });
        let err = r.expect_err("no notification server on this private bus");
        assert!(err.contains("org.freedesktop.Notifications"), "{err}");
        let t = Instant::now();
        while !read().contains("Connection refused") && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = (monitor.kill(), daemon.kill(), monitor.wait(), daemon.wait());
        let got = read();
        assert!(got.contains("member=Notify"), "{got}");
        assert!(got.contains("string \"Služba Till Agent neběží\""), "{got}");
        assert!(
            got.contains("till-agent service at /x.sock: Connection refused"),
            "{got}"
        );
        assert!(got.contains("string \"urgency\""), "{got}");
    }
}
