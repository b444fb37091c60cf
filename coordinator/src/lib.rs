//! fedprof coordinator: runs jobs across the registered nodes and merges their contributions.
//!
//! Owns the federation-side logic: who is connected and registered ([`core`]), each job's round
//! ([`round`]), the merge, when a scheduled re-profiling is due ([`schedule`]), and the async
//! service that puts them on the network ([`service`]).
//! Does not parse customer data, and never sees a raw record: what reaches it is a vector whose
//! layout the job fixes. Round and registry logic is sans-IO; only [`service`] uses tokio.

pub mod budget;
pub mod config;
pub mod core;
pub mod journal;
pub mod round;
pub mod schedule;
pub mod service;
pub mod trust;

pub use config::{CoordinatorConfig, Every, ScheduleConfig};
pub use core::{Coordinator, Heartbeat, Input, Output, ReleasePolicy, Requester};
pub use round::{Participant, Round, RoundPolicy};
pub use service::{CoordinatorHandle, CoordinatorService, StartError, open_ledger};
