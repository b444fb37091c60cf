//! The `fedprof` command-line tool: commands that wire the crates together.
//!
//! Logic lives in the workspace crates (`fedprof-protocol`, `-transport`, `-node`,
//! `-coordinator`, ...); this package holds the command line ([`cli`]), the federation setup
//! ([`federation`]), the analyst client ([`analyst`]), the demo ([`demo`]) and output formatting
//! ([`report`], [`progress`]). `src/main.rs` only parses arguments and reports errors.

pub mod analyst;
pub mod audit;
pub mod certs;
pub mod cli;
pub mod demo;
pub mod features;
pub mod federation;
pub mod gen_data;
pub mod label;
pub mod local;
pub mod profile_job;
pub mod progress;
pub mod report;
pub mod schedule;
