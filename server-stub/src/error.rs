//! The server's error types, free of HTTP: [`StoreError`] (storage) and [`ApiError`], what a
//! request is answered with when it does not succeed — a kind (client mistake, conflict, server
//! fault …), a machine-readable `code`, a message and the `field` that is wrong. The HTTP layer
//! (`http::problem`) maps the kind to a status and writes RFC 9457 problem details.

/// What went wrong, in domain terms; `http::problem` maps each kind to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request (syntax, bad parameter).
    BadRequest,
    /// Missing, unknown or revoked credentials.
    Unauthorized,
    /// Authenticated, but not allowed (another store's or till's data).
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// Conflicts with the current state.
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Well-formed but of the wrong shape or value.
    Unprocessable,
    /// Too many attempts; try again later.
    TooManyRequests,
    /// Not ready (no program loaded).
    Unavailable,
    /// A server fault.
    Internal,
}

/// Storage failures (SQLite, corrupt rows). A request meeting one is answered as a server fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Pg(#[from] postgres::Error),
    #[error("stored data is corrupt ({what}): {source}")]
    Corrupt { what: String, source: serde_json::Error },
    #[error("{0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        ApiError {
            kind,
            code: code.into(),
            message: message.into(),
            field: field.map(str::to_string),
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(ErrorKind::BadRequest, code, message, field)
    }
    pub fn unprocessable(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(ErrorKind::Unprocessable, code, message, field)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::Unauthorized, "unauthorized", message, Some("Authorization"))
    }
    pub fn forbidden(message: impl Into<String>, field: &str) -> ApiError {
        Self::new(ErrorKind::Forbidden, "forbidden", message, Some(field))
    }
    pub fn not_found(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(ErrorKind::NotFound, code, message, field)
    }
    pub fn conflict(code: &str, message: impl Into<String>, field: Option<&str>) -> ApiError {
        Self::new(ErrorKind::Conflict, code, message, field)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::Internal, "internal", message, None)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            // A conflict with a concurrent transaction: the backend runs the unit of work again.
            StoreError::Pg(p)
                if p.code()
                    .is_some_and(|c| c.code().starts_with("40") || c.code() == "23505") =>
            {
                tracing::debug!(error = %e, "transaction conflict")
            }
            _ => tracing::error!(error = %e, "storage error"),
        }
        ApiError::internal(format!("storage error: {e}"))
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        StoreError::Db(e).into()
    }
}
