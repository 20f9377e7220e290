//! [`WindowsSource`]: the desktop of every monitor as one frame, through
//! whichever capture method works, staying up through everything Windows
//! throws at a long recording.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::blank::{BLANK_BGRA, BlankReason};
use super::desktop::{self, ActiveMonitor, InputDesktop};
use super::dxgi::Duplication;
use super::layout::{Canvas, DesktopLayout, MonitorRect};
use super::wgc::GraphicsCapture;
use crate::{
    BoxError, CaptureError, FailedAttempt, Frame, FrameSize, FrameSource, Monitor, YuvFrame,
};

/// How soon to try again to start a capture that stopped working.
const RESTART_INTERVAL: Duration = Duration::from_secs(2);

/// A way of capturing the Windows desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMethod {
    /// Windows.Graphics.Capture through windows-capture (Windows 10 1903+):
    /// the cursor included, the capture border hidden on Windows 11.
    GraphicsCapture,
    /// DXGI Desktop Duplication (Windows 8+): no mouse pointer, blank while
    /// the secure desktop is shown.
    DesktopDuplication,
}

impl CaptureMethod {
    /// Every method, in the order [`WindowsSource`] tries them.
    pub const ALL: [Self; 2] = [Self::GraphicsCapture, Self::DesktopDuplication];

    /// Its name in messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::GraphicsCapture => "Windows Graphics Capture",
            Self::DesktopDuplication => "DXGI Desktop Duplication",
        }
    }
}

/// How to open a [`WindowsSource`]. The default tries Graphics Capture,
/// then desktop duplication.
#[derive(Debug, Clone)]
pub struct WindowsOptions {
    pub(super) only: Option<CaptureMethod>,
    pub(super) min_update_interval: Duration,
    pub(super) first_picture_timeout: Duration,
}

impl Default for WindowsOptions {
    fn default() -> Self {
        Self {
            only: None,
            min_update_interval: Duration::from_millis(100),
            first_picture_timeout: Duration::from_secs(2),
        }
    }
}

impl WindowsOptions {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `method` only, without falling back (tests, troubleshooting).
    #[must_use]
    pub fn only(mut self, method: CaptureMethod) -> Self {
        self.only = Some(method);
        self
    }

    /// Asks Graphics Capture for at most one picture per `interval` and
    /// monitor, where Windows supports it (Windows 11 24H2+); elsewhere
    /// pictures arrive as often as the screen changes (each costs a GPU
    /// copy, not CPU). Default 100 ms: below the recorder's 200 ms frame
    /// interval, so a frame is never more than one interval old.
    #[must_use]
    pub fn min_update_interval(mut self, interval: Duration) -> Self {
        self.min_update_interval = interval;
        self
    }

    /// How long starting Graphics Capture waits for the monitors' first
    /// pictures; with none by then it counts as failed. Default 2 s.
    #[must_use]
    pub fn first_picture_timeout(mut self, timeout: Duration) -> Self {
        self.first_picture_timeout = timeout;
        self
    }

    /// The methods to try, in order.
    fn methods(&self) -> &[CaptureMethod] {
        self.only
            .as_ref()
            .map_or(&CaptureMethod::ALL, std::slice::from_ref)
    }
}

/// What each capture method provides to [`WindowsSource`].
pub(super) trait Backend: Send {
    /// Which method this is.
    fn method(&self) -> CaptureMethod;

    /// Takes in what Windows delivered since the last call; whether any
    /// monitor's picture (or blank state) changed since the last
    /// [`draw`](Backend::draw).
    ///
    /// Errors mean the method stopped working (a monitor's capture ended,
    /// the GPU went away): the source starts it again.
    fn poll(&mut self) -> Result<bool, BoxError>;

    /// Draws the monitors that changed (every monitor when `all`) onto
    /// `canvas` at their places in `layout`; returns why monitors are
    /// blank, if any are. Errors as for `poll`.
    fn draw(
        &mut self,
        layout: &DesktopLayout,
        canvas: &mut Canvas,
        all: bool,
    ) -> Result<Vec<BlankReason>, BoxError>;

