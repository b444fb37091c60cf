//! What a noisy release means: counts, means, shares, lifts and quantiles with the standard
//! deviation of the noise actually added (every contributor's share, `sigma_node^2` each).
//!
//! All of this is post-processing of released values: it costs no budget. Estimates are
//! ratio estimators; their standard deviations use the delta method, which is accurate when
//! the count is large against its noise (and cells below the minimum size are suppressed).

use fedprof_privacy::encoding::from_ring;
use fedprof_protocol::query::QueryPart;
use fedprof_protocol::{FeatureQuery, JobResult};

use crate::report::Cell;

/// A released feature-query vector, decoded.
#[derive(Debug, Clone)]
pub struct Released {
    /// The query.
    pub query: FeatureQuery,
    /// Signed sums in the query's fixed-point units.
    pub values: Vec<i64>,
    /// Standard deviation of the noise on each coordinate, in fixed-point units.
    pub sd: f64,
    /// Contributors.
    pub contributors: Vec<String>,
}

impl Released {
    /// Decodes `result` of `query`; `None` when the result is not of this query's shape.
    pub fn new(query: &FeatureQuery, result: &JobResult) -> Option<Released> {
        if result.values.len() != query.vector_len() {
            return None;
        }
        let variance: f64 = result
            .release
            .node_variance
            .first()
            .map(|f| f.numer as f64 / f.denom as f64)?;
        let n = result.contributors.len() as f64;
        Some(Released {
            query: query.clone(),
            values: result.values.iter().map(|v| from_ring(*v)).collect(),
            sd: (variance * n).sqrt(),
            contributors: result.contributors.iter().map(|c| c.to_string()).collect(),
        })
    }

    /// Coordinate offset of part `p` within a block.
    pub fn offset(&self, p: usize) -> usize {
        self.query.parts[..p].iter().map(QueryPart::width).sum()
    }

    /// The coordinates of part `p` of segment `s`, scaled to customer units (divided by
    /// `scale`); `None` for `s` or `p` out of range.
    pub fn part(&self, s: usize, p: usize) -> Option<Vec<f64>> {
        let width = self.query.parts.get(p)?.width();
        let start = s * self.query.block_len() + self.offset(p);
        let scale = f64::from(self.query.scale);
        Some(
            self.values
                .get(start..start + width)?
                .iter()
                .map(|v| *v as f64 / scale)
                .collect(),
        )
    }

    /// Part `p` summed over all segments (the population), in customer units.
    pub fn part_total(&self, p: usize) -> Vec<f64> {
        let mut total = vec![0.0; self.query.parts.get(p).map_or(0, QueryPart::width)];
        for s in 0..self.query.segmenter.segments() {
            if let Some(v) = self.part(s, p) {
                for (t, x) in total.iter_mut().zip(v) {
                    *t += x;
                }
            }
        }
        total
    }

    /// Noise sd of one coordinate in customer units.
    pub fn unit_sd(&self) -> f64 {
        self.sd / f64::from(self.query.scale)
    }

    /// Noise sd of a sum of `coords` coordinates, in customer units.
    pub fn sum_sd(&self, coords: usize) -> f64 {
        self.unit_sd() * (coords as f64).sqrt()
    }
}

/// A count cell: suppressed under `min_cell`, otherwise never below 0.
pub fn count(value: f64, sd: f64, min_cell: u64) -> Cell {
    if value < min_cell as f64 {
        Cell::Suppressed
    } else {
        Cell::Value { value, sd }
    }
}

/// `num / den` with the delta-method sd, suppressed when `den` is under `min_cell`.
pub fn ratio(num: f64, sd_num: f64, den: f64, sd_den: f64, min_cell: u64) -> Cell {
    if den < min_cell as f64 || den <= 0.0 {
        return Cell::Suppressed;
    }
    let r = num / den;
    let sd = ((sd_num / den).powi(2) + (r * sd_den / den).powi(2)).sqrt();
    Cell::Value { value: r, sd }
}

