//! What a release is and which noise protected it, recorded exactly enough that an auditor can
//! recompute its privacy loss.

use std::fmt;

use fedprof_privacy::Rho;
use fedprof_protocol::{JobId, RoundId};
use num_bigint::BigUint;
use num_rational::Ratio;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::encoding::Digest;

/// One release: a round of a job, plus a nonce the coordinator draws for it, so that two
/// coordinators (or a restarted one reusing job numbers) never name two releases alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseId {
    /// The job.
    pub job: JobId,
    /// The round within the job.
    pub round: RoundId,
    /// 32 random bytes chosen by the coordinator when it announces the round.
    pub nonce: Digest,
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonce = self.nonce.to_string();
        write!(
            f,
            "{} round {} (nonce {})",
            self.job,
            self.round.0,
            &nonce[..12]
        )
    }
}

/// Why recorded mechanism parameters describe no valid mechanism.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MechanismError {
    /// The L2 sensitivity is zero: nothing would be protected by the noise, which points at a bug.
    #[error("the L2 sensitivity must be positive")]
    ZeroSensitivity,
    /// The released vector has no coordinates.
    #[error("the dimension must be at least 1")]
    ZeroDimension,
    /// The per-node noise variance is zero.
    #[error("the per-node noise variance sigma_sq_node must be positive")]
    ZeroVariance,
    /// The release parameters are refused by `fedprof_privacy::release`.
    #[error("release parameters refused: {0}")]
    Release(String),
    /// `colluders >= n_min`: no honest node is guaranteed, so no noise is either.
    #[error("colluders ({colluders}) must be fewer than n_min ({n_min})")]
    NoHonestNode {
        /// The minimum number of contributing nodes.
        n_min: u32,
        /// The number of nodes assumed to collude with the coordinator.
        colluders: u32,
    },
}

/// The mechanism that protected a release, with its exact parameters.
///
/// Serialized with a `kind` tag (`{"kind":"distributed_discrete_gaussian",...}`); new kinds are
/// added as new variants and old ledgers keep verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MechanismRecord {
    /// Every node adds discrete Gaussian noise of variance `sigma_sq_node`; the sum of the
    /// honest nodes' noise protects the release (DESIGN section 2).
    DistributedDiscreteGaussian(DiscreteGaussian),
    /// Legacy, read-only: a release of the retired `TransactionTotals` job kind (three sums:
    /// customers, rows, amount, each clipped per customer and noised with its own per-node
    /// variance). Kept so that ledgers written before 2026-12 still verify; nothing produces
    /// one any more (totals are a feature query now), and its rho is recomputed by
    /// `fedprof_privacy::legacy`.
    TransactionTotals(TotalsRecord),
    /// A feature-query release (a step of a profiling job): one customer changes one block of
    /// `block_parts` parts by at most `scale` each (`fedprof_privacy::query`).
    FeatureQuery(QueryRecord),
}

