//! The privacy of one `TransactionTotals` release, computed the same way by the coordinator
//! (planning), every node (before it debits its budget) and the auditor (recomputing a ledger).
//!
//! The release is three sums, each its own distributed discrete Gaussian mechanism:
//! distinct customers (a customer adds at most 1), rows (at most `max_rows_per_customer`) and
//! amount (a customer's total clipped to `[-A, A]`). Under add/remove neighbouring the
//! sensitivities are `1`, `R` and `A`. Each coordinate has its own noise variance so that its
//! noise is proportionate to its sensitivity; the losses compose by addition.

use std::num::NonZeroU32;

use fedprof_protocol::{Fraction, ReleaseParams};
use num_bigint::BigUint;

use crate::Rho;
use crate::bounding::{ContributionBounds, CoordinateRange, Neighbouring, Sensitivity};
use crate::distributed::{DistributedError, NoiseShare, distributed_rho};
use crate::variance::Variance;

/// Coordinates of a `TransactionTotals` vector.
pub const TOTALS_DIMENSION: usize = 3;

/// Denominator ledgers round rho up to (`10^12`): short enough to read, conservative always.
pub const RHO_DENOMINATOR: u64 = 1_000_000_000_000;

/// Why release parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The vector of variances does not have one entry per coordinate.
    #[error("expected {TOTALS_DIMENSION} noise variances, got {0}")]
    Dimension(usize),
    /// A bound does not fit the arithmetic.
    #[error("clipping bound {0} is out of range")]
    Bound(u64),
    /// A variance is zero, has a zero denominator or is out of range.
    #[error("noise variance {0}/{1} is not valid")]
    Variance(u64, u64),
    /// `n_min <= c` or a share below sigma 2.
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// No variance up to the search limit keeps rho under the cap.
    #[error("no noise level keeps a release under the per-job cap {0}")]
    CapTooSmall(Rho),
    /// `colluders = 0`: every contributor receives the released sum and knows its own noise
    /// share, so it learns the others' sum with one share less; at least one share never
    /// protects the others, and the accounting must not count it.
    #[error(
        "colluders must be at least 1: every contributor receives the result and knows its own \
         noise share, so that share never protects the other nodes' customers"
    )]
    NoColluderAssumed,
}

/// The per-customer bounds of each coordinate, in vector order.
pub fn totals_bounds(
    params: &ReleaseParams,
) -> Result<[ContributionBounds; TOTALS_DIMENSION], ReleaseError> {
    let rows = i64::from(params.max_rows_per_customer);
    let amount = i64::try_from(params.max_abs_amount_minor)
        .map_err(|_| ReleaseError::Bound(params.max_abs_amount_minor))?;
    let one = |range: CoordinateRange| {
        ContributionBounds::new(vec![range], None).map_err(|_| ReleaseError::Bound(0))
    };
    let rows_range = CoordinateRange::new(0, rows).map_err(|_| ReleaseError::Bound(rows as u64))?;
    let amount_range = CoordinateRange::new(-amount, amount)
        .map_err(|_| ReleaseError::Bound(params.max_abs_amount_minor))?;
    Ok([
        one(CoordinateRange::indicator())?,
        one(rows_range)?,
        one(amount_range)?,
    ])
}

fn sensitivities(params: &ReleaseParams) -> Result<[Sensitivity; TOTALS_DIMENSION], ReleaseError> {
    Ok(totals_bounds(params)?.map(|b| b.sensitivity(Neighbouring::AddRemove)))
}

/// The validated per-node noise variances, in vector order.
pub fn node_variances(params: &ReleaseParams) -> Result<Vec<Variance>, ReleaseError> {
    if params.node_variance.len() != TOTALS_DIMENSION {
        return Err(ReleaseError::Dimension(params.node_variance.len()));
    }
    params
        .node_variance
        .iter()
        .map(|f| {
            let v = Variance::from_ratio(f.numer, f.denom)
                .map_err(|_| ReleaseError::Variance(f.numer, f.denom))?;
            // The same floor and n_min/c checks a node applies to its own share.
            let target =
                Variance::from_ratio_exact(v.as_ratio() * BigUint::from(honest(params)?.get()))
                    .map_err(|_| ReleaseError::Variance(f.numer, f.denom))?;
            NoiseShare::new(&target, params.min_contributors, params.colluders)?;
            Ok(v)
        })
        .collect()
}

/// `n_min - colluders`, the honest shares every release can count on (at least 1), with
/// `colluders >= 1` (see [`ReleaseError::NoColluderAssumed`]).
pub(crate) fn honest(params: &ReleaseParams) -> Result<NonZeroU32, ReleaseError> {
    if params.colluders == 0 {
        return Err(ReleaseError::NoColluderAssumed);
    }
    params
        .min_contributors
        .checked_sub(params.colluders)
        .and_then(NonZeroU32::new)
        .ok_or(ReleaseError::Distributed(
            DistributedError::NoHonestSurvivor {
                n_min: params.min_contributors,
                colluders: params.colluders,
            },
        ))
}

/// The exact zCDP loss of one release, rounded up to [`RHO_DENOMINATOR`]: what every
/// contributing node debits and what an auditor recomputes.
pub fn totals_rho(params: &ReleaseParams) -> Result<Rho, ReleaseError> {
    let variances = node_variances(params)?;
    let honest = honest(params)?;
    let exact: Rho = sensitivities(params)?
        .iter()
        .zip(&variances)
        .map(|(s, v)| distributed_rho(s, v, honest))
        .sum();
    exact
        .round_up_to_denominator(&BigUint::from(RHO_DENOMINATOR))
        .map_err(|_| ReleaseError::Variance(0, 0))
}

