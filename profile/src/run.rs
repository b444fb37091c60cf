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
//!
//! The k-means centroids are in `run/centroids.rs`, the report of the releases in
//! `run/report.rs`; this file holds the plan, the queries and the results' bookkeeping.

use std::collections::BTreeSet;

use fedprof_privacy::{Rho, epsilon_at_delta};
use fedprof_protocol::query::{Dimension, QueryPart, Segmenter};
use fedprof_protocol::{FeatureQuery, Fraction, JobResult, ProfileId};
use num_bigint::BigUint;
use num_rational::Ratio;

use crate::analysis::{Released, edges, quantiles};
use crate::profile::{Layout, Meaning};
use crate::report::ReleaseSummary;
use crate::spec::{Feature, ProfilePolicy, ProfileSpec, SpecError};

mod centroids;
mod report;

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
}
