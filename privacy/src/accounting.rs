//! Privacy accounting in rho-zCDP (Bun and Steinke 2016): the Gaussian mechanism's loss as an
//! exact [`Rho`], sequential composition, and conversion to (epsilon, delta) for people.
//!
//! The ledger holds only exact [`Rho`]s. The conversions below work in `f64` and are for
//! display: reports and `fedprof audit verify` print epsilon at the federation's declared delta.
//!
//! Conversion: a rho-zCDP mechanism has Renyi divergence `D_alpha <= alpha rho` for every
//! `alpha > 1`, and Canonne, Kamath, Steinke 2020 (arXiv:2004.00010, Proposition 12 in v4, as
//! cited by dp-accounting; also Asoodeh et al. 2020, arXiv:2001.05990, Eq. 20) turn each order
//! into
//!
//! ```text
//! epsilon(alpha) = alpha rho + (ln(1/delta) - ln alpha) / (alpha - 1) + ln(1 - 1/alpha)
//! delta(alpha)   = exp((alpha - 1)(alpha rho - epsilon)) / (alpha - 1) * (1 - 1/alpha)^alpha
//! ```
//!
//! minimised over `alpha`. OpenDP's `cdp_delta` minimises `delta(alpha)` by bisection on its
//! derivative; Google's dp-accounting (`rdp_privacy_accountant.compute_epsilon` /
//! `compute_delta`) minimises both over a fixed list of orders and also uses the KL bound
//! `delta <= sqrt(1 - exp(-rho))`. Here both are minimised over continuous `alpha`: writing
//! `alpha = 1 + b`, the derivatives are monotone in `b`, so bisection on a bracket that provably
//! contains the root finds the unique minimum (details at each function).

use num_bigint::BigUint;
use num_rational::Ratio;

use crate::rho::Rho;
use crate::variance::Variance;

/// Why an (epsilon, delta) conversion was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ConversionError {
    /// delta must lie strictly between 0 and 1.
    #[error("delta must be in (0, 1), got {0}")]
    DeltaOutOfRange(f64),
    /// epsilon must be finite and non-negative.
    #[error("epsilon must be finite and non-negative, got {0}")]
    EpsilonOutOfRange(f64),
}

/// The zCDP loss of the (discrete) Gaussian mechanism: `rho = Delta^2 / (2 sigma^2)`, exact.
///
/// `sensitivity_sq` is the squared L2 sensitivity `Delta^2` of the released integer vector
/// (see [`crate::Sensitivity`]); `variance` is the variance parameter `sigma^2` of the noise on
/// each coordinate (independent noise per coordinate). The discrete Gaussian on integer-valued
/// queries has exactly the continuous Gaussian's zCDP loss (Canonne, Kamath, Steinke 2020;
/// continuous case: Bun and Steinke 2016, Proposition 1.6).
pub fn gaussian_rho(sensitivity_sq: &Ratio<BigUint>, variance: &Variance) -> Rho {
    let two = Ratio::from_integer(BigUint::from(2u8));
    Rho::from_ratio_exact(sensitivity_sq / (two * variance.as_ratio()))
}

/// Sequential (adaptive) composition: zCDP losses add (Bun and Steinke 2016).
pub fn compose<'a, I: IntoIterator<Item = &'a Rho>>(losses: I) -> Rho {
    losses.into_iter().fold(Rho::zero(), |acc, r| &acc + r)
}

fn check_delta(delta: f64) -> Result<f64, ConversionError> {
    // The comparison is false for NaN as well.
    if delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(ConversionError::DeltaOutOfRange(delta))
    }
}

