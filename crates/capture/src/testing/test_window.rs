//! A top-level window of the test's own, brought to the front: what the
//! foreground-window probe and the agent's pause rules read under wine.

use std::thread;
use std::time::{Duration, Instant};

use windows::Win32::Foundation::{HWND, LPARAM, LRESULT, WPARAM};
use windows::Win32::System::LibraryLoader::GetModuleHandleW;
use windows::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DestroyWindow, DispatchMessageW, GetForegroundWindow, MSG,
    PM_REMOVE, PeekMessageW, RegisterClassW, SW_SHOW, SetForegroundWindow, SetWindowTextW,
    ShowWindow, TranslateMessage, WINDOW_EX_STYLE, WNDCLASSW, WS_OVERLAPPEDWINDOW, WS_VISIBLE,
};
use windows::core::{PCWSTR, w};

/// The test windows' class name.
pub const TEST_WINDOW_CLASS: &str = "DeskrecForegroundTest";

/// How long the window may take to come to the front.
const FRONT_LIMIT: Duration = Duration::from_secs(10);

/// A window of class [`TEST_WINDOW_CLASS`], destroyed when dropped. Windows belong
/// to the thread that created them: create, use and drop it on one.
pub struct TestWindow(HWND);

unsafe extern "system" fn window_proc(
    window: HWND,
    message: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    // SAFETY: the arguments are Windows' own, passed on unchanged.
    unsafe { DefWindowProcW(window, message, wparam, lparam) }
}

/// `text` as a NUL-terminated UTF-16 string.
fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain([0]).collect()
}

impl TestWindow {
    /// Registers the class (once per thread is harmless: a second
    /// registration fails and the first one serves) and shows a window
    /// titled `title`.
    pub fn show(title: &str) -> Self {
        // SAFETY: the class name is a static string; the window proc
        // is a plain function; the title outlives the call.
        unsafe {
            let instance = GetModuleHandleW(None).expect("this exe's module");
            let class = WNDCLASSW {
                lpfnWndProc: Some(window_proc),
                hInstance: instance.into(),
                lpszClassName: w!("DeskrecForegroundTest"),
                ..Default::default()
            };
            RegisterClassW(&raw const class);
            let title = wide(title);
            let window = CreateWindowExW(
                WINDOW_EX_STYLE::default(),
                w!("DeskrecForegroundTest"),
                PCWSTR(title.as_ptr()),
                WS_OVERLAPPEDWINDOW | WS_VISIBLE,
                100,
                100,
                400,
                300,
                None,
                None,
                Some(instance.into()),
                None,
            )
            .expect("creating a window");
            let _ = ShowWindow(window, SW_SHOW);
            Self(window)
        }
    }

    /// Asks for the front and handles this thread's messages until
    /// `GetForegroundWindow` names the window.
    pub fn bring_to_front(&self) {
        let started = Instant::now();
        // SAFETY: a window of this thread.
        let _ = unsafe { SetForegroundWindow(self.0) };
        loop {
            pump_messages();
            // SAFETY: no arguments.
            if unsafe { GetForegroundWindow() } == self.0 {
                eprintln!("in front after {:?}", started.elapsed());
                return;
            }
            assert!(
                started.elapsed() < FRONT_LIMIT,
                "the test window did not come to the front within {FRONT_LIMIT:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Changes the title (`SetWindowTextW`).
    pub fn set_title(&self, title: &str) {
        let title = wide(title);
        // SAFETY: a window of this thread; the title outlives the call.
        unsafe { SetWindowTextW(self.0, PCWSTR(title.as_ptr())) }.expect("setting the title");
        pump_messages();
    }
}

impl Drop for TestWindow {
    fn drop(&mut self) {
        // SAFETY: a window of this thread, destroyed once.
        let _ = unsafe { DestroyWindow(self.0) };
        pump_messages();
    }
}

/// Handles the messages waiting for this thread.
fn pump_messages() {
    let mut message = MSG::default();
    // SAFETY: `message` outlives each call.
    unsafe {
        while PeekMessageW(&raw mut message, None, 0, 0, PM_REMOVE).as_bool() {
            let _ = TranslateMessage(&raw const message);
            DispatchMessageW(&raw const message);
        }
    }
}
