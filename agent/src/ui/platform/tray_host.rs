//! Where the tray icon lives. On Linux tray-icon needs a GTK main loop: it runs on its own thread
//! and updates reach it through `glib::MainContext::invoke`. Elsewhere (Windows) the icon lives
//! on the main thread, whose winit loop pumps its messages.
use tray_icon::TrayIcon;

pub struct TrayHost {
    #[cfg(not(target_os = "linux"))]
    icon: TrayIcon,
}

#[cfg(target_os = "linux")]
thread_local! {
    static GTK_TRAY: std::cell::RefCell<Option<TrayIcon>> = const { std::cell::RefCell::new(None) };
}

impl TrayHost {
    /// Build the icon with `build` where it has to live.
    pub fn start(build: impl FnOnce() -> anyhow::Result<TrayIcon> + Send + 'static) -> anyhow::Result<TrayHost> {
        #[cfg(target_os = "linux")]
        {
            // GDK 3 opens GLX when it opens the X display (to pick visuals for GL), which loads
            // mesa and its LLVM (~48 MiB resident) into a process that never draws with GL: the
            // tray icon is a status-notifier item and the windows are drawn on the CPU.
            // `GDK_GL=disable` (read once by gtk::init) skips that. An explicit setting is kept.
            if std::env::var_os("GDK_GL").is_none() {
                // SAFETY: set once, before GTK starts; the agent's other threads do not change
                // the environment, and std serialises its own readers with this write.
                unsafe { std::env::set_var("GDK_GL", "disable") };
            }
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new().name("tray-gtk".into()).spawn(move || {
                if let Err(e) = gtk::init() {
                    let _ = tx.send(Err(anyhow::anyhow!("GTK init failed: {e}")));
                    return;
                }
                match build() {
                    Ok(icon) => {
                        GTK_TRAY.with(|t| *t.borrow_mut() = Some(icon));
                        let _ = tx.send(Ok(()));
                        gtk::main();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
            rx.recv()
                .map_err(|_| anyhow::anyhow!("tray thread ended before starting"))??;
            Ok(TrayHost {})
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(TrayHost { icon: build()? })
        }
    }

    /// Run `f` on the icon, on the thread that owns it.
    pub fn with_icon(&self, f: impl FnOnce(&TrayIcon) + Send + 'static) {
        #[cfg(target_os = "linux")]
        gtk::glib::MainContext::default().invoke(move || {
            GTK_TRAY.with(|t| {
                if let Some(icon) = t.borrow().as_ref() {
                    f(icon);
                }
            })
        });
        #[cfg(not(target_os = "linux"))]
        f(&self.icon);
    }
}

impl Drop for TrayHost {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        gtk::glib::MainContext::default().invoke(|| {
            GTK_TRAY.with(|t| t.borrow_mut().take());
            gtk::main_quit();
        });
    }
}
