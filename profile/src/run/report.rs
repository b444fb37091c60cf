//! The report of a [`ProfileRun`]: the population, distributions, categories and segmentations
//! its releases give, the privacy summary (with the group-privacy figures per person) and the
//! notes a reader needs to read noisy figures.

use fedprof_privacy::{Rho, epsilon_at_delta, group_rho};
use fedprof_protocol::query::{LIFECYCLE_SEGMENTS, MixFeature, QueryPart, RFM_SEGMENTS};

use super::{ProfileRun, REPORT_QUANTILES, SCALE, Step};
use crate::analysis::{Released, count, quantiles};
use crate::profile::{Layout, Meaning, segmentation};
use crate::report::{
    Bin, CategoryDistribution, Cell, ClusterQuality, Distribution, PrivacySummary, ProfileReport,
    ReleaseSummary, SCHEMA,
};
use crate::spec::ProfileSpec;

impl ProfileRun {
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
