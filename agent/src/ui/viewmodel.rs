//! What the cashier sees for a scan: [`PopupView`], built from a [`QuoteEvent`] or a
//! [`ScanEvent`], in one language. Pure data, no GUI dependency: the egui popup draws it and
//! headless mode prints it as one JSON line, so tests observe exactly the popup's text.
//!
//! Card numbers appear masked only (`1900-****-****-9012`); a payment card shows at most its
//! last four digits.

use chrono::{DateTime, FixedOffset};
use protocol::v1::{CustomerQuote, QuoteResult, QuoteSource};
use rust_decimal::Decimal;
use serde::Serialize;

use super::i18n::{self, t, Key, Lang};
use super::plural::{self, Noun};
use crate::events::{Classified, QuoteEvent, ScanEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PopupKind {
    Customer,
    Replaced,
    Blocked,
    UnknownCard,
    PaymentCard,
    ReadError,
    NotLoyalty,
}

/// Colour of the popup frame: ok (green), warning (amber), error (red).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ok,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub label: String,
    pub value: String,
    /// Shown large and coloured, right after the name: what the cashier must act on (the
    /// discount, anything redeemable now).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub emphasis: bool,
}

/// One line of the popup's history expansion (the account's newest ledger entries, newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// Local date of the entry (`23. 11. 2026`).
    pub date: String,
    /// The store it happened in (`—` when none, e.g. an admin adjustment).
    pub store: String,
    /// Signed points (`+125`, `−100`).
    pub points: String,
    /// What it was: purchase, return, redemption, adjustment…
    pub what: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionId {
    Register,
    MigrationCode,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Action {
    pub id: ActionId,
    pub label: String,
}

/// Machine-readable facts behind the text (decimals as strings on the wire).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Facts {
    pub tier: String,
    pub discount_percent: Decimal,
    pub points_balance: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_to_next_reward: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turnover_to_next_tier: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    pub currency: protocol::Currency,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PopupView {
    pub kind: PopupKind,
    pub severity: Severity,
    pub lang: Lang,
    /// Big first line: the customer's name or the warning's headline.
    pub title: String,
    /// Masked loyalty card (`1900-****-****-9012`) or `…1234` for a payment card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Label/value rows: tier, discount, points, to next reward, to next tier, campaign.
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
    /// What to tell the customer (the quote's cashier messages, `ui::say`), shown once per cause.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub say: Vec<String>,
    /// `Offline – stav k …` when the quote was computed on the till.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
    /// An offline quote shown while the server's answer is awaited: `Čekám na odpověď serveru…`
    /// (the server's quote, or the final offline one, replaces this popup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    pub actions: Vec<Action>,
    /// The account's newest ledger entries (at most 5), shown when the cashier expands the popup.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    pub scanned_at: DateTime<FixedOffset>,
    pub source: String,
    /// The scanned loyalty card itself, for the action forms (register / migration code). Never
    /// serialised: the popup's text and JSON show the masked number only.
    #[serde(skip)]
    pub card_id: Option<protocol::CardId>,
}

impl PopupView {
    /// Every text the cashier would read, one per line (for logs and tests).
    pub fn text_lines(&self) -> Vec<String> {
        let mut v = vec![self.title.clone()];
        v.extend(self.card.clone());
        v.extend(self.rows.iter().map(|r| format!("{}: {}", r.label, r.value)));
        v.extend(self.warnings.iter().cloned());
        v.extend(self.say.iter().map(|s| format!("» {s}")));
        v.extend(self.offline.clone());
        v.extend(self.waiting.clone());
        v.extend(self.actions.iter().map(|a| format!("[{}]", a.label)));
        v
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("PopupView serialises")
    }
}

fn customer_rows(lang: Lang, q: &CustomerQuote) -> Vec<Row> {
    let row = |k: Key, v: String| Row {
        label: t(lang, k).to_string(),
        value: v,
        emphasis: false,
    };
    let mut rows = vec![
        row(Key::Tier, q.tier.clone()),
        Row {
            emphasis: !q.discount_percent.is_zero(),
            ..row(Key::Discount, i18n::percent(lang, q.discount_percent))
        },
        row(Key::Points, i18n::points(lang, q.points_balance)),
    ];
    // What the customer can take now, the largest option (the till's redeem offers all of them).
    if let Some(o) = q.redeemable.last() {
        rows.push(Row {
            emphasis: true,
            ..row(Key::CanRedeem, redeem_option(lang, o, q.currency))
        });
    } else if let Some(p) = q.points_to_next_reward {
        rows.push(row(Key::PointsToReward, plural::count(lang, p, Noun::Point)));
    }
    match (&q.next_tier, q.turnover_to_next_tier) {
        (Some(next), Some(amount)) => rows.push(Row {
            label: i18n::next_tier(lang, next),
            value: i18n::money(lang, amount, q.currency),
            emphasis: false,
        }),
        // At the top tier: say so beside the tier name.
        (None, _) => rows[0].value = format!("{} ({})", q.tier, t(lang, Key::TopTier).to_lowercase()),
        (Some(_), None) => {}
    }
    if let Some(c) = &q.campaign {
        rows.push(row(Key::Campaign, c.clone()));
    }
    rows
}

/// A redeem option: `50 Kč za 100 bodů` (cs/sk/hr `za`), `CZK 50 for 100 points` (en); the value of
/// a percentage reward is a percent.
pub(super) fn redeem_option(lang: Lang, o: &protocol::v1::RedeemOption, cur: protocol::Currency) -> String {
    let value = match o.reward {
        protocol::v1::RewardKind::PercentDiscount => i18n::percent(lang, o.value),
        _ => i18n::money(lang, o.value, cur),
    };
    let points = plural::count(lang, o.points, Noun::Point);
    match lang {
        Lang::En => format!("{value} for {points}"),
        _ => format!("{value} za {points}"),
    }
}

/// The cashier messages of a quote, each as a sentence in the screen's language.
pub fn say_lines(lang: Lang, q: &CustomerQuote) -> Vec<String> {
    q.messages
        .iter()
        .map(|m| super::say::message(lang, m, q.currency))
        .collect()
}

/// The popup's history lines from the quote's `recent` ledger entries (newest first, at most 5).
pub fn history_rows(lang: Lang, q: &CustomerQuote) -> Vec<HistoryRow> {
    q.recent
        .iter()
        .take(5)
        .map(|e| {
            let n = i18n::points(lang, e.points.abs());
            let points = if e.points.is_sign_negative() && !e.points.is_zero() {
                format!("\u{2212}{n}")
            } else if e.points.is_zero() {
                n
            } else {
                format!("+{n}")
            };
            HistoryRow {
                date: super::find_i18n::date(lang, e.at.date_naive()),
                store: e
                    .store_id
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "\u{2014}".into()),
                points,
                what: super::find_i18n::ledger_kind(lang, e.kind).to_string(),
            }
        })
        .collect()
}

