//! Ed25519 signatures with domain separation, made with the party's certificate key.
//!
//! Every party's certificate key is an Ed25519 key (the federation CA issues them with rcgen,
//! which writes PKCS#8 v2 PEM). [`SigningKey::from_pkcs8_pem`] reads that file's text, so the key
//! that signs a secure-aggregation advertisement is the key the party's certificate vouches for,
//! and a peer checks the signature with the public key taken from that (CA-verified) certificate.
//!
//! What is signed is never the bare message: it is `framed(label, message)` (see
//! [`crate::LABEL_PREFIX`]), so a signature made for one purpose or protocol version does not
//! verify for another. Verification is `verify_strict` (RFC 8032 with canonical `S`, and small-
//! order public keys and `R` refused), so a signature has exactly one accepted encoding.

use core::fmt;

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use rand_core::CryptoRng;

use crate::SecretKey32;
use crate::label::{MAX_LABEL_LEN, framed};

/// Why a key could not be read or a signature did not verify. Never carries key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The PEM text is not an Ed25519 PKCS#8 private key (wrong PEM label, bad base64 or DER,
    /// another algorithm, or a public key that does not match the private key).
    #[error("not an Ed25519 PKCS#8 private key in PEM form")]
    NotEd25519Pkcs8,
    /// The 32 bytes are not the encoding of a point on the curve.
    #[error("not an Ed25519 public key")]
    BadPublicKey,
    /// The signature does not verify under this key, label and message.
    #[error("signature does not verify")]
    BadSignature,
    /// A purpose label longer than 255 bytes (a programming error, not peer input).
    #[error("signature label is longer than 255 bytes")]
    LabelTooLong,
}

/// A party's Ed25519 signing key. `Debug` is redacted; the key is wiped on drop (ed25519-dalek
/// zeroizes its `SigningKey`); it is not `Clone`.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Reads a PKCS#8 (v1 or v2) PEM private key, as rcgen and ring write them.
    ///
    /// # Errors
    ///
    /// [`SignError::NotEd25519Pkcs8`] for anything else; the error says nothing about the text.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SignError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|_| SignError::NotEd25519Pkcs8)
    }

    /// Reads a PKCS#8 (v1 or v2) DER private key.
    ///
    /// # Errors
    ///
    /// [`SignError::NotEd25519Pkcs8`] for anything else; the error says nothing about the bytes.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        ed25519_dalek::SigningKey::from_pkcs8_der(der)
            .map(Self)
            .map_err(|_| SignError::NotEd25519Pkcs8)
    }

    /// The key whose RFC 8032 seed ("private key") is `seed`.
    #[must_use]
    pub fn from_seed(seed: &SecretKey32) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed.expose_secret()))
    }

    /// A fresh key from `rng` (tests and simulations; real parties load their certificate key).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(ed25519_dalek::SigningKey::generate(rng))
    }

    /// The matching public key.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `framed(label, message)`.
    ///
    /// # Errors
    ///
    /// [`SignError::LabelTooLong`] if `label` is longer than 255 bytes.
    pub fn sign(&self, label: &str, message: &[u8]) -> Result<Signature, SignError> {
        check_label(label)?;
        Ok(Signature(
            self.0.sign(&framed(label, &[message])).to_bytes(),
        ))
    }

    /// Signs the raw message without a label: only for the RFC 8032 test vectors.
    #[cfg(test)]
    fn sign_raw(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// An Ed25519 public key that decodes to a curve point.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Parses a 32-byte public key.
    ///
    /// # Errors
    ///
    /// [`SignError::BadPublicKey`] if the bytes are not a point encoding.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SignError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| SignError::BadPublicKey)
    }

    /// The 32-byte encoding.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks `signature` on `framed(label, message)` with `verify_strict`.
    ///
    /// # Errors
    ///
    /// [`SignError::BadSignature`] if it does not verify (including a weak key or a
    /// non-canonical signature), [`SignError::LabelTooLong`] for a label over 255 bytes.
    pub fn verify(
        &self,
        label: &str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignError> {
        check_label(label)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(&framed(label, &[message]), &sig)
            .map_err(|_| SignError::BadSignature)
    }

    #[cfg(test)]
    fn verify_raw(&self, message: &[u8], signature: &Signature) -> Result<(), SignError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| SignError::BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", short_hex(&self.0.to_bytes()))
    }
}

