//! The simulated node: the ONE file that uses the node crate's API, and a thin driver of the
//! node's real protocol core.
//!
//! It is `node/src/service.rs` without the socket: [`NodeCore`] decides everything (the
//! session, admission with its roster, rho, floor, budget and headroom checks, each job's
//! secure aggregation, expiry, the heartbeat), and this file only carries out its
//! [`Action`]s at the virtual time: a send becomes a [`NodeOut::Send`] for the simulator to
//! deliver, a work order becomes a [`Computation`] the simulator hands back after the compute
//! time, and the computation itself is the service's: the real query evaluation
//! ([`fedprof_node::work::answer`]) then the real debit ([`books::debit`]: checks again under
//! the lock, noise, fsync) on a real `NodeLedger` on disk. A cancelled job does not pay, and
//! nothing still computing pays once its session is over, as in the service.
//!
//! What differs from the service, and why:
//! - Features come from an in-memory [`FeatureTable`] (the pipeline that reads files is not
//!   simulated); the answer is computed from it by the service's own evaluation.
//! - Roster certificates: the service verifies each against the federation CA
//!   (`Credentials`, the production [`Certificates`]). The simulator has no PKI; it injects
//!   its own [`Certificates`] (the trait `NodeCore` takes), under which a roster entry's
//!   "certificate" is the node's 32-byte public key, trusted when the simulator's directory
//!   of node keys lists it. The core's roster checks (names, roles, keys, this node's place)
//!   run unchanged on what it returns.
//! - A node's process is its books (opened from disk by [`Books::open`], as the service
//!   starts) and the core of its current connection. A crash drops both; a restart opens the
//!   books again from the ledger on disk.
//! - The simulator keeps an omniscient record of every vector each node paid for, across
//!   crashes, for the invariants (the node's own copy is its ledger's vector cache).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chacha20::ChaCha20Rng;
use fedprof_crypto::{SecretKey32, SigningKey, VerifyingKey};
use fedprof_ledger::{NodeBody, NodeBook, ReleaseId};
use fedprof_node::books::{self, Books, OpenError, Paid};
use fedprof_node::config::{ConnectionConfig, NodeFloorConfig, NodePrivacyConfig};
use fedprof_node::core::{Action, Compute, CoreParams, Input, MAX_CONCURRENT_JOBS, NodeCore};
use fedprof_node::job::Certificates;
use fedprof_node::pipeline::FeatureTable;
use fedprof_privacy::Rho;
use fedprof_protocol::{Body, Envelope, JobId, PartyId, PartyName, Refusal, RefuseReason, Role};
use rand_core::{Rng as _, SeedableRng as _};

/// The time a node's core is handed (its monotonic and wall clocks), re-exported so that the
/// rest of the simulator does not reach into the node crate.
pub use fedprof_node::core::Now;

/// What the node tells the coordinator it runs.
const SOFTWARE: &str = "fedprof-sim";

/// Why a simulated node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeStartError {
    /// Its books cannot be opened (ledger corrupt, locked or unwritable; bad period).
    #[error("node {node}: {error}")]
    Books {
        /// The node.
        node: PartyName,
        /// The node crate's error.
        error: OpenError,
    },
}

/// What the simulator must do for a node.
#[derive(Debug)]
pub enum NodeOut {
    /// Send `body` about `job` on the node's connection.
    Send {
        /// The job.
        job: JobId,
        /// The message.
        body: Body,
    },
    /// Start the local computation of a release; hand the token back with
    /// [`SimNode::computed`] when it is done (it stands for the service's `spawn_blocking`).
    Compute(Box<Computation>),
    /// The session cannot go on: close the connection (the node redials).
    End {
        /// Why.
        reason: String,
    },
}

/// A release being computed: the core's work order and its cancel flag (opaque to the
/// simulator).
#[derive(Debug)]
pub struct Computation {
    session: u64,
    work: Compute,
    cancelled: Arc<AtomicBool>,
}

impl Computation {
    /// The release it pays for.
    pub fn release(&self) -> ReleaseId {
        self.work.release
    }
}