fn facts(q: &CustomerQuote) -> Facts {
    Facts {
        tier: q.tier.clone(),
        discount_percent: q.discount_percent,
        points_balance: q.points_balance,
        points_to_next_reward: q.points_to_next_reward,
        turnover_to_next_tier: q.turnover_to_next_tier,
        next_tier: q.next_tier.clone(),
        campaign: q.campaign.clone(),
        currency: q.currency,
    }
}

/// Keep only the last four digits of whatever the reader gave (defence in depth: the input
/// side already reduces a payment card to `last4`).
fn last4(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(4)..].iter().collect()
}

impl PopupView {
    fn base(kind: PopupKind, severity: Severity, lang: Lang, title: String, scan: &ScanEvent) -> PopupView {
        PopupView {
            kind,
            severity,
            lang,
            title,
            card: None,
            rows: Vec::new(),
            warnings: Vec::new(),
            say: Vec::new(),
            offline: None,
            waiting: None,
            actions: Vec::new(),
            history: Vec::new(),
            facts: None,
            scanned_at: scan.at,
            source: scan.source.clone(),
            card_id: match &scan.classified {
                Classified::LoyaltyCard { card } => Some(card.clone()),
                _ => None,
            },
        }
    }

    /// The popup for a quote (a loyalty card's scan).
    pub fn from_quote(ev: &QuoteEvent, lang: Lang) -> PopupView {
        let scan = &ev.scan;
        let mut v = match &ev.quote.result {
            QuoteResult::Customer { card, quote } => {
                let mut v = Self::base(
                    PopupKind::Customer,
                    Severity::Ok,
                    lang,
                    customer_title(lang, quote),
                    scan,
                );
                v.card = Some(card.masked());
                v.rows = customer_rows(lang, quote);
                v.say = say_lines(lang, quote);
                v.history = history_rows(lang, quote);
                v.facts = Some(facts(quote));
                if quote.anonymous {
                    // Its account becomes the customer's (registration) or merges into an
                    // old-program customer's (migration code).
                    v.card_id = Some(card.clone());
                    v.actions = enrol_actions(lang);
                }
                v
            }
            QuoteResult::Replaced { card, new_card, quote } => {
                let mut v = Self::base(
                    PopupKind::Replaced,
                    Severity::Warning,
                    lang,
                    customer_title(lang, quote),
                    scan,
                );
                v.card = Some(card.masked());
                v.rows = customer_rows(lang, quote);
                v.warnings.push(format!(
                    "{}: {}",
                    t(lang, Key::ReplacedTitle),
                    i18n::replaced_by(lang, &new_card.masked())
                ));
                v.say = say_lines(lang, quote);
                v.history = history_rows(lang, quote);
                v.facts = Some(facts(quote));
                v
            }
            QuoteResult::Blocked { card, reason } => {
                let mut v = Self::base(
                    PopupKind::Blocked,
                    Severity::Error,
                    lang,
                    t(lang, Key::BlockedTitle).into(),
                    scan,
                );
                v.card = Some(card.masked());
                v.warnings.push(i18n::blocked_reason(lang, reason));
                v.warnings.push(t(lang, Key::BlockedNoEarn).into());
                v
            }
            QuoteResult::UnknownCard { card } => {
                let mut v = Self::base(
                    PopupKind::UnknownCard,
                    Severity::Warning,
                    lang,
                    t(lang, Key::UnknownTitle).into(),
                    scan,
                );
                v.card = Some(card.masked());
                v.card_id = Some(card.clone());
                v.warnings.push(t(lang, Key::UnknownText).into());
                v.actions = enrol_actions(lang);
                v
            }
        };
        if let QuoteSource::Offline { as_of } = &ev.quote.source {
            v.offline = Some(i18n::offline_as_of(lang, as_of));
        }
        if ev.provisional {
            v.waiting = Some(i18n::waiting_for_server(lang).to_string());
        }
        v
    }

