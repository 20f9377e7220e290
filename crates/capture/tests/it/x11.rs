//! `X11Source` against a real X server: each test starts its own Xvfb on a
//! free display, draws known pictures into it (`testing::Painter`), and
//! checks what the source captures. And `X11Foreground`, with windows that
//! `testing::WindowManager` creates and activates as a window manager would.
//!
//! Needs `Xvfb` (Debian: `xvfb`). Without it the tests pass with a message,
//! except when `CI` is set: then they fail.
//!
//! CPU cost of a 1080p capture and of a foreground-window probe:
//! `cargo test --release -p deskrec-capture --test x11 -- --ignored --nocapture`.

#![cfg(target_os = "linux")]

use std::thread::sleep;
use std::time::Duration;

use deskrec_capture::synthetic::render;
use deskrec_capture::testing::{Painter, WindowManager, Xvfb, free_display_number};
use deskrec_capture::{
    CaptureError, ChangeMap, ForegroundWindow, Frame, FrameSize, FrameSource, Monitor, WindowInfo,
    X11Foreground, X11Options, X11Source, YuvFrame, read_frame_number_bgra,
};

const RED: u32 = 0xff0000;
const GREEN: u32 = 0x00ff00;
const BLUE: u32 = 0x0000ff;
const WHITE: u32 = 0xffffff;
const GREY: u32 = 0x808080;
const BLACK: u32 = 0x000000;

// ---------------------------------------------------------------------------
// Reading frames

/// The colour (0xRRGGBB) of pixel (x, y) of a BGRA frame.
fn rgb(frame: &Frame, x: u32, y: u32) -> u32 {
    let px = &frame.row(y)[x as usize * 4..][..4];
    u32::from(px[2]) << 16 | u32::from(px[1]) << 8 | u32::from(px[0])
}

/// Asserts the colour of each `(x, y, colour)`.
fn assert_colours(frame: &Frame, expected: &[(u32, u32, u32)]) {
    for &(x, y, colour) in expected {
        assert_eq!(
            rgb(frame, x, y),
            colour,
            "pixel ({x}, {y}): got {:06x}, want {colour:06x}",
            rgb(frame, x, y)
        );
    }
}

fn monitor(name: &str, x: i32, y: i32, width: u32, height: u32, primary: bool) -> Monitor {
    Monitor {
        name: name.to_owned(),
        x,
        y,
        width,
        height,
        primary,
    }
}

/// Paints four rectangles of known colours and checks them, their edges and
/// the untouched background in a capture.
fn captures_known_picture(xvfb: &Xvfb, source: &mut X11Source) {
    let painter = Painter::new(xvfb);
    painter.fill(RED, &[(10, 20, 100, 50)]);
    painter.fill(GREEN, &[(300, 200, 40, 40)]);
    painter.fill(BLUE, &[(600, 0, 40, 480)]);
    painter.fill(WHITE, &[(0, 470, 10, 10)]);
    let frame = source.next_frame().unwrap();
    assert_eq!(frame.size(), FrameSize::new(640, 480));
    assert_colours(
        &frame,
        &[
            (10, 20, RED),
            (109, 69, RED),
            (110, 69, BLACK),
            (109, 70, BLACK),
            (300, 200, GREEN),
            (339, 239, GREEN),
            (340, 240, BLACK),
            (600, 0, BLUE),
            (639, 479, BLUE),
            (599, 479, BLACK),
            (0, 479, WHITE),
            (320, 100, BLACK),
        ],
    );
}

