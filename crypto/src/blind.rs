//! Federation pseudonyms: commutative blinding of customer ids in the ristretto255 group.
//!
//! Party A maps a raw id `x` to the group with [`hash_id`] (`H(x)`, RFC 9496 section 4.3.4 on
//! SHA-512 of a labelled, normalized id) and blinds it with its secret scalar `a`: `H(x)^a`.
//! Party B re-blinds what it receives with its scalar `b`: `(H(x)^a)^b = H(x)^(ab) = H(x)^(ba)`,
//! so two parties who each blind their own ids and re-blind the other's obtain equal values
//! exactly for the ids they share (a Diffie-Hellman private set intersection). Under the
//! decisional Diffie-Hellman assumption, a value blinded by a key one does not hold reveals
//! nothing about the id. Which messages flow where is the partner-overlap protocol's job; this
//! module only provides the group operations, with version-bound domain separation.
//!
//! Hazard: `H(x)` itself is computable by anyone from `x`, so a [`HashedId`] is as sensitive as
//! the raw id (guessable ids are recovered by trying them). Only blinded values leave a party.

use core::fmt;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use rayon::prelude::*;
use sha2::Sha512;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::label::framed;

/// Purpose label of [`hash_id`]'s input; [`crate::LABEL_PREFIX`] adds the protocol version, so
/// the hashed input is `"fedprof/1" || 0x00 || 0x14 || "federation-pseudonym" || normalized id`.
pub const FEDERATION_PSEUDONYM_LABEL: &str = "federation-pseudonym";

/// Batches shorter than this are processed on the calling thread: at about 40 us per id, a
/// chunk of this size is long enough that handing it to another thread pays off.
const CHUNK: usize = 64;

/// Why an id, a key or a blinded value was refused. Never contains any part of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlindError {
    /// The customer id is empty or only whitespace (the same rule as
    /// [`crate::PseudonymError::EmptyId`]).
    #[error("customer id is empty or only whitespace")]
    EmptyId,
    /// Key bytes are not a canonical scalar (little-endian, below the group order `l`) or are
    /// zero (a zero key would map every id to the same value).
    #[error("blinding key is not a canonical nonzero ristretto255 scalar")]
    BadKey,
    /// The 32 bytes are not the canonical encoding of a ristretto255 point.
    #[error("blinded id is not a canonical ristretto255 encoding")]
    NotAPoint,
    /// The 32 bytes encode the identity element, which no honest blinding produces (it would
    /// match every other identity, whatever the id).
    #[error("blinded id is the identity element")]
    Identity,
}

/// A party's secret blinding scalar for federation pseudonyms.
///
/// `Debug` prints `BlindingKey(<redacted>)`; the scalar is zeroized on drop; not `Clone`.
/// Key files hold the 32 canonical little-endian bytes ([`BlindingKey::from_bytes`] checks
/// them); reading and writing the file, with mode 0600, is the caller's job.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BlindingKey(Scalar);