/// Parameters of [`MechanismRecord::FeatureQuery`]: the canonical query that ran and the
/// release parameters, everything its loss depends on. The auditor recomputes the shape
/// (`fedprof_privacy::query::QueryShape::of`) from the query itself, so a record cannot claim
/// a smaller sensitivity than the query it ran (review finding M5). Private fields: a value
/// always describes a valid release.
///
/// Records written before the query was recorded carry only `block_parts` (legacy, read-only:
/// such a record is still verifiable arithmetic, but its shape is the writer's word).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "QueryFields")]
pub struct QueryRecord {
    label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_parts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<Box<fedprof_protocol::FeatureQuery>>,
    scale: u32,
    dimension: u64,
    sigma_sq_node: Rho,
    n_min: u32,
    colluders: u32,
    /// The profiling job and the analyst the release served (absent in legacy records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<fedprof_protocol::ProfileTag>,
    #[serde(skip)]
    rho: Rho,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryFields {
    label: String,
    #[serde(default)]
    block_parts: Option<u64>,
    #[serde(default)]
    query: Option<Box<fedprof_protocol::FeatureQuery>>,
    scale: u32,
    dimension: u64,
    sigma_sq_node: Rho,
    n_min: u32,
    colluders: u32,
    #[serde(default)]
    profile: Option<fedprof_protocol::ProfileTag>,
}

impl TryFrom<QueryFields> for QueryRecord {
    type Error = MechanismError;
    fn try_from(f: QueryFields) -> Result<Self, MechanismError> {
        let params = fedprof_protocol::ReleaseParams {
            node_variance: vec![wire_fraction(&f.sigma_sq_node)?],
            min_contributors: f.n_min,
            colluders: f.colluders,
        };
        let record = match (f.query, f.block_parts) {
            (Some(query), None) => QueryRecord::new(&query, &params)?,
            (None, Some(parts)) => {
                let shape = fedprof_privacy::query::QueryShape {
                    l2_squared: parts,
                    l1: parts,
                    scale: f.scale,
                    dimension: f.dimension,
                };
                let mut r = QueryRecord::from_shape(f.label.clone(), shape, &params)?;
                r.block_parts = Some(parts);
                r
            }
            _ => {
                return Err(MechanismError::Release(
                    "a feature-query record holds either the query or (legacy) block_parts".into(),
                ));
            }
        };
        let mut record = record;
        record.profile = f.profile;
        // What the record says besides the query must be what the query implies.
        if record.label != f.label || record.scale != f.scale || record.dimension != f.dimension {
            return Err(MechanismError::Release(
                "label, scale or dimension differ from the recorded query".into(),
            ));
        }
        Ok(record)
    }
}

impl QueryRecord {
    /// Records an announced feature query and its release parameters; refuses any the
    /// privacy crate would refuse.
    pub fn new(
        query: &fedprof_protocol::FeatureQuery,
        params: &fedprof_protocol::ReleaseParams,
    ) -> Result<Self, MechanismError> {
        let shape = fedprof_privacy::query::QueryShape::of(query)
            .map_err(|e| MechanismError::Release(e.to_string()))?;
        let mut record = Self::from_shape(query.label.clone(), shape, params)?;
        record.query = Some(Box::new(query.clone()));
        Ok(record)
    }

    fn from_shape(
        label: String,
        shape: fedprof_privacy::query::QueryShape,
        params: &fedprof_protocol::ReleaseParams,
    ) -> Result<Self, MechanismError> {
        let rho = shape
            .rho(params)
            .map_err(|e| MechanismError::Release(e.to_string()))?;
        let variance = fedprof_privacy::query::query_variance(params)
            .map_err(|e| MechanismError::Release(e.to_string()))?;
        Ok(QueryRecord {
            label,
            block_parts: None,
            query: None,
            scale: shape.scale,
            dimension: shape.dimension,
            sigma_sq_node: Rho::from_ratio_exact(variance.as_ratio().clone()),
            n_min: params.min_contributors,
            colluders: params.colluders,
            profile: None,
            rho,
        })
    }

    /// The profiling job and analyst the release served (`None` in legacy records).
    pub fn profile(&self) -> Option<&fedprof_protocol::ProfileTag> {
        self.profile.as_ref()
    }

    /// The query that ran (`None` for a legacy record, which holds only its shape).
    pub fn query(&self) -> Option<&fedprof_protocol::FeatureQuery> {
        self.query.as_deref()
    }