/// The recorder's path (`next_yuv_frame`: with DAMAGE, converted straight
/// from the shared segment) gives the picture the BGRA path gives, and
/// follows the screen.
fn yuv_frames_match_converted_captures(xvfb: &Xvfb, source: &mut X11Source) {
    let painter = Painter::new(xvfb);
    painter.fill(RED, &[(10, 20, 100, 50)]);
    let bgra = YuvFrame::from_frame(&source.next_frame().unwrap()).unwrap();
    let direct = source.next_yuv_frame().unwrap();
    assert_eq!(direct.size(), FrameSize::new(640, 480));
    assert!(direct.same_picture(&bgra), "the two paths disagree");
    painter.fill(GREEN, &[(300, 200, 40, 40)]);
    let changed = source.next_yuv_frame().unwrap();
    assert!(
        !changed.same_picture(&direct),
        "the new picture was not seen"
    );
    let again = YuvFrame::from_frame(&source.next_frame().unwrap()).unwrap();
    assert!(changed.same_picture(&again));
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn shm_captures_known_colours() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let mut source = xvfb.source();
    assert!(source.uses_shm());
    assert!(source.uses_damage());
    assert_eq!(source.size(), FrameSize::new(640, 480));
    captures_known_picture(&xvfb, &mut source);
    yuv_frames_match_converted_captures(&xvfb, &mut source);
}

#[test]
fn get_image_fallback_captures_known_colours() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let mut source = X11Source::open(&xvfb.options().force_get_image(true)).unwrap();
    assert!(!source.uses_shm());
    captures_known_picture(&xvfb, &mut source);
}

#[test]
fn falls_back_without_shm_and_damage_extensions() {
    let Some(xvfb) = Xvfb::start_with(
        "640x480x24",
        &["-extension", "MIT-SHM", "-extension", "DAMAGE"],
    ) else {
        return;
    };
    let mut source = xvfb.source();
    assert!(!source.uses_shm());
    assert!(!source.uses_damage());
    captures_known_picture(&xvfb, &mut source);
    yuv_frames_match_converted_captures(&xvfb, &mut source);
    let painter = Painter::new(&xvfb);
    assert_unchanged_frames_are_detected(&mut source, &painter);
}

#[test]
fn odd_sized_screen_is_cropped_to_even() {
    let Some(xvfb) = Xvfb::start(641, 481) else {
        return;
    };
    let mut source = xvfb.source();
    assert_eq!(source.size(), FrameSize::new(640, 480));
    // The monitor keeps its real size; only the frame is cropped.
    let layout = source.layout();
    assert_eq!((layout[0].width, layout[0].height), (641, 481));
    let painter = Painter::new(&xvfb);
    painter.fill(GREEN, &[(639, 479, 2, 2)]);
    let frame = source.next_frame().unwrap();
    assert_eq!(frame.size(), FrameSize::new(640, 480));
    assert_colours(&frame, &[(639, 479, GREEN), (638, 478, BLACK)]);
}

#[test]
fn two_monitors_side_by_side_are_recorded_at_their_geometry() {
    let Some(xvfb) = Xvfb::start(1280, 720) else {
        return;
    };
    let mut source = xvfb.source();
    assert_eq!(source.layout().len(), 1);
    source.next_frame().unwrap();

    let painter = Painter::new(&xvfb);
    let monitors = [
        monitor("LEFT", 0, 0, 640, 720, true),
        monitor("RIGHT", 640, 0, 640, 720, false),
    ];
    painter.set_monitors(&monitors);
    let change = source.changed_since_last().unwrap_err();
    assert!(
        matches!(change, CaptureError::LayoutChanged { size, monitors: 2 } if size == FrameSize::new(1280, 720)),
        "{change}"
    );
    assert_eq!(source.layout(), monitors);
    assert!(
        source.changed_since_last().unwrap(),
        "a new layout needs a frame"
    );

    painter.fill(RED, &[(0, 0, 640, 720)]);
    painter.fill(BLUE, &[(640, 0, 640, 720)]);
    let frame = source.next_frame().unwrap();
    assert_eq!(frame.size(), FrameSize::new(1280, 720));
    for m in source.layout() {
        let colour = if m.name == "LEFT" { RED } else { BLUE };
        let (left, top) = (m.x as u32, m.y as u32);
        let (right, bottom) = (left + m.width - 1, top + m.height - 1);
        assert_colours(&frame, &[(left, top, colour), (right, bottom, colour)]);
    }
}

