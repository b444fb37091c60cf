//! A node's answer to a feature query ([`fedprof_protocol::query`]): each customer's segment and
//! integer block, summed over the node's customers, then this node's share of the noise.
//!
//! Integer arithmetic throughout (bounds, normalization, centroid distances), so every node and
//! `fedprof label` put a customer in the same segment; the only floats are the pipeline's
//! per-customer means, rounded here once into integer units. Mix parts use the exact level
//! counts: `floor(scale * count / txn_count)` in integers.

use fedprof_privacy::DiscreteGaussian;
use fedprof_privacy::encoding::to_ring;
use fedprof_privacy::query::{QueryReleaseError, query_variance};
use fedprof_protocol::ReleaseParams;
use fedprof_protocol::query::{
    CategoricalFeature, Dimension, FeatureQuery, MixFeature, NumericFeature, QueryPart, Segmenter,
};
use rand_core::CryptoRng;

use crate::pipeline::features::Stage;
use crate::pipeline::{FeatureTable, MixColumn};

/// A numeric feature of customer `row`, in the query's integer units (`None`: no value, e.g.
/// no credit rows for this customer).
pub fn numeric(t: &FeatureTable, f: NumericFeature, row: usize) -> Option<i64> {
    let minor = |major: f64| {
        let m = major * 10f64.powi(i32::from(t.decimals));
        m.is_finite().then(|| m.round() as i64)
    };
    match f {
        NumericFeature::Frequency => t.frequency.get(row).map(|v| i64::from(*v)),
        NumericFeature::RecencyDays => t.recency_days.get(row).map(|v| i64::from(*v)),
        NumericFeature::TenureDays => t.tenure_days.get(row).map(|v| i64::from(*v)),
        NumericFeature::DaysSinceLast => t.days_since_last.get(row).map(|v| i64::from(*v)),
        NumericFeature::TxnCount => t
            .txn_count
            .get(row)
            .map(|v| i64::try_from(*v).unwrap_or(i64::MAX)),
        NumericFeature::MonetaryTotal => t
            .monetary_total
            .get(row)
            .map(|v| i64::try_from(*v).unwrap_or(if *v < 0 { i64::MIN } else { i64::MAX })),
        NumericFeature::MonetaryMeanRepeat => {
            t.monetary_mean_repeat.get(row).and_then(|v| minor(*v))
        }
        NumericFeature::AvgTicket => t.avg_ticket.get(row).and_then(|v| minor(*v)),
        NumericFeature::UtilizationBp => t
            .credit
            .as_ref()
            .and_then(|c| c.utilization.get(row).copied().flatten())
            .and_then(|u| {
                let bp = u * 10_000.0;
                bp.is_finite().then(|| bp.round() as i64)
            }),
        NumericFeature::CustomerSinceDays => t
            .demographics
            .as_ref()
            .and_then(|d| d.customer_since_days.get(row).copied().flatten())
            .map(i64::from),
    }
}

/// A categorical feature of customer `row`, normalized as the pipeline normalizes it.
pub fn categorical(t: &FeatureTable, f: CategoricalFeature, row: usize) -> Option<&str> {
    let demo =
        |pick: fn(&crate::pipeline::features::DemographicColumns) -> &Vec<Option<String>>| {
            t.demographics
                .as_ref()
                .and_then(|d| pick(d).get(row))
                .and_then(|v| v.as_deref())
        };
    match f {
        CategoricalFeature::LifecycleStage => t.lifecycle_stage.get(row).map(|s| s.as_str()),
        CategoricalFeature::Region => demo(|d| &d.region),
        CategoricalFeature::Gender => demo(|d| &d.gender),
        CategoricalFeature::AgeBand => demo(|d| &d.age_band),
        CategoricalFeature::IncomeBand => demo(|d| &d.income_band),
        CategoricalFeature::DelinquencyBucket => t
            .credit
            .as_ref()
            .and_then(|c| c.delinquency_bucket.get(row).copied().flatten()),
        CategoricalFeature::DefaultFlag => t
            .credit
            .as_ref()
            .and_then(|c| c.default_flag.get(row).copied().flatten())
            .map(|d| if d { "yes" } else { "no" }),
    }
}

/// The level counts of a mix feature (empty without the column).
fn mix(t: &FeatureTable, f: MixFeature) -> &MixColumn {
    match f {
        MixFeature::Channel => &t.channel_mix,
        MixFeature::Category => &t.category_mix,
    }
}

