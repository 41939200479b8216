//! Times and amounts of time as people read them: local time in the language's format
//! (`23. 11. 2026 10:05`), durations as `3 h 12 min`, and backlog progress after an outage
//! (queue depth, drain rate, estimated time left) for the tray tooltip and `till-agent status`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, TimeZone};

use super::i18n::{self, Lang};
use super::plural::{self, Noun};

/// `45 s`, `12 min`, `3 h 12 min`, `2 d 5 h` — two units at most, no zero second unit.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match () {
        _ if s < 60 => format!("{s} s"),
        _ if s < 3600 => format!("{m} min"),
        _ if s < 86_400 && m == 0 => format!("{} h", s / 3600),
        _ if s < 86_400 => format!("{} h {m} min", s / 3600),
        _ if h == 0 => format!("{days} d"),
        _ => format!("{days} d {h} h"),
    }
}

/// Seconds (as stored / computed) as [`duration`]; negative counts as zero.
pub fn duration_secs(secs: i64) -> String {
    duration(Duration::from_secs(secs.max(0) as u64))
}

/// A moment in this computer's local time zone, in `lang`'s format.
pub fn local<Tz: TimeZone>(lang: Lang, t: &DateTime<Tz>) -> String {
    let l = t.with_timezone(&Local).fixed_offset();
    i18n::datetime(lang, &l)
}

/// An RFC 3339 timestamp (as the outbox stores them) in local time; anything else unchanged.
pub fn local_str(lang: Lang, rfc3339: &str) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => local(lang, &t),
        Err(_) => rfc3339.to_string(),
    }
}

/// Local time with seconds, for log lines: `23. 11. 2026 10:05:07` / `2026-11-23 10:05:07`.
pub fn local_secs(lang: Lang, rfc3339: &str) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let l = t.with_timezone(&Local);
            match lang {
                Lang::Cs | Lang::Sk => l.format("%-d.\u{a0}%-m.\u{a0}%Y %H:%M:%S").to_string(),
                Lang::Hr => l.format("%-d.\u{a0}%-m.\u{a0}%Y. %H:%M:%S").to_string(),
                Lang::En => l.format("%Y-%m-%d %H:%M:%S").to_string(),
            }
        }
        Err(_) => rfc3339.to_string(),
    }
}

/// How a backlog drains: the queue now, items sent per minute lately, time left at that rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    pub depth: u64,
    /// Items per minute (None: not enough samples, or not draining).
    pub per_min: Option<f64>,
    pub eta: Option<Duration>,
}

impl Backlog {
    /// From `sent` items over `window`, with `depth` left.
    pub fn from_rate(depth: u64, sent: u64, window: Duration) -> Backlog {
        let mins = window.as_secs_f64() / 60.0;
        let per_min = (sent > 0 && mins > 0.0).then(|| sent as f64 / mins);
        let eta = per_min
            .filter(|_| depth > 0)
            .map(|r| Duration::from_secs((depth as f64 / r * 60.0).ceil() as u64));
        Backlog { depth, per_min, eta }
    }

    /// `Ve frontě: 1 204 položek · 96/min · zbývá ~13 min` (only the depth when not draining).
    pub fn text(&self, lang: Lang) -> String {
        let mut s = format!(
            "{}: {}",
            i18n::t(lang, i18n::Key::QueueDepth),
            plural::count_u(lang, self.depth, Noun::Item)
        );
        if self.depth == 0 {
            return s;
        }
        if let Some(r) = self.per_min {
            s.push_str(&format!(
                " · {}/min",
                i18n::number(lang, rust_decimal::Decimal::from(r.round() as u64), None)
            ));
        }
        if let Some(eta) = self.eta {
            let left = match lang {
                Lang::Cs => "zbývá",
                Lang::Sk => "zostáva",
                Lang::Hr => "još",
                Lang::En => "left",
            };
            match lang {
                Lang::En => s.push_str(&format!(" · ~{} {left}", duration(eta))),
                _ => s.push_str(&format!(" · {left} ~{}", duration(eta))),
            }
        }
        s
    }
}

/// Queue-depth samples of a running agent (the GUI's status updates): the drain rate over the
/// last few minutes. Sent items are what left the queue (depth falls); new items raise it.
#[derive(Debug, Default)]
pub struct DrainMeter {
    /// (when, depth, items sent so far)
    samples: VecDeque<(Instant, u64, u64)>,
    sent_total: u64,
}

/// The window the drain rate is averaged over.
pub const DRAIN_WINDOW: Duration = Duration::from_secs(300);

