//! Feature queries: the one kind of release every profiling statistic is made of.
//!
//! A [`FeatureQuery`] asks each node for a sum over its customers. The node computes its
//! customers' features as of [`FeatureQuery::as_of`], puts each customer in exactly one segment
//! ([`Segmenter`]), and turns the customer into a block of integers ([`QueryPart`]s, every
//! coordinate in `[0, scale]`) at that segment's offset in the vector; all other segments' blocks
//! are zero. The vector is `segments x block` long. Summed over customers and nodes (with noise
//! and masks), it yields per-segment counts, clipped sums, histograms and mixes.
//!
//! Everything the sensitivity depends on is in the query itself: one customer changes one block,
//! and each part states how much one customer can move it ([`QueryPart::bound`], summed by
//! [`FeatureQuery::block_bound`]).
//! Bounds of numeric features (`lo`, `hi`) only decide how a value is mapped into `[0, scale]`,
//! never how much it can move the sum. Integers only: feature units are days, counts, minor
//! currency units and basis points, so nodes on different platforms compute the same vector.

use serde::{Deserialize, Serialize};

/// Largest fixed-point scale a query may use (keeps sums of millions of customers far from
/// the ring's wrap-around).
pub const MAX_SCALE: u32 = 1 << 20;

/// Most bytes a query may take written out (JSON, as every node's debit receipt and the
/// ledgers carry it): long edge and level lists and centroids are what grow it. A receipt is
/// at most 64 KiB, so a larger query would be paid for and then refused; it is refused before
/// any node computes instead.
pub const MAX_QUERY_RECORD_BYTES: usize = 48 * 1024;

/// Most segments one query may address.
pub const MAX_SEGMENTS: usize = 64;

/// Most coordinates of one query's vector (2^17: a histogram of 100,000 bins fits; a
/// masked input is then about 1.3 MB on the wire, far below the frame limit).
pub const MAX_QUERY_LEN: usize = 1 << 17;

/// Longest release label, in bytes. The label is copied into every node's debit, the
/// coordinator's release record and the logs of every party, so an analyst must not be able
/// to make it large (security review H5: a megabyte label filled nodes' disks).
pub const MAX_LABEL_BYTES: usize = 96;

/// Most dimensions of a centroid segmenter: each customer costs `centroids x dimensions`
/// operations on every node, so the analyst's query must not choose that freely (security
/// review M6). fedprof's own k-means uses one dimension per numeric feature.
pub const MAX_DIMENSIONS: usize = 64;

/// Most levels of one `Levels` or `Mix` part (a category list, say).
pub const MAX_LEVELS: usize = 4096;

/// Checks a release label: 1 to [`MAX_LABEL_BYTES`] bytes of ASCII letters, digits and
/// `. _ / -` (what `job-name/step` labels use), so it is short and safe to write into a
/// ledger line or a log line as it is.
pub fn check_label(label: &str) -> Result<(), QueryError> {
    if label.is_empty() || label.len() > MAX_LABEL_BYTES {
        return Err(invalid(
            "label",
            format!("{} bytes; must be 1..={MAX_LABEL_BYTES}", label.len()),
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
    {
        return Err(invalid(
            "label",
            format!("{c:?} is not allowed; use ASCII letters, digits and . _ / -"),
        ));
    }
    Ok(())
}

/// A numeric per-customer feature, in integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NumericFeature {
    /// Repeat purchase days (BTYD `frequency`).
    Frequency,
    /// Last minus first purchase day.
    RecencyDays,
    /// `as_of` minus first purchase day (BTYD `T`).
    TenureDays,
    /// `as_of` minus last purchase day.
    DaysSinceLast,
    /// Transactions used.
    TxnCount,
    /// Sum of amounts, minor units.
    MonetaryTotal,
    /// Mean per-day total over repeat days, minor units.
    MonetaryMeanRepeat,
    /// Mean amount per transaction, minor units.
    AvgTicket,
    /// Credit utilization, basis points (balance / limit x 10,000).
    UtilizationBp,
    /// Days since signup.
    CustomerSinceDays,
}

/// A categorical per-customer feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CategoricalFeature {
    /// `new`, `active`, `at_risk`, `churned`.
    LifecycleStage,
    /// Region from the customers table.
    Region,
    /// Gender from the customers table.
    Gender,
    /// Age band from the customers table.
    AgeBand,
    /// Income band from the customers table.
    IncomeBand,
    /// Delinquency bucket from the credit table.
    DelinquencyBucket,
    /// `yes` / `no` from the credit table.
    DefaultFlag,
}

/// A share vector per customer (shares of the customer's transactions, summing to 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MixFeature {
    /// Channel shares.
    Channel,
    /// Category shares.
    Category,
}

