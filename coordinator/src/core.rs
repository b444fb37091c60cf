//! The coordinator's sans-IO core: connections, registrations and rounds.
//!
//! The async shell ([`crate::service`]) feeds it [`Input`]s with the current time and carries
//! out the [`Output`]s. Nothing here touches a socket, a clock or a task, so the whole
//! federation logic can be driven in a unit test, deterministically.
//!
//! Authorization is by certificate role only: a connection's [`PartyId`] comes from the
//! transport, and a message a role may not send closes the connection with
//! [`ErrorCode::RoleNotPermitted`], whatever the message claims.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use fedprof_protocol::{
    Body, Envelope, ErrorCode, Escaped, JobId, JobOutcome, JobResult, JobSpec, PartyId, PartyName,
    ProfileId, ReceiptHead, Registered, ReleaseParams, RequestId, Role, RoundId, Submission,
};
use rand_core::{Rng as _, SeedableRng as _};
use tracing::{debug, info, warn};

use fedprof_crypto::VerifyingKey;
use fedprof_ledger::{Digest, Label, ReleaseRecord};
use fedprof_privacy::Rho;

use crate::budget::{Charge, ProfileBook};
use crate::journal::{
    Announced, KnownRequest, Opening, Record, Recovery, RequestState, SpecDigest,
};
use crate::round::{Participant, Round, RoundEffect, RoundPolicy, RoundRequest};

mod certificates;
mod flow;
mod heartbeat;
pub use certificates::{EXPIRED, REVOKED};
use flow::Flow;
pub use flow::{MAX_STRAY_MESSAGES, MESSAGE_BURST, MESSAGES_PER_SECOND};
pub use heartbeat::Heartbeat;

/// How long a later release of a profiling job waits, by default, for lost nodes of the job.
pub const DEFAULT_REJOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The shell's handle for one connection.
pub type ConnId = u64;

/// Who asked for a job, so its outcome goes back to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// An analyst over the network.
    Analyst(ConnId),
    /// A caller in the same process (the demo, `fedprof local`), by ticket.
    Local(u64),
}

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Input {
    /// A peer authenticated; `party` is from its certificate.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Who it is.
        party: PartyId,
        /// Its certificate (DER), as verified in the handshake.
        certificate: Vec<u8>,
        /// The Ed25519 key in that certificate.
        key: VerifyingKey,
        /// When that certificate expires, on the core's clock (the shell converts its
        /// `notAfter`); `None` if not known. The connection is closed then.
        valid_until: Option<Instant>,
    },
    /// A message arrived (already decoded and sequence-checked by the transport).
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        envelope: Envelope,
    },
    /// The connection is gone.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why, for logs and failure reports.
        reason: String,
    },
    /// Run a job over the registered nodes (idempotent per requester and request id).
    SubmitJob {
        /// What to run, and its idempotency key.
        submission: Submission,
        /// Who gets the outcome.
        requester: Requester,
    },
    /// The release ledger refused job `job`'s release after [`Output::Publish`]: nothing
    /// was published (nodes did pay), so its request runs again if sent again.
    RecordFailed {
        /// The job.
        job: JobId,
    },
    /// The budget period (`YYYY-MM`, UTC) the shell's clock is in; sent at start and
    /// whenever it changes. Analysts' quotas count per period.
    Period(String),
    /// The certificates revoked now (the whole list in force, from
    /// `fedprof_transport::RevocationWatch`): their connections are closed and refused from
    /// now on. Sent at start and after every reload of the list.
    Revoked(BTreeSet<fedprof_transport::Fingerprint>),
    /// Time passed; deadlines are checked.
    Tick,
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a message on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The job it is about.
        job: JobId,
        /// The round.
        round: RoundId,
        /// The message.
        body: Body,
    },
    /// Send an `Error` frame, then close the connection.
    Close {
        /// The connection.
        conn: ConnId,
        /// Error code.
        code: ErrorCode,
        /// Detail.
        detail: String,
    },
    /// A job ended; `Local` requesters are answered from this.
    JobFinished {
        /// The job.
        job: JobId,
        /// Who asked.
        requester: Requester,
        /// How it ended.
        outcome: JobOutcome,
    },
    /// Append this record to the job journal and wait until it is on disk, before carrying
    /// out any later output (the announcements it precedes).
    Journal(Record),
    /// A request that was published before: send its stored outcome to the requester.
    Resend {
        /// The job it was published as.
        job: JobId,
        /// Who asked again.
        requester: Requester,
        /// The requesting analyst's connection.
        analyst: Option<ConnId>,
    },
    /// The set of registered nodes changed (for progress displays and readiness checks).
    NodesChanged(Vec<PartyName>),
    /// A result is ready: append `record` (built and checked here: the mechanism, every
    /// contributor's screened receipt, the digest of the published bytes) to the
    /// coordinator's ledger, and only if that succeeds send `Result` to `recipients` and the
    /// outcome to the requester (`analyst`, or a local caller). If the ledger refuses it, send
    /// [`Input::RecordFailed`].
    Publish {
        /// The job.
        job: JobId,
        /// Who asked.
        requester: Requester,
        /// The requesting analyst's connection, if still open.
        analyst: Option<ConnId>,
        /// The outcome (always `Completed`).
        outcome: JobOutcome,
        /// What the release ledger records.
        record: Box<ReleaseRecord>,
        /// The contributors' connections.
        recipients: Vec<ConnId>,
    },
}

