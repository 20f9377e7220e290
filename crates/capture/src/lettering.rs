//! Large, plain lettering on BGRA pictures, with an 8x8 bitmap font scaled
//! up: the recorder writes "RECORDING PAUSED" and the reason on the picture
//! it records while paused, and tests paint and look for known text.

use font8x8::UnicodeFonts;

/// Width and height of a glyph before scaling, in pixels.
pub const GLYPH: usize = 8;

/// The glyph of `c` as 8 rows of bits (bit 0 is the leftmost pixel);
/// characters the font lacks come out as `?`.
fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

/// Whether the pixel at (`x`, `y`) of `text` written at `scale` is ink.
/// `x` and `y` count from the text's top-left corner; outside the text is
/// never ink.
#[must_use]
pub fn is_ink(text: &str, scale: usize, x: usize, y: usize) -> bool {
    let (col, row) = (x / scale, y / scale);
    if row >= GLYPH || scale == 0 {
        return false;
    }
    text.chars()
        .nth(col / GLYPH)
        .is_some_and(|c| glyph(c)[row] & (1 << (col % GLYPH)) != 0)
}

/// The size of `text` at `scale`: (width, height) in pixels.
#[must_use]
pub fn text_size(text: &str, scale: usize) -> (usize, usize) {
    (text.chars().count() * GLYPH * scale, GLYPH * scale)
}

/// Writes `text` in `ink` (BGRA) on a `width` x `height` BGRA picture
/// (`width * 4` bytes a row), its top-left corner at (`x`, `y`), each font
/// pixel a `scale` x `scale` square. What falls outside is cut.
pub fn draw_text(
    bgra: &mut [u8],
    (width, height): (usize, usize),
    (x, y): (usize, usize),
    scale: usize,
    text: &str,
    ink: [u8; 4],
) {
    let (w, h) = text_size(text, scale);
    for py in y..(y + h).min(height) {
        for px in x..(x + w).min(width) {
            if is_ink(text, scale, px - x, py - y) {
                let at = (py * width + px) * 4;
                bgra[at..at + 4].copy_from_slice(&ink);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_where_its_glyphs_are_ink_and_nowhere_else() {
        let (w, h) = (64, 20);
        let mut bgra = vec![0u8; w * h * 4];
        draw_text(&mut bgra, (w, h), (2, 3), 2, "41", [255; 4]);
        let ink = |x: usize, y: usize| bgra[(y * w + x) * 4] == 255;
        let mut count = 0;
        for y in 0..h {
            for x in 0..w {
                let expected = x >= 2 && y >= 3 && is_ink("41", 2, x - 2, y - 3);
                assert_eq!(ink(x, y), expected, "({x}, {y})");
                count += expected as usize;
            }
        }
        assert!(count > 20, "some ink: {count}");
        assert_eq!(text_size("41", 2), (32, 16));
    }
}
