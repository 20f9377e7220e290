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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::{ClientError, HttpConnection, Pin, ServerAddress};

    /// A TLS server on loopback with a fresh self-signed key that answers
    /// one request with `answer` and hands back the request's head.
    async fn one_answer(
        answer: &'static str,
    ) -> (ServerAddress, Pin, tokio::task::JoinHandle<String>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let pin = Pin::of_key(der.as_ref()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return String::new();
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.unwrap() == 1 {
                head.push(byte[0]);
            }
            tls.write_all(answer.as_bytes()).await.unwrap();
            tls.flush().await.unwrap();
            String::from_utf8(head).unwrap()
        });
        let addr = ServerAddress {
            host: "localhost".into(),
            port,
            pins: vec![],
        };
        (addr, pin, served)
    }

    #[tokio::test]
    async fn a_created_upload_sends_the_tus_headers_and_returns_its_location() {
        let (mut addr, pin, served) = one_answer(
            "HTTP/1.1 201 Created\r\nLocation: /api/v1/uploads/up-1\r\nTus-Resumable: 1.0.0\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        addr.pins = vec![pin];
        let mut http = HttpConnection::connect(&addr).await.unwrap();
        let location = http.tus_create("cred", 1234, "c-1").await.unwrap();
        assert_eq!(location, "/api/v1/uploads/up-1");
        let head = served.await.unwrap().to_ascii_lowercase();
        for line in [
            "post /api/v1/uploads http/1.1",
            "authorization: bearer cred",
            "tus-resumable: 1.0.0",
            "upload-length: 1234",
            "upload-metadata: contact_id yy0x",
        ] {
            assert!(head.contains(line), "{line:?} not in {head}");
        }
    }

    #[tokio::test]
    async fn an_answer_without_an_offset_is_a_protocol_error() {
        let (mut addr, pin, _served) =
            one_answer("HTTP/1.1 204 No Content\r\nTus-Resumable: 1.0.0\r\n\r\n").await;
        addr.pins = vec![pin];
        let mut http = HttpConnection::connect(&addr).await.unwrap();
        match http.tus_offset("cred", "/api/v1/uploads/up-1").await {
            Err(ClientError::Protocol(m)) => assert!(m.contains("Upload-Offset"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_server_whose_key_is_not_pinned_is_refused_before_any_request() {
        let (mut addr, _pin, served) = one_answer("HTTP/1.1 200 OK\r\n\r\n").await;
        addr.pins = vec!["AB".repeat(32).parse().unwrap()];
        match HttpConnection::connect(&addr).await {
            Err(ClientError::Tls { .. }) => {}
            other => panic!("an unpinned server was accepted: {:?}", other.map(|_| ())),
        }
        assert_eq!(served.await.unwrap(), "", "no request reached it");
    }
}
