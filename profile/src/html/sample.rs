//! A sample report for tests and documentation.

use fedprof_privacy::{Rho, epsilon_at_delta};

use crate::report::{
    Bin, CategoryDistribution, Cell, ClusterQuality, Distribution, Drift, FeatureMean, LevelMix,
    Lift, NodeBudget, PrivacySummary, ProfileReport, ReleaseSummary, Risk, SCHEMA, Segment,
    Segmentation, SizeChange,
};

/// The population of the sample.
const POPULATION: f64 = 48_213.0;
/// Noise sd of one count in the segment releases.
const COUNT_SD: f64 = 2.5;
/// The numeric features of the segment profiles: name, unit, noise sd of a sum.
const FEATURES: [(&str, &str, f64); 4] = [
    ("recency_days", "days", 1_000.0),
    ("frequency", "repeat days", 150.0),
    ("monetary_total", "currency", 50_000.0),
    ("utilization", "share", 2.5),
];
const REGIONS: [&str; 5] = ["north", "south", "east", "west", "other"];
const CHANNELS: [&str; 4] = ["online", "branch", "mobile", "phone"];
const CATEGORIES: [&str; 3] = ["groceries", "travel", "dining"];
const BUCKETS: [&str; 4] = ["current", "1-29", "30-59", "90+"];

/// A released value.
fn v(value: f64, sd: f64) -> Cell {
    Cell::Value { value, sd }
}

/// A share of a segment of `size` customers (`None`: suppressed).
fn share(value: Option<f64>, size: f64) -> Cell {
    value.map_or(Cell::Suppressed, |x| v(x, 4.0 / size))
}

/// Default rate, utilization and the delinquency mix of a segment; `None` is suppressed.
type RiskSpec = (Option<f64>, Option<f64>, [Option<f64>; 4]);

/// One segment of the sample, as plain numbers; `None` is suppressed.
struct SegmentSpec {
    name: &'static str,
    size: Option<f64>,
    means: [Option<f64>; 4],
    regions: [Option<f64>; 5],
    /// `(share, lift, significant)` per channel.
    channels: [(Option<f64>, f64, bool); 4],
    /// `(share, lift, significant)` per category.
    categories: [(Option<f64>, f64, bool); 3],
    risk: Option<RiskSpec>,
    centroid: Option<[f64; 4]>,
}

impl SegmentSpec {
    /// A segment too small to show anything.
    fn suppressed(name: &'static str) -> Self {
        SegmentSpec {
            name,
            size: None,
            means: [None; 4],
            regions: [None; 5],
            channels: [(None, 0.0, false); 4],
            categories: [(None, 0.0, false); 3],
            risk: Some((None, None, [None; 4])),
            centroid: None,
        }
    }

    fn build(self) -> Segment {
        let n = self.size.unwrap_or(1.0);
        let cell = |x: Option<f64>| share(x, n);
        let lift = |(level, (s, lift, significant)): (&str, (Option<f64>, f64, bool))| Lift {
            level: level.to_owned(),
            share: cell(s),
            lift: s.map(|_| lift),
            significant: s.is_some() && significant,
        };
        Segment {
            name: self.name.to_owned(),
            size: self.size.map_or(Cell::Suppressed, |x| v(x, COUNT_SD)),
            share: self.size.map_or(Cell::Suppressed, |x| {
                v(x / POPULATION, COUNT_SD / POPULATION)
            }),
            means: FEATURES
                .iter()
                .zip(self.means)
                .map(|((feature, unit, sum_sd), mean)| FeatureMean {
                    feature: (*feature).to_owned(),
                    unit: (*unit).to_owned(),
                    mean: mean.map_or(Cell::Suppressed, |m| v(m, sum_sd / n + m.abs() * 0.002)),
                })
                .collect(),
            levels: vec![LevelMix {
                feature: "region".to_owned(),
                shares: REGIONS
                    .iter()
                    .zip(self.regions)
                    .map(|(l, s)| ((*l).to_owned(), cell(s)))
                    .collect(),
            }],
            channels: CHANNELS.into_iter().zip(self.channels).map(lift).collect(),
            categories: CATEGORIES
                .into_iter()
                .zip(self.categories)
                .map(lift)
                .collect(),
            risk: self
                .risk
                .map(|(default_rate, utilization, delinquency)| Risk {
                    default_rate: cell(default_rate),
                    utilization: cell(utilization),
                    delinquency: BUCKETS
                        .iter()
                        .zip(delinquency)
                        .map(|(b, s)| ((*b).to_owned(), cell(s)))
                        .collect(),
                }),
            centroid: self.centroid.map(Vec::from),
        }
    }
}

