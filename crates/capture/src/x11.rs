//! Capture of an X11 screen: [`X11Source`] (Linux only).
//!
//! # What is captured
//!
//! The whole X screen, i.e. the root window: with RandR every monitor is a
//! rectangle of that one desktop image, so one frame shows all monitors as
//! they are laid out. [`FrameSource::layout`] lists the monitors (RandR 1.5
//! `GetMonitors`: name, position, size, primary) so the recorder can store
//! them and tell which part of the frame was which screen.
//!
//! Frames are even-sized, as H.264 needs: a desktop with an odd width or
//! height loses its last column or row (cropped, not scaled; monitors in
//! [`layout`](FrameSource::layout) keep their real geometry).
//!
//! # How
//!
//! - **MIT-SHM** when the server has it and can share memory with this
//!   process: the server writes the screen into a shared segment (see the
//!   `shm` module for why it cannot leak). Otherwise, e.g. on a remote
//!   display, plain `GetImage`, which sends every pixel over the socket and
//!   costs 5-10 times more CPU (1080p: ~1 ms a frame with SHM, 5-10 ms
//!   without, client and server together; `tests/x11.rs` measures it).
//!   [`X11Source::uses_shm`] and an `info` log say which.
//! - **Pixels**: 24- or 32-bit TrueColor ZPixmaps are BGRA in memory as
//!   they come, so there is no conversion; other visuals are refused with
//!   [`CaptureError::UnsupportedFormat`].
//! - **Unchanged frames**: [`FrameSource::changed_since_last`] answers from
//!   the DAMAGE extension without capturing anything (a still screen costs
//!   one round trip a tick). Without DAMAGE it captures and compares with
//!   the last frame ([`Frame::same_picture`]) and hands that capture to the
//!   next [`next_frame`](FrameSource::next_frame) when it differs.
//! - **What changed**: each [`next_yuv_frame`](FrameSource::next_yuv_frame)
//!   says where it differs from the one before ([`YuvFrame::changes_since`]):
//!   DAMAGE's rectangles (the `damage` module says how none is missed), or,
//!   without DAMAGE, the blocks in which the captures differ
//!   ([`ChangeMap::between`]). DAMAGE is checked against the pixels every
//!   few seconds; a display whose DAMAGE misses changes is compared from
//!   then on (the `verify` module). Only the changed blocks are converted
//!   to I420; the rest is copied from the picture delivered before
//!   ([`YuvFrame::from_bgra_changes`]).
//! - **Bands**: the screen is captured a band of rows at a time (64 rows
//!   of 1080p, half a megabyte), each converted before the next is
//!   captured, and with DAMAGE only the bands that hold damage: no more
//!   than a band is ever held in BGRA (the whole screen would be 8 MiB at
//!   1080p, a fifth of the recorder's memory), and a typing screen has
//!   the server copy a band or two instead of the screen.
//! - **Layout changes** (resolution, monitors added, removed or moved) are
//!   noticed from `ConfigureNotify` on the root window and RandR's notify
//!   events, checked at every call; the source re-reads the layout, resizes
//!   its buffers and returns [`CaptureError::LayoutChanged`] once, and then
//!   delivers frames of the new size.
//!
//! ```no_run
//! use deskrec_capture::{CaptureError, FrameSource, X11Options, X11Source};
//!
//! let mut source = X11Source::open(&X11Options::default())?; // $DISPLAY
//! for _tick in 0..10 {
//!     match source.changed_since_last() {
//!         Ok(false) => { /* repeat the previous frame */ }
//!         Ok(true) => { let _frame = source.next_frame()?; /* encode it */ }
//!         Err(CaptureError::LayoutChanged { size, .. }) => {
//!             /* finish the segment; start a new one of `size` */
//!         }
//!         Err(err) => return Err(err.into()),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod damage;
mod foreground;
mod format;
mod layout;
mod shm;
mod verify;

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use x11rb::connection::Connection;
use x11rb::cookie::Cookie;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::Event;
use x11rb::protocol::randr::{self, NotifyMask};
use x11rb::protocol::xfixes::FetchRegionReply;
use x11rb::protocol::xproto::{
    self, ChangeWindowAttributesAux, EventMask, ImageFormat, Rectangle, Window,
};
use x11rb::rust_connection::RustConnection;

pub use self::foreground::X11Foreground;

use self::damage::DamageWatch;
use self::format::PixelFormat;
use self::layout::Layout;
use self::shm::ShmSegment;
use self::verify::{CheckSchedule, VERIFY_EVERY};
use crate::change::MB_SIZE;
use crate::frame::BYTES_PER_PIXEL;
use crate::yuv::Conversion;
use crate::{BoxError, CaptureError, ChangeMap, Frame, FrameSize, FrameSource, Monitor, YuvFrame};

