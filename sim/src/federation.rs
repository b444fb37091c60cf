//! The federation: one coordinator, N nodes and an analyst, joined by simulated connections,
//! on a virtual clock, with faults drawn by [`Faults`]. Modelled on quinn-proto's test `Pair`:
//! [`Federation::step`] carries out the next event (a delivery, a deadline, a finished
//! computation, a crash or restart) and checks every invariant; [`Federation::drive`] steps
//! until the analyst is done, nothing is left to do, or the time limit passes.
//!
//! This file holds the event loop; the rest is split by concern: `config` (the
//! federation's shape, what a run reports), `network` (connections, deliveries and their
//! faults, dialling), `parties` (what each party's answer turns into), `crashes` (kills,
//! random faults, restarts) and `trace` (event descriptions).

mod config;
mod crashes;
mod network;
mod parties;
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fedprof_coordinator::{Input, ReleasePolicy, RoundPolicy};
use fedprof_ledger::Period;
use fedprof_privacy::Rho;
use fedprof_protocol::{Envelope, PartyId, PartyName, Role};

pub use self::config::{BuildError, Peer, Report, SimConfig, Stats, current_period};
use self::config::{name, seed_bytes};
use self::network::Conn;
use self::trace::brief;
use crate::analyst::{JobEnd, SimAnalyst};
use crate::coordinator::{ConnId, SimCoordinator};
use crate::faults::Faults;
use crate::invariants::{Checker, Violation};
use crate::node::{Computation, Directory, Now, SimNode, synthetic_table};

/// Where the nodes' virtual wall clock starts (2027-01-15), after the epoch.
const WALL_START: Duration = Duration::from_secs(1_800_000_000);

#[derive(Debug)]
enum Event {
    ToCoordinator {
        conn: ConnId,
        envelope: Envelope,
    },
    ToPeer {
        conn: ConnId,
        envelope: Envelope,
    },
    CoordinatorSeesClose {
        conn: ConnId,
        reason: String,
    },
    PeerSeesClose {
        conn: ConnId,
    },
    Computed {
        node: usize,
        computation: Box<Computation>,
    },
    /// Node `i`'s core asked for a tick at this time ([`SimNode::next_deadline`]).
    NodeTick(usize),
    Dial(Peer),
    RestartNode(usize),
    RestartCoordinator,
    AnalystTimer(u64),
}