    /// Whether Windows painted protected (DRM) content black in the latest
    /// pictures; only desktop duplication can tell.
    fn protected_content(&self) -> bool {
        false
    }
}

/// A [`FrameSource`] that captures every monitor of the Windows desktop
/// into one frame; see the [module docs](super).
pub struct WindowsSource {
    options: WindowsOptions,
    layout: DesktopLayout,
    /// The composed picture, kept between frames.
    canvas: Canvas,
    /// The running capture; `None` after it stopped working, until a
    /// restart succeeds.
    backend: Option<Box<dyn Backend>>,
    /// Why the capture is not running, while `backend` is `None`.
    down_because: String,
    /// When to try starting the capture again, while it is down.
    restart_at: Instant,
    /// The canvas was blanked or is new: draw every monitor next time.
    redraw_all: bool,
    /// No frame returned yet since start or the last layout change.
    first_frame: bool,
    /// Why parts of the last frame were blank (empty: none were).
    blanks: Vec<BlankReason>,
    /// Windows masked protected content in the last frame.
    protected: bool,
}

impl WindowsSource {
    /// Captures every monitor with the first method that works.
    ///
    /// # Errors
    ///
    /// [`CaptureError::Unavailable`] listing each method tried and why it
    /// failed; [`CaptureError::Backend`] when Windows cannot list the
    /// monitors or lists none.
    pub fn new() -> Result<Self, CaptureError> {
        Self::with_options(WindowsOptions::default())
    }

