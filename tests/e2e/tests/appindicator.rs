//! The fixtures against a real tray item: libayatana-appindicator (what
//! Tauri's tray icon uses on Linux) through a small python3 GTK script,
//! `appindicator/indicator.py`, under Xvfb on a private bus.
//!
//! Skipped with a message when Debian's python3 with the
//! AyatanaAppIndicator3 bindings (`gir1.2-ayatanaappindicator3-0.1`,
//! `python3-gi`) or Xvfb is missing, unless `CI` is set.

#![cfg(target_os = "linux")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use deskrec_capture::testing::Xvfb;
use deskrec_e2e::{Icon, PrivateBus, Watcher};

const LIMIT: Duration = Duration::from_secs(20);
/// Debian's python3, where the GObject bindings are installed.
const PYTHON: &str = "/usr/bin/python3";

const IDLE_PNG: &[u8] = b"\x89PNG idle";
const RECORDING_PNG: &[u8] = b"\x89PNG recording";

/// Whether the indicator script can run here; prints why not (or panics
/// under CI).
fn have_appindicator() -> bool {
    let ok = Command::new(PYTHON)
        .args([
            "-c",
            "import gi; gi.require_version('AyatanaAppIndicator3', '0.1'); \
             from gi.repository import AyatanaAppIndicator3",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = "python3 AyatanaAppIndicator3 bindings missing (Debian: apt-get install \
                   python3-gi gir1.2-ayatanaappindicator3-0.1)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
    }
    ok
}

/// The indicator process, killed on drop.
struct Indicator(Child);

impl Drop for Indicator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libayatana_appindicator_item_is_seen_its_menu_clicked_and_its_exit_noticed() {
    if !have_appindicator() {
        return;
    }
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let bus = PrivateBus::start().unwrap();
    let watcher = Watcher::start(&bus).await.unwrap();
    let icons = tempfile::tempdir().unwrap();
    std::fs::write(icons.path().join("deskrec-idle.png"), IDLE_PNG).unwrap();
    std::fs::write(icons.path().join("deskrec-recording.png"), RECORDING_PNG).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/appindicator/indicator.py"
    );
    let mut command = Command::new(PYTHON);
    command
        .arg(script)
        .arg(icons.path())
        .env("DISPLAY", xvfb.display())
        .stdout(Stdio::null());
    bus.configure(&mut command);
    let mut indicator = Indicator(command.spawn().unwrap());

    let address = watcher.wait_for_item(LIMIT).await.unwrap();
    assert!(
        address.path.starts_with("/org/ayatana/NotificationItem/"),
        "{address:?}"
    );
    let item = watcher.item(&address).await.unwrap();
    let state = item
        .poll_until(LIMIT, "the idle icon", |s| s.icon_name == "deskrec-idle")
        .await
        .unwrap();
    assert_eq!(
        state.menu.as_deref().unwrap(),
        format!("{}/Menu", address.path),
        "libayatana serves the menu under the item"
    );
    assert_eq!(
        (
            state.id.as_str(),
            state.title.as_str(),
            state.status.as_str()
        ),
        ("deskrec-e2e", "Deskrec", "Active")
    );
    assert_eq!(state.icon().unwrap().bytes(), Some(IDLE_PNG));

    let menu = item.menu().await.unwrap();
    let root = menu
        .wait_until(LIMIT, "the menu", |root| root.find("Quit").is_some())
        .await
        .unwrap();
    assert_eq!(
        root.visible_labels(),
        ["Pause recording", "Sign in", "---", "Quit"]
    );
    assert!(!root.find("Sign in").unwrap().enabled);
    assert!(menu.click_label("Sign in").await.is_err());

    // The click reaches GTK's "activate"; the script shows the recording
    // icon and signals it.
    menu.click_label("Pause recording").await.unwrap();
    let state = item
        .wait_until(LIMIT, "the recording icon", |s| {
            s.icon_name == "deskrec-recording"
        })
        .await
        .unwrap();
    assert!(
        matches!(state.icon().unwrap(), Icon::File { ref bytes, .. } if bytes == RECORDING_PNG)
    );

    // Quit: the app leaves the bus, the tray forgets its item.
    menu.click_label("Quit").await.unwrap();
    watcher
        .wait_for_items(LIMIT, "the item gone after Quit", |items| items.is_empty())
        .await
        .unwrap();
    let exited = tokio::task::spawn_blocking(move || indicator.0.wait());
    let status = tokio::time::timeout(LIMIT, exited)
        .await
        .expect("the indicator exited after leaving the bus")
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
