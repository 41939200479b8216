//! Money: `rust_decimal` amounts with an ISO 4217 currency. Never floats.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// A decimal on the wire, as serde writes `rust_decimal` here: a JSON string such as `"-12.50"`.
/// For the OpenAPI schema only (`value_type` of every `Decimal` field).
#[cfg(feature = "schema")]
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,8})?$", example = "42.50")]
pub struct DecimalString(pub String);

/// The currencies the programs run in (Czechia: CZK; Slovakia and Croatia: EUR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum Currency {
    CZK,
    EUR,
}

impl Currency {
    pub fn code(self) -> &'static str {
        match self {
            Currency::CZK => "CZK",
            Currency::EUR => "EUR",
        }
    }

    /// Minor-unit digits used for amounts (both CZK and EUR have 2).
    pub fn minor_digits(self) -> u32 {
        2
    }

    /// Smallest cash amount: CZK cash is rounded to whole crowns (a rounding line on the
    /// receipt); EUR cash is not rounded by law in SK/HR.
    pub fn cash_step(self) -> Decimal {
        match self {
            Currency::CZK => Decimal::ONE,
            Currency::EUR => Decimal::new(1, 2),
        }
    }

    pub fn parse(code: &str) -> Option<Currency> {
        match code.trim().to_lowercase().as_str() {
            "czk" | "kč" | "kc" => Some(Currency::CZK),
            "eur" | "€" => Some(Currency::EUR),
            _ => None,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
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

    /// The cash-rounding adjustment for paying `self` in cash: `(rounded_total, rounding_line)`.
    /// `1 234,50 CZK` → `(1 235, +0,50)` (half away from zero, as Czech tills do).
    pub fn cash_rounding(self) -> (Decimal, Decimal) {
        let step = self.currency.cash_step();
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
    fn unknown_currency_is_an_error() {
        assert!(serde_json::from_str::<Currency>("\"USD\"").is_err());
        assert_eq!(Currency::parse("kč"), Some(Currency::CZK));
    }
}
