//! What every release shares, whatever its kind: the honest noise shares it counts on, the
//! denominator ledgers round rho up to, and why parameters are refused. Feature queries
//! (`crate::query`) are the only kind of release; the planner and loss of the retired
//! transaction-totals kind live on, for old ledgers only, in `crate::legacy`.

use std::num::NonZeroU32;

use fedprof_protocol::ReleaseParams;

use crate::Rho;
use crate::distributed::DistributedError;

/// Denominator ledgers round rho up to (`10^12`): short enough to read, conservative always.
pub const RHO_DENOMINATOR: u64 = 1_000_000_000_000;

/// Why release parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
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

/// `n_min - colluders`, the honest shares every release can count on (at least 1), with
/// `colluders >= 1` (see [`ReleaseError::NoColluderAssumed`]).
pub(crate) fn honest(params: &ReleaseParams) -> Result<NonZeroU32, ReleaseError> {
    honest_of(params.min_contributors, params.colluders)
}

/// [`honest`] from `n_min` and `c` themselves.
pub(crate) fn honest_of(min_contributors: u32, colluders: u32) -> Result<NonZeroU32, ReleaseError> {
    if colluders == 0 {
        return Err(ReleaseError::NoColluderAssumed);
    }
    min_contributors
        .checked_sub(colluders)
        .and_then(NonZeroU32::new)
        .ok_or(ReleaseError::Distributed(
            DistributedError::NoHonestSurvivor {
                n_min: min_contributors,
                colluders,
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_shares_need_a_colluder_and_a_survivor() {
        let params = |n_min, colluders| ReleaseParams {
            node_variance: vec![fedprof_protocol::Fraction { numer: 4, denom: 1 }],
            min_contributors: n_min,
            colluders,
        };
        assert_eq!(honest(&params(3, 1)).map(NonZeroU32::get), Ok(2));
        assert_eq!(honest(&params(3, 0)), Err(ReleaseError::NoColluderAssumed));
        assert!(matches!(
            honest(&params(2, 2)),
            Err(ReleaseError::Distributed(
                DistributedError::NoHonestSurvivor { .. }
            ))
        ));
    }
}