/// How to open an [`X11Source`]. The default captures `$DISPLAY` with the
/// fastest paths the server offers.
#[derive(Debug, Clone, Default)]
pub struct X11Options {
    /// The display to capture; `None`: `$DISPLAY`.
    display: Option<String>,
    /// Never use MIT-SHM.
    force_get_image: bool,
    /// Never use DAMAGE.
    ignore_damage: bool,
    /// How often DAMAGE is checked against the pixels; `None`: the default.
    verify_damage_every: Option<Duration>,
    /// Tests: act as a display whose DAMAGE reports nothing.
    lose_damage: bool,
}

impl X11Options {
    /// The defaults: `$DISPLAY`, MIT-SHM and DAMAGE where available.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Captures this display (e.g. `":0"`) instead of `$DISPLAY`.
    #[must_use]
    pub fn display(mut self, name: impl Into<String>) -> Self {
        self.display = Some(name.into());
        self
    }

    /// Captures with plain `GetImage` even when MIT-SHM works (tests, or a
    /// server whose shared memory misbehaves).
    #[must_use]
    pub fn force_get_image(mut self, force: bool) -> Self {
        self.force_get_image = force;
        self
    }

    /// Detects unchanged frames by comparing pictures even when the server
    /// has DAMAGE (tests, or a server whose DAMAGE misses updates).
    #[must_use]
    pub fn ignore_damage(mut self, ignore: bool) -> Self {
        self.ignore_damage = ignore;
        self
    }

    /// Checks DAMAGE against the pixels this often instead of every 5 s.
    #[must_use]
    pub fn verify_damage_every(mut self, every: Duration) -> Self {
        self.verify_damage_every = Some(every);
        self
    }

    /// Tests only: acts as a display whose DAMAGE misses every change (a
    /// compositor that does not report), which no X server here can be
    /// made to do.
    #[cfg(feature = "test-utils")]
    #[must_use]
    pub fn lose_damage(mut self, lose: bool) -> Self {
        self.lose_damage = lose;
        self
    }
}

/// A [`FrameSource`] that captures an X11 screen; see the module docs.
///
/// Use per tick: [`changed_since_last`](FrameSource::changed_since_last),
/// and [`next_frame`](FrameSource::next_frame) right after a `true`. On a
/// server without DAMAGE the check itself captures, and that `next_frame`
/// returns the very picture the check saw (no second capture).
///
/// Create it on or move it to the capture thread; it is `Send` but not
/// `Sync`. Dropping it releases the shared memory and the damage object.
pub struct X11Source {
    conn: RustConnection,
    /// The display name connected to, for messages.
    display: String,
    root: Window,
    /// Whether the server has RandR 1.5 monitors.
    randr_monitors: bool,
    /// The layout frames are currently captured at.
    layout: Layout,
    /// `layout.frame_size()`, the size of every frame.
    size: FrameSize,
    grabber: Grabber,
    changes: Changes,
    /// An event said the layout may have changed; re-read it.
    layout_dirty: bool,
    /// Tests: DAMAGE's events and rectangles are dropped.
    lose_damage: bool,
}

impl X11Source {
    /// Connects to the display and prepares capture.
    ///
    /// # Errors
    ///
    /// [`CaptureError::NoDisplay`] when no display is named and `DISPLAY` is
    /// unset; [`CaptureError::Connect`] when the server cannot be reached or
    /// refuses this user; [`CaptureError::UnsupportedFormat`] for screens
    /// other than 24/32-bit TrueColor; [`CaptureError::Backend`] when the
    /// server fails a request.
    pub fn open(options: &X11Options) -> Result<Self, CaptureError> {
        let name = display_name(options.display.as_deref(), std::env::var_os("DISPLAY"))?;
        let (conn, screen_num) =
            RustConnection::connect(Some(&name)).map_err(|err| CaptureError::Connect {
                display: name.clone(),
                source: err.into(),
            })?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        PixelFormat::of_root(conn.setup(), screen)?.check()?;
        let randr_monitors =
            watch_layout(&conn, root).map_err(failed("asking for layout events"))?;
        let layout = Layout::read(&conn, root, randr_monitors)
            .map_err(failed("reading the screen layout"))?;
        let size = checked_frame_size(&layout)?;
        let grabber = Grabber::open(&conn, root, size, options.force_get_image);
        let changes = Changes::open(&conn, root, options);
        info!(
            display = name,
            %size,
            monitors = layout.monitors.len(),
            "capturing the X11 screen"
        );
        Ok(Self {
            conn,
            display: name,
            root,
            randr_monitors,
            layout,
            size,
            grabber,
            changes,
            layout_dirty: false,
            lose_damage: options.lose_damage,
        })
    }

