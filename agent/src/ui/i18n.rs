//! Cashier-facing strings in Czech, Slovak, Croatian and English, and local number, money,
//! percent and date formats. Amounts are `rust_decimal::Decimal` only.
//!
//! Spacing choice: the thousands separator (cs, sk) and the space between a number and its
//! currency or `%` sign is U+00A0 NO-BREAK SPACE ([`NBSP`]). It looks like a normal space, keeps
//! `1 234,50 Kč` on one line in the popup, and — unlike U+202F narrow no-break space — is in
//! every font (Latin-1). Croatian groups thousands with `.` (`1.234,50 €`), as CLDR does.

use chrono::{DateTime, FixedOffset};
use protocol::Currency;
use rust_decimal::{Decimal, RoundingStrategy};

pub const NBSP: char = '\u{a0}';

pub use crate::locale::Lang;

/// Group the integer digits of `digits` with `sep` every three.
fn group(digits: &str, sep: &str) -> String {
    let n = digits.len();
    let mut out = String::with_capacity(n + n / 3 * sep.len());
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

/// Format a decimal with locale separators. `dp = Some(n)` rounds (half away from zero) and
/// pads to n places; `None` keeps the value's own places without trailing zeros.
pub fn number(lang: Lang, v: Decimal, dp: Option<u32>) -> String {
    let v = match dp {
        Some(dp) => {
            let mut r = v.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
            r.rescale(dp);
            r
        }
        None => v.normalize(),
    };
    let s = v.abs().to_string();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let (gsep, dsep) = match lang {
        Lang::Cs | Lang::Sk => (NBSP.to_string(), ","),
        Lang::Hr => (".".to_string(), ","),
        Lang::En => (",".to_string(), "."),
    };
    let mut out = String::new();
    if v.is_sign_negative() && !v.is_zero() {
        out.push('-');
    }
    out.push_str(&group(int, &gsep));
    if let Some(f) = frac {
        out.push_str(dsep);
        out.push_str(f);
    }
    out
}

/// `1 234,50 Kč`, `12,90 €`, `CZK 1,234.50`, `€12.90`.
pub fn money(lang: Lang, amount: Decimal, cur: Currency) -> String {
    let n = number(lang, amount, Some(cur.minor_digits()));
    match (lang, cur) {
        (Lang::En, Currency::CZK) => format!("CZK{NBSP}{n}"),
        (Lang::En, Currency::EUR) => match n.strip_prefix('-') {
            Some(pos) => format!("-€{pos}"),
            None => format!("€{n}"),
        },
        (_, Currency::CZK) => format!("{n}{NBSP}Kč"),
        (_, Currency::EUR) => format!("{n}{NBSP}€"),
        // Other ISO 4217 currencies: the code (`HUF 1,234.00`, `1 234,00 HUF`).
        (Lang::En, c) => format!("{}{NBSP}{n}", c.code()),
        (_, c) => format!("{n}{NBSP}{}", c.code()),
    }
}

/// `10 %` (cs/sk/hr, no-break space) or `10%` (en); `7,5 %` keeps significant decimals.
pub fn percent(lang: Lang, v: Decimal) -> String {
    let n = number(lang, v, None);
    match lang {
        Lang::En => format!("{n}%"),
        _ => format!("{n}{NBSP}%"),
    }
}

/// Points: no fixed decimals, grouped (`1 250`, `12,5`).
pub fn points(lang: Lang, v: Decimal) -> String {
    number(lang, v, None)
}

/// Local date and time of the till's offset: `23. 11. 2026 10:05` (cs/sk), `23. 11. 2026. 10:05`
/// (hr), `2026-11-23 10:05` (en).
pub fn datetime(lang: Lang, t: &DateTime<FixedOffset>) -> String {
    match lang {
        Lang::Cs | Lang::Sk => t.format("%-d.\u{a0}%-m.\u{a0}%Y %H:%M").to_string(),
        Lang::Hr => t.format("%-d.\u{a0}%-m.\u{a0}%Y. %H:%M").to_string(),
        Lang::En => t.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// Every fixed string the cashier can see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Tier,
    Discount,
    Points,
    PointsToReward,
    CanRedeem,
    Campaign,
    Card,
    TopTier,
    BlockedTitle,
    BlockedNoEarn,
    UnknownTitle,
    UnknownText,
    Register,
    MigrationCode,
    PaymentTitle,
    ReadErrorTitle,
    ReadErrorText,
    OtherTitle,
    ReplacedTitle,
    // tray / windows
    MenuShowLast,
    MenuSyncLog,
    MenuSyncNow,
    MenuReaderTest,
    MenuSettings,
    MenuAbout,
    MenuQuit,
    QuitConfirm,
    Yes,
    No,
    NoCustomerYet,
    /// The title of an anonymous card's account (issued in a batch, not registered yet).
    AnonymousCard,
    StateSynced,
    StateQueued,
    StateUnreachable,
    StateError,
    /// Session app: the till-agent service (which sends the receipts) cannot be reached.
    ServiceUnreachable,
    QueueDepth,
    CardReader,
    LastSync,
    Never,
    SyncLogTitle,
    Filter,
    Severity,
    All,
    Copy,
    OpenLogFolder,
    Close,
    Version,
    Store,
    Till,
    Server,
    // sync-log window
    ProblemsOnly,
    ColTime,
    ColKind,
    ColItem,
    ColMessage,
    Sent,
    Rejected,
    Last7Days,
    MenuRegisterLast,
    MenuCodeLast,
}

pub fn t(lang: Lang, key: Key) -> &'static str {
    use Key::*;
    use Lang::*;
    match (key, lang) {
        (AnonymousCard, Cs) => "Anonymní karta",
        (AnonymousCard, Sk) => "Anonymná karta",
        (AnonymousCard, Hr) => "Anonimna kartica",
        (AnonymousCard, En) => "Anonymous card",
        (Tier, Cs) => "Úroveň",
        (Tier, Sk) => "Úroveň",
        (Tier, Hr) => "Razina",
        (Tier, En) => "Tier",
        (Discount, Cs) => "Sleva",
        (Discount, Sk) => "Zľava",
        (Discount, Hr) => "Popust",
        (Discount, En) => "Discount",
        (Points, Cs) => "Body",
        (Points, Sk) => "Body",
        (Points, Hr) => "Bodovi",
        (Points, En) => "Points",
        (PointsToReward, Cs) => "Do odměny chybí",
        (PointsToReward, Sk) => "Do odmeny chýba",
        (PointsToReward, Hr) => "Do nagrade nedostaje",
        (PointsToReward, En) => "To the next reward",
        (CanRedeem, Cs) => "Může uplatnit",
        (CanRedeem, Sk) => "Môže uplatniť",
        (CanRedeem, Hr) => "Može iskoristiti",
        (CanRedeem, En) => "Can redeem",
        (Campaign, Cs) => "Akce",
        (Campaign, Sk) => "Akcia",
        (Campaign, Hr) => "Akcija",
        (Campaign, En) => "Campaign",
        (Card, Cs) => "Karta",
        (Card, Sk) => "Karta",
        (Card, Hr) => "Kartica",
        (Card, En) => "Card",
        (TopTier, Cs) => "Nejvyšší úroveň",
        (TopTier, Sk) => "Najvyššia úroveň",
        (TopTier, Hr) => "Najviša razina",
        (TopTier, En) => "Top tier",
        (BlockedTitle, Cs) => "Karta je zablokována",
        (BlockedTitle, Sk) => "Karta je zablokovaná",
        (BlockedTitle, Hr) => "Kartica je blokirana",
        (BlockedTitle, En) => "Card is blocked",
        (BlockedNoEarn, Cs) => "Nesbírá body a nemá slevu.",
        (BlockedNoEarn, Sk) => "Nezbiera body a nemá zľavu.",
        (BlockedNoEarn, Hr) => "Ne skuplja bodove i nema popusta.",
        (BlockedNoEarn, En) => "It earns no points and gets no discount.",
        (UnknownTitle, Cs) => "Neznámá karta",
        (UnknownTitle, Sk) => "Neznáma karta",
        (UnknownTitle, Hr) => "Nepoznata kartica",
        (UnknownTitle, En) => "Unknown card",
        (UnknownText, Cs) => "Karta není v programu registrována.",
        (UnknownText, Sk) => "Karta nie je v programe zaregistrovaná.",
        (UnknownText, Hr) => "Kartica nije registrirana u programu.",
        (UnknownText, En) => "This card is not registered in the program.",
        (Register, Cs) => "Registrovat",
        (Register, Sk) => "Zaregistrovať",
        (Register, Hr) => "Registriraj",
        (Register, En) => "Register",
        (MigrationCode, Cs) => "Kód ze staré karty",
        (MigrationCode, Sk) => "Kód zo starej karty",
        (MigrationCode, Hr) => "Kôd sa stare kartice",
        (MigrationCode, En) => "Code from the old card",
        (PaymentTitle, Cs) => "Platební karta!",
        (PaymentTitle, Sk) => "Platobná karta!",
        (PaymentTitle, Hr) => "Platna kartica!",
        (PaymentTitle, En) => "Payment card!",
        (ReadErrorTitle, Cs) => "Kartu se nepodařilo přečíst",
        (ReadErrorTitle, Sk) => "Kartu sa nepodarilo prečítať",
        (ReadErrorTitle, Hr) => "Karticu nije moguće očitati",
        (ReadErrorTitle, En) => "Card could not be read",
        (ReadErrorText, Cs) => "Načtěte kartu znovu.",
        (ReadErrorText, Sk) => "Načítajte kartu znova.",
        (ReadErrorText, Hr) => "Ponovno očitajte karticu.",
        (ReadErrorText, En) => "Please scan the card again.",
        (OtherTitle, Cs) => "Není to věrnostní karta",
        (OtherTitle, Sk) => "Nie je to vernostná karta",
        (OtherTitle, Hr) => "Nije kartica vjernosti",
        (OtherTitle, En) => "Not a loyalty card",
        (ReplacedTitle, Cs) => "Nahrazená karta",
        (ReplacedTitle, Sk) => "Nahradená karta",
        (ReplacedTitle, Hr) => "Zamijenjena kartica",
        (ReplacedTitle, En) => "Replaced card",
        (MenuShowLast, Cs) => "Zobrazit posledního zákazníka",
        (MenuShowLast, Sk) => "Zobraziť posledného zákazníka",
        (MenuShowLast, Hr) => "Prikaži posljednjeg kupca",
        (MenuShowLast, En) => "Show last customer",
        (MenuSyncLog, Cs) => "Otevřít protokol synchronizace",
        (MenuSyncLog, Sk) => "Otvoriť protokol synchronizácie",
        (MenuSyncLog, Hr) => "Otvori dnevnik sinkronizacije",
        (MenuSyncLog, En) => "Open sync log",
        (MenuSyncNow, Cs) => "Synchronizovat nyní",
        (MenuSyncNow, Sk) => "Synchronizovať teraz",
        (MenuSyncNow, Hr) => "Sinkroniziraj sada",
        (MenuSyncNow, En) => "Sync now",
        (MenuReaderTest, Cs) => "Test čtečky",
        (MenuReaderTest, Sk) => "Test čítačky",
        (MenuReaderTest, Hr) => "Test čitača",
        (MenuReaderTest, En) => "Reader test",
        (MenuSettings, Cs) => "Otevřít nastavení",
        (MenuSettings, Sk) => "Otvoriť nastavenia",
        (MenuSettings, Hr) => "Otvori postavke",
        (MenuSettings, En) => "Open settings",
        (MenuAbout, Cs) => "O programu",
        (MenuAbout, Sk) => "O programe",
        (MenuAbout, Hr) => "O programu",
        (MenuAbout, En) => "About",
        (MenuQuit, Cs) => "Ukončit",
        (MenuQuit, Sk) => "Ukončiť",
        (MenuQuit, Hr) => "Zatvori program",
        (MenuQuit, En) => "Quit",
        (QuitConfirm, Cs) => "Opravdu ukončit? Karty se přestanou načítat.",
        (QuitConfirm, Sk) => "Naozaj ukončiť? Karty sa prestanú načítavať.",
        (QuitConfirm, Hr) => "Zaista izaći? Kartice se više neće očitavati.",
        (QuitConfirm, En) => "Really quit? Cards will no longer be read.",
        (Yes, Cs) => "Ano",
        (Yes, Sk) => "Áno",
        (Yes, Hr) => "Da",
        (Yes, En) => "Yes",
        (No, Cs) => "Ne",
        (No, Sk) => "Nie",
        (No, Hr) => "Ne",
        (No, En) => "No",
        (NoCustomerYet, Cs) => "Zatím nebyla načtena žádná karta.",
        (NoCustomerYet, Sk) => "Zatiaľ nebola načítaná žiadna karta.",
        (NoCustomerYet, Hr) => "Još nije očitana nijedna kartica.",
        (NoCustomerYet, En) => "No card has been scanned yet.",
        (StateSynced, Cs) => "Synchronizováno",
        (StateSynced, Sk) => "Synchronizované",
        (StateSynced, Hr) => "Sinkronizirano",
        (StateSynced, En) => "Synced",
        (StateQueued, Cs) => "Čeká na odeslání",
        (StateQueued, Sk) => "Čaká na odoslanie",
        (StateQueued, Hr) => "Čeka na slanje",
        (StateQueued, En) => "Waiting to send",
        (StateUnreachable, Cs) => "Server nedostupný",
        (StateUnreachable, Sk) => "Server nedostupný",
        (StateUnreachable, Hr) => "Poslužitelj nedostupan",
        (StateUnreachable, En) => "Server unreachable",
        (StateError, Cs) => "Chyba",
        (StateError, Sk) => "Chyba",
        (StateError, Hr) => "Greška",
        (StateError, En) => "Error",
        (ServiceUnreachable, Cs) => "Služba Till Agent neběží",
        (ServiceUnreachable, Sk) => "Služba Till Agent nebeží",
        (ServiceUnreachable, Hr) => "Usluga Till Agent ne radi",
        (ServiceUnreachable, En) => "Till Agent service not running",
        (CardReader, Cs) => "Čtečka karet",
        (CardReader, Sk) => "Čítačka kariet",
        (CardReader, Hr) => "Čitač kartica",
        (CardReader, En) => "Card reader",
        (QueueDepth, Cs) => "Ve frontě",
        (QueueDepth, Sk) => "Vo fronte",
        (QueueDepth, Hr) => "Na čekanju",
        (QueueDepth, En) => "Queued",
        (LastSync, Cs) => "Poslední synchronizace",
        (LastSync, Sk) => "Posledná synchronizácia",
        (LastSync, Hr) => "Posljednja sinkronizacija",
        (LastSync, En) => "Last sync",
        (Never, Cs) => "nikdy",
        (Never, Sk) => "nikdy",
        (Never, Hr) => "nikad",
        (Never, En) => "never",
        (SyncLogTitle, Cs) => "Protokol synchronizace",
        (SyncLogTitle, Sk) => "Protokol synchronizácie",
        (SyncLogTitle, Hr) => "Dnevnik sinkronizacije",
        (SyncLogTitle, En) => "Sync log",
        (Filter, Cs) => "Hledat",
        (Filter, Sk) => "Hľadať",
        (Filter, Hr) => "Traži",
        (Filter, En) => "Search",
        (Severity, Cs) => "Druh",
        (Severity, Sk) => "Druh",
        (Severity, Hr) => "Vrsta",
        (Severity, En) => "Kind",
        (All, Cs) => "vše",
        (All, Sk) => "všetko",
        (All, Hr) => "sve",
        (All, En) => "all",
        (Copy, Cs) => "Kopírovat vybrané",
        (Copy, Sk) => "Kopírovať vybrané",
        (Copy, Hr) => "Kopiraj odabrano",
        (Copy, En) => "Copy selection",
        (OpenLogFolder, Cs) => "Otevřít složku s logy",
        (OpenLogFolder, Sk) => "Otvoriť priečinok s logmi",
        (OpenLogFolder, Hr) => "Otvori mapu dnevnika",
        (OpenLogFolder, En) => "Open log folder",
        (Close, Cs) => "Zavřít",
        (Close, Sk) => "Zavrieť",
        (Close, Hr) => "Zatvori",
        (Close, En) => "Close",
        (Version, Cs) => "Verze",
        (Version, Sk) => "Verzia",
        (Version, Hr) => "Verzija",
        (Version, En) => "Version",
        (Store, Cs) => "Prodejna",
        (Store, Sk) => "Predajňa",
        (Store, Hr) => "Trgovina",
        (Store, En) => "Store",
        (Till, Cs) => "Pokladna",
        (Till, Sk) => "Pokladnica",
        (Till, Hr) => "Blagajna",
        (Till, En) => "Till",
        (Server, Hr) => "Poslužitelj",
        (Server, _) => "Server",
        (ProblemsOnly, Cs) => "Jen problémy",
        (ProblemsOnly, Sk) => "Len problémy",
        (ProblemsOnly, Hr) => "Samo problemi",
        (ProblemsOnly, En) => "Problems only",
        (ColTime, Cs) => "Čas",
        (ColTime, Sk) => "Čas",
        (ColTime, Hr) => "Vrijeme",
        (ColTime, En) => "Time",
        (ColKind, Cs | Sk) => "Druh",
        (ColKind, Hr) => "Vrsta",
        (ColKind, En) => "Kind",
        (ColItem, Cs) => "Položka",
        (ColItem, Sk) => "Položka",
        (ColItem, Hr) => "Stavka",
        (ColItem, En) => "Item",
        (ColMessage, Cs) => "Zpráva",
        (ColMessage, Sk) => "Správa",
        (ColMessage, Hr) => "Poruka",
        (ColMessage, En) => "Message",
        (Sent, Cs) => "Odesláno",
        (Sent, Sk) => "Odoslané",
        (Sent, Hr) => "Poslano",
        (Sent, En) => "Sent",
        (Rejected, Cs) => "Odmítnuto",
        (Rejected, Sk) => "Odmietnuté",
        (Rejected, Hr) => "Odbijeno",
        (Rejected, En) => "Rejected",
        (Last7Days, Cs) => "Posledních 7 dní po hodinách",
        (Last7Days, Sk) => "Posledných 7 dní po hodinách",
        (Last7Days, Hr) => "Posljednjih 7 dana po satima",
        (Last7Days, En) => "Last 7 days, per hour",
        (MenuRegisterLast, Cs) => "Registrovat naposledy načtenou kartu",
        (MenuRegisterLast, Sk) => "Zaregistrovať naposledy načítanú kartu",
        (MenuRegisterLast, Hr) => "Registriraj posljednju očitanu karticu",
        (MenuRegisterLast, En) => "Register the last scanned card",
        (MenuCodeLast, Cs) => "Kód ze staré karty k naposledy načtené kartě",
        (MenuCodeLast, Sk) => "Kód zo starej karty k naposledy načítanej karte",
        (MenuCodeLast, Hr) => "Kôd sa stare kartice za posljednju očitanu karticu",
        (MenuCodeLast, En) => "Code from the old card for the last scanned card",
    }
}

/// Sentences with parameters.
pub fn next_tier(lang: Lang, tier: &str) -> String {
    match lang {
        Lang::Cs => format!("Do úrovně {tier} zbývá nakoupit"),
        Lang::Sk => format!("Do úrovne {tier} zostáva nakúpiť"),
        Lang::Hr => format!("Do razine {tier} treba još potrošiti"),
        Lang::En => format!("Spend to reach {tier}"),
    }
}

pub fn offline_as_of(lang: Lang, when: &DateTime<FixedOffset>) -> String {
    let w = datetime(lang, when);
    match lang {
        Lang::Cs => format!("Offline – stav k {w}"),
        Lang::Sk => format!("Offline – stav k {w}"),
        Lang::Hr => format!("Izvan mreže – stanje od {w}"),
        Lang::En => format!("Offline, as of {w}"),
    }
}

/// Beside an offline quote shown while the server's answer is still awaited (it replaces it).
pub fn waiting_for_server(lang: Lang) -> &'static str {
    match lang {
        Lang::Cs => "Čekám na odpověď serveru…",
        Lang::Sk => "Čakám na odpoveď servera…",
        Lang::Hr => "Čekam odgovor poslužitelja…",
        Lang::En => "Waiting for the server's answer…",
    }
}

