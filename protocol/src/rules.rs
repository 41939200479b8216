//! The loyalty rules engine: pure functions over a [`RulesSnapshot`] and a customer's
//! [`CustomerState`]. The server applies receipts with it; the till computes offline quotes with
//! it. Same inputs, same numbers — there is one engine.
//!
//! Rounding: points are computed per line and rounded to 2 decimals half-away-from-zero, which is
//! sign-symmetric, so a sale followed by its full return nets exactly zero.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Weekday};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::ids::CardPolicy;
use crate::money::Currency;
use crate::v1::{Customer, CustomerQuote, CustomerState, ExpiringPoints, LineKind, Receipt};

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// A versioned copy of the program's rules. The server serves it with an ETag = `version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSnapshot {
    pub version: u64,
    pub program: Program,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub name: String,
    pub currency: Currency,
    #[serde(default)]
    pub card_policy: CardPolicy,
    /// Ascending by threshold; the first tier's threshold is normally 0.
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub turnover_window: TurnoverWindow,
    /// Default points coefficient in percent of line value (100 = 1 point per currency unit).
    pub default_points_percent: Decimal,
    /// Points coefficient per SKU (percent). 0 = no points for that item.
    #[serde(default)]
    pub item_points_percent: BTreeMap<String, Decimal>,
    /// Points coefficient per category (percent), used when the item has none.
    #[serde(default)]
    pub category_points_percent: BTreeMap<String, Decimal>,
    #[serde(default)]
    pub campaigns: Vec<Campaign>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemption: Option<Redemption>,
    /// May a balance go below zero (e.g. a return after the points were redeemed)?
    #[serde(default)]
    pub allow_negative_balance: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    /// Accumulated turnover (in the program currency) from which this tier applies.
    pub threshold: Decimal,
    pub discount_percent: Decimal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnoverWindow {
    #[default]
    Lifetime,
    /// The current calendar month and the `months - 1` before it.
    RollingMonths { months: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub active: bool,
    /// Lower number wins; 1 is the highest priority.
    pub priority: u32,
    /// Minimum receipt total for the campaign to apply.
    #[serde(default)]
    pub min_receipt_total: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<FixedOffset>>,
    /// Days of week (`Mon`..`Sun`); empty = every day.
    #[serde(default)]
    pub days_of_week: Vec<Weekday>,
    /// Hours of day `[from, to)` in the receipt's local time; None = all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<(u32, u32)>,
    /// Points credited by this campaign expire after this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_expire_days: Option<u32>,
    pub scope: CampaignScope,
    /// Points coefficient (percent of line value) for in-scope lines, replacing the base one.
    pub points_percent: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CampaignScope {
    Items { skus: Vec<String> },
    Categories { categories: Vec<String> },
    AllMembers,
}

/// Points → reward conversion, e.g. 100 points = 10 EUR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redemption {
    pub points: Decimal,
    pub value: Decimal,
    pub reward: RewardKind,
    /// Smallest number of points that can be redeemed (the "next reward").
    pub min_points: Decimal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// A voucher of a fixed amount.
    Voucher,
    /// A discount on the next purchase (amount).
    Discount,
}

/// Points computed for one line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinePoints {
    pub index: usize,
    pub points: Decimal,
    pub campaign: Option<String>,
}

/// What a receipt does to its customer's account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiptEffect {
    pub turnover_delta: Decimal,
    pub points_delta: Decimal,
    pub lines: Vec<LinePoints>,
    /// The campaign that applied (lowest priority number among the applicable ones).
    pub campaign: Option<String>,
    /// Campaign points with an expiry date (part of `points_delta`).
    pub expiring: Option<ExpiringPoints>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChange {
    pub from: String,
    pub to: String,
    pub upgrade: bool,
}

fn round_points(p: Decimal) -> Decimal {
    p.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

impl Program {
    /// The tier for an accumulated turnover (highest threshold not above it).
    pub fn tier_for(&self, turnover: Decimal) -> &Tier {
        let mut best = &self.tiers[0];
        for t in &self.tiers {
            if turnover >= t.threshold && t.threshold >= best.threshold {
                best = t;
            }
        }
        best
    }

    /// The next tier above the one for `turnover`, if any.
    pub fn next_tier(&self, turnover: Decimal) -> Option<&Tier> {
        self.tiers.iter().filter(|t| t.threshold > turnover).min_by(|a, b| a.threshold.cmp(&b.threshold))
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

    /// Campaigns that apply to a receipt issued at `at` with `total`, best (lowest priority
    /// number) first.
    pub fn applicable_campaigns(&self, at: &DateTime<FixedOffset>, total: Decimal) -> Vec<&Campaign> {
        let mut v: Vec<&Campaign> = self.campaigns.iter().filter(|c| c.applies_at(at, total)).collect();
        v.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.id.cmp(&b.id)));
        v
    }
}