    /// The display captured, as named when opening.
    #[must_use]
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Whether frames come through MIT-SHM (else plain `GetImage`).
    #[must_use]
    pub fn uses_shm(&self) -> bool {
        matches!(self.grabber, Grabber::Shm(_))
    }

    /// Whether unchanged frames are detected with DAMAGE (else by
    /// comparing captures).
    #[must_use]
    pub fn uses_damage(&self) -> bool {
        matches!(self.changes, Changes::Damage { .. })
    }

    /// Reads the events that arrived and applies a layout change if one
    /// happened; returns [`CaptureError::LayoutChanged`] then.
    fn refresh(&mut self) -> Result<(), CaptureError> {
        self.pump_events()?;
        if !std::mem::take(&mut self.layout_dirty) {
            return Ok(());
        }
        let layout = Layout::read(&self.conn, self.root, self.randr_monitors)
            .map_err(failed("reading the screen layout"))?;
        if layout == self.layout {
            return Ok(());
        }
        self.adopt(layout)?;
        Err(CaptureError::LayoutChanged {
            size: self.size,
            monitors: self.layout.monitors.len(),
        })
    }

    /// Makes a round trip, so every event the server generated before now
    /// has arrived, then handles them all.
    fn pump_events(&mut self) -> Result<(), CaptureError> {
        let events = sync_and_drain(&self.conn).map_err(failed("talking to the X server"))?;
        for event in events {
            self.handle(event);
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::DamageNotify(_) if !self.lose_damage => self.changes.mark_damaged(),
            Event::ConfigureNotify(e) if e.window == self.root => self.layout_dirty = true,
            Event::RandrScreenChangeNotify(_) | Event::RandrNotify(_) => self.layout_dirty = true,
            Event::Error(err) => warn!(?err, "the X server reported an error"),
            _ => {}
        }
    }

    /// Switches to a new layout: buffers of the new size, and no frame of
    /// the old one counts as "last" any more.
    fn adopt(&mut self, layout: Layout) -> Result<(), CaptureError> {
        let size = checked_frame_size(&layout)?;
        info!(
            from = %self.size,
            to = %size,
            monitors = layout.monitors.len(),
            "the X11 screen layout changed"
        );
        if size != self.size {
            self.grabber.resize(&self.conn, self.root, size);
        }
        self.layout = layout;
        self.size = size;
        self.changes.forget_last();
        Ok(())
    }

    /// Captures the screen now, as a BGRA frame.
    fn capture(&mut self) -> Result<Frame, CaptureError> {
        let (assembled, captured_at) = self.capture_bands(|size, _damage| Assembly::new(size))?;
        let (size, pixels) = (assembled.size, assembled.pixels);
        let stride = size.width as usize * BYTES_PER_PIXEL;
        Frame::new(size.width, size.height, stride, pixels, captured_at)
    }

    /// Captures the screen now, a band of rows at a time, so that no more
    /// than a band is ever held in BGRA: `plan` gets the rectangles DAMAGE
    /// reported since the capture before (`None` without DAMAGE) and
    /// returns what takes the bands; each band it asks for is captured and
    /// handed to it, borrowed from the shared segment when there is one.
    ///
    /// With DAMAGE the server stays grabbed from emptying the damage to the
    /// last band (the `damage` module says why), so the bands are one
    /// picture of the screen; what takes them works during the grab (a
    /// conversion of the changed blocks: a fraction of a millisecond, at
    /// most a whole conversion, ~0.6 ms at 1080p).
    fn capture_bands<B: Bands>(
        &mut self,
        plan: impl FnOnce(FrameSize, Option<Vec<Rectangle>>) -> B,
    ) -> Result<(B, Instant), CaptureError> {
        let size = self.size;
        let taken = self
            .changes
            .before_capture(&self.conn)
            .map_err(failed("emptying the damage"))?;
        let grabbed = taken.is_some();
        let captured_at = Instant::now();
        let damage = match taken.map(DamageWatch::rectangles).transpose() {
            Ok(damage) if self.lose_damage => damage.map(|_| Vec::new()),
            Ok(damage) => damage,
            Err(err) => {
                DamageWatch::release(&self.conn).map_err(failed("ending the server grab"))?;
                return Err(failed("reading the damage")(err));
            }
        };
        let mut sink = plan(size, damage);
        let stride = size.width as usize * BYTES_PER_PIXEL;
        let mut outcome = Ok(());
        for rows in sink.bands(band_rows(size.width)) {
            match self
                .grabber
                .grab(&self.conn, self.root, size.width, rows.clone())
            {
                Ok(pixels) => outcome = sink.take(rows, &pixels, stride).map_err(Err),
                Err(err) => outcome = Err(Ok(err)),
            }
            if outcome.is_err() {
                break;
            }
        }
        if grabbed {
            DamageWatch::release(&self.conn).map_err(failed("ending the server grab"))?;
        }
        match outcome {
            Ok(()) => Ok((sink, captured_at)),
            Err(Ok(grab)) => Err(self.capture_failed(grab)),
            Err(Err(taking)) => Err(taking),
        }
    }

