//! The WTS session watcher (Windows).
//!
//! A dedicated thread owns a hidden top-level window registered with
//! `WTSRegisterSessionNotification` for this process's session, and runs
//! its message loop:
//!
//! - `WM_WTSSESSION_CHANGE`: logon and (console or remote) connect send
//!   the session's user again; logoff and (console or remote) disconnect
//!   send nobody; lock and unlock send [`SessionEvent::Locked`];
//! - `WM_QUERYENDSESSION` (logoff, shutdown, restart, an installer closing
//!   the app): sets the shutdown block reason Windows shows on its "apps are
//!   preventing shutdown" screen, sends [`SessionEvent::Ending`] and does
//!   not answer until the agent drops the guard (at most
//!   [`ENDING_TIMEOUT`]), so the segment being written is finished before
//!   Windows ends the process;
//! - `WM_ENDSESSION` with `FALSE`: the end was cancelled
//!   ([`SessionEvent::EndCancelled`]).
//!
//! The window is top-level because Windows sends `WM_QUERYENDSESSION` only
//! to top-level windows, not to message-only ones; it is never shown.
//!
//! A disconnected session (fast user switching to another user, or an RDP
//! client that went away) counts as nobody: its screen is not rendered, and
//! whoever is at the PC is someone else, whose own session records them.

use std::ffi::c_void;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use windows::Win32::Foundation::{
    ERROR_CLASS_ALREADY_EXISTS, HINSTANCE, HWND, LPARAM, LRESULT, WPARAM,
};
use windows::Win32::System::LibraryLoader::GetModuleHandleW;
use windows::Win32::System::RemoteDesktop::{
    NOTIFY_FOR_THIS_SESSION, WTS_CURRENT_SERVER_HANDLE, WTS_CURRENT_SESSION, WTS_INFO_CLASS,
    WTSDomainName, WTSFreeMemory, WTSQuerySessionInformationW, WTSRegisterSessionNotification,
    WTSUnRegisterSessionNotification, WTSUserName,
};
use windows::Win32::System::Shutdown::{ShutdownBlockReasonCreate, ShutdownBlockReasonDestroy};
use windows::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DestroyWindow, DispatchMessageW, ENDSESSION_LOGOFF,
    GWLP_USERDATA, GetMessageW, GetWindowLongPtrW, MSG, PostMessageW, PostQuitMessage,
    RegisterClassExW, SetWindowLongPtrW, TranslateMessage, WINDOW_EX_STYLE, WM_APP, WM_CLOSE,
    WM_ENDSESSION, WM_QUERYENDSESSION, WM_WTSSESSION_CHANGE, WNDCLASSEXW, WS_OVERLAPPED,
    WTS_CONSOLE_CONNECT, WTS_CONSOLE_DISCONNECT, WTS_REMOTE_CONNECT, WTS_REMOTE_DISCONNECT,
    WTS_SESSION_LOCK, WTS_SESSION_LOGOFF, WTS_SESSION_LOGON, WTS_SESSION_UNLOCK,
};
use windows::core::{PCWSTR, PWSTR, w};

use super::{Ending, SessionEvent, SessionWatcher, WatchGuard};
use crate::AgentError;

/// Longest the watcher holds a logoff or shutdown for the agent to finish
/// its segment (a few hundred milliseconds normally). Past it Windows is
/// let go on regardless: a stuck agent must not keep a PC from shutting
/// down.
pub const ENDING_TIMEOUT: Duration = Duration::from_secs(20);

/// The hidden window's class (one per process, shared by every watcher).
const CLASS_NAME: PCWSTR = w!("DeskrecSessionWatcher");
/// The hidden window's title: the name Windows shows beside the block
/// reason on its shutdown screen.
const WINDOW_TITLE: PCWSTR = w!("Deskrec");
/// What Windows shows while the watcher holds a logoff or shutdown.
const BLOCK_REASON: PCWSTR = w!("Deskrec is finishing the screen recording");
/// Posted by the guard to stop the watcher's thread (private to the class:
/// `WM_APP` and above mean nothing to Windows).
const WM_STOP: u32 = WM_APP + 1;
/// How often the held `WM_QUERYENDSESSION` checks whether the guard was
/// released.
const ENDING_POLL: Duration = Duration::from_millis(20);
/// Longest dropping the guard waits for the thread: it may be holding an
/// end (up to [`ENDING_TIMEOUT`]) or blocked on a full events channel.
const STOP_TIMEOUT: Duration = Duration::from_secs(25);