impl DrainMeter {
    pub fn record(&mut self, at: Instant, depth: u64) {
        if let Some(&(_, prev, _)) = self.samples.back() {
            self.sent_total += prev.saturating_sub(depth);
        }
        self.samples.push_back((at, depth, self.sent_total));
        while self
            .samples
            .front()
            .is_some_and(|(t, ..)| at.duration_since(*t) > DRAIN_WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    pub fn backlog(&self) -> Backlog {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, _, s0)), Some(&(t1, depth, s1))) if t1 > t0 => {
                Backlog::from_rate(depth, s1 - s0, t1.duration_since(t0))
            }
            (_, Some(&(_, depth, _))) => Backlog {
                depth,
                per_min: None,
                eta: None,
            },
            _ => Backlog {
                depth: 0,
                per_min: None,
                eta: None,
            },
        }
    }
}

/// The window `till-agent status` measures the drain rate over.
pub const STATUS_DRAIN_WINDOW: Duration = Duration::from_secs(600);

/// The backlog as the outbox shows it now: items waiting, and items the server acknowledged
/// in the last [`STATUS_DRAIN_WINDOW`] (`sent_at`, RFC 3339 UTC) as the drain rate.
pub fn backlog_from_outbox(db: &std::path::Path) -> anyhow::Result<Backlog> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let since = (chrono::Utc::now() - chrono::Duration::from_std(STATUS_DRAIN_WINDOW)?)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (depth, sent): (i64, i64) = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM items WHERE state='pending'), (SELECT COUNT(*) FROM items WHERE state='sent' AND sent_at >= ?1)",
        [since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Backlog::from_rate(depth as u64, sent as u64, STATUS_DRAIN_WINDOW))
}

/// The backlog line of `till-agent status` (English, like the rest of the CLI):
/// `1200 waiting · 96/min · about 13 min left`.
pub fn backlog_en(b: &Backlog) -> String {
    let mut s = format!("{} waiting", b.depth);
    if b.depth == 0 {
        return s;
    }
    match b.per_min {
        Some(r) => s.push_str(&format!(
            " · {r:.0}/min over the last {}",
            duration(STATUS_DRAIN_WINDOW)
        )),
        None => s.push_str(&format!(" · none sent in the last {}", duration(STATUS_DRAIN_WINDOW))),
    }
    if let Some(eta) = b.eta {
        s.push_str(&format!(" · about {} left", duration(eta)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        let d = |s| duration(Duration::from_secs(s));
        assert_eq!(d(0), "0 s");
        assert_eq!(d(45), "45 s");
        assert_eq!(d(60), "1 min");
        assert_eq!(d(11_520), "3 h 12 min");
        assert_eq!(d(7200), "2 h");
        assert_eq!(d(273_600), "3 d 4 h");
        assert_eq!(d(172_800), "2 d");
        assert_eq!(duration_secs(-5), "0 s");
    }

    #[test]
    fn local_times_use_the_local_zone_and_the_language() {
        let t = "2026-11-23T09:05:07Z";
        let want = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Local);
        assert_eq!(local_str(Lang::En, t), want.format("%Y-%m-%d %H:%M").to_string());
        assert_eq!(
            local_secs(Lang::Cs, t),
            want.format("%-d.\u{a0}%-m.\u{a0}%Y %H:%M:%S").to_string()
        );
        assert_eq!(local_str(Lang::Cs, "not a time"), "not a time");
    }

    #[test]
    fn backlog_drain_rate_and_eta() {
        let b = Backlog::from_rate(1200, 480, Duration::from_secs(300));
        assert_eq!(b.per_min, Some(96.0));
        assert_eq!(b.eta, Some(Duration::from_secs(750)));
        assert_eq!(
            b.text(Lang::Cs),
            "Ve frontě: 1\u{a0}200\u{a0}položek · 96/min · zbývá ~12 min"
        );
        assert_eq!(b.text(Lang::En), "Queued: 1,200\u{a0}items · 96/min · ~12 min left");
        let idle = Backlog::from_rate(0, 0, Duration::from_secs(300));
        assert_eq!(idle.text(Lang::Sk), "Vo fronte: 0\u{a0}položiek");

        assert_eq!(
            backlog_en(&b),
            "1200 waiting · 96/min over the last 10 min · about 12 min left"
        );
        assert_eq!(
            backlog_en(&Backlog::from_rate(5, 0, STATUS_DRAIN_WINDOW)),
            "5 waiting · none sent in the last 10 min"
        );

        let mut m = DrainMeter::default();
        let t0 = Instant::now();
        m.record(t0, 600);
        m.record(t0 + Duration::from_secs(60), 550); // 50 sent
        m.record(t0 + Duration::from_secs(90), 560); // 10 new receipts came in
        m.record(t0 + Duration::from_secs(120), 500); // 60 sent
        let b = m.backlog();
        assert_eq!(b.depth, 500);
        assert_eq!(b.per_min, Some(55.0));
        assert_eq!(b.eta, Some(Duration::from_secs(546)));
    }
}