/// One connection's core, and the cancel flags of its computations (the service's
/// `cancels`).
struct Session {
    id: u64,
    core: NodeCore,
    cancels: BTreeMap<JobId, Arc<AtomicBool>>,
}

impl Session {
    /// Carries out the core's actions as the service's session loop does; what needs the
    /// simulator comes back as [`NodeOut`]s.
    fn carry_out(&mut self, actions: Vec<Action>) -> Vec<NodeOut> {
        let mut out = Vec::new();
        for action in actions {
            match action {
                Action::Send { job, body } => out.push(NodeOut::Send { job, body }),
                Action::Compute(work) => {
                    let cancelled = Arc::new(AtomicBool::new(false));
                    self.cancels.insert(work.job, Arc::clone(&cancelled));
                    out.push(NodeOut::Compute(Box::new(Computation {
                        session: self.id,
                        work: *work,
                        cancelled,
                    })));
                }
                Action::Cancel { job } => {
                    if let Some(flag) = self.cancels.remove(&job) {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
                Action::Released { job, .. } => {
                    self.cancels.remove(&job);
                }
                Action::End { reason } => out.push(NodeOut::End { reason }),
            }
        }
        out
    }

    /// The session is over: nothing still computing pays.
    fn cancel_all(&mut self) {
        for flag in std::mem::take(&mut self.cancels).into_values() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// What lives as long as the node's process.
struct Process {
    books: Mutex<Books>,
    session: Option<Session>,
    /// Seeds each connection's core (the service draws them from the OS).
    rng: ChaCha20Rng,
}

/// One simulated node: its identity, data and state directory, and its process when up.
pub struct SimNode {
    seed: [u8; 32],
    params: Arc<CoreParams>,
    privacy: NodePrivacyConfig,
    table: FeatureTable,
    process: Option<Process>,
    starts: u64,
    sessions: u64,
    /// Every vector this node paid for, by release (the simulator's omniscient record, kept
    /// across crashes; the node's own copy is its ledger's vector cache).
    paid: BTreeMap<ReleaseId, Vec<u64>>,
    /// The rho of every release it paid for (the same omniscient record).
    spent: Rho,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("party", &self.params.identity)
            .field("up", &self.process.is_some())
            .finish_non_exhaustive()
    }
}

/// The signing key of seed `seed`, as the node's certificate key.
pub fn signing_key(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_seed(&SecretKey32::from_bytes(seed))
}

/// Builds a feature table of `customers` synthetic customers from `seed` (the columns the
/// simulator's queries read: transaction counts, monetary totals, days since last purchase).
pub fn synthetic_table(customers: usize, seed: u64) -> FeatureTable {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut t = FeatureTable::default();
    for i in 0..customers {
        let txns = 1 + rng.next_u64() % 20;
        t.customer.push(format!("{seed:x}-{i}"));
        t.txn_count.push(txns);
        t.monetary_total
            .push(i128::from(rng.next_u64() % 2_000) * i128::from(txns));
        t.days_since_last
            .push(u32::try_from(rng.next_u64() % 400).unwrap_or(0));
    }
    t
}

impl SimNode {
    /// A node named `name` keeping its ledger in `dir`, with signing key seed `seed`,
    /// answering from `table`, spending at most `cap` in the pinned budget period `period`
    /// (`YYYY-MM`), trusting the roster keys `directory` lists.
    pub fn new(
        name: PartyName,
        seed: [u8; 32],
        dir: &Path,
        table: FeatureTable,
        (cap, period): (Rho, String),
        directory: Arc<Directory>,
    ) -> SimNode {
        let params = Arc::new(CoreParams {
            identity: PartyId {
                role: Role::Node,
                name,
            },
            key: signing_key(seed),
            certificates: directory,
            floor: NodeFloorConfig::default(),
            max_jobs: MAX_CONCURRENT_JOBS,
            heartbeat_timeout: ConnectionConfig::default().heartbeat_timeout(),
        });
        SimNode {
            seed,
            params,
            privacy: NodePrivacyConfig {
                ledger: dir.to_owned(),
                cap_rho: cap,
                period: Some(period),
                lifetime_cap_rho: None,
            },
            table,
            process: None,
            starts: 0,
            sessions: 0,
            paid: BTreeMap::new(),
            spent: Rho::zero(),
        }
    }

    /// Who it is.
    pub fn party(&self) -> &PartyId {
        &self.params.identity
    }

    /// Its certificate key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.params.key.verifying_key()
    }

    /// Whether its process is running.
    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }

    /// Starts the process as `NodeService::new` does: [`Books::open`] (opens and verifies the
    /// ledger, rebuilds the floor's spending from it, opens the period).
    pub fn start(&mut self) -> Result<(), NodeStartError> {
        let ledger_key = fedprof_ledger::SigningKey::from_bytes(&self.seed);
        let books =
            Books::open(&self.privacy, ledger_key, self.party().clone()).map_err(|error| {
                NodeStartError::Books {
                    node: self.party().name.clone(),
                    error,
                }
            })?;
        self.starts += 1;
        let mut seed = self.seed;
        seed[..8].copy_from_slice(&self.starts.to_le_bytes());
        self.process = Some(Process {
            books: Mutex::new(books),
            session: None,
            rng: ChaCha20Rng::from_seed(seed),
        });
        Ok(())
    }

    /// `kill -9`: the process and everything in memory are gone (the ledger file stays, and
    /// so does its lock's release: the OS drops it with the process).
    pub fn crash(&mut self) {
        self.process = None;
    }

    /// A new connection at `now`: a new core starts and registers.
    pub fn connect(&mut self, now: Now) -> Vec<NodeOut> {
        let Some(p) = self.process.as_mut() else {
            return Vec::new();
        };
        self.sessions += 1;
        let mut seed = [0u8; 32];
        p.rng.fill_bytes(&mut seed);
        let (core, actions) = NodeCore::start(Arc::clone(&self.params), SOFTWARE, seed, now);
        let session = p.session.insert(Session {
            id: self.sessions,
            core,
            cancels: BTreeMap::new(),
        });
        session.carry_out(actions)
    }

    /// The connection is gone: its core goes with it, and nothing it started computing pays.
    pub fn disconnect(&mut self) {
        if let Some(mut session) = self.process.as_mut().and_then(|p| p.session.take()) {
            session.cancel_all();
        }
    }

    /// Whether a session is open and registered.
    pub fn is_registered(&self) -> bool {
        self.session().is_some_and(|s| s.core.is_registered())
    }

    /// When the current core wants [`SimNode::tick`]: a job's expiry or the heartbeat.
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        self.session().and_then(|s| s.core.next_deadline())
    }

