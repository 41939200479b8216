//! The loyalty rules engine: pure functions over a [`RulesSnapshot`] and a customer's
//! [`CustomerState`]. The server applies receipts with it; the till computes offline quotes with
//! it. Same inputs, same numbers — there is one engine.
//!
//! Conventions:
//! - Signs follow the receipt (see `v1`): sale lines positive, return lines negative, so a
//!   receipt's `points_delta` and `turnover_delta` are negative for a return.
//! - Coefficients are *percent of line value*: 100 = 1 point per currency unit
//!   (100 % of 100 € = 100 points, 10 % = 10, 500 % = 500). Item beats category beats the
//!   program default; a base coefficient of 0 means no points at all, campaigns included.
//! - Rounding: points are computed per line and rounded to 2 decimals half-away-from-zero,
//!   which is sign-symmetric, then summed — so line order never matters and a sale followed by
//!   its full return nets exactly zero. Partial returns reverse cumulatively (see
//!   [`evaluate_return_after`]).
//! - One campaign per receipt: the applicable campaign (active, valid, day, hour, minimum total)
//!   with the lowest priority number that covers at least one earning line; its coefficient
//!   replaces the base one on the lines in its scope.
//! - Balances never go below zero unless the program allows it; expiring campaign points are
//!   always part of the balance.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Weekday};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::ids::CardPolicy;
use crate::ids::CustomerId;
use crate::money::Currency;
/// Defined with the wire types (a quote's redeem options carry it).
pub use crate::v1::RewardKind;
use crate::v1::{
    CashierMessage, Customer, CustomerQuote, CustomerState, ExpiringPoints, LineKind, MessageWhat, Receipt,
    ReceiptLine, RedeemOption,
};

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// A versioned copy of the program's rules. The server serves it with an ETag = `version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RulesSnapshot {
    pub version: u64,
    pub program: Program,
    /// Hex key for the contact lookup keys in the change feed (`contact::contact_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub name: String,
    pub currency: Currency,
    #[serde(default)]
    pub card_policy: CardPolicy,
    /// Ascending by threshold; the first tier's threshold is normally 0.
    #[cfg_attr(feature = "schema", schema(min_items = 1))]
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub turnover_window: TurnoverWindow,
    /// Default points coefficient in percent of line value (100 = 1 point per currency unit).
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub default_points_percent: Decimal,
    /// Points coefficient per SKU (percent). 0 = no points for that item.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = BTreeMap<String, crate::money::DecimalString>))]
    pub item_points_percent: BTreeMap<String, Decimal>,
    /// Points coefficient per category (percent), used when the item has none.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = BTreeMap<String, crate::money::DecimalString>))]
    pub category_points_percent: BTreeMap<String, Decimal>,
    #[serde(default)]
    pub campaigns: Vec<Campaign>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemption: Option<Redemption>,
    /// May a balance go below zero (e.g. a return after the points were redeemed)?
    #[serde(default)]
    pub allow_negative_balance: bool,
    /// Receipt tags, purchases before registration, the phone numbers' country.
    #[serde(default)]
    pub purchases: PurchaseSettings,
}

/// Program settings for purchases that reach an account late or without a scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct PurchaseSettings {
    /// A tag with a total whose receipt has not arrived after this many minutes counts as a
    /// totals-only receipt (default 1440 = one day).
    pub tag_total_wait_minutes: u32,
    /// Receipts of a valid but unknown or unassigned card are credited when the card is
    /// registered or paired within this many days of the purchase (default 30).
    pub unmatched_window_days: u32,
    /// ISO 3166 alpha-2 country of national phone numbers (default `CZ`).
    pub phone_country: String,
}

impl Default for PurchaseSettings {
    fn default() -> Self {
        PurchaseSettings {
            tag_total_wait_minutes: 1440,
            unmatched_window_days: 30,
            phone_country: "CZ".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    /// Accumulated turnover (in the program currency) from which this tier applies.
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub threshold: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub discount_percent: Decimal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnoverWindow {
    #[default]
    Lifetime,
    /// The current calendar month and the `months - 1` before it.
    RollingMonths { months: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub active: bool,
    /// Lower number wins; 1 is the highest priority.
    pub priority: u32,
    /// Minimum receipt total for the campaign to apply.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub min_receipt_total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<FixedOffset>>,
    /// Days of week (`Mon`..`Sun`); empty = every day.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Vec<WeekdayName>))]
    pub days_of_week: Vec<Weekday>,
    /// Hours of day `[from, to)` in the receipt's local time; wraps past midnight when
    /// `from > to`; None = all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(min_items = 2, max_items = 2))]
    pub hours: Option<(u32, u32)>,
    /// Points credited by this campaign expire after this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_expire_days: Option<u32>,
    pub scope: CampaignScope,
    /// Points coefficient (percent of line value) for in-scope lines, replacing the base one.
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points_percent: Decimal,
}

/// A weekday as the wire writes it (chrono's `Weekday`); for the OpenAPI schema only.
#[cfg(feature = "schema")]
#[derive(utoipa::ToSchema)]
pub enum WeekdayName {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CampaignScope {
    Items { skus: Vec<String> },
    Categories { categories: Vec<String> },
    AllMembers,
}

/// Points → reward conversion, e.g. 100 points = 10 EUR (fixed amount), or 500 points = 10 %
/// off the next purchase (`percent_discount`). `min_points` is the threshold below which
/// nothing can be redeemed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Redemption {
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub value: Decimal,
    pub reward: RewardKind,
    /// Smallest number of points that can be redeemed (the "next reward").
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub min_points: Decimal,
    /// Points a till may redeem offline per card per day (its own redemptions, counted on the
    /// till); 0 disables offline redemption.
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub offline_redemption_limit: Decimal,
    /// A receipt of the same store with the card (or the redemption code in a discount line)
    /// issued within this many minutes after the redemption confirms it. Default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_window_minutes: Option<u32>,
}

impl Redemption {
    pub const DEFAULT_MATCH_WINDOW_MINUTES: u32 = 120;

    pub fn match_window_minutes(&self) -> u32 {
        self.match_window_minutes.unwrap_or(Self::DEFAULT_MATCH_WINDOW_MINUTES)
    }
}

/// Points computed for one line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LinePoints {
    /// Index of the line in the receipt's `lines` (0 for a totals-only receipt).
    pub index: usize,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points: Decimal,
    pub campaign: Option<String>,
}

/// What a receipt does to its customer's account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ReceiptEffect {
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub turnover_delta: Decimal,
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points_delta: Decimal,
    pub lines: Vec<LinePoints>,
    /// The campaign that applied (lowest priority number among the applicable ones).
    pub campaign: Option<String>,
    /// Campaign points with an expiry date (part of `points_delta`).
    pub expiring: Option<ExpiringPoints>,
    /// The day whose calendar month the turnover is booked to. `None` = the day passed to
    /// [`apply_effect`]. Returns set it to the original receipt's day, so a rolling window
    /// loses the turnover exactly where it was earned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turnover_on: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TierChange {
    pub from: String,
    pub to: String,
    pub upgrade: bool,
}

/// A configuration problem in a [`Program`], naming the offending field
/// (e.g. `program.tiers[2].threshold`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RulesError {
    pub field: String,
    pub message: String,
}

/// A receipt or account value that leaves the decimal range (about ±7.9·10^28) while the
/// engine computes with it. Names the field (`receipt.lines[1].line_total`,
/// `account.points_balance`, …) and its value; the server rejects that one item with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value} overflows the decimal range ({op})")]
pub struct Overflow {
    pub field: String,
    pub value: String,
    /// What was being computed (`sum of line totals`, `line total × points coefficient`, …).
    pub op: String,
}

fn overflow(field: impl Into<String>, value: impl std::fmt::Display, op: &str) -> Overflow {
    Overflow {
        field: field.into(),
        value: value.to_string(),
        op: op.to_string(),
    }
}

/// `Some(v)` or an [`Overflow`] naming `field` = `value`.
fn ck(v: Option<Decimal>, field: impl FnOnce() -> String, value: Decimal, op: &str) -> Result<Decimal, Overflow> {
    v.ok_or_else(|| overflow(field(), value, op))
}

/// Sum of `line_total` over the receipt's lines that pass `keep`, checked.
fn sum_line_totals(receipt: &Receipt, keep: impl Fn(&ReceiptLine) -> bool, op: &str) -> Result<Decimal, Overflow> {
    let mut acc = Decimal::ZERO;
    for (i, l) in receipt.lines.iter().enumerate().filter(|(_, l)| keep(l)) {
        acc = ck(
            acc.checked_add(l.line_total),
            || format!("receipt.lines[{i}].line_total"),
            l.line_total,
            op,
        )?;
    }
    Ok(acc)
}

/// `round2(value × factor × pct / 100)`, checked (same operation order as ever, so the same
/// numbers where nothing overflows).
fn line_points(value: Decimal, factor: Decimal, pct: Decimal, field: impl Fn() -> String) -> Result<Decimal, Overflow> {
    let op = "line value × discount factor × points coefficient";
    let v = ck(value.checked_mul(factor), &field, value, op)?;
    let v = ck(v.checked_mul(pct), &field, value, op)?;
    let v = ck(v.checked_div(HUNDRED), &field, value, op)?;
    Ok(round_points(v))
}

/// The result of a redemption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Redeemed {
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub points_used: Decimal,
    /// An amount in the program currency (voucher / discount), or a percentage
    /// ([`RewardKind::PercentDiscount`]).
    #[cfg_attr(feature = "schema", schema(value_type = crate::money::DecimalString))]
    pub value: Decimal,
    pub reward: RewardKind,
}

