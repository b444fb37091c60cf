//! Distributed noise: how much discrete Gaussian noise each node adds, and what the sum of the
//! honest nodes' shares buys in zCDP.
//!
//! Sizing (DESIGN section 2): a round accepts at least `n_min` survivors, and at most `c` nodes
//! collude with the coordinator (their noise is known to it and protects nothing). Each node
//! adds `N_Z(0, sigma^2 / (n_min - c))` to every coordinate, so the at least `n_min - c` honest
//! survivors' shares together have variance at least `sigma^2`.
//!
//! Accounting: a sum of independent discrete Gaussians is not a discrete Gaussian. Kairouz, Liu
//! and Steinke 2021, "The Distributed Discrete Gaussian Mechanism for Federated Learning with
//! Secure Aggregation" (ICML 2021, arXiv:2102.06387), bound it. For `n` independent shares of
//! `N_Z(0, s^2)` per coordinate on a `d`-dimensional integer query with sensitivities
//! `Delta_2`, `Delta_1`, their Proposition 14 / Eq. 17, as implemented in the authors' reference
//! code (google-research/federated, `distributed_dp/accounting_utils.py`,
//! `compute_rdp_dgaussian`), gives for every order `alpha > 1`
//!
//! ```text
//! D_alpha <= min( alpha Delta_2^2 / (2 n s^2) + tau d,
//!                 (alpha / 2) (Delta_2^2 / (n s^2) + 2 Delta_1 tau / (sqrt(n) s) + tau^2 d) )
//! tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 s^2 k / (k + 1)),
//! ```
//!
//! valid for `s >= 1/2` (fedprof requires `s >= 2`). The first bound has an additive term; since
//! `alpha > 1` it implies rho-zCDP with `rho_1 = Delta_2^2 / (2 n s^2) + tau d` (conservative).
//! The second is rho-zCDP with `rho_2 = Delta_2^2 / (2 n s^2) + Delta_1 tau / (sqrt(n) s) +
//! tau^2 d / 2`. fedprof records `min(rho_1, rho_2)`, with `tau` and the square root replaced by
//! exact rational upper bounds (see [`tau_upper_bound`]), so the ledger entry is exact and never
//! below the true bound. (The paper's third bound, `(alpha/2)(Delta_2/(sqrt(n) s) + sqrt(d)
//! tau)^2`, is never smaller than the second when `Delta_1 <= sqrt(d) Delta_2`, which every
//! [`Sensitivity`] satisfies.) The paper's own text was not available when this was written;
//! the statement above is taken from the authors' code, which cites it.
//!
//! Extra honest survivors beyond `n - c` only add independent noise (post-processing), so
//! accounting with exactly `n_min - c` shares is valid for every accepted round.

use std::num::NonZeroU32;

use num_bigint::BigUint;
use num_rational::Ratio;
use num_traits::{ToPrimitive, Zero};
use rand_core::CryptoRng;

use crate::bounding::Sensitivity;
use crate::discrete_gaussian::DiscreteGaussian;
use crate::rho::Rho;
use crate::variance::{Variance, VarianceError};

/// Why a noise share was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistributedError {
    /// `n_min <= c`: colluders could make up every accepted round, so no honest noise is
    /// guaranteed.
    #[error(
        "a round must accept more survivors ({n_min}) than the nodes that may collude with the coordinator ({colluders})"
    )]
    NoHonestSurvivor {
        /// Fewest survivors a round accepts.
        n_min: u32,
        /// Most nodes colluding with the coordinator.
        colluders: u32,
    },
    /// The per-node variance is below [`NoiseShare::MIN_NODE_VARIANCE`].
    #[error(
        "per-node noise variance {node_variance} is below 4 (sigma below 2 integer units); raise the target variance or lower n_min - c"
    )]
    ShareTooSmall {
        /// The per-node variance that would have been used.
        node_variance: String,
    },
    /// The per-node variance is not representable as a [`Variance`] (unreachable with the
    /// current limits; see [`NoiseShare::new`]).
    #[error("per-node variance: {0}")]
    Variance(#[from] VarianceError),
}

