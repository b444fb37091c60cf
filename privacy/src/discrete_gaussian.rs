//! The exact discrete Gaussian sampler: Canonne, Kamath, Steinke 2020, "The Discrete Gaussian
//! for Differential Privacy" (arXiv:2004.00010), Algorithm 3, over an injected CSPRNG.
//!
//! `N_Z(0, sigma^2)` puts mass proportional to `exp(-x^2 / (2 sigma^2))` on each integer `x`.
//! The sampler draws a discrete Laplace candidate `Y` with scale `t = floor(sigma) + 1` and keeps
//! it with probability `exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2))`, computed as an exact Bernoulli
//! of a rational exponent. No floating point is involved, so the output distribution is exactly
//! the discrete Gaussian (Mironov 2012 shows what floating-point noise leaks).
//!
//! In production the RNG is a `chacha20::ChaCha20Rng` seeded from the operating system; tests
//! seed it explicitly. Noise values are secrets: never log them (see `docs/PRIVACY.md`).

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive};
use rand_core::CryptoRng;

use crate::sampling::{bernoulli_exp_big, bernoulli_exp_u128, discrete_laplace_parts};
use crate::variance::Variance;

/// A sampler for `N_Z(0, sigma^2)` with the constants of its rejection step precomputed.
///
/// Output range: the sample is an `i64`. A candidate of magnitude above `i64::MAX` is rejected
/// and redrawn, so the output is the discrete Gaussian conditioned on `|X| <= 2^63 - 1`; since
/// [`Variance`] caps `sigma^2` at `2^64`, the conditioning event has probability at least
/// `1 - 2 exp(-2^61)` and the two distributions are indistinguishable.
#[derive(Clone, Debug)]
pub struct DiscreteGaussian {
    variance: Variance,
    /// `floor(sigma) + 1`, at most `2^32 + 1`.
    t: u64,
    /// `sigma^2 = p / q` in lowest terms.
    p: BigUint,
    /// `q * t`.
    qt: BigUint,
    /// `2 p q t^2`: the rejection exponent is `(|Y| q t - p)^2 / (2 p q t^2)`.
    den: BigUint,
    /// The same constants as `u128` when they fit (the fast path).
    small: Option<Small>,
}

#[derive(Clone, Copy, Debug)]
struct Small {
    p: u128,
    qt: u128,
    den: u128,
}

impl DiscreteGaussian {
    /// A sampler for `N_Z(0, variance)`.
    pub fn new(variance: &Variance) -> Self {
        let p = variance.numer().clone();
        let q = variance.denom();
        // floor(sqrt(p/q)) = floor(sqrt(floor(p/q))); p/q <= 2^64, so t <= 2^32 + 1.
        let floor_sigma = (&p / q).sqrt();
        let t_big = floor_sigma + BigUint::one();
        let t = t_big.to_u64().unwrap_or(u64::MAX);
        let qt = q * &t_big;
        let den = BigUint::from(2u8) * &p * q * &t_big * &t_big;
        let small = match (p.to_u128(), qt.to_u128(), den.to_u128()) {
            (Some(p), Some(qt), Some(den)) => Some(Small { p, qt, den }),
            _ => None,
        };
        DiscreteGaussian {
            variance: variance.clone(),
            t,
            p,
            qt,
            den,
            small,
        }
    }

    /// The variance `sigma^2` this sampler draws with.
    pub fn variance(&self) -> &Variance {
        &self.variance
    }

    /// One sample of `N_Z(0, sigma^2)`.
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        loop {
            let (negative, magnitude) = discrete_laplace_parts(rng, self.t);
            let Ok(m) = i64::try_from(magnitude) else {
                continue;
            };
            if self.accept(rng, m.unsigned_abs()) {
                return if negative { -m } else { m };
            }
        }
    }

    /// Fills `out` with independent samples.
    pub fn fill<R: CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [i64]) {
        for x in out {
            *x = self.sample(rng);
        }
    }

    /// `len` independent samples.
    pub fn sample_vec<R: CryptoRng + ?Sized>(&self, rng: &mut R, len: usize) -> Vec<i64> {
        (0..len).map(|_| self.sample(rng)).collect()
    }

    /// `Bernoulli(exp(-(m - sigma^2/t)^2 / (2 sigma^2)))`, i.e. of
    /// `(m q t - p)^2 / (2 p q t^2)`.
    fn accept<R: CryptoRng + ?Sized>(&self, rng: &mut R, m: u64) -> bool {
        if let Some(s) = self.small {
            let diff = u128::from(m).checked_mul(s.qt).map(|mqt| mqt.abs_diff(s.p));
            if let Some(num) = diff.and_then(|d| d.checked_mul(d)) {
                return bernoulli_exp_u128(rng, num, s.den);
            }
        }
        let mqt = BigUint::from(m) * &self.qt;
        let diff = if mqt >= self.p {
            mqt - &self.p
        } else {
            &self.p - mqt
        };
        bernoulli_exp_big(rng, &(&diff * &diff), &self.den)
    }
}

/// One sample of `N_Z(0, variance)`; for many samples build a [`DiscreteGaussian`] once.
pub fn sample<R: CryptoRng + ?Sized>(rng: &mut R, variance: &Variance) -> i64 {
    DiscreteGaussian::new(variance).sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn constants_follow_the_variance() {
        let g = DiscreteGaussian::new(&"2500/3".parse().unwrap());
        // sigma = sqrt(833.33) = 28.87: t = 29.
        assert_eq!(g.t, 29);
        assert_eq!(g.qt, BigUint::from(87u32));
        assert_eq!(g.den, BigUint::from(2u32 * 2500 * 3 * 29 * 29));
        let quarter = DiscreteGaussian::new(&"1/4".parse().unwrap());
        assert_eq!(quarter.t, 1);
        let max = DiscreteGaussian::new(&"18446744073709551616".parse().unwrap());
        assert_eq!(max.t, (1 << 32) + 1);
        // 2 p q t^2 is about 2^129: the sampler takes the BigUint path.
        assert!(max.small.is_none());
        assert!(g.small.is_some());
    }

    #[test]
    fn fast_and_big_paths_agree_on_the_acceptance_probability() {
        // The u128 path and the BigUint path draw the same Bernoulli: with the same seed they
        // must consume the same randomness and give the same answers.
        let g = DiscreteGaussian::new(&"9".parse().unwrap());
        let mut forced_big = g.clone();
        forced_big.small = None;
        let mut a = ChaCha20Rng::from_seed([9; 32]);
        let mut b = ChaCha20Rng::from_seed([9; 32]);
        for m in 0..200u64 {
            assert_eq!(
                g.accept(&mut a, m % 40),
                forced_big.accept(&mut b, m % 40),
                "m = {m}"
            );
        }
    }

    #[test]
    fn samples_are_reproducible_from_the_seed() {
        let g = DiscreteGaussian::new(&"9".parse().unwrap());
        let a = g.sample_vec(&mut ChaCha20Rng::from_seed([7; 32]), 64);
        let b = g.sample_vec(&mut ChaCha20Rng::from_seed([7; 32]), 64);
        let c = g.sample_vec(&mut ChaCha20Rng::from_seed([8; 32]), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut filled = [0i64; 64];
        g.fill(&mut ChaCha20Rng::from_seed([7; 32]), &mut filled);
        assert_eq!(filled.as_slice(), a.as_slice());
    }
}