/// Points are kept with 2 decimals, rounded half away from zero (sign-symmetric).
pub fn round_points(p: Decimal) -> Decimal {
    p.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The `YYYY-MM` key of month `i` (`year * 12 + month0`, years 0–9999) without `format!` (the
/// rolling window's bounds, twice per receipt credited).
fn month_text(i: i64) -> [u8; 7] {
    let mut out = *b"0000-00";
    crate::ids::put_digits(&mut out[..4], (i / 12) as u32);
    crate::ids::put_digits(&mut out[5..], (i % 12 + 1) as u32);
    out
}

/// The tier returned for a program without tiers: "no tier", 0 %.
static NO_TIER: Tier = Tier {
    name: String::new(),
    threshold: Decimal::ZERO,
    discount_percent: Decimal::ZERO,
};

impl Program {
    /// The tier for an accumulated turnover: the one with the highest threshold not above it;
    /// below every threshold, the lowest tier. Order of `tiers` does not matter.
    pub fn tier_for(&self, turnover: Decimal) -> &Tier {
        let reached = self
            .tiers
            .iter()
            .filter(|t| t.threshold <= turnover)
            .max_by(|a, b| a.threshold.cmp(&b.threshold));
        reached
            .or_else(|| self.tiers.iter().min_by(|a, b| a.threshold.cmp(&b.threshold)))
            .unwrap_or(&NO_TIER)
    }

    /// The next tier above the one for `turnover`, if any.
    pub fn next_tier(&self, turnover: Decimal) -> Option<&Tier> {
        let current = self.tier_for(turnover).threshold;
        self.tiers
            .iter()
            .filter(|t| t.threshold > turnover && t.threshold > current)
            .min_by(|a, b| a.threshold.cmp(&b.threshold))
    }

    /// The base points coefficient for a line: item, else category, else program default.
    pub fn base_points_percent(&self, sku: Option<&str>, category: Option<&str>) -> Decimal {
        if let Some(p) = sku.and_then(|s| self.item_points_percent.get(s)) {
            return *p;
        }
        if let Some(p) = category.and_then(|c| self.category_points_percent.get(c)) {
            return *p;
        }
        self.default_points_percent
    }

    /// Campaigns whose conditions (active, validity, day, hour, minimum total) hold for a
    /// receipt issued at `at` with `total`, best (lowest priority number, then id) first.
    /// Scope is not checked here; see [`Program::winning_campaign`].
    pub fn applicable_campaigns(&self, at: &DateTime<FixedOffset>, total: Decimal) -> Vec<&Campaign> {
        let mut v: Vec<&Campaign> = self.campaigns.iter().filter(|c| c.applies_at(at, total)).collect();
        v.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.id.cmp(&b.id)));
        v
    }

    /// The one campaign that applies to a receipt: the applicable campaign with the lowest
    /// priority number that covers at least one earning line (a line whose base coefficient is
    /// not 0). A totals-only receipt can only get an `all_members` campaign.
    pub fn winning_campaign(&self, receipt: &Receipt) -> Option<&Campaign> {
        let candidates = self.applicable_campaigns(&receipt.issued_at, receipt.total);
        if receipt.is_totals_only() {
            return candidates.into_iter().find(|c| c.covers(None, None));
        }
        candidates.into_iter().find(|c| {
            receipt.lines.iter().filter(|l| is_item(l.kind)).any(|l| {
                let (sku, cat) = (l.sku.as_deref(), l.category.as_deref());
                !self.base_points_percent(sku, cat).is_zero() && c.covers(sku, cat)
            })
        })
    }

    /// Check the program for configuration mistakes. Every problem names its field.
    pub fn validate(&self) -> Result<(), Vec<RulesError>> {
        let mut errs = Vec::new();
        let mut err = |field: String, message: &str| {
            errs.push(RulesError {
                field,
                message: message.to_string(),
            })
        };
        if self.tiers.is_empty() {
            err("program.tiers".into(), "at least one tier is required");
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.threshold.is_sign_negative() {
                err(format!("program.tiers[{i}].threshold"), "must not be negative");
            }
            if t.discount_percent.is_sign_negative() || t.discount_percent > HUNDRED {
                err(
                    format!("program.tiers[{i}].discount_percent"),
                    "must be between 0 and 100",
                );
            }
            if self.tiers[..i].iter().any(|o| o.threshold == t.threshold) {
                err(
                    format!("program.tiers[{i}].threshold"),
                    "two tiers have the same threshold",
                );
            }
            if self.tiers[..i].iter().any(|o| o.name == t.name) {
                err(format!("program.tiers[{i}].name"), "two tiers have the same name");
            }
        }
        if let TurnoverWindow::RollingMonths { months: 0 } = self.turnover_window {
            err("program.turnover_window.months".into(), "must be at least 1");
        }
        if self.default_points_percent.is_sign_negative() {
            err("program.default_points_percent".into(), "must not be negative");
        }
        for (k, v) in &self.item_points_percent {
            if v.is_sign_negative() {
                err(format!("program.item_points_percent.{k}"), "must not be negative");
            }
        }
        for (k, v) in &self.category_points_percent {
            if v.is_sign_negative() {
                err(format!("program.category_points_percent.{k}"), "must not be negative");
            }
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            if self.campaigns[..i].iter().any(|o| o.id == c.id) {
                err(format!("program.campaigns[{i}].id"), "two campaigns have the same id");
            }
            if c.points_percent.is_sign_negative() {
                err(format!("program.campaigns[{i}].points_percent"), "must not be negative");
            }
            if let (Some(f), Some(t)) = (c.valid_from, c.valid_to) {
                if f > t {
                    err(format!("program.campaigns[{i}].valid_to"), "is before valid_from");
                }
            }
            if let Some((f, t)) = c.hours {
                if f > 23 || t > 24 {
                    err(
                        format!("program.campaigns[{i}].hours"),
                        "hours are 0..=23 (from) and 0..=24 (to)",
                    );
                }
            }
        }
        if let Some(r) = &self.redemption {
            if r.points <= Decimal::ZERO {
                err("program.redemption.points".into(), "must be positive");
            }
            if r.value <= Decimal::ZERO {
                err("program.redemption.value".into(), "must be positive");
            }
            if r.reward == RewardKind::PercentDiscount && r.value > HUNDRED {
                err(
                    "program.redemption.value".into(),
                    "a percentage discount must be at most 100",
                );
            }
            if r.min_points.is_sign_negative() {
                err("program.redemption.min_points".into(), "must not be negative");
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

fn is_item(kind: LineKind) -> bool {
    matches!(kind, LineKind::Sale | LineKind::Return)
}

impl Campaign {
    /// Time, active flag and minimum receipt total (scope is [`Campaign::covers`]).
    /// `valid_from`/`valid_to` are inclusive; `hours` is `[from, to)` in the receipt's own
    /// offset and wraps past midnight when `from > to` (`(22, 2)` = 22:00–01:59).
    pub fn applies_at(&self, at: &DateTime<FixedOffset>, total: Decimal) -> bool {
        if !self.active || total < self.min_receipt_total {
            return false;
        }
        if self.valid_from.is_some_and(|f| *at < f) || self.valid_to.is_some_and(|t| *at > t) {
            return false;
        }
        if !self.days_of_week.is_empty() && !self.days_of_week.contains(&at.weekday()) {
            return false;
        }
        if let Some((from, to)) = self.hours {
            let h = at.hour();
            let inside = if from <= to {
                from <= h && h < to
            } else {
                h >= from || h < to
            };
            if !inside {
                return false;
            }
        }
        true
    }

    pub fn covers(&self, sku: Option<&str>, category: Option<&str>) -> bool {
        match &self.scope {
            CampaignScope::AllMembers => true,
            CampaignScope::Items { skus } => sku.is_some_and(|s| skus.iter().any(|x| x == s)),
            CampaignScope::Categories { categories } => category.is_some_and(|c| categories.iter().any(|x| x == c)),
        }
    }
}

/// Family / company cards: the account a customer's purchases earn into — the parent account
/// when the customer has one, else the customer's own. Turnover, tier and points all live on
/// that account; a sub-card has no balance of its own.
pub fn earning_account(customer: &Customer) -> &CustomerId {
    customer.parent.as_ref().unwrap_or(&customer.id)
}

/// Like [`earning_account`] but follows parent chains (a sub-card of a sub-card) through
/// `lookup`, stopping at a customer without parent, an unknown parent, or a cycle.
pub fn resolve_earning_account<'a>(
    customer: &'a Customer,
    lookup: impl Fn(&CustomerId) -> Option<&'a Customer>,
) -> &'a CustomerId {
    let mut cur = customer;
    let mut seen = vec![&customer.id];
    while let Some(p) = cur.parent.as_ref() {
        if seen.contains(&p) {
            return p;
        }
        seen.push(p);
        match lookup(p) {
            Some(next) => cur = next,
            None => return p,
        }
    }
    &cur.id
}

/// Turnover inside the program's window as of `at`. Saturates at the decimal range (a tier
/// lookup needs no more); [`try_apply_effect`] refuses to book a month that would overflow.
pub fn turnover(program: &Program, state: &CustomerState, at: NaiveDate) -> Decimal {
    match program.turnover_window {
        TurnoverWindow::Lifetime => state
            .turnover_by_month
            .values()
            .fold(Decimal::ZERO, |a, v| a.saturating_add(*v)),
        TurnoverWindow::RollingMonths { months } => {
            let newest = at.year() as i64 * 12 + at.month0() as i64;
            let oldest = newest - (months as i64 - 1);
            if months == 0 || oldest < 0 || newest >= 10_000 * 12 {
                return rolling_turnover_by_keys(state, at, months);
            }
            // Four-digit years: "YYYY-MM" keys sort as the months do, so the window is one range
            // of the map (newest first, as the month-by-month sum adds them). Keys that are not
            // months are skipped, as the month-by-month lookup never finds them.
            let (from, to) = (month_text(oldest), month_text(newest));
            let (from, to) = (
                std::str::from_utf8(&from).expect("ASCII"),
                std::str::from_utf8(&to).expect("ASCII"),
            );
            state
                .turnover_by_month
                .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Included(to)))
                .rev()
                .filter(|(k, _)| is_month_key(k))
                .fold(Decimal::ZERO, |a, (_, v)| a.saturating_add(*v))
        }
    }
}