#[derive(Debug)]
struct Session {
    party: PartyId,
    certificate: Vec<u8>,
    key: VerifyingKey,
    valid_until: Option<Instant>,
    registered: bool,
    /// When anything last arrived on this connection.
    heard: Instant,
    /// When the next heartbeat ping is due (registered nodes only).
    next_ping: Instant,
    /// Its message budget (floods, security review M8).
    flow: Flow,
}

/// How releases are bounded and noised (from the coordinator config's `[privacy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// Most zCDP loss one job may cost each node (the per-job cap).
    pub rho_per_job: Rho,
    /// Nodes assumed to collude with the coordinator.
    pub colluders: u32,
    /// Most zCDP loss the profiling jobs one analyst opens in one period may declare in all.
    pub rho_per_analyst_period: Rho,
    /// The federation's declared maximum of holders per person (recorded in the ledger).
    pub max_holders_per_person: Option<u32>,
    /// The name the coordinator's own jobs (local runs, schedules) are recorded under.
    pub name: PartyName,
}

/// The coordinator's state.
#[derive(Debug)]
pub struct Coordinator {
    policy: RoundPolicy,
    release: ReleasePolicy,
    sessions: HashMap<ConnId, Session>,
    /// Registered nodes and the connection each is on.
    nodes: BTreeMap<PartyName, ConnId>,
    rounds: BTreeMap<JobId, (Round, Requester)>,
    last_job: u64,
    profiles: ProfileBook,
    /// Every request seen, per analyst (journaled; rebuilt on restart).
    requests: BTreeMap<(PartyName, RequestId), KnownRequest>,
    /// The request each running round serves, and what it charged.
    job_requests: BTreeMap<JobId, requests::Running>,
    /// Running rounds whose nodes may have paid (journaled as `Paying`).
    paying: BTreeSet<JobId>,
    /// Releases of profiling jobs waiting for lost nodes to come back.
    pending: Vec<requests::Pending>,
    /// How long a release waits for its job's nodes to reconnect.
    rejoin_timeout: Duration,
    period: String,
    /// Nonces, profiling job ids and graph seeds (seeded by the shell from the OS).
    rng: ChaCha20Rng,
    heartbeat: Heartbeat,
    pings: u64,
    /// Each node's latest receipt in the release ledger, told to it in every announcement so
    /// that a node restored from an older copy of its state refuses (review finding L9).
    last_receipts: BTreeMap<PartyName, ReceiptHead>,
    /// Fingerprints of revoked certificates ([`Input::Revoked`]).
    revoked: BTreeSet<fedprof_transport::Fingerprint>,
}

impl Coordinator {
    /// A coordinator with no connections, running rounds under `policy` and releasing under
    /// `release`; `seed` (32 bytes from the OS in production) seeds the generator of nonces,
    /// profiling job ids and graph seeds.
    pub fn new(policy: RoundPolicy, release: ReleasePolicy, seed: [u8; 32]) -> Self {
        Coordinator {
            policy,
            release,
            sessions: HashMap::new(),
            nodes: BTreeMap::new(),
            rounds: BTreeMap::new(),
            last_job: 0,
            profiles: ProfileBook::default(),
            requests: BTreeMap::new(),
            job_requests: BTreeMap::new(),
            paying: BTreeSet::new(),
            pending: Vec::new(),
            rejoin_timeout: DEFAULT_REJOIN_TIMEOUT,
            period: String::new(),
            rng: ChaCha20Rng::from_seed(seed),
            heartbeat: Heartbeat::default(),
            pings: 0,
            last_receipts: BTreeMap::new(),
            revoked: BTreeSet::new(),
        }
    }