    /// What the release was for (e.g. `bank-profile/kmeans-2`).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// A recorded variance as the wire's 64-bit fraction (a larger one was never announced).
fn wire_fraction(v: &Rho) -> Result<fedprof_protocol::Fraction, MechanismError> {
    let numer = u64::try_from(v.numer()).map_err(|_| MechanismError::ZeroVariance)?;
    let denom = u64::try_from(v.denom()).map_err(|_| MechanismError::ZeroVariance)?;
    Ok(fedprof_protocol::Fraction { numer, denom })
}

/// Parameters of the legacy [`MechanismRecord::TransactionTotals`], exactly as the job
/// announced them. Only ever read from a ledger (and written back unchanged, since entries are
/// re-encoded when their hashes are checked): there is no constructor. Private fields: a value
/// always describes a release `fedprof_privacy::legacy` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TotalsFields")]
pub struct TotalsRecord {
    max_rows_per_customer: u32,
    max_abs_amount_minor: u64,
    node_variance: Vec<Rho>,
    min_contributors: u32,
    colluders: u32,
    /// The job and analyst the release served (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<fedprof_protocol::ProfileTag>,
    #[serde(skip)]
    rho: Rho,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalsFields {
    max_rows_per_customer: u32,
    max_abs_amount_minor: u64,
    node_variance: Vec<Rho>,
    min_contributors: u32,
    colluders: u32,
    #[serde(default)]
    profile: Option<fedprof_protocol::ProfileTag>,
}

impl TryFrom<TotalsFields> for TotalsRecord {
    type Error = MechanismError;
    fn try_from(f: TotalsFields) -> Result<Self, MechanismError> {
        let node_variance = f
            .node_variance
            .iter()
            .map(wire_fraction)
            .collect::<Result<_, MechanismError>>()?;
        let rho =
            fedprof_privacy::legacy::totals_rho(&fedprof_privacy::legacy::LegacyTotalsParams {
                max_rows_per_customer: f.max_rows_per_customer,
                max_abs_amount_minor: f.max_abs_amount_minor,
                node_variance,
                min_contributors: f.min_contributors,
                colluders: f.colluders,
            })
            .map_err(|e| MechanismError::Release(e.to_string()))?;
        Ok(TotalsRecord {
            max_rows_per_customer: f.max_rows_per_customer,
            max_abs_amount_minor: f.max_abs_amount_minor,
            node_variance: f.node_variance,
            min_contributors: f.min_contributors,
            colluders: f.colluders,
            profile: f.profile,
            rho,
        })
    }
}

/// Sensitivity of a release to one customer, exact: squared L2 and L1 norms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensitivity {
    /// `Delta_2^2`.
    pub l2_sq: Rho,
    /// `Delta_1`.
    pub l1: Rho,
}

/// Parameters of [`MechanismRecord::DistributedDiscreteGaussian`]. Private fields: a value of
/// this type always describes a valid mechanism, also when read from a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DiscreteGaussianFields")]
pub struct DiscreteGaussian {
    l2_sensitivity_sq: Rho,
    l1_sensitivity: Rho,
    dimension: u64,
    sigma_sq_node: Rho,
    n_min: u32,
    colluders: u32,
}

/// The unchecked field set, for deserializing only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscreteGaussianFields {
    l2_sensitivity_sq: Rho,
    l1_sensitivity: Rho,
    dimension: u64,
    sigma_sq_node: Rho,
    n_min: u32,
    colluders: u32,
}

impl TryFrom<DiscreteGaussianFields> for DiscreteGaussian {
    type Error = MechanismError;
    fn try_from(f: DiscreteGaussianFields) -> Result<Self, MechanismError> {
        let sensitivity = Sensitivity {
            l2_sq: f.l2_sensitivity_sq,
            l1: f.l1_sensitivity,
        };
        DiscreteGaussian::new(
            sensitivity,
            f.dimension,
            f.sigma_sq_node,
            f.n_min,
            f.colluders,
        )
    }
}

impl DiscreteGaussian {
    /// `sensitivity` of the summed vector (after contribution bounding); `dimension`: its
    /// number of coordinates; `sigma_sq_node`: each node's noise variance per coordinate;
    /// `n_min`: the fewest nodes whose contributions a release may sum; `colluders`: how many
    /// of them may collude with the coordinator (their noise does not count).
    pub fn new(
        sensitivity: Sensitivity,
        dimension: u64,
        sigma_sq_node: Rho,
        n_min: u32,
        colluders: u32,
    ) -> Result<Self, MechanismError> {
        if sensitivity.l2_sq.is_zero() {
            return Err(MechanismError::ZeroSensitivity);
        }
        if dimension == 0 {
            return Err(MechanismError::ZeroDimension);
        }
        if sigma_sq_node.is_zero() {
            return Err(MechanismError::ZeroVariance);
        }
        if colluders >= n_min {
            return Err(MechanismError::NoHonestNode { n_min, colluders });
        }
        // L3: the rho of this kind is the plain Gaussian bound, which holds for one discrete
        // Gaussian but not for a sum of several (Kairouz, Liu, Steinke 2021): only one counted
        // honest share is accepted, and at least one colluder (every node sees the result).
        if n_min - colluders != 1 || colluders == 0 {
            return Err(MechanismError::Release(format!(
                "a distributed_discrete_gaussian record must count exactly one honest share \
                 with at least one colluder (n_min {n_min}, colluders {colluders}); sums of \
                 several shares need the feature_query kind's bound"
            )));
        }
        let Sensitivity {
            l2_sq: l2_sensitivity_sq,
            l1: l1_sensitivity,
        } = sensitivity;
        Ok(DiscreteGaussian {
            l2_sensitivity_sq,
            l1_sensitivity,
            dimension,
            sigma_sq_node,
            n_min,
            colluders,
        })
    }

