//! The tray app end to end on Linux: the real `deskrec-tray` under Xvfb on
//! a private D-Bus session with a tray host (StatusNotifierWatcher) and a
//! notification server (`deskrec-e2e`), with the real engine inside and
//! the real server over TLS.

#![cfg(target_os = "linux")]

use deskrec_server::testing as server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deskrec_capture::testing::Xvfb;
use deskrec_e2e::{Item, ItemState, MenuEntry, Notifications, PrivateBus, Watcher};
use serde_json::{Value, json};
use server::TestServer;

const LIMIT: Duration = Duration::from_secs(30);
const APP: &str = env!("CARGO_BIN_EXE_deskrec-tray");

/// One `deskrec-tray` process, stopped with SIGTERM (then killed) on drop.
struct App {
    child: Child,
    logs: PathBuf,
}

impl App {
    /// Starts the app on `bus` and `display` with its data in `dir`.
    fn start(bus: &PrivateBus, display: &str, dir: &Path, args: &[&str]) -> App {
        let logs = dir.join("logs");
        let mut cmd = Command::new(APP);
        bus.configure(&mut cmd)
            .env("DISPLAY", display)
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", runtime_dir(dir))
            .env_remove("WAYLAND_DISPLAY")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--log-dir")
            .arg(&logs)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        App {
            child: cmd.spawn().expect("deskrec-tray starts"),
            logs,
        }
    }

