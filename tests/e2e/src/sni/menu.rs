//! The host's client for an item's menu (`com.canonical.dbusmenu`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use zbus::zvariant::{OwnedValue, Structure, Value};

use crate::error::{Error, Result, timeout};

/// The menu interface.
const MENU_INTERFACE: &str = "com.canonical.dbusmenu";

/// How often [`Menu::wait_until`] re-reads the layout without a signal.
const POLL: Duration = Duration::from_millis(100);

/// One entry of a menu, with its submenu, as `GetLayout` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    /// The id to click it with ([`Menu::click`]); the root is 0.
    pub id: i32,
    /// `label` with its mnemonic marks taken out (`_Pause` is `Pause`,
    /// `__` is `_`): the text a user reads.
    pub label: String,
    /// `enabled` (default true): a user can click it.
    pub enabled: bool,
    /// `visible` (default true): a user can see it.
    pub visible: bool,
    /// `type`: `standard` (the default) or `separator`.
    pub kind: String,
    /// `toggle-type`: `checkmark`, `radio`, or empty for a plain entry.
    pub toggle_type: String,
    /// `toggle-state`: 1 checked, 0 not, -1 unknown; `None` when not sent.
    pub toggle_state: Option<i32>,
    /// The entries of its submenu, in order.
    pub children: Vec<MenuEntry>,
}

impl MenuEntry {
    /// The first entry, this one or below it (depth first), whose label is
    /// `label` (mnemonics removed).
    pub fn find(&self, label: &str) -> Option<&MenuEntry> {
        self.find_by(&|e| e.label == label)
    }

    /// The entry with id `id`, this one or below it.
    pub fn find_id(&self, id: i32) -> Option<&MenuEntry> {
        self.find_by(&|e| e.id == id)
    }

    fn find_by(&self, matches: &dyn Fn(&MenuEntry) -> bool) -> Option<&MenuEntry> {
        if matches(self) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_by(matches))
    }

    /// The labels a user sees in this entry's submenu, in order: visible
    /// entries only, separators as `---`.
    pub fn visible_labels(&self) -> Vec<String> {
        self.children
            .iter()
            .filter(|c| c.visible)
            .map(|c| {
                if c.is_separator() {
                    "---".to_owned()
                } else {
                    c.label.clone()
                }
            })
            .collect()
    }

    /// Whether this is a separator line.
    pub fn is_separator(&self) -> bool {
        self.kind == "separator"
    }

    /// Whether the entry is checked (a checkmark or radio entry that is
    /// on).
    pub fn is_checked(&self) -> bool {
        self.toggle_state == Some(1)
    }

    /// Reads a `(ia{sv}av)` layout node and its children.
    fn parse(value: &Value<'_>) -> Result<Self> {
        let bad = |why: &str| Error::Protocol(format!("dbusmenu layout: {why}: {value}"));
        let value = match value {
            Value::Value(inner) => inner.as_ref(),
            other => other,
        };
        let Value::Structure(node) = value else {
            return Err(bad("not a structure"));
        };
        let [Value::I32(id), Value::Dict(props), Value::Array(children)] = node.fields() else {
            return Err(bad("not (ia{sv}av)"));
        };
        let props: HashMap<String, OwnedValue> = HashMap::try_from(props.try_clone()?)?;
        let string = |name: &str| match props.get(name).map(|v| &**v) {
            Some(Value::Str(s)) => s.as_str().to_owned(),
            _ => String::new(),
        };
        let boolean = |name: &str| match props.get(name).map(|v| &**v) {
            Some(Value::Bool(b)) => *b,
            _ => true,
        };
        let kind = match string("type") {
            k if k.is_empty() => "standard".to_owned(),
            k => k,
        };
        let toggle_state = match props.get("toggle-state").map(|v| &**v) {
            Some(Value::I32(s)) => Some(*s),
            _ => None,
        };
        Ok(Self {
            id: *id,
            label: without_mnemonics(&string("label")),
            enabled: boolean("enabled"),
            visible: boolean("visible"),
            kind,
            toggle_type: string("toggle-type"),
            toggle_state,
            children: children.iter().map(Self::parse).collect::<Result<_>>()?,
        })
    }
}

