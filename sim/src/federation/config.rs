//! A federation's shape and timing ([`SimConfig`]), who is at the far end of a connection
//! ([`Peer`]), and what a run reports ([`Stats`], [`Report`], [`BuildError`]).

use std::time::Duration;

use fedprof_privacy::Rho;
use fedprof_protocol::{Fraction, PartyName};

use crate::faults::{FaultConfig, Faults};
use crate::invariants::Violation;

/// The budget period every party runs in: the wall clock's UTC month (the real ledgers date
/// their entries with the system clock and open a period only during its own month).
pub fn current_period() -> String {
    fedprof_ledger::Timestamp::now().month().to_string()
}

/// A federation's shape and timing.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds the data, the keys and every fault.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Customers per node.
    pub customers: usize,
    /// The coordinator's fewest contributors.
    pub min_nodes: usize,
    /// Each round phase's deadline.
    pub phase_timeout: Duration,
    /// How long a later release waits for lost nodes of its job.
    pub rejoin_timeout: Duration,
    /// Profiling jobs the analyst runs, and releases per job.
    pub jobs: (usize, usize),
    /// Each release's budget.
    pub budget: Fraction,
    /// Each node's period cap.
    pub node_cap: Rho,
    /// One-way latency of every message.
    pub latency: Duration,
    /// How long a peer takes to notice a connection that died without a close.
    pub idle_timeout: Duration,
    /// How long a node takes to compute its vector.
    pub compute_time: Duration,
    /// The faults.
    pub faults: FaultConfig,
    /// Virtual time after which [`Federation::drive`] stops.
    pub time_limit: Duration,
}

impl SimConfig {
    /// Five nodes, two profiling jobs of three releases, no faults.
    pub fn small(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 5,
            customers: 40,
            min_nodes: 3,
            phase_timeout: Duration::from_secs(5),
            rejoin_timeout: Duration::from_secs(60),
            jobs: (2, 3),
            budget: Fraction {
                numer: 1,
                denom: 16,
            },
            node_cap: Rho::from_ratio(2, 1).unwrap_or_else(|_| Rho::zero()),
            latency: Duration::from_millis(20),
            idle_timeout: Duration::from_secs(3),
            compute_time: Duration::from_millis(200),
            faults: FaultConfig::default(),
            time_limit: Duration::from_secs(4 * 3600),
        }
    }
}

impl SimConfig {
    /// The fault suite's federation for `seed`: 3 to 8 nodes, every kind of fault at a level
    /// drawn from the seed (the same seed, the same run).
    pub fn faulty(seed: u64) -> SimConfig {
        let mut draw = Faults::new(FaultConfig::default(), seed ^ 0x5eed_f00d);
        let mut c = SimConfig::small(seed);
        c.nodes = 3 + draw.below(6);
        c.faults = FaultConfig::mixed(0.5 + 2.5 * draw.unit());
        c
    }
}

/// Who is at the far end of a connection from the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// Node `i`.
    Node(usize),
    /// The analyst.
    Analyst,
}

/// Counts of what happened in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Steps taken.
    pub steps: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages lost.
    pub dropped: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Connections broken.
    pub disconnects: u64,
    /// Node crashes.
    pub node_crashes: u64,
    /// Coordinator crashes.
    pub coordinator_crashes: u64,
    /// Analyst connection losses.
    pub analyst_crashes: u64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Counts.
    pub stats: Stats,
    /// Virtual time at the end.
    pub elapsed: Duration,
    /// Whether the analyst finished every job.
    pub finished: bool,
    /// Profiling jobs completed.
    pub completed: usize,
    /// Profiling jobs that ended aborted, with their reasons.
    pub aborted: Vec<String>,
    /// Requests sent again after a lost connection.
    pub resumed: u32,
    /// Aborted releases sent again.
    pub retried: u32,
    /// Releases the coordinator's ledger recorded.
    pub recorded: usize,
    /// Releases recorded but never published (the coordinator died in between).
    pub recorded_unpublished: usize,
    /// Requests that ran more than once (interrupted, then run again).
    pub rerun_requests: usize,
    /// Rounds refunded by the coordinator although a node had paid for them.
    pub refunded_but_paid: usize,
    /// Broken invariants.
    pub violations: Vec<Violation>,
}

/// Why a federation cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The temp dir.
    #[error("temp dir: {0}")]
    Dir(#[from] std::io::Error),
    /// A name or period.
    #[error("{0}")]
    Invalid(String),
    /// A party cannot start.
    #[error("{0}")]
    Start(String),
}

/// The 32-byte seed of party `who` in the federation of `seed`.
pub(super) fn seed_bytes(seed: u64, who: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&who.to_le_bytes());
    b[31] = 0x42;
    b
}

/// A party name, or why not.
pub(super) fn name(s: &str) -> Result<PartyName, BuildError> {
    PartyName::new(s).map_err(|e| BuildError::Invalid(format!("{s}: {e}")))
}
