//! The fixtures against stand-ins: a tray item and its menu served here
//! with zbus on a second connection, as an app would serve them, so each
//! fixture is shown to see what a desktop's tray would see before the real
//! app is put in front of it.

#![cfg(target_os = "linux")]
// The stand-ins' D-Bus methods are generated undocumented.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deskrec_e2e::{
    DEFAULT_ITEM_PATH, Error, Icon, ItemAddress, PrivateBus, WATCHER_NAME, WATCHER_PATH, Watcher,
};
use futures_util::StreamExt;
use tokio::sync::watch;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// The limit for waits that should succeed at once.
const LIMIT: Duration = Duration::from_secs(10);
/// Where libayatana-appindicator serves an item (with the app's id).
const AYATANA_PATH: &str = "/org/ayatana/NotificationItem/deskrec";
const MENU_PATH: &str = "/MenuBar";

type Pixmaps = Vec<(i32, i32, Vec<u8>)>;

/// A tray item as an app serves it.
struct StandInItem {
    title: String,
    status: String,
    icon_name: String,
    icon_theme_path: String,
    icon_pixmap: Pixmaps,
    tool_tip: String,
}

#[zbus::interface(name = "org.kde.StatusNotifierItem")]
impl StandInItem {
    #[zbus(property)]
    async fn id(&self) -> &str {
        "deskrec"
    }
    #[zbus(property)]
    async fn category(&self) -> &str {
        "ApplicationStatus"
    }
    #[zbus(property)]
    async fn title(&self) -> String {
        self.title.clone()
    }
    #[zbus(property)]
    async fn status(&self) -> String {
        self.status.clone()
    }
    #[zbus(property)]
    async fn icon_name(&self) -> String {
        self.icon_name.clone()
    }
    #[zbus(property)]
    async fn icon_theme_path(&self) -> String {
        self.icon_theme_path.clone()
    }
    #[zbus(property)]
    async fn icon_pixmap(&self) -> Pixmaps {
        self.icon_pixmap.clone()
    }
    #[zbus(property)]
    async fn tool_tip(&self) -> (String, Pixmaps, String, String) {
        (
            String::new(),
            Vec::new(),
            self.tool_tip.clone(),
            String::new(),
        )
    }
    #[zbus(property)]
    async fn menu(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(MENU_PATH).unwrap()
    }
    #[zbus(property)]
    async fn item_is_menu(&self) -> bool {
        true
    }

