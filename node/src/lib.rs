//! fedprof node: runs beside a data holder's own data, computes the node's contribution to each
//! job locally, and talks to the coordinator.
//!
//! Owns: the node config ([`config`]), reading local data ([`data`]; the full pipeline of
//! sources, cleaning, pseudonymization and features is [`pipeline`]), the node side of the
//! protocol as sans-IO state machines ([`session`] for the connection, [`job`] for one job's
//! secure aggregation), the node's bounded and noised contribution ([`release`]) and the async
//! service with reconnection ([`service`]). Never merges across nodes, and never sends anything but the job's vector:
//! raw rows and customer ids stay in this process.

pub mod config;
pub mod data;
pub mod floor;
pub mod job;
pub mod pipeline;
pub mod query;
pub mod release;
pub mod service;
pub mod session;
pub mod work;

pub use config::NodeConfig;
pub use service::{NodeError, NodeService};
