//! The host's client for one tray item (`org.kde.StatusNotifierItem`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use super::ItemAddress;
use super::menu::Menu;
use crate::error::{Error, Result, timeout};

/// The item interface.
const ITEM_INTERFACE: &str = "org.kde.StatusNotifierItem";

/// How often [`Item::poll_until`] re-reads an item.
const POLL: Duration = Duration::from_millis(100);

/// One picture of an icon as the protocol sends it: ARGB32 pixels in
/// network byte order (A, R, G, B bytes), row by row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pixmap {
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// `width * height * 4` bytes, A R G B per pixel.
    pub argb: Vec<u8>,
}

/// An item's `ToolTip` property: `(icon name, icon pixmaps, title,
/// description)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolTip {
    /// A themed icon name for the tooltip (usually empty).
    pub icon_name: String,
    /// Pictures for the tooltip (usually none).
    pub icon_pixmap: Vec<Pixmap>,
    /// The tooltip's title: what a tray shows on hover.
    pub title: String,
    /// More text under the title.
    pub description: String,
}

/// Everything a tray host reads from an item to show it, read at one
/// moment. Properties the item does not have are empty (or `false`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemState {
    /// `Id`: the app's name for the item (libappindicator: the id given to
    /// `app_indicator_new`, Tauri: the tray icon's id).
    pub id: String,
    /// `Category`: `ApplicationStatus`, `Communications`, ...
    pub category: String,
    /// `Title`: the item's name for people.
    pub title: String,
    /// `Status`: `Passive`, `Active` or `NeedsAttention` (a tray may hide
    /// passive items).
    pub status: String,
    /// `IconName`: a theme icon name, or with `IconThemePath` the stem of a
    /// PNG file in that directory (how libayatana-appindicator shows an
    /// app's own pictures), or an absolute file path.
    pub icon_name: String,
    /// `IconThemePath`: a directory to look for `IconName` in first.
    pub icon_theme_path: String,
    /// `IconPixmap`: pictures sent inline (ksni, Qt; not libappindicator).
    pub icon_pixmap: Vec<Pixmap>,
    /// `AttentionIconName`: the icon for `NeedsAttention`.
    pub attention_icon_name: String,
    /// `ToolTip`.
    pub tool_tip: ToolTip,
    /// `Menu`: the object path of the item's dbusmenu, if it has one.
    pub menu: Option<String>,
    /// `ItemIsMenu`: a click shows the menu rather than activating.
    pub item_is_menu: bool,
}

/// The icon an item shows, found the way a host finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Icon {
    /// An image file: `IconThemePath/IconName.png` (or `IconName` itself
    /// when it is an absolute path), with its bytes.
    File {
        /// The file read.
        path: PathBuf,
        /// Its contents (PNG, as libappindicator writes them).
        bytes: Vec<u8>,
    },
    /// The largest picture in `IconPixmap`.
    Pixmap(Pixmap),
    /// A theme icon name with no file found for it: the desktop's icon
    /// theme would draw it.
    Themed(String),
    /// No icon at all: a tray would show a blank or broken item.
    None,
}

impl Icon {
    /// The icon's bytes to compare with a known picture: the file's
    /// contents or the pixmap's ARGB pixels; `None` for themed or no icon.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Icon::File { bytes, .. } => Some(bytes),
            Icon::Pixmap(p) => Some(&p.argb),
            Icon::Themed(_) | Icon::None => None,
        }
    }
}

impl ItemState {
    /// The icon shown now: a file when `IconName` names one (in
    /// `IconThemePath`, as `.png`, or as an absolute path), else the
    /// largest `IconPixmap`, else the theme name. A file named but not
    /// readable is an error (a tray would show a broken icon).
    pub fn icon(&self) -> Result<Icon> {
        if let Some(path) = self.icon_file() {
            return std::fs::read(&path)
                .map(|bytes| Icon::File {
                    path: path.clone(),
                    bytes,
                })
                .map_err(|source| Error::IconFile { path, source });
        }
        if let Some(largest) = self.icon_pixmap.iter().max_by_key(|p| p.width * p.height) {
            return Ok(Icon::Pixmap(largest.clone()));
        }
        if self.icon_name.is_empty() {
            Ok(Icon::None)
        } else {
            Ok(Icon::Themed(self.icon_name.clone()))
        }
    }

    /// The file `IconName` stands for, if it is one: an absolute path, or
    /// `<IconThemePath>/<IconName>.png` when that file exists.
    fn icon_file(&self) -> Option<PathBuf> {
        if self.icon_name.is_empty() {
            return None;
        }
        let name = Path::new(&self.icon_name);
        if name.is_absolute() {
            return Some(name.to_owned());
        }
        if self.icon_theme_path.is_empty() {
            return None;
        }
        let dir = Path::new(&self.icon_theme_path);
        let file = if name.extension().is_some() {
            dir.join(name)
        } else {
            dir.join(format!("{}.png", self.icon_name))
        };
        // A theme directory can hold themed names too (index.theme, sizes):
        // only a file right there is "this file".
        file.is_file().then_some(file)
    }