/// One part of a customer's block. Every coordinate is an integer in `[0, scale]`, and the
/// part as a whole has L2 and L1 norm at most `scale`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryPart {
    /// One coordinate: `scale` for every customer.
    Count,
    /// One coordinate: `round(scale * (clamp(x, lo, hi) - lo) / (hi - lo))`; a customer
    /// without a value contributes 0 (pair it with [`QueryPart::Present`] for the mean).
    Numeric {
        /// The feature.
        feature: NumericFeature,
        /// Lower bound (feature units).
        lo: i64,
        /// Upper bound (feature units), `> lo`.
        hi: i64,
    },
    /// One coordinate: `scale` when the customer has a value for the feature.
    Present {
        /// The feature.
        feature: NumericFeature,
    },
    /// `edges.len() + 1` coordinates, one-hot (`scale` in one bin): bin 0 is `x < edges[0]`,
    /// bin `i` is `edges[i-1] <= x < edges[i]`, the last bin `x >= edges.last()`. A customer
    /// without a value contributes nothing.
    Histogram {
        /// The feature.
        feature: NumericFeature,
        /// Strictly increasing bin edges.
        edges: Vec<i64>,
    },
    /// `levels.len() + 1` coordinates, one-hot: the customer's level, or the last coordinate
    /// for a level not listed or no value.
    Levels {
        /// The feature.
        feature: CategoricalFeature,
        /// Levels, as the node normalizes them (trimmed, lower case).
        levels: Vec<String>,
    },
    /// `levels.len()` coordinates: `floor(scale * share)` of each listed level (sums to at
    /// most `scale`).
    Mix {
        /// The feature.
        feature: MixFeature,
        /// Levels, as the node normalizes them.
        levels: Vec<String>,
    },
    /// One coordinate: the squared distance from the customer to its segment's centroid, in
    /// the [`Segmenter::Centroids`] space, divided by the number of dimensions (so in
    /// `[0, scale]`). Only valid with a centroid segmenter: it measures clustering cost.
    Cost,
    /// A joint histogram: the product of `edges[d].len() + 1` bins over the features, one-hot
    /// (`scale` in the customer's cell; row-major, the first feature slowest). Bins per
    /// feature as in [`QueryPart::Histogram`]; a customer without a value is in bin 0.
    Grid {
        /// The features.
        features: Vec<NumericFeature>,
        /// Strictly increasing edges, one list per feature.
        edges: Vec<Vec<i64>>,
    },
}

impl QueryPart {
    /// Coordinates this part adds to a block.
    pub fn width(&self) -> usize {
        match self {
            QueryPart::Count | QueryPart::Numeric { .. } | QueryPart::Present { .. } => 1,
            QueryPart::Cost => 1,
            QueryPart::Histogram { edges, .. } => edges.len() + 1,
            QueryPart::Levels { levels, .. } => levels.len() + 1,
            QueryPart::Mix { levels, .. } => levels.len(),
            QueryPart::Grid { edges, .. } => edges
                .iter()
                .try_fold(1usize, |acc, e| acc.checked_mul(e.len().checked_add(1)?))
                .unwrap_or(usize::MAX),
        }
    }
}

/// One coordinate of the centroid space: a numeric feature mapped to `[0, 1]` by its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimension {
    /// The feature.
    pub feature: NumericFeature,
    /// Lower bound (feature units); values below count as `lo`.
    pub lo: i64,
    /// Upper bound (feature units), `> lo`; values above count as `hi`.
    pub hi: i64,
}

