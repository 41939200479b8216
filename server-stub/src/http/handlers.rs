//! Request handlers: extract, call the service off the async workers, answer. No SQL here.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::rules::Program;
use protocol::v1::{RedeemRequest, SyncBatch};
use protocol::CustomerId;
use serde_json::json;

use super::extract::{date_param, query_params, AdminAuth, JsonBody, TillAuth};
use super::AppState;
use crate::error::ApiError;
use crate::service::{self, BlockRequest, IssueCardsRequest, ParentRequest};

fn path_param(p: Result<Path<String>, PathRejection>, name: &str) -> Result<String, ApiError> {
    p.map(|Path(s)| s)
        .map_err(|e| ApiError::bad_request("invalid_path", format!("{name}: {}", e.body_text()), Some(name)))
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "time": chrono::Local::now().fixed_offset().to_rfc3339() }))
}

pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!("no endpoint {}; see /openapi.json", uri.path()),
        None,
    )
}

pub async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept this method; see /openapi.json", uri.path()),
        None,
    )
}

pub async fn sync(
    State(st): State<AppState>,
    TillAuth(till): TillAuth,
    JsonBody(batch): JsonBody<SyncBatch>,
) -> Result<Response, ApiError> {
    let n = batch.items.len();
    let resp = st.blocking(move |repo| service::sync(repo, &till, &batch)).await?;
    tracing::debug!(items = n, "sync batch");
    Ok(Json(resp).into_response())
}

pub async fn quote(
    State(st): State<AppState>,
    _till: TillAuth,
    card: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let card = service::parse_card(&path_param(card, "card")?, "card")?;
    let q = st.blocking(move |repo| service::quote(repo, &card)).await?;
    Ok(Json(q).into_response())
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        })
}

pub async fn rules(State(st): State<AppState>, _till: TillAuth, headers: HeaderMap) -> Result<Response, ApiError> {
    let snap = st.blocking(service::rules_snapshot).await?;
    let etag = format!("\"{}\"", snap.version);
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok(([(header::ETAG, etag)], Json(snap)).into_response())
}

pub async fn changes(
    State(st): State<AppState>,
    _till: TillAuth,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_params(q, &["since", "limit"])?;
    let since = service::parse_cursor(q.get("since").map(String::as_str))?;
    let limit = service::parse_limit(
        q.get("limit").map(String::as_str),
        service::DEFAULT_FEED_LIMIT,
        service::MAX_FEED_LIMIT,
    )?;
    let feed = st.blocking(move |repo| service::changes(repo, since, limit)).await?;
    Ok(Json(feed).into_response())
}

pub async fn put_program(
    State(st): State<AppState>,
    _a: AdminAuth,
    JsonBody(program): JsonBody<Program>,
) -> Result<Response, ApiError> {
    let snap = st.blocking(move |repo| service::put_program(repo, &program)).await?;
    Ok(Json(snap).into_response())
}

pub async fn issue_cards(
    State(st): State<AppState>,
    _a: AdminAuth,
    JsonBody(req): JsonBody<IssueCardsRequest>,
) -> Result<Response, ApiError> {
    let out = st.blocking(move |repo| service::issue_cards(repo, &req)).await?;
    Ok(Json(out).into_response())
}

pub async fn block_card(
    State(st): State<AppState>,
    _a: AdminAuth,
    card: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<BlockRequest>,
) -> Result<Response, ApiError> {
    let card = service::parse_card(&path_param(card, "card")?, "card")?;
    let out = st
        .blocking(move |repo| service::block_card(repo, &card, &req.reason))
        .await?;
    Ok(Json(out).into_response())
}

pub async fn reissue_card(
    State(st): State<AppState>,
    _a: AdminAuth,
    card: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let card = service::parse_card(&path_param(card, "card")?, "card")?;
    let out = st.blocking(move |repo| service::reissue_card(repo, &card)).await?;
    Ok(Json(out).into_response())
}

pub async fn set_parent(
    State(st): State<AppState>,
    _a: AdminAuth,
    id: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<ParentRequest>,
) -> Result<Response, ApiError> {
    let id = CustomerId(path_param(id, "id")?);
    let out = st
        .blocking(move |repo| service::set_parent(repo, &id, req.parent.as_ref()))
        .await?;
    Ok(Json(out).into_response())
}

