//! The admin routes of `pause`: the contact centre's systems pause and
//! resume recording on an agent's PC, and read the pauses the PCs
//! reported. Listed in [`admin::endpoints`](super::admin::endpoints), so
//! they sit behind the admin token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, JsonBody};
use crate::pause::{self, PauseAnswer, PauseError, PauseRequest, PauseRow};
use crate::state::AppState;

impl From<PauseError> for ApiError {
    fn from(e: PauseError) -> Self {
        match e {
            PauseError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            PauseError::NotFound(m) => ApiError::not_found(m),
            PauseError::NotConnected(m) => ApiError::new(StatusCode::CONFLICT, "not_connected", m),
            PauseError::Db(_) => ApiError::internal(&e),
        }
    }
}

/// `POST /pauses`: pause recording on a login's PCs or on one device.
pub(super) async fn pause(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<PauseRequest>,
) -> Result<(StatusCode, Json<PauseAnswer>), ApiError> {
    let hub = s.hub().clone();
    let answer = s
        .db()
        .call(move |c| {
            let max = crate::directory::load_settings(c)
                .map_err(|e| PauseError::Invalid(e.to_string()))?
                .pause
                .max_seconds;
            pause::request(c, &hub, &req, max, deskrec_vault::now_micros())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Who asks for a resume, for the audit.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ResumeBody {
    #[serde(default)]
    requested_by: Option<String>,
}

/// `POST /pauses/{id}/resume` with `{}` or `{requested_by}`: end an API
/// pause now.
pub(super) async fn resume(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ResumeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hub = s.hub().clone();
    let by = body.requested_by.unwrap_or_else(|| "api".into());
    let pause_id = id.clone();
    let devices = s
        .db()
        .call(move |c| pause::resume(c, &hub, &pause_id, &by))
        .await?;
    Ok(Json(
        serde_json::json!({ "pause_id": id, "devices": devices }),
    ))
}

/// `GET /pauses?windows_login=&limit=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseQuery {
    #[serde(default)]
    windows_login: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /pauses`: the newest pauses reported or requested.
pub(super) async fn list(
    State(s): State<AppState>,
    super::ApiQuery(q): super::ApiQuery<PauseQuery>,
) -> Result<Json<Vec<PauseRow>>, ApiError> {
    let limit = super::page_limit(q.limit, 100, 1000)?;
    let rows = s
        .db()
        .call(move |c| pause::list(c, q.windows_login.as_deref(), limit))
        .await?;
    Ok(Json(rows))
}
