//! The Deskrec recording server.
//!
//! It decides who is recorded and tells agent PCs over the RTE WebSocket,
//! relays the contact centre's contacts to them, takes their verified
//! recordings, and lets supervisors find and play the contacts they may
//! see. One binary, one TLS port, an embedded SQLite database and a data
//! directory.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use deskrec_server::{AppState, Config, serve};
//! let config = Config::from_toml("data_dir = \"/tmp/deskrec\"\nlisten = \"127.0.0.1:0\"")?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let state = AppState::open(&config, listener.local_addr()?)?;
//! println!("pin this certificate: {}", state.tls().fingerprint);
//! serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `config`: the TOML configuration over defaults;
//! - `state`: [`AppState`], set up from the data directory on start;
//! - `server`: the accept loop, TLS and graceful shutdown ([`serve`]);
//! - `limits`: connections per address, request deadlines, open files;
//! - `logging`: one event, one line, whatever clients put in its fields;
//! - `throttle`: slowing down password guessing;
//! - `tls`: the (self-signed, generated) certificate and its fingerprint;
//! - `keys`: the server's recording key pair;
//! - `secret`: random secrets, their hashes, private files;
//! - `db`: SQLite and its numbered migrations;
//! - `audit`: the audit log;
//! - `compliance`: retention, legal holds and erasure of recordings and
//!   call audio;
//! - `directory`: users, roles, teams, permissions, settings, bulk import;
//! - `scope`: which contacts a supervisor may see (their teams');
//! - `eligibility`: who is recorded, and why not;
//! - `contacts`: contacts from the ACD, their relay to devices, the watermark;
//! - `enrollment`: one-time tokens, device credentials, revocation;
//! - `hub`: connected devices, and how the server wakes their sessions;
//! - `metrics`: Prometheus counters and gauges;
//! - `rte`: the agent WebSocket sessions;
//! - `api`: the HTTP router, errors, and the admin API (`api::admin`);
//! - `auth`: supervisor passwords (Argon2id) and sessions;
//! - `playback`: stored recordings exported to cached MP4;
//! - `audio`: a contact's call audio, checked, sealed, stored and served;
//! - `mux`: the download, the video with the call audio muxed in;
//! - `web`: the supervisor pages, sign-in, and the video endpoint;
//! - `uploads`: resumable (tus) recording uploads, verified and stored;
//! - `storage`: where verified recordings live ([`storage::RecordingStore`]).
//!
//! The admin API and its authentication are described in `docs/server.md`,
//! the messages in `docs/protocol.md`.

#![deny(missing_docs)]

pub mod api;
pub mod audio;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod compliance;
pub mod config;
pub mod contacts;
#[doc(hidden)]
pub mod crashpoint;
pub mod db;
pub mod directory;
pub mod eligibility;
pub mod enrollment;
pub mod fleet;
pub mod hub;
mod keys;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod mux;
pub mod pause;
pub mod playback;
pub mod rte;
pub mod scope;
pub mod secret;
mod server;
pub mod state;
pub mod storage;
pub mod throttle;
pub mod tls;
pub mod uploads;
pub mod web;

pub use api::router;
pub use config::Config;
pub use server::serve;
pub use state::{AppState, StartError};

#[cfg(feature = "test-utils")]
pub mod testing;

/// Thin wrappers over private parsers of what a device sends, for the fuzz
/// targets in `crates/vault/fuzz`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue};

    use crate::uploads::tus;

    /// A tus numeric header (`Upload-Length`, `Upload-Offset`,
    /// `Content-Length`) with this raw value; `None` when the bytes are not
    /// a valid HTTP header value (the HTTP layer rejects those first).
    pub fn tus_number(value: &[u8]) -> Option<Result<Option<u64>, String>> {
        let value = HeaderValue::from_bytes(value).ok()?;
        let mut headers = HeaderMap::new();
        headers.insert("upload-length", value);
        Some(tus::number(&headers, "upload-length").map_err(|e| e.to_string()))
    }

    /// The value of `key` in an `Upload-Metadata` header.
    pub fn tus_metadata(header: &str, key: &str) -> Result<Option<String>, String> {
        tus::metadata(header, key).map_err(|e| e.to_string())
    }

    /// An `Upload-Checksum` header: (is SHA-256, expected digest).
    pub fn tus_checksum(value: &str) -> Result<(bool, Vec<u8>), String> {
        tus::Checksum::parse(value)
            .map(|c| (c.sha256, c.expected))
            .map_err(|e| e.to_string())
    }
}
