//! The loss of a retired `TransactionTotals` release, **only to verify ledgers written before
//! 2026-12**. Nothing plans, runs or records such a release any more: transaction totals are a
//! feature query now (`crate::query`, see docs/PRIVACY.md "Totals"). Ledgers keep their old
//! `transaction_totals` mechanism records, and an auditor (or a node re-reading its own ledger)
//! must recompute exactly the rho that was debited then; this module is that computation,
//! unchanged.
//!
//! The release was three sums, each its own distributed discrete Gaussian mechanism: distinct
//! customers (a customer adds at most 1), rows (at most `max_rows_per_customer`) and amount (a
//! customer's total clipped to `[-A, A]`). Under add/remove neighbouring the sensitivities are
//! `1`, `R` and `A`; each coordinate had its own noise variance, and the losses compose by
//! addition.

use fedprof_protocol::Fraction;
use num_bigint::BigUint;

use crate::Rho;
use crate::bounding::{ContributionBounds, CoordinateRange, Neighbouring, Sensitivity};
use crate::distributed::{NoiseShare, distributed_rho};
use crate::release::{RHO_DENOMINATOR, ReleaseError, honest_of};
use crate::variance::Variance;

/// Coordinates of a legacy totals vector: customers, rows, amount.
pub const TOTALS_DIMENSION: usize = 3;

/// The parameters a legacy totals release was announced with (the wire fields it had).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTotalsParams {
    /// Rows of one customer that counted.
    pub max_rows_per_customer: u32,
    /// A customer's total amount was clipped to `[-max, max]` minor units.
    pub max_abs_amount_minor: u64,
    /// One noise variance per coordinate, in vector order.
    pub node_variance: Vec<Fraction>,
    /// `n_min`.
    pub min_contributors: u32,
    /// `c`.
    pub colluders: u32,
}

/// Why recorded legacy parameters describe no valid release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyTotalsError {
    /// The vector of variances does not have one entry per coordinate.
    #[error("expected {TOTALS_DIMENSION} noise variances, got {0}")]
    Dimension(usize),
    /// A bound does not fit the arithmetic.
    #[error("clipping bound {0} is out of range")]
    Bound(u64),
    /// Refused as any release would be.
    #[error(transparent)]
    Release(#[from] ReleaseError),
}

fn sensitivities(
    params: &LegacyTotalsParams,
) -> Result<[Sensitivity; TOTALS_DIMENSION], LegacyTotalsError> {
    let rows = i64::from(params.max_rows_per_customer);
    let amount = i64::try_from(params.max_abs_amount_minor)
        .map_err(|_| LegacyTotalsError::Bound(params.max_abs_amount_minor))?;
    let one = |range: CoordinateRange| {
        ContributionBounds::new(vec![range], None).map_err(|_| LegacyTotalsError::Bound(0))
    };
    let rows_range =
        CoordinateRange::new(0, rows).map_err(|_| LegacyTotalsError::Bound(rows as u64))?;
    let amount_range = CoordinateRange::new(-amount, amount)
        .map_err(|_| LegacyTotalsError::Bound(params.max_abs_amount_minor))?;
    Ok([
        one(CoordinateRange::indicator())?,
        one(rows_range)?,
        one(amount_range)?,
    ]
    .map(|b| b.sensitivity(Neighbouring::AddRemove)))
}

fn node_variances(params: &LegacyTotalsParams) -> Result<Vec<Variance>, LegacyTotalsError> {
    if params.node_variance.len() != TOTALS_DIMENSION {
        return Err(LegacyTotalsError::Dimension(params.node_variance.len()));
    }
    let honest = honest_of(params.min_contributors, params.colluders)?;
    params
        .node_variance
        .iter()
        .map(|f| {
            let bad = || ReleaseError::Variance(f.numer, f.denom);
            let v = Variance::from_ratio(f.numer, f.denom).map_err(|_| bad())?;
            // The same floor and n_min/c checks a node applied to its own share.
            let target = Variance::from_ratio_exact(v.as_ratio() * BigUint::from(honest.get()))
                .map_err(|_| bad())?;
            NoiseShare::new(&target, params.min_contributors, params.colluders)
                .map_err(ReleaseError::from)?;
            Ok(v)
        })
        .collect()
}

/// The exact zCDP loss of a legacy totals release, rounded up to [`RHO_DENOMINATOR`]: what the
/// nodes debited then, recomputed.
pub fn totals_rho(params: &LegacyTotalsParams) -> Result<Rho, LegacyTotalsError> {
    let variances = node_variances(params)?;
    let honest = honest_of(params.min_contributors, params.colluders)?;
    let exact: Rho = sensitivities(params)?
        .iter()
        .zip(&variances)
        .map(|(s, v)| distributed_rho(s, v, honest))
        .sum();
    exact
        .round_up_to_denominator(&BigUint::from(RHO_DENOMINATOR))
        .map_err(|_| ReleaseError::Variance(0, 0).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::DistributedError;

    fn f(numer: u64) -> Fraction {
        Fraction { numer, denom: 1 }
    }

    fn params(variances: &[u64]) -> LegacyTotalsParams {
        LegacyTotalsParams {
            max_rows_per_customer: 10,
            max_abs_amount_minor: 100,
            node_variance: variances.iter().copied().map(f).collect(),
            min_contributors: 2,
            colluders: 1,
        }
    }

    #[test]
    fn one_honest_share_is_the_plain_gaussian() {
        // n_min - c = 1: rho_i = Delta_i^2 / (2 sigma_i^2) exactly (then rounded up).
        // Each coordinate: Delta^2 / (2 * 4 Delta^2) = 1/8; three of them: 3/8.
        let rho = totals_rho(&params(&[4, 400, 40_000])).unwrap();
        assert_eq!(rho, Rho::from_ratio(3, 8).unwrap());
    }

    #[test]
    fn a_planned_release_of_the_old_planner_recomputes_exactly() {
        // What the retired planner chose for cap 1/2, R = 10, A = 1000, n_min 3, c 1 (the
        // ledger fixture in fedprof-ledger's mechanism tests), and the rho it recorded.
        let p = LegacyTotalsParams {
            max_rows_per_customer: 10,
            max_abs_amount_minor: 1000,
            node_variance: vec![f(4), f(150), f(1_500_000)],
            min_contributors: 3,
            colluders: 1,
        };
        let want = Rho::from_ratio(197_916_666_667, 500_000_000_000).unwrap();
        assert_eq!(totals_rho(&p).unwrap(), want);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(
            totals_rho(&params(&[4, 400])),
            Err(LegacyTotalsError::Dimension(2))
        );
        let mut p = params(&[4, 400, 40_000]);
        p.colluders = 2;
        assert!(matches!(
            totals_rho(&p),
            Err(LegacyTotalsError::Release(ReleaseError::Distributed(_)))
        ));
        p.colluders = 0;
        assert_eq!(
            totals_rho(&p),
            Err(LegacyTotalsError::Release(ReleaseError::NoColluderAssumed))
        );
        assert!(matches!(
            totals_rho(&params(&[3, 400, 40_000])),
            Err(LegacyTotalsError::Release(ReleaseError::Distributed(
                DistributedError::ShareTooSmall { .. }
            )))
        ));
        let mut p = params(&[4, 400, 40_000]);
        p.node_variance[0] = Fraction { numer: 1, denom: 0 };
        assert_eq!(
            totals_rho(&p),
            Err(LegacyTotalsError::Release(ReleaseError::Variance(1, 0)))
        );
    }
}
