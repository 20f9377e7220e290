//! DXGI Desktop Duplication of every monitor: the fallback where
//! Windows.Graphics.Capture cannot start (Windows 10 before 1903, some
//! remote or virtual sessions).
//!
//! Each monitor is an output of some adapter (GPU) and is duplicated with a
//! Direct3D device created on that adapter, as DXGI requires (a laptop's
//! external monitor may hang off another GPU than its panel). Every poll
//! asks each duplication for a new desktop image without waiting (a short
//! wait only for the first image after (re)creating it), queues a copy to
//! the monitor's [`LatestPicture`] and releases the image at once.
//!
//! Failures follow [`on_duplication_error`]. Most importantly, when the
//! desktop switches (UAC's secure desktop, Ctrl+Alt+Del, the lock screen)
//! the duplication reports `DXGI_ERROR_ACCESS_LOST`, and creating it again
//! is refused with `E_ACCESSDENIED` until the user's desktop is back:
//! meanwhile the monitor is blank, and every poll tries again.
//!
//! Each image comes with its move and dirty rectangles, the parts of the
//! monitor it changed: the source copies only those onto its canvas, and
//! converts and encodes only their blocks. Where Windows cannot say (no
//! metadata, an error reading it, a new duplication) the whole monitor is
//! taken as changed.
//!
//! Limitation: desktop duplication does not draw the mouse pointer into the
//! image (it reports it separately), so these frames show no pointer.
//! `ProtectedContentMaskedOut` (DRM content Windows painted black) is
//! reported through [`Backend::protected_content`].

use ::windows::Win32::Foundation::{HMODULE, RECT};
use ::windows::Win32::Graphics::Direct3D::D3D_DRIVER_TYPE_UNKNOWN;
use ::windows::Win32::Graphics::Direct3D11::{
    D3D11_CREATE_DEVICE_BGRA_SUPPORT, D3D11_SDK_VERSION, D3D11CreateDevice, ID3D11Device,
    ID3D11DeviceContext, ID3D11Texture2D,
};
use ::windows::Win32::Graphics::Dxgi::Common::DXGI_FORMAT_B8G8R8A8_UNORM;
use ::windows::Win32::Graphics::Dxgi::{
    CreateDXGIFactory1, DXGI_ERROR_NOT_FOUND, DXGI_OUTDUPL_FRAME_INFO, DXGI_OUTDUPL_MOVE_RECT,
    IDXGIAdapter1, IDXGIFactory1, IDXGIOutput1, IDXGIOutput5, IDXGIOutputDuplication,
    IDXGIResource,
};
use ::windows::core::{Error as WinError, Interface};
use tracing::{debug, info, warn};

use super::blank::{BLANK_BGRA, BlankReason};
use super::d3d::LatestPicture;
use super::desktop::{ActiveMonitor, wide_to_string};
use super::hresult::{DuplicationAction, describe, on_duplication_error};
use super::layout::{Canvas, DesktopLayout, Placement};
use super::source::{Backend, CaptureMethod};
use crate::BoxError;

/// How long to wait for the first image of a new duplication, in ms. Later
/// polls do not wait: no new image means the monitor did not change.
const FIRST_IMAGE_WAIT_MS: u32 = 50;

/// More changed parts than this between two frames are drawn as the whole
/// monitor: copying it is then about as cheap, and the list stays small.
const MAX_CHANGED_PARTS: usize = 512;

/// Desktop duplications of every monitor of a layout.
pub(super) struct Duplication {
    outputs: Vec<DuplicatedOutput>,
}

