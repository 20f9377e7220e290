//! [`X11Foreground`]: the window in front on an X11 display, as the window
//! manager announces it (EWMH `_NET_ACTIVE_WINDOW`).
//!
//! # What one call costs
//!
//! Two round trips: `_NET_ACTIVE_WINDOW` on the root window, then the
//! active window's six properties requested together (pipelined), so their
//! replies arrive in one go. Nothing is cached between calls, so a title
//! change is seen at the next call.
//! On Xvfb that is ~0.1 ms CPU, client and server together
//! (`foreground_probe_cost` in `tests/x11.rs`).
//!
//! # Races
//!
//! A window can be destroyed between reading `_NET_ACTIVE_WINDOW` and
//! reading its properties (the server answers `BadWindow`). The probe then
//! reads `_NET_ACTIVE_WINDOW` once more: if the window manager has already
//! named another window, that one is reported; otherwise `None`. Never an
//! error: a closing window must not stop the recorder.
//!
//! # Process names
//!
//! `_NET_WM_PID` is a process id on the machine the client runs on. It is
//! looked up in this machine's `/proc` only when the window's
//! `WM_CLIENT_MACHINE` is this host's name, or, for a window without
//! `WM_CLIENT_MACHINE`, when the display itself is local. The name is the
//! file name of `/proc/PID/exe` (what Windows reports, and not cut to 15
//! bytes like `comm`), else `/proc/PID/comm` (another user's process).
//! A client in another PID namespace (a Flatpak or a container) reports a
//! pid of that namespace, which this cannot tell.

use std::path::Path;

use x11rb::connection::Connection;
use x11rb::cookie::Cookie;
use x11rb::errors::{ReplyError, ReplyOrIdError};
use x11rb::protocol::ErrorKind;
use x11rb::protocol::xproto::{self, AtomEnum, GetPropertyReply, Window};
use x11rb::rust_connection::RustConnection;

use super::{display_name, failed};
use crate::{CaptureError, ForegroundWindow, WindowInfo};

/// Longest title read, in 32-bit units (8 KiB); longer ones are cut at a
/// character boundary. Patterns match far shorter titles, and this bounds
/// what a hostile client can make the recorder copy on every tick.
const MAX_TITLE_LONGS: u32 = 2048;
/// Longest `WM_CLASS` (both strings) and `WM_CLIENT_MACHINE`, in 32-bit
/// units.
const MAX_SHORT_LONGS: u32 = 256;
/// Most window types read from `_NET_WM_WINDOW_TYPE`.
const MAX_TYPES: u32 = 32;

x11rb::atom_manager! {
    /// The atoms the probe reads, interned once when it opens.
    Atoms: AtomsCookie {
        _NET_ACTIVE_WINDOW,
        _NET_WM_NAME,
        _NET_WM_PID,
        _NET_WM_WINDOW_TYPE,
        _NET_WM_WINDOW_TYPE_DESKTOP,
        UTF8_STRING,
    }
}

/// A [`ForegroundWindow`] for an X11 display: the window named by the root
/// window's `_NET_ACTIVE_WINDOW`; see the module docs.
///
/// It has its own connection to the display, so it can live on any thread
/// (it is `Send`) beside an [`X11Source`](crate::X11Source).
pub struct X11Foreground {
    conn: RustConnection,
    /// The root window of the connection's default screen.
    root: Window,
    atoms: Atoms,
    /// Whether the display runs on this machine (a Unix socket or
    /// `localhost`), so that a window without `WM_CLIENT_MACHINE` is taken
    /// to be a local process's.
    local_display: bool,
    /// This machine's host name, compared with `WM_CLIENT_MACHINE`;
    /// `None` when it cannot be read.
    hostname: Option<String>,
}

/// What the properties of a window said.
enum Described {
    /// An ordinary window.
    Window(WindowInfo),
    /// The desktop (`_NET_WM_WINDOW_TYPE_DESKTOP`): no window is in front.
    Desktop,
    /// The window no longer exists.
    Gone,
}

/// The replies read for one window.
struct Properties {
    net_wm_name: GetPropertyReply,
    wm_name: GetPropertyReply,
    wm_class: GetPropertyReply,
    pid: GetPropertyReply,
    client_machine: GetPropertyReply,
    window_type: GetPropertyReply,
}

impl X11Foreground {
    /// Connects to `display` (e.g. `":0"`), or to `$DISPLAY` when `None`,
    /// and interns the atoms the probe reads.
    ///
    /// # Errors
    ///
    /// [`CaptureError::NoDisplay`] when no display is named and `DISPLAY`
    /// is unset; [`CaptureError::Connect`] when the server cannot be
    /// reached or refuses this user; [`CaptureError::Backend`] or
    /// [`CaptureError::Closed`] when interning the atoms fails.
    pub fn open(display: Option<&str>) -> Result<Self, CaptureError> {
        let name = display_name(display, std::env::var_os("DISPLAY"))?;
        let (conn, screen_num) =
            RustConnection::connect(Some(&name)).map_err(|err| CaptureError::Connect {
                display: name.clone(),
                source: err.into(),
            })?;
        let root = conn.setup().roots[screen_num].root;
        let atoms = Atoms::new(&conn)
            .map_err(ReplyOrIdError::from)
            .and_then(|cookie| cookie.reply().map_err(ReplyOrIdError::from))
            .map_err(failed("interning the foreground-window atoms"))?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        Ok(Self {
            local_display: is_local_display(&name, hostname.as_deref()),
            conn,
            root,
            atoms,
            hostname,
        })
    }

