//! The federation: one coordinator, N nodes and an analyst, joined by simulated connections,
//! on a virtual clock, with faults drawn by [`Faults`]. Modelled on quinn-proto's test `Pair`:
//! [`Federation::step`] carries out the next event (a delivery, a deadline, a finished
//! computation, a crash or restart) and checks every invariant; [`Federation::drive`] steps
//! until the analyst is done, nothing is left to do, or the time limit passes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedprof_coordinator::{Input, ReleasePolicy, RoundPolicy};
use fedprof_ledger::Period;
use fedprof_privacy::Rho;
use fedprof_protocol::secagg::NodeMessage;
use fedprof_protocol::{
    Body, Envelope, Fraction, Header, JobId, PartyId, PartyName, Role, RoundId,
};

use crate::analyst::{AnalystOut, JobEnd, SimAnalyst};
use crate::coordinator::{ConnId, Effect, SimCoordinator};
use crate::faults::{FaultConfig, Faults};
use crate::invariants::{Checker, Violation};
use crate::node::{Computation, NodeOut, SimNode, synthetic_table};

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
    Dial(Peer),
    RestartNode(usize),
    RestartCoordinator,
    AnalystTimer(u64),
}

#[derive(Debug)]
struct Conn {
    peer: Peer,
    at_coordinator: bool,
    at_peer: bool,
    /// Broken: nothing more gets through.
    broken: bool,
    last_up: Duration,
    last_down: Duration,
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

fn seed_bytes(seed: u64, who: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&who.to_le_bytes());
    b[31] = 0x42;
    b
}

