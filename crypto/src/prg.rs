//! The mask PRG: ChaCha20 keyed by a full 256-bit seed, read as a vector over `Z_2^64`.
//!
//! Element `i` of the stream of `seed` is bytes `8i..8i+8` of the ChaCha20 keystream (RFC 8439
//! block function, 96-bit nonce of zeros, block counter from 0) read little-endian.
//! [`expand_into`] adds (or subtracts) one stream to a vector; [`MaskStreams`] folds several
//! streams into a vector (or into a vector's wire bytes) in one pass. A seed is only ever used
//! for one stream: callers derive it per purpose, round and party pair with
//! [`crate::derive_key`], so the fixed nonce is never reused under one key for two streams.
//!
//! This is the secure-aggregation hot path (a node expands one stream per neighbour plus one
//! for itself, the coordinator one per survivor and per dropped pair). The keystream is never
//! XORed into a zeroed buffer: the chacha20 crate's backend (AVX2, else SSE2, chosen at run
//! time with `cpufeatures`, so no `RUSTFLAGS` are needed) hands over its parallel blocks (4 at
//! a time with AVX2, 256 bytes) and they are added into the vector at once, inside the
//! backend's `#[target_feature]` function, so the fold is compiled for the same instruction
//! set. Several streams are folded chunk by chunk (4 KiB, in L1), so the vector is read and
//! written once whatever the number of streams; a vector longer than 8,192 elements is split
//! into 64 KiB segments folded on the rayon pool, each starting the streams at its own block.
//! Block buffers and cipher states are wiped.

use chacha20::cipher::consts::{U12, U64};
use chacha20::cipher::typenum::Unsigned as _;
use chacha20::cipher::{
    Array, Block, BlockSizeUser, KeyIvInit as _, ParBlocks, StreamCipherBackend,
    StreamCipherClosure, StreamCipherCore as _,
};
use chacha20::variants::Ietf;
use chacha20::{ChaChaCore, R20};
use rayon::prelude::*;
use zeroize::{Zeroize as _, Zeroizing};

use crate::SecretKey32;

/// Longest vector one seed may expand: ChaCha20's 32-bit block counter gives 2^32 blocks of 64
/// bytes, that is 2^35 elements; the bound is kept at 2^32 elements (32 GiB of `u64`).
pub const MAX_PRG_ELEMENTS: usize = 1 << 32;

/// Elements per 64-byte ChaCha20 block.
const BLOCK_ELEMENTS: usize = 8;
/// Elements per chunk when folding several streams: 4 KiB, 64 whole blocks, so no stream stops
/// in the middle of a block between chunks (and a multiple of every backend's parallel width,
/// 1 to 16 blocks, so none falls back to single blocks).
const CHUNK: usize = 512;
const _: () = assert!(CHUNK.is_multiple_of(BLOCK_ELEMENTS));
/// Elements per segment when a long vector is folded on several threads (64 KiB of `u64`,
/// small enough to balance two or more threads on a 100k-element vector):
/// every segment starts on a chunk boundary, and each thread starts the streams at the
/// segment's block (ChaCha20 seeks in O(1)), so the result is bit-for-bit the sequential one.
const SEGMENT: usize = 16 * CHUNK;
const _: () = assert!(SEGMENT.is_multiple_of(CHUNK));

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
    check_len(out.len())?;
    Stream::new(seed, op).fold(out);
    Ok(())
}

/// Several PRG streams, each added or subtracted, folded into one vector in a single pass.
/// The result is the same as calling [`expand_into`] once per stream. Each stream is used once
/// (the methods consume the set). `Debug` shows only the number of streams; the cipher states
/// are wiped on drop.
pub struct MaskStreams {
    streams: Vec<Stream>,
}

