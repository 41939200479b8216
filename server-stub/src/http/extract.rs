//! Extractors whose rejections are `ApiError`s (answered as problem details): JSON bodies (with the failing
//! field's path), till and admin bearer auth, query strings (unknown parameters are refused).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::state::AppState;
use crate::error::{ApiError, ErrorKind};
use crate::store::TillRow;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Parse JSON with the path of the failing field: syntax errors are 400 `malformed_json`
/// (with line and column), well-formed JSON of the wrong shape is 422 `invalid_field`.
///
/// JSON does not tell `189` from `189.0` (JSON Schema calls both integers): a body refused only
/// because an integer field holds an integral float is read again with those written as integers.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match parse_strict(bytes) {
        Err(e) if e.code == "invalid_field" => {
            let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                return Err(e);
            };
            if !integral_floats(&mut v) {
                return Err(e);
            }
            serde_json::from_value(v).map_err(|_| e)
        }
        other => other,
    }
}

/// Rewrites integral floats (`189.0`) as integers; true if any was rewritten.
fn integral_floats(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                *v = Value::from(f as i64);
                true
            } else {
                false
            }
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, x| integral_floats(x) | c),
        Value::Object(m) => m.values_mut().fold(false, |c, x| integral_floats(x) | c),
        _ => false,
    }
}

fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(inner, &path)
    })?;
    de.end().map_err(|e| json_error(e, "."))?;
    Ok(value)
}

fn json_error(e: serde_json::Error, path: &str) -> ApiError {
    use serde_json::error::Category;
    let field = (path != "." && !path.is_empty()).then_some(path);
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("malformed JSON at line {}, column {}: {e}", e.line(), e.column()),
            None,
        ),
        Category::Data => {
            let msg = match field {
                Some(f) => format!("{f}: {e}"),
                None => e.to_string(),
            };
            // serde names an unknown field in the message; put it in `field` too.
            // serde_path_to_error's path already ends with it for plain structs, not through
            // `#[serde(flatten)]` (sync items).
            let unknown = e
                .to_string()
                .strip_prefix("unknown field `")
                .and_then(|s| s.split('`').next())
                .map(|u| match field {
                    Some(f) if f == u || f.ends_with(&format!(".{u}")) => f.to_string(),
                    Some(f) => format!("{f}.{u}"),
                    None => u.to_string(),
                });
            ApiError::unprocessable(
                if unknown.is_some() {
                    "unknown_field"
                } else {
                    "invalid_field"
                },
                msg,
                unknown.as_deref().or(field),
            )
        }
    }
}

/// The request-body schemas of the served OpenAPI document, compiled. A body serde accepts is
/// also checked against its published schema, so the server never takes what its contract calls
/// invalid (a decimal sent as a JSON number, an integer out of its documented range …).
pub struct Contract {
    validators: HashMap<String, jsonschema::Validator>,
}

impl Contract {
    /// Compiles the schemas named `names` from the document's components.
    pub fn new(doc: &serde_json::Value, names: &[&str]) -> Contract {
        let validators = names
            .iter()
            .map(|name| {
                let schema = serde_json::json!({
                    "$ref": format!("#/components/schemas/{name}"),
                    "components": doc["components"],
                });
                let v = jsonschema::draft202012::new(&schema)
                    .unwrap_or_else(|e| panic!("schema {name} of the OpenAPI document does not compile: {e}"));
                (name.to_string(), v)
            })
            .collect();
        Contract { validators }
    }

    /// The first violation of `name`'s schema, as a 422 naming the field. A batch's `version` is
    /// left to the service, which answers version skew with its own 400 `unsupported_version`.
    pub fn check(&self, name: &str, body: &serde_json::Value) -> Result<(), ApiError> {
        let Some(v) = self.validators.get(name) else {
            return Ok(());
        };
        // The yes/no check stops at the first failure and builds no error: a valid body (the
        // usual case) costs a fraction of collecting errors; only an invalid one is walked again.
        if v.is_valid(body) {
            return Ok(());
        }
        let left_to_service =
            |e: &jsonschema::ValidationError| name == "SyncBatch" && e.instance_path().as_str() == "/version";
        match v.iter_errors(body).find(|e| !left_to_service(e)) {
            None => Ok(()),
            Some(e) => {
                let field = field_of_pointer(e.instance_path().as_str());
                let msg = match &field {
                    Some(f) => format!("{f}: {e}"),
                    None => e.to_string(),
                };
                Err(ApiError::unprocessable("invalid_field", msg, field.as_deref()))
            }
        }
    }
}

/// `/items/0/body/total` → `items[0].body.total`.
fn field_of_pointer(pointer: &str) -> Option<String> {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `Json<T>` whose rejections are `ApiError`s; bodies over [`BODY_LIMIT`] are 413. The body must
/// also match `T`'s schema in the [`Contract`] the router carries.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + utoipa::ToSchema> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let contract = req.extensions().get::<std::sync::Arc<Contract>>().cloned();
        let bytes = read_json_bytes(req, state).await?;
        Ok(JsonBody(parse_checked(&bytes, contract.as_deref())?))
    }
}