/// `a / b` of two cells (e.g. a lift), with the delta-method sd.
pub fn cell_ratio(a: Cell, b: Cell) -> Option<(f64, f64)> {
    match (a, b) {
        (Cell::Value { value: x, sd: sx }, Cell::Value { value: y, sd: sy }) if y > 0.0 => {
            let r = x / y;
            let rel = if x > 0.0 {
                ((sx / x).powi(2) + (sy / y).powi(2)).sqrt()
            } else {
                sx / y / r.max(f64::MIN_POSITIVE)
            };
            Some((r, (r * rel).abs()))
        }
        _ => None,
    }
}

/// Quantiles `ps` of a histogram with bins `[edges[i-1], edges[i])` (first bin from `lo`, last
/// to `hi`), from noisy counts clamped at 0, interpolating linearly within a bin.
pub fn quantiles(counts: &[f64], edges: &[f64], lo: f64, hi: f64, ps: &[f64]) -> Vec<f64> {
    let clamped: Vec<f64> = counts.iter().map(|c| c.max(0.0)).collect();
    let total: f64 = clamped.iter().sum();
    let bound = |i: usize| -> (f64, f64) {
        let a = if i == 0 { lo } else { edges[i - 1] };
        let b = if i == edges.len() { hi } else { edges[i] };
        (a, b.max(a))
    };
    ps.iter()
        .map(|p| {
            if total <= 0.0 {
                return lo;
            }
            let target = p * total;
            let mut cum = 0.0;
            for (i, c) in clamped.iter().enumerate() {
                if cum + c >= target && *c > 0.0 {
                    let (a, b) = bound(i);
                    return a + (b - a) * ((target - cum) / c).clamp(0.0, 1.0);
                }
                cum += c;
            }
            hi
        })
        .collect()
}

/// Integer bin edges splitting `[lo, hi]` into at most `bins` bins of one integer width
/// (`ceil((hi - lo) / bins)`), so that every bin holds as many integer values as the next and
/// integer features (days, counts) show no comb pattern.
pub fn edges(lo: i64, hi: i64, bins: u32) -> Vec<i64> {
    let span = i128::from(hi) - i128::from(lo);
    let width = (span + i128::from(bins.max(1)) - 1) / i128::from(bins.max(1));
    let width = width.max(1);
    let mut e: Vec<i64> = (1..)
        .map(|i| i128::from(lo) + width * i)
        .take_while(|x| *x < i128::from(hi))
        .map(|x| x as i64)
        .collect();
    if e.is_empty() {
        e.push(lo + (hi - lo) / 2);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_bins() {
        // Uniform counts over [0, 100) in 4 bins: quantiles are linear.
        let q = quantiles(
            &[25.0; 4],
            &[25.0, 50.0, 75.0],
            0.0,
            100.0,
            &[0.1, 0.5, 0.9],
        );
        for (got, want) in q.iter().zip([10.0, 50.0, 90.0]) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        // Negative noisy counts count as empty.
        let q = quantiles(&[-5.0, 10.0, 0.0, 10.0], &[1.0, 2.0, 3.0], 0.0, 4.0, &[0.5]);
        assert!((q[0] - 2.0).abs() < 1e-9, "{q:?}");
    }

    #[test]
    fn ratios_and_suppression() {
        assert_eq!(ratio(5.0, 1.0, 9.0, 1.0, 10), Cell::Suppressed);
        let Cell::Value { value, sd } = ratio(50.0, 2.0, 100.0, 2.0, 10) else {
            panic!("not suppressed");
        };
        assert!((value - 0.5).abs() < 1e-12);
        // sqrt((2/100)^2 + (0.5*2/100)^2) = sqrt(4e-4 + 1e-4)
        assert!((sd - 5e-4f64.sqrt()).abs() < 1e-12);
        assert_eq!(count(19.9, 3.0, 20), Cell::Suppressed);
    }

    #[test]
    fn edges_are_increasing_and_inside() {
        assert_eq!(edges(0, 100, 4), vec![25, 50, 75]);
        assert_eq!(edges(0, 3, 40), vec![1, 2]);
        // 60 days in at most 40 bins: width 2, 30 bins.
        assert_eq!(edges(0, 60, 40), (1..30).map(|i| 2 * i).collect::<Vec<_>>());
        let e = edges(0, 2_000_000, 40);
        assert_eq!(e.len(), 39);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }
}
