//! HKDF-SHA256 (RFC 5869) key derivation and SHA-256 commitments, both with labels that embed
//! the protocol version.

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::SecretKey32;
use crate::label::{Label, framed};

/// `HKDF-SHA256(salt = none, ikm, info = framed(label, context))`, 32 bytes of output.
///
/// `info` starts with [`crate::LABEL_PREFIX`] (the protocol version) and the purpose `label`;
/// `context` holds the identifiers the key is bound to (job, round, parties), in fixed-width
/// encodings chosen by the caller. Infallible: a [`Label`] fits the framing, and 32 bytes is
/// far below HKDF-SHA256's 8160-byte output limit.
#[must_use]
pub fn derive_key(ikm: &[u8], label: Label, context: &[&[u8]]) -> SecretKey32 {
    let info = framed(label.as_str(), context);
    let mut okm = Zeroizing::new([0u8; 32]);
    #[expect(
        clippy::expect_used,
        reason = "HKDF-SHA256 expands to at most 255 * 32 bytes (RFC 5869 section 2.3); 32 always fit"
    )]
    hkdf::Hkdf::<Sha256>::new(None, ikm)
        .expand(&info, okm.as_mut())
        .expect("32 bytes are within HKDF-SHA256's output limit");
    SecretKey32::from_bytes(*okm)
}

/// `SHA-256(framed(label, parts))`: a binding commitment to a high-entropy secret (hiding
/// because the secret is a uniformly random 256-bit value) or a digest of public data.
#[must_use]
pub fn digest(label: Label, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(framed(label.as_str(), parts));
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 test case 1 checks the HKDF itself (with its salt and info, not ours).
    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf::Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    /// Pinned outputs of our labelled derivation. Recomputed independently with Python:
    /// `HKDF(SHA256, 32, salt=None, info=b"fedprof/1\0" + bytes([len(label)]) + label + ctx)`.
    #[test]
    fn labelled_derivation_known_answers() {
        let pairwise = crate::label!("secagg/pairwise-mask");
        let key = derive_key(&[0x42; 32], pairwise, &[&7u64.to_be_bytes()]);
        assert_eq!(hex::encode(key.expose_secret()), KAT_PAIRWISE);
        let other = derive_key(
            &[0x42; 32],
            crate::label!("secagg/self-mask"),
            &[&7u64.to_be_bytes()],
        );
        assert_ne!(other, key);
        let other = derive_key(&[0x42; 32], pairwise, &[&8u64.to_be_bytes()]);
        assert_ne!(other, key);
        assert_eq!(
            hex::encode(digest(crate::label!("secagg/test"), &[b"abc"])),
            KAT_DIGEST
        );
    }

    const KAT_PAIRWISE: &str = "892eab51382462cff11715e423c3ffb0561fed8d5d3254480ef32a5df9ce1d4c";
    const KAT_DIGEST: &str = "a96cbdd302023dfff93cdd6f9dc4db86b1f15246d9df7a11c746fd50359c8c71";
}