/// Session notifications from WTS on a hidden top-level window.
#[derive(Debug)]
pub struct WtsWatcher {
    ending_timeout: Duration,
}

impl Default for WtsWatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl WtsWatcher {
    /// The watcher for this process's session.
    pub fn new() -> Self {
        Self {
            ending_timeout: ENDING_TIMEOUT,
        }
    }
}

impl SessionWatcher for WtsWatcher {
    /// Creates the window and registers it on a thread of its own, and
    /// returns once both are done (a few milliseconds), or with what failed.
    fn watch(
        self: Box<Self>,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<WatchGuard, AgentError> {
        Ok(Box::new(Watch::start(events, self.ending_timeout)?))
    }

    fn name(&self) -> &'static str {
        "wts"
    }
}

/// A running watcher thread; dropping it stops the thread, which destroys
/// the window and unregisters the notifications.
struct Watch {
    /// The hidden window, as an integer: `HWND` is neither `Send` nor
    /// `Sync`, and the guard only posts to it.
    hwnd: usize,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts the thread and waits until its window is registered.
    fn start(
        events: mpsc::Sender<SessionEvent>,
        ending_timeout: Duration,
    ) -> Result<Self, AgentError> {
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("deskrec-wts".into())
            .spawn(move || run(events, ending_timeout, ready_tx))
            .map_err(|e| AgentError::SessionWatcher {
                action: "start its thread",
                source: e.into(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(hwnd)) => Ok(Self {
                hwnd,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The thread ended without a word: it panicked.
            Err(_) => {
                let _ = thread.join();
                Err(AgentError::SessionWatcherStopped)
            }
        }
    }

    /// The hidden window, for tests that send it messages.
    #[cfg(test)]
    fn hwnd(&self) -> HWND {
        HWND(self.hwnd as *mut c_void)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // A thread that stopped already (the events channel was closed)
        // destroyed its window: nothing to post to, and the handle must not
        // reach whatever window may get it next.
        if !thread.is_finished() {
            // SAFETY: posting a message without pointers has no memory
            // effects; a handle destroyed meanwhile makes the call fail.
            let _ = unsafe {
                PostMessageW(
                    Some(HWND(self.hwnd as *mut c_void)),
                    WM_STOP,
                    WPARAM(0),
                    LPARAM(0),
                )
            };
        }
        // Bounded: the thread may be holding an end or waiting on a full
        // channel that nobody reads any more; the process must still be
        // able to stop. A thread left behind ends with the process.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(ENDING_POLL);
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("the WTS session watcher did not stop in time; leaving it behind");
        }
    }
}

/// The watcher thread: window, registration, the current user, then the
/// message loop until [`WM_STOP`] or the events channel closes.
fn run(
    events: mpsc::Sender<SessionEvent>,
    ending_timeout: Duration,
    ready: std_mpsc::Sender<Result<usize, AgentError>>,
) {
    // Declared before the window so it outlives it: the window procedure
    // reads it until the window is destroyed.
    let state = WindowState {
        events,
        ending_timeout,
    };
    let window = match Window::create(&state) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(window.hwnd.0 as usize));
    if !state.send(SessionEvent::User(session_login())) {
        return;
    }
    tracing::debug!("watching WTS session notifications");
    let mut msg = MSG::default();
    loop {
        // SAFETY: `msg` is a valid MSG to fill.
        let got = unsafe { GetMessageW(&mut msg, None, 0, 0) };
        match got.0 {
            0 => break, // WM_QUIT
            -1 => {
                tracing::warn!(error = %windows::core::Error::from_thread(), "the WTS session watcher's message loop failed");
                break;
            }
            _ => {
                // SAFETY: `msg` was filled by GetMessageW.
                unsafe {
                    let _ = TranslateMessage(&msg);
                    DispatchMessageW(&msg);
                }
            }
        }
    }
    tracing::debug!("stopped watching WTS session notifications");
}

/// What the window procedure works with, pointed to by the window's
/// `GWLP_USERDATA`.
struct WindowState {
    events: mpsc::Sender<SessionEvent>,
    ending_timeout: Duration,
}

impl WindowState {
    /// Sends an event; when nobody listens any more, ends the message loop
    /// and returns `false`. Blocks while the channel is full: the agent
    /// reads it continuously.
    fn send(&self, event: SessionEvent) -> bool {
        if self.events.blocking_send(event).is_ok() {
            return true;
        }
        tracing::debug!("session events are no longer read; stopping the WTS watcher");
        // SAFETY: no arguments to get wrong; it posts to this thread.
        unsafe { PostQuitMessage(0) };
        false
    }