pub fn blocked_reason(lang: Lang, reason: &str) -> String {
    match lang {
        Lang::Cs => format!("Důvod: {reason}"),
        Lang::Sk => format!("Dôvod: {reason}"),
        Lang::Hr => format!("Razlog: {reason}"),
        Lang::En => format!("Reason: {reason}"),
    }
}

pub fn replaced_by(lang: Lang, new_card: &str) -> String {
    match lang {
        Lang::Cs => format!("Karta byla nahrazena kartou {new_card}, zůstatek je na nové kartě."),
        Lang::Sk => format!("Karta bola nahradená kartou {new_card}, zostatok je na novej karte."),
        Lang::Hr => format!("Kartica je zamijenjena karticom {new_card}, stanje je na novoj kartici."),
        Lang::En => format!("This card was replaced by {new_card}; the balance is on the new card."),
    }
}

pub fn payment_card(lang: Lang, last4: &str) -> String {
    match lang {
        Lang::Cs => format!("Načtena platební karta (…{last4}), ne věrnostní karta. Číslo se neukládá."),
        Lang::Sk => format!("Načítaná platobná karta (…{last4}), nie vernostná karta. Číslo sa neukladá."),
        Lang::Hr => format!("Očitana je platna kartica (…{last4}), a ne kartica vjernosti. Broj se ne sprema."),
        Lang::En => format!("A payment card (…{last4}) was swiped, not a loyalty card. The number is not stored."),
    }
}

