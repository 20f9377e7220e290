//! Record body decoders: the signed manifest, chunk records and a chunk's
//! frames, each fed the whole input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::bodies(data));