/// A 64-byte Ed25519 signature (`R || S`). Any 64 bytes are a `Signature`; whether they verify
/// is decided by [`VerifyingKey::verify`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps 64 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// Parses a slice, which must be exactly 64 bytes long.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 64]>::try_from(bytes).ok().map(Self)
    }

    /// The 64 bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", short_hex(&self.0))
    }
}

/// The first 8 bytes of a public value as hex, then `..` (for `Debug` of public keys).
pub(crate) fn short_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(18);
    for b in bytes.iter().take(8) {
        let _ = write!(out, "{b:02x}");
    }
    out.push_str("..");
    out
}

fn check_label(label: &str) -> Result<(), SignError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(SignError::LabelTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte).
    #[test]
    fn rfc8032_test_vectors() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (seed, public, msg, sig) in cases {
            let key = SigningKey::from_seed(&SecretKey32::from_bytes(h(seed)));
            assert_eq!(key.verifying_key().to_bytes(), h::<32>(public));
            let msg = hex::decode(msg).unwrap();
            let signature = key.sign_raw(&msg);
            assert_eq!(signature.to_bytes(), h::<64>(sig));
            let vk = VerifyingKey::from_bytes(&h(public)).unwrap();
            vk.verify_raw(&msg, &signature).unwrap();
            // The labelled form is a different message.
            assert_eq!(
                vk.verify("test", &msg, &signature),
                Err(SignError::BadSignature)
            );
        }
    }

    #[test]
    fn labels_separate_purposes() {
        let key = SigningKey::from_seed(&SecretKey32::from_bytes([7; 32]));
        let vk = key.verifying_key();
        let sig = key.sign("secagg/advertise", b"hello").unwrap();
        vk.verify("secagg/advertise", b"hello", &sig).unwrap();
        assert_eq!(
            vk.verify("secagg/other", b"hello", &sig),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            vk.verify("secagg/advertise", b"hellO", &sig),
            Err(SignError::BadSignature)
        );
        let mut bad = sig.to_bytes();
        bad[10] ^= 1;
        assert_eq!(
            vk.verify("secagg/advertise", b"hello", &Signature::from_bytes(bad)),
            Err(SignError::BadSignature)
        );
        let other = SigningKey::from_seed(&SecretKey32::from_bytes([8; 32])).verifying_key();
        assert_eq!(
            other.verify("secagg/advertise", b"hello", &sig),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            key.sign(&"x".repeat(256), b"m"),
            Err(SignError::LabelTooLong)
        );
    }

    #[test]
    fn strict_verification_refuses_non_canonical_s() {
        let key = SigningKey::from_seed(&SecretKey32::from_bytes([9; 32]));
        let sig = key.sign("l", b"m").unwrap().to_bytes();
        // Add the group order l to S: same value mod l, non-canonical encoding.
        let l: [u8; 32] = h("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut s = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
            s[i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        let mut forged = sig;
        forged[32..].copy_from_slice(&s);
        assert_eq!(
            key.verifying_key()
                .verify("l", b"m", &Signature::from_bytes(forged)),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn loads_an_rcgen_ed25519_key() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let pem = kp.serialize_pem();
        let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
        // The public key is the one rcgen puts in certificates.
        assert_eq!(
            key.verifying_key().to_bytes().as_slice(),
            kp.public_key_raw()
        );
        let sig = key.sign("l", b"m").unwrap();
        key.verifying_key().verify("l", b"m", &sig).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }

    #[test]
    fn refuses_other_pem() {
        let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        assert_eq!(
            SigningKey::from_pkcs8_pem(&ecdsa.serialize_pem()).unwrap_err(),
            SignError::NotEd25519Pkcs8
        );
        assert_eq!(
            SigningKey::from_pkcs8_pem("garbage").unwrap_err(),
            SignError::NotEd25519Pkcs8
        );
    }

    #[test]
    fn public_key_must_be_a_point() {
        // y = 2 is not the y-coordinate of a curve point.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(
            VerifyingKey::from_bytes(&bytes),
            Err(SignError::BadPublicKey)
        );
    }
}
