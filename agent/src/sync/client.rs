//! The one typed client for the loyalty server: base URL, the till's bearer token, the request
//! timeout (`http_timeout_secs`, or the quote's own short one), the user agent. Every answer that
//! is not a success is read once, here, into a [`Failure`] whose variant is the retry class the
//! callers act on. Callers: the replicator and the cache sync (`sync`), the quote service, `status`,
//! `doctor` and `redeem` / `void` (money-moving calls answer a [`Verdict`]).
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Local};
use protocol::ids::CardId;
use protocol::rules::RulesSnapshot;
use protocol::v1::{ChangeFeed, ErrorBody, Quote, RedeemAnswer, RedeemRequest, SyncBatch, SyncResponse};
use reqwest::{header, StatusCode};

use crate::config::Config;
use crate::context::error_chain;

/// Why a request did not give the answer asked for, classified by what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// No answer: connection refused, timeout, DNS. Back off; probe `/healthz` meanwhile.
    Network(String),
    /// The server is there but busy or failing (5xx, 429, 408). Back off, honour `Retry-After`.
    Busy {
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 401/403: the till's token or identity is wrong; nothing works until it is fixed.
    Auth { status: u16, reason: String },
    /// The server speaks another wire version. Nothing is refused item by item: wait for an update.
    UnsupportedVersion { reason: String },
    /// The server's own error body (400/422) refusing what was sent: the content is at fault.
    Refused { status: u16, reason: String },
    /// An answer that is not the loyalty server's (a proxy's 404/405/407/413, an HTML maintenance
    /// page, JSON of another shape). A transport problem: back off and send again, never dead-letter.
    NotTheServer {
        status: u16,
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl std::error::Error for Failure {}

impl Failure {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Busy { retry_after, .. } | Failure::NotTheServer { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(r) => write!(f, "server unreachable: {r}"),
            Failure::Busy { status, reason, .. } => write!(f, "server error {status}: {reason}"),
            Failure::Auth { status, reason } => write!(f, "not authorised ({status}): {reason}"),
            Failure::UnsupportedVersion { reason } => {
                write!(f, "the server does not speak this agent's protocol version: {reason}")
            }
            Failure::Refused { status, reason } => write!(f, "refused by the server ({status}): {reason}"),
            Failure::NotTheServer { status, reason, .. } => write!(
                f,
                "the server address answered {status} without the loyalty server's verdict ({reason}); \
                 a proxy or a wrong server_url? receipts stay queued and are sent again"
            ),
        }
    }
}

/// The server's error body, if `body` is one.
pub fn server_error(body: &str) -> Option<ErrorBody> {
    serde_json::from_str::<ErrorBody>(body).ok()
}

/// A short text for an error answer: the server's code and message, else the start of the body.
pub fn error_reason(status: StatusCode, content_type: &str, body: &str) -> String {
    match server_error(body) {
        Some(e) => match e.field {
            Some(f) => format!("{}: {} (field {f})", e.code, e.detail),
            None => format!("{}: {}", e.code, e.detail),
        },
        None => {
            let b: String = body
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(120)
                .collect();
            match (b.is_empty(), content_type.is_empty()) {
                (true, _) => status.to_string(),
                (false, true) => b,
                (false, false) => format!("{content_type}: {b}"),
            }
        }
    }
}

/// Classify a non-success answer. Pure: the tests feed it statuses and bodies.
pub fn classify(status: u16, content_type: &str, body: &str, retry_after: Option<Duration>) -> Failure {
    let reason = error_reason(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        content_type,
        body,
    );
    let ours = server_error(body);
    match status {
        401 | 403 => Failure::Auth { status, reason },
        408 | 429 | 500..=599 => Failure::Busy {
            status,
            reason,
            retry_after,
        },
        400 | 422 if ours.as_ref().is_some_and(|e| e.code == "unsupported_version") => {
            Failure::UnsupportedVersion { reason }
        }
        400 | 422 if ours.is_some() => Failure::Refused { status, reason },
        _ => Failure::NotTheServer {
            status,
            reason,
            retry_after,
        },
    }
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = t.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

/// What `/healthz` said.
#[derive(Clone, Debug)]
pub struct Health {
    pub rtt: Duration,
    /// The server's clock, when it sent one.
    pub time: Option<DateTime<FixedOffset>>,
    /// The server's identity (`server_id`): it changes when its database is restored from a backup.
    pub server_id: Option<String>,
}

/// Outcome of a conditional `GET /v1/rules`.
pub enum Rules {
    NotModified,
    New {
        rules: Box<RulesSnapshot>,
        etag: Option<String>,
    },
}

/// The answer to a money-moving call (redeem, void), which the cashier waits for: the server's
/// answer, its refusal (a 4xx carrying its own error body: not enough points, another till's
/// redemption, too late to void), or no answer at all — then the caller may retry with the same
/// request id (the server applies it once) or fall back to the outbox.
#[derive(Clone, Debug)]
pub enum Verdict<T> {
    Answer(T),
    Refused(ErrorBody),
    NoAnswer(String),
}

/// Idle time before the first TCP keepalive probe on a connection to the server.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Words of every transport error caused by a certificate the till's clock puts outside its
/// validity (`doctor` looks for them).
pub const CERT_CLOCK: &str = "by this till's clock";

/// A transport error as support staff read it: the error's chain, and when TLS refused the
/// server's certificate for its dates, the dates and what to check first — a till whose clock is
/// wrong (a flat CMOS battery, a bad manual change) refuses every certificate that way.
fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let chain = error_chain(&e);
    match certificate_dates(&e) {
        Some(why) => format!(
            "{chain} — the server's TLS certificate is {why} {CERT_CLOCK} ({}): if the till's date or time is \
             wrong, correct it (Windows: Settings → Time & language → Sync now); if it is right, the \
             server's certificate must be renewed",
            Local::now().format("%Y-%m-%d %H:%M %:z")
        ),
        None => chain,
    }
}

/// "expired (valid until …)" / "not valid yet (valid from …)" when TLS refused the certificate for
/// its dates, found anywhere in the error's chain (an I/O error carries the TLS error inside).
fn certificate_dates(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::{CertificateError as C, Error as Tls};
    let when = |t: &rustls::pki_types::UnixTime| {
        DateTime::from_timestamp(t.as_secs() as i64, 0)
            .map(|d| d.with_timezone(&Local).format("%Y-%m-%d %H:%M %:z").to_string())
            .unwrap_or_default()
    };
    // The TLS error itself, or inside an I/O error (whose `source` skips it).
    fn tls_in<'e>(c: &'e (dyn std::error::Error + 'static)) -> Option<&'e Tls> {
        if let Some(t) = c.downcast_ref::<Tls>() {
            return Some(t);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io.get_ref().and_then(|inner| tls_in(inner));
        }
        None
    }
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(Tls::InvalidCertificate(ce)) = tls_in(c) {
            match ce {
                C::Expired => return Some("expired".into()),
                C::ExpiredContext { not_after, .. } => {
                    return Some(format!("expired (valid until {})", when(not_after)))
                }
                C::NotValidYet => return Some("not valid yet".into()),
                C::NotValidYetContext { not_before, .. } => {
                    return Some(format!("not valid yet (valid from {})", when(not_before)))
                }
                _ => {}
            }
        }
        cur = c.source();
    }
    None
}

#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl ServerClient {
    /// For the configured server with `http_timeout_secs`.
    pub fn new(cfg: &Config) -> anyhow::Result<ServerClient> {
        ServerClient::for_config(cfg, Duration::from_secs(cfg.http_timeout_secs))
    }

    /// For the configured server (its `server_ca_file` trusted) with this timeout.
    pub fn for_config(cfg: &Config, timeout: Duration) -> anyhow::Result<ServerClient> {
        ServerClient::build(&cfg.server_url, timeout, cfg.server_ca_pem.as_deref())
    }

    pub fn with_timeout(base: &str, timeout: Duration) -> anyhow::Result<ServerClient> {
        ServerClient::build(base, timeout, None)
    }

    fn build(base: &str, timeout: Duration, ca_pem: Option<&[u8]>) -> anyhow::Result<ServerClient> {
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3).min(timeout))
            // The connection is kept while idle for as long as the server keeps it (reqwest would drop
            // it after 90 s): a till scans a card minutes apart, and each scan after a pause would
            // otherwise open a new connection (a TLS handshake to a remote server) before its quote.
            // TCP keepalive finds a peer that vanished and keeps NAT entries on the way alive.
            .pool_idle_timeout(None)
            .tcp_keepalive(TCP_KEEPALIVE)
            .user_agent(concat!("till-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ServerClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        req.bearer_auth(token)
    }

    /// Send and read the whole answer: `Ok` for a success (status, headers, body), else the
    /// classified failure.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, header::HeaderMap, String), Failure> {
        let resp = req.send().await.map_err(|e| Failure::Network(transport_error(e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| Failure::Network(transport_error(e)))?;
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok((status, headers, body));
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Err(classify(status.as_u16(), content_type, &body, retry_after))
    }

    /// A success whose body is not the JSON asked for is not the server's answer either.
    fn decode<T: serde::de::DeserializeOwned>(status: StatusCode, body: &str, what: &str) -> Result<T, Failure> {
        serde_json::from_str(body).map_err(|e| Failure::NotTheServer {
            status: status.as_u16(),
            reason: format!("not {what}: {e}"),
            retry_after: None,
        })
    }

    /// `POST /v1/sync`.
    pub async fn sync(&self, token: &str, batch: &SyncBatch) -> Result<SyncResponse, Failure> {
        let body = serde_json::to_vec(batch).map_err(|e| Failure::Network(format!("cannot encode the batch: {e}")))?;
        self.sync_body(token, body).await
    }

    /// `POST /v1/sync` of a batch already encoded as JSON (the replicator encodes the next batch
    /// while the previous one is on its way).
    pub async fn sync_body(&self, token: &str, body: Vec<u8>) -> Result<SyncResponse, Failure> {
        let req = self
            .authed(self.http.post(self.url("/v1/sync")), token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        let (status, _, body) = self.exchange(req).await?;
        Self::decode(status, &body, "a sync response")
    }

    /// `GET /healthz` answered 200 within a short timeout.
    pub async fn probe(&self) -> bool {
        matches!(
            self.http.get(self.url("/healthz")).timeout(Duration::from_millis(800)).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// `GET /healthz` with its round trip and the server's clock.
    pub async fn health(&self, timeout: Duration) -> Result<Health, Failure> {
        let t0 = Instant::now();
        let (_, _, body) = self
            .exchange(self.http.get(self.url("/healthz")).timeout(timeout))
            .await?;
        let rtt = t0.elapsed();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let time = v
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let server_id = v.get("server_id").and_then(|t| t.as_str()).map(str::to_string);
        Ok(Health { rtt, time, server_id })
    }

    /// `GET /v1/rules` (conditional on `etag`).
    pub async fn rules(&self, token: &str, etag: Option<&str>) -> Result<Rules, Failure> {
        let mut req = self.authed(self.http.get(self.url("/v1/rules")), token);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        let (status, headers, body) = self.exchange(req).await?;
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Rules::NotModified);
        }
        let etag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Rules::New {
            rules: Box::new(Self::decode::<RulesSnapshot>(status, &body, "a rules snapshot")?),
            etag,
        })
    }

    /// Does the server accept `token`? (`GET /v1/rules`, short timeout.)
    pub async fn check_token(&self, token: &str, timeout: Duration) -> Result<(), Failure> {
        let req = self
            .authed(self.http.get(self.url("/v1/rules")), token)
            .timeout(timeout);
        self.exchange(req).await.map(drop)
    }

    /// `GET /v1/changes?since=…&limit=…`.
    pub async fn changes(&self, token: &str, since: Option<&str>, limit: u32) -> Result<ChangeFeed, Failure> {
        let mut url = reqwest::Url::parse(&self.url("/v1/changes")).map_err(|e| Failure::Network(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = since {
                q.append_pair("since", c);
            }
            q.append_pair("limit", &limit.to_string());
        }
        let (status, _, body) = self.exchange(self.authed(self.http.get(url), token)).await?;
        Self::decode(status, &body, "a change feed")
    }

    /// `GET /v1/cards/{card}/quote` within the client's timeout (connect and answer).
    pub async fn quote(&self, token: &str, card: &CardId) -> Result<Quote, Failure> {
        let url = self.url(&format!("/v1/cards/{}/quote", card.expose()));
        let req = self.authed(self.http.get(&url), token);
        let (status, _, body) = tokio::time::timeout(self.timeout, self.exchange(req))
            .await
            .map_err(|_| Failure::Network(format!("server did not answer within {} ms", self.timeout.as_millis())))??;
        Self::decode(status, &body, "a quote")
    }
    /// `POST /v1/redemptions`: debit once per `req.request_id`.
    pub async fn redeem(&self, token: &str, req: &RedeemRequest) -> Verdict<RedeemAnswer> {
        self.money(token, "/v1/redemptions", Some(req)).await
    }

    /// `POST /v1/redemptions/{id}/void`: the points back, once.
    pub async fn void_redemption(&self, token: &str, id: &str) -> Verdict<RedeemAnswer> {
        self.money(token, &format!("/v1/redemptions/{id}/void"), None::<&()>)
            .await
    }

    async fn money<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: Option<&B>,
    ) -> Verdict<T> {
        let mut req = self.authed(self.http.post(self.url(path)), token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match tokio::time::timeout(self.timeout, req.send()).await {
            Err(_) => {
                return Verdict::NoAnswer(format!(
                    "the server did not answer within {} ms",
                    self.timeout.as_millis()
                ))
            }
            Ok(Err(e)) if e.is_timeout() => {
                return Verdict::NoAnswer(format!(
                    "the server did not answer within {} ms",
                    self.timeout.as_millis()
                ))
            }
            Ok(Err(e)) => return Verdict::NoAnswer(format!("server unreachable: {}", transport_error(e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 401 {
            return Verdict::NoAnswer(format!("the server answered {status}"));
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Verdict::NoAnswer(format!("the answer was cut off: {}", transport_error(e))),
        };
        if status.is_success() {
            return match serde_json::from_slice::<T>(&bytes) {
                Ok(a) => Verdict::Answer(a),
                Err(e) => Verdict::NoAnswer(format!("unreadable answer from the server: {e}")),
            };
        }
        Verdict::Refused(
            serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
                type_uri: ErrorBody::type_for(status.as_str()),
                title: status.canonical_reason().unwrap_or_default().to_string(),
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                code: status.as_str().to_string(),
                field: None,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_that_are_not_the_servers_verdict_are_transport_problems() {
        let html = "<html><body><h1>404 Not Found</h1></body></html>";
        for status in [404, 405, 407, 413, 410, 302] {
            let f = classify(status, "text/html", html, None);
            assert!(matches!(f, Failure::NotTheServer { .. }), "{status}: {f:?}");
        }
        // JSON of another shape, even with a 400
        let f = classify(400, "application/json", r#"{"error":"bad gateway config"}"#, None);
        assert!(matches!(f, Failure::NotTheServer { status: 400, .. }), "{f:?}");
        // an HTML 400 from a proxy
        assert!(matches!(
            classify(400, "text/html", html, None),
            Failure::NotTheServer { .. }
        ));
        let text = classify(404, "text/html", html, Some(Duration::from_secs(3))).to_string();
        assert!(
            text.contains("answered 404") && text.contains("text/html: <html>"),
            "{text}"
        );
        assert_eq!(
            classify(404, "", "", Some(Duration::from_secs(3))).retry_after(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn the_servers_own_answers_keep_their_class() {
        let body = |code: &str| {
            format!(
                r#"{{"type":"urn:till-agent:problem:{code}","title":"Bad Request","status":400,"detail":"m","code":"{code}","field":"version"}}"#
            )
        };
        assert!(matches!(
            classify(400, "application/json", &body("unsupported_version"), None),
            Failure::UnsupportedVersion { .. }
        ));
        assert!(matches!(
            classify(422, "application/json", &body("invalid"), None),
            Failure::Refused { status: 422, .. }
        ));
        assert!(matches!(classify(401, "", "", None), Failure::Auth { status: 401, .. }));
        assert!(matches!(classify(403, "", "", None), Failure::Auth { status: 403, .. }));
        for s in [408, 429, 500, 502, 503] {
            assert!(
                matches!(classify(s, "text/html", "<html/>", None), Failure::Busy { .. }),
                "{s}"
            );
        }
        assert_eq!(
            classify(503, "", "", Some(Duration::from_secs(7))).retry_after(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn retry_after_seconds_and_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(95) && d <= Duration::from_secs(100), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
