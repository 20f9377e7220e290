//! Why a call to the server failed.

/// A failed connection or call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached (refused, unreachable, timed out).
    #[error("cannot reach the server at {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS failed; a fingerprint mismatch means the certificate is not the
    /// one in the enrollment token (re-enroll, or a machine in the middle).
    #[error("TLS with {addr} failed: {source}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection dropped mid-call…).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (bad header value, bad URL).
    #[error("bad request: {0}")]
    Request(String),
    /// The WebSocket failed or closed.
    #[error("RTE WebSocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server sent something that is not a protocol message.
    #[error("unexpected message from the server: {0}")]
    Protocol(String),
    /// The server answered with an error status; `code` is the stable
    /// code of the JSON error body (`unauthorized`, `offset_mismatch`…),
    /// empty when the body was not one.
    #[error("the server answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body's `code`.
        code: String,
        /// The error body's `message`, for people.
        message: String,
    },
    /// A pin is malformed, or the server's announcement of its pins did not
    /// check out (see [`crate::verify_pins`]).
    #[error("{0}")]
    Pins(String),
    /// The URL is not `https://host[:port]`.
    #[error("server URL {0:?} is not https://host[:port]")]
    BadUrl(String),
}
