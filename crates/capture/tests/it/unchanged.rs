//! The encoder's unchanged-macroblock path: a picture that says where it
//! changed ([`ChangeMap`]) is encoded exactly, and only the changed blocks
//! change in the decoded picture.
//!
//! The pictures are 328x184: 21x12 macroblocks, the last column and row
//! partly outside the picture, as 1080p's last row is. A change hides in a
//! few pixels at every position class: the corners, the middle of each
//! edge, the inside, and across 16-px boundaries.

use std::time::{Duration, Instant};

use deskrec_capture::{ChangeMap, EncoderConfig, Frame, H264Encoder, YuvFrame};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

const WIDTH: u32 = 328;
const HEIGHT: u32 = 184;

/// A desktop-like picture: a grey background, a white window and rows of
/// dark "glyphs" in it.
fn desktop() -> Vec<u8> {
    let mut pixels = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let window = (20..300).contains(&x) && (12..170).contains(&y);
            let glyph = window && (y / 9) % 2 == 1 && (x * 7 + y * 3) % 11 < 4;
            let v = if glyph {
                30
            } else if window {
                240
            } else {
                110
            };
            pixels.extend_from_slice(&[v, v, if window { v } else { 150 }, 255]);
        }
    }
    pixels
}

/// `pixels` with a 3x3 red square whose top-left pixel is at (`x`, `y`).
fn with_square(pixels: Vec<u8>, x: u32, y: u32) -> Vec<u8> {
    with_rect(pixels, (x, y, 3, 3), [0, 0, 255, 255])
}

/// `pixels` with the rectangle (x, y, width, height) filled with `bgra`,
/// clipped to the picture.
fn with_rect(mut pixels: Vec<u8>, (x, y, w, h): (u32, u32, u32, u32), bgra: [u8; 4]) -> Vec<u8> {
    for dy in 0..h {
        for dx in 0..w {
            let (px, py) = ((x + dx).min(WIDTH - 1), (y + dy).min(HEIGHT - 1));
            let at = ((py * WIDTH + px) * 4) as usize;
            pixels[at..at + 4].copy_from_slice(&bgra);
        }
    }
    pixels
}

/// The pictures a test encodes, one a letter of `pattern`: `b` is `base`,
/// `c` is `changed`.
fn sequence(pattern: &str, base: &[u8], changed: &[u8]) -> Vec<Vec<u8>> {
    pattern
        .chars()
        .map(|c| if c == 'c' { changed } else { base }.to_vec())
        .collect()
}

fn frame(pixels: Vec<u8>, at: Instant) -> Frame {
    Frame::new(WIDTH, HEIGHT, WIDTH as usize * 4, pixels, at).unwrap()
}

/// What a test says about a picture's changes.
#[derive(Clone, Copy)]
enum Map {
    /// Nothing: the encoder compares everything itself.
    None,
    /// The true map, from comparing with the picture before.
    True,
    /// A map that says nothing changed.
    Lying,
}

/// Encodes `pictures` (BGRA) in one stream, each after the first with the
/// map `map` says, and decodes it: each decoded picture's Y, U and V
/// planes, tightly packed.
fn encode_and_decode(pictures: &[Vec<u8>], map: Map) -> Vec<[Vec<u8>; 3]> {
    let config = EncoderConfig {
        gop: Duration::from_secs(3600),
        ..EncoderConfig::new(WIDTH, HEIGHT)
    };
    let mut encoder = H264Encoder::new(config).unwrap();
    let start = Instant::now();
    let mut stream = Vec::new();
    let mut last: Option<(Frame, u64)> = None;
    for (i, pixels) in pictures.iter().enumerate() {
        let at = start + Duration::from_millis(200 * i as u64);
        let bgra = frame(pixels.clone(), at);
        let mut yuv = YuvFrame::from_frame(&bgra).unwrap();
        let id = yuv.id();
        if let Some((before, before_id)) = &last {
            let changes = match map {
                Map::None => None,
                Map::True => Some(ChangeMap::between(before, &bgra)),
                Map::Lying => Some(ChangeMap::unchanged(bgra.size())),
            };
            if let Some(changes) = changes {
                yuv = yuv.with_changes(*before_id, changes);
            }
        }
        stream.extend(encoder.encode_yuv_frame(&yuv, i == 0).unwrap().data);
        last = Some((bgra, id));
    }
    if !matches!(map, Map::None) {
        assert!(
            encoder.unchanged_macroblocks() > 0,
            "the maps were not used"
        );
    }
    decode(&stream)
}

