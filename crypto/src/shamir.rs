//! Shamir t-of-n secret sharing of 32-byte secrets over GF(p), p = 2^61 - 1.
//!
//! # Encoding
//!
//! A 32-byte secret is cut into five little-endian chunks of 7, 7, 7, 7 and 4 bytes; each chunk
//! (below 2^56 < p) is shared with its own random polynomial of degree `t - 1` whose constant
//! term is the chunk. A share is the five polynomial values at the holder's point `x` (nonzero,
//! below p), 40 bytes on the wire ([`SHARE_BYTES`], five little-endian `u64`). Sharing chunks
//! independently keeps Shamir's perfect secrecy (any `t - 1` shares are independent of the
//! secret), and the Mersenne prime makes a field multiplication one 64x64-bit product and two
//! folds. Why not GF(2^255 - 19) or the ed25519 scalar field: a 32-byte secret does not fit one
//! element of either (255 and 252 bits), so either needs two elements of 32 bytes (64 bytes per
//! share) and multiplications about twenty times slower; a dense 1000-node round evaluates
//! about 7 million products per node.
//!
//! # Secrecy and side channels
//!
//! Field arithmetic is branch-free (no secret-dependent branches or table look-ups); shares and
//! coefficients live in wiped buffers. Reconstruction also runs in constant time per element,
//! though its inputs are shares the coordinator is meant to learn. Reconstruction does not detect
//! a wrong share by itself: callers check the result against a commitment (the secure-aggregation
//! crate checks a reconstructed key against its public key and a seed against its hash).

use core::fmt;

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::SecretKey32;

/// The field modulus, the Mersenne prime 2^61 - 1.
pub const FIELD_PRIME: u64 = (1 << 61) - 1;
/// Field elements per share (chunks per 32-byte secret).
pub const CHUNKS: usize = 5;
/// Bytes of a share on the wire: [`CHUNKS`] little-endian `u64`.
pub const SHARE_BYTES: usize = CHUNKS * 8;
/// Bytes of the secret in each chunk.
const CHUNK_LENS: [usize; CHUNKS] = [7, 7, 7, 7, 4];

/// Why a sharing or a reconstruction was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// The threshold is 0, or above the number of holders.
    #[error("threshold {threshold} is not between 1 and the number of holders ({holders})")]
    BadThreshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of holders (or shares) available.
        holders: usize,
    },
    /// A point is 0 (that is where the secret is) or not below the field prime.
    #[error("share point {0} is 0 or outside the field")]
    BadPoint(u64),
    /// Two holders (or two shares) have the same point.
    #[error("share point {0} appears twice")]
    DuplicatePoint(u64),
    /// A share's bytes are not [`SHARE_BYTES`] long, or hold a value not below the prime.
    #[error("a share must be {SHARE_BYTES} bytes of five field elements")]
    MalformedShare,
    /// A [`Reconstructor`] was given more shares than it has points.
    #[error("more shares given than the reconstructor has points ({expected})")]
    TooManyShares {
        /// The number of points.
        expected: usize,
    },
    /// Fewer shares than the threshold.
    #[error("{have} share(s) given; {need} are needed")]
    NotEnoughShares {
        /// Shares given.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// The shares do not interpolate to an encoded secret (a chunk is out of range): at least
    /// one share is wrong.
    #[error("the shares are inconsistent: they do not encode a 32-byte secret")]
    Inconsistent,
}

/// One holder's share of one secret: the point `x` and the five chunk values there.
/// `Debug` is redacted (the point is shown); the values are wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Share {
    x: u64,
    y: [u64; CHUNKS],
}

impl Share {
    /// The holder's point.
    #[must_use]
    pub fn point(&self) -> u64 {
        self.x
    }

    /// The 40-byte wire form of the values (the point travels separately, as the holder's
    /// identity). Wiped on drop.
    #[must_use]
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_BYTES]> {
        let mut out = Zeroizing::new([0u8; SHARE_BYTES]);
        for (dst, v) in out.chunks_exact_mut(8).zip(self.y) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses the wire form of the share held at `point`.
    ///
    /// # Errors
    ///
    /// [`ShamirError::BadPoint`] for a point that is 0 or not below p,
    /// [`ShamirError::MalformedShare`] unless `bytes` is 40 bytes of values below p.
    pub fn from_bytes(point: u64, bytes: &[u8]) -> Result<Self, ShamirError> {
        check_point(point)?;
        if bytes.len() != SHARE_BYTES {
            return Err(ShamirError::MalformedShare);
        }
        let mut y = [0u64; CHUNKS];
        for (v, src) in y.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(src);
            *v = u64::from_le_bytes(word);
            word.zeroize();
        }
        if y.iter().any(|&v| v >= FIELD_PRIME) {
            y.zeroize();
            return Err(ShamirError::MalformedShare);
        }
        Ok(Self { x: point, y })
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share(x = {}, <redacted>)", self.x)
    }
}

