//! Reading a receipt the way the published contract says, in the typed parse itself.
//!
//! serde's derived readers are more lenient than the contract: `rust_decimal` takes a JSON number
//! or `"1e3"` for a decimal, and a struct may come as an array of its values. The OpenAPI schema
//! refuses both. The server's fast path for sync batches parses each receipt once, in
//! [`strictly`]: inside it, the receipt's decimals must be strings of the schema's pattern
//! ([`decimal_string`]), its card a string of the card pattern ([`card_string`]), and its lines,
//! VAT rows and original objects. Outside it (the till reading its own outbox, the server reading
//! its stored receipts, the general path after its schema check) reading is as lenient as serde's.

use std::cell::Cell;
use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Deserialize, Deserializer, Visitor};

thread_local! {
    static STRICT: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with the contract's checks on in this thread's typed parses (see the module doc).
pub fn strictly<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            STRICT.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(STRICT.with(|s| s.replace(true)));
    f()
}

fn strict() -> bool {
    STRICT.with(Cell::get)
}

/// The `Decimal` schema's pattern, `^-?[0-9]{1,15}(\.[0-9]{1,12})?$`.
pub fn decimal_string(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |t: &str, max: usize| (1..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    digits(int, 15) && frac.is_none_or(|f| digits(f, 12))
}

/// The `CardId` schema's pattern, `^[-0-9 '=/._ß]*[0-9][-0-9 '=/._ß]*$`.
pub fn card_string(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_digit() || "- '=/._ß".contains(c))
}

/// A card number's text: in [`strictly`], only one of the card pattern.
pub(crate) fn check_card<E: de::Error>(s: &str) -> Result<(), E> {
    if strict() && !card_string(s) {
        return Err(E::custom(format_args!(
            "card {s:?} does not match the card number pattern (digits with - ' = / . _ ß or spaces)"
        )));
    }
    Ok(())
}

struct StrictDecimal;

impl Visitor<'_> for StrictDecimal {
    type Value = Decimal;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal as a string of up to 15 integer and 12 fractional digits")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Decimal, E> {
        if !decimal_string(s) {
            return Err(E::invalid_value(de::Unexpected::Str(s), &self));
        }
        s.parse().map_err(E::custom)
    }
}

/// A `Decimal` field (`deserialize_with`): see the module doc.
pub(crate) fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    if strict() {
        d.deserialize_str(StrictDecimal)
    } else {
        <Decimal as Deserialize>::deserialize(d)
    }
}

struct Dec(Decimal);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        decimal(d).map(Dec)
    }
}

/// An `Option<Decimal>` field (`deserialize_with`).
pub(crate) fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(Option::<Dec>::deserialize(d)?.map(|x| x.0))
}

/// A struct read through this takes only the map form (in [`strictly`]): serde's derived structs
/// also take a sequence of their values, the contract's objects do not.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if strict() {
            d.deserialize_map(MapOnly(std::marker::PhantomData)).map(Obj)
        } else {
            T::deserialize(d).map(Obj)
        }
    }
}

/// Reads `T` from a map only (the reader's `deserialize_map` refuses anything else).
struct MapOnly<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

/// A `Vec` of structs field (`deserialize_with`): in [`strictly`], each an object.
pub(crate) fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Obj<T>>::deserialize(d)?.into_iter().map(|o| o.0).collect())
}

/// An `Option` of a struct field (`deserialize_with`): in [`strictly`], an object or null.
pub(crate) fn opt_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Obj<T>>::deserialize(d)?.map(|o| o.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_card_patterns() {
        for ok in [
            "0",
            "-1",
            "007",
            "123456789012345",
            "1.5",
            "-0.000000000001",
            "999999999999999.999999999999",
        ] {
            assert!(decimal_string(ok), "{ok}");
        }
        for bad in [
            "",
            "-",
            "+1",
            ".5",
            "5.",
            "1e3",
            " 1",
            "1 ",
            "1_0",
            "1234567890123456",
            "1.1234567890123",
            "--1",
            "1.2.3",
            "١",
        ] {
            assert!(!decimal_string(bad), "{bad}");
        }
        for ok in ["1900000000000017", "1900 0000-0000'0017", "ß1=2/3.4_5", "0"] {
            assert!(card_string(ok), "{ok}");
        }
        for bad in ["", "-", "19a0", "\t1900", "1900\n", "١٩"] {
            assert!(!card_string(bad), "{bad}");
        }
    }
}
