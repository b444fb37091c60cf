//! fedprof cryptography: the primitives every party uses, behind types that are hard to misuse.
//!
//! This crate owns:
//! - secret types ([`secret`]): [`SecretKey32`] and [`RawCustomerId`], with redacted `Debug`,
//!   zeroize on drop and constant-time equality, and the hex form of key files;
//! - the pseudonym PRF ([`pseudonym`]): [`Pseudonymizer`] turns a raw customer id into a
//!   [`Pseudonym`] with `HMAC-SHA256(node key, label || normalized id)` (DESIGN.md section 5);
//! - for secure aggregation (DESIGN.md section 6): Ed25519 signatures with the party's
//!   certificate key ([`sign`]), X25519 key agreement ([`kex`]), HKDF-SHA256 and SHA-256 with
//!   versioned labels ([`kdf`]), the ChaCha20 mask PRG over `Z_2^64` ([`prg`]), Shamir t-of-n
//!   sharing of 32-byte secrets ([`shamir`]) and ChaCha20-Poly1305 envelopes ([`aead`]);
//! - ristretto255 commutative blinding for federation pseudonyms ([`blind`]).
//!
//! It must not do I/O or read clocks: callers read key files (and set their mode 0600), and
//! hand in keys, ids and randomness (any `rand_core::CryptoRng`). Every cryptographic input
//! carries a label that embeds the protocol version (domain separation): [`PSEUDONYM_LABEL`],
//! and [`LABEL_PREFIX`] for everything else.

pub mod aead;
pub mod blind;
mod ct_hex;
pub mod kdf;
pub mod kex;
pub mod label;
pub mod prg;
pub mod pseudonym;
pub mod rng;
pub mod secret;
pub mod shamir;
pub mod sign;

pub use aead::AeadError;
pub use blind::{BlindError, BlindedId, BlindingKey, HashedId, hash_id};
pub use kdf::{derive_key, digest};
pub use kex::{KexError, KexPublic, KexSecret, SharedSecret};
pub use label::{LABEL_PREFIX, Label, framed};
pub use prg::{MaskOp, MaskStreams, PrgTooLong, expand_into};
pub use pseudonym::{PSEUDONYM_LABEL, Pseudonym, PseudonymError, Pseudonymizer};
pub use secret::{KeyError, RawCustomerId, SecretKey32};
pub use shamir::{Reconstructor, ShamirError, Share};
pub use sign::{SignError, Signature, SigningKey, VerifyingKey};
