//! Desktop notifications (notify-rust: the freedesktop service over D-Bus
//! on Linux, toasts on Windows), rate-limited: the same notification is
//! not shown twice within [`SAME_AGAIN`], and a state notice only when the
//! state really changed (not at every reconnect). Without a notification
//! service the app logs the notice and goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The app's id: the toast's AppUserModelID on Windows.
#[cfg(windows)]
pub const APP_ID: &str = "org.deskrec.tray";

/// Shortest time between two notifications with the same key.
pub const SAME_AGAIN: Duration = Duration::from_secs(600);

/// Sends notifications, at most one per key per [`SAME_AGAIN`].
#[derive(Default)]
pub struct Notifier {
    sent: HashMap<String, Instant>,
}

impl Notifier {
    /// Shows `title`/`body` unless a notification with `key` went out
    /// within [`SAME_AGAIN`]. Returns whether it was sent.
    pub fn send(&mut self, key: &str, title: &str, body: &str) -> bool {
        let now = Instant::now();
        if self
            .sent
            .get(key)
            .is_some_and(|t| now.duration_since(*t) < SAME_AGAIN)
        {
            tracing::debug!(key, "notification suppressed (rate limit)");
            return false;
        }
        self.sent.insert(key.to_owned(), now);
        let (title, body) = (title.to_owned(), body.to_owned());
        // A D-Bus round trip (or a toast): off the caller's thread.
        std::thread::spawn(move || show(&title, &body));
        true
    }
}

fn show(title: &str, body: &str) {
    let mut n = notify_rust::Notification::new();
    n.appname("Deskrec").summary(title).body(body);
    #[cfg(windows)]
    n.app_id(APP_ID);
    match n.show() {
        Ok(_) => tracing::info!(title, "notified"),
        Err(e) => {
            tracing::warn!(title, body, error = %e, "no notification service; the notice is only logged")
        }
    }
}

/// Registers the app's AppUserModelID for this user, so Windows shows its
/// toasts under Deskrec's name and icon (an unregistered id makes them
/// fail silently). The MSI cannot set the shortcut property that would do
/// it, so the app does at each start.
#[cfg(windows)]
pub fn register_app_id(icon: &std::path::Path) {
    use windows::Win32::System::Registry::{
        HKEY, HKEY_CURRENT_USER, REG_OPTION_NON_VOLATILE, REG_SZ, RegCloseKey, RegCreateKeyExW,
        RegSetValueExW,
    };
    use windows::core::{HSTRING, PCWSTR};
    let key_path = HSTRING::from(format!(r"Software\Classes\AppUserModelId\{APP_ID}"));
    let mut key = HKEY::default();
    // SAFETY: valid strings and an out pointer to a live local.
    let created = unsafe {
        RegCreateKeyExW(
            HKEY_CURRENT_USER,
            PCWSTR(key_path.as_ptr()),
            None,
            PCWSTR::null(),
            REG_OPTION_NON_VOLATILE,
            windows::Win32::System::Registry::KEY_SET_VALUE,
            None,
            &mut key,
            None,
        )
    };
    if created.is_err() {
        tracing::warn!(error = ?created, "cannot register the AppUserModelID; toasts may not show");
        return;
    }
    for (name, value) in [
        ("DisplayName", "Deskrec".to_string()),
        ("IconUri", icon.display().to_string()),
    ] {
        let name = HSTRING::from(name);
        let wide: Vec<u16> = value.encode_utf16().chain([0]).collect();
        // SAFETY: `key` is open; the data is a NUL-terminated UTF-16 buffer
        // passed with its byte length.
        let set = unsafe {
            RegSetValueExW(
                key,
                PCWSTR(name.as_ptr()),
                None,
                REG_SZ,
                Some(std::slice::from_raw_parts(
                    wide.as_ptr().cast::<u8>(),
                    wide.len() * 2,
                )),
            )
        };
        if set.is_err() {
            tracing::warn!(error = ?set, "cannot write the AppUserModelID's {name}");
        }
    }
    // SAFETY: opened above.
    let _ = unsafe { RegCloseKey(key) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_notice_is_not_sent_twice_within_the_limit() {
        let mut n = Notifier::default();
        assert!(n.send("state:not_eligible", "t", "b"));
        assert!(!n.send("state:not_eligible", "t", "b"));
        assert!(n.send("state:recording", "t", "b"));
    }
}
