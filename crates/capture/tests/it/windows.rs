//! The Windows source's start-up and error paths, run for real on Windows
//! and under wine by `cargo xtask windows -p deskrec-capture`.
//!
//! Under wine there is no Windows.Graphics.Capture and no desktop
//! duplication, so these tests mostly prove that both fail cleanly: a
//! [`CaptureError::Unavailable`] that names each method and why, within a
//! bounded time, never a panic or a hang. On a real Windows desktop the same
//! tests capture frames instead and check their geometry.
//!
//! The foreground-window probe works under wine as on Windows: the test
//! shows a window of its own, brings it to the front and reads it back.

#![cfg(windows)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use deskrec_capture::testing::{TEST_WINDOW_CLASS, TestWindow};
use deskrec_capture::windows::{BlankReason, current_layout, is_blank_frame};
use deskrec_capture::{
    CaptureError, CaptureMethod, ForegroundWindow, FrameSource, WindowInfo, WindowsForeground,
    WindowsOptions, WindowsSource,
};

/// Longest any start-up may take: two methods, each with a 2 s wait for
/// first pictures at most, plus a slow CI machine.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on its own thread and fails the test when it takes longer than
/// `limit` (a hung capture API must not hang CI).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// Whether this process runs under wine (its ntdll exports
/// `wine_get_version`).
fn under_wine() -> bool {
    use windows::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    use windows::core::{s, w};
    // SAFETY: constant, NUL-terminated names; ntdll is always loaded.
    unsafe {
        GetModuleHandleW(w!("ntdll.dll"))
            .is_ok_and(|ntdll| GetProcAddress(ntdll, s!("wine_get_version")).is_some())
    }
}

