//! The node's protocol core, sans-IO: everything the node decides about one connection to the
//! coordinator, with no socket, task, clock or file in it.
//!
//! # The convention every fedprof state machine follows
//!
//! The node's [`NodeCore`], the coordinator's `Coordinator` and `Round`, the per-job
//! [`crate::job::NodeJob`] and the `secagg` machines are driven the same way:
//!
//! - **`handle(input, now) -> Vec<Action>`**: the driver hands the machine one thing that
//!   happened (a decoded message, the result of work it asked for, or a tick) with the
//!   current time, and gets back, in order, everything it must do. The machine never blocks,
//!   never reads a clock and never touches the network or a file; time is whatever `now`
//!   says, and randomness comes from a generator seeded by the driver.
//! - **`next_deadline() -> Option<Instant>`**: the earliest time at which the machine wants
//!   to be handed `Tick`, whatever else happens. The driver sleeps until then (or until the
//!   next input), then calls `handle(Tick, now)`. A tick early or late is harmless: deadlines
//!   are compared with `now`, never counted.
//! - Actions are carried out **in order**, and their results come back as later inputs
//!   (`Computed` here): the machine never waits for them.
//! - State the machine only reads but does not own is passed by reference with the input
//!   (here the node's [`Books`], which the driver also uses, under the same lock, for the
//!   debit). Writing to it is the driver's job.
//!
//! Because of this, a test can drive a whole federation in one thread with a virtual clock,
//! drop, delay, reorder or duplicate any message and check invariants after every step.
//!
//! # What the node core decides
//!
//! Registration and message routing ([`NodeSession`]); admission of an announced job (free
//! slots, the roster's certificates ([`VerifiedRoster`]), the release's rho, the node's floor,
//! budget and headroom, a release never paid twice); each job's secure aggregation and its
//! order of messages (the receipt before the masked input; the vector may come before or
//! after the share bundle); when a job is dropped (released, round over, protocol error,
//! expiry) and the heartbeat: the coordinator pings every registered node, the core answers,
//! and a coordinator silent for [`CoreParams::heartbeat_timeout`] ends the session so the
//! driver reconnects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chacha20::ChaCha20Rng;
use fedprof_crypto::SigningKey;
use fedprof_ledger::{DebitReceipt, MechanismRecord, ReleaseId};
use fedprof_protocol::{
    Body, Envelope, Escaped, JobAnnounce, JobId, JobResult, PartyId, Refusal, RefuseReason,
};
use rand_core::{Rng as _, SeedableRng as _};
use tracing::{debug, info, warn};

use crate::books::{self, Books};
use crate::config::NodeFloorConfig;
use crate::job::{Certificates, JobError, NodeJob, VerifiedRoster, release_id, round_config};
use crate::session::{NodeAction, NodeSession};

/// Most jobs a node works on at once; further announcements are refused as busy.
pub const MAX_CONCURRENT_JOBS: usize = 4;
/// A job whose round has not ended after this many phase timeouts is dropped locally (a
/// backstop: the coordinator's round-over notice normally frees the slot at once).
pub const JOB_LIFETIME_PHASES: u32 = 6;
/// Default for [`CoreParams::heartbeat_timeout`]: three of the coordinator's default ping
/// intervals (10 s), so one lost ping never ends a session.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// The time, as the driver's clocks tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines.
    pub instant: Instant,
    /// Wall-clock time, for certificate validity.
    pub wall: SystemTime,
}