    /// The popup for a scan that gets no quote (payment card, read error, not a card).
    /// `None` for a loyalty card: its popup comes with the quote that follows.
    pub fn from_scan(scan: &ScanEvent, lang: Lang) -> Option<PopupView> {
        Some(match &scan.classified {
            Classified::LoyaltyCard { .. } => return None,
            Classified::PaymentCard { last4: l4 } => {
                let l4 = last4(l4);
                let mut v = Self::base(
                    PopupKind::PaymentCard,
                    Severity::Warning,
                    lang,
                    t(lang, Key::PaymentTitle).into(),
                    scan,
                );
                v.card = Some(format!("…{l4}"));
                v.warnings.push(i18n::payment_card(lang, &l4));
                v
            }
            Classified::ReadError { detail } => {
                let mut v = Self::base(
                    PopupKind::ReadError,
                    Severity::Error,
                    lang,
                    t(lang, Key::ReadErrorTitle).into(),
                    scan,
                );
                v.warnings.push(t(lang, Key::ReadErrorText).into());
                v.warnings.push(super::reasons::read_error(lang, detail));
                v
            }
            Classified::Other { reason } => {
                let mut v = Self::base(
                    PopupKind::NotLoyalty,
                    Severity::Warning,
                    lang,
                    t(lang, Key::OtherTitle).into(),
                    scan,
                );
                v.warnings.push(super::reasons::not_loyalty(lang, reason));
                v
            }
        })
    }

    /// The popup for any bus event that should show one.
    pub fn from_event(ev: &crate::events::AgentEvent, lang: Lang) -> Option<PopupView> {
        match ev {
            crate::events::AgentEvent::Quote(q) => Some(Self::from_quote(q, lang)),
            crate::events::AgentEvent::Scan(s) => Self::from_scan(s, lang),
            crate::events::AgentEvent::Status(_)
            | crate::events::AgentEvent::Reader(_)
            | crate::events::AgentEvent::Enrol(_)
            | crate::events::AgentEvent::Redeem(_)
            | crate::events::AgentEvent::Lookup(_)
            | crate::events::AgentEvent::Tag(_)
            | crate::events::AgentEvent::Escape => None,
        }
    }
}