    /// A message from the coordinator at `now`. As the service does, the budget period is
    /// rolled first (a no-op here: the period is pinned).
    pub fn on_message(&mut self, envelope: Envelope, now: Now) -> Vec<NodeOut> {
        if let Some(p) = self.process.as_mut()
            && let Ok(books) = p.books.get_mut()
        {
            let _ = books::roll(books, &self.privacy);
        }
        self.handle(Input::Message(envelope), now)
    }

    /// Time passed: the core checks its deadlines.
    pub fn tick(&mut self, now: Now) -> Vec<NodeOut> {
        self.handle(Input::Tick, now)
    }

    fn handle(&mut self, input: Input, now: Now) -> Vec<NodeOut> {
        let Some(p) = self.process.as_mut() else {
            return Vec::new();
        };
        let Some(session) = p.session.as_mut() else {
            return Vec::new();
        };
        let actions = session.core.handle(input, now, &p.books);
        session.carry_out(actions)
    }

    /// The computation of `c` is done at `now`: answer, then pay (the service's blocking
    /// task), then hand the outcome to the core if its session is still the one that started
    /// it (a later session never hears of it, as the service's per-session channel).
    pub fn computed(&mut self, c: Computation, now: Now) -> Vec<NodeOut> {
        let result = self.pay(&c);
        if self.session().is_none_or(|s| s.id != c.session) {
            return Vec::new();
        }
        let job = c.work.job;
        self.handle(Input::Computed { job, result }, now)
    }

