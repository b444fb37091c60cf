//! The seeded fault scheduler: every decision the simulator makes about the network and about
//! crashes is drawn here, from one ChaCha20 stream seeded by the run's seed, so a seed replays
//! its run exactly.

use std::time::Duration;

use chacha20::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng as _};

/// How often things go wrong (probabilities per message or per step; all 0 by default).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// A message is lost without a trace (the stream stalls; deadlines and the analyst's
    /// patience recover).
    pub drop: f64,
    /// A message is delivered twice.
    pub duplicate: f64,
    /// A message overtakes the ones sent before it on its connection.
    pub reorder: f64,
    /// Most extra latency one message gets (on top of the base latency).
    pub jitter: Duration,
    /// A connection breaks (both ends learn it after the idle timeout).
    pub disconnect: f64,
    /// A node's process dies (`kill -9`), per step.
    pub crash_node: f64,
    /// The coordinator's process dies, per step; it may die half-way through what one input
    /// caused (after any journal append, ledger record or send).
    pub crash_coordinator: f64,
    /// The analyst's connection drops, per step.
    pub crash_analyst: f64,
    /// A dead process is started again after a delay drawn from this range.
    pub restart_after: (Duration, Duration),
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            jitter: Duration::ZERO,
            disconnect: 0.0,
            crash_node: 0.0,
            crash_coordinator: 0.0,
            crash_analyst: 0.0,
            restart_after: (Duration::from_secs(1), Duration::from_secs(10)),
        }
    }
}

impl FaultConfig {
    /// A mix of every fault, scaled by `level` (about 1: a few faults per round).
    pub fn mixed(level: f64) -> FaultConfig {
        FaultConfig {
            drop: 0.002 * level,
            duplicate: 0.01 * level,
            reorder: 0.01 * level,
            jitter: Duration::from_millis(50),
            disconnect: 0.002 * level,
            crash_node: 0.002 * level,
            crash_coordinator: 0.002 * level,
            crash_analyst: 0.001 * level,
            restart_after: (Duration::from_secs(1), Duration::from_secs(20)),
        }
    }
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Lost.
    pub dropped: bool,
    /// Sent twice.
    pub duplicated: bool,
    /// May overtake earlier messages.
    pub reordered: bool,
    /// Extra latency.
    pub jitter: Duration,
}

/// The scheduler.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: ChaCha20Rng,
}

impl Faults {
    /// Faults of `config`, drawn from `seed`.
    pub fn new(config: FaultConfig, seed: u64) -> Faults {
        Faults {
            config,
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A draw in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// A duration drawn uniformly from `[lo, hi]`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(if span == 0 {
            0
        } else {
            self.rng.next_u64() % (span + 1)
        })
    }

    /// What happens to the next message.
    pub fn fate(&mut self) -> Fate {
        let c = self.config.clone();
        Fate {
            dropped: self.chance(c.drop),
            duplicated: self.chance(c.duplicate),
            reordered: self.chance(c.reorder),
            jitter: self.between(Duration::ZERO, c.jitter),
        }
    }

    /// How long a dead process stays dead.
    pub fn restart_delay(&mut self) -> Duration {
        let (lo, hi) = self.config.restart_after;
        self.between(lo, hi)
    }
}