/// One node's share of the noise of a distributed release (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseShare {
    target: Variance,
    node_variance: Variance,
    n_min: u32,
    colluders: u32,
}

impl NoiseShare {
    /// The smallest per-node variance allowed: `sigma_node >= 2` integer units (DESIGN
    /// section 7), well inside the `sigma >= 1/2` that the sum bound needs.
    pub const MIN_NODE_VARIANCE: u64 = 4;

    /// The share for a target total variance `sigma^2` when every round has at least `n_min`
    /// survivors and at most `colluders` of them collude with the coordinator:
    /// `sigma_node^2 = sigma^2 / (n_min - colluders)`, exact.
    ///
    /// The share is always representable: its numerator divides the target's (at most 128
    /// bits) and, as the share is at least 4, its denominator is at most a quarter of that
    /// numerator. [`Variance::round_up`] (more noise, never less) is kept as the fallback
    /// should [`Variance`]'s limits ever change.
    pub fn new(target: &Variance, n_min: u32, colluders: u32) -> Result<Self, DistributedError> {
        if n_min <= colluders {
            return Err(DistributedError::NoHonestSurvivor { n_min, colluders });
        }
        let honest = Ratio::from_integer(BigUint::from(n_min - colluders));
        let exact = target.as_ratio() / honest;
        if exact < Ratio::from_integer(BigUint::from(Self::MIN_NODE_VARIANCE)) {
            return Err(DistributedError::ShareTooSmall {
                node_variance: format!("{}/{}", exact.numer(), exact.denom()),
            });
        }
        let node_variance = Variance::round_up(&exact)?;
        Ok(NoiseShare {
            target: target.clone(),
            node_variance,
            n_min,
            colluders,
        })
    }

    /// The target total variance `sigma^2`.
    pub fn target(&self) -> &Variance {
        &self.target
    }

    /// The variance each node adds to each coordinate.
    pub fn node_variance(&self) -> &Variance {
        &self.node_variance
    }

    /// `n_min - c`: the fewest honest shares in any accepted round.
    pub fn honest_shares(&self) -> NonZeroU32 {
        // `new` refuses n_min <= colluders, so the difference is at least 1.
        NonZeroU32::new(self.n_min - self.colluders).unwrap_or(NonZeroU32::MIN)
    }

    /// The fewest survivors a round accepts.
    pub fn n_min(&self) -> u32 {
        self.n_min
    }

    /// The most nodes assumed to collude with the coordinator.
    pub fn colluders(&self) -> u32 {
        self.colluders
    }

    /// The variance the honest shares give together, at least [`NoiseShare::target`].
    pub fn honest_variance(&self) -> Ratio<BigUint> {
        let honest = BigUint::from(self.honest_shares().get());
        self.node_variance.as_ratio() * Ratio::from_integer(honest)
    }

    /// The zCDP loss of releasing a sum with this noise on every coordinate, for a query of
    /// the given sensitivity: [`distributed_rho`] with `n_min - c` honest shares.
    pub fn rho(&self, sensitivity: &Sensitivity) -> Rho {
        distributed_rho(sensitivity, &self.node_variance, self.honest_shares())
    }

    /// This node's noise for a vector of `len` coordinates.
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R, len: usize) -> Vec<i64> {
        DiscreteGaussian::new(&self.node_variance).sample_vec(rng, len)
    }
}

/// `pi^2 >= 9.869604401` and `log2(e) >= 1.44269504`: lower bounds, so the exponents below are
/// lower bounds and the powers of two upper bounds.
const PI_SQ_LO: (u64, u64) = (9_869_604_401, 1_000_000_000);
const LOG2_E_LO: (u64, u64) = (144_269_504, 100_000_000);
/// Terms are bounded by at least `2^-128`: far below anything that matters, and it keeps the
/// ledger's denominators short.
const MAX_EXPONENT: u64 = 128;
/// Terms `k <= TERMS` are bounded one by one; the rest by the term `TERMS + 1` (they decrease).
const TERMS: u64 = 64;

