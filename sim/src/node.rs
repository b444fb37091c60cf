//! The simulated node: the ONE file that uses the node crate's API.
//!
//! It reassembles what `node/src/service.rs` does around its sans-IO pieces, without the
//! socket: [`NodeSession`] routes messages, [`NodeJob`] runs one job's secure aggregation,
//! [`fedprof_node::floor`] holds the node's own floor, [`fedprof_node::query`] evaluates the
//! query over a feature table and draws the noise, and a real [`NodeLedger`] on disk debits
//! every release before its vector may leave. When the node crate gains its sans-IO
//! `NodeCore`, this file is the only one to port.
//!
//! What the public API does not give, and how this adapter works around it (the service's
//! own versions are private to `node/src/service.rs`):
//! - `check_budget`, `once`, `roll` and `debit` (the admission and payment rules) are
//!   re-written here from their public parts: `NodeBook::check_debit`,
//!   `NodeBook::check_headroom`, `floor::check`, `floor::roll_period` and
//!   `NodeLedger::prepare_release`, in the service's order.
//! - `work::mechanism` and `work::Work` are `pub(crate)`: the rho and ledger record of a
//!   release come from `fedprof_privacy::query::query_rho` and `MechanismRecord::for_release`
//!   (what `work::mechanism` calls), and the vector from `query::evaluate` and
//!   `query::noisy` over an in-memory [`FeatureTable`] (the pipeline that reads files is not
//!   simulated).
//! - Roster certificates: the service verifies each against the federation CA
//!   (`Credentials::verify_party`). The simulator has no PKI; a roster entry's
//!   "certificate" is the node's 32-byte public key, checked against the simulator's
//!   directory of node keys (the stand-in for the CA).
//! - `MAX_CONCURRENT_JOBS` (4) and `JOB_LIFETIME_PHASES` (6) are private constants, copied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use fedprof_crypto::{SecretKey32, SigningKey, VerifyingKey};
use fedprof_ledger::{
    DebitReceipt, Digest, MechanismRecord, NodeBook, NodeLedger, Period, ReleaseId, StoreError,
};
use fedprof_node::config::NodeFloorConfig;
use fedprof_node::floor::Spending;
use fedprof_node::job::{NodeJob, VerifiedRoster, round_config};
use fedprof_node::pipeline::FeatureTable;
use fedprof_node::session::{NodeAction, NodeSession};
use fedprof_privacy::Rho;
use fedprof_protocol::{
    Body, Envelope, JobAnnounce, JobId, JobSpec, PartyId, PartyName, Refusal, RefuseReason, Role,
    RoundId,
};
use rand_core::{Rng as _, SeedableRng as _};

/// Copied from `node/src/service.rs` (private there).
const MAX_CONCURRENT_JOBS: usize = 4;
/// Copied from `node/src/service.rs` (private there).
const JOB_LIFETIME_PHASES: u32 = 6;

