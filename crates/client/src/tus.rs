//! The agent's side of resumable uploads (tus 1.0.0: core and creation) at
//! `/api/v1/uploads`.
//!
//! The caller drives the loop and keeps the upload's URL and offset in its
//! own durable state between calls: [`create`](HttpConnection::tus_create)
//! once, then [`offset`](HttpConnection::tus_offset) after any doubt (a
//! restart, a dropped connection) and [`patch`](HttpConnection::tus_patch)
//! from there. The server keeps every byte it received, even from a PATCH
//! cut mid-body, so nothing is sent twice and nothing is lost.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Bytes;

use crate::{ClientError, HttpConnection, Method};

/// Where uploads are created.
pub const UPLOADS_PATH: &str = "/api/v1/uploads";

/// The tus version spoken, sent in every request's `Tus-Resumable`.
const TUS_VERSION: &str = "1.0.0";

impl HttpConnection {
    /// `POST /api/v1/uploads`: a new upload of `length` bytes for
    /// `contact_id`. Returns its URL path (the `Location`).
    pub async fn tus_create(
        &mut self,
        credential: &str,
        length: u64,
        contact_id: &str,
    ) -> Result<String, ClientError> {
        let auth = format!("Bearer {credential}");
        let length = length.to_string();
        let metadata = format!("contact_id {}", STANDARD.encode(contact_id));
        let headers = [
            ("authorization", auth.as_str()),
            ("tus-resumable", TUS_VERSION),
            ("upload-length", length.as_str()),
            ("upload-metadata", metadata.as_str()),
        ];
        let resp = self
            .request(Method::POST, UPLOADS_PATH, &headers, Bytes::new())
            .await?
            .ok()?;
        resp.header("location")
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("upload created without a Location".into()))
    }

    /// `HEAD <location>`: how many bytes the server has.
    pub async fn tus_offset(
        &mut self,
        credential: &str,
        location: &str,
    ) -> Result<u64, ClientError> {
        let auth = format!("Bearer {credential}");
        let headers = [
            ("authorization", auth.as_str()),
            ("tus-resumable", TUS_VERSION),
        ];
        let resp = self
            .request(Method::HEAD, location, &headers, Bytes::new())
            .await?
            .ok()?;
        upload_offset(&resp)
    }

    /// `PATCH <location>`: appends `body` at `offset`; returns the server's
    /// new offset. The PATCH that brings the last byte returns only once the
    /// server verified and stored the recording (or refused it: a 422
    /// [`ClientError::Api`] with the reason).
    pub async fn tus_patch(
        &mut self,
        credential: &str,
        location: &str,
        offset: u64,
        body: Bytes,
    ) -> Result<u64, ClientError> {
        let auth = format!("Bearer {credential}");
        let offset = offset.to_string();
        let headers = [
            ("authorization", auth.as_str()),
            ("tus-resumable", TUS_VERSION),
            ("upload-offset", offset.as_str()),
            ("content-type", "application/offset+octet-stream"),
        ];
        let resp = self
            .request(Method::PATCH, location, &headers, body)
            .await?
            .ok()?;
        upload_offset(&resp)
    }
}

fn upload_offset(resp: &crate::Response) -> Result<u64, ClientError> {
    resp.header("upload-offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("HTTP {} without Upload-Offset", resp.status)))
}
