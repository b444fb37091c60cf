//! The privacy of one feature-query release ([`fedprof_protocol::query`]), computed the same way
//! by the coordinator (planning), every node (before it debits its budget) and the auditor.
//!
//! One customer lands in one segment and changes only that segment's block, where each of the
//! block's `p` parts moves by at most `scale` in L2 and in L1. So under add/remove neighbouring
//! `Delta_2^2 = p scale^2` and `Delta_1 = p scale`, whatever the segmenter, the features or their
//! bounds. Every coordinate gets the same per-node discrete Gaussian variance; the loss is the
//! distributed bound of [`crate::distributed`] over the whole vector, rounded up to
//! [`RHO_DENOMINATOR`].

use fedprof_protocol::{FeatureQuery, Fraction, ReleaseParams};
use num_bigint::BigUint;

use crate::Rho;
use crate::bounding::Sensitivity;
use crate::distributed::{NoiseShare, distributed_rho};
use crate::release::{RHO_DENOMINATOR, ReleaseError, honest};
use crate::variance::Variance;

/// Why a query release cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryReleaseError {
    /// The query itself is malformed.
    #[error("query: {0}")]
    Query(#[from] fedprof_protocol::query::QueryError),
    /// Not exactly one variance is given.
    #[error("release parameters of a feature query: {0}")]
    Params(&'static str),
    /// Noise or participation parameters refused.
    #[error(transparent)]
    Release(#[from] ReleaseError),
}

/// What the sensitivity of a feature-query release depends on, and all an auditor needs to
/// recompute it: one customer changes one block by at most `scale x sqrt(l2_squared)` in L2
/// and `scale x l1` in L1 (the sum of its parts' [`fedprof_protocol::query::PartBound`]s), in a
/// vector of `dimension` coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryShape {
    /// Squared L2 bound of one customer's block, in units of `scale^2`.
    pub l2_squared: u64,
    /// L1 bound of one customer's block, in units of `scale`.
    pub l1: u64,
    /// Fixed-point scale.
    pub scale: u32,
    /// Coordinates of the whole vector.
    pub dimension: u64,
}

impl QueryShape {
    /// The shape of `query` (validated), derived from what a node can add per customer.
    pub fn of(query: &FeatureQuery) -> Result<QueryShape, QueryReleaseError> {
        query.validate()?;
        let bound = query.block_bound();
        Ok(QueryShape {
            l2_squared: bound.l2_squared,
            l1: bound.l1,
            scale: query.scale,
            dimension: query.vector_len() as u64,
        })
    }

    /// `Delta_2^2 = l2_squared scale^2`, `Delta_1 = l1 scale`, over `dimension`.
    pub fn sensitivity(&self) -> Result<Sensitivity, QueryReleaseError> {
        let max = fedprof_protocol::query::MAX_QUERY_LEN as u64;
        if self.scale == 0 || self.scale > fedprof_protocol::query::MAX_SCALE {
            return Err(QueryReleaseError::Params("scale out of range"));
        }
        if !(1..=max).contains(&self.l2_squared) || !(1..=max).contains(&self.l1) {
            return Err(QueryReleaseError::Params("block bound out of range"));
        }
        // L2 <= L1 for integer vectors: a bound claiming otherwise describes no block.
        if self.l2_squared > self.l1.saturating_mul(self.l1) || self.dimension < self.l1 {
            return Err(QueryReleaseError::Params(
                "block bound or dimension out of range",
            ));
        }
        let scale = BigUint::from(self.scale);
        Ok(Sensitivity::from_integer_norms(
            &scale * &scale * BigUint::from(self.l2_squared),
            scale * BigUint::from(self.l1),
            self.dimension,
        ))
    }

    /// The exact zCDP loss of a release of this shape under `params`, rounded up to
    /// [`RHO_DENOMINATOR`].
    pub fn rho(&self, params: &ReleaseParams) -> Result<Rho, QueryReleaseError> {
        let sensitivity = self.sensitivity()?;
        let variance = query_variance(params)?;
        let rho = distributed_rho(&sensitivity, &variance, honest(params)?);
        Ok(rho
            .round_up_to_denominator(&BigUint::from(RHO_DENOMINATOR))
            .map_err(|_| ReleaseError::Variance(0, 0))?)
    }
}

/// The sensitivity of `query`'s vector to one customer.
pub fn query_sensitivity(query: &FeatureQuery) -> Result<Sensitivity, QueryReleaseError> {
    QueryShape::of(query)?.sensitivity()
}

/// The validated per-node noise variance of a feature-query release.
pub fn query_variance(params: &ReleaseParams) -> Result<Variance, QueryReleaseError> {
    let [f] = params.node_variance.as_slice() else {
        return Err(QueryReleaseError::Params("exactly one noise variance"));
    };
    let v = Variance::from_ratio(f.numer, f.denom)
        .map_err(|_| ReleaseError::Variance(f.numer, f.denom))?;
    let honest = honest(params)?;
    let target = Variance::from_ratio_exact(v.as_ratio() * BigUint::from(honest.get()))
        .map_err(|_| ReleaseError::Variance(f.numer, f.denom))?;
    NoiseShare::new(&target, params.min_contributors, params.colluders)
        .map_err(ReleaseError::from)?;
    Ok(v)
}

/// The exact zCDP loss of one release of `query` under `params`, rounded up to
/// [`RHO_DENOMINATOR`]: what every contributing node debits and what an auditor recomputes.
pub fn query_rho(query: &FeatureQuery, params: &ReleaseParams) -> Result<Rho, QueryReleaseError> {
    QueryShape::of(query)?.rho(params)
}

/// Plans a release of `query`: the smallest integer per-node variance (from the single-share
/// Gaussian solution `sigma^2 = Delta_2^2 / (2 cap (n_min - c))`, raised by 1/64 steps) that
/// keeps [`query_rho`] at or under `cap`.
pub fn plan_query(
    cap: &Rho,
    query: &FeatureQuery,
    min_contributors: u32,
    colluders: u32,
) -> Result<ReleaseParams, QueryReleaseError> {
    let sensitivity = query_sensitivity(query)?;
    let mut params = ReleaseParams {
        node_variance: vec![Fraction { numer: 4, denom: 1 }],
        min_contributors,
        colluders,
    };
    let honest = BigUint::from(honest(&params)?.get());
    if cap.is_zero() {
        return Err(ReleaseError::CapTooSmall(cap.clone()).into());
    }
    let start = sensitivity.l2_squared() / (cap.as_ratio() * BigUint::from(2u8) * honest);
    let mut variance = start
        .ceil()
        .to_integer()
        .max(BigUint::from(NoiseShare::MIN_NODE_VARIANCE));
    for _ in 0..256 {
        let numer = u64::try_from(&variance).map_err(|_| ReleaseError::CapTooSmall(cap.clone()))?;
        params.node_variance = vec![Fraction { numer, denom: 1 }];
        if &query_rho(query, &params)? <= cap {
            return Ok(params);
        }
        let step = (&variance + 63u32) / 64u32;
        variance += step;
    }
    Err(ReleaseError::CapTooSmall(cap.clone()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedprof_protocol::query::{CategoricalFeature, NumericFeature, QueryPart, Segmenter};

    fn query(parts: Vec<QueryPart>, segmenter: Segmenter) -> FeatureQuery {
        FeatureQuery {
            label: "t".into(),
            as_of: "2026-01-31".into(),
            scale: 1000,
            segmenter,
            parts,
            budget: fedprof_protocol::Fraction {
                numer: 1,
                denom: 10,
            },
            reserve: fedprof_protocol::Fraction { numer: 0, denom: 1 },
            job: None,
        }
    }

    fn three_parts() -> Vec<QueryPart> {
        vec![
            QueryPart::Count,
            QueryPart::Numeric {
                feature: NumericFeature::Frequency,
                lo: 0,
                hi: 50,
            },
            QueryPart::Levels {
                feature: CategoricalFeature::Region,
                levels: vec!["north".into(), "south".into()],
            },
        ]
    }

    #[test]
    fn sensitivity_counts_parts_of_one_block_and_the_whole_dimension() {
        let q = query(three_parts(), Segmenter::Lifecycle);
        let s = query_sensitivity(&q).unwrap();
        // Three parts of L2 <= 1000 each: Delta_2^2 = 3e6, Delta_1 = 3000; 4 blocks of 5.
        assert_eq!(s.l2_squared(), BigUint::from(3_000_000u32).into());
        assert_eq!(s.l1(), BigUint::from(3000u32).into());
        assert_eq!(s.dimension(), 20);
    }

    /// C1: repeated or unnormalized levels are refused, naming the field, before any shape
    /// is derived; the bound of a query is the sum of its parts' bounds.
    #[test]
    fn c1_repeated_levels_are_refused_and_bounds_add_up() {
        use fedprof_protocol::query::MixFeature;
        for levels in [
            vec!["web".to_owned(); 8],
            vec!["web".into(), "branch".into(), "web".into()],
            vec!["Web".into()],
            vec![" web".into()],
            vec![String::new()],
        ] {
            let q = query(
                vec![QueryPart::Mix {
                    feature: MixFeature::Channel,
                    levels: levels.clone(),
                }],
                Segmenter::All,
            );
            let e = QueryShape::of(&q).unwrap_err().to_string();
            assert!(e.contains("parts[0].levels["), "{levels:?}: {e}");
            let q = query(
                vec![QueryPart::Levels {
                    feature: CategoricalFeature::Region,
                    levels,
                }],
                Segmenter::All,
            );
            assert!(QueryShape::of(&q).is_err());
        }
        let q = query(three_parts(), Segmenter::Lifecycle);
        let shape = QueryShape::of(&q).unwrap();
        assert_eq!((shape.l2_squared, shape.l1, shape.dimension), (3, 3, 20));
    }

    #[test]
    fn one_honest_share_is_the_plain_gaussian() {
        let q = query(three_parts(), Segmenter::All);
        let params = ReleaseParams {
            // sigma^2 = 12e6: rho = 3e6 / (2 * 12e6) = 1/8.
            node_variance: vec![Fraction {
                numer: 12_000_000,
                denom: 1,
            }],
            min_contributors: 2,
            colluders: 1,
        };
        assert_eq!(
            query_rho(&q, &params).unwrap(),
            Rho::from_ratio(1, 8).unwrap()
        );
    }

    #[test]
    fn plans_stay_under_the_cap_and_near_it() {
        let q = query(three_parts(), Segmenter::Lifecycle);
        for (cap, n_min, c) in [((1, 20), 3, 1), ((1, 2), 5, 1), ((2, 1), 2, 1)] {
            let cap = Rho::from_ratio(cap.0, cap.1).unwrap();
            let p = plan_query(&cap, &q, n_min, c).unwrap();
            let rho = query_rho(&q, &p).unwrap();
            assert!(
                rho <= cap && rho.to_f64() > 0.9 * cap.to_f64(),
                "{rho} vs {cap}"
            );
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let q = query(three_parts(), Segmenter::All);
        let cap = Rho::from_ratio(1, 2).unwrap();
        let good = plan_query(&cap, &q, 3, 1).unwrap();
        let mut p = good.clone();
        p.node_variance.push(Fraction { numer: 9, denom: 1 });
        assert!(matches!(
            query_rho(&q, &p),
            Err(QueryReleaseError::Params(_))
        ));
        let mut p = good.clone();
        p.colluders = 0;
        assert!(matches!(
            query_rho(&q, &p),
            Err(QueryReleaseError::Release(ReleaseError::NoColluderAssumed))
        ));
        let mut p = good.clone();
        p.colluders = 3;
        assert!(matches!(
            query_rho(&q, &p),
            Err(QueryReleaseError::Release(_))
        ));
        let mut bad = q.clone();
        bad.scale = 0;
        assert!(matches!(
            query_rho(&bad, &good),
            Err(QueryReleaseError::Query(_))
        ));
        let mut bad = q.clone();
        bad.parts.push(QueryPart::Cost);
        assert!(matches!(
            query_rho(&bad, &good),
            Err(QueryReleaseError::Query(_))
        ));
        assert!(plan_query(&Rho::zero(), &q, 3, 1).is_err());
    }
}