/// Why a simulated node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeStartError {
    /// Its ledger cannot be opened (corrupt, locked, unwritable).
    #[error("node {node}: ledger: {error}")]
    Ledger {
        /// The node.
        node: PartyName,
        /// The store's error.
        error: Box<StoreError>,
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

/// A release being computed (opaque to the simulator).
#[derive(Debug)]
pub struct Computation {
    job: JobId,
    session: u64,
    announce: Box<JobAnnounce>,
    release: ReleaseId,
    mechanism: MechanismRecord,
    reserve: Rho,
}

impl Computation {
    /// The release it pays for.
    pub fn release(&self) -> ReleaseId {
        self.release
    }
}

struct ActiveJob {
    secagg: NodeJob<ChaCha20Rng>,
    expires: Instant,
}

struct Session {
    id: u64,
    state: NodeSession,
    jobs: BTreeMap<JobId, ActiveJob>,
}

/// What lives as long as the node's process.
struct Process {
    ledger: NodeLedger,
    spending: Spending,
    session: Option<Session>,
    rng: ChaCha20Rng,
}

/// One simulated node: its identity, data and state directory, and its process when up.
pub struct SimNode {
    party: PartyId,
    seed: [u8; 32],
    key: SigningKey,
    dir: PathBuf,
    table: Arc<FeatureTable>,
    floor: NodeFloorConfig,
    cap: Rho,
    period: Period,
    /// Every node's public key by name: the simulator's stand-in for the federation CA.
    directory: Arc<BTreeMap<PartyName, [u8; 32]>>,
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
            .field("party", &self.party)
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
    /// A node named `name` keeping its state in `dir`, with signing key seed `seed`, answering
    /// from `table`, spending at most `cap` in `period`.
    pub fn new(
        name: PartyName,
        seed: [u8; 32],
        dir: &Path,
        table: FeatureTable,
        (cap, period): (Rho, Period),
        directory: Arc<BTreeMap<PartyName, [u8; 32]>>,
    ) -> SimNode {
        SimNode {
            party: PartyId {
                role: Role::Node,
                name,
            },
            seed,
            key: signing_key(seed),
            dir: dir.to_owned(),
            table: Arc::new(table),
            floor: NodeFloorConfig::default(),
            cap,
            period,
            directory,
            process: None,
            starts: 0,
            sessions: 0,
            paid: BTreeMap::new(),
            spent: Rho::zero(),
        }
    }

    /// Who it is.
    pub fn party(&self) -> &PartyId {
        &self.party
    }

    /// Its certificate key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Whether its process is running.
    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }

    /// Starts the process as `NodeService::new` does: opens (and verifies) the ledger, rebuilds
    /// the floor's spending from it and opens the period.
    pub fn start(&mut self) -> Result<(), NodeStartError> {
        let err = |error| NodeStartError::Ledger {
            node: self.party.name.clone(),
            error,
        };
        let ledger_key = fedprof_ledger::SigningKey::from_bytes(&self.seed);
        let mut ledger = NodeLedger::open(&self.dir, ledger_key, self.party.clone())
            .map_err(|e| err(Box::new(e)))?;
        let mut spending = Spending::from_ledger(ledger.path());
        fedprof_node::floor::roll_period(
            &mut ledger,
            &mut spending,
            self.period.clone(),
            &self.cap,
            None,
        )
        .map_err(err)?;
        self.starts += 1;
        let mut seed = self.seed;
        seed[..8].copy_from_slice(&self.starts.to_le_bytes());
        self.process = Some(Process {
            ledger,
            spending,
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

    /// A new connection: the session starts and registers.
    pub fn connect(&mut self) -> Vec<NodeOut> {
        let Some(p) = self.process.as_mut() else {
            return Vec::new();
        };
        self.sessions += 1;
        let (state, first) = NodeSession::start("fedprof-sim");
        p.session = Some(Session {
            id: self.sessions,
            state,
            jobs: BTreeMap::new(),
        });
        convert(vec![first])
    }

    /// The connection is gone; jobs of the session are dropped (computations already started
    /// still finish and pay, as the service's blocking tasks do).
    pub fn disconnect(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.session = None;
        }
    }

    /// Whether a session is open and registered.
    pub fn is_registered(&self) -> bool {
        self.process
            .as_ref()
            .and_then(|p| p.session.as_ref())
            .is_some_and(|s| s.state.is_registered())
    }

    /// A message from the coordinator.
    pub fn on_message(&mut self, envelope: Envelope, now: Instant) -> Vec<NodeOut> {
        let Some(session) = self.process.as_mut().and_then(|p| p.session.as_mut()) else {
            return Vec::new();
        };
        let actions = session.state.on_message(envelope);
        let mut out = Vec::new();
        for action in actions {
            match action {
                NodeAction::StartJob { job, announce } => {
                    match self.start_job(job, announce, now) {
                        Ok(mut o) => out.append(&mut o),
                        Err(refusal) => out.push(NodeOut::Send {
                            job,
                            body: Body::Refuse(refusal),
                        }),
                    }
                }
                NodeAction::Relay { job, message } => {
                    let Some(s) = self.session_mut() else {
                        continue;
                    };
                    let Some(active) = s.jobs.get_mut(&job) else {
                        continue; // A job this node already left or never took.
                    };
                    match active.secagg.on_relay(message) {
                        Ok(Some(reply)) => out.push(NodeOut::Send {
                            job,
                            body: Body::SecAgg(reply),
                        }),
                        Ok(None) => {}
                        Err(e) => {
                            s.jobs.remove(&job);
                            out.push(NodeOut::Send {
                                job,
                                body: Body::Refuse(policy(e.to_string())),
                            });
                        }
                    }
                }
                // A round over (released, aborted, or left without this node) frees its slot.
                NodeAction::Released { job, .. } | NodeAction::RoundOver { job, .. } => {
                    if let Some(s) = self.session_mut() {
                        s.jobs.remove(&job);
                    }
                }
                other => out.extend(convert(vec![other])),
            }
        }
        out
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        self.process.as_mut().and_then(|p| p.session.as_mut())
    }

    /// The service's `start_job`: roster, floor and budget checks, then accept.
    fn start_job(
        &mut self,
        job: JobId,
        announce: Box<JobAnnounce>,
        now: Instant,
    ) -> Result<Vec<NodeOut>, Refusal> {
        let Some(p) = self.process.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(session) = p.session.as_mut() else {
            return Ok(Vec::new());
        };
        session.jobs.retain(|_, j| j.expires > now);
        if session.jobs.len() >= MAX_CONCURRENT_JOBS {
            return Err(Refusal {
                reason: RefuseReason::Busy,
                detail: format!("already working on {} jobs", session.jobs.len()),
            });
        }
        // As in the service, a second announcement of a running job starts it again (the
        // transport's sequence check keeps duplicates out; the simulator may not).
        let mut keys = Vec::with_capacity(announce.secagg.roster.len());
        let mut me = None;
        for (i, entry) in announce.secagg.roster.iter().enumerate() {
            let known = self.directory.get(&entry.name);
            let trusted = known.is_some_and(|k| entry.certificate.as_slice() == k.as_slice());
            let key = match (trusted, known) {
                (true, Some(k)) => VerifyingKey::from_bytes(k).ok(),
                _ => None,
            };
            let Some(key) = key else {
                return Err(policy(format!(
                    "roster certificate of {} is not trusted",
                    entry.name
                )));
            };
            if entry.name == self.party.name {
                me = u32::try_from(i).ok();
            }
            keys.push(key);
        }
        let me = me.ok_or_else(|| policy("this node is not in the roster".into()))?;
        let (_rho, mechanism) = mechanism(&announce)?;
        let _ = keys;
        let certificates = Directory(&self.directory);
        let roster = VerifiedRoster::verify(
            &announce.secagg.roster,
            &self.party,
            &certificates,
            std::time::SystemTime::now(),
        )
        .map_err(|e| policy(e.to_string()))?;
        let config = round_config(job, &announce, &roster).map_err(|e| policy(e.to_string()))?;
        let release = ReleaseId {
            job,
            round: RoundId(0),
            nonce: Digest::from_bytes(config.digest()),
        };
        let reserve = reserve_of(&announce.spec);
        check_period(&mut p.ledger, &mut p.spending, &self.period, &self.cap)?;
        once(p.ledger.book(), &release)?;
        check_budget(
            (p.ledger.book(), &p.spending),
            &self.floor,
            &announce,
            (&release, &mechanism),
            &reserve,
        )?;
        let mut job_seed = [0u8; 32];
        p.rng.fill_bytes(&mut job_seed);
        let (secagg, advert) =
            NodeJob::start(job, config, me, &self.key, ChaCha20Rng::from_seed(job_seed))
                .map_err(|e| policy(e.to_string()))?;
        let lifetime = Duration::from_millis(u64::from(announce.timeout_ms)) * JOB_LIFETIME_PHASES;
        session.jobs.insert(
            job,
            ActiveJob {
                secagg,
                expires: now + lifetime,
            },
        );
        Ok(vec![
            NodeOut::Send {
                job,
                body: Body::Accept,
            },
            NodeOut::Send {
                job,
                body: Body::SecAgg(advert),
            },
            NodeOut::Compute(Box::new(Computation {
                job,
                session: session.id,
                announce,
                release,
                mechanism,
                reserve,
            })),
        ])
    }

    /// The computation of `c` is done: evaluate, noise, debit (the service's `debit`), then
    /// hand the vector to the job if its session is still the one that started it.
    pub fn computed(&mut self, c: Computation) -> Vec<NodeOut> {
        let result = self.pay(&c);
        let Some(session) = self.session_mut().filter(|s| s.id == c.session) else {
            return Vec::new();
        };
        let job = c.job;
        let Some(active) = session.jobs.get_mut(&job) else {
            return Vec::new();
        };
        match result {
            // The receipt goes first: the coordinator refuses a masked input from a node that
            // has not shown it paid for the release.
            Ok(receipt) => match active.secagg.set_input(receipt) {
                Ok((line, masked)) => std::iter::once(Body::Receipt(line))
                    .chain(masked.into_iter().map(Body::SecAgg))
                    .map(|body| NodeOut::Send { job, body })
                    .collect(),
                Err(e) => {
                    session.jobs.remove(&job);
                    vec![NodeOut::Send {
                        job,
                        body: Body::Refuse(policy(e.to_string())),
                    }]
                }
            },
            Err(refusal) => {
                session.jobs.remove(&job);
                vec![NodeOut::Send {
                    job,
                    body: Body::Refuse(refusal),
                }]
            }
        }
    }

    /// Pays for a release, as a computation interrupted by a crash just after its fsync would
    /// have (nothing is sent).
    pub fn pay_only(&mut self, c: &Computation) {
        let _ = self.pay(c);
    }

    fn pay(&mut self, c: &Computation) -> Result<DebitReceipt, Refusal> {
        let Some(p) = self.process.as_mut() else {
            return Err(policy("node is down".into()));
        };
        let JobSpec::Features(q) = &c.announce.spec;
        let exact =
            fedprof_node::query::evaluate(&self.table, q).map_err(|e| policy(e.to_string()))?;
        let noisy = fedprof_node::query::noisy(&exact, &c.announce.release, &mut p.rng)
            .map_err(|e| policy(e.to_string()))?;
        once(p.ledger.book(), &c.release)?;
        check_period(&mut p.ledger, &mut p.spending, &self.period, &self.cap)?;
        check_budget(
            (p.ledger.book(), &p.spending),
            &self.floor,
            &c.announce,
            (&c.release, &c.mechanism),
            &c.reserve,
        )?;
        let mut salt = [0u8; 32];
        p.rng.fill_bytes(&mut salt);
        match p
            .ledger
            .prepare_release(c.release, c.mechanism.clone(), salt, move || noisy)
        {
            Ok(receipt) => {
                if !receipt.is_retry() {
                    p.spending.record(receipt.entry());
                    if let fedprof_ledger::NodeBody::Debit { mechanism, .. } =
                        receipt.entry().body()
                    {
                        self.spent = &self.spent + &mechanism.rho();
                    }
                }
                self.paid.insert(c.release, receipt.noisy_vector().to_vec());
                Ok(receipt)
            }
            Err(StoreError::Budget(e)) => Err(e.refusal()),
            Err(e) => Err(policy(format!("the node's ledger failed: {e}"))),
        }
    }

    /// The node's ledger as it is now (`None` while the node is down).
    pub fn book(&self) -> Option<&NodeBook> {
        self.process.as_ref().map(|p| p.ledger.book())
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

    /// The earliest expiry of a running job (the service drops expired jobs on the next
    /// announcement; this is informational).
    pub fn running_jobs(&self) -> usize {
        self.process
            .as_ref()
            .and_then(|p| p.session.as_ref())
            .map_or(0, |s| s.jobs.len())
    }
}

fn convert(actions: Vec<NodeAction>) -> Vec<NodeOut> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            NodeAction::Send { job, body } => Some(NodeOut::Send { job, body }),
            NodeAction::End { reason } => Some(NodeOut::End { reason }),
            // Routed by `on_message`.
            NodeAction::StartJob { .. }
            | NodeAction::Relay { .. }
            | NodeAction::Released { .. }
            | NodeAction::RoundOver { .. } => None,
        })
        .collect()
}

