//! The HTTP API: one router for the admin API, enrollment, the RTE
//! WebSocket, tus uploads (`uploads::tus`), the supervisor pages and video
//! (`web`), the OpenAPI document and a health check, with request metrics
//! on every matched route.
//!
//! Every error is JSON `{code, message}` ([`ApiError`]). Server-side
//! failures are logged with their cause and answered with a generic
//! message, so internals never leak to clients.

pub mod admin;
mod compliance;
mod error;
pub mod openapi;
mod pauses;

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use deskrec_protocol::{EnrollRequest, EnrollResponse};
use serde::de::DeserializeOwned;

pub(crate) use compliance::gone;
pub use error::ApiError;

use crate::enrollment;
use crate::state::AppState;

/// Builds the whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/metrics", get(crate::metrics::endpoint))
        .route("/api/v1/enroll", post(enroll))
        .route(deskrec_client::PINS_PATH, get(pins))
        .route("/api/v1/rte", get(crate::rte::upgrade))
        .nest("/api/v1/admin", admin::router(state.clone()))
        .merge(crate::web::router())
        .merge(crate::uploads::tus::router())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::body_deadline,
        ))
        // route_layer: runs after routing, so the matched route template is
        // known (unmatched requests reach the fallback uncounted).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers on every answer: no framing, no MIME sniffing, no referrer
/// leaking contact ids to other sites, HTTPS only from now on (the server
/// speaks nothing else), and the pages' content policy.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    let csp = HeaderValue::from_static(crate::web::content_security_policy());
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ),
    ] {
        h.insert(name, value);
    }
    resp
}

/// `GET /api/v1/tls/pins`: the certificate and the next key's pin, signed
/// (no authentication: pins are public, and agents check the signature).
async fn pins(State(s): State<AppState>) -> Json<deskrec_protocol::ServerPins> {
    Json(s.tls().pins())
}

/// `GET /api/v1/health`: liveness, no authentication, no details.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `POST /api/v1/enroll`: trade an enrollment token (one-time or fleet) and
/// a public key for a device id and credential.
async fn enroll(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let resp = state
        .db()
        .call(move |c| -> Result<EnrollResponse, enrollment::EnrollError> {
            let tx = crate::db::write_tx(c)?;
            match enrollment::enroll(&tx, &req) {
                Ok(resp) => {
                    tx.commit()?;
                    Ok(resp)
                }
                Err(e) => {
                    drop(tx);
                    // A refused fleet token is logged, in its own
                    // transaction: the enrollment's changed nothing.
                    if let enrollment::EnrollError::FleetRefused { token_id, reason } = e {
                        crate::fleet::record_refusal(c, token_id, &req.host, reason)?;
                        tracing::warn!(token = token_id, host = ?req.host, %reason, "fleet enrollment refused");
                    }
                    Err(e)
                }
            }
        })
        .await?;
    tracing::info!(device = %resp.device_id, "device enrolled");
    Ok(Json(resp))
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A JSON request body whose rejections are [`ApiError`]s (axum's own
/// `Json` answers in plain text).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), "bad_request", r.body_text()))?;
        parse_json_bytes(&bytes).map(JsonBody)
    }
}

/// Whether the request says its body is JSON (`application/json` or an
/// `application/*+json` type), as axum's `Json` decides it.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON body read from text (a route that also takes other types, or
/// none), as [`JsonBody`] reads it.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    parse_json_bytes(text.as_bytes())
}

/// 400 when the bytes are not JSON, 422 when they do not fit `T` (naming
/// where: `contacts[0].start: ...`), as axum's `Json` answers.
fn parse_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = match Json::<T>::from_bytes(bytes) {
        Ok(Json(v)) => return Ok(v),
        Err(r) => r,
    };
    // A whole number written as `5.0` is still an integer: read it again
    // with such numbers rewritten, only when there were any.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let rewritten = integral_numbers(value.clone());
        if rewritten != value
            && let Ok(v) = serde_json::from_value(rewritten)
        {
            return Ok(v);
        }
    }
    Err(ApiError::new(
        first.status(),
        "bad_request",
        first.body_text(),
    ))
}

/// The same value with every number that is a whole number written as
/// one: `5.0` becomes `5`. JSON does not tell the two apart, nor does the
/// OpenAPI document (`"type": "integer"` holds `5.0`), so neither may the
/// server; serde would refuse `5.0` for an integer field.
fn integral_numbers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    /// Whole numbers a double holds exactly (2^53).
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A query string whose rejections are [`ApiError`]s (axum's own `Query`
/// answers in plain text).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(ApiError::bad_request(r.body_text())),
        }
    }
}

/// A request body as text, for routes whose body may be empty or CSV; its
/// rejections (not UTF-8, too large) are [`ApiError`]s.
pub struct TextBody(pub String);

impl<S: Send + Sync> FromRequest<S> for TextBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match String::from_request(req, state).await {
            Ok(text) => Ok(TextBody(text)),
            Err(r) => Err(ApiError::new(r.status(), "bad_request", r.body_text())),
        }
    }
}

/// A list's `limit`: `default` when absent, refused outside `1..=max` (the
/// range the OpenAPI document states), never silently cut.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit {n} is outside 1..={max}"
        ))),
    }
}