/// How customers are split into segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Segmenter {
    /// One segment: everyone.
    All,
    /// Four segments, by lifecycle stage: new, active, at risk, churned.
    Lifecycle,
    /// The eleven RFM segments (see `docs/PROFILES.md`) from scores 1-5: recency scores by
    /// `days_since_last` (fewer days score higher), frequency by `frequency`, monetary by
    /// `monetary_total`. Each list holds the four cut-offs between scores 1|2, 2|3, 3|4, 4|5;
    /// a value at or above cut-off `i` scores above it.
    Rfm {
        /// Cut-offs of `days_since_last` (a value below cut-off `i` gets the higher score).
        recency: [i64; 4],
        /// Cut-offs of `frequency`.
        frequency: [i64; 4],
        /// Cut-offs of `monetary_total`, minor units.
        monetary: [i64; 4],
    },
    /// Nearest centroid (squared Euclidean distance in the normalized space; ties go to the
    /// lower index). Centroid coordinates are fixed-point in `[0, scale]`.
    Centroids {
        /// The space.
        dimensions: Vec<Dimension>,
        /// One row per segment, `dimensions.len()` coordinates each.
        centroids: Vec<Vec<u32>>,
    },
}

impl Segmenter {
    /// Checks the rules every user of a segmenter relies on (a query, a segment model):
    /// 1 to [`MAX_SEGMENTS`] segments, non-decreasing RFM cut-offs, centroid spaces with
    /// bounds `lo < hi` and coordinates in `[0, scale]`.
    pub fn validate(&self, scale: u32) -> Result<(), QueryError> {
        let segments = self.segments();
        if segments == 0 || segments > MAX_SEGMENTS {
            return Err(invalid(
                "segmenter",
                format!("{segments} segments; must be 1..={MAX_SEGMENTS}"),
            ));
        }
        match self {
            Segmenter::Rfm {
                recency,
                frequency,
                monetary,
            } => {
                for (name, cuts) in [
                    ("recency", recency),
                    ("frequency", frequency),
                    ("monetary", monetary),
                ] {
                    if cuts.windows(2).any(|w| w[0] > w[1]) {
                        return Err(invalid(
                            format!("segmenter.rfm.{name}"),
                            "cut-offs must not decrease",
                        ));
                    }
                }
            }
            Segmenter::Centroids {
                dimensions,
                centroids,
            } => {
                if dimensions.is_empty() || dimensions.len() > MAX_DIMENSIONS {
                    return Err(invalid(
                        "segmenter.dimensions",
                        format!(
                            "{} dimensions; must be 1..={MAX_DIMENSIONS}",
                            dimensions.len()
                        ),
                    ));
                }
                if let Some(d) = dimensions.iter().position(|d| d.lo >= d.hi) {
                    return Err(invalid(
                        format!("segmenter.dimensions[{d}]"),
                        "lo must be below hi",
                    ));
                }
                for (j, c) in centroids.iter().enumerate() {
                    if c.len() != dimensions.len() || c.iter().any(|x| *x > scale) {
                        return Err(invalid(
                            format!("segmenter.centroids[{j}]"),
                            format!("needs {} coordinates in [0, scale]", dimensions.len()),
                        ));
                    }
                }
            }
            Segmenter::All | Segmenter::Lifecycle => {}
        }
        Ok(())
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        match self {
            Segmenter::All => 1,
            Segmenter::Lifecycle => 4,
            Segmenter::Rfm { .. } => RFM_SEGMENTS.len(),
            Segmenter::Centroids { centroids, .. } => centroids.len(),
        }
    }
}

/// Names of the RFM segments, in vector order.
pub const RFM_SEGMENTS: [&str; 11] = [
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cannot_lose",
    "hibernating",
    "lost",
];

/// Names of the lifecycle segments, in vector order.
pub const LIFECYCLE_SEGMENTS: [&str; 4] = ["new", "active", "at_risk", "churned"];

/// A linear release over the nodes' customer features (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureQuery {
    /// What this release is for, in logs and ledgers (e.g. `bank-profile/kmeans-3`).
    pub label: String,
    /// The features' date, `YYYY-MM-DD` (inclusive).
    pub as_of: String,
    /// Fixed-point scale: every coordinate is in `[0, scale]`.
    pub scale: u32,
    /// How customers are split.
    pub segmenter: Segmenter,
    /// What each customer contributes to its segment's block.
    pub parts: Vec<QueryPart>,
    /// The zCDP loss (rho) the requester asks this release to cost each node; the coordinator
    /// sizes the noise for it and refuses more than its per-job cap. Nodes check the loss of
    /// the announced noise, not this field.
    pub budget: crate::message::Fraction,
    /// Most zCDP loss the rest of the job this release belongs to will cost each node after
    /// it (0 for a last or lone release). A node refuses the release unless its remaining
    /// budget covers the release plus this reserve, so a job that would run a node out of
    /// budget is refused at its start, not half-way.
    pub reserve: crate::message::Fraction,
    /// The profiling job this release belongs to: `None` opens a new job (the coordinator
    /// draws its id, fixes its participants by its own policy and takes `budget + reserve` as
    /// the job's total); later releases name the id the first one's result carried. The
    /// analyst never chooses who takes part.
    pub job: Option<crate::profile::ProfileId>,
}

