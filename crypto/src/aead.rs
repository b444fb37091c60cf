//! ChaCha20-Poly1305 (RFC 8439) for sealed envelopes, such as the Shamir shares one node sends
//! another through the coordinator.
//!
//! The associated data is where a caller binds what the ciphertext is about (in secure
//! aggregation: job, round, sender and recipient); a ciphertext moved to another context fails
//! to open.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use zeroize::Zeroizing;

use crate::SecretKey32;

/// Bytes a sealed envelope adds to its plaintext (the Poly1305 tag).
pub const AEAD_TAG_LEN: usize = 16;

/// Why an envelope did not open (or, for absurdly long input, could not be sealed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// Wrong key, nonce or associated data, or a tampered ciphertext or tag.
    #[error("envelope failed authentication")]
    Unauthentic,
    /// Plaintext or associated data above ChaCha20-Poly1305's limits (about 256 GiB).
    #[error("envelope too long for ChaCha20-Poly1305")]
    TooLong,
}

/// Seals `plaintext` under `key` and `nonce`, authenticating `associated_data`.
///
/// A `(key, nonce)` pair must never seal two different plaintexts. Secure aggregation meets
/// this by deriving a fresh key for each (round, sender, recipient) and sealing once under it.
///
/// # Errors
///
/// [`AeadError::TooLong`] only for inputs beyond the algorithm's limits.
pub fn seal(
    key: &SecretKey32,
    nonce: &[u8; 12],
    associated_data: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, AeadError> {
    ChaCha20Poly1305::new(key.expose_secret().into())
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad: associated_data,
            },
        )
        .map_err(|_| AeadError::TooLong)
}

/// Opens an envelope made by [`seal`]; the plaintext is wiped when dropped.
///
/// # Errors
///
/// [`AeadError::Unauthentic`] if the key, nonce, associated data, ciphertext or tag differ
/// from what was sealed (a ciphertext shorter than the tag included).
pub fn open(
    key: &SecretKey32,
    nonce: &[u8; 12],
    associated_data: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    ChaCha20Poly1305::new(key.expose_secret().into())
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad: associated_data,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| AeadError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 section 2.8.2.
    #[test]
    fn rfc8439_aead_vector() {
        let key = SecretKey32::from_bytes(
            hex::decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let nonce: [u8; 12] = hex::decode("070000004041424344454647")
            .unwrap()
            .try_into()
            .unwrap();
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let expected = hex::decode(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
             3ff4def08e4b7a9de576d26586cec64b6116\
             1ae10b594f09e26a7e902ecbd0600691",
        )
        .unwrap();
        let sealed = seal(&key, &nonce, &aad, plaintext).unwrap();
        assert_eq!(sealed, expected);
        assert_eq!(sealed.len(), plaintext.len() + AEAD_TAG_LEN);
        assert_eq!(
            open(&key, &nonce, &aad, &sealed).unwrap().as_slice(),
            plaintext
        );
    }

    #[test]
    fn tampering_is_detected() {
        let key = SecretKey32::from_bytes([1; 32]);
        let sealed = seal(&key, &[0; 12], b"ad", b"share").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                open(&key, &[0; 12], b"ad", &bad).unwrap_err(),
                AeadError::Unauthentic
            );
        }
        assert_eq!(
            open(&key, &[0; 12], b"aD", &sealed).unwrap_err(),
            AeadError::Unauthentic
        );
        assert_eq!(
            open(&key, &[1; 12], b"ad", &sealed).unwrap_err(),
            AeadError::Unauthentic
        );
        let other = SecretKey32::from_bytes([2; 32]);
        assert_eq!(
            open(&other, &[0; 12], b"ad", &sealed).unwrap_err(),
            AeadError::Unauthentic
        );
        assert_eq!(
            open(&key, &[0; 12], b"ad", &sealed[..15]).unwrap_err(),
            AeadError::Unauthentic
        );
    }
}
