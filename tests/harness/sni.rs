//! A panel's tray host on a session bus, as the tests need one: it owns
//! `org.kde.StatusNotifierWatcher` (items register with it), reads a registered item's
//! StatusNotifierItem properties and its `com.canonical.dbusmenu` menu, and clicks a menu entry
//! (`Event "clicked"`), the way a desktop panel does. zbus on a runtime of its own.
use std::collections::HashMap;
use std::time::Duration;

use zbus::zvariant::{OwnedValue, Value};

struct Watcher {
    registered: tokio::sync::mpsc::UnboundedSender<(String, String)>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    async fn register_status_notifier_item(&self, #[zbus(header)] hdr: zbus::message::Header<'_>, service: String) {
        let sender = hdr.sender().map(|s| s.to_string()).unwrap_or_default();
        let _ = self.registered.send((sender, service));
    }

    async fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    async fn registered_status_notifier_items(&self) -> Vec<String> {
        Vec::new()
    }

    #[zbus(property)]
    async fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn protocol_version(&self) -> i32 {
        0
    }
}

/// One entry of an item's menu (`GetLayout`'s first level).
#[derive(Clone, Debug)]
pub struct MenuEntry {
    pub id: i32,
    /// Empty for a separator.
    pub label: String,
    pub separator: bool,
}

pub struct Panel {
    rt: tokio::runtime::Runtime,
    conn: zbus::Connection,
    registered: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
}

impl Panel {
    /// Connect to the bus at `address` and own `org.kde.StatusNotifierWatcher` there.
    pub fn start(address: &str) -> Panel {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, registered) = tokio::sync::mpsc::unbounded_channel();
        let conn = rt.block_on(async {
            zbus::connection::Builder::address(address)
                .unwrap()
                .serve_at("/StatusNotifierWatcher", Watcher { registered: tx })
                .unwrap()
                .name("org.kde.StatusNotifierWatcher")
                .unwrap()
                .build()
                .await
                .unwrap_or_else(|e| panic!("tray host on {address}: {e}"))
        });
        Panel { rt, conn, registered }
    }

    /// The next item that registers within `timeout`: (its sender's unique name, the service it
    /// named — a bus name, or an object path on the sender).
    pub fn next_item(&mut self, timeout: Duration) -> Option<(String, String)> {
        let registered = &mut self.registered;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, registered.recv()).await })
            .ok()
            .flatten()
    }

    fn call<B>(&self, dest: &str, path: &str, iface: &str, method: &str, body: &B) -> zbus::Result<zbus::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    self.conn.call_method(Some(dest), path, Some(iface), method, body),
                )
                .await
            })
            .unwrap_or_else(|_| panic!("{iface}.{method} on {dest}{path}: no answer in 10 s"))
    }

    /// A property of the item's `org.kde.StatusNotifierItem` at /StatusNotifierItem.
    pub fn item_property(&self, service: &str, name: &str) -> OwnedValue {
        let reply = self
            .call(
                service,
                "/StatusNotifierItem",
                "org.freedesktop.DBus.Properties",
                "Get",
                &("org.kde.StatusNotifierItem", name),
            )
            .unwrap_or_else(|e| panic!("StatusNotifierItem.{name} of {service}: {e}"));
        reply.body().deserialize::<OwnedValue>().unwrap()
    }

    /// The first level of the item's menu at `menu_path` (`GetLayout(0, 1, [])`).
    pub fn menu(&self, service: &str, menu_path: &str) -> Vec<MenuEntry> {
        type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);
        let reply = self
            .call(
                service,
                menu_path,
                "com.canonical.dbusmenu",
                "GetLayout",
                &(0i32, 1i32, Vec::<String>::new()),
            )
            .unwrap_or_else(|e| panic!("dbusmenu GetLayout of {service}{menu_path}: {e}"));
        let (_revision, (_root, _props, children)): (u32, Layout) = reply.body().deserialize().unwrap();
        children
            .iter()
            .map(|c| {
                let Value::Structure(s) = &**c else {
                    panic!("menu child is not a structure: {c:?}")
                };
                let f = s.fields();
                let Value::I32(id) = f[0] else {
                    panic!("menu child id: {:?}", f[0])
                };
                let props: HashMap<String, OwnedValue> = f[1].try_clone().unwrap().try_into().unwrap();
                let text = |k: &str| {
                    props
                        .get(k)
                        .and_then(|v| String::try_from(v.try_clone().unwrap()).ok())
                        .unwrap_or_default()
                };
                MenuEntry {
                    id,
                    label: text("label"),
                    separator: text("type") == "separator",
                }
            })
            .collect()
    }

    /// Click the menu entry `id` (dbusmenu `Event(id, "clicked", 0, timestamp)`).
    pub fn click(&self, service: &str, menu_path: &str, id: i32) {
        self.call(
            service,
            menu_path,
            "com.canonical.dbusmenu",
            "Event",
            &(id, "clicked", Value::I32(0), 0u32),
        )
        .unwrap_or_else(|e| panic!("dbusmenu Event clicked {id} on {service}{menu_path}: {e}"));
    }
}
