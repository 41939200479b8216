//! Money: `rust_decimal` amounts with an ISO 4217 currency. Never floats.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// A decimal on the wire: a JSON string such as `"-12.50"` (serde writes `rust_decimal` so; the
/// server refuses anything else in a request). For the OpenAPI schema only (`value_type` of every
/// `Decimal` field).
#[cfg(feature = "schema")]
pub struct DecimalString;

#[cfg(feature = "schema")]
impl utoipa::PartialSchema for DecimalString {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let schema = serde_json::json!({
            "description": "A decimal as a string: up to 15 integer and 12 fractional digits",
            "type": "string",
            "pattern": "^-?[0-9]{1,15}(\\.[0-9]{1,12})?$",
            "examples": ["42.50"]
        });
        utoipa::openapi::RefOr::T(serde_json::from_value(schema).expect("decimal schema"))
    }
}

#[cfg(feature = "schema")]
impl utoipa::ToSchema for DecimalString {
    fn name() -> std::borrow::Cow<'static, str> {
        "Decimal".into()
    }
}

/// An ISO 4217 currency with its minor units (the `iso_currency` crate's table). A program runs in
/// one currency: CZK in Czechia, EUR in Slovakia and Croatia, and whatever a chain near a border or a
/// POS exporting in another currency uses (HUF, PLN, RON, USD, …). On the wire: the 3-letter code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

/// On the wire a currency is its 3-letter ISO 4217 code.
#[cfg(feature = "schema")]
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use iso_currency::IntoEnumIterator;
        // The codes the wire accepts: ISO 4217 currencies that have minor units (not XAU & co.).
        let codes: Vec<&str> = iso_currency::Currency::iter()
            .filter(|c| c.exponent().is_some())
            .map(|c| c.code())
            .collect();
        let schema = serde_json::json!({
            "description": "An ISO 4217 currency code (the program's currency)",
            "type": "string",
            "enum": codes,
            "examples": ["CZK", "EUR"]
        });
        utoipa::openapi::RefOr::T(serde_json::from_value(schema).expect("currency schema"))
    }
}

#[cfg(feature = "schema")]
impl utoipa::ToSchema for Currency {
    fn name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
}

impl Currency {
    pub const CZK: Currency = Currency(iso_currency::Currency::CZK);
    pub const EUR: Currency = Currency(iso_currency::Currency::EUR);

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// The currency's English name (`Czech koruna`).
    pub fn name(self) -> String {
        self.0.name().to_string()
    }

    /// Minor-unit digits (ISO 4217): 2 for CZK/EUR/HUF/USD, 0 for JPY, 3 for KWD.
    pub fn minor_digits(self) -> u32 {
        self.0.exponent().map_or(2, u32::from)
    }

    /// The smallest minor unit as an amount (`0.01` for 2 digits, `1` for 0).
    pub fn minor_unit(self) -> Decimal {
        Decimal::new(1, self.minor_digits())
    }

    /// Default smallest cash amount (override per till with `cash_step` in agent.toml): CZK cash is
    /// rounded to whole crowns (a rounding line on the receipt), HUF cash to 5 forints; other
    /// currencies to their minor unit (EUR cash is not rounded by law in SK/HR).
    pub fn cash_step(self) -> Decimal {
        match self.0 {
            iso_currency::Currency::CZK => Decimal::ONE,
            iso_currency::Currency::HUF => Decimal::new(5, 0),
            _ => self.minor_unit(),
        }
    }

