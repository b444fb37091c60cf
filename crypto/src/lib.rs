//! fedprof cryptography: the primitives every party uses, behind types that are hard to misuse.
//!
//! This crate owns:
//! - secret types ([`secret`]): [`SecretKey32`] and [`RawCustomerId`], with redacted `Debug`,
//!   zeroize on drop and constant-time equality, and the hex form of key files;
//! - the pseudonym PRF ([`pseudonym`]): [`Pseudonymizer`] turns a raw customer id into a
//!   [`Pseudonym`] with `HMAC-SHA256(node key, label || normalized id)` (DESIGN.md section 5);
//! - later: ristretto255 commutative blinding for federation pseudonyms, X25519 key agreement,
//!   the ChaCha20 mask PRG, Shamir sharing and signatures for secure aggregation.
//!
//! It must not do I/O or read clocks: callers read key files (and set their mode 0600), and
//! hand in keys, ids and, where needed, randomness. Every cryptographic input carries a label
//! that embeds the protocol version (domain separation), such as [`PSEUDONYM_LABEL`].

mod ct_hex;
pub mod pseudonym;
pub mod secret;

pub use pseudonym::{PSEUDONYM_LABEL, Pseudonym, PseudonymError, Pseudonymizer};
pub use secret::{KeyError, RawCustomerId, SecretKey32};
