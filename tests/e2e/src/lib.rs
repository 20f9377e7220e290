//! End-to-end test fixtures for the Deskrec desktop app on Linux: the
//! parts of a desktop session the tray app talks to, on a private D-Bus
//! session bus, so a test sees the real tray icon, its menu and its
//! notifications as a user's desktop would.
//!
//! - [`PrivateBus`]: a real `dbus-daemon` for one test; its
//!   [`address`](PrivateBus::address) goes into the app's
//!   `DBUS_SESSION_BUS_ADDRESS`.
//! - [`Watcher`]: the tray (`org.kde.StatusNotifierWatcher` and a host):
//!   apps register their tray items with it.
//! - [`Item`]: one tray item as the tray sees it: id, title, status, icon
//!   ([`ItemState::icon`]), tooltip; waits for its changes.
//! - [`Menu`]: the item's menu (`com.canonical.dbusmenu`): its entries
//!   ([`MenuEntry`]) and clicks on them.
//! - [`Notifications`]: a notification server that records what the app
//!   shows.
//!
//! Everything runs on tokio; every wait takes a time limit and fails with
//! a message naming what it waited for and the last state it saw.
//!
//! ```no_run
//! # async fn example() -> deskrec_e2e::Result<()> {
//! use std::time::Duration;
//! use deskrec_e2e::{Notifications, PrivateBus, Watcher};
//!
//! let bus = PrivateBus::start()?;
//! let tray = Watcher::start(&bus).await?;
//! let notifications = Notifications::start(&bus).await?;
//! let mut app = std::process::Command::new("deskrec-tray");
//! let _app = bus.configure(&mut app).env("DISPLAY", ":99").spawn();
//!
//! let item = tray.item(&tray.wait_for_item(Duration::from_secs(20)).await?).await?;
//! let menu = item.menu().await?;
//! menu.click_label("Pause recording").await?;
//! item.wait_until(Duration::from_secs(5), "the paused icon", |s| s.icon_name.contains("paused"))
//!     .await?;
//! notifications
//!     .wait_for(Duration::from_secs(5), "a pause notice", |n| n.summary.contains("paused"))
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `bus.rs`: [`PrivateBus`], the `dbus-daemon` process.
//! - `sni/mod.rs`: [`Watcher`], the StatusNotifierWatcher and host, and
//!   [`ItemAddress`].
//! - `sni/item.rs`: [`Item`], [`ItemState`], [`Icon`]: the item client.
//! - `sni/menu.rs`: [`Menu`], [`MenuEntry`]: the dbusmenu client.
//! - `notify.rs`: [`Notifications`], [`Notification`]: the notification
//!   server.
//! - `wait.rs`: waiting on recorded state with a deadline.
//! - `error.rs`: [`Error`].

#![deny(missing_docs)]

mod bus;
mod error;
mod notify;
mod sni;
mod wait;

pub use bus::{METHOD_TIMEOUT, PrivateBus, SESSION_BUS_VARIABLE};
pub use error::{Error, Result};
pub use notify::{
    CAPABILITIES, NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, Notification, Notifications,
};
pub use sni::{
    DEFAULT_ITEM_PATH, Icon, Item, ItemAddress, ItemState, Menu, MenuEntry, Pixmap, ToolTip,
    WATCHER_NAME, WATCHER_PATH, Watcher,
};
