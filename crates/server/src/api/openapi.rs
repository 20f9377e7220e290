//! The OpenAPI 3.1 description of the HTTP API, served at
//! `GET /api/v1/openapi.json` without authentication.
//!
//! The document is `openapi.json` beside this file, compiled in and served
//! as it is: nothing is parsed or built per request. It is JSON rather than
//! YAML so that neither the server nor its test needs a YAML parser
//! (`serde_yaml` is unmaintained) and the bytes on disk are the bytes served.
//! `tests/it/openapi.rs` checks it against the live router in both directions
//! — every route described, every described route present — so a route
//! cannot be added, renamed or removed without updating it.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
