//! Request handlers: extract, call the service off the async workers, answer. No SQL here.
//! Each handler's `#[utoipa::path]` is its entry in the OpenAPI document (`http/doc.rs`); the
//! router mounts the same functions, so the two cannot drift apart.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::rules::{Program, RulesSnapshot};
use protocol::v1::{
    Card, ChangeFeed, CustomerChange, ErrorBody, Health, Quote, RedeemAnswer, RedeemRequest, SyncBatch, SyncResponse,
};
use protocol::CustomerId;

use super::extract::{date_param, query_params, AdminAuth, JsonBody, TillAuth};
use super::state::AppState;
use super::syncbody::SyncBody;
use crate::error::{ApiError, ErrorKind};
use crate::service::{
    self, BirthdayRun, BlockRequest, IssueCardsRequest, IssueCardsResponse, ParentRequest, ReissueResponse,
};
use crate::store::Message;

const PROBLEM: &str = super::problem::PROBLEM_JSON;

/// `GET /admin/messages` answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Messages {
    pub messages: Vec<Message>,
}

/// `GET /admin/reports/{report}` as JSON: one object per row, keyed by column name.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Report {
    pub report: String,
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub rows: Vec<HashMap<String, serde_json::Value>>,
}

fn path_param(p: Result<Path<String>, PathRejection>, name: &str) -> Result<String, ApiError> {
    p.map(|Path(s)| s)
        .map_err(|e| ApiError::bad_request("invalid_path", format!("{name}: {}", e.body_text()), Some(name)))
}

#[utoipa::path(get, path = "/healthz", security(()), tag = "till",
    summary = "Liveness, server clock (the till's doctor uses `time` for clock skew) and server identity",
    responses((status = 200, description = "server is up", body = Health)))]
pub async fn healthz(State(st): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        time: chrono::Local::now().fixed_offset(),
        server_id: st.server_id.as_deref().map(str::to_string),
    })
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
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        format!("{} does not accept this method; see /openapi.json", uri.path()),
        None,
    )
}

