//! Fixed-point encoding of bounded reals into integers, exact reduction into the aggregation
//! ring `Z_2^64`, and the range in which a ring sum decodes unambiguously.
//!
//! Secure aggregation adds vectors in `Z_2^64` (wrapping `u64` addition). A node encodes each
//! value `x` as `round(x * scale)`, clips it (see [`crate::ContributionBounds`]), sums over its
//! customers, adds its noise in `i128` and reduces the result mod `2^64` (two's complement,
//! [`reduce`]). The coordinator's unmasked total is the true integer sum mod `2^64`;
//! [`from_ring`] returns the representative in `[-2^63, 2^63)`, which *is* the true sum whenever
//! `|sum| < 2^63`. [`check_overflow`] tells a job, before it runs, whether its data bounds and
//! noise keep every coordinate inside that range except with a stated probability.

use crate::variance::Variance;

/// Why a value could not be encoded, or a job's ranges do not fit the ring.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodingError {
    /// The scale is zero or above `2^53` (where `f64` stops representing integers exactly).
    #[error("fixed-point scale {0} must be between 1 and 2^53")]
    BadScale(u64),
    /// The value is NaN or infinite.
    #[error("cannot encode a non-finite value ({0})")]
    NotFinite(f64),
    /// `round(x * scale)` does not fit an `i64`.
    #[error("{0} times the scale does not fit a 64-bit integer")]
    OutOfRange(f64),
    /// Two vectors that should be summed have different lengths.
    #[error("vector lengths differ: {0} and {1}")]
    LengthMismatch(usize, usize),
    /// A parameter of the overflow check is out of its domain.
    #[error("overflow check: {0}")]
    BadParameter(&'static str),
    /// Data plus noise may reach `2^63`, where a ring sum no longer decodes.
    #[error("sums may reach {bound:.4e} (data {data}, noise tail {noise:.4e}), beyond 2^63 - 1")]
    MayOverflow {
        /// Data bound plus noise bound.
        bound: f64,
        /// `n` times the per-node bound, exact.
        data: u128,
        /// The noise tail bound.
        noise: f64,
    },
}

/// `2^63` as an `f64` (exact).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Fixed-point encoding with `scale` units per 1.0 (e.g. 100 for cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPoint {
    scale: u64,
}

impl FixedPoint {
    /// A codec with `scale` integer units per 1.0; `1 <= scale <= 2^53`.
    pub fn new(scale: u64) -> Result<Self, EncodingError> {
        if scale == 0 || scale > (1 << 53) {
            return Err(EncodingError::BadScale(scale));
        }
        Ok(FixedPoint { scale })
    }

    /// Integer units per 1.0.
    pub fn scale(&self) -> u64 {
        self.scale
    }

    /// `round(x * scale)`, ties away from zero. The product is one correctly rounded `f64`
    /// operation, so the encoding is a deterministic function of `x`; privacy does not depend
    /// on it being exact, because bounds are enforced afterwards on the integer.
    pub fn encode(&self, x: f64) -> Result<i64, EncodingError> {
        if !x.is_finite() {
            return Err(EncodingError::NotFinite(x));
        }
        let y = (x * self.scale as f64).round();
        // i64::MIN is -2^63 exactly; 2^63 itself does not fit.
        if !(-TWO_POW_63..TWO_POW_63).contains(&y) {
            return Err(EncodingError::OutOfRange(x));
        }
        Ok(y as i64)
    }

    /// `v / scale` as the nearest `f64`.
    pub fn decode(&self, v: i64) -> f64 {
        v as f64 / self.scale as f64
    }

    /// Decodes a ring total (see [`from_ring`] for the range in which it is exact).
    pub fn decode_sum(&self, total: u64) -> f64 {
        self.decode(from_ring(total))
    }
}

/// `v mod 2^64` in two's complement.
pub fn to_ring(v: i64) -> u64 {
    v as u64
}

/// `v mod 2^64` for a wider intermediate, e.g. a node's clipped sum plus its noise: the low 64
/// bits of the two's-complement form, exact for every `i128`.
pub fn reduce(v: i128) -> u64 {
    v as u64
}