/// `floor(scale * count / txn_count)`, exactly, in `[0, scale]` (0 without transactions).
pub fn mix_share(count: u32, txn_count: u64, scale: u32) -> i64 {
    if txn_count == 0 {
        return 0;
    }
    let count = u128::from(count).min(u128::from(txn_count));
    let v = u128::from(scale) * count / u128::from(txn_count);
    i64::try_from(v).unwrap_or(0).min(i64::from(scale))
}

/// `round(scale * (clamp(x, lo, hi) - lo) / (hi - lo))`, exactly, for `lo < hi`.
pub fn normalize(x: i64, lo: i64, hi: i64, scale: u32) -> u32 {
    let (x, lo, hi) = (i128::from(x.clamp(lo, hi)), i128::from(lo), i128::from(hi));
    let width = hi - lo;
    if width <= 0 {
        return 0;
    }
    let v = (2 * i128::from(scale) * (x - lo) + width) / (2 * width);
    u32::try_from(v.clamp(0, i128::from(scale))).unwrap_or(scale)
}

/// The customer's point in a centroid space (a missing value sits at `lo`).
pub fn point(t: &FeatureTable, dims: &[Dimension], row: usize, scale: u32) -> Vec<u32> {
    dims.iter()
        .map(|d| {
            normalize(
                numeric(t, d.feature, row).unwrap_or(d.lo),
                d.lo,
                d.hi,
                scale,
            )
        })
        .collect()
}

fn distance_sq(a: &[u32], b: &[u32]) -> u128 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = i128::from(*x) - i128::from(*y);
            (d * d) as u128
        })
        .sum()
}

/// Score 1-5 of `x` against four non-decreasing cut-offs: 1 + the number of cut-offs `<= x`.
pub fn score(x: i64, cuts: &[i64; 4]) -> u8 {
    1 + cuts.iter().filter(|c| **c <= x).count() as u8
}

/// The RFM segment (index into [`fedprof_protocol::query::RFM_SEGMENTS`]) of recency score
/// `r` and the rounded mean `fm` of the frequency and monetary scores (both 1-5).
pub fn rfm_segment(r: u8, fm: u8) -> usize {
    // Rows r = 5..1, columns fm = 1..5; see docs/PROFILES.md.
    const MAP: [[usize; 5]; 5] = [
        [3, 2, 2, 0, 0],   // r 5: new customers, potential loyalists, champions
        [4, 2, 2, 0, 0],   // r 4: promising, potential loyalists, champions
        [6, 6, 5, 1, 1],   // r 3: about to sleep, need attention, loyal
        [9, 9, 7, 7, 8],   // r 2: hibernating, at risk, cannot lose
        [10, 10, 7, 7, 8], // r 1: lost, at risk, cannot lose
    ];
    let row = usize::from(5 - r.clamp(1, 5));
    let col = usize::from(fm.clamp(1, 5) - 1);
    MAP[row][col]
}

/// The segment of customer `row` (an index below `segmenter.segments()`), and its point when
/// the segmenter is a centroid space.
pub fn segment_of(t: &FeatureTable, segmenter: &Segmenter, scale: u32, row: usize) -> usize {
    match segmenter {
        Segmenter::All => 0,
        Segmenter::Lifecycle => match t.lifecycle_stage.get(row) {
            Some(Stage::New) | None => 0,
            Some(Stage::Active) => 1,
            Some(Stage::AtRisk) => 2,
            Some(Stage::Churned) => 3,
        },
        Segmenter::Rfm {
            recency,
            frequency,
            monetary,
        } => {
            let value = |f| numeric(t, f, row).unwrap_or(0);
            let r = 6 - score(value(NumericFeature::DaysSinceLast), recency);
            let f = score(value(NumericFeature::Frequency), frequency);
            let m = score(value(NumericFeature::MonetaryTotal), monetary);
            rfm_segment(r, (f + m).div_ceil(2))
        }
        Segmenter::Centroids {
            dimensions,
            centroids,
        } => {
            let p = point(t, dimensions, row, scale);
            nearest(&p, centroids).0
        }
    }
}

/// The nearest centroid (ties to the lower index) and the squared distance to it.
pub fn nearest(p: &[u32], centroids: &[Vec<u32>]) -> (usize, u128) {
    centroids
        .iter()
        .enumerate()
        .map(|(j, c)| (j, distance_sq(p, c)))
        .min_by_key(|(j, d)| (*d, *j))
        .unwrap_or((0, 0))
}