/// Why a query is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Out-of-range or inconsistent field, named.
    #[error("{field}: {problem}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Checks a level list: non-empty, every level in the node's normal form (trimmed, lower case,
/// not empty) and listed once. A level listed twice would take the customer's share (or
/// one-hot) twice, and two spellings of one level ("Web", "web") would match the same rows:
/// either multiplies what one customer adds beyond the part's bound.
pub fn check_levels(field: &str, levels: &[String]) -> Result<(), QueryError> {
    if levels.is_empty() || levels.len() > MAX_LEVELS {
        return Err(invalid(
            field,
            format!("{} levels; must be 1..={MAX_LEVELS}", levels.len()),
        ));
    }
    // First position of every level: linear in the list.
    let mut seen: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(levels.len());
    for (i, l) in levels.iter().enumerate() {
        if l.is_empty() || l.trim() != l || l.chars().any(char::is_uppercase) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{l:?} is not a normalized level (trimmed, lower case, not empty)"),
            ));
        }
        if let Some(j) = seen.insert(l.as_str(), i) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("level {l:?} repeats {field}[{j}]"),
            ));
        }
    }
    Ok(())
}

/// What one customer can add to one part of its block, in units of the query's scale:
/// `l2_squared` in `scale^2`, `l1` in `scale`. The sensitivity of a query is the sum over its
/// parts (a customer touches one block), so every part states its own bound here and a new
/// kind of part cannot be added without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartBound {
    /// Squared L2 norm of the part's coordinates, at most `l2_squared x scale^2`.
    pub l2_squared: u64,
    /// L1 norm, at most `l1 x scale`.
    pub l1: u64,
}

impl QueryPart {
    /// The most one customer adds to this part (see [`PartBound`]), as the node computes it
    /// (`fedprof_node::query::evaluate`):
    /// - `Count`, `Numeric`, `Present`, `Cost`: one coordinate in `[0, scale]`;
    /// - `Histogram`, `Levels`, `Grid`: one-hot (one coordinate at `scale`), levels distinct;
    /// - `Mix`: `floor(scale x share)` per distinct listed level, shares of one customer's
    ///   transactions summing to at most 1, so L1 <= scale and L2^2 <= L1^2 <= scale^2.
    pub fn bound(&self) -> PartBound {
        match self {
            QueryPart::Count
            | QueryPart::Numeric { .. }
            | QueryPart::Present { .. }
            | QueryPart::Cost
            | QueryPart::Histogram { .. }
            | QueryPart::Levels { .. }
            | QueryPart::Grid { .. }
            | QueryPart::Mix { .. } => PartBound {
                l2_squared: 1,
                l1: 1,
            },
        }
    }
}

impl FeatureQuery {
    /// Coordinates per segment.
    pub fn block_len(&self) -> usize {
        self.parts
            .iter()
            .map(QueryPart::width)
            .fold(0usize, usize::saturating_add)
    }

    /// Coordinates of the whole vector.
    pub fn vector_len(&self) -> usize {
        self.segmenter.segments().saturating_mul(self.block_len())
    }

    /// The most one customer adds to the vector: the sum of its parts' [`PartBound`]s (a
    /// customer touches one block). Sensitivity `scale x sqrt(l2_squared)` in L2 and
    /// `scale x l1` in L1.
    pub fn block_bound(&self) -> PartBound {
        self.parts.iter().map(QueryPart::bound).fold(
            PartBound {
                l2_squared: 0,
                l1: 0,
            },
            |a, b| PartBound {
                l2_squared: a.l2_squared.saturating_add(b.l2_squared),
                l1: a.l1.saturating_add(b.l1),
            },
        )
    }