    /// Turns a change into its event; the window procedure's answer.
    fn handle(&self, hwnd: HWND, change: Change) -> LRESULT {
        let event = match change {
            Change::Ending(why) => {
                self.hold_end(hwnd, why);
                // TRUE: the session may end (now that the segment is done).
                return LRESULT(1);
            }
            Change::CurrentUser => SessionEvent::User(session_login()),
            Change::NoUser => SessionEvent::User(String::new()),
            Change::Locked(locked) => SessionEvent::Locked(locked),
            Change::EndCancelled => SessionEvent::EndCancelled,
        };
        // A closed channel ends the loop (in `send`); nothing else to do.
        self.send(event);
        LRESULT(0)
    }

    /// Holds a logoff or shutdown until the agent drops the guard of the
    /// [`SessionEvent::Ending`] it is sent, or [`WindowState::ending_timeout`].
    fn hold_end(&self, hwnd: HWND, why: &'static str) {
        // SAFETY: `hwnd` is this thread's window; the string is static.
        if let Err(e) = unsafe { ShutdownBlockReasonCreate(hwnd, BLOCK_REASON) } {
            // Windows then shows a generic "this app is preventing
            // shutdown"; holding still works.
            tracing::warn!(error = %e, "cannot set the shutdown block reason");
        }
        let started = Instant::now();
        let (guard, done) = Ending::new(why);
        tracing::info!(why, "holding the {why} until the recording is finished");
        if self.send(SessionEvent::Ending(guard)) {
            if wait_released(done, self.ending_timeout) {
                tracing::info!(
                    why,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "recording finished; letting the {why} go on"
                );
            } else {
                tracing::warn!(
                    why,
                    timeout_s = self.ending_timeout.as_secs(),
                    "the recording did not finish in time; letting the {why} go on"
                );
            }
        }
        // SAFETY: as above.
        if let Err(e) = unsafe { ShutdownBlockReasonDestroy(hwnd) } {
            tracing::debug!(error = %e, "cannot clear the shutdown block reason");
        }
    }
}

/// Waits until `done` completes (the guard was released or dropped), at
/// most `timeout`; whether it did. Polls: this thread is not a tokio one,
/// and the wait is short and rare.
fn wait_released(mut done: oneshot::Receiver<()>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match done.try_recv() {
            Ok(()) | Err(oneshot::error::TryRecvError::Closed) => return true,
            Err(oneshot::error::TryRecvError::Empty) if Instant::now() >= deadline => {
                return false;
            }
            Err(oneshot::error::TryRecvError::Empty) => std::thread::sleep(ENDING_POLL),
        }
    }
}

/// A session change a window message stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Someone is (again) at this session: send its user.
    CurrentUser,
    /// Nobody is at this session any more.
    NoUser,
    /// Locked (`true`) or unlocked.
    Locked(bool),
    /// The session or system is ending (`logoff`, `shutdown`).
    Ending(&'static str),
    /// The announced end was cancelled.
    EndCancelled,
}

/// The change a window message stands for, if any. Pure, so the mapping is
/// tested without a session.
fn change_for(msg: u32, wparam: usize, lparam: isize) -> Option<Change> {
    match msg {
        WM_WTSSESSION_CHANGE => match u32::try_from(wparam).ok()? {
            WTS_SESSION_LOGON | WTS_CONSOLE_CONNECT | WTS_REMOTE_CONNECT => {
                Some(Change::CurrentUser)
            }
            WTS_SESSION_LOGOFF | WTS_CONSOLE_DISCONNECT | WTS_REMOTE_DISCONNECT => {
                Some(Change::NoUser)
            }
            WTS_SESSION_LOCK => Some(Change::Locked(true)),
            WTS_SESSION_UNLOCK => Some(Change::Locked(false)),
            _ => None,
        },
        // lParam is a set of ENDSESSION_ flags; none (0) is a shutdown or
        // restart. ENDSESSION_CLOSEAPP alone (an installer or the restart
        // manager closing the app) ends the process all the same, so it is
        // held like a shutdown.
        WM_QUERYENDSESSION => Some(Change::Ending(
            if lparam as usize & ENDSESSION_LOGOFF as usize != 0 {
                "logoff"
            } else {
                "shutdown"
            },
        )),
        // wParam FALSE: the end announced by WM_QUERYENDSESSION is not
        // happening (another app refused it, the user cancelled).
        WM_ENDSESSION if wparam == 0 => Some(Change::EndCancelled),
        _ => None,
    }
}

