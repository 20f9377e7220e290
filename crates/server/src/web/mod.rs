//! What supervisors use in a browser: sign-in, the contacts list, a
//! contact with its player, the devices, and the video endpoint behind the
//! player.
//!
//! Pages are server-rendered HTML (see `pages`) and need a session whose
//! user has `view_recordings`: signed-out requests are redirected to
//! `/login`, signed-in users without the permission get 403. The video
//! endpoint is an API: it answers 401/403 as JSON instead.

mod pages;
mod queries;
pub mod session;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_http::services::ServeFile;

use crate::api::ApiError;
use crate::auth::{self, LoginError};
use crate::enrollment;
use crate::playback::{self, PlaybackError};
use crate::state::AppState;
use crate::throttle::{MAX_LOGIN_BYTES, Refusal};
use queries::ContactFilter;
use session::{ApiViewer, SameOrigin, Viewer, page_error};

/// The pages and the video endpoint.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(contacts))
        .route(
            "/login",
            get(login_form)
                .post(login)
                // A login and a password: a few hundred bytes. Far more is
                // refused before it is buffered (axum's default is 2 MB).
                .layer(axum::extract::DefaultBodyLimit::max(LOGIN_FORM_BYTES))
                .route_layer(axum::middleware::from_fn(declared_size)),
        )
        .route("/logout", axum::routing::post(logout))
        .route("/contacts/{contact_id}", get(contact))
        .route("/devices", get(devices))
        .route("/api/v1/recordings/{contact_id}/video.mp4", get(video))
}

/// The pages' `Content-Security-Policy`: nothing but this origin's video
/// and the one inline style sheet (by its hash), no script at all, no
/// framing, forms post only here. An injected tag, were the escaping ever
/// to fail, could load and run nothing.
pub fn content_security_policy() -> &'static str {
    static CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let style = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(pages::STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{style}'; media-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    &CSP
}

/// Every page path that needs a session, for tests.
pub const PAGES: &[&str] = &["/", "/contacts/{contact_id}", "/devices"];

async fn login_form(headers: HeaderMap, State(state): State<AppState>) -> Response {
    // Already signed in: straight to the contacts.
    if let Some(token) = session::token(&headers) {
        let signed_in = state
            .db()
            .call(move |c| auth::session_user(c, &token))
            .await;
        if matches!(signed_in, Ok(Some(_))) {
            return Redirect::to("/").into_response();
        }
    }
    Html(pages::login(None, "").into_string()).into_response()
}

/// The largest sign-in form accepted.
const LOGIN_FORM_BYTES: usize = 4 << 10;

/// Refuses a sign-in whose declared length is over [`LOGIN_FORM_BYTES`]
/// at once: the body limit alone would wait for the bytes (up to the
/// request deadline) before it could refuse them.
async fn declared_size(req: Request, next: axum::middleware::Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > LOGIN_FORM_BYTES as u64) {
        let message = format!("A sign-in is at most {LOGIN_FORM_BYTES} bytes.");
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Html(pages::login(Some(&message), "").into_string()),
        )
            .into_response();
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    _: SameOrigin,
    Form(form): Form<LoginForm>,
) -> Response {
    let who = form.login.trim().to_owned();
    let throttle = state.login_throttle();
    let from = peer.ip();
    let wait = match throttle.check(&who, from) {
        Ok(()) => None,
        Err(Refusal::LoginTooLong) => {
            state.metrics().sign_ins_throttled.inc();
            let message = format!("A Windows login has at most {MAX_LOGIN_BYTES} characters.");
            return (
                StatusCode::BAD_REQUEST,
                Html(pages::login(Some(&message), "").into_string()),
            )
                .into_response();
        }
        Err(Refusal::Wait(wait)) => Some(wait),
    };
    if let Some(wait) = wait {
        state.metrics().sign_ins_throttled.inc();
        tracing::warn!(login = ?who, %from, wait_s = wait.as_secs(), "sign-in throttled");
        let message = format!(
            "Too many failed sign-ins for this login or from this address: try again in {} s.",
            wait.as_secs().max(1)
        );
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(pages::login(Some(&message), &who).into_string()),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
        return resp;
    }
    let result = {
        let _slot = throttle.check_slot().await;
        auth::login(state.db(), who.clone(), form.password).await
    };
    match &result {
        Ok(_) => throttle.succeeded(&who),
        Err(LoginError::BadCredentials) => throttle.failed(&who, from),
        Err(_) => {}
    }
    match result {
        Ok(s) => {
            tracing::info!(login = ?who, %from, user = s.user_id, "supervisor signed in");
            let mut resp = Redirect::to("/").into_response();
            set_cookie(&mut resp, &session::session_cookie(&s.token));
            resp
        }
        Err(e @ (LoginError::Db(_) | LoginError::Hash(_))) => page_error(&e),
        Err(e) => {
            tracing::info!(login = ?who, %from, reason = %e, "sign-in refused");
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some(&e.to_string()), &who).into_string()),
            )
                .into_response()
        }
    }
}