impl MaskStreams {
    /// An empty set with room for `capacity` streams.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            streams: Vec::with_capacity(capacity),
        }
    }

    /// Adds the stream of `seed`, to be added to or subtracted from the vector.
    pub fn push(&mut self, seed: &SecretKey32, op: MaskOp) {
        self.streams.push(Stream::new(seed, op));
    }

    /// Number of streams.
    #[must_use]
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there is no stream.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Folds every stream into `out`. A vector longer than one segment (8,192 elements) is
    /// folded on the current rayon pool, segment by segment, with the same result.
    ///
    /// # Errors
    ///
    /// [`PrgTooLong`] if `out` has more than [`MAX_PRG_ELEMENTS`] elements; `out` is then
    /// unchanged.
    pub fn apply(mut self, out: &mut [u64]) -> Result<(), PrgTooLong> {
        check_len(out.len())?;
        if out.len() <= SEGMENT || rayon::current_num_threads() < 2 {
            Self::fold_chunks(&mut self.streams, out);
            return Ok(());
        }
        out.par_chunks_mut(SEGMENT)
            .enumerate()
            .for_each(|(i, segment)| {
                let mut streams = self.at_segment(i);
                Self::fold_chunks(&mut streams, segment);
            });
        Ok(())
    }

    /// Appends to `out` the little-endian bytes of `input` with every stream folded in (8 bytes
    /// per element), without a full-length copy of `input`. The working chunks are wiped. A
    /// long input is folded on the current rayon pool like [`MaskStreams::apply`].
    ///
    /// # Errors
    ///
    /// [`PrgTooLong`] if `input` has more than [`MAX_PRG_ELEMENTS`] elements; `out` is then
    /// unchanged.
    pub fn apply_to_le_bytes(mut self, input: &[u64], out: &mut Vec<u8>) -> Result<(), PrgTooLong> {
        check_len(input.len())?;
        let start = out.len();
        out.resize(start + input.len() * 8, 0);
        let bytes = &mut out[start..];
        if input.len() <= SEGMENT || rayon::current_num_threads() < 2 {
            Self::fold_to_bytes(&mut self.streams, input, bytes);
            return Ok(());
        }
        input
            .par_chunks(SEGMENT)
            .zip(bytes.par_chunks_mut(SEGMENT * 8))
            .enumerate()
            .for_each(|(i, (segment, dst))| {
                let mut streams = self.at_segment(i);
                Self::fold_to_bytes(&mut streams, segment, dst);
            });
        Ok(())
    }

    /// Fresh copies of the streams positioned at the start of segment `i`.
    fn at_segment(&self, i: usize) -> Vec<Stream> {
        // `i * SEGMENT <= MAX_PRG_ELEMENTS`, so the block number fits 32 bits.
        let block = u32::try_from(i * SEGMENT / BLOCK_ELEMENTS).unwrap_or(u32::MAX);
        self.streams.iter().map(|s| s.at_block(block)).collect()
    }

    fn fold_chunks(streams: &mut [Stream], out: &mut [u64]) {
        for chunk in out.chunks_mut(CHUNK) {
            for stream in streams.iter_mut() {
                stream.fold(chunk);
            }
        }
    }

    fn fold_to_bytes(streams: &mut [Stream], input: &[u64], out: &mut [u8]) {
        let mut work = Zeroizing::new([0u64; CHUNK]);
        for (chunk, dst) in input.chunks(CHUNK).zip(out.chunks_mut(CHUNK * 8)) {
            let work = &mut work[..chunk.len()];
            work.copy_from_slice(chunk);
            for stream in streams.iter_mut() {
                stream.fold(work);
            }
            for (d, v) in dst.chunks_exact_mut(8).zip(work.iter()) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

impl core::fmt::Debug for MaskStreams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MaskStreams({} streams, <redacted>)", self.streams.len())
    }
}

fn check_len(len: usize) -> Result<(), PrgTooLong> {
    if len > MAX_PRG_ELEMENTS {
        return Err(PrgTooLong { requested: len });
    }
    Ok(())
}

/// One stream and where it stands. The counter cannot wrap: a stream is folded into at most
/// [`MAX_PRG_ELEMENTS`] = 2^32 elements, that is 2^29 blocks.
struct Stream {
    core: ChaChaCore<R20, Ietf>,
    /// The seed, to start copies of the stream elsewhere (wiped on drop).
    key: Zeroizing<[u8; 32]>,
    op: MaskOp,
}

impl Stream {
    fn new(seed: &SecretKey32, op: MaskOp) -> Self {
        Self::from_key(Zeroizing::new(*seed.expose_secret()), op)
    }

    fn from_key(key: Zeroizing<[u8; 32]>, op: MaskOp) -> Self {
        let nonce: Array<u8, U12> = Array::default();
        Self {
            core: ChaChaCore::new((&*key).into(), &nonce),
            key,
            op,
        }
    }

    /// A copy of this stream starting at block `block`.
    fn at_block(&self, block: u32) -> Self {
        let mut s = Self::from_key(self.key.clone(), self.op);
        s.core.set_block_pos(block);
        s
    }

    /// Folds the next `out.len()` elements of the stream into `out`. Unless this is the last
    /// call, `out.len()` must be a multiple of [`BLOCK_ELEMENTS`] (see [`CHUNK`]): the rest of a
    /// partly used block is dropped.
    fn fold(&mut self, out: &mut [u64]) {
        match self.op {
            MaskOp::Add => self.core.process_with_backend(Fold::<true> { out }),
            MaskOp::Subtract => self.core.process_with_backend(Fold::<false> { out }),
        }
    }
}