impl BlindingKey {
    /// A fresh uniformly random nonzero key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let scalar = Scalar::random(rng);
            // Zero has probability 2^-252; retried rather than assumed away.
            if scalar != Scalar::ZERO {
                return Self(scalar);
            }
        }
    }

    /// Reads a stored key. The caller should wipe its own copy of `bytes`.
    ///
    /// # Errors
    ///
    /// [`BlindError::BadKey`] when `bytes` is not a canonical scalar or is zero.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, BlindError> {
        let scalar: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
        match scalar {
            Some(s) if s != Scalar::ZERO => Ok(Self(s)),
            _ => Err(BlindError::BadKey),
        }
    }

    /// The key's 32 bytes for a key file, wiped on drop. Every call is a place where the key
    /// leaves its wrapper.
    #[must_use]
    pub fn expose_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// `H(x)^k`, compressed: the first blinding of a hashed id.
    #[must_use]
    pub fn blind(&self, id: &HashedId) -> BlindedId {
        // Constant-time variable-base multiplication (the scalar is secret).
        BlindedId((self.0 * id.0).compress())
    }

    /// Hashes and blinds one raw id: `blind(hash_id(raw_id))`.
    ///
    /// # Errors
    ///
    /// [`BlindError::EmptyId`] as for [`hash_id`].
    pub fn blind_raw(&self, raw_id: &str) -> Result<BlindedId, BlindError> {
        Ok(self.blind(&hash_id(raw_id)?))
    }

    /// `Y^k` for a value `Y` blinded by someone else (or by this key, for a third party).
    ///
    /// # Errors
    ///
    /// [`BlindError::NotAPoint`] is unreachable for a [`BlindedId`] (its constructors validate)
    /// and returned rather than panicking should that invariant ever break.
    pub fn reblind(&self, blinded: &BlindedId) -> Result<BlindedId, BlindError> {
        let point = blinded.0.decompress().ok_or(BlindError::NotAPoint)?;
        // Prime-order group, nonzero key, non-identity input: the output is not the identity.
        Ok(BlindedId((self.0 * point).compress()))
    }

    /// [`BlindingKey::blind_raw`] for every id, in input order, spread over the current rayon
    /// pool (the global pool uses every core; call inside `ThreadPool::install` to limit it).
    ///
    /// # Errors
    ///
    /// `(index, error)` for the lowest index whose id was refused; no partial output.
    pub fn blind_batch(&self, raw_ids: &[&str]) -> Result<Vec<BlindedId>, (usize, BlindError)> {
        let half = self.half();
        batch(raw_ids, |raw| Ok(*half * hash_id(raw)?.0))
    }

    /// [`BlindingKey::reblind`] for every value, in input order, spread over the current rayon
    /// pool like [`BlindingKey::blind_batch`].
    ///
    /// # Errors
    ///
    /// `(index, error)` for the lowest index refused (unreachable in practice, see
    /// [`BlindingKey::reblind`]).
    pub fn reblind_batch(
        &self,
        blinded: &[BlindedId],
    ) -> Result<Vec<BlindedId>, (usize, BlindError)> {
        let half = self.half();
        batch(blinded, |b| {
            let point = b.0.decompress().ok_or(BlindError::NotAPoint)?;
            Ok(*half * point)
        })
    }

    /// `k / 2 mod l`: batches multiply by it and let `double_and_compress_batch` double while
    /// it compresses, sharing one field inversion over a chunk instead of one per id.
    fn half(&self) -> Zeroizing<Scalar> {
        Zeroizing::new(self.0 * Scalar::from(2u8).invert())
    }
}

impl fmt::Debug for BlindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindingKey(<redacted>)")
    }
}

/// Applies `op` to every item, in chunks of [`CHUNK`] on the rayon pool, keeping input order and
/// reporting the lowest failing index. Errors are rare (bad input), so every chunk runs to its
/// end rather than coordinating early exit across threads.
fn batch<T: Sync>(
    items: &[T],
    op: impl Fn(&T) -> Result<RistrettoPoint, BlindError> + Sync,
) -> Result<Vec<BlindedId>, (usize, BlindError)> {
    let run_chunk = |(chunk_index, chunk): (usize, &[T])| -> Result<Vec<BlindedId>, _> {
        let start = chunk_index * CHUNK;
        let mut halves = Vec::with_capacity(chunk.len());
        for (i, item) in chunk.iter().enumerate() {
            halves.push(op(item).map_err(|e| (start + i, e))?);
        }
        Ok(RistrettoPoint::double_and_compress_batch(&halves)
            .into_iter()
            .map(BlindedId)
            .collect())
    };
    if items.len() <= CHUNK {
        return run_chunk((0, items));
    }
    let chunks: Vec<Result<Vec<BlindedId>, (usize, BlindError)>> =
        items.par_chunks(CHUNK).enumerate().map(run_chunk).collect();
    let mut out = Vec::with_capacity(items.len());
    for chunk in chunks {
        out.extend(chunk?);
    }
    Ok(out)
}

/// A customer id mapped into ristretto255, `H(x)`: as sensitive as the raw id (see the module
/// docs), so `Debug` is redacted and the point is wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HashedId(RistrettoPoint);

impl fmt::Debug for HashedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedId(<redacted>)")
    }
}

/// `H(x)`: `RistrettoPoint::hash_from_bytes::<Sha512>` (RFC 9496 one-way map on the 64-byte
/// SHA-512 digest) of `framed(FEDERATION_PSEUDONYM_LABEL, normalize(raw_id))`, with the same
/// normalization as [`crate::Pseudonymizer`] (trim Unicode whitespace, Unicode lowercase).
///
/// # Errors
///
/// [`BlindError::EmptyId`] when `raw_id` is empty or only whitespace.
pub fn hash_id(raw_id: &str) -> Result<HashedId, BlindError> {
    let normalized = normalize(raw_id)?;
    let input = Zeroizing::new(framed(FEDERATION_PSEUDONYM_LABEL, &[normalized.as_bytes()]));
    Ok(HashedId(RistrettoPoint::hash_from_bytes::<Sha512>(&input)))
}

