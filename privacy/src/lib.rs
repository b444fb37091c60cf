//! fedprof privacy: exact privacy accounting in rho-zCDP, discrete Gaussian noise for
//! distributed differential privacy, contribution bounding, and fixed-point encoding into the
//! aggregation ring.
//!
//! Owns the arithmetic of privacy; does no I/O beyond what a caller hands it, never reads a
//! clock, and takes its randomness from an injected CSPRNG (`rand_core::CryptoRng`;
//! `chacha20::ChaCha20Rng` in production). Budgets and ledger amounts are exact rationals
//! ([`Rho`]); floating point appears only when converting to (epsilon, delta) for people to
//! read, and in tail bounds that size the ring. Does not own secure aggregation (`crypto`,
//! `docs/SECAGG.md`) or the ledgers (`docs/LEDGER.md`). See `docs/PRIVACY.md`.
//!
//! A release, end to end:
//! 1. [`ContributionBounds`] clips each customer's encoded vector ([`FixedPoint`]) and yields
//!    the release's [`Sensitivity`];
//! 2. [`NoiseShare`] sizes this node's noise from the target variance, `n_min` and `c`, and
//!    [`NoiseShare::rho`] is the exact zCDP cost to debit ([`accounting`] converts it to
//!    (epsilon, delta) for display);
//! 3. [`DiscreteGaussian`] draws the noise; [`encoding::reduce`] maps value plus noise into
//!    `Z_2^64` for masking.

pub mod accounting;
pub mod bounding;
pub mod discrete_gaussian;
pub mod distributed;
pub mod encoding;
pub mod legacy;
pub mod query;
pub mod release;
pub mod rho;
pub mod sampling;
pub mod variance;

pub use accounting::{
    ConversionError, compose, delta_for_epsilon, epsilon_at_delta, epsilon_for_delta,
    epsilon_for_delta_simple, gaussian_rho, group_rho,
};
pub use bounding::{BoundingError, ContributionBounds, CoordinateRange, Neighbouring, Sensitivity};
pub use discrete_gaussian::DiscreteGaussian;
pub use distributed::{
    DistributedError, NoiseShare, distributed_rho, distributed_rho_from_parts, tau_upper_bound,
};
pub use encoding::{EncodingError, FixedPoint, OverflowReport, check_overflow};
pub use rho::{Rho, RhoError};
pub use variance::{Variance, VarianceError};
