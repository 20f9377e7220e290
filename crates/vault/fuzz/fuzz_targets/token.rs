//! Enrollment tokens: `EnrollmentToken::decode` and its round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::text::token(data));
