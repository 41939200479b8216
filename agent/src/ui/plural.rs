//! Counted nouns by the language's CLDR plural rules (`intl_pluralrules`, the engine Fluent
//! uses): cs/sk `1 bod, 2 body, 5 bodů, 1,5 bodu`; hr `1 bod, 2 boda, 5 bodova, 21 bod`; en
//! `1 point, 2 points`. The number is formatted with the language's separators ([`i18n::number`]).

use intl_pluralrules::{PluralCategory, PluralRuleType, PluralRules};
use rust_decimal::Decimal;

use super::i18n::{self, Lang};

/// Things the agent counts on screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noun {
    Point,
    /// An item waiting in the outbox (receipt, registration, pairing).
    Item,
    Receipt,
    /// A character a reader typed (Reader-test window).
    Char,
}

impl Noun {
    pub const ALL: [Noun; 4] = [Noun::Point, Noun::Item, Noun::Receipt, Noun::Char];
}

/// The CLDR cardinal category of `n` in `lang` (visible decimals count: `1.5` is `many` in cs).
pub fn category(lang: Lang, n: Decimal) -> PluralCategory {
    let id: unic_langid::LanguageIdentifier = lang.code().parse().expect("language codes are valid");
    let rules = PluralRules::create(id, PluralRuleType::CARDINAL).expect("CLDR has rules for cs, sk, hr, en");
    let operand = n.abs().normalize().to_string();
    rules.select(operand.as_str()).unwrap_or(PluralCategory::OTHER)
}

fn form(lang: Lang, noun: Noun, c: PluralCategory) -> &'static str {
    use Lang::*;
    use Noun::*;
    use PluralCategory as P;
    match (lang, noun, c) {
        (Cs, Point, P::ONE) => "bod",
        (Cs, Point, P::FEW) => "body",
        (Cs, Point, P::MANY) => "bodu",
        (Cs, Point, _) => "bodů",
        (Sk, Point, P::ONE) => "bod",
        (Sk, Point, P::FEW) => "body",
        (Sk, Point, P::MANY) => "bodu",
        (Sk, Point, _) => "bodov",
        (Hr, Point, P::ONE) => "bod",
        (Hr, Point, P::FEW) => "boda",
        (Hr, Point, _) => "bodova",
        (En, Point, P::ONE) => "point",
        (En, Point, _) => "points",
        (Cs, Item, P::ONE) => "položka",
        (Cs, Item, P::FEW | P::MANY) => "položky",
        (Cs, Item, _) => "položek",
        (Sk, Item, P::ONE) => "položka",
        (Sk, Item, P::FEW | P::MANY) => "položky",
        (Sk, Item, _) => "položiek",
        (Hr, Item, P::ONE) => "stavka",
        (Hr, Item, P::FEW) => "stavke",
        (Hr, Item, _) => "stavki",
        (En, Item, P::ONE) => "item",
        (En, Item, _) => "items",
        (Cs, Receipt, P::ONE) => "účtenka",
        (Cs, Receipt, P::FEW | P::MANY) => "účtenky",
        (Cs, Receipt, _) => "účtenek",
        (Sk, Receipt, P::ONE) => "doklad",
        (Sk, Receipt, P::FEW) => "doklady",
        (Sk, Receipt, P::MANY) => "dokladu",
        (Sk, Receipt, _) => "dokladov",
        (Hr, Receipt, P::ONE) => "račun",
        (Hr, Receipt, _) => "računa",
        (En, Receipt, P::ONE) => "receipt",
        (En, Receipt, _) => "receipts",
        (Cs, Char, P::ONE) => "znak",
        (Cs, Char, P::FEW) => "znaky",
        (Cs, Char, P::MANY) => "znaku",
        (Cs, Char, _) => "znaků",
        (Sk, Char, P::ONE) => "znak",
        (Sk, Char, P::FEW) => "znaky",
        (Sk, Char, P::MANY) => "znaku",
        (Sk, Char, _) => "znakov",
        (Hr, Char, P::ONE) => "znak",
        (Hr, Char, P::FEW) => "znaka",
        (Hr, Char, _) => "znakova",
        (En, Char, P::ONE) => "character",
        (En, Char, _) => "characters",
    }
}

/// `5 bodů`, `1,5 bodu`, `21 bod` (hr), `1 point` — number (no-break space) noun.
pub fn count(lang: Lang, n: Decimal, noun: Noun) -> String {
    format!(
        "{}{}{}",
        i18n::number(lang, n, None),
        i18n::NBSP,
        form(lang, noun, category(lang, n))
    )
}

/// [`count`] for whole numbers.
pub fn count_u(lang: Lang, n: u64, noun: Noun) -> String {
    count(lang, Decimal::from(n), noun)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// Every counted noun for 0, 1, 2, 5, 21, 1.5 in every language (`~` = no-break space).
    #[test]
    fn plurals_follow_cldr_in_every_language() {
        let ns = [dec!(0), dec!(1), dec!(2), dec!(5), dec!(21), dec!(1.5)];
        let render = |l: Lang, noun: Noun| {
            ns.iter()
                .map(|n| count(l, *n, noun).replace(i18n::NBSP, "~"))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        use Lang::*;
        use Noun::*;
        let expected = [
            (Cs, Point, "0~bodů | 1~bod | 2~body | 5~bodů | 21~bodů | 1,5~bodu"),
            (Sk, Point, "0~bodov | 1~bod | 2~body | 5~bodov | 21~bodov | 1,5~bodu"),
            (Hr, Point, "0~bodova | 1~bod | 2~boda | 5~bodova | 21~bod | 1,5~bodova"),
            (
                En,
                Point,
                "0~points | 1~point | 2~points | 5~points | 21~points | 1.5~points",
            ),
            (
                Cs,
                Item,
                "0~položek | 1~položka | 2~položky | 5~položek | 21~položek | 1,5~položky",
            ),
            (
                Sk,
                Item,
                "0~položiek | 1~položka | 2~položky | 5~položiek | 21~položiek | 1,5~položky",
            ),
            (
                Hr,
                Item,
                "0~stavki | 1~stavka | 2~stavke | 5~stavki | 21~stavka | 1,5~stavki",
            ),
            (En, Item, "0~items | 1~item | 2~items | 5~items | 21~items | 1.5~items"),
            (
                Cs,
                Receipt,
                "0~účtenek | 1~účtenka | 2~účtenky | 5~účtenek | 21~účtenek | 1,5~účtenky",
            ),
            (
                Sk,
                Receipt,
                "0~dokladov | 1~doklad | 2~doklady | 5~dokladov | 21~dokladov | 1,5~dokladu",
            ),
            (
                Hr,
                Receipt,
                "0~računa | 1~račun | 2~računa | 5~računa | 21~račun | 1,5~računa",
            ),
            (
                En,
                Receipt,
                "0~receipts | 1~receipt | 2~receipts | 5~receipts | 21~receipts | 1.5~receipts",
            ),
        ];
        for (l, noun, want) in expected {
            assert_eq!(render(l, noun), want, "{l:?} {noun:?}");
        }
        // Croatian decimals: 2,3 takes `few` by its fraction digit, 1,1 `one`.
        assert_eq!(count(Hr, dec!(2.3), Point), "2,3\u{a0}boda");
        assert_eq!(count(Hr, dec!(1.1), Point), "1,1\u{a0}bod");
        // Grouped thousands keep the rule of the whole number.
        assert_eq!(count(Cs, dec!(1250), Point), "1\u{a0}250\u{a0}bodů");
        assert_eq!(count_u(Sk, 3, Item), "3\u{a0}položky");
    }
}
