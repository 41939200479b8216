//! The till's Redeem step as data (no GUI dependency): the offer a customer popup carries (the
//! largest option the quote marks redeemable, the one shown in the popup), the request the
//! confirm window sends, and the popup shown for the answer — large, the money to key into the
//! POS and the code, or why nothing was redeemed. The egui confirm window is `redeem_window`.
use protocol::v1::{QuoteResult, RedeemOption, RedeemRequest, RewardKind};
use protocol::{CardId, Currency, StoreId, TillId};

use super::i18n::{self, rdm, Lang, Rdm};
use super::viewmodel::{PopupKind, PopupView, Row, Severity};
use crate::events::{QuoteEvent, RedeemEvent};

/// What the popup's Redeem button redeems.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub card: CardId,
    pub option: RedeemOption,
    pub currency: Currency,
}

impl Offer {
    /// The offer of a customer quote: its largest redeemable option (the one the popup shows).
    pub fn from_quote(ev: &QuoteEvent) -> Option<Offer> {
        match &ev.quote.result {
            QuoteResult::Customer { card, quote } => quote.redeemable.last().map(|o| Offer {
                card: card.clone(),
                option: o.clone(),
                currency: quote.currency,
            }),
            _ => None,
        }
    }

    /// `10 Kč za 100 bodů`, as in the popup.
    pub fn text(&self, lang: Lang) -> String {
        super::viewmodel::redeem_option(lang, &self.option, self.currency)
    }

    /// A new redemption request for this offer (a fresh request id: the one the answer carries).
    pub fn request(&self, store: &StoreId, till: &TillId) -> RedeemRequest {
        crate::redeem::new_request(&self.card, self.option.points, store, till)
    }
}

/// The popup for the answer to a redemption or a void.
pub fn result_view(lang: Lang, card: Option<&CardId>, ev: &RedeemEvent) -> PopupView {
    let now = chrono::Local::now().fixed_offset();
    let (kind, severity, title) = match (&ev.refused, ev.void) {
        (Some(_), false) => (PopupKind::Customer, Severity::Error, rdm(lang, Rdm::RefusedTitle)),
        (Some(_), true) => (PopupKind::Customer, Severity::Error, rdm(lang, Rdm::VoidRefusedTitle)),
        (None, false) => (PopupKind::Customer, Severity::Ok, rdm(lang, Rdm::DoneTitle)),
        (None, true) => (PopupKind::Customer, Severity::Warning, rdm(lang, Rdm::VoidedTitle)),
    };
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    if let (Some(a), false) = (&ev.answer, ev.void) {
        let value = match a.reward {
            RewardKind::PercentDiscount => i18n::percent(lang, a.value),
            _ => i18n::money(lang, a.value, a.currency),
        };
        rows.push(Row {
            label: rdm(lang, Rdm::KeyIntoPos).to_string(),
            value,
            emphasis: true,
        });
        rows.push(Row {
            label: rdm(lang, Rdm::Code).to_string(),
            value: a.code.clone(),
            emphasis: true,
        });
    }
    if let Some(r) = &ev.refused {
        warnings.push(r.clone());
    }
    PopupView {
        kind,
        severity,
        lang,
        title: title.to_string(),
        card: card.map(|c| c.masked()),
        rows,
        warnings,
        say: Vec::new(),
        offline: (ev.mode.as_deref() == Some("offline") && !ev.void).then(|| rdm(lang, Rdm::Queued).to_string()),
        waiting: None,
        actions: Vec::new(),
        history: Vec::new(),
        facts: None,
        scanned_at: now,
        source: "redeem".into(),
        card_id: card.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn answer() -> protocol::v1::RedeemAnswer {
        protocol::v1::RedeemAnswer {
            redemption_id: "rdm-1".into(),
            code: "R7K2Q9".into(),
            points: dec!(100),
            value: dec!(50),
            reward: RewardKind::Voucher,
            currency: Currency::CZK,
            balance_after: dec!(20),
            voided: false,
        }
    }

    fn ev(answer: Option<protocol::v1::RedeemAnswer>, mode: Option<&str>, refused: Option<&str>) -> RedeemEvent {
        RedeemEvent {
            request_id: "rdm-1".into(),
            void: false,
            answer,
            mode: mode.map(Into::into),
            refused: refused.map(Into::into),
        }
    }

    #[test]
    fn every_redeem_text_in_every_language() {
        for l in Lang::ALL {
            for k in Rdm::ALL {
                assert!(!rdm(l, k).is_empty(), "{l:?} {k:?}");
            }
        }
    }

    #[test]
    fn the_result_popup_shows_the_value_to_key_in_and_the_code_large() {
        let card = CardId::normalise("1900000009001016").unwrap();
        let v = result_view(Lang::Cs, Some(&card), &ev(Some(answer()), Some("online"), None));
        assert_eq!(v.severity, Severity::Ok);
        assert_eq!(
            v.text_lines(),
            vec![
                "Body uplatněny".to_string(),
                "1900-****-****-1016".into(),
                "Zadejte do pokladny slevu: 50,00\u{a0}Kč".into(),
                "Kód: R7K2Q9".into(),
            ]
        );
        assert!(v.rows.iter().all(|r| r.emphasis));
        assert!(!v.to_json_line().contains("1900000009001016"), "card masked");

        let off = result_view(Lang::En, Some(&card), &ev(Some(answer()), Some("offline"), None));
        assert_eq!(off.offline.as_deref(), Some("Offline – sent when the server is back"));

        let no = result_view(
            Lang::Hr,
            Some(&card),
            &ev(None, None, Some("the server refused: insufficient_points: 20 < 100")),
        );
        assert_eq!(no.severity, Severity::Error);
        assert_eq!(no.title, "Bodovi se ne mogu iskoristiti");
        assert!(no.rows.is_empty());
        assert_eq!(no.warnings, vec!["the server refused: insufficient_points: 20 < 100"]);

        let mut void = ev(Some(answer()), Some("online"), None);
        void.void = true;
        let v = result_view(Lang::Sk, None, &void);
        assert_eq!(v.title, "Uplatnenie stornované, body vrátené");
        assert!(v.rows.is_empty() && v.offline.is_none());
    }
}
