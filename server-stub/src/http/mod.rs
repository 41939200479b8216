//! The HTTP API. The router and the OpenAPI document are built together from the handlers
//! (utoipa-axum): a mounted handler is a documented operation, so the two cannot drift apart.

mod doc;
pub mod extract;
mod handlers;
pub mod metrics;
pub mod problem;
pub mod state;
pub mod syncbody;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Json, Router};
use serde_json::Value;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::AppState;

/// The request id header: taken from the client (a load balancer's) or made here; echoed in the
/// answer and carried by every log line of the request.
const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", security(()), tag = "till",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(Extension(doc): Extension<Arc<Value>>) -> Json<Value> {
    Json((*doc).clone())
}

fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use handlers as h;
    OpenApiRouter::with_openapi(doc::base())
        .routes(routes!(h::healthz))
        .routes(routes!(openapi_json))
        .routes(routes!(h::sync))
        .routes(routes!(h::quote))
        .routes(routes!(h::rules))
        .routes(routes!(h::changes))
        .routes(routes!(h::put_program))
        .routes(routes!(h::issue_cards))
        .routes(routes!(h::block_card))
        .routes(routes!(h::reissue_card))
        .routes(routes!(h::set_parent))
        .routes(routes!(h::customer))
        .routes(routes!(h::messages))
        .routes(routes!(h::birthdays))
        .routes(routes!(h::report))
        .routes(routes!(h::redeem))
        .routes(routes!(h::void))
        .routes(routes!(h::ledger))
        .routes(routes!(h::adjust))
        .routes(routes!(h::ledger_check))
        .routes(routes!(h::metrics))
        .split_for_parts()
}

/// The OpenAPI 3.1 document of [`router`], as served at `/openapi.json`.
pub fn openapi_document() -> Value {
    doc::finish(&api().1)
}

/// Schemas of the request bodies (checked by `extract::JsonBody` on every request).
const REQUEST_BODIES: &[&str] = &[
    "SyncBatch",
    "Program",
    "IssueCardsRequest",
    "BlockRequest",
    "ParentRequest",
];

pub fn router(state: AppState) -> Router {
    let (router, api) = api();
    let doc = doc::finish(&api);
    let contract = Arc::new(extract::Contract::new(&doc, REQUEST_BODIES));
    let doc = Arc::new(doc);
    let request_span = |req: &axum::http::Request<axum::body::Body>| {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
    };
    router
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(Extension(doc))
        .layer(Extension(contract))
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handlers::ingest_gate,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), handlers::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Examples of a schema in the document (serialised samples of the real types).
pub fn samples(name: &str) -> Vec<Value> {
    doc::samples(name)
}
