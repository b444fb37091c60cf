//! Exact samplers that the discrete Gaussian is built from: uniform integers, Bernoulli with a
//! rational parameter, `Bernoulli(exp(-gamma))` for rational `gamma >= 0`, and the discrete
//! Laplace distribution. Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential
//! Privacy" (arXiv:2004.00010), Algorithms 1 and 2.
//!
//! Everything is integer arithmetic on the output of an injected [`CryptoRng`]: no floating
//! point, no `exp`, no rounding. Small operands take a `u64`/`u128` path; anything larger falls
//! back to [`BigUint`], so the result is exact for every input. Loop counters saturate at
//! `u64::MAX`; reaching that needs `2^64` consecutive successes of a trial that fails with
//! probability at least `1 - 1/e` (or `1 - 1/2`), an event of probability below `2^-(2^64)`,
//! which is the only departure from the exact distribution.

use std::num::NonZeroU64;

use num_bigint::BigUint;
use num_integer::Integer;
use num_rational::Ratio;
use num_traits::{ToPrimitive, Zero};
use rand_core::CryptoRng;

/// A uniform integer in `[0, bound)`; `bound >= 1`. Rejection sampling on the smallest
/// enclosing power of two: exact, and at most two draws on average.
pub(crate) fn uniform_below_u64<R: CryptoRng + ?Sized>(rng: &mut R, bound: u64) -> u64 {
    debug_assert!(bound >= 1);
    if bound.is_power_of_two() {
        return rng.next_u64() & (bound - 1);
    }
    // bound >= 3 here, so bound - 1 >= 2 and the shift is in range.
    let mask = u64::MAX >> (bound - 1).leading_zeros();
    loop {
        let x = rng.next_u64() & mask;
        if x < bound {
            return x;
        }
    }
}

/// A uniform integer in `[0, bound)`; `bound >= 1`.
pub(crate) fn uniform_below_u128<R: CryptoRng + ?Sized>(rng: &mut R, bound: u128) -> u128 {
    if let Ok(small) = u64::try_from(bound) {
        return u128::from(uniform_below_u64(rng, small));
    }
    // bound > u64::MAX >= 1.
    let mask = u128::MAX >> (bound - 1).leading_zeros();
    loop {
        let x = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if x < bound {
            return x;
        }
    }
}

/// A uniform integer in `[0, bound)`; `bound >= 1`.
pub(crate) fn uniform_below_big<R: CryptoRng + ?Sized>(rng: &mut R, bound: &BigUint) -> BigUint {
    if let Some(small) = bound.to_u128() {
        return BigUint::from(uniform_below_u128(rng, small));
    }
    // bound > u128::MAX: draw `bits` random bits, reject values >= bound (probability < 1/2).
    let bits = (bound - 1u32).bits();
    let words = bits.div_ceil(32);
    let top_bits = bits - (words - 1) * 32;
    let top_mask = u32::MAX >> (32 - top_bits);
    loop {
        let mut digits: Vec<u32> = (0..words).map(|_| rng.next_u32()).collect();
        if let Some(top) = digits.last_mut() {
            *top &= top_mask;
        }
        let x = BigUint::new(digits);
        if &x < bound {
            return x;
        }
    }
}

/// `Bernoulli(num / den)` for `num <= den`, `den >= 1`.
fn bernoulli_u128<R: CryptoRng + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    uniform_below_u128(rng, den) < num
}

/// `Bernoulli(num / den)` for `num <= den`, `den >= 1`.
fn bernoulli_big<R: CryptoRng + ?Sized>(rng: &mut R, num: &BigUint, den: &BigUint) -> bool {
    &uniform_below_big(rng, den) < num
}

/// `Bernoulli(p)` for an exact probability `p` in `[0, 1]`; `p > 1` is treated as 1.
pub fn bernoulli<R: CryptoRng + ?Sized>(rng: &mut R, p: &Ratio<BigUint>) -> bool {
    if p.numer() >= p.denom() {
        return true;
    }
    bernoulli_big(rng, p.numer(), p.denom())
}

/// `Bernoulli(exp(-num/den))` for `num <= den` (CKS20 Algorithm 1, von Neumann's trick):
/// draw `A_k ~ Bernoulli(gamma / k)` for `k = 1, 2, ...` until the first `A_k = 0`; return
/// whether that `k` is odd.
fn bernoulli_exp_unit_u128<R: CryptoRng + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    let mut k: u64 = 1;
    loop {
        let success = match den.checked_mul(u128::from(k)) {
            Some(dk) => bernoulli_u128(rng, num, dk),
            None => bernoulli_big(rng, &BigUint::from(num), &(BigUint::from(den) * k)),
        };
        if !success {
            return k % 2 == 1;
        }
        k = k.saturating_add(1);
    }
}