    /// Captures every monitor as `options` say.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn with_options(options: WindowsOptions) -> Result<Self, CaptureError> {
        Self::open(options, false)
    }

    /// Captures as [`with_options`](Self::with_options) does, except that
    /// where no method can start (a remote session without a GPU, a
    /// locked-down virtual machine, wine) it records marked blank frames
    /// ([`BlankReason::Unavailable`] naming each method and why) and tries
    /// the methods again every 2 s, instead of failing. For a recorder that
    /// must cover the whole logon: the recording then shows when, and the
    /// log why, the screen could not be captured, and capture begins as
    /// soon as Windows allows it.
    ///
    /// # Errors
    ///
    /// [`CaptureError::Backend`] when Windows cannot list the monitors or
    /// lists none.
    pub fn or_blank(options: WindowsOptions) -> Result<Self, CaptureError> {
        Self::open(options, true)
    }

    /// Opens the source over the monitors now; `blank_if_unavailable` says
    /// whether a capture that cannot start fails or gives blank frames.
    fn open(options: WindowsOptions, blank_if_unavailable: bool) -> Result<Self, CaptureError> {
        desktop::make_dpi_aware();
        let monitors = desktop::active_monitors()?;
        let layout = DesktopLayout::new(&rects(&monitors))?;
        match start(&options, &monitors) {
            Ok(backend) => {
                info!(
                    method = backend.method().name(),
                    size = %layout.frame_size(),
                    monitors = ?layout.monitors(),
                    "capturing the Windows desktop"
                );
                Ok(Self::running(options, layout, Some(backend)))
            }
            Err(e) if blank_if_unavailable => {
                warn!(
                    error = %e,
                    size = %layout.frame_size(),
                    "screen capture cannot start; recording marked blank frames and trying again every 2 s"
                );
                let mut source = Self::running(options, layout, None);
                source.mark_down(e.to_string());
                Ok(source)
            }
            Err(e) => Err(e),
        }
    }

    /// A source in its starting state: capturing through `backend` (`None`:
    /// down, frames blank), with everything to be drawn on the first frame.
    fn running(
        options: WindowsOptions,
        layout: DesktopLayout,
        backend: Option<Box<dyn Backend>>,
    ) -> Self {
        Self {
            options,
            canvas: Canvas::new(&layout),
            layout,
            backend,
            down_because: String::new(),
            restart_at: Instant::now(),
            redraw_all: true,
            first_frame: true,
            blanks: Vec::new(),
            protected: false,
        }
    }

    /// The method capturing now; `None` while the capture is down and
    /// frames are blank.
    #[must_use]
    pub fn method(&self) -> Option<CaptureMethod> {
        self.backend.as_ref().map(|b| b.method())
    }

    /// Why parts of the last frame were [blank](super::BLANK_BGRA) instead
    /// of showing the screen; empty when it showed every monitor.
    #[must_use]
    pub fn blank_reasons(&self) -> &[BlankReason] {
        &self.blanks
    }

    /// Whether Windows painted protected (DRM) content black in the last
    /// frame (known with desktop duplication only; Graphics Capture paints
    /// it black too, without saying so).
    #[must_use]
    pub fn protected_content_masked(&self) -> bool {
        self.protected
    }

    /// The monitor layout frames are composed at.
    #[must_use]
    pub fn desktop_layout(&self) -> &DesktopLayout {
        &self.layout
    }

    /// Re-reads the monitors; when the layout changed, starts capturing the
    /// new one and returns [`CaptureError::LayoutChanged`]. A layout that
    /// cannot be read (monitors switching this instant) is ignored: the
    /// next call looks again.
    fn follow_layout(&mut self) -> Result<(), CaptureError> {
        let Ok(monitors) = desktop::active_monitors() else {
            return Ok(());
        };
        let Ok(layout) = DesktopLayout::new(&rects(&monitors)) else {
            return Ok(());
        };
        if layout == self.layout {
            return Ok(());
        }
        info!(
            from = ?self.layout.monitors(),
            to = ?layout.monitors(),
            "monitor layout changed"
        );
        // Stop capturing the old monitors before capturing the new ones.
        self.backend = None;
        self.canvas = Canvas::new(&layout);
        self.layout = layout;
        self.redraw_all = true;
        self.first_frame = true;
        match start(&self.options, &monitors) {
            Ok(backend) => self.backend = Some(backend),
            Err(e) => self.went_down(e.to_string()),
        }
        Err(CaptureError::LayoutChanged {
            size: self.layout.frame_size(),
            monitors: self.layout.monitors().len(),
        })
    }

    /// Records that the capture stopped working, to restart it soon.
    fn went_down(&mut self, why: String) {
        warn!(
            error = why,
            "screen capture stopped working; frames are blank until it restarts"
        );
        self.mark_down(why);
    }

    /// Drops the capture and schedules its restart: frames are blank, with
    /// `why`, until then.
    fn mark_down(&mut self, why: String) {
        self.backend = None;
        self.down_because = why;
        self.restart_at = Instant::now() + RESTART_INTERVAL;
    }

    /// Starts the capture again if it is down and a retry is due.
    fn restart_if_due(&mut self) {
        if self.backend.is_some() || Instant::now() < self.restart_at {
            return;
        }
        let started = desktop::active_monitors().and_then(|m| start(&self.options, &m));
        match started {
            Ok(backend) => {
                info!(method = backend.method().name(), "screen capture restarted");
                self.backend = Some(backend);
                self.redraw_all = true;
            }
            Err(e) => {
                debug!(error = %e, "screen capture still cannot start");
                self.down_because = e.to_string();
                self.restart_at = Instant::now() + RESTART_INTERVAL;
            }
        }
    }

    /// Whether the last frame was the whole-screen secure-desktop blank.
    fn showed_secure_desktop(&self) -> bool {
        self.blanks == [BlankReason::SecureDesktop]
    }

    /// Draws the current picture onto the canvas; returns why parts of it
    /// are blank.
    fn compose(&mut self) -> Vec<BlankReason> {
        if let InputDesktop::Other(name) = desktop::input_desktop() {
            if !self.showed_secure_desktop() {
                debug!(desktop = name, "input desktop is not the user's");
            }
            return self.blank_all(BlankReason::SecureDesktop);
        }
        self.restart_if_due();
        let drawn = match self.backend.as_mut() {
            Some(backend) => backend
                .poll()
                .and_then(|_| backend.draw(&self.layout, &mut self.canvas, self.redraw_all))
                .map(|blanks| (blanks, backend.protected_content())),
            None => Err(self.down_because.clone().into()),
        };
        match drawn {
            Ok((blanks, protected)) => {
                self.redraw_all = false;
                self.protected = protected;
                blanks
            }
            Err(e) => {
                if self.backend.is_some() {
                    self.went_down(e.to_string());
                }
                self.blank_all(BlankReason::Unavailable {
                    monitor: "desktop".to_owned(),
                    detail: e.to_string(),
                })
            }
        }
    }

    /// Brings the canvas up to date for the next frame.
    fn take_picture(&mut self) -> Result<(), CaptureError> {
        self.follow_layout()?;
        let blanks = self.compose();
        self.note_blanks(blanks);
        self.first_frame = false;
        Ok(())
    }

    /// Blanks the whole canvas for `reason`.
    fn blank_all(&mut self, reason: BlankReason) -> Vec<BlankReason> {
        self.canvas.fill_all(BLANK_BGRA);
        self.redraw_all = true;
        self.protected = false;
        vec![reason]
    }

    /// Logs when what the frames show changes.
    fn note_blanks(&mut self, blanks: Vec<BlankReason>) {
        if blanks != self.blanks {
            if blanks.is_empty() {
                info!("frames show the whole desktop again");
            } else {
                let reasons: Vec<String> = blanks.iter().map(ToString::to_string).collect();
                warn!(reasons = reasons.join("; "), "frames are (partly) blank");
            }
        }
        self.blanks = blanks;
    }
}

