//! The status window: created when asked for and destroyed when closed, so
//! no WebView (tens of MiB) lives while nobody looks. The app keeps running
//! without windows (see `app::run`).

use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

/// The window's label.
pub const LABEL: &str = "main";

/// What the window opens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The agent's status and queue.
    Status,
    /// The Diagnostics view (asks for the PIN unless an administrator).
    Diagnostics,
}

impl View {
    fn fragment(self) -> &'static str {
        match self {
            View::Status => "status",
            View::Diagnostics => "diagnostics",
        }
    }
}

/// Shows the window on `view`, creating it if there is none. A failure
/// (no WebView2 runtime on Windows) is shown in the tray and notified, not
/// a crash: recording goes on without the window.
pub fn open(app: &AppHandle, view: View) {
    if let Some(w) = app.get_webview_window(LABEL) {
        // The window routes on its URL's fragment.
        let _ = w.eval(format!("location.hash = '#{}'", view.fragment()));
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    // Without a WebView runtime (on Windows: the Edge WebView2 runtime,
    // which IT installs) Tauri still returns a window, with no page in it,
    // and only logs the failure. Ask first, so it is a state people see.
    if let Err(e) = tauri::webview_version() {
        crate::app::window_failed(app, &format!("no WebView runtime on this PC: {e}"));
        return;
    }
    let url = WebviewUrl::App(format!("index.html#{}", view.fragment()).into());
    let built = WebviewWindowBuilder::new(app, LABEL, url)
        .title("Deskrec")
        .inner_size(420.0, 640.0)
        .min_inner_size(360.0, 480.0)
        .center()
        .build();
    match built {
        Ok(w) => {
            let _ = w.set_focus();
            tracing::info!(view = view.fragment(), "window opened");
        }
        Err(e) => crate::app::window_failed(app, &e.to_string()),
    }
}

/// Sends an event to the window, if one is open.
pub fn emit<S: serde::Serialize + Clone>(app: &AppHandle, event: &str, payload: S) {
    if let Some(w) = app.get_webview_window(LABEL)
        && let Err(e) = w.emit(event, payload)
    {
        tracing::debug!(event, error = %e, "cannot send to the window");
    }
}
