//! RTE messages: `AgentMessage::from_json`, `ServerMessage::from_json`,
//! and their round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deskrec_vault_fuzz::text::rte(data));
