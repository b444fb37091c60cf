//! X25519 key agreement (RFC 7748) with static secrets that are redacted and wiped.
//!
//! Secure aggregation gives every node two fresh key pairs per round: one whose agreements key
//! the share envelopes, one whose agreements seed the pairwise masks. The raw shared secret is
//! never used as a key: callers feed it to [`crate::derive_key`] with a purpose label and the
//! round's identifiers.

use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::SecretKey32;

/// Why an agreement was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KexError {
    /// The peer's public key is a low-order point: the "shared" secret would be all zeros,
    /// known to everyone (RFC 7748 section 6.1 permits and recommends this check).
    #[error("the peer's X25519 public key has low order (non-contributory agreement)")]
    NonContributory,
}

/// An X25519 secret key. `Debug` is redacted, the key is wiped on drop (x25519-dalek zeroizes
/// `StaticSecret`), and it is not `Clone`.
pub struct KexSecret(x25519_dalek::StaticSecret);

impl KexSecret {
    /// A fresh secret from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(x25519_dalek::StaticSecret::random_from_rng(rng))
    }

    /// The secret whose 32 bytes are `bytes` (clamped when used, as RFC 7748 says). Used to
    /// rebuild a secret from its Shamir shares.
    #[must_use]
    pub fn from_secret(bytes: &SecretKey32) -> Self {
        Self(x25519_dalek::StaticSecret::from(*bytes.expose_secret()))
    }

    /// The secret's 32 bytes, for Shamir sharing. The copy is wiped on drop.
    #[must_use]
    pub fn to_secret(&self) -> SecretKey32 {
        let bytes = Zeroizing::new(self.0.to_bytes());
        SecretKey32::from_bytes(*bytes)
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> KexPublic {
        KexPublic(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The X25519 shared secret with `peer`.
    ///
    /// # Errors
    ///
    /// [`KexError::NonContributory`] if `peer` is a low-order point.
    pub fn agree(&self, peer: &KexPublic) -> Result<SharedSecret, KexError> {
        let shared = self
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(KexError::NonContributory);
        }
        Ok(SharedSecret(SecretKey32::from_bytes(shared.to_bytes())))
    }
}

impl fmt::Debug for KexSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KexSecret(<redacted>)")
    }
}

/// An X25519 public key: any 32 bytes (RFC 7748 accepts every string as a u-coordinate);
/// low-order points are caught by [`KexSecret::agree`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KexPublic([u8; 32]);

impl KexPublic {
    /// Wraps 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for KexPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KexPublic({})", crate::sign::short_hex(&self.0))
    }
}

/// The result of an agreement: secret, redacted, wiped on drop. Use it only as HKDF input.
#[derive(Debug)]
pub struct SharedSecret(SecretKey32);

impl SharedSecret {
    /// The 32 bytes, for [`crate::derive_key`]. Keep the borrow short.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
    #[test]
    fn rfc7748_test_vector() {
        let alice = KexSecret::from_secret(&SecretKey32::from_bytes(h(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        )));
        let bob = KexSecret::from_secret(&SecretKey32::from_bytes(h(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        )));
        assert_eq!(
            alice.public_key().to_bytes(),
            h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public_key().to_bytes(),
            h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(
            alice.agree(&bob.public_key()).unwrap().expose_secret(),
            &shared
        );
        assert_eq!(
            bob.agree(&alice.public_key()).unwrap().expose_secret(),
            &shared
        );
    }

    #[test]
    fn low_order_points_are_refused() {
        let secret = KexSecret::from_secret(&SecretKey32::from_bytes([5; 32]));
        for point in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(
                secret.agree(&KexPublic::from_bytes(point)).unwrap_err(),
                KexError::NonContributory
            );
        }
    }

    #[test]
    fn secrets_round_trip_and_are_redacted() {
        let secret = KexSecret::from_secret(&SecretKey32::from_bytes([6; 32]));
        let again = KexSecret::from_secret(&secret.to_secret());
        assert_eq!(secret.public_key(), again.public_key());
        assert_eq!(format!("{secret:?}"), "KexSecret(<redacted>)");
        let shared = secret.agree(&again.public_key()).unwrap();
        assert_eq!(
            format!("{shared:?}"),
            "SharedSecret(SecretKey32(<redacted>))"
        );
    }
}
