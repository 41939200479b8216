//! Admin reports, each as a table (columns + rows) rendered to JSON or CSV.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::service::birthday_in;
use crate::store::{read, Repository};

pub const REPORTS: &[(&str, &str)] = &[
    (
        "cards-issued",
        "cards issued per store in [from, to] (by issue date, UTC)",
    ),
    (
        "points-ranking",
        "accounts by points balance, highest first (limit, default 100)",
    ),
    (
        "birthdays",
        "customers with a birthday in [from, to] (month and day; the range may span New Year)",
    ),
    (
        "turnover",
        "turnover and receipt count per store per business day in [from, to]",
    ),
    ("campaigns", "receipts and credited points per campaign in [from, to]"),
    (
        "redeemed",
        "redemptions (not voided), points and value per store in [from, to] (business day)",
    ),
    (
        "unmatched-redemptions",
        "redemptions no receipt confirmed, older than `hours` (default 24), not voided",
    ),
    (
        "overdrawn",
        "accounts below zero (two offline tills redeemed the same points), lowest first",
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn to_json(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                Value::Object(
                    self.columns
                        .iter()
                        .map(|c| c.to_string())
                        .zip(r.iter().cloned())
                        .collect(),
                )
            })
            .collect();
        json!({ "report": self.name, "from": from, "to": to, "rows": rows })
    }

    pub fn to_csv(&self) -> Result<String, ApiError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let map = |e: csv::Error| ApiError::internal(format!("csv: {e}"));
        w.write_record(&self.columns).map_err(map)?;
        for r in &self.rows {
            w.write_record(r.iter().map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            }))
            .map_err(map)?;
        }
        let bytes = w.into_inner().map_err(|e| ApiError::internal(format!("csv: {e}")))?;
        Ok(String::from_utf8(bytes).expect("csv of utf-8 strings"))
    }
}

pub struct Params {
    pub hours: Option<u32>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub limit: Option<usize>,
}

/// The report's days: `to` defaults to today (server time), `from` to 30 days before `to`.
/// A report sum that leaves the decimal range is a clear error, never a panic.
fn sum_checked(acc: Decimal, v: Decimal, column: &str) -> Result<Decimal, ApiError> {
    acc.checked_add(v).ok_or_else(|| {
        ApiError::unprocessable(
            "overflow",
            format!("the {column} column overflows the decimal range ({acc} + {v}); narrow the date range"),
            Some(column),
        )
    })
}

fn range(p: &Params) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = p.to.unwrap_or_else(|| chrono::Local::now().date_naive());
    let from = p.from.unwrap_or(to - chrono::Days::new(30));
    Ok((from, to))
}

fn dec(d: Decimal) -> Value {
    Value::String(d.normalize().to_string())
}