impl Campaign {
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
            if !(from <= h && h < to) {
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

/// Turnover inside the program's window as of `at`.
pub fn turnover(program: &Program, state: &CustomerState, at: NaiveDate) -> Decimal {
    match program.turnover_window {
        TurnoverWindow::Lifetime => state.turnover_by_month.values().copied().sum(),
        TurnoverWindow::RollingMonths { months } => {
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
            keys.iter().filter_map(|k| state.turnover_by_month.get(k)).copied().sum()
        }
    }
}

/// The discount a customer gets: their override if set, else their tier's.
pub fn discount_percent(program: &Program, customer: Option<&Customer>, state: &CustomerState, at: NaiveDate) -> Decimal {
    if let Some(o) = customer.and_then(|c| c.discount_override) {
        return o;
    }
    program.tier_for(turnover(program, state, at)).discount_percent
}

/// Points and turnover for a sale receipt (also handles lines of any kind: discount lines
/// reduce the points base proportionally; rounding lines earn nothing).
///
/// Return receipts whose original is known should use [`evaluate_return`].
pub fn evaluate_receipt(program: &Program, receipt: &Receipt) -> ReceiptEffect {
    let campaigns = program.applicable_campaigns(&receipt.issued_at, receipt.total);
    let best = campaigns.first().copied();

    // Turnover: what the customer paid for goods (all lines except cash rounding), or the total
    // for totals-only receipts.
    let totals_only = receipt.is_totals_only();
    let goods: Decimal = receipt.lines.iter().filter(|l| l.kind != LineKind::Rounding).map(|l| l.line_total).sum();
    let turnover_delta = if totals_only { receipt.total } else { goods };

    let mut lines = Vec::new();
    let mut points = Decimal::ZERO;
    let mut campaign_points = Decimal::ZERO;
    let mut used_campaign = None;

    if totals_only {
        // No items: total-based points at the program default (or an all-members campaign).
        let (pct, camp) = match best.filter(|c| c.covers(None, None)) {
            Some(c) => (c.points_percent, Some(c.id.clone())),
            None => (program.default_points_percent, None),
        };
        let p = round_points(receipt.total * pct / HUNDRED);
        if camp.is_some() {
            campaign_points += p;
            used_campaign = camp.clone();
        }
        points += p;
        lines.push(LinePoints { index: 0, points: p, campaign: camp });
    } else {
        // Receipt-level discount lines scale the value of the sale lines proportionally.
        let sale_value: Decimal =
            receipt.lines.iter().filter(|l| matches!(l.kind, LineKind::Sale | LineKind::Return)).map(|l| l.line_total).sum();
        let discount: Decimal = receipt.lines.iter().filter(|l| l.kind == LineKind::Discount).map(|l| l.line_total).sum();
        let factor = if sale_value.is_zero() { Decimal::ONE } else { (sale_value + discount) / sale_value };
        for (i, l) in receipt.lines.iter().enumerate() {
            if !matches!(l.kind, LineKind::Sale | LineKind::Return) {
                continue;
            }
            let (sku, cat) = (l.sku.as_deref(), l.category.as_deref());
            let base = program.base_points_percent(sku, cat);
            let (pct, camp) = match best.filter(|c| c.covers(sku, cat)) {
                // Coefficient 0 on the item means "no points", campaigns included.
                Some(c) if !base.is_zero() => (c.points_percent, Some(c.id.clone())),
                _ => (base, None),
            };
            let p = round_points(l.line_total * factor * pct / HUNDRED);
            if camp.is_some() {
                campaign_points += p;
                used_campaign = camp.clone();
            }
            points += p;
            lines.push(LinePoints { index: i, points: p, campaign: camp });
        }
    }

    let expiring = match (used_campaign.as_ref().and_then(|id| program.campaigns.iter().find(|c| &c.id == id)), campaign_points) {
        (Some(c), p) if p > Decimal::ZERO => c.points_expire_days.map(|d| ExpiringPoints {
            points: p,
            expires_on: receipt.issued_at.date_naive() + chrono::Days::new(d as u64),
        }),
        _ => None,
    };

    ReceiptEffect { turnover_delta, points_delta: points, lines, campaign: used_campaign, expiring }
}

/// A return: reverse the points the original receipt credited for the returned lines,
/// proportionally to the returned quantity. Lines are matched by SKU (else by name).
pub fn evaluate_return(program: &Program, original: &Receipt, original_effect: &ReceiptEffect, ret: &Receipt) -> ReceiptEffect {
    let mut lines = Vec::new();
    let mut points = Decimal::ZERO;
    for (i, l) in ret.lines.iter().enumerate() {
        if l.kind != LineKind::Return && !l.quantity.is_sign_negative() {
            continue;
        }
        let key = |x: &crate::v1::ReceiptLine| x.sku.clone().unwrap_or_else(|| x.name.clone());
        let orig = original
            .lines
            .iter()
            .enumerate()
            .find(|(_, o)| o.kind == LineKind::Sale && key(o) == key(l));
        let p = match orig {
            Some((oi, o)) if !o.quantity.is_zero() => {
                let op = original_effect.lines.iter().find(|lp| lp.index == oi).map(|lp| lp.points).unwrap_or_default();
                round_points(op * l.quantity.abs() / o.quantity.abs())
            }
            // Not on the original: reverse at today's base rate.
            _ => round_points(l.line_total.abs() * program.base_points_percent(l.sku.as_deref(), l.category.as_deref()) / HUNDRED),
        };
        points -= p;
        lines.push(LinePoints { index: i, points: -p, campaign: None });
    }
    let turnover_delta: Decimal = ret.lines.iter().filter(|l| l.kind != LineKind::Rounding).map(|l| l.line_total).sum();
    ReceiptEffect { turnover_delta, points_delta: points, lines, campaign: None, expiring: None }
}

/// Apply an effect to an account. Returns the new state and a tier change, if any.
/// Redeemed rewards are not restored by returns; the balance does not go below zero unless the
/// program allows it.
pub fn apply_effect(program: &Program, state: &CustomerState, effect: &ReceiptEffect, on: NaiveDate) -> (CustomerState, Option<TierChange>) {
    let before = program.tier_for(turnover(program, state, on)).name.clone();
    let mut s = state.clone();
    *s.turnover_by_month.entry(month_key(on)).or_default() += effect.turnover_delta;
    s.points_balance += effect.points_delta;
    if s.points_balance.is_sign_negative() && !program.allow_negative_balance {
        s.points_balance = Decimal::ZERO;
    }
    if let Some(e) = &effect.expiring {
        s.expiring_points.push(e.clone());
    }
    let after = program.tier_for(turnover(program, &s, on)).name.clone();
    let change = (before != after).then(|| {
        let up = program.tiers.iter().position(|t| t.name == after) > program.tiers.iter().position(|t| t.name == before);
        TierChange { from: before, to: after, upgrade: up }
    });
    (s, change)
}

/// Drop expired campaign points from the balance as of `today`.
pub fn expire_points(state: &CustomerState, today: NaiveDate) -> CustomerState {
    let mut s = state.clone();
    let (expired, kept): (Vec<_>, Vec<_>) = s.expiring_points.drain(..).partition(|e| e.expires_on <= today);
    s.expiring_points = kept;
    let gone: Decimal = expired.iter().map(|e| e.points).sum();
    s.points_balance = (s.points_balance - gone).max(Decimal::ZERO);
    s
}

/// Redeem points: returns `(points_used, reward_value, new_balance)` or None if below the
/// minimum. Only whole multiples of `redemption.points` are redeemed.
pub fn redeem(program: &Program, balance: Decimal, wanted_points: Decimal) -> Option<(Decimal, Decimal, Decimal)> {
    let r = program.redemption.as_ref()?;
    let wanted = wanted_points.min(balance);
    if wanted < r.min_points || r.points.is_zero() {
        return None;
    }
    let units = (wanted / r.points).trunc();
    let used = units * r.points;
    if used.is_zero() {
        return None;
    }
    Some((used, units * r.value, balance - used))
}

/// The cashier's view of a customer's account at `at`.
pub fn customer_quote(program: &Program, customer: &Customer, state: &CustomerState, at: &DateTime<FixedOffset>) -> CustomerQuote {
    let day = at.date_naive();
    let t = turnover(program, state, day);
    let tier = program.tier_for(t);
    let next = program.next_tier(t);
    // The campaign a purchase right now would get (ignoring the minimum receipt value).
    let campaign = program.applicable_campaigns(at, Decimal::MAX).first().map(|c| c.name.clone());
    CustomerQuote {
        display_name: customer.name.display(),
        tier: tier.name.clone(),
        discount_percent: discount_percent(program, Some(customer), state, day),
        points_balance: state.points_balance,
        points_to_next_reward: program.redemption.as_ref().map(|r| {
            let step = r.min_points.max(r.points);
            if state.points_balance < step { step - state.points_balance } else { r.points - (state.points_balance % r.points) }
        }),
        turnover_to_next_tier: next.map(|n| n.threshold - t),
        next_tier: next.map(|n| n.name.clone()),
        campaign,
        currency: program.currency,
    }
}
