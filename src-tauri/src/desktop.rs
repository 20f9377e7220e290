//! What the desktop offers: a display to draw on, and a host that shows
//! tray icons.

/// Whether there is a display to open windows on. Tauri (GTK) panics
/// without one; this says why in words instead.
pub fn check_display() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        let named = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
        if !named {
            return Err("no display: DISPLAY and WAYLAND_DISPLAY are not set. Deskrec's tray app runs in a desktop session; on a server use the headless deskrec-agent".into());
        }
        if gtk::init().is_err() {
            return Err(format!(
                "cannot open the display {:?}: is the desktop session running, and may this user use it?",
                std::env::var("DISPLAY").unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Whether a tray host will show the icon. Linux: a StatusNotifierWatcher
/// on the session bus with a host registered (Tauri's icon is silently
/// invisible otherwise). Windows: the taskbar always hosts icons (a shell
/// starting late is handled by the tray's `TaskbarCreated` handling).
pub async fn tray_host() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        let conn = zbus::Connection::session()
            .await
            .map_err(|e| format!("no session message bus ({e})"))?;
        let watcher = zbus::Proxy::new(
            &conn,
            "org.kde.StatusNotifierWatcher",
            "/StatusNotifierWatcher",
            "org.kde.StatusNotifierWatcher",
        )
        .await
        .map_err(|e| format!("no StatusNotifierWatcher ({e})"))?;
        let host: bool = watcher
            .get_property("IsStatusNotifierHostRegistered")
            .await
            .map_err(|e| format!("no StatusNotifierWatcher on the session bus ({e})"))?;
        if !host {
            return Err("the StatusNotifierWatcher has no host registered".into());
        }
    }
    Ok(())
}
