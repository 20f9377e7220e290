//! The admin routes of `compliance`: legal holds, erasure, and a retention
//! run on demand. Listed in [`admin::endpoints`](super::admin::endpoints)
//! with every other admin route, so they sit behind the admin token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, JsonBody};
use crate::audit::Actor;
use crate::compliance::hold::{self, Hold, NewHold};
use crate::compliance::retention::{self, RunReport};
use crate::compliance::{ComplianceError, DisposalRecord, erasure};
use crate::state::AppState;

impl From<ComplianceError> for ApiError {
    fn from(e: ComplianceError) -> Self {
        match e {
            ComplianceError::NoContact(_) | ComplianceError::NoHold(_) => {
                ApiError::not_found(e.to_string())
            }
            ComplianceError::Held { .. } => {
                ApiError::new(StatusCode::CONFLICT, "held", e.to_string())
            }
            ComplianceError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            ComplianceError::Store(_)
            | ComplianceError::Cache(_)
            | ComplianceError::Upload(_)
            | ComplianceError::Db(_) => ApiError::internal(&e),
        }
    }
}

/// 410 for content that was deleted: `expired` or `erased`, after the
/// scope check (a contact outside the scope is 404 before this). Also an
/// agent's upload of such a contact's recording.
pub(crate) fn gone(disposal: &DisposalRecord, message: String) -> ApiError {
    ApiError::new(StatusCode::GONE, disposal.state.code(), message)
}

/// A request that needs a reason: erasure, lifting a hold.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Reason {
    reason: String,
}

fn hold_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("hold id {raw:?} is not a number")))
}

/// `POST /holds`: sets a legal hold.
pub(super) async fn set_hold(
    State(s): State<AppState>,
    JsonBody(new): JsonBody<NewHold>,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    let hold = s
        .db()
        .call(move |c| {
            let tx = crate::db::write_tx(c)?;
            let hold = hold::set(&tx, &Actor::Admin, &new)?;
            tx.commit()?;
            Ok::<_, ComplianceError>(hold)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(hold)))
}

/// `GET /holds`: every hold, active first.
pub(super) async fn list_holds(State(s): State<AppState>) -> Result<Json<Vec<Hold>>, ApiError> {
    Ok(Json(s.db().call(|c| hold::list(c)).await?))
}

/// `DELETE /holds/{id}` with `{reason}`: lifts the hold; the row stays.
pub(super) async fn lift_hold(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Reason>,
) -> Result<Json<Hold>, ApiError> {
    let id = hold_id(&id)?;
    let hold = s
        .db()
        .call(move |c| {
            let tx = crate::db::write_tx(c)?;
            let hold = hold::lift(&tx, &Actor::Admin, id, &body.reason)?;
            tx.commit()?;
            Ok::<_, ComplianceError>(hold)
        })
        .await?;
    Ok(Json(hold))
}

/// `POST /contacts/{id}/erase` with `{reason}`: erases the contact's
/// recording and call audio.
pub(super) async fn erase_contact(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Reason>,
) -> Result<Json<erasure::Erasure>, ApiError> {
    Ok(Json(
        erasure::erase(&s, &id, Actor::Admin, &body.reason).await?,
    ))
}

/// `POST /retention/run`: runs the retention job now and answers what it
/// deleted.
pub(super) async fn run_retention(State(s): State<AppState>) -> Result<Json<RunReport>, ApiError> {
    Ok(Json(retention::run(&s).await?))
}
