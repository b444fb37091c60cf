//! fedprof node: runs beside a data holder's own data, computes the node's contribution to each
//! job locally, and talks to the coordinator.
//!
//! Owns: the node config ([`config`]), reading local data (the [`pipeline`] of sources,
//! cleaning with quarantine, pseudonymization and features), the node side of the protocol as
//! sans-IO state machines ([`core`], which decides everything about a connection: admission,
//! roster, budget and floor checks, expiry, heartbeat; with [`session`] for registration and
//! routing and [`job`] for one job's secure aggregation), the budget books and the order in
//! which a release is checked, noised and paid ([`books`]), the node's bounded answer to a
//! feature query ([`query`], run by [`work`]) and the async service with reconnection
//! ([`service`]), which only moves bytes, runs the computation and does the ledger's I/O.
//! Never merges across nodes, and never sends anything but the job's vector: raw rows and
//! customer ids stay in this process.

pub mod books;
pub mod config;
pub mod core;
pub mod floor;
pub mod job;
pub mod pipeline;
pub mod query;
pub mod service;
pub mod session;
pub mod work;

pub use config::NodeConfig;
pub use service::{NodeError, NodeService};
