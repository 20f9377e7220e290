//! `export_mp4` on a recording built from the input's recipe, sealed
//! and signed with the harness's keys; the MP4 must read back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::signed::export(data));