/// Splits `secret` into one share per point in `points`, any `threshold` of which rebuild it.
///
/// # Errors
///
/// [`ShamirError::BadThreshold`] unless `1 <= threshold <= points.len()`;
/// [`ShamirError::BadPoint`] / [`ShamirError::DuplicatePoint`] for a bad point list.
pub fn split<R: CryptoRng + ?Sized>(
    secret: &SecretKey32,
    threshold: usize,
    points: &[u64],
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    split_with(secret, threshold, points, || random_element(rng))
}

/// [`split`] with the polynomial coefficients (degree 1 upwards, chunk by chunk within each
/// degree) drawn from `coefficient`, which must return field elements.
fn split_with(
    secret: &SecretKey32,
    threshold: usize,
    points: &[u64],
    mut coefficient: impl FnMut() -> u64,
) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 || threshold > points.len() {
        return Err(ShamirError::BadThreshold {
            threshold,
            holders: points.len(),
        });
    }
    check_points(points)?;
    // coeffs[j][c]: coefficient of x^j for chunk c.
    let mut coeffs: Zeroizing<Vec<[u64; CHUNKS]>> = Zeroizing::new(Vec::with_capacity(threshold));
    coeffs.push(encode(secret.expose_secret()));
    for _ in 1..threshold {
        coeffs.push(core::array::from_fn(|_| coefficient()));
    }
    let shares = points
        .iter()
        .map(|&x| {
            let mut acc = coeffs[threshold - 1];
            for c in coeffs[..threshold - 1].iter().rev() {
                for k in 0..CHUNKS {
                    acc[k] = add(mul(acc[k], x), c[k]);
                }
            }
            let share = Share { x, y: acc };
            acc.zeroize();
            share
        })
        .collect();
    Ok(shares)
}

/// Rebuilds a secret from the shares at one fixed set of points: the Lagrange weights at 0 are
/// computed once ([`Reconstructor::new`]) and reused for every secret shared among the same
/// holders (in a dense round, every secret).
#[derive(Debug, Clone)]
pub struct Reconstructor {
    points: Vec<u64>,
    weights: Vec<u64>,
}

impl Reconstructor {
    /// Weights for exactly `points` (as many shares as the threshold; more add nothing).
    ///
    /// # Errors
    ///
    /// [`ShamirError::BadPoint`] / [`ShamirError::DuplicatePoint`] for a bad point list,
    /// [`ShamirError::BadThreshold`] for an empty one.
    pub fn new(points: &[u64]) -> Result<Self, ShamirError> {
        if points.is_empty() {
            return Err(ShamirError::BadThreshold {
                threshold: 0,
                holders: 0,
            });
        }
        check_points(points)?;
        // weight_i = prod_{j != i} x_j / (x_j - x_i)
        let weights = points
            .iter()
            .enumerate()
            .map(|(i, &xi)| {
                let (mut num, mut den) = (1u64, 1u64);
                for (j, &xj) in points.iter().enumerate() {
                    if i != j {
                        num = mul(num, xj);
                        den = mul(den, sub(xj, xi));
                    }
                }
                // den != 0: the points are distinct.
                mul(num, invert(den))
            })
            .collect();
        Ok(Self {
            points: points.to_vec(),
            weights,
        })
    }

    /// The points these weights are for, in order.
    #[must_use]
    pub fn points(&self) -> &[u64] {
        &self.points
    }

    /// The secret whose shares at [`Reconstructor::points`] are `shares`, in the same order.
    ///
    /// # Errors
    ///
    /// [`ShamirError::NotEnoughShares`] unless one share per point is given, in order
    /// ([`ShamirError::BadPoint`] for a share at another point), and
    /// [`ShamirError::Inconsistent`] when the result does not encode a secret.
    pub fn reconstruct<'a>(
        &self,
        shares: impl IntoIterator<Item = &'a Share>,
    ) -> Result<SecretKey32, ShamirError> {
        let mut acc = Zeroizing::new([0u64; CHUNKS]);
        let mut count = 0;
        for share in shares {
            let Some(&x) = self.points.get(count) else {
                return Err(ShamirError::TooManyShares {
                    expected: self.points.len(),
                });
            };
            if share.x != x {
                return Err(ShamirError::BadPoint(share.x));
            }
            let w = self.weights[count];
            for k in 0..CHUNKS {
                acc[k] = add(acc[k], mul(w, share.y[k]));
            }
            count += 1;
        }
        if count != self.points.len() {
            return Err(ShamirError::NotEnoughShares {
                have: count,
                need: self.points.len(),
            });
        }
        decode(&acc)
    }
}