    /// Reads the state from `GetAll`'s answer.
    fn from_properties(props: &HashMap<String, OwnedValue>) -> Result<Self> {
        let tool_tip =
            match prop::<(String, Vec<(i32, i32, Vec<u8>)>, String, String)>(props, "ToolTip")? {
                Some((icon_name, pixmaps, title, description)) => ToolTip {
                    icon_name,
                    icon_pixmap: pixmaps.into_iter().map(pixmap).collect(),
                    title,
                    description,
                },
                None => ToolTip::default(),
            };
        let menu = prop::<OwnedObjectPath>(props, "Menu")?
            .map(|p| p.as_str().to_owned())
            .filter(|p| p != "/");
        Ok(Self {
            id: prop(props, "Id")?.unwrap_or_default(),
            category: prop(props, "Category")?.unwrap_or_default(),
            title: prop(props, "Title")?.unwrap_or_default(),
            status: prop(props, "Status")?.unwrap_or_default(),
            icon_name: prop(props, "IconName")?.unwrap_or_default(),
            icon_theme_path: prop(props, "IconThemePath")?.unwrap_or_default(),
            icon_pixmap: prop::<Vec<(i32, i32, Vec<u8>)>>(props, "IconPixmap")?
                .unwrap_or_default()
                .into_iter()
                .map(pixmap)
                .collect(),
            attention_icon_name: prop(props, "AttentionIconName")?.unwrap_or_default(),
            tool_tip,
            menu,
            item_is_menu: prop(props, "ItemIsMenu")?.unwrap_or_default(),
        })
    }
}

fn pixmap((width, height, argb): (i32, i32, Vec<u8>)) -> Pixmap {
    Pixmap {
        width,
        height,
        argb,
    }
}

/// Property `name` as a `T`, `None` when the item has no such property.
fn prop<T>(props: &HashMap<String, OwnedValue>, name: &str) -> Result<Option<T>>
where
    T: TryFrom<Value<'static>>,
    T::Error: std::fmt::Display,
{
    let Some(value) = props.get(name) else {
        return Ok(None);
    };
    let signature = value.value_signature().to_string();
    T::try_from(Value::from(value.clone()))
        .map(Some)
        .map_err(|e| Error::Protocol(format!("item property {name} ({signature}): {e}")))
}

/// A tray host's client for one registered item: reads its properties the
/// way a host does, waits for its changes, opens its menu.
///
/// Nothing is cached: each read asks the app.
#[derive(Debug, Clone)]
pub struct Item {
    /// Where the item is served.
    address: ItemAddress,
    /// The host's connection.
    conn: zbus::Connection,
    /// `org.freedesktop.DBus.Properties` on the item (the item interface's
    /// own properties are read through `GetAll`).
    properties: zbus::fdo::PropertiesProxy<'static>,
}

impl Item {
    /// A client on `conn` for the item at `address`. Does not call the
    /// item: a wrong address fails at the first read.
    pub async fn connect(conn: &zbus::Connection, address: ItemAddress) -> Result<Self> {
        let properties = zbus::fdo::PropertiesProxy::builder(conn)
            .destination(address.bus_name.clone())?
            .path(address.path.clone())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        Ok(Self {
            address,
            conn: conn.clone(),
            properties,
        })
    }

    /// Where the item is served.
    pub fn address(&self) -> &ItemAddress {
        &self.address
    }

    /// Reads every property now.
    pub async fn state(&self) -> Result<ItemState> {
        let interface = zbus::names::InterfaceName::from_static_str_unchecked(ITEM_INTERFACE);
        let props = self.properties.get_all(interface).await?;
        ItemState::from_properties(&props)
    }

    /// Waits, as a tray host does, until `check` accepts the item's state:
    /// reads it now, then again only when the item signals a change
    /// (`NewIcon`, `NewToolTip`, `NewStatus`, `NewTitle`, ...). So a change
    /// the app makes without its signal times out here, as it would stay
    /// unseen in a real tray; [`poll_until`](Self::poll_until) does not
    /// depend on signals.
    ///
    /// Fails after `limit` with `what` and the last state in the message.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        check: impl FnMut(&ItemState) -> bool,
    ) -> Result<ItemState> {
        self.wait(limit, what, check, None).await
    }

    /// Waits until `check` accepts the item's state, re-reading it every
    /// 100 ms and on every signal; fails after `limit`.
    pub async fn poll_until(
        &self,
        limit: Duration,
        what: &str,
        check: impl FnMut(&ItemState) -> bool,
    ) -> Result<ItemState> {
        self.wait(limit, what, check, Some(POLL)).await
    }

    async fn wait(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&ItemState) -> bool,
        poll: Option<Duration>,
    ) -> Result<ItemState> {
        let deadline = tokio::time::Instant::now() + limit;
        // Subscribed before the first read, so no change falls in between.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(self.address.bus_name.as_str())?
            .path(self.address.path.as_str())?
            .interface(ITEM_INTERFACE)?
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &self.conn, None).await?;
        loop {
            let state = self.state().await?;
            if check(&state) {
                return Ok(state);
            }
            let next = tokio::time::Instant::now() + poll.unwrap_or(limit);
            tokio::select! {
                _ = signals.next() => {}
                _ = tokio::time::sleep_until(next.min(deadline)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(timeout(what, limit, Some(format!("{state:?}"))));
                    }
                }
            }
        }
    }

    /// The item's menu (from its `Menu` property), on the host's
    /// connection. An item without a menu is a [`Error::Menu`].
    pub async fn menu(&self) -> Result<Menu> {
        let path = self.state().await?.menu.ok_or_else(|| {
            Error::Menu(format!("the item {} has no menu", self.address.service()))
        })?;
        Menu::connect(&self.conn, &self.address.bus_name, &path).await
    }
}