/// A histogram from edges (the first bin open below, the last open above) and counts.
fn distribution(
    feature: &str,
    unit: &str,
    edges: &[f64],
    counts: &[Option<f64>],
    q: [f64; 5],
) -> Distribution {
    let bins = counts
        .iter()
        .enumerate()
        .map(|(i, c)| Bin {
            lo: i.checked_sub(1).and_then(|j| edges.get(j)).copied(),
            hi: edges.get(i).copied(),
            count: c.map_or(Cell::Suppressed, |x| v(x, 2.24)),
        })
        .collect();
    Distribution {
        feature: feature.to_owned(),
        unit: unit.to_owned(),
        bins,
        quantiles: [0.1, 0.25, 0.5, 0.75, 0.9].into_iter().zip(q).collect(),
    }
}

/// A categorical distribution.
fn categorical(feature: &str, levels: &[(&str, Option<f64>)]) -> CategoryDistribution {
    CategoryDistribution {
        feature: feature.to_owned(),
        levels: levels
            .iter()
            .map(|(l, c)| ((*l).to_owned(), c.map_or(Cell::Suppressed, |x| v(x, 2.24))))
            .collect(),
    }
}

/// A decimal of the sample as an exact rho (the sample's rhos are whole hundredths).
fn rho_exact(x: f64) -> Rho {
    let hundredths = (x * 100.0).round() as u64;
    Rho::from_ratio(hundredths, 100).unwrap_or_else(|_| Rho::zero())
}