    /// An upper bound on the query's JSON size: 1 KiB for its fixed fields, then 21 bytes per
    /// edge or centroid coordinate and each level's escaped length plus 3.
    pub fn record_bytes_bound(&self) -> usize {
        fn text(s: &str) -> usize {
            s.chars()
                .map(|c| match c {
                    '"' | '\\' => 2,
                    c if c.is_control() => 6,
                    c => c.len_utf8(),
                })
                .sum::<usize>()
                + 3
        }
        let numbers = |n: usize| n.saturating_mul(21);
        let mut total = 1024 + text(&self.label) + text(&self.as_of);
        for part in &self.parts {
            total = total.saturating_add(match part {
                QueryPart::Histogram { edges, .. } => numbers(edges.len()),
                QueryPart::Grid { edges, .. } => edges.iter().map(|e| numbers(e.len() + 1)).sum(),
                QueryPart::Levels { levels, .. } | QueryPart::Mix { levels, .. } => {
                    levels.iter().map(|l| text(l)).sum()
                }
                _ => 64,
            });
        }
        if let Segmenter::Centroids { centroids, .. } = &self.segmenter {
            total = total.saturating_add(centroids.iter().map(|c| numbers(c.len() + 1)).sum());
        }
        total
    }

    /// Checks the structural rules a node and the coordinator both rely on.
    pub fn validate(&self) -> Result<(), QueryError> {
        check_label(&self.label)?;
        if self.scale == 0 || self.scale > MAX_SCALE {
            return Err(invalid("scale", format!("must be in 1..={MAX_SCALE}")));
        }
        if self.budget.numer == 0 || self.budget.denom == 0 {
            return Err(invalid("budget", "must be a positive fraction"));
        }
        if self.reserve.denom == 0 {
            return Err(invalid("reserve", "the denominator must not be 0"));
        }
        if self.parts.is_empty() {
            return Err(invalid("parts", "a query needs at least one part"));
        }
        self.segmenter.validate(self.scale)?;
        if self.vector_len() > MAX_QUERY_LEN {
            return Err(invalid(
                "parts",
                format!("{} coordinates; at most {MAX_QUERY_LEN}", self.vector_len()),
            ));
        }
        let written = self.record_bytes_bound();
        if written > MAX_QUERY_RECORD_BYTES {
            return Err(invalid(
                "parts",
                format!(
                    "the query takes up to {written} bytes written out (edge and level lists, \
                     centroids); at most {MAX_QUERY_RECORD_BYTES}, as every receipt carries it \
                     (a joint grid reaches many coordinates with short edge lists)"
                ),
            ));
        }
        for (i, part) in self.parts.iter().enumerate() {
            let field = format!("parts[{i}]");
            match part {
                QueryPart::Numeric { lo, hi, .. } if lo >= hi => {
                    return Err(invalid(field, format!("lo {lo} must be below hi {hi}")));
                }
                QueryPart::Histogram { edges, .. }
                    if edges.is_empty() || edges.windows(2).any(|w| w[0] >= w[1]) =>
                {
                    return Err(invalid(field, "edges must be non-empty and increasing"));
                }
                QueryPart::Levels { levels, .. } | QueryPart::Mix { levels, .. } => {
                    check_levels(&format!("{field}.levels"), levels)?;
                }
                QueryPart::Grid { features, edges }
                    if features.is_empty()
                        || features.len() != edges.len()
                        || edges
                            .iter()
                            .any(|e| e.is_empty() || e.windows(2).any(|w| w[0] >= w[1])) =>
                {
                    return Err(invalid(
                        field,
                        "a grid needs one non-empty increasing edge list per feature",
                    ));
                }
                QueryPart::Cost if !matches!(self.segmenter, Segmenter::Centroids { .. }) => {
                    return Err(invalid(field, "cost needs a centroid segmenter"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fraction;

    fn query(parts: Vec<QueryPart>) -> FeatureQuery {
        FeatureQuery {
            label: "t".into(),
            as_of: "2026-06-30".into(),
            scale: 1,
            segmenter: Segmenter::All,
            parts,
            budget: Fraction {
                numer: 1,
                denom: 10,
            },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        }
    }

    /// A query whose written form would not fit a node's debit receipt is refused before any
    /// node computes (found by the load bench: a 100,000-bin histogram made every node pay
    /// and then be dropped for an oversized receipt); a joint grid of as many coordinates,
    /// with short edge lists, fits.
    #[test]
    fn queries_too_long_to_record_are_refused_and_wide_grids_fit() {
        let edges = |n: i64| (1..=n).map(|i| i * 10).collect::<Vec<_>>();
        let wide = query(vec![QueryPart::Histogram {
            feature: NumericFeature::MonetaryTotal,
            edges: edges(99_999),
        }]);
        assert_eq!(wide.vector_len(), 100_000);
        let e = wide.validate().unwrap_err().to_string();
        assert!(e.contains("written out"), "{e}");
        let grid = query(vec![QueryPart::Grid {
            features: vec![
                NumericFeature::MonetaryTotal,
                NumericFeature::TxnCount,
                NumericFeature::DaysSinceLast,
            ],
            edges: vec![edges(46), edges(46), edges(46)],
        }]);
        assert_eq!(grid.vector_len(), 47 * 47 * 47);
        assert!(grid.validate().is_ok(), "{:?}", grid.validate());
        assert!(grid.record_bytes_bound() < 8 * 1024);
        // The bound is an upper bound on the real JSON, escapes and extreme numbers included.
        let levels: Vec<String> = (0..500).map(|i| format!("l\u{1}\"{i}é")).collect();
        let extreme = vec![i64::MIN + 1, -1, i64::MAX];
        let mut centroids = query(vec![QueryPart::Count]);
        centroids.segmenter = Segmenter::Centroids {
            dimensions: vec![],
            centroids: vec![vec![u32::MAX; 8]; 64],
        };
        for q in [
            query(vec![QueryPart::Levels {
                feature: CategoricalFeature::Region,
                levels,
            }]),
            query(vec![QueryPart::Histogram {
                feature: NumericFeature::MonetaryTotal,
                edges: extreme.clone(),
            }]),
            query(vec![QueryPart::Grid {
                features: vec![NumericFeature::TxnCount; 2],
                edges: vec![extreme.clone(), extreme],
            }]),
            centroids,
        ] {
            let json = serde_json::to_string(&q).unwrap().len();
            assert!(
                q.record_bytes_bound() >= json,
                "{} < {json}",
                q.record_bytes_bound()
            );
        }
    }

    /// Security review H5 and M6: what an analyst controls is bounded before any node computes
    /// or pays: the label (copied into every ledger and log), centroid dimensions (CPU per
    /// customer) and levels per part.
    #[test]
    fn labels_dimensions_and_levels_are_bounded() {
        let mut q = query(vec![QueryPart::Count]);
        for ok in [
            "t",
            "bank-profile/kmeans-3",
            "a.b_c",
            &"x".repeat(MAX_LABEL_BYTES),
        ] {
            q.label = ok.into();
            assert!(q.validate().is_ok(), "{ok}: {:?}", q.validate());
        }
        for bad in [
            String::new(),
            "x".repeat(MAX_LABEL_BYTES + 1),
            "x".repeat(1 << 20),
            "two words".into(),
            "line\nbreak".into(),
            "ansi\u{1b}[31m".into(),
            "naïve".into(),
            "quote\"".into(),
        ] {
            q.label = bad.clone();
            let e = q.validate().unwrap_err();
            assert!(e.to_string().starts_with("label: "), "{bad:?}: {e}");
        }
        let mut q = query(vec![QueryPart::Count]);
        let dims = |n: usize| {
            vec![
                Dimension {
                    feature: NumericFeature::MonetaryTotal,
                    lo: 0,
                    hi: 10,
                };
                n
            ]
        };
        q.segmenter = Segmenter::Centroids {
            dimensions: dims(MAX_DIMENSIONS),
            centroids: vec![vec![0; MAX_DIMENSIONS]; 2],
        };
        assert!(q.validate().is_ok(), "{:?}", q.validate());
        q.segmenter = Segmenter::Centroids {
            dimensions: dims(MAX_DIMENSIONS + 1),
            centroids: vec![vec![0; MAX_DIMENSIONS + 1]; 2],
        };
        let e = q.validate().unwrap_err().to_string();
        assert!(e.starts_with("segmenter.dimensions: 65 dimensions"), "{e}");
        let levels = |n: usize| (0..n).map(|i| format!("l{i}")).collect::<Vec<_>>();
        let part = |n| QueryPart::Levels {
            feature: CategoricalFeature::Region,
            levels: levels(n),
        };
        assert!(query(vec![part(MAX_LEVELS)]).validate().is_ok());
        let e = query(vec![part(MAX_LEVELS + 1)])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("4097 levels"), "{e}");
    }
}
