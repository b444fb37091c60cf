//! The profiling job spec (TOML; annotated sample in `docs/job.sample.toml`) and the policy it is
//! checked against before any node computes.
//!
//! Bounds and levels are public parameters of the job, never read from the data: a numeric
//! feature is clamped to its bounds and categorical levels are listed, so that nothing about the
//! data leaks through the shape of a release. Money bounds are in major currency units,
//! utilization in `0..=1`; they are converted to the wire's integer units here.

use std::collections::BTreeMap;

use fedprof_privacy::Rho;
use fedprof_protocol::query::{
    CategoricalFeature, MixFeature, NumericFeature, QueryError, check_levels,
};
use serde::Deserialize;

/// `job.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// The job's name (models and reports carry it; re-runs share it).
    pub name: String,
    /// The features' date, `YYYY-MM-DD`.
    pub as_of: String,
    /// Total zCDP loss per node for the whole job, exact (e.g. `"1/2"`).
    pub rho: Rho,
    /// Extra rho per node the job may spend re-running a release that was interrupted after
    /// the nodes paid for it (a node or the coordinator lost in the masked-input or unmask
    /// phase; docs/OPERATE.md). Declared with `rho` at the first release (every node checks it
    /// can pay both); never debited unless a release is re-run. Default 0: such a release then
    /// ends the job. `rho + retry_reserve` is at most the coordinator's per-job cap.
    #[serde(default = "Rho::zero")]
    pub retry_reserve: Rho,
    /// Delta for displaying the equivalent (epsilon, delta) guarantee (default 1e-6).
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Smallest noisy count a report shows (default 20); smaller cells are suppressed.
    #[serde(default = "default_min_cell")]
    pub min_cell_size: u64,
    /// Decimal places of the nodes' currency (default 2).
    #[serde(default = "default_decimals")]
    pub amount_decimals: u8,
    /// Numeric features to describe and profile (default: all but `customer_since_days`).
    #[serde(default = "default_features")]
    pub features: Vec<Feature>,
    /// Categorical features to describe and cross-tabulate (default: lifecycle stage).
    #[serde(default = "default_categorical")]
    pub categorical: Vec<Categorical>,
    /// Channel levels for mixes and lifts (empty: no channel mix).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Category levels for mixes and lifts (empty: no category mix).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Bounds per numeric feature, `[lo, hi]` in display units (defaults in docs/PROFILES.md).
    #[serde(default)]
    pub bounds: BTreeMap<Feature, [f64; 2]>,
    /// Levels of categorical features that have no fixed set (region, gender, income band).
    #[serde(default)]
    pub levels: BTreeMap<Categorical, Vec<String>>,
    /// Which segmentations to run.
    #[serde(default)]
    pub segmentations: Segmentations,
    /// Relative weights of the job's budget (default 2 / 2 / 1 / 5).
    #[serde(default)]
    pub budget: BudgetWeights,
}

/// `[segmentations]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segmentations {
    /// RFM segments with cut-offs at the released quintiles (default true).
    #[serde(default = "yes")]
    pub rfm: bool,
    /// Lifecycle segments (default true).
    #[serde(default = "yes")]
    pub lifecycle: bool,
    /// Federated DP k-means (default on, k = 5).
    #[serde(default = "default_kmeans")]
    pub kmeans: Option<KMeansSpec>,
}

impl Default for Segmentations {
    fn default() -> Self {
        Segmentations {
            rfm: true,
            lifecycle: true,
            kmeans: default_kmeans(),
        }
    }
}

/// `[segmentations.kmeans]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KMeansSpec {
    /// Clusters.
    pub k: u32,
    /// Lloyd iterations (default 5), each one release.
    #[serde(default = "default_iterations")]
    pub iterations: u32,
    /// The space (default days_since_last, frequency, monetary_total).
    #[serde(default = "default_kmeans_features")]
    pub features: Vec<Feature>,
}

/// `[budget]`: relative weights; a skipped segmentation's weight is dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetWeights {
    /// Distributions (histograms and quantiles).
    #[serde(default = "two")]
    pub distributions: u32,
    /// RFM segment profiles.
    #[serde(default = "two")]
    pub rfm: u32,
    /// Lifecycle segment profiles.
    #[serde(default = "one")]
    pub lifecycle: u32,
    /// k-means: 60% to the iterations (equal shares), 40% to the final profile.
    #[serde(default = "five")]
    pub kmeans: u32,
}

impl Default for BudgetWeights {
    fn default() -> Self {
        BudgetWeights {
            distributions: 2,
            rfm: 2,
            lifecycle: 1,
            kmeans: 5,
        }
    }
}

