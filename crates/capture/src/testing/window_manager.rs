//! [`WindowManager`]: an X client that plays the part of a window manager
//! for the foreground-window tests (Xvfb runs none).

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    self, AtomEnum, ConnectionExt as _, CreateWindowAux, PropMode, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::Xvfb;

/// A client that creates top-level windows with EWMH and ICCCM properties
/// (title, class, pid, client machine, window type) and names one of them
/// in the root window's `_NET_ACTIVE_WINDOW`, as a window manager would.
///
/// Every method returns once the X server has carried it out, so a probe
/// called afterwards sees it. Its windows go when it is dropped.
pub struct WindowManager {
    conn: RustConnection,
    root: Window,
}

impl WindowManager {
    /// Connects to `xvfb`.
    #[must_use]
    pub fn new(xvfb: &Xvfb) -> Self {
        let (conn, screen_num) =
            RustConnection::connect(Some(xvfb.display())).expect("connecting to Xvfb");
        let root = conn.setup().roots[screen_num].root;
        Self { conn, root }
    }

    /// Maps a 200x100 top-level window with `title` as its `_NET_WM_NAME`
    /// (UTF-8) and `instance\0class\0` as its `WM_CLASS`. It has no
    /// `WM_NAME`, `_NET_WM_PID` or `WM_CLIENT_MACHINE` until set.
    #[must_use]
    pub fn create(&self, title: &str, instance: &str, class: &str) -> Window {
        let window = self.conn.generate_id().expect("an X id");
        xproto::create_window(
            &self.conn,
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            self.root,
            10,
            10,
            200,
            100,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new(),
        )
        .expect("creating a window");
        let wm_class = format!("{instance}\0{class}\0");
        self.conn
            .change_property8(
                PropMode::REPLACE,
                window,
                AtomEnum::WM_CLASS,
                AtomEnum::STRING,
                wm_class.as_bytes(),
            )
            .expect("setting WM_CLASS");
        xproto::map_window(&self.conn, window).expect("mapping a window");
        self.set_title(window, title);
        window
    }

    /// Sets `_NET_WM_NAME` (type `UTF8_STRING`).
    pub fn set_title(&self, window: Window, title: &str) {
        let (name, utf8) = (self.atom("_NET_WM_NAME"), self.atom("UTF8_STRING"));
        self.conn
            .change_property8(PropMode::REPLACE, window, name, utf8, title.as_bytes())
            .expect("setting _NET_WM_NAME");
        self.sync();
    }

    /// Sets the ICCCM `WM_NAME` (type `STRING`, Latin-1) and removes
    /// `_NET_WM_NAME`, as an old client would have it.
    pub fn set_legacy_title(&self, window: Window, latin1: &[u8]) {
        let name = self.atom("_NET_WM_NAME");
        self.conn
            .delete_property(window, name)
            .expect("deleting _NET_WM_NAME");
        self.conn
            .change_property8(
                PropMode::REPLACE,
                window,
                AtomEnum::WM_NAME,
                AtomEnum::STRING,
                latin1,
            )
            .expect("setting WM_NAME");
        self.sync();
    }

    /// Sets `_NET_WM_PID` and, when given, `WM_CLIENT_MACHINE` (EWMH asks
    /// clients to set both).
    pub fn set_pid(&self, window: Window, pid: u32, machine: Option<&str>) {
        let net_wm_pid = self.atom("_NET_WM_PID");
        self.conn
            .change_property32(
                PropMode::REPLACE,
                window,
                net_wm_pid,
                AtomEnum::CARDINAL,
                &[pid],
            )
            .expect("setting _NET_WM_PID");
        if let Some(machine) = machine {
            self.conn
                .change_property8(
                    PropMode::REPLACE,
                    window,
                    AtomEnum::WM_CLIENT_MACHINE,
                    AtomEnum::STRING,
                    machine.as_bytes(),
                )
                .expect("setting WM_CLIENT_MACHINE");
        }
        self.sync();
    }

    /// Marks the window as the desktop (`_NET_WM_WINDOW_TYPE_DESKTOP`),
    /// like a file manager's desktop window.
    pub fn make_desktop(&self, window: Window) {
        let (window_type, desktop) = (
            self.atom("_NET_WM_WINDOW_TYPE"),
            self.atom("_NET_WM_WINDOW_TYPE_DESKTOP"),
        );
        self.conn
            .change_property32(
                PropMode::REPLACE,
                window,
                window_type,
                AtomEnum::ATOM,
                &[desktop],
            )
            .expect("setting _NET_WM_WINDOW_TYPE");
        self.sync();
    }

    /// Names `window` in `_NET_ACTIVE_WINDOW` on the root window; `None`
    /// writes 0 (nothing active).
    pub fn activate(&self, window: Option<Window>) {
        let active = self.atom("_NET_ACTIVE_WINDOW");
        self.conn
            .change_property32(
                PropMode::REPLACE,
                self.root,
                active,
                AtomEnum::WINDOW,
                &[window.unwrap_or(x11rb::NONE)],
            )
            .expect("setting _NET_ACTIVE_WINDOW");
        self.sync();
    }

    /// Removes `_NET_ACTIVE_WINDOW` from the root window (no EWMH window
    /// manager).
    pub fn forget_active(&self) {
        let active = self.atom("_NET_ACTIVE_WINDOW");
        self.conn
            .delete_property(self.root, active)
            .expect("deleting _NET_ACTIVE_WINDOW");
        self.sync();
    }

    /// Destroys `window` and leaves `_NET_ACTIVE_WINDOW` alone (a window
    /// manager updates it only afterwards).
    pub fn destroy(&self, window: Window) {
        self.conn
            .destroy_window(window)
            .expect("destroying a window");
        self.sync();
    }

    fn atom(&self, name: &str) -> u32 {
        self.conn
            .intern_atom(false, name.as_bytes())
            .expect("interning an atom")
            .reply()
            .expect("interning an atom")
            .atom
    }

    /// Waits until the server has handled every request sent so far.
    fn sync(&self) {
        self.conn
            .get_input_focus()
            .expect("a round trip")
            .reply()
            .expect("a round trip");
    }
}
