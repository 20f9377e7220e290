//! The tray host's side of the StatusNotifierItem protocol (KDE's, which
//! libayatana-appindicator, and so Tauri's tray icon on Linux, speaks).
//!
//! A desktop's tray has a *watcher* (`org.kde.StatusNotifierWatcher`) that
//! apps register their tray *items* with, and a *host* that shows each
//! item: it reads the item's properties (`org.kde.StatusNotifierItem`),
//! re-reads them when the item signals a change, and shows its menu
//! (`com.canonical.dbusmenu`). [`Watcher`] is both, on a
//! [`PrivateBus`](crate::PrivateBus); [`Item`] and [`Menu`] are the host's
//! view of one item.

mod item;
mod menu;

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::bus::PrivateBus;
use crate::error::Result;
use crate::wait::watch_until;

pub use item::{Icon, Item, ItemState, Pixmap, ToolTip};
pub use menu::{Menu, MenuEntry};

/// The watcher's well-known bus name, which apps look for.
pub const WATCHER_NAME: &str = "org.kde.StatusNotifierWatcher";
/// The object path of the watcher.
pub const WATCHER_PATH: &str = "/StatusNotifierWatcher";
/// The object path of an item that registered with its bus name only.
pub const DEFAULT_ITEM_PATH: &str = "/StatusNotifierItem";

/// Where a registered tray item is served: a bus name (usually the app's
/// unique connection name, `:1.42`) and an object path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemAddress {
    /// The connection serving the item.
    pub bus_name: String,
    /// The item's object path.
    pub path: String,
}

impl ItemAddress {
    /// The address for a `RegisterStatusNotifierItem(service)` call sent by
    /// `sender`. `service` is either an object path (libappindicator: the
    /// item is at that path on the sender's connection) or a bus name (the
    /// item is at [`DEFAULT_ITEM_PATH`] there), as KDE's watcher reads it.
    pub fn from_registration(service: &str, sender: &str) -> Self {
        if service.starts_with('/') {
            Self {
                bus_name: sender.to_owned(),
                path: service.to_owned(),
            }
        } else {
            Self {
                bus_name: service.to_owned(),
                path: DEFAULT_ITEM_PATH.to_owned(),
            }
        }
    }

    /// The item's entry in `RegisteredStatusNotifierItems` and in the
    /// watcher's signals: the bus name followed by the path.
    pub fn service(&self) -> String {
        format!("{}{}", self.bus_name, self.path)
    }
}

/// What the watcher has been told, shared with its D-Bus interface.
#[derive(Debug, Default)]
struct Registry {
    /// Items in the order they registered; an item leaves when its
    /// connection leaves the bus.
    items: Vec<ItemAddress>,
    /// Bus names of registered hosts (the watcher's own first).
    hosts: Vec<String>,
}

/// A tray host on a private bus: owns `org.kde.StatusNotifierWatcher`,
/// takes apps' item registrations and reads the items, as a desktop's tray
/// does.
///
/// It registers itself as a host, so an app asking
/// `IsStatusNotifierHostRegistered` is told a tray is there. Items are
/// forgotten (and `StatusNotifierItemUnregistered` sent) when the app's
/// connection leaves the bus, e.g. when the app exits. Dropping the
/// watcher stops serving.
#[derive(Debug)]
pub struct Watcher {
    /// The connection that owns the watcher's name and serves it; items
    /// and menus are read through it too.
    conn: zbus::Connection,
    /// The registry, changed by the D-Bus interface and the task below.
    registry: watch::Receiver<Registry>,
    /// Forgets items whose connection left the bus; aborted on drop.
    reaper: tokio::task::JoinHandle<()>,
}

