//! Keeping a monitor's latest picture on the GPU until the recorder wants
//! it ([`LatestPicture`]), shared by both capture methods.
//!
//! Windows delivers pictures as GPU textures, up to the monitor's refresh
//! rate while the screen changes, but the recorder reads at most a few per
//! second. Copying every arrival to a CPU-readable staging texture is a GPU
//! copy queued in microseconds; only [`LatestPicture::read`] (once per
//! recorded frame) waits for the GPU and touches the pixels with the CPU.

use std::slice;

use ::windows::Win32::Graphics::Direct3D11::{
    D3D11_CPU_ACCESS_READ, D3D11_MAP_READ, D3D11_MAPPED_SUBRESOURCE, D3D11_TEXTURE2D_DESC,
    D3D11_USAGE_STAGING, ID3D11Device, ID3D11DeviceContext, ID3D11Texture2D,
};
use ::windows::Win32::Graphics::Dxgi::Common::{
    DXGI_FORMAT_B8G8R8A8_UNORM, DXGI_FORMAT_B8G8R8A8_UNORM_SRGB, DXGI_SAMPLE_DESC,
};

use super::layout::Picture;
use crate::frame::BYTES_PER_PIXEL;
use crate::{BoxError, FrameSize};

/// A staging texture holding a copy of the latest picture of one monitor.
#[derive(Default)]
pub(super) struct LatestPicture {
    /// The copy and its size; `None` until the first picture.
    staging: Option<(ID3D11Texture2D, FrameSize)>,
}

impl LatestPicture {
    /// Whether a picture has been stored.
    pub(super) fn is_some(&self) -> bool {
        self.staging.is_some()
    }

    /// Queues a GPU copy of `source` (a BGRA texture on `device`), replacing
    /// the previous picture; (re)creates the staging texture when the size
    /// changed.
    ///
    /// # Errors
    ///
    /// When `source` is not 8-bit BGRA or Direct3D fails.
    pub(super) fn store(
        &mut self,
        device: &ID3D11Device,
        context: &ID3D11DeviceContext,
        source: &ID3D11Texture2D,
    ) -> Result<(), BoxError> {
        let mut desc = D3D11_TEXTURE2D_DESC::default();
        // SAFETY: `desc` is a valid out-pointer for the call.
        unsafe { source.GetDesc(&mut desc) };
        if desc.Format != DXGI_FORMAT_B8G8R8A8_UNORM
            && desc.Format != DXGI_FORMAT_B8G8R8A8_UNORM_SRGB
        {
            return Err(
                format!("monitor picture in DXGI format {}, not BGRA", desc.Format.0).into(),
            );
        }
        let size = FrameSize::new(desc.Width, desc.Height);
        let staging = match &self.staging {
            Some((texture, kept)) if *kept == size => texture.clone(),
            _ => {
                let texture = create_staging(device, &desc)?;
                self.staging = Some((texture.clone(), size));
                texture
            }
        };
        // SAFETY: both textures live on `device`, have the same size and
        // format; the context is used under the caller's lock.
        unsafe { context.CopyResource(&staging, source) };
        Ok(())
    }

    /// Maps the stored picture and hands it to `f`; `Ok(None)` when nothing
    /// has been stored yet. Waits for the last queued copy to finish.
    ///
    /// # Errors
    ///
    /// When Direct3D cannot map the texture (device lost).
    pub(super) fn read<R>(
        &self,
        context: &ID3D11DeviceContext,
        f: impl FnOnce(Picture<'_>) -> R,
    ) -> Result<Option<R>, ::windows::core::Error> {
        let Some((texture, size)) = &self.staging else {
            return Ok(None);
        };
        let mut mapped = D3D11_MAPPED_SUBRESOURCE::default();
        // SAFETY: a staging texture with CPU read access, mapped for reading
        // once and unmapped below before anyone else can map it (the caller
        // holds the lock that guards the context).
        unsafe { context.Map(texture, 0, D3D11_MAP_READ, 0, Some(&mut mapped))? };
        let stride = mapped.RowPitch as usize;
        let len = stride * (size.height as usize).saturating_sub(1)
            + size.width as usize * BYTES_PER_PIXEL;
        // SAFETY: Map succeeded, so `pData` points to `height` rows of
        // `RowPitch` bytes (the last at least `width * 4`), readable until
        // the Unmap below; the slice does not outlive it.
        let pixels = unsafe { slice::from_raw_parts(mapped.pData.cast::<u8>(), len) };
        let result = f(Picture {
            pixels,
            stride,
            size: *size,
        });
        // SAFETY: mapped above.
        unsafe { context.Unmap(texture, 0) };
        Ok(Some(result))
    }
}

/// A CPU-readable texture of the size and format `like` describes.
fn create_staging(
    device: &ID3D11Device,
    like: &D3D11_TEXTURE2D_DESC,
) -> Result<ID3D11Texture2D, ::windows::core::Error> {
    let desc = D3D11_TEXTURE2D_DESC {
        Width: like.Width,
        Height: like.Height,
        MipLevels: 1,
        ArraySize: 1,
        Format: like.Format,
        SampleDesc: DXGI_SAMPLE_DESC {
            Count: 1,
            Quality: 0,
        },
        Usage: D3D11_USAGE_STAGING,
        BindFlags: 0,
        CPUAccessFlags: D3D11_CPU_ACCESS_READ.0 as u32,
        MiscFlags: 0,
    };
    let mut texture = None;
    // SAFETY: `desc` and the out-pointer are valid for the call.
    unsafe { device.CreateTexture2D(&desc, None, Some(&mut texture))? };
    texture.ok_or_else(|| {
        ::windows::core::Error::from_hresult(::windows::Win32::Foundation::E_POINTER)
    })
}
