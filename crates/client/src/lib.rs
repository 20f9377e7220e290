//! The agent's side of the Deskrec server protocol.
//!
//! An agent knows its server from the enrollment token: a URL and the pin
//! of the server's public key. Everything here connects with TLS pinned to
//! that key (and to the next one the server announced, signed) and to
//! nothing else — no system roots, so a network that can mint certificates
//! still cannot impersonate the server.
//!
//! - [`ServerAddress`]: where the server is and which keys it may have;
//! - [`Pin`] and [`verify_pins`]: the pins, and checking the server's
//!   announcement of its next key;
//! - [`HttpConnection`]: a keep-alive HTTPS connection for JSON and upload
//!   calls;
//! - [`RteSocket`]: the RTE WebSocket, speaking [`deskrec_protocol`]'s
//!   messages;
//! - resumable uploads (tus): [`HttpConnection::tus_create`],
//!   [`HttpConnection::tus_offset`], [`HttpConnection::tus_patch`];
//! - [`pinned_tls`]: the rustls configuration, for callers that build their
//!   own connections.
//!
//! Used by the agent engine, the server's integration tests and the server
//! benchmark's simulated agents.

#![deny(missing_docs)]

mod address;
mod error;
mod http;
mod pin;
mod rte;
mod tls;
mod tus;

pub use address::ServerAddress;
pub use error::ClientError;
pub use http::{HttpConnection, Response};
pub use pin::{Pin, VerifiedPins, verify_pins};
pub use rte::RteSocket;
pub use tls::pinned_tls;
pub use tus::UPLOADS_PATH;

/// Where the server announces its pins ([`deskrec_protocol::ServerPins`]).
pub const PINS_PATH: &str = "/api/v1/tls/pins";

/// HTTP methods, for [`HttpConnection::request`].
pub use hyper::Method;
