//! The Windows source's start-up and error paths, run for real on Windows
//! and under wine by `cargo xtask windows -p deskrec-capture`.
//!
//! Under wine there is no Windows.Graphics.Capture and no desktop
//! duplication, so these tests mostly prove that both fail cleanly: a
//! [`CaptureError::Unavailable`] that names each method and why, within a
//! bounded time, never a panic or a hang. On a real Windows desktop the same
//! tests capture frames instead and check their geometry.

#![cfg(windows)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use deskrec_capture::windows::{BlankReason, current_layout, is_blank_frame};
use deskrec_capture::{CaptureError, CaptureMethod, FrameSource, WindowsOptions, WindowsSource};

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
        size.width % 2 == 0 && size.height % 2 == 0,
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
