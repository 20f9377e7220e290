//! The notification server against the client the app's notifications go
//! through: notify-rust (which tauri-plugin-notification uses).
//!
//! notify-rust finds the session bus only through
//! `DBUS_SESSION_BUS_ADDRESS`, so this binary holds one test, which sets
//! it before any other thread of the test starts.

#![cfg(target_os = "linux")]

use std::time::Duration;

use deskrec_e2e::{CAPABILITIES, Notifications, PrivateBus, SESSION_BUS_VARIABLE};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn notifications_sent_with_notify_rust_are_recorded_updated_and_closed() {
    let bus = PrivateBus::start().unwrap();
    // SAFETY: this is the only test in this binary and no other thread
    // of it runs yet (the runtime is built below), so nothing reads the
    // environment while it changes.
    unsafe { std::env::set_var(SESSION_BUS_VARIABLE, bus.address()) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // No wait below may hang the test: all of it has a limit.
    let all = async {
        let server = Notifications::start(&bus).await.unwrap();

        // notify-rust's blocking calls (zbus::block_on) stay off the
        // runtime's workers.
        let (capabilities, info) = tokio::task::spawn_blocking(|| {
            (
                notify_rust::get_capabilities().unwrap(),
                notify_rust::get_server_information().unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(capabilities, CAPABILITIES);
        assert_eq!(
            (info.name.as_str(), info.spec_version.as_str()),
            ("deskrec-e2e", "1.2")
        );

        let handle = notify_rust::Notification::new()
            .appname("Deskrec")
            .summary("Recording paused")
            .body("Resume from the tray menu.")
            .hint(notify_rust::Hint::Category("presence".into()))
            .urgency(notify_rust::Urgency::Critical)
            .timeout(notify_rust::Timeout::Milliseconds(4000))
            .show_async()
            .await
            .unwrap();
        let first = server
            .wait_for(LIMIT, "the pause notice", |n| {
                n.summary == "Recording paused"
            })
            .await
            .unwrap();
        assert_eq!(
            (
                first.id,
                first.app_name.as_str(),
                first.body.as_str(),
                first.expire_timeout,
                first.hint_str("category"),
                first.urgency(),
                first.closed,
            ),
            (
                handle.id(),
                "Deskrec",
                "Resume from the tray menu.",
                4000,
                Some("presence"),
                Some(2),
                None
            )
        );

        // A second notification gets a new id; an update keeps its id.
        let second = notify_rust::Notification::new()
            .summary("Signed out")
            .show_async()
            .await
            .unwrap();
        assert!(second.id() > first.id);
        let mut handle = handle;
        handle.body("Resume from the tray menu, or sign out.");
        let handle = tokio::task::spawn_blocking(move || {
            handle.update().unwrap();
            handle
        })
        .await
        .unwrap();
        let updated = server
            .wait_for(LIMIT, "the updated notice", |n| n.body.contains("sign out"))
            .await
            .unwrap();
        assert_eq!((updated.id, updated.replaces_id), (first.id, first.id));

        // The app closes it.
        let id = handle.id();
        handle.close_async().await;
        server
            .wait_for(LIMIT, "the notice closed by the app", |n| {
                n.id == id && n.closed == Some(3)
            })
            .await
            .unwrap();
        assert_eq!(server.received().len(), 3);

        // The user clicks the other one: the app hears the action.
        let conn = bus.connect().await.unwrap();
        let proxy = zbus::Proxy::new(
            &conn,
            deskrec_e2e::NOTIFICATIONS_NAME,
            deskrec_e2e::NOTIFICATIONS_PATH,
            deskrec_e2e::NOTIFICATIONS_NAME,
        )
        .await
        .unwrap();
        let mut actions = proxy.receive_signal("ActionInvoked").await.unwrap();
        server.invoke_action(second.id(), "default").await.unwrap();
        let signal = tokio::time::timeout(LIMIT, futures_util::StreamExt::next(&mut actions))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            signal.body().deserialize::<(u32, String)>().unwrap(),
            (second.id(), "default".to_owned())
        );

        let err = server
            .wait_for(Duration::from_millis(200), "a fourth notice", |n| {
                n.id == 99
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("a fourth notice"), "{err}");
    };
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), all).await })
        .expect("the test finished within a minute");
}
