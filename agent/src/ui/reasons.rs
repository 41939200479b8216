//! Reason texts for people, in the screen's language: why a scan is not a loyalty card (popup),
//! why keys were not a scan and how a scan was recognised (Reader-test window), what the tray
//! says about an error. The input side words its reasons in English for logs and the CLI; this
//! module recognises each of them and says it in the cashier's language. A reason it does not
//! know becomes a general sentence in that language (the English detail stays in the log): one
//! language per screen.

use super::i18n::Lang;
use super::plural::{count_u, Noun};
use crate::events::Classified;
use crate::input::diag::ReaderDiag;

/// The numbers in `s`, in order (`"16 characters typed with gaps over 50 ms"` → `[16, 50]`).
fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn pick(lang: Lang, cs: String, sk: String, hr: String, en: String) -> String {
    match lang {
        Lang::Cs => cs,
        Lang::Sk => sk,
        Lang::Hr => hr,
        Lang::En => en,
    }
}

macro_rules! say {
    ($lang:expr, $cs:expr, $sk:expr, $hr:expr, $en:expr $(,)?) => {
        pick($lang, format!($cs), format!($sk), format!($hr), format!($en))
    };
}

/// Why the scanned text is not a loyalty card (`Classified::Other`'s reason), for the popup.
pub fn not_loyalty(lang: Lang, reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    if r.starts_with("encrypted card-reader output") {
        say!(
            lang,
            "Čtečka poslala šifrovaná data platebního terminálu, ne číslo věrnostní karty.",
            "Čítačka poslala šifrované dáta platobného terminálu, nie číslo vernostnej karty.",
            "Čitač je poslao šifrirane podatke platnog terminala, a ne broj kartice vjernosti.",
            "The reader sent encrypted payment-terminal data, not a loyalty card number.",
        )
    } else if r.starts_with("product barcode") {
        say!(
            lang,
            "Načten čárový kód zboží, ne věrnostní karta.",
            "Načítaný čiarový kód tovaru, nie vernostná karta.",
            "Očitan je crtični kôd proizvoda, a ne kartica vjernosti.",
            "A product barcode was scanned, not a loyalty card.",
        )
    } else if r.starts_with("empty input") {
        say!(
            lang,
            "Čtečka neposlala žádné znaky.",
            "Čítačka neposlala žiadne znaky.",
            "Čitač nije poslao nijedan znak.",
            "The reader sent no characters.",
        )
    } else if r.starts_with("unreadable magstripe") {
        say!(
            lang,
            "Magnetický proužek se nepodařilo přečíst.",
            "Magnetický pás sa nepodarilo prečítať.",
            "Magnetsku traku nije moguće očitati.",
            "The magnetic stripe could not be read.",
        )
    } else if r.contains("prefix is not one of") {
        say!(
            lang,
            "Číslo nezačíná jako karty tohoto programu.",
            "Číslo nezačína ako karty tohto programu.",
            "Broj ne počinje kao kartice ovog programa.",
            "The number does not start like this program's cards.",
        )
    } else if r.contains("check digit") {
        say!(
            lang,
            "Kontrolní číslice nesouhlasí (překlep nebo špatné čtení).",
            "Kontrolná číslica nesúhlasí (preklep alebo zlé čítanie).",
            "Kontrolna znamenka nije ispravna (pogreška pri unosu ili očitanju).",
            "The check digit is wrong (mistyped or misread).",
        )
    } else if let (true, [n, min, max, ..]) = (r.contains("digits; this program expects"), numbers(&r).as_slice()) {
        say!(
            lang,
            "Číslo má {n} číslic, karty programu mají {min}–{max}.",
            "Číslo má {n} číslic, karty programu majú {min}–{max}.",
            "Broj ima {n} znamenki, kartice programa imaju {min}–{max}.",
            "The number has {n} digits; this program's cards have {min}–{max}.",
        )
    } else if r.contains("contains") && r.contains("only digits") {
        say!(
            lang,
            "Text obsahuje jiné znaky než číslice.",
            "Text obsahuje iné znaky ako číslice.",
            "Tekst sadrži znakove koji nisu znamenke.",
            "The text contains characters other than digits.",
        )
    } else {
        say!(
            lang,
            "Tento kód program nezná jako věrnostní kartu.",
            "Tento kód program nepozná ako vernostnú kartu.",
            "Program ovaj kôd ne prepoznaje kao karticu vjernosti.",
            "The program does not know this code as a loyalty card.",
        )
    }
}