    /// A capture of a screen that just shrank fails (`BadMatch`): report
    /// the layout change rather than the error.
    fn capture_failed(&mut self, err: ReplyError) -> CaptureError {
        self.layout_dirty = true;
        match self.refresh() {
            Err(changed_or_broken) => changed_or_broken,
            Ok(()) => failed("capturing the screen")(err),
        }
    }
}

impl FrameSource for X11Source {
    fn size(&self) -> FrameSize {
        self.size
    }

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        self.refresh()?;
        let frame = match self.changes.take_pending() {
            Some(frame) => frame,
            None => self.capture()?,
        };
        self.changes.delivered(&frame);
        Ok(frame)
    }

    /// With DAMAGE, captures only the bands of rows with damage and
    /// converts their changed blocks straight from the shared segment (no
    /// BGRA copy is made or kept), and says what changed from the damage. Comparing
    /// captures needs the BGRA frames, and says what changed from them.
    fn next_yuv_frame(&mut self) -> Result<YuvFrame, CaptureError> {
        self.refresh()?;
        let last = self.changes.last_picture().cloned();
        let picture = if self.changes.keeps_frames() {
            let frame = match self.changes.take_pending() {
                Some(frame) => frame,
                None => self.capture()?,
            };
            let changes = self.changes.compared_with_last(&frame);
            self.changes.delivered(&frame);
            YuvFrame::converted(
                last.as_ref(),
                changes,
                frame.size(),
                frame.stride(),
                frame.pixels(),
                frame.captured_at(),
            )?
        } else {
            let carried = self.changes.take_carried();
            let (conversion, captured_at) = self.capture_bands(|size, damage| {
                let changes = damage.map(|rectangles| {
                    let mut map = damaged(size, &rectangles);
                    if let Some(carried) = &carried {
                        map.merge(carried);
                    }
                    map
                });
                Conversion::new(last.as_ref(), changes, size)
            })?;
            conversion.finish(captured_at)
        };
        self.changes.delivered_picture(picture.clone());
        Ok(picture)
    }

    /// From DAMAGE events (no capture) and, every few seconds, a check of
    /// DAMAGE against the pixels; or by capturing and comparing when the
    /// server has no DAMAGE; see the module docs.
    fn changed_since_last(&mut self) -> Result<bool, CaptureError> {
        self.refresh()?;
        if self.changes.check_due() {
            return self.check_damage();
        }
        if let Some(known) = self.changes.known() {
            return Ok(known);
        }
        let frame = self.capture()?;
        Ok(self.changes.offer(frame))
    }

    fn layout(&self) -> Vec<Monitor> {
        self.layout.monitors.clone()
    }
}

impl X11Source {
    /// Captures the whole screen while DAMAGE reports nothing, and compares
    /// it with the last picture delivered (the `verify` module). A block
    /// that changed without being reported ends the trust in DAMAGE: the
    /// source compares pictures from then on, starting with a capture made
    /// for the next picture.
    fn check_damage(&mut self) -> Result<bool, CaptureError> {
        // A check is due only with a last picture to compare with.
        let Some(last) = self.changes.last_picture().cloned() else {
            return Ok(true);
        };
        let mut reported = None;
        let checked = self.capture_bands(|size, damage| {
            reported = Some(damaged(size, &damage.unwrap_or_default()));
            Conversion::new(None, None, size)
        });
        self.changes.checked();
        let (conversion, captured_at) = checked?;
        let reported = reported.unwrap_or_else(|| ChangeMap::unchanged(self.size));
        let blocks = verify::missed(&reported, &last, &conversion.finish(captured_at));
        if blocks == 0 {
            // DAMAGE told the truth; what it reported since the last
            // picture goes into the next one's changes.
            return Ok(self.changes.carry(reported));
        }
        warn!(
            display = self.display,
            blocks,
            "the X server's DAMAGE missed changes on this display: comparing pictures from now on"
        );
        // The next picture is captured afresh and, with nothing to compare
        // it with yet, converted whole.
        std::mem::replace(&mut self.changes, Changes::compare()).stop(&self.conn);
        Ok(true)
    }
}

