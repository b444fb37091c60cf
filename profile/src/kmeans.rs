//! Weighted k-means on released data, for the initialization of federated k-means: the points
//! are the cells of a noisy joint histogram (their centres, weighted by their noisy counts), so
//! everything here is post-processing and costs no budget.
//!
//! k-means++ seeding (Arthur and Vassilvitskii 2007) from a fixed-seed generator, then Lloyd
//! iterations; the best of several restarts by weighted cost. Deterministic for a given seed.

/// Restarts; the best by weighted cost is kept.
const RESTARTS: u32 = 8;
/// Lloyd iterations per restart (each is cheap: a few thousand weighted points).
const ITERATIONS: u32 = 50;

/// SplitMix64: enough for choosing seeds among released points (no secret is involved).
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn nearest(p: &[f64], centroids: &[Vec<f64>]) -> (usize, f64) {
    centroids
        .iter()
        .enumerate()
        .map(|(j, c)| (j, dist2(p, c)))
        .fold(
            (0, f64::INFINITY),
            |best, cur| if cur.1 < best.1 { cur } else { best },
        )
}

/// Weighted cost: `sum_i w_i min_j |p_i - c_j|^2`.
pub fn cost(points: &[Vec<f64>], weights: &[f64], centroids: &[Vec<f64>]) -> f64 {
    points
        .iter()
        .zip(weights)
        .map(|(p, w)| w * nearest(p, centroids).1)
        .sum()
}

fn seed(points: &[Vec<f64>], weights: &[f64], k: usize, rng: &mut SplitMix) -> Vec<Vec<f64>> {
    let total: f64 = weights.iter().sum();
    let pick = |r: f64, scores: &[f64]| {
        let mut acc = 0.0;
        for (i, s) in scores.iter().enumerate() {
            acc += s;
            if acc >= r {
                return i;
            }
        }
        scores.len() - 1
    };
    let mut centroids = vec![points[pick(rng.next_f64() * total, weights)].clone()];
    while centroids.len() < k {
        let scores: Vec<f64> = points
            .iter()
            .zip(weights)
            .map(|(p, w)| w * nearest(p, &centroids).1)
            .collect();
        let sum: f64 = scores.iter().sum();
        if sum <= 0.0 {
            // Fewer distinct weighted points than clusters: repeat the last one.
            let last = centroids[centroids.len() - 1].clone();
            centroids.push(last);
            continue;
        }
        centroids.push(points[pick(rng.next_f64() * sum, &scores)].clone());
    }
    centroids
}

fn lloyd(points: &[Vec<f64>], weights: &[f64], mut centroids: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let dims = centroids.first().map_or(0, Vec::len);
    for _ in 0..ITERATIONS {
        let mut sums = vec![vec![0.0; dims]; centroids.len()];
        let mut mass = vec![0.0; centroids.len()];
        for (p, w) in points.iter().zip(weights) {
            let (j, _) = nearest(p, &centroids);
            mass[j] += w;
            for (s, x) in sums[j].iter_mut().zip(p) {
                *s += w * x;
            }
        }
        let mut moved = false;
        for ((c, s), m) in centroids.iter_mut().zip(&sums).zip(&mass) {
            if *m > 0.0 {
                let next: Vec<f64> = s.iter().map(|x| x / m).collect();
                moved |= dist2(c, &next) > 1e-18;
                *c = next;
            }
        }
        if !moved {
            break;
        }
    }
    centroids
}

/// `k` centroids for weighted `points` (negative weights count as 0), or `None` when there is
/// no positive weight at all.
pub fn weighted_kmeans(
    points: &[Vec<f64>],
    weights: &[f64],
    k: usize,
    seed_value: u64,
) -> Option<Vec<Vec<f64>>> {
    let weights: Vec<f64> = weights.iter().map(|w| w.max(0.0)).collect();
    if k == 0 || points.is_empty() || weights.iter().sum::<f64>() <= 0.0 {
        return None;
    }
    let mut rng = SplitMix(seed_value);
    let mut best: Option<(f64, Vec<Vec<f64>>)> = None;
    for _ in 0..RESTARTS {
        let c = lloyd(points, &weights, seed(points, &weights, k, &mut rng));
        let cst = cost(points, &weights, &c);
        if best.as_ref().is_none_or(|(b, _)| cst < *b) {
            best = Some((cst, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separated_weighted_clusters() {
        // Three tight groups in 2-D with different weights.
        let mut points = Vec::new();
        let mut weights = Vec::new();
        for (cx, cy, w) in [(0.1, 0.1, 5.0), (0.9, 0.1, 1.0), (0.5, 0.9, 3.0)] {
            for d in [-0.01, 0.0, 0.01] {
                points.push(vec![cx + d, cy - d]);
                weights.push(w);
            }
        }
        let mut c = weighted_kmeans(&points, &weights, 3, 7).unwrap();
        c.sort_by(|a, b| a[0].total_cmp(&b[0]));
        for (got, want) in c.iter().zip([[0.1, 0.1], [0.5, 0.9], [0.9, 0.1]]) {
            assert!(dist2(got, &want) < 1e-9, "{got:?} vs {want:?}");
        }
        // Deterministic for a seed.
        assert_eq!(
            weighted_kmeans(&points, &weights, 3, 7),
            weighted_kmeans(&points, &weights, 3, 7)
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(weighted_kmeans(&[vec![0.5]], &[-3.0], 2, 1), None);
        let one = weighted_kmeans(&[vec![0.5]], &[2.0], 3, 1).unwrap();
        assert_eq!(one, vec![vec![0.5]; 3]);
    }
}