/// Texts of the register / migration-code forms (`gui` form windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    RegisterTitle,
    MigrationTitle,
    Company,
    FirstName,
    Surname,
    CompanyName,
    Email,
    Phone,
    Birthday,
    DateHint,
    ConsentRules,
    ConsentMarketing,
    Code,
    Submit,
    Cancel,
    Saving,
    Queued,
    NotQueued,
}

impl Form {
    pub const ALL: [Form; 18] = [
        Form::RegisterTitle,
        Form::MigrationTitle,
        Form::Company,
        Form::FirstName,
        Form::Surname,
        Form::CompanyName,
        Form::Email,
        Form::Phone,
        Form::Birthday,
        Form::DateHint,
        Form::ConsentRules,
        Form::ConsentMarketing,
        Form::Code,
        Form::Submit,
        Form::Cancel,
        Form::Saving,
        Form::Queued,
        Form::NotQueued,
    ];
}

pub fn form(lang: Lang, key: Form) -> &'static str {
    use Form::*;
    use Lang::*;
    match (key, lang) {
        (RegisterTitle, Cs) => "Registrace zákazníka",
        (RegisterTitle, Sk) => "Registrácia zákazníka",
        (RegisterTitle, Hr) => "Registracija kupca",
        (RegisterTitle, En) => "Customer registration",
        (MigrationTitle, Cs) => "Kód ze staré karty",
        (MigrationTitle, Sk) => "Kód zo starej karty",
        (MigrationTitle, Hr) => "Kôd sa stare kartice",
        (MigrationTitle, En) => "Code from the old card",
        (Company, Cs) | (Company, Sk) => "Firma",
        (Company, Hr) => "Tvrtka",
        (Company, En) => "Company",
        (FirstName, Cs) => "Jméno",
        (FirstName, Sk) => "Meno",
        (FirstName, Hr) => "Ime",
        (FirstName, En) => "First name",
        (Surname, Cs) => "Příjmení",
        (Surname, Sk) => "Priezvisko",
        (Surname, Hr) => "Prezime",
        (Surname, En) => "Surname",
        (CompanyName, Cs) => "Název firmy",
        (CompanyName, Sk) => "Názov firmy",
        (CompanyName, Hr) => "Naziv tvrtke",
        (CompanyName, En) => "Company name",
        (Email, Hr) => "E-pošta",
        (Email, _) => "E-mail",
        (Phone, Sk) => "Telefón",
        (Phone, En) => "Phone",
        (Phone, _) => "Telefon",
        (Birthday, Cs) => "Datum narození",
        (Birthday, Sk) => "Dátum narodenia",
        (Birthday, Hr) => "Datum rođenja",
        (Birthday, En) => "Birthday",
        (DateHint, Cs) | (DateHint, Sk) => "d. m. rrrr",
        (DateHint, Hr) => "d. m. gggg.",
        (DateHint, En) => "YYYY-MM-DD",
        (ConsentRules, Cs) => "Souhlas s pravidly programu",
        (ConsentRules, Sk) => "Súhlas s pravidlami programu",
        (ConsentRules, Hr) => "Prihvaćanje pravila programa",
        (ConsentRules, En) => "Consent to the program rules",
        (ConsentMarketing, Cs) => "Souhlas se zasíláním nabídek",
        (ConsentMarketing, Sk) => "Súhlas so zasielaním ponúk",
        (ConsentMarketing, Hr) => "Pristanak na primanje ponuda",
        (ConsentMarketing, En) => "Consent to marketing messages",
        (Code, Cs) | (Code, Sk) => "Kód",
        (Code, Hr) => "Kôd",
        (Code, En) => "Code",
        (Submit, Cs) => "Uložit",
        (Submit, Sk) => "Uložiť",
        (Submit, Hr) => "Spremi",
        (Submit, En) => "Save",
        (Cancel, Cs) => "Zrušit",
        (Cancel, Sk) => "Zrušiť",
        (Cancel, Hr) => "Odustani",
        (Cancel, En) => "Cancel",
        (Saving, Cs) => "Ukládám…",
        (Saving, Sk) => "Ukladám…",
        (Saving, Hr) => "Spremam…",
        (Saving, En) => "Saving…",
        (Queued, Cs) => "Uloženo, odešle se na server.",
        (Queued, Sk) => "Uložené, odošle sa na server.",
        (Queued, Hr) => "Spremljeno, poslat će se poslužitelju.",
        (Queued, En) => "Saved; it will be sent to the server.",
        (NotQueued, Cs) => "Nepodařilo se uložit",
        (NotQueued, Sk) => "Nepodarilo sa uložiť",
        (NotQueued, Hr) => "Spremanje nije uspjelo",
        (NotQueued, En) => "Could not be saved",
    }
}