impl Now {
    /// The system's clocks now (drivers only; cores are handed it).
    pub fn system() -> Self {
        Now {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What stays the same across a node's connections.
pub struct CoreParams {
    /// This node, from its certificate.
    pub identity: PartyId,
    /// Its certificate key, which signs its secure-aggregation messages.
    pub key: SigningKey,
    /// Checks roster certificates against the federation CA.
    pub certificates: Arc<dyn Certificates>,
    /// The node's own privacy floor.
    pub floor: NodeFloorConfig,
    /// Most jobs at once.
    pub max_jobs: usize,
    /// Longest silence of the coordinator before the session is ended.
    pub heartbeat_timeout: Duration,
}

impl std::fmt::Debug for CoreParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreParams")
            .field("identity", &self.identity)
            .field("max_jobs", &self.max_jobs)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .finish_non_exhaustive()
    }
}

/// Something that happened.
#[derive(Debug)]
pub enum Input {
    /// A message from the coordinator (decoded and sequence-checked by the transport).
    Message(Envelope),
    /// The work a [`Action::Compute`] asked for finished: the debit receipt (the vector was
    /// paid for and may be sent), or why not.
    Computed {
        /// The job.
        job: JobId,
        /// The receipt, or the refusal to send instead.
        result: Result<Box<DebitReceipt>, Refusal>,
    },
    /// Time passed; deadlines are checked.
    Tick,
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action {
    /// Send `body` about `job` to the coordinator.
    Send {
        /// The job (or [`JobId::NONE`]).
        job: JobId,
        /// The message.
        body: Body,
    },
    /// Compute this node's answer to an admitted job, then pay for it
    /// ([`crate::books::debit`]) unless cancelled, and hand the outcome back as
    /// [`Input::Computed`].
    Compute(Box<Compute>),
    /// The job was dropped: do not pay for it if its debit has not started.
    Cancel {
        /// The job.
        job: JobId,
    },
    /// A job this node contributed to was released (for the log).
    Released {
        /// The job.
        job: JobId,
        /// The released result.
        result: JobResult,
    },
    /// The session cannot go on; close the connection (the driver reconnects with backoff).
    End {
        /// Why, for the operator.
        reason: String,
    },
}

/// One admitted job's work order.
#[derive(Debug)]
pub struct Compute {
    /// The job.
    pub job: JobId,
    /// What was announced (the query, the release's noise, the profiling job).
    pub announce: Arc<JobAnnounce>,
    /// The release paid for.
    pub release: ReleaseId,
    /// Its noise, as the ledger records it.
    pub mechanism: MechanismRecord,
    /// Its cost.
    pub rho: fedprof_privacy::Rho,
    /// The rest of its profiling job, checked again at the debit.
    pub reserve: fedprof_privacy::Rho,
    /// Seed of the generator of this node's noise share and the receipt's salt.
    pub noise_seed: [u8; 32],
}

struct ActiveJob {
    secagg: NodeJob<ChaCha20Rng>,
    expires: Instant,
}

/// The node's protocol state for one connection (a new one per connection: a job does not
/// survive its connection, the coordinator's round fails the node when it goes).
pub struct NodeCore {
    params: Arc<CoreParams>,
    session: NodeSession,
    jobs: BTreeMap<JobId, ActiveJob>,
    /// Per-job generators for secure aggregation and noise seeds.
    rng: ChaCha20Rng,
    /// When the coordinator was last heard from.
    heard: Instant,
    ended: bool,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore")
            .field("node", &self.params.identity)
            .field("registered", &self.session.is_registered())
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl NodeCore {
    /// Starts a connection's core at `now`; `seed` (32 bytes from the OS in production) seeds
    /// its generator. The returned actions register the node.
    pub fn start(
        params: Arc<CoreParams>,
        software: &str,
        seed: [u8; 32],
        now: Now,
    ) -> (Self, Vec<Action>) {
        let (session, first) = NodeSession::start(software);
        let mut core = NodeCore {
            params,
            session,
            jobs: BTreeMap::new(),
            rng: ChaCha20Rng::from_seed(seed),
            heard: now.instant,
            ended: false,
        };
        let mut out = Vec::new();
        core.route(first, now, None, &mut out);
        (core, out)
    }

    /// Whether the coordinator acknowledged the registration.
    pub fn is_registered(&self) -> bool {
        self.session.is_registered()
    }

    /// The jobs this node is working on.
    pub fn jobs(&self) -> Vec<JobId> {
        self.jobs.keys().copied().collect()
    }

    /// When [`Input::Tick`] is due: the earliest job expiry or heartbeat deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let heartbeat = self.heard + self.params.heartbeat_timeout;
        Some(
            self.jobs
                .values()
                .map(|j| j.expires)
                .fold(heartbeat, Instant::min),
        )
    }

