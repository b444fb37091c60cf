//! A profiling job as a sans-IO state machine: which feature query to release next, and what
//! the released answers mean.
//!
//! ```text
//! distributions (histograms, levels, mixes; All)      -> quantiles, population
//!   -> RFM profile (cut-offs = released quintiles)      -> RFM segments
//!   -> lifecycle profile                                -> lifecycle segments
//!   -> k-means: init from released quantiles (free), T Lloyd iterations (one release each),
//!      final profile with clustering cost               -> clusters, quality
//! ```
//!
//! The job's rho is split exactly (rational arithmetic) by the `[budget]` weights; each query
//! carries its share as its budget, and the coordinator sizes its noise to it. The shares sum
//! to the job's rho, and every node's ledger records one debit per release with its label.

use std::collections::BTreeSet;

use fedprof_privacy::{Rho, epsilon_at_delta, group_rho};
use fedprof_protocol::query::{
    Dimension, LIFECYCLE_SEGMENTS, MixFeature, QueryPart, RFM_SEGMENTS, Segmenter,
};
use fedprof_protocol::{FeatureQuery, Fraction, JobResult, ProfileId};
use num_bigint::BigUint;
use num_rational::Ratio;

use crate::analysis::{Released, count, edges, quantiles};
use crate::profile::{Layout, Meaning, segmentation};
use crate::report::{
    Bin, CategoryDistribution, Cell, ClusterQuality, Distribution, PrivacySummary, ProfileReport,
    ReleaseSummary, SCHEMA,
};
use crate::spec::{Feature, ProfilePolicy, ProfileSpec, SpecError};

/// Fixed-point scale of every query: 1/1000 of a feature's range.
pub const SCALE: u32 = 1000;

/// Histogram bins per numeric feature.
pub const BINS: u32 = 40;

/// The quantiles a report lists.
pub const REPORT_QUANTILES: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

/// One release of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Histograms, levels and mixes over everyone.
    Distributions,
    /// Profiles of the RFM segments.
    Rfm,
    /// Profiles of the lifecycle segments.
    Lifecycle,
    /// A noisy joint histogram of the k-means space, to seed the centroids.
    KMeansInit,
    /// Lloyd iteration `i` (1-based).
    KMeansIteration(u32),
    /// Profiles of the final clusters, with their cost.
    KMeansProfile,
}

impl Step {
    fn label(self) -> String {
        match self {
            Step::Distributions => "distributions".into(),
            Step::Rfm => "rfm".into(),
            Step::Lifecycle => "lifecycle".into(),
            Step::KMeansInit => "kmeans-init".into(),
            Step::KMeansIteration(i) => format!("kmeans-{i}"),
            Step::KMeansProfile => "kmeans-profile".into(),
        }
    }
}

/// Why a run cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The spec was refused.
    #[error("job spec refused: {0}")]
    Spec(#[from] SpecError),
    /// A result does not fit the query that was asked.
    #[error("release {0}: the result does not have the query's shape")]
    Shape(String),
    /// A result arrived when none was expected.
    #[error("no release is pending")]
    NotPending,
}

/// The state of one profiling job.
#[derive(Debug)]
pub struct ProfileRun {
    spec: ProfileSpec,
    steps: Vec<(Step, Fraction)>,
    next: usize,
    pending: Option<(Step, FeatureQuery, Layout)>,
    dist: Option<(Released, Layout)>,
    profiles: Vec<(Step, Released, Layout)>,
    kmeans_dims: Vec<(Feature, Dimension)>,
    grid_edges: Vec<Vec<i64>>,
    centroids: Vec<Vec<u32>>,
    releases: Vec<ReleaseSummary>,
    /// Each release's exact rho and number of contributors (for the person figures).
    release_rhos: Vec<(Rho, u32)>,
    max_holders: Option<u32>,
    nodes: Option<BTreeSet<String>>,
    /// The profiling job's id, from its first result: later releases name it, and the
    /// coordinator fixes who takes part (never this run).
    job: Option<ProfileId>,
}

fn fraction(r: &Ratio<BigUint>, field: &str) -> Result<Fraction, SpecError> {
    let too_fine = || SpecError {
        field: field.into(),
        problem: "the budget split does not fit 64-bit fractions; use a simpler rho".into(),
    };
    Ok(Fraction {
        numer: u64::try_from(r.numer()).map_err(|_| too_fine())?,
        denom: u64::try_from(r.denom()).map_err(|_| too_fine())?,
    })
}