pub async fn customer(
    State(st): State<AppState>,
    _a: AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = CustomerId(path_param(id, "id")?);
    let out = st.blocking(move |repo| service::customer_view(repo, &id)).await?;
    Ok(Json(out).into_response())
}

pub async fn messages(
    State(st): State<AppState>,
    _a: AdminAuth,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_params(q, &["kind", "limit"])?;
    let kind = q.get("kind").cloned();
    let limit = service::parse_limit(q.get("limit").map(String::as_str), 1000, 1000)?;
    let out = st
        .blocking(move |repo| service::list_messages(repo, kind.as_deref(), limit))
        .await?;
    Ok(Json(json!({ "messages": out })).into_response())
}

pub async fn birthdays(
    State(st): State<AppState>,
    _a: AdminAuth,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_params(q, &["date"])?;
    let date = date_param(&q, "date")?.unwrap_or_else(|| chrono::Local::now().date_naive());
    let out = st.blocking(move |repo| service::birthday_messages(repo, date)).await?;
    Ok(Json(out).into_response())
}

pub async fn report(
    State(st): State<AppState>,
    _a: AdminAuth,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let name = path_param(name, "report")?;
    let q = query_params(q, &["from", "to", "limit", "format", "hours"])?;
    let hours = q
        .get("hours")
        .map(|h| {
            h.parse::<u32>().map_err(|_| {
                ApiError::bad_request("invalid_field", format!("hours={h:?}: a whole number"), Some("hours"))
            })
        })
        .transpose()?;
    let params = crate::reports::Params {
        hours,
        from: date_param(&q, "from")?,
        to: date_param(&q, "to")?,
        limit: q
            .get("limit")
            .map(|l| service::parse_limit(Some(l), 100, 100_000))
            .transpose()?,
    };
    let csv = match q.get("format").map(String::as_str) {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("format={other:?}: json or csv"),
                Some("format"),
            ))
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let (from, to) = (params.from, params.to);
    let table = st
        .blocking(move |repo| crate::reports::run(repo, &name, &params))
        .await?;
    if csv {
        Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], table.to_csv()?).into_response())
    } else {
        Ok(Json(table.to_json(from, to)).into_response())
    }
}

pub async fn redeem(
    State(st): State<AppState>,
    TillAuth(till): TillAuth,
    JsonBody(req): JsonBody<RedeemRequest>,
) -> Result<Response, ApiError> {
    let out = st
        .blocking(move |repo| crate::ledger::redeem(repo, &till, &req))
        .await?;
    Ok(Json(out).into_response())
}

pub async fn void(
    State(st): State<AppState>,
    TillAuth(till): TillAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_param(id, "id")?;
    let out = st.blocking(move |repo| crate::ledger::void(repo, &till, &id)).await?;
    Ok(Json(out).into_response())
}

pub async fn ledger(
    State(st): State<AppState>,
    _a: AdminAuth,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = CustomerId(path_param(id, "id")?);
    let q = query_params(q, &["before", "limit"])?;
    let before = crate::ledger::parse_before(q.get("before").map(String::as_str))?;
    let limit = service::parse_limit(q.get("limit").map(String::as_str), 100, crate::ledger::MAX_LEDGER_PAGE)?;
    let out = st
        .blocking(move |repo| crate::ledger::ledger_page(repo, &id, before, limit))
        .await?;
    Ok(Json(out).into_response())
}

pub async fn adjust(
    State(st): State<AppState>,
    _a: AdminAuth,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<crate::ledger::AdjustRequest>,
) -> Result<Response, ApiError> {
    let id = CustomerId(path_param(id, "id")?);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_field",
                "the Idempotency-Key header (1..=200 characters) is required",
                Some("Idempotency-Key"),
            )
        })?
        .to_string();
    let out = st
        .blocking(move |repo| crate::ledger::adjust(repo, &id, &key, &req))
        .await?;
    Ok(Json(out).into_response())
}

pub async fn ledger_check(State(st): State<AppState>, _a: AdminAuth) -> Result<Response, ApiError> {
    let out = st.blocking(crate::ledger::balance_check).await?;
    Ok(Json(json!({ "mismatches": out })).into_response())
}
