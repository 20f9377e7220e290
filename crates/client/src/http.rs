//! One keep-alive HTTPS connection.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;

use crate::{ClientError, ServerAddress, tls};

/// An HTTP/1.1 connection to the server, reused for sequential calls (a
/// TLS handshake per call would dominate small calls' cost).
pub struct HttpConnection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A whole response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::Protocol(format!("HTTP {} body is not JSON: {e}", self.status))
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

impl HttpConnection {
    /// Connects (TCP + pinned TLS + HTTP/1.1 handshake).
    pub async fn connect(addr: &ServerAddress) -> Result<Self, ClientError> {
        let stream = tls::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
        Ok(Self {
            sender,
            host: addr.authority(),
        })
    }

    /// Whether the connection can take another request (the server may
    /// have closed it).
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await?.to_bytes(),
        })
    }

    /// A JSON call with a bearer token; `body` `None` sends no body.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        let auth = format!("Bearer {bearer}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        self.request(method, path, &headers, body).await
    }
}

impl Response {
    /// `Ok(self)` for a 2xx answer, otherwise [`ClientError::Api`] with the
    /// error body's code and message.
    pub fn ok(self) -> Result<Self, ClientError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let body: Option<deskrec_protocol::ErrorBody> = serde_json::from_slice(&self.body).ok();
        let (code, message) = match body {
            Some(b) => (b.code, b.message),
            None => (
                String::new(),
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned(),
            ),
        };
        Err(ClientError::Api {
            status: self.status,
            code,
            message,
        })
    }
}
