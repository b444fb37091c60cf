//! Privacy loss in rho-zCDP as an exact, non-negative rational. Ledgers and budgets hold only
//! this type: no floating point ever enters an account, so sums of many small debits are exact
//! and an auditor recomputes the very same numbers. [`Rho::to_f64`] exists for display only.

use std::fmt;
use std::ops::Add;
use std::str::FromStr;

use num_bigint::BigUint;
use num_rational::Ratio;
use num_traits::{ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

/// A zCDP privacy parameter rho >= 0, exact.
///
/// Written as `"n/d"` in lowest terms (e.g. `"1/8"`, `"0/1"`), which is also its serde form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rho(Ratio<BigUint>);

/// Why a value is not a valid [`Rho`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RhoError {
    /// The denominator is zero.
    #[error("rho has a zero denominator")]
    ZeroDenominator,
    /// The text is not `n/d` or `n` with decimal digits.
    #[error("{0:?} is not an exact rho such as \"1/8\"")]
    Syntax(String),
}

impl Rho {
    /// Zero privacy loss.
    pub fn zero() -> Self {
        Rho(Ratio::zero())
    }

    /// `numer / denom`.
    pub fn new(numer: BigUint, denom: BigUint) -> Result<Self, RhoError> {
        if denom.is_zero() {
            return Err(RhoError::ZeroDenominator);
        }
        Ok(Rho(Ratio::new(numer, denom)))
    }

    /// `numer / denom` from machine integers.
    pub fn from_ratio(numer: u64, denom: u64) -> Result<Self, RhoError> {
        Self::new(BigUint::from(numer), BigUint::from(denom))
    }

    /// The numerator in lowest terms.
    pub fn numer(&self) -> &BigUint {
        self.0.numer()
    }

    /// The denominator in lowest terms.
    pub fn denom(&self) -> &BigUint {
        self.0.denom()
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// The nearest `f64`, for display and for the (epsilon, delta) conversion only.
    pub fn to_f64(&self) -> f64 {
        // Ratio<BigUint>::to_f64 rounds correctly even when numerator and denominator overflow.
        self.0.to_f64().unwrap_or(f64::INFINITY)
    }

    /// The exact underlying ratio.
    pub fn as_ratio(&self) -> &Ratio<BigUint> {
        &self.0
    }

    /// Wraps an exact ratio.
    pub fn from_ratio_exact(r: Ratio<BigUint>) -> Self {
        Rho(r)
    }

    /// The smallest multiple of `1/denom` that is at least `self`: a conservative, shorter
    /// form (e.g. `denom = 10^18` for ledgers people read). Rounding up never understates a
    /// loss; whoever rounds must do it in the one function that both debits and audits use.
    pub fn round_up_to_denominator(&self, denom: &BigUint) -> Result<Rho, RhoError> {
        if denom.is_zero() {
            return Err(RhoError::ZeroDenominator);
        }
        let scaled = &self.0 * Ratio::from_integer(denom.clone());
        Ok(Rho(Ratio::new(scaled.ceil().to_integer(), denom.clone())))
    }
}

impl Add for Rho {
    type Output = Rho;
    /// Sequential composition: zCDP losses add.
    fn add(self, rhs: Rho) -> Rho {
        Rho(self.0 + rhs.0)
    }
}

impl<'a> Add<&'a Rho> for &'a Rho {
    type Output = Rho;
    fn add(self, rhs: &'a Rho) -> Rho {
        Rho(&self.0 + &rhs.0)
    }
}

impl std::iter::Sum for Rho {
    fn sum<I: Iterator<Item = Rho>>(iter: I) -> Rho {
        iter.fold(Rho::zero(), Add::add)
    }
}

impl fmt::Display for Rho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.numer(), self.0.denom())
    }
}

impl fmt::Debug for Rho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rho({self})")
    }
}

/// Parses the text form of exact fractions, `"n/d"` or `"n"` (denominator 1), with decimal
/// digits only and, if `max_digits` is given, at most that many per number. `None` on any other
/// text; the caller checks the denominator.
pub(crate) fn parse_fraction(s: &str, max_digits: Option<usize>) -> Option<(BigUint, BigUint)> {
    let digits = |t: &str| {
        let ok = !t.is_empty()
            && max_digits.is_none_or(|m| t.len() <= m)
            && t.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| BigUint::from_str(t).ok()).flatten()
    };
    match s.split_once('/') {
        Some((n, d)) => Some((digits(n)?, digits(d)?)),
        None => Some((digits(s)?, BigUint::from(1u8))),
    }
}

impl FromStr for Rho {
    type Err = RhoError;
    fn from_str(s: &str) -> Result<Self, RhoError> {
        let (n, d) = parse_fraction(s, None).ok_or_else(|| RhoError::Syntax(s.to_owned()))?;
        Rho::new(n, d)
    }
}

impl Serialize for Rho {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rho {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_is_exact() {
        let tenth = Rho::from_ratio(1, 10).unwrap();
        let total: Rho = std::iter::repeat_n(tenth, 10).sum();
        assert_eq!(total, Rho::from_ratio(1, 1).unwrap());
        assert_eq!(total.to_string(), "1/1");
        // The same sum in f64 is not exact, which is why ledgers never hold floats.
        assert_ne!((0..10).map(|_| 0.1f64).sum::<f64>(), 1.0);
    }

    #[test]
    fn text_form_is_lowest_terms_and_round_trips() {
        let r: Rho = "6/48".parse().unwrap();
        assert_eq!(r.to_string(), "1/8");
        assert_eq!(r.to_f64(), 0.125);
        assert_eq!("3".parse::<Rho>().unwrap().to_string(), "3/1");
        assert_eq!("0/5".parse::<Rho>().unwrap(), Rho::zero());
        let big = "123456789012345678901234567890/7".parse::<Rho>().unwrap();
        assert_eq!(big.to_string().parse::<Rho>().unwrap(), big);
    }

    #[test]
    fn malformed_text_is_refused() {
        assert_eq!("1/0".parse::<Rho>(), Err(RhoError::ZeroDenominator));
        for bad in [
            "", "/", "1/", "/2", "-1/2", "1.5", "1/2/3", " 1/2", "0x10", "+1/2",
        ] {
            assert!(
                matches!(bad.parse::<Rho>(), Err(RhoError::Syntax(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rounding_up_is_conservative_and_keeps_exact_multiples() {
        let billion = BigUint::from(1_000_000_000u32);
        let third = Rho::from_ratio(1, 3).unwrap();
        let up = third.round_up_to_denominator(&billion).unwrap();
        assert_eq!(up, Rho::from_ratio(333_333_334, 1_000_000_000).unwrap());
        assert!(up >= third);
        let eighth = Rho::from_ratio(1, 8).unwrap();
        assert_eq!(eighth.round_up_to_denominator(&billion).unwrap(), eighth);
        assert_eq!(
            eighth.round_up_to_denominator(&BigUint::from(0u8)),
            Err(RhoError::ZeroDenominator)
        );
    }

    #[test]
    fn ordering_is_exact() {
        let a = Rho::from_ratio(1, 3).unwrap();
        let b = Rho::from_ratio(333_333_333, 1_000_000_000).unwrap();
        assert!(b < a);
    }
}