/// The `org.kde.StatusNotifierWatcher` interface.
struct WatcherInterface {
    registry: watch::Sender<Registry>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl WatcherInterface {
    /// An app registers its item: `service` is its object path or its bus
    /// name.
    async fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<()> {
        let sender = header
            .sender()
            .ok_or_else(|| zbus::fdo::Error::InvalidArgs("no sender".into()))?;
        let address = ItemAddress::from_registration(service, sender.as_str());
        let service = address.service();
        self.registry.send_if_modified(|r| {
            let new = !r.items.contains(&address);
            if new {
                r.items.push(address);
            }
            new
        });
        Self::status_notifier_item_registered(&emitter, &service).await?;
        Ok(())
    }

    /// Another host registers (there is one already: the watcher).
    async fn register_status_notifier_host(
        &self,
        service: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<()> {
        self.registry
            .send_modify(|r| r.hosts.push(service.to_owned()));
        Self::status_notifier_host_registered(&emitter).await?;
        Ok(())
    }

    #[zbus(property)]
    async fn registered_status_notifier_items(&self) -> Vec<String> {
        self.registry
            .borrow()
            .items
            .iter()
            .map(ItemAddress::service)
            .collect()
    }

    #[zbus(property)]
    async fn is_status_notifier_host_registered(&self) -> bool {
        !self.registry.borrow().hosts.is_empty()
    }

    #[zbus(property)]
    async fn protocol_version(&self) -> i32 {
        0
    }

    #[zbus(signal)]
    async fn status_notifier_item_registered(
        emitter: &SignalEmitter<'_>,
        service: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn status_notifier_item_unregistered(
        emitter: &SignalEmitter<'_>,
        service: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn status_notifier_host_registered(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

impl Watcher {
    /// Starts the watcher (and host) on `bus`. Fails if another watcher
    /// owns the name there.
    pub async fn start(bus: &PrivateBus) -> Result<Self> {
        let host = format!("org.kde.StatusNotifierHost-{}", std::process::id());
        let (tx, registry) = watch::channel(Registry {
            items: Vec::new(),
            hosts: vec![host.clone()],
        });
        let conn = bus
            .builder()?
            .serve_at(
                WATCHER_PATH,
                WatcherInterface {
                    registry: tx.clone(),
                },
            )?
            .build()
            .await?;
        // The reaper listens before the names are taken, so no item can
        // register and leave unseen.
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let mut owners = dbus.receive_name_owner_changed().await?;
        conn.request_name(host.as_str()).await?;
        conn.request_name(WATCHER_NAME).await?;
        let emitter = SignalEmitter::new(&conn, WATCHER_PATH)?.into_owned();
        let reaper = tokio::spawn(async move {
            while let Some(change) = owners.next().await {
                let Ok(args) = change.args() else { continue };
                if args.new_owner().is_some() {
                    continue;
                }
                let gone = args.name().as_str();
                let mut left = Vec::new();
                tx.send_if_modified(|r| {
                    r.items.retain(|item| {
                        let keep = item.bus_name != gone;
                        if !keep {
                            left.push(item.service());
                        }
                        keep
                    });
                    r.hosts.retain(|h| h != gone);
                    !left.is_empty()
                });
                for service in left {
                    // The bus is going away if this fails; nothing to tell.
                    let _ = WatcherInterface::status_notifier_item_unregistered(&emitter, &service)
                        .await;
                }
            }
        });
        Ok(Self {
            conn,
            registry,
            reaper,
        })
    }

    /// The watcher's connection (the host's view of the bus).
    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    /// The items registered now, oldest first.
    pub fn items(&self) -> Vec<ItemAddress> {
        self.registry.borrow().items.clone()
    }

    /// Waits up to `limit` for an item to be registered, and returns the
    /// first one: the usual start of a tray test.
    pub async fn wait_for_item(&self, limit: Duration) -> Result<ItemAddress> {
        let items = self
            .wait_for_items(limit, "a tray item to register", |items| !items.is_empty())
            .await?;
        Ok(items[0].clone())
    }

    /// Waits up to `limit` until the registered items satisfy `check` (e.g.
    /// none left after the app quit) and returns them; `what` describes the
    /// wait for the timeout message.
    pub async fn wait_for_items(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&[ItemAddress]) -> bool,
    ) -> Result<Vec<ItemAddress>> {
        let mut rx = self.registry.clone();
        watch_until(
            &mut rx,
            limit,
            what,
            |r| check(&r.items).then(|| r.items.clone()),
            |r| format!("{:?}", r.items),
        )
        .await
    }

    /// The host's client for a registered item.
    pub async fn item(&self, address: &ItemAddress) -> Result<Item> {
        Item::connect(&self.conn, address.clone()).await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}