impl ProfileRun {
    /// Checks `spec` against `policy` and plans its releases and their budgets.
    pub fn new(spec: ProfileSpec, policy: &ProfilePolicy) -> Result<ProfileRun, RunError> {
        spec.validate(policy)?;
        let w = &spec.budget;
        let seg = &spec.segmentations;
        let mut parts: Vec<(Step, u64)> = vec![(Step::Distributions, u64::from(w.distributions))];
        if seg.rfm {
            parts.push((Step::Rfm, u64::from(w.rfm)));
        }
        if seg.lifecycle {
            parts.push((Step::Lifecycle, u64::from(w.lifecycle)));
        }
        let total: u64 = parts.iter().map(|p| p.1).sum::<u64>()
            + seg.kmeans.as_ref().map_or(0, |_| u64::from(w.kmeans));
        if parts.iter().any(|p| p.1 == 0) || (seg.kmeans.is_some() && w.kmeans == 0) {
            return Err(SpecError {
                field: "budget".into(),
                problem: "every weight of a release that runs must be positive".into(),
            }
            .into());
        }
        let rho = spec.rho.as_ratio().clone();
        let share = |num: u64, den: u64| &rho * Ratio::new(BigUint::from(num), BigUint::from(den));
        let mut steps = Vec::new();
        for (step, weight) in parts {
            steps.push((step, fraction(&share(weight, total), "rho")?));
        }
        if let Some(k) = &seg.kmeans {
            let t = u64::from(k.iterations);
            let kw = u64::from(w.kmeans);
            // One fifth to the initialization grid, two fifths to the iterations, two fifths
            // to the final profile.
            steps.push((Step::KMeansInit, fraction(&share(kw, 5 * total), "rho")?));
            for i in 1..=k.iterations {
                steps.push((
                    Step::KMeansIteration(i),
                    fraction(&share(2 * kw, 5 * total * t), "rho")?,
                ));
            }
            steps.push((
                Step::KMeansProfile,
                fraction(&share(2 * kw, 5 * total), "rho")?,
            ));
        }
        let kmeans_dims = seg
            .kmeans
            .iter()
            .flat_map(|k| &k.features)
            .map(|f| {
                let (lo, hi) = spec.wire_bounds(*f);
                let dimension = Dimension {
                    feature: f.wire(),
                    lo,
                    hi,
                };
                (*f, dimension)
            })
            .collect();
        Ok(ProfileRun {
            spec,
            steps,
            next: 0,
            pending: None,
            dist: None,
            profiles: Vec::new(),
            kmeans_dims,
            grid_edges: Vec::new(),
            centroids: Vec::new(),
            releases: Vec::new(),
            release_rhos: Vec::new(),
            max_holders: policy.max_holders_per_person,
            nodes: None,
            job: None,
        })
    }

    /// The sum of the budgets of the releases after step `i` (exact; 0 after the last).
    fn reserve_after(&self, i: usize) -> Fraction {
        let rest: Ratio<BigUint> = self
            .steps
            .iter()
            .skip(i + 1)
            .map(|(_, f)| Ratio::new(BigUint::from(f.numer), BigUint::from(f.denom)))
            .sum();
        // Each budget fits 64 bits and they share denominators with the job's rho; a sum
        // that does not fit is rounded up to the whole job's rho, still an upper bound.
        fraction(&rest, "rho").unwrap_or_else(|_| {
            fraction(self.spec.rho.as_ratio(), "rho").unwrap_or(Fraction {
                numer: u64::MAX,
                denom: 1,
            })
        })
    }

    /// The reserve the query of step `i` declares: the budgets after it, and for the first
    /// release also the job's retry reserve (so the job's declared total, which every node
    /// checks at the first release, covers re-running an interrupted release). Later releases
    /// declare only what is planned after them: a re-run release's extra debit then fits the
    /// declared total exactly when it fits the retry reserve.
    fn reserve(&self, i: usize) -> Fraction {
        let after = self.reserve_after(i);
        if i > 0 || self.spec.retry_reserve.is_zero() {
            return after;
        }
        let total = Ratio::new(BigUint::from(after.numer), BigUint::from(after.denom))
            + self.spec.retry_reserve.as_ratio();
        fraction(&total, "retry_reserve").unwrap_or(after)
    }

