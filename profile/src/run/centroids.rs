//! The k-means half of a [`ProfileRun`]: the initialization grid at the released quantiles,
//! the centroids seeded from it (or from the quantiles alone), and each Lloyd step. All of it
//! is post-processing of released results; none of it costs budget.

use fedprof_protocol::query::{QueryPart, Segmenter};

use super::{ProfileRun, SCALE};
use crate::analysis::{Released, edges};
use crate::profile::Meaning;
use crate::spec::Feature;

impl ProfileRun {
    pub(super) fn centroid_segmenter(&self) -> Segmenter {
        Segmenter::Centroids {
            dimensions: self.kmeans_dims.iter().map(|(_, d)| d.clone()).collect(),
            centroids: self.centroids.clone(),
        }
    }

    /// Edges of the initialization grid: `b` bins per dimension at the released marginal
    /// quantiles, `b = 4096^(1/d)` clamped to 2..=16 (16 x 16 x 16 for three dimensions).
    pub(super) fn grid_edges(&self) -> Vec<Vec<i64>> {
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
    pub(super) fn seed_centroids(&self, r: &Released) -> Vec<Vec<u32>> {
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
    pub(super) fn initial_centroids(&self) -> Vec<Vec<u32>> {
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
    pub(super) fn update_centroids(&mut self, r: &Released) {
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
}
