//! What supervisors use in a browser: sign-in, the contact search, a
//! contact with its player, the devices, and behind them the video, the
//! download and the supervisors' JSON API.
//!
//! Pages are server-rendered HTML (see `pages`) and need a session whose
//! user has `view_recordings`: signed-out requests are redirected to
//! `/login`, signed-in users without the permission get 403. The video,
//! the download and the API answer 401/403 as JSON instead.
//!
//! Every route that shows a contact reads it within the user's
//! [`Scope`]: a contact outside it is answered 404,
//! as one that does not exist. Every playback and download is audited
//! ([`audit::access`]).

mod pages;
pub mod queries;
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
use crate::audit::{self, Access};
use crate::auth::{self, LoginError};
use crate::enrollment;
use crate::playback::{self, PlaybackError};
use crate::scope::Scope;
use crate::state::AppState;
use crate::throttle::{MAX_LOGIN_BYTES, Refusal};
use queries::{ContactSearch, SearchError};
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
        .route("/api/v1/recordings/{contact_id}/audio", get(audio))
        .route(
            "/api/v1/recordings/{contact_id}/download.mp4",
            get(download),
        )
        .route(PLAYER_JS, get(player_js))
        .route("/api/v1/contacts", get(api_contacts))
        .route("/api/v1/contacts/{contact_id}", get(api_contact))
}

/// The pages' `Content-Security-Policy`: nothing but this origin's media,
/// the one inline style sheet (by its hash) and this origin's scripts (the
/// player, [`PLAYER_JS`]; no inline script, no `eval`), no framing, forms
/// post only here. An injected tag, were the escaping ever to fail, could
/// load nothing from elsewhere and run no code of its own.
pub fn content_security_policy() -> &'static str {
    static CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let style = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(pages::STYLE.as_bytes()));
        format!(
            "default-src 'none'; script-src 'self'; style-src 'sha256-{style}'; media-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    &CSP
}

/// Where the contact page's player script is served.
pub const PLAYER_JS: &str = "/static/player.js";

/// `GET /static/player.js`: the player (no session: it holds no data).
async fn player_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("player.js"),
    )
        .into_response()
}

/// Every page path that needs a session, for tests.
pub const PAGES: &[&str] = &["/", "/contacts/{contact_id}", "/devices"];

/// Every path the supervisors' session opens that is not a page, for
/// tests.
pub const SESSION_API: &[&str] = &[
    "/api/v1/recordings/{contact_id}/video.mp4",
    "/api/v1/recordings/{contact_id}/download.mp4",
    "/api/v1/recordings/{contact_id}/audio",
    "/api/v1/contacts",
    "/api/v1/contacts/{contact_id}",
];

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

/// `GET /?login=&queue=&direction=&status=&from=&to=&before=`: the
/// contact search.
async fn contacts(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    search: Result<Query<ContactSearch>, QueryRejection>,
) -> Response {
    // A mangled query string shows the unfiltered list rather than an error.
    let search = search.map(|Query(f)| f).unwrap_or_default();
    let (f, scope) = (search.clone(), Scope::of(&user));
    let found = state
        .db()
        .call(move |c| queries::search(c, scope, &f, queries::PAGE_SIZE))
        .await;
    match found {
        Ok(page) => {
            Html(pages::contacts(&user, &search, &page, None).into_string()).into_response()
        }
        Err(SearchError::Invalid(message)) => {
            let empty = queries::ContactPage {
                contacts: vec![],
                next: None,
            };
            let html = pages::contacts(&user, &search, &empty, Some(&message));
            (StatusCode::BAD_REQUEST, Html(html.into_string())).into_response()
        }
        Err(SearchError::Db(e)) => page_error(&e),
    }
}