/// A small report with every section filled, including suppressed cells, for tests and docs.
///
/// Suppressed on purpose: the lifecycle segment `new` (size, share and every figure), the
/// `hibernating` utilization mean, the last `recency_days` bin, the `other` region, some
/// channel and category shares, a delinquency bucket, and one size in the drift table.
pub fn sample_report() -> ProfileReport {
    let rho = 0.5;
    let delta = 1e-6;
    let release = |label: &str, rho: f64| ReleaseSummary {
        label: label.to_owned(),
        rho,
        epsilon: epsilon_at_delta(&rho_exact(rho), delta),
        count_sd: 1.0 / (2.0 * rho).sqrt(),
        contributors: 3,
    };
    let rfm = Segmentation {
        name: "rfm".to_owned(),
        description: "Recency, frequency and monetary value, cut at the released quantiles."
            .to_owned(),
        segments: vec![
            SegmentSpec {
                name: "champions",
                size: Some(6_412.0),
                means: [Some(12.4), Some(18.6), Some(4_820.55), Some(0.31)],
                regions: [Some(0.34), Some(0.29), Some(0.2), Some(0.16), None],
                channels: [
                    (Some(0.52), 1.42, true),
                    (Some(0.12), 0.55, true),
                    (Some(0.3), 1.03, false),
                    (None, 0.0, false),
                ],
                categories: [
                    (Some(0.41), 0.98, false),
                    (Some(0.22), 1.83, true),
                    (Some(0.19), 1.08, false),
                ],
                risk: Some((
                    Some(0.008),
                    Some(0.31),
                    [Some(0.97), Some(0.02), None, None],
                )),
                centroid: None,
            }
            .build(),
            SegmentSpec {
                name: "loyal",
                size: Some(14_980.0),
                means: [Some(38.0), Some(9.2), Some(1_934.1), Some(0.38)],
                regions: [Some(0.31), Some(0.3), Some(0.21), Some(0.17), Some(0.01)],
                channels: [
                    (Some(0.38), 1.04, false),
                    (Some(0.24), 1.1, false),
                    (Some(0.31), 1.06, false),
                    (Some(0.07), 0.9, false),
                ],
                categories: [
                    (Some(0.44), 1.05, false),
                    (Some(0.12), 0.99, false),
                    (Some(0.18), 1.02, false),
                ],
                risk: Some((
                    Some(0.019),
                    Some(0.38),
                    [Some(0.93), Some(0.04), Some(0.02), Some(0.01)],
                )),
                centroid: None,
            }
            .build(),
            SegmentSpec {
                name: "at_risk",
                size: Some(11_305.0),
                means: [Some(141.7), Some(4.1), Some(1_210.8), Some(0.52)],
                regions: [Some(0.3), Some(0.33), Some(0.2), Some(0.16), Some(0.01)],
                channels: [
                    (Some(0.3), 0.82, true),
                    (Some(0.29), 1.32, true),
                    (Some(0.28), 0.96, false),
                    (Some(0.13), 1.4, false),
                ],
                categories: [
                    (Some(0.43), 1.02, false),
                    (Some(0.08), 0.66, true),
                    (Some(0.17), 0.97, false),
                ],
                risk: Some((
                    Some(0.047),
                    Some(0.52),
                    [Some(0.84), Some(0.09), Some(0.04), Some(0.03)],
                )),
                centroid: None,
            }
            .build(),
            SegmentSpec {
                name: "hibernating",
                size: Some(15_516.0),
                means: [Some(286.3), Some(0.8), Some(240.35), None],
                regions: [Some(0.28), Some(0.31), Some(0.22), Some(0.18), Some(0.01)],
                channels: [
                    (Some(0.33), 0.9, false),
                    (Some(0.26), 1.18, false),
                    (Some(0.34), 1.17, false),
                    (Some(0.07), 0.88, false),
                ],
                categories: [
                    (Some(0.46), 1.1, true),
                    (Some(0.09), 0.75, false),
                    (None, 0.0, false),
                ],
                risk: Some((
                    Some(0.061),
                    Some(0.57),
                    [Some(0.8), Some(0.11), Some(0.05), Some(0.04)],
                )),
                centroid: None,
            }
            .build(),
        ],
        quality: None,
    };
    let lifecycle = Segmentation {
        name: "lifecycle".to_owned(),
        description: "Stage by tenure and days since the last purchase.".to_owned(),
        segments: vec![
            SegmentSpec::suppressed("new").build(),
            SegmentSpec {
                name: "active",
                size: Some(21_030.0),
                means: [Some(22.9), Some(12.7), Some(2_911.4), Some(0.34)],
                regions: [Some(0.32), Some(0.3), Some(0.2), Some(0.17), Some(0.01)],
                channels: [
                    (Some(0.44), 1.2, true),
                    (Some(0.18), 0.82, true),
                    (Some(0.31), 1.06, false),
                    (Some(0.07), 0.9, false),
                ],
                categories: [
                    (Some(0.42), 1.0, false),
                    (Some(0.14), 1.16, false),
                    (Some(0.19), 1.08, false),
                ],
                risk: Some((
                    Some(0.015),
                    Some(0.34),
                    [Some(0.94), Some(0.04), Some(0.01), Some(0.01)],
                )),
                centroid: None,
            }
            .build(),
            SegmentSpec {
                name: "at_risk",
                size: Some(12_118.0),
                means: [Some(133.0), Some(4.8), Some(1_288.9), Some(0.49)],
                regions: [Some(0.3), Some(0.32), Some(0.21), Some(0.16), Some(0.01)],
                channels: [
                    (Some(0.33), 0.9, false),
                    (Some(0.26), 1.18, true),
                    (Some(0.3), 1.03, false),
                    (Some(0.11), 1.18, false),
                ],
                categories: [
                    (Some(0.43), 1.02, false),
                    (Some(0.1), 0.83, false),
                    (Some(0.17), 0.97, false),
                ],
                risk: Some((
                    Some(0.041),
                    Some(0.49),
                    [Some(0.86), Some(0.08), Some(0.04), Some(0.02)],
                )),
                centroid: None,
            }
            .build(),
            SegmentSpec {
                name: "churned",
                size: Some(15_049.0),
                means: [Some(301.2), Some(0.7), Some(221.4), Some(0.58)],
                regions: [Some(0.27), Some(0.31), Some(0.22), Some(0.19), Some(0.01)],
                channels: [
                    (Some(0.31), 0.84, true),
                    (Some(0.28), 1.27, true),
                    (Some(0.33), 1.14, false),
                    (Some(0.08), 1.0, false),
                ],
                categories: [
                    (Some(0.47), 1.12, true),
                    (Some(0.08), 0.66, true),
                    (Some(0.16), 0.91, false),
                ],
                risk: Some((
                    Some(0.066),
                    Some(0.58),
                    [Some(0.79), Some(0.12), Some(0.05), None],
                )),
                centroid: None,
            }
            .build(),
        ],
        quality: None,
    };
    let kmeans = Segmentation {
        name: "kmeans".to_owned(),
        description: "Three clusters of federated k-means on the normalized features.".to_owned(),
        segments: vec![
            SegmentSpec {
                name: "cluster-1",
                size: Some(17_402.0),
                means: [Some(31.5), Some(11.9), Some(2_640.2), Some(0.33)],
                regions: [Some(0.33), Some(0.29), Some(0.21), Some(0.16), Some(0.01)],
                channels: [
                    (Some(0.47), 1.28, true),
                    (Some(0.16), 0.73, true),
                    (Some(0.3), 1.03, false),
                    (Some(0.07), 0.9, false),
                ],
                categories: [
                    (Some(0.4), 0.95, false),
                    (Some(0.16), 1.33, true),
                    (Some(0.2), 1.14, false),
                ],
                risk: Some((
                    Some(0.012),
                    Some(0.33),
                    [Some(0.95), Some(0.03), Some(0.01), Some(0.01)],
                )),
                centroid: Some([31.5, 11.9, 2_640.2, 0.33]),
            }
            .build(),
            SegmentSpec {
                name: "cluster-2",
                size: Some(9_877.0),
                means: [Some(97.4), Some(5.6), Some(1_502.7), Some(0.71)],
                regions: [Some(0.29), Some(0.33), Some(0.2), Some(0.17), Some(0.01)],
                channels: [
                    (Some(0.35), 0.95, false),
                    (Some(0.25), 1.14, false),
                    (Some(0.29), 0.99, false),
                    (Some(0.11), 1.38, true),
                ],
                categories: [
                    (Some(0.45), 1.07, false),
                    (Some(0.11), 0.92, false),
                    (Some(0.15), 0.85, false),
                ],
                risk: Some((
                    Some(0.088),
                    Some(0.71),
                    [Some(0.72), Some(0.14), Some(0.08), Some(0.06)],
                )),
                centroid: Some([97.4, 5.6, 1_502.7, 0.71]),
            }
            .build(),
            SegmentSpec {
                name: "cluster-3",
                size: Some(20_921.0),
                means: [Some(255.8), Some(1.4), Some(412.6), Some(0.29)],
                regions: [Some(0.29), Some(0.31), Some(0.21), Some(0.18), Some(0.01)],
                channels: [
                    (Some(0.31), 0.84, true),
                    (Some(0.27), 1.23, true),
                    (Some(0.35), 1.21, true),
                    (Some(0.07), 0.88, false),
                ],
                categories: [
                    (Some(0.44), 1.05, false),
                    (Some(0.1), 0.83, false),
                    (Some(0.18), 1.02, false),
                ],
                risk: Some((
                    Some(0.031),
                    Some(0.29),
                    [Some(0.88), Some(0.07), Some(0.03), Some(0.02)],
                )),
                centroid: Some([255.8, 1.4, 412.6, 0.29]),
            }
            .build(),
        ],
        quality: Some(ClusterQuality {
            iterations: 5,
            mean_cost: v(0.0213, 0.0009),
            rho: 0.25,
        }),
    };
    let size_change =
        |segmentation: &str, segment: &str, before: Option<f64>, now: f64| SizeChange {
            segmentation: segmentation.to_owned(),
            segment: segment.to_owned(),
            before: before.map_or(Cell::Suppressed, |b| v(b, COUNT_SD)),
            now: v(now, COUNT_SD),
        };
    ProfileReport {
        schema: SCHEMA.to_owned(),
        name: "retail-q2".to_owned(),
        as_of: "2025-06-30".to_owned(),
        model_version: 2,
        nodes: vec!["bank-north".to_owned(), "bank-south".to_owned(), "bank-west".to_owned()],
        min_cell_size: 20,
        privacy: PrivacySummary {
            rho: "1/2".to_owned(),
            rho_f64: rho,
            delta,
            epsilon: epsilon_at_delta(&rho_exact(rho), delta),
            // Three banks, every release from all three: a person at all of them loses 3^2 rho.
            max_holders: 3,
            max_holders_declared: true,
            person_rho: "9/2".to_owned(),
            person_rho_f64: 4.5,
            person_epsilon: epsilon_at_delta(&rho_exact(4.5), delta),
            releases: vec![
                release("population", 0.02),
                release("distributions", 0.1),
                release("rfm", 0.08),
                release("lifecycle", 0.05),
                release("kmeans-3", 0.25),
            ],
        },
        population: v(POPULATION, 5.0),
        distributions: vec![
            distribution(
                "recency_days",
                "days",
                &[30.0, 60.0, 90.0, 180.0, 270.0, 365.0],
                &[Some(14_210.0), Some(7_804.0), Some(5_130.0), Some(9_660.0), Some(6_021.0), Some(5_381.0), None],
                [8.0, 24.5, 78.2, 196.0, 301.5],
            ),
            distribution(
                "frequency",
                "repeat days",
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
                &[Some(9_870.0), Some(6_102.0), Some(8_450.0), Some(9_023.0), Some(8_115.0), Some(5_010.0), Some(1_643.0)],
                [0.0, 1.6, 5.2, 12.8, 22.4],
            ),
            distribution(
                "monetary_total",
                "currency",
                &[100.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0],
                &[Some(5_230.0), Some(9_416.0), Some(8_870.0), Some(11_040.0), Some(7_602.0), Some(4_415.0), Some(1_640.0)],
                [92.5, 455.0, 1_340.75, 3_120.4, 6_230.0],
            ),
            distribution(
                "utilization",
                "share",
                &[0.1, 0.3, 0.5, 0.7, 0.9],
                &[Some(6_021.0), Some(12_440.0), Some(11_980.0), Some(8_760.0), Some(5_410.0), Some(3_602.0)],
                [0.08, 0.24, 0.41, 0.62, 0.83],
            ),
        ],
        categories: vec![
            categorical(
                "region",
                &[("north", Some(15_210.0)), ("south", Some(14_877.0)), ("east", Some(9_980.0)), ("west", Some(8_120.0)), ("other", None)],
            ),
            categorical(
                "age_band",
                &[("<25", Some(4_120.0)), ("25-34", Some(10_904.0)), ("35-44", Some(11_380.0)), ("45-54", Some(9_602.0)), ("55-64", Some(7_310.0)), ("65+", Some(4_897.0))],
            ),
            categorical(
                "channel_mix",
                &[("online", Some(17_660.4)), ("branch", Some(10_602.9)), ("mobile", Some(14_021.3)), ("phone", Some(5_928.4))],
            ),
            categorical(
                "category_mix",
                &[("groceries", Some(20_251.0)), ("travel", Some(5_786.2)), ("dining", Some(8_438.5)), ("fuel", Some(9_160.7)), ("electronics", Some(4_576.6))],
            ),
        ],
        segmentations: vec![rfm, lifecycle, kmeans],
        budgets: vec![
            NodeBudget { node: "bank-north".to_owned(), spent: 1.25, cap: 2.0, period: "2025-Q2".to_owned(), cumulative: Some(7.25), cumulative_epsilon: Some(epsilon_at_delta(&rho_exact(7.25), delta)), lifetime_cap: None },
            NodeBudget { node: "bank-south".to_owned(), spent: 1.75, cap: 2.0, period: "2025-Q2".to_owned(), cumulative: Some(9.75), cumulative_epsilon: Some(epsilon_at_delta(&rho_exact(9.75), delta)), lifetime_cap: Some(24.0) },
            NodeBudget { node: "bank-west".to_owned(), spent: 0.5, cap: 1.0, period: "2025-Q2".to_owned(), cumulative: Some(0.5), cumulative_epsilon: Some(epsilon_at_delta(&rho_exact(0.5), delta)), lifetime_cap: None },
        ],
        drift: Some(Drift {
            previous_version: 1,
            previous_as_of: "2025-03-31".to_owned(),
            sizes: vec![
                size_change("rfm", "champions", Some(6_120.0), 6_412.0),
                size_change("rfm", "loyal", Some(14_977.0), 14_980.0),
                size_change("rfm", "at_risk", Some(10_240.0), 11_305.0),
                size_change("rfm", "hibernating", None, 15_516.0),
                size_change("kmeans", "cluster-1", Some(17_390.0), 17_402.0),
            ],
            centroid_moves: vec![("cluster-1".to_owned(), 0.012), ("cluster-2".to_owned(), 0.087), ("cluster-3".to_owned(), 0.031)],
        }),
        notes: vec![
            "Counts carry Gaussian noise added after secure aggregation; the privacy table gives the standard deviation of one count for each release.".to_owned(),
            "Means are sums of values clipped to the job's bounds, divided by noisy counts: for segments of a few hundred customers they can be off by several percent.".to_owned(),
            "Quantiles are read from the noisy histograms by linear interpolation within a bin.".to_owned(),
        ],
    }
}
