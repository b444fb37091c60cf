//! Segment profiles from a released per-segment query: size, means, level mixes, channel and
//! category lifts against the population, and credit risk.

use fedprof_protocol::query::{MixFeature, QueryPart};

use crate::analysis::{Released, cell_ratio, count, ratio};
use crate::report::{Cell, FeatureMean, LevelMix, Lift, Risk, Segment, Segmentation};
use crate::spec::{Categorical, Feature, ProfileSpec};

/// What a query part stands for, so results can be read back by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Customers.
    Count,
    /// Histogram of a feature.
    Histogram(Feature),
    /// Clipped normalized sum of a feature.
    Mean(Feature),
    /// Customers with a value of a feature.
    Present(Feature),
    /// Levels of a categorical feature (plus `other`).
    Levels(Categorical),
    /// A mix.
    Mix(MixFeature),
    /// Clustering cost.
    Cost,
    /// Joint histogram of the k-means space.
    Grid,
}

/// A query's parts with their meanings.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The parts, in query order.
    pub parts: Vec<QueryPart>,
    /// What each stands for.
    pub meanings: Vec<Meaning>,
}

impl Layout {
    /// Appends a part.
    pub fn push(&mut self, part: QueryPart, meaning: Meaning) {
        self.parts.push(part);
        self.meanings.push(meaning);
    }

    /// The index of the part standing for `m`.
    pub fn find(&self, m: &Meaning) -> Option<usize> {
        self.meanings.iter().position(|x| x == m)
    }
}

/// The share of a cross-tab cell (`x` customers of the segment's `n`): suppressed when either
/// count is under the minimum cell size, since a share and a size give the cell's count back.
fn cell_share(x: f64, sd: f64, n: f64, min: u64) -> Cell {
    if x < min as f64 {
        return Cell::Suppressed;
    }
    ratio(x, sd, n, sd, min)
}

fn first(r: &Released, s: usize, p: usize) -> f64 {
    r.part(s, p).and_then(|v| v.first().copied()).unwrap_or(0.0)
}

