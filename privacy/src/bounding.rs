//! Contribution bounding: every customer's contribution to a release is clipped to bounds the
//! job declares, and the sensitivity of the release follows from those bounds alone.
//!
//! Everything here is on integers: real features are encoded first ([`crate::FixedPoint`]) and
//! clipped after, so that the bounds the privacy proof relies on hold exactly. A
//! [`Sensitivity`] cannot be typed in by a user: the only way to get one is from a
//! [`ContributionBounds`], and it is exactly the largest change one customer can make.
//!
//! The privacy unit is one customer at one node (`docs/PRIVACY.md`). With
//! [`Neighbouring::AddRemove`] (the default for fedprof) two datasets are neighbours when one
//! has one more customer; the release changes by that customer's clipped vector `v`. With
//! [`Neighbouring::Replace`] one customer's data is swapped for another's: the change is
//! `v - v'`.

use num_bigint::BigUint;
use num_rational::Ratio;
use num_traits::Zero;

/// Why bounds or a vector were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundingError {
    /// A coordinate range has `lo > hi`.
    #[error("coordinate range [{lo}, {hi}] is empty")]
    EmptyRange {
        /// Declared lower bound.
        lo: i64,
        /// Declared upper bound.
        hi: i64,
    },
    /// No coordinates were declared.
    #[error("a contribution needs at least one coordinate")]
    NoCoordinates,
    /// The declared L2 norm bound is zero.
    #[error("the L2 norm bound must be positive")]
    ZeroNorm,
    /// An L2 bound was declared together with a coordinate range that excludes 0. Scaling a
    /// vector down moves it towards 0 and could leave such a range.
    #[error(
        "coordinate {index} has range [{lo}, {hi}], which excludes 0; an L2 bound needs ranges containing 0"
    )]
    RangeExcludesZero {
        /// The coordinate.
        index: usize,
        /// Its lower bound.
        lo: i64,
        /// Its upper bound.
        hi: i64,
    },
    /// The vector to clip has a different length from the declared bounds.
    #[error("contribution has {got} coordinates, the bounds declare {expected}")]
    DimensionMismatch {
        /// Declared dimension.
        expected: usize,
        /// Length of the vector given.
        got: usize,
    },
}

/// A closed integer interval `[lo, hi]` for one coordinate of a contribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinateRange {
    lo: i64,
    hi: i64,
}

impl CoordinateRange {
    /// `[lo, hi]`; refuses `lo > hi`.
    pub fn new(lo: i64, hi: i64) -> Result<Self, BoundingError> {
        if lo > hi {
            return Err(BoundingError::EmptyRange { lo, hi });
        }
        Ok(CoordinateRange { lo, hi })
    }

    /// `[0, 1]`: a count or an indicator.
    pub fn indicator() -> Self {
        CoordinateRange { lo: 0, hi: 1 }
    }

    /// The lower bound.
    pub fn lo(&self) -> i64 {
        self.lo
    }

    /// The upper bound.
    pub fn hi(&self) -> i64 {
        self.hi
    }

    /// The nearest point of the range.
    pub fn clamp(&self, x: i64) -> i64 {
        x.clamp(self.lo, self.hi)
    }

    /// `max(|lo|, |hi|)`: the largest magnitude in the range.
    fn max_abs(&self) -> u64 {
        self.lo.unsigned_abs().max(self.hi.unsigned_abs())
    }

    /// `hi - lo`, the largest difference of two points in the range.
    fn width(&self) -> u64 {
        self.hi.abs_diff(self.lo)
    }
}

/// Which datasets count as neighbours (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Neighbouring {
    /// One dataset has one more customer than the other.
    #[default]
    AddRemove,
    /// One customer's data is replaced by another's.
    Replace,
}

/// The declared bounds on one customer's contribution vector: a range per coordinate and,
/// optionally, an L2 norm bound `C` (in the same integer units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContributionBounds {
    ranges: Vec<CoordinateRange>,
    l2_norm: Option<u64>,
}

