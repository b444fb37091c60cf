//! The variance `sigma^2` of a discrete Gaussian, as an exact positive rational with bounds that
//! keep sampling and encoding safe.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use num_rational::Ratio;
use num_traits::{One, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

/// A discrete-Gaussian variance `sigma^2 = n/d`, exact, with `0 < sigma^2 <= 2^64`
/// (so `sigma <= 2^32`) and `n`, `d` (lowest terms) of at most [`Variance::MAX_BITS`] bits.
///
/// The upper bound on the value is what lets [`crate::DiscreteGaussian`] return an `i64`: a
/// discrete Gaussian with `sigma^2 <= 2^64` exceeds `2^63 - 1` in magnitude with probability
/// below `2 exp(-2^61)` (the discrete Gaussian is subgaussian with parameter `sigma^2`: Canonne,
/// Kamath, Steinke 2020, so `P[|X| >= m] <= 2 exp(-m^2 / (2 sigma^2))`). The
/// bound on the bit length keeps the sampler's integers small: a variance parsed from a job
/// file cannot make a node spend its time on million-digit arithmetic.
///
/// Text and serde form: `"n/d"` in lowest terms (e.g. `"2500/3"`), or an integer `"n"`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variance(Ratio<BigUint>);

/// Why a value is not a valid [`Variance`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarianceError {
    /// The denominator is zero.
    #[error("variance has a zero denominator")]
    ZeroDenominator,
    /// The value is zero: a zero variance adds no noise.
    #[error("variance must be positive")]
    NotPositive,
    /// The value exceeds `2^64`.
    #[error("variance {0} exceeds 2^64 (sigma above 2^32)")]
    TooLarge(String),
    /// The numerator or denominator needs more than [`Variance::MAX_BITS`] bits.
    #[error("variance {0} has a numerator or denominator of more than 128 bits")]
    TooPrecise(String),
    /// The text is not `n/d` or `n` with decimal digits.
    #[error("{0:?} is not an exact variance such as \"2500/3\"")]
    Syntax(String),
}

impl Variance {
    /// The largest bit length of the numerator and of the denominator (in lowest terms).
    pub const MAX_BITS: u64 = 128;

    /// `numer / denom`.
    pub fn new(numer: BigUint, denom: BigUint) -> Result<Self, VarianceError> {
        if denom.is_zero() {
            return Err(VarianceError::ZeroDenominator);
        }
        Self::from_ratio_exact(Ratio::new(numer, denom))
    }

    /// `numer / denom` from machine integers.
    pub fn from_ratio(numer: u64, denom: u64) -> Result<Self, VarianceError> {
        Self::new(BigUint::from(numer), BigUint::from(denom))
    }

    /// An integer variance.
    pub fn from_integer(value: u64) -> Result<Self, VarianceError> {
        Self::from_ratio(value, 1)
    }

    /// Checks and wraps an exact ratio.
    pub fn from_ratio_exact(r: Ratio<BigUint>) -> Result<Self, VarianceError> {
        if r.is_zero() {
            return Err(VarianceError::NotPositive);
        }
        if r.numer().bits() > Self::MAX_BITS || r.denom().bits() > Self::MAX_BITS {
            return Err(VarianceError::TooPrecise(fmt_ratio(&r)));
        }
        if r > Ratio::from_integer(BigUint::one() << 64u32) {
            return Err(VarianceError::TooLarge(fmt_ratio(&r)));
        }
        Ok(Variance(r))
    }

    /// The smallest variance `>= r` whose denominator divides `2^64`, if `r` is not already
    /// representable: rounding a noise variance *up* never weakens privacy. Errors only when
    /// `r` is zero or above `2^64`.
    pub fn round_up(r: &Ratio<BigUint>) -> Result<Self, VarianceError> {
        match Self::from_ratio_exact(r.clone()) {
            Err(VarianceError::TooPrecise(_)) => {
                let scale = BigUint::one() << 64u32;
                let scaled = r * Ratio::from_integer(scale.clone());
                Self::from_ratio_exact(Ratio::new(scaled.ceil().to_integer(), scale))
            }
            other => other,
        }
    }

    /// The numerator in lowest terms.
    pub fn numer(&self) -> &BigUint {
        self.0.numer()
    }

    /// The denominator in lowest terms.
    pub fn denom(&self) -> &BigUint {
        self.0.denom()
    }

    /// The exact value.
    pub fn as_ratio(&self) -> &Ratio<BigUint> {
        &self.0
    }

    /// The nearest `f64`, for display and tail bounds only.
    pub fn to_f64(&self) -> f64 {
        self.0.to_f64().unwrap_or(f64::INFINITY)
    }
}

fn fmt_ratio(r: &Ratio<BigUint>) -> String {
    format!("{}/{}", r.numer(), r.denom())
}

impl fmt::Display for Variance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_ratio(&self.0))
    }
}

impl fmt::Debug for Variance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Variance({self})")
    }
}

impl FromStr for Variance {
    type Err = VarianceError;
    fn from_str(s: &str) -> Result<Self, VarianceError> {
        let (n, d) = crate::rho::parse_fraction(s, Some(200))
            .ok_or_else(|| VarianceError::Syntax(s.to_owned()))?;
        Variance::new(n, d)
    }
}

impl Serialize for Variance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Variance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_lowest_terms_and_round_trips() {
        let v: Variance = "5000/6".parse().unwrap();
        assert_eq!(v.to_string(), "2500/3");
        assert_eq!(
            "9".parse::<Variance>().unwrap(),
            Variance::from_integer(9).unwrap()
        );
        let max = "18446744073709551616".parse::<Variance>().unwrap();
        assert_eq!(max.to_string().parse::<Variance>().unwrap(), max);
    }

    #[test]
    fn invalid_variances_are_refused() {
        assert_eq!("0".parse::<Variance>(), Err(VarianceError::NotPositive));
        assert_eq!("0/7".parse::<Variance>(), Err(VarianceError::NotPositive));
        assert_eq!(
            "1/0".parse::<Variance>(),
            Err(VarianceError::ZeroDenominator)
        );
        assert!(matches!(
            "18446744073709551617".parse::<Variance>(),
            Err(VarianceError::TooLarge(_))
        ));
        // 2^128 + 1 over 2^128: fine in value, too many bits.
        let n = (BigUint::one() << 128u32) + 1u32;
        let d = BigUint::one() << 128u32;
        assert!(matches!(
            Variance::new(n, d),
            Err(VarianceError::TooPrecise(_))
        ));
        for bad in ["", "-1", "1.5", "1/2/3", " 4", "4 ", "0x10", "+4"] {
            assert!(
                matches!(bad.parse::<Variance>(), Err(VarianceError::Syntax(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn round_up_never_decreases_and_keeps_exact_values() {
        let exact = Ratio::new(BigUint::from(2500u32), BigUint::from(3u32));
        assert_eq!(Variance::round_up(&exact).unwrap().as_ratio(), &exact);
        let fine = Ratio::new((BigUint::one() << 130u32) + 1u32, BigUint::one() << 130u32);
        let up = Variance::round_up(&fine).unwrap();
        assert!(up.as_ratio() >= &fine);
        assert!(up.as_ratio() - &fine < Ratio::new(BigUint::one(), BigUint::one() << 64u32));
        assert_eq!(
            Variance::round_up(&Ratio::zero()),
            Err(VarianceError::NotPositive)
        );
    }
}