/// The window procedure of the hidden window.
unsafe extern "system" fn window_proc(
    hwnd: HWND,
    msg: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    match msg {
        WM_STOP => {
            // SAFETY: no arguments to get wrong; it posts to this thread.
            unsafe { PostQuitMessage(0) };
            return LRESULT(0);
        }
        // Only the guard closes this window. `taskkill` without /f posts
        // WM_CLOSE to every top-level window of the process: session
        // tracking must not silently stop on it.
        WM_CLOSE => return LRESULT(0),
        _ => {}
    }
    // SAFETY: GWLP_USERDATA is null until `Window::create` stores a pointer
    // to the thread's WindowState there, which outlives the window (it is
    // cleared before the window is destroyed). Only this thread runs this
    // procedure, and the state is only read.
    let state = unsafe { (GetWindowLongPtrW(hwnd, GWLP_USERDATA) as *const WindowState).as_ref() };
    if let (Some(state), Some(change)) = (state, change_for(msg, wparam.0, lparam.0)) {
        return state.handle(hwnd, change);
    }
    // SAFETY: the arguments are the ones Windows passed in.
    unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) }
}

/// The hidden window, registered for session notifications; destroyed and
/// unregistered when dropped.
struct Window {
    hwnd: HWND,
}

impl Window {
    /// Creates the window on this thread and registers it.
    fn create(state: &WindowState) -> Result<Self, AgentError> {
        let fail = |action: &'static str, e: windows::core::Error| AgentError::SessionWatcher {
            action,
            source: e.into(),
        };
        // SAFETY: None asks for this process's executable; nothing to free.
        let instance: HINSTANCE = unsafe { GetModuleHandleW(None) }
            .map_err(|e| fail("find the agent's module handle", e))?
            .into();
        let class = WNDCLASSEXW {
            cbSize: std::mem::size_of::<WNDCLASSEXW>() as u32,
            lpfnWndProc: Some(window_proc),
            hInstance: instance,
            lpszClassName: CLASS_NAME,
            ..Default::default()
        };
        // SAFETY: `class` is fully initialised; its strings are static.
        if unsafe { RegisterClassExW(&class) } == 0 {
            let e = windows::core::Error::from_thread();
            // Another watcher of this process registered it: same procedure.
            if e.code() != ERROR_CLASS_ALREADY_EXISTS.to_hresult() {
                return Err(fail("register the hidden window's class", e));
            }
        }
        // SAFETY: the class is registered; no parent makes it top-level;
        // without WS_VISIBLE, and never shown, it stays hidden.
        let hwnd = unsafe {
            CreateWindowExW(
                WINDOW_EX_STYLE::default(),
                CLASS_NAME,
                WINDOW_TITLE,
                WS_OVERLAPPED,
                0,
                0,
                0,
                0,
                None,
                None,
                Some(instance),
                None,
            )
        }
        .map_err(|e| {
            fail(
                "create the hidden window that receives session notifications",
                e,
            )
        })?;
        let window = Self { hwnd };
        // SAFETY: see window_proc; `state` outlives the window (run()).
        unsafe {
            SetWindowLongPtrW(hwnd, GWLP_USERDATA, state as *const WindowState as isize);
        }
        // SAFETY: `hwnd` is this thread's window.
        unsafe { WTSRegisterSessionNotification(hwnd, NOTIFY_FOR_THIS_SESSION) }.map_err(|e| {
            fail(
                "register for session notifications (WTSRegisterSessionNotification; \
                 is the Remote Desktop Services service running?)",
                e,
            )
        })?;
        Ok(window)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `hwnd` is this thread's window, alive until DestroyWindow.
        unsafe {
            // Fails harmlessly when registration failed.
            let _ = WTSUnRegisterSessionNotification(self.hwnd);
            // No message reaches the state from here on.
            SetWindowLongPtrW(self.hwnd, GWLP_USERDATA, 0);
            if let Err(e) = DestroyWindow(self.hwnd) {
                tracing::debug!(error = %e, "cannot destroy the session watcher's window");
            }
        }
        // The class stays registered: another watcher may use it, and the
        // process's classes go with it.
    }
}

/// The user of this session as `DOMAIN\user` (from WTS), or the user
/// running the process when WTS does not say.
fn session_login() -> String {
    match wts_login() {
        Ok(login) if !login.is_empty() => login,
        Ok(_) => {
            tracing::debug!("WTS names no user for this session; using the process's user");
            crate::engine::process_login()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask WTS for the session's user; using the process's user");
            crate::engine::process_login()
        }
    }
}