    /// The releases planned, with their budgets.
    pub fn plan(&self) -> &[(Step, Fraction)] {
        &self.steps
    }

    /// The job's spec.
    pub fn spec(&self) -> &ProfileSpec {
        &self.spec
    }

    /// The next query to release, or `None` when the job is done. Call [`Self::on_result`]
    /// with its result before asking again.
    pub fn next_query(&mut self) -> Option<FeatureQuery> {
        if let Some((_, q, _)) = &self.pending {
            return Some(q.clone());
        }
        let (step, budget) = *self.steps.get(self.next)?;
        let (segmenter, layout) = match step {
            Step::Distributions => (Segmenter::All, self.distribution_layout()),
            Step::Rfm => (self.rfm_segmenter(), self.profile_layout(false)),
            Step::Lifecycle => (Segmenter::Lifecycle, self.profile_layout(false)),
            Step::KMeansInit => {
                self.grid_edges = self.grid_edges();
                let mut layout = Layout::default();
                let part = QueryPart::Grid {
                    features: self.kmeans_dims.iter().map(|(_, d)| d.feature).collect(),
                    edges: self.grid_edges.clone(),
                };
                layout.push(part, Meaning::Grid);
                (Segmenter::All, layout)
            }
            Step::KMeansIteration(_) => {
                if self.centroids.is_empty() {
                    self.centroids = self.initial_centroids();
                }
                let mut layout = Layout::default();
                layout.push(QueryPart::Count, Meaning::Count);
                for (f, d) in &self.kmeans_dims {
                    let part = QueryPart::Numeric {
                        feature: d.feature,
                        lo: d.lo,
                        hi: d.hi,
                    };
                    layout.push(part, Meaning::Mean(*f));
                }
                (self.centroid_segmenter(), layout)
            }
            Step::KMeansProfile => (self.centroid_segmenter(), self.profile_layout(true)),
        };
        let query = FeatureQuery {
            label: format!("{}/{}", self.spec.name, step.label()),
            as_of: self.spec.as_of.clone(),
            scale: SCALE,
            segmenter,
            parts: layout.parts.clone(),
            budget,
            reserve: self.reserve(self.next),
            job: self.job,
        };
        self.pending = Some((step, query.clone(), layout));
        Some(query)
    }

    /// Takes the released result of the pending query.
    pub fn on_result(&mut self, result: &JobResult, rho: &Rho) -> Result<(), RunError> {
        let (step, query, layout) = self.pending.take().ok_or(RunError::NotPending)?;
        let released =
            Released::new(&query, result).ok_or_else(|| RunError::Shape(query.label.clone()))?;
        match self.job {
            // The first release opens the job; the coordinator then keeps its population.
            None => self.job = Some(result.profile.id),
            Some(id) if id != result.profile.id => {
                return Err(RunError::Shape(format!(
                    "{}: the result belongs to profiling job {}, not {id}",
                    query.label, result.profile.id
                )));
            }
            Some(_) => {}
        }
        let names: BTreeSet<String> = released.contributors.iter().cloned().collect();
        self.nodes = Some(match self.nodes.take() {
            Some(n) => n.intersection(&names).cloned().collect(),
            None => names,
        });
        let contributors = u32::try_from(released.contributors.len()).unwrap_or(u32::MAX);
        self.release_rhos.push((rho.clone(), contributors));
        self.releases.push(ReleaseSummary {
            label: step.label(),
            rho: rho.to_f64(),
            epsilon: epsilon_at_delta(rho, self.spec.delta),
            count_sd: released.unit_sd(),
            contributors: released.contributors.len(),
        });
        match step {
            Step::Distributions => self.dist = Some((released, layout)),
            Step::KMeansInit => self.centroids = self.seed_centroids(&released),
            Step::KMeansIteration(_) => self.update_centroids(&released),
            Step::Rfm | Step::Lifecycle | Step::KMeansProfile => {
                self.profiles.push((step, released, layout));
            }
        }
        self.next += 1;
        Ok(())
    }

    fn hist_features(&self) -> Vec<Feature> {
        let mut f: Vec<Feature> = self.spec.features.clone();
        let mut extra: Vec<Feature> = self.kmeans_dims.iter().map(|(f, _)| *f).collect();
        if self.spec.segmentations.rfm {
            extra.extend([
                Feature::DaysSinceLast,
                Feature::Frequency,
                Feature::MonetaryTotal,
            ]);
        }
        for e in extra {
            if !f.contains(&e) {
                f.push(e);
            }
        }
        f
    }

