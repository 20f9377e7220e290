//! `verify_recording` on a recording built from the input's recipe,
//! sealed and signed with the harness's keys (see `src/signed.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::signed::verify(data));
