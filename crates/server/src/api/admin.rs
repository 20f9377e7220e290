//! The admin API under `/api/v1/admin`: users, roles, settings, devices,
//! enrollment tokens (one-time and fleet) and the audit log.
//!
//! Authentication is the admin bearer token generated on first start into
//! `data_dir/admin-token`; every route here sits behind [`require_admin`],
//! applied to the whole nested router so no route can be added without it.
//! Supervisor logins with per-user roles replace this in a later slice.
//!
//! The routes are listed once, in [`endpoints`], which both builds the
//! router and lets tests iterate every admin route.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router};
use deskrec_protocol::EnrollmentToken;
use serde::Deserialize;
use serde_json::json;

use super::compliance as c;
use super::{ApiError, ApiQuery, JsonBody, TextBody, bearer};
use crate::audit::{self, Actor, AuditEntry, AuditFilter};
use crate::contacts::{self, Contact, ContactImport, ContactImportReport, ContactQuery};
use crate::directory::{
    self, DirectoryError, ImportReport, NewUser, Permission, Role, Settings, User, UserPatch,
};
use crate::enrollment::{self, DEFAULT_TOKEN_TTL_SECONDS, Device};
use crate::fleet::{self, DEFAULT_FLEET_TTL_SECONDS, FleetToken, FleetTokenSpec, FleetTokenUse};
use crate::state::AppState;

/// One admin route: method, path (relative to `/api/v1/admin`, axum syntax)
/// and handler.
pub struct Endpoint {
    /// HTTP method.
    pub method: Method,
    /// Path under `/api/v1/admin`, with `{param}` placeholders.
    pub path: &'static str,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

/// Every admin route.
pub fn endpoints() -> Vec<Endpoint> {
    let e = |method: Method, path, handler| Endpoint {
        method,
        path,
        handler,
    };
    vec![
        e(Method::GET, "/users", get(list_users)),
        e(Method::POST, "/users", post(create_user)),
        e(Method::GET, "/users/{id}", get(get_user)),
        e(Method::PATCH, "/users/{id}", patch(update_user)),
        e(Method::PUT, "/users/{id}/password", put(set_password)),
        e(Method::POST, "/users/import", post(import_users)),
        e(Method::GET, "/roles", get(list_roles)),
        e(Method::PUT, "/roles/{name}", put(put_role)),
        e(Method::DELETE, "/roles/{name}", delete(delete_role)),
        e(Method::GET, "/settings", get(get_settings)),
        e(Method::PATCH, "/settings", patch(patch_settings)),
        e(Method::POST, "/enrollment-tokens", post(create_token)),
        e(Method::POST, "/fleet-tokens", post(create_fleet_token)),
        e(Method::GET, "/fleet-tokens", get(list_fleet_tokens)),
        e(
            Method::GET,
            "/fleet-tokens/{id}/uses",
            get(fleet_token_uses),
        ),
        e(
            Method::POST,
            "/fleet-tokens/{id}/revoke",
            post(revoke_fleet_token),
        ),
        e(Method::GET, "/devices", get(list_devices)),
        e(Method::POST, "/devices/{id}/revoke", post(revoke_device)),
        e(Method::GET, "/audit", get(list_audit)),
        e(Method::GET, "/audit/export", get(export_audit)),
        e(Method::POST, "/recording-key/rotate", post(rotate_key)),
        e(Method::POST, "/tls/next-key", post(prepare_tls_key)),
        e(Method::POST, "/tls/rotate", post(rotate_tls_key)),
        e(Method::POST, "/contacts", post(import_contacts)),
        e(Method::GET, "/contacts", get(list_contacts)),
        e(Method::GET, "/contacts/{id}", get(get_contact)),
        e(Method::PUT, "/contacts/{id}/audio", put(import_audio)),
        e(Method::GET, "/contacts/{id}/audio", get(get_audio)),
        e(
            Method::POST,
            "/contacts/{id}/audio/fetch",
            post(fetch_audio),
        ),
        e(Method::POST, "/contacts/{id}/erase", post(c::erase_contact)),
        e(Method::POST, "/holds", post(c::set_hold)),
        e(Method::GET, "/holds", get(c::list_holds)),
        e(Method::DELETE, "/holds/{id}", delete(c::lift_hold)),
        e(Method::POST, "/retention/run", post(c::run_retention)),
        e(Method::POST, "/pauses", post(super::pauses::pause)),
        e(Method::GET, "/pauses", get(super::pauses::list)),
        e(
            Method::POST,
            "/pauses/{id}/resume",
            post(super::pauses::resume),
        ),
    ]
}

/// The admin router, every route behind [`require_admin`].
pub fn router(state: AppState) -> Router<AppState> {
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, e| r.route(e.path, e.handler))
        // Its own fallback, so the auth layer covers unknown admin paths too
        // and they reveal nothing to an unauthenticated caller.
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .layer(middleware::from_fn_with_state(state, require_admin))
}

