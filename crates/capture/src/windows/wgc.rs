//! Windows.Graphics.Capture of every monitor, through `windows-capture`.
//!
//! windows-capture runs one capture per monitor on a thread of its own and
//! calls [`SlotWriter::on_frame_arrived`] whenever the compositor presents
//! a new picture of that monitor (only when something changed on it: a
//! still monitor delivers nothing, which makes "a picture arrived" the
//! change signal, on every Windows version). The callback queues a GPU copy
//! of the picture into the monitor's [`Slot`] and marks it fresh; the
//! recorder thread maps that copy when it composes a frame. Nothing queues
//! up: a slot holds one picture, the latest.
//!
//! windows-capture 2 also exposes dirty regions, but only on Windows 11
//! 24H2 and later (`DirtyRegionMode`); the arrival signal already says
//! which monitors changed, everywhere, so they are not used.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use ::windows::Win32::Graphics::Direct3D11::{
    ID3D11Device, ID3D11DeviceContext, ID3D11Multithread,
};
use ::windows::core::Interface;
use tracing::{debug, info, warn};
use windows_capture::capture::{CaptureControl, Context, GraphicsCaptureApiHandler};
use windows_capture::frame::Frame as CapturedFrame;
use windows_capture::graphics_capture_api::{GraphicsCaptureApi, InternalCaptureControl};
use windows_capture::settings::{
    ColorFormat, CursorCaptureSettings, DirtyRegionSettings, DrawBorderSettings,
    MinimumUpdateIntervalSettings, SecondaryWindowSettings, Settings,
};

use super::blank::{BLANK_BGRA, BlankReason};
use super::d3d::LatestPicture;
use super::desktop::ActiveMonitor;
use super::layout::{Canvas, DesktopLayout};
use super::source::{Backend, CaptureMethod, WindowsOptions};
use crate::BoxError;

/// Graphics Capture sessions for every monitor of a layout.
pub(super) struct GraphicsCapture {
    monitors: Vec<MonitorCapture>,
}

/// The capture of one monitor.
struct MonitorCapture {
    /// GDI device name, to find the monitor's place in the layout.
    name: String,
    /// Its latest picture, written by the capture thread.
    slot: Arc<Mutex<Slot>>,
    /// The capture thread; `None` once it was found stopped and joined.
    control: Option<CaptureControl<SlotWriter, BoxError>>,
}

impl Drop for MonitorCapture {
    /// Stops the capture thread and waits for it.
    fn drop(&mut self) {
        if let Some(control) = self.control.take()
            && let Err(e) = control.stop()
        {
            debug!(monitor = self.name, error = %e, "stopping the capture thread failed");
        }
    }
}

/// One monitor's latest picture, shared by its capture thread (writer) and
/// the recorder thread (reader).
#[derive(Default)]
struct Slot {
    /// The capture thread's Direct3D device; set when the thread starts.
    gpu: Option<Gpu>,
    /// The latest picture, on that device.
    latest: LatestPicture,
    /// A picture arrived since the reader last drew this monitor.
    fresh: bool,
    /// Windows closed the capture item (the monitor went away).
    closed: bool,
}

/// The Direct3D device a capture thread delivers pictures on.
struct Gpu {
    device: ID3D11Device,
    /// Its immediate context: used by the capture thread to copy and by the
    /// recorder thread to map, always under the slot's lock.
    context: ID3D11DeviceContext,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic elsewhere while holding the lock leaves a slot that is still
    // consistent (plain flags and handles), so go on with it.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handler windows-capture calls on the capture thread.
struct SlotWriter {
    slot: Arc<Mutex<Slot>>,
}

impl GraphicsCaptureApiHandler for SlotWriter {
    type Flags = Arc<Mutex<Slot>>;
    type Error = BoxError;

    fn new(ctx: Context<Self::Flags>) -> Result<Self, Self::Error> {
        // The recorder thread maps on this context too, always under the
        // slot's lock; let Direct3D serialise it as well, in case
        // windows-capture uses it outside that lock. Not essential, so a
        // context without the interface is only logged.
        match ctx.device_context.cast::<ID3D11Multithread>() {
            Ok(multithread) => {
                // SAFETY: no pointers; returns the previous setting.
                let _previous = unsafe { multithread.SetMultithreadProtected(true) };
            }
            Err(e) => debug!(error = %e, "no ID3D11Multithread on the capture context"),
        }
        lock(&ctx.flags).gpu = Some(Gpu {
            device: ctx.device,
            context: ctx.device_context,
        });
        Ok(Self { slot: ctx.flags })
    }

    fn on_frame_arrived(
        &mut self,
        frame: &mut CapturedFrame,
        _control: InternalCaptureControl,
    ) -> Result<(), Self::Error> {
        let mut slot = lock(&self.slot);
        let Slot { gpu, latest, .. } = &mut *slot;
        if let Some(gpu) = gpu {
            latest.store(&gpu.device, &gpu.context, frame.as_raw_texture())?;
            slot.fresh = true;
        }
        Ok(())
    }