#[utoipa::path(post, path = "/v1/sync", security(("tillToken" = [])), tag = "till",
    summary = "Ingest a batch of receipts, registrations and migration pairings; one ack per item",
    description = "Dedupe is permanent: same item id + same payload = duplicate, same id + different payload = \
                   rejected (conflict). Items are independent: a rejected item leaves no trace and does not block \
                   the others.",
    request_body = SyncBatch,
    responses(
        (status = 200, description = "one ack per item, in order (applied / duplicate / rejected / retry)", body = SyncResponse),
        (status = 400, description = "malformed JSON or unsupported batch version", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing, unknown or revoked token", body = ErrorBody, content_type = PROBLEM),
        (status = 403, description = "batch or item for another store or till than the token's", body = ErrorBody, content_type = PROBLEM),
        (status = 413, description = "body over 1 MiB or more than 1000 items", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn sync(State(st): State<AppState>, TillAuth(till): TillAuth, body: SyncBody) -> Result<Response, ApiError> {
    let n = body.batch.items.len();
    let pending = st.metrics.pending();
    let resp = st
        .blocking(move |repo| service::sync_texts(repo, &till, &body.batch, &body.texts()))
        .await?;
    drop(pending);
    st.metrics.sync_answered(&resp);
    tracing::debug!(items = n, "sync batch");
    Ok(Json(resp).into_response())
}

#[utoipa::path(get, path = "/v1/cards/{card}/quote", security(("tillToken" = [])), tag = "till",
    summary = "What the cashier's popup shows for a card",
    description = "kind customer / unknown_card / blocked (with reason) / replaced (with the new card and its quote; \
                   the balance moved there). All are 200.",
    params(("card" = String, Path, pattern = r"^[-0-9 '=/._ß]*[0-9][-0-9 '=/._ß]*$", description = "card number (digits; separators are ignored)")),
    responses(
        (status = 200, description = "quote (source: online)", body = Quote),
        (status = 400, description = "not a card number", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing, unknown or revoked token", body = ErrorBody, content_type = PROBLEM),
        (status = 503, description = "no program loaded yet", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(get, path = "/v1/rules", security(("tillToken" = [])), tag = "till",
    summary = "The current rules snapshot",
    description = "ETag: \"<version>\"; If-None-Match with the current ETag answers 304.",
    params(("If-None-Match" = Option<String>, Header, description = "ETag of the snapshot the till holds")),
    responses(
        (status = 200, description = "rules snapshot", body = RulesSnapshot,
            headers(("ETag" = String, description = "\"<version>\""))),
        (status = 304, description = "the till's snapshot is current", headers(("ETag" = String))),
        (status = 401, description = "missing, unknown or revoked token", body = ErrorBody, content_type = PROBLEM),
        (status = 503, description = "no program loaded yet", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn rules(State(st): State<AppState>, _till: TillAuth, headers: HeaderMap) -> Result<Response, ApiError> {
    let snap = st.blocking(service::rules_snapshot).await?;
    let etag = format!("\"{}\"", snap.version);
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok(([(header::ETAG, etag)], Json(snap)).into_response())
}

#[utoipa::path(get, path = "/v1/changes", security(("tillToken" = [])), tag = "till",
    summary = "Customers (with cards and account state) changed after `since`",
    description = "Cursor = the server's monotonically increasing change sequence. No `since` = from the \
                   beginning. A sub-card holder carries the parent account's state.",
    params(
        ("since" = Option<String>, Query, pattern = "^[0-9]{0,18}$", description = "cursor from the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "page size, default 500"),
    ),
    responses(
        (status = 200, description = "a page of changes", body = ChangeFeed),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing, unknown or revoked token", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(put, path = "/admin/program", security(("adminToken" = [])), tag = "admin",
    summary = "Replace the program (rules); the snapshot version goes up by one",
    request_body = Program,
    responses(
        (status = 200, description = "the new snapshot", body = RulesSnapshot),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn put_program(
    State(st): State<AppState>,
    _a: AdminAuth,
    JsonBody(program): JsonBody<Program>,
) -> Result<Response, ApiError> {
    let snap = st.blocking(move |repo| service::put_program(repo, &program)).await?;
    Ok(Json(snap).into_response())
}

#[utoipa::path(post, path = "/admin/cards/batch", security(("adminToken" = [])), tag = "admin",
    summary = "Issue a batch of non-personalised card numbers (program prefix, Luhn digit if the policy says so)",
    request_body = IssueCardsRequest,
    responses(
        (status = 200, description = "the new numbers", body = IssueCardsResponse),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
        (status = 503, description = "no program loaded yet", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn issue_cards(
    State(st): State<AppState>,
    _a: AdminAuth,
    JsonBody(req): JsonBody<IssueCardsRequest>,
) -> Result<Response, ApiError> {
    let out = st.blocking(move |repo| service::issue_cards(repo, &req)).await?;
    Ok(Json(out).into_response())
}

#[utoipa::path(post, path = "/admin/cards/{card}/block", security(("adminToken" = [])), tag = "admin",
    summary = "Block a card (lost, abuse, membership ended): it neither earns nor redeems",
    params(("card" = String, Path, pattern = r"^[-0-9 '=/._ß]*[0-9][-0-9 '=/._ß]*$", description = "card number (digits; separators are ignored)")),
    request_body = BlockRequest,
    responses(
        (status = 200, description = "the card", body = Card),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown card", body = ErrorBody, content_type = PROBLEM),
        (status = 409, description = "conflicts with the current state", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(post, path = "/admin/cards/{card}/reissue", security(("adminToken" = [])), tag = "admin",
    summary = "Reissue: a new number for the same account (balance moves), the old card is marked replaced",
    params(("card" = String, Path, pattern = r"^[-0-9 '=/._ß]*[0-9][-0-9 '=/._ß]*$", description = "card number (digits; separators are ignored)")),
    responses(
        (status = 200, description = "old and new card", body = ReissueResponse),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown card", body = ErrorBody, content_type = PROBLEM),
        (status = 409, description = "conflicts with the current state", body = ErrorBody, content_type = PROBLEM),
        (status = 503, description = "no program loaded yet", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn reissue_card(
    State(st): State<AppState>,
    _a: AdminAuth,
    card: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let card = service::parse_card(&path_param(card, "card")?, "card")?;
    let out = st.blocking(move |repo| service::reissue_card(repo, &card)).await?;
    Ok(Json(out).into_response())
}

#[utoipa::path(post, path = "/admin/customers/{id}/parent", security(("adminToken" = [])), tag = "admin",
    summary = "Make a customer a sub-card holder (family, company) earning into the parent account; null detaches",
    params(("id" = String, Path, description = "customer id")),
    request_body = ParentRequest,
    responses(
        (status = 200, description = "the customer", body = CustomerChange),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown customer", body = ErrorBody, content_type = PROBLEM),
        (status = 409, description = "conflicts with the current state", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(get, path = "/admin/customers/{id}", security(("adminToken" = [])), tag = "admin",
    summary = "A customer with cards and account state",
    params(("id" = String, Path, description = "customer id")),
    responses(
        (status = 200, description = "the customer", body = CustomerChange),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown customer", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn customer(
    State(st): State<AppState>,
    _a: AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = CustomerId(path_param(id, "id")?);
    let out = st.blocking(move |repo| service::customer_view(repo, &id)).await?;
    Ok(Json(out).into_response())
}

#[utoipa::path(get, path = "/admin/messages", security(("adminToken" = [])), tag = "admin",
    summary = "The message outbox (welcome, tier_upgrade, birthday), one per cause, oldest first",
    params(
        ("kind" = Option<String>, Query, description = "welcome | tier_upgrade | birthday"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "default 1000"),
    ),
    responses(
        (status = 200, description = "messages", body = Messages),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
    ))]
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
    Ok(Json(Messages { messages: out }).into_response())
}

#[utoipa::path(post, path = "/admin/messages/birthdays", security(("adminToken" = [])), tag = "admin",
    summary = "Record birthday messages for `date` (default today); once per customer per year",
    params(("date" = Option<chrono::NaiveDate>, Query, description = "YYYY-MM-DD")),
    responses(
        (status = 200, description = "how many celebrate and how many were recorded now", body = BirthdayRun),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(get, path = "/admin/reports/{report}", security(("adminToken" = [])), tag = "admin",
    summary = "Reports as JSON (default) or CSV (`format=csv` or Accept: text/csv)",
    params(
        ("report" = inline(ReportName), Path, description = "which report"),
        ("from" = Option<chrono::NaiveDate>, Query, description = "first day, YYYY-MM-DD (default: 30 days before `to`)"),
        ("to" = Option<chrono::NaiveDate>, Query, description = "last day, YYYY-MM-DD (default: today)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100000, description = "points-ranking: rows, default 100"),
        ("format" = inline(Option<ReportFormat>), Query, description = "json (default) or csv"),
        ("hours" = Option<u32>, Query, minimum = 0, maximum = 4294967295_u64, description = "unmatched-redemptions: older than this many hours, default 24"),
    ),
    responses(
        (status = 200, description = "the report", content(
            (Report = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown report", body = ErrorBody, content_type = PROBLEM),
    ))]
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

/// The reports `GET /admin/reports/{report}` knows.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // schema only: `reports::run` parses the name
#[schema(rename_all = "kebab-case")]
pub enum ReportName {
    CardsIssued,
    PointsRanking,
    Birthdays,
    Turnover,
    Campaigns,
    Redeemed,
    UnmatchedRedemptions,
    Overdrawn,
}

/// `format=` of a report.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // schema only: `report` parses the parameter
#[schema(rename_all = "lowercase")]
pub enum ReportFormat {
    Json,
    Csv,
}

#[utoipa::path(post, path = "/v1/redemptions", security(("tillToken" = [])), tag = "till",
    summary = "Redeem points online (the cashier waits)",
    description = "Exactly one debit per till-made request_id: a retry or replay answers the same redemption; the same \
                   id with another payload is 409 conflict. The answer carries the redemption id (= request_id), the \
                   short code for the POS and the money value.",
    request_body = RedeemRequest,
    responses(
        (status = 200, description = "redeemed (or the earlier answer for this request_id)", body = RedeemAnswer),
        (status = 400, description = "malformed JSON", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing, unknown or revoked till token", body = ErrorBody, content_type = PROBLEM),
        (status = 403, description = "request for another store or till than the token's", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown card", body = ErrorBody, content_type = PROBLEM),
        (status = 409, description = "refused by the program or the account: insufficient_points, invalid_points (not a redeemable step), invalid_card, card_blocked, card_unassigned, no_redemption, conflict (request_id reused)", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
        (status = 503, description = "no program loaded yet", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(post, path = "/v1/redemptions/{id}/void", security(("tillToken" = [])), tag = "till",
    summary = "Void a redemption: the same till, the same business day; the points come back once",
    description = "Voiding again answers the same and credits nothing.",
    params(("id" = String, Path, description = "redemption id")),
    responses(
        (status = 200, description = "the voided redemption", body = RedeemAnswer),
        (status = 401, description = "missing, unknown or revoked till token", body = ErrorBody, content_type = PROBLEM),
        (status = 403, description = "made at another till", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown redemption", body = ErrorBody, content_type = PROBLEM),
        (status = 409, description = "void_too_late (another business day)", body = ErrorBody, content_type = PROBLEM),
        (status = 503, description = "no program loaded yet", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn void(
    State(st): State<AppState>,
    TillAuth(till): TillAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_param(id, "id")?;
    let out = st.blocking(move |repo| crate::ledger::void(repo, &till, &id)).await?;
    Ok(Json(out).into_response())
}

#[utoipa::path(get, path = "/admin/customers/{id}/ledger", security(("adminToken" = [])), tag = "admin",
    summary = "The points ledger of the account the customer earns into, newest first",
    description = "The balance is the sum of the ledger. Page with `before` = the previous page's `next`.",
    params(
        ("id" = String, Path, description = "customer id"),
        ("before" = Option<i64>, Query, minimum = 1, description = "`next` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "entries per page, default 100"),
    ),
    responses(
        (status = 200, description = "a page of entries", body = crate::ledger::LedgerPage),
        (status = 400, description = "bad request (field named in the error)", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown customer", body = ErrorBody, content_type = PROBLEM),
    ))]
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

#[utoipa::path(post, path = "/admin/customers/{id}/adjust", security(("adminToken" = [])), tag = "admin",
    summary = "Adjust a balance by ± points with a reason (a ledger entry)",
    description = "Idempotency-Key is required: the same key and body apply once (duplicate: true), the same key with \
                   another body is 409.",
    params(
        ("id" = String, Path, description = "customer id"),
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, pattern = "^\\S(.*\\S)?$",
            description = "unique key of this adjustment"),
    ),
    request_body = crate::ledger::AdjustRequest,
    responses(
        (status = 200, description = "applied or already applied", body = crate::ledger::AdjustAnswer),
        (status = 400, description = "missing Idempotency-Key or malformed JSON", body = ErrorBody, content_type = PROBLEM),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
        (status = 404, description = "unknown customer", body = ErrorBody, content_type = PROBLEM),
        (status = 409, description = "key reused with another body, or the balance would go below zero", body = ErrorBody, content_type = PROBLEM),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody, content_type = PROBLEM),
        (status = 422, description = "well-formed JSON of the wrong shape (field named)", body = ErrorBody, content_type = PROBLEM),
    ))]
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
        .filter(|k| !k.is_empty() && k.chars().count() <= 200)
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

/// `GET /admin/ledger/check` answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BalanceCheck {
    /// Accounts whose balance is not the sum of their ledger (empty = consistent).
    pub mismatches: Vec<crate::ledger::Mismatch>,
}

#[utoipa::path(get, path = "/admin/ledger/check", security(("adminToken" = [])), tag = "admin",
    summary = "Accounts whose balance is not the sum of their ledger (empty = consistent)",
    responses(
        (status = 200, description = "mismatches", body = BalanceCheck),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody, content_type = PROBLEM),
    ))]
pub async fn ledger_check(State(st): State<AppState>, _a: AdminAuth) -> Result<Response, ApiError> {
    let mismatches = st.blocking(crate::ledger::balance_check).await?;
    Ok(Json(BalanceCheck { mismatches }).into_response())
}

/// Middleware: a sync batch waits for an ingest permit (`AppState::ingest`) before anything of
/// it runs — token check, reading and parsing the body, applying — and holds it until answered.
/// Batches over the limit queue here (counted in `/metrics`), so quotes and token checks keep
/// CPU and database connections during a storm. A till that gives up waiting drops the request;
/// nothing of it was done.
pub async fn ingest_gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/v1/sync" || req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let queued = st.metrics.queued();
    let permit = st.ingest.clone().acquire_owned().await;
    drop(queued);
    let resp = next.run(req).await;
    drop(permit);
    resp
}

/// Middleware: count and time every request by its route template (`/v1/quote/{card}`, not the
/// card number itself; `unmatched` for paths without a route).
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let t0 = Instant::now();
    let resp = next.run(req).await;
    st.metrics
        .observe(method, route, resp.status().as_u16(), t0.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`: for the monitoring system (no token: keep the port off the public network).
#[utoipa::path(get, path = "/metrics", security(()), tag = "ops",
    summary = "Prometheus metrics: requests by route and status, sync items by result, pending applies, database pool",
    responses((status = 200, description = "OpenMetrics text exposition", body = String,
        content_type = "application/openmetrics-text")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let stats = st.repo.stats();
    let body = st.metrics.render(&stats);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