#[test]
fn resolution_change_is_reported_and_captured_at_the_new_size() {
    let Some(xvfb) = Xvfb::start(1280, 720) else {
        return;
    };
    let mut source = xvfb.source();
    let painter = Painter::new(&xvfb);
    assert_eq!(
        source.next_frame().unwrap().size(),
        FrameSize::new(1280, 720)
    );

    for (width, height) in [(1024, 600), (1280, 720)] {
        painter.resize_screen(width, height);
        let new_size = FrameSize::new(width.into(), height.into());
        match source.next_frame() {
            Err(CaptureError::LayoutChanged { size, .. }) => assert_eq!(size, new_size),
            other => panic!("expected a layout change to {new_size}, got {other:?}"),
        }
        assert_eq!(source.size(), new_size);
        assert!(
            source.uses_shm(),
            "shared memory is re-created at the new size"
        );
        let (x, y) = (
            i16::try_from(width).unwrap() - 8,
            i16::try_from(height).unwrap() - 8,
        );
        painter.fill(GREY, &[(x, y, 8, 8)]);
        let frame = source.next_frame().unwrap();
        assert_eq!(frame.size(), new_size);
        let corner = (new_size.width - 1, new_size.height - 1);
        assert_colours(&frame, &[(corner.0, corner.1, GREY), (0, 0, BLACK)]);
    }
}

#[test]
fn damage_reports_still_and_changing_screens() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let mut source = xvfb.source();
    assert!(source.uses_damage());
    let painter = Painter::new(&xvfb);
    assert_unchanged_frames_are_detected(&mut source, &painter);
}

#[test]
fn comparison_reports_still_and_changing_screens() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let mut source = X11Source::open(&xvfb.options().ignore_damage(true)).unwrap();
    assert!(!source.uses_damage());
    let painter = Painter::new(&xvfb);
    assert_unchanged_frames_are_detected(&mut source, &painter);
}

#[test]
fn damage_says_which_blocks_changed() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let mut source = xvfb.source();
    assert!(source.uses_damage());
    assert_change_maps_name_the_drawn_blocks(&mut source, &xvfb);
}

#[test]
fn comparison_says_which_blocks_changed() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let mut source = X11Source::open(&xvfb.options().ignore_damage(true)).unwrap();
    assert!(!source.uses_damage());
    assert_change_maps_name_the_drawn_blocks(&mut source, &xvfb);
}

#[test]
fn a_change_damage_misses_is_found_and_the_source_compares_from_then_on() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let every = Duration::from_millis(300);
    let options = xvfb.options().lose_damage(true).verify_damage_every(every);
    let mut source = X11Source::open(&options).unwrap();
    assert!(source.uses_damage());
    let painter = Painter::new(&xvfb);
    source.next_yuv_frame().unwrap();
    // One pixel changes, and (as on a display whose DAMAGE does not
    // report) nothing says so.
    painter.fill(RED, &[(100, 100, 1, 1)]);
    assert!(!source.changed_since_last().unwrap(), "DAMAGE said nothing");
    sleep(every + Duration::from_millis(50));
    assert!(source.changed_since_last().unwrap(), "the check found it");
    assert!(!source.uses_damage(), "comparing pictures from now on");
    let picture = source.next_frame().unwrap();
    assert_colours(&picture, &[(100, 100, RED)]);
    // Comparing sees the next change at once.
    painter.fill(GREEN, &[(300, 200, 1, 1)]);
    assert!(source.changed_since_last().unwrap());
    let picture = source.next_yuv_frame().unwrap();
    assert!(picture.changes_since(0).is_none());
}