fn policy(detail: String) -> Refusal {
    Refusal {
        reason: RefuseReason::Policy,
        detail,
    }
}

/// `work::mechanism` (crate-private in the node): the release's rho and its ledger record.
fn mechanism(announce: &JobAnnounce) -> Result<(Rho, MechanismRecord), Refusal> {
    let refused = |e: &dyn std::fmt::Display| policy(format!("release parameters refused: {e}"));
    let JobSpec::Features(q) = &announce.spec;
    let rho = fedprof_privacy::query::query_rho(q, &announce.release).map_err(|e| refused(&e))?;
    let record = MechanismRecord::for_release(&announce.spec, &announce.release, &announce.profile)
        .map_err(|e| refused(&e))?;
    Ok((rho, record))
}

fn reserve_of(spec: &JobSpec) -> Rho {
    let JobSpec::Features(q) = spec;
    Rho::from_ratio(q.reserve.numer, q.reserve.denom).unwrap_or_else(|_| Rho::zero())
}

/// The service's `roll`, with the period pinned (as `privacy.period` pins it).
fn check_period(
    ledger: &mut NodeLedger,
    spending: &mut Spending,
    period: &Period,
    cap: &Rho,
) -> Result<(), Refusal> {
    fedprof_node::floor::roll_period(ledger, spending, period.clone(), cap, None)
        .map(|_| ())
        .map_err(|e| policy(format!("the node's ledger failed: {e}")))
}