/// What a card-reader read error means for the cashier (`Classified::ReadError`'s detail).
pub fn read_error(lang: Lang, detail: &str) -> String {
    let r = detail.to_ascii_lowercase();
    if r.contains("went past the keyboard hook") {
        say!(
            lang,
            "Část znaků odešla do pokladny; zkontrolujte pole v pokladně.",
            "Časť znakov odišla do pokladnice; skontrolujte pole v pokladnici.",
            "Dio znakova otišao je u blagajnu; provjerite polje u blagajni.",
            "Some keys reached the POS; check its input field.",
        )
    } else {
        say!(
            lang,
            "Čtení bylo neúplné.",
            "Čítanie bolo neúplné.",
            "Očitanje je bilo nepotpuno.",
            "The read was incomplete.",
        )
    }
}

/// Why a burst of keys was not taken as a scan (detector's reason), for the Reader-test window.
pub fn not_scan(lang: Lang, reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let n = numbers(&r);
    let at = |i: usize| n.get(i).copied().unwrap_or(0);
    if r.contains("human typing") {
        let (c, ms) = (count_u(lang, at(0), Noun::Char), at(1));
        say!(
            lang,
            "{c} s mezerami přes {ms} ms – píše člověk",
            "{c} s medzerami nad {ms} ms – píše človek",
            "{c} s razmacima većim od {ms} ms – tipka čovjek",
            "{c} with gaps over {ms} ms – a person typing",
        )
    } else if r.contains("< minimum") {
        let (c, m) = (count_u(lang, at(0), Noun::Char), at(1));
        say!(
            lang,
            "jen {c}, sken má aspoň {m}",
            "len {c}, sken má aspoň {m}",
            "samo {c}, skeniranje ima barem {m}",
            "only {c}; a scan has at least {m}",
        )
    } else if r.contains("slower than") {
        let (ms, c, avg) = (at(0), count_u(lang, at(1), Noun::Char), at(2));
        say!(
            lang,
            "{c} za {ms} ms – pomaleji než {avg} ms na znak",
            "{c} za {ms} ms – pomalšie ako {avg} ms na znak",
            "{c} za {ms} ms – sporije od {avg} ms po znaku",
            "{c} in {ms} ms – slower than {avg} ms per character",
        )
    } else if r.contains("consecutive gaps") {
        let (run, gap) = (at(0), at(1));
        say!(
            lang,
            "jen {run} rychlých úhozů za sebou (do {gap} ms)",
            "len {run} rýchlych úderov za sebou (do {gap} ms)",
            "samo {run} brzih pritisaka zaredom (do {gap} ms)",
            "only {run} fast keys in a row (within {gap} ms)",
        )
    } else if r.contains("went past the keyboard hook") {
        read_error(lang, reason)
    } else if r.contains("prefix") {
        say!(
            lang,
            "úvodní klávesa čtečky bez úplného čísla",
            "úvodný kláves čítačky bez úplného čísla",
            "početna tipka čitača bez potpunog broja",
            "the reader's prefix key without a complete number",
        )
    } else {
        say!(
            lang,
            "nevypadá jako sken",
            "nevyzerá ako sken",
            "ne izgleda kao skeniranje",
            "does not look like a scan",
        )
    }
}