async fn contact(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(contact_id): Path<String>,
) -> Response {
    let (id, scope) = (contact_id.clone(), Scope::of(&user));
    match state
        .db()
        .call(move |c| queries::contact(c, scope, &id))
        .await
    {
        Ok(Some(detail)) => Html(pages::contact(&user, &detail).into_string()).into_response(),
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

/// The filter of the devices page.
#[derive(Clone, Debug, Default, Deserialize)]
struct DeviceFilter {
    /// One [`pages::DeviceState`] name; empty: every device.
    #[serde(default)]
    state: String,
}

/// `GET /devices?state=`: the fleet, by state.
async fn devices(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    filter: Result<Query<DeviceFilter>, QueryRejection>,
) -> Response {
    let filter = filter.map(|Query(f)| f).unwrap_or_default();
    let wanted = pages::DeviceState::parse(&filter.state);
    match state.db().call(|c| enrollment::list_devices(c)).await {
        Ok(list) => {
            let hub = state.hub();
            let rows: Vec<_> = list
                .into_iter()
                .map(|d| {
                    let s = pages::DeviceState::of(&d, hub.is_connected(&d.id));
                    (d, s)
                })
                .filter(|(_, s)| wanted.is_none_or(|w| w == *s))
                .collect();
            Html(pages::devices(&user, wanted, &rows).into_string()).into_response()
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
    serve_recording(&state, &user, Access::Play, &contact_id, req).await
}

/// `GET /api/v1/recordings/{contact_id}/download.mp4`: the same file as a
/// download, audited as one.
async fn download(
    ApiViewer(user): ApiViewer,
    State(state): State<AppState>,
    Path(contact_id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let path = crate::mux::download(&state, Scope::of(&user), &contact_id).await?;
    let mut resp = serve_file(&state, &user, Access::Download, &contact_id, path, req).await?;
    let name = format!(
        "attachment; filename=\"contact-{}.mp4\"",
        file_name(&contact_id)
    );
    let value = HeaderValue::from_str(&name).map_err(|e| ApiError::internal(&e))?;
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, value);
    Ok(resp)
}

/// A contact id made safe for a file name: letters, digits, `-`, `_` and
/// `.` are kept, everything else becomes `_`.
fn file_name(contact_id: &str) -> String {
    contact_id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `GET /api/v1/recordings/{contact_id}/audio`: the contact's call audio
/// as imported, with Range support.
async fn audio(
    ApiViewer(user): ApiViewer,
    State(state): State<AppState>,
    Path(contact_id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (path, media_type) = crate::audio::cached(&state, Scope::of(&user), &contact_id).await?;
    let mut resp = serve_file(&state, &user, Access::Audio, &contact_id, path, req).await?;
    let value = HeaderValue::from_str(&media_type).map_err(|e| ApiError::internal(&e))?;
    resp.headers_mut().insert(header::CONTENT_TYPE, value);
    Ok(resp)
}

/// Serves the cached MP4 of a contact in `user`'s scope, audited as `what`
/// before a byte leaves.
async fn serve_recording(
    state: &AppState,
    user: &crate::auth::Supervisor,
    what: Access,
    contact_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let path = playback::cached_mp4(state, Scope::of(user), contact_id).await?;
    serve_file(state, user, what, contact_id, path, req).await
}

/// Serves `path`, a decrypted file of the playback cache, audited as
/// `what` before a byte leaves; Range requests answered, nothing cached
/// by the browser.
async fn serve_file(
    state: &AppState,
    user: &crate::auth::Supervisor,
    what: Access,
    contact_id: &str,
    path: std::path::PathBuf,
    req: Request,
) -> Result<Response, ApiError> {
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (login, contact) = (user.windows_login.clone(), contact_id.to_owned());
    let detail = serde_json::json!({ "range": range });
    let audited = state
        .db()
        .call(move |c| audit::access(c, &login, what, &contact, detail))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tracing::debug!(contact = ?contact_id, user = ?user.windows_login, audited, "recording served");
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

/// `GET /api/v1/contacts`: the contact search as JSON, within the user's
/// scope; `limit` up to [`queries::MAX_LIMIT`], `next` is the cursor of
/// the next page (`before`).
async fn api_contacts(
    ApiViewer(user): ApiViewer,
    State(state): State<AppState>,
    crate::api::ApiQuery(search): crate::api::ApiQuery<ContactSearch>,
) -> Result<Response, ApiError> {
    let limit = crate::api::page_limit(search.limit, queries::PAGE_SIZE, queries::MAX_LIMIT)?;
    let scope = Scope::of(&user);
    let page = state
        .db()
        .call(move |c| queries::search(c, scope, &search, limit))
        .await
        .map_err(|e| match e {
            SearchError::Invalid(m) => ApiError::bad_request(m),
            SearchError::Db(e) => ApiError::internal(&e),
        })?;
    Ok(axum::Json(page).into_response())
}

/// `GET /api/v1/contacts/{contact_id}`: one contact in the user's scope
/// and its stored recording, as JSON.
async fn api_contact(
    ApiViewer(user): ApiViewer,
    State(state): State<AppState>,
    Path(contact_id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, scope) = (contact_id.clone(), Scope::of(&user));
    match state
        .db()
        .call(move |c| queries::contact(c, scope, &id))
        .await
    {
        Ok(Some(detail)) => Ok(axum::Json(detail).into_response()),
        Ok(None) => Err(ApiError::not_found(format!("no contact {contact_id:?}"))),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

impl From<PlaybackError> for ApiError {
    fn from(e: PlaybackError) -> Self {
        match e {
            PlaybackError::NoContact(_) => ApiError::not_found(e.to_string()),
            PlaybackError::Gone { ref disposal, .. } => crate::api::gone(disposal, e.to_string()),
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

impl From<crate::audio::AudioError> for ApiError {
    fn from(e: crate::audio::AudioError) -> Self {
        use crate::audio::AudioError as E;
        match e {
            E::NoContact(_) => ApiError::not_found(e.to_string()),
            E::Gone { ref disposal, .. } => crate::api::gone(disposal, e.to_string()),
            E::NoAudio(_) => ApiError::new(StatusCode::NOT_FOUND, "no_audio", e.to_string()),
            E::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "audio_too_large",
                e.to_string(),
            ),
            E::Incomplete(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "incomplete_body", e.to_string())
            }
            E::Bad(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_audio", e.to_string())
            }
            E::UrlNotAllowed(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "url_not_allowed",
                e.to_string(),
            ),
            E::Fetch(_) => ApiError::new(StatusCode::BAD_GATEWAY, "fetch_failed", e.to_string()),
            E::Storage(ref reason) => {
                tracing::error!(reason, "audio storage failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "audio_storage_failed",
                    "the audio could not be stored or opened; the server log has the reason",
                )
            }
            E::Db(e) => ApiError::internal(&e),
        }
    }
}

impl From<crate::mux::DownloadError> for ApiError {
    fn from(e: crate::mux::DownloadError) -> Self {
        use crate::mux::{DownloadError as D, MuxError};
        match e {
            D::Video(e) => e.into(),
            D::Audio(e) => e.into(),
            D::Db(e) => ApiError::internal(&e),
            D::Mux(e @ MuxError::Unavailable(_)) => {
                tracing::error!(error = %e, "muxed download unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mux_unavailable",
                    "this server cannot mux the call audio into downloads: install ffmpeg or set [mux] ffmpeg; the video alone plays at video.mp4",
                )
            }
            D::Mux(e @ MuxError::Failed(_)) => {
                tracing::error!(error = %e, "mux failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "mux_failed",
                    "the download could not be muxed; the server log has the reason",
                )
            }
        }
    }
}