/// A numeric feature by its name in job specs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[expect(missing_docs, reason = "the names are the features of docs/DATA.md")]
pub enum Feature {
    Frequency,
    RecencyDays,
    TenureDays,
    DaysSinceLast,
    TxnCount,
    MonetaryTotal,
    MonetaryMeanRepeat,
    AvgTicket,
    Utilization,
    CustomerSinceDays,
}

/// A categorical feature by its name in job specs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[expect(missing_docs, reason = "the names are the features of docs/DATA.md")]
pub enum Categorical {
    LifecycleStage,
    Region,
    Gender,
    AgeBand,
    IncomeBand,
    DelinquencyBucket,
    DefaultFlag,
}

impl Feature {
    /// The wire feature.
    pub fn wire(self) -> NumericFeature {
        match self {
            Feature::Frequency => NumericFeature::Frequency,
            Feature::RecencyDays => NumericFeature::RecencyDays,
            Feature::TenureDays => NumericFeature::TenureDays,
            Feature::DaysSinceLast => NumericFeature::DaysSinceLast,
            Feature::TxnCount => NumericFeature::TxnCount,
            Feature::MonetaryTotal => NumericFeature::MonetaryTotal,
            Feature::MonetaryMeanRepeat => NumericFeature::MonetaryMeanRepeat,
            Feature::AvgTicket => NumericFeature::AvgTicket,
            Feature::Utilization => NumericFeature::UtilizationBp,
            Feature::CustomerSinceDays => NumericFeature::CustomerSinceDays,
        }
    }

    /// Name in specs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Frequency => "frequency",
            Feature::RecencyDays => "recency_days",
            Feature::TenureDays => "tenure_days",
            Feature::DaysSinceLast => "days_since_last",
            Feature::TxnCount => "txn_count",
            Feature::MonetaryTotal => "monetary_total",
            Feature::MonetaryMeanRepeat => "monetary_mean_repeat",
            Feature::AvgTicket => "avg_ticket",
            Feature::Utilization => "utilization",
            Feature::CustomerSinceDays => "customer_since_days",
        }
    }

    /// Display unit.
    pub fn unit(self) -> &'static str {
        match self {
            Feature::Frequency => "repeat days",
            Feature::TxnCount => "transactions",
            Feature::MonetaryTotal | Feature::MonetaryMeanRepeat | Feature::AvgTicket => "currency",
            Feature::Utilization => "share",
            _ => "days",
        }
    }

    /// Wire units per display unit.
    pub fn factor(self, decimals: u8) -> f64 {
        match self {
            Feature::MonetaryTotal | Feature::MonetaryMeanRepeat | Feature::AvgTicket => {
                10f64.powi(i32::from(decimals))
            }
            Feature::Utilization => 10_000.0,
            _ => 1.0,
        }
    }

    /// Whether a customer may have no value (no credit or customers table).
    pub fn optional(self) -> bool {
        matches!(self, Feature::Utilization | Feature::CustomerSinceDays)
    }

    /// Default bounds in display units.
    pub fn default_bounds(self) -> [f64; 2] {
        match self {
            Feature::Frequency => [0.0, 60.0],
            Feature::RecencyDays | Feature::TenureDays | Feature::DaysSinceLast => [0.0, 730.0],
            Feature::TxnCount => [0.0, 150.0],
            Feature::MonetaryTotal => [0.0, 20_000.0],
            Feature::MonetaryMeanRepeat => [0.0, 1_000.0],
            Feature::AvgTicket => [0.0, 500.0],
            Feature::Utilization => [0.0, 1.0],
            Feature::CustomerSinceDays => [0.0, 3_650.0],
        }
    }
}

impl Categorical {
    /// The wire feature.
    pub fn wire(self) -> CategoricalFeature {
        match self {
            Categorical::LifecycleStage => CategoricalFeature::LifecycleStage,
            Categorical::Region => CategoricalFeature::Region,
            Categorical::Gender => CategoricalFeature::Gender,
            Categorical::AgeBand => CategoricalFeature::AgeBand,
            Categorical::IncomeBand => CategoricalFeature::IncomeBand,
            Categorical::DelinquencyBucket => CategoricalFeature::DelinquencyBucket,
            Categorical::DefaultFlag => CategoricalFeature::DefaultFlag,
        }
    }

