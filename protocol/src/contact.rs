//! Finding a customer by phone or e-mail without keeping either in plain text on a till.
//!
//! Both sides normalise the same way ([`normalise_phone`] to E.164 with a default country,
//! [`normalise_email`] trimmed and lower-cased) and hash with HMAC-SHA256 under the program's
//! lookup key ([`contact_key`]). The server puts the keys of each customer's contacts into the
//! change feed and the lookup key into the rules snapshot; the till hashes what the cashier typed
//! and looks the key up in its cache. Without the lookup key the cached keys cannot be reversed;
//! with it a phone number could be found by trying them all (it has few digits), so the key is
//! kept only in the till's cache, never logged, and the server can rotate it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What kind of contact a key was made from (part of the hashed text, so a phone and an e-mail
/// never collide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactKind {
    Phone,
    Email,
}

impl ContactKind {
    fn tag(self) -> &'static str {
        match self {
            ContactKind::Phone => "phone",
            ContactKind::Email => "email",
        }
    }
}

/// Why a typed contact is not usable; the text says what is wrong with the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("phone number {0:?}: {1}")]
    Phone(String, &'static str),
    #[error("e-mail {0:?}: {1}")]
    Email(String, &'static str),
    #[error("country {0:?}: not a country this program knows (CZ, SK, HR, AT, DE, PL, HU, SI)")]
    Country(String),
}

/// Country calling code and whether national numbers carry a trunk `0` that E.164 drops.
fn calling_code(country: &str) -> Option<(&'static str, bool)> {
    Some(match country.to_ascii_uppercase().as_str() {
        "CZ" => ("420", false),
        "SK" => ("421", true),
        "HR" => ("385", true),
        "AT" => ("43", true),
        "DE" => ("49", true),
        "PL" => ("48", false),
        "HU" => ("36", false),
        "SI" => ("386", true),
        _ => return None,
    })
}

/// `country` (ISO 3166 alpha-2, any case) upper-cased, if national phone numbers of it can be
/// normalised (see [`normalise_phone`]).
pub fn phone_country(country: &str) -> Result<String, ContactError> {
    let c = country.trim().to_ascii_uppercase();
    calling_code(&c)
        .map(|_| c)
        .ok_or_else(|| ContactError::Country(country.to_string()))
}

/// A phone number in E.164 (`+420601111222`): `+` or `00` starts an international number,
/// anything else is national in `default_country` (ISO 3166 alpha-2; a trunk `0` is dropped
/// where the country has one). Spaces, dots, dashes, slashes and brackets are ignored.
pub fn normalise_phone(raw: &str, default_country: &str) -> Result<String, ContactError> {
    let err = |why| ContactError::Phone(raw.to_string(), why);
    let t = raw.trim();
    let mut digits = String::new();
    let mut plus = false;
    for (i, c) in t.chars().enumerate() {
        match c {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '\u{a0}' | '.' | '-' | '/' | '(' | ')' => {}
            _ => return Err(err("only digits, spaces, - / ( ) and a leading + are allowed")),
        }
    }
    if digits.is_empty() {
        return Err(err("no digits"));
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else {
        let (code, trunk) =
            calling_code(default_country).ok_or_else(|| ContactError::Country(default_country.to_string()))?;
        let national = if trunk {
            digits.strip_prefix('0').unwrap_or(&digits).to_string()
        } else {
            digits
        };
        if national.len() < 6 {
            return Err(err("too short for a phone number"));
        }
        format!("{code}{national}")
    };
    if international.starts_with('0') {
        return Err(err("a country code never starts with 0"));
    }
    if !(8..=15).contains(&international.len()) {
        return Err(err("an international number has 8 to 15 digits"));
    }
    Ok(format!("+{international}"))
}

/// An e-mail address trimmed and lower-cased (the whole address: mail systems treat the local
/// part case-insensitively in practice), checked for one `@` with text on both sides and a dot
/// in the domain.
pub fn normalise_email(raw: &str) -> Result<String, ContactError> {
    let t = raw.trim().to_lowercase();
    let err = |why| ContactError::Email(raw.to_string(), why);
    if t.chars().any(char::is_whitespace) {
        return Err(err("contains a space"));
    }
    let Some((local, domain)) = t.split_once('@') else {
        return Err(err("has no @"));
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(err("needs text on both sides of exactly one @"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(err("the domain needs a dot (name.tld)"));
    }
    Ok(t)
}

/// The lookup key of a normalised contact: lower-case hex HMAC-SHA256 under `key` of
/// `"<kind>:<normalised>"`.
pub fn contact_key(key: &[u8], kind: ContactKind, normalised: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(kind.tag().as_bytes());
    mac.update(b":");
    mac.update(normalised.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Keys of a customer's phone and e-mail (those that normalise; others are left out).
pub fn keys_of(key: &[u8], phone: Option<&str>, email: Option<&str>, country: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = phone.and_then(|p| normalise_phone(p, country).ok()) {
        out.push(contact_key(key, ContactKind::Phone, &p));
    }
    if let Some(e) = email.and_then(|e| normalise_email(e).ok()) {
        out.push(contact_key(key, ContactKind::Email, &e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_country_is_upper_cased_or_named_when_unknown() {
        assert_eq!(phone_country(" sk "), Ok("SK".to_string()));
        assert_eq!(phone_country("HR"), Ok("HR".to_string()));
        let e = phone_country("XX").unwrap_err();
        assert_eq!(e, ContactError::Country("XX".into()));
        assert!(e.to_string().contains("\"XX\""), "{e}");
    }

    #[test]
    fn phones_normalise_to_e164() {
        for raw in [
            "+420 601 111 222",
            "601111222",
            "00420601111222",
            "601-111-222",
            "(+420) 601 111 222",
        ] {
            let got = normalise_phone(raw, "CZ");
            // "(+420)" has the plus after a bracket: refused, not guessed
            if raw.starts_with('(') {
                assert!(got.is_err(), "{raw}");
                continue;
            }
            assert_eq!(got.unwrap(), "+420601111222", "{raw}");
        }
        assert_eq!(normalise_phone("0905 123 456", "SK").unwrap(), "+421905123456");
        assert_eq!(normalise_phone("091 234 5678", "hr").unwrap(), "+385912345678");
        assert_eq!(normalise_phone("+421 905 123 456", "CZ").unwrap(), "+421905123456");
    }

    #[test]
    fn bad_phones_say_why() {
        let e = normalise_phone("601 11x", "CZ").unwrap_err().to_string();
        assert!(e.contains("\"601 11x\"") && e.contains("only digits"), "{e}");
        let e = normalise_phone("12", "CZ").unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
        let e = normalise_phone("601111222", "XX").unwrap_err().to_string();
        assert!(e.contains("country \"XX\""), "{e}");
        assert!(normalise_phone("+1234567890123456", "CZ").is_err());
    }

    #[test]
    fn emails_lower_case_and_checked() {
        assert_eq!(
            normalise_email("  Jiri.Dvorak@Example.CZ ").unwrap(),
            "jiri.dvorak@example.cz"
        );
        for bad in ["jiri", "@example.cz", "a@b", "a b@c.cz", "a@@c.cz"] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_depend_on_key_kind_and_value_only() {
        let k = b"program-key";
        let a = contact_key(k, ContactKind::Phone, "+420601111222");
        assert_eq!(a.len(), 64);
        assert_eq!(a, contact_key(k, ContactKind::Phone, "+420601111222"));
        assert_ne!(a, contact_key(b"other", ContactKind::Phone, "+420601111222"));
        assert_ne!(a, contact_key(k, ContactKind::Email, "+420601111222"));
        assert!(!a.contains("601111222"));
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe") pins the primitive.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(keys_of(k, Some("601 111 222"), Some("A@B.cz"), "CZ").len(), 2);
        assert_eq!(keys_of(k, Some("x"), None, "CZ").len(), 0);
    }
}
