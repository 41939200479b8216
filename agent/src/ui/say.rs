//! What the cashier tells the customer: the text of each cashier message
//! (`protocol::v1::CashierMessage`) in Czech, Slovak, Croatian and English, with counted points
//! in the language's plural form (`ui::plural`: `1 bod`, `2 body`, `5 bodů`; hr `2 boda`,
//! `5 bodova`, `21 bod`) and money / percent / dates in its format.

use chrono::NaiveDate;
use protocol::v1::{CashierMessage, MessageWhat, RewardKind};
use protocol::Currency;

use super::i18n::{self, Lang, NBSP};
use super::plural::{count, Noun};

fn date(lang: Lang, d: NaiveDate) -> String {
    match lang {
        Lang::Cs | Lang::Sk | Lang::Hr => d.format(&format!("%-d.{NBSP}%-m.")).to_string(),
        Lang::En => d.format("%-d %B").to_string(),
    }
}

/// One message as a sentence for the cashier.
pub fn message(lang: Lang, m: &CashierMessage, cur: Currency) -> String {
    use Lang::*;
    match &m.what {
        MessageWhat::Welcome => match lang {
            Cs => "Vítejte v programu – první nákup s kartou".into(),
            Sk => "Vitajte v programe – prvý nákup s kartou".into(),
            Hr => "Dobro došli u program – prva kupnja s karticom".into(),
            En => "Welcome to the programme – first purchase with the card".into(),
        },
        MessageWhat::TierReached { tier, discount_percent } => {
            let pct = i18n::percent(lang, *discount_percent);
            match lang {
                Cs => format!("Nová úroveň {tier}: sleva {pct}"),
                Sk => format!("Nová úroveň {tier}: zľava {pct}"),
                Hr => format!("Nova razina {tier}: popust {pct}"),
                En => format!("New tier {tier}: {pct} discount"),
            }
        }
        MessageWhat::Birthday { on } => {
            let d = date(lang, *on);
            match lang {
                Cs => format!("Narozeniny {d} – popřejte zákazníkovi"),
                Sk => format!("Narodeniny {d} – zablahoželajte zákazníkovi"),
                Hr => format!("Rođendan {d} – čestitajte kupcu"),
                En => format!("Birthday on {d} – wish the customer well"),
            }
        }
        MessageWhat::RewardReachable { points, value, reward } => {
            let pts = count(lang, *points, Noun::Point);
            let worth = match reward {
                RewardKind::PercentDiscount => match lang {
                    Cs => format!("slevu {}", i18n::percent(lang, *value)),
                    Sk => format!("zľavu {}", i18n::percent(lang, *value)),
                    Hr => format!("popust {}", i18n::percent(lang, *value)),
                    En => format!("a {} discount", i18n::percent(lang, *value)),
                },
                RewardKind::Voucher | RewardKind::Discount => i18n::money(lang, *value, cur),
            };
            match lang {
                Cs => format!("Může uplatnit {pts} za {worth}"),
                Sk => format!("Môže uplatniť {pts} za {worth}"),
                Hr => format!("Može iskoristiti {pts} za {worth}"),
                En => format!("Can redeem {pts} for {worth}"),
            }
        }
        MessageWhat::Campaign { name } => match lang {
            Cs => format!("Dnes probíhá akce: {name}"),
            Sk => format!("Dnes prebieha akcia: {name}"),
            Hr => format!("Danas traje akcija: {name}"),
            En => format!("Today's campaign: {name}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn reward(points: i64) -> CashierMessage {
        CashierMessage {
            cause: format!("reward:C1:{points}"),
            what: MessageWhat::RewardReachable {
                points: Decimal::from(points),
                value: Decimal::from(points) / Decimal::from(10),
                reward: RewardKind::Voucher,
            },
        }
    }

    /// The counted points agree with the number in every language (`~` = no-break space).
    #[test]
    fn reward_sentences_use_the_plural_forms() {
        let render = |lang: Lang| {
            [1, 2, 5, 21, 100]
                .iter()
                .map(|n| message(lang, &reward(*n), Currency::CZK).replace(NBSP, "~"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            render(Lang::Cs),
            [
                "Může uplatnit 1~bod za 0,10~Kč",
                "Může uplatnit 2~body za 0,20~Kč",
                "Může uplatnit 5~bodů za 0,50~Kč",
                "Může uplatnit 21~bodů za 2,10~Kč",
                "Může uplatnit 100~bodů za 10,00~Kč",
            ]
        );
        assert_eq!(
            render(Lang::Sk),
            [
                "Môže uplatniť 1~bod za 0,10~Kč",
                "Môže uplatniť 2~body za 0,20~Kč",
                "Môže uplatniť 5~bodov za 0,50~Kč",
                "Môže uplatniť 21~bodov za 2,10~Kč",
                "Môže uplatniť 100~bodov za 10,00~Kč",
            ]
        );
        assert_eq!(
            render(Lang::Hr),
            [
                "Može iskoristiti 1~bod za 0,10~Kč",
                "Može iskoristiti 2~boda za 0,20~Kč",
                "Može iskoristiti 5~bodova za 0,50~Kč",
                "Može iskoristiti 21~bod za 2,10~Kč",
                "Može iskoristiti 100~bodova za 10,00~Kč",
            ]
        );
        assert_eq!(
            render(Lang::En),
            [
                "Can redeem 1~point for CZK~0.10",
                "Can redeem 2~points for CZK~0.20",
                "Can redeem 5~points for CZK~0.50",
                "Can redeem 21~points for CZK~2.10",
                "Can redeem 100~points for CZK~10.00",
            ]
        );
    }

    #[test]
    fn every_kind_has_a_sentence_in_every_language() {
        let kinds = [
            MessageWhat::Welcome,
            MessageWhat::TierReached {
                tier: "Gold".into(),
                discount_percent: Decimal::from(5),
            },
            MessageWhat::Birthday {
                on: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            },
            MessageWhat::RewardReachable {
                points: Decimal::from(500),
                value: Decimal::from(10),
                reward: RewardKind::PercentDiscount,
            },
            MessageWhat::Campaign {
                name: "Dvojnásobné body".into(),
            },
        ];
        for lang in [Lang::Cs, Lang::Sk, Lang::Hr, Lang::En] {
            for what in &kinds {
                let s = message(
                    lang,
                    &CashierMessage {
                        cause: "x:C1".into(),
                        what: what.clone(),
                    },
                    Currency::EUR,
                );
                assert!(!s.is_empty() && !s.contains('{'), "{lang:?}: {s}");
            }
        }
        let b = CashierMessage {
            cause: "birthday:C1:2026".into(),
            what: kinds[2].clone(),
        };
        assert_eq!(
            message(Lang::Cs, &b, Currency::CZK),
            "Narozeniny 3.\u{a0}12. – popřejte zákazníkovi"
        );
        assert_eq!(
            message(Lang::En, &b, Currency::CZK),
            "Birthday on 3 December – wish the customer well"
        );
        let p = CashierMessage {
            cause: "reward:C1:500".into(),
            what: kinds[3].clone(),
        };
        assert_eq!(
            message(Lang::Hr, &p, Currency::EUR),
            "Može iskoristiti 500\u{a0}bodova za popust 10\u{a0}%"
        );
    }
}
