//! Profiling jobs, sans-IO (DESIGN.md section 8; `docs/PROFILES.md`).
//!
//! A job spec ([`spec`]) becomes a sequence of feature-query releases ([`run`]): distributions
//! first, then rule segments whose cut-offs come from the released quantiles, then federated
//! k-means, one release per Lloyd iteration. Each release goes through the coordinator's
//! secure aggregation, noise and ledgers like any other; this crate only decides what to ask
//! next and what the noisy answers mean ([`analysis`]), and writes the segment model that goes
//! back to the nodes ([`model`]) and the report ([`report`], [`html`]).
//!
//! The one exception to sans-IO is [`rundir`], the run directory: the run file that makes a
//! run resumable, the atomic writes of its outputs, and reading job and model files.

pub mod analysis;
pub mod driver;
pub mod html;
pub mod kmeans;
pub mod model;
pub mod outputs;
pub mod profile;
pub mod report;
pub mod run;
pub mod rundir;
pub mod spec;