impl fmt::Debug for X11Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X11Source")
            .field("display", &self.display)
            .field("size", &self.size)
            .field("monitors", &self.layout.monitors)
            .field("shm", &self.uses_shm())
            .field("damage", &self.uses_damage())
            .finish_non_exhaustive()
    }
}

impl Drop for X11Source {
    fn drop(&mut self) {
        std::mem::replace(&mut self.grabber, Grabber::GetImage).release(&self.conn);
        std::mem::replace(&mut self.changes, Changes::compare()).stop(&self.conn);
        let _ = self.conn.flush();
    }
}

/// How pixels get from the server to us.
enum Grabber {
    /// MIT-SHM into a segment sized for the current frame size.
    Shm(ShmSegment),
    /// Core `GetImage`: the pixels come in the reply.
    GetImage,
}

impl Grabber {
    /// MIT-SHM if possible (and not turned off), else `GetImage`.
    fn open(conn: &impl Connection, root: Window, size: FrameSize, force_get_image: bool) -> Self {
        if force_get_image {
            info!("X11 capture uses plain GetImage: MIT-SHM turned off by the options");
            return Self::GetImage;
        }
        Self::shm_or_get_image(conn, root, size)
    }

    fn shm_or_get_image(conn: &impl Connection, root: Window, size: FrameSize) -> Self {
        match try_shm(conn, root, segment_bytes(size.width)) {
            Ok(segment) => {
                info!("X11 capture uses MIT-SHM shared memory");
                Self::Shm(segment)
            }
            Err(reason) => {
                info!(%reason, "X11 capture uses plain GetImage (slower): MIT-SHM is unavailable");
                Self::GetImage
            }
        }
    }

    /// Replaces the shared segment with one for bands of frames of `size`.
    fn resize(&mut self, conn: &impl Connection, root: Window, size: FrameSize) {
        if let Self::Shm(_) = self {
            std::mem::replace(self, Self::GetImage).release(conn);
            *self = Self::shm_or_get_image(conn, root, size);
        }
    }

    /// The `width` pixels of rows `rows` of the root window, from its left
    /// edge, as tightly packed ZPixmap rows: borrowed from the shared
    /// segment (valid until the next grab; a row past them to spare, see
    /// [`Conversion::convert_band`]), or the `GetImage` reply's own buffer.
    fn grab(
        &mut self,
        conn: &impl Connection,
        root: Window,
        width: u32,
        rows: Range<u32>,
    ) -> Result<Cow<'_, [u8]>, ReplyError> {
        match self {
            Self::Shm(segment) => {
                let written = segment.grab(conn, root, width, rows)?;
                let spare = width as usize * BYTES_PER_PIXEL;
                let len = (written + spare).min(segment.len());
                Ok(Cow::Borrowed(segment.pixels(len)))
            }
            Self::GetImage => {
                let (top, width, height) = band_extent(width, &rows);
                let reply = xproto::get_image(
                    conn,
                    ImageFormat::Z_PIXMAP,
                    root,
                    0,
                    top,
                    width,
                    height,
                    !0,
                )?
                .reply()?;
                Ok(Cow::Owned(reply.data))
            }
        }
    }

    fn release(self, conn: &impl Connection) {
        if let Self::Shm(segment) = self {
            segment.release(conn);
        }
    }
}

/// A shared segment for `len` bytes, if the server has MIT-SHM and shares
/// memory with us.
fn try_shm(conn: &impl Connection, root: Window, len: usize) -> Result<ShmSegment, BoxError> {
    if conn
        .extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)?
        .is_none()
    {
        return Err("the X server has no MIT-SHM extension".into());
    }
    ShmSegment::create(conn, root, len)
}

/// What a capture hands its bands of rows to
/// ([`X11Source::capture_bands`]).
trait Bands {
    /// The bands of pixel rows wanted, top to bottom, at most `max_rows`
    /// rows each.
    fn bands(&self, max_rows: u32) -> Vec<Range<u32>>;

    /// Takes the pixels of rows `rows`, `stride` bytes apart.
    fn take(&mut self, rows: Range<u32>, pixels: &[u8], stride: usize) -> Result<(), CaptureError>;
}

impl Bands for Conversion {
    fn bands(&self, max_rows: u32) -> Vec<Range<u32>> {
        Conversion::bands(self, max_rows)
    }