/// The service's `once`: a release's vector goes into one masking round only.
fn once(book: &NodeBook, release: &ReleaseId) -> Result<(), Refusal> {
    match book.debit(release) {
        None => Ok(()),
        Some(d) => Err(policy(format!(
            "release {release} was already paid for (ledger entry {})",
            d.seq
        ))),
    }
}

/// The service's `check_budget`: period cap, the query's own budget, headroom, floor.
fn check_budget(
    (book, spending): (&NodeBook, &Spending),
    floor: &NodeFloorConfig,
    announce: &JobAnnounce,
    (release, mechanism): (&ReleaseId, &MechanismRecord),
    reserve: &Rho,
) -> Result<(), Refusal> {
    let rho = book
        .check_debit(release, mechanism)
        .map_err(|e| e.refusal())?;
    let JobSpec::Features(q) = &announce.spec;
    let asked = Rho::from_ratio(q.budget.numer, q.budget.denom).unwrap_or_else(|_| Rho::zero());
    if rho > asked {
        return Err(Refusal {
            reason: RefuseReason::PrivacyFloor,
            detail: format!("the announced noise costs rho {rho}, more than the query's {asked}"),
        });
    }
    book.check_headroom(&rho, reserve)
        .map_err(|e| e.refusal())?;
    fedprof_node::floor::check(
        floor,
        spending,
        &announce.release,
        &announce.profile,
        &rho,
        reserve,
    )
    .map_err(|e| e.refusal())
}

/// The simulator's stand-in for the federation CA: a roster "certificate" is the node's public
/// key, trusted when the directory lists it under that name.
struct Directory<'a>(&'a BTreeMap<PartyName, [u8; 32]>);

impl fedprof_node::job::Certificates for Directory<'_> {
    fn verify_party(
        &self,
        der: &[u8],
        _now: std::time::SystemTime,
    ) -> Result<(PartyId, [u8; 32]), String> {
        self.0
            .iter()
            .find(|(_, k)| k.as_slice() == der)
            .map(|(name, k)| {
                (
                    PartyId {
                        role: Role::Node,
                        name: name.clone(),
                    },
                    *k,
                )
            })
            .ok_or_else(|| "not in the directory".to_owned())
    }
}