#[test]
fn damage_that_tells_the_truth_passes_its_checks() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let every = Duration::from_millis(100);
    let mut source = X11Source::open(&xvfb.options().verify_damage_every(every)).unwrap();
    let painter = Painter::new(&xvfb);
    let mut last = source.next_yuv_frame().unwrap().id();
    for (i, colour) in [RED, GREEN, BLUE].into_iter().enumerate() {
        painter.fill(colour, &[(10 * i as i16, 10, 5, 5)]);
        let picture = source.next_yuv_frame().unwrap();
        assert_eq!(picture.changes_since(last).unwrap().changed_count(), 1);
        last = picture.id();
        sleep(every + Duration::from_millis(20));
        assert!(!source.changed_since_last().unwrap(), "check {i}: still");
        assert!(source.uses_damage(), "check {i}: DAMAGE still trusted");
    }
    // Drawn while a check is due: the check empties the damage, and the
    // next picture still names the block.
    sleep(every + Duration::from_millis(20));
    painter.fill(WHITE, &[(600, 400, 3, 3)]);
    assert!(source.changed_since_last().unwrap());
    assert!(source.uses_damage());
    let picture = source.next_yuv_frame().unwrap();
    let map = picture.changes_since(last).unwrap();
    assert!(map.is_changed(600 / 16, 400 / 16), "{map:?}");
}

/// Each picture's changes, relative to the picture before, are the blocks
/// drawn in between (at a corner, across block boundaries, at the far
/// edge), and unknown for a picture whose predecessor the source did not
/// deliver as a picture.
///
/// Each picture, converted only where its map says, shows the whole screen
/// as a full conversion of another capture of it does.
fn assert_change_maps_name_the_drawn_blocks(source: &mut X11Source, xvfb: &Xvfb) {
    let painter = Painter::new(xvfb);
    let mut reference = xvfb.source();
    let mut assert_shows_the_screen = |picture: &YuvFrame, what: &str| {
        let screen = YuvFrame::from_frame(&reference.next_frame().unwrap()).unwrap();
        assert!(
            picture.same_picture(&screen),
            "{what}: not the screen's samples"
        );
    };
    let first = source.next_yuv_frame().unwrap();
    assert!(
        first.changes_since(first.id().wrapping_sub(1)).is_none(),
        "the first picture has nothing before it"
    );
    let mut last = first.id();
    // The source captures bands of rows (192 at this width): the last
    // drawing's line crosses every band, and ends within one.
    let drawings: [&[(i16, i16, u16, u16)]; 4] = [
        &[(0, 0, 3, 3)],
        &[(15, 31, 2, 2), (600, 100, 40, 1)],
        &[(639, 479, 1, 1)],
        &[(300, 20, 2, 440)],
    ];
    for (i, rectangles) in drawings.into_iter().enumerate() {
        painter.fill([RED, GREEN, BLUE, WHITE][i], rectangles);
        let picture = source.next_yuv_frame().unwrap();
        let map = picture
            .changes_since(last)
            .unwrap_or_else(|| panic!("drawing {i}: no changes said"));
        let mut expected = ChangeMap::unchanged(picture.size());
        for &(x, y, w, h) in rectangles {
            expected.mark(x.into(), y.into(), w.into(), h.into());
        }
        if rectangles.len() == 1 {
            assert_eq!(map, &expected, "drawing {i}");
        } else {
            // The X server may report one request's rectangles by their
            // bounding box: more than drawn (costing time, not pictures),
            // never less.
            let mut covered = map.clone();
            covered.merge(&expected);
            assert_eq!(&covered, map, "drawing {i}: a drawn block is missing");
        }
        assert_shows_the_screen(&picture, &format!("drawing {i}"));
        last = picture.id();
    }
    let still = source.next_yuv_frame().unwrap();
    assert_shows_the_screen(&still, "still");
    assert!(still.changes_since(last).unwrap().is_unchanged());
    source.next_frame().unwrap();
    let after_bgra = source.next_yuv_frame().unwrap();
    assert!(
        after_bgra.changes_since(still.id()).is_none(),
        "a BGRA frame came in between: the changes since the picture before it are unknown"
    );
}