impl FrameSource for WindowsSource {
    fn size(&self) -> FrameSize {
        self.layout.frame_size()
    }

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        self.take_picture()?;
        self.canvas.to_frame(Instant::now())
    }

    /// Converts straight from the canvas (no BGRA copy), and only what was
    /// drawn on it since the last picture: the monitors that changed, and of
    /// those only the dirty rectangles where desktop duplication reports
    /// them.
    fn next_yuv_frame(&mut self) -> Result<YuvFrame, CaptureError> {
        self.take_picture()?;
        self.canvas.next_yuv_frame(Instant::now())
    }

    fn changed_since_last(&mut self) -> Result<bool, CaptureError> {
        self.follow_layout()?;
        if self.first_frame {
            return Ok(true);
        }
        // Entering or leaving the secure desktop changes the picture; staying
        // on it does not.
        let secure = desktop::input_desktop() != InputDesktop::Ours;
        if secure || self.showed_secure_desktop() {
            return Ok(secure != self.showed_secure_desktop());
        }
        let Some(backend) = self.backend.as_mut() else {
            // Blank while down: a due restart may bring the picture back.
            return Ok(Instant::now() >= self.restart_at);
        };
        if self.redraw_all {
            return Ok(true);
        }
        match backend.poll() {
            Ok(changed) => Ok(changed),
            Err(e) => {
                self.went_down(e.to_string());
                Ok(true)
            }
        }
    }

    fn layout(&self) -> Vec<Monitor> {
        self.layout.monitors().to_vec()
    }
}

impl std::fmt::Debug for WindowsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowsSource")
            .field("method", &self.method())
            .field("layout", &self.layout)
            .field("blanks", &self.blanks)
            .finish_non_exhaustive()
    }
}

/// The monitors' rectangles.
fn rects(monitors: &[ActiveMonitor]) -> Vec<MonitorRect> {
    monitors.iter().map(|m| m.rect.clone()).collect()
}