/// Why a query cannot be answered from this node's features.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryEvalError {
    /// The query is malformed.
    #[error(transparent)]
    Query(#[from] fedprof_protocol::query::QueryError),
    /// The release parameters are refused.
    #[error(transparent)]
    Release(#[from] QueryReleaseError),
}

/// The exact sum of every customer's block: `segments x block_len` integers.
pub fn evaluate(t: &FeatureTable, q: &FeatureQuery) -> Result<Vec<i64>, QueryEvalError> {
    q.validate()?;
    let block = q.block_len();
    let mut sums = vec![0i64; q.vector_len()];
    let scale = i64::from(q.scale);
    // Each listed level looked up by name once; a level this node never saw is `None` (0), and
    // so is a repeat of a level listed before (a customer's part must sum to at most `scale`,
    // which counting one level twice would break).
    let mix_levels: Vec<Vec<Option<u32>>> = q
        .parts
        .iter()
        .map(|p| match p {
            QueryPart::Mix { feature, levels } => {
                let m = mix(t, *feature);
                let mut seen = std::collections::HashSet::new();
                levels
                    .iter()
                    .map(|l| m.level(l).filter(|id| seen.insert(*id)))
                    .collect()
            }
            _ => Vec::new(),
        })
        .collect();
    // Each `Levels` part's list as a map from level to position, so a row costs one lookup
    // whatever the list's length (security review M6; levels are distinct, checked above).
    let level_index: Vec<std::collections::HashMap<&str, usize>> = q
        .parts
        .iter()
        .map(|p| match p {
            QueryPart::Levels { levels, .. } => levels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i))
                .collect(),
            _ => std::collections::HashMap::new(),
        })
        .collect();
    for row in 0..t.len() {
        let seg = segment_of(t, &q.segmenter, q.scale, row);
        let mut at = seg * block;
        for ((part, levels), index) in q.parts.iter().zip(&mix_levels).zip(&level_index) {
            match part {
                QueryPart::Count => sums[at] += scale,
                QueryPart::Numeric { feature, lo, hi } => {
                    if let Some(x) = numeric(t, *feature, row) {
                        sums[at] += i64::from(normalize(x, *lo, *hi, q.scale));
                    }
                }
                QueryPart::Present { feature } => {
                    if numeric(t, *feature, row).is_some() {
                        sums[at] += scale;
                    }
                }
                QueryPart::Histogram { feature, edges } => {
                    if let Some(x) = numeric(t, *feature, row) {
                        sums[at + edges.partition_point(|e| *e <= x)] += scale;
                    }
                }
                QueryPart::Levels { feature, levels } => {
                    let i = categorical(t, *feature, row)
                        .and_then(|v| index.get(v).copied())
                        .unwrap_or(levels.len());
                    sums[at + i] += scale;
                }
                QueryPart::Mix { feature, .. } => {
                    // The row's own counts over the listed levels only: floor, so the listed
                    // shares sum to at most `scale` (the counts sum to at most txn_count).
                    let m = mix(t, *feature);
                    // The denominator is at least the row's counts over all its levels, so the
                    // bound holds even if a source's counts and txn_count ever disagree (e.g.
                    // a database written between two statements).
                    let n = t.txn_count.get(row).copied().unwrap_or(0).max(m.total(row));
                    for (i, level) in levels.iter().enumerate() {
                        if let Some(l) = level {
                            sums[at + i] += mix_share(m.count(row, *l), n, q.scale);
                        }
                    }
                }
                QueryPart::Grid { features, edges } => {
                    let mut cell = 0usize;
                    for (f, e) in features.iter().zip(edges) {
                        let bin = numeric(t, *f, row).map_or(0, |x| e.partition_point(|b| *b <= x));
                        cell = cell * (e.len() + 1) + bin;
                    }
                    sums[at + cell] += scale;
                }
                QueryPart::Cost => {
                    if let Segmenter::Centroids {
                        dimensions,
                        centroids,
                    } = &q.segmenter
                    {
                        let p = point(t, dimensions, row, q.scale);
                        let d2 = distance_sq(&p, &centroids[seg]);
                        let per = (dimensions.len() as u128) * u128::from(q.scale);
                        sums[at] += i64::try_from(d2 / per).unwrap_or(scale).min(scale);
                    }
                }
            }
            at += part.width();
        }
    }
    Ok(sums)
}

/// This node's vector for a release: the exact sums plus its noise share, in `Z_2^64`.
pub fn noisy<R: CryptoRng + ?Sized>(
    exact: &[i64],
    params: &ReleaseParams,
    rng: &mut R,
) -> Result<Vec<u64>, QueryEvalError> {
    let variance = query_variance(params)?;
    let noise = DiscreteGaussian::new(&variance);
    Ok(exact
        .iter()
        .map(|x| to_ring(*x).wrapping_add(to_ring(noise.sample(rng))))
        .collect())
}

#[cfg(test)]
mod tests;