    /// Handles one input at `now`. The node's books are read (under their lock) only to
    /// admit an announced job; the core never writes to them.
    pub fn handle(&mut self, input: Input, now: Now, books: &Mutex<Books>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match input {
            Input::Message(envelope) => {
                self.heard = now.instant;
                let was_registered = self.session.is_registered();
                for action in self.session.on_message(envelope) {
                    self.route(action, now, Some(books), &mut out);
                }
                if !was_registered && self.session.is_registered() {
                    info!(node = %self.params.identity.name, "registered");
                }
            }
            Input::Computed { job, result } => self.computed(job, result, &mut out),
            Input::Tick => self.tick(now, &mut out),
        }
        if out.iter().any(|a| matches!(a, Action::End { .. })) {
            self.ended = true;
            for job in std::mem::take(&mut self.jobs).into_keys() {
                out.push(Action::Cancel { job });
            }
        }
        out
    }

    fn route(
        &mut self,
        action: NodeAction,
        now: Now,
        books: Option<&Mutex<Books>>,
        out: &mut Vec<Action>,
    ) {
        match action {
            NodeAction::Send { job, body } => out.push(Action::Send { job, body }),
            NodeAction::StartJob { job, announce } => match books {
                Some(books) => self.admit(job, Arc::new(*announce), now, books, out),
                None => out.push(refuse(
                    job,
                    RefuseReason::Policy,
                    "ledger unavailable".into(),
                )),
            },
            NodeAction::Relay { job, message } => {
                let Some(active) = self.jobs.get_mut(&job) else {
                    return; // A job this node already left or never took.
                };
                match active.secagg.on_relay(message) {
                    Ok(Some(reply)) => out.push(Action::Send {
                        job,
                        body: Body::SecAgg(reply),
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        warn!(%job, error = %e, "leaving the job's secure aggregation");
                        self.drop_job(job, out);
                        out.push(refuse(job, RefuseReason::Policy, e.to_string()));
                    }
                }
            }
            NodeAction::Released { job, result } => {
                if self.jobs.remove(&job).is_some() {
                    out.push(Action::Released { job, result });
                }
            }
            NodeAction::RoundOver { job, over } => {
                if self.jobs.contains_key(&job) {
                    info!(%job, reason = ?over.reason, detail = %Escaped(&over.detail), "round over; job slot freed");
                    self.drop_job(job, out);
                }
            }
            NodeAction::End { reason } => out.push(Action::End { reason }),
        }
    }

    /// Drops a job, cancelling its debit if it has not started.
    fn drop_job(&mut self, job: JobId, out: &mut Vec<Action>) {
        if self.jobs.remove(&job).is_some() {
            out.push(Action::Cancel { job });
        }
    }

    fn tick(&mut self, now: Now, out: &mut Vec<Action>) {
        let expired: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.expires <= now.instant)
            .map(|(id, _)| *id)
            .collect();
        for job in expired {
            warn!(%job, "job expired without its round ending; slot freed");
            self.drop_job(job, out);
        }
        let silent = now.instant.saturating_duration_since(self.heard);
        if silent >= self.params.heartbeat_timeout {
            out.push(Action::End {
                reason: format!(
                    "the coordinator sent nothing for {:.1} s (heartbeat timeout)",
                    silent.as_secs_f64()
                ),
            });
        }
    }

    /// Admits an announced job, or refuses it: slots, roster, rho, budget, floor, then the
    /// node's part of the secure aggregation. Nothing is computed or paid here; the work
    /// order goes out after the acceptance.
    fn admit(
        &mut self,
        job: JobId,
        announce: Arc<JobAnnounce>,
        now: Now,
        books: &Mutex<Books>,
        out: &mut Vec<Action>,
    ) {
        if self.jobs.contains_key(&job) {
            // A repeated announcement of a running job: never two rounds for one job.
            warn!(%job, "job announced twice; leaving it");
            self.drop_job(job, out);
            out.push(refuse(
                job,
                RefuseReason::Policy,
                format!("{job} was announced twice"),
            ));
            return;
        }
        let expired: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.expires <= now.instant)
            .map(|(id, _)| *id)
            .collect();
        for old in expired {
            self.drop_job(old, out);
        }
        match self.admission(job, &announce, now, books) {
            Ok((secagg, advert, compute)) => {
                let lifetime =
                    Duration::from_millis(u64::from(announce.timeout_ms)) * JOB_LIFETIME_PHASES;
                info!(%job, kind = announce.spec.name(), rho = %compute.rho, rho_f64 = compute.rho.to_f64(), "accepted job; computing this node's noisy vector");
                self.jobs.insert(
                    job,
                    ActiveJob {
                        secagg,
                        expires: now.instant + lifetime,
                    },
                );
                out.push(Action::Send {
                    job,
                    body: Body::Accept,
                });
                out.push(Action::Send {
                    job,
                    body: Body::SecAgg(advert),
                });
                out.push(Action::Compute(Box::new(compute)));
            }
            Err(refusal) => {
                // The detail can quote the announcement (a roster error names what it got).
                warn!(%job, reason = ?refusal.reason, detail = %Escaped(&refusal.detail), "refusing job");
                out.push(Action::Send {
                    job,
                    body: Body::Refuse(refusal),
                });
            }
        }
    }