/// `DOMAIN\user` of the current session (just `user` without a domain;
/// empty when nobody is logged on).
fn wts_login() -> windows::core::Result<String> {
    let user = session_string(WTSUserName)?;
    let domain = session_string(WTSDomainName)?;
    Ok(if domain.is_empty() || user.is_empty() {
        user
    } else {
        format!("{domain}\\{user}")
    })
}

/// A string property of the current session.
fn session_string(class: WTS_INFO_CLASS) -> windows::core::Result<String> {
    let mut buffer = PWSTR::null();
    let mut bytes = 0u32;
    // SAFETY: both out-pointers are valid; on success `buffer` is a
    // NUL-terminated string WTS allocated, freed below exactly once.
    unsafe {
        WTSQuerySessionInformationW(
            Some(WTS_CURRENT_SERVER_HANDLE),
            WTS_CURRENT_SESSION,
            class,
            &mut buffer,
            &mut bytes,
        )?;
        let value = if buffer.is_null() {
            String::new()
        } else {
            String::from_utf16_lossy(buffer.as_wide())
        };
        WTSFreeMemory(buffer.0.cast());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows::Win32::UI::WindowsAndMessaging::{IsWindow, SendMessageW};

    /// The next event, failing the test after a few seconds.
    fn next(rx: &mut mpsc::Receiver<SessionEvent>) -> SessionEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.try_recv() {
                Ok(event) => return event,
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no session event: {e}"),
            }
        }
    }

    /// Posts a message to the watcher's window, as WTS would.
    fn post(watch: &Watch, msg: u32, wparam: u32, lparam: isize) {
        // SAFETY: posting to a live window.
        unsafe {
            PostMessageW(
                Some(watch.hwnd()),
                msg,
                WPARAM(wparam as usize),
                LPARAM(lparam),
            )
        }
        .unwrap();
    }

    /// Sends WM_QUERYENDSESSION from another thread, as Windows does at a
    /// logoff or shutdown; the thread returns the window's answer.
    fn query_end(watch: &Watch, lparam: u32) -> JoinHandle<isize> {
        let hwnd = watch.hwnd;
        std::thread::spawn(move || {
            // SAFETY: a message without pointers to a live window.
            unsafe {
                SendMessageW(
                    HWND(hwnd as *mut c_void),
                    WM_QUERYENDSESSION,
                    Some(WPARAM(0)),
                    Some(LPARAM(lparam as isize)),
                )
            }
            .0
        })
    }

    fn user(event: SessionEvent) -> String {
        match event {
            SessionEvent::User(login) => login,
            other => panic!("expected a user, got {other:?}"),
        }
    }

    fn is_window(hwnd: HWND) -> bool {
        // SAFETY: only asks whether the handle names a window.
        unsafe { IsWindow(Some(hwnd)) }.as_bool()
    }

    #[test]
    fn messages_map_to_session_changes() {
        let wts = |code: u32| change_for(WM_WTSSESSION_CHANGE, code as usize, 1);
        assert_eq!(wts(WTS_SESSION_LOGON), Some(Change::CurrentUser));
        assert_eq!(wts(WTS_CONSOLE_CONNECT), Some(Change::CurrentUser));
        assert_eq!(wts(WTS_REMOTE_CONNECT), Some(Change::CurrentUser));
        assert_eq!(wts(WTS_SESSION_LOGOFF), Some(Change::NoUser));
        assert_eq!(wts(WTS_CONSOLE_DISCONNECT), Some(Change::NoUser));
        assert_eq!(wts(WTS_REMOTE_DISCONNECT), Some(Change::NoUser));
        assert_eq!(wts(WTS_SESSION_LOCK), Some(Change::Locked(true)));
        assert_eq!(wts(WTS_SESSION_UNLOCK), Some(Change::Locked(false)));
        // WTS_SESSION_REMOTE_CONTROL and others change nothing here.
        assert_eq!(wts(9), None);
        let logoff = ENDSESSION_LOGOFF as isize;
        assert_eq!(
            change_for(WM_QUERYENDSESSION, 0, logoff),
            Some(Change::Ending("logoff"))
        );
        assert_eq!(
            change_for(WM_QUERYENDSESSION, 0, 0),
            Some(Change::Ending("shutdown"))
        );
        // ENDSESSION_CLOSEAPP (1): an installer closing the agent.
        assert_eq!(
            change_for(WM_QUERYENDSESSION, 0, 1),
            Some(Change::Ending("shutdown"))
        );
        assert_eq!(change_for(WM_ENDSESSION, 0, 0), Some(Change::EndCancelled));
        assert_eq!(change_for(WM_ENDSESSION, 1, logoff), None);
        assert_eq!(change_for(WM_CLOSE, 0, 0), None);
    }

    #[test]
    fn window_messages_become_session_events() {
        let (tx, mut rx) = mpsc::channel(8);
        let watch = Watch::start(tx, ENDING_TIMEOUT).unwrap();
        let hwnd = watch.hwnd();
        assert!(is_window(hwnd));
        let login = user(next(&mut rx));
        assert!(
            !login.is_empty(),
            "the first event names the session's user"
        );

        post(&watch, WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK, 1);
        assert!(matches!(next(&mut rx), SessionEvent::Locked(true)));
        post(&watch, WM_WTSSESSION_CHANGE, WTS_SESSION_UNLOCK, 1);
        assert!(matches!(next(&mut rx), SessionEvent::Locked(false)));
        post(&watch, WM_WTSSESSION_CHANGE, WTS_SESSION_LOGOFF, 1);
        assert_eq!(user(next(&mut rx)), "");
        post(&watch, WM_WTSSESSION_CHANGE, WTS_SESSION_LOGON, 1);
        assert_eq!(user(next(&mut rx)), login);
        // The window ignores WM_CLOSE (taskkill without /f).
        post(&watch, WM_CLOSE, 0, 0);

        // A logoff is held until the guard is released, then allowed.
        let answer = query_end(&watch, ENDSESSION_LOGOFF);
        let SessionEvent::Ending(guard) = next(&mut rx) else {
            panic!("expected Ending")
        };
        assert_eq!(guard.why(), "logoff");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!answer.is_finished(), "the logoff waits for the guard");
        guard.release();
        assert_eq!(answer.join().unwrap(), 1, "TRUE: the logoff may go on");

        // A shutdown, let go by dropping the guard.
        let answer = query_end(&watch, 0);
        let SessionEvent::Ending(guard) = next(&mut rx) else {
            panic!("expected Ending")
        };
        assert_eq!(guard.why(), "shutdown");
        std::thread::sleep(Duration::from_millis(100));
        assert!(!answer.is_finished(), "the shutdown waits for the guard");
        drop(guard);
        assert_eq!(answer.join().unwrap(), 1);

        // Cancelled.
        post(&watch, WM_ENDSESSION, 0, 0);
        assert!(matches!(next(&mut rx), SessionEvent::EndCancelled));
        assert!(is_window(hwnd), "WM_CLOSE left the window alone");

        // Dropping the guard stops the thread: the window is gone and the
        // events sender with it.
        drop(watch);
        assert!(!is_window(hwnd));
        assert!(rx.try_recv().is_err());
        assert!(
            rx.blocking_recv().is_none(),
            "the watcher's sender is dropped"
        );
    }

    #[test]
    fn a_held_end_is_let_go_after_the_timeout() {
        let (tx, mut rx) = mpsc::channel(8);
        let watch = Watch::start(tx, Duration::from_millis(300)).unwrap();
        user(next(&mut rx));
        let started = Instant::now();
        let answer = query_end(&watch, 0);
        let SessionEvent::Ending(guard) = next(&mut rx) else {
            panic!("expected Ending")
        };
        // The guard is kept: the agent is stuck.
        assert_eq!(answer.join().unwrap(), 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        drop(guard);
    }

    #[test]
    fn the_watcher_stops_when_nobody_reads_its_events() {
        let (tx, mut rx) = mpsc::channel(8);
        let watch = Watch::start(tx, ENDING_TIMEOUT).unwrap();
        let hwnd = watch.hwnd();
        user(next(&mut rx));
        drop(rx);
        post(&watch, WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK, 1);
        let thread = watch.thread.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(thread.is_finished(), "the thread ends once sending fails");
        assert!(!is_window(hwnd), "and its window is destroyed");
        // Dropping the guard of a stopped watcher returns at once.
        let started = Instant::now();
        drop(watch);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_platform_watcher_sends_the_user_first() {
        let watcher = crate::session::platform_watcher();
        assert_eq!(watcher.name(), "wts");
        let (tx, mut rx) = mpsc::channel(8);
        let guard = watcher.watch(tx).unwrap();
        assert!(!user(next(&mut rx)).is_empty());
        drop(guard);
        assert!(rx.blocking_recv().is_none());
    }
}