/// Bisection for the root of an increasing `g` in `(lo, hi)` with `g(lo) < 0 <= g(hi)`; stops
/// when the midpoint can no longer be told apart from an end.
fn bisect(mut lo: f64, mut hi: f64, g: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if g(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The smallest epsilon such that a rho-zCDP mechanism is (epsilon, delta)-DP by the tight
/// conversion (module docs). For display only.
///
/// With `alpha = 1 + b` and `L = ln(1/delta)` the objective is
/// `f(b) = (1 + b) rho + (L - ln(1 + b)) / b - ln(1 + 1/b)`, whose derivative is
/// `rho - (L - ln(1 + b)) / b^2`: its sign is that of `g(b) = rho b^2 + ln(1 + b) - L`, which is
/// increasing, negative at `b = 0` and positive at `b = sqrt(L / rho)`. So `f` has a unique
/// minimum, found by bisection of `g` on `(0, sqrt(L / rho)]`. When
/// `delta >= sqrt(1 - exp(-rho))` the KL bound already gives epsilon = 0.
pub fn epsilon_for_delta(rho: &Rho, delta: f64) -> Result<f64, ConversionError> {
    let delta = check_delta(delta)?;
    let r = rho.to_f64();
    if r == 0.0 {
        return Ok(0.0);
    }
    if !r.is_finite() {
        return Ok(f64::INFINITY);
    }
    if delta * delta >= -(-r).exp_m1() {
        return Ok(0.0);
    }
    let l = -delta.ln();
    let b = bisect(0.0, (l / r).sqrt(), |b| r * b * b + b.ln_1p() - l);
    let eps = (1.0 + b) * r + (l - b.ln_1p()) / b - (1.0 / b).ln_1p();
    Ok(eps.max(0.0))
}

/// [`epsilon_for_delta`] for display: the tight conversion, or infinity (no guarantee is
/// claimed) when `delta` is not in (0, 1). The one epsilon every fedprof report and audit prints.
pub fn epsilon_at_delta(rho: &Rho, delta: f64) -> f64 {
    epsilon_for_delta(rho, delta).unwrap_or(f64::INFINITY)
}

/// zCDP group privacy: a mechanism that is rho-zCDP for one privacy unit is `k^2 rho`-zCDP for
/// a group of `k` units whose contributions add (their blocks shift the released sum by up to
/// `k` times the sensitivity, and rho grows with the square of the sensitivity). Exact.
pub fn group_rho(rho: &Rho, k: u32) -> Rho {
    let k = BigUint::from(k);
    Rho::from_ratio_exact(rho.as_ratio() * Ratio::from_integer(&k * &k))
}

/// The classical bound `epsilon = rho + 2 sqrt(rho ln(1/delta))` (Bun and Steinke 2016,
/// Proposition 1.3). Never smaller than [`epsilon_for_delta`]; kept because it is the formula
/// most readers know. For display only.
pub fn epsilon_for_delta_simple(rho: &Rho, delta: f64) -> Result<f64, ConversionError> {
    let delta = check_delta(delta)?;
    let r = rho.to_f64();
    Ok(r + 2.0 * (r * -delta.ln()).sqrt())
}

/// The smallest delta such that a rho-zCDP mechanism is (epsilon, delta)-DP: the minimum of the
/// tight bound (module docs) and the KL bound `sqrt(1 - exp(-rho))`, capped at 1. For display
/// only.
///
/// With `alpha = 1 + b`, `ln delta(b) = b ((1 + b) rho - epsilon) - (1 + b) ln(1 + 1/b) - ln b`,
/// whose derivative `(2b + 1) rho - epsilon - ln(1 + 1/b)` is increasing, tends to minus
/// infinity as `b -> 0` and is at least `1 + 3 rho > 0` at `b = epsilon / (2 rho) + 1/rho + 1`:
/// the minimum is unique and bracketed.
pub fn delta_for_epsilon(rho: &Rho, epsilon: f64) -> Result<f64, ConversionError> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(ConversionError::EpsilonOutOfRange(epsilon));
    }
    let r = rho.to_f64();
    if r == 0.0 {
        return Ok(0.0);
    }
    if !r.is_finite() {
        return Ok(1.0);
    }
    let kl = (-(-r).exp_m1()).sqrt();
    let hi = epsilon / (2.0 * r) + 1.0 / r + 1.0;
    let b = bisect(0.0, hi, |b| {
        (2.0 * b + 1.0) * r - epsilon - (1.0 / b).ln_1p()
    });
    let log_delta = b * ((1.0 + b) * r - epsilon) - (1.0 + b) * (1.0 / b).ln_1p() - b.ln();
    Ok(log_delta.exp().min(kl).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rho(s: &str) -> Rho {
        s.parse().unwrap()
    }

    fn ratio(n: u64, d: u64) -> Ratio<BigUint> {
        Ratio::new(BigUint::from(n), BigUint::from(d))
    }

    #[test]
    fn gaussian_rho_is_exact() {
        let v = |s: &str| s.parse::<Variance>().unwrap();
        assert_eq!(gaussian_rho(&ratio(1, 1), &v("4")), rho("1/8"));
        assert_eq!(gaussian_rho(&ratio(2, 1), &v("2500/3")), rho("3/2500"));
        assert_eq!(gaussian_rho(&ratio(5, 4), &v("1/4")), rho("5/2"));
        let losses = [rho("1/8"), rho("1/25"), rho("2/9")];
        assert_eq!(compose(&losses), rho("697/1800"));
        assert_eq!(compose(&[]), Rho::zero());
    }

    /// The objective, evaluated directly in alpha, as dp-accounting writes it.
    fn eps_at(r: f64, delta: f64, a: f64) -> f64 {
        a * r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
    }

    #[test]
    fn tight_epsilon_is_the_minimum_over_alpha_and_below_the_simple_bound() {
        for r in ["1/1000", "1/100", "1/10", "1/2", "1", "5", "50"] {
            for delta in [1e-3, 1e-5, 1e-6, 1e-9, 1e-12] {
                let tight = epsilon_for_delta(&rho(r), delta).unwrap();
                let simple = epsilon_for_delta_simple(&rho(r), delta).unwrap();
                assert!(
                    tight > 0.0 && tight <= simple,
                    "{r} {delta}: {tight} vs {simple}"
                );
                let rf = rho(r).to_f64();
                // No order on a fine grid does better than the bisection's minimum.
                let grid_min = (1..20_000)
                    .map(|i| 1.0 + 1e-3 * 1.001f64.powi(i))
                    .map(|a| eps_at(rf, delta, a))
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    tight <= grid_min * (1.0 + 1e-12),
                    "{r} {delta}: {tight} vs {grid_min}"
                );
                assert!(
                    grid_min - tight < 1e-6 * tight,
                    "{r} {delta}: {tight} vs {grid_min}"
                );
            }
        }
    }

    #[test]
    fn epsilon_and_delta_conversions_are_inverse() {
        for r in ["1/100", "1/10", "1", "5"] {
            for delta in [1e-5, 1e-6, 1e-9] {
                let eps = epsilon_for_delta(&rho(r), delta).unwrap();
                let back = delta_for_epsilon(&rho(r), eps).unwrap();
                assert!(
                    (back / delta - 1.0).abs() < 1e-9,
                    "{r}: {delta} -> {eps} -> {back}"
                );
            }
        }
    }

    #[test]
    fn conversions_are_monotone() {
        let mut last = 0.0;
        for r in ["1/1000", "1/100", "1/10", "1", "10"] {
            let eps = epsilon_for_delta(&rho(r), 1e-6).unwrap();
            assert!(eps > last);
            last = eps;
        }
        let mut last = f64::INFINITY;
        for delta in [1e-12, 1e-9, 1e-6, 1e-3, 0.1] {
            let eps = epsilon_for_delta(&rho("1/2"), delta).unwrap();
            assert!(eps < last);
            last = eps;
        }
        assert!(
            delta_for_epsilon(&rho("1"), 3.0).unwrap() < delta_for_epsilon(&rho("1"), 2.0).unwrap()
        );
    }

    #[test]
    fn edge_cases() {
        assert_eq!(epsilon_for_delta(&Rho::zero(), 1e-6), Ok(0.0));
        assert_eq!(epsilon_for_delta_simple(&Rho::zero(), 1e-6), Ok(0.0));
        assert_eq!(delta_for_epsilon(&Rho::zero(), 0.0), Ok(0.0));
        // The KL bound: delta >= sqrt(1 - exp(-rho)) means epsilon = 0.
        let tiny = rho("1/1000000");
        assert_eq!(epsilon_for_delta(&tiny, 0.01), Ok(0.0));
        let kl = (1.0 - (-1e-6f64).exp()).sqrt();
        let d0 = delta_for_epsilon(&tiny, 0.0).unwrap();
        assert!(d0 > 0.0 && d0 <= kl, "{d0} vs {kl}");
        // A huge rho: epsilon is large but finite, delta stays at most 1.
        let huge = rho("1000000");
        assert!(epsilon_for_delta(&huge, 1e-6).unwrap() > 1e6);
        assert!(delta_for_epsilon(&huge, 1.0).unwrap() <= 1.0);
        for bad in [0.0, 1.0, -1e-6, 2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                epsilon_for_delta(&rho("1"), bad).map_err(|e| e.to_string()),
                Err(ConversionError::DeltaOutOfRange(bad).to_string())
            );
            assert!(epsilon_for_delta_simple(&rho("1"), bad).is_err());
        }
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                delta_for_epsilon(&rho("1"), bad),
                Err(ConversionError::EpsilonOutOfRange(_))
            ));
        }
    }
}