    /// The window `_NET_ACTIVE_WINDOW` names; `None` when it is absent (no
    /// EWMH window manager) or 0 (nothing active).
    fn active_window(&self) -> Result<Option<Window>, ReplyError> {
        let reply = xproto::get_property(
            &self.conn,
            false,
            self.root,
            self.atoms._NET_ACTIVE_WINDOW,
            AtomEnum::WINDOW,
            0,
            1,
        )?
        .reply()?;
        Ok(reply
            .value32()
            .and_then(|mut values| values.next())
            .filter(|&window| window != x11rb::NONE))
    }

    /// Reads what the pause rules need of `window`.
    fn describe(&self, window: Window) -> Result<Described, ReplyError> {
        let properties = match self.properties(window) {
            Ok(properties) => properties,
            Err(ReplyError::X11Error(err)) if err.error_kind == ErrorKind::Window => {
                return Ok(Described::Gone);
            }
            Err(err) => return Err(err),
        };
        let desktop = properties
            .window_type
            .value32()
            .is_some_and(|mut types| types.any(|t| t == self.atoms._NET_WM_WINDOW_TYPE_DESKTOP));
        if desktop {
            return Ok(Described::Desktop);
        }
        let title = if properties.net_wm_name.type_ == x11rb::NONE {
            text(&properties.wm_name)
        } else {
            text(&properties.net_wm_name)
        };
        Ok(Described::Window(WindowInfo {
            title,
            class: class_part(&properties.wm_class),
            process: self.process(&properties),
        }))
    }

    /// Asks for all of `window`'s properties at once, then reads the
    /// replies (one round trip). A `BadWindow` in any reply means the
    /// window is gone; the other replies are then discarded with their
    /// cookies.
    fn properties(&self, window: Window) -> Result<Properties, ReplyError> {
        let get = |property: u32, type_: u32, longs: u32| {
            xproto::get_property(&self.conn, false, window, property, type_, 0, longs)
        };
        let any = u32::from(AtomEnum::ANY);
        let net_wm_name = get(
            self.atoms._NET_WM_NAME,
            self.atoms.UTF8_STRING,
            MAX_TITLE_LONGS,
        )?;
        let wm_name = get(AtomEnum::WM_NAME.into(), any, MAX_TITLE_LONGS)?;
        let wm_class = get(
            AtomEnum::WM_CLASS.into(),
            AtomEnum::STRING.into(),
            MAX_SHORT_LONGS,
        )?;
        let pid = get(self.atoms._NET_WM_PID, AtomEnum::CARDINAL.into(), 1)?;
        let client_machine = get(AtomEnum::WM_CLIENT_MACHINE.into(), any, MAX_SHORT_LONGS)?;
        let window_type = get(
            self.atoms._NET_WM_WINDOW_TYPE,
            AtomEnum::ATOM.into(),
            MAX_TYPES,
        )?;
        let reply = |cookie: Cookie<'_, RustConnection, GetPropertyReply>| cookie.reply();
        Ok(Properties {
            net_wm_name: reply(net_wm_name)?,
            wm_name: reply(wm_name)?,
            wm_class: reply(wm_class)?,
            pid: reply(pid)?,
            client_machine: reply(client_machine)?,
            window_type: reply(window_type)?,
        })
    }

    /// The executable name of the window's process, when its pid means a
    /// process of this machine; else empty.
    fn process(&self, properties: &Properties) -> String {
        let Some(pid) = properties
            .pid
            .value32()
            .and_then(|mut values| values.next())
            .filter(|&pid| pid != 0)
        else {
            return String::new();
        };
        let local = if properties.client_machine.type_ == x11rb::NONE {
            self.local_display
        } else {
            let machine = latin1(
                properties
                    .client_machine
                    .value
                    .split(|&b| b == 0)
                    .next()
                    .unwrap_or_default(),
            );
            self.hostname
                .as_deref()
                .is_some_and(|host| same_host(&machine, host))
        };
        if !local {
            return String::new();
        }
        process_name(Path::new("/proc").join(pid.to_string()).as_path())
    }
}

impl ForegroundWindow for X11Foreground {
    fn foreground(&mut self) -> Result<Option<WindowInfo>, CaptureError> {
        const WHAT: &str = "reading the foreground window";
        let Some(window) = self.active_window().map_err(failed(WHAT))? else {
            return Ok(None);
        };
        let described = match self.describe(window).map_err(failed(WHAT))? {
            Described::Gone => {
                // Closed while we read it; the window manager may already
                // have activated another one.
                match self.active_window().map_err(failed(WHAT))? {
                    Some(next) if next != window => self.describe(next).map_err(failed(WHAT))?,
                    _ => Described::Gone,
                }
            }
            described => described,
        };
        Ok(match described {
            Described::Window(info) => Some(info),
            Described::Desktop | Described::Gone => None,
        })
    }
}