/// An exact rational upper bound on `tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 s^2 k / (k + 1))`
/// for `n = honest_shares` shares of variance `s^2 = node_variance`; zero for one share.
///
/// Each term `exp(-x_k)` is bounded by `2^-e_k` with
/// `e_k = min(floor(2 pi_lo^2 s^2 k/(k+1) log2(e)_lo), 128)`, using rational lower bounds of
/// `pi^2` and `log2(e)`; so each bound is at most twice the term (or `2^-128`). The terms
/// decrease in `k`: those past `k = 64` are all bounded by term 65.
pub fn tau_upper_bound(node_variance: &Variance, honest_shares: NonZeroU32) -> Ratio<BigUint> {
    let n_terms = u64::from(honest_shares.get() - 1);
    if n_terms == 0 {
        return Ratio::zero();
    }
    let r = |(n, d): (u64, u64)| Ratio::new(BigUint::from(n), BigUint::from(d));
    let base = r(PI_SQ_LO)
        * r(LOG2_E_LO)
        * node_variance.as_ratio()
        * Ratio::from_integer(BigUint::from(2u8));
    let exponent = |k: u64| {
        let e = (&base * r((k, k + 1))).floor().to_integer();
        e.to_u64().map_or(MAX_EXPONENT, |e| e.min(MAX_EXPONENT))
    };
    let denom = BigUint::from(1u8) << MAX_EXPONENT;
    let mut numer = BigUint::zero();
    for k in 1..=n_terms.min(TERMS) {
        numer += BigUint::from(1u8) << (MAX_EXPONENT - exponent(k));
    }
    if n_terms > TERMS {
        numer += BigUint::from(n_terms - TERMS) << (MAX_EXPONENT - exponent(TERMS + 1));
    }
    Ratio::new(numer * 10u32, denom)
}

/// An upper bound on `sqrt(x)` with relative error below `2^-64`: `ceil(sqrt(p q 4^k)) / (q 2^k)`
/// with `k` large enough that `p q 4^k >= 2^128`.
fn sqrt_upper(x: &Ratio<BigUint>) -> Ratio<BigUint> {
    let pq = x.numer() * x.denom();
    if pq.is_zero() {
        return Ratio::zero();
    }
    let k = 128u64.saturating_sub(pq.bits()).div_ceil(2) + 1;
    let scaled = pq << (2 * k);
    let s = scaled.sqrt();
    let s = if &s * &s == scaled { s } else { s + 1u32 };
    Ratio::new(s, x.denom() << k)
}

/// The zCDP loss of a sum of `honest_shares` independent `N_Z(0, node_variance)` shares on each
/// coordinate of a query with the given sensitivity and dimension (Kairouz, Liu, Steinke 2021;
/// module docs): `min(rho_1, rho_2)` with exact rational upper bounds for `tau` and
/// `1 / sqrt(n s^2)`. With one share it is exactly `Delta_2^2 / (2 s^2)`.
pub fn distributed_rho(
    sensitivity: &Sensitivity,
    node_variance: &Variance,
    honest_shares: NonZeroU32,
) -> Rho {
    distributed_rho_from_parts(
        &sensitivity.l2_squared(),
        &sensitivity.l1(),
        sensitivity.dimension(),
        node_variance,
        honest_shares,
    )
}