/// The simulated federation.
pub struct Federation {
    config: SimConfig,
    base: Instant,
    now: Duration,
    seq: u64,
    queue: BTreeMap<(Duration, u64), Event>,
    /// The coordinator.
    pub coordinator: SimCoordinator,
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The analyst.
    pub analyst: SimAnalyst,
    index: BTreeMap<PartyName, usize>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    node_conn: Vec<Option<ConnId>>,
    /// The earliest [`Event::NodeTick`] queued for each node (a tick is queued only when the
    /// node's core wants one sooner).
    node_tick: Vec<Option<Duration>>,
    analyst_conn: Option<ConnId>,
    backoff: BTreeMap<Peer, Duration>,
    faults: Faults,
    /// The invariants.
    pub checker: Checker,
    dirty: BTreeSet<usize>,
    stats: Stats,
    /// Crash the coordinator after this many effects of its next input.
    crash_next: Option<usize>,
    /// Print every event and effect to stderr (`SIM_TRACE=1` sets it).
    pub trace: bool,
    last_event: String,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("seed", &self.config.seed)
            .field("now", &self.now)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// Builds the federation of `config` in a fresh temp dir (under `/dev/shm` when there is
    /// one: the ledgers fsync every line) and starts every party.
    pub fn new(config: SimConfig) -> Result<Federation, BuildError> {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)?
        } else {
            tempfile::tempdir()?
        };
        let period =
            Period::new(current_period()).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let mut directory = BTreeMap::new();
        let mut specs = Vec::new();
        for i in 0..config.nodes {
            let n = name(&format!("branch-{i:04}"))?;
            let seed = seed_bytes(config.seed, i as u64 + 1);
            directory.insert(
                n.clone(),
                crate::node::signing_key(seed).verifying_key().to_bytes(),
            );
            specs.push((n, seed));
        }
        let directory = Arc::new(Directory::new(&directory));
        let mut nodes = Vec::new();
        let mut index = BTreeMap::new();
        for (i, (n, seed)) in specs.into_iter().enumerate() {
            let node_dir = dir.path().join(format!("node-{i}"));
            let table = synthetic_table(config.customers, config.seed ^ (i as u64 + 1));
            index.insert(n.clone(), i);
            nodes.push(SimNode::new(
                n,
                seed,
                &node_dir,
                table,
                (config.node_cap.clone(), period.as_str().to_owned()),
                Arc::clone(&directory),
            ));
        }
        let coordinator_name = name("coordinator")?;
        let half = Rho::from_ratio(1, 2).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let two = Rho::from_ratio(2, 1).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let release = ReleasePolicy {
            rho_per_job: half,
            colluders: 1,
            rho_per_analyst_period: two,
            max_holders_per_person: None,
            name: coordinator_name.clone(),
        };
        let policy = RoundPolicy {
            min_nodes: config.min_nodes,
            timeout: config.phase_timeout,
        };
        let keys = nodes
            .iter()
            .map(|n| (n.party().clone(), n.verifying_key().to_bytes()))
            .collect();
        let coordinator = SimCoordinator::new(
            PartyId {
                role: Role::Coordinator,
                name: coordinator_name,
            },
            seed_bytes(config.seed, 0),
            &dir.path().join("coordinator"),
            (policy, release, config.rejoin_timeout),
            keys,
        );
        let analyst = SimAnalyst::new(name("analyst")?, config.seed, config.jobs, config.budget);
        let faults = Faults::new(config.faults.clone(), config.seed);
        let mut fed = Federation {
            base: Instant::now(),
            now: Duration::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            coordinator,
            node_conn: vec![None; nodes.len()],
            node_tick: vec![None; nodes.len()],
            nodes,
            analyst,
            index,
            conns: BTreeMap::new(),
            next_conn: 1,
            analyst_conn: None,
            backoff: BTreeMap::new(),
            faults,
            checker: Checker::default(),
            dirty: BTreeSet::new(),
            stats: Stats::default(),
            crash_next: None,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            last_event: String::new(),
            config,
            _dir: dir,
        };
        fed.coordinator
            .start(&current_period())
            .map_err(|e| BuildError::Start(e.to_string()))?;
        for i in 0..fed.nodes.len() {
            fed.nodes[i]
                .start()
                .map_err(|e| BuildError::Start(e.to_string()))?;
            let at = Duration::from_micros(fed.faults.below(500_000) as u64);
            fed.schedule(at, Event::Dial(Peer::Node(i)));
        }
        fed.schedule(Duration::from_secs(2), Event::Dial(Peer::Analyst));
        Ok(fed)
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.base + self.now
    }

    /// The virtual clock as a node's core is handed it. The wall clock part only dates
    /// certificates, which the simulator's stand-in CA does not check: it is virtual too.
    fn node_now(&self) -> Now {
        Now {
            instant: self.now(),
            wall: SystemTime::UNIX_EPOCH + WALL_START + self.now,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    /// Counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last event carried out, in brief (e.g. `to coordinator on 3: job-1 masked-input`).
    pub fn last_event(&self) -> &str {
        &self.last_event
    }

    /// Steps until `until` holds after a step (`true`), or nothing is left (`false`).
    pub fn step_until(
        &mut self,
        mut until: impl FnMut(&Federation) -> bool,
    ) -> Result<bool, Violation> {
        while self.step()? {
            if until(self) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Kills node `i` now (`kill -9`); it restarts after the fault scheduler's delay.
    pub fn kill_node(&mut self, i: usize) {
        if self.nodes.get(i).is_some_and(SimNode::is_up) {
            self.crash_node(i);
        }
    }

    /// Kills the coordinator now; it restarts after the fault scheduler's delay.
    pub fn kill_coordinator(&mut self) {
        if self.coordinator.is_up() {
            self.crash_coordinator();
        }
    }

    /// The node index of `name`.
    pub fn node_index(&self, name: &PartyName) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn schedule(&mut self, after: Duration, event: Event) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), event);
    }

    /// Carries out the next event and checks the invariants. `Ok(false)`: nothing left.
    pub fn step(&mut self) -> Result<bool, Violation> {
        let before = self.checker.violations().len();
        self.stats.steps += 1;
        self.checker.at(self.stats.steps);
        let next = self.queue.keys().next().map(|k| k.0);
        let deadline = self
            .coordinator
            .next_deadline()
            .map(|d| d.saturating_duration_since(self.base));
        match (next, deadline) {
            (None, None) => return Ok(false),
            (q, Some(d)) if q.is_none_or(|q| d <= q) => {
                self.now = self.now.max(d);
                self.coordinator_input(Input::Tick);
            }
            _ => {
                if let Some(((at, _), event)) = self.queue.pop_first() {
                    self.now = self.now.max(at);
                    self.last_event = brief(&event);
                    if self.trace {
                        eprintln!("[{:?}] event {}", self.now, self.last_event);
                    }
                    self.handle(event);
                }
            }
        }
        self.random_faults();
        self.check_dirty();
        match self.checker.violations().get(before) {
            Some(v) => Err(v.clone()),
            None => Ok(true),
        }
    }

    /// Steps until the analyst is done (and the queue holds no more work for it), nothing is
    /// left, or the time limit passes; then checks every node once more.
    pub fn drive(&mut self) -> Report {
        while !self.analyst.finished() && self.now < self.config.time_limit {
            match self.step() {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
        self.dirty.extend(0..self.nodes.len());
        self.check_dirty();
        self.report()
    }

    /// What happened so far.
    pub fn report(&self) -> Report {
        let jobs = &self.analyst.jobs;
        Report {
            seed: self.config.seed,
            stats: self.stats.clone(),
            elapsed: self.now,
            finished: self.analyst.finished(),
            completed: jobs
                .iter()
                .filter(|j| j.end == Some(JobEnd::Completed))
                .count(),
            aborted: jobs
                .iter()
                .filter_map(|j| match &j.end {
                    Some(JobEnd::Aborted { step, reason }) => {
                        Some(format!("release {step}: {reason}"))
                    }
                    _ => None,
                })
                .collect(),
            resumed: jobs.iter().map(|j| j.resumed).sum(),
            retried: jobs.iter().map(|j| j.retried).sum(),
            recorded: self.checker.recorded_count(),
            recorded_unpublished: self.checker.recorded_unpublished.len(),
            rerun_requests: self.checker.rerun_requests(),
            refunded_but_paid: self.checker.refunded_but_paid.len(),
            violations: self.checker.violations().to_vec(),
        }
    }

    fn check_dirty(&mut self) {
        for i in std::mem::take(&mut self.dirty) {
            if let Some((name, book, spent)) = self.nodes[i].books() {
                self.checker.check_node(name, book, spent);
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::ToCoordinator { conn, envelope } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if !c.at_coordinator || c.broken || !self.coordinator.is_up() {
                    return;
                }
                self.coordinator_input(Input::Message { conn, envelope });
            }
            Event::ToPeer { conn, envelope } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if !c.at_peer || c.broken {
                    return;
                }
                match c.peer {
                    Peer::Node(i) => {
                        let now = self.node_now();
                        let outs = self.nodes[i].on_message(envelope, now);
                        self.node_outputs(i, outs);
                    }
                    Peer::Analyst => {
                        let (outs, taken) = self.analyst.on_message(envelope);
                        if let Some((request, job, result)) = taken {
                            self.checker.on_taken(request, job, &result);
                        }
                        self.analyst_outputs(outs);
                    }
                }
            }
            Event::CoordinatorSeesClose { conn, reason } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.at_coordinator && self.coordinator.is_up() {
                    c.at_coordinator = false;
                    self.coordinator_input(Input::Closed { conn, reason });
                }
            }
            Event::PeerSeesClose { conn } => self.peer_closed(conn),
            Event::Computed { node, computation } => {
                let release = computation.release();
                let now = self.node_now();
                let outs = self.nodes[node].computed(*computation, now);
                self.paid(node, &release);
                self.node_outputs(node, outs);
            }
            Event::NodeTick(i) => {
                self.node_tick[i] = None;
                let now = self.node_now();
                let outs = self.nodes[i].tick(now);
                self.node_outputs(i, outs);
            }
            Event::Dial(peer) => self.dial(peer),
            Event::RestartNode(i) => self.restart_node(i),
            Event::RestartCoordinator => self.restart_coordinator(),
            Event::AnalystTimer(epoch) => {
                let outs = self.analyst.on_timer(epoch);
                self.analyst_outputs(outs);
            }
        }
    }
}
