//! Where the tray icon lives.
//!
//! - Linux: a StatusNotifierItem with a `com.canonical.dbusmenu` menu on the session D-Bus (ksni,
//!   pure Rust on zbus; no GTK). A thread of its own runs a single-threaded tokio runtime with
//!   the item's D-Bus connection; updates reach it through a channel. The item registers with
//!   the `org.kde.StatusNotifierWatcher` (the panel's tray host); a watcher that appears later
//!   (the panel started after the agent) gets it then.
//! - Windows: tray-icon (`Shell_NotifyIcon` + a Win32 popup menu) on the main thread, whose winit
//!   loop pumps its messages.
//!
//! Either way a menu click calls `on_menu(id)` with the entry's id.

/// One entry of the tray menu.
#[derive(Clone, Debug)]
pub struct MenuEntry {
    pub id: &'static str,
    pub label: String,
    /// A separator line above this entry.
    pub separator_before: bool,
}

/// What the icon shows: a square RGBA image (`size`×`size`, row by row) and the tooltip, whose
/// first line is its title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayLook {
    pub rgba: Vec<u8>,
    pub size: u32,
    pub tooltip: String,
}

pub type OnMenu = std::sync::Arc<dyn Fn(String) + Send + Sync>;

pub struct TrayHost {
    #[cfg(target_os = "linux")]
    inner: sni::SniTray,
    #[cfg(windows)]
    inner: win::WinTray,
}

impl TrayHost {
    /// Show the icon with `menu` and `look`; menu clicks call `on_menu(id)`.
    pub fn start(menu: Vec<MenuEntry>, look: TrayLook, on_menu: OnMenu) -> anyhow::Result<TrayHost> {
        #[cfg(target_os = "linux")]
        {
            Ok(TrayHost {
                inner: sni::SniTray::start(menu, look, on_menu)?,
            })
        }
        #[cfg(windows)]
        {
            Ok(TrayHost {
                inner: win::WinTray::start(menu, look, on_menu)?,
            })
        }
        #[cfg(not(any(target_os = "linux", windows)))]
        {
            let _ = (menu, look, on_menu);
            anyhow::bail!("no tray icon on this OS")
        }
    }

    /// Show a new icon / tooltip.
    pub fn set(&mut self, look: TrayLook) {
        #[cfg(any(target_os = "linux", windows))]
        self.inner.set(look);
        #[cfg(not(any(target_os = "linux", windows)))]
        let _ = look;
    }
}

#[cfg(target_os = "linux")]
mod sni {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use ksni::TrayMethods;

    use super::{MenuEntry, OnMenu, TrayLook};

    /// The item's state as the D-Bus side reads it.
    struct Item {
        menu: Vec<MenuEntry>,
        look: TrayLook,
        on_menu: OnMenu,
        /// Registered with a StatusNotifierWatcher now (logged when it changes).
        watched: Arc<AtomicBool>,
    }

    /// RGBA rows → the ARGB32 (network byte order) pixmap the StatusNotifierItem spec wants.
    pub(super) fn argb(look: &TrayLook) -> ksni::Icon {
        let data = look
            .rgba
            .chunks_exact(4)
            .flat_map(|p| [p[3], p[0], p[1], p[2]])
            .collect();
        ksni::Icon {
            width: look.size as i32,
            height: look.size as i32,
            data,
        }
    }

    impl ksni::Tray for Item {
        // A left click opens the menu too (as on Windows).
        const MENU_ON_ACTIVATE: bool = true;

        fn id(&self) -> String {
            "till-agent".into()
        }

        fn title(&self) -> String {
            "till-agent".into()
        }

        fn category(&self) -> ksni::Category {
            ksni::Category::ApplicationStatus
        }

        fn icon_pixmap(&self) -> Vec<ksni::Icon> {
            vec![argb(&self.look)]
        }

        fn tool_tip(&self) -> ksni::ToolTip {
            let (title, description) = self.look.tooltip.split_once('\n').unwrap_or((&self.look.tooltip, ""));
            ksni::ToolTip {
                title: title.into(),
                description: description.into(),
                ..Default::default()
            }
        }

        fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
            let mut items = Vec::with_capacity(self.menu.len() + 3);
            for e in &self.menu {
                if e.separator_before {
                    items.push(ksni::MenuItem::Separator);
                }
                let id = e.id;
                items.push(
                    ksni::menu::StandardItem {
                        label: e.label.clone(),
                        activate: Box::new(move |item: &mut Item| (item.on_menu)(id.to_string())),
                        ..Default::default()
                    }
                    .into(),
                );
            }
            items
        }

        fn watcher_online(&self) {
            if !self.watched.swap(true, Ordering::Relaxed) {
                tracing::info!("tray: a StatusNotifierWatcher appeared on the session bus; the icon is registered");
            }
        }

        fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
            // Keep serving: a panel that (re)starts later gets the item again.
            self.watched.store(false, Ordering::Relaxed);
            tracing::info!(
                "tray: no StatusNotifierWatcher on the session bus ({}); the icon shows once a tray host runs",
                match reason {
                    ksni::OfflineReason::No => "it went away".to_string(),
                    ksni::OfflineReason::Error(e) => e.to_string(),
                    _ => "unknown reason".to_string(),
                }
            );
            true
        }
    }

    pub struct SniTray {
        tx: Option<tokio::sync::mpsc::UnboundedSender<TrayLook>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl SniTray {
        pub fn start(menu: Vec<MenuEntry>, look: TrayLook, on_menu: OnMenu) -> anyhow::Result<SniTray> {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TrayLook>();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
            let thread = std::thread::Builder::new().name("tray-dbus".into()).spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("tray runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let watched = Arc::new(AtomicBool::new(true));
                    let item = Item {
                        menu,
                        look,
                        on_menu,
                        watched: watched.clone(),
                    };
                    // assume_sni_available: no watcher yet is not an error (see `watcher_offline`).
                    let handle = match item.assume_sni_available(true).spawn().await {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready_tx.send(Err(match e {
                                ksni::Error::Dbus(e) => {
                                    anyhow::anyhow!("no D-Bus session bus for the StatusNotifierItem: {e}")
                                }
                                e => anyhow::anyhow!("StatusNotifierItem: {e}"),
                            }));
                            return;
                        }
                    };
                    if watched.load(Ordering::Relaxed) {
                        tracing::info!(
                            "tray: StatusNotifierItem registered with the session bus's StatusNotifierWatcher"
                        );
                    }
                    let _ = ready_tx.send(Ok(()));
                    while let Some(mut look) = rx.recv().await {
                        // Only the newest of several queued looks matters.
                        while let Ok(newer) = rx.try_recv() {
                            look = newer;
                        }
                        if handle.update(move |item| item.look = look).await.is_none() {
                            tracing::warn!("tray: the StatusNotifierItem service ended");
                            return;
                        }
                    }
                    handle.shutdown().await;
                });
            })?;
            match ready_rx.recv() {
                Ok(Ok(())) => Ok(SniTray {
                    tx: Some(tx),
                    thread: Some(thread),
                }),
                Ok(Err(e)) => {
                    let _ = thread.join();
                    Err(e)
                }
                Err(_) => {
                    let _ = thread.join();
                    Err(anyhow::anyhow!("tray thread ended before starting"))
                }
            }
        }

        pub fn set(&mut self, look: TrayLook) {
            if let Some(tx) = &self.tx {
                let _ = tx.send(look);
            }
        }
    }

    impl Drop for SniTray {
        fn drop(&mut self) {
            // Closing the channel ends the thread's loop; it takes the item off the bus.
            self.tx = None;
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_pixmap_is_argb_in_network_order() {
            let look = super::TrayLook {
                rgba: vec![1, 2, 3, 4, 5, 6, 7, 8],
                size: 1,
                tooltip: String::new(),
            };
            assert_eq!(super::argb(&look).data, vec![4, 1, 2, 3, 8, 5, 6, 7]);
        }
    }
}

#[cfg(windows)]
mod win {
    use tray_icon::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
    use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

    use super::{MenuEntry, OnMenu, TrayLook};

    pub struct WinTray {
        icon: TrayIcon,
    }

    fn icon(look: &TrayLook) -> anyhow::Result<Icon> {
        Ok(Icon::from_rgba(look.rgba.clone(), look.size, look.size)?)
    }

    impl WinTray {
        pub fn start(entries: Vec<MenuEntry>, look: TrayLook, on_menu: OnMenu) -> anyhow::Result<WinTray> {
            MenuEvent::set_event_handler(Some(move |e: MenuEvent| on_menu(e.id.0.clone())));
            let menu = Menu::new();
            for e in &entries {
                if e.separator_before {
                    menu.append(&PredefinedMenuItem::separator())?;
                }
                menu.append(&MenuItem::with_id(e.id, &e.label, true, None))?;
            }
            let icon = TrayIconBuilder::new()
                .with_id("till-agent")
                .with_menu(Box::new(menu))
                .with_tooltip(&look.tooltip)
                .with_icon(icon(&look)?)
                .build()?;
            Ok(WinTray { icon })
        }

        pub fn set(&mut self, look: TrayLook) {
            if let Ok(i) = icon(&look) {
                let _ = self.icon.set_icon(Some(i));
            }
            let _ = self.icon.set_tooltip(Some(look.tooltip));
        }
    }
}