/// The label of a form field (also names the field in its error).
pub fn field_label(lang: Lang, f: crate::enrol::Field) -> &'static str {
    use crate::enrol::Field;
    form(
        lang,
        match f {
            Field::FirstName => Form::FirstName,
            Field::Surname => Form::Surname,
            Field::CompanyName => Form::CompanyName,
            Field::Email => Form::Email,
            Field::Phone => Form::Phone,
            Field::Birthday => Form::Birthday,
            Field::ConsentRules => Form::ConsentRules,
            Field::Code => Form::Code,
        },
    )
}

/// `Příjmení: povinný údaj` — a validation error in the cashier's language, naming the field.
pub fn field_error(lang: Lang, e: &crate::enrol::FieldError) -> String {
    use crate::enrol::Problem::*;
    use Lang::*;
    let what = match (e.problem, lang) {
        (Required, Cs | Sk) => "povinný údaj".to_string(),
        (Required, Hr) => "obavezno polje".into(),
        (Required, En) => "required".into(),
        (TooLong, Cs) => format!("příliš dlouhé (nejvýše {} znaků)", crate::enrol::MAX_LEN),
        (TooLong, Sk) => format!("príliš dlhé (najviac {} znakov)", crate::enrol::MAX_LEN),
        (TooLong, Hr) => format!("predugačko (najviše {} znakova)", crate::enrol::MAX_LEN),
        (TooLong, En) => format!("too long (at most {} characters)", crate::enrol::MAX_LEN),
        (ControlChars, Cs | Sk) => "obsahuje nepovolené znaky".into(),
        (ControlChars, Hr) => "sadrži nedopuštene znakove".into(),
        (ControlChars, En) => "contains characters that are not allowed".into(),
        (NotEmail, Cs) => "není platná e-mailová adresa".into(),
        (NotEmail, Sk) => "nie je platná e-mailová adresa".into(),
        (NotEmail, Hr) => "nije ispravna adresa e-pošte".into(),
        (NotEmail, En) => "not a valid e-mail address".into(),
        (NotPhone, Cs) => "není platné telefonní číslo".into(),
        (NotPhone, Sk) => "nie je platné telefónne číslo".into(),
        (NotPhone, Hr) => "nije ispravan broj telefona".into(),
        (NotPhone, En) => "not a valid phone number".into(),
        (NotDate, Cs) => "není platné datum (d. m. rrrr)".into(),
        (NotDate, Sk) => "nie je platný dátum (d. m. rrrr)".into(),
        (NotDate, Hr) => "nije ispravan datum (d. m. gggg.)".into(),
        (NotDate, En) => "not a valid date (YYYY-MM-DD or D.M.YYYY)".into(),
        (DateOutOfRange, Cs) => "není možné datum narození".into(),
        (DateOutOfRange, Sk) => "nie je možný dátum narodenia".into(),
        (DateOutOfRange, Hr) => "nije moguć datum rođenja".into(),
        (DateOutOfRange, En) => "not a possible birthday".into(),
        (ConsentRequired, Cs) => "bez souhlasu nelze registrovat".into(),
        (ConsentRequired, Sk) => "bez súhlasu nie je možné registrovať".into(),
        (ConsentRequired, Hr) => "bez pristanka registracija nije moguća".into(),
        (ConsentRequired, En) => "required to register".into(),
    };
    format!("{}: {what}", field_label(lang, e.field))
}