    fn distribution_layout(&self) -> Layout {
        let mut l = Layout::default();
        l.push(QueryPart::Count, Meaning::Count);
        for f in self.hist_features() {
            let (lo, hi) = self.spec.wire_bounds(f);
            let part = QueryPart::Histogram {
                feature: f.wire(),
                edges: edges(lo, hi, BINS),
            };
            l.push(part, Meaning::Histogram(f));
        }
        self.push_categories(&mut l);
        l
    }

    fn push_categories(&self, l: &mut Layout) {
        for c in &self.spec.categorical {
            let part = QueryPart::Levels {
                feature: c.wire(),
                levels: self.spec.levels_of(*c),
            };
            l.push(part, Meaning::Levels(*c));
        }
        for (feature, levels) in self.spec.mixes() {
            l.push(QueryPart::Mix { feature, levels }, Meaning::Mix(feature));
        }
    }

    fn profile_layout(&self, cost: bool) -> Layout {
        let mut l = Layout::default();
        l.push(QueryPart::Count, Meaning::Count);
        for f in &self.spec.features {
            let (lo, hi) = self.spec.wire_bounds(*f);
            let part = QueryPart::Numeric {
                feature: f.wire(),
                lo,
                hi,
            };
            l.push(part, Meaning::Mean(*f));
            if f.optional() {
                l.push(
                    QueryPart::Present { feature: f.wire() },
                    Meaning::Present(*f),
                );
            }
        }
        self.push_categories(&mut l);
        if cost {
            l.push(QueryPart::Cost, Meaning::Cost);
        }
        l
    }

    /// Released quantile `p` of `f` in wire units (the bounds' low end before any release).
    fn quantile(&self, f: Feature, p: f64) -> f64 {
        let (lo, hi) = self.spec.wire_bounds(f);
        let Some((d, layout)) = &self.dist else {
            return lo as f64;
        };
        let Some(i) = layout.find(&Meaning::Histogram(f)) else {
            return lo as f64;
        };
        let Some(QueryPart::Histogram { edges, .. }) = layout.parts.get(i) else {
            return lo as f64;
        };
        let counts = d.part(0, i).unwrap_or_default();
        let e: Vec<f64> = edges.iter().map(|x| *x as f64).collect();
        quantiles(&counts, &e, lo as f64, hi as f64, &[p])
            .first()
            .copied()
            .unwrap_or(lo as f64)
    }

    fn rfm_segmenter(&self) -> Segmenter {
        let cuts = |f: Feature| {
            let mut c = [0i64; 4];
            for (i, p) in [0.2, 0.4, 0.6, 0.8].iter().enumerate() {
                c[i] = self.quantile(f, *p).round() as i64;
            }
            for i in 1..4 {
                c[i] = c[i].max(c[i - 1]);
            }
            c
        };
        Segmenter::Rfm {
            recency: cuts(Feature::DaysSinceLast),
            frequency: cuts(Feature::Frequency),
            monetary: cuts(Feature::MonetaryTotal),
        }
    }

    fn centroid_segmenter(&self) -> Segmenter {
        Segmenter::Centroids {
            dimensions: self.kmeans_dims.iter().map(|(_, d)| d.clone()).collect(),
            centroids: self.centroids.clone(),
        }
    }

    /// Edges of the initialization grid: `b` bins per dimension at the released marginal
    /// quantiles, `b = 4096^(1/d)` clamped to 2..=16 (16 x 16 x 16 for three dimensions).
    fn grid_edges(&self) -> Vec<Vec<i64>> {
        let d = self.kmeans_dims.len().max(1) as f64;
        let bins = (4096f64.powf(1.0 / d).floor() as u32).clamp(2, 16);
        self.kmeans_dims
            .iter()
            .map(|(f, dim)| {
                let mut e: Vec<i64> = (1..bins)
                    .map(|i| self.quantile(*f, f64::from(i) / f64::from(bins)).round() as i64)
                    .filter(|x| *x > dim.lo && *x < dim.hi)
                    .collect();
                e.dedup();
                if e.is_empty() {
                    e = edges(dim.lo, dim.hi, bins);
                }
                e
            })
            .collect()
    }