/// `T` from a request body: [`parse_json`], then `T`'s schema in the contract (when there is one).
pub fn parse_checked<T: DeserializeOwned + utoipa::ToSchema>(
    bytes: &[u8],
    contract: Option<&Contract>,
) -> Result<T, ApiError> {
    let value: T = parse_json(bytes)?;
    if let Some(contract) = contract {
        let raw: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request("malformed_json", e.to_string(), None))?;
        contract.check(&T::name(), &raw)?;
    }
    Ok(value)
}

/// The body of a JSON request: 415 for another Content-Type, 413 over [`BODY_LIMIT`].
pub async fn read_json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                format!("Content-Type {ct:?}: send application/json"),
                Some("Content-Type"),
            ));
        }
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                "body_too_large",
                format!("request body is over the {BODY_LIMIT}-byte limit; send smaller batches"),
                None,
            )
        } else {
            ApiError::bad_request("unreadable_body", e.body_text(), None)
        }
    })
}

fn bearer(parts: &Parts) -> Result<String, ApiError> {
    let h = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let s = h
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    let token = s
        .strip_prefix("Bearer ")
        .or_else(|| s.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?;
    Ok(token.trim().to_string())
}

/// An authenticated till (token known and not revoked).
pub struct TillAuth(pub TillRow);

impl FromRequestParts<AppState> for TillAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let till = state
            .blocking(move |repo| crate::service::authenticate(repo, &token))
            .await?;
        Ok(TillAuth(till))
    }
}

/// The admin token holder.
pub struct AdminAuth;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::unauthorized(
                "admin endpoints are disabled: start the server with --admin-token or SERVER_STUB_ADMIN_TOKEN",
            ));
        };
        let token = bearer(parts)?;
        if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            Ok(AdminAuth)
        } else {
            Err(ApiError::unauthorized("wrong admin token"))
        }
    }
}

/// Query parameters, refusing any not in `allowed` (a typo is an error naming it).
pub fn query_params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(map) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text(), None))?;
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("unknown query parameter {k:?}; allowed: {}", allowed.join(", ")),
            Some(k),
        ));
    }
    Ok(map)
}

pub fn date_param(map: &HashMap<String, String>, name: &str) -> Result<Option<chrono::NaiveDate>, ApiError> {
    map.get(name)
        .map(|s| {
            s.parse::<chrono::NaiveDate>().map_err(|e| {
                ApiError::bad_request(
                    "invalid_field",
                    format!("{name}={s:?}: expected YYYY-MM-DD ({e})"),
                    Some(name),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::v1::SyncBatch;

    #[test]
    fn syntax_errors_are_400_with_position() {
        let e = parse_json::<SyncBatch>(b"{\"version\": ").unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::BadRequest, "malformed_json"));
        assert!(e.message.contains("line 1"), "{}", e.message);
        let e = parse_json::<SyncBatch>(br#"{"version":"v1","store_id":"S","till_id":"T","items":[]} trailing"#)
            .unwrap_err();
        assert_eq!(e.code, "malformed_json");
    }

    #[test]
    fn shape_errors_are_422_naming_the_field() {
        let e = parse_json::<SyncBatch>(br#"{"version":"v1","store_id":"S","till_id":"T","items":[],"extra":1}"#)
            .unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.field.as_deref()),
            (ErrorKind::Unprocessable, "unknown_field", Some("extra"))
        );
        let e = parse_json::<SyncBatch>(br#"{"version":"v1","store_id":"S","till_id":7,"items":[]}"#).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.field.as_deref()),
            ("invalid_field", Some("till_id"))
        );
        let e = parse_json::<SyncBatch>(br#"{"version":"v1","store_id":"S","till_id":"T"}"#).unwrap_err();
        assert!(e.message.contains("missing field `items`"), "{}", e.message);
    }

    #[test]
    fn json_pointers_become_field_paths() {
        assert_eq!(
            field_of_pointer("/items/0/body/total").as_deref(),
            Some("items[0].body.total")
        );
        assert_eq!(field_of_pointer(""), None);
    }

    #[test]
    fn the_contract_refuses_what_serde_would_take() {
        let doc = crate::http::openapi_document();
        let c = Contract::new(&doc, &["Program"]);
        let mut program = crate::http::samples("Program").remove(0);
        assert!(c.check("Program", &program).is_ok());
        // serde reads a decimal from a JSON number; the contract says string.
        program["tiers"][0]["threshold"] = serde_json::json!(0);
        serde_json::from_value::<protocol::rules::Program>(program.clone()).unwrap();
        let e = c.check("Program", &program).unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.field.as_deref()),
            (ErrorKind::Unprocessable, "invalid_field", Some("tiers[0].threshold"))
        );
    }

    #[test]
    fn admin_token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