/// Texts of the till's Redeem step (popup button, confirm window, result, tray void).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rdm {
    Button,
    ConfirmTitle,
    ConfirmQuestion,
    Confirm,
    Cancel,
    Sending,
    DoneTitle,
    KeyIntoPos,
    Code,
    Queued,
    RefusedTitle,
    MenuVoidLast,
    VoidedTitle,
    VoidRefusedTitle,
}

impl Rdm {
    pub const ALL: [Rdm; 14] = [
        Rdm::Button,
        Rdm::ConfirmTitle,
        Rdm::ConfirmQuestion,
        Rdm::Confirm,
        Rdm::Cancel,
        Rdm::Sending,
        Rdm::DoneTitle,
        Rdm::KeyIntoPos,
        Rdm::Code,
        Rdm::Queued,
        Rdm::RefusedTitle,
        Rdm::MenuVoidLast,
        Rdm::VoidedTitle,
        Rdm::VoidRefusedTitle,
    ];
}

pub fn rdm(lang: Lang, key: Rdm) -> &'static str {
    use Lang::*;
    use Rdm::*;
    match (key, lang) {
        (Button, Cs) => "Uplatnit body",
        (Button, Sk) => "Uplatniť body",
        (Button, Hr) => "Iskoristi bodove",
        (Button, En) => "Redeem",
        (ConfirmTitle, Cs) => "Uplatnění bodů",
        (ConfirmTitle, Sk) => "Uplatnenie bodov",
        (ConfirmTitle, Hr) => "Korištenje bodova",
        (ConfirmTitle, En) => "Redeem points",
        (ConfirmQuestion, Cs) => "Opravdu uplatnit?",
        (ConfirmQuestion, Sk) => "Naozaj uplatniť?",
        (ConfirmQuestion, Hr) => "Sigurno iskoristiti?",
        (ConfirmQuestion, En) => "Redeem now?",
        (Confirm, Cs) => "Uplatnit",
        (Confirm, Sk) => "Uplatniť",
        (Confirm, Hr) => "Iskoristi",
        (Confirm, En) => "Redeem",
        (Cancel, Cs) => "Zrušit",
        (Cancel, Sk) => "Zrušiť",
        (Cancel, Hr) => "Odustani",
        (Cancel, En) => "Cancel",
        (Sending, Cs) => "Uplatňuji…",
        (Sending, Sk) => "Uplatňujem…",
        (Sending, Hr) => "Koristim…",
        (Sending, En) => "Redeeming…",
        (DoneTitle, Cs) => "Body uplatněny",
        (DoneTitle, Sk) => "Body uplatnené",
        (DoneTitle, Hr) => "Bodovi iskorišteni",
        (DoneTitle, En) => "Points redeemed",
        (KeyIntoPos, Cs) => "Zadejte do pokladny slevu",
        (KeyIntoPos, Sk) => "Zadajte do pokladne zľavu",
        (KeyIntoPos, Hr) => "Unesite popust u blagajnu",
        (KeyIntoPos, En) => "Key into the POS",
        (Code, Cs) | (Code, Sk) => "Kód",
        (Code, Hr) => "Kôd",
        (Code, En) => "Code",
        (Queued, Cs) => "Offline – odešle se po obnovení spojení",
        (Queued, Sk) => "Offline – odošle sa po obnovení spojenia",
        (Queued, Hr) => "Izvan mreže – šalje se kad veza proradi",
        (Queued, En) => "Offline – sent when the server is back",
        (RefusedTitle, Cs) => "Body nelze uplatnit",
        (RefusedTitle, Sk) => "Body nemožno uplatniť",
        (RefusedTitle, Hr) => "Bodovi se ne mogu iskoristiti",
        (RefusedTitle, En) => "Points not redeemed",
        (MenuVoidLast, Cs) => "Stornovat poslední uplatnění",
        (MenuVoidLast, Sk) => "Stornovať posledné uplatnenie",
        (MenuVoidLast, Hr) => "Storniraj zadnje korištenje",
        (MenuVoidLast, En) => "Void last redemption",
        (VoidedTitle, Cs) => "Uplatnění stornováno, body vráceny",
        (VoidedTitle, Sk) => "Uplatnenie stornované, body vrátené",
        (VoidedTitle, Hr) => "Korištenje stornirano, bodovi vraćeni",
        (VoidedTitle, En) => "Redemption voided, points back",
        (VoidRefusedTitle, Cs) => "Storno se nepodařilo",
        (VoidRefusedTitle, Sk) => "Storno sa nepodarilo",
        (VoidRefusedTitle, Hr) => "Storniranje nije uspjelo",
        (VoidRefusedTitle, En) => "Void failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn sp(s: &str) -> String {
        // Tests write the no-break space as `~` for readability.
        s.replace('~', "\u{a0}")
    }

    #[test]
    fn money_formats() {
        assert_eq!(money(Lang::Cs, dec!(1234.5), Currency::CZK), sp("1~234,50~Kč"));
        assert_eq!(money(Lang::Sk, dec!(12.9), Currency::EUR), sp("12,90~€"));
        assert_eq!(money(Lang::Hr, dec!(12.90), Currency::EUR), sp("12,90~€"));
        assert_eq!(money(Lang::Hr, dec!(1234.5), Currency::EUR), sp("1.234,50~€"));
        assert_eq!(money(Lang::En, dec!(1234.5), Currency::CZK), sp("CZK~1,234.50"));
        assert_eq!(money(Lang::En, dec!(12.9), Currency::EUR), "€12.90");
        assert_eq!(money(Lang::En, dec!(-12.9), Currency::EUR), "-€12.90");
        assert_eq!(money(Lang::Cs, dec!(1234567.005), Currency::CZK), sp("1~234~567,01~Kč"));
        assert_eq!(money(Lang::Cs, dec!(0), Currency::CZK), sp("0,00~Kč"));
        assert_eq!(money(Lang::Sk, dec!(-0.5), Currency::EUR), sp("-0,50~€"));
        assert_eq!(money(Lang::Cs, dec!(999), Currency::CZK), sp("999,00~Kč"));
        assert_eq!(money(Lang::Cs, dec!(1000), Currency::CZK), sp("1~000,00~Kč"));
    }

    #[test]
    fn percent_and_points() {
        assert_eq!(percent(Lang::Cs, dec!(10.00)), sp("10~%"));
        assert_eq!(percent(Lang::Hr, dec!(7.5)), sp("7,5~%"));
        assert_eq!(percent(Lang::En, dec!(7.50)), "7.5%");
        assert_eq!(points(Lang::Cs, dec!(12500)), sp("12~500"));
        assert_eq!(points(Lang::En, dec!(12500.50)), "12,500.5");
        assert_eq!(points(Lang::Hr, dec!(1250)), "1.250");
    }

    #[test]
    fn dates() {
        let t = DateTime::parse_from_rfc3339("2026-11-03T09:05:00+01:00").unwrap();
        assert_eq!(datetime(Lang::Cs, &t), sp("3.~11.~2026 09:05"));
        assert_eq!(datetime(Lang::Hr, &t), sp("3.~11.~2026. 09:05"));
        assert_eq!(datetime(Lang::En, &t), "2026-11-03 09:05");
    }

    #[test]
    fn language_from_config_env_and_langid() {
        assert_eq!(Lang::resolve(Some("sk")), Ok(Lang::Sk));
        assert!(Lang::resolve(Some("de")).unwrap_err().contains("\"de\""));
        assert_eq!(Lang::parse("cs_CZ.UTF-8"), Some(Lang::Cs));
        assert_eq!(Lang::parse("hr-HR"), Some(Lang::Hr));
        assert_eq!(Lang::parse("C.UTF-8"), None);
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(Lang::from_env_vars(env(&[("LANG", "cs_CZ.UTF-8")])), Lang::Cs);
        assert_eq!(
            Lang::from_env_vars(env(&[("LC_ALL", "hr_HR.UTF-8"), ("LANG", "cs_CZ.UTF-8")])),
            Lang::Hr
        );
        assert_eq!(Lang::from_env_vars(env(&[("LC_ALL", ""), ("LANG", "sk_SK")])), Lang::Sk);
        assert_eq!(Lang::from_env_vars(env(&[("LANG", "de_DE")])), Lang::En);
        assert_eq!(Lang::from_env_vars(env(&[])), Lang::En);
        assert_eq!(Lang::from_langid(0x0405), Lang::Cs);
        assert_eq!(Lang::from_langid(0x041b), Lang::Sk);
        assert_eq!(Lang::from_langid(0x041a), Lang::Hr);
        assert_eq!(Lang::from_langid(0x081a), Lang::En); // sr-Latn-CS: not Croatian
        assert_eq!(Lang::from_langid(0x0409), Lang::En);
    }

    #[test]
    fn form_texts_and_field_errors_in_every_language() {
        use crate::enrol::{Field, FieldError, RegistrationForm};
        for l in Lang::ALL {
            for k in Form::ALL {
                assert!(!form(l, k).is_empty(), "{l:?} {k:?}");
            }
        }
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let f = RegistrationForm {
            first_name: "Jiří".into(),
            email: "x@y".into(),
            ..Default::default()
        };
        let errors = f.validate(today).unwrap_err();
        let text = |l| errors.iter().map(|e| field_error(l, e)).collect::<Vec<_>>().join(" | ");
        assert_eq!(text(Lang::Cs), "Příjmení: povinný údaj | E-mail: není platná e-mailová adresa | Souhlas s pravidly programu: bez souhlasu nelze registrovat");
        assert_eq!(text(Lang::Sk), "Priezvisko: povinný údaj | E-mail: nie je platná e-mailová adresa | Súhlas s pravidlami programu: bez súhlasu nie je možné registrovať");
        assert_eq!(text(Lang::Hr), "Prezime: obavezno polje | E-pošta: nije ispravna adresa e-pošte | Prihvaćanje pravila programa: bez pristanka registracija nije moguća");
        assert_eq!(text(Lang::En), "Surname: required | E-mail: not a valid e-mail address | Consent to the program rules: required to register");
        let e = crate::enrol::validate_code("").unwrap_err();
        assert_eq!(
            e,
            FieldError {
                field: Field::Code,
                problem: crate::enrol::Problem::Required
            }
        );
        assert_eq!(field_error(Lang::Hr, &e), "Kôd: obavezno polje");
    }

    #[test]
    fn every_key_has_text_in_every_language() {
        use Key::*;
        let keys = [
            Tier,
            Discount,
            Points,
            PointsToReward,
            CanRedeem,
            Campaign,
            Card,
            TopTier,
            BlockedTitle,
            BlockedNoEarn,
            UnknownTitle,
            UnknownText,
            Register,
            MigrationCode,
            PaymentTitle,
            ReadErrorTitle,
            ReadErrorText,
            OtherTitle,
            ReplacedTitle,
            MenuShowLast,
            MenuSyncLog,
            MenuSyncNow,
            MenuReaderTest,
            MenuSettings,
            MenuAbout,
            MenuQuit,
            QuitConfirm,
            Yes,
            No,
            NoCustomerYet,
            StateSynced,
            StateQueued,
            StateUnreachable,
            StateError,
            ServiceUnreachable,
            QueueDepth,
            LastSync,
            Never,
            SyncLogTitle,
            CardReader,
            Filter,
            Severity,
            All,
            Copy,
            OpenLogFolder,
            Close,
            Version,
            Store,
            Till,
            Server,
            ProblemsOnly,
            ColTime,
            ColKind,
            ColItem,
            ColMessage,
            Sent,
            Rejected,
            Last7Days,
            MenuRegisterLast,
            MenuCodeLast,
        ];
        for l in Lang::ALL {
            for k in keys {
                assert!(!t(l, k).is_empty(), "{l:?} {k:?}");
            }
        }
    }
}