    /// Pays for a release, as a computation interrupted by a crash just after its fsync would
    /// have (nothing is sent).
    pub fn pay_only(&mut self, c: &Computation) {
        let _ = self.pay(c);
    }

    /// The service's computation: the exact answer, then [`books::debit`].
    fn pay(&mut self, c: &Computation) -> books::Computed {
        let Some(p) = self.process.as_ref() else {
            return Err(Refusal {
                reason: RefuseReason::Policy,
                detail: "node is down".into(),
            });
        };
        let work = &c.work;
        let mut rng = ChaCha20Rng::from_seed(work.noise_seed);
        let cancelled = || c.cancelled.load(Ordering::SeqCst);
        let paid = Paid {
            privacy: &self.privacy,
            floor: &self.params.floor,
            announce: &work.announce,
            release: work.release,
            reserve: work.reserve.clone(),
            cancelled: &cancelled,
        };
        let result =
            fedprof_node::work::answer(&self.table, &work.announce.spec).and_then(|exact| {
                books::debit(
                    &p.books,
                    &paid,
                    work.mechanism.clone(),
                    &exact,
                    &work.announce.release,
                    &mut rng,
                )
                .map(Box::new)
            });
        if let Ok(receipt) = &result {
            if !receipt.is_retry()
                && let NodeBody::Debit { mechanism, .. } = receipt.entry().body()
            {
                self.spent = &self.spent + &mechanism.rho();
            }
            self.paid
                .insert(work.release, receipt.noisy_vector().to_vec());
        }
        result
    }

    /// The node's name, its ledger as it is now (`None` while the node is down) and what the
    /// simulator saw it pay in all, for the invariants (`&mut`: the books are behind the
    /// core's lock, which nothing else holds between steps).
    pub fn books(&mut self) -> Option<(&PartyName, &NodeBook, &Rho)> {
        let books = self.process.as_mut()?.books.get_mut().ok()?;
        Some((&self.params.identity.name, books.ledger.book(), &self.spent))
    }

    /// The vector this node paid for `release`, if it did.
    pub fn paid_vector(&self, release: &ReleaseId) -> Option<&[u64]> {
        self.paid.get(release).map(Vec::as_slice)
    }

    /// What this node paid in all (the simulator's tally, not its ledger's).
    pub fn spent(&self) -> &Rho {
        &self.spent
    }

    /// Releases this node paid for.
    pub fn paid_count(&self) -> usize {
        self.paid.len()
    }

    /// The jobs the current core is working on.
    pub fn running_jobs(&self) -> usize {
        self.session().map_or(0, |s| s.core.jobs().len())
    }

    fn session(&self) -> Option<&Session> {
        self.process.as_ref().and_then(|p| p.session.as_ref())
    }
}

/// The simulator's stand-in for the federation CA, injected into the core as its
/// [`Certificates`]: a roster "certificate" is the node's public key, trusted when the
/// directory lists it (under the name it is listed with). Indexed by key: every node checks
/// every roster entry of every announcement (a million look-ups per release at 1,000 nodes).
/// One is shared by every node.
#[derive(Debug)]
pub struct Directory(BTreeMap<[u8; 32], PartyName>);

impl Directory {
    /// The directory of these nodes' public keys.
    pub fn new(by_name: &BTreeMap<PartyName, [u8; 32]>) -> Self {
        Directory(by_name.iter().map(|(n, k)| (*k, n.clone())).collect())
    }
}

impl Certificates for Directory {
    fn verify_party(
        &self,
        der: &[u8],
        _now: std::time::SystemTime,
    ) -> Result<(PartyId, [u8; 32]), String> {
        let key = <[u8; 32]>::try_from(der).map_err(|_| "not a 32-byte key".to_owned())?;
        let name = self.0.get(&key).ok_or("not in the directory")?;
        Ok((
            PartyId {
                role: Role::Node,
                name: name.clone(),
            },
            key,
        ))
    }
}