/// Starts the first of the options' methods that works for `monitors`.
fn start(
    options: &WindowsOptions,
    monitors: &[ActiveMonitor],
) -> Result<Box<dyn Backend>, CaptureError> {
    let mut attempts = Vec::new();
    for &method in options.methods() {
        let started: Result<Box<dyn Backend>, BoxError> = match method {
            CaptureMethod::GraphicsCapture => {
                GraphicsCapture::start(monitors, options).map(|b| Box::new(b) as _)
            }
            CaptureMethod::DesktopDuplication => {
                Duplication::start(monitors).map(|b| Box::new(b) as _)
            }
        };
        match started {
            Ok(backend) => {
                if !attempts.is_empty() {
                    info!(
                        method = method.name(),
                        failed = %CaptureError::Unavailable { attempts },
                        "capturing with a fallback method"
                    );
                }
                return Ok(backend);
            }
            Err(error) => {
                debug!(method = method.name(), %error, "capture method failed");
                attempts.push(FailedAttempt {
                    method: method.name(),
                    error,
                });
            }
        }
    }
    Err(CaptureError::Unavailable { attempts })
}

/// The monitor layout of the desktop now, as a [`WindowsSource`] would
/// compose it (makes the process per-monitor DPI aware first, as the source
/// does).
///
/// # Errors
///
/// [`CaptureError::Backend`] when Windows cannot list the monitors or lists
/// none.
pub fn current_layout() -> Result<DesktopLayout, CaptureError> {
    desktop::make_dpi_aware();
    DesktopLayout::new(&rects(&desktop::active_monitors()?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::windows::is_blank_frame;

    /// A capture method that paints every monitor one colour, or fails
    /// when told to, as a capture that dies mid-recording would.
    struct Painter {
        colour: [u8; 4],
        broken: Arc<AtomicBool>,
    }

    impl Backend for Painter {
        fn method(&self) -> CaptureMethod {
            CaptureMethod::GraphicsCapture
        }

        fn poll(&mut self) -> Result<bool, BoxError> {
            if self.broken.load(Ordering::SeqCst) {
                return Err("the painter broke".into());
            }
            Ok(false)
        }

        fn draw(
            &mut self,
            layout: &DesktopLayout,
            canvas: &mut Canvas,
            _all: bool,
        ) -> Result<Vec<BlankReason>, BoxError> {
            for monitor in layout.monitors() {
                if let Some(place) = layout.placement(&monitor.name) {
                    canvas.fill(place, self.colour);
                }
            }
            Ok(Vec::new())
        }
    }

    /// A source over the real monitor layout with `backend` as its capture.
    fn source_with(backend: Painter) -> WindowsSource {
        let layout = current_layout().expect("monitor layout");
        WindowsSource::running(WindowsOptions::default(), layout, Some(Box::new(backend)))
    }

    #[test]
    fn a_capture_that_dies_gives_marked_blank_frames_not_errors() {
        if desktop::input_desktop() != InputDesktop::Ours {
            eprintln!("the user's desktop does not have the input (locked?): skipped");
            return;
        }
        let broken = Arc::new(AtomicBool::new(false));
        let colour = [10, 200, 30, 255];
        let mut source = source_with(Painter {
            colour,
            broken: Arc::clone(&broken),
        });

        assert!(source.changed_since_last().unwrap(), "first frame");
        let frame = source.next_frame().unwrap();
        assert_eq!(&frame.row(0)[..4], &colour);
        assert!(source.blank_reasons().is_empty());
        assert!(
            !source.changed_since_last().unwrap(),
            "painter reports no change"
        );

        broken.store(true, Ordering::SeqCst);
        assert!(
            source.changed_since_last().unwrap(),
            "losing the capture changes the picture"
        );
        assert_eq!(source.method(), None);
        let frame = source.next_frame().expect("a blank frame, not an error");
        assert!(is_blank_frame(&frame));
        assert!(matches!(
            source.blank_reasons(),
            [BlankReason::Unavailable { detail, .. }] if detail.contains("the painter broke")
        ));
        // The restart is not due yet: the blank frame stands.
        assert!(!source.changed_since_last().unwrap());
        assert!(is_blank_frame(&source.next_frame().unwrap()));
    }

    #[test]
    fn options_try_both_methods_unless_told_otherwise() {
        assert_eq!(WindowsOptions::new().methods(), CaptureMethod::ALL);
        let only = WindowsOptions::new().only(CaptureMethod::DesktopDuplication);
        assert_eq!(only.methods(), [CaptureMethod::DesktopDuplication]);
    }
}
