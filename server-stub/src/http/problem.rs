//! Errors on the wire: each [`ErrorKind`] maps to one HTTP status, and the answer is RFC 9457
//! problem details (`application/problem+json`, the protocol's `ErrorBody`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::v1::ErrorBody;

use crate::error::{ApiError, ErrorKind};

pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn body(e: &ApiError) -> ErrorBody {
    let st = status(e.kind);
    ErrorBody {
        type_uri: ErrorBody::type_for(&e.code),
        title: st.canonical_reason().unwrap_or("Error").to_string(),
        status: st.as_u16(),
        detail: e.message.clone(),
        code: e.code.clone(),
        field: e.field.clone(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let st = status(self.kind);
        let mut resp = (st, axum::Json(body(&self))).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.kind == ErrorKind::Unauthorized {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