/// Plans a release: the smallest integer node variances that keep [`totals_rho`] at or under
/// `cap`, giving each coordinate an equal share of it. Starts from the single-share Gaussian
/// solution `sigma_i^2 = 3 Delta_i^2 / (2 cap (n_min - c))` (floored at variance 4) and raises
/// all variances by 1/8 until the distributed bound fits.
pub fn plan_totals(
    cap: &Rho,
    max_rows_per_customer: u32,
    max_abs_amount_minor: u64,
    min_contributors: u32,
    colluders: u32,
) -> Result<ReleaseParams, ReleaseError> {
    let mut params = ReleaseParams {
        max_rows_per_customer,
        max_abs_amount_minor,
        node_variance: vec![Fraction { numer: 1, denom: 1 }; TOTALS_DIMENSION],
        min_contributors,
        colluders,
    };
    let honest = u128::from(honest(&params)?.get());
    let deltas = [
        1u128,
        u128::from(max_rows_per_customer),
        u128::from(max_abs_amount_minor),
    ];
    let (cap_n, cap_d) = (
        u128::try_from(cap.numer()).map_err(|_| ReleaseError::CapTooSmall(cap.clone()))?,
        u128::try_from(cap.denom()).map_err(|_| ReleaseError::CapTooSmall(cap.clone()))?,
    );
    if cap_n == 0 {
        return Err(ReleaseError::CapTooSmall(cap.clone()));
    }
    let mut variances: Vec<u128> = deltas
        .iter()
        .map(|d| {
            // ceil(3 d^2 cap_d / (2 cap_n honest)), at least NoiseShare::MIN_NODE_VARIANCE.
            let num = 3 * d * d * cap_d;
            let den = 2 * cap_n * honest;
            num.div_ceil(den)
                .max(u128::from(NoiseShare::MIN_NODE_VARIANCE))
        })
        .collect();
    for _ in 0..64 {
        params.node_variance = variances
            .iter()
            .map(|v| u64::try_from(*v).map(|numer| Fraction { numer, denom: 1 }))
            .collect::<Result<_, _>>()
            .map_err(|_| ReleaseError::CapTooSmall(cap.clone()))?;
        if &totals_rho(&params)? <= cap {
            return Ok(params);
        }
        for v in &mut variances {
            *v += (*v).div_ceil(8);
        }
    }
    Err(ReleaseError::CapTooSmall(cap.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(n: u64, d: u64) -> Rho {
        Rho::from_ratio(n, d).unwrap()
    }

    #[test]
    fn planned_releases_stay_under_the_cap_and_near_it() {
        for (c, n_min, colluders) in [(cap(1, 2), 3, 1), (cap(1, 10), 5, 1), (cap(2, 1), 2, 1)] {
            let p = plan_totals(&c, 50, 500_000, n_min, colluders).unwrap();
            let rho = totals_rho(&p).unwrap();
            assert!(rho <= c, "{rho} > {c}");
            assert!(
                rho.to_f64() > c.to_f64() / 2.0,
                "too much noise: {rho} for cap {c}"
            );
            // Noise proportionate to sensitivity: amount variance >> rows >> customers.
            let v: Vec<u64> = p.node_variance.iter().map(|f| f.numer).collect();
            assert!(v[0] >= 4 && v[0] < v[1] && v[1] < v[2], "{v:?}");
        }
    }

    #[test]
    fn one_honest_share_is_the_plain_gaussian() {
        // n_min - c = 1: rho_i = Delta_i^2 / (2 sigma_i^2) exactly (then rounded up).
        let p = ReleaseParams {
            max_rows_per_customer: 10,
            max_abs_amount_minor: 100,
            node_variance: vec![
                Fraction { numer: 4, denom: 1 },
                Fraction {
                    numer: 400,
                    denom: 1,
                },
                Fraction {
                    numer: 40_000,
                    denom: 1,
                },
            ],
            min_contributors: 2,
            colluders: 1,
        };
        // Each coordinate: Delta^2 / (2 * 4 Delta^2) = 1/8; three of them: 3/8.
        assert_eq!(totals_rho(&p).unwrap(), cap(3, 8));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut p = plan_totals(&cap(1, 2), 5, 1000, 3, 1).unwrap();
        p.node_variance.pop();
        assert_eq!(totals_rho(&p), Err(ReleaseError::Dimension(2)));
        let mut p = plan_totals(&cap(1, 2), 5, 1000, 3, 1).unwrap();
        p.colluders = 3;
        assert!(matches!(totals_rho(&p), Err(ReleaseError::Distributed(_))));
        let mut p = plan_totals(&cap(1, 2), 5, 1000, 3, 1).unwrap();
        p.node_variance[0] = Fraction { numer: 3, denom: 1 };
        assert!(matches!(
            totals_rho(&p),
            Err(ReleaseError::Distributed(
                DistributedError::ShareTooSmall { .. }
            ))
        ));
        p.node_variance[0] = Fraction { numer: 1, denom: 0 };
        assert_eq!(totals_rho(&p), Err(ReleaseError::Variance(1, 0)));
        assert!(matches!(
            plan_totals(&Rho::zero(), 5, 1000, 3, 1),
            Err(ReleaseError::CapTooSmall(_))
        ));
    }
}