    fn take(&mut self, rows: Range<u32>, pixels: &[u8], stride: usize) -> Result<(), CaptureError> {
        self.convert_band(rows, pixels, stride)
    }
}

/// A whole BGRA frame put together from its bands.
struct Assembly {
    size: FrameSize,
    pixels: Vec<u8>,
}

impl Assembly {
    fn new(size: FrameSize) -> Self {
        let bytes = size.width as usize * size.height as usize * BYTES_PER_PIXEL;
        Self {
            size,
            pixels: Vec::with_capacity(bytes),
        }
    }
}

impl Bands for Assembly {
    fn bands(&self, max_rows: u32) -> Vec<Range<u32>> {
        let rows = max_rows.max(1);
        (0..self.size.height.div_ceil(rows))
            .map(|band| band * rows..((band + 1) * rows).min(self.size.height))
            .collect()
    }

    fn take(&mut self, rows: Range<u32>, pixels: &[u8], stride: usize) -> Result<(), CaptureError> {
        let bytes = rows.len() * stride;
        let band = pixels.get(..bytes).ok_or_else(|| {
            CaptureError::InvalidFrame(format!(
                "the X server sent {} bytes for rows {rows:?}, {bytes} expected",
                pixels.len()
            ))
        })?;
        self.pixels.extend_from_slice(band);
        Ok(())
    }
}

/// The blocks DAMAGE's `rectangles` touch, in a picture of `size`.
fn damaged(size: FrameSize, rectangles: &[Rectangle]) -> ChangeMap {
    let mut map = ChangeMap::unchanged(size);
    for r in rectangles {
        map.mark(r.x.into(), r.y.into(), r.width.into(), r.height.into());
    }
    map
}

/// How unchanged frames are detected, and what the last picture delivered
/// was, which the next one's changes are relative to.
enum Changes {
    /// DAMAGE events; `damaged` is set by one since the last capture (and
    /// before the first).
    Damage {
        watch: DamageWatch,
        damaged: bool,
        last_picture: Option<YuvFrame>,
        /// When DAMAGE is next checked against the pixels.
        schedule: CheckSchedule,
        /// Blocks a DAMAGE check emptied from the damage, for the next
        /// picture's changes.
        carried: Option<ChangeMap>,
    },
    /// Comparing captures. `last` is the last frame delivered; `pending` a
    /// capture that [`X11Source::changed_since_last`] found different, which
    /// the next `next_frame` delivers.
    Compare {
        last: Option<Frame>,
        pending: Option<Frame>,
        last_picture: Option<YuvFrame>,
    },
}

impl Changes {
    /// DAMAGE unless the server lacks it or it is turned off.
    fn open(conn: &impl Connection, root: Window, options: &X11Options) -> Self {
        if options.ignore_damage {
            info!("X11 capture compares frames to skip unchanged ones: DAMAGE turned off");
            return Self::compare();
        }
        match DamageWatch::start(conn, root) {
            Ok(Some(watch)) => {
                info!("X11 capture skips unchanged frames with DAMAGE");
                Self::Damage {
                    watch,
                    damaged: true,
                    last_picture: None,
                    schedule: CheckSchedule::new(
                        options.verify_damage_every.unwrap_or(VERIFY_EVERY),
                    ),
                    carried: None,
                }
            }
            Ok(None) => {
                info!("X11 capture compares frames to skip unchanged ones: no DAMAGE extension");
                Self::compare()
            }
            Err(err) => {
                info!(%err, "X11 capture compares frames to skip unchanged ones: DAMAGE failed");
                Self::compare()
            }
        }
    }

    fn compare() -> Self {
        Self::Compare {
            last: None,
            pending: None,
            last_picture: None,
        }
    }

    fn mark_damaged(&mut self) {
        if let Self::Damage { damaged, .. } = self {
            *damaged = true;
        }
    }

    /// After a layout change: the next frame is new whatever the pixels.
    fn forget_last(&mut self) {
        match self {
            Self::Damage {
                damaged,
                last_picture,
                carried,
                ..
            } => (*damaged, *last_picture, *carried) = (true, None, None),
            Self::Compare {
                last,
                pending,
                last_picture,
            } => (*last, *pending, *last_picture) = (None, None, None),
        }
    }

    /// The last [`YuvFrame`] delivered, if nothing else was delivered
    /// after it: the next one is converted from it where nothing changed.
    fn last_picture(&self) -> Option<&YuvFrame> {
        match self {
            Self::Damage { last_picture, .. } | Self::Compare { last_picture, .. } => {
                last_picture.as_ref()
            }
        }
    }