/// The duplication of one monitor (DXGI output).
struct DuplicatedOutput {
    /// GDI device name, to find the monitor's place in the layout.
    name: String,
    /// A device on the output's adapter, and its immediate context.
    device: ID3D11Device,
    context: ID3D11DeviceContext,
    output: IDXGIOutput1,
    /// `None` while Windows refuses it (or before the first try).
    duplication: Option<IDXGIOutputDuplication>,
    /// The duplication was (re)created and has not delivered an image yet.
    awaiting_first: bool,
    latest: LatestPicture,
    /// The picture or the blank state changed since the last draw.
    fresh: bool,
    /// The parts of the monitor's picture (in its own pixels) that changed
    /// since the last draw; `None` when all of it may have.
    changed_parts: Option<Vec<Placement>>,
    /// Why Windows refuses to duplicate the output now, if it does.
    refused: Option<String>,
    /// The latest image had protected content masked out.
    protected: bool,
}

impl Duplication {
    /// Duplicates the outputs of `monitors` and takes their first images.
    ///
    /// # Errors
    ///
    /// When DXGI is unusable, no output matches the monitors, or an output
    /// cannot be duplicated for a reason that waiting will not fix (see
    /// [`DuplicationAction::Fail`]).
    pub(super) fn start(monitors: &[ActiveMonitor]) -> Result<Self, BoxError> {
        // SAFETY (here and for the enumerations below): COM calls on live
        // interfaces, no pointers.
        let factory: IDXGIFactory1 =
            unsafe { CreateDXGIFactory1() }.map_err(|e| win_error("CreateDXGIFactory1", &e))?;
        let mut outputs = Vec::new();
        for adapter in enumerate(|i| unsafe { factory.EnumAdapters1(i) })
            .map_err(|e| win_error("EnumAdapters1", &e))?
        {
            outputs.extend(Self::adapter_outputs(&adapter, monitors)?);
        }
        for monitor in monitors {
            if !outputs.iter().any(|o| o.name == monitor.rect.name) {
                warn!(
                    monitor = monitor.rect.name,
                    "no DXGI output for this monitor; it stays blank"
                );
            }
        }
        if outputs.is_empty() {
            return Err("no DXGI output belongs to any monitor of the desktop".into());
        }
        let mut duplication = Self { outputs };
        duplication.poll()?;
        Ok(duplication)
    }

    /// The outputs of `adapter` that show one of `monitors`, duplicated on a
    /// device created for that adapter (only if it has such outputs).
    fn adapter_outputs(
        adapter: &IDXGIAdapter1,
        monitors: &[ActiveMonitor],
    ) -> Result<Vec<DuplicatedOutput>, BoxError> {
        let mut adapter_device: Option<(ID3D11Device, ID3D11DeviceContext)> = None;
        let mut found = Vec::new();
        // SAFETY (all calls below): COM calls on live interfaces, no pointers.
        for output in enumerate(|i| unsafe { adapter.EnumOutputs(i) })
            .map_err(|e| win_error("EnumOutputs", &e))?
        {
            let desc = unsafe { output.GetDesc() }.map_err(|e| win_error("GetDesc", &e))?;
            let name = wide_to_string(&desc.DeviceName);
            let shown =
                desc.AttachedToDesktop.as_bool() && monitors.iter().any(|m| m.rect.name == name);
            if !shown {
                continue;
            }
            let (device, context) = match &adapter_device {
                Some(pair) => pair.clone(),
                None => adapter_device.insert(create_device(adapter)?).clone(),
            };
            let mut duplicated = DuplicatedOutput {
                name,
                device,
                context,
                output: output.cast().map_err(|e| win_error("IDXGIOutput1", &e))?,
                duplication: None,
                awaiting_first: false,
                latest: LatestPicture::default(),
                fresh: false,
                changed_parts: None,
                refused: None,
                protected: false,
            };
            duplicated.duplicate()?;
            found.push(duplicated);
        }
        Ok(found)
    }
}