/// How a scan was recognised (`ReaderDiag::Scan::how`).
fn how(lang: Lang, how: &str) -> String {
    let key = if how.contains("prefix") {
        0
    } else if how.contains("idle") {
        1
    } else if how.contains("dedicated") {
        2
    } else if how.contains("serial") {
        3
    } else {
        4
    };
    let t: [[&str; 5]; 4] = [
        [
            "úvodní klávesa",
            "vyhrazená čtečka, konec podle pauzy",
            "vyhrazená čtečka",
            "sériová čtečka",
            "podle rychlosti",
        ],
        [
            "úvodný kláves",
            "vyhradená čítačka, koniec podľa pauzy",
            "vyhradená čítačka",
            "sériová čítačka",
            "podľa rýchlosti",
        ],
        [
            "početna tipka",
            "namjenski čitač, kraj po stanci",
            "namjenski čitač",
            "serijski čitač",
            "po brzini",
        ],
        [
            "prefix key",
            "dedicated reader, ended by a pause",
            "dedicated reader",
            "serial reader",
            "by timing",
        ],
    ];
    t[lang_index(lang)][key].to_string()
}

fn lang_index(lang: Lang) -> usize {
    match lang {
        Lang::Cs => 0,
        Lang::Sk => 1,
        Lang::Hr => 2,
        Lang::En => 3,
    }
}

/// What a scan turned out to be, in a few words (`→ …` of a Reader-test line).
pub fn classified(lang: Lang, c: &Classified) -> String {
    match c {
        Classified::LoyaltyCard { card } => say!(
            lang,
            "věrnostní karta {card}",
            "vernostná karta {card}",
            "kartica vjernosti {card}",
            "loyalty card {card}",
        ),
        Classified::PaymentCard { last4 } => {
            let l4 = &last4[last4.len().saturating_sub(4)..];
            say!(
                lang,
                "platební karta …{l4} (ne věrnostní)",
                "platobná karta …{l4} (nie vernostná)",
                "platna kartica …{l4} (nije kartica vjernosti)",
                "payment card …{l4} (not a loyalty card)",
            )
        }
        Classified::ReadError { detail } => read_error(lang, detail),
        Classified::Other { reason } => not_loyalty(lang, reason),
    }
}

/// A key as the reader test shows it: `digit` / `letter` by class (never which), else its name.
fn key(lang: Lang, key: &str) -> String {
    match key {
        "digit" => ["číslice", "číslica", "znamenka", "digit"][lang_index(lang)].into(),
        "letter" => ["písmeno", "písmeno", "slovo", "letter"][lang_index(lang)].into(),
        other => other.to_string(),
    }
}

