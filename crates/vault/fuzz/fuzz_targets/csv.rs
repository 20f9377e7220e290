//! The user import: `directory::parse_csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::text::csv(data));
