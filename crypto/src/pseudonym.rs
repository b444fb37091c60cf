//! Keyed pseudonyms for customer ids: `HMAC-SHA256(node key, label || normalize(raw id))`.
//!
//! A node replaces every raw customer id with its pseudonym at ingest (DESIGN.md section 5), so
//! raw ids never get past the reader. Without the key, a pseudonym reveals nothing about the id
//! and cannot be recomputed from a guessed id (HMAC is a PRF); with the key, the mapping is
//! deterministic, so the same customer gets the same pseudonym in every run and every export.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::SecretKey32;
use crate::ct_hex;

/// Domain-separation label prefixed to every pseudonym's HMAC input.
///
/// The `1` is the protocol version: pseudonyms are tied to it, and changing the label (for a new
/// protocol version or any other reason) changes every pseudonym, unlinking them from those made
/// before. The trailing NUL ends the label, and no other use of a node key may start its input
/// with this label. A key used only for pseudonyms never needs the label for security; it is
/// there so that a key reused by mistake cannot produce an HMAC that is also a valid pseudonym.
pub const PSEUDONYM_LABEL: &[u8] = b"fedprof/1 pseudonym\0";

/// Why a customer id has no pseudonym.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymError {
    /// The id is empty or consists only of whitespace: it names no customer, and giving it a
    /// pseudonym would merge every such row into one fake customer.
    #[error("customer id is empty or only whitespace")]
    EmptyId,
}

/// Maps raw customer ids to [`Pseudonym`]s under one node's secret key.
///
/// # Normalization
///
/// Before hashing, an id is normalized in exactly two steps, and nothing else:
/// 1. leading and trailing whitespace is removed ([`str::trim`]: every character with the
///    Unicode `White_Space` property, ASCII or not, such as `\n`, `\t`, U+00A0, U+3000);
/// 2. the result is lowercased with Unicode's full rules ([`str::to_lowercase`], which also maps
///    a word-final `Σ` to `ς`).
///
/// Two exports of one system often differ in padding and case (`" C001 "` in one, `"c001"` in
/// the other) and must give the same pseudonym. Nothing more is folded: inner whitespace,
/// punctuation, leading zeros, Unicode compatibility forms (full-width `Ｃ００１`) and invisible
/// characters such as U+200B or a byte-order mark are kept, because folding them could merge two
/// distinct customers, which silently corrupts every profile that counts them; a missed match
/// only splits one customer in two. Data holders with other conventions map ids before ingest.
/// An id that is empty after normalization is refused ([`PseudonymError::EmptyId`]).
///
/// `Debug` on this type shows no key material.
pub struct Pseudonymizer {
    /// The HMAC state after the key (both pads) and [`PSEUDONYM_LABEL`]: each pseudonym clones
    /// it and hashes only the id, two SHA-256 blocks instead of four for a short id. It is
    /// worth the key, so it is wiped on drop like the key (the `zeroize` features of `hmac` and
    /// `sha2`).
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(<redacted>)")
    }
}

impl Pseudonymizer {
    /// A pseudonymizer under `key`. Every node has its own key, so pseudonyms from two nodes
    /// never match; linking across nodes is a separate protocol (blinding), not this one.
    #[must_use]
    pub fn new(key: SecretKey32) -> Self {
        let mut keyed = keyed_hmac(key.expose_secret());
        keyed.update(PSEUDONYM_LABEL);
        Self { keyed }
    }

    /// The pseudonym of `raw_id`: `HMAC-SHA256(key, PSEUDONYM_LABEL || normalize(raw_id))`,
    /// with the normalization described on [`Pseudonymizer`].
    ///
    /// # Errors
    ///
    /// [`PseudonymError::EmptyId`] when `raw_id` is empty or only whitespace.
    pub fn pseudonym(&self, raw_id: &str) -> Result<Pseudonym, PseudonymError> {
        let normalized = normalize(raw_id)?;
        let mut mac = self.keyed.clone();
        mac.update(normalized.as_bytes());
        Ok(Pseudonym(mac.finalize().into_bytes().into()))
    }
}

