//! Benchmark: terminator key → quote ready, p50/p99, from the offline cache and from the server
//! on loopback, beside a raw baseline (normalising the card number alone).
//!
//! ```text
//! cargo build --workspace && cargo run -p till-agent --example input_bench -- target/debug/server-stub fixtures/seed/demo.json
//! ```
//! It starts its own `server-stub` on a free loopback port with a fresh seeded SQLite file,
//! fills a real cache.db from the server's /v1/rules and /v1/changes, then for each iteration
//! feeds a scanner trace (8 ms/key) to the detector, takes the time at the Enter key-down and
//! stops the clock when the quote is in hand.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use protocol::ids::{CardId, CardPolicy};
use protocol::rules::RulesSnapshot;
use protocol::v1::ChangeFeed;
use till_agent::input::detect::{Action, Detector};
use till_agent::input::{payload, script};

const CARD: &str = "1900000009000018";
const N: usize = 300;

fn pct(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let server_bin = args.get(1).cloned().unwrap_or("target/debug/server-stub".into());
    let seed = args.get(2).cloned().unwrap_or("fixtures/seed/demo.json".into());
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("server.db");
    let db_s = db.to_str().unwrap();
    anyhow::ensure!(
        Command::new(&server_bin)
            .args(["seed", "--db", db_s, &seed])
            .status()?
            .success(),
        "seed failed"
    );
    let out = Command::new(&server_bin)
        .args(["till", "add", "--db", db_s, "--store", "CZ-PRG-01", "--till", "T1"])
        .output()?;
    let token = String::from_utf8(out.stdout)?
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(&server_bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db", db_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(bench(&url, &token, dir.path()));
    let _ = server.kill();
    let _ = server.wait();
    result
}

async fn bench(url: &str, token: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(20), "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A real cache.db from the server's own answers.
    let data = dir.join("till");
    std::fs::create_dir_all(data.join("export"))?;
    let cache = till_agent::cache::Cache::open(&data.join("cache.db"))?;
    let rules: RulesSnapshot = client
        .get(format!("{url}/v1/rules"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    cache.store_rules(&rules, None)?;
    let feed: ChangeFeed = client
        .get(format!("{url}/v1/changes?limit=1000"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    cache.apply_feed(&feed)?;
    drop(cache);

    let mk_cfg = |server: &str| -> anyhow::Result<till_agent::config::Config> {
        let text = format!(
            "server_url = \"{server}\"\nstore_id = \"CZ-PRG-01\"\ntill_id = \"T1\"\nexport_dir = \"export\"\ntz_offset = \"+01:00\"\n"
        );
        Ok(till_agent::config::Config::from_str(&text, &data.join("agent.toml"))?)
    };
    std::env::set_var("TILL_AGENT_TOKEN", token);
    let online = till_agent::quote::QuoteService::new(&mk_cfg(url)?)?;
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let offline = till_agent::quote::QuoteService::new(&mk_cfg(&format!("http://127.0.0.1:{dead_port}"))?)?;
    let policy = online.card_policy();

    let trace = script::parse(&script::typed(CARD, &[8], 3, 1, true))?;
    let enter_at = trace
        .iter()
        .position(|e| e.down && e.key == till_agent::input::keys::Key::ENTER)
        .unwrap();
    let decide = |det: &mut Detector| -> String {
        for e in &trace[..enter_at] {
            det.feed(*e);
        }
        String::new()
    };

    let mut raw = Vec::new();
    let mut detect = Vec::new();
    let mut from_cache = Vec::new();
    let mut from_server = Vec::new();
    for i in 0..N + 20 {
        // Raw baseline: normalising the number alone.
        let t = Instant::now();
        let c = CardId::parse(CARD, &CardPolicy::default())?;
        let d0 = t.elapsed();
        std::hint::black_box(c);

        let mut det = Detector::new(Default::default());
        decide(&mut det);
        let t = Instant::now();
        let acts = det.feed(trace[enter_at]);
        let text = acts
            .iter()
            .find_map(|a| {
                if let Action::Scan(s) = a {
                    Some(s.text.clone())
                } else {
                    None
                }
            })
            .expect("scan");
        let till_agent::events::Classified::LoyaltyCard { card } = payload::classify(&text, &policy) else {
            anyhow::bail!("not loyalty")
        };
        let d1 = t.elapsed();
        let q = offline.quote(&card).await?;
        let d2 = t.elapsed();
        anyhow::ensure!(
            matches!(q.source, protocol::v1::QuoteSource::Offline { .. }),
            "expected offline"
        );

        let mut det = Detector::new(Default::default());
        decide(&mut det);
        let t = Instant::now();
        let acts = det.feed(trace[enter_at]);
        let text = acts
            .iter()
            .find_map(|a| {
                if let Action::Scan(s) = a {
                    Some(s.text.clone())
                } else {
                    None
                }
            })
            .expect("scan");
        let till_agent::events::Classified::LoyaltyCard { card } = payload::classify(&text, &policy) else {
            anyhow::bail!("not loyalty")
        };
        let q = online.quote(&card).await?;
        let d3 = t.elapsed();
        anyhow::ensure!(q.source == protocol::v1::QuoteSource::Online, "expected online");
        if i >= 20 {
            raw.push(d0);
            detect.push(d1);
            from_cache.push(d2);
            from_server.push(d3);
        }
    }
    println!(
        "terminator -> quote ready, {N} iterations (after 20 warm-up), debug={}",
        cfg!(debug_assertions)
    );
    let (raw50, raw99) = pct(raw.clone());
    for (name, v) in [
        ("raw baseline: CardId::parse only", raw),
        ("terminator -> scan decided + classified", detect),
        ("terminator -> quote (server down: refused, offline cache)", from_cache),
        ("terminator -> quote (server-stub on loopback)", from_server),
    ] {
        let (p50, p99) = pct(v);
        println!(
            "{name:<60} p50 {:>9.3} ms   p99 {:>9.3} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        if name.starts_with("terminator -> quote") {
            println!(
                "TABLE\t{name}, p50 / p99\t{:.3} / {:.3} ms\tcard parse only {:.3} / {:.3} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                raw50.as_secs_f64() * 1e3,
                raw99.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
