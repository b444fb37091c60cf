//! The report of a profiling job as data: what `report.json` holds (schema
//! `fedprof-profile-report/1`, documented in `docs/PROFILES.md`), what `report.html` and the CSV
//! tables are rendered from.
//!
//! Every released figure is a [`Cell`]: a value with the standard deviation of the noise that
//! was actually added to it, or `Suppressed` when the (noisy) count behind it is under the
//! job's minimum cell size. A suppressed cell never carries a number.

use serde::{Deserialize, Serialize};

/// The schema name and version written into every report.
pub const SCHEMA: &str = "fedprof-profile-report/1";

/// One released figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Cell {
    /// A noisy estimate.
    Value {
        /// The estimate (post-processed: e.g. counts are not negative).
        value: f64,
        /// Standard deviation of the noise in it (from the noise actually added).
        sd: f64,
    },
    /// Under the minimum cell size: not shown.
    Suppressed,
}

impl Cell {
    /// The value, unless suppressed.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Value { value, .. } => Some(*value),
            Cell::Suppressed => None,
        }
    }

    /// The 95% interval `value +- 1.96 sd`, unless suppressed.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        match self {
            Cell::Value { value, sd } => Some((value - 1.96 * sd, value + 1.96 * sd)),
            Cell::Suppressed => None,
        }
    }
}

/// A profiling job's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// The job's name.
    pub name: String,
    /// The features' date.
    pub as_of: String,
    /// The model version this run produced (1 for the first run of a job name).
    pub model_version: u32,
    /// Nodes whose data is in every release of the job.
    pub nodes: Vec<String>,
    /// Smallest count shown.
    pub min_cell_size: u64,
    /// What the job cost and how the budget was split.
    pub privacy: PrivacySummary,
    /// Customers in the population (noisy).
    pub population: Cell,
    /// Distributions of numeric features.
    pub distributions: Vec<Distribution>,
    /// Distributions of categorical features (and channel/category mix over everyone).
    pub categories: Vec<CategoryDistribution>,
    /// Segmentations (RFM, lifecycle, k-means).
    pub segmentations: Vec<Segmentation>,
    /// Budget spent per node against its cap (filled from the node ledgers when available).
    pub budgets: Vec<NodeBudget>,
    /// Drift against the previous model version, if there was one.
    pub drift: Option<Drift>,
    /// Plain-language notes on the noise, one per kind of figure.
    pub notes: Vec<String>,
}

/// The privacy cost of the job.
///
/// The privacy unit is a customer at one node: `rho` and `epsilon` are what the job costs such a
/// customer. A person whose records sit at several nodes loses more (zCDP group privacy: at `m`
/// contributing nodes their blocks add, so a release costs them `m^2` times its rho); the
/// `person_*` fields give that loss for the federation's declared maximum `max_holders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacySummary {
    /// Total zCDP loss of the job for one customer at one node (exact fraction as text).
    pub rho: String,
    /// The same as a decimal.
    pub rho_f64: f64,
    /// The delta used to display epsilon.
    pub delta: f64,
    /// The (epsilon, delta)-DP guarantee implied by `rho`, by the tight conversion
    /// (`fedprof_privacy::epsilon_at_delta`).
    pub epsilon: f64,
    /// The most nodes holding one person's records: declared by the federation
    /// (`ProfilePolicy::max_holders_per_person`), or by default the nodes that contributed.
    #[serde(default)]
    pub max_holders: u32,
    /// Whether `max_holders` was declared rather than defaulted.
    #[serde(default)]
    pub max_holders_declared: bool,
    /// Loss of the job for a person at `max_holders` nodes: the sum over releases of
    /// `min(max_holders, contributors)^2` times the release's rho (exact text).
    #[serde(default)]
    pub person_rho: String,
    /// The same as a decimal.
    #[serde(default)]
    pub person_rho_f64: f64,
    /// The (epsilon, delta) guarantee for such a person.
    #[serde(default)]
    pub person_epsilon: f64,
    /// Every release of the job, in order.
    pub releases: Vec<ReleaseSummary>,
}

/// One release of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    /// What it was for (e.g. `kmeans-3`).
    pub label: String,
    /// Its zCDP loss per node, decimal.
    pub rho: f64,
    /// Its epsilon at the job's delta, for one customer at one node.
    #[serde(default)]
    pub epsilon: f64,
    /// Standard deviation of the noise on one count of this release (customers).
    pub count_sd: f64,
    /// Nodes in it.
    pub contributors: usize,
}

/// A numeric feature's histogram and quantiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Feature name (e.g. `monetary_total`).
    pub feature: String,
    /// Unit (e.g. `days`, `currency`, `count`, `%`).
    pub unit: String,
    /// Bins in order; the first is open below, the last open above.
    pub bins: Vec<Bin>,
    /// `(p, value)` for p in 0.1, 0.25, 0.5, 0.75, 0.9 (from the noisy histogram).
    pub quantiles: Vec<(f64, f64)>,
}