impl ContributionBounds {
    /// Checks and wraps the declared bounds.
    pub fn new(ranges: Vec<CoordinateRange>, l2_norm: Option<u64>) -> Result<Self, BoundingError> {
        if ranges.is_empty() {
            return Err(BoundingError::NoCoordinates);
        }
        if let Some(c) = l2_norm {
            if c == 0 {
                return Err(BoundingError::ZeroNorm);
            }
            if let Some((index, r)) = ranges
                .iter()
                .enumerate()
                .find(|(_, r)| r.lo > 0 || r.hi < 0)
            {
                return Err(BoundingError::RangeExcludesZero {
                    index,
                    lo: r.lo,
                    hi: r.hi,
                });
            }
        }
        Ok(ContributionBounds { ranges, l2_norm })
    }

    /// The number of coordinates.
    pub fn dimension(&self) -> usize {
        self.ranges.len()
    }

    /// The coordinate ranges.
    pub fn ranges(&self) -> &[CoordinateRange] {
        &self.ranges
    }

    /// The L2 norm bound, if declared.
    pub fn l2_norm(&self) -> Option<u64> {
        self.l2_norm
    }

    /// Clips one customer's vector: each coordinate to its range, then, if an L2 bound `C` is
    /// declared and `||v|| > C`, every coordinate to `trunc(v_i C / D)` with
    /// `D = ceil(sqrt(||v||^2))`. Since `D >= ||v||` and truncation moves towards 0, the result
    /// has norm at most `C` and stays in its ranges (which contain 0). Exact integer arithmetic.
    pub fn clip(&self, v: &[i64]) -> Result<Vec<i64>, BoundingError> {
        if v.len() != self.ranges.len() {
            return Err(BoundingError::DimensionMismatch {
                expected: self.ranges.len(),
                got: v.len(),
            });
        }
        let mut out: Vec<i64> = v
            .iter()
            .zip(&self.ranges)
            .map(|(&x, r)| r.clamp(x))
            .collect();
        if let Some(c) = self.l2_norm {
            let norm_sq: BigUint = out
                .iter()
                .map(|x| BigUint::from(x.unsigned_abs()).pow(2))
                .sum();
            let c_sq = BigUint::from(c).pow(2);
            if norm_sq > c_sq {
                let s = norm_sq.sqrt();
                let d = if &s * &s == norm_sq { s } else { s + 1u32 };
                // d > c >= 1, and |x| * c / d < |x| <= 2^63, so every quotient fits an i64.
                let (c_big, d_big) = (BigUint::from(c), d);
                for x in &mut out {
                    let q = BigUint::from(x.unsigned_abs()) * &c_big / &d_big;
                    let q = i64::try_from(q).unwrap_or(0);
                    *x = if *x < 0 { -q } else { q };
                }
            }
        }
        Ok(out)
    }

    /// The exact sensitivity of a per-node sum of clipped contributions.
    ///
    /// With `m_i = max(|lo_i|, |hi_i|)` (add/remove) or `m_i = hi_i - lo_i` (replace):
    /// `Delta_2^2 = min(sum m_i^2, C'^2)` and
    /// `Delta_1 = min(sum m_i, floor(sqrt(d C'^2)), C'^2)`, where `C' = C` (add/remove) or `2C`
    /// (replace) when an L2 bound is declared. The last two L1 bounds hold because an integer
    /// vector has `||u||_1 <= sqrt(d) ||u||_2` and `||u||_1 <= ||u||_2^2`.
    pub fn sensitivity(&self, neighbouring: Neighbouring) -> Sensitivity {
        let per_coord = |r: &CoordinateRange| match neighbouring {
            Neighbouring::AddRemove => BigUint::from(r.max_abs()),
            Neighbouring::Replace => BigUint::from(r.width()),
        };
        let mut l2_squared: BigUint = self.ranges.iter().map(|r| per_coord(r).pow(2)).sum();
        let mut l1: BigUint = self.ranges.iter().map(per_coord).sum();
        if let Some(c) = self.l2_norm {
            let c = match neighbouring {
                Neighbouring::AddRemove => BigUint::from(c),
                Neighbouring::Replace => BigUint::from(c) * 2u32,
            };
            let c_sq = &c * &c;
            let d = BigUint::from(self.ranges.len());
            // ceil(sqrt(d c^2)) bounds Delta_1 from above (a floor could fall below it).
            let dc_sq = &d * &c_sq;
            let mut root = dc_sq.sqrt();
            if &root * &root < dc_sq {
                root += 1u32;
            }
            l1 = l1.min(root).min(c_sq.clone());
            l2_squared = l2_squared.min(c_sq);
        }
        Sensitivity {
            l2_squared,
            l1,
            dimension: self.ranges.len() as u64,
        }
    }
}