async fn logout(State(state): State<AppState>, _: SameOrigin, headers: HeaderMap) -> Response {
    if let Some(token) = session::token(&headers)
        && let Err(e) = state.db().call(move |c| auth::logout(c, &token)).await
    {
        return page_error(&e);
    }
    let mut resp = Redirect::to("/login").into_response();
    set_cookie(&mut resp, &session::removal_cookie());
    resp
}

fn set_cookie(resp: &mut Response, value: &str) {
    let value = HeaderValue::from_str(value).expect("cookies are visible ASCII");
    resp.headers_mut().append(header::SET_COOKIE, value);
}

/// `GET /?login=&status=&page=`.
async fn contacts(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    filter: Result<Query<ContactFilter>, QueryRejection>,
) -> Response {
    // A mangled query string shows the unfiltered list rather than an error.
    let filter = filter.map(|Query(f)| f).unwrap_or_default();
    let f = filter.clone();
    match state.db().call(move |c| queries::contacts(c, &f)).await {
        Ok((rows, more)) => {
            Html(pages::contacts(&user, &filter, &rows, more).into_string()).into_response()
        }
        Err(e) => page_error(&e),
    }
}

async fn contact(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(contact_id): Path<String>,
) -> Response {
    let id = contact_id.clone();
    match state.db().call(move |c| queries::contact(c, &id)).await {
        Ok(Some((c, rec))) => {
            Html(pages::contact(&user, &c, rec.as_ref()).into_string()).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(
                pages::message("Not found", &format!("There is no contact {contact_id:?}."))
                    .into_string(),
            ),
        )
            .into_response(),
        Err(e) => page_error(&e),
    }
}

async fn devices(Viewer(user): Viewer, State(state): State<AppState>) -> Response {
    match state.db().call(|c| enrollment::list_devices(c)).await {
        Ok(list) => {
            let hub = state.hub();
            let rows: Vec<_> = list
                .into_iter()
                .map(|d| {
                    let connected = hub.is_connected(&d.id);
                    (d, connected)
                })
                .collect();
            Html(pages::devices(&user, &rows).into_string()).into_response()
        }
        Err(e) => page_error(&e),
    }
}

/// `GET /api/v1/recordings/{contact_id}/video.mp4`: the contact's recording
/// as MP4, with Range support so the player can seek.
async fn video(
    ApiViewer(user): ApiViewer,
    State(state): State<AppState>,
    Path(contact_id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let path = playback::cached_mp4(&state, &contact_id).await?;
    tracing::debug!(contact = ?contact_id, user = ?user.windows_login, "recording served");
    let resp = ServeFile::new(path)
        .try_call(req)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut resp = resp.map(axum::body::Body::new);
    // Recordings are personal data: never kept in shared or disk caches.
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

impl From<PlaybackError> for ApiError {
    fn from(e: PlaybackError) -> Self {
        match e {
            PlaybackError::NoContact(_) => ApiError::not_found(e.to_string()),
            PlaybackError::NoRecording { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "no_recording", e.to_string())
            }
            PlaybackError::Export {
                ref contact,
                ref reason,
            } => {
                tracing::error!(contact, reason, "export failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "export_failed",
                    format!(
                        "the recording of contact {contact:?} could not be verified or exported; \
                         the server log has the reason"
                    ),
                )
            }
            PlaybackError::Db(e) => ApiError::internal(&e),
        }
    }
}
