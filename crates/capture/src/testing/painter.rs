//! [`Painter`]: an X client that puts known pictures on the test screen.

use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::randr::{self, MonitorInfo, Rotation};
use x11rb::protocol::xproto::{
    self, ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, Gcontext, ImageFormat,
    ImageOrder, Rectangle, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use super::Xvfb;
use crate::frame::BYTES_PER_PIXEL;
use crate::synthetic::render;
use crate::{FrameSize, Monitor};

/// Bytes of a `PutImage` request before its pixels.
const PUT_IMAGE_HEADER: usize = 24;

/// A client with an override-redirect window over the whole screen (as
/// large as the screen when the painter was created; it covers every RandR
/// monitor of that screen). It paints numbered pictures or coloured
/// rectangles into the window and reconfigures the screen through RandR.
///
/// Every method returns once the X server has carried it out (a round trip
/// follows each request), so a capture started afterwards sees it.
pub struct Painter {
    conn: RustConnection,
    root: Window,
    window: Window,
    gc: Gcontext,
}

impl Painter {
    /// Connects to `xvfb` and maps a black window over its whole screen.
    #[must_use]
    pub fn new(xvfb: &Xvfb) -> Self {
        let (conn, screen_num) =
            RustConnection::connect(Some(xvfb.display())).expect("connecting to Xvfb");
        let screen = &conn.setup().roots[screen_num];
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        let window = conn.generate_id().expect("an X id");
        let attributes = CreateWindowAux::new()
            .background_pixel(0x000000)
            .override_redirect(1);
        xproto::create_window(
            &conn,
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &attributes,
        )
        .expect("creating the painter's window");
        xproto::map_window(&conn, window).expect("mapping the painter's window");
        let gc = conn.generate_id().expect("an X id");
        xproto::create_gc(&conn, gc, window, &CreateGCAux::new()).expect("creating a GC");
        let painter = Self {
            conn,
            root,
            window,
            gc,
        };
        painter.sync();
        painter
    }

    /// The screen's current size (it changes with
    /// [`resize_screen`](Self::resize_screen)).
    #[must_use]
    pub fn screen_size(&self) -> FrameSize {
        let geometry = self
            .conn
            .get_geometry(self.root)
            .expect("asking for the screen size")
            .reply()
            .expect("the screen size");
        FrameSize::new(geometry.width.into(), geometry.height.into())
    }

    /// Shows synthetic picture number `picture`
    /// ([`render`](crate::synthetic::render) at the current screen size)
    /// over the whole screen; [`read_frame_number`](crate::read_frame_number)
    /// reads the number back from a capture, even after H.264.
    pub fn show(&self, picture: u32) {
        let size = self.screen_size();
        self.show_on(&Monitor::whole(size), picture);
    }

    /// Shows synthetic picture number `picture`, rendered at the area's
    /// size, in `area` (e.g. one monitor of a multi-monitor layout; the
    /// number's code is at the area's top-left corner).
    ///
    /// # Panics
    ///
    /// When the screen is not 24-bit TrueColor with 32 bits per pixel in
    /// little-endian order (what [`render`](crate::synthetic::render)'s BGRA
    /// is), as on Xvfb's `WxHx24` screens on x86.
    pub fn show_on(&self, area: &Monitor, picture: u32) {
        let size = FrameSize::new(area.width, area.height);
        self.put_bgra(area, &render(size, picture));
    }

    /// Writes `text` in white on black in large type, its top-left corner
    /// at (`x`, `y`), each font pixel `scale` px wide
    /// ([`lettering`](crate::lettering)); [`DecodedFrame::shows_text`]
    /// finds it in a recording.
    ///
    /// [`DecodedFrame::shows_text`]: super::DecodedFrame::shows_text
    pub fn write(&self, text: &str, (x, y): (i32, i32), scale: usize) {
        let (w, h) = crate::lettering::text_size(text, scale);
        let mut pixels = [0, 0, 0, 0xff].repeat(w * h);
        crate::lettering::draw_text(&mut pixels, (w, h), (0, 0), scale, text, [0xff; 4]);
        let area = Monitor {
            name: "text".into(),
            x,
            y,
            width: w as u32,
            height: h as u32,
            primary: false,
        };
        self.put_bgra(&area, &pixels);
    }

    /// Puts BGRA pixels, `area.width` a row, into `area` of the window.
    fn put_bgra(&self, area: &Monitor, pixels: &[u8]) {
        self.check_bgra_screen();
        let size = FrameSize::new(area.width, area.height);
        let stride = size.width as usize * BYTES_PER_PIXEL;
        // Requests are limited in size: send the picture in bands of rows.
        let max_rows = (self.conn.maximum_request_bytes() - PUT_IMAGE_HEADER) / stride;
        assert!(max_rows > 0, "a row of {} px is too long", size.width);
        for (band, rows) in pixels.chunks(max_rows * stride).enumerate() {
            let y = area.y + (band * max_rows) as i32;
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    self.window,
                    self.gc,
                    side(size.width),
                    side((rows.len() / stride) as u32),
                    coordinate(area.x),
                    coordinate(y),
                    0,
                    24,
                    rows,
                )
                .expect("sending a picture");
        }
        self.sync();
    }

    /// Panics unless pixels in memory are BGRA as the server wants them.
    fn check_bgra_screen(&self) {
        let setup = self.conn.setup();
        let depth = setup
            .roots
            .iter()
            .find(|screen| screen.root == self.root)
            .map_or(0, |screen| screen.root_depth);
        let bits = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel);
        assert!(
            depth == 24 && bits == Some(32) && setup.image_byte_order == ImageOrder::LSB_FIRST,
            "Painter::show needs a 24-bit screen with 32-bit little-endian pixels, \
             not depth {depth} with {bits:?} bits per pixel"
        );
    }

    /// Fills rectangles `(x, y, width, height)` with `colour` (0xRRGGBB).
    pub fn fill(&self, colour: u32, rectangles: &[(i16, i16, u16, u16)]) {
        xproto::change_gc(&self.conn, self.gc, &ChangeGCAux::new().foreground(colour))
            .expect("setting the colour");
        let rectangles: Vec<Rectangle> = rectangles
            .iter()
            .map(|&(x, y, width, height)| Rectangle {
                x,
                y,
                width,
                height,
            })
            .collect();
        xproto::poly_fill_rectangle(&self.conn, self.window, self.gc, &rectangles)
            .expect("filling rectangles");
        self.sync();
    }

    /// Replaces the RandR monitors with `monitors` (laid out on the
    /// existing screen, which does not change size). The first takes over
    /// the screen's output, so the output's own (automatic) monitor goes
    /// away.
    pub fn set_monitors(&self, monitors: &[Monitor]) {
        let resources = randr::get_screen_resources(&self.conn, self.root)
            .expect("asking for the screen resources")
            .reply()
            .expect("the screen resources");
        for (i, monitor) in monitors.iter().enumerate() {
            let name = xproto::intern_atom(&self.conn, false, monitor.name.as_bytes())
                .expect("interning the monitor name")
                .reply()
                .expect("the monitor name's atom")
                .atom;
            let outputs = if i == 0 {
                resources.outputs.clone()
            } else {
                Vec::new()
            };
            let (width, height) = (side(monitor.width), side(monitor.height));
            let info = MonitorInfo {
                name,
                primary: monitor.primary,
                automatic: false,
                x: coordinate(monitor.x),
                y: coordinate(monitor.y),
                width,
                height,
                width_in_millimeters: millimetres(width),
                height_in_millimeters: millimetres(height),
                outputs,
            };
            randr::set_monitor(&self.conn, self.root, info)
                .expect("sending SetMonitor")
                .check()
                .expect("setting a RandR monitor");
        }
        self.sync();
    }

    /// Resizes the screen, as a user changing the resolution would. Xvfb
    /// cannot grow past its start size; a smaller screen needs its CRTCs
    /// turned off first (they would not fit), so this turns them off.
    pub fn resize_screen(&self, width: u16, height: u16) {
        let resources = randr::get_screen_resources(&self.conn, self.root)
            .expect("asking for the screen resources")
            .reply()
            .expect("the screen resources");
        for &crtc in &resources.crtcs {
            let reply = randr::set_crtc_config(
                &self.conn,
                crtc,
                x11rb::CURRENT_TIME,
                resources.config_timestamp,
                0,
                0,
                x11rb::NONE,
                Rotation::ROTATE0,
                &[],
            )
            .expect("sending SetCrtcConfig")
            .reply()
            .expect("turning a CRTC off");
            assert_eq!(
                reply.status,
                randr::SetConfig::SUCCESS,
                "turning a CRTC off"
            );
        }
        randr::set_screen_size(
            &self.conn,
            self.root,
            width,
            height,
            millimetres(width),
            millimetres(height),
        )
        .expect("sending SetScreenSize")
        .check()
        .expect("resizing the screen");
        self.sync();
    }

    /// Waits until the server has carried out every request sent so far
    /// (a `GetInputFocus` round trip).
    pub fn sync(&self) {
        xproto::get_input_focus(&self.conn)
            .expect("sending GetInputFocus")
            .reply()
            .expect("syncing with the X server");
    }
}

/// Physical size of `pixels` at 96 dpi, for RandR requests.
fn millimetres(pixels: u16) -> u32 {
    u32::from(pixels) * 254 / 960
}

/// A width or height as X requests take it.
fn side(pixels: u32) -> u16 {
    u16::try_from(pixels).expect("X sizes are 16-bit")
}

/// A position as X requests take it.
fn coordinate(position: i32) -> i16 {
    i16::try_from(position).expect("X coordinates are 16-bit")
}
