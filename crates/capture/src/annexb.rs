//! Splitting H.264 Annex-B byte streams into NAL units.
//!
//! The encoder emits Annex-B (NAL units each behind a `00 00 01` or
//! `00 00 00 01` start code). MP4 wants length-prefixed NAL units and the SPS
//! and PPS apart, and tests want to know which NAL types a frame carries;
//! these helpers serve both.

/// NAL unit type of a coded slice of an IDR picture.
pub const NAL_IDR_SLICE: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// The NAL units of an Annex-B stream, in order, without their start codes.
///
/// Bytes before the first start code are skipped; zero bytes that precede
/// the next start code (`trailing_zero_8bits`, the leading zero of a 4-byte
/// start code) are not part of a unit. Empty units are skipped.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(stream) {
        Some((_, after)) => &stream[after..],
        None => &stream[stream.len()..],
    };
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (unit, next) = match find_start_code(rest) {
                Some((at, after)) => (&rest[..at], &rest[after..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let unit = trim_trailing_zeros(unit);
            if !unit.is_empty() {
                return Some(unit);
            }
        }
        None
    })
}

/// The type (low 5 bits of the first byte) of a NAL unit given without its
/// start code; `None` for an empty slice.
#[must_use]
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1f)
}

/// Position of the first `00 00 01` and the index just after it.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|at| (at, at + 3))
}

fn trim_trailing_zeros(unit: &[u8]) -> &[u8] {
    let end = unit.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &unit[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            9, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 0,
        ];
        let units: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        let types: Vec<_> = units.iter().map(|u| nal_type(u)).collect();
        assert_eq!(types, [Some(NAL_SPS), Some(NAL_PPS), Some(NAL_IDR_SLICE)]);
    }

    #[test]
    fn no_start_code_means_no_units() {
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_type(&[]), None);
    }
}