/// The representative of a ring element in `[-2^63, 2^63)`. A ring sum of integers whose true
/// sum `s` satisfies `-2^63 <= s < 2^63` decodes to exactly `s`; outside that range it is off by
/// a multiple of `2^64`.
pub fn from_ring(v: u64) -> i64 {
    v as i64
}

/// `acc += v` in `Z_2^64`, coordinate by coordinate.
pub fn add_assign_ring(acc: &mut [u64], v: &[u64]) -> Result<(), EncodingError> {
    if acc.len() != v.len() {
        return Err(EncodingError::LengthMismatch(acc.len(), v.len()));
    }
    for (a, b) in acc.iter_mut().zip(v) {
        *a = a.wrapping_add(*b);
    }
    Ok(())
}

/// What [`check_overflow`] found: the worst data sum, the noise tail bound, and the margin.
#[derive(Debug, Clone, PartialEq)]
pub struct OverflowReport {
    /// `nodes * per_node_bound`: the largest `|sum|` of the data, exact.
    pub data_bound: u128,
    /// `T` with `P[|noise sum| >= T] <= failure_probability / dimension` per coordinate.
    pub noise_bound: f64,
    /// `log2(2^63 / (data_bound + noise_bound))`: bits to spare.
    pub headroom_bits: f64,
}