/// Checks a started source: frames of the layout's size, even-sized, the
/// monitors inside them, and `changed_since_last` answering promptly.
fn check_frames(mut source: WindowsSource) {
    let size = source.size();
    assert!(
        size.width.is_multiple_of(2) && size.height.is_multiple_of(2),
        "{size} is not even"
    );
    for monitor in source.layout() {
        assert!(
            monitor.x >= 0 && monitor.y >= 0,
            "{monitor:?} outside the frame"
        );
    }
    for _ in 0..3 {
        let changed = source.changed_since_last().expect("changed_since_last");
        let frame = source.next_frame().expect("next_frame");
        assert_eq!(frame.size(), size);
        eprintln!(
            "changed={changed} blank={} reasons={:?} method={:?}",
            is_blank_frame(&frame),
            source.blank_reasons(),
            source.method()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Checks a start-up error: it names every method in `expected`, in order,
/// each with a non-empty reason.
fn check_unavailable(error: CaptureError, expected: &[CaptureMethod]) {
    let message = error.to_string();
    let CaptureError::Unavailable { attempts } = error else {
        panic!("expected CaptureError::Unavailable, got: {message}");
    };
    let methods: Vec<&str> = attempts.iter().map(|a| a.method).collect();
    let names: Vec<&str> = expected.iter().map(|m| m.name()).collect();
    assert_eq!(methods, names, "{message}");
    for attempt in &attempts {
        assert!(!attempt.error.to_string().trim().is_empty(), "{message}");
    }
    eprintln!("unavailable, as reported: {message}");
}

#[test]
fn the_monitor_layout_is_read() {
    let layout = within(START_LIMIT, "reading the layout", current_layout).expect("monitor layout");
    eprintln!("layout: {layout:?}");
    let size = layout.frame_size();
    assert!(size.width > 0 && size.width % 2 == 0, "{size}");
    assert!(size.height > 0 && size.height % 2 == 0, "{size}");
    assert!(!layout.monitors().is_empty());
    assert_eq!(layout.monitors().iter().filter(|m| m.primary).count(), 1);
    assert!(layout.monitors()[0].primary, "primary first");
    for m in layout.monitors() {
        assert!(
            m.name.starts_with(r"\\.\"),
            "GDI device name, not {:?}",
            m.name
        );
        assert!(layout.placement(&m.name).is_some(), "{m:?} has no place");
    }
}

#[test]
fn starting_captures_or_says_why_every_method_failed() {
    let started = within(START_LIMIT, "WindowsSource::new", WindowsSource::new);
    match started {
        Ok(source) => {
            assert!(!under_wine(), "wine has no screen capture, yet it started");
            check_frames(source);
        }
        Err(error) => check_unavailable(error, &CaptureMethod::ALL),
    }
}

#[test]
fn each_method_alone_captures_or_says_why() {
    for method in CaptureMethod::ALL {
        let options = WindowsOptions::new()
            .only(method)
            .first_picture_timeout(Duration::from_secs(1));
        let started = within(START_LIMIT, method.name(), move || {
            WindowsSource::with_options(options)
        });
        match started {
            Ok(source) => {
                assert_eq!(source.method(), Some(method));
                check_frames(source);
            }
            Err(error) => check_unavailable(error, &[method]),
        }
    }
}

#[test]
fn graphics_capture_is_unavailable_under_wine() {
    if !under_wine() {
        eprintln!("not under wine: nothing to check");
        return;
    }
    let options = WindowsOptions::new().only(CaptureMethod::GraphicsCapture);
    let error = within(START_LIMIT, "Graphics Capture", move || {
        WindowsSource::with_options(options)
    })
    .expect_err("wine has no Windows.Graphics.Capture");
    check_unavailable(error, &[CaptureMethod::GraphicsCapture]);
}

#[test]
fn where_no_method_starts_the_recorder_gets_marked_blank_frames() {
    let source = within(START_LIMIT, "WindowsSource::or_blank", || {
        WindowsSource::or_blank(WindowsOptions::new())
    });
    let mut source = source.expect("a source even where no capture method starts");
    if source.method().is_some() {
        assert!(!under_wine(), "wine has no screen capture, yet it started");
        check_frames(source);
        return;
    }
    assert!(source.changed_since_last().unwrap(), "the first frame");
    let frame = source.next_frame().expect("a blank frame, not an error");
    assert_eq!(frame.size(), source.size());
    assert!(is_blank_frame(&frame), "the frame is marked blank");
    let [BlankReason::Unavailable { detail, .. }] = source.blank_reasons() else {
        panic!("blank for another reason: {:?}", source.blank_reasons());
    };
    for method in CaptureMethod::ALL {
        assert!(detail.contains(method.name()), "{detail} names {method:?}");
    }
    // A still blank picture until a restart is due (every 2 s), then the
    // source tries again and, still failing, stays blank.
    assert!(
        !source.changed_since_last().unwrap(),
        "nothing to restart yet"
    );
    thread::sleep(Duration::from_millis(2100));
    assert!(source.changed_since_last().unwrap(), "a restart is due");
    let (frame, source) = within(START_LIMIT, "a restart", move || {
        (source.next_frame(), source)
    });
    let frame = frame.expect("a blank frame after a failed restart, not an error");
    assert_eq!(source.method(), None);
    assert!(is_blank_frame(&frame));
}

// ---------------------------------------------------------------------------
// The foreground window

/// The file name of this test executable.
fn this_exe() -> String {
    let exe = std::env::current_exe().expect("this exe's path");
    exe.file_name()
        .and_then(|name| name.to_str())
        .expect("an exe name")
        .to_owned()
}

// Under wine 8.0 (xtask's virtual display), as observed here: the new
// window is in front as soon as SetForegroundWindow has returned and the
// thread's messages are handled (~0.3 ms; the loop allows 10 s for a busy
// Windows desktop, where focus-stealing rules may also refuse: then the
// test fails with that message); the image path comes back as a DOS path
// (`Z:\root\...\windows-<hash>.exe`), whose file name matches
// current_exe's. The probe's time per call is printed (--nocapture).
#[test]
fn the_foreground_window_is_reported_with_its_title_class_and_process() {
    const PAYMENT: &str = "Paiement — carte 💳";
    let window = TestWindow::show(PAYMENT);
    window.bring_to_front();
    let mut probe = WindowsForeground;
    let expected = WindowInfo {
        title: PAYMENT.to_owned(),
        class: TEST_WINDOW_CLASS.to_owned(),
        process: this_exe(),
    };
    assert_eq!(probe.foreground().expect("probing"), Some(expected.clone()));
    const CALLS: u32 = 1000;
    let started = std::time::Instant::now();
    for _ in 0..CALLS {
        probe.foreground().expect("probing");
    }
    eprintln!("foreground probe: {:?} per call", started.elapsed() / CALLS);

    // The title is read afresh on every call.
    window.set_title("Paiement — confirmé ✓");
    assert_eq!(
        probe.foreground().expect("probing"),
        Some(WindowInfo {
            title: "Paiement — confirmé ✓".to_owned(),
            ..expected
        })
    );

    // Gone: something else or nothing is in front, never an error.
    drop(window);
    let after = probe.foreground().expect("probing after the window closed");
    assert!(
        after.as_ref().is_none_or(|w| w.class != TEST_WINDOW_CLASS),
        "{after:?}"
    );
}

#[test]
fn the_platform_probe_is_the_windows_one() {
    let mut probe = deskrec_capture::foreground_window().expect("a probe on Windows");
    // Whatever is in front (maybe nothing under wine), asking works.
    probe.foreground().expect("probing");
}
