//! Pins: the server keys (or, for agents enrolled before public-key pins,
//! certificates) an agent trusts, and checking the server's announcement of
//! its next key. The formats are in [`deskrec_protocol::ServerPins`]' module.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use deskrec_protocol::{CERT_PIN_PREFIX, SPKI_PIN_PREFIX, ServerPins, next_pin_message};
use rustls::SignatureScheme;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::ClientError;

/// One trusted server identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pin {
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo: survives
    /// certificate renewals with the same key.
    PublicKey([u8; 32]),
    /// SHA-256 of the whole certificate's DER (agents enrolled before
    /// public-key pins; upgraded on the first [`ServerPins`] they read).
    Certificate([u8; 32]),
}

impl Pin {
    /// The public-key pin of a certificate.
    pub fn of_key(cert_der: &[u8]) -> Result<Pin, ClientError> {
        let der = CertificateDer::from(cert_der);
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| ClientError::Pins(format!("the certificate is unreadable: {e:?}")))?;
        Ok(Pin::PublicKey(
            Sha256::digest(cert.subject_public_key_info().as_ref()).into(),
        ))
    }

    /// Whether this pin names this certificate (or its key).
    pub fn matches(&self, cert_der: &[u8]) -> bool {
        match self {
            Pin::Certificate(hash) => Sha256::digest(cert_der).as_slice() == hash,
            Pin::PublicKey(_) => Pin::of_key(cert_der).is_ok_and(|p| p == *self),
        }
    }
}

impl FromStr for Pin {
    type Err = ClientError;

    /// Reads `spki-sha256:<hex>`, or a certificate pin: `sha256:<hex>`, or
    /// bare hex; upper or lower case, colons between bytes allowed.
    fn from_str(text: &str) -> Result<Pin, ClientError> {
        let text = text.trim();
        let bad = || ClientError::Pins(format!("{text:?} is not a pin (spki-sha256:<64 hex>)"));
        let lower = text.to_ascii_lowercase();
        let (key, hex_part) = match lower.strip_prefix(SPKI_PIN_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, lower.strip_prefix(CERT_PIN_PREFIX).unwrap_or(&lower)),
        };
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex_part.replace(':', ""), &mut hash).map_err(|_| bad())?;
        Ok(if key {
            Pin::PublicKey(hash)
        } else {
            Pin::Certificate(hash)
        })
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::PublicKey(h) => write!(f, "{SPKI_PIN_PREFIX}{}", hex::encode(h)),
            Pin::Certificate(h) => write!(f, "{CERT_PIN_PREFIX}{}", hex::encode(h)),
        }
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A [`ServerPins`] announcement that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPins {
    /// The public-key pin of the key the server serves now.
    pub current: Pin,
    /// The key the server will serve next, signed by the current one.
    pub next: Option<Pin>,
}

/// Checks an announcement against the pins an agent holds: its
/// certificate must match one of them, and its signature over the next pin
/// must verify with that certificate's key. Anything else is refused, so a
/// next key reaches an agent only from the holder of a key it trusts.
pub fn verify_pins(trusted: &[Pin], answer: &ServerPins) -> Result<VerifiedPins, ClientError> {
    let refused = |why: &str| ClientError::Pins(format!("server pins refused: {why}"));
    let der = STANDARD
        .decode(&answer.certificate)
        .map_err(|_| refused("the certificate is not base64"))?;
    if !trusted.iter().any(|p| p.matches(&der)) {
        return Err(refused("the certificate matches no pinned key"));
    }
    let signature = STANDARD
        .decode(&answer.signature)
        .map_err(|_| refused("the signature is not base64"))?;
    let next = answer.next_pin.as_deref().map(Pin::from_str).transpose()?;
    if let Some(Pin::Certificate(_)) = next {
        return Err(refused("the next pin is not a public-key pin"));
    }
    let cert_der = CertificateDer::from(der.as_slice());
    let cert = webpki::EndEntityCert::try_from(&cert_der)
        .map_err(|_| refused("the certificate is unreadable"))?;
    let scheme = SignatureScheme::from(answer.scheme);
    let message = next_pin_message(answer.next_pin.as_deref());
    let provider = rustls::crypto::ring::default_provider();
    let verified = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .filter(|(s, _)| *s == scheme)
        .flat_map(|(_, algs)| algs.iter())
        .any(|alg| cert.verify_signature(*alg, &message, &signature).is_ok());
    if !verified {
        return Err(refused("the signature does not verify"));
    }
    Ok(VerifiedPins {
        current: Pin::of_key(&der)?,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_print() {
        let hex = "ab".repeat(32);
        let key: Pin = format!("SPKI-SHA256:{hex}").parse().unwrap();
        assert_eq!(key.to_string(), format!("spki-sha256:{hex}"));
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        for cert in [
            format!("sha256:{hex}"),
            hex.to_uppercase(),
            format!("SHA256:{colons}"),
        ] {
            let pin: Pin = cert.parse().unwrap();
            assert_eq!(pin.to_string(), format!("sha256:{hex}"), "{cert}");
        }
        for bad in ["", "spki-sha256:ab", "md5:00", &"zz".repeat(32)] {
            assert!(bad.parse::<Pin>().is_err(), "{bad}");
        }
    }
}