/// Trims `White_Space` at both ends, then lowercases; see [`Pseudonymizer`].
///
/// The lowercase copy is a raw id too, so it is wiped on drop. (If lowercasing makes the id
/// longer in bytes, `str::to_lowercase` may grow its buffer and leave an unwiped partial copy in
/// freed memory; that needs rare characters such as `İ` and is accepted.)
///
/// Shared with the federation pseudonyms (`crate::blind`), so that an id meets itself across
/// both. `None` when nothing is left.
pub(crate) fn normalize_id(raw_id: &str) -> Option<Zeroizing<String>> {
    let normalized = Zeroizing::new(raw_id.trim().to_lowercase());
    (!normalized.is_empty()).then_some(normalized)
}

fn normalize(raw_id: &str) -> Result<Zeroizing<String>, PseudonymError> {
    normalize_id(raw_id).ok_or(PseudonymError::EmptyId)
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `message_parts` under `key`.
///
/// The only place this crate calls the `hmac` crate; the RFC 4231 vectors below pin it.
fn keyed_hmac(key: &[u8]) -> Hmac<Sha256> {
    #[expect(
        clippy::expect_used,
        reason = "HMAC takes keys of any length (RFC 2104 section 2): new_from_slice never fails"
    )]
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
fn hmac_sha256(key: &[u8], message_parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed_hmac(key);
    for part in message_parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A customer's pseudonym at one node: 32 bytes, shown as 64 lowercase hex digits.
///
/// Not secret, since it reveals nothing about the raw id without the node's key, but
/// **linkable**: it is the same for one customer in every job of that node, so a set of
/// pseudonyms with attributes is still personal data and stays at the node like the rows it
/// came from. `Debug` shows only the first 8 hex digits (enough to tell values apart in a test
/// failure), `Display` and [`Pseudonym::to_hex`] show all of them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pseudonym([u8; 32]);

impl Pseudonym {
    /// A pseudonym read back from storage. Every 32-byte value is a possible pseudonym.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes, for storage.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits (the same text as `Display`).
    #[must_use]
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(ct_hex::HEX_LEN_32);
        ct_hex::encode_lower_into(&self.0, &mut out);
        out
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = String::with_capacity(8);
        ct_hex::encode_lower_into(&self.0[..4], &mut prefix);
        write!(f, "Pseudonym({prefix}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(text: &str) -> [u8; 32] {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    /// RFC 4231 section 4, HMAC-SHA-256 outputs of test cases 1, 2, 3, 4, 6 and 7. (Case 5
    /// truncates the output, which we never do.)
    #[test]
    fn hmac_sha256_matches_rfc4231() {
        let key_131 = [0xaa; 131];
        let key_25: Vec<u8> = (0x01..=0x19).collect();
        let cases: [(&[u8], &[u8], &str); 6] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                &key_25,
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                &key_131,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &key_131,
                b"This is a test using a larger than block-size key and a larger than block-size \
                  data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (number, (key, data, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                hmac_sha256(key, &[data]),
                hex32(expected),
                "case index {number}"
            );
            // Splitting the message into parts must not change the MAC.
            let (head, tail) = data.split_at(data.len() / 2);
            assert_eq!(hmac_sha256(key, &[head, &[], tail]), hex32(expected));
        }
    }

    /// Key 0x00, 0x01, ..., 0x1f.
    fn key_a() -> Pseudonymizer {
        Pseudonymizer::new(SecretKey32::from_bytes(core::array::from_fn(|i| i as u8)))
    }

    /// Key 0x20, 0x21, ..., 0x3f.
    fn key_b() -> Pseudonymizer {
        Pseudonymizer::new(SecretKey32::from_bytes(core::array::from_fn(|i| {
            32 + i as u8
        })))
    }

    /// Expected values computed independently with Python 3's `hmac` (which applies the same
    /// trim-and-lowercase to these inputs as `str::trim` + `str::to_lowercase`):
    /// ```text
    /// python3 -c 'import hmac,hashlib,sys; k=bytes(range(int(sys.argv[1]),int(sys.argv[1])+32));
    ///   print(hmac.new(k, b"fedprof/1 pseudonym\0"+sys.argv[2].strip().lower().encode(),
    ///   hashlib.sha256).hexdigest())' 0 'C001'
    /// ```
    /// (first argument 0 for key A, 32 for key B).
    #[test]
    fn pseudonyms_match_reference_vectors() {
        let c001_a = "ed3f8ac95d976ad8e34fac1bc911972f91e599dfd2b5b173accde230aec145aa";
        let cases = [
            (key_a(), "C001", c001_a),
            (key_a(), " C001\n", c001_a),
            (
                key_b(),
                "c001",
                "12e99f0c5b9299ab94bca6e7ad2903505bc09af2a21ad762e9982d17d5f57253",
            ),
            // Unicode whitespace trimmed; Ä -> ä; final sigma: ΣΑΣ -> σας.
            (
                key_a(),
                "\u{3000} ÄBC-ΣΑΣ\n",
                "6d0ed4b1470b7c7deb27998e94794a8cf8e871939b362f76a8cd3d40484a1598",
            ),
            (
                key_a(),
                "C0 01",
                "017df30879d6e3be375962731e3ff9bb265d44d09fcac8a16df8a9ea9ee4d9ed",
            ),
            // Label and id over two blocks: the cloned keyed state carries a partial block.
            (
                key_a(),
                "Customer-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "c8b77e7dd09885343b926de6dbdcbc945bbe2a7124d04fbea8cc380483a1db8c",
            ),
        ];
        for (pseudonymizer, raw, expected) in cases {
            let pseudonym = pseudonymizer.pseudonym(raw).unwrap();
            assert_eq!(pseudonym.to_hex(), expected, "{raw:?}");
            assert_eq!(pseudonym.to_string(), expected);
            assert_eq!(pseudonym.as_bytes(), &hex32(expected));
        }
    }

    #[test]
    fn normalization_trims_and_lowercases_and_nothing_else() {
        let p = key_a();
        let c001 = p.pseudonym("c001").unwrap();
        for same in [" C001\n", "C001", "\tc001 ", "\u{a0}C001\u{3000}"] {
            assert_eq!(p.pseudonym(same).unwrap(), c001, "{same:?}");
        }
        // Inner whitespace, leading zeros, full-width forms and invisible characters are kept.
        for different in [
            "C0 01",
            "c01",
            "c0001",
            "Ｃ００１",
            "\u{feff}c001",
            "c001\u{200b}",
        ] {
            assert_ne!(p.pseudonym(different).unwrap(), c001, "{different:?}");
        }
        assert_eq!(normalize(" ΣΑΣ ").unwrap().as_str(), "σας");
    }

    #[test]
    fn empty_ids_are_refused() {
        let p = key_a();
        for empty in ["", " ", "\n\t\r\n", "\u{3000}\u{a0}"] {
            assert_eq!(
                p.pseudonym(empty),
                Err(PseudonymError::EmptyId),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn different_keys_give_different_pseudonyms() {
        for raw in ["c001", "c002", "x"] {
            assert_ne!(
                key_a().pseudonym(raw).unwrap(),
                key_b().pseudonym(raw).unwrap()
            );
        }
        assert_ne!(
            key_a().pseudonym("c001").unwrap(),
            key_a().pseudonym("c002").unwrap()
        );
    }

    #[test]
    fn the_label_is_part_of_the_input() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let unlabelled = hmac_sha256(&key, &[b"c001"]);
        assert_ne!(key_a().pseudonym("c001").unwrap().as_bytes(), &unlabelled);
    }

    #[test]
    fn debug_shows_a_short_prefix_and_pseudonymizer_hides_its_key() {
        let pseudonym = key_a().pseudonym("c001").unwrap();
        assert_eq!(format!("{pseudonym:?}"), "Pseudonym(ed3f8ac9…)");
        let shown = format!("{:?}", key_a());
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("00010203"), "{shown}");
        assert_eq!(Pseudonym::from_bytes(*pseudonym.as_bytes()), pseudonym);
    }
}