/// The normalization of `crate::pseudonym` (trim `White_Space`, Unicode lowercase), so that
/// local and federation pseudonyms agree on which raw ids are the same customer.
fn normalize(raw_id: &str) -> Result<Zeroizing<String>, BlindError> {
    crate::pseudonym::normalize_id(raw_id).ok_or(BlindError::EmptyId)
}

/// A blinded id: a canonical, non-identity ristretto255 encoding. Plain public bytes, ordered
/// and hashed bytewise so sets of them can be sorted and intersected. `Debug` shows the first
/// 8 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlindedId(CompressedRistretto);

impl BlindedId {
    /// Reads a blinded id received from a peer or storage.
    ///
    /// # Errors
    ///
    /// [`BlindError::NotAPoint`] for a non-canonical or off-group encoding,
    /// [`BlindError::Identity`] for the identity element.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, BlindError> {
        let compressed = CompressedRistretto(bytes);
        let point = compressed.decompress().ok_or(BlindError::NotAPoint)?;
        if point.is_identity() {
            return Err(BlindError::Identity);
        }
        Ok(Self(compressed))
    }

    /// The 32 encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl PartialOrd for BlindedId {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BlindedId {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for BlindedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.as_bytes();
        write!(
            f,
            "BlindedId({:02x}{:02x}{:02x}{:02x}…)",
            b[0], b[1], b[2], b[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::{Pseudonymizer, SecretKey32};

    fn key(seed: u8) -> BlindingKey {
        BlindingKey::generate(&mut ChaCha20Rng::from_seed([seed; 32]))
    }

    fn hex_of(b: &BlindedId) -> String {
        hex::encode(b.as_bytes())
    }

    #[test]
    fn blinding_commutes_for_two_and_three_parties() {
        let (a, b, c) = (key(1), key(2), key(3));
        for raw in ["c001", "c002", "ÄBC-ΣΑΣ"] {
            let ab = b.reblind(&a.blind_raw(raw).unwrap()).unwrap();
            let ba = a.reblind(&b.blind_raw(raw).unwrap()).unwrap();
            assert_eq!(ab, ba, "{raw:?}");
            let abc = c.reblind(&ab).unwrap();
            let cab = b.reblind(&a.reblind(&c.blind_raw(raw).unwrap()).unwrap());
            let bca = a.reblind(&c.reblind(&b.blind_raw(raw).unwrap()).unwrap());
            assert_eq!(abc, cab.unwrap());
            assert_eq!(abc, bca.unwrap());
            assert_ne!(abc, ab);
        }
    }

    #[test]
    fn padding_and_case_meet_and_distinct_ids_differ() {
        let a = key(1);
        assert_eq!(a.blind_raw(" C001 ").unwrap(), a.blind_raw("c001").unwrap());
        let ids = ["c001", "c002", "c0 01", "c01", "Ｃ００１", "c001\u{200b}"];
        let mut blinded: Vec<BlindedId> = ids.iter().map(|r| a.blind_raw(r).unwrap()).collect();
        blinded.sort();
        blinded.dedup();
        assert_eq!(blinded.len(), ids.len());
        // Different keys, different values for one id.
        assert_ne!(
            a.blind_raw("c001").unwrap(),
            key(2).blind_raw("c001").unwrap()
        );
    }

    /// The copy of the normalization must merge exactly the ids the pseudonymizer merges.
    #[test]
    fn normalization_agrees_with_pseudonymizer() {
        let p = Pseudonymizer::new(SecretKey32::from_bytes([7; 32]));
        let a = key(1);
        let ids = [
            "c001",
            " C001\n",
            "\u{a0}C001\u{3000}",
            "C0 01",
            "c0001",
            "Ｃ００１",
            "\u{feff}c001",
            " ΣΑΣ ",
            "σας",
            "σασ",
            "İ",
            "i̇",
        ];
        for x in ids {
            for y in ids {
                let same_pseudonym = p.pseudonym(x).unwrap() == p.pseudonym(y).unwrap();
                let same_blind = a.blind_raw(x).unwrap() == a.blind_raw(y).unwrap();
                assert_eq!(same_pseudonym, same_blind, "{x:?} vs {y:?}");
            }
        }
        for empty in ["", " ", "\n\t", "\u{3000}\u{a0}"] {
            assert_eq!(hash_id(empty).unwrap_err(), BlindError::EmptyId);
            assert_eq!(
                a.blind_batch(&["x", empty]).unwrap_err(),
                (1, BlindError::EmptyId)
            );
        }
    }

    /// Independent check with libsodium 1.0.18 through Python's ctypes:
    /// `crypto_core_ristretto255_from_hash(SHA512(b"fedprof/1\0\x14federation-pseudonym" + id))`
    /// (RFC 9496 hash-to-group on 64 uniform bytes), then `crypto_scalarmult_ristretto255` with
    /// the scalar `KAT_KEY` (little-endian 0x01, 0x02, ..., 0x1f, 0x00, canonical).
    #[test]
    fn known_answers_match_libsodium() {
        let hashed = hash_id(" C001 ").unwrap();
        assert_eq!(hex::encode(hashed.0.compress().as_bytes()), KAT_HASH_C001);
        let key_bytes: [u8; 32] = core::array::from_fn(|i| ((i + 1) % 32) as u8);
        let k = BlindingKey::from_bytes(&key_bytes).unwrap();
        assert_eq!(hex_of(&k.blind(&hashed)), KAT_BLIND_C001);
        assert_eq!(*k.expose_secret_bytes(), key_bytes);
        // The label is part of the input: the unlabelled hash differs.
        let bare = RistrettoPoint::hash_from_bytes::<Sha512>(b"c001").compress();
        assert_ne!(hex::encode(bare.as_bytes()), KAT_HASH_C001);
    }

    const KAT_HASH_C001: &str = "8e05c2e104edd4e5c668b3936e1eb243ac51b940f5027f3cb43d8fe64c073b39";
    const KAT_BLIND_C001: &str = "d02c3b26d82be1fdabb0f69d98165032c801c8bbc8d1ee785452ef8aa686886b";

    #[test]
    fn bad_encodings_and_keys_are_refused() {
        assert_eq!(BlindedId::from_bytes([0; 32]), Err(BlindError::Identity));
        // Non-canonical field element (p = 2^255 - 19 itself), a negative one (low bit set),
        // the top bit, and an encoding that is canonical but not on the curve (RFC 9496 A.2).
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut top = [0; 32];
        top[31] = 0x80;
        let mut negative = [0; 32];
        negative[0] = 1;
        let not_square =
            hex::decode("26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371")
                .unwrap();
        for bad in [p, negative, top, not_square.try_into().unwrap()] {
            assert_eq!(
                BlindedId::from_bytes(bad),
                Err(BlindError::NotAPoint),
                "{bad:02x?}"
            );
        }
        let good = key(1).blind_raw("c001").unwrap();
        assert_eq!(BlindedId::from_bytes(*good.as_bytes()), Ok(good));
        // Keys: zero, the group order l, all-ones.
        let l = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap();
        for bad in [[0; 32], l.try_into().unwrap(), [0xff; 32]] {
            assert_eq!(
                BlindingKey::from_bytes(&bad).unwrap_err(),
                BlindError::BadKey
            );
        }
    }

    #[test]
    fn batches_equal_one_by_one_in_order() {
        let (a, b) = (key(1), key(2));
        for n in [0, 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3] {
            let owned: Vec<String> = (0..n).map(|i| format!("C{i:05}")).collect();
            let raws: Vec<&str> = owned.iter().map(String::as_str).collect();
            let batch = a.blind_batch(&raws).unwrap();
            let single: Vec<BlindedId> = raws.iter().map(|r| a.blind_raw(r).unwrap()).collect();
            assert_eq!(batch, single);
            let re = b.reblind_batch(&batch).unwrap();
            let re_single: Vec<BlindedId> = batch.iter().map(|x| b.reblind(x).unwrap()).collect();
            assert_eq!(re, re_single);
        }
        // The lowest failing index is reported, across chunks.
        let mut raws = vec!["x"; 4 * CHUNK];
        raws[3 * CHUNK + 5] = " ";
        raws[CHUNK + 2] = "";
        assert_eq!(
            a.blind_batch(&raws).unwrap_err(),
            (CHUNK + 2, BlindError::EmptyId)
        );
    }

    #[test]
    fn key_debug_is_redacted_and_hashed_id_too() {
        let k = key(1);
        let hex = hex::encode(*k.expose_secret_bytes());
        for shown in [format!("{k:?}"), format!("{:?}", Some(&k))] {
            assert!(shown.contains("BlindingKey(<redacted>)"), "{shown}");
            assert!(!shown.contains(&hex[..8]), "{shown}");
        }
        assert_eq!(
            format!("{:?}", hash_id("c001").unwrap()),
            "HashedId(<redacted>)"
        );
        let b = k.blind_raw("c001").unwrap();
        assert_eq!(
            format!("{b:?}"),
            format!("BlindedId({}…)", &hex_of(&b)[..8])
        );
    }
}