    fn on_closed(&mut self) -> Result<(), Self::Error> {
        lock(&self.slot).closed = true;
        Ok(())
    }
}

/// The session settings this Windows supports, chosen once per start.
struct SessionSettings {
    cursor: CursorCaptureSettings,
    border: DrawBorderSettings,
    interval: MinimumUpdateIntervalSettings,
}

impl SessionSettings {
    /// Cursor on, border off and the update interval limited where this
    /// Windows lets us say so; its defaults elsewhere (windows-capture
    /// refuses to start when asked for a setting Windows lacks).
    fn supported(min_update_interval: Duration) -> Self {
        let has = |check: Result<bool, _>| check.unwrap_or(false);
        let cursor = if has(GraphicsCaptureApi::is_cursor_settings_supported()) {
            CursorCaptureSettings::WithCursor
        } else {
            // Windows 10 before 2004: the cursor is captured, by default.
            CursorCaptureSettings::Default
        };
        let border = if has(GraphicsCaptureApi::is_border_settings_supported()) {
            DrawBorderSettings::WithoutBorder
        } else {
            info!(
                "this Windows cannot hide the capture border (Windows 11 can): \
                 monitors show a yellow border while recording"
            );
            DrawBorderSettings::Default
        };
        let interval = if has(GraphicsCaptureApi::is_minimum_update_interval_supported()) {
            MinimumUpdateIntervalSettings::Custom(min_update_interval)
        } else {
            MinimumUpdateIntervalSettings::Default
        };
        Self {
            cursor,
            border,
            interval,
        }
    }
}

impl GraphicsCapture {
    /// Starts capturing every monitor and waits (up to the options' first
    /// picture timeout) until each has delivered a picture.
    ///
    /// # Errors
    ///
    /// When Graphics Capture is unsupported, a capture cannot start, or no
    /// monitor delivers a picture in time.
    pub(super) fn start(
        monitors: &[ActiveMonitor],
        options: &WindowsOptions,
    ) -> Result<Self, BoxError> {
        ensure_supported()?;
        let session = SessionSettings::supported(options.min_update_interval);
        let mut capture = Self {
            monitors: Vec::with_capacity(monitors.len()),
        };
        for monitor in monitors {
            let slot = Arc::new(Mutex::new(Slot::default()));
            let settings = Settings::new(
                monitor.handle,
                session.cursor,
                session.border,
                SecondaryWindowSettings::Default,
                session.interval,
                DirtyRegionSettings::Default,
                ColorFormat::Bgra8,
                Arc::clone(&slot),
            );
            let control = SlotWriter::start_free_threaded(settings)
                .map_err(|e| format!("capture of {} did not start: {e}", monitor.rect.name))?;
            capture.monitors.push(MonitorCapture {
                name: monitor.rect.name.clone(),
                slot,
                control: Some(control),
            });
        }
        capture.wait_for_pictures(options.first_picture_timeout)?;
        Ok(capture)
    }

    /// Waits until every monitor has a picture; fails when none has one by
    /// `timeout` (a capture that starts but delivers nothing is useless),
    /// warns when only some have.
    fn wait_for_pictures(&mut self, timeout: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let ready = self
                .monitors
                .iter()
                .filter(|m| lock(&m.slot).latest.is_some())
                .count();
            if ready == self.monitors.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if ready == 0 {
                    return Err(format!(
                        "capture started, but no monitor delivered a picture within {timeout:?}"
                    )
                    .into());
                }
                warn!(
                    ready,
                    monitors = self.monitors.len(),
                    "not every monitor delivered a first picture; the others stay blank until they do"
                );
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Fails when a monitor's capture ended: Windows closed its item, or
    /// the capture thread stopped (with the thread's error).
    fn check_running(&mut self) -> Result<(), BoxError> {
        for monitor in &mut self.monitors {
            if lock(&monitor.slot).closed {
                return Err(format!("Windows closed the capture of {}", monitor.name).into());
            }
            if monitor
                .control
                .as_ref()
                .is_some_and(CaptureControl::is_finished)
            {
                let outcome = match monitor.control.take().map(CaptureControl::wait) {
                    Some(Err(e)) => e.to_string(),
                    _ => "it ended".to_owned(),
                };
                return Err(format!("capture of {} stopped: {outcome}", monitor.name).into());
            }
        }
        Ok(())
    }
}

/// Fails, saying why, where Windows has no Graphics Capture.
fn ensure_supported() -> Result<(), BoxError> {
    match GraphicsCaptureApi::is_supported() {
        Ok(true) => Ok(()),
        Ok(false) => Err("Windows.Graphics.Capture is not supported here \
                          (it needs Windows 10 1903 or later and a desktop session)"
            .into()),
        Err(e) => Err(format!("Windows.Graphics.Capture is not available: {e}").into()),
    }
}

impl Backend for GraphicsCapture {
    fn method(&self) -> CaptureMethod {
        CaptureMethod::GraphicsCapture
    }

    fn poll(&mut self) -> Result<bool, BoxError> {
        self.check_running()?;
        Ok(self.monitors.iter().any(|m| lock(&m.slot).fresh))
    }

    fn draw(
        &mut self,
        layout: &DesktopLayout,
        canvas: &mut Canvas,
        all: bool,
    ) -> Result<Vec<BlankReason>, BoxError> {
        let mut blanks = Vec::new();
        for monitor in &self.monitors {
            let Some(place) = layout.placement(&monitor.name) else {
                continue;
            };
            let mut slot = lock(&monitor.slot);
            let fresh = std::mem::take(&mut slot.fresh);
            match &slot.gpu {
                Some(gpu) if slot.latest.is_some() => {
                    if fresh || all {
                        let blitted = slot.latest.read(&gpu.context, |p| canvas.blit(place, p))?;
                        blitted.transpose()?;
                    }
                }
                _ => {
                    canvas.fill(place, BLANK_BGRA);
                    blanks.push(BlankReason::NoPictureYet {
                        monitor: monitor.name.clone(),
                    });
                }
            }
        }
        Ok(blanks)
    }
}