/// As [`bernoulli_exp_unit_u128`], for big operands.
fn bernoulli_exp_unit_big<R: CryptoRng + ?Sized>(
    rng: &mut R,
    num: &BigUint,
    den: &BigUint,
) -> bool {
    let mut k: u64 = 1;
    loop {
        if !bernoulli_big(rng, num, &(den * k)) {
            return k % 2 == 1;
        }
        k = k.saturating_add(1);
    }
}

/// `Bernoulli(exp(-1))`.
fn bernoulli_exp_one<R: CryptoRng + ?Sized>(rng: &mut R) -> bool {
    bernoulli_exp_unit_u128(rng, 1, 1)
}

/// `Bernoulli(exp(-num/den))` for any `num`, `den >= 1`: `floor(gamma)` draws of
/// `Bernoulli(exp(-1))` and one of `Bernoulli(exp(-frac(gamma)))`, all of which must succeed.
pub(crate) fn bernoulli_exp_u128<R: CryptoRng + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    let (whole, frac) = (num / den, num % den);
    let mut done: u128 = 0;
    while done < whole {
        if !bernoulli_exp_one(rng) {
            return false;
        }
        done += 1;
    }
    bernoulli_exp_unit_u128(rng, frac, den)
}

/// `Bernoulli(exp(-num/den))` for big operands; `den >= 1`.
pub(crate) fn bernoulli_exp_big<R: CryptoRng + ?Sized>(
    rng: &mut R,
    num: &BigUint,
    den: &BigUint,
) -> bool {
    if let (Some(n), Some(d)) = (num.to_u128(), den.to_u128()) {
        return bernoulli_exp_u128(rng, n, d);
    }
    let (mut whole, frac) = num.div_rem(den);
    while !whole.is_zero() {
        if !bernoulli_exp_one(rng) {
            return false;
        }
        whole -= 1u32;
    }
    match (frac.to_u128(), den.to_u128()) {
        (Some(n), Some(d)) => bernoulli_exp_unit_u128(rng, n, d),
        _ => bernoulli_exp_unit_big(rng, &frac, den),
    }
}

/// `Bernoulli(exp(-gamma))` for an exact `gamma >= 0`.
pub fn bernoulli_exp<R: CryptoRng + ?Sized>(rng: &mut R, gamma: &Ratio<BigUint>) -> bool {
    bernoulli_exp_big(rng, gamma.numer(), gamma.denom())
}

/// A discrete Laplace sample with integer scale `t`, as (negative, magnitude): CKS20 Algorithm 2
/// with `s = 1`. `P[X = x]` is proportional to `exp(-|x| / t)`.
///
/// The magnitude is `U + t V` with `U < t` and `V` a counter below `2^64`, so it is below
/// `2^128` and the `u128` arithmetic cannot overflow.
pub(crate) fn discrete_laplace_parts<R: CryptoRng + ?Sized>(rng: &mut R, t: u64) -> (bool, u128) {
    loop {
        let u = uniform_below_u64(rng, t);
        if !bernoulli_exp_unit_u128(rng, u128::from(u), u128::from(t)) {
            continue;
        }
        let mut v: u64 = 0;
        while bernoulli_exp_one(rng) {
            v = v.saturating_add(1);
        }
        let magnitude = u128::from(u) + u128::from(t) * u128::from(v);
        let negative = rng.next_u32() & 1 == 1;
        if negative && magnitude == 0 {
            continue;
        }
        return (negative, magnitude);
    }
}

