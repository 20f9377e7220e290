//! Which X11 screens the source can read: 24- or 32-bit TrueColor whose
//! ZPixmap images are 32 bits a pixel, blue in the lowest byte, least
//! significant byte first. In memory that is B, G, R, X: exactly the BGRA of
//! a [`Frame`](crate::Frame), so captures need no conversion. Practically
//! every X server today (Xorg, Xvfb, Xwayland, x2go/VNC servers) serves that
//! by default; anything else is refused with a message that says what the
//! screen has instead.

use x11rb::protocol::xproto::{ImageOrder, Screen, Setup, VisualClass};

use crate::CaptureError;

/// The properties of a screen's root window that decide its image layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PixelFormat {
    /// Root window depth (significant bits a pixel).
    pub depth: u8,
    /// Bits a pixel in a ZPixmap image of that depth.
    pub bits_per_pixel: u8,
    /// Class of the root visual.
    pub class: VisualClass,
    /// Red, green and blue masks of the root visual.
    pub masks: [u32; 3],
    /// Byte order of image data.
    pub byte_order: ImageOrder,
}

/// Masks of the one layout we read: 0x00RRGGBB.
const BGRX_MASKS: [u32; 3] = [0x00ff_0000, 0x0000_ff00, 0x0000_00ff];

impl PixelFormat {
    /// Reads the format of `screen`'s root window from the connection setup.
    pub(super) fn of_root(setup: &Setup, screen: &Screen) -> Result<Self, CaptureError> {
        let depth = screen.root_depth;
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| &d.visuals)
            .find(|v| v.visual_id == screen.root_visual)
            .ok_or_else(|| {
                unsupported(format!("root visual {:#x} not listed", screen.root_visual))
            })?;
        let bits_per_pixel = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel)
            .ok_or_else(|| unsupported(format!("no pixmap format for depth {depth}")))?;
        Ok(Self {
            depth,
            bits_per_pixel,
            class: visual.class,
            masks: [visual.red_mask, visual.green_mask, visual.blue_mask],
            byte_order: setup.image_byte_order,
        })
    }

    /// `Ok` when ZPixmap images of this format are BGRA in memory.
    pub(super) fn check(&self) -> Result<(), CaptureError> {
        let supported = matches!(self.depth, 24 | 32)
            && self.bits_per_pixel == 32
            && self.class == VisualClass::TRUE_COLOR
            && self.masks == BGRX_MASKS
            && self.byte_order == ImageOrder::LSB_FIRST;
        if supported {
            return Ok(());
        }
        Err(unsupported(format!(
            "the X screen has depth {} at {} bits a pixel, visual class {:?}, masks \
             {:#08x}/{:#08x}/{:#08x}, byte order {:?}; Deskrec captures 24- or 32-bit \
             TrueColor (masks 0xff0000/0x00ff00/0x0000ff, LSB first). Configure the X server \
             for 24-bit colour (Xvfb: -screen 0 WxHx24)",
            self.depth,
            self.bits_per_pixel,
            self.class,
            self.masks[0],
            self.masks[1],
            self.masks[2],
            self.byte_order,
        )))
    }
}

fn unsupported(message: String) -> CaptureError {
    CaptureError::UnsupportedFormat(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format of a usual 24-bit desktop (Xorg, `Xvfb -screen 0 WxHx24`).
    const DESKTOP: PixelFormat = PixelFormat {
        depth: 24,
        bits_per_pixel: 32,
        class: VisualClass::TRUE_COLOR,
        masks: BGRX_MASKS,
        byte_order: ImageOrder::LSB_FIRST,
    };

    #[test]
    fn accepts_24_and_32_bit_truecolor() {
        assert!(DESKTOP.check().is_ok());
        assert!(
            PixelFormat {
                depth: 32,
                ..DESKTOP
            }
            .check()
            .is_ok()
        );
    }

    #[test]
    fn refuses_other_layouts_with_a_reason() {
        let others = [
            PixelFormat {
                depth: 16,
                bits_per_pixel: 16,
                ..DESKTOP
            },
            PixelFormat {
                depth: 30,
                ..DESKTOP
            },
            PixelFormat {
                bits_per_pixel: 24,
                ..DESKTOP
            },
            PixelFormat {
                class: VisualClass::DIRECT_COLOR,
                ..DESKTOP
            },
            PixelFormat {
                masks: [0xff, 0xff00, 0xff_0000],
                ..DESKTOP
            },
            PixelFormat {
                byte_order: ImageOrder::MSB_FIRST,
                ..DESKTOP
            },
        ];
        for format in others {
            let err = format.check().unwrap_err();
            assert!(
                matches!(err, CaptureError::UnsupportedFormat(_)),
                "{format:?}"
            );
            assert!(err.to_string().contains("24-bit"), "{err}");
        }
    }
}
