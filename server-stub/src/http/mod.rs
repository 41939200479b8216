//! The HTTP API. [`ROUTES`] is the single route table: the router mounts it and the OpenAPI
//! document (`crate::openapi`) is generated from it, so the two cannot drift apart.

pub mod extract;
mod handlers;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::error::ApiError;
use crate::store::Repository;

#[derive(Clone)]
pub struct AppState {
    pub repo: Arc<dyn Repository>,
    pub admin_token: Option<String>,
}

impl AppState {
    /// Run blocking storage work off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Repository) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || f(&*repo))
            .await
            .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Till,
    Admin,
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    /// `path` or `query` (or `header`).
    pub location: &'static str,
    pub required: bool,
    pub description: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct Resp {
    pub status: u16,
    pub description: &'static str,
    /// Schema name in `crate::openapi::samples` (None: no body).
    pub schema: Option<&'static str>,
}

#[derive(Clone, Copy, Debug)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    pub params: &'static [Param],
    pub request: Option<&'static str>,
    pub responses: &'static [Resp],
}

const fn p(name: &'static str, location: &'static str, required: bool, description: &'static str) -> Param {
    Param {
        name,
        location,
        required,
        description,
    }
}
const fn r(status: u16, description: &'static str, schema: Option<&'static str>) -> Resp {
    Resp {
        status,
        description,
        schema,
    }
}
const E: Option<&str> = Some("ErrorBody");
const UNAUTH: Resp = r(401, "missing, unknown or revoked token", E);
const BAD: Resp = r(400, "bad request (field named in the error)", E);
const INVALID: Resp = r(422, "well-formed JSON of the wrong shape (field named)", E);
const NOT_FOUND: Resp = r(404, "not found", E);
const CONFLICT: Resp = r(409, "conflicts with the current state", E);
const CARD_PARAM: Param = p("card", "path", true, "card number; separators are ignored");
const RANGE: [Param; 2] = [
    p("from", "query", false, "first day, YYYY-MM-DD"),
    p("to", "query", false, "last day, YYYY-MM-DD"),
];

pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/healthz",
        summary: "Liveness and server clock (the till's doctor uses `time` for clock skew)",
        auth: Auth::None,
        params: &[],
        request: None,
        responses: &[r(200, "server is up", Some("Health"))],
    },
    RouteDoc {
        method: "GET",
        path: "/openapi.json",
        summary: "This document",
        auth: Auth::None,
        params: &[],
        request: None,
        responses: &[r(200, "OpenAPI 3.1 document", None)],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/sync",
        summary: "Ingest a batch of receipts, registrations and migration pairings; one ack per item. Dedupe is permanent: \
                  same item id + same payload = duplicate, same id + different payload = rejected (conflict). Items are \
                  independent: a rejected item leaves no trace and does not block the others.",
        auth: Auth::Till,
        params: &[],
        request: Some("SyncBatch"),
        responses: &[
            r(200, "one ack per item, in order (applied / duplicate / rejected{code,reason} / retry{reason})", Some("SyncResponse")),
            r(400, "malformed JSON or unsupported batch version", E),
            UNAUTH,
            r(403, "batch or item for another store or till than the token's", E),
            r(413, "body over 1 MiB or more than 1000 items", E),
            r(415, "Content-Type is not application/json", E),
            INVALID,
        ],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/cards/{card}/quote",
        summary: "What the cashier's popup shows for a card: kind customer / unknown_card / blocked (with reason) / \
                  replaced (with the new card and its quote; the balance moved there). All are 200.",
        auth: Auth::Till,
        params: &[CARD_PARAM],
        request: None,
        responses: &[
            r(200, "quote (source: online)", Some("Quote")),
            r(400, "not a card number", E),
            UNAUTH,
            r(503, "no program loaded yet", E),
        ],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/rules",
        summary: "The current rules snapshot. ETag: \"<version>\"; If-None-Match with the current ETag → 304.",
        auth: Auth::Till,
        params: &[p("If-None-Match", "header", false, "ETag of the snapshot the till holds")],
        request: None,
        responses: &[
            r(200, "rules snapshot", Some("RulesSnapshot")),
            r(304, "the till's snapshot is current", None),
            UNAUTH,
            r(503, "no program loaded yet", E),
        ],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/changes",
        summary: "Customers (with cards and account state) changed after `since`; cursor = the server's monotonically \
                  increasing change sequence. No `since` = from the beginning. A sub-card holder carries the parent \
                  account's state.",
        auth: Auth::Till,
        params: &[
            p("since", "query", false, "cursor from the previous page"),
            p("limit", "query", false, "page size 1..=1000, default 500"),
        ],
        request: None,
        responses: &[r(200, "a page of changes", Some("ChangeFeed")), BAD, UNAUTH],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/redemptions",
        summary: "Redeem points online (the cashier waits). Exactly one debit per till-made request_id: a retry or replay \
                  answers the same redemption; the same id with another payload is 409 conflict. The answer carries the \
                  redemption id (= request_id), the short code for the POS and the money value.",
        auth: Auth::Till,
        params: &[],
        request: Some("RedeemRequest"),
        responses: &[
            r(200, "redeemed (or the earlier answer for this request_id)", Some("RedeemAnswer")),
            BAD,
            UNAUTH,
            r(403, "request for another store or till than the token's", E),
            r(404, "unknown card", E),
            r(409, "insufficient_points, card_blocked, card_unassigned, no_redemption, conflict", E),
            INVALID,
        ],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/redemptions/{id}/void",
        summary: "Void a redemption: the same till, the same business day; the points come back once (voiding again \
                  answers the same and credits nothing)",
        auth: Auth::Till,
        params: &[p("id", "path", true, "redemption id")],
        request: None,
        responses: &[
            r(200, "the voided redemption", Some("RedeemAnswer")),
            UNAUTH,
            r(403, "made at another till", E),
            NOT_FOUND,
            r(409, "void_too_late (another business day)", E),
        ],
    },
    RouteDoc {
        method: "PUT",
        path: "/admin/program",
        summary: "Replace the program (rules); the snapshot version goes up by one",
        auth: Auth::Admin,
        params: &[],
        request: Some("Program"),
        responses: &[r(200, "the new snapshot", Some("RulesSnapshot")), BAD, UNAUTH, INVALID],
    },
    RouteDoc {
        method: "POST",
        path: "/admin/cards/batch",
        summary: "Issue a batch of non-personalised card numbers (program prefix, Luhn digit if the policy says so) for printing",
        auth: Auth::Admin,
        params: &[],
        request: Some("IssueCardsRequest"),
        responses: &[r(200, "the new numbers", Some("IssueCardsResponse")), BAD, UNAUTH, INVALID],
    },
    RouteDoc {
        method: "POST",
        path: "/admin/cards/{card}/block",
        summary: "Block a card (lost, abuse, membership ended): it neither earns nor redeems",
        auth: Auth::Admin,
        params: &[CARD_PARAM],
        request: Some("BlockRequest"),
        responses: &[r(200, "the card", Some("Card")), BAD, UNAUTH, NOT_FOUND, CONFLICT, INVALID],
    },
    RouteDoc {
        method: "POST",
        path: "/admin/cards/{card}/reissue",
        summary: "Reissue: a new number for the same account (balance moves), the old card is marked replaced",
        auth: Auth::Admin,
        params: &[CARD_PARAM],
        request: None,
        responses: &[r(200, "old and new card", Some("ReissueResponse")), BAD, UNAUTH, NOT_FOUND, CONFLICT],
    },
    RouteDoc {
        method: "POST",
        path: "/admin/customers/{id}/parent",
        summary: "Make a customer a sub-card holder (family, company) earning into the parent account; null detaches",
        auth: Auth::Admin,
        params: &[p("id", "path", true, "customer id")],
        request: Some("ParentRequest"),
        responses: &[r(200, "the customer", Some("CustomerChange")), BAD, UNAUTH, NOT_FOUND, CONFLICT, INVALID],
    },
    RouteDoc {
        method: "GET",
        path: "/admin/customers/{id}",
        summary: "A customer with cards and account state",
        auth: Auth::Admin,
        params: &[p("id", "path", true, "customer id")],
        request: None,
        responses: &[r(200, "the customer", Some("CustomerChange")), UNAUTH, NOT_FOUND],
    },
    RouteDoc {
        method: "GET",
        path: "/admin/customers/{id}/ledger",
        summary: "The points ledger of the account the customer earns into, newest first; the balance is the sum of it",
        auth: Auth::Admin,
        params: &[
            p("id", "path", true, "customer id"),
            p("before", "query", false, "`next` of the previous page"),
            p("limit", "query", false, "1..=500, default 100"),
        ],
        request: None,
        responses: &[r(200, "a page of entries", Some("LedgerPage")), BAD, UNAUTH, NOT_FOUND],
    },
    RouteDoc {
        method: "POST",
        path: "/admin/customers/{id}/adjust",
        summary: "Adjust a balance by ± points with a reason (a ledger entry). Idempotency-Key is required: the same key \
                  and body apply once (duplicate: true), the same key with another body is 409",
        auth: Auth::Admin,
        params: &[
            p("id", "path", true, "customer id"),
            p("Idempotency-Key", "header", true, "unique key of this adjustment"),
        ],
        request: Some("AdjustRequest"),
        responses: &[r(200, "applied or already applied", Some("AdjustAnswer")), BAD, UNAUTH, NOT_FOUND, CONFLICT, INVALID],
    },
    RouteDoc {
        method: "GET",
        path: "/admin/ledger/check",
        summary: "Accounts whose balance is not the sum of their ledger (empty = consistent)",
        auth: Auth::Admin,
        params: &[],
        request: None,
        responses: &[r(200, "mismatches", Some("BalanceCheck")), UNAUTH],
    },
    RouteDoc {
        method: "GET",
        path: "/admin/messages",
        summary: "The message outbox (welcome, tier_upgrade, birthday), one per cause, oldest first",
        auth: Auth::Admin,
        params: &[p("kind", "query", false, "welcome | tier_upgrade | birthday"), p("limit", "query", false, "1..=1000, default 1000")],
        request: None,
        responses: &[r(200, "messages", Some("Messages")), BAD, UNAUTH],
    },
    RouteDoc {
        method: "POST",
        path: "/admin/messages/birthdays",
        summary: "Record birthday messages for `date` (default today); once per customer per year",
        auth: Auth::Admin,
        params: &[p("date", "query", false, "YYYY-MM-DD")],
        request: None,
        responses: &[r(200, "how many celebrate and how many were recorded now", Some("BirthdayRun")), BAD, UNAUTH],
    },
    RouteDoc {
        method: "GET",
        path: "/admin/reports/{report}",
        summary: "Reports as JSON (default) or CSV (`format=csv` or Accept: text/csv): cards-issued, points-ranking, \
                  birthdays, turnover, campaigns, redeemed, unmatched-redemptions, overdrawn",
        auth: Auth::Admin,
        params: &[
            p(
                "report",
                "path",
                true,
                "cards-issued | points-ranking | birthdays | turnover | campaigns | redeemed | unmatched-redemptions | \
                 overdrawn",
            ),
            RANGE[0],
            RANGE[1],
            p("limit", "query", false, "points-ranking: rows, default 100"),
            p("format", "query", false, "json | csv"),
            p("hours", "query", false, "unmatched-redemptions: older than this many hours, default 24"),
        ],
        request: None,
        responses: &[r(200, "the report", Some("Report")), BAD, UNAUTH, NOT_FOUND],
    },
];