/// Decodes an Annex-B stream to planes.
fn decode(stream: &[u8]) -> Vec<[Vec<u8>; 3]> {
    let mut decoder = Decoder::new().unwrap();
    let mut pictures = Vec::new();
    for unit in deskrec_capture::annexb::nal_units(stream) {
        let mut packet = vec![0, 0, 0, 1];
        packet.extend_from_slice(unit);
        if let Some(picture) = decoder.decode(&packet).unwrap() {
            pictures.push(planes(&picture));
        }
    }
    for picture in decoder.flush_remaining().unwrap() {
        pictures.push(planes(&picture));
    }
    pictures
}

fn planes(picture: &impl YUVSource) -> [Vec<u8>; 3] {
    let (width, height) = picture.dimensions();
    assert_eq!((width, height), (WIDTH as usize, HEIGHT as usize));
    let (ys, us, vs) = picture.strides();
    let pack = |plane: &[u8], stride: usize, w: usize, h: usize| -> Vec<u8> {
        (0..h)
            .flat_map(|r| plane[r * stride..r * stride + w].to_vec())
            .collect()
    };
    [
        pack(picture.y(), ys, width, height),
        pack(picture.u(), us, width / 2, height / 2),
        pack(picture.v(), vs, width / 2, height / 2),
    ]
}

/// Luma PSNR of a decoded picture against its source, dB.
fn luma_psnr(source: &YuvFrame, decoded: &[Vec<u8>; 3]) -> f64 {
    plane_psnr(source, decoded, 0)
}