    fn admission(
        &mut self,
        job: JobId,
        announce: &Arc<JobAnnounce>,
        now: Now,
        books: &Mutex<Books>,
    ) -> Result<
        (
            NodeJob<ChaCha20Rng>,
            fedprof_protocol::secagg::NodeMessage,
            Compute,
        ),
        Refusal,
    > {
        let p = &self.params;
        let running = self.jobs.len();
        if running >= p.max_jobs {
            return Err(Refusal {
                reason: RefuseReason::Busy,
                detail: format!("already working on {running} jobs"),
            });
        }
        let setup = |e: JobError| Refusal {
            reason: RefuseReason::Policy,
            detail: e.to_string(),
        };
        let roster = VerifiedRoster::verify(
            &announce.secagg.roster,
            &p.identity,
            p.certificates.as_ref(),
            now.wall,
        )
        .map_err(setup)?;
        let (rho, mechanism) =
            crate::work::mechanism(&announce.spec, &announce.release, &announce.profile)?;
        let config = round_config(job, announce, &roster).map_err(setup)?;
        let release = release_id(job, &config);
        let reserve = books::reserve_of(&announce.spec);
        {
            let books = books.lock().map_err(|_| Refusal {
                reason: RefuseReason::Policy,
                detail: "ledger unavailable".into(),
            })?;
            books::once(&books, &release)?;
            books::check_budget(&books, &p.floor, announce, &release, &mechanism, &reserve)?;
        }
        let job_rng = ChaCha20Rng::from_seed(seed(&mut self.rng));
        let (secagg, advert) =
            NodeJob::start(job, config, roster.me(), &p.key, job_rng).map_err(setup)?;
        let compute = Compute {
            job,
            announce: Arc::clone(announce),
            release,
            mechanism,
            rho,
            reserve,
            noise_seed: seed(&mut self.rng),
        };
        Ok((secagg, advert, compute))
    }

    /// The local work of `job` finished: mask and send the paid vector, or refuse.
    fn computed(
        &mut self,
        job: JobId,
        result: Result<Box<DebitReceipt>, Refusal>,
        out: &mut Vec<Action>,
    ) {
        let Some(active) = self.jobs.get_mut(&job) else {
            // The job was dropped while computing; a debit made in the meantime is lost (the
            // safe side: nothing was sent for it).
            if result.is_ok() {
                warn!(%job, "a release was paid for a job this node had left; it is never sent");
            } else {
                debug!(%job, "work finished for a job this node left");
            }
            return;
        };
        let refusal = match result {
            Ok(receipt) => match active.secagg.set_input(*receipt) {
                // The receipt goes first: the coordinator refuses a masked input from a node
                // that has not shown it paid for the release.
                Ok((line, masked)) => {
                    out.push(Action::Send {
                        job,
                        body: Body::Receipt(line),
                    });
                    if let Some(m) = masked {
                        out.push(Action::Send {
                            job,
                            body: Body::SecAgg(m),
                        });
                    }
                    return;
                }
                Err(e) => Refusal {
                    reason: RefuseReason::Policy,
                    detail: e.to_string(),
                },
            },
            Err(refusal) => refusal,
        };
        self.jobs.remove(&job);
        out.push(Action::Send {
            job,
            body: Body::Refuse(refusal),
        });
    }
}

/// 32 bytes from `rng`.
fn seed(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

fn refuse(job: JobId, reason: RefuseReason, detail: String) -> Action {
    Action::Send {
        job,
        body: Body::Refuse(Refusal { reason, detail }),
    }
}

#[cfg(test)]
mod tests;