/// A discrete Laplace sample with integer scale `scale`: `P[X = x]` is proportional to
/// `exp(-|x| / scale)`. A magnitude above `i128::MAX` (which needs `scale > 2^63` and about
/// `2^63` consecutive successes of a `Bernoulli(exp(-1))`) would be returned as `i128::MAX`.
pub fn discrete_laplace<R: CryptoRng + ?Sized>(rng: &mut R, scale: NonZeroU64) -> i128 {
    let (negative, magnitude) = discrete_laplace_parts(rng, scale.get());
    let m = i128::try_from(magnitude).unwrap_or(i128::MAX);
    if negative { -m } else { m }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    /// `|observed - expected|` within 5 binomial standard deviations: a correct sampler fails
    /// with probability below 6e-7 per check (normal approximation).
    fn assert_binomial(hits: u64, n: u64, p: f64, what: &str) {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (hits as f64 - mean).abs() <= 5.0 * sd + 1e-9,
            "{what}: {hits} of {n}, expected {mean:.1} +- {sd:.1}"
        );
    }

    #[test]
    fn uniform_is_in_range_and_balanced() {
        let mut r = rng(1);
        for bound in [1u64, 2, 3, 5, 7, 1 << 20, (1 << 63) + 1, u64::MAX] {
            for _ in 0..200 {
                assert!(uniform_below_u64(&mut r, bound) < bound);
            }
        }
        for bound in [u128::from(u64::MAX) + 1, u128::MAX, (1u128 << 100) + 3] {
            for _ in 0..200 {
                assert!(uniform_below_u128(&mut r, bound) < bound);
            }
        }
        let big = (BigUint::from(1u8) << 200u32) + 12345u32;
        let mut above_half = 0;
        for _ in 0..2000 {
            let x = uniform_below_big(&mut r, &big);
            assert!(x < big);
            if x >= (&big >> 1u32) {
                above_half += 1;
            }
        }
        assert_binomial(above_half, 2000, 0.5, "upper half of a 201-bit range");
        // Each residue mod 3 equally likely.
        let n = 30_000;
        let ones = (0..n).filter(|_| uniform_below_u64(&mut r, 3) == 1).count() as u64;
        assert_binomial(ones, n, 1.0 / 3.0, "uniform_below(3) == 1");
    }

    #[test]
    fn bernoulli_exp_matches_exp_for_small_and_big_operands() {
        let mut r = rng(2);
        let n = 20_000u64;
        // (num, den) as u128 and the same value with 2^140 multiplied into both (big path).
        for (num, den) in [(0u128, 1u128), (1, 3), (1, 1), (5, 2), (10, 3), (7, 7)] {
            let gamma = num as f64 / den as f64;
            let p = (-gamma).exp();
            let small = (0..n)
                .filter(|_| bernoulli_exp_u128(&mut r, num, den))
                .count() as u64;
            assert_binomial(small, n, p, &format!("exp(-{num}/{den}) small"));
            let scale = BigUint::from(1u8) << 140u32;
            let (bn, bd) = (BigUint::from(num) * &scale, BigUint::from(den) * &scale);
            // Ratio::new_raw keeps the unreduced operands so that the big path really runs.
            let g = Ratio::new_raw(bn, bd);
            let big = (0..n).filter(|_| bernoulli_exp(&mut r, &g)).count() as u64;
            assert_binomial(big, n, p, &format!("exp(-{num}/{den}) big"));
        }
    }

    #[test]
    fn bernoulli_rational_matches() {
        let mut r = rng(3);
        let n = 20_000u64;
        let p = Ratio::new(BigUint::from(2u8), BigUint::from(7u8));
        let hits = (0..n).filter(|_| bernoulli(&mut r, &p)).count() as u64;
        assert_binomial(hits, n, 2.0 / 7.0, "Bernoulli(2/7)");
        let one = Ratio::new(BigUint::from(3u8), BigUint::from(3u8));
        assert!((0..100).all(|_| bernoulli(&mut r, &one)));
        let zero = Ratio::new(BigUint::from(0u8), BigUint::from(3u8));
        assert!((0..100).all(|_| !bernoulli(&mut r, &zero)));
    }

    #[test]
    fn discrete_laplace_matches_its_pmf() {
        // P[X = x] = (1 - e^{-1/t}) / (1 + e^{-1/t}) e^{-|x|/t}.
        let mut r = rng(4);
        let n = 40_000u64;
        for t in [1u64, 3, 10] {
            let q = (-1.0 / t as f64).exp();
            let p0 = (1.0 - q) / (1.0 + q);
            let samples: Vec<i128> = (0..n)
                .map(|_| discrete_laplace(&mut r, NonZeroU64::new(t).unwrap()))
                .collect();
            for x in [-2i128, -1, 0, 1, 2] {
                let hits = samples.iter().filter(|&&s| s == x).count() as u64;
                let p = p0 * q.powi(x.unsigned_abs() as i32);
                assert_binomial(hits, n, p, &format!("Laplace({t}) at {x}"));
            }
            let neg = samples.iter().filter(|&&s| s < 0).count() as u64;
            assert_binomial(neg, n, (1.0 - p0) / 2.0, &format!("Laplace({t}) < 0"));
        }
    }
}