pub fn run(repo: &dyn Repository, name: &str, p: &Params) -> Result<Table, ApiError> {
    let table = |columns: Vec<&'static str>, rows: Vec<Vec<Value>>| Table {
        name: name.to_string(),
        columns,
        rows,
    };
    match name {
        "cards-issued" => {
            let (from, to) = range(p)?;
            let start = Utc.from_utc_datetime(&from.and_time(NaiveTime::MIN));
            let end = Utc.from_utc_datetime(&(to + chrono::Days::new(1)).and_time(NaiveTime::MIN));
            let cards = read(repo, |tx| Ok(tx.cards_issued_between(start, end)?))?;
            let mut per: BTreeMap<String, u64> = BTreeMap::new();
            for c in cards {
                *per.entry(c.issued_store.map(|s| s.0).unwrap_or_default()).or_default() += 1;
            }
            Ok(table(
                vec!["store_id", "cards"],
                per.into_iter().map(|(s, n)| vec![json!(s), json!(n)]).collect(),
            ))
        }
        "points-ranking" => {
            let limit = p.limit.unwrap_or(100);
            let mut rows = read(repo, |tx| Ok(tx.all_customers()?))?;
            rows.retain(|r| r.customer.parent.is_none());
            rows.sort_by(|a, b| {
                b.state
                    .points_balance
                    .cmp(&a.state.points_balance)
                    .then(a.customer.id.cmp(&b.customer.id))
            });
            Ok(table(
                vec!["rank", "customer_id", "name", "tier", "points_balance"],
                rows.into_iter()
                    .take(limit)
                    .enumerate()
                    .map(|(i, r)| {
                        vec![
                            json!(i + 1),
                            json!(r.customer.id.0),
                            json!(r.customer.name.display()),
                            json!(r.customer.tier),
                            dec(r.state.points_balance),
                        ]
                    })
                    .collect(),
            ))
        }
        "birthdays" => {
            // `to` before `from` is an empty window: no rows.
            let (from, to) = range(p)?;
            let rows = read(repo, |tx| Ok(tx.all_customers()?))?;
            let mut out = Vec::new();
            for r in rows {
                let Some(b) = r.customer.birthday else { continue };
                // The first occurrence of the birthday inside [from, to].
                let hit = (from.year()..=to.year())
                    .map(|y| birthday_in(b, y))
                    .find(|d| *d >= from && *d <= to);
                if let Some(d) = hit {
                    out.push((d, r));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.customer.id.cmp(&b.1.customer.id)));
            Ok(table(
                vec!["date", "customer_id", "name", "birthday", "email", "phone"],
                out.into_iter()
                    .map(|(d, r)| {
                        vec![
                            json!(d),
                            json!(r.customer.id.0),
                            json!(r.customer.name.display()),
                            json!(r.customer.birthday),
                            json!(r.customer.contact.email),
                            json!(r.customer.contact.phone),
                        ]
                    })
                    .collect(),
            ))
        }
        "turnover" => {
            let (from, to) = range(p)?;
            let facts = read(repo, |tx| Ok(tx.receipts_between(from, to)?))?;
            let mut per: BTreeMap<(String, NaiveDate), (u64, Decimal)> = BTreeMap::new();
            for f in facts {
                let e = per.entry((f.store_id.0, f.business_day)).or_default();
                e.0 += 1;
                e.1 = sum_checked(e.1, f.turnover, "turnover")?;
            }
            Ok(table(
                vec!["store_id", "day", "receipts", "turnover"],
                per.into_iter()
                    .map(|((s, d), (n, t))| vec![json!(s), json!(d), json!(n), dec(t)])
                    .collect(),
            ))
        }
        "campaigns" => {
            let (from, to) = range(p)?;
            let facts = read(repo, |tx| Ok(tx.receipts_between(from, to)?))?;
            let mut per: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
            for f in facts {
                if let Some(c) = f.campaign {
                    let e = per.entry(c).or_default();
                    e.0 += 1;
                    e.1 = sum_checked(e.1, f.points_credited, "points")?;
                }
            }
            Ok(table(
                vec!["campaign", "receipts", "points"],
                per.into_iter()
                    .map(|(c, (n, pts))| vec![json!(c), json!(n), dec(pts)])
                    .collect(),
            ))
        }
        "redeemed" => {
            let (from, to) = range(p)?;
            let mut per: BTreeMap<String, (u64, Decimal, Decimal, u64)> = BTreeMap::new();
            for r in crate::ledger::redemptions(repo)? {
                if r.voided_at.is_some() || r.business_day < from || r.business_day > to {
                    continue;
                }
                let e = per.entry(r.store_id.0).or_default();
                e.0 += 1;
                e.1 += r.points;
                e.2 += r.value;
                e.3 += u64::from(r.offline);
            }
            Ok(table(
                vec!["store_id", "redemptions", "points", "value", "offline"],
                per.into_iter()
                    .map(|(s, (n, pts, val, off))| vec![json!(s), json!(n), dec(pts), dec(val), json!(off)])
                    .collect(),
            ))
        }
        "unmatched-redemptions" => {
            let cutoff = Utc::now() - chrono::Duration::hours(i64::from(p.hours.unwrap_or(24)));
            let rows = crate::ledger::redemptions(repo)?
                .into_iter()
                .filter(|r| r.voided_at.is_none() && r.matched_receipt.is_none() && r.created_at <= cutoff)
                .map(|r| {
                    vec![
                        json!(r.id),
                        json!(r.code),
                        json!(r.store_id.0),
                        json!(r.till_id.0),
                        json!(r.card.to_string()),
                        json!(r.account_id.0),
                        dec(r.points),
                        dec(r.value),
                        json!(r.offline),
                        json!(r.requested_at),
                    ]
                })
                .collect();
            Ok(table(
                vec![
                    "redemption_id",
                    "code",
                    "store_id",
                    "till_id",
                    "card",
                    "account_id",
                    "points",
                    "value",
                    "offline",
                    "requested_at",
                ],
                rows,
            ))
        }
        "overdrawn" => {
            let mut rows = read(repo, |tx| Ok(tx.all_customers()?))?;
            rows.retain(|r| r.state.points_balance < Decimal::ZERO);
            rows.sort_by(|a, b| {
                a.state
                    .points_balance
                    .cmp(&b.state.points_balance)
                    .then(a.customer.id.cmp(&b.customer.id))
            });
            Ok(table(
                vec!["customer_id", "name", "points_balance"],
                rows.into_iter()
                    .map(|r| {
                        vec![
                            json!(r.customer.id.0),
                            json!(r.customer.name.display()),
                            dec(r.state.points_balance),
                        ]
                    })
                    .collect(),
            ))
        }
        other => Err(ApiError::not_found(
            "unknown_report",
            format!(
                "no report {other:?}; known: {}",
                REPORTS.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
            ),
            Some("report"),
        )),
    }
}
