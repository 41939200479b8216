//! Redemption round trip (printed figures, not a timed test): `POST /v1/redemptions` on loopback
//! to a real server (in-process axum + SQLite file, WAL, synchronous=FULL), each a fresh request
//! id = one debit committed, beside the quote round trip (`GET /v1/cards/{card}/quote`) on the
//! same server. p50 / p99 over BENCH_REDEEMS (default 300) calls each.
//! Run: `cargo bench -p server-stub --bench redeem`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::v1::{RedeemAnswer, RedeemRequest};
use protocol::{CardId, CustomerId, StoreId, TillId};
use rust_decimal::Decimal;
use server_stub::http::{router, AppState};
use server_stub::ledger::{adjust, AdjustRequest};
use server_stub::service::{self, SeedFile};
use server_stub::store::sqlite::SqliteRepo;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::var("BENCH_REDEEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let repo = SqliteRepo::open(&dir.path().join("bench-redeem.db")).unwrap();
    let seed_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed/demo.json");
    let seed: SeedFile = serde_json::from_str(&std::fs::read_to_string(seed_path).unwrap()).unwrap();
    service::seed(&repo, &seed).unwrap();
    let (store, till) = (StoreId::from("CZ-PRG-01"), TillId::from("T1"));
    let token = service::till_add(&repo, &store, &till).unwrap();
    // Enough points for every redemption.
    let points = Decimal::from(100 * (n as i64 + 10));
    adjust(
        &repo,
        &CustomerId::from("C000001"),
        "bench",
        &AdjustRequest {
            reason: "bench".into(),
            points,
        },
    )
    .unwrap();
    let card = CardId::normalise("1900000009000018").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let state = AppState::new(Arc::new(repo), None, None);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let (mut quote, mut redeem) = rt.block_on(async {
        let c = reqwest::Client::new();
        let (mut q, mut r) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + 10 {
            let t0 = Instant::now();
            let resp = c
                .get(format!("http://{addr}/v1/cards/{}/quote", card.expose()))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
            resp.bytes().await.unwrap();
            let tq = t0.elapsed();
            let req = RedeemRequest {
                request_id: format!("rdm-bench-{i:08}"),
                card: card.clone(),
                points: Decimal::from(100),
                store_id: StoreId::from("CZ-PRG-01"),
                till_id: TillId::from("T1"),
                requested_at: chrono::Local::now().fixed_offset(),
            };
            let t0 = Instant::now();
            let resp = c
                .post(format!("http://{addr}/v1/redemptions"))
                .bearer_auth(&token)
                .json(&req)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            let a: RedeemAnswer = resp.json().await.unwrap();
            let tr = t0.elapsed();
            assert_eq!(a.redemption_id, req.request_id);
            if i >= 10 {
                // the first 10 warm up connections and caches
                q.push(tq);
                r.push(tr);
            }
        }
        (q, r)
    });
    quote.sort();
    redeem.sort();
    println!(
        "TABLE\tredeem → confirmed online (POST /v1/redemptions, loopback), p50 / p99\t{:.1} / {:.1} ms\tquote round trip {:.1} / {:.1} ms; budget 300 ms",
        pct(&redeem, 0.5),
        pct(&redeem, 0.99),
        pct(&quote, 0.5),
        pct(&quote, 0.99)
    );
}
