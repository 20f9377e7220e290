//! Device enrollment: the one-time token and the enroll call.
//!
//! An administrator creates an enrollment token on the server and hands its
//! compact form to the PC (installer property, command line). The compact
//! form carries everything the agent needs for its first connection: where
//! the server is, the secret, and the SHA-256 fingerprint of the server's
//! TLS certificate — so the agent pins a self-signed certificate instead of
//! trusting any certificate at all.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The decoded enrollment token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    /// Base URL of the server, e.g. `https://rec.example.com:8443`.
    pub url: String,
    /// The one-time secret sent to `POST /api/v1/enroll`.
    pub token: String,
    /// Lowercase hex SHA-256 of the server certificate's DER encoding:
    /// what agents before public-key pins pin.
    pub cert_sha256: String,
    /// The server's public-key pin (`spki-sha256:…`, see [`crate::ServerPins`]);
    /// absent from tokens made before public-key pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

impl std::fmt::Debug for EnrollmentToken {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("cert_sha256", &self.cert_sha256)
            .field("pin", &self.pin)
            .finish()
    }
}

/// Why a compact enrollment token could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not URL-safe base64.
    #[error("enrollment token is not base64url: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Not the expected JSON object.
    #[error("enrollment token is malformed: {0}")]
    Json(#[from] serde_json::Error),
}

impl EnrollmentToken {
    /// The compact form: URL-safe base64 (no padding) of the JSON object
    /// `{"url", "token", "cert_sha256"}`. One word, safe on a command line.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("strings always serialize"))
    }

    /// The pin an agent starts with: the public-key pin when the token has
    /// one, else the certificate's (`sha256:…`).
    pub fn server_pin(&self) -> String {
        match &self.pin {
            Some(pin) => pin.clone(),
            None => format!("{}{}", crate::CERT_PIN_PREFIX, self.cert_sha256),
        }
    }

    /// Reads the compact form (surrounding whitespace ignored).
    pub fn decode(compact: &str) -> Result<Self, TokenError> {
        let bytes = URL_SAFE_NO_PAD.decode(compact.trim())?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// Body of `POST /api/v1/enroll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token's secret (the `token` field of [`EnrollmentToken`]).
    pub token: String,
    /// The device's RSA signing public key (SubjectPublicKeyInfo PEM); the
    /// server verifies recording manifests with it.
    pub public_key_pem: String,
    /// The PC's host name.
    pub host: String,
}

/// Answer of `POST /api/v1/enroll`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The device's id, sent in [`crate::Hello`].
    pub device_id: String,
    /// The device's secret, sent as `Authorization: Bearer …` on the RTE
    /// channel. Shown once; the server keeps only its hash.
    pub credential: String,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("device_id", &self.device_id)
            .field("credential", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_token_round_trips() {
        let t = EnrollmentToken {
            url: "https://rec.example.com:8443".into(),
            token: "s3cret".into(),
            cert_sha256: "00ff".repeat(16),
            pin: Some(format!("spki-sha256:{}", "11".repeat(32))),
        };
        let compact = t.encode();
        assert!(!compact.contains(['=', '+', '/', ' ']));
        assert_eq!(
            EnrollmentToken::decode(&format!(" {compact}\n")).unwrap(),
            t
        );
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn tokens_from_before_public_key_pins_still_read() {
        let old = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"url":"https://h","token":"t","cert_sha256":"{}"}}"#,
            "ab".repeat(32)
        ));
        let t = EnrollmentToken::decode(&old).unwrap();
        assert_eq!(t.pin, None);
        assert_eq!(t.server_pin(), format!("sha256:{}", "ab".repeat(32)));
    }

    #[test]
    fn bad_compact_tokens_are_errors() {
        assert!(matches!(
            EnrollmentToken::decode("not base64!"),
            Err(TokenError::Base64(_))
        ));
        assert!(matches!(
            EnrollmentToken::decode(&URL_SAFE_NO_PAD.encode(b"{}")),
            Err(TokenError::Json(_))
        ));
    }
}
