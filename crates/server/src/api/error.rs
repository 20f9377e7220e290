//! The API's one error type.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use deskrec_protocol::ErrorBody;

use crate::auth::PasswordError;
use crate::contacts::ContactError;
use crate::directory::DirectoryError;
use crate::enrollment::EnrollError;
use crate::fleet::FleetError;

/// An error answer: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code for clients.
    pub code: &'static str,
    /// Explanation for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500; the cause is logged here, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::NotFound(m) => Self::not_found(format!("{m} not found")),
            DirectoryError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            DirectoryError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            DirectoryError::Db(e) => Self::internal(&e),
        }
    }
}

impl From<ContactError> for ApiError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::NotFound(_) => Self::not_found(e.to_string()),
            ContactError::Db(e) => Self::internal(&e),
            e => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Hash(_) => Self::internal(&e),
            e => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()),
        }
    }
}

impl From<EnrollError> for ApiError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::InvalidToken => {
                Self::new(StatusCode::FORBIDDEN, "invalid_token", e.to_string())
            }
            EnrollError::FleetRefused { reason, .. } => {
                Self::new(StatusCode::FORBIDDEN, reason.code(), e.to_string())
            }
            EnrollError::BadKey(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_key",
                e.to_string(),
            ),
            EnrollError::NoSuchDevice(_) => Self::not_found(e.to_string()),
            EnrollError::Db(e) => Self::internal(&e),
        }
    }
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            FleetError::NotFound(_) => Self::not_found(e.to_string()),
            FleetError::Db(e) => Self::internal(&e),
        }
    }
}