/// [`distributed_rho`] from recorded parameters, for an auditor recomputing a ledger entry:
/// `l2_squared` is `Delta_2^2` and `l1` is `Delta_1`, both exact. A node computes its debit with
/// [`NoiseShare::rho`], from a [`Sensitivity`] derived from the job's declared bounds.
pub fn distributed_rho_from_parts(
    l2_squared: &Ratio<BigUint>,
    l1: &Ratio<BigUint>,
    dimension: u64,
    node_variance: &Variance,
    honest_shares: NonZeroU32,
) -> Rho {
    let int = |n: u64| Ratio::from_integer(BigUint::from(n));
    let total_variance = node_variance.as_ratio() * int(u64::from(honest_shares.get()));
    let base = l2_squared / (int(2) * &total_variance);
    let tau = tau_upper_bound(node_variance, honest_shares);
    if tau.is_zero() {
        return Rho::from_ratio_exact(base);
    }
    let d = int(dimension);
    let rho_1 = &base + &tau * &d;
    let inv_sd = sqrt_upper(&(int(1) / &total_variance));
    let rho_2 = &base + l1 * &tau * inv_sd + &tau * &tau * d / int(2);
    Rho::from_ratio_exact(rho_1.min(rho_2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounding::{ContributionBounds, CoordinateRange, Neighbouring};
    use crate::rho::Rho;
    use num_traits::ToPrimitive;

    fn var(s: &str) -> Variance {
        s.parse().unwrap()
    }

    fn n(k: u32) -> NonZeroU32 {
        NonZeroU32::new(k).unwrap()
    }

    fn counts(d: usize) -> Sensitivity {
        ContributionBounds::new(vec![CoordinateRange::indicator(); d], None)
            .unwrap()
            .sensitivity(Neighbouring::AddRemove)
    }

    #[test]
    fn share_is_target_over_honest_nodes() {
        let s = NoiseShare::new(&var("100"), 10, 3).unwrap();
        assert_eq!(s.node_variance(), &var("100/7"));
        assert_eq!(s.honest_shares().get(), 7);
        assert_eq!((s.n_min(), s.colluders()), (10, 3));
        assert_eq!(
            s.honest_variance(),
            Ratio::from_integer(BigUint::from(100u32))
        );
        assert_eq!(s.target(), &var("100"));
        // Exactly the minimum is allowed.
        assert_eq!(
            NoiseShare::new(&var("28"), 7, 0).unwrap().node_variance(),
            &var("4")
        );
    }

    #[test]
    fn unsafe_shares_are_refused() {
        assert_eq!(
            NoiseShare::new(&var("100"), 3, 3),
            Err(DistributedError::NoHonestSurvivor {
                n_min: 3,
                colluders: 3
            })
        );
        assert!(matches!(
            NoiseShare::new(&var("100"), 0, 0),
            Err(DistributedError::NoHonestSurvivor { .. })
        ));
        assert!(matches!(
            NoiseShare::new(&var("100"), 5, 7),
            Err(DistributedError::NoHonestSurvivor { .. })
        ));
        assert_eq!(
            NoiseShare::new(&var("27"), 7, 0),
            Err(DistributedError::ShareTooSmall {
                node_variance: "27/7".into()
            })
        );
    }

    #[test]
    fn extreme_targets_split_exactly() {
        // 128-bit numerator and denominator, a large odd number of honest shares: the share is
        // still exact, so the honest variance is exactly the target.
        let n = (BigUint::from(1u8) << 128u32) - 1u32;
        let d = (BigUint::from(1u8) << 100u32) + 7u32;
        let target = Variance::new(n, d).unwrap();
        for (n_min, c) in [(1_000_001, 0), (4_000_000_000, 1), (u32::MAX, 2)] {
            match NoiseShare::new(&target, n_min, c) {
                Ok(s) => assert_eq!(s.honest_variance(), *target.as_ratio()),
                Err(e) => assert!(matches!(e, DistributedError::ShareTooSmall { .. }), "{e}"),
            }
        }
        let s = NoiseShare::new(&target, 1_000_001, 0).unwrap();
        assert_eq!(s.honest_variance(), *target.as_ratio());
    }

    #[test]
    fn tau_bound_dominates_the_float_value_and_is_tight_to_a_factor_of_two() {
        for (v, n) in [
            ("4", 2u32),
            ("4", 10),
            ("4", 1000),
            ("9/2", 65),
            ("6", 300),
            ("10", 5),
        ] {
            let s2 = var(v).to_f64();
            let tau: f64 = 10.0
                * (1..n)
                    .map(|k| {
                        (-2.0 * std::f64::consts::PI.powi(2) * s2 * f64::from(k) / f64::from(k + 1))
                            .exp()
                    })
                    .sum::<f64>();
            let bound = tau_upper_bound(&var(v), NonZeroU32::new(n).unwrap())
                .to_f64()
                .unwrap();
            assert!(bound >= tau, "{v} {n}: {bound} < {tau}");
            // Per-term slack is at most 2 for k <= 64 (later terms use term 65, a little larger),
            // unless the 2^-128 floor per term is reached.
            let floor = 10.0 * f64::from(n - 1) * 2f64.powi(-128);
            assert!(bound <= (2.5 * tau).max(floor), "{v} {n}: {bound} vs {tau}");
        }
        assert!(tau_upper_bound(&var("4"), n(1)).is_zero());
        // Large variances hit the 2^-128 floor per term.
        let big = tau_upper_bound(&var("1000000"), n(101));
        assert_eq!(
            big,
            Ratio::new(BigUint::from(1000u32), BigUint::from(1u8) << 128u32)
        );
    }

    #[test]
    fn sqrt_upper_is_an_upper_bound_and_close() {
        for (n, d) in [
            (1u64, 4u64),
            (1, 5),
            (2, 1),
            (1, 1_000_000_007),
            (123_456_789, 1000),
        ] {
            let x = Ratio::new(BigUint::from(n), BigUint::from(d));
            let s = sqrt_upper(&x);
            assert!(&s * &s >= x, "{n}/{d}");
            let exact = (n as f64 / d as f64).sqrt();
            assert!((s.to_f64().unwrap() / exact - 1.0).abs() < 1e-15, "{n}/{d}");
        }
    }

    #[test]
    fn one_share_is_the_central_discrete_gaussian() {
        let s = counts(3);
        assert_eq!(
            distributed_rho(&s, &var("4"), n(1)),
            "3/8".parse::<Rho>().unwrap()
        );
    }

    #[test]
    fn many_shares_cost_slightly_more_than_the_central_gaussian() {
        // sigma^2 = 70 split over 7 honest shares of 10 each; a histogram of 5 counts.
        let share = NoiseShare::new(&var("70"), 9, 2).unwrap();
        let s = counts(5);
        let rho = share.rho(&s);
        let central = "5/140".parse::<Rho>().unwrap();
        assert!(rho > central);
        let excess = rho.to_f64() - central.to_f64();
        // tau ~ 10 * 6 * exp(-2 pi^2 * 10 / 2) ~ 1e-41: invisible in f64, present exactly.
        assert!(excess < 1e-30, "{excess}");
        // The ledger form round-trips exactly.
        assert_eq!(rho.to_string().parse::<Rho>().unwrap(), rho);
    }

    #[test]
    fn small_shares_show_the_tau_term() {
        // s^2 = 4, 1000 honest shares, 10,000 coordinates: tau d is about 1e-12.
        let s = counts(10_000);
        let rho = distributed_rho(&s, &var("4"), n(1000));
        let recorded =
            distributed_rho_from_parts(&s.l2_squared(), &s.l1(), 10_000, &var("4"), n(1000));
        assert_eq!(rho, recorded);
        let central =
            Rho::from_ratio_exact(s.l2_squared() / Ratio::from_integer(BigUint::from(8000u32)));
        let excess = rho.to_f64() - central.to_f64();
        let tau = 10.0
            * (1..1000)
                .map(|k| (-8.0 * 9.8696044 * f64::from(k) / f64::from(k + 1)).exp())
                .sum::<f64>();
        assert!(
            excess > 0.0 && excess <= 2.5 * tau * 10_000.0,
            "{excess} vs {}",
            tau * 1e4
        );
    }
}