/// Profiles every segment of release `r`.
pub fn segmentation(
    spec: &ProfileSpec,
    r: &Released,
    layout: &Layout,
    name: &str,
    description: &str,
    names: &[String],
    population: Option<f64>,
) -> Segmentation {
    let min = spec.min_cell_size;
    let sd = r.unit_sd();
    let segments = r.query.segmenter.segments();
    let total_n: f64 = r.part_total(0).first().copied().unwrap_or(0.0);
    let pop_sd = r.sum_sd(segments);
    let population = population.unwrap_or(total_n);
    // A level's population share is a cell of its own (the lifts divide by it): suppressed
    // on its own count as well as on the population's (review finding L4).
    let mix_population = |p: usize| -> Vec<Cell> {
        r.part_total(p)
            .iter()
            .map(|v| {
                if *v < min as f64 {
                    Cell::Suppressed
                } else {
                    ratio(*v, pop_sd, total_n, pop_sd, min)
                }
            })
            .collect()
    };
    let segments = (0..segments)
        .map(|s| {
            let n = first(r, s, 0);
            let size = count(n, sd, min);
            let share = match size {
                Cell::Value { .. } => ratio(n, sd, population, pop_sd, min),
                Cell::Suppressed => Cell::Suppressed,
            };
            let mut seg = Segment {
                name: names
                    .get(s)
                    .cloned()
                    .unwrap_or_else(|| format!("segment-{s}")),
                size,
                share,
                means: Vec::new(),
                levels: Vec::new(),
                channels: Vec::new(),
                categories: Vec::new(),
                risk: None,
                centroid: None,
            };
            for (p, m) in layout.meanings.iter().enumerate() {
                match (m, layout.parts.get(p)) {
                    (Meaning::Mean(f), Some(QueryPart::Numeric { lo, hi, .. })) => {
                        let den_part = layout.find(&Meaning::Present(*f));
                        let den = den_part.map_or(n, |d| first(r, s, d));
                        let width = (hi - lo) as f64 / f.factor(spec.amount_decimals);
                        let base = *lo as f64 / f.factor(spec.amount_decimals);
                        let mean = match ratio(first(r, s, p), sd, den, sd, min) {
                            // A mean of values clamped to [lo, hi] lies in [lo, hi]; the noise
                            // can push the ratio outside, and clamping it back is
                            // post-processing.
                            Cell::Value { value, sd } => Cell::Value {
                                value: base + value.clamp(0.0, 1.0) * width,
                                sd: sd * width,
                            },
                            Cell::Suppressed => Cell::Suppressed,
                        };
                        seg.means.push(FeatureMean {
                            feature: f.name().into(),
                            unit: f.unit().into(),
                            mean,
                        });
                    }
                    (Meaning::Levels(c), Some(QueryPart::Levels { levels, .. })) => {
                        let v = r.part(s, p).unwrap_or_default();
                        let shares = levels
                            .iter()
                            .cloned()
                            .chain(["other".to_owned()])
                            .zip(&v)
                            .map(|(l, x)| (l, cell_share(*x, sd, n, min)))
                            .collect();
                        seg.levels.push(LevelMix {
                            feature: c.name().into(),
                            shares,
                        });
                    }
                    (Meaning::Mix(f), Some(QueryPart::Mix { levels, .. })) => {
                        let v = r.part(s, p).unwrap_or_default();
                        let pop = mix_population(p);
                        let lifts = levels
                            .iter()
                            .zip(&v)
                            .zip(pop)
                            .map(|((l, x), pop_share)| {
                                let share = cell_share(*x, sd, n, min);
                                let lift = cell_ratio(share, pop_share);
                                Lift {
                                    level: l.clone(),
                                    share,
                                    lift: lift.map(|(v, _)| v),
                                    significant: lift
                                        .is_some_and(|(v, sd)| (v - 1.0).abs() > 2.0 * sd),
                                }
                            })
                            .collect();
                        match f {
                            MixFeature::Channel => seg.channels = lifts,
                            MixFeature::Category => seg.categories = lifts,
                        }
                    }
                    _ => {}
                }
            }
            seg.risk = risk(&seg);
            seg
        })
        .collect();
    Segmentation {
        name: name.into(),
        description: description.into(),
        segments,
        quality: None,
    }
}

