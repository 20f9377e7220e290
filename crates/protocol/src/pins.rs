//! The server's TLS key pins and the announcement of its next key.
//!
//! Agents pin the server's public key, not its certificate: a renewed
//! certificate for the same key (a CA's yearly renewal, a new host name)
//! changes nothing for them. A pin is `spki-sha256:` and the lowercase hex
//! SHA-256 of the certificate's DER SubjectPublicKeyInfo (the same digest
//! as HPKP's `pin-sha256`, in hex). Agents enrolled before public-key pins
//! hold a certificate pin, `sha256:` and the hex SHA-256 of the whole
//! certificate, which they upgrade on their first [`ServerPins`].
//!
//! To change the key, the server announces the next one before it is used:
//! `GET /api/v1/tls/pins` answers [`ServerPins`], its certificate and the
//! next key's pin signed with the current key. An agent accepts the
//! announcement only if that certificate matches a pin it holds and the
//! signature verifies, and from then on trusts both keys until the server
//! serves the next one.

use serde::{Deserialize, Serialize};

/// The prefix of a public-key pin.
pub const SPKI_PIN_PREFIX: &str = "spki-sha256:";

/// The prefix of a certificate pin (before public-key pins).
pub const CERT_PIN_PREFIX: &str = "sha256:";

/// Answer of `GET /api/v1/tls/pins` (no authentication: pins are public).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPins {
    /// The certificate the server serves now, DER in standard base64.
    pub certificate: String,
    /// The pin of the key the server will serve next, if one is prepared.
    pub next_pin: Option<String>,
    /// The TLS `SignatureScheme` code of `signature` (e.g. `0x0403`,
    /// ECDSA P-256 SHA-256).
    pub scheme: u16,
    /// [`next_pin_message`] signed with the certificate's key, in standard
    /// base64.
    pub signature: String,
}

/// What the current key signs to announce the next one. The version and
/// purpose prefix keeps the signature from meaning anything elsewhere; an
/// announcement without a next key is signed too, so an agent can tell
/// "none" from a stripped field.
pub fn next_pin_message(next_pin: Option<&str>) -> Vec<u8> {
    format!("deskrec next TLS key v1\n{}", next_pin.unwrap_or("none")).into_bytes()
}