    /// Initial centroids from the released grid (post-processing): weighted k-means on the
    /// cells' centres in the normalized space, weighted by their noisy counts. Falls back to
    /// [`Self::initial_centroids`] when the grid holds no positive count.
    fn seed_centroids(&self, r: &Released) -> Vec<Vec<u32>> {
        let k = self.spec.segmentations.kmeans.as_ref().map_or(1, |k| k.k) as usize;
        let counts = r.part(0, 0).unwrap_or_default();
        let widths: Vec<usize> = self.grid_edges.iter().map(|e| e.len() + 1).collect();
        // Each grid bin stands at the mean of the released marginal histogram within it (an
        // open last bin's midpoint would sit far out in a skewed feature's tail).
        let centres: Vec<Vec<f64>> = self
            .grid_edges
            .iter()
            .zip(&self.kmeans_dims)
            .map(|(e, (f, d))| {
                (0..=e.len())
                    .map(|b| {
                        let a = if b == 0 { d.lo } else { e[b - 1] };
                        let z = if b == e.len() { d.hi } else { e[b] };
                        let x = self.marginal_mean(*f, a as f64, z as f64);
                        ((x - d.lo as f64) / (d.hi - d.lo) as f64).clamp(0.0, 1.0)
                    })
                    .collect()
            })
            .collect();
        let mut points = Vec::with_capacity(counts.len());
        for cell in 0..counts.len() {
            let mut rest = cell;
            let mut bins = vec![0usize; widths.len()];
            for (b, w) in bins.iter_mut().zip(&widths).rev() {
                *b = rest % w;
                rest /= w;
            }
            let point = bins.iter().zip(&centres).map(|(b, c)| c[*b]).collect();
            points.push(point);
        }
        let seed = self
            .spec
            .name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        match crate::kmeans::weighted_kmeans(&points, &counts, k, seed) {
            Some(c) => c
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|x| (x.clamp(0.0, 1.0) * f64::from(SCALE)).round() as u32)
                        .collect()
                })
                .collect(),
            None => self.initial_centroids(),
        }
    }

    /// The mean of feature `f` within `[a, z)` (wire units) by the released histogram, its
    /// counts clamped at 0 and spread evenly within each bin; the midpoint without mass.
    fn marginal_mean(&self, f: Feature, a: f64, z: f64) -> f64 {
        let (lo, hi) = self.spec.wire_bounds(f);
        let Some((d, layout)) = &self.dist else {
            return (a + z) / 2.0;
        };
        let Some(i) = layout.find(&Meaning::Histogram(f)) else {
            return (a + z) / 2.0;
        };
        let Some(QueryPart::Histogram { edges, .. }) = layout.parts.get(i) else {
            return (a + z) / 2.0;
        };
        let counts = d.part(0, i).unwrap_or_default();
        let (mut mass, mut moment) = (0.0, 0.0);
        for (b, c) in counts.iter().enumerate() {
            let fa = if b == 0 { lo } else { edges[b - 1] } as f64;
            let fz = if b == edges.len() { hi } else { edges[b] } as f64;
            let (oa, oz) = (fa.max(a), fz.min(z));
            if oz <= oa || fz <= fa {
                continue;
            }
            let w = c.max(0.0) * (oz - oa) / (fz - fa);
            mass += w;
            moment += w * (oa + oz) / 2.0;
        }
        if mass > 0.0 {
            moment / mass
        } else {
            (a + z) / 2.0
        }
    }

    /// Initial centroids from the released marginal quantiles (no extra budget): centroid `j`
    /// sits at quantile `(j + 1/2) / k` of each dimension, reversed for recency-like features
    /// (fewer days since the last purchase go with more purchases), spreading the centroids
    /// along the population's main trend.
    fn initial_centroids(&self) -> Vec<Vec<u32>> {
        let k = self.spec.segmentations.kmeans.as_ref().map_or(1, |k| k.k);
        (0..k)
            .map(|j| {
                let p = (f64::from(j) + 0.5) / f64::from(k);
                self.kmeans_dims
                    .iter()
                    .map(|(f, d)| {
                        let p = if *f == Feature::DaysSinceLast {
                            1.0 - p
                        } else {
                            p
                        };
                        let q = self.quantile(*f, p);
                        let x = (q - d.lo as f64) / (d.hi - d.lo) as f64;
                        (x.clamp(0.0, 1.0) * f64::from(SCALE)).round() as u32
                    })
                    .collect()
            })
            .collect()
    }

    /// One Lloyd step: each centroid moves to its cluster's noisy mean; a cluster whose noisy
    /// count is under the minimum cell size keeps its centroid.
    fn update_centroids(&mut self, r: &Released) {
        let floor = self.spec.min_cell_size as f64;
        for (j, c) in self.centroids.iter_mut().enumerate() {
            let Some(n) = r.part(j, 0).and_then(|v| v.first().copied()) else {
                continue;
            };
            if n < floor {
                continue;
            }
            for (d, x) in c.iter_mut().enumerate() {
                if let Some(sum) = r.part(j, 1 + d).and_then(|v| v.first().copied()) {
                    *x = ((sum / n).clamp(0.0, 1.0) * f64::from(SCALE)).round() as u32;
                }
            }
        }
    }

    /// The final centroids (fixed point), once the iterations ran.
    pub fn centroids(&self) -> &[Vec<u32>] {
        &self.centroids
    }

    /// The report of the releases so far (all of them once `next_query` returned `None`).
    pub fn report(&self, model_version: u32) -> ProfileReport {
        let spec = &self.spec;
        let min = spec.min_cell_size;
        let rho = spec.rho.to_f64();
        let epsilon = epsilon_at_delta(&spec.rho, spec.delta);
        // Default K: every contributing node may hold the same person (the most contributors of
        // any release).
        let contributing = self.release_rhos.iter().map(|r| r.1).max().unwrap_or(1);
        let max_holders = self.max_holders.unwrap_or(contributing).max(1);
        // Group privacy: a person at m contributing nodes loses m^2 rho in a release.
        let person_rho: Rho = self
            .release_rhos
            .iter()
            .map(|(r, n)| group_rho(r, max_holders.min((*n).max(1))))
            .sum();
        let mut report = ProfileReport {
            schema: SCHEMA.into(),
            name: spec.name.clone(),
            as_of: spec.as_of.clone(),
            model_version,
            nodes: self.nodes.iter().flatten().cloned().collect(),
            min_cell_size: min,
            privacy: PrivacySummary {
                rho: spec.rho.to_string(),
                rho_f64: rho,
                delta: spec.delta,
                epsilon,
                max_holders,
                max_holders_declared: self.max_holders.is_some(),
                person_rho: person_rho.to_string(),
                person_rho_f64: person_rho.to_f64(),
                person_epsilon: epsilon_at_delta(&person_rho, spec.delta),
                releases: self.releases.clone(),
            },
            population: Cell::Suppressed,
            distributions: Vec::new(),
            categories: Vec::new(),
            segmentations: Vec::new(),
            budgets: Vec::new(),
            drift: None,
            notes: notes(spec, &self.releases),
        };
        let mut population = None;
        if let Some((d, layout)) = &self.dist {
            let n = d.part(0, 0).and_then(|v| v.first().copied()).unwrap_or(0.0);
            report.population = count(n, d.unit_sd(), min);
            population = report.population.value();
            self.describe(d, layout, &mut report);
        }
        for (step, r, layout) in &self.profiles {
            let (name, description, names): (&str, &str, Vec<String>) = match step {
                Step::Rfm => (
                    "rfm",
                    "RFM segments: recency, frequency and monetary scores 1-5 at the released quintiles",
                    RFM_SEGMENTS.iter().map(|s| (*s).to_owned()).collect(),
                ),
                Step::Lifecycle => (
                    "lifecycle",
                    "Lifecycle stages: new, active, at risk, churned",
                    LIFECYCLE_SEGMENTS.iter().map(|s| (*s).to_owned()).collect(),
                ),
                _ => (
                    "kmeans",
                    "Federated DP k-means clusters",
                    (1..=self.centroids.len())
                        .map(|j| format!("cluster-{j}"))
                        .collect(),
                ),
            };
            let mut s = segmentation(spec, r, layout, name, description, &names, population);
            if *step == Step::KMeansProfile {
                self.add_kmeans(&mut s, r, layout);
            }
            report.segmentations.push(s);
        }
        report
    }

    fn describe(&self, d: &Released, layout: &Layout, report: &mut ProfileReport) {
        let min = self.spec.min_cell_size;
        let sd = d.unit_sd();
        for (i, m) in layout.meanings.iter().enumerate() {
            let values = d.part(0, i).unwrap_or_default();
            match (m, layout.parts.get(i)) {
                (Meaning::Histogram(f), Some(QueryPart::Histogram { edges, .. })) => {
                    let k = f.factor(self.spec.amount_decimals);
                    let (lo, hi) = self.spec.wire_bounds(*f);
                    let e: Vec<f64> = edges.iter().map(|x| *x as f64).collect();
                    let bins = values
                        .iter()
                        .enumerate()
                        .map(|(b, c)| Bin {
                            lo: (b > 0).then(|| e[b - 1] / k),
                            hi: e.get(b).map(|x| x / k),
                            count: count(*c, sd, min),
                        })
                        .collect();
                    let q = quantiles(&values, &e, lo as f64, hi as f64, &REPORT_QUANTILES);
                    report.distributions.push(Distribution {
                        feature: f.name().into(),
                        unit: f.unit().into(),
                        bins,
                        quantiles: REPORT_QUANTILES
                            .iter()
                            .zip(q)
                            .map(|(p, v)| (*p, v / k))
                            .collect(),
                    });
                }
                (Meaning::Levels(c), Some(QueryPart::Levels { levels, .. })) => {
                    let names = levels.iter().cloned().chain(["other".to_owned()]);
                    report.categories.push(CategoryDistribution {
                        feature: c.name().into(),
                        levels: names
                            .zip(&values)
                            .map(|(n, v)| (n, count(*v, sd, min)))
                            .collect(),
                    });
                }
                (Meaning::Mix(f), Some(QueryPart::Mix { levels, .. })) => {
                    let name = match f {
                        MixFeature::Channel => "channel_mix",
                        MixFeature::Category => "category_mix",
                    };
                    report.categories.push(CategoryDistribution {
                        feature: name.into(),
                        levels: levels
                            .iter()
                            .zip(&values)
                            .map(|(n, v)| (n.clone(), count(*v, sd, min)))
                            .collect(),
                    });
                }
                _ => {}
            }
        }
    }

    fn add_kmeans(&self, s: &mut crate::report::Segmentation, r: &Released, layout: &Layout) {
        let k = self.spec.amount_decimals;
        for (seg, c) in s.segments.iter_mut().zip(&self.centroids) {
            seg.centroid = Some(
                c.iter()
                    .zip(&self.kmeans_dims)
                    .map(|(x, (f, d))| {
                        let v =
                            d.lo as f64 + f64::from(*x) / f64::from(SCALE) * (d.hi - d.lo) as f64;
                        v / f.factor(k)
                    })
                    .collect(),
            );
        }
        let cost_part = layout.find(&Meaning::Cost);
        let (cost, n) = (
            cost_part.map_or(0.0, |p| r.part_total(p).first().copied().unwrap_or(0.0)),
            r.part_total(0).first().copied().unwrap_or(0.0),
        );
        let segments = r.query.segmenter.segments();
        let sd = r.sum_sd(segments);
        let rho: f64 = self
            .releases
            .iter()
            .filter(|x| x.label.starts_with("kmeans"))
            .map(|x| x.rho)
            .sum();
        s.quality = Some(ClusterQuality {
            iterations: self
                .spec
                .segmentations
                .kmeans
                .as_ref()
                .map_or(0, |k| k.iterations),
            mean_cost: crate::analysis::ratio(cost, sd, n, sd, self.spec.min_cell_size),
            rho,
        });
    }
}

fn notes(spec: &ProfileSpec, releases: &[ReleaseSummary]) -> Vec<String> {
    let worst = releases.iter().map(|r| r.count_sd).fold(0.0, f64::max);
    vec![
        format!(
            "Every figure is an estimate: the nodes added random noise before anything left them, so that no single customer can be recognized. A count shown as N may be off by about ±{:.0} customers (one standard deviation in the noisiest release); the 95% interval is about twice that.",
            worst
        ),
        "Means and shares divide two noisy sums: they are reliable for large segments and vague for small ones; their intervals say how vague.".into(),
        format!(
            "Cells with fewer than {} customers (after noise) are suppressed and never shown as numbers.",
            spec.min_cell_size
        ),
        "Lifts are marked as over- or under-indexing only when they differ from 1 by more than twice their noise.".into(),
    ]
}
