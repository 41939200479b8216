//! Texts of the "find the customer / add a purchase / history" screens in cs / sk / hr / en:
//! the popup's history expansion, the search box, the "Add purchase to card" form.
use protocol::v1::LedgerKind;

use super::i18n::Lang;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fx {
    /// Popup button that expands / collapses the history.
    History,
    /// The history is empty.
    NoHistory,
    MenuFind,
    MenuTag,
    FindTitle,
    FindHint,
    FindButton,
    Searching,
    Cancel,
    TagTitle,
    TagReceipt,
    TagDate,
    TagTotal,
    TagCard,
    TagCardHint,
    TagSubmit,
    TagSaving,
    TagQueued,
    TagNotQueued,
    Optional,
}

impl Fx {
    pub const ALL: [Fx; 20] = [
        Fx::History,
        Fx::NoHistory,
        Fx::MenuFind,
        Fx::MenuTag,
        Fx::FindTitle,
        Fx::FindHint,
        Fx::FindButton,
        Fx::Searching,
        Fx::Cancel,
        Fx::TagTitle,
        Fx::TagReceipt,
        Fx::TagDate,
        Fx::TagTotal,
        Fx::TagCard,
        Fx::TagCardHint,
        Fx::TagSubmit,
        Fx::TagSaving,
        Fx::TagQueued,
        Fx::TagNotQueued,
        Fx::Optional,
    ];
}

pub fn fx(lang: Lang, key: Fx) -> &'static str {
    use Fx::*;
    use Lang::*;
    match (key, lang) {
        (History, Cs) => "Historie",
        (History, Sk) => "História",
        (History, Hr) => "Povijest",
        (History, En) => "History",
        (NoHistory, Cs) => "Zatím žádné pohyby bodů",
        (NoHistory, Sk) => "Zatiaľ žiadne pohyby bodov",
        (NoHistory, Hr) => "Još nema promjena bodova",
        (NoHistory, En) => "No points history yet",
        (MenuFind, Cs) => "Najít zákazníka…",
        (MenuFind, Sk) => "Nájsť zákazníka…",
        (MenuFind, Hr) => "Pronađi kupca…",
        (MenuFind, En) => "Find customer…",
        (MenuTag, Cs) => "Přidat nákup na kartu…",
        (MenuTag, Sk) => "Pridať nákup na kartu…",
        (MenuTag, Hr) => "Dodaj kupnju na karticu…",
        (MenuTag, En) => "Add purchase to card…",
        (FindTitle, Cs) => "Najít zákazníka",
        (FindTitle, Sk) => "Nájsť zákazníka",
        (FindTitle, Hr) => "Pronađi kupca",
        (FindTitle, En) => "Find customer",
        (FindHint, Cs) => "Číslo karty, telefon nebo e-mail",
        (FindHint, Sk) => "Číslo karty, telefón alebo e-mail",
        (FindHint, Hr) => "Broj kartice, telefon ili e-pošta",
        (FindHint, En) => "Card number, phone or e-mail",
        (FindButton, Cs) => "Hledat",
        (FindButton, Sk) => "Hľadať",
        (FindButton, Hr) => "Traži",
        (FindButton, En) => "Search",
        (Searching, Cs) => "Hledám…",
        (Searching, Sk) => "Hľadám…",
        (Searching, Hr) => "Tražim…",
        (Searching, En) => "Searching…",
        (Cancel, Cs) => "Zavřít",
        (Cancel, Sk) => "Zavrieť",
        (Cancel, Hr) => "Zatvori",
        (Cancel, En) => "Close",
        (TagTitle, Cs) => "Přidat nákup na kartu",
        (TagTitle, Sk) => "Pridať nákup na kartu",
        (TagTitle, Hr) => "Dodaj kupnju na karticu",
        (TagTitle, En) => "Add purchase to card",
        (TagReceipt, Cs) => "Číslo účtenky",
        (TagReceipt, Sk) => "Číslo bločku",
        (TagReceipt, Hr) => "Broj računa",
        (TagReceipt, En) => "Receipt number",
        (TagDate, Cs) => "Datum",
        (TagDate, Sk) => "Dátum",
        (TagDate, Hr) => "Datum",
        (TagDate, En) => "Date",
        (TagTotal, Cs) => "Celkem",
        (TagTotal, Sk) => "Spolu",
        (TagTotal, Hr) => "Ukupno",
        (TagTotal, En) => "Total",
        (TagCard, Cs) => "Karta",
        (TagCard, Sk) => "Karta",
        (TagCard, Hr) => "Kartica",
        (TagCard, En) => "Card",
        (TagCardHint, Cs) => "naskenujte nebo napište",
        (TagCardHint, Sk) => "naskenujte alebo napíšte",
        (TagCardHint, Hr) => "skenirajte ili upišite",
        (TagCardHint, En) => "scan or type",
        (TagSubmit, Cs) => "Přidat",
        (TagSubmit, Sk) => "Pridať",
        (TagSubmit, Hr) => "Dodaj",
        (TagSubmit, En) => "Add",
        (TagSaving, Cs) => "Ukládám…",
        (TagSaving, Sk) => "Ukladám…",
        (TagSaving, Hr) => "Spremam…",
        (TagSaving, En) => "Saving…",
        (TagQueued, Cs) => "Nákup přidán – body se připíšou po spárování s účtenkou",
        (TagQueued, Sk) => "Nákup pridaný – body sa pripíšu po spárovaní s bločkom",
        (TagQueued, Hr) => "Kupnja dodana – bodovi se pripisuju kad se spoji s računom",
        (TagQueued, En) => "Purchase added – points are credited once it matches the receipt",
        (TagNotQueued, Cs) => "Nákup nepřidán",
        (TagNotQueued, Sk) => "Nákup nepridaný",
        (TagNotQueued, Hr) => "Kupnja nije dodana",
        (TagNotQueued, En) => "Purchase not added",
        (Optional, Cs) => "nepovinné",
        (Optional, Sk) => "nepovinné",
        (Optional, Hr) => "neobavezno",
        (Optional, En) => "optional",
    }
}

