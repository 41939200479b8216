//! One error type for every answer that is not 2xx: an HTTP status and the protocol's
//! [`ErrorBody`] (`code`, `message`, `field`). Client mistakes are 4xx; only server faults are 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::v1::ErrorBody;

use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                field: field.map(str::to_string),
            },
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, code, message, field)
    }
    pub fn unprocessable(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message, field)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message, Some("Authorization"))
    }
    pub fn forbidden(message: impl Into<String>, field: &str) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message, Some(field))
    }
    pub fn not_found(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, code, message, field)
    }
    pub fn conflict(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(StatusCode::CONFLICT, code, message, field)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message, None)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.body.code, self.body.message)?;
        if let Some(field) = &self.body.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "storage error");
        ApiError::internal(format!("storage error: {e}"))
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        StoreError::Db(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