/// PSNR of one plane (0: Y, 1: U, 2: V) of a decoded picture against its
/// source, dB.
fn plane_psnr(source: &YuvFrame, decoded: &[Vec<u8>; 3], plane: usize) -> f64 {
    let (y, u, v) = source.planes();
    let (y_stride, u_stride, v_stride) = source.strides();
    let (samples, stride, width, height) = match plane {
        0 => (y, y_stride, WIDTH, HEIGHT),
        1 => (u, u_stride, WIDTH / 2, HEIGHT / 2),
        _ => (v, v_stride, WIDTH / 2, HEIGHT / 2),
    };
    let mut squared = 0.0;
    for row in 0..height as usize {
        let want = &samples[row * stride..row * stride + width as usize];
        let got = &decoded[plane][row * width as usize..(row + 1) * width as usize];
        squared += want
            .iter()
            .zip(got)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>();
    }
    let mse = squared / f64::from(width * height);
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// The macroblocks (column, row) in which two decoded pictures differ.
fn differing_blocks(a: &[Vec<u8>; 3], b: &[Vec<u8>; 3]) -> Vec<(u32, u32)> {
    let mut blocks = Vec::new();
    for row in 0..HEIGHT.div_ceil(16) {
        for column in 0..WIDTH.div_ceil(16) {
            let differs = (0..3).any(|plane| {
                let (w, side) = if plane == 0 {
                    (WIDTH, 16)
                } else {
                    (WIDTH / 2, 8)
                };
                let h = if plane == 0 { HEIGHT } else { HEIGHT / 2 };
                let (x0, y0) = (column * side, row * side);
                (y0..(y0 + side).min(h)).any(|y| {
                    let at = (y * w) as usize;
                    let span = at + x0 as usize..at + ((x0 + side).min(w)) as usize;
                    a[plane][span.clone()] != b[plane][span]
                })
            });
            if differs {
                blocks.push((column, row));
            }
        }
    }
    blocks
}

/// Where a change hides: the top-left pixel of its 3x3 square, for each
/// position class.
const PLACES: &[(&str, u32, u32)] = &[
    ("top-left corner", 0, 0),
    ("top-right corner", WIDTH - 3, 0),
    ("bottom-left corner", 0, HEIGHT - 3),
    ("bottom-right corner", WIDTH - 3, HEIGHT - 3),
    ("top edge", 165, 0),
    ("left edge", 0, 90),
    ("right edge, the partial column", WIDTH - 3, 90),
    ("bottom edge, the partial row", 165, HEIGHT - 3),
    ("inside", 165, 90),
    ("across a vertical boundary", 159, 88),
    ("across a horizontal boundary", 170, 95),
    ("across a corner of four blocks", 143, 127),
];

#[test]
fn a_change_in_one_place_is_encoded_and_nothing_else_changes() {
    let base = desktop();
    for &(place, x, y) in PLACES {
        // The base picture a few times (the encoder refines it), then the
        // change, then still again.
        let pictures = sequence("bbbbcc", &base, &with_square(base.clone(), x, y));
        let decoded = encode_and_decode(&pictures, Map::True);
        assert_eq!(decoded.len(), pictures.len(), "{place}");
        let expected = {
            let mut map = ChangeMap::unchanged(deskrec_capture::FrameSize::new(WIDTH, HEIGHT));
            map.mark(x as i32, y as i32, 3, 3);
            map
        };
        let (before, after) = (&decoded[3], &decoded[4]);
        for block in differing_blocks(before, after) {
            assert!(
                expected.is_changed(block.0, block.1),
                "{place}: block {block:?} changed, the change was in other blocks"
            );
        }
        // The change itself came through: the square's centre is red
        // (BT.709 limited: Y ~63, V ~240).
        let (cx, cy) = ((x + 1).min(WIDTH - 1), (y + 1).min(HEIGHT - 1));
        let luma = after[0][(cy * WIDTH + cx) as usize];
        assert!(
            (45..=85).contains(&luma),
            "{place}: luma {luma} at the square"
        );
        assert!(
            decoded[5] == decoded[4],
            "{place}: a still picture after it changed"
        );
        // The map spares work, not quality: the pictures decode as close to
        // the source as without it. (Not always to the same stream: OpenH264
        // compares with the best of its references and sometimes codes a
        // block again that the map lets it skip.)
        let plain = encode_and_decode(&pictures, Map::None);
        for (i, pixels) in pictures.iter().enumerate() {
            let source = YuvFrame::from_frame(&frame(pixels.clone(), Instant::now())).unwrap();
            let (with_map, without) = (
                luma_psnr(&source, &decoded[i]),
                luma_psnr(&source, &plain[i]),
            );
            assert!(
                with_map >= without - 0.1,
                "{place}, picture {i}: {with_map:.2} dB with the map, {without:.2} without"
            );
        }
    }
}

#[test]
fn a_map_that_lies_loses_the_change_so_the_map_is_what_is_used() {
    let base = desktop();
    let changed = with_square(base.clone(), 165, 90);
    let pictures = sequence("bbbc", &base, &changed);
    let decoded = encode_and_decode(&pictures, Map::Lying);
    assert!(
        differing_blocks(&decoded[2], &decoded[3]).is_empty(),
        "a block said unchanged was encoded anyway: the map was not used"
    );
    let truthful = encode_and_decode(&pictures, Map::True);
    assert!(!differing_blocks(&truthful[2], &truthful[3]).is_empty());
}

/// The encoder keeps its own copy of each picture it encoded, the
/// reference of the next one. A block skipped as unchanged must be copied
/// into it from the reference, or the encoder's copy holds an older
/// picture there while the decoder's holds the right one. Undoing a change
/// two pictures later shows such a block: the encoder would compare the
/// undone block with its stale copy, find it equal and skip it, and the
/// decoder would go on showing the change.
#[test]
fn a_change_undone_after_a_still_picture_is_undone_in_the_decoded_picture() {
    let base = desktop();
    for &(place, x, y) in PLACES {
        let pictures = sequence("bbbccb", &base, &with_square(base.clone(), x, y));
        let decoded = encode_and_decode(&pictures, Map::True);
        let plain = encode_and_decode(&pictures, Map::None);
        let source = YuvFrame::from_frame(&frame(base.clone(), Instant::now())).unwrap();
        for (plane, name) in ["Y", "U", "V"].iter().enumerate() {
            let (with_map, without) = (
                plane_psnr(&source, &decoded[5], plane),
                plane_psnr(&source, &plain[5], plane),
            );
            assert!(
                with_map >= without - 0.1,
                "{place}: the undone picture's {name} is {with_map:.2} dB with the map, {without:.2} without"
            );
        }
        let (cx, cy) = ((x + 1).min(WIDTH - 1), (y + 1).min(HEIGHT - 1));
        let luma = decoded[5][0][(cy * WIDTH + cx) as usize];
        assert!(
            !(45..=85).contains(&luma),
            "{place}: the square is still shown (luma {luma}) after it went"
        );
    }
}

/// A block skipped as unchanged tells the next picture what skipping it
/// cost (its sum of differences against the reference), and OpenH264 skips
/// a changed block of the next picture whose cost is below that. The cost
/// must be the block's own in this picture: one kept from the picture in
/// which the block last changed is large, and a small change after it was
/// skipped and lost. A red block appears, stays, and then a white dot
/// appears in it.
#[test]
fn a_small_change_after_a_skipped_block_is_not_skipped() {
    let base = desktop();
    let block = with_rect(base.clone(), (160, 80, 16, 16), [0, 0, 255, 255]);
    let dotted = with_rect(block.clone(), (166, 86, 3, 3), [255, 255, 255, 255]);
    let mut pictures = vec![base; 3];
    pictures.extend([block.clone(), block, dotted]);
    let decoded = encode_and_decode(&pictures, Map::True);
    let luma = decoded[5][0][(87 * WIDTH + 167) as usize];
    assert!(
        luma > 150,
        "the dot is not in the decoded picture (luma {luma}: the red block's is ~63, the dot's 235)"
    );
}

/// An unchanged block whose left and upper neighbours moved: H.264 skips a
/// block with a motion vector predicted from its neighbours, here the
/// scroll's, so it cannot be skipped as a still block (the encoder's fast
/// path for unchanged blocks takes only blocks whose predicted vector is
/// zero). A picture of fine texture scrolls up by 8 pixels but for one
/// block, a fixed element, which must show exactly what it showed.
#[test]
fn an_unchanged_block_among_scrolled_ones_stays_as_it_was() {
    let texture = |y_shift: u32| {
        let mut pixels = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let (cx, cy) = (x / 4, (y + y_shift) / 4);
                let v = ((cx * 37 + cy * 91) ^ (cx * cy)) % 200 + 30;
                pixels.extend_from_slice(&[v as u8, (v / 2) as u8, (255 - v) as u8, 255]);
            }
        }
        pixels
    };
    let (base, scrolled) = (texture(0), texture(8));
    // The fixed block, (10, 5): the base picture's pixels there.
    let mut moved = scrolled.clone();
    for y in 80..96 {
        let at = ((y * WIDTH + 160) * 4) as usize;
        moved[at..at + 64].copy_from_slice(&base[at..at + 64]);
    }
    let pictures = sequence("bbbc", &base, &moved);
    let decoded = encode_and_decode(&pictures, Map::True);
    let changed = differing_blocks(&decoded[2], &decoded[3]);
    assert!(changed.len() > 100, "the picture scrolled: {changed:?}");
    assert!(
        !changed.contains(&(10, 5)),
        "the fixed block changed in the decoded picture"
    );
    let source = YuvFrame::from_frame(&frame(moved, Instant::now())).unwrap();
    let psnr = luma_psnr(&source, &decoded[3]);
    assert!(psnr > 35.0, "the scrolled picture decodes at {psnr:.1} dB");
}