    /// Squared L2 sensitivity.
    pub fn l2_sensitivity_sq(&self) -> &Rho {
        &self.l2_sensitivity_sq
    }

    /// L1 sensitivity (recorded for the Kairouz-Liu-Steinke bound).
    pub fn l1_sensitivity(&self) -> &Rho {
        &self.l1_sensitivity
    }

    /// Number of coordinates of the released vector.
    pub fn dimension(&self) -> u64 {
        self.dimension
    }

    /// Per-node noise variance.
    pub fn sigma_sq_node(&self) -> &Rho {
        &self.sigma_sq_node
    }

    /// Fewest contributing nodes.
    pub fn n_min(&self) -> u32 {
        self.n_min
    }

    /// Nodes assumed to collude with the coordinator.
    pub fn colluders(&self) -> u32 {
        self.colluders
    }

    /// Variance guaranteed by honest nodes alone: `sigma_sq_node * (n_min - colluders)`.
    pub fn honest_variance(&self) -> Ratio<BigUint> {
        // `colluders < n_min` is an invariant of the type.
        let honest = BigUint::from(self.n_min - self.colluders);
        self.sigma_sq_node.as_ratio() * Ratio::from_integer(honest)
    }
}

impl MechanismRecord {
    /// The record of an announced release of `spec` under `params` for profiling job
    /// `profile`: what a node debits and the coordinator records. Refuses parameters the
    /// privacy crate would refuse.
    pub fn for_release(
        spec: &fedprof_protocol::JobSpec,
        params: &fedprof_protocol::ReleaseParams,
        profile: &fedprof_protocol::ProfileTag,
    ) -> Result<Self, MechanismError> {
        let profile = Some(profile.clone());
        match spec {
            fedprof_protocol::JobSpec::Features(q) => QueryRecord::new(q, params)
                .map(|r| MechanismRecord::FeatureQuery(QueryRecord { profile, ..r })),
        }
    }

    /// The profiling job and analyst the release served (`None`: a legacy record).
    pub fn profile(&self) -> Option<&fedprof_protocol::ProfileTag> {
        match self {
            MechanismRecord::DistributedDiscreteGaussian(_) => None,
            MechanismRecord::TransactionTotals(t) => t.profile.as_ref(),
            MechanismRecord::FeatureQuery(q) => q.profile.as_ref(),
        }
    }