    /// Name in specs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Categorical::LifecycleStage => "lifecycle_stage",
            Categorical::Region => "region",
            Categorical::Gender => "gender",
            Categorical::AgeBand => "age_band",
            Categorical::IncomeBand => "income_band",
            Categorical::DelinquencyBucket => "delinquency_bucket",
            Categorical::DefaultFlag => "default_flag",
        }
    }

    /// The fixed levels of features that have them.
    pub fn fixed_levels(self) -> Option<Vec<String>> {
        let v: &[&str] = match self {
            Categorical::LifecycleStage => &fedprof_protocol::query::LIFECYCLE_SEGMENTS,
            Categorical::AgeBand => &["<25", "25-34", "35-44", "45-54", "55-64", "65+"],
            Categorical::DelinquencyBucket => &["current", "1-29", "30-59", "60-89", "90+"],
            Categorical::DefaultFlag => &["yes", "no"],
            Categorical::Region | Categorical::Gender | Categorical::IncomeBand => return None,
        };
        Some(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// What the coordinator allows, from its config (`[profiles]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePolicy {
    /// Most zCDP loss one job may cost each node.
    pub rho_per_job: Rho,
    /// Most clusters.
    pub max_k: u32,
    /// Most Lloyd iterations.
    pub max_iterations: u32,
    /// Smallest minimum cell size a job may ask for.
    pub min_cell_size_floor: u64,
    /// The federation's declared maximum number of nodes holding one person's records, for
    /// the report's person figures; `None`: the number of nodes that contributed (the most
    /// contributors of any release of the job).
    pub max_holders_per_person: Option<u32>,
}

impl ProfilePolicy {
    /// Defaults: k at most 12, 20 iterations, cells of at least 10.
    pub fn new(rho_per_job: Rho) -> Self {
        ProfilePolicy {
            rho_per_job,
            max_k: 12,
            max_iterations: 20,
            min_cell_size_floor: 10,
            max_holders_per_person: None,
        }
    }
}

/// A spec refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// The dotted field, e.g. `segmentations.kmeans.k`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// Longest job name, in bytes: every release's label is `name/step` (the longest step,
/// `kmeans-profile`, is 14 bytes), and a label is at most
/// [`fedprof_protocol::query::MAX_LABEL_BYTES`].
pub const MAX_NAME_BYTES: usize = 64;

const _: () = assert!(MAX_NAME_BYTES + 1 + 14 <= fedprof_protocol::query::MAX_LABEL_BYTES);

fn refuse(field: impl Into<String>, problem: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        problem: problem.into(),
    }
}

impl ProfileSpec {
    /// Parses `text` (a job file); errors name the line, column and field.
    pub fn from_toml(text: &str) -> Result<ProfileSpec, SpecError> {
        let de = toml::Deserializer::parse(text).map_err(|e| refuse("(file)", e.to_string()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            refuse(field, e.into_inner().message().to_owned())
        })
    }

    /// Bounds of `f` in wire units.
    pub fn wire_bounds(&self, f: Feature) -> (i64, i64) {
        let [lo, hi] = self.bounds.get(&f).copied().unwrap_or(f.default_bounds());
        let k = f.factor(self.amount_decimals);
        ((lo * k).round() as i64, (hi * k).round() as i64)
    }

    /// Levels of `c` (fixed, or from `[levels]`).
    pub fn levels_of(&self, c: Categorical) -> Vec<String> {
        c.fixed_levels()
            .or_else(|| self.levels.get(&c).cloned())
            .unwrap_or_default()
    }

    /// The mixes to compute: channel and category, when levels are listed.
    pub fn mixes(&self) -> Vec<(MixFeature, Vec<String>)> {
        let mut m = Vec::new();
        if !self.channels.is_empty() {
            m.push((MixFeature::Channel, self.channels.clone()));
        }
        if !self.categories.is_empty() {
            m.push((MixFeature::Category, self.categories.clone()));
        }
        m
    }