fn mount(router: Router<AppState>, d: &RouteDoc) -> Router<AppState> {
    use handlers as h;
    let method_router = match (d.method, d.path) {
        ("GET", "/healthz") => get(h::healthz),
        ("GET", "/openapi.json") => get(h::openapi),
        ("POST", "/v1/sync") => post(h::sync),
        ("GET", "/v1/cards/{card}/quote") => get(h::quote),
        ("GET", "/v1/rules") => get(h::rules),
        ("GET", "/v1/changes") => get(h::changes),
        ("PUT", "/admin/program") => put(h::put_program),
        ("POST", "/admin/cards/batch") => post(h::issue_cards),
        ("POST", "/admin/cards/{card}/block") => post(h::block_card),
        ("POST", "/admin/cards/{card}/reissue") => post(h::reissue_card),
        ("POST", "/admin/customers/{id}/parent") => post(h::set_parent),
        ("GET", "/admin/customers/{id}") => get(h::customer),
        ("GET", "/admin/messages") => get(h::messages),
        ("POST", "/v1/redemptions") => post(h::redeem),
        ("POST", "/v1/redemptions/{id}/void") => post(h::void),
        ("GET", "/admin/customers/{id}/ledger") => get(h::ledger),
        ("POST", "/admin/customers/{id}/adjust") => post(h::adjust),
        ("GET", "/admin/ledger/check") => get(h::ledger_check),
        ("POST", "/admin/messages/birthdays") => post(h::birthdays),
        ("GET", "/admin/reports/{report}") => get(h::report),
        (m, path) => panic!("route {m} {path} is in ROUTES but has no handler"),
    };
    router.route(d.path, method_router)
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for d in ROUTES {
        router = mount(router, d);
    }
    router
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .with_state(state)
}