/// Rebuilds the secret from the first `threshold` of `shares`.
///
/// # Errors
///
/// As [`Reconstructor::new`] and [`Reconstructor::reconstruct`];
/// [`ShamirError::NotEnoughShares`] if fewer than `threshold` shares are given.
pub fn reconstruct(shares: &[Share], threshold: usize) -> Result<SecretKey32, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::BadThreshold {
            threshold,
            holders: shares.len(),
        });
    }
    if shares.len() < threshold {
        return Err(ShamirError::NotEnoughShares {
            have: shares.len(),
            need: threshold,
        });
    }
    let used = &shares[..threshold];
    let points: Vec<u64> = used.iter().map(Share::point).collect();
    Reconstructor::new(&points)?.reconstruct(used)
}

fn check_point(x: u64) -> Result<(), ShamirError> {
    if x == 0 || x >= FIELD_PRIME {
        return Err(ShamirError::BadPoint(x));
    }
    Ok(())
}

fn check_points(points: &[u64]) -> Result<(), ShamirError> {
    let mut sorted = points.to_vec();
    sorted.sort_unstable();
    for &x in &sorted {
        check_point(x)?;
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(ShamirError::DuplicatePoint(w[0]));
    }
    Ok(())
}

/// Uniform in GF(p): 61 random bits, rejecting the single value p (probability 2^-61).
fn random_element<R: CryptoRng + ?Sized>(rng: &mut R) -> u64 {
    loop {
        let v = rng.next_u64() >> 3;
        if v < FIELD_PRIME {
            return v;
        }
    }
}

fn encode(secret: &[u8; 32]) -> [u64; CHUNKS] {
    let mut out = [0u64; CHUNKS];
    let mut at = 0;
    for (v, len) in out.iter_mut().zip(CHUNK_LENS) {
        let mut word = [0u8; 8];
        word[..len].copy_from_slice(&secret[at..at + len]);
        *v = u64::from_le_bytes(word);
        word.zeroize();
        at += len;
    }
    out
}

fn decode(chunks: &[u64; CHUNKS]) -> Result<SecretKey32, ShamirError> {
    let mut out = Zeroizing::new([0u8; 32]);
    let mut at = 0;
    let mut bad = 0u64;
    for (&v, len) in chunks.iter().zip(CHUNK_LENS) {
        bad |= v >> (8 * len);
        out[at..at + len].copy_from_slice(&v.to_le_bytes()[..len]);
        at += len;
    }
    if bad != 0 {
        return Err(ShamirError::Inconsistent);
    }
    Ok(SecretKey32::from_bytes(*out))
}

/// `s mod p` for `s < 2p`, without branches.
#[inline(always)]
fn canonical(s: u64) -> u64 {
    let t = s.wrapping_sub(FIELD_PRIME);
    // All ones when s < p (t wrapped around), else zero.
    let keep = (t >> 63).wrapping_neg();
    (t & !keep) | (s & keep)
}

#[inline(always)]
fn add(a: u64, b: u64) -> u64 {
    canonical(a + b)
}

#[inline(always)]
fn sub(a: u64, b: u64) -> u64 {
    canonical(a + (FIELD_PRIME - b))
}

#[inline(always)]
fn mul(a: u64, b: u64) -> u64 {
    let z = u128::from(a) * u128::from(b);
    // z < 2^122: fold the high bits down twice (2^61 = 1 mod p).
    #[expect(clippy::cast_possible_truncation, reason = "masked to 61 bits")]
    let lo = (z as u64) & FIELD_PRIME;
    #[expect(clippy::cast_possible_truncation, reason = "z >> 61 < 2^61")]
    let hi = (z >> 61) as u64;
    let s = lo + hi;
    canonical((s & FIELD_PRIME) + (s >> 61))
}

/// `a^(p-2)`: the inverse of a nonzero element (Fermat), in a fixed number of steps.
fn invert(a: u64) -> u64 {
    let mut result = 1u64;
    let mut base = a;
    let mut e = FIELD_PRIME - 2;
    while e > 0 {
        // The exponent is public and fixed, so these branches leak nothing.
        if e & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

#[cfg(test)]
#[path = "shamir_tests.rs"]
mod tests;
