//! `splice` on segment files built from the input's recipe, for its
//! requested range; the server must open what it writes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::signed::splice_target(data));