/// Lets the request through only with `Authorization: Bearer <admin token>`.
pub async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match bearer(req.headers()) {
        Some(t) if state.is_admin_token(t) => Ok(next.run(req).await),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Runs a directory change in one transaction with the admin as actor, then
/// notifies RTE connections.
async fn change<R: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection, &Actor) -> Result<R, DirectoryError> + Send + 'static,
) -> Result<R, ApiError> {
    let r = transact(state, f).await?;
    state.directory_changed();
    Ok(r)
}

/// Runs `f` in one transaction with the admin as actor.
async fn transact<R, E>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection, &Actor) -> Result<R, E> + Send + 'static,
) -> Result<R, ApiError>
where
    R: Send + 'static,
    E: From<rusqlite::Error> + Send + 'static,
    ApiError: From<E>,
{
    Ok(state
        .db()
        .call(move |c| {
            let tx = crate::db::write_tx(c)?;
            let r = f(&tx, &Actor::Admin)?;
            tx.commit()?;
            Ok::<_, E>(r)
        })
        .await?)
}

async fn read<R, E>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, E> + Send + 'static,
) -> Result<R, ApiError>
where
    R: Send + 'static,
    E: Send + 'static,
    ApiError: From<E>,
{
    Ok(state.db().call(move |c| f(c)).await?)
}

fn user_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("user id {raw:?} is not a number")))
}

async fn list_users(State(s): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(read(&s, directory::list_users).await?))
}

async fn create_user(
    State(s): State<AppState>,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let u = change(&s, move |c, a| directory::create_user(c, a, &new)).await?;
    Ok((StatusCode::CREATED, Json(u)))
}

async fn get_user(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = user_id(&id)?;
    Ok(Json(read(&s, move |c| directory::get_user(c, id)).await?))
}