/// Default rate (among customers with a default flag), mean utilization and the delinquency
/// mix (among customers with a bucket), when the job asked for them.
fn risk(seg: &Segment) -> Option<Risk> {
    let levels = |c: Categorical| {
        seg.levels
            .iter()
            .find(|l| l.feature == c.name())
            .map(|l| l.shares.clone())
    };
    let flag = levels(Categorical::DefaultFlag);
    let buckets = levels(Categorical::DelinquencyBucket);
    let utilization = seg
        .means
        .iter()
        .find(|m| m.feature == Feature::Utilization.name())
        .map(|m| m.mean);
    if flag.is_none() && buckets.is_none() && utilization.is_none() {
        return None;
    }
    // Shares among customers with a value: drop `other` and renormalize. Over every listed
    // level or none: renormalizing over the unsuppressed ones only would show a default rate
    // of 1.0 when the `no` cell is suppressed (review finding L4).
    let known = |shares: Vec<(String, Cell)>| -> Vec<(String, Cell)> {
        let listed: Vec<(String, Cell)> =
            shares.into_iter().filter(|(l, _)| l != "other").collect();
        let complete = listed.iter().all(|(_, c)| c.value().is_some());
        let total: f64 = if complete {
            listed.iter().filter_map(|(_, c)| c.value()).sum()
        } else {
            0.0
        };
        listed
            .into_iter()
            .map(|(l, c)| {
                let c = match c {
                    Cell::Value { value, sd } if total > 0.0 => Cell::Value {
                        value: value / total,
                        sd: sd / total,
                    },
                    _ => Cell::Suppressed,
                };
                (l, c)
            })
            .collect()
    };
    let default_rate = flag
        .map(known)
        .and_then(|v| v.into_iter().find(|(l, _)| l == "yes").map(|(_, c)| c))
        .unwrap_or(Cell::Suppressed);
    Some(Risk {
        default_rate,
        utilization: utilization.unwrap_or(Cell::Suppressed),
        delinquency: buckets.map(known).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedprof_protocol::query::CategoricalFeature;
    use fedprof_protocol::{FeatureQuery, Fraction, query::Segmenter};

    /// Two segments of (count, region levels north/south/other), in customers x scale 10.
    fn released(values: Vec<i64>) -> (Released, Layout) {
        let mut layout = Layout::default();
        layout.push(QueryPart::Count, Meaning::Count);
        layout.push(
            QueryPart::Levels {
                feature: CategoricalFeature::Region,
                levels: vec!["north".into(), "south".into()],
            },
            Meaning::Levels(Categorical::Region),
        );
        let query = FeatureQuery {
            label: "t".into(),
            as_of: "2026-06-30".into(),
            scale: 10,
            segmenter: Segmenter::Centroids {
                dimensions: vec![fedprof_protocol::query::Dimension {
                    feature: fedprof_protocol::query::NumericFeature::Frequency,
                    lo: 0,
                    hi: 1,
                }],
                centroids: vec![vec![0], vec![10]],
            },
            parts: layout.parts.clone(),
            budget: Fraction { numer: 1, denom: 1 },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        };
        let r = Released {
            query,
            values,
            sd: 20.0,
            contributors: vec!["a".into(), "b".into()],
        };
        (r, layout)
    }

    #[test]
    fn small_cells_are_suppressed_and_carry_no_number() {
        let spec = ProfileSpec::from_toml(
            "name = \"t\"\nas_of = \"2026-06-30\"\nrho = \"1/2\"\nmin_cell_size = 20\n",
        )
        .unwrap();
        // Segment 0: 100 customers, 95 north, 3 south, 2 other. Segment 1: 15 customers.
        let (r, layout) = released(vec![1000, 950, 30, 20, 150, 100, 50, 0]);
        let s = segmentation(
            &spec,
            &r,
            &layout,
            "x",
            "x",
            &["a".into(), "b".into()],
            None,
        );
        let big = &s.segments[0];
        assert_eq!(
            big.size,
            Cell::Value {
                value: 100.0,
                sd: 2.0
            }
        );
        let shares = &big.levels[0].shares;
        assert!(matches!(shares[0].1, Cell::Value { value, .. } if (value - 0.95).abs() < 1e-12));
        assert_eq!(shares[1].1, Cell::Suppressed, "3 customers in the cell");
        assert_eq!(shares[2].1, Cell::Suppressed);
        let small = &s.segments[1];
        assert_eq!(small.size, Cell::Suppressed);
        assert_eq!(small.share, Cell::Suppressed);
        assert!(
            small.levels[0]
                .shares
                .iter()
                .all(|(_, c)| *c == Cell::Suppressed)
        );
        let json = serde_json::to_string(small).unwrap();
        assert!(!json.contains("\"value\""), "{json}");
    }

    /// L4: a suppressed `no` cell must not turn the default rate into 1.0.
    #[test]
    fn the_default_rate_is_suppressed_with_any_of_its_cells() {
        let v = |value| Cell::Value { value, sd: 0.01 };
        let segment = |no: Cell| Segment {
            name: "s".into(),
            size: v(100.0),
            share: v(1.0),
            means: Vec::new(),
            levels: vec![LevelMix {
                feature: Categorical::DefaultFlag.name().into(),
                shares: vec![
                    ("yes".into(), v(0.06)),
                    ("no".into(), no),
                    ("other".into(), v(0.04)),
                ],
            }],
            channels: Vec::new(),
            categories: Vec::new(),
            risk: None,
            centroid: None,
        };
        let rate = |no| risk(&segment(no)).map(|r| r.default_rate);
        assert!(
            matches!(rate(v(0.9)), Some(Cell::Value { value, .. }) if (value - 0.0625).abs() < 1e-12)
        );
        assert_eq!(rate(Cell::Suppressed), Some(Cell::Suppressed));
    }
}
