//! The session cookie, the extractors that turn it into a signed-in
//! [`Supervisor`], and the `Origin` check for state-changing form posts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};

use crate::api::ApiError;
use crate::auth::{self, Supervisor};
use crate::directory::Permission;
use crate::state::AppState;

use super::pages;

/// The session cookie's name. The `__Host-` prefix makes browsers accept
/// it only with `Secure`, `Path=/` and no `Domain`, so no other host (a
/// sibling subdomain) and no plain-HTTP page can set or overwrite it.
pub const COOKIE: &str = "__Host-deskrec_session";

/// The `Set-Cookie` value for a new session. `HttpOnly` keeps it from
/// scripts, `Secure` from plain HTTP, `SameSite=Strict` from every
/// cross-site request (the first defence against CSRF; [`SameOrigin`] is
/// the second). No `Max-Age`: the browser forgets it at exit, the server
/// at expiry, whichever is first.
pub fn session_cookie(token: &str) -> String {
    Cookie::build((COOKIE, token))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn removal_cookie() -> String {
    let mut c = Cookie::build((COOKIE, ""))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    c.make_removal();
    c.to_string()
}

/// The session token a request carries, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// Why a request is not let through.
pub enum Denied {
    /// No valid session.
    SignedOut,
    /// Signed in, but the user's roles lack the permission.
    Forbidden(Permission),
    /// The session could not be checked.
    Failed(rusqlite::Error),
}

/// The signed-in user of a request, if they have `permission`.
pub async fn authorize(
    headers: &HeaderMap,
    state: &AppState,
    permission: Permission,
) -> Result<Supervisor, Denied> {
    let token = token(headers).ok_or(Denied::SignedOut)?;
    let user = state
        .db()
        .call(move |c| auth::session_user(c, &token))
        .await
        .map_err(Denied::Failed)?
        .ok_or(Denied::SignedOut)?;
    if user.may(permission) {
        Ok(user)
    } else {
        Err(Denied::Forbidden(permission))
    }
}

/// A page request by a user with `view_recordings`: others are sent to the
/// login page (signed out) or shown a 403 page (wrong role).
pub struct Viewer(pub Supervisor);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match authorize(&parts.headers, state, Permission::ViewRecordings).await {
            Ok(u) => Ok(Viewer(u)),
            Err(Denied::SignedOut) => Err(Redirect::to("/login").into_response()),
            Err(Denied::Forbidden(p)) => Err((
                StatusCode::FORBIDDEN,
                pages::message(
                    "Not allowed",
                    &format!("Your roles do not grant {}.", p.as_str()),
                ),
            )
                .into_response()),
            Err(Denied::Failed(e)) => Err(page_error(&e)),
        }
    }
}

/// An API request by a user with `view_recordings`; refusals are JSON
/// (401 signed out, 403 wrong role).
pub struct ApiViewer(pub Supervisor);

impl FromRequestParts<AppState> for ApiViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authorize(&parts.headers, state, Permission::ViewRecordings).await {
            Ok(u) => Ok(ApiViewer(u)),
            Err(Denied::SignedOut) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in first",
            )),
            Err(Denied::Forbidden(p)) => Err(forbidden(p)),
            Err(Denied::Failed(e)) => Err(ApiError::internal(&e)),
        }
    }
}

/// 403 for a signed-in user whose roles lack `p`.
pub fn forbidden(p: Permission) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("your roles do not grant {}", p.as_str()),
    )
}

/// A 500 page; the cause goes to the log only.
pub fn page_error(cause: &dyn std::fmt::Display) -> Response {
    tracing::error!(%cause, "page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(
            "Server error",
            "The server failed; the log has the details.",
        ),
    )
        .into_response()
}

/// A state-changing request from one of this server's own pages.
///
/// Browsers send `Origin` with every POST. It must be this server as the
/// browser reached it (`https://` + the `Host` header) or its configured
/// public URL; a missing or `null` origin is refused too, since every
/// browser that can use these pages sends one. Together with
/// `SameSite=Strict` this stops cross-site form posts, including login CSRF
/// (signing a victim into the attacker's account).
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if same_origin(&parts.headers, state) {
            Ok(SameOrigin)
        } else {
            let origin = parts.headers.get(header::ORIGIN);
            tracing::warn!(?origin, "form post from another origin refused");
            Err((
                StatusCode::FORBIDDEN,
                pages::message(
                    "Not allowed",
                    "This form was sent from another site; open the page again and retry.",
                ),
            )
                .into_response())
        }
    }
}

/// Whether the request's `Origin` is this server.
pub fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    host.is_some_and(|h| origin.strip_prefix("https://") == Some(h)) || origin == state.public_url()
}