/// Checks that a job's sums stay decodable: `nodes` nodes each contribute, per coordinate, an
/// integer of magnitude at most `per_node_bound` plus one `N_Z(0, node_variance)` noise share;
/// over `dimension` coordinates, every sum must stay below `2^63` in magnitude except with
/// probability `failure_probability`.
///
/// A discrete Gaussian is subgaussian with parameter `sigma^2` (Canonne, Kamath, Steinke 2020),
/// so the sum of `n` independent shares is subgaussian with parameter `n sigma^2` and
/// `P[|Z| >= T] <= 2 exp(-T^2 / (2 n sigma^2))`. A union bound over the coordinates gives
/// `T = sqrt(2 n sigma^2 ln(2 d / beta))`; `T` is inflated by `1e-9` relative to absorb `f64`
/// rounding. Returns [`EncodingError::MayOverflow`] if `data_bound + T >= 2^63`.
pub fn check_overflow(
    nodes: u64,
    per_node_bound: u64,
    node_variance: &Variance,
    dimension: u64,
    failure_probability: f64,
) -> Result<OverflowReport, EncodingError> {
    if nodes == 0 || dimension == 0 {
        return Err(EncodingError::BadParameter(
            "nodes and dimension must be positive",
        ));
    }
    if !(failure_probability > 0.0 && failure_probability < 1.0) {
        return Err(EncodingError::BadParameter(
            "failure probability must be in (0, 1)",
        ));
    }
    let data_bound = u128::from(nodes) * u128::from(per_node_bound);
    let log_term = (2.0 * dimension as f64 / failure_probability).ln();
    let noise_bound =
        (2.0 * nodes as f64 * node_variance.to_f64() * log_term).sqrt() * (1.0 + 1e-9);
    let limit = TWO_POW_63;
    let total = data_bound as f64 + noise_bound.ceil();
    // data_bound < 2^64 * 2^64; an f64 sum rounds, so also demand the exact data part fits.
    if data_bound >= (1u128 << 63) || total >= limit * (1.0 - 1e-12) {
        return Err(EncodingError::MayOverflow {
            bound: total,
            data: data_bound,
            noise: noise_bound,
        });
    }
    Ok(OverflowReport {
        data_bound,
        noise_bound,
        headroom_bits: (limit / total.max(1.0)).log2(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_round_trips_and_rounds_half_away() {
        let cents = FixedPoint::new(100).unwrap();
        assert_eq!(cents.encode(12.345), Ok(1235));
        assert_eq!(cents.encode(-0.005), Ok(-1));
        assert_eq!(cents.encode(0.0), Ok(0));
        assert_eq!(cents.decode(1235), 12.35);
        assert_eq!(cents.encode(1e16), Ok(1_000_000_000_000_000_000));
        assert_eq!(cents.encode(1e17), Err(EncodingError::OutOfRange(1e17)));
        assert!(matches!(
            cents.encode(f64::NAN),
            Err(EncodingError::NotFinite(_))
        ));
        assert!(matches!(
            cents.encode(f64::NEG_INFINITY),
            Err(EncodingError::NotFinite(_))
        ));
        let unit = FixedPoint::new(1).unwrap();
        assert_eq!(unit.encode(-9_223_372_036_854_775_808.0), Ok(i64::MIN));
        assert!(unit.encode(9_223_372_036_854_775_808.0).is_err());
        assert_eq!(FixedPoint::new(0), Err(EncodingError::BadScale(0)));
        assert_eq!(
            FixedPoint::new((1 << 53) + 1),
            Err(EncodingError::BadScale((1 << 53) + 1))
        );
    }

    #[test]
    fn ring_sums_decode_exactly_inside_the_documented_range() {
        // Node values and noise, summed in Z_2^64 through wrapping, match the i128 sum.
        let parts: [i128; 5] = [
            -5_000_000_000,
            7,
            i128::from(i64::MAX) - 3,
            -(1 << 62),
            1 << 40,
        ];
        let mut acc = [0u64];
        for p in parts {
            add_assign_ring(&mut acc, &[reduce(p)]).unwrap();
        }
        let exact: i128 = parts.iter().sum();
        assert!(exact.abs() < 1 << 63);
        assert_eq!(i128::from(from_ring(acc[0])), exact);
        assert_eq!(from_ring(to_ring(-1)), -1);
        assert_eq!(from_ring(to_ring(i64::MIN)), i64::MIN);
        // Just outside: 2^63 wraps to -2^63, as documented.
        assert_eq!(from_ring(reduce(1 << 63)), i64::MIN);
        assert_eq!(reduce(-(1i128 << 64) + 5), 5);
        assert_eq!(
            FixedPoint::new(100).unwrap().decode_sum(to_ring(-250)),
            -2.5
        );
        assert_eq!(
            add_assign_ring(&mut [0u64; 2], &[1]),
            Err(EncodingError::LengthMismatch(2, 1))
        );
    }

    #[test]
    fn overflow_check_accepts_realistic_jobs_and_refuses_huge_ones() {
        let v = |s: &str| s.parse::<Variance>().unwrap();
        // 1,000 nodes, 10^9 customers' cents each up to 10^6 per node... 10^15 per node.
        let ok = check_overflow(
            1000,
            1_000_000_000_000_000,
            &v("1000000000000"),
            100_000,
            1e-12,
        )
        .unwrap();
        assert_eq!(ok.data_bound, 1_000_000_000_000_000_000);
        // sqrt(2 * 1000 * 1e12 * ln(2e5 / 1e-12)) ~ 2.8e8.
        assert!(
            (ok.noise_bound / 2.8e8 - 1.0).abs() < 0.05,
            "{}",
            ok.noise_bound
        );
        assert!(
            ok.headroom_bits > 3.0 && ok.headroom_bits < 3.3,
            "{}",
            ok.headroom_bits
        );
        let too_much = check_overflow(10_000, 1_000_000_000_000_000, &v("4"), 1, 1e-9);
        assert!(matches!(too_much, Err(EncodingError::MayOverflow { .. })));
        // Noise alone can exceed the range when sigma is at its maximum and nodes are many.
        let noisy = check_overflow(u64::MAX, 0, &v("18446744073709551616"), 1, 1e-9);
        assert!(matches!(noisy, Err(EncodingError::MayOverflow { .. })));
        assert!(check_overflow(0, 1, &v("4"), 1, 1e-9).is_err());
        assert!(check_overflow(1, 1, &v("4"), 1, 0.0).is_err());
        assert!(check_overflow(1, 1, &v("4"), 1, f64::NAN).is_err());
    }
}