/// The sensitivity of a release: the largest change one customer can make to it, in L2
/// (squared, exact) and L1, together with the release's dimension (number of coordinates),
/// which the distributed accounting needs. Only [`ContributionBounds::sensitivity`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensitivity {
    l2_squared: BigUint,
    l1: BigUint,
    dimension: u64,
}

impl Sensitivity {
    /// A sensitivity given by its integer norms: `Delta_2^2`, `Delta_1`, over `dimension`
    /// coordinates. For callers that derive the bound themselves (a feature query sums its
    /// parts' bounds); `l2_squared <= l1^2` holds for any integer vector.
    pub fn from_integer_norms(l2_squared: BigUint, l1: BigUint, dimension: u64) -> Sensitivity {
        Sensitivity {
            l2_squared,
            l1,
            dimension,
        }
    }

    /// `Delta_2^2`, exact.
    pub fn l2_squared(&self) -> Ratio<BigUint> {
        Ratio::from_integer(self.l2_squared.clone())
    }

    /// `Delta_1`, exact.
    pub fn l1(&self) -> Ratio<BigUint> {
        Ratio::from_integer(self.l1.clone())
    }

    /// The number of coordinates of the release.
    pub fn dimension(&self) -> u64 {
        self.dimension
    }

    /// Whether one customer cannot change the release at all (all ranges are `[0, 0]`).
    pub fn is_zero(&self) -> bool {
        self.l2_squared.is_zero()
    }

    /// The same per-customer bound for a release of `dimension` coordinates, when the
    /// customer can touch only the coordinates these bounds describe (e.g. one segment's
    /// block of a longer vector). Never lowers the dimension: the distributed accounting
    /// grows with it, so a larger one is the conservative side.
    pub fn spread_over(&self, dimension: u64) -> Sensitivity {
        Sensitivity {
            l2_squared: self.l2_squared.clone(),
            l1: self.l1.clone(),
            dimension: dimension.max(self.dimension),
        }
    }