    /// Everything logged so far.
    fn log(&self) -> String {
        std::fs::read_dir(&self.logs)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until its log holds every one of `needles`; the log then.
    async fn wait_log(&self, needles: &[&str]) -> String {
        let end = Instant::now() + LIMIT;
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) {
                return log;
            }
            assert!(Instant::now() < end, "the log lacks {needles:?}:\n{log}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it the way a session manager does and checks it exited 0
    /// having said so in its log.
    fn stop(&mut self) {
        let status = self.stop_status();
        let log = self.log();
        assert!(
            status.is_some_and(|s| s.success()),
            "the app did not exit cleanly ({status:?}):\n{log}"
        );
        assert!(log.contains("deskrec-tray stopped"), "{log}");
    }

    /// Stops it the way a session manager does; its exit status, or `None`
    /// if it did not exit.
    fn stop_status(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let end = Instant::now() + LIMIT;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The session's runtime directory under `dir`, as a login creates it: the
/// app's tray icon files go there (tray-icon writes them under
/// $XDG_RUNTIME_DIR, else /tmp), so tests running side by side do not
/// overwrite each other's icons.
fn runtime_dir(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).expect("a runtime directory");
    run
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The RGBA pixels of a PNG; `None` if it does not decode (the tray
/// host may read an icon file while the app is still writing it).
fn pixels(png: &[u8]) -> Option<Vec<u8>> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut buf).ok()?;
    buf.truncate(info.buffer_size());
    Some(buf)
}

/// Which of the app's icons `state` shows (by its pixels), if any.
fn icon_kind(state: &ItemState) -> Option<&'static str> {
    let bytes = state.icon().ok()?.bytes()?.to_vec();
    let shown = pixels(&bytes)?;
    for (kind, png) in [
        (
            "recording",
            &include_bytes!("../../assets/tray/png/recording-24.png")[..],
        ),
        (
            "not-recording",
            include_bytes!("../../assets/tray/png/not-recording-24.png"),
        ),
        (
            "offline",
            include_bytes!("../../assets/tray/png/offline-24.png"),
        ),
        (
            "attention",
            include_bytes!("../../assets/tray/png/attention-24.png"),
        ),
    ] {
        if pixels(png).as_ref() == Some(&shown) {
            return Some(kind);
        }
    }
    None
}

/// The tray item of the one app on `tray`.
async fn the_item(tray: &Watcher) -> Item {
    let addr = tray
        .wait_for_item(LIMIT)
        .await
        .expect("the app's tray item registers");
    tray.item(&addr).await.expect("the item answers")
}

/// Waits until the item shows `kind`'s icon.
async fn wait_icon(item: &Item, kind: &str) {
    item.wait_until(LIMIT, &format!("the {kind} icon"), |s| {
        icon_kind(s) == Some(kind)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until `check` accepts the item's menu, and returns the menu then.
/// The menu is looked up again each time: the app replaces it when its
/// entries change (quit, pause), and the old one's path can vanish
/// between two calls.
async fn wait_menu(
    item: &Item,
    what: &str,
    mut check: impl FnMut(&MenuEntry) -> bool,
) -> MenuEntry {
    let end = Instant::now() + LIMIT;
    loop {
        let root = match item.menu().await {
            Ok(menu) => menu.layout().await.ok(),
            Err(_) => None,
        };
        match root {
            Some(root) if check(&root) => return root,
            root => assert!(
                Instant::now() < end,
                "the menu does not show {what}: {:?}",
                root.map(|r| r.visible_labels())
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the menu's first line (the state line) reads `headline`,
/// and returns the menu's labels then. The app sets the icon and then the
/// line, so a reader can see one before the other.
async fn wait_headline(item: &Item, headline: &str) -> Vec<String> {
    wait_menu(item, &format!("the state line {headline:?}"), |m| {
        m.visible_labels().first().map(String::as_str) == Some(headline)
    })
    .await
    .visible_labels()
}

/// Whether an X window with `title` exists on `display`.
fn window_shown(display: &str, title: &str) -> bool {
    Command::new("xwininfo")
        .args(["-root", "-tree"])
        .env("DISPLAY", display)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("\"{title}\"")))
        .unwrap_or(false)
}

async fn wait_window(display: &str) {
    let end = Instant::now() + LIMIT;
    while !window_shown(display, "Deskrec") {
        assert!(Instant::now() < end, "the Deskrec window did not open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The desktop: a display and a session bus with a tray (unless a test
/// leaves it out) and a notification server.
struct Desktop {
    xvfb: Xvfb,
    bus: PrivateBus,
    tray: Option<Watcher>,
    notifications: Notifications,
    dir: tempfile::TempDir,
}

impl Desktop {
    /// The tray host.
    fn tray(&self) -> &Watcher {
        self.tray.as_ref().expect("this desktop has a tray")
    }
}

async fn desktop() -> Desktop {
    desktop_with(true).await
}

async fn desktop_with(tray: bool) -> Desktop {
    let xvfb = Xvfb::start(1280, 800).expect("Xvfb (apt-get install xvfb)");
    let bus = PrivateBus::start().expect("a private bus");
    let tray = match tray {
        true => Some(Watcher::start(&bus).await.expect("a tray host")),
        false => None,
    };
    let notifications = Notifications::start(&bus)
        .await
        .expect("a notification server");
    Desktop {
        xvfb,
        bus,
        tray,
        notifications,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// `ann` made an eligible agent on `s`; returns her user and an
/// enrollment token.
async fn eligible_ann(s: &TestServer) -> (Value, String) {
    s.put_role("agent", &["record_screen"]).await;
    let ann = s.add_user("Ann", "ann", &["agent"]).await;
    let token = s.admin("POST", "/enrollment-tokens", Value::Null).await["enrollment_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (ann, token)
}

/// The arguments that start the app recording ann's synthetic screen,
/// enrolling with `token` at `s`.
fn recording_args(s: &TestServer, token: &str) -> Vec<String> {
    let url = format!("https://{}", s.addr);
    [
        "--login",
        "ann",
        "--source",
        "synthetic",
        "--enroll",
        &url,
        token,
    ]
    .map(String::from)
    .to_vec()
}

/// Waits until the app's data directory under `dir` holds a segment file
/// with bytes in it.
async fn wait_segment_bytes(dir: &Path) {
    let segments = dir.join("data/segments");
    let end = Instant::now() + LIMIT;
    loop {
        let bytes: u64 = std::fs::read_dir(&segments)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if bytes > 0 {
            return;
        }
        assert!(Instant::now() < end, "no segment written in {segments:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many notifications with `summary` arrived.
fn count(n: &Notifications, summary: &str) -> usize {
    n.received().iter().filter(|r| r.summary == summary).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_follows_the_servers_policy_notifies_and_opens_the_window() {
    let d = desktop().await;
    let s = TestServer::start().await;
    let (ann, token) = eligible_ann(&s).await;
    let args = recording_args(&s, &token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut app = App::start(&d.bus, d.xvfb.display(), d.dir.path(), &args);

    // The item registers and shows "recording"; the menu's first line says so.
    let item = the_item(d.tray()).await;
    wait_icon(&item, "recording").await;
    // Its icon file is in the session's own runtime directory (tray-icon
    // uses $XDG_RUNTIME_DIR), not in a /tmp folder every session shares:
    // two sessions' trays would overwrite each other's icons.
    let state = item.state().await.unwrap();
    let run = runtime_dir(d.dir.path());
    assert!(
        Path::new(&state.icon_theme_path).starts_with(&run)
            || Path::new(&state.icon_name).starts_with(&run),
        "{state:?}"
    );
    let labels = wait_headline(&item, "Recording").await;
    assert!(labels.contains(&"Open Deskrec".to_string()), "{labels:?}");
    assert!(labels.contains(&"Diagnostics".to_string()), "{labels:?}");
    assert!(
        !labels.iter().any(|l| l.contains("Quit")),
        "no quit unless allowed: {labels:?}"
    );
    d.notifications
        .wait_for(LIMIT, "recording started", |n| {
            n.summary == "Recording started"
        })
        .await
        .unwrap();

    // The server deactivates ann: not eligible, in the icon, the menu and
    // a notification.
    let id = ann["id"].as_i64().unwrap();
    s.admin("PATCH", &format!("/users/{id}"), json!({"active": false}))
        .await;
    wait_icon(&item, "not-recording").await;
    wait_headline(&item, "Not recording: not eligible").await;
    d.notifications
        .wait_for(LIMIT, "not eligible", |n| {
            n.summary == "Not recording: not eligible"
        })
        .await
        .unwrap();

    // Reactivated: recording again; "recording started" is not said twice
    // within the rate limit.
    s.admin("PATCH", &format!("/users/{id}"), json!({"active": true}))
        .await;
    wait_icon(&item, "recording").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&d.notifications, "Recording started"), 1);
    assert_eq!(count(&d.notifications, "Not recording: not eligible"), 1);

    // "Open Deskrec" through the menu opens the window.
    assert!(!d.xvfb.display().is_empty() && !window_shown(d.xvfb.display(), "Deskrec"));
    item.menu()
        .await
        .unwrap()
        .click_label("Open Deskrec")
        .await
        .unwrap();
    wait_window(d.xvfb.display()).await;

    // It stops cleanly: exit 0, the segment finished, the tray forgets it.
    app.stop();
    d.tray()
        .wait_for_items(LIMIT, "the item gone", |items| items.is_empty())
        .await
        .unwrap();
}

/// The pause settings: agents may pause for `reasons`, at most 10 minutes.
async fn agent_reasons(s: &TestServer, reasons: &[&str]) {
    s.admin(
        "PATCH",
        "/settings",
        json!({"pause": {"agent_reasons": reasons, "max_seconds": 600, "rules": []}}),
    )
    .await;
}

/// The labels of the "Pause recording" submenu, if the menu has one.
fn pause_labels(menu: &MenuEntry) -> Option<Vec<String>> {
    menu.find("Pause recording").map(MenuEntry::visible_labels)
}

/// Whether the menu has a "Resume recording" entry.
fn has_resume(menu: &MenuEntry) -> bool {
    menu.find("Resume recording").is_some()
}

/// Waits until the server holds the pause of ann's PC that `check`
/// accepts (the PC reports each start and end of a pause), and returns it.
async fn wait_reported(s: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + LIMIT;
    loop {
        let pauses = s
            .admin("GET", "/pauses?windows_login=ann", Value::Null)
            .await;
        if let Some(p) = pauses.as_array().and_then(|a| a.iter().find(|p| check(p))) {
            return p.clone();
        }
        assert!(Instant::now() < end, "the server has no {what}: {pauses}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_pauses_from_the_menu_for_the_policys_reasons_and_resumes_only_its_own_pause() {
    let d = desktop().await;
    let s = TestServer::start().await;
    let (_, token) = eligible_ann(&s).await;
    let args = recording_args(&s, &token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut app = App::start(&d.bus, d.xvfb.display(), d.dir.path(), &args);
    let item = the_item(d.tray()).await;

    // The default policy lets no agent pause: no pause entries.
    let labels = wait_headline(&item, "Recording").await;
    assert!(
        !labels
            .iter()
            .any(|l| l.contains("Pause") || l.contains("Resume")),
        "{labels:?}"
    );

    // The server gives two reasons: the menu offers them, readable.
    agent_reasons(&s, &["card_payment", "private_call"]).await;
    wait_menu(&item, "the policy's pause reasons", |m| {
        pause_labels(m).is_some_and(|l| l == ["Card payment", "Private call"]) && !has_resume(m)
    })
    .await;

    // Clicked: the real agent pauses, as the agent's pause with that
    // reason (the server has its report); the menu says so and offers
    // only the resume.
    item.menu()
        .await
        .unwrap()
        .click_label("Card payment")
        .await
        .unwrap();
    let menu = wait_menu(&item, "the resume entry", has_resume).await;
    assert_eq!(menu.visible_labels()[0], "Paused: Card payment", "{menu:?}");
    assert_eq!(pause_labels(&menu), None, "{menu:?}");
    let paused = wait_reported(&s, "agent pause", |p| {
        p["source"] == "agent" && p["reason"] == "card_payment" && p["ended_at"].is_null()
    })
    .await;

    // Resumed from the menu: that pause ends as resumed, recording and
    // the reasons are back.
    item.menu()
        .await
        .unwrap()
        .click_label("Resume recording")
        .await
        .unwrap();
    wait_reported(&s, "resumed agent pause", |p| {
        p["pause_id"] == paused["pause_id"] && p["end_reason"] == "resumed"
    })
    .await;
    wait_headline(&item, "Recording").await;
    wait_menu(&item, "the reasons again", |m| {
        pause_labels(m).is_some() && !has_resume(m)
    })
    .await;

    // The contact centre's systems pause: the state line says so, but the
    // agent can neither resume it nor pause on top of it.
    let api = s
        .admin(
            "POST",
            "/pauses",
            json!({"windows_login": "ann", "reason": "supervisor_call"}),
        )
        .await;
    // The app sets the state line in place and then rebuilds the menu: two
    // updates on the bus, and between them the new line shows over the old
    // entries (seen once in CI). Wait for both; entries that never go fail.
    wait_menu(
        &item,
        "\"Paused: Supervisor call\" with no pause or resume entry",
        |m| {
            let labels = m.visible_labels();
            labels.first().map(String::as_str) == Some("Paused: Supervisor call")
                && !labels
                    .iter()
                    .any(|l| l.contains("Pause rec") || l.contains("Resume"))
        },
    )
    .await;
    let id = api["pause_id"].as_str().unwrap();
    s.admin("POST", &format!("/pauses/{id}/resume"), json!({}))
        .await;
    wait_headline(&item, "Recording").await;

    // The policy takes the reasons away: the entries go.
    agent_reasons(&s, &[]).await;
    wait_menu(&item, "no pause entries", |m| {
        pause_labels(m).is_none() && !has_resume(m)
    })
    .await;
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enrolled_needs_attention_and_a_second_start_shows_the_first_ones_window() {
    let d = desktop().await;
    let missing = d.dir.path().join("no-deployment.toml");
    let app = App::start(
        &d.bus,
        d.xvfb.display(),
        d.dir.path(),
        &["--deployment", missing.to_str().unwrap()],
    );
    let item = the_item(d.tray()).await;
    wait_icon(&item, "attention").await;
    wait_headline(&item, "Not enrolled").await;
    d.notifications
        .wait_for(LIMIT, "not enrolled", |n| n.summary == "Not enrolled")
        .await
        .unwrap();
    assert!(!window_shown(d.xvfb.display(), "Deskrec"));

    // A second start in the same session exits 0 and the first shows its
    // window.
    let second = Command::new(APP)
        .env("DISPLAY", d.xvfb.display())
        .env("DBUS_SESSION_BUS_ADDRESS", d.bus.address())
        .env("HOME", d.dir.path())
        .env("XDG_RUNTIME_DIR", runtime_dir(d.dir.path()))
        .arg("--data-dir")
        .arg(d.dir.path().join("data"))
        .arg("--log-dir")
        .arg(d.dir.path().join("logs2"))
        .output()
        .unwrap();
    assert!(second.status.success(), "{second:?}");
    wait_window(d.xvfb.display()).await;
    assert_eq!(d.tray().items().len(), 1, "one icon, not two");
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_deployment_file_is_named_with_its_line() {
    let d = desktop().await;
    let bad = d.dir.path().join("deployment.toml");
    std::fs::write(
        &bad,
        "server_url = \"https://rec.example:8443\"\nserver_fingerprint = sha256\n",
    )
    .unwrap();
    let app = App::start(
        &d.bus,
        d.xvfb.display(),
        d.dir.path(),
        &["--deployment", bad.to_str().unwrap()],
    );
    let item = the_item(d.tray()).await;
    wait_icon(&item, "attention").await;
    app.wait_log(&["deployment.toml", "line 2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_without_a_token_leave_it_running_and_asking_for_enrollment() {
    let d = desktop().await;
    let settings = d.dir.path().join("deployment.toml");
    std::fs::write(
        &settings,
        format!(
            "server_url = \"https://rec.example:8443\"\nserver_fingerprint = \"sha256:{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let mut app = App::start(
        &d.bus,
        d.xvfb.display(),
        d.dir.path(),
        &["--deployment", settings.to_str().unwrap()],
    );
    let item = the_item(d.tray()).await;
    wait_icon(&item, "attention").await;
    wait_headline(&item, "Not enrolled").await;
    // The tooltip says why and what to do.
    app.wait_log(&["tray shows", "no enrollment token", "ask IT"])
        .await;
    assert!(app.child.try_wait().unwrap().is_none(), "it keeps running");
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tray_host_it_records_and_says_so_in_the_log_and_the_window() {
    let d = desktop_with(false).await;
    let s = TestServer::start().await;
    let (_, token) = eligible_ann(&s).await;
    let args = recording_args(&s, &token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut app = App::start(&d.bus, d.xvfb.display(), d.dir.path(), &args);
    wait_window(d.xvfb.display()).await;
    wait_segment_bytes(d.dir.path()).await;
    app.wait_log(&["no tray host", "recording goes on"]).await;
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_run_shows_attention_and_notifies() {
    let d = desktop().await;
    // Another process holds the data directory, as a headless agent would.
    let data = d.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let held = std::fs::File::create(data.join("agent.lock")).unwrap();
    held.try_lock().expect("the test takes the directory first");
    let s = TestServer::start().await;
    let (_, token) = eligible_ann(&s).await;
    let args = recording_args(&s, &token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = App::start(&d.bus, d.xvfb.display(), d.dir.path(), &args);
    let item = the_item(d.tray()).await;
    wait_icon(&item, "attention").await;
    wait_headline(&item, "Recorded by another session").await;
    d.notifications
        .wait_for(LIMIT, "the refusal", |n| {
            n.summary == "Recorded by another session"
        })
        .await
        .unwrap();
    app.wait_log(&["the engine is not running"]).await;
    // Nothing recorded beside the holder.
    assert!(
        !data.join("segments").exists()
            || std::fs::read_dir(data.join("segments")).unwrap().count() == 0
    );
    drop(held);
}

#[test]
fn without_a_display_it_says_so_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(APP)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("HOME", dir.path())
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no display"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Whether a test's item state changed at all (used in messages).
#[allow(dead_code)]
fn describe(state: &ItemState) -> String {
    format!("{state:?}")
}
