//! `GET /metrics` (Prometheus / OpenMetrics text): requests by route and status, request
//! durations, sync items by result (the ingest rate is its rate()), sync batches being applied
//! now (the queue of pending applies) and the database connections. A middleware counts
//! every request (`handlers::track`); the database figures are read from the repository at scrape time.

use std::sync::atomic::AtomicI64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use protocol::v1::{AckResult, SyncResponse};

use crate::store::StoreStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    sync_items: Family<ResultLabels, Counter>,
    sync_pending: Gauge,
    sync_queued: Gauge,
    db_connections: Gauge,
    db_idle: Gauge,
    db_max: Gauge,
    db_retries: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("server_stub");
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
        });
        r.register(
            "http_request_duration_seconds",
            "HTTP request duration by route",
            durations.clone(),
        );
        let sync_items = Family::<ResultLabels, Counter>::default();
        r.register(
            "sync_items",
            "sync items by result (applied, duplicate, rejected, retry)",
            sync_items.clone(),
        );
        let sync_pending = Gauge::default();
        r.register(
            "sync_pending",
            "sync batches being applied now (received, not yet answered)",
            sync_pending.clone(),
        );
        let sync_queued = Gauge::default();
        r.register(
            "sync_queued",
            "sync batches received and waiting for an ingest permit (more than --ingest-concurrency at once)",
            sync_queued.clone(),
        );
        let db_connections = Gauge::default();
        r.register("db_connections", "open database connections", db_connections.clone());
        let db_idle = Gauge::default();
        r.register("db_connections_idle", "idle database connections", db_idle.clone());
        let db_max = Gauge::default();
        r.register("db_connections_max", "most database connections kept", db_max.clone());
        let db_retries = Gauge::<i64, AtomicI64>::default();
        r.register(
            "db_transaction_retries",
            "units of work run again after a conflict with a concurrent transaction (total)",
            db_retries.clone(),
        );
        Metrics {
            registry: Mutex::new(r),
            requests,
            durations,
            sync_items,
            sync_pending,
            sync_queued,
            db_connections,
            db_idle,
            db_max,
            db_retries,
        }
    }

    /// Count a sync answer's items by result.
    pub fn sync_answered(&self, resp: &SyncResponse) {
        for a in &resp.acks {
            let result = match a.result {
                AckResult::Applied => "applied",
                AckResult::Duplicate => "duplicate",
                AckResult::Rejected { .. } => "rejected",
                AckResult::Retry { .. } => "retry",
            };
            self.sync_items
                .get_or_create(&ResultLabels { result: result.into() })
                .inc();
        }
    }

    /// A guard counting one sync batch as pending while it lives.
    pub fn pending(&self) -> PendingGuard {
        self.sync_pending.inc();
        PendingGuard(self.sync_pending.clone())
    }

    /// A guard counting one sync batch as waiting for an ingest permit while it lives.
    pub fn queued(&self) -> PendingGuard {
        self.sync_queued.inc();
        PendingGuard(self.sync_queued.clone())
    }

    /// Count and time one answered request.
    pub fn observe(&self, method: String, route: String, status: u16, secs: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status,
            })
            .inc();
        self.durations.get_or_create(&RouteLabels { route }).observe(secs);
    }

    /// The exposition, with the database figures `s` read now.
    pub fn render(&self, s: &StoreStats) -> String {
        self.db_connections.set(s.connections as i64);
        self.db_idle.set(s.idle as i64);
        self.db_max.set(s.max as i64);
        self.db_retries.set(s.retries as i64);
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("writing to a String");
        out
    }
}

pub struct PendingGuard(Gauge);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
