//! Segment scanner: `scan_segment_from` at both depths, on the input as
//! given and with its record digests repaired.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::segment(data));