/// [Register] [Code from the old card]: for a card nobody owns yet, or an anonymous one.
fn enrol_actions(lang: Lang) -> Vec<Action> {
    vec![
        Action {
            id: ActionId::Register,
            label: t(lang, Key::Register).into(),
        },
        Action {
            id: ActionId::MigrationCode,
            label: t(lang, Key::MigrationCode).into(),
        },
    ]
}

/// The popup's title for a customer: the name, or "anonymous card" in the cashier's language.
pub fn customer_title(lang: Lang, quote: &CustomerQuote) -> String {
    if quote.anonymous {
        t(lang, Key::AnonymousCard).to_string()
    } else {
        quote.display_name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::v1::Quote;
    use protocol::{CardId, Currency};
    use rust_decimal_macros::dec;

    fn at() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-23T10:05:00+01:00").unwrap()
    }
    fn scan(c: Classified) -> ScanEvent {
        ScanEvent {
            at: at(),
            source: "cli".into(),
            classified: c,
        }
    }
    fn card() -> CardId {
        CardId::normalise("1900-1234-5678-9012").unwrap()
    }
    fn cq(cur: Currency) -> CustomerQuote {
        CustomerQuote {
            display_name: "Jiří Čermák".into(),
            anonymous: false,
            tier: "Silver".into(),
            discount_percent: dec!(5),
            points_balance: dec!(1250),
            points_to_next_reward: Some(dec!(250)),
            turnover_to_next_tier: Some(dec!(1234.5)),
            next_tier: Some("Gold".into()),
            campaign: Some("Podzimní dny".into()),
            currency: cur,
            redeemable: Vec::new(),
            recent: Vec::new(),
            messages: Vec::new(),
        }
    }
    fn qe(result: QuoteResult, source: QuoteSource) -> QuoteEvent {
        QuoteEvent {
            scan: scan(Classified::LoyaltyCard { card: card() }),
            quote: Quote { result, source },
            provisional: false,
        }
    }
    fn offline() -> QuoteSource {
        QuoteSource::Offline {
            as_of: DateTime::parse_from_rfc3339("2026-11-22T18:30:00+01:00").unwrap(),
        }
    }
    fn lines(v: &PopupView) -> String {
        v.text_lines().join("\n").replace('\u{a0}', "~")
    }

    #[test]
    fn customer_online_in_every_language() {
        let ev = |cur| {
            qe(
                QuoteResult::Customer {
                    card: card(),
                    quote: cq(cur),
                },
                QuoteSource::Online,
            )
        };
        let expect = [
            (Lang::Cs, Currency::CZK, "Jiří Čermák\n1900-****-****-9012\nÚroveň: Silver\nSleva: 5~%\nBody: 1~250\nDo odměny chybí: 250~bodů\nDo úrovně Gold zbývá nakoupit: 1~234,50~Kč\nAkce: Podzimní dny"),
            (Lang::Sk, Currency::EUR, "Jiří Čermák\n1900-****-****-9012\nÚroveň: Silver\nZľava: 5~%\nBody: 1~250\nDo odmeny chýba: 250~bodov\nDo úrovne Gold zostáva nakúpiť: 1~234,50~€\nAkcia: Podzimní dny"),
            (Lang::Hr, Currency::EUR, "Jiří Čermák\n1900-****-****-9012\nRazina: Silver\nPopust: 5~%\nBodovi: 1.250\nDo nagrade nedostaje: 250~bodova\nDo razine Gold treba još potrošiti: 1.234,50~€\nAkcija: Podzimní dny"),
            (Lang::En, Currency::CZK, "Jiří Čermák\n1900-****-****-9012\nTier: Silver\nDiscount: 5%\nPoints: 1,250\nTo the next reward: 250~points\nSpend to reach Gold: CZK~1,234.50\nCampaign: Podzimní dny"),
        ];
        for (lang, cur, text) in expect {
            let v = PopupView::from_quote(&ev(cur), lang);
            assert_eq!(v.kind, PopupKind::Customer);
            assert_eq!(v.severity, Severity::Ok);
            assert!(v.offline.is_none() && v.warnings.is_empty() && v.actions.is_empty());
            assert_eq!(lines(&v), text, "{lang:?}");
        }
    }

    #[test]
    fn history_lists_the_newest_ledger_entries_signed_in_every_language() {
        use protocol::v1::{LedgerEntry, LedgerKind};
        let entry = |seq: i64, day: &str, kind, points, store: Option<&str>| LedgerEntry {
            seq,
            account_id: protocol::CustomerId::from("C000001"),
            at: DateTime::parse_from_rfc3339(&format!("{day}T10:00:00+01:00")).unwrap(),
            kind,
            cause_id: "x".into(),
            store_id: store.map(protocol::StoreId::from),
            till_id: None,
            points,
            balance_after: dec!(0),
            note: None,
        };
        let mut q = cq(Currency::CZK);
        q.recent = vec![
            entry(6, "2026-11-23", LedgerKind::Receipt, dec!(1250.5), Some("S001")),
            entry(5, "2026-11-20", LedgerKind::Return, dec!(-40), Some("S002")),
            entry(4, "2026-11-19", LedgerKind::Redemption, dec!(-100), Some("S001")),
            entry(3, "2026-11-02", LedgerKind::Adjustment, dec!(25), None),
            entry(2, "2026-10-01", LedgerKind::Receipt, dec!(10), Some("S001")),
            entry(1, "2026-09-01", LedgerKind::Opening, dec!(0), None),
        ];
        let ev = qe(QuoteResult::Customer { card: card(), quote: q }, QuoteSource::Online);
        let row = |v: &PopupView, i: usize| {
            let r = &v.history[i];
            format!("{} | {} | {} | {}", r.date, r.store, r.points, r.what).replace('\u{a0}', "~")
        };
        for (lang, first, second, fourth) in [
            (
                Lang::Cs,
                "23.~11.~2026 | S001 | +1~250,5 | nákup",
                "20.~11.~2026 | S002 | \u{2212}40 | vratka",
                "2.~11.~2026 | \u{2014} | +25 | úprava",
            ),
            (
                Lang::Sk,
                "23.~11.~2026 | S001 | +1~250,5 | nákup",
                "20.~11.~2026 | S002 | \u{2212}40 | vrátenie",
                "2.~11.~2026 | \u{2014} | +25 | úprava",
            ),
            (
                Lang::Hr,
                "23.~11.~2026. | S001 | +1.250,5 | kupnja",
                "20.~11.~2026. | S002 | \u{2212}40 | povrat",
                "2.~11.~2026. | \u{2014} | +25 | ispravak",
            ),
            (
                Lang::En,
                "2026-11-23 | S001 | +1,250.5 | purchase",
                "2026-11-20 | S002 | \u{2212}40 | return",
                "2026-11-02 | \u{2014} | +25 | adjustment",
            ),
        ] {
            let v = PopupView::from_quote(&ev, lang);
            assert_eq!(v.history.len(), 5, "at most five entries");
            assert_eq!(row(&v, 0), first);
            assert_eq!(row(&v, 1), second);
            assert!(row(&v, 2).contains(&format!(
                "\u{2212}100 | {}",
                super::super::find_i18n::ledger_kind(lang, LedgerKind::Redemption)
            )));
            assert_eq!(row(&v, 3), fourth);
            assert!(
                v.to_json_line().contains("\"history\":[{\"date\""),
                "the headless line carries it"
            );
        }
        // No entries (offline quotes carry none): no history in the popup or its JSON line.
        let v = PopupView::from_quote(
            &qe(
                QuoteResult::Customer {
                    card: card(),
                    quote: cq(Currency::CZK),
                },
                QuoteSource::Online,
            ),
            Lang::Cs,
        );
        assert!(v.history.is_empty() && !v.to_json_line().contains("history"));
    }

    #[test]
    fn redeemable_option_is_shown_at_a_glance_in_every_language() {
        let mut q = cq(Currency::CZK);
        q.redeemable = vec![
            protocol::v1::RedeemOption {
                points: dec!(100),
                value: dec!(10),
                reward: protocol::v1::RewardKind::Voucher,
            },
            protocol::v1::RedeemOption {
                points: dec!(1200),
                value: dec!(120),
                reward: protocol::v1::RewardKind::Voucher,
            },
        ];
        let ev = qe(QuoteResult::Customer { card: card(), quote: q }, QuoteSource::Online);
        for (lang, want) in [
            (Lang::Cs, "Může uplatnit: 120,00~Kč za 1~200~bodů"),
            (Lang::Sk, "Môže uplatniť: 120,00~Kč za 1~200~bodov"),
            (Lang::Hr, "Može iskoristiti: 120,00~Kč za 1.200~bodova"),
            (Lang::En, "Can redeem: CZK~120.00 for 1,200~points"),
        ] {
            let v = PopupView::from_quote(&ev, lang);
            let text = lines(&v);
            assert!(text.contains(want), "{lang:?}: {text}");
            let row = v.rows.iter().find(|r| r.value.contains("120")).unwrap();
            assert!(row.emphasis, "the option is emphasised");
        }
    }

    /// The offline quote shown while the server is awaited says both: offline as of, and waiting;
    /// the final quote (online, or offline after the timeout) has no "waiting" line.
    #[test]
    fn provisional_offline_quote_says_offline_and_waiting_final_does_not() {
        let mut ev = qe(
            QuoteResult::Customer {
                card: card(),
                quote: cq(Currency::CZK),
            },
            offline(),
        );
        ev.provisional = true;
        let v = PopupView::from_quote(&ev, Lang::Cs);
        assert_eq!(
            v.offline.as_deref(),
            Some("Offline – stav k 22.\u{a0}11.\u{a0}2026 18:30")
        );
        assert_eq!(v.waiting.as_deref(), Some("Čekám na odpověď serveru…"));
        let text = v.text_lines();
        let off = text.iter().position(|l| l.starts_with("Offline")).unwrap();
        assert_eq!(text[off + 1], "Čekám na odpověď serveru…", "{text:?}");
        let j: serde_json::Value = serde_json::from_str(&v.to_json_line()).unwrap();
        assert_eq!(j["waiting"], "Čekám na odpověď serveru…");
        for lang in [Lang::Sk, Lang::Hr, Lang::En] {
            let w = PopupView::from_quote(&ev, lang).waiting.unwrap();
            assert!(w.ends_with('…') && w != "Čekám na odpověď serveru…", "{lang:?}: {w}");
        }
        ev.provisional = false;
        let fin = PopupView::from_quote(&ev, Lang::Cs);
        assert!(fin.waiting.is_none() && fin.offline.is_some());
        assert!(!fin.to_json_line().contains("waiting"));
        ev.quote.source = QuoteSource::Online;
        let online = PopupView::from_quote(&ev, Lang::Cs);
        assert!(online.waiting.is_none() && online.offline.is_none());
    }

    #[test]
    fn customer_offline_top_tier_in_every_language() {
        let mut q = cq(Currency::EUR);
        q.next_tier = None;
        q.turnover_to_next_tier = None;
        q.campaign = None;
        q.points_to_next_reward = None;
        q.tier = "Gold".into();
        let ev = qe(QuoteResult::Customer { card: card(), quote: q }, offline());
        let expect = [
            (
                Lang::Cs,
                "Úroveň: Gold (nejvyšší úroveň)",
                "Offline – stav k 22.~11.~2026 18:30",
            ),
            (
                Lang::Sk,
                "Úroveň: Gold (najvyššia úroveň)",
                "Offline – stav k 22.~11.~2026 18:30",
            ),
            (
                Lang::Hr,
                "Razina: Gold (najviša razina)",
                "Izvan mreže – stanje od 22.~11.~2026. 18:30",
            ),
            (Lang::En, "Tier: Gold (top tier)", "Offline, as of 2026-11-22 18:30"),
        ];
        for (lang, tier, off) in expect {
            let v = PopupView::from_quote(&ev, lang);
            let l = lines(&v);
            assert!(l.contains(tier), "{lang:?}: {l}");
            assert!(l.ends_with(off), "{lang:?}: {l}");
            assert_eq!(v.rows.len(), 3, "{lang:?}: tier, discount, points only: {l}");
        }
    }

    #[test]
    fn blocked_in_every_language() {
        let ev = qe(
            QuoteResult::Blocked {
                card: card(),
                reason: "ztráta".into(),
            },
            QuoteSource::Online,
        );
        let expect = [
            (
                Lang::Cs,
                "Karta je zablokována\n1900-****-****-9012\nDůvod: ztráta\nNesbírá body a nemá slevu.",
            ),
            (
                Lang::Sk,
                "Karta je zablokovaná\n1900-****-****-9012\nDôvod: ztráta\nNezbiera body a nemá zľavu.",
            ),
            (
                Lang::Hr,
                "Kartica je blokirana\n1900-****-****-9012\nRazlog: ztráta\nNe skuplja bodove i nema popusta.",
            ),
            (
                Lang::En,
                "Card is blocked\n1900-****-****-9012\nReason: ztráta\nIt earns no points and gets no discount.",
            ),
        ];
        for (lang, text) in expect {
            let v = PopupView::from_quote(&ev, lang);
            assert_eq!((v.kind, v.severity), (PopupKind::Blocked, Severity::Error));
            assert!(v.facts.is_none());
            assert_eq!(lines(&v), text);
        }
    }

    #[test]
    fn an_anonymous_card_is_titled_in_every_language_and_a_person_by_name() {
        let mut q = cq(Currency::CZK);
        q.anonymous = true;
        q.display_name = "Anonymous card".into();
        let ev = qe(QuoteResult::Customer { card: card(), quote: q }, offline());
        for (lang, title) in [
            (Lang::Cs, "Anonymní karta"),
            (Lang::Sk, "Anonymná karta"),
            (Lang::Hr, "Anonimna kartica"),
            (Lang::En, "Anonymous card"),
        ] {
            let v = PopupView::from_quote(&ev, lang);
            assert_eq!(v.title, title);
            // The cashier can register it or pair it with an old-program code.
            let ids: Vec<ActionId> = v.actions.iter().map(|a| a.id).collect();
            assert_eq!(ids, [ActionId::Register, ActionId::MigrationCode], "{lang:?}");
            assert_eq!(v.card_id, Some(card()));
        }
        let ev = qe(
            QuoteResult::Customer {
                card: card(),
                quote: cq(Currency::CZK),
            },
            offline(),
        );
        let v = PopupView::from_quote(&ev, Lang::Cs);
        assert_eq!(v.title, "Jiří Čermák");
        assert!(
            v.actions.is_empty(),
            "a registered customer's popup offers no enrolment"
        );
    }

    #[test]
    fn replaced_in_every_language() {
        let new_card = CardId::normalise("1900 0000 1111 2222").unwrap();
        let ev = qe(
            QuoteResult::Replaced {
                card: card(),
                new_card,
                quote: cq(Currency::CZK),
            },
            offline(),
        );
        let expect = [
            (
                Lang::Cs,
                "Nahrazená karta: Karta byla nahrazena kartou 1900-****-****-2222, zůstatek je na nové kartě.",
            ),
            (
                Lang::Sk,
                "Nahradená karta: Karta bola nahradená kartou 1900-****-****-2222, zostatok je na novej karte.",
            ),
            (
                Lang::Hr,
                "Zamijenjena kartica: Kartica je zamijenjena karticom 1900-****-****-2222, stanje je na novoj kartici.",
            ),
            (
                Lang::En,
                "Replaced card: This card was replaced by 1900-****-****-2222; the balance is on the new card.",
            ),
        ];
        for (lang, warning) in expect {
            let v = PopupView::from_quote(&ev, lang);
            assert_eq!((v.kind, v.severity), (PopupKind::Replaced, Severity::Warning));
            assert_eq!(v.warnings, vec![warning.to_string()]);
            assert_eq!(v.title, "Jiří Čermák");
            assert!(v.offline.is_some());
            assert_eq!(v.rows.len(), 6);
        }
    }

    #[test]
    fn unknown_card_offers_register_and_migration_in_every_language() {
        let ev = qe(QuoteResult::UnknownCard { card: card() }, QuoteSource::Online);
        let expect = [
            (Lang::Cs, "Neznámá karta\n1900-****-****-9012\nKarta není v programu registrována.\n[Registrovat]\n[Kód ze staré karty]"),
            (Lang::Sk, "Neznáma karta\n1900-****-****-9012\nKarta nie je v programe zaregistrovaná.\n[Zaregistrovať]\n[Kód zo starej karty]"),
            (Lang::Hr, "Nepoznata kartica\n1900-****-****-9012\nKartica nije registrirana u programu.\n[Registriraj]\n[Kôd sa stare kartice]"),
            (Lang::En, "Unknown card\n1900-****-****-9012\nThis card is not registered in the program.\n[Register]\n[Code from the old card]"),
        ];
        for (lang, text) in expect {
            let v = PopupView::from_quote(&ev, lang);
            assert_eq!(lines(&v), text);
            assert_eq!(
                v.actions.iter().map(|a| a.id).collect::<Vec<_>>(),
                vec![ActionId::Register, ActionId::MigrationCode]
            );
            // The forms get the card itself; the JSON (= what is shown and logged) never does.
            assert_eq!(v.card_id, Some(card()));
            assert!(!v.to_json_line().contains("1900123456789012"));
        }
    }

    #[test]
    fn payment_card_shows_last4_only_in_every_language() {
        // Even if a reader bug handed over more digits, only the last four survive.
        let s = scan(Classified::PaymentCard {
            last4: "4111111111111111".into(),
        });
        let expect = [
            (Lang::Cs, "Platební karta!\n…1111\nNačtena platební karta (…1111), ne věrnostní karta. Číslo se neukládá."),
            (Lang::Sk, "Platobná karta!\n…1111\nNačítaná platobná karta (…1111), nie vernostná karta. Číslo sa neukladá."),
            (Lang::Hr, "Platna kartica!\n…1111\nOčitana je platna kartica (…1111), a ne kartica vjernosti. Broj se ne sprema."),
            (Lang::En, "Payment card!\n…1111\nA payment card (…1111) was swiped, not a loyalty card. The number is not stored."),
        ];
        for (lang, text) in expect {
            let v = PopupView::from_scan(&s, lang).unwrap();
            assert_eq!(lines(&v), text);
            let json = v.to_json_line();
            assert!(!json.contains("411111"), "{json}");
        }
    }

    #[test]
    fn read_error_and_other_scans_and_loyalty_scan_waits_for_quote() {
        let v = PopupView::from_scan(
            &scan(Classified::ReadError {
                detail: "track 2 parity".into(),
            }),
            Lang::Cs,
        )
        .unwrap();
        assert_eq!(
            lines(&v),
            "Kartu se nepodařilo přečíst\nNačtěte kartu znovu.\nČtení bylo neúplné."
        );
        let v = PopupView::from_scan(
            &scan(Classified::Other {
                reason: "product barcode (EAN-13 GTIN 5901234123457), not a loyalty card".into(),
            }),
            Lang::Hr,
        )
        .unwrap();
        assert_eq!(
            lines(&v),
            "Nije kartica vjernosti\nOčitan je crtični kôd proizvoda, a ne kartica vjernosti."
        );
        assert!(PopupView::from_scan(&scan(Classified::LoyaltyCard { card: card() }), Lang::En).is_none());
        for lang in Lang::ALL {
            for c in [
                Classified::ReadError { detail: "x".into() },
                Classified::Other { reason: "y".into() },
            ] {
                assert!(!PopupView::from_scan(&scan(c), lang).unwrap().title.is_empty());
            }
        }
    }

    #[test]
    fn json_line_shape() {
        let ev = qe(
            QuoteResult::Customer {
                card: card(),
                quote: cq(Currency::CZK),
            },
            offline(),
        );
        let v = PopupView::from_quote(&ev, Lang::Cs);
        let line = v.to_json_line();
        assert!(!line.contains('\n'));
        assert!(!line.contains("1900123456789012"), "full card number leaked: {line}");
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(j["kind"], "customer");
        assert_eq!(j["lang"], "cs");
        assert_eq!(j["title"], "Jiří Čermák");
        assert_eq!(j["card"], "1900-****-****-9012");
        assert_eq!(j["facts"]["discount_percent"], "5");
        assert_eq!(j["facts"]["turnover_to_next_tier"], "1234.5");
        assert_eq!(j["rows"][1]["value"], "5\u{a0}%");
        assert_eq!(j["offline"], "Offline – stav k 22.\u{a0}11.\u{a0}2026 18:30");
        assert_eq!(j["scanned_at"], "2026-11-23T10:05:00+01:00");
    }
}