    /// A currency code (any case, surrounding spaces allowed) or a local sign used by POS exports
    /// (`Kč`, `€`). Codes without minor units (funds, metals: `XAU`, `XDR`) are not currencies a
    /// shop takes and are refused.
    pub fn parse(code: &str) -> Option<Currency> {
        let c = code.trim();
        let alias = match c.to_lowercase().as_str() {
            "kč" | "kc" => Some(Currency::CZK),
            "€" => Some(Currency::EUR),
            _ => None,
        };
        alias.or_else(|| {
            iso_currency::Currency::from_code(&c.to_ascii_uppercase())
                .filter(|c| c.exponent().is_some())
                .map(Currency)
        })
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
        let s = String::deserialize(d)?;
        // Strict on the wire: exactly an upper-case ISO 4217 code.
        match iso_currency::Currency::from_code(&s).filter(|c| c.exponent().is_some()) {
            Some(c) => Ok(Currency(c)),
            None => Err(serde::de::Error::custom(format!(
                "{s:?} is not an ISO 4217 currency code (such as CZK, EUR, HUF, PLN)"
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// Round half away from zero to the currency's minor unit.
    pub fn rounded(self) -> Money {
        Money {
            amount: self
                .amount
                .round_dp_with_strategy(self.currency.minor_digits(), RoundingStrategy::MidpointAwayFromZero),
            currency: self.currency,
        }
    }

    /// The cash-rounding adjustment for paying `self` in cash with the currency's default step:
    /// `(rounded_total, rounding_line)`. `1 234,50 CZK` → `(1 235, +0,50)` (half away from zero, as
    /// Czech tills do).
    pub fn cash_rounding(self) -> (Decimal, Decimal) {
        self.cash_rounding_to(self.currency.cash_step())
    }

    /// [`cash_rounding`](Self::cash_rounding) with a configured step (e.g. `0.05` EUR).
    pub fn cash_rounding_to(self, step: Decimal) -> (Decimal, Decimal) {
        if step <= Decimal::ZERO {
            return (self.amount, Decimal::ZERO);
        }
        let units = (self.amount / step).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        let rounded = units * step;
        (rounded, rounded - self.amount)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn czk_cash_rounding_line() {
        assert_eq!(
            Money::new(dec!(1234.50), Currency::CZK).cash_rounding(),
            (dec!(1235), dec!(0.50))
        );
        assert_eq!(
            Money::new(dec!(99.49), Currency::CZK).cash_rounding(),
            (dec!(99), dec!(-0.49))
        );
        assert_eq!(
            Money::new(dec!(12.90), Currency::EUR).cash_rounding(),
            (dec!(12.90), dec!(0))
        );
    }

    #[test]
    fn money_serialises_amount_as_string() {
        let m = Money::new(dec!(0.1) + dec!(0.2), Currency::EUR);
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, r#"{"amount":"0.3","currency":"EUR"}"#);
        assert_eq!(serde_json::from_str::<Money>(&j).unwrap(), m);
    }

    #[test]
    fn iso_4217_currencies_with_their_minor_units() {
        for (code, digits, step) in [
            ("CZK", 2, dec!(1)),
            ("EUR", 2, dec!(0.01)),
            ("HUF", 2, dec!(5)),
            ("PLN", 2, dec!(0.01)),
            ("RON", 2, dec!(0.01)),
            ("USD", 2, dec!(0.01)),
            ("JPY", 0, dec!(1)),
            ("KWD", 3, dec!(0.001)),
        ] {
            let c = Currency::parse(code).unwrap();
            assert_eq!((c.code(), c.minor_digits(), c.cash_step()), (code, digits, step));
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<Currency>(&j).unwrap(), c);
        }
        assert_eq!(Currency::parse(" usd "), Currency::parse("USD"));
        assert_eq!(Currency::parse("kč"), Some(Currency::CZK));
        assert_eq!(Currency::parse("€"), Some(Currency::EUR));
        for bad in ["XYZ", "XAU", "", "CZKK", "Kčs"] {
            assert_eq!(Currency::parse(bad), None, "{bad}");
        }
        let e = serde_json::from_str::<Currency>("\"XYZ\"").unwrap_err().to_string();
        assert!(e.contains("not an ISO 4217 currency code"), "{e}");
        assert!(
            serde_json::from_str::<Currency>("\"usd\"").is_err(),
            "strict on the wire"
        );
        assert_eq!(
            Money::new(dec!(12.02), Currency::EUR).cash_rounding_to(dec!(0.05)),
            (dec!(12.00), dec!(-0.02))
        );
        assert_eq!(
            Money::new(dec!(1233), Currency::parse("HUF").unwrap()).cash_rounding(),
            (dec!(1235), dec!(2))
        );
        assert_eq!(
            Money::new(dec!(1.5), Currency::parse("JPY").unwrap()).rounded().amount,
            dec!(2)
        );
    }
}