/// One Reader-test line in `lang` (the CLI and the log keep `input::diag::line`, in English).
pub fn reader_line(lang: Lang, d: &ReaderDiag) -> String {
    match d {
        ReaderDiag::Listening { source } => say!(
            lang,
            "{source}: naslouchám",
            "{source}: počúvam",
            "{source}: slušam",
            "{source}: listening"
        ),
        ReaderDiag::Device {
            source,
            id,
            name,
            added,
            dedicated,
        } => {
            let state = match (added, lang) {
                (true, _) => String::new(),
                (false, Lang::Cs) => " odpojeno".into(),
                (false, Lang::Sk) => " odpojené".into(),
                (false, Lang::Hr) => " uklonjen".into(),
                (false, Lang::En) => " removed".into(),
            };
            let ded = if *dedicated {
                format!(
                    " [{}]",
                    [
                        "vyhrazená čtečka",
                        "vyhradená čítačka",
                        "namjenski čitač",
                        "dedicated reader"
                    ][lang_index(lang)]
                )
            } else {
                String::new()
            };
            let dev = ["zařízení", "zariadenie", "uređaj", "device"][lang_index(lang)];
            format!("{source} {dev} {id} {name:?}{state}{ded}")
        }
        ReaderDiag::Key { source, key: k, gap_ms } => format!(
            "  {source:<10} {:<22} {}",
            key(lang, k),
            gap_ms.map(|g| format!("+{g} ms")).unwrap_or_default()
        ),
        ReaderDiag::Scan {
            source,
            chars,
            span_ms,
            fast_run,
            how: h,
            classified: c,
        } => {
            let h = how(lang, h);
            let n = count_u(lang, *chars as u64, Noun::Char);
            let mut s = say!(
                lang,
                "SKEN {source} ({h}: {n} za {span_ms} ms, rychlá řada {fast_run})",
                "SKEN {source} ({h}: {n} za {span_ms} ms, rýchly rad {fast_run})",
                "SKEN {source} ({h}: {n} za {span_ms} ms, brzi niz {fast_run})",
                "SCAN {source} ({h}: {n} in {span_ms} ms, fast run {fast_run})",
            );
            if let Some(c) = c {
                s.push_str(" → ");
                s.push_str(&classified(lang, c));
            }
            s
        }
        ReaderDiag::NotScan {
            source,
            reason,
            read_error: re,
        } => {
            let head = match (re, lang) {
                (true, Lang::Cs) => "CHYBA ČTENÍ",
                (true, Lang::Sk) => "CHYBA ČÍTANIA",
                (true, Lang::Hr) => "GREŠKA OČITANJA",
                (true, Lang::En) => "READ ERROR",
                (false, Lang::Cs) => "není sken",
                (false, Lang::Sk) => "nie je sken",
                (false, Lang::Hr) => "nije skeniranje",
                (false, Lang::En) => "not a scan",
            };
            format!("{head} ({source}): {}", not_scan(lang, reason))
        }
        ReaderDiag::Serial { port, event } => {
            let ev = if event.starts_with("connected") {
                ["připojeno", "pripojené", "spojen", "connected"][lang_index(lang)]
            } else if event.starts_with("disconnected") {
                ["odpojeno", "odpojené", "odspojen", "disconnected"][lang_index(lang)]
            } else {
                event.as_str()
            };
            let serial = ["sériový port", "sériový port", "serijski port", "serial"][lang_index(lang)];
            format!("{serial} {port}: {ev}")
        }
        ReaderDiag::Error { source, .. } => say!(
            lang,
            "{source}: čtečka nefunguje (podrobnosti v logu)",
            "{source}: čítačka nefunguje (podrobnosti v logu)",
            "{source}: čitač ne radi (pojedinosti u dnevniku)",
            "{source}: the reader does not work (details in the log)",
        ),
    }
}

/// A card-reader problem for the tray: one short sentence, the English detail is in the log.
pub fn reader_problem(lang: Lang) -> String {
    say!(
        lang,
        "Čtečka karet nefunguje",
        "Čítačka kariet nefunguje",
        "Čitač kartica ne radi",
        "Card reader not working",
    )
}