/// One histogram bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower edge (`None`: open).
    pub lo: Option<f64>,
    /// Upper edge, exclusive (`None`: open).
    pub hi: Option<f64>,
    /// Customers in the bin.
    pub count: Cell,
}

/// A categorical feature's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryDistribution {
    /// Feature name (e.g. `region`, `channel_mix`).
    pub feature: String,
    /// `(level, customers)`; for a mix, customer-weighted shares summed (customers).
    pub levels: Vec<(String, Cell)>,
}

/// One segmentation and its segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segmentation {
    /// `rfm`, `lifecycle` or `kmeans`.
    pub name: String,
    /// What the segments are, in a sentence.
    pub description: String,
    /// Its segments, in model order.
    pub segments: Vec<Segment>,
    /// For k-means: what the budget bought.
    pub quality: Option<ClusterQuality>,
}

/// A segment's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Name (e.g. `champions`, `cluster-2`).
    pub name: String,
    /// Customers.
    pub size: Cell,
    /// Share of the population (0-1).
    pub share: Cell,
    /// Mean of each numeric feature, in the feature's unit.
    pub means: Vec<FeatureMean>,
    /// Mix of each categorical feature within the segment (shares 0-1).
    pub levels: Vec<LevelMix>,
    /// Channel mix with lift against the population.
    pub channels: Vec<Lift>,
    /// Category mix with lift against the population.
    pub categories: Vec<Lift>,
    /// Credit risk, when the nodes have credit data.
    pub risk: Option<Risk>,
    /// For k-means: the centroid in feature units, in the model's dimension order.
    pub centroid: Option<Vec<f64>>,
}

/// A mean feature value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMean {
    /// Feature name.
    pub feature: String,
    /// Unit.
    pub unit: String,
    /// The mean.
    pub mean: Cell,
}

/// Shares of a categorical feature's levels within a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelMix {
    /// Feature name.
    pub feature: String,
    /// `(level, share 0-1)`; the last level `other` collects unlisted and missing values.
    pub shares: Vec<(String, Cell)>,
}

/// A level's share in a segment and its lift against the whole population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lift {
    /// Level (channel or category).
    pub level: String,
    /// Share within the segment (0-1).
    pub share: Cell,
    /// `segment share / population share`, or `None` when suppressed.
    pub lift: Option<f64>,
    /// Whether the lift differs from 1 by more than twice its noise standard deviation
    /// (only these are shown as over- or under-indexing).
    pub significant: bool,
}

/// A segment's credit-risk profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Share of customers with credit data in default (0-1).
    pub default_rate: Cell,
    /// Mean utilization (0-1) over customers with credit data.
    pub utilization: Cell,
    /// `(bucket, share 0-1)` of delinquency buckets.
    pub delinquency: Vec<(String, Cell)>,
}

/// Clustering quality of a k-means segmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterQuality {
    /// Lloyd iterations run.
    pub iterations: u32,
    /// Mean over customers of the squared Euclidean distance to the assigned centroid in the
    /// normalized space (each dimension scaled to 0-1 by the job's bounds), divided by the
    /// number of dimensions; from the final release.
    pub mean_cost: Cell,
    /// zCDP loss spent on the clustering (initialization, iterations and final profile).
    pub rho: f64,
}

/// A node's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeBudget {
    /// The node.
    pub node: String,
    /// zCDP spent in the current period.
    pub spent: f64,
    /// The period's cap.
    pub cap: f64,
    /// The period.
    pub period: String,
    /// zCDP spent over all the node's periods (the exact sum of its ledger's debits, as a
    /// decimal), when the ledgers were audited. A period cap is a rate limit: this, not
    /// `spent`, is what a customer at this node has lost over the ledger's life.
    #[serde(default)]
    pub cumulative: Option<f64>,
    /// Epsilon of `cumulative` at the job's delta.
    #[serde(default)]
    pub cumulative_epsilon: Option<f64>,
    /// The node's lifetime cap, if its ledger records one.
    #[serde(default)]
    pub lifetime_cap: Option<f64>,
}

/// Changes against the previous model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The previous version.
    pub previous_version: u32,
    /// Its as-of date.
    pub previous_as_of: String,
    /// Per segmentation and segment: size before and now.
    pub sizes: Vec<SizeChange>,
    /// For k-means: how far each centroid moved (normalized space, Euclidean).
    pub centroid_moves: Vec<(String, f64)>,
}

/// A segment's size in two versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeChange {
    /// Segmentation name.
    pub segmentation: String,
    /// Segment name.
    pub segment: String,
    /// Previous size (noisy).
    pub before: Cell,
    /// Current size (noisy).
    pub now: Cell,
}
