//! The mask PRG: ChaCha20 keyed by a full 256-bit seed, read as a vector over `Z_2^64`.
//!
//! `expand_into(seed, op, out)` adds (or subtracts) element `i` of the stream to `out[i]`, where
//! element `i` is bytes `8i..8i+8` of the ChaCha20 keystream (RFC 8439 block function, 96-bit
//! nonce of zeros, block counter from 0) read little-endian. A seed is only ever used for one
//! stream: callers derive it per purpose, round and party pair with [`crate::derive_key`], so
//! the fixed nonce is never reused under one key for two different streams.
//!
//! This is the secure-aggregation hot path (a node expands one stream per neighbour plus one
//! for itself, the coordinator one per survivor and per dropped pair). The keystream is made in
//! 4 KiB chunks with the crate's SIMD backends and folded in place; the chunk buffer is wiped.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit as _, StreamCipher as _};
use zeroize::Zeroizing;

use crate::SecretKey32;

/// Longest vector one seed may expand: ChaCha20's 32-bit block counter gives 2^32 blocks of 64
/// bytes, that is 2^35 elements; the bound is kept at 2^32 elements (32 GiB of `u64`).
pub const MAX_PRG_ELEMENTS: usize = 1 << 32;

/// Elements per keystream chunk (4 KiB).
const CHUNK: usize = 512;

/// Whether the PRG stream is added to or subtracted from the vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskOp {
    /// `out[i] += prg[i]` (wrapping, in `Z_2^64`).
    Add,
    /// `out[i] -= prg[i]` (wrapping, in `Z_2^64`).
    Subtract,
}

/// The vector is longer than [`MAX_PRG_ELEMENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a PRG stream is at most 2^32 elements long; {requested} were requested")]
pub struct PrgTooLong {
    /// The requested length.
    pub requested: usize,
}

/// Adds (or subtracts) the PRG stream of `seed` to `out`, element-wise in `Z_2^64`.
///
/// # Errors
///
/// [`PrgTooLong`] if `out` has more than [`MAX_PRG_ELEMENTS`] elements; `out` is then unchanged.
pub fn expand_into(seed: &SecretKey32, op: MaskOp, out: &mut [u64]) -> Result<(), PrgTooLong> {
    if out.len() > MAX_PRG_ELEMENTS {
        return Err(PrgTooLong {
            requested: out.len(),
        });
    }
    let mut cipher = ChaCha20::new(seed.expose_secret().into(), &[0u8; 12].into());
    let mut buf = Zeroizing::new([0u8; CHUNK * 8]);
    for chunk in out.chunks_mut(CHUNK) {
        let bytes = &mut buf[..chunk.len() * 8];
        bytes.fill(0);
        // Cannot reach the end of the keystream: out.len() <= 2^32 elements = 2^29 blocks.
        cipher.apply_keystream(bytes);
        match op {
            MaskOp::Add => {
                for (o, b) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
                    *o = o.wrapping_add(le_u64(b));
                }
            }
            MaskOp::Subtract => {
                for (o, b) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
                    *o = o.wrapping_sub(le_u64(b));
                }
            }
        }
    }
    Ok(())
}

#[inline(always)]
fn le_u64(b: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(b);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 appendix A.1, test vector 1: key 0, nonce 0, block 0. Its 64 keystream bytes
    /// are our first 8 elements for the all-zero seed.
    #[test]
    fn zero_seed_matches_rfc8439_keystream() {
        let keystream = hex::decode(
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
             da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
        )
        .unwrap();
        let mut out = [0u64; 8];
        expand_into(&SecretKey32::from_bytes([0; 32]), MaskOp::Add, &mut out).unwrap();
        for (i, chunk) in keystream.chunks(8).enumerate() {
            assert_eq!(
                out[i],
                u64::from_le_bytes(chunk.try_into().unwrap()),
                "element {i}"
            );
        }
        assert_eq!(out[0], 0x903d_f1a0_ade0_b876);
    }

    /// A pinned expansion of a non-trivial seed across chunk boundaries (elements 0, 511, 512
    /// and 1999 of 2000), computed with Python's `cryptography` ChaCha20 (16-byte nonce
    /// argument = 4-byte LE counter 0 || 12-byte nonce 0).
    #[test]
    fn pinned_expansion_across_chunks() {
        let seed = SecretKey32::from_bytes(core::array::from_fn(|i| i as u8));
        let mut out = vec![0u64; 2000];
        expand_into(&seed, MaskOp::Add, &mut out).unwrap();
        assert_eq!([out[0], out[511], out[512], out[1999]], KAT_ELEMENTS);
    }

    const KAT_ELEMENTS: [u64; 4] = [
        0x6a19_c5d9_7d2b_fd39,
        0x324b_d02f_d728_0280,
        0xc7e8_60c3_db98_c38e,
        0xb894_0d12_fa94_a425,
    ];

    #[test]
    fn add_then_subtract_is_identity_and_ops_are_in_place() {
        let seed = SecretKey32::from_bytes([3; 32]);
        let original: Vec<u64> = (0..1500u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut v = original.clone();
        expand_into(&seed, MaskOp::Add, &mut v).unwrap();
        assert_ne!(v, original);
        expand_into(&seed, MaskOp::Subtract, &mut v).unwrap();
        assert_eq!(v, original);
        // A prefix of a longer stream is the shorter stream.
        let mut short = vec![0u64; 10];
        expand_into(&seed, MaskOp::Add, &mut short).unwrap();
        let mut long = vec![0u64; 1000];
        expand_into(&seed, MaskOp::Add, &mut long).unwrap();
        assert_eq!(short[..], long[..10]);
        // Different seeds give different streams.
        let mut other = vec![0u64; 10];
        expand_into(&SecretKey32::from_bytes([4; 32]), MaskOp::Add, &mut other).unwrap();
        assert_ne!(short, other);
    }
}