/// A still screen reports no change however often asked; every drawing
/// reports one, and the next frame shows it.
fn assert_unchanged_frames_are_detected(source: &mut X11Source, painter: &Painter) {
    assert!(source.changed_since_last().unwrap(), "nothing captured yet");
    source.next_frame().unwrap();
    for _ in 0..5 {
        sleep(Duration::from_millis(20));
        assert!(!source.changed_since_last().unwrap(), "the screen is still");
    }
    for (i, colour) in [RED, GREEN, BLUE, WHITE].into_iter().enumerate() {
        let x = 20 * i as i16;
        painter.fill(colour, &[(x, 0, 10, 10)]);
        assert!(source.changed_since_last().unwrap(), "drawing {colour:06x}");
        let frame = source.next_frame().unwrap();
        assert_colours(&frame, &[(x as u32, 0, colour)]);
        assert!(
            !source.changed_since_last().unwrap(),
            "still after the capture"
        );
    }
    // Redrawing the same pixels may count as a change (DAMAGE cannot tell),
    // but a frame is then captured and the screen is still again after it.
    painter.fill(WHITE, &[(60, 0, 10, 10)]);
    if source.changed_since_last().unwrap() {
        source.next_frame().unwrap();
    }
    assert!(!source.changed_since_last().unwrap());
}

#[test]
fn painter_shows_numbered_pictures_exactly() {
    let Some(xvfb) = Xvfb::start(1280, 720) else {
        return;
    };
    let mut source = xvfb.source();
    let painter = Painter::new(&xvfb);
    painter.show(42);
    let frame = source.next_frame().unwrap();
    assert_eq!(read_frame_number_bgra(&frame), Some(42));
    assert_same_pixels(&frame, &Monitor::whole(frame.size()), 42);

    let right_half = monitor("RIGHT", 640, 0, 640, 720, false);
    painter.show_on(&right_half, 7);
    let frame = source.next_frame().unwrap();
    assert_eq!(
        read_frame_number_bgra(&frame),
        Some(42),
        "the left half is unchanged"
    );
    assert_same_pixels(&frame, &right_half, 7);
}

/// `area` of `frame` shows exactly synthetic picture `picture` (colours;
/// the fourth byte of a 24-bit pixel is undefined).
fn assert_same_pixels(frame: &Frame, area: &Monitor, picture: u32) {
    let size = FrameSize::new(area.width, area.height);
    let expected = render(size, picture);
    let row_bytes = area.width as usize * 4;
    for (y, want) in expected.chunks_exact(row_bytes).enumerate() {
        let got = &frame.row(area.y as u32 + y as u32)[area.x as usize * 4..][..row_bytes];
        let colours = |row: &[u8]| {
            row.chunks_exact(4)
                .map(|p| [p[0], p[1], p[2]])
                .collect::<Vec<_>>()
        };
        assert!(
            colours(got) == colours(want),
            "row {y} of {area:?} differs from picture {picture}"
        );
    }
}

#[test]
fn unsupported_visual_is_refused() {
    let Some(xvfb) = Xvfb::start_with("640x480x16", &[]) else {
        return;
    };
    let err = X11Source::open(&xvfb.options()).unwrap_err();
    assert!(matches!(err, CaptureError::UnsupportedFormat(_)), "{err}");
    assert!(err.to_string().contains("depth 16"), "{err}");
}

#[test]
fn unreachable_display_is_a_clear_error() {
    let display = format!(":{}", free_display_number());
    let err = X11Source::open(&X11Options::new().display(&display)).unwrap_err();
    assert!(matches!(err, CaptureError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&display), "{err}");
}

// ---------------------------------------------------------------------------
// The foreground window

/// The title the pause rules are tested with: not ASCII, not Latin-1.
const PAYMENT: &str = "Paiement — carte 💳";

/// The file name of this test executable, which `_NET_WM_PID` of this
/// process must lead to.
fn this_exe() -> String {
    let exe = std::env::current_exe().unwrap();
    exe.file_name().unwrap().to_str().unwrap().to_owned()
}

/// This machine's name, as a client would put it in `WM_CLIENT_MACHINE`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

fn window(title: &str, class: &str, process: &str) -> WindowInfo {
    WindowInfo {
        title: title.to_owned(),
        class: class.to_owned(),
        process: process.to_owned(),
    }
}