    /// Sets the heartbeat (the default is [`Heartbeat::default`]).
    pub fn set_heartbeat(&mut self, heartbeat: Heartbeat) {
        self.heartbeat = heartbeat;
    }

    /// The registered nodes.
    pub fn nodes(&self) -> Vec<PartyName> {
        self.nodes.keys().cloned().collect()
    }

    /// Resumes from the job journal of a previous run (see [`crate::journal`]): job numbers
    /// go on after the last one, open profiling jobs keep their charges and populations, and
    /// published requests are answered from their stored results.
    pub fn resume(&mut self, recovery: Recovery) {
        for (job, paid) in &recovery.interrupted {
            warn!(%job, nodes_paid = paid, "a round was running when the coordinator stopped; it is over (nothing was published)");
        }
        self.last_job = recovery.last_job;
        self.profiles = recovery.profiles;
        self.requests = recovery.requests;
    }

    /// Each node's latest receipt recorded in the release ledger (from
    /// [`fedprof_ledger::CoordinatorBook::last_receipts`] at start); the core keeps them up
    /// to date as it records releases.
    pub fn set_last_receipts(&mut self, heads: BTreeMap<PartyName, ReceiptHead>) {
        self.last_receipts = heads;
    }

    /// How long a later release of a profiling job waits for a lost node of the job to
    /// reconnect before it is refused (default five minutes).
    pub fn set_rejoin_timeout(&mut self, timeout: Duration) {
        self.rejoin_timeout = timeout;
    }