    /// Remembers the [`YuvFrame`] just delivered (a clone: the samples are
    /// shared with the recorder's).
    fn delivered_picture(&mut self, picture: YuvFrame) {
        match self {
            Self::Damage { last_picture, .. } | Self::Compare { last_picture, .. } => {
                *last_picture = Some(picture);
            }
        }
    }

    /// DAMAGE mode: whether a check of DAMAGE against the pixels is due
    /// (nothing reported, a picture to compare with, and it is time).
    fn check_due(&self) -> bool {
        match self {
            Self::Damage {
                damaged: false,
                last_picture: Some(_),
                schedule,
                ..
            } => schedule.due(),
            _ => false,
        }
    }

    /// DAMAGE mode: a check was done now.
    fn checked(&mut self) {
        if let Self::Damage { schedule, .. } = self {
            schedule.checked();
        }
    }

    /// DAMAGE mode: keeps `reported` (emptied from the damage by a check)
    /// for the next picture's changes; whether there is any.
    fn carry(&mut self, reported: ChangeMap) -> bool {
        let Self::Damage {
            damaged, carried, ..
        } = self
        else {
            return false;
        };
        if reported.is_unchanged() {
            return false;
        }
        match carried {
            Some(carried) => carried.merge(&reported),
            None => *carried = Some(reported),
        }
        *damaged = true;
        true
    }

    /// DAMAGE mode: the blocks carried for the next picture's changes.
    fn take_carried(&mut self) -> Option<ChangeMap> {
        match self {
            Self::Damage { carried, .. } => carried.take(),
            Self::Compare { .. } => None,
        }
    }

    /// Compare mode: the blocks in which `frame` differs from the last
    /// frame delivered.
    fn compared_with_last(&self, frame: &Frame) -> Option<ChangeMap> {
        match self {
            Self::Compare {
                last: Some(last), ..
            } => Some(ChangeMap::between(last, frame)),
            _ => None,
        }
    }

    /// Whether the screen changed since the last frame, when that is known
    /// without capturing.
    fn known(&self) -> Option<bool> {
        match self {
            Self::Damage { damaged, .. } => Some(*damaged),
            Self::Compare { last: None, .. } => Some(true),
            Self::Compare { .. } => None,
        }
    }

    /// Compare mode: whether `frame` differs from the last frame; if so it
    /// is kept for the next `next_frame`.
    fn offer(&mut self, frame: Frame) -> bool {
        let Self::Compare { last, pending, .. } = self else {
            return true;
        };
        let changed = last.as_ref().is_none_or(|last| !frame.same_picture(last));
        *pending = changed.then_some(frame);
        changed
    }

    /// Compare mode keeps the last BGRA frame delivered (DAMAGE keeps
    /// nothing).
    fn keeps_frames(&self) -> bool {
        matches!(self, Self::Compare { .. })
    }

    fn take_pending(&mut self) -> Option<Frame> {
        match self {
            Self::Compare { pending, .. } => pending.take(),
            Self::Damage { .. } => None,
        }
    }

    /// DAMAGE: grabs the server and empties the damage, asking for its
    /// rectangles (before capturing, see the `damage` module).
    fn before_capture<'c, C: Connection>(
        &mut self,
        conn: &'c C,
    ) -> Result<Option<Cookie<'c, C, FetchRegionReply>>, ConnectionError> {
        match self {
            Self::Damage { watch, damaged, .. } => {
                *damaged = false;
                watch.take(conn).map(Some)
            }
            Self::Compare { .. } => Ok(None),
        }
    }

    /// A BGRA frame was delivered: compare mode compares the next captures
    /// with it. DAMAGE mode keeps it converted, as the picture its checks
    /// compare with and the next picture is converted from (a conversion a
    /// frame, for callers of [`FrameSource::next_frame`] only: the recorder
    /// asks for pictures).
    fn delivered(&mut self, frame: &Frame) {
        match self {
            Self::Compare {
                last, last_picture, ..
            } => (*last, *last_picture) = (Some(frame.clone()), None),
            Self::Damage {
                last_picture,
                carried,
                ..
            } => (*last_picture, *carried) = (YuvFrame::from_frame(frame).ok(), None),
        }
    }

    fn stop(self, conn: &impl Connection) {
        if let Self::Damage { watch, .. } = self {
            watch.stop(conn);
        }
    }
}

/// The events queued once the server has answered a `GetInputFocus`.
fn sync_and_drain(conn: &impl Connection) -> Result<Vec<Event>, ReplyError> {
    xproto::get_input_focus(conn)?.reply()?;
    let mut events = Vec::new();
    while let Some(event) = conn.poll_for_event()? {
        events.push(event);
    }
    Ok(events)
}