    /// The sensitivity of several releases published together (their vectors concatenated):
    /// squared L2 norms add, L1 norms add.
    pub fn concat(&self, other: &Sensitivity) -> Sensitivity {
        Sensitivity {
            l2_squared: &self.l2_squared + &other.l2_squared,
            l1: &self.l1 + &other.l1,
            dimension: self.dimension.saturating_add(other.dimension),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(lo: i64, hi: i64) -> CoordinateRange {
        CoordinateRange::new(lo, hi).unwrap()
    }

    fn int(n: u64) -> Ratio<BigUint> {
        Ratio::from_integer(BigUint::from(n))
    }

    #[test]
    fn count_and_clipped_amount() {
        // A customer counts once and contributes an amount clipped to [0, 500.00] in cents.
        let b = ContributionBounds::new(vec![CoordinateRange::indicator(), range(0, 50_000)], None)
            .unwrap();
        let s = b.sensitivity(Neighbouring::AddRemove);
        assert_eq!(s.l2_squared(), int(1 + 50_000 * 50_000));
        assert_eq!(s.l1(), int(50_001));
        assert_eq!(b.clip(&[3, 99_999]).unwrap(), vec![1, 50_000]);
        assert_eq!(b.clip(&[-2, -5]).unwrap(), vec![0, 0]);
        // Replacing a customer: the same, since the ranges start at 0.
        assert_eq!(b.sensitivity(Neighbouring::Replace), s);
    }

    #[test]
    fn signed_ranges_differ_between_neighbouring_relations() {
        let b = ContributionBounds::new(vec![range(-3, 5), range(-10, -2)], None).unwrap();
        let add = b.sensitivity(Neighbouring::AddRemove);
        assert_eq!(add.l2_squared(), int(25 + 100));
        assert_eq!(add.l1(), int(15));
        let rep = b.sensitivity(Neighbouring::Replace);
        assert_eq!(rep.l2_squared(), int(64 + 64));
        assert_eq!(rep.l1(), int(16));
    }

    #[test]
    fn l2_bound_caps_sensitivity_and_clipping_respects_it() {
        let ranges = vec![range(-100, 100); 4];
        let b = ContributionBounds::new(ranges, Some(10)).unwrap();
        let s = b.sensitivity(Neighbouring::AddRemove);
        assert_eq!(s.l2_squared(), int(100));
        // L1 <= min(400, floor(sqrt(4 * 100)) = 20, 100).
        assert_eq!(s.l1(), int(20));
        assert_eq!(b.sensitivity(Neighbouring::Replace).l2_squared(), int(400));
        for v in [
            [100, 100, 100, 100],
            [7, -8, 0, 1],
            [-100, 3, 50, -9],
            [i64::MAX, i64::MIN, 0, 0],
        ] {
            let c = b.clip(&v).unwrap();
            let norm_sq: i128 = c.iter().map(|&x| i128::from(x) * i128::from(x)).sum();
            assert!(norm_sq <= 100, "{v:?} -> {c:?}");
            // Coordinates keep their sign and do not grow.
            for (x, y) in v.iter().zip(&c) {
                assert!(
                    y.unsigned_abs() <= x.unsigned_abs() && (*y == 0 || x.signum() == y.signum())
                );
            }
        }
        // A vector already within the bound is untouched.
        assert_eq!(b.clip(&[6, -8, 0, 0]).unwrap(), vec![6, -8, 0, 0]);
        assert_eq!(b.clip(&[100, 0, 0, 0]).unwrap(), vec![10, 0, 0, 0]);
    }

    #[test]
    fn invalid_bounds_are_refused() {
        assert_eq!(
            CoordinateRange::new(2, 1),
            Err(BoundingError::EmptyRange { lo: 2, hi: 1 })
        );
        assert_eq!(
            ContributionBounds::new(vec![], None),
            Err(BoundingError::NoCoordinates)
        );
        assert_eq!(
            ContributionBounds::new(vec![range(0, 1)], Some(0)),
            Err(BoundingError::ZeroNorm)
        );
        assert_eq!(
            ContributionBounds::new(vec![range(0, 1), range(5, 9)], Some(3)),
            Err(BoundingError::RangeExcludesZero {
                index: 1,
                lo: 5,
                hi: 9
            })
        );
        let b = ContributionBounds::new(vec![range(0, 1)], None).unwrap();
        assert_eq!(
            b.clip(&[1, 2]),
            Err(BoundingError::DimensionMismatch {
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn extreme_ranges_do_not_overflow() {
        let b = ContributionBounds::new(vec![range(i64::MIN, i64::MAX); 3], None).unwrap();
        let s = b.sensitivity(Neighbouring::Replace);
        let w = BigUint::from(u64::MAX);
        assert_eq!(s.l2_squared(), Ratio::from_integer(&w * &w * 3u32));
        let concat = s.concat(&s);
        assert_eq!(concat.l1(), Ratio::from_integer(w * 6u32));
        assert_eq!((s.dimension(), concat.dimension()), (3, 6));
        let zero = ContributionBounds::new(vec![range(0, 0)], None).unwrap();
        assert!(zero.sensitivity(Neighbouring::AddRemove).is_zero());
    }
}
