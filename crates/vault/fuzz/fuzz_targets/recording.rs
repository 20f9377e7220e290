//! Recording scanner: `scan_recording_from`, on the input as given and with
//! its record digests repaired.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::recording(data));