    /// The zCDP loss of one release under this mechanism, exactly.
    ///
    /// The only place the ledger turns parameters into rho: node stores, the coordinator store
    /// and the audit all call it. Today it is the Gaussian bound `rho = Delta_2^2 / (2 sigma^2)`
    /// with `sigma^2` the honest variance, which ignores the small Kairouz-Liu-Steinke term of
    /// sums of discrete Gaussians; at integration this body becomes
    /// `fedprof_privacy::distributed::distributed_rho(sensitivity, dimension, sigma_sq_node,
    /// n_min - colluders)` (hence `l1_sensitivity` and `dimension` in the record), and nothing
    /// else changes.
    pub fn rho(&self) -> Rho {
        match self {
            MechanismRecord::DistributedDiscreteGaussian(g) => {
                let two = Ratio::from_integer(BigUint::from(2u8));
                // Non-zero by construction (sigma_sq_node > 0, n_min > colluders).
                let denom = two * g.honest_variance();
                Rho::from_ratio_exact(g.l2_sensitivity_sq.as_ratio() / denom)
            }
            // Recomputed by `fedprof_privacy::legacy::totals_rho` when the record was read:
            // the function nodes debited with when it was written.
            MechanismRecord::TransactionTotals(t) => t.rho.clone(),
            // Computed by `fedprof_privacy::query::QueryShape::rho`, likewise.
            MechanismRecord::FeatureQuery(q) => q.rho.clone(),
        }
    }