impl DuplicatedOutput {
    /// (Re)creates the duplication. A refusal that may pass (the secure
    /// desktop, a mode change, a disconnected session) blanks the monitor
    /// until a later poll succeeds, instead of failing.
    fn duplicate(&mut self) -> Result<(), BoxError> {
        // Release the old one first: DXGI refuses a second duplication of
        // an output by the same process.
        self.duplication = None;
        match duplicate_output(&self.output, &self.device) {
            Ok(duplication) => {
                self.duplication = Some(duplication);
                self.awaiting_first = true;
                // A new duplication's first image says nothing of the last.
                self.changed_parts = None;
                if let Some(reason) = self.refused.take() {
                    info!(monitor = self.name, was = reason, "duplication works again");
                    self.fresh = true;
                }
                Ok(())
            }
            Err(e) => match on_duplication_error(e.code().0) {
                DuplicationAction::RestartDevices | DuplicationAction::Fail => {
                    Err(win_error("DuplicateOutput", &e))
                }
                _ => {
                    self.refuse(describe("DuplicateOutput", e.code().0, &e.message()));
                    Ok(())
                }
            },
        }
    }

    /// Blanks the monitor for `detail` until duplication works again.
    fn refuse(&mut self, detail: String) {
        self.duplication = None;
        if self.refused.as_deref() != Some(detail.as_str()) {
            info!(
                monitor = self.name,
                reason = detail,
                "monitor blank: duplication refused"
            );
            self.refused = Some(detail);
            self.fresh = true;
        }
    }