    /// Checks the spec against `policy`; every refusal names its field.
    pub fn validate(&self, policy: &ProfilePolicy) -> Result<(), SpecError> {
        if self.name.len() > MAX_NAME_BYTES {
            return Err(refuse(
                "name",
                format!("{} bytes; at most {MAX_NAME_BYTES}", self.name.len()),
            ));
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(refuse("name", "use letters, digits, '-' and '_'"));
        }
        let date_ok = self.as_of.len() == 10
            && self.as_of.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !date_ok {
            return Err(refuse("as_of", "expected a date YYYY-MM-DD"));
        }
        if self.rho.is_zero() {
            return Err(refuse("rho", "must be positive"));
        }
        if self.rho > policy.rho_per_job {
            return Err(refuse(
                "rho",
                format!(
                    "{} exceeds the coordinator's per-job cap {}",
                    self.rho, policy.rho_per_job
                ),
            ));
        }
        if &self.rho + &self.retry_reserve > policy.rho_per_job {
            return Err(refuse(
                "retry_reserve",
                format!(
                    "rho {} plus retry_reserve {} exceeds the coordinator's per-job cap {}",
                    self.rho, self.retry_reserve, policy.rho_per_job
                ),
            ));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(refuse("delta", "must be in (0, 1)"));
        }
        if self.min_cell_size == 0 {
            return Err(refuse("min_cell_size", "must be at least 1"));
        }
        if self.min_cell_size < policy.min_cell_size_floor {
            return Err(refuse(
                "min_cell_size",
                format!(
                    "{} is below the coordinator's floor {}",
                    self.min_cell_size, policy.min_cell_size_floor
                ),
            ));
        }
        if self.amount_decimals > 6 {
            return Err(refuse("amount_decimals", "at most 6"));
        }
        for (f, b) in &self.bounds {
            if !(b[0].is_finite() && b[1].is_finite() && b[0] < b[1]) {
                return Err(refuse(format!("bounds.{}", f.name()), "need lo < hi"));
            }
            let (lo, hi) = self.wire_bounds(*f);
            if lo >= hi {
                return Err(refuse(format!("bounds.{}", f.name()), "too narrow"));
            }
        }
        // C1: a level listed twice (or two spellings of one level) would add one customer's
        // share twice while the accounting charges the part once; refused naming the field.
        for (field, levels) in [
            ("channels", &self.channels),
            ("categories", &self.categories),
        ] {
            if !levels.is_empty() {
                check_levels(field, levels).map_err(query_refusal)?;
            }
        }
        for (c, levels) in &self.levels {
            check_levels(&format!("levels.{}", c.name()), levels).map_err(query_refusal)?;
        }
        no_repeats("features", &self.features, |f| f.name())?;
        no_repeats("categorical", &self.categorical, |c| c.name())?;
        if let Some(k) = &self.segmentations.kmeans {
            no_repeats("segmentations.kmeans.features", &k.features, |f| f.name())?;
        }
        for c in &self.categorical {
            if self.levels_of(*c).is_empty() {
                return Err(refuse(
                    format!("levels.{}", c.name()),
                    "list the levels of this feature (they are public job parameters)",
                ));
            }
        }
        if let Some(k) = &self.segmentations.kmeans {
            if k.k < 2 || k.k > policy.max_k {
                return Err(refuse(
                    "segmentations.kmeans.k",
                    format!("{} is outside 2..={}", k.k, policy.max_k),
                ));
            }
            if k.iterations == 0 || k.iterations > policy.max_iterations {
                return Err(refuse(
                    "segmentations.kmeans.iterations",
                    format!("{} is outside 1..={}", k.iterations, policy.max_iterations),
                ));
            }
            if k.features.is_empty() {
                return Err(refuse("segmentations.kmeans.features", "needs a feature"));
            }
        }
        if self.features.is_empty() {
            return Err(refuse("features", "needs at least one numeric feature"));
        }
        Ok(())
    }
}

fn query_refusal(e: QueryError) -> SpecError {
    match e {
        QueryError::Invalid { field, problem } => refuse(field, problem),
    }
}

/// Refuses a list naming one item twice, naming the field and both positions.
fn no_repeats<T: PartialEq>(
    field: &str,
    items: &[T],
    name: impl Fn(&T) -> &'static str,
) -> Result<(), SpecError> {
    for (i, x) in items.iter().enumerate() {
        if let Some(j) = items[..i].iter().position(|y| y == x) {
            return Err(refuse(
                format!("{field}[{i}]"),
                format!("{} repeats {field}[{j}]", name(x)),
            ));
        }
    }
    Ok(())
}

fn default_delta() -> f64 {
    1e-6
}
fn default_min_cell() -> u64 {
    20
}
fn default_decimals() -> u8 {
    2
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn five() -> u32 {
    5
}
fn default_iterations() -> u32 {
    5
}
fn default_kmeans() -> Option<KMeansSpec> {
    Some(KMeansSpec {
        k: 5,
        iterations: default_iterations(),
        features: default_kmeans_features(),
    })
}
fn default_kmeans_features() -> Vec<Feature> {
    vec![
        Feature::DaysSinceLast,
        Feature::Frequency,
        Feature::MonetaryTotal,
    ]
}
fn default_features() -> Vec<Feature> {
    vec![
        Feature::Frequency,
        Feature::RecencyDays,
        Feature::TenureDays,
        Feature::DaysSinceLast,
        Feature::TxnCount,
        Feature::MonetaryTotal,
        Feature::AvgTicket,
        Feature::Utilization,
    ]
}
fn default_categorical() -> Vec<Categorical> {
    vec![Categorical::LifecycleStage]
}