    /// The fewest nodes a release under this mechanism must sum for `rho` to hold.
    pub fn n_min(&self) -> u32 {
        match self {
            MechanismRecord::DistributedDiscreteGaussian(g) => g.n_min,
            MechanismRecord::TransactionTotals(t) => t.min_contributors,
            MechanismRecord::FeatureQuery(q) => q.n_min,
        }
    }
}

/// The commitment a debit records to the noisy vector a node sends: SHA-256 over the label
/// `fedprof/ledger/v2/salted-noisy-vector\n`, the 32-byte `salt`, the length as u64
/// little-endian, then every element as u64 little-endian.
///
/// The salt is drawn at random by the node and kept only in its vector cache (never in the
/// ledger or on the wire). Without it the digest of a low-entropy vector (a count, a few
/// coordinates) would identify the vector by brute force, and the coordinator and the
/// auditor, who both see the receipt, would learn one node's noisy aggregate (review finding
/// H1). With it, the digest binds the node to the vector (a retry must resend the same one)
/// and reveals nothing about it.
pub fn vector_digest(salt: &Digest, vector: &[u64]) -> Digest {
    let mut h = Sha256::new();
    h.update(b"fedprof/ledger/v2/salted-noisy-vector\n");
    h.update(salt.as_bytes());
    h.update((vector.len() as u64).to_le_bytes());
    for x in vector {
        h.update(x.to_le_bytes());
    }
    Digest::from_bytes(h.finalize().into())
}

/// The unsalted digest of ledgers written before [`vector_digest`] took a salt: only to check
/// cached vectors of such releases (a retry of an old release); never written any more.
pub fn legacy_vector_digest(vector: &[u64]) -> Digest {
    let mut h = Sha256::new();
    h.update(b"fedprof/ledger/v1/noisy-vector\n");
    h.update((vector.len() as u64).to_le_bytes());
    for x in vector {
        h.update(x.to_le_bytes());
    }
    Digest::from_bytes(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rho {
        s.parse().unwrap()
    }

    fn gaussian(l2: &str, sigma: &str, n_min: u32, c: u32) -> MechanismRecord {
        let s = Sensitivity {
            l2_sq: r(l2),
            l1: r(l2),
        };
        MechanismRecord::DistributedDiscreteGaussian(
            DiscreteGaussian::new(s, 3, r(sigma), n_min, c).unwrap(),
        )
    }

    #[test]
    fn rho_is_exact_and_counts_one_honest_share() {
        // Delta^2 = 1, sigma_node^2 = 8, 2 nodes of which 1 colludes: rho = 1/16.
        assert_eq!(gaussian("1", "8", 2, 1).rho(), r("1/16"));
        assert_eq!(gaussian("3", "3", 2, 1).rho(), r("1/2"));
    }

    /// L3: the plain Gaussian bound of this legacy kind is refused where it does not hold (a
    /// sum of several honest shares) and without a colluder.
    #[test]
    fn l3_the_legacy_kind_only_holds_one_honest_share() {
        let s = || Sensitivity {
            l2_sq: r("1"),
            l1: r("1"),
        };
        for (n_min, c) in [(5, 1), (3, 1), (2, 0), (1, 0)] {
            assert!(
                DiscreteGaussian::new(s(), 3, r("2"), n_min, c).is_err(),
                "({n_min}, {c})"
            );
        }
        assert!(DiscreteGaussian::new(s(), 3, r("2"), 3, 2).is_ok());
    }

    #[test]
    fn invalid_parameters_cannot_be_read() {
        let ok = r#"{"kind":"distributed_discrete_gaussian","l2_sensitivity_sq":"1/1","l1_sensitivity":"1/1","dimension":3,"sigma_sq_node":"2/1","n_min":2,"colluders":1}"#;
        let m: MechanismRecord = serde_json::from_str(ok).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), ok);
        for bad in [
            ok.replace("\"n_min\":2", "\"n_min\":1"),
            ok.replace("\"n_min\":2", "\"n_min\":3"),
            ok.replace("\"2/1\"", "\"0/1\""),
            ok.replace("\"dimension\":3", "\"dimension\":0"),
            ok.replace("\"1/1\"", "\"0/1\""),
            ok.replace("\"colluders\":1", "\"colluders\":1,\"extra\":0"),
            ok.replace("distributed_discrete_gaussian", "laplace"),
            ok.replace("\"2/1\"", "2.0"),
        ] {
            assert!(
                serde_json::from_str::<MechanismRecord>(&bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn feature_query_records_recompute_their_rho_and_refuse_tampering() {
        use fedprof_protocol::query::{FeatureQuery, QueryPart, Segmenter};
        use fedprof_protocol::{Fraction, JobSpec};
        let query = FeatureQuery {
            label: "p/lifecycle".into(),
            as_of: "2026-06-30".into(),
            scale: 1000,
            segmenter: Segmenter::Lifecycle,
            parts: vec![QueryPart::Count, QueryPart::Count],
            budget: Fraction {
                numer: 1,
                denom: 10,
            },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        };
        let params = fedprof_privacy::query::plan_query(&r("1/10"), &query, 3, 1).unwrap();
        let spec = JobSpec::Features(Box::new(query.clone()));
        let tag = fedprof_protocol::ProfileTag {
            id: fedprof_protocol::ProfileId([7; 16]),
            analyst: fedprof_protocol::PartyName::new("risk-team").unwrap(),
            cap: Fraction { numer: 1, denom: 2 },
        };
        let m = MechanismRecord::for_release(&spec, &params, &tag).unwrap();
        assert_eq!(m.profile(), Some(&tag));
        let expected = fedprof_privacy::query::query_rho(&query, &params).unwrap();
        assert_eq!(m.rho(), expected);
        assert!(m.rho() <= r("1/10"));
        assert_eq!(m.n_min(), 3);
        let line = serde_json::to_string(&m).unwrap();
        assert!(
            line.starts_with(
                r#"{"kind":"feature_query","label":"p/lifecycle","query":{"label":"p/lifecycle","#
            ),
            "{line}"
        );
        let MechanismRecord::FeatureQuery(record) = &m else {
            panic!("not a feature query")
        };
        assert_eq!(record.query(), Some(&query));
        // Read back, the rho is recomputed from the recorded query, not trusted.
        let back: MechanismRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, m);
        // M5: a third part in the recorded query is charged; a record cannot keep the query
        // and claim another shape.
        let wider: MechanismRecord = serde_json::from_str(
            &line
                .replace(
                    r#""parts":["Count","Count"]"#,
                    r#""parts":["Count","Count","Count"]"#,
                )
                .replace("\"dimension\":8", "\"dimension\":12"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(wider.rho() > m.rho());
        // A legacy record (shape only) still reads and recomputes from its shape.
        let legacy = r#"{"kind":"feature_query","label":"p/lifecycle","block_parts":2,"scale":1000,"dimension":8,"sigma_sq_node":"5078125/1","n_min":3,"colluders":1}"#;
        let old: MechanismRecord = serde_json::from_str(legacy).unwrap();
        assert_eq!(old.rho(), m.rho());
        for bad in [
            line.replace("\"n_min\":3", "\"n_min\":1"),
            line.replace(
                "\"scale\":1000,\"dimension\"",
                "\"scale\":999,\"dimension\"",
            ),
            line.replace("\"dimension\":8", "\"dimension\":1"),
            line.replace(
                "\"label\":\"p/lifecycle\",\"query\"",
                "\"label\":\"x\",\"query\"",
            ),
            line.replace("\"query\"", "\"block_parts\":1,\"query\""),
            line.replace(r#","segmenter":"Lifecycle""#, r#","segmenter":"All""#),
            line.replace(r#""parts":["Count","Count"]"#, r#""parts":[]"#),
            line.replace("\"label\"", "\"extra\":1,\"label\""),
            legacy.replace("\"block_parts\":2", "\"block_parts\":0"),
        ] {
            assert!(
                serde_json::from_str::<MechanismRecord>(&bad).is_err(),
                "{bad}"
            );
        }
    }

    /// A record written by the retired `TransactionTotals` kind (cap 1/2, R 10, A 1000,
    /// n_min 3, c 1), byte for byte as the old code wrote it.
    const LEGACY_TOTALS: &str = r#"{"kind":"transaction_totals","max_rows_per_customer":10,"max_abs_amount_minor":1000,"node_variance":["4/1","150/1","1500000/1"],"min_contributors":3,"colluders":1,"profile":{"id":"07070707070707070707070707070707","analyst":"risk-team","cap":{"numer":1,"denom":2}}}"#;

    #[test]
    fn legacy_totals_records_still_read_and_recompute_their_rho() {
        let m: MechanismRecord = serde_json::from_str(LEGACY_TOTALS).unwrap();
        assert_eq!(m.rho(), r("197916666667/500000000000"));
        assert_eq!(m.n_min(), 3);
        assert_eq!(m.profile().map(|t| t.analyst.as_str()), Some("risk-team"));
        // Written back unchanged (entry hashes are checked over the re-encoded line).
        assert_eq!(serde_json::to_string(&m).unwrap(), LEGACY_TOTALS);
        // Without a profile (the oldest records), and the plain-Gaussian case: 3 x 1/8.
        let old = r#"{"kind":"transaction_totals","max_rows_per_customer":10,"max_abs_amount_minor":100,"node_variance":["4/1","400/1","40000/1"],"min_contributors":2,"colluders":1}"#;
        let m: MechanismRecord = serde_json::from_str(old).unwrap();
        assert_eq!(m.rho(), r("3/8"));
        assert_eq!(m.profile(), None);
        for bad in [
            LEGACY_TOTALS.replace("\"colluders\":1", "\"colluders\":3"),
            LEGACY_TOTALS.replace("\"colluders\":1", "\"colluders\":0"),
            LEGACY_TOTALS.replace("\"4/1\",", ""),
            LEGACY_TOTALS.replace("\"4/1\"", "\"3/1\""),
            LEGACY_TOTALS.replace("\"colluders\":1", "\"colluders\":1,\"extra\":0"),
        ] {
            assert!(
                serde_json::from_str::<MechanismRecord>(&bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn vector_digest_covers_salt_length_and_order() {
        let (a, b) = (Digest::from_bytes([1; 32]), Digest::from_bytes([2; 32]));
        assert_ne!(vector_digest(&a, &[1, 2]), vector_digest(&a, &[2, 1]));
        assert_ne!(vector_digest(&a, &[]), vector_digest(&a, &[0]));
        assert_eq!(
            vector_digest(&a, &[7, u64::MAX]),
            vector_digest(&a, &[7, u64::MAX])
        );
        // H1: the same vector under another salt gives an unrelated digest, and none equals
        // the unsalted digest an attacker could enumerate.
        assert_ne!(vector_digest(&a, &[7]), vector_digest(&b, &[7]));
        assert_ne!(vector_digest(&a, &[7]), legacy_vector_digest(&[7]));
    }
}
