//! tus headers: the server's `Upload-Length`/`-Offset`, `Upload-Checksum`
//! and `Upload-Metadata` parsers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::text::tus(data));