/// The last sync error for the tray: the kind of problem, not the English message.
pub fn sync_error(lang: Lang, error: &str) -> String {
    let r = error.to_ascii_lowercase();
    if r.contains("unreachable") || r.contains("connect") || r.contains("timed out") || r.contains("timeout") {
        say!(
            lang,
            "Server neodpovídá",
            "Server neodpovedá",
            "Poslužitelj ne odgovara",
            "Server not answering",
        )
    } else if r.contains("401") || r.contains("403") || r.contains("token") || r.contains("auth") {
        say!(
            lang,
            "Server odmítl přihlášení pokladny",
            "Server odmietol prihlásenie pokladnice",
            "Poslužitelj je odbio prijavu blagajne",
            "Server refused the till's login",
        )
    } else {
        say!(
            lang,
            "Chyba synchronizace (viz protokol)",
            "Chyba synchronizácie (pozri protokol)",
            "Greška sinkronizacije (vidi dnevnik)",
            "Sync error (see the sync log)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::payload::classify;
    use protocol::ids::CardPolicy;

    /// Every reason the classifier gives for a non-card is recognised (not the general
    /// fallback) in every language, and contains no English.
    #[test]
    fn every_classifier_reason_is_translated() {
        let policy = CardPolicy {
            min_len: 16,
            max_len: 16,
            prefixes: vec!["1900".into()],
            luhn: true,
        };
        let inputs = [
            "5901234123457",    // EAN-13
            "1900000009000019", // Luhn wrong
            "2900000009000018", // prefix
            "19000000090000",   // length
            "hello",            // letters
            ";98700223563013312=0000000000000004120?",
        ];
        for input in inputs {
            let c = classify(input, &policy);
            let Classified::Other { reason } = &c else {
                panic!("{input}: {c:?}")
            };
            for l in Lang::ALL {
                let text = not_loyalty(l, reason);
                assert_ne!(text, not_loyalty(l, "?"), "{input} ({reason}) falls back in {l:?}");
                if l != Lang::En {
                    assert_ne!(text, not_loyalty(Lang::En, reason), "{input}: {l:?} is English");
                }
            }
        }
    }

    #[test]
    fn reader_test_lines_in_czech_have_no_english_words() {
        let lines = [
            ReaderDiag::Key {
                source: "x11:3".into(),
                key: "digit".into(),
                gap_ms: Some(8),
            },
            ReaderDiag::Scan {
                source: "x11:3".into(),
                chars: 16,
                span_ms: 120,
                fast_run: 16,
                how: "by timing".into(),
                classified: Some(Classified::Other {
                    reason: "product barcode (EAN-13 GTIN 5901234123457), not a loyalty card".into(),
                }),
            },
            ReaderDiag::NotScan {
                source: "x11:3".into(),
                reason: "16 characters typed with gaps over 50 ms (human typing)".into(),
                read_error: false,
            },
        ];
        let cs: Vec<String> = lines.iter().map(|d| reader_line(Lang::Cs, d)).collect();
        assert!(cs[0].contains("číslice"), "{cs:?}");
        assert!(
            cs[1].starts_with("SKEN x11:3 (podle rychlosti: 16\u{a0}znaků za 120 ms"),
            "{cs:?}"
        );
        assert!(cs[1].contains("čárový kód zboží"), "{cs:?}");
        assert_eq!(
            cs[2],
            "není sken (x11:3): 16\u{a0}znaků s mezerami přes 50 ms – píše člověk"
        );
        let four = ReaderDiag::NotScan {
            source: "x11:3".into(),
            reason: "4 characters typed with gaps over 50 ms (human typing)".into(),
            read_error: false,
        };
        assert_eq!(
            reader_line(Lang::Cs, &four),
            "není sken (x11:3): 4\u{a0}znaky s mezerami přes 50 ms – píše člověk"
        );
        assert_eq!(
            reader_line(Lang::Hr, &four),
            "nije skeniranje (x11:3): 4\u{a0}znaka s razmacima većim od 50 ms – tipka čovjek"
        );
        for l in &cs {
            for english in ["digit", "SCAN", "by timing", "not a scan", "human typing", "chars in"] {
                assert!(!l.contains(english), "{l:?} contains {english:?}");
            }
        }
        assert_eq!(
            reader_line(Lang::En, &lines[2]),
            "not a scan (x11:3): 16\u{a0}characters with gaps over 50 ms – a person typing"
        );
    }

    #[test]
    fn tray_error_summaries_are_short_and_translated() {
        for l in Lang::ALL {
            for e in [
                "server unreachable: connection refused",
                "server answered 401",
                "disk full",
            ] {
                let s = sync_error(l, e);
                assert!(s.chars().count() <= 40, "{s}");
            }
        }
        assert_eq!(sync_error(Lang::Hr, "server unreachable: x"), "Poslužitelj ne odgovara");
    }
}