    /// The earliest deadline (a round phase, a release waiting for nodes, a heartbeat), when
    /// the shell should send [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let rounds = self.rounds.values().filter_map(|(r, _)| r.deadline());
        let heartbeats = self
            .sessions
            .values()
            .filter(|s| s.registered)
            .map(|s| s.next_ping.min(s.heard + self.heartbeat.timeout));
        let expiries = self.sessions.values().filter_map(|s| s.valid_until);
        rounds
            .chain(self.pending.iter().map(|p| p.until))
            .chain(heartbeats)
            .chain(expiries)
            .min()
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Connected {
                conn,
                party,
                certificate,
                key,
                valid_until,
            } => {
                debug!(conn, %party, "connected");
                let cert = (&party, certificate.as_slice(), valid_until);
                if self.refuse_unusable(conn, cert, now, &mut out) {
                    return out;
                }
                self.sessions.insert(
                    conn,
                    Session {
                        party,
                        certificate,
                        key,
                        valid_until,
                        registered: false,
                        heard: now,
                        next_ping: now + self.heartbeat.interval,
                        flow: Flow::new(now),
                    },
                );
            }
            Input::Message { conn, envelope } => self.on_message(conn, envelope, now, &mut out),
            Input::Closed { conn, reason } => self.on_closed(conn, &reason, now, &mut out),
            Input::SubmitJob {
                submission,
                requester,
            } => self.submit(submission, requester, now, &mut out),
            Input::RecordFailed { job } => self.record_failed(job),
            Input::Period(period) => self.period = period,
            Input::Revoked(revoked) => self.on_revoked(revoked, now, &mut out),
            Input::Tick => {
                self.close_expired(now, &mut out);
                self.heartbeats(now, &mut out);
                let jobs: Vec<JobId> = self.rounds.keys().copied().collect();
                for job in jobs {
                    if let Some((round, _)) = self.rounds.get_mut(&job) {
                        let effects = round.on_tick(now);
                        self.advance(job, effects, now, &mut out);
                    }
                }
                self.retry_pending(now, &mut out);
            }
        }
        self.finish_settled(&mut out);
        out
    }

    fn on_message(
        &mut self,
        conn: ConnId,
        envelope: Envelope,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return; // Already closed; a message still in flight.
        };
        session.heard = now;
        if let Err(flood) = session.flow.admit(now) {
            self.reject(conn, ErrorCode::UnexpectedMessage, flood.detail(), now, out);
            return;
        }
        let Envelope { header, body } = envelope;
        let role = session.party.role;
        if !matches!(
            (role, &body),
            (
                Role::Node,
                Body::Accept | Body::Refuse(_) | Body::SecAgg(_) | Body::Receipt(_)
            )
        ) {
            session.flow.useful();
        }
        match (role, body) {
            // Its arrival is the point (`heard`, above).
            (Role::Node, Body::Pong(_)) if session.registered => {}
            (Role::Node, Body::Register(reg)) if !session.registered => {
                session.registered = true;
                let name = session.party.name.clone();
                info!(node = %name, software = %Escaped(&reg.software), "node registered");
                out.push(Output::Send {
                    conn,
                    job: JobId::NONE,
                    round: RoundId(0),
                    body: Body::Registered(Registered {
                        party: session.party.clone(),
                    }),
                });
                if let Some(old) = self.nodes.insert(name.clone(), conn) {
                    // A reconnecting node takes over; the old connection is dropped.
                    self.sessions.remove(&old);
                    out.push(Output::Close {
                        conn: old,
                        code: ErrorCode::Replaced,
                        detail: format!("{name} connected again"),
                    });
                    self.fail_member(&name, "replaced by a new connection", now, out);
                }
                out.push(Output::NodesChanged(self.nodes()));
                self.retry_pending(now, out);
            }
            (
                Role::Node,
                body @ (Body::Accept | Body::Refuse(_) | Body::SecAgg(_) | Body::Receipt(_)),
            ) if session.registered => {
                let name = session.party.name.clone();
                let live = self
                    .rounds
                    .get(&header.job)
                    .is_some_and(|(round, _)| round.is_active(&name));
                if live {
                    session.flow.useful();
                } else if let Err(flood) = session.flow.stray() {
                    // Late answers are normal; a stream of them is a flood (M8).
                    self.reject(conn, ErrorCode::UnexpectedMessage, flood.detail(), now, out);
                    return;
                }
                let Some((round, _)) = self.rounds.get_mut(&header.job) else {
                    // A round that already settled (e.g. timed out): the node is too late, not
                    // misbehaving. Jobs never issued are a protocol error.
                    if header.job.0 == 0 || header.job.0 > self.last_job {
                        let detail = format!("no {}", header.job);
                        self.reject(conn, ErrorCode::UnknownJob, detail, now, out);
                    } else {
                        debug!(node = %name, job = %header.job, "late {} ignored", body.kind());
                    }
                    return;
                };
                if let Body::Refuse(refusal) = &body {
                    // The exact budget position stays here and in the node's log; the
                    // analyst's outcome gets the reason only (L8).
                    info!(job = %header.job, node = %name, reason = ?refusal.reason, detail = %Escaped(&refusal.detail), "node refused the job");
                }
                match round.on_message(&name, body, now) {
                    Ok(effects) => self.advance(header.job, effects, now, out),
                    Err(e) => self.reject(conn, ErrorCode::UnknownJob, e.to_string(), now, out),
                }
            }
            (Role::Analyst, Body::SubmitJob(submission)) => {
                info!(analyst = %session.party.name, job = submission.spec.name(), request = %submission.request, "job submitted");
                self.submit(submission, Requester::Analyst(conn), now, out);
            }
            (_, Body::Error(e)) => {
                warn!(peer = %session.party, code = ?e.code, detail = %Escaped(&e.detail), "peer reported an error");
                self.forget(
                    conn,
                    &format!("peer error {:?}: {}", e.code, Escaped(&e.detail)),
                    now,
                    out,
                );
            }
            (role, body) => {
                let code = if permitted(role, &body) {
                    ErrorCode::UnexpectedMessage
                } else {
                    ErrorCode::RoleNotPermitted
                };
                let detail = format!("a {role} may not send {} here", body.kind());
                self.reject(conn, code, detail, now, out);
            }
        }
    }

    fn start_job(
        &mut self,
        (spec, request_id): (JobSpec, RequestId),
        (requester, analyst): (Requester, PartyName),
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        // No expired certificate enters the roster, even between ticks.
        self.close_expired(now, out);
        self.last_job += 1;
        let job = JobId(self.last_job);
        info!(%job, kind = spec.name(), nodes = self.nodes.len(), "starting job");
        let min_contributors = u32::try_from(self.policy.min_nodes).unwrap_or(u32::MAX);
        let planned = self.plan(&spec, min_contributors).and_then(|release| {
            let rho = match &spec {
                JobSpec::Features(q) => {
                    fedprof_privacy::query::query_rho(q, &release).map_err(|e| e.to_string())?
                }
            };
            Ok((release, rho))
        });
        let charge = planned.and_then(|(release, rho)| {
            let digest = SpecDigest::of(&spec).map_err(|e| e.to_string())?;
            let charge = self.profile_of(&spec, &analyst)?;
            Ok((release, rho, digest, charge))
        });
        let (release, rho, spec_digest, charge) = match charge {
            Ok(c) => c,
            Err(e) => {
                // A validation error can quote the analyst's spec.
                warn!(%job, %analyst, error = %Escaped(&e), "job refused before any node computes");
                self.refuse_job(job, requester, format!("refused: {e}"), out);
                return;
            }
        };
        let Charge { tag, participants } = charge;
        // M3: the job's population is fixed by the coordinator; a release that cannot reach
        // all of it is not run (its figures would describe other customers).
        let missing: Vec<&PartyName> = participants
            .iter()
            .filter(|n| !self.nodes.contains_key(*n))
            .collect();
        if !missing.is_empty() && tag_is_continued(&spec) {
            let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
            let reason = format!(
                "refused: node(s) {} of profiling job {} are not connected; every release of a \
                 job covers the same nodes",
                names.join(", "),
                tag.id
            );
            self.refuse_job(job, requester, reason, out);
            return;
        }
        let participants: Vec<Participant> = participants
            .iter()
            .filter_map(|name| {
                let s = self.sessions.get(self.nodes.get(name)?)?;
                Some(Participant {
                    name: name.clone(),
                    certificate: s.certificate.clone(),
                    key: s.key,
                })
            })
            .collect();
        let (id, opened) = (tag.id, !tag_is_continued(&spec));
        let announced = Announced {
            job,
            analyst: analyst.clone(),
            request: request_id,
            spec: spec_digest,
            profile: tag.clone(),
            rho: rho.clone(),
            opened: opened.then(|| Opening {
                period: self.period.clone(),
                cap: Rho::from_ratio(tag.cap.numer, tag.cap.denom).unwrap_or_else(|_| rho.clone()),
                participants: participants.iter().map(|p| p.name.clone()).collect(),
            }),
        };
        let mut nonce = [0u8; 32];
        let mut graph_seed = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        self.rng.fill_bytes(&mut graph_seed);
        let request = RoundRequest {
            job,
            spec,
            release,
            profile: tag,
            nonce,
            graph_seed,
            require_all: !opened,
        };
        let (round, effects) = Round::start(request, participants, self.policy, now);
        if effects.is_empty() {
            // Settled before anyone was asked (too few nodes, colluders at the threshold, a
            // possible overflow): nothing was paid, and a job this release opened is dropped
            // with its declared total given back to the analyst's quota.
            if opened {
                self.profiles.discard(id, &self.period);
            }
        } else {
            // Nodes pay on announcement: the job is charged now (and journaled before any
            // node hears of it); a round that ends before any node could pay is refunded.
            self.profiles.charge(id, &rho);
            self.requests.insert(
                (analyst.clone(), request_id),
                KnownRequest {
                    state: RequestState::Running(job),
                    spec: announced.spec,
                },
            );
            self.job_requests.insert(
                job,
                requests::Running {
                    key: (analyst, request_id),
                    profile: id,
                    rho,
                    opened: opened.then(|| self.period.clone()),
                },
            );
            out.push(Output::Journal(Record::Announced(announced)));
        }
        self.rounds.insert(job, (round, requester));
        self.advance(job, effects, now, out);
    }

    /// The profiling job a release of `spec` belongs to: a new one (`job: None`) or the open
    /// one it names.
    fn profile_of(&mut self, spec: &JobSpec, analyst: &PartyName) -> Result<Charge, String> {
        let p = &self.release;
        let (job, asked) = match spec {
            JobSpec::Features(q) => (q.job, (q.budget, q.reserve)),
        };
        match job {
            Some(id) => self.profiles.next(id, analyst, asked),
            None => {
                let mut id = [0u8; 16];
                self.rng.fill_bytes(&mut id);
                let nodes = self.nodes.keys().cloned().collect();
                self.profiles.open(
                    ProfileId(id),
                    analyst,
                    &self.period,
                    asked,
                    (&p.rho_per_job, &p.rho_per_analyst_period),
                    nodes,
                )
            }
        }
        .map_err(|e| e.to_string())
    }

    /// Settles job `job` as aborted before anything was announced, telling the requester.
    fn refuse_job(&self, job: JobId, requester: Requester, reason: String, out: &mut Vec<Output>) {
        let outcome = JobOutcome::Aborted {
            reason,
            failures: Vec::new(),
        };
        let analyst = match requester {
            Requester::Analyst(conn) => Some(conn),
            Requester::Local(_) => None,
        };
        finish(job, requester, analyst, outcome, out);
    }

    /// The bounds and noise of a release of `spec` under the policy.
    fn plan(&self, spec: &JobSpec, min_contributors: u32) -> Result<ReleaseParams, String> {
        let p = &self.release;
        match spec {
            JobSpec::Features(q) => {
                let budget = Rho::from_ratio(q.budget.numer, q.budget.denom)
                    .map_err(|_| "budget: must be a positive fraction".to_owned())?;
                fedprof_privacy::query::plan_query(&budget, q, min_contributors, p.colluders)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Turns a round's effects into outputs addressed to connections.
    fn apply(
        &mut self,
        job: JobId,
        effects: Vec<RoundEffect>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        for effect in effects {
            match effect {
                RoundEffect::Send { node, mut body } => {
                    if let Body::JobAnnounce(announce) = &mut body {
                        announce.last_receipt =
                            self.last_receipts.get(&node).cloned().map(Box::new);
                    }
                    // A node that is not connected any more has already been failed.
                    if let Some(&conn) = self.nodes.get(&node) {
                        out.push(Output::Send {
                            conn,
                            job,
                            round: RoundId(0),
                            body,
                        });
                    }
                }
                RoundEffect::Reject { node, code, detail } => {
                    if let Some(&conn) = self.nodes.get(&node) {
                        self.reject(conn, code, detail, now, out);
                    }
                }
            }
        }
    }

    /// Closes `conn` with an error and forgets it.
    fn reject(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        detail: String,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if let Some(s) = self.sessions.get(&conn) {
            warn!(peer = %s.party, ?code, detail = %Escaped(&detail), "closing connection after protocol error");
        }
        let reason = format!("protocol error {code:?}: {detail}");
        out.push(Output::Close { conn, code, detail });
        self.forget(conn, &reason, now, out);
    }

    fn on_closed(&mut self, conn: ConnId, reason: &str, now: Instant, out: &mut Vec<Output>) {
        // The reason can quote the peer (its QUIC close reason, a decoder's error message),
        // and it goes on into the log, the round's failures and the analyst's outcome.
        let reason = Escaped(reason).to_string();
        if let Some(s) = self.sessions.get(&conn) {
            info!(peer = %s.party, %reason, "connection closed");
        }
        self.forget(conn, &reason, now, out);
    }

    /// Drops a connection's session; a node on it leaves every open round as failed.
    fn forget(&mut self, conn: ConnId, reason: &str, now: Instant, out: &mut Vec<Output>) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        let name = session.party.name;
        if session.party.role == Role::Node && self.nodes.get(&name) == Some(&conn) {
            self.nodes.remove(&name);
            out.push(Output::NodesChanged(self.nodes()));
            self.fail_member(&name, reason, now, out);
        }
    }

    fn fail_member(&mut self, node: &PartyName, reason: &str, now: Instant, out: &mut Vec<Output>) {
        let jobs: Vec<JobId> = self.rounds.keys().copied().collect();
        for job in jobs {
            if let Some((round, _)) = self.rounds.get_mut(&job) {
                let effects = round.on_disconnect(node, reason, now);
                self.advance(job, effects, now, out);
            }
        }
    }
}

/// Whether a release continues an open profiling job (rather than opening one).
fn tag_is_continued(spec: &JobSpec) -> bool {
    matches!(spec, JobSpec::Features(q) if q.job.is_some())
}

/// Whether `role` may ever send `body` to the coordinator.
fn permitted(role: Role, body: &Body) -> bool {
    match body {
        Body::Register(_)
        | Body::Accept
        | Body::Refuse(_)
        | Body::Submit(_)
        | Body::SecAgg(_)
        | Body::Receipt(_)
        | Body::Pong(_) => role == Role::Node,
        Body::SubmitJob(_) => role == Role::Analyst,
        Body::Error(_) => true,
        Body::Registered(_)
        | Body::JobAnnounce(_)
        | Body::Result(_)
        | Body::Outcome(_)
        | Body::SecAggRelay(_)
        | Body::RoundOver(_)
        | Body::Ping(_) => false,
    }
}

mod requests;
mod settle;
use settle::finish;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod heartbeat_tests;
