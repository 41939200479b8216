//! The till's time zone, for times a POS writes without an offset.
//!
//! An IANA zone (`timezone = "Europe/Prague"` in agent.toml; default the OS zone: `TZ` if it names
//! an IANA zone, else the system setting) resolves each naive time by the rules of ITS OWN date, so
//! a receipt gets the same UTC instant — and the same `ReceiptId` — whatever the season it is read
//! in. The two hours a year that are not one-to-one:
//! - **autumn, repeated hour** (Europe/Prague 25.10.2026 02:00–02:59 happens twice): the EARLIER
//!   one (still summer time, +02:00) is taken. A POS writing local time without an offset cannot
//!   say which it meant; taking always the same one keeps the id stable on a re-export.
//! - **spring, missing hour** (29.03.2026 02:00–02:59 does not exist): read with the offset in
//!   force BEFORE the change (+01:00), as written by a POS whose clock had not moved yet: 02:30 →
//!   02:30+01:00 (= 03:30+02:00).
//!
//! `tz_offset = "+01:00"` (a fixed offset, the old setting) is still accepted and applies one
//! offset all year.

use std::fmt;

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LocalZone {
    /// One offset all year (`tz_offset`).
    Fixed(FixedOffset),
    /// An IANA zone with its summer-time rules.
    Iana(chrono_tz::Tz),
}

impl fmt::Debug for LocalZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for LocalZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalZone::Fixed(o) => write!(f, "{o}"),
            LocalZone::Iana(tz) => f.write_str(tz.name()),
        }
    }
}

impl From<FixedOffset> for LocalZone {
    fn from(o: FixedOffset) -> LocalZone {
        LocalZone::Fixed(o)
    }
}

impl LocalZone {
    /// An IANA zone name (`Europe/Prague`, `UTC`).
    pub fn parse(name: &str) -> Option<LocalZone> {
        name.trim().parse::<chrono_tz::Tz>().ok().map(LocalZone::Iana)
    }

    /// The OS zone: `TZ` when it names an IANA zone (`TZ=Europe/Prague`, `:Europe/Prague`), else the
    /// system's zone, else (no zone name available) today's fixed local offset.
    pub fn os_default() -> LocalZone {
        std::env::var("TZ")
            .ok()
            .and_then(|t| LocalZone::parse(t.trim_start_matches(':')))
            .or_else(|| iana_time_zone::get_timezone().ok().and_then(|n| LocalZone::parse(&n)))
            .unwrap_or_else(|| LocalZone::Fixed(*chrono::Local::now().offset()))
    }

    /// The local date at instant `now` in this zone.
    pub fn date_at(&self, now: DateTime<chrono::Utc>) -> chrono::NaiveDate {
        match self {
            LocalZone::Fixed(o) => now.with_timezone(o).date_naive(),
            LocalZone::Iana(tz) => now.with_timezone(tz).date_naive(),
        }
    }

    /// The local time at instant `now` in this zone, with its offset.
    pub fn at(&self, now: DateTime<chrono::Utc>) -> DateTime<FixedOffset> {
        match self {
            LocalZone::Fixed(o) => now.with_timezone(o),
            LocalZone::Iana(tz) => now.with_timezone(tz).fixed_offset(),
        }
    }

    /// The instant of a local time written without an offset (see the module docs for the repeated
    /// and the missing hour).
    pub fn resolve(&self, naive: &NaiveDateTime) -> Option<DateTime<FixedOffset>> {
        match self {
            LocalZone::Fixed(o) => o.from_local_datetime(naive).single(),
            LocalZone::Iana(tz) => match tz.from_local_datetime(naive) {
                LocalResult::Single(d) => Some(d.fixed_offset()),
                LocalResult::Ambiguous(earlier, _) => Some(earlier.fixed_offset()),
                LocalResult::None => {
                    // In the spring gap: the offset in force a day before (no zone changes twice a day).
                    let before = naive.checked_sub_signed(Duration::hours(26))?;
                    let off = tz.offset_from_utc_datetime(&before).fix();
                    off.from_local_datetime(naive).single()
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prague(s: &str) -> String {
        let z = LocalZone::parse("Europe/Prague").unwrap();
        let n = NaiveDateTime::parse_from_str(s, "%d.%m.%Y %H:%M").unwrap();
        z.resolve(&n).unwrap().to_rfc3339()
    }

    #[test]
    fn each_time_by_the_rules_of_its_own_date() {
        assert_eq!(prague("25.10.2026 01:30"), "2026-10-25T01:30:00+02:00");
        assert_eq!(
            prague("25.10.2026 02:30"),
            "2026-10-25T02:30:00+02:00",
            "repeated hour: the earlier"
        );
        assert_eq!(prague("25.10.2026 03:30"), "2026-10-25T03:30:00+01:00");
        assert_eq!(prague("29.03.2026 01:30"), "2026-03-29T01:30:00+01:00");
        assert_eq!(
            prague("29.03.2026 02:30"),
            "2026-03-29T02:30:00+01:00",
            "missing hour: offset before"
        );
        assert_eq!(prague("29.03.2026 03:30"), "2026-03-29T03:30:00+02:00");
        assert_eq!(prague("15.07.2026 12:00"), "2026-07-15T12:00:00+02:00");
        assert_eq!(prague("15.11.2026 12:00"), "2026-11-15T12:00:00+01:00");
        assert_eq!(LocalZone::parse("Mars/Olympus"), None);
        assert_eq!(
            LocalZone::parse(" Europe/Bratislava ").unwrap().to_string(),
            "Europe/Bratislava"
        );
    }
}
