//! The agent's side of the Deskrec server protocol.
//!
//! An agent knows its server from the enrollment token: a URL and the
//! SHA-256 fingerprint of the server's (usually self-signed) certificate.
//! Everything here connects with TLS pinned to that fingerprint and to
//! nothing else — no system roots, so a network that can mint certificates
//! still cannot impersonate the server.
//!
//! - [`ServerAddress`]: where the server is and which certificate it has;
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
mod rte;
mod tls;
mod tus;

pub use address::ServerAddress;
pub use error::ClientError;
pub use http::{HttpConnection, Response};
pub use rte::RteSocket;
pub use tls::pinned_tls;
pub use tus::UPLOADS_PATH;

/// HTTP methods, for [`HttpConnection::request`].
pub use hyper::Method;
