//! Secure aggregation for fedprof: the coordinator learns the sum of the nodes' vectors over
//! `Z_2^64`, and nothing else about any node's vector, even when nodes drop out.
//!
//! This is the double-masking protocol of Bonawitz et al., "Practical Secure Aggregation for
//! Privacy-Preserving Machine Learning" (CCS 2017), in its honest-but-curious form, with the
//! sparse neighbour graph of Bell et al., "Secure Single-Server Aggregation with
//! (Poly)Logarithmic Overhead" (CCS 2020) as an option. See `docs/SECAGG.md`.
//!
//! The crate owns the round's logic as sans-IO state machines: [`node`] (typestates, one per
//! phase) and [`coordinator`] (one state machine fed with messages and phase ends), the plain
//! wire messages (`fedprof_protocol::secagg`, re-exported as [`messages`]) and the round
//! configuration ([`config`]). It does no I/O and
//! reads no clock; randomness is injected. The primitives (signatures, X25519, HKDF, the
//! ChaCha20 PRG, Shamir sharing, ChaCha20-Poly1305) come from `fedprof-crypto`.
//!
//! A released sum is an [`UnmaskedSum`], which only mask removal can build.

mod binding;
pub mod config;
pub mod coordinator;
/// The wire messages, defined in the protocol crate with every other message.
pub use fedprof_protocol::secagg as messages;
pub mod node;
mod unmask;

pub use binding::{ENVELOPE_BYTES, vector_to_bytes};
pub use config::{ConfigError, GraphSpec, Party, RoundConfig, default_threshold};
pub use coordinator::{AbortReason, Coordinator, CoordinatorError, Phase, Progress, Step};
pub use messages::{CoordinatorMessage, NodeMessage, RoundTag};
pub use node::{AwaitingBundle, AwaitingDirectory, AwaitingUnmask, NodeError};
pub use unmask::{UnmaskError, UnmaskedSum};