/// Folds the keystream into `out`: adds it when `ADD`, subtracts it otherwise.
struct Fold<'a, const ADD: bool> {
    out: &'a mut [u64],
}

impl<const ADD: bool> BlockSizeUser for Fold<'_, ADD> {
    type BlockSize = U64;
}

impl<const ADD: bool> StreamCipherClosure for Fold<'_, ADD> {
    // Inlined into the backend's `#[target_feature]` function, so the fold is vectorized for
    // the backend's instruction set.
    #[inline(always)]
    fn call<B: StreamCipherBackend<BlockSize = U64>>(self, backend: &mut B) {
        let par_elements = B::ParBlocksSize::USIZE * BLOCK_ELEMENTS;
        let mut par = ParBlocks::<B>::default();
        let mut chunks = self.out.chunks_exact_mut(par_elements);
        for chunk in &mut chunks {
            backend.gen_par_ks_blocks(&mut par);
            for (lane, block) in chunk.chunks_exact_mut(BLOCK_ELEMENTS).zip(par.iter()) {
                fold_block::<ADD>(lane, block);
            }
        }
        let mut block = Block::<B>::default();
        for lane in chunks.into_remainder().chunks_mut(BLOCK_ELEMENTS) {
            backend.gen_ks_block(&mut block);
            fold_block::<ADD>(lane, &block);
        }
        for b in par.iter_mut() {
            b.as_mut_slice().zeroize();
        }
        block.as_mut_slice().zeroize();
    }
}

#[inline(always)]
fn fold_block<const ADD: bool>(lane: &mut [u64], keystream: &[u8]) {
    for (o, b) in lane.iter_mut().zip(keystream.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        let k = u64::from_le_bytes(word);
        *o = if ADD {
            o.wrapping_add(k)
        } else {
            o.wrapping_sub(k)
        };
    }
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

    /// A set of streams gives what one `expand_into` per stream gives, at lengths around the
    /// block (8), parallel-block (32) and chunk (512) boundaries, and so do the wire bytes.
    #[test]
    fn mask_streams_equal_one_expansion_per_stream() {
        let seeds: Vec<SecretKey32> = (0..5u8).map(|i| SecretKey32::from_bytes([i; 32])).collect();
        let ops = [
            MaskOp::Add,
            MaskOp::Subtract,
            MaskOp::Add,
            MaskOp::Subtract,
            MaskOp::Subtract,
        ];
        // The last lengths span several segments: folded on two threads, segment by segment.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for len in [
            0,
            1,
            7,
            8,
            9,
            31,
            32,
            33,
            511,
            512,
            513,
            1024,
            1999,
            4100,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT + 517,
        ] {
            let input: Vec<u64> = (0..len as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let mut expected = input.clone();
            let mut streams = MaskStreams::with_capacity(seeds.len());
            for (seed, &op) in seeds.iter().zip(&ops) {
                expand_into(seed, op, &mut expected).unwrap();
                streams.push(seed, op);
            }
            assert_eq!(streams.len(), 5);
            let mut bytes = vec![0xee];
            let mut again = MaskStreams::with_capacity(seeds.len());
            for (seed, &op) in seeds.iter().zip(&ops) {
                again.push(seed, op);
            }
            pool.install(|| again.apply_to_le_bytes(&input, &mut bytes))
                .unwrap();
            let mut folded = input.clone();
            pool.install(|| streams.apply(&mut folded)).unwrap();
            assert_eq!(folded, expected, "apply, len {len}");
            let expected_bytes: Vec<u8> = core::iter::once(0xee)
                .chain(expected.iter().flat_map(|v| v.to_le_bytes()))
                .collect();
            assert_eq!(bytes, expected_bytes, "apply_to_le_bytes, len {len}");
        }
        let empty = MaskStreams::with_capacity(0);
        assert!(empty.is_empty());
        assert_eq!(format!("{empty:?}"), "MaskStreams(0 streams, <redacted>)");
        let mut v = vec![5u64; 3];
        empty.apply(&mut v).unwrap();
        assert_eq!(v, [5, 5, 5]);
    }

    /// The pinned elements again, through a set of one stream (chunked folding).
    #[test]
    fn mask_streams_match_the_pinned_expansion() {
        let seed = SecretKey32::from_bytes(core::array::from_fn(|i| i as u8));
        let mut streams = MaskStreams::with_capacity(1);
        streams.push(&seed, MaskOp::Add);
        let mut out = vec![0u64; 2000];
        streams.apply(&mut out).unwrap();
        assert_eq!([out[0], out[511], out[512], out[1999]], KAT_ELEMENTS);
    }
}