    #[zbus(signal)]
    async fn new_icon(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn new_tool_tip(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn new_status(emitter: &SignalEmitter<'_>, status: &str) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn new_title(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

/// One entry of the stand-in menu.
#[derive(Clone)]
struct Entry {
    id: i32,
    props: Vec<(&'static str, Value<'static>)>,
    children: Vec<Entry>,
}

fn entry(id: i32, label: &'static str) -> Entry {
    Entry {
        id,
        props: vec![("label", Value::from(label))],
        children: Vec::new(),
    }
}

impl Entry {
    fn with(mut self, name: &'static str, value: impl Into<Value<'static>>) -> Self {
        self.props.push((name, value.into()));
        self
    }

    fn node(&self) -> (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>) {
        let props = self
            .props
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
            .collect();
        let children = self
            .children
            .iter()
            .map(|c| OwnedValue::try_from(Value::from(c.node())).unwrap())
            .collect();
        (self.id, props, children)
    }
}

/// The menu of the tray app, roughly: with a separator, a disabled entry, a
/// hidden one and a submenu.
fn app_menu() -> Entry {
    let mut more = entry(6, "_More");
    more.props
        .push(("children-display", Value::from("submenu")));
    more.children = vec![entry(7, "_About Deskrec")];
    let mut root = entry(0, "");
    root.props = vec![("children-display", Value::from("submenu"))];
    root.children = vec![
        entry(1, "_Pause recording"),
        Entry {
            id: 2,
            props: vec![("type", Value::from("separator"))],
            children: Vec::new(),
        },
        entry(3, "Sign _in").with("enabled", false),
        entry(4, "Debug").with("visible", false),
        entry(5, "Show _window")
            .with("toggle-type", "checkmark")
            .with("toggle-state", 1),
        more,
    ];
    root
}

/// A dbusmenu as an app serves it; records the calls a host makes.
struct StandInMenu {
    root: Entry,
    revision: u32,
    /// `AboutToShow(id)` as `(id, "about-to-show")`, `Event(id, kind)` as
    /// `(id, kind)`, in order.
    calls: watch::Sender<Vec<(i32, String)>>,
}

#[zbus::interface(name = "com.canonical.dbusmenu")]
impl StandInMenu {
    #[zbus(out_args("revision", "layout"))]
    async fn get_layout(
        &self,
        parent_id: i32,
        _recursion_depth: i32,
        _property_names: Vec<String>,
    ) -> zbus::fdo::Result<(u32, (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>))> {
        assert_eq!(parent_id, 0, "the fixture reads the whole menu");
        Ok((self.revision, self.root.node()))
    }

    async fn event(&self, id: i32, event_id: String, _data: OwnedValue, _timestamp: u32) {
        self.calls.send_modify(|c| c.push((id, event_id)));
    }

    async fn about_to_show(&self, id: i32) -> bool {
        self.calls
            .send_modify(|c| c.push((id, "about-to-show".into())));
        false
    }

    #[zbus(property)]
    async fn version(&self) -> u32 {
        3
    }

    #[zbus(signal)]
    async fn layout_updated(
        emitter: &SignalEmitter<'_>,
        revision: u32,
        parent: i32,
    ) -> zbus::Result<()>;
}

/// A stand-in app: its own connection to the bus serving an item at `path`
/// and its menu.
struct App {
    conn: zbus::Connection,
    item_path: String,
    calls: watch::Receiver<Vec<(i32, String)>>,
    /// The item's icon files.
    icons: tempfile::TempDir,
}

const IDLE_PNG: &[u8] = b"\x89PNG idle picture";
const RECORDING_PNG: &[u8] = b"\x89PNG recording picture";

impl App {
    async fn start(bus: &PrivateBus, item_path: &str) -> App {
        let icons = tempfile::tempdir().unwrap();
        std::fs::write(icons.path().join("deskrec-idle.png"), IDLE_PNG).unwrap();
        std::fs::write(icons.path().join("deskrec-recording.png"), RECORDING_PNG).unwrap();
        let (calls_tx, calls) = watch::channel(Vec::new());
        let item = StandInItem {
            title: "Deskrec".into(),
            status: "Active".into(),
            icon_name: "deskrec-idle".into(),
            icon_theme_path: icons.path().to_str().unwrap().into(),
            icon_pixmap: Vec::new(),
            tool_tip: "Not recording".into(),
        };
        let menu = StandInMenu {
            root: app_menu(),
            revision: 1,
            calls: calls_tx,
        };
        let conn = bus
            .builder()
            .unwrap()
            .serve_at(item_path, item)
            .unwrap()
            .serve_at(MENU_PATH, menu)
            .unwrap()
            .build()
            .await
            .unwrap();
        App {
            conn,
            item_path: item_path.into(),
            calls,
            icons,
        }
    }

    /// `RegisterStatusNotifierItem(service)` as the app sends it.
    async fn register(&self, service: &str) {
        self.conn
            .call_method(
                Some(WATCHER_NAME),
                WATCHER_PATH,
                Some("org.kde.StatusNotifierWatcher"),
                "RegisterStatusNotifierItem",
                &(service,),
            )
            .await
            .unwrap();
    }

    fn unique_name(&self) -> String {
        self.conn.unique_name().unwrap().to_string()
    }

    /// Changes the item, then sends `signal` (if any) as the app would.
    async fn change(&self, edit: impl FnOnce(&mut StandInItem), signal: Option<&str>) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, StandInItem>(self.item_path.as_str())
            .await
            .unwrap();
        edit(&mut *iface.get_mut().await);
        let emitter = iface.signal_emitter();
        match signal {
            Some("NewIcon") => StandInItem::new_icon(emitter).await.unwrap(),
            Some("NewToolTip") => StandInItem::new_tool_tip(emitter).await.unwrap(),
            Some("NewTitle") => StandInItem::new_title(emitter).await.unwrap(),
            Some("NewStatus") => {
                let status = iface.get().await.status.clone();
                StandInItem::new_status(emitter, &status).await.unwrap()
            }
            Some(other) => panic!("no signal {other}"),
            None => {}
        }
    }

    /// Changes the menu, then sends `LayoutUpdated`.
    async fn change_menu(&self, edit: impl FnOnce(&mut Entry)) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, StandInMenu>(MENU_PATH)
            .await
            .unwrap();
        let revision = {
            let mut menu = iface.get_mut().await;
            edit(&mut menu.root);
            menu.revision += 1;
            menu.revision
        };
        StandInMenu::layout_updated(iface.signal_emitter(), revision, 0)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_private_bus_takes_connections_until_it_is_dropped() {
    let bus = PrivateBus::start().unwrap();
    let address = bus.address().to_owned();
    assert!(address.starts_with("unix:path="), "{address}");
    let conn = bus.connect().await.unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let names = dbus.list_names().await.unwrap();
    assert!(names.iter().any(|n| n.as_str() == "org.freedesktop.DBus"));

    let mut command = std::process::Command::new("true");
    bus.configure(&mut command);
    let env: Vec<_> = command.get_envs().collect();
    assert_eq!(
        env,
        [(
            std::ffi::OsStr::new("DBUS_SESSION_BUS_ADDRESS"),
            Some(std::ffi::OsStr::new(&address))
        )]
    );

    let pid = bus.pid();
    drop(bus);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "dbus-daemon is still running"
    );
    let again = zbus::connection::Builder::address(address.as_str())
        .unwrap()
        .build()
        .await;
    assert!(again.is_err(), "the bus is gone");
}

#[tokio::test]
async fn an_item_registered_by_its_path_is_found_on_the_senders_connection_and_forgotten_when_it_leaves()
 {
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    // Another tray component, watching the watcher's signals.
    let observer = bus.connect().await.unwrap();
    let watcher_proxy = zbus::Proxy::new(
        &observer,
        WATCHER_NAME,
        WATCHER_PATH,
        "org.kde.StatusNotifierWatcher",
    )
    .await
    .unwrap();
    let mut registered = watcher_proxy
        .receive_signal("StatusNotifierItemRegistered")
        .await
        .unwrap();
    let mut unregistered = watcher_proxy
        .receive_signal("StatusNotifierItemUnregistered")
        .await
        .unwrap();
    assert!(
        watcher_proxy
            .get_property::<bool>("IsStatusNotifierHostRegistered")
            .await
            .unwrap()
    );
    assert_eq!(
        watcher_proxy
            .get_property::<i32>("ProtocolVersion")
            .await
            .unwrap(),
        0
    );

    let app = App::start(&bus, AYATANA_PATH).await;
    app.register(AYATANA_PATH).await;
    let address = watcher.wait_for_item(LIMIT).await.unwrap();
    assert_eq!(
        address,
        ItemAddress {
            bus_name: app.unique_name(),
            path: AYATANA_PATH.into()
        }
    );
    let service = format!("{}{AYATANA_PATH}", app.unique_name());
    let signal = tokio::time::timeout(LIMIT, registered.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signal.body().deserialize::<String>().unwrap(), service);
    let items: Vec<String> = zbus::Proxy::new(
        &observer,
        WATCHER_NAME,
        WATCHER_PATH,
        "org.kde.StatusNotifierWatcher",
    )
    .await
    .unwrap()
    .get_property("RegisteredStatusNotifierItems")
    .await
    .unwrap();
    assert_eq!(items, std::slice::from_ref(&service));
    // Registering again (apps do, when the watcher restarts) adds nothing.
    app.register(AYATANA_PATH).await;
    assert_eq!(watcher.items().len(), 1);

    // The app exits: its item goes.
    drop(app);
    watcher
        .wait_for_items(LIMIT, "the item gone", |items| items.is_empty())
        .await
        .unwrap();
    let signal = tokio::time::timeout(LIMIT, unregistered.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signal.body().deserialize::<String>().unwrap(), service);
}

#[tokio::test]
async fn an_item_registered_by_its_bus_name_is_found_at_the_default_path() {
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    let app = App::start(&bus, DEFAULT_ITEM_PATH).await;
    let name = format!("org.kde.StatusNotifierItem-{}-1", std::process::id());
    app.conn.request_name(name.as_str()).await.unwrap();
    app.register(&name).await;
    let address = watcher.wait_for_item(LIMIT).await.unwrap();
    assert_eq!(
        address,
        ItemAddress {
            bus_name: name,
            path: DEFAULT_ITEM_PATH.into()
        }
    );
    let state = watcher.item(&address).await.unwrap().state().await.unwrap();
    assert_eq!(state.id, "deskrec");
}

#[tokio::test]
async fn an_items_properties_and_icon_are_read_and_its_signalled_changes_seen() {
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    let app = App::start(&bus, AYATANA_PATH).await;
    app.register(AYATANA_PATH).await;
    let item = watcher
        .item(&watcher.wait_for_item(LIMIT).await.unwrap())
        .await
        .unwrap();

    let state = item.state().await.unwrap();
    assert_eq!(
        (
            state.id.as_str(),
            state.category.as_str(),
            state.title.as_str(),
            state.status.as_str(),
            state.tool_tip.title.as_str(),
            state.menu.as_deref(),
            state.item_is_menu,
        ),
        (
            "deskrec",
            "ApplicationStatus",
            "Deskrec",
            "Active",
            "Not recording",
            Some(MENU_PATH),
            true
        )
    );
    let idle_file = app.icons.path().join("deskrec-idle.png");
    assert_eq!(
        state.icon().unwrap(),
        Icon::File {
            path: idle_file,
            bytes: IDLE_PNG.to_vec()
        }
    );

    app.change(
        |i| i.icon_name = "deskrec-recording".into(),
        Some("NewIcon"),
    )
    .await;
    let state = item
        .wait_until(LIMIT, "the recording icon", |s| {
            s.icon_name == "deskrec-recording"
        })
        .await
        .unwrap();
    assert_eq!(state.icon().unwrap().bytes(), Some(RECORDING_PNG));

    app.change(|i| i.tool_tip = "Recording".into(), Some("NewToolTip"))
        .await;
    item.wait_until(LIMIT, "the recording tooltip", |s| {
        s.tool_tip.title == "Recording"
    })
    .await
    .unwrap();

    app.change(|i| i.status = "NeedsAttention".into(), Some("NewStatus"))
        .await;
    item.wait_until(LIMIT, "attention", |s| s.status == "NeedsAttention")
        .await
        .unwrap();

    // An icon sent inline (ksni, Qt): the largest picture is the icon.
    let small = (1, 1, vec![255, 1, 2, 3]);
    let large = (2, 1, vec![255, 9, 9, 9, 255, 8, 8, 8]);
    app.change(
        |i| {
            i.icon_name = String::new();
            i.icon_pixmap = vec![small.clone(), large.clone()];
        },
        Some("NewIcon"),
    )
    .await;
    let state = item
        .wait_until(LIMIT, "the pixmap icon", |s| s.icon_pixmap.len() == 2)
        .await
        .unwrap();
    assert_eq!(state.icon().unwrap().bytes(), Some(&large.2[..]));
    assert_eq!(
        (state.icon_pixmap[0].width, state.icon_pixmap[0].height),
        (1, 1)
    );

    // A named file that is not there is a broken icon, not a themed one.
    app.change(
        |i| i.icon_name = "/nonexistent/deskrec.png".into(),
        Some("NewIcon"),
    )
    .await;
    let state = item
        .wait_until(LIMIT, "the missing file", |s| s.icon_name.starts_with('/'))
        .await
        .unwrap();
    assert!(matches!(state.icon(), Err(Error::IconFile { .. })));
    app.change(
        |i| {
            i.icon_name = "media-record".into();
            i.icon_pixmap.clear();
        },
        Some("NewIcon"),
    )
    .await;
    let state = item
        .wait_until(LIMIT, "a themed icon", |s| s.icon_name == "media-record")
        .await
        .unwrap();
    assert_eq!(state.icon().unwrap(), Icon::Themed("media-record".into()));
}

#[tokio::test]
async fn a_change_without_its_signal_stays_unseen_by_wait_until_but_is_polled() {
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    let app = App::start(&bus, AYATANA_PATH).await;
    app.register(AYATANA_PATH).await;
    let item = watcher
        .item(&watcher.wait_for_item(LIMIT).await.unwrap())
        .await
        .unwrap();
    item.state().await.unwrap();

    // The title changes, unsignalled, after the host's first read.
    let (first_read, read) = tokio::sync::oneshot::channel();
    let mut first_read = Some(first_read);
    let started = Instant::now();
    let (waited, ()) = tokio::join!(
        item.wait_until(Duration::from_millis(500), "the paused title", |s| {
            if let Some(tell) = first_read.take() {
                tell.send(()).unwrap();
            }
            s.title.ends_with("(paused)")
        }),
        async {
            read.await.unwrap();
            app.change(|i| i.title = "Deskrec (paused)".into(), None)
                .await;
        }
    );
    let err = waited.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let message = err.to_string();
    assert!(
        matches!(err, Error::Timeout { .. }) && message.contains("the paused title"),
        "{message}"
    );
    assert!(
        message.contains("title: \"Deskrec\""),
        "shows the last state: {message}"
    );

    item.poll_until(LIMIT, "the paused title", |s| s.title.ends_with("(paused)"))
        .await
        .unwrap();

    // With the signal, wait_until sees the next change.
    app.change(|i| i.title = "Deskrec".into(), Some("NewTitle"))
        .await;
    item.wait_until(LIMIT, "the title back", |s| s.title == "Deskrec")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_menu_is_read_as_a_user_sees_it_and_a_click_reaches_the_app() {
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    let app = App::start(&bus, AYATANA_PATH).await;
    app.register(AYATANA_PATH).await;
    let item = watcher
        .item(&watcher.wait_for_item(LIMIT).await.unwrap())
        .await
        .unwrap();
    let menu = item.menu().await.unwrap();

    let root = menu.layout().await.unwrap();
    assert_eq!(
        root.visible_labels(),
        ["Pause recording", "---", "Sign in", "Show window", "More"]
    );
    let sign_in = root.find("Sign in").unwrap();
    assert_eq!(
        (sign_in.id, sign_in.enabled, sign_in.visible),
        (3, false, true)
    );
    assert!(!root.find("Debug").unwrap().visible);
    let show = root.find("Show window").unwrap();
    assert_eq!(
        (show.toggle_type.as_str(), show.is_checked()),
        ("checkmark", true)
    );
    assert_eq!(root.find("About Deskrec").unwrap().id, 7);
    assert_eq!(root.find_id(6).unwrap().label, "More");
    assert_eq!(root.find("Pause recording").unwrap().kind, "standard");

    let mut calls = app.calls.clone();
    let before = calls.borrow().len();
    let clicked = menu.click_label("Pause recording").await.unwrap();
    assert_eq!(clicked.id, 1);
    let calls = calls
        .wait_for(|c| c[before..].iter().any(|(_, kind)| kind == "clicked"))
        .await
        .unwrap()
        .clone();
    assert_eq!(
        calls[before..],
        [(0, "about-to-show".to_owned()), (1, "clicked".to_owned())]
    );
    menu.click_label("About Deskrec").await.unwrap();

    for (label, why) in [
        ("Sign in", "disabled"),
        ("Debug", "hidden"),
        ("More", "a submenu"),
        ("Log out", "no entry"),
    ] {
        let err = menu.click_label(label).await.unwrap_err();
        assert!(
            matches!(err, Error::Menu(_)) && err.to_string().contains(why),
            "{label}: {err}"
        );
    }

    app.change_menu(|root| {
        root.children[0].props = vec![("label", Value::from("_Resume recording"))];
    })
    .await;
    let root = menu
        .wait_until(LIMIT, "Resume in the menu", |root| {
            root.find("Resume recording").is_some()
        })
        .await
        .unwrap();
    assert!(root.find("Pause recording").is_none());
}

#[tokio::test]
async fn waits_fail_within_their_limit_naming_what_they_waited_for() {
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    let started = Instant::now();
    // The outer limit turns a wait that ignores its own into a failure.
    let err = tokio::time::timeout(
        Duration::from_secs(2),
        watcher.wait_for_item(Duration::from_millis(300)),
    )
    .await
    .expect("the wait ended at its limit")
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for a tray item to register, last: []"
    );

    // An item address nobody serves: reads fail, they do not hang.
    let ghost = ItemAddress {
        bus_name: ":1.999".into(),
        path: AYATANA_PATH.into(),
    };
    let item = watcher.item(&ghost).await.unwrap();
    let err = item.state().await.unwrap_err();
    assert!(matches!(err, Error::Fdo(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