#[test]
fn the_active_window_is_reported_with_its_title_class_and_process() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let wm = WindowManager::new(&xvfb);
    let mut probe = X11Foreground::open(Some(xvfb.display())).unwrap();
    // Xvfb alone: no window manager, no _NET_ACTIVE_WINDOW.
    assert_eq!(probe.foreground().unwrap(), None);

    let payment = wm.create(PAYMENT, "payment-app", "PaymentApp");
    wm.set_pid(payment, std::process::id(), Some(&hostname()));
    let other = wm.create("Inbox", "mail", "Mail");
    wm.activate(Some(payment));
    let exe = this_exe();
    assert_eq!(
        probe.foreground().unwrap(),
        Some(window(PAYMENT, "PaymentApp", &exe))
    );

    // Titles are read afresh on every call.
    wm.set_title(payment, "Paiement — confirmé ✓");
    assert_eq!(
        probe.foreground().unwrap(),
        Some(window("Paiement — confirmé ✓", "PaymentApp", &exe))
    );

    // Another window in front; it has no _NET_WM_PID, so no process.
    wm.activate(Some(other));
    assert_eq!(
        probe.foreground().unwrap(),
        Some(window("Inbox", "Mail", ""))
    );

    // Nothing active (0), then no _NET_ACTIVE_WINDOW at all.
    wm.activate(None);
    assert_eq!(probe.foreground().unwrap(), None);
    wm.activate(Some(payment));
    assert!(probe.foreground().unwrap().is_some());
    wm.forget_active();
    assert_eq!(probe.foreground().unwrap(), None);
}

#[test]
fn a_window_destroyed_while_active_is_none_not_an_error() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let wm = WindowManager::new(&xvfb);
    let mut probe = X11Foreground::open(Some(xvfb.display())).unwrap();
    let payment = wm.create(PAYMENT, "payment-app", "PaymentApp");
    wm.activate(Some(payment));
    assert!(probe.foreground().unwrap().is_some());
    // _NET_ACTIVE_WINDOW still names it: the server answers BadWindow.
    wm.destroy(payment);
    for _ in 0..3 {
        assert_eq!(probe.foreground().unwrap(), None);
    }
    // The probe goes on working when a window is active again.
    let next = wm.create("Inbox", "mail", "Mail");
    wm.activate(Some(next));
    assert_eq!(
        probe.foreground().unwrap(),
        Some(window("Inbox", "Mail", ""))
    );
}

#[test]
fn legacy_titles_desktops_and_remote_clients() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let wm = WindowManager::new(&xvfb);
    let mut probe = X11Foreground::open(Some(xvfb.display())).unwrap();
    let old = wm.create("", "xterm", "XTerm");
    wm.set_legacy_title(old, b"caf\xe9 cr\xe8me");
    wm.activate(Some(old));
    assert_eq!(
        probe.foreground().unwrap(),
        Some(window("café crème", "XTerm", ""))
    );

    // A pid without WM_CLIENT_MACHINE on a local display is taken as
    // local; a client on another machine gets no process name, since its
    // pid means nothing here.
    wm.set_pid(old, std::process::id(), None);
    assert_eq!(probe.foreground().unwrap().unwrap().process, this_exe());
    wm.set_pid(old, std::process::id(), Some("elsewhere.invalid"));
    assert_eq!(probe.foreground().unwrap().unwrap().process, "");

    // Only the desktop in front (a file manager's desktop window).
    let desktop = wm.create("Desktop", "desktop_window", "Nautilus");
    wm.make_desktop(desktop);
    wm.activate(Some(desktop));
    assert_eq!(probe.foreground().unwrap(), None);
}

#[test]
fn the_probe_names_an_unreachable_display() {
    let display = format!(":{}", free_display_number());
    let err = X11Foreground::open(Some(&display)).err().unwrap();
    assert!(matches!(err, CaptureError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&display), "{err}");
}

