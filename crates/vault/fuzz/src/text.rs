//! What a device (or an administrator's file) sends the server as text:
//! the `rte`, `tus`, `csv` and `token` targets.
//!
//! Each parser must return an error, never panic; what parses must
//! re-encode to something that parses to the same value.

use std::hint::black_box;

use deskrec_protocol::{AgentMessage, EnrollmentToken, ServerMessage};
use deskrec_server::fuzzing::{tus_checksum, tus_metadata, tus_number};

/// The `rte` target: one WebSocket text frame, read as an agent's message
/// (what the server decodes) and as the server's (what the agent decodes).
pub fn rte(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // WebSocket text frames are UTF-8; tungstenite checks.
    };
    if let Ok(m) = AgentMessage::from_json(text) {
        let json = m.to_json();
        let again = AgentMessage::from_json(&json).expect("an encoded agent message decodes");
        assert_eq!(again, m, "agent message round trip through {json}");
        black_box(format!("{m:?}"));
    }
    if let Ok(m) = ServerMessage::from_json(text) {
        let json = m.to_json();
        let again = ServerMessage::from_json(&json).expect("an encoded server message decodes");
        assert_eq!(again, m, "server message round trip through {json}");
        black_box(format!("{m:?}"));
    }
}

/// The `tus` target: the input's first line is a numeric header's value
/// (`Upload-Length`, `Upload-Offset`), the second an `Upload-Checksum`, the
/// rest an `Upload-Metadata` header searched for `contact_id` and for a
/// key taken from its own first pair.
pub fn tus(data: &[u8]) {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let number = lines.next().unwrap_or_default();
    if let Some(Ok(Some(n))) = tus_number(number) {
        // A number that parses is the trimmed header, digits only.
        let trimmed = std::str::from_utf8(number)
            .expect("parsed means UTF-8")
            .trim();
        assert_eq!(trimmed.parse::<u64>().ok(), Some(n));
    }
    let Ok(checksum) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    if let Ok((sha256, digest)) = tus_checksum(checksum) {
        assert!(checksum.starts_with(if sha256 { "sha256 " } else { "sha1 " }));
        black_box(digest);
    }
    let Ok(metadata) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    black_box(tus_metadata(metadata, "contact_id").ok());
    let own_key = metadata.split([',', ' ']).next().unwrap_or_default();
    black_box(tus_metadata(metadata, own_key).ok());
}

/// The `csv` target: `parse_csv` on a user import, any text.
pub fn csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // The admin API takes the body as a UTF-8 string.
    };
    match deskrec_server::directory::parse_csv(text) {
        Ok(users) => {
            for u in &users {
                assert!(
                    u.roles.iter().all(|r| !r.is_empty() && r.trim() == r),
                    "role names come trimmed and non-empty: {:?}",
                    u.roles
                );
            }
            black_box(format!("{users:?}"));
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
}

/// The `token` target: `EnrollmentToken::decode` on a compact token (the
/// installer property or command-line argument); a token that decodes
/// re-encodes to a compact form that decodes to it again.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // Command lines and MSI properties are text.
    };
    match EnrollmentToken::decode(text) {
        Ok(t) => {
            let compact = t.encode();
            assert!(!compact.contains(['=', '+', '/', ' ', '\n']), "{compact}");
            let again = EnrollmentToken::decode(&compact).expect("an encoded token decodes");
            assert!(again == t, "token round trip");
            black_box(format!("{t:?}"));
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
}