    /// Takes in a new desktop image, if there is one. A duplication found
    /// lost is recreated and asked again at once, so that the first frame
    /// after the secure desktop already shows the user's desktop.
    fn poll(&mut self) -> Result<(), BoxError> {
        if self.duplication.is_none() {
            self.duplicate()?;
        }
        for _attempt in 0..2 {
            let Some(duplication) = self.duplication.clone() else {
                return Ok(());
            };
            if !self.acquire(&duplication)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Acquires, copies and releases one desktop image. `Ok(true)` when the
    /// duplication was lost and has been recreated: ask it again.
    fn acquire(&mut self, duplication: &IDXGIOutputDuplication) -> Result<bool, BoxError> {
        let timeout = if self.awaiting_first {
            FIRST_IMAGE_WAIT_MS
        } else {
            0
        };
        let mut info = DXGI_OUTDUPL_FRAME_INFO::default();
        let mut resource = None;
        // SAFETY: valid out-pointers; the previous image was released.
        let acquired = unsafe { duplication.AcquireNextFrame(timeout, &mut info, &mut resource) };
        if let Err(e) = acquired {
            return self.failed("AcquireNextFrame", &e);
        }
        let stored = self.store(&info, resource);
        if matches!(stored, Ok(true)) {
            self.note_changed_parts(duplication, &info);
        }
        // SAFETY: an image was acquired above; release it as soon as copied.
        let released = unsafe { duplication.ReleaseFrame() };
        stored?;
        match released {
            Ok(()) => Ok(false),
            Err(e) => self.failed("ReleaseFrame", &e),
        }
    }

    /// Queues a copy of an acquired image, unless only the pointer moved
    /// (`LastPresentTime` 0: the desktop image is unchanged); whether it
    /// did.
    fn store(
        &mut self,
        info: &DXGI_OUTDUPL_FRAME_INFO,
        resource: Option<IDXGIResource>,
    ) -> Result<bool, BoxError> {
        if info.LastPresentTime == 0 {
            return Ok(false);
        }
        let texture: ID3D11Texture2D = resource
            .ok_or("AcquireNextFrame returned no image")?
            .cast()
            .map_err(|e| win_error("IDXGIResource as ID3D11Texture2D", &e))?;
        self.latest.store(&self.device, &self.context, &texture)?;
        self.awaiting_first = false;
        self.fresh = true;
        self.protected = info.ProtectedContentMaskedOut.as_bool();
        Ok(true)
    }

    /// Adds the parts the acquired image changed to those not drawn yet.
    fn note_changed_parts(
        &mut self,
        duplication: &IDXGIOutputDuplication,
        info: &DXGI_OUTDUPL_FRAME_INFO,
    ) {
        self.changed_parts = match (self.changed_parts.take(), changed_parts(duplication, info)) {
            (Some(mut parts), Some(more)) if parts.len() + more.len() <= MAX_CHANGED_PARTS => {
                parts.extend(more);
                Some(parts)
            }
            _ => None,
        };
    }

    /// Handles a failed `AcquireNextFrame` or `ReleaseFrame` as
    /// [`on_duplication_error`] says; `Ok(true)` when the duplication was
    /// recreated.
    fn failed(&mut self, call: &str, error: &WinError) -> Result<bool, BoxError> {
        let code = error.code().0;
        match on_duplication_error(code) {
            DuplicationAction::KeepPicture => Ok(false),
            DuplicationAction::Recreate => {
                self.duplicate()?;
                Ok(self.duplication.is_some())
            }
            DuplicationAction::BlankAndRetry => {
                self.refuse(describe(call, code, &error.message()));
                Ok(false)
            }
            DuplicationAction::RestartDevices | DuplicationAction::Fail => {
                Err(win_error(call, error))
            }
        }
    }
}

impl Backend for Duplication {
    fn method(&self) -> CaptureMethod {
        CaptureMethod::DesktopDuplication
    }

    fn poll(&mut self) -> Result<bool, BoxError> {
        for output in &mut self.outputs {
            output.poll()?;
        }
        Ok(self.outputs.iter().any(|o| o.fresh))
    }

    fn draw(
        &mut self,
        layout: &DesktopLayout,
        canvas: &mut Canvas,
        all: bool,
    ) -> Result<Vec<BlankReason>, BoxError> {
        let mut blanks = Vec::new();
        for output in &mut self.outputs {
            let Some(place) = layout.placement(&output.name) else {
                continue;
            };
            let redraw = std::mem::take(&mut output.fresh) || all;
            let blank = match &output.refused {
                Some(detail) => Some(BlankReason::Unavailable {
                    monitor: output.name.clone(),
                    detail: detail.clone(),
                }),
                None if !output.latest.is_some() => Some(BlankReason::NoPictureYet {
                    monitor: output.name.clone(),
                }),
                None => None,
            };
            match blank {
                Some(reason) => {
                    canvas.fill(place, BLANK_BGRA);
                    blanks.push(reason);
                    // The picture, when it is back, is drawn whole.
                    output.changed_parts = None;
                }
                None if redraw => {
                    // What is drawn now is what the next image's changes
                    // are relative to.
                    let parts = std::mem::replace(&mut output.changed_parts, Some(Vec::new()));
                    let blitted =
                        output
                            .latest
                            .read(&output.context, |p| match parts.filter(|_| !all) {
                                Some(parts) => canvas.blit_parts(place, p, &parts),
                                None => canvas.blit(place, p),
                            })?;
                    blitted.transpose()?;
                }
                None => {}
            }
        }
        Ok(blanks)
    }

    fn protected_content(&self) -> bool {
        self.outputs
            .iter()
            .any(|o| o.protected && o.refused.is_none())
    }
}

/// The parts of its monitor the image acquired with `info` changed: the
/// source and destination of each move rectangle and each dirty rectangle,
/// in the image's pixels. `None` when Windows does not say (no metadata, or
/// reading it failed), which means all of it.
fn changed_parts(
    duplication: &IDXGIOutputDuplication,
    info: &DXGI_OUTDUPL_FRAME_INFO,
) -> Option<Vec<Placement>> {
    let bytes = info.TotalMetadataBufferSize as usize;
    if bytes == 0 {
        return None;
    }
    let mut moves = vec![
        DXGI_OUTDUPL_MOVE_RECT::default();
        bytes.div_ceil(size_of::<DXGI_OUTDUPL_MOVE_RECT>())
    ];
    let mut dirty = vec![RECT::default(); bytes.div_ceil(size_of::<RECT>())];
    let (moves_len, dirty_len) = (byte_len(&moves)?, byte_len(&dirty)?);
    let (mut moves_used, mut dirty_used) = (0u32, 0u32);
    // SAFETY: each buffer holds the byte count passed with it, and the
    // image they describe is acquired (not yet released).
    let read = unsafe {
        duplication
            .GetFrameMoveRects(moves_len, moves.as_mut_ptr(), &mut moves_used)
            .and_then(|()| {
                duplication.GetFrameDirtyRects(dirty_len, dirty.as_mut_ptr(), &mut dirty_used)
            })
    };
    if let Err(e) = read {
        debug!(error = %e, "cannot read the image's changed rectangles: taking all of it");
        return None;
    }
    moves.truncate(moves_used as usize / size_of::<DXGI_OUTDUPL_MOVE_RECT>());
    dirty.truncate(dirty_used as usize / size_of::<RECT>());
    let moved = moves.iter().flat_map(|m| {
        let d = m.DestinationRect;
        let (x, y) = (m.SourcePoint.x, m.SourcePoint.y);
        [
            Placement::from_edges(d.left, d.top, d.right, d.bottom),
            Placement::from_edges(
                x,
                y,
                x.saturating_add(d.right.saturating_sub(d.left)),
                y.saturating_add(d.bottom.saturating_sub(d.top)),
            ),
        ]
    });
    let dirtied = dirty
        .iter()
        .map(|r| Placement::from_edges(r.left, r.top, r.right, r.bottom));
    Some(moved.chain(dirtied).flatten().collect())
}

/// A buffer's length in bytes, as DXGI takes it.
fn byte_len<T>(buffer: &[T]) -> Option<u32> {
    u32::try_from(size_of_val(buffer)).ok()
}

/// `DuplicateOutput1` asking for BGRA where the output has it (Windows 10
/// 1703+; meant for per-monitor DPI aware processes like this one), else
/// `DuplicateOutput` (Windows 8+, always BGRA).
fn duplicate_output(
    output: &IDXGIOutput1,
    device: &ID3D11Device,
) -> Result<IDXGIOutputDuplication, WinError> {
    // SAFETY: COM calls on live interfaces; the format slice outlives them.
    match output.cast::<IDXGIOutput5>() {
        Ok(output5) => unsafe {
            output5.DuplicateOutput1(device, 0, &[DXGI_FORMAT_B8G8R8A8_UNORM])
        },
        Err(_) => unsafe { output.DuplicateOutput(device) },
    }
}

/// A Direct3D 11 device on `adapter`.
fn create_device(adapter: &IDXGIAdapter1) -> Result<(ID3D11Device, ID3D11DeviceContext), BoxError> {
    let (mut device, mut context) = (None, None);
    // SAFETY: valid out-pointers; with an explicit adapter the driver type
    // must be UNKNOWN.
    unsafe {
        D3D11CreateDevice(
            adapter,
            D3D_DRIVER_TYPE_UNKNOWN,
            HMODULE::default(),
            D3D11_CREATE_DEVICE_BGRA_SUPPORT,
            None,
            D3D11_SDK_VERSION,
            Some(&mut device),
            None,
            Some(&mut context),
        )
    }
    .map_err(|e| win_error("D3D11CreateDevice", &e))?;
    device
        .zip(context)
        .ok_or_else(|| "D3D11CreateDevice returned no device".into())
}

/// Items `0, 1, ...` of a DXGI enumeration, up to `DXGI_ERROR_NOT_FOUND`.
fn enumerate<T>(mut item: impl FnMut(u32) -> Result<T, WinError>) -> Result<Vec<T>, WinError> {
    let mut items = Vec::new();
    for index in 0.. {
        match item(index) {
            Ok(found) => items.push(found),
            Err(e) if e.code() == DXGI_ERROR_NOT_FOUND => break,
            Err(e) => return Err(e),
        }
    }
    Ok(items)
}

fn win_error(call: &str, error: &WinError) -> BoxError {
    describe(call, error.code().0, &error.message()).into()
}