/// Prints the cost of one foreground-window probe (two round trips): CPU
/// of this process and of the X server, and wall time.
#[test]
#[ignore = "measurement; run with --ignored --nocapture, ideally --release"]
fn foreground_probe_cost() {
    const CALLS: u32 = 2000;
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let wm = WindowManager::new(&xvfb);
    let window = wm.create(PAYMENT, "payment-app", "PaymentApp");
    wm.set_pid(window, std::process::id(), Some(&hostname()));
    wm.activate(Some(window));
    let mut probe = X11Foreground::open(Some(xvfb.display())).unwrap();
    let started = std::time::Instant::now();
    let (client, server) = cpu_per_call(&xvfb, CALLS, || {
        assert!(probe.foreground().unwrap().is_some());
    });
    let wall = started.elapsed() / CALLS;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "foreground probe: {:.1} µs CPU per call ({:.1} µs client + {:.1} µs X server), \
         {:.1} µs wall",
        us(client + server),
        us(client),
        us(server),
        us(wall)
    );
}

/// Prints the CPU cost of one 1920x1080 capture: this process, the X server,
/// and both, for MIT-SHM and `GetImage`; and of one unchanged-frame check.
#[test]
#[ignore = "measurement; run with --ignored --nocapture, ideally --release"]
fn cpu_cost_per_frame_at_1080p() {
    const FRAMES: u32 = 100;
    let Some(xvfb) = Xvfb::start(1920, 1080) else {
        return;
    };
    let painter = Painter::new(&xvfb);
    painter.fill(GREY, &[(100, 100, 800, 600)]);
    for (path, options) in [
        ("MIT-SHM", xvfb.options()),
        ("GetImage", xvfb.options().force_get_image(true)),
    ] {
        let mut source = X11Source::open(&options).unwrap();
        source.next_frame().unwrap();
        let (client, server) = cpu_per_call(&xvfb, FRAMES, || {
            let frame = source.next_frame().unwrap();
            assert_eq!(frame.size(), FrameSize::new(1920, 1080));
        });
        report(&format!("{path} capture"), client, server);
    }
    let mut source = xvfb.source();
    source.next_frame().unwrap();
    let (client, server) = cpu_per_call(&xvfb, FRAMES, || {
        assert!(!source.changed_since_last().unwrap());
    });
    report("DAMAGE unchanged check", client, server);
}

/// Prints the CPU cost of one 1920x1080 picture of a screen where someone
/// types (a glyph drawn a picture; DAMAGE; the changed blocks converted to
/// I420), each picture held until the next one is captured, as the
/// recorder's encoder holds them.
#[test]
#[ignore = "measurement; run with --ignored --nocapture, ideally --release"]
fn cpu_cost_per_typed_picture_at_1080p() {
    const PICTURES: u32 = 500;
    let Some(xvfb) = Xvfb::start(1920, 1080) else {
        return;
    };
    let painter = Painter::new(&xvfb);
    painter.fill(GREY, &[(100, 100, 800, 600)]);
    let mut source = xvfb.source();
    let mut held = Some(source.next_yuv_frame().unwrap());
    let mut typed = 0;
    let (client, server) = cpu_per_call(&xvfb, PICTURES, || {
        let (x, y) = (120 + typed % 100 * 7, 120 + typed / 100 * 16);
        painter.fill([WHITE, RED][typed as usize % 2], &[(x, y, 6, 14)]);
        typed += 1;
        held = Some(source.next_yuv_frame().unwrap());
    });
    assert!(held.is_some());
    report("typed picture", client, server);
}

/// CPU time per call of `f` (this process, the X server).
fn cpu_per_call(xvfb: &Xvfb, calls: u32, mut f: impl FnMut()) -> (Duration, Duration) {
    let (client0, server0) = (process_cpu_time(), xvfb.cpu_time());
    for _ in 0..calls {
        f();
    }
    let (client, server) = (process_cpu_time() - client0, xvfb.cpu_time() - server0);
    (client / calls, server / calls)
}

fn report(what: &str, client: Duration, server: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: {:.3} ms CPU per frame ({:.3} ms client + {:.3} ms X server)",
        ms(client + server),
        ms(client),
        ms(server)
    );
}

/// User + system CPU time of this process (getrusage).
fn process_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
