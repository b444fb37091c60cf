//! fedprof privacy: exact privacy accounting in rho-zCDP, noise for distributed differential
//! privacy, contribution bounding, and fixed-point encoding into the aggregation ring.
//!
//! Owns the arithmetic of privacy; does no I/O beyond what a caller hands it, never reads a
//! clock, and takes its randomness from an injected CSPRNG. Budgets and ledger amounts are exact
//! rationals ([`Rho`]); floating point appears only when converting to (epsilon, delta) for
//! people to read. See `docs/PRIVACY.md`.

pub mod rho;

pub use rho::{Rho, RhoError};