fn name(s: &str) -> Result<PartyName, BuildError> {
    PartyName::new(s).map_err(|e| BuildError::Invalid(format!("{s}: {e}")))
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
        let directory = Arc::new(directory);
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
                (config.node_cap.clone(), period.clone()),
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
            let node = &self.nodes[i];
            if let Some(book) = node.book() {
                self.checker
                    .check_node(&node.party().name, book, node.spent());
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
                        let now = self.now();
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
                let outs = self.nodes[node].computed(*computation);
                self.paid(node, &release);
                self.node_outputs(node, outs);
            }
            Event::Dial(peer) => self.dial(peer),
            Event::RestartNode(i) => {
                if self.nodes[i].is_up() {
                    return;
                }
                match self.nodes[i].start() {
                    Ok(()) => {
                        self.dirty.insert(i);
                        self.schedule(Duration::ZERO, Event::Dial(Peer::Node(i)));
                    }
                    Err(e) => {
                        self.checker.at(self.stats.steps);
                        let what = format!("a node cannot restart: {e}");
                        self.violation(what);
                    }
                }
            }
            Event::RestartCoordinator => {
                if self.coordinator.is_up() {
                    return;
                }
                match self.coordinator.start(&current_period()) {
                    Ok(()) => {
                        let count = self.coordinator.release_count().unwrap_or(0);
                        self.checker.check_coordinator_ledger(count);
                    }
                    Err(e) => self.violation(format!("the coordinator cannot restart: {e}")),
                }
            }
            Event::AnalystTimer(epoch) => {
                let outs = self.analyst.on_timer(epoch);
                self.analyst_outputs(outs);
            }
        }
    }

    fn violation(&mut self, what: String) {
        self.checker.fail_with(what);
    }

    fn paid(&mut self, node: usize, release: &fedprof_ledger::ReleaseId) {
        if self.nodes[node].paid_vector(release).is_some() {
            let n = self.nodes[node].party().name.clone();
            self.checker.on_debit(&n, release);
        }
        self.dirty.insert(node);
    }

    /// Sends `envelope` on `conn`, towards the coordinator (`up`) or the peer.
    fn transmit(&mut self, conn: ConnId, up: bool, envelope: Envelope) {
        self.stats.messages += 1;
        let fate = self.faults.fate();
        let latency = self.config.latency;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.broken {
            return;
        }
        if fate.dropped {
            self.stats.dropped += 1;
            return;
        }
        let mut at = self.now + latency + fate.jitter;
        let last = if up { &mut c.last_up } else { &mut c.last_down };
        if !fate.reordered {
            at = at.max(*last + Duration::from_micros(1));
            *last = at;
        }
        let copies = if fate.duplicated {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for k in 0..copies {
            let event = if up {
                Event::ToCoordinator {
                    conn,
                    envelope: envelope.clone(),
                }
            } else {
                Event::ToPeer {
                    conn,
                    envelope: envelope.clone(),
                }
            };
            let delay = (at + Duration::from_micros(k)).saturating_sub(self.now);
            self.schedule(delay, event);
        }
    }

    fn envelope(job: JobId, body: Body) -> Envelope {
        Envelope {
            header: Header {
                job,
                round: RoundId(0),
                seq: 0,
            },
            body,
        }
    }

    fn coordinator_input(&mut self, input: Input) {
        let crash = self.crash_next.take();
        let now = self.now();
        let (effects, crashed) = self.coordinator.handle(input, now, crash);
        for effect in effects {
            if self.trace {
                eprintln!("    coordinator: {}", brief_effect(&effect));
            }
            match effect {
                Effect::Send { conn, envelope } => {
                    if let Body::JobAnnounce(a) = &envelope.body {
                        self.checker.on_announce(envelope.header.job, a);
                    }
                    if self.conns.get(&conn).is_some_and(|c| c.at_coordinator) {
                        self.transmit(conn, false, envelope);
                    }
                }
                Effect::Close { conn, .. } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.at_coordinator = false;
                    }
                    self.schedule(self.config.latency, Event::PeerSeesClose { conn });
                }
                Effect::Journaled(record) => self.checker.on_journal(&record),
                Effect::Recorded {
                    job,
                    nonce,
                    outcome,
                } => {
                    let (nodes, index) = (&self.nodes, &self.index);
                    self.checker.on_recorded(
                        job,
                        nonce,
                        &outcome,
                        self.config.min_nodes,
                        |n, r| index.get(n).and_then(|&i| nodes[i].paid_vector(r)),
                    );
                }
                Effect::RecordRefused { job, reason } => {
                    self.violation(format!("the ledger refused {job}'s release: {reason}"));
                }
            }
        }
        if crashed || (crash.is_some() && self.coordinator.is_up()) {
            self.crash_coordinator();
        }
    }

    fn crash_coordinator(&mut self) {
        if self.trace {
            eprintln!("    COORDINATOR CRASH");
        }
        self.stats.coordinator_crashes += 1;
        self.coordinator.crash();
        let idle = self.config.idle_timeout;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.at_coordinator = false;
                c.broken = true;
                if c.at_peer {
                    self.schedule(idle, Event::PeerSeesClose { conn });
                }
            }
        }
        let delay = self.faults.restart_delay();
        self.schedule(delay, Event::RestartCoordinator);
    }

    fn crash_node(&mut self, i: usize) {
        self.stats.node_crashes += 1;
        // Computations in flight: the crash came before or after their debit was fsynced.
        let pending: Vec<(Duration, u64)> = self
            .queue
            .iter()
            .filter(|(_, e)| matches!(e, Event::Computed { node, .. } if *node == i))
            .map(|(k, _)| *k)
            .collect();
        for key in pending {
            if let Some(Event::Computed { computation, .. }) = self.queue.remove(&key)
                && self.faults.chance(0.5)
            {
                let release = computation.release();
                self.nodes[i].pay_only(&computation);
                self.paid(i, &release);
            }
        }
        self.nodes[i].crash();
        if let Some(conn) = self.node_conn[i].take()
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.at_peer = false;
            c.broken = true;
            let reason = "idle timeout (the node died)".to_owned();
            self.schedule(
                self.config.idle_timeout,
                Event::CoordinatorSeesClose { conn, reason },
            );
        }
        let delay = self.faults.restart_delay();
        self.schedule(delay, Event::RestartNode(i));
    }

    /// Breaks `conn`: both ends notice after the idle timeout.
    fn break_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.broken {
            return;
        }
        c.broken = true;
        self.stats.disconnects += 1;
        let idle = self.config.idle_timeout;
        let reason = "idle timeout (connection broke)".to_owned();
        self.schedule(idle, Event::CoordinatorSeesClose { conn, reason });
        self.schedule(idle, Event::PeerSeesClose { conn });
    }

    fn random_faults(&mut self) {
        let c = self.faults.config().clone();
        if self.faults.chance(c.crash_node) {
            let up: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_up())
                .collect();
            if !up.is_empty() {
                let i = up[self.faults.below(up.len())];
                self.crash_node(i);
            }
        }
        if self.coordinator.is_up()
            && self.crash_next.is_none()
            && self.faults.chance(c.crash_coordinator)
        {
            // Dies during its next input, after 1 to 4 of the effects it causes (or at its end).
            self.crash_next = Some(1 + self.faults.below(4));
        }
        if self.faults.chance(c.disconnect) {
            let open: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| !c.broken && c.at_peer)
                .map(|(k, _)| *k)
                .collect();
            if !open.is_empty() {
                let conn = open[self.faults.below(open.len())];
                self.break_conn(conn);
            }
        }
        if self.faults.chance(c.crash_analyst)
            && let Some(conn) = self.analyst_conn
        {
            self.stats.analyst_crashes += 1;
            self.break_conn(conn);
        }
    }

    fn peer_closed(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.at_peer {
            return;
        }
        c.at_peer = false;
        let peer = c.peer;
        match peer {
            Peer::Node(i) => {
                if self.node_conn[i] == Some(conn) {
                    self.node_conn[i] = None;
                    self.nodes[i].disconnect();
                }
            }
            Peer::Analyst => {
                if self.analyst_conn == Some(conn) {
                    self.analyst_conn = None;
                    self.analyst.disconnected();
                }
            }
        }
        let wait = self.next_backoff(peer);
        self.schedule(wait, Event::Dial(peer));
    }

    fn next_backoff(&mut self, peer: Peer) -> Duration {
        let b = self
            .backoff
            .entry(peer)
            .or_insert(Duration::from_millis(500));
        let wait = *b;
        *b = (*b * 2).min(Duration::from_secs(8));
        wait + self.faults.between(Duration::ZERO, wait / 2)
    }

    fn dial(&mut self, peer: Peer) {
        let (up, connected) = match peer {
            Peer::Node(i) => (self.nodes[i].is_up(), self.node_conn[i].is_some()),
            Peer::Analyst => (true, self.analyst_conn.is_some()),
        };
        if !up || connected {
            return;
        }
        if !self.coordinator.is_up() {
            let wait = self.next_backoff(peer);
            self.schedule(wait, Event::Dial(peer));
            return;
        }
        self.backoff.remove(&peer);
        let conn = self.next_conn;
        self.next_conn += 1;
        let (party, key) = match peer {
            Peer::Node(i) => (self.nodes[i].party().clone(), self.nodes[i].verifying_key()),
            Peer::Analyst => (
                self.analyst.party().clone(),
                crate::node::signing_key(seed_bytes(self.config.seed, u64::MAX)).verifying_key(),
            ),
        };
        self.conns.insert(
            conn,
            Conn {
                peer,
                at_coordinator: true,
                at_peer: true,
                broken: false,
                last_up: self.now,
                last_down: self.now,
            },
        );
        self.coordinator_input(Input::Connected {
            conn,
            party,
            certificate: key.to_bytes().to_vec(),
            key,
            valid_until: None,
        });
        match peer {
            Peer::Node(i) => {
                self.node_conn[i] = Some(conn);
                let outs = self.nodes[i].connect();
                self.node_outputs(i, outs);
            }
            Peer::Analyst => {
                self.analyst_conn = Some(conn);
                let outs = self.analyst.connected();
                self.analyst_outputs(outs);
            }
        }
    }

    fn node_outputs(&mut self, i: usize, outs: Vec<NodeOut>) {
        for out in outs {
            match out {
                NodeOut::Send { job, body } => {
                    if let Body::SecAgg(NodeMessage::Unmask(r)) = &body {
                        self.checker.on_unmask(job, r);
                    }
                    if let Some(conn) = self.node_conn[i] {
                        self.transmit(conn, true, Self::envelope(job, body));
                    }
                }
                NodeOut::Compute(computation) => {
                    let at = self.config.compute_time;
                    self.schedule(
                        at,
                        Event::Computed {
                            node: i,
                            computation,
                        },
                    );
                }
                NodeOut::End { .. } => {
                    if let Some(conn) = self.node_conn[i].take() {
                        self.nodes[i].disconnect();
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.at_peer = false;
                        }
                        let reason = "the node ended the session".to_owned();
                        self.schedule(
                            self.config.latency,
                            Event::CoordinatorSeesClose { conn, reason },
                        );
                        let wait = self.next_backoff(Peer::Node(i));
                        self.schedule(wait, Event::Dial(Peer::Node(i)));
                    }
                }
            }
        }
    }

    fn analyst_outputs(&mut self, outs: Vec<AnalystOut>) {
        for out in outs {
            match out {
                AnalystOut::Send(body) => {
                    if let Some(conn) = self.analyst_conn {
                        self.transmit(conn, true, Self::envelope(JobId::NONE, body));
                    }
                }
                AnalystOut::Timer(after) => {
                    let epoch = self.analyst.epoch();
                    self.schedule(after, Event::AnalystTimer(epoch));
                }
            }
        }
    }
}

fn brief(event: &Event) -> String {
    match event {
        Event::ToCoordinator { conn, envelope } => match &envelope.body {
            Body::Refuse(r) => format!(
                "to coordinator on {conn}: {} refuse ({:?}: {})",
                envelope.header.job, r.reason, r.detail
            ),
            body => format!(
                "to coordinator on {conn}: {} {}",
                envelope.header.job,
                body.kind()
            ),
        },
        Event::ToPeer { conn, envelope } => {
            format!(
                "to peer on {conn}: {} {}",
                envelope.header.job,
                envelope.body.kind()
            )
        }
        Event::Computed { node, .. } => format!("node {node} computed"),
        other => format!("{other:?}"),
    }
}

fn brief_effect(effect: &Effect) -> String {
    match effect {
        Effect::Send { conn, envelope } => {
            format!(
                "send on {conn}: {} {}",
                envelope.header.job,
                envelope.body.kind()
            )
        }
        Effect::Journaled(r) => format!("journal {r:?}"),
        Effect::Recorded { job, .. } => format!("recorded {job}"),
        other => format!("{other:?}"),
    }
}