/// `label` as shown: `_x` is `x` (the underscore marks the access key),
/// `__` is `_`.
fn without_mnemonics(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        if c == '_' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A tray host's client for an item's menu: reads the layout and clicks
/// entries as a user would through the tray.
#[derive(Debug, Clone)]
pub struct Menu {
    /// The host's connection.
    conn: zbus::Connection,
    /// `com.canonical.dbusmenu` at the item's menu path.
    proxy: zbus::Proxy<'static>,
}

impl Menu {
    /// A client on `conn` for the menu at `path` on `bus_name`.
    pub async fn connect(conn: &zbus::Connection, bus_name: &str, path: &str) -> Result<Self> {
        let proxy = zbus::proxy::Builder::new(conn)
            .destination(bus_name.to_owned())?
            .path(path.to_owned())?
            .interface(MENU_INTERFACE)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        Ok(Self {
            conn: conn.clone(),
            proxy,
        })
    }

    /// The whole menu now, as a host reads it on opening: `AboutToShow(0)`
    /// (the app may update the menu then), then `GetLayout(0, -1, [])`.
    /// The root entry's children are the menu's entries.
    pub async fn layout(&self) -> Result<MenuEntry> {
        // Its answer (whether the layout changed) does not matter: the
        // layout is read in full next.
        let _: bool = self.proxy.call("AboutToShow", &(0i32,)).await?;
        let reply = self
            .proxy
            .call_method("GetLayout", &(0i32, -1i32, Vec::<&str>::new()))
            .await?;
        // `u(ia{sv}av)`: the layout nests through variants, so it is read
        // as values, not as one Rust type.
        let body = reply.body();
        let reply: Structure<'_> = body.deserialize()?;
        match reply.fields() {
            [Value::U32(_revision), root] => MenuEntry::parse(root),
            _ => Err(Error::Protocol(format!(
                "GetLayout answered {}, not u(ia{{sv}}av)",
                body.signature()
            ))),
        }
    }

    /// Clicks entry `id` as a host does when the user picks it: tells the
    /// app its menu opens (`AboutToShow(0)`), then sends
    /// `Event(id, "clicked", 0, time)`. Does not check the entry exists or
    /// is enabled; [`click_label`](Self::click_label) does.
    pub async fn click(&self, id: i32) -> Result<()> {
        let _: bool = self.proxy.call("AboutToShow", &(0i32,)).await?;
        self.clicked(id).await
    }

    /// Sends the click on `id` of a menu that is open.
    async fn clicked(&self, id: i32) -> Result<()> {
        // Hosts send the X server time; any increasing time will do.
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let () = self
            .proxy
            .call("Event", &(id, "clicked", Value::I32(0), timestamp))
            .await?;
        Ok(())
    }

    /// Clicks the entry labelled `label` (mnemonics removed) in the menu as
    /// it is now, and returns it. Fails if there is none, or if a user
    /// could not click it: disabled, hidden, a separator or a submenu.
    pub async fn click_label(&self, label: &str) -> Result<MenuEntry> {
        let root = self.layout().await?;
        let entry = root.find(label).ok_or_else(|| {
            Error::Menu(format!(
                "no entry {label:?}; the menu shows {:?}",
                root.visible_labels()
            ))
        })?;
        let unclickable = if !entry.visible {
            Some("hidden")
        } else if !entry.enabled {
            Some("disabled")
        } else if entry.is_separator() {
            Some("a separator")
        } else if !entry.children.is_empty() {
            Some("a submenu")
        } else {
            None
        };
        if let Some(why) = unclickable {
            return Err(Error::Menu(format!("entry {label:?} is {why}: {entry:?}")));
        }
        // The menu is open: `layout` sent its AboutToShow.
        self.clicked(entry.id).await?;
        Ok(entry.clone())
    }

    /// Waits until `check` accepts the menu's layout: re-read on every
    /// `LayoutUpdated` or `ItemsPropertiesUpdated` signal and every 100 ms
    /// (a user reopening the menu sees the new layout even if a signal was
    /// missed). Fails after `limit` with `what` and the last layout.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&MenuEntry) -> bool,
    ) -> Result<MenuEntry> {
        let deadline = tokio::time::Instant::now() + limit;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(self.proxy.destination().to_owned())?
            .path(self.proxy.path().to_owned())?
            .interface(MENU_INTERFACE)?
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &self.conn, None).await?;
        loop {
            let root = self.layout().await?;
            if check(&root) {
                return Ok(root);
            }
            tokio::select! {
                _ = signals.next() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(timeout(what, limit, Some(format!("{root:?}"))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without_mnemonics;

    #[test]
    fn mnemonic_marks_are_taken_out_and_double_underscores_kept_once() {
        assert_eq!(without_mnemonics("_Pause recording"), "Pause recording");
        assert_eq!(without_mnemonics("snake__case"), "snake_case");
        assert_eq!(without_mnemonics("Quit"), "Quit");
        assert_eq!(without_mnemonics("trailing_"), "trailing");
    }
}