/// Why the search box found nothing, in the screen's language.
pub fn lookup_problem(lang: Lang, p: &crate::events::LookupProblem) -> String {
    use crate::events::LookupProblem as P;
    use Lang::*;
    match (p, lang) {
        (P::Empty, Cs) => "Napište číslo karty, telefon nebo e-mail".into(),
        (P::Empty, Sk) => "Napíšte číslo karty, telefón alebo e-mail".into(),
        (P::Empty, Hr) => "Upišite broj kartice, telefon ili e-poštu".into(),
        (P::Empty, En) => "Type a card number, a phone number or an e-mail".into(),
        (P::NotCardNorPhone, Cs) => "Není to číslo karty ani telefonní číslo".into(),
        (P::NotCardNorPhone, Sk) => "Nie je to číslo karty ani telefónne číslo".into(),
        (P::NotCardNorPhone, Hr) => "To nije broj kartice ni broj telefona".into(),
        (P::NotCardNorPhone, En) => "Neither a card number nor a phone number".into(),
        (P::BadCard, Cs | Sk) => "Neplatné číslo karty".into(),
        (P::BadCard, Hr) => "Neispravan broj kartice".into(),
        (P::BadCard, En) => "Not a card number of the programme".into(),
        (P::PaymentCard { last4 }, Cs) => format!("…{last4} je platební karta, ne karta programu"),
        (P::PaymentCard { last4 }, Sk) => format!("…{last4} je platobná karta, nie karta programu"),
        (P::PaymentCard { last4 }, Hr) => format!("…{last4} je platna kartica, ne kartica programa"),
        (P::PaymentCard { last4 }, En) => format!("…{last4} is a payment card, not a programme card"),
        (P::BadContact, Cs) => "Neplatný telefon nebo e-mail".into(),
        (P::BadContact, Sk) => "Neplatný telefón alebo e-mail".into(),
        (P::BadContact, Hr) => "Neispravan telefon ili e-pošta".into(),
        (P::BadContact, En) => "Not a valid phone number or e-mail".into(),
        (P::NoLookupKey, Cs) => {
            "Telefon ani e-mail zatím nelze hledat – pokladna se ještě nespojila se serverem".into()
        }
        (P::NoLookupKey, Sk) => {
            "Telefón ani e-mail zatiaľ nemožno hľadať – pokladňa sa ešte nespojila so serverom".into()
        }
        (P::NoLookupKey, Hr) => {
            "Telefon i e-pošta još se ne mogu tražiti – blagajna se još nije spojila na poslužitelj".into()
        }
        (P::NoLookupKey, En) => {
            "Phones and e-mails cannot be searched yet – the till has not reached the server".into()
        }
        (P::NotFound { phone: true }, Cs) => "Zákazník s tímto telefonem nenalezen".into(),
        (P::NotFound { phone: true }, Sk) => "Zákazník s týmto telefónom sa nenašiel".into(),
        (P::NotFound { phone: true }, Hr) => "Nema kupca s tim telefonom".into(),
        (P::NotFound { phone: true }, En) => "No customer with this phone number".into(),
        (P::NotFound { phone: false }, Cs) => "Zákazník s tímto e-mailem nenalezen".into(),
        (P::NotFound { phone: false }, Sk) => "Zákazník s týmto e-mailom sa nenašiel".into(),
        (P::NotFound { phone: false }, Hr) => "Nema kupca s tom e-poštom".into(),
        (P::NotFound { phone: false }, En) => "No customer with this e-mail".into(),
        (P::NoActiveCard, Cs) => "Zákazník nemá aktivní kartu".into(),
        (P::NoActiveCard, Sk) => "Zákazník nemá aktívnu kartu".into(),
        (P::NoActiveCard, Hr) => "Kupac nema aktivnu karticu".into(),
        (P::NoActiveCard, En) => "The customer has no active card".into(),
        (P::Other { detail }, Cs) => format!("Hledání selhalo: {detail}"),
        (P::Other { detail }, Sk) => format!("Hľadanie zlyhalo: {detail}"),
        (P::Other { detail }, Hr) => format!("Traženje nije uspjelo: {detail}"),
        (P::Other { detail }, En) => format!("Search failed: {detail}"),
    }
}