/// `YYYY-MM` with a month 01..=12.
fn is_month_key(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!((b[5], b[6]), (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2'))
}

/// The rolling window's turnover looked up month by month (years outside 0..=9999).
fn rolling_turnover_by_keys(state: &CustomerState, at: NaiveDate, months: u32) -> Decimal {
    let mut y = at.year();
    let mut m = at.month() as i32;
    let mut keys = Vec::new();
    for _ in 0..months {
        keys.push(format!("{y:04}-{m:02}"));
        m -= 1;
        if m == 0 {
            m = 12;
            y -= 1;
        }
    }
    keys.iter()
        .filter_map(|k| state.turnover_by_month.get(k))
        .fold(Decimal::ZERO, |a, v| a.saturating_add(*v))
}

/// The discount a customer gets: their own override if set (it replaces the tier rate, up or
/// down), else the rate of their tier.
pub fn discount_percent(
    program: &Program,
    customer: Option<&Customer>,
    state: &CustomerState,
    at: NaiveDate,
) -> Decimal {
    if let Some(o) = customer.and_then(|c| c.discount_override) {
        return o;
    }
    program.tier_for(turnover(program, state, at)).discount_percent
}

/// Points and turnover for a sale receipt.
///
/// - Turnover = sum of all lines except cash rounding (the total for a totals-only receipt).
/// - Each `sale`/`return` line earns `round2(line_total × factor × pct / 100)` where `pct` is the
///   winning campaign's coefficient for lines in its scope, else the base coefficient
///   (item → category → default); a base coefficient of 0 means no points, campaigns included.
/// - `factor` spreads receipt-level `discount` lines over the item lines proportionally
///   (`(items + discounts) / items`, never below 0). `rounding` lines earn nothing.
/// - A totals-only receipt earns on its total at the default coefficient (or an `all_members`
///   campaign's).
///
/// Return receipts whose original is known should use [`evaluate_return`].
///
/// # Panics
/// On decimal overflow (values near ±7.9·10^28); anything fed untrusted input (the server)
/// uses [`try_evaluate_receipt`].
pub fn evaluate_receipt(program: &Program, receipt: &Receipt) -> ReceiptEffect {
    try_evaluate_receipt(program, receipt).unwrap_or_else(|e| panic!("{e}"))
}

/// [`evaluate_receipt`] with checked arithmetic: a value that overflows is an [`Overflow`]
/// naming the receipt field, never a panic.
pub fn try_evaluate_receipt(program: &Program, receipt: &Receipt) -> Result<ReceiptEffect, Overflow> {
    let best = program.winning_campaign(receipt);

    let totals_only = receipt.is_totals_only();
    let goods = sum_line_totals(receipt, |l| l.kind != LineKind::Rounding, "sum of line totals")?;
    let turnover_delta = if totals_only { receipt.total } else { goods };

    let mut lines = Vec::new();
    let mut points = Decimal::ZERO;
    let mut campaign_points = Decimal::ZERO;
    let mut used_campaign: Option<&Campaign> = None;
    let add = |acc: Decimal, p: Decimal, i: usize| {
        ck(
            acc.checked_add(p),
            || format!("receipt.lines[{i}].line_total"),
            p,
            "sum of line points",
        )
    };

    if totals_only {
        let (pct, camp) = match best {
            Some(c) => (c.points_percent, Some(c)),
            None => (program.default_points_percent, None),
        };
        let p = line_points(receipt.total, Decimal::ONE, pct, || "receipt.total".to_string())?;
        if camp.is_some() {
            campaign_points = p;
            used_campaign = camp;
        }
        points = p;
        lines.push(LinePoints {
            index: 0,
            points: p,
            campaign: camp.map(|c| c.id.clone()),
        });
    } else {
        let item_value = sum_line_totals(receipt, |l| is_item(l.kind), "sum of item line totals")?;
        let discount = sum_line_totals(receipt, |l| l.kind == LineKind::Discount, "sum of discount lines")?;
        let factor = if item_value.is_zero() {
            Decimal::ONE
        } else {
            let op = "discount factor (items + discounts) / items";
            let f = ck(
                item_value.checked_add(discount),
                || "receipt.lines[*].line_total".into(),
                discount,
                op,
            )?;
            ck(
                f.checked_div(item_value),
                || "receipt.lines[*].line_total".into(),
                item_value,
                op,
            )?
            .max(Decimal::ZERO)
        };
        for (i, l) in receipt.lines.iter().enumerate() {
            if !is_item(l.kind) {
                continue;
            }
            let (sku, cat) = (l.sku.as_deref(), l.category.as_deref());
            let base = program.base_points_percent(sku, cat);
            let (pct, camp) = match best.filter(|c| c.covers(sku, cat)) {
                Some(c) if !base.is_zero() => (c.points_percent, Some(c)),
                _ => (base, None),
            };
            let p = line_points(l.line_total, factor, pct, || format!("receipt.lines[{i}].line_total"))?;
            if camp.is_some() {
                campaign_points = add(campaign_points, p, i)?;
                used_campaign = camp;
            }
            points = add(points, p, i)?;
            lines.push(LinePoints {
                index: i,
                points: p,
                campaign: camp.map(|c| c.id.clone()),
            });
        }
    }

    let expiring = match used_campaign {
        Some(c) if campaign_points > Decimal::ZERO => match c.points_expire_days {
            Some(d) => Some(ExpiringPoints {
                points: campaign_points,
                expires_on: receipt
                    .issued_at
                    .date_naive()
                    .checked_add_days(chrono::Days::new(d as u64))
                    .ok_or_else(|| {
                        overflow(
                            format!("campaign {:?}.points_expire_days", c.id),
                            d,
                            "receipt day + expiry days",
                        )
                    })?,
            }),
            None => None,
        },
        _ => None,
    };

    Ok(ReceiptEffect {
        turnover_delta,
        points_delta: points,
        lines,
        campaign: used_campaign.map(|c| c.id.clone()),
        expiring,
        turnover_on: None,
    })
}

fn line_key(l: &ReceiptLine) -> String {
    l.sku.clone().unwrap_or_else(|| l.name.clone())
}

/// A return: reverse the points the original receipt credited for the returned lines,
/// proportionally to the returned quantity. See [`evaluate_return_after`]; this is the case
/// without earlier partial returns of the same original.
pub fn evaluate_return(
    program: &Program,
    original: &Receipt,
    original_effect: &ReceiptEffect,
    ret: &Receipt,
) -> ReceiptEffect {
    evaluate_return_after(program, original, original_effect, &[], ret)
}

/// [`evaluate_return_after`] with checked arithmetic: an [`Overflow`] naming the field instead
/// of a panic.
pub fn try_evaluate_return_after(
    program: &Program,
    original: &Receipt,
    original_effect: &ReceiptEffect,
    earlier_returns: &[Receipt],
    ret: &Receipt,
) -> Result<ReceiptEffect, Overflow> {
    // Pool the original's sale lines per key.
    let mut pool: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for (i, o) in original.lines.iter().enumerate() {
        if o.kind != LineKind::Sale {
            continue;
        }
        let p = original_effect
            .lines
            .iter()
            .find(|lp| lp.index == i)
            .map(|lp| lp.points)
            .unwrap_or_default();
        let e = pool.entry(line_key(o)).or_default();
        let field = || format!("original.lines[{i}]");
        e.0 = ck(
            e.0.checked_add(o.quantity.abs()),
            field,
            o.quantity,
            "sum of original quantities",
        )?;
        e.1 = ck(e.1.checked_add(p), field, p, "sum of original points")?;
    }
    let is_return_line =
        |l: &ReceiptLine| l.kind == LineKind::Return || (l.kind == LineKind::Sale && l.quantity.is_sign_negative());
    let mut returned: BTreeMap<String, Decimal> = BTreeMap::new();
    for (k, r) in earlier_returns.iter().enumerate() {
        for (i, l) in r.lines.iter().enumerate().filter(|(_, l)| is_return_line(l)) {
            let e = returned.entry(line_key(l)).or_default();
            *e = ck(
                e.checked_add(l.quantity.abs()),
                || format!("earlier_returns[{k}].lines[{i}].quantity"),
                l.quantity,
                "sum of returned quantities",
            )?;
        }
    }

    let mut lines = Vec::new();
    let mut points = Decimal::ZERO;
    for (i, l) in ret.lines.iter().enumerate() {
        if !is_return_line(l) {
            continue;
        }
        let key = line_key(l);
        let field = || format!("receipt.lines[{i}].quantity");
        let so_far = returned.get(&key).copied().unwrap_or_default();
        let now = ck(
            so_far.checked_add(l.quantity.abs()),
            field,
            l.quantity,
            "returned quantity",
        )?;
        let p = match pool.get(&key) {
            Some(&(qty, pts)) if !qty.is_zero() => {
                let (before, after) = (so_far.min(qty), now.min(qty));
                let op = "original points × returned share";
                let share = |q: Decimal| {
                    let v = ck(pts.checked_mul(q), field, l.quantity, op)?;
                    Ok::<_, Overflow>(round_points(ck(v.checked_div(qty), field, l.quantity, op)?))
                };
                ck(share(after)?.checked_sub(share(before)?), field, l.quantity, op)?
            }
            _ => line_points(
                l.line_total.abs(),
                Decimal::ONE,
                program.base_points_percent(l.sku.as_deref(), l.category.as_deref()),
                || format!("receipt.lines[{i}].line_total"),
            )?,
        };
        returned.insert(key, now);
        points = ck(points.checked_sub(p), field, p, "sum of reversed points")?;
        lines.push(LinePoints {
            index: i,
            points: -p,
            campaign: None,
        });
    }

    // Exchange: new goods sold on the return receipt earn like a sale.
    let mut campaign = None;
    let mut expiring = None;
    let sale_idx: Vec<usize> = ret
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == LineKind::Sale && !is_return_line(l))
        .map(|(i, _)| i)
        .collect();
    if !sale_idx.is_empty() {
        let mut sale = ret.clone();
        sale.lines = sale_idx.iter().map(|&i| ret.lines[i].clone()).collect();
        sale.total = sum_line_totals(&sale, |_| true, "sum of exchange sale lines")?;
        let e = try_evaluate_receipt(program, &sale).map_err(|mut e| {
            // Name the line on the return receipt, not on the extracted sale.
            if let Some(k) = e
                .field
                .strip_prefix("receipt.lines[")
                .and_then(|r| r.split(']').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                e.field = e.field.replacen(&format!("[{k}]"), &format!("[{}]", sale_idx[k]), 1);
            }
            e
        })?;
        for lp in e.lines {
            points = ck(
                points.checked_add(lp.points),
                || format!("receipt.lines[{}].line_total", sale_idx[lp.index]),
                lp.points,
                "sum of line points",
            )?;
            lines.push(LinePoints {
                index: sale_idx[lp.index],
                ..lp
            });
        }
        campaign = e.campaign;
        expiring = e.expiring;
    }
    lines.sort_by_key(|l| l.index);

    let turnover_delta = sum_line_totals(ret, |l| l.kind != LineKind::Rounding, "sum of line totals")?;
    Ok(ReceiptEffect {
        turnover_delta,
        points_delta: points,
        lines,
        campaign,
        expiring,
        turnover_on: Some(original.issued_at.date_naive()),
    })
}

/// A return of (part of) `original`, after `earlier_returns` of the same original.
///
/// - Lines are matched by SKU, else by name; several original lines with the same key are
///   pooled (quantity and points).
/// - Reversal is cumulative so partial returns add up exactly: returning `q` of `Q` after `r`
///   were returned reverses `round2(P·min(r+q,Q)/Q) − round2(P·min(r,Q)/Q)`. Returning more than
///   was bought reverses nothing more; a full return reverses exactly `P`.
/// - A returned line that is not on the original reverses at today's base coefficient.
/// - Sale lines on the return receipt (an exchange) earn like a sale.
/// - Turnover changes by what was refunded (the return receipt's lines except rounding), booked
///   to the original's month (`turnover_on`).
/// - Redeemed rewards are not touched: nothing here credits points back.
///
/// # Panics
/// On decimal overflow; the server uses [`try_evaluate_return_after`].
pub fn evaluate_return_after(
    program: &Program,
    original: &Receipt,
    original_effect: &ReceiptEffect,
    earlier_returns: &[Receipt],
    ret: &Receipt,
) -> ReceiptEffect {
    try_evaluate_return_after(program, original, original_effect, earlier_returns, ret)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Take `amount` points off the expiring entries, soonest expiry first.
fn consume_expiring(list: &mut Vec<ExpiringPoints>, mut amount: Decimal) {
    list.sort_by_key(|e| e.expires_on);
    for e in list.iter_mut() {
        if amount <= Decimal::ZERO {
            break;
        }
        let take = e.points.min(amount);
        e.points -= take;
        amount -= take;
    }
    list.retain(|e| e.points > Decimal::ZERO);
}

/// Campaign points that lapse on a day the list already has join that day's entry: points that
/// expire together are one amount, so the list grows with the expiry days, not with the receipts
/// (a regular's account is rewritten on every receipt). Otherwise a new entry, in expiry order.
fn add_expiring(list: &mut Vec<ExpiringPoints>, e: &ExpiringPoints) {
    let same_day = list.iter_mut().rev().find(|x| x.expires_on == e.expires_on);
    match same_day.and_then(|x| Some((x.points.checked_add(e.points)?, x))) {
        Some((sum, x)) => x.points = sum,
        None => list.push(e.clone()),
    }
    // Stable, and one pass over a list already in order (an account stored before kept its own).
    list.sort_by_key(|e| e.expires_on);
}

/// Keep the invariant "expiring points are part of the balance": their sum never exceeds
/// the (non-negative part of the) balance.
fn trim_expiring(s: &mut CustomerState) {
    let sum = s
        .expiring_points
        .iter()
        .fold(Decimal::ZERO, |a, e| a.saturating_add(e.points));
    let cap = s.points_balance.max(Decimal::ZERO);
    if sum > cap {
        consume_expiring(&mut s.expiring_points, sum - cap);
    }
}

/// Apply an effect to an account on day `on` (the receipt's day). Returns the new state and a
/// tier change if the tier (evaluated at `on`) differs before and after.
///
/// - Turnover is booked to the month of `effect.turnover_on`, else of `on`.
/// - Points debits (returns) consume expiring campaign points first, soonest expiry first, so
///   reversed campaign points are not expired a second time later.
/// - Redeemed rewards are not restored by returns; the balance does not go below zero unless
///   `program.allow_negative_balance`.
///
/// # Panics
/// On decimal overflow; the server uses [`try_apply_effect`].
pub fn apply_effect(
    program: &Program,
    state: &CustomerState,
    effect: &ReceiptEffect,
    on: NaiveDate,
) -> (CustomerState, Option<TierChange>) {
    try_apply_effect(program, state, effect, on).unwrap_or_else(|e| panic!("{e}"))
}

/// [`apply_effect`] with checked arithmetic: a month's turnover or the balance that would leave
/// the decimal range is an [`Overflow`] naming the account field, and nothing is applied.
pub fn try_apply_effect(
    program: &Program,
    state: &CustomerState,
    effect: &ReceiptEffect,
    on: NaiveDate,
) -> Result<(CustomerState, Option<TierChange>), Overflow> {
    let before = program.tier_for(turnover(program, state, on)).clone();
    let mut s = state.clone();
    let month = month_key(effect.turnover_on.unwrap_or(on));
    let booked = s.turnover_by_month.entry(month.clone()).or_default();
    *booked = ck(
        booked.checked_add(effect.turnover_delta),
        || format!("account.turnover_by_month[{month}]"),
        effect.turnover_delta,
        "month turnover + receipt turnover",
    )?;
    s.points_balance = ck(
        s.points_balance.checked_add(effect.points_delta),
        || "account.points_balance".into(),
        effect.points_delta,
        "balance + receipt points",
    )?;
    if s.points_balance.is_sign_negative() && !program.allow_negative_balance {
        s.points_balance = Decimal::ZERO;
    }
    if effect.points_delta.is_sign_negative() {
        consume_expiring(&mut s.expiring_points, -effect.points_delta);
    }
    if let Some(e) = &effect.expiring {
        add_expiring(&mut s.expiring_points, e);
    }
    trim_expiring(&mut s);
    let after = program.tier_for(turnover(program, &s, on));
    let change = (before.name != after.name).then(|| TierChange {
        from: before.name.clone(),
        to: after.name.clone(),
        upgrade: after.threshold > before.threshold,
    });
    Ok((s, change))
}

/// Drop campaign points that expired by `today` (an entry expires at the start of its
/// `expires_on` day) from the balance.
pub fn expire_points(state: &CustomerState, today: NaiveDate) -> CustomerState {
    let mut s = state.clone();
    if s.expiring_points.iter().all(|e| e.expires_on > today) {
        return s;
    }
    let (expired, kept): (Vec<_>, Vec<_>) = s.expiring_points.drain(..).partition(|e| e.expires_on <= today);
    s.expiring_points = kept;
    // Saturating: expiring points never exceed the balance, so no real state gets near the limit.
    let gone = expired.iter().fold(Decimal::ZERO, |a, e| a.saturating_add(e.points));
    if !gone.is_zero() {
        s.points_balance = (s.points_balance.saturating_sub(gone)).max(Decimal::ZERO.min(s.points_balance));
    }
    s
}

/// Redeem points: returns `(points_used, reward_value, new_balance)` or None if the balance
/// (or `wanted_points`) is below the minimum.
///
/// - `voucher` / `discount` (fixed amounts): only whole multiples of `redemption.points` are
///   redeemed; the value is `multiples × redemption.value` in the program currency
///   (100 points = 10 CZK: 250 points → 200 used, 20 CZK).
/// - `percent_discount`: percentages do not stack; exactly `redemption.points` are used and the
///   value is `redemption.value` percent off the next purchase.
pub fn redeem(program: &Program, balance: Decimal, wanted_points: Decimal) -> Option<(Decimal, Decimal, Decimal)> {
    let r = program.redemption.as_ref()?;
    let wanted = wanted_points.min(balance);
    if wanted < r.min_points || r.points <= Decimal::ZERO {
        return None;
    }
    let units = (wanted / r.points).trunc();
    if units.is_zero() {
        return None;
    }
    let (used, value) = match r.reward {
        RewardKind::PercentDiscount => (r.points, r.value),
        RewardKind::Voucher | RewardKind::Discount => (units * r.points, units * r.value),
    };
    Some((used, value, balance - used))
}

/// Most options [`redeem_options`] lists (the smallest ones and the largest).
pub const MAX_REDEEM_OPTIONS: usize = 4;

/// What the customer can redeem now with `balance`: for fixed amounts the whole steps from the
/// threshold up to the balance (the smallest ones and the largest, at most
/// [`MAX_REDEEM_OPTIONS`]), for `percent_discount` the one threshold. Empty when nothing is
/// reachable or the program has no redemption rule.
pub fn redeem_options(program: &Program, balance: Decimal) -> Vec<RedeemOption> {
    let Some(r) = program.redemption.as_ref() else {
        return Vec::new();
    };
    if r.points <= Decimal::ZERO || balance < r.min_points || balance < r.points {
        return Vec::new();
    }
    let mut out = Vec::new();
    match r.reward {
        RewardKind::PercentDiscount => out.push(RedeemOption {
            points: r.points,
            value: r.value,
            reward: r.reward,
        }),
        RewardKind::Voucher | RewardKind::Discount => {
            let max_units = (balance / r.points).trunc();
            let first = (r.min_points / r.points).ceil().max(Decimal::ONE);
            let mut units = first;
            while units <= max_units && out.len() + 1 < MAX_REDEEM_OPTIONS {
                out.push(RedeemOption {
                    points: units * r.points,
                    value: units * r.value,
                    reward: r.reward,
                });
                units += Decimal::ONE;
            }
            if units <= max_units {
                out.push(RedeemOption {
                    points: max_units * r.points,
                    value: max_units * r.value,
                    reward: r.reward,
                });
            }
        }
    }
    out
}

/// The short code the cashier keys into the POS for a redemption: 6 characters from an
/// alphabet without look-alikes (no 0/O, 1/I), derived from the till-made request id so the
/// till and the server print the same code online and offline.
pub fn redemption_code(request_id: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let h = Sha256::digest(request_id.as_bytes());
    let mut bits: u64 = 0;
    for b in &h[..5] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..6)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// [`redeem`] on a whole account: also takes the used points off the expiring campaign points
/// first (soonest expiry first), so the customer spends the points that would lapse.
pub fn redeem_from(
    program: &Program,
    state: &CustomerState,
    wanted_points: Decimal,
) -> Option<(Redeemed, CustomerState)> {
    let (used, value, balance) = redeem(program, state.points_balance, wanted_points)?;
    let reward = program.redemption.as_ref()?.reward;
    let mut s = state.clone();
    s.points_balance = balance;
    consume_expiring(&mut s.expiring_points, used);
    trim_expiring(&mut s);
    Some((
        Redeemed {
            points_used: used,
            value,
            reward,
        },
        s,
    ))
}

/// The cashier's view of a customer's account at `at`. For a family/company sub-card pass the
/// state of [`earning_account`] (the parent); `customer` is the card holder (name, override).
/// Campaign points that expired by `at` are not counted.
pub fn customer_quote(
    program: &Program,
    customer: &Customer,
    state: &CustomerState,
    at: &DateTime<FixedOffset>,
) -> CustomerQuote {
    let day = at.date_naive();
    let state = &expire_points(state, day);
    let t = turnover(program, state, day);
    let tier = program.tier_for(t);
    let next = program.next_tier(t);
    // The campaign a purchase right now would get (ignoring the minimum receipt value).
    let campaign = program
        .applicable_campaigns(at, Decimal::MAX)
        .first()
        .map(|c| c.name.clone());
    CustomerQuote {
        display_name: customer.name.display(),
        anonymous: customer.name == crate::v1::CustomerName::Anonymous,
        tier: tier.name.clone(),
        discount_percent: discount_percent(program, Some(customer), state, day),
        points_balance: state.points_balance,
        points_to_next_reward: program
            .redemption
            .as_ref()
            .filter(|r| r.points > Decimal::ZERO)
            .map(|r| {
                let step = r.min_points.max(r.points);
                if state.points_balance < step {
                    step.saturating_sub(state.points_balance)
                } else {
                    r.points - (state.points_balance % r.points)
                }
            }),
        turnover_to_next_tier: next.map(|n| n.threshold.saturating_sub(t)),
        next_tier: next.map(|n| n.name.clone()),
        campaign,
        currency: program.currency,
        redeemable: redeem_options(program, state.points_balance),
        recent: Vec::new(),
        messages: Vec::new(),
    }
}

/// What the server knows beyond the quote for [`cashier_messages`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageFacts {
    /// No purchase has been credited to the account yet.
    pub first_purchase: bool,
    /// The customer's birthday (the till's cache does not have it).
    pub birthday: Option<NaiveDate>,
}

/// The messages a quote may carry for `customer` on `today` (before dropping acknowledged
/// causes): welcome on the first purchase, the current tier when it is above the first one
/// (shown once per tier, i.e. on the first visit after reaching it), a birthday in this Monday–
/// Sunday week, the largest reward reachable now, today's campaign.
pub fn cashier_messages(
    program: &Program,
    customer: &CustomerId,
    quote: &CustomerQuote,
    facts: &MessageFacts,
    today: NaiveDate,
) -> Vec<CashierMessage> {
    let c = &customer.0;
    let mut out = Vec::new();
    if facts.first_purchase {
        out.push(CashierMessage {
            cause: format!("welcome:{c}"),
            what: MessageWhat::Welcome,
        });
    }
    if let Some(t) = program.tiers.iter().find(|t| t.name == quote.tier) {
        if program.tiers.first().is_some_and(|first| first.name != t.name) {
            out.push(CashierMessage {
                cause: format!("tier:{c}:{}", t.name),
                what: MessageWhat::TierReached {
                    tier: t.name.clone(),
                    discount_percent: t.discount_percent,
                },
            });
        }
    }
    if let Some(b) = facts.birthday {
        let monday = today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let sunday = monday + chrono::Duration::days(6);
        // the week may span a new year: try this year's and the neighbouring years' date
        for y in [today.year() - 1, today.year(), today.year() + 1] {
            let on = anniversary(b, y);
            if on >= monday && on <= sunday {
                out.push(CashierMessage {
                    cause: format!("birthday:{c}:{y}"),
                    what: MessageWhat::Birthday { on },
                });
                break;
            }
        }
    }
    if let Some(best) = quote.redeemable.last() {
        out.push(CashierMessage {
            cause: format!("reward:{c}:{}", best.points.normalize()),
            what: MessageWhat::RewardReachable {
                points: best.points,
                value: best.value,
                reward: best.reward,
            },
        });
    }
    if let Some(name) = &quote.campaign {
        let id = program
            .campaigns
            .iter()
            .find(|k| &k.name == name)
            .map_or(name.as_str(), |k| k.id.as_str());
        out.push(CashierMessage {
            cause: format!("campaign:{c}:{id}:{today}"),
            what: MessageWhat::Campaign { name: name.clone() },
        });
    }
    out
}

/// A birthday's date in `year` (29 February → 28 February in common years).
pub fn anniversary(birthday: NaiveDate, year: i32) -> NaiveDate {
    birthday
        .with_year(year)
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
        .unwrap_or(birthday)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ReceiptId, StoreId, TillId};
    use crate::v1::{Consents, Contact, CustomerName, OriginalReceipt};
    use rust_decimal_macros::dec;

    fn tier(name: &str, threshold: Decimal, pct: Decimal) -> Tier {
        Tier {
            name: name.into(),
            threshold,
            discount_percent: pct,
        }
    }

    fn program() -> Program {
        Program {
            name: "Test".into(),
            currency: Currency::CZK,
            card_policy: CardPolicy::default(),
            tiers: vec![
                tier("Bronze", dec!(0), dec!(0)),
                tier("Silver", dec!(5000), dec!(5)),
                tier("Gold", dec!(15000), dec!(10)),
            ],
            turnover_window: TurnoverWindow::Lifetime,
            default_points_percent: dec!(100),
            item_points_percent: [("CIG-1".to_string(), dec!(0)), ("WINE-1".to_string(), dec!(500))].into(),
            category_points_percent: [("tobacco".to_string(), dec!(0)), ("bakery".to_string(), dec!(10))].into(),
            campaigns: vec![],
            redemption: Some(Redemption {
                points: dec!(100),
                value: dec!(10),
                reward: RewardKind::Voucher,
                min_points: dec!(100),
                offline_redemption_limit: Decimal::ZERO,
                match_window_minutes: None,
            }),
            allow_negative_balance: false,
            purchases: Default::default(),
        }
    }

    fn campaign(id: &str, priority: u32, pct: Decimal, scope: CampaignScope) -> Campaign {
        Campaign {
            id: id.into(),
            name: id.to_uppercase(),
            active: true,
            priority,
            min_receipt_total: Decimal::ZERO,
            valid_from: None,
            valid_to: None,
            days_of_week: vec![],
            hours: None,
            points_expire_days: None,
            scope,
            points_percent: pct,
        }
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn line(sku: &str, cat: Option<&str>, qty: Decimal, price: Decimal) -> ReceiptLine {
        ReceiptLine {
            sku: Some(sku.into()),
            name: sku.to_lowercase(),
            category: cat.map(str::to_string),
            quantity: qty,
            unit_price: price,
            line_total: qty * price,
            vat_rate: Some(dec!(21)),
            kind: if qty.is_sign_negative() {
                LineKind::Return
            } else {
                LineKind::Sale
            },
        }
    }

    fn receipt(no: &str, when: &str, lines: Vec<ReceiptLine>) -> Receipt {
        let issued_at = at(when);
        let (s, t) = (StoreId::from("S1"), TillId::from("T1"));
        Receipt {
            id: ReceiptId::derive(&s, &t, no, &issued_at),
            store_id: s,
            till_id: t,
            pos_receipt_no: no.into(),
            issued_at,
            currency: Currency::CZK,
            total: lines.iter().map(|l| l.line_total).sum(),
            card: None,
            original: None,
            lines,
            vat: vec![],
        }
    }

    fn return_of(orig: &Receipt, no: &str, when: &str, lines: Vec<ReceiptLine>) -> Receipt {
        let mut r = receipt(no, when, lines);
        r.original = Some(OriginalReceipt {
            receipt_id: Some(orig.id.clone()),
            pos_receipt_no: Some(orig.pos_receipt_no.clone()),
        });
        r
    }

    fn customer(id: &str, parent: Option<&str>) -> Customer {
        Customer {
            id: CustomerId::from(id),
            name: CustomerName::Person {
                first_name: "Jana".into(),
                surname: "Nováková".into(),
            },
            contact: Contact::default(),
            consents: Consents {
                program_rules: true,
                marketing: false,
            },
            birthday: None,
            tier: None,
            parent: parent.map(CustomerId::from),
            discount_override: None,
        }
    }

    fn state_with(months: &[(&str, Decimal)], balance: Decimal) -> CustomerState {
        CustomerState {
            turnover_by_month: months.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            points_balance: balance,
            expiring_points: vec![],
        }
    }

    const MON_10: &str = "2026-03-02T10:15:00+01:00"; // a Monday

    // --- tiers -----------------------------------------------------------------------------

    #[test]
    fn a_months_key_written_by_hand_is_formats() {
        for year in [0i64, 7, 999, 2026, 9999] {
            for month0 in 0..12 {
                let i = year * 12 + month0;
                let text = month_text(i);
                assert_eq!(
                    std::str::from_utf8(&text).unwrap(),
                    format!("{:04}-{:02}", year, month0 + 1)
                );
                assert!(is_month_key(std::str::from_utf8(&text).unwrap()));
            }
        }
    }

    #[test]
    fn tier_thresholds_0_5000_15000() {
        let p = program();
        assert_eq!(p.tier_for(dec!(0)).name, "Bronze");
        assert_eq!(p.tier_for(dec!(4999.99)).discount_percent, dec!(0));
        assert_eq!(p.tier_for(dec!(5000)).name, "Silver");
        assert_eq!(p.tier_for(dec!(5000)).discount_percent, dec!(5));
        assert_eq!(p.tier_for(dec!(14999.99)).name, "Silver");
        assert_eq!(p.tier_for(dec!(15000)).discount_percent, dec!(10));
        assert_eq!(p.tier_for(dec!(1000000)).name, "Gold");
        assert_eq!(p.next_tier(dec!(4000)).unwrap().name, "Silver");
        assert_eq!(p.next_tier(dec!(15000)), None);
    }

    #[test]
    fn tier_for_ignores_tier_order_and_handles_no_tiers() {
        let mut p = program();
        p.tiers.reverse();
        assert_eq!(p.tier_for(dec!(6000)).name, "Silver");
        assert_eq!(p.tier_for(dec!(-10)).name, "Bronze");
        p.tiers.clear();
        assert_eq!(p.tier_for(dec!(6000)).discount_percent, dec!(0));
        assert_eq!(p.next_tier(dec!(6000)), None);
    }

    #[test]
    fn lifetime_window_sums_every_month() {
        let p = program();
        let s = state_with(&[("2019-01", dec!(4000)), ("2026-02", dec!(2000))], dec!(0));
        assert_eq!(turnover(&p, &s, day("2026-03-10")), dec!(6000));
        assert_eq!(discount_percent(&p, None, &s, day("2026-03-10")), dec!(5));
    }

    /// The window as one range of the map sums exactly what the month-by-month lookup sums (same
    /// order, so the same saturation), stray keys and far years included.
    #[test]
    fn rolling_window_as_a_map_range_equals_the_month_by_month_sum() {
        let mut p = program();
        let mut s = state_with(&[], dec!(0));
        let mut n = 7i64;
        for y in [1999, 2024, 2025, 2026, 2027] {
            for m in 1..=12 {
                n = (n * 7919 + 13) % 100_003;
                s.turnover_by_month
                    .insert(format!("{y:04}-{m:02}"), Decimal::new(n - 50_000, 2));
            }
        }
        for k in [
            "2026-13", "2026-00", "2026-1", "2026-05x", "2026-1a", "abc", "20260-1", "",
        ] {
            s.turnover_by_month.insert(k.into(), dec!(1000000));
        }
        let mut sat = s.clone();
        sat.turnover_by_month.insert("2026-02".into(), Decimal::MAX);
        sat.turnover_by_month.insert("2026-01".into(), dec!(-5));
        for months in [1, 2, 3, 11, 12, 13, 24, 40, 400] {
            p.turnover_window = TurnoverWindow::RollingMonths { months };
            for at in [
                "2026-03-10",
                "2026-01-01",
                "2025-12-31",
                "2027-06-15",
                "0001-02-01",
                "9999-12-31",
            ] {
                for st in [&s, &sat] {
                    assert_eq!(
                        turnover(&p, st, day(at)),
                        rolling_turnover_by_keys(st, day(at), months),
                        "{months} months at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn rolling_window_counts_current_and_previous_months_across_year_end() {
        let mut p = program();
        p.turnover_window = TurnoverWindow::RollingMonths { months: 3 };
        let s = state_with(
            &[
                ("2025-10", dec!(9000)),
                ("2025-11", dec!(1000)),
                ("2025-12", dec!(2000)),
                ("2026-01", dec!(3000)),
            ],
            dec!(0),
        );
        // January 2026: Nov + Dec + Jan = 6000; October is outside the window.
        assert_eq!(turnover(&p, &s, day("2026-01-31")), dec!(6000));
        assert_eq!(p.tier_for(turnover(&p, &s, day("2026-01-31"))).name, "Silver");
        // April 2026: Feb..Apr = nothing.
        assert_eq!(turnover(&p, &s, day("2026-04-01")), dec!(0));
    }

    #[test]
    fn crossing_a_threshold_reports_upgrade_and_downgrade() {
        let p = program();
        let s = state_with(&[("2026-02", dec!(4900))], dec!(0));
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(200))]);
        let e = evaluate_receipt(&p, &sale);
        let (s2, change) = apply_effect(&p, &s, &e, day("2026-03-02"));
        assert_eq!(turnover(&p, &s2, day("2026-03-02")), dec!(5100));
        assert_eq!(
            change,
            Some(TierChange {
                from: "Bronze".into(),
                to: "Silver".into(),
                upgrade: true
            })
        );
        // A second sale within Silver reports nothing.
        let (s3, change) = apply_effect(&p, &s2, &e, day("2026-03-02"));
        assert_eq!(change, None);
        // Returning both sales drops back to Bronze: a downgrade.
        let ret = return_of(&sale, "2", MON_10, vec![line("A", None, dec!(-2), dec!(200))]);
        let re = evaluate_return(&p, &sale, &e, &ret);
        let (_, change) = apply_effect(&p, &s3, &re, day("2026-03-02"));
        assert_eq!(
            change,
            Some(TierChange {
                from: "Silver".into(),
                to: "Bronze".into(),
                upgrade: false
            })
        );
    }

    #[test]
    fn customer_override_replaces_tier_rate() {
        let p = program();
        let s = state_with(&[("2026-01", dec!(20000))], dec!(0));
        let mut c = customer("C1", None);
        assert_eq!(discount_percent(&p, Some(&c), &s, day("2026-03-02")), dec!(10));
        c.discount_override = Some(dec!(7));
        assert_eq!(discount_percent(&p, Some(&c), &s, day("2026-03-02")), dec!(7));
        let q = customer_quote(&p, &c, &s, &at(MON_10));
        assert_eq!((q.tier.as_str(), q.discount_percent), ("Gold", dec!(7)));
    }

    // --- points ----------------------------------------------------------------------------

    #[test]
    fn points_item_then_category_then_default() {
        let p = program();
        // WINE-1 has an item coefficient 500 % although its category is bakery (10 %).
        assert_eq!(p.base_points_percent(Some("WINE-1"), Some("bakery")), dec!(500));
        assert_eq!(p.base_points_percent(Some("BREAD"), Some("bakery")), dec!(10));
        assert_eq!(p.base_points_percent(Some("MILK"), Some("dairy")), dec!(100));
        assert_eq!(p.base_points_percent(None, None), dec!(100));
        let r = receipt(
            "1",
            MON_10,
            vec![
                line("WINE-1", Some("bakery"), dec!(1), dec!(100)), // 500 % → 500
                line("BREAD", Some("bakery"), dec!(2), dec!(50)),   // 10 % of 100 → 10
                line("MILK", None, dec!(1), dec!(100)),             // 100 % → 100
                line("CIG-1", None, dec!(1), dec!(150)),            // item 0 → 0
                line("CIG-2", Some("tobacco"), dec!(1), dec!(150)), // category 0 → 0
            ],
        );
        let e = evaluate_receipt(&p, &r);
        let per_line: Vec<Decimal> = e.lines.iter().map(|l| l.points).collect();
        assert_eq!(per_line, vec![dec!(500), dec!(10), dec!(100), dec!(0), dec!(0)]);
        assert_eq!(e.points_delta, dec!(610));
        assert_eq!(e.turnover_delta, dec!(600));
    }

    #[test]
    fn percentage_of_value_100_10_500() {
        let mut p = program();
        let r = receipt("1", MON_10, vec![line("X", None, dec!(1), dec!(100))]);
        for (pct, want) in [
            (dec!(100), dec!(100)),
            (dec!(10), dec!(10)),
            (dec!(500), dec!(500)),
            (dec!(0), dec!(0)),
        ] {
            p.default_points_percent = pct;
            assert_eq!(evaluate_receipt(&p, &r).points_delta, want, "{pct} %");
        }
    }

    #[test]
    fn points_round_per_line_half_away_from_zero() {
        let mut p = program();
        p.default_points_percent = dec!(10);
        // 0.350 kg × 12.90 = 4.515 → 10 % = 0.4515 → 0.45; 3 × 0.05 → 0.015 → 0.02
        let r = receipt(
            "1",
            MON_10,
            vec![
                line("CHEESE", None, dec!(0.350), dec!(12.90)),
                line("GUM", None, dec!(3), dec!(0.05)),
            ],
        );
        let e = evaluate_receipt(&p, &r);
        assert_eq!(e.lines[0].points, dec!(0.45));
        assert_eq!(e.lines[1].points, dec!(0.02));
        assert_eq!(e.points_delta, dec!(0.47));
    }

    #[test]
    fn discount_and_rounding_lines() {
        let p = program();
        let mut lines = vec![line("A", None, dec!(1), dec!(300)), line("B", None, dec!(1), dec!(100))];
        // A receipt-level 10 % discount (−40) spreads over the items; cash rounding earns nothing.
        lines.push(ReceiptLine {
            sku: None,
            name: "Sleva 10 %".into(),
            category: None,
            quantity: dec!(1),
            unit_price: dec!(-40),
            line_total: dec!(-40),
            vat_rate: None,
            kind: LineKind::Discount,
        });
        lines.push(ReceiptLine {
            sku: None,
            name: "Zaokrouhlení".into(),
            category: None,
            quantity: dec!(1),
            unit_price: dec!(0.4),
            line_total: dec!(0.4),
            vat_rate: None,
            kind: LineKind::Rounding,
        });
        let r = receipt("1", MON_10, lines);
        let e = evaluate_receipt(&p, &r);
        assert_eq!(
            e.lines.iter().map(|l| l.points).collect::<Vec<_>>(),
            vec![dec!(270), dec!(90)]
        );
        assert_eq!(e.points_delta, dec!(360));
        assert_eq!(e.turnover_delta, dec!(360));
    }

    #[test]
    fn totals_only_receipt_earns_on_total() {
        let p = program();
        let mut r = receipt("1", MON_10, vec![]);
        r.total = dec!(250.50);
        let e = evaluate_receipt(&p, &r);
        assert_eq!((e.points_delta, e.turnover_delta), (dec!(250.50), dec!(250.50)));
    }

    // --- campaigns -------------------------------------------------------------------------

    #[test]
    fn lowest_priority_number_wins() {
        let mut p = program();
        p.campaigns = vec![
            campaign("two", 2, dec!(200), CampaignScope::AllMembers),
            campaign("one", 1, dec!(300), CampaignScope::AllMembers),
        ];
        let r = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(100))]);
        let e = evaluate_receipt(&p, &r);
        assert_eq!((e.points_delta, e.campaign.as_deref()), (dec!(300), Some("one")));
        // An inactive winner gives way to the next one.
        p.campaigns[1].active = false;
        let e = evaluate_receipt(&p, &r);
        assert_eq!((e.points_delta, e.campaign.as_deref()), (dec!(200), Some("two")));
        p.campaigns[0].active = false;
        assert_eq!(evaluate_receipt(&p, &r).campaign, None);
    }

    #[test]
    fn campaign_with_nothing_in_scope_does_not_block_the_next() {
        let mut p = program();
        p.campaigns = vec![
            campaign(
                "coffee",
                1,
                dec!(1000),
                CampaignScope::Items {
                    skus: vec!["COFFEE".into()],
                },
            ),
            campaign("all", 2, dec!(200), CampaignScope::AllMembers),
        ];
        let no_coffee = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(100))]);
        assert_eq!(evaluate_receipt(&p, &no_coffee).campaign.as_deref(), Some("all"));
        // With coffee on the receipt the coffee campaign wins; other lines get their base rate.
        let with_coffee = receipt(
            "2",
            MON_10,
            vec![
                line("A", None, dec!(1), dec!(100)),
                line("COFFEE", None, dec!(1), dec!(10)),
            ],
        );
        let e = evaluate_receipt(&p, &with_coffee);
        assert_eq!(e.campaign.as_deref(), Some("coffee"));
        assert_eq!(
            e.lines.iter().map(|l| l.points).collect::<Vec<_>>(),
            vec![dec!(100), dec!(100)]
        );
        assert_eq!(e.lines[1].campaign.as_deref(), Some("coffee"));
        assert_eq!(e.lines[0].campaign, None);
    }

    #[test]
    fn campaign_category_scope_and_zero_coefficient_items_stay_zero() {
        let mut p = program();
        p.campaigns = vec![campaign(
            "bake",
            1,
            dec!(300),
            CampaignScope::Categories {
                categories: vec!["bakery".into(), "tobacco".into()],
            },
        )];
        let r = receipt(
            "1",
            MON_10,
            vec![
                line("BREAD", Some("bakery"), dec!(1), dec!(40)),
                line("CIG-2", Some("tobacco"), dec!(1), dec!(150)),
                line("MILK", Some("dairy"), dec!(1), dec!(20)),
            ],
        );
        let e = evaluate_receipt(&p, &r);
        assert_eq!(
            e.lines.iter().map(|l| l.points).collect::<Vec<_>>(),
            vec![dec!(120), dec!(0), dec!(20)]
        );
    }

    #[test]
    fn campaign_minimum_receipt_total() {
        let mut p = program();
        let mut c = campaign("big", 1, dec!(200), CampaignScope::AllMembers);
        c.min_receipt_total = dec!(500);
        p.campaigns = vec![c];
        let small = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(499.99))]);
        let big = receipt("2", MON_10, vec![line("A", None, dec!(1), dec!(500))]);
        assert_eq!(evaluate_receipt(&p, &small).points_delta, dec!(499.99));
        assert_eq!(evaluate_receipt(&p, &big).points_delta, dec!(1000));
    }

    #[test]
    fn campaign_validity_inclusive_and_open_ended() {
        let mut c = campaign("c", 1, dec!(200), CampaignScope::AllMembers);
        c.valid_from = Some(at("2026-03-01T00:00:00+01:00"));
        assert!(!c.applies_at(&at("2026-02-28T23:59:59+01:00"), dec!(1)));
        assert!(c.applies_at(&at("2026-03-01T00:00:00+01:00"), dec!(1)));
        assert!(c.applies_at(&at("2099-01-01T00:00:00+01:00"), dec!(1)), "open-ended to");
        c.valid_to = Some(at("2026-03-31T23:59:59+02:00"));
        assert!(c.applies_at(&at("2026-03-31T23:59:59+02:00"), dec!(1)));
        assert!(!c.applies_at(&at("2026-04-01T00:00:00+02:00"), dec!(1)));
        c.valid_from = None;
        assert!(
            c.applies_at(&at("2000-01-01T00:00:00+01:00"), dec!(1)),
            "open-ended from"
        );
    }

    #[test]
    fn campaign_days_of_week_and_hours() {
        let mut c = campaign("happy", 1, dec!(200), CampaignScope::AllMembers);
        c.days_of_week = vec![Weekday::Mon, Weekday::Tue];
        c.hours = Some((8, 11));
        assert!(c.applies_at(&at("2026-03-02T08:00:00+01:00"), dec!(1))); // Monday 8:00
        assert!(c.applies_at(&at("2026-03-03T10:59:59+01:00"), dec!(1))); // Tuesday 10:59
        assert!(!c.applies_at(&at("2026-03-02T11:00:00+01:00"), dec!(1))); // to is exclusive
        assert!(!c.applies_at(&at("2026-03-04T09:00:00+01:00"), dec!(1))); // Wednesday
                                                                           // Hours are the receipt's local hours: 09:00+01:00 is 08:00Z but counts as 9.
        assert!(c.applies_at(&at("2026-03-02T09:00:00+01:00"), dec!(1)));
        // Overnight window wraps past midnight.
        c.days_of_week.clear();
        c.hours = Some((22, 2));
        assert!(c.applies_at(&at("2026-03-02T23:30:00+01:00"), dec!(1)));
        assert!(c.applies_at(&at("2026-03-03T01:59:00+01:00"), dec!(1)));
        assert!(!c.applies_at(&at("2026-03-03T02:00:00+01:00"), dec!(1)));
        assert!(!c.applies_at(&at("2026-03-03T12:00:00+01:00"), dec!(1)));
    }

    #[test]
    fn campaign_points_expire() {
        let mut p = program();
        let mut c = campaign("x2", 1, dec!(200), CampaignScope::Items { skus: vec!["A".into()] });
        c.points_expire_days = Some(30);
        p.campaigns = vec![c];
        let r = receipt(
            "1",
            MON_10,
            vec![line("A", None, dec!(1), dec!(100)), line("B", None, dec!(1), dec!(50))],
        );
        let e = evaluate_receipt(&p, &r);
        assert_eq!(e.points_delta, dec!(250));
        assert_eq!(
            e.expiring,
            Some(ExpiringPoints {
                points: dec!(200),
                expires_on: day("2026-04-01")
            })
        );
        let (s, _) = apply_effect(&p, &CustomerState::default(), &e, day("2026-03-02"));
        assert_eq!(s.points_balance, dec!(250));
        assert_eq!(expire_points(&s, day("2026-03-31")).points_balance, dec!(250));
        let later = expire_points(&s, day("2026-04-01"));
        assert_eq!((later.points_balance, later.expiring_points.len()), (dec!(50), 0));
        // The offline quote does not show expired points.
        assert_eq!(
            customer_quote(&p, &customer("C", None), &s, &at("2026-04-02T10:00:00+02:00")).points_balance,
            dec!(50)
        );
    }

    #[test]
    fn campaign_points_lapsing_on_one_day_are_one_entry() {
        let mut p = program();
        let mut c = campaign("x2", 1, dec!(200), CampaignScope::Items { skus: vec!["A".into()] });
        c.points_expire_days = Some(30);
        p.campaigns = vec![c];
        let buy =
            |no: &str, at: &str| evaluate_receipt(&p, &receipt(no, at, vec![line("A", None, dec!(1), dec!(100))]));
        // Three purchases on 2 March (all lapse on 1 April), one on 3 March (lapses on 2 April).
        let mut s = CustomerState::default();
        for (no, at, on) in [
            ("1", MON_10, "2026-03-02"),
            ("2", "2026-03-02T12:00:00+01:00", "2026-03-02"),
            ("3", "2026-03-02T18:30:00+01:00", "2026-03-02"),
            ("4", "2026-03-03T09:00:00+01:00", "2026-03-03"),
        ] {
            s = apply_effect(&p, &s, &buy(no, at), day(on)).0;
        }
        assert_eq!(
            s.expiring_points,
            vec![
                ExpiringPoints {
                    points: dec!(600),
                    expires_on: day("2026-04-01")
                },
                ExpiringPoints {
                    points: dec!(200),
                    expires_on: day("2026-04-02")
                },
            ],
            "one entry per expiry day, in expiry order"
        );
        assert_eq!(s.points_balance, dec!(800));
        // They lapse as separate entries would have: the day's three together, then the fourth.
        assert_eq!(expire_points(&s, day("2026-04-01")).points_balance, dec!(200));
        assert_eq!(expire_points(&s, day("2026-04-02")).points_balance, dec!(0));
        // An earlier expiry day than the list's last still goes in order.
        let mut early = s.clone();
        add_expiring(
            &mut early.expiring_points,
            &ExpiringPoints {
                points: dec!(5),
                expires_on: day("2026-03-20"),
            },
        );
        assert_eq!(early.expiring_points[0].expires_on, day("2026-03-20"));
        assert_eq!(early.expiring_points.len(), 3);
    }

    #[test]
    fn returned_campaign_points_are_not_expired_twice() {
        let mut p = program();
        let mut c = campaign("x2", 1, dec!(200), CampaignScope::AllMembers);
        c.points_expire_days = Some(30);
        p.campaigns = vec![c];
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(100))]);
        let e = evaluate_receipt(&p, &sale);
        let start = state_with(&[], dec!(1000));
        let (s, _) = apply_effect(&p, &start, &e, day("2026-03-02"));
        assert_eq!(s.points_balance, dec!(1200));
        let ret = return_of(
            &sale,
            "2",
            "2026-03-05T10:00:00+01:00",
            vec![line("A", None, dec!(-1), dec!(100))],
        );
        let (s, _) = apply_effect(&p, &s, &evaluate_return(&p, &sale, &e, &ret), day("2026-03-05"));
        assert_eq!(s.points_balance, dec!(1000));
        assert!(s.expiring_points.is_empty());
        assert_eq!(expire_points(&s, day("2026-05-01")).points_balance, dec!(1000));
    }

    // --- redemption ------------------------------------------------------------------------

    #[test]
    fn redemption_fixed_amount_100_points_10_czk() {
        let p = program();
        assert_eq!(redeem(&p, dec!(250), dec!(250)), Some((dec!(200), dec!(20), dec!(50))));
        assert_eq!(redeem(&p, dec!(250), dec!(100)), Some((dec!(100), dec!(10), dec!(150))));
        assert_eq!(redeem(&p, dec!(99), dec!(99)), None, "below the threshold");
        assert_eq!(
            redeem(&p, dec!(50), dec!(500)),
            None,
            "cannot redeem more than the balance"
        );
        let mut no = program();
        no.redemption = None;
        assert_eq!(redeem(&no, dec!(1000), dec!(1000)), None);
    }

    #[test]
    fn redemption_threshold_above_step() {
        let mut p = program();
        p.redemption.as_mut().unwrap().min_points = dec!(500);
        assert_eq!(redeem(&p, dec!(450), dec!(450)), None);
        assert_eq!(redeem(&p, dec!(530), dec!(530)), Some((dec!(500), dec!(50), dec!(30))));
        let q = customer_quote(&p, &customer("C", None), &state_with(&[], dec!(450)), &at(MON_10));
        assert_eq!(q.points_to_next_reward, Some(dec!(50)));
    }

    #[test]
    fn redemption_percentage_does_not_stack() {
        let mut p = program();
        p.redemption = Some(Redemption {
            points: dec!(500),
            value: dec!(10),
            reward: RewardKind::PercentDiscount,
            min_points: dec!(500),
            offline_redemption_limit: Decimal::ZERO,
            match_window_minutes: None,
        });
        assert_eq!(
            redeem(&p, dec!(1200), dec!(1200)),
            Some((dec!(500), dec!(10), dec!(700)))
        );
        assert_eq!(redeem(&p, dec!(499), dec!(499)), None);
        let (r, s) = redeem_from(&p, &state_with(&[], dec!(1200)), dec!(1200)).unwrap();
        assert_eq!(
            r,
            Redeemed {
                points_used: dec!(500),
                value: dec!(10),
                reward: RewardKind::PercentDiscount
            }
        );
        assert_eq!(s.points_balance, dec!(700));
    }

    #[test]
    fn redeem_from_spends_expiring_points_first() {
        let p = program();
        let mut s = state_with(&[], dec!(300));
        s.expiring_points = vec![
            ExpiringPoints {
                points: dec!(80),
                expires_on: day("2026-05-01"),
            },
            ExpiringPoints {
                points: dec!(50),
                expires_on: day("2026-04-01"),
            },
        ];
        let (r, s) = redeem_from(&p, &s, dec!(100)).unwrap();
        assert_eq!(
            (r.points_used, r.value, s.points_balance),
            (dec!(100), dec!(10), dec!(200))
        );
        assert_eq!(
            s.expiring_points,
            vec![ExpiringPoints {
                points: dec!(30),
                expires_on: day("2026-05-01")
            }]
        );
    }

    #[test]
    fn quote_points_to_next_reward_and_tier() {
        let p = program();
        let q = customer_quote(
            &p,
            &customer("C", None),
            &state_with(&[("2026-01", dec!(4200))], dec!(30)),
            &at(MON_10),
        );
        assert_eq!(q.points_to_next_reward, Some(dec!(70)));
        assert_eq!(
            (q.tier.as_str(), q.next_tier.as_deref(), q.turnover_to_next_tier),
            ("Bronze", Some("Silver"), Some(dec!(800)))
        );
        let q = customer_quote(&p, &customer("C", None), &state_with(&[], dec!(230)), &at(MON_10));
        assert_eq!(q.points_to_next_reward, Some(dec!(70)));
        assert_eq!(q.display_name, "Jana Nováková");
    }

    // --- returns ---------------------------------------------------------------------------

    #[test]
    fn return_reverses_points_proportionally() {
        let p = program();
        // 3 × WINE-1 at 100 = 300 → 1500 points; 2 × MILK at 25 = 50 → 50 points.
        let sale = receipt(
            "1",
            MON_10,
            vec![
                line("WINE-1", None, dec!(3), dec!(100)),
                line("MILK", None, dec!(2), dec!(25)),
            ],
        );
        let e = evaluate_receipt(&p, &sale);
        assert_eq!(e.points_delta, dec!(1550));
        let ret = return_of(
            &sale,
            "2",
            "2026-03-03T09:00:00+01:00",
            vec![line("WINE-1", None, dec!(-1), dec!(100))],
        );
        let re = evaluate_return(&p, &sale, &e, &ret);
        assert_eq!((re.points_delta, re.turnover_delta), (dec!(-500), dec!(-100)));
        assert_eq!(re.turnover_on, Some(day("2026-03-02")));
    }

    #[test]
    fn return_reverses_what_was_credited_even_if_rules_changed() {
        let mut p = program();
        p.campaigns = vec![campaign("x3", 1, dec!(300), CampaignScope::AllMembers)];
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(2), dec!(50))]);
        let e = evaluate_receipt(&p, &sale);
        assert_eq!(e.points_delta, dec!(300));
        p.campaigns.clear();
        let ret = return_of(&sale, "2", MON_10, vec![line("A", None, dec!(-1), dec!(50))]);
        assert_eq!(evaluate_return(&p, &sale, &e, &ret).points_delta, dec!(-150));
    }

    #[test]
    fn partial_returns_add_up_to_the_original_exactly() {
        let mut p = program();
        p.default_points_percent = dec!(1);
        // 3 × 0.50 at 1 % = 0.015 → 0.02 points. Thirds are 0.00667 each.
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(3), dec!(0.50))]);
        let e = evaluate_receipt(&p, &sale);
        assert_eq!(e.points_delta, dec!(0.02));
        let r1 = return_of(&sale, "2", MON_10, vec![line("A", None, dec!(-1), dec!(0.50))]);
        let r2 = return_of(&sale, "3", MON_10, vec![line("A", None, dec!(-1), dec!(0.50))]);
        let r3 = return_of(&sale, "4", MON_10, vec![line("A", None, dec!(-1), dec!(0.50))]);
        let a = evaluate_return_after(&p, &sale, &e, &[], &r1).points_delta;
        let b = evaluate_return_after(&p, &sale, &e, std::slice::from_ref(&r1), &r2).points_delta;
        let c = evaluate_return_after(&p, &sale, &e, &[r1.clone(), r2.clone()], &r3).points_delta;
        assert_eq!((a, b, c), (dec!(-0.01), dec!(-0.00), dec!(-0.01)));
        assert_eq!(a + b + c, -e.points_delta);
        // A fourth return of the same line reverses nothing more.
        let r4 = return_of(&sale, "5", MON_10, vec![line("A", None, dec!(-1), dec!(0.50))]);
        assert_eq!(
            evaluate_return_after(&p, &sale, &e, &[r1, r2, r3], &r4).points_delta,
            dec!(0)
        );
    }

    #[test]
    fn return_of_item_not_on_original_uses_base_rate() {
        let p = program();
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(100))]);
        let e = evaluate_receipt(&p, &sale);
        let ret = return_of(
            &sale,
            "2",
            MON_10,
            vec![line("BREAD", Some("bakery"), dec!(-1), dec!(40))],
        );
        assert_eq!(evaluate_return(&p, &sale, &e, &ret).points_delta, dec!(-4));
    }

    #[test]
    fn exchange_sale_lines_on_a_return_earn() {
        let p = program();
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(100))]);
        let e = evaluate_receipt(&p, &sale);
        let ret = return_of(
            &sale,
            "2",
            MON_10,
            vec![
                line("A", None, dec!(-1), dec!(100)),
                line("B", None, dec!(1), dec!(120)),
            ],
        );
        let re = evaluate_return(&p, &sale, &e, &ret);
        assert_eq!((re.points_delta, re.turnover_delta), (dec!(20), dec!(20)));
        assert_eq!(
            re.lines.iter().map(|l| (l.index, l.points)).collect::<Vec<_>>(),
            vec![(0, dec!(-100)), (1, dec!(120))]
        );
    }

    #[test]
    fn redeemed_rewards_are_not_restored_and_balance_floors_at_zero() {
        let p = program();
        let sale = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(300))]);
        let e = evaluate_receipt(&p, &sale);
        let (s, _) = apply_effect(&p, &CustomerState::default(), &e, day("2026-03-02"));
        assert_eq!(s.points_balance, dec!(300));
        // The customer redeems 200 points for a 20 CZK voucher, then returns the goods.
        let (r, s) = redeem_from(&p, &s, dec!(200)).unwrap();
        assert_eq!((r.value, s.points_balance), (dec!(20), dec!(100)));
        let ret = return_of(&sale, "2", MON_10, vec![line("A", None, dec!(-1), dec!(300))]);
        let re = evaluate_return(&p, &sale, &e, &ret);
        assert_eq!(re.points_delta, dec!(-300));
        let (s2, _) = apply_effect(&p, &s, &re, day("2026-03-02"));
        assert_eq!(s2.points_balance, dec!(0), "never below zero");
        // A program that allows it keeps the debt.
        let mut neg = program();
        neg.allow_negative_balance = true;
        let (s3, _) = apply_effect(&neg, &s, &re, day("2026-03-02"));
        assert_eq!(s3.points_balance, dec!(-200));
    }

    #[test]
    fn return_books_turnover_into_the_original_month() {
        let mut p = program();
        p.turnover_window = TurnoverWindow::RollingMonths { months: 2 };
        let sale = receipt(
            "1",
            "2026-01-20T10:00:00+01:00",
            vec![line("A", None, dec!(1), dec!(6000))],
        );
        let e = evaluate_receipt(&p, &sale);
        let (s, ch) = apply_effect(&p, &CustomerState::default(), &e, day("2026-01-20"));
        assert!(ch.unwrap().upgrade);
        let ret = return_of(
            &sale,
            "2",
            "2026-02-03T10:00:00+01:00",
            vec![line("A", None, dec!(-1), dec!(6000))],
        );
        let (s, ch) = apply_effect(&p, &s, &evaluate_return(&p, &sale, &e, &ret), day("2026-02-03"));
        assert_eq!(ch.map(|c| c.upgrade), Some(false));
        assert_eq!(s.turnover_by_month.get("2026-01"), Some(&dec!(0)));
        assert!(!s.turnover_by_month.contains_key("2026-02"));
        // In March the window is Feb–Mar: still 0, not −6000.
        assert_eq!(turnover(&p, &s, day("2026-03-01")), dec!(0));
    }

    // --- family / company cards ------------------------------------------------------------

    #[test]
    fn sub_cards_earn_into_the_parent_account() {
        let parent = customer("FIRM", None);
        let child = customer("EMP-1", Some("FIRM"));
        assert_eq!(earning_account(&child), &CustomerId::from("FIRM"));
        assert_eq!(earning_account(&parent), &CustomerId::from("FIRM"));
        let grandchild = customer("EMP-1a", Some("EMP-1"));
        let all = [parent.clone(), child.clone(), grandchild.clone()];
        let lookup = |id: &CustomerId| all.iter().find(|c| &c.id == id);
        assert_eq!(resolve_earning_account(&grandchild, lookup), &CustomerId::from("FIRM"));
        let a = customer("A", Some("B"));
        let b = customer("B", Some("A"));
        let cyc = [a.clone(), b];
        assert_eq!(
            resolve_earning_account(&a, |id: &CustomerId| cyc.iter().find(|c| &c.id == id)),
            &CustomerId::from("A")
        );
        // Two employees' purchases add up on the firm's account and lift its tier.
        let p = program();
        let r1 = receipt("1", MON_10, vec![line("A", None, dec!(1), dec!(3000))]);
        let r2 = receipt("2", MON_10, vec![line("A", None, dec!(1), dec!(2500))]);
        let (s, _) = apply_effect(
            &p,
            &CustomerState::default(),
            &evaluate_receipt(&p, &r1),
            day("2026-03-02"),
        );
        let (s, ch) = apply_effect(&p, &s, &evaluate_receipt(&p, &r2), day("2026-03-02"));
        assert_eq!(ch.unwrap().to, "Silver");
        let q = customer_quote(&p, &child, &s, &at(MON_10));
        assert_eq!((q.points_balance, q.discount_percent), (dec!(5500), dec!(5)));
    }

    // --- validation ------------------------------------------------------------------------

    #[test]
    fn validate_names_the_bad_field() {
        assert_eq!(program().validate(), Ok(()));
        let mut p = program();
        p.tiers[1].threshold = dec!(0);
        p.category_points_percent.insert("bad".into(), dec!(-5));
        p.turnover_window = TurnoverWindow::RollingMonths { months: 0 };
        p.campaigns = vec![campaign("c", 1, dec!(100), CampaignScope::AllMembers)];
        p.campaigns[0].hours = Some((8, 25));
        let fields: Vec<String> = p.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "program.tiers[1].threshold",
                "program.turnover_window.months",
                "program.category_points_percent.bad",
                "program.campaigns[0].hours"
            ]
        );
    }

    #[test]
    fn cashier_messages_by_cause() {
        let mut p = program();
        p.campaigns = vec![campaign("dbl", 1, dec!(200), CampaignScope::AllMembers)];
        let c = customer("C1", None);
        let at = DateTime::parse_from_rfc3339("2026-12-30T10:00:00+01:00").unwrap(); // a Wednesday
        let mut state = CustomerState {
            points_balance: dec!(250),
            ..Default::default()
        };
        state.turnover_by_month.insert("2026-12".into(), dec!(6000));
        let q = customer_quote(&p, &c, &state, &at);
        let facts = MessageFacts {
            first_purchase: false,
            // 3 January is in the Monday 28 Dec – Sunday 3 Jan week: next year's date
            birthday: NaiveDate::from_ymd_opt(1990, 1, 3),
        };
        let got: Vec<String> = cashier_messages(&p, &c.id, &q, &facts, at.date_naive())
            .into_iter()
            .map(|m| m.cause)
            .collect();
        assert_eq!(
            got,
            [
                "tier:C1:Silver",
                "birthday:C1:2027",
                "reward:C1:200",
                "campaign:C1:dbl:2026-12-30"
            ]
        );
        // The first tier is nothing to announce; no birthday this week; welcome on the first purchase.
        let q = customer_quote(&p, &c, &CustomerState::default(), &at);
        let facts = MessageFacts {
            first_purchase: true,
            birthday: NaiveDate::from_ymd_opt(1990, 1, 10),
        };
        let got: Vec<MessageWhat> = cashier_messages(&p, &c.id, &q, &facts, at.date_naive())
            .into_iter()
            .map(|m| m.what)
            .collect();
        assert_eq!(
            got,
            [MessageWhat::Welcome, MessageWhat::Campaign { name: "DBL".into() }]
        );
        // 29 February birthdays fall on 28 February in common years
        assert_eq!(
            anniversary(NaiveDate::from_ymd_opt(2000, 2, 29).unwrap(), 2027),
            NaiveDate::from_ymd_opt(2027, 2, 28).unwrap()
        );
    }
}