/// A text property as a string: `UTF8_STRING` as UTF-8, `STRING` as
/// Latin-1 (ICCCM), anything else (`COMPOUND_TEXT`) as UTF-8 where it
/// is valid, which is right for its ASCII part.
fn text(reply: &GetPropertyReply) -> String {
    if reply.format != 8 {
        return String::new();
    }
    let cut = reply.bytes_after > 0;
    if reply.type_ == u32::from(AtomEnum::STRING) {
        latin1(&reply.value)
    } else {
        utf8(&reply.value, cut)
    }
}

/// The class part of a `WM_CLASS` value (`instance\0class\0`); empty when
/// it has none.
fn class_part(reply: &GetPropertyReply) -> String {
    if reply.format != 8 {
        return String::new();
    }
    reply
        .value
        .split(|&b| b == 0)
        .nth(1)
        .map(latin1)
        .unwrap_or_default()
}

/// ICCCM `STRING`: ISO 8859-1, whose bytes are the first 256 code points.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// UTF-8 with invalid sequences replaced; when the value was `cut` short,
/// a character cut in half at its end is dropped rather than replaced.
fn utf8(bytes: &[u8], cut: bool) -> String {
    let bytes = match std::str::from_utf8(bytes) {
        Err(err) if cut && err.error_len().is_none() => &bytes[..err.valid_up_to()],
        _ => bytes,
    };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `WM_CLIENT_MACHINE` names this host: the same name, or one is
/// the other's first label (`pc7` and `pc7.example.com`), ignoring case.
fn same_host(machine: &str, host: &str) -> bool {
    let first = |name: &str| name.split('.').next().unwrap_or(name).to_ascii_lowercase();
    machine.eq_ignore_ascii_case(host)
        || (machine.contains('.') != host.contains('.') && first(machine) == first(host))
}

/// Whether the display `name` (`[host]:display[.screen]`, or a socket
/// path) is served on this machine.
fn is_local_display(name: &str, hostname: Option<&str>) -> bool {
    if name.starts_with('/') {
        return true;
    }
    let host = name.rsplit_once(':').map_or("", |(host, _)| host);
    let host = host.strip_prefix("unix/").unwrap_or(host);
    host.is_empty()
        || host == "unix"
        || host.eq_ignore_ascii_case("localhost")
        || host == "127.0.0.1"
        || host == "::1"
        || hostname.is_some_and(|own| same_host(host, own))
}

/// The executable name of the process whose `/proc` directory is `dir`:
/// the file name of `exe` (without the ` (deleted)` the kernel adds after
/// an upgrade replaced it), else `comm`; empty when the process is gone.
fn process_name(dir: &Path) -> String {
    let exe = std::fs::read_link(dir.join("exe")).ok();
    if let Some(name) = exe.as_deref().and_then(Path::file_name) {
        let name = name.to_string_lossy();
        return name.strip_suffix(" (deleted)").unwrap_or(&name).to_owned();
    }
    std::fs::read_to_string(dir.join("comm"))
        .map(|comm| comm.trim_end_matches('\n').to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_cut_mid_character_loses_that_character() {
        let bytes = "carte 💳".as_bytes();
        assert_eq!(utf8(&bytes[..bytes.len() - 1], true), "carte ");
        assert_eq!(utf8(&bytes[..bytes.len() - 1], false), "carte \u{fffd}");
        assert_eq!(utf8(bytes, false), "carte 💳");
    }

    #[test]
    fn strings_are_latin1() {
        assert_eq!(latin1(b"caf\xe9"), "café");
    }

    #[test]
    fn local_displays() {
        for name in [
            ":0",
            ":0.1",
            "unix:3",
            "localhost:10.0",
            "/tmp/launch-x/org.x:0",
            "pc7:0",
        ] {
            assert!(is_local_display(name, Some("pc7")), "{name}");
        }
        for name in ["other:0", "10.0.0.5:0"] {
            assert!(!is_local_display(name, Some("pc7")), "{name}");
        }
    }

    #[test]
    fn host_names_match_with_or_without_domain() {
        assert!(same_host("pc7", "pc7"));
        assert!(same_host("PC7.example.com", "pc7"));
        assert!(same_host("pc7", "pc7.example.com"));
        assert!(!same_host("pc70", "pc7"));
        assert!(!same_host("pc7.a.com", "pc7.b.com"));
    }

    #[test]
    fn this_process_is_named_by_its_executable() {
        let exe = std::env::current_exe().unwrap();
        let name = process_name(Path::new("/proc/self"));
        assert_eq!(
            Some(name.as_str()),
            exe.file_name().and_then(|n| n.to_str())
        );
        assert_eq!(process_name(Path::new("/proc/no-such-process")), "");
    }

    #[test]
    fn probe_is_send() {
        fn send<T: Send>() {}
        send::<X11Foreground>();
    }
}