async fn update_user(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<UserPatch>,
) -> Result<Json<User>, ApiError> {
    let id = user_id(&id)?;
    Ok(Json(
        change(&s, move |c, a| directory::update_user(c, a, id, &p)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// `PUT /users/{id}/password`: sets the supervisor password (hashed on the
/// blocking pool, outside the database lock) and ends the user's sessions.
async fn set_password(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    let phc = tokio::task::spawn_blocking(move || crate::auth::hash_password(&body.password))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    change(&s, move |c, a| {
        crate::auth::set_password_hash(c, a, id, &phc)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /users/import`: a JSON array of users, or CSV with
/// `Content-Type: text/csv`.
async fn import_users(
    State(s): State<AppState>,
    headers: HeaderMap,
    TextBody(body): TextBody,
) -> Result<Json<ImportReport>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let users: Vec<NewUser> = if content_type.starts_with("text/csv") {
        directory::parse_csv(&body)?
    } else if content_type.starts_with("application/json") {
        super::parse_json(&body)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or text/csv",
        ));
    };
    let report = change(&s, move |c, a| directory::import_users(c, a, &users)).await?;
    tracing::info!(?report, "users imported");
    Ok(Json(report))
}

async fn list_roles(State(s): State<AppState>) -> Result<Json<Vec<Role>>, ApiError> {
    Ok(Json(read(&s, directory::list_roles).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<Permission>,
}

async fn put_role(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Json<Role>, ApiError> {
    let (role, _) = change(&s, move |c, a| {
        directory::put_role(c, a, &name, &body.permissions)
    })
    .await?;
    Ok(Json(role))
}

async fn delete_role(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    change(&s, move |c, a| directory::delete_role(c, a, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_settings(State(s): State<AppState>) -> Result<Json<Settings>, ApiError> {
    Ok(Json(read(&s, directory::load_settings).await?))
}

async fn patch_settings(
    State(s): State<AppState>,
    JsonBody(p): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<Settings>, ApiError> {
    let (settings, _) = change(&s, move |c, a| directory::patch_settings(c, a, &p)).await?;
    Ok(Json(settings))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// Validity, seconds; default a week.
    ttl_seconds: Option<u64>,
}

/// `POST /enrollment-tokens`: body optional (`{"ttl_seconds": N}`).
async fn create_token(
    State(s): State<AppState>,
    TextBody(body): TextBody,
) -> Result<Response, ApiError> {
    // No body at all is the defaults; anything else must be JSON (a body
    // of white space is not).
    let body: TokenBody = if body.is_empty() {
        TokenBody::default()
    } else {
        super::parse_json(&body)?
    };
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECONDS);
    if ttl == 0 || ttl > 365 * 24 * 3600 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "ttl_seconds must be in [1, 31536000]",
        ));
    }
    let new = s
        .db()
        .call(move |c| enrollment::create_token(c, &Actor::Admin, ttl))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(token_answer(&s, &new.secret, new.expires_at)),
    )
        .into_response())
}

/// What a new token's creator gets: the compact token for the PC, and its
/// parts (for `msiexec ... SERVER_URL= SERVER_FINGERPRINT= ENROLL_TOKEN=`).
fn token_answer(s: &AppState, secret: &str, expires_at: i64) -> serde_json::Value {
    let compact = EnrollmentToken {
        url: s.public_url().to_owned(),
        token: secret.to_owned(),
        cert_sha256: s.tls().fingerprint.clone(),
        pin: Some(s.tls().pin.to_string()),
    }
    .encode();
    json!({
        "enrollment_token": compact,
        "token": secret,
        "url": s.public_url(),
        "pin": s.tls().pin.to_string(),
        "cert_sha256": s.tls().fingerprint,
        "expires_at": expires_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetTokenBody {
    name: String,
    max_uses: u32,
    /// Validity, seconds; default 30 days.
    ttl_seconds: Option<u64>,
    host_pattern: Option<String>,
}

/// `POST /fleet-tokens`: a token that enrolls up to `max_uses` PCs.
async fn create_fleet_token(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<FleetTokenBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let spec = FleetTokenSpec {
        name: body.name,
        max_uses: body.max_uses,
        ttl_seconds: body.ttl_seconds.unwrap_or(DEFAULT_FLEET_TTL_SECONDS),
        host_pattern: body.host_pattern,
    };
    let new = transact(&s, move |c, a| fleet::create(c, a, spec)).await?;
    let mut answer = token_answer(&s, &new.secret, new.expires_at);
    answer["id"] = json!(new.id);
    answer["name"] = json!(new.spec.name);
    answer["max_uses"] = json!(new.spec.max_uses);
    answer["host_pattern"] = json!(new.spec.host_pattern);
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn list_fleet_tokens(State(s): State<AppState>) -> Result<Json<Vec<FleetToken>>, ApiError> {
    Ok(Json(s.db().call(|c| fleet::list(c)).await?))
}

fn fleet_token_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("fleet token id {raw:?} is not a number")))
}

async fn fleet_token_uses(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<FleetTokenUse>>, ApiError> {
    let id = fleet_token_id(&id)?;
    Ok(Json(s.db().call(move |c| fleet::uses(c, id)).await?))
}

async fn revoke_fleet_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = fleet_token_id(&id)?;
    let changed = transact(&s, move |c, a| fleet::revoke(c, a, id)).await?;
    Ok(Json(json!({ "revoked": true, "changed": changed })))
}

async fn list_devices(State(s): State<AppState>) -> Result<Json<Vec<Device>>, ApiError> {
    Ok(Json(s.db().call(|c| enrollment::list_devices(c)).await?))
}

async fn revoke_device(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let changed = s
        .db()
        .call(move |c| enrollment::revoke(c, &Actor::Admin, &id))
        .await?;
    // Wake RTE sessions so the revoked device's connection closes now.
    s.directory_changed();
    Ok(Json(json!({ "revoked": true, "changed": changed })))
}

/// The filters of `GET /audit` and `GET /audit/export`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before_id: Option<i64>,
}

impl AuditQuery {
    fn parse(ApiQuery(q): ApiQuery<AuditQuery>) -> Result<(Self, AuditFilter), ApiError> {
        let time = |what, v: &str| {
            crate::web::queries::parse_time(what, v)
                .map_err(|e| ApiError::bad_request(e.to_string()))
        };
        let filter = AuditFilter {
            action: q.action.clone(),
            actor: q.actor.clone(),
            target: q.target.clone(),
            from: time("from", &q.from)?,
            to: time("to", &q.to)?,
            before_id: q.before_id,
        };
        Ok((q, filter))
    }
}

/// Most rows in one audit export; narrow the time range for more.
pub const MAX_AUDIT_EXPORT: u32 = 1_000_000;

async fn list_audit(
    State(s): State<AppState>,
    q: ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let (q, filter) = AuditQuery::parse(q)?;
    let limit = super::page_limit(q.limit, 100, 1000)?;
    Ok(Json(
        s.db().call(move |c| audit::list(c, &filter, limit)).await?,
    ))
}

/// `GET /audit/export`: the rows the filters match, oldest first, as CSV
/// (`id,at,actor,action,target,detail`, times in RFC 3339, the detail as
/// JSON), for an auditor's spreadsheet or an archive.
async fn export_audit(
    State(s): State<AppState>,
    q: ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let (q, filter) = AuditQuery::parse(q)?;
    let limit = super::page_limit(q.limit, MAX_AUDIT_EXPORT, MAX_AUDIT_EXPORT)?;
    let mut rows = s.db().call(move |c| audit::list(c, &filter, limit)).await?;
    rows.reverse();
    let csv = tokio::task::spawn_blocking(move || audit::to_csv(&rows))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"deskrec-audit.csv\"",
            ),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        csv,
    )
        .into_response())
}

/// `POST /contacts`: contacts from the ACD and/or a new watermark; queued
/// for the devices in one transaction, then the connected ones are woken.
async fn import_contacts(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<ContactImport>,
) -> Result<Json<ContactImportReport>, ApiError> {
    let report = s
        .db()
        .call(move |c| {
            let tx = crate::db::write_tx(c)?;
            let r = contacts::import(&tx, &Actor::Admin, &req)?;
            tx.commit()?;
            Ok::<_, contacts::ContactError>(r)
        })
        .await?;
    s.metrics()
        .contacts_imported
        .inc_by((report.created + report.updated) as u64);
    for device in &report.devices {
        s.hub().wake(device);
    }
    s.watermark_changed(report.watermark);
    tracing::info!(
        created = report.created,
        updated = report.updated,
        deliveries = report.deliveries,
        "contacts imported"
    );
    Ok(Json(report))
}

async fn list_contacts(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> Result<Json<Vec<Contact>>, ApiError> {
    super::page_limit(q.limit, contacts::LIST_DEFAULT, contacts::LIST_MAX)?;
    Ok(Json(read(&s, move |c| contacts::list(c, &q)).await?))
}

async fn get_contact(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(read(&s, move |c| contacts::get(c, &id)).await?))
}

/// `POST /tls/next-key`: prepares the server's next TLS key (once) and
/// announces its pin to agents, signed with the current key.
async fn prepare_tls_key(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    tls_change(s, "tls.next_key", |tls| tls.prepare_next_key()).await
}

/// `POST /tls/rotate`: the announced next key is served from the next
/// start on. Agents that have read the announcement follow; the others
/// must be enrolled again, so rotate once the fleet has connected.
async fn rotate_tls_key(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    tls_change(s, "tls.rotate", |tls| tls.rotate()).await
}

/// Runs a change of the TLS key off the async threads, audits it, and
/// answers the current and next pins.
async fn tls_change(
    s: AppState,
    action: &'static str,
    change: impl FnOnce(&crate::tls::TlsIdentity) -> Result<deskrec_client::Pin, crate::tls::TlsError>
    + Send
    + 'static,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::tls::TlsError;
    let state = s.clone();
    let next = tokio::task::spawn_blocking(move || change(state.tls()))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| match e {
            TlsError::Configured | TlsError::NoNextKey => {
                ApiError::new(StatusCode::CONFLICT, "tls_key_unchanged", e.to_string())
            }
            other => ApiError::internal(&other),
        })?;
    let detail = json!({ "current_pin": s.tls().pin.to_string(), "next_pin": next.to_string() });
    let audit_detail = detail.clone();
    s.db()
        .call(move |c| audit::record(c, &Actor::Admin, action, "tls-key", audit_detail))
        .await?;
    // Connected agents get the announcement in a new policy at once.
    s.directory_changed();
    Ok(Json(detail))
}

/// `POST /recording-key/rotate`: a new recording key for new segments; the
/// old one is kept so existing recordings stay readable. Every connected
/// agent gets a policy with the new key at once.
async fn rotate_key(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let state = s.clone();
    let (old, new) = tokio::task::spawn_blocking(move || state.rotate_recording_key())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    let detail = json!({ "old_key_id": old, "new_key_id": new });
    let audit_detail = detail.clone();
    s.db()
        .call(move |c| {
            audit::record(
                c,
                &Actor::Admin,
                "recording_key.rotate",
                "recording-key",
                audit_detail,
            )
        })
        .await?;
    s.directory_changed();
    Ok(Json(detail))
}

/// `PUT /contacts/{id}/audio`: the contact's call audio, the body the file
/// (WAV, MP3, M4A or Ogg/Opus; see `audio`).
async fn import_audio(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let imported = crate::audio::import(&s, &id, declared, body).await?;
    let status = if imported.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(imported)).into_response())
}

/// Body of `POST /contacts/{id}/audio/fetch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchAudio {
    /// An HTTPS URL on a host `[audio_fetch] hosts` names.
    url: String,
}

/// `POST /contacts/{id}/audio/fetch`: the server fetches the contact's call
/// audio from the URL and imports it as `PUT` does.
async fn fetch_audio(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<FetchAudio>,
) -> Result<Response, ApiError> {
    let imported = crate::audio::import_url(&s, &id, &req.url).await?;
    let status = if imported.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(imported)).into_response())
}

/// `GET /contacts/{id}/audio`: what the contact's stored audio is.
async fn get_audio(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::audio::StoredAudio>, ApiError> {
    let c = id.clone();
    s.db()
        .call(move |conn| crate::audio::stored(conn, crate::scope::Scope::All, &c))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("contact {id:?} has no audio")))
}