/// A local date: `23. 11. 2026` (cs/sk, no-break spaces), `23. 11. 2026.` (hr), `2026-11-23` (en).
pub fn date(lang: Lang, d: chrono::NaiveDate) -> String {
    match lang {
        Lang::Cs | Lang::Sk => d.format("%-d.\u{a0}%-m.\u{a0}%Y").to_string(),
        Lang::Hr => d.format("%-d.\u{a0}%-m.\u{a0}%Y.").to_string(),
        Lang::En => d.format("%Y-%m-%d").to_string(),
    }
}

/// What a ledger entry was, for the popup's history: purchase, return, redemption, adjustment…
pub fn ledger_kind(lang: Lang, k: LedgerKind) -> &'static str {
    use Lang::*;
    use LedgerKind::*;
    match (k, lang) {
        (Receipt, Cs) | (Receipt, Sk) => "nákup",
        (Receipt, Hr) => "kupnja",
        (Receipt, En) => "purchase",
        (Return, Cs) => "vratka",
        (Return, Sk) => "vrátenie",
        (Return, Hr) => "povrat",
        (Return, En) => "return",
        (Redemption, Cs) => "uplatnění",
        (Redemption, Sk) => "uplatnenie",
        (Redemption, Hr) => "korištenje",
        (Redemption, En) => "redemption",
        (Void, Cs) => "storno uplatnění",
        (Void, Sk) => "storno uplatnenia",
        (Void, Hr) => "storno korištenja",
        (Void, En) => "redemption voided",
        (Adjustment, Cs) | (Adjustment, Sk) => "úprava",
        (Adjustment, Hr) => "ispravak",
        (Adjustment, En) => "adjustment",
        (Expiry, Cs) => "propadnutí",
        (Expiry, Sk) => "prepadnutie",
        (Expiry, Hr) => "istek",
        (Expiry, En) => "expiry",
        (Opening, Cs) => "počáteční stav",
        (Opening, Sk) => "počiatočný stav",
        (Opening, Hr) => "početno stanje",
        (Opening, En) => "opening balance",
        (CardReissue, Cs) | (CardReissue, Sk) => "nová karta",
        (CardReissue, Hr) => "nova kartica",
        (CardReissue, En) => "card reissued",
        (FamilyMerge, Cs) => "převod bodů",
        (FamilyMerge, Sk) => "prevod bodov",
        (FamilyMerge, Hr) => "prijenos bodova",
        (FamilyMerge, En) => "points transfer",
        (PrizeCard, Cs) => "dárková karta",
        (PrizeCard, Sk) => "darčeková karta",
        (PrizeCard, Hr) => "poklon-kartica",
        (PrizeCard, En) => "prize card",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_exists_in_every_language_and_differs_from_english_where_it_should() {
        for k in Fx::ALL {
            for l in Lang::ALL {
                assert!(!fx(l, k).trim().is_empty(), "{k:?} {l:?}");
            }
            assert_ne!(fx(Lang::Cs, k), fx(Lang::En, k), "{k:?} untranslated");
        }
    }
}