/// The display to connect to: the one asked for, else `$DISPLAY` (`env`).
fn display_name(requested: Option<&str>, env: Option<OsString>) -> Result<String, CaptureError> {
    let name = match requested {
        Some(name) => name.to_owned(),
        None => env.and_then(|v| v.into_string().ok()).unwrap_or_default(),
    };
    if name.is_empty() {
        return Err(CaptureError::NoDisplay);
    }
    Ok(name)
}

/// Asks for the events that announce a layout change: `ConfigureNotify` on
/// the root window (the server sends it for size, CRTC and RandR monitor
/// changes) and RandR's own notifications. Returns whether the server has
/// RandR 1.5 monitors.
fn watch_layout(conn: &impl Connection, root: Window) -> Result<bool, ReplyOrIdError> {
    let structure = ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY);
    xproto::change_window_attributes(conn, root, &structure)?.check()?;
    if conn
        .extension_information(randr::X11_EXTENSION_NAME)?
        .is_none()
    {
        return Ok(false);
    }
    let reply = randr::query_version(conn, 1, 5)?.reply()?;
    let version = (reply.major_version, reply.minor_version);
    let mut mask = NotifyMask::SCREEN_CHANGE;
    if version >= (1, 2) {
        mask |= NotifyMask::CRTC_CHANGE | NotifyMask::OUTPUT_CHANGE;
    }
    randr::select_input(conn, root, mask)?.check()?;
    Ok(version >= (1, 5))
}

/// The frame size of `layout`, refusing screens too small to encode.
fn checked_frame_size(layout: &Layout) -> Result<FrameSize, CaptureError> {
    let size = layout.frame_size();
    if size.width == 0 || size.height == 0 {
        return Err(CaptureError::UnsupportedFormat(format!(
            "the X screen is {}, at least 2x2 pixels are needed",
            layout.screen
        )));
    }
    Ok(size)
}

/// About how many bytes of BGRA a band of rows holds: half a megabyte,
/// 64 rows of 1080p. The bands of a whole screen cost a round trip each
/// (17 at 1080p, a few hundred microseconds in all); a band of the whole
/// screen would hold 8 MiB, more than the rest of the capture path.
const BAND_BYTES: usize = 512 * 1024;

/// The rows of a band of `width`-pixel rows: whole rows of blocks, as
/// many as [`BAND_BYTES`] holds, and at least one.
fn band_rows(width: u32) -> u32 {
    let row = (width as usize * BYTES_PER_PIXEL).max(1);
    let rows = u32::try_from(BAND_BYTES / row).unwrap_or(u32::MAX);
    (rows / MB_SIZE * MB_SIZE).max(MB_SIZE)
}

/// Bytes of the shared segment for `width`-pixel rows: a band, and a row
/// to spare ([`Grabber::grab`]).
fn segment_bytes(width: u32) -> usize {
    (band_rows(width) as usize + 1) * width as usize * BYTES_PER_PIXEL
}

/// The band of rows `rows`, `width` pixels from the left edge, as the
/// 16-bit top, width and height X requests take. Sizes come from the
/// server, whose own sizes are 16-bit, so they always fit.
fn band_extent(width: u32, rows: &Range<u32>) -> (i16, u16, u16) {
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let top = i16::try_from(rows.start).unwrap_or(i16::MAX);
    (top, side(width), side(rows.end - rows.start))
}

/// Maps an x11rb failure while doing `what` to a [`CaptureError`]: a broken
/// connection closes the source for good; an X error is a backend failure.
fn failed<E: Into<ReplyOrIdError>>(what: &'static str) -> impl Fn(E) -> CaptureError {
    move |err| match err.into() {
        ReplyOrIdError::ConnectionError(err) => {
            warn!(%err, "lost the X11 connection while {what}");
            CaptureError::Closed
        }
        err => CaptureError::Backend {
            backend: "x11",
            source: format!("{what}: {err}").into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_comes_from_the_options_then_the_environment() {
        let env = || Some(OsString::from(":7"));
        assert_eq!(display_name(Some(":3"), env()).unwrap(), ":3");
        assert_eq!(display_name(None, env()).unwrap(), ":7");
    }

    #[test]
    fn no_display_is_a_clear_error() {
        for env in [None, Some(OsString::new())] {
            let err = display_name(None, env).unwrap_err();
            assert!(matches!(err, CaptureError::NoDisplay));
            assert!(err.to_string().contains("DISPLAY is not set"), "{err}");
        }
    }

    #[test]
    fn source_is_send() {
        fn send<T: Send>() {}
        send::<X11Source>();
    }
}
