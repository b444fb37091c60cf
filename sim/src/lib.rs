//! A whole fedprof federation in memory, for tests: the real coordinator core and node
//! machines, real ledgers and journal on a temp dir, a virtual clock, and a seeded fault
//! scheduler that drops, delays, reorders and duplicates messages, breaks connections and
//! crashes and restarts any party at any step. Every invariant of the system is checked after
//! every step ([`invariants`]).
//!
//! # Design
//!
//! Modelled on quinn-proto's `tests/util.rs` `Pair`: the simulator owns every party and a
//! queue of timed events; [`Federation::step`] takes the earliest (a message delivery, the
//! coordinator's next deadline, a node's finished computation, a dial, a restart), feeds it
//! to the party it is for at the virtual time, turns what the party answers into new events,
//! draws faults, and checks the invariants. Nothing reads the wall clock or the OS RNG: a
//! run is a function of its [`SimConfig`] (seed included).
//!
//! - [`coordinator`]: the real `fedprof_coordinator::Coordinator`, with the shell's file
//!   work as `service.rs` does it: the release ledger records a result before it is sent,
//!   the journal is appended before the announcement it precedes, and a restart replays the
//!   journal through `journal::Recovery`. A crash can fall between any two of those effects.
//! - [`node`]: the only file that uses the node crate, a thin driver of the real
//!   `fedprof_node::core::NodeCore` (what the node service runs): it hands the core each
//!   delivered message and a tick at its deadlines, and carries out its actions (sends; the
//!   computation via `work::answer` over an in-memory feature table, then the real
//!   `books::debit` on a real `NodeLedger`; cancels). A node's books are opened from disk
//!   with `Books::open` at every start, so a crashed node restarts from its ledger. The
//!   simulator injects its stand-in CA as the core's `Certificates`.
//! - [`analyst`]: profiling jobs of a few releases, each release one request id, sent again
//!   after a lost connection (a resume) or an abort (a retry).
//! - [`faults`]: every random decision, from one seeded stream.
//!
//! Connections are modelled as QUIC streams: in order unless a reorder fault lets a message
//! overtake; a crash is noticed by the other end only after the idle timeout; a connection
//! the coordinator closes is noticed after one latency.
//!
//! # Replaying a seed
//!
//! A failing seeded run reports its seed (and the step of the first violation). Run it
//! again alone, e.g. `SIM_SEED=1234 cargo test -p fedprof-sim --test faults replay -- --nocapture`,
//! or build `Federation::new(SimConfig::faulty(seed))` in a test and step it: the run is
//! the same, event for event.

pub mod analyst;
pub mod coordinator;
pub mod faults;
pub mod federation;
pub mod invariants;
pub mod node;

pub use federation::{Federation, Peer, Report, SimConfig, Stats};
pub use invariants::Violation;
