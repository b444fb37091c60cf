//! The coordinator's sans-IO core: connections, registrations and rounds.
//!
//! The async shell ([`crate::service`]) feeds it [`Input`]s with the current time and carries
//! out the [`Output`]s. Nothing here touches a socket, a clock or a task, so the whole
//! federation logic can be driven in a unit test, deterministically.
//!
//! Authorization is by certificate role only: a connection's [`PartyId`] comes from the
//! transport, and a message a role may not send closes the connection with
//! [`ErrorCode::RoleNotPermitted`], whatever the message claims.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use fedprof_protocol::{
    Body, Envelope, ErrorCode, JobId, JobOutcome, JobSpec, PartyId, PartyName, Registered,
    ReleaseParams, Role, RoundId,
};
use tracing::{debug, info, warn};

use fedprof_crypto::VerifyingKey;
use fedprof_privacy::Rho;

use crate::round::{Participant, Round, RoundEffect, RoundPolicy};

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
    /// Run a job over the registered nodes.
    SubmitJob {
        /// What to run.
        spec: JobSpec,
        /// Who gets the outcome.
        requester: Requester,
        /// Public randomness for the round's secure-aggregation graph (from the shell's CSPRNG).
        graph_seed: [u8; 32],
    },
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
    /// The set of registered nodes changed (for progress displays and readiness checks).
    NodesChanged(Vec<PartyName>),
    /// A result is ready: record it in the coordinator's ledger with the contributors'
    /// receipts, and only if that succeeds send `Result` to `recipients` and the outcome to
    /// the requester (`analyst`, or a local caller).
    Publish {
        /// The job.
        job: JobId,
        /// Who asked.
        requester: Requester,
        /// The requesting analyst's connection, if still open.
        analyst: Option<ConnId>,
        /// The outcome (always `Completed`).
        outcome: JobOutcome,
        /// The contributors' receipts (signed ledger lines).
        receipts: Vec<String>,
        /// The contributors' connections.
        recipients: Vec<ConnId>,
        /// The release's nonce.
        nonce: [u8; 32],
    },
}

#[derive(Debug)]
struct Session {
    party: PartyId,
    certificate: Vec<u8>,
    key: VerifyingKey,
    registered: bool,
}

/// How releases are bounded and noised (from the coordinator config's `[privacy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// Most zCDP loss one job may cost each node (the per-job cap).
    pub rho_per_job: Rho,
    /// Rows of one customer that count.
    pub max_rows_per_customer: u32,
    /// A customer's total amount is clipped to `[-max, max]` minor units.
    pub max_abs_amount_minor: u64,
    /// Nodes assumed to collude with the coordinator.
    pub colluders: u32,
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
}

impl Coordinator {
    /// A coordinator with no connections, running rounds under `policy` and releasing under
    /// `release`.
    pub fn new(policy: RoundPolicy, release: ReleasePolicy) -> Self {
        Coordinator {
            policy,
            release,
            sessions: HashMap::new(),
            nodes: BTreeMap::new(),
            rounds: BTreeMap::new(),
            last_job: 0,
        }
    }

    /// The registered nodes.
    pub fn nodes(&self) -> Vec<PartyName> {
        self.nodes.keys().cloned().collect()
    }

    /// The earliest round deadline, when the shell should send [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.rounds.values().filter_map(|(r, _)| r.deadline()).min()
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
            } => {
                debug!(conn, %party, "connected");
                self.sessions.insert(
                    conn,
                    Session {
                        party,
                        certificate,
                        key,
                        registered: false,
                    },
                );
            }
            Input::Message { conn, envelope } => self.on_message(conn, envelope, now, &mut out),
            Input::Closed { conn, reason } => self.on_closed(conn, &reason, now, &mut out),
            Input::SubmitJob {
                spec,
                requester,
                graph_seed,
            } => {
                self.start_job(spec, requester, graph_seed, now, &mut out);
            }
            Input::Tick => {
                let jobs: Vec<JobId> = self.rounds.keys().copied().collect();
                for job in jobs {
                    if let Some((round, _)) = self.rounds.get_mut(&job) {
                        let effects = round.on_tick(now);
                        self.apply(job, effects, now, &mut out);
                    }
                }
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
        let Envelope { header, body } = envelope;
        let role = session.party.role;
        match (role, body) {
            (Role::Node, Body::Register(reg)) if !session.registered => {
                session.registered = true;
                let name = session.party.name.clone();
                info!(node = %name, software = %reg.software, "node registered");
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
            }
            (
                Role::Node,
                body @ (Body::Accept | Body::Refuse(_) | Body::SecAgg(_) | Body::Receipt(_)),
            ) if session.registered => {
                let name = session.party.name.clone();
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
                match round.on_message(&name, body, now) {
                    Ok(effects) => self.apply(header.job, effects, now, out),
                    Err(e) => self.reject(conn, ErrorCode::UnknownJob, e.to_string(), now, out),
                }
            }
            (Role::Analyst, Body::SubmitJob(spec)) => {
                info!(analyst = %session.party.name, job = spec.name(), "job submitted");
                // An analyst cannot supply randomness; the graph seed is derived by the shell
                // for local submissions, and here from the job counter (it is public anyway,
                // and only fixes which nodes pair up).
                let seed = self.seed_for_next_job();
                self.start_job(spec, Requester::Analyst(conn), seed, now, out);
            }
            (_, Body::Error(e)) => {
                warn!(peer = %session.party, code = ?e.code, detail = %e.detail, "peer reported an error");
                self.forget(
                    conn,
                    &format!("peer error {:?}: {}", e.code, e.detail),
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
        spec: JobSpec,
        requester: Requester,
        graph_seed: [u8; 32],
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        self.last_job += 1;
        let job = JobId(self.last_job);
        info!(%job, kind = spec.name(), nodes = self.nodes.len(), "starting job");
        let invited = match &spec {
            JobSpec::Features(q) if !q.participants.is_empty() => Some(&q.participants),
            _ => None,
        };
        let participants: Vec<Participant> = self
            .nodes
            .iter()
            .filter(|(name, _)| invited.is_none_or(|list| list.contains(name)))
            .filter_map(|(name, conn)| {
                let s = self.sessions.get(conn)?;
                Some(Participant {
                    name: name.clone(),
                    certificate: s.certificate.clone(),
                    key: s.key,
                })
            })
            .collect();
        let min_contributors = u32::try_from(self.policy.min_nodes).unwrap_or(u32::MAX);
        let release = match self.plan(&spec, min_contributors) {
            Ok(r) => r,
            Err(e) => {
                warn!(%job, error = %e, "privacy policy admits no release");
                let outcome = JobOutcome::Aborted {
                    reason: format!("the privacy policy admits no release: {e}"),
                    failures: Vec::new(),
                };
                if let Requester::Analyst(conn) = requester {
                    out.push(Output::Send {
                        conn,
                        job,
                        round: RoundId(0),
                        body: Body::Outcome(outcome.clone()),
                    });
                }
                out.push(Output::JobFinished {
                    job,
                    requester,
                    outcome,
                });
                return;
            }
        };
        let (round, effects) = Round::start(
            job,
            spec,
            participants,
            release,
            self.policy,
            graph_seed,
            now,
        );
        self.rounds.insert(job, (round, requester));
        self.apply(job, effects, now, out);
    }

    /// The bounds and noise of a release of `spec` under the policy.
    fn plan(&self, spec: &JobSpec, min_contributors: u32) -> Result<ReleaseParams, String> {
        let p = &self.release;
        match spec {
            JobSpec::TransactionTotals => fedprof_privacy::release::plan_totals(
                &p.rho_per_job,
                p.max_rows_per_customer,
                p.max_abs_amount_minor,
                min_contributors,
                p.colluders,
            )
            .map_err(|e| e.to_string()),
            JobSpec::Features(q) => {
                let budget = Rho::from_ratio(q.budget.numer, q.budget.denom)
                    .map_err(|_| "budget: must be a positive fraction".to_owned())?;
                let reserve = Rho::from_ratio(q.reserve.numer, q.reserve.denom)
                    .map_err(|_| "reserve: the denominator must not be 0".to_owned())?;
                // The release and the rest of its job together: a profiling job over the cap is
                // refused at its first release, before any node computes.
                if &budget + &reserve > p.rho_per_job {
                    return Err(format!(
                        "budget: rho {budget} plus the job's remaining {reserve} exceeds the per-job cap {}",
                        p.rho_per_job
                    ));
                }
                fedprof_privacy::query::plan_query(&budget, q, min_contributors, p.colluders)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Public per-job seed for analyst submissions: a hash of the job number (the seed only
    /// decides which nodes pair up in a sparse graph; it needs no secrecy).
    fn seed_for_next_job(&self) -> [u8; 32] {
        // The label is a short constant, so `digest` cannot fail; fall back to zeros regardless.
        fedprof_crypto::kdf::digest("graph-seed", &[&(self.last_job + 1).to_be_bytes()])
            .unwrap_or_default()
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
                RoundEffect::Send { node, body } => {
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
            warn!(peer = %s.party, ?code, %detail, "closing connection after protocol error");
        }
        let reason = format!("protocol error {code:?}: {detail}");
        out.push(Output::Close { conn, code, detail });
        self.forget(conn, &reason, now, out);
    }

    fn on_closed(&mut self, conn: ConnId, reason: &str, now: Instant, out: &mut Vec<Output>) {
        if let Some(s) = self.sessions.get(&conn) {
            info!(peer = %s.party, %reason, "connection closed");
        }
        self.forget(conn, reason, now, out);
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
                self.apply(job, effects, now, out);
            }
        }
    }

    /// Removes settled rounds and reports their outcomes.
    fn finish_settled(&mut self, out: &mut Vec<Output>) {
        let settled: Vec<JobId> = self
            .rounds
            .iter()
            .filter(|(_, (r, _))| r.outcome().is_some())
            .map(|(j, _)| *j)
            .collect();
        for job in settled {
            let Some((round, requester)) = self.rounds.remove(&job) else {
                continue;
            };
            let Some(outcome) = round.outcome().cloned() else {
                continue;
            };
            let analyst = match requester {
                Requester::Analyst(conn) if self.sessions.contains_key(&conn) => Some(conn),
                _ => None,
            };
            match &outcome {
                JobOutcome::Completed { result, failures } => {
                    info!(%job, contributors = result.contributors.len(), failed = failures.len(), "result ready; recording the release");
                    let recipients = result
                        .contributors
                        .iter()
                        .filter_map(|n| self.nodes.get(n).copied())
                        .collect();
                    let receipts = round.receipts(&result.contributors);
                    out.push(Output::Publish {
                        job,
                        requester,
                        analyst,
                        outcome,
                        receipts,
                        recipients,
                        nonce: round.nonce(),
                    });
                }
                JobOutcome::Aborted { reason, .. } => {
                    warn!(%job, %reason, "job aborted");
                    if let Some(conn) = analyst {
                        out.push(Output::Send {
                            conn,
                            job,
                            round: RoundId(0),
                            body: Body::Outcome(outcome.clone()),
                        });
                    }
                    out.push(Output::JobFinished {
                        job,
                        requester,
                        outcome,
                    });
                }
            }
        }
    }
}

/// Whether `role` may ever send `body` to the coordinator.
fn permitted(role: Role, body: &Body) -> bool {
    match body {
        Body::Register(_)
        | Body::Accept
        | Body::Refuse(_)
        | Body::Submit(_)
        | Body::SecAgg(_)
        | Body::Receipt(_) => role == Role::Node,
        Body::SubmitJob(_) => role == Role::Analyst,
        Body::Error(_) => true,
        Body::Registered(_)
        | Body::JobAnnounce(_)
        | Body::Result(_)
        | Body::Outcome(_)
        | Body::SecAggRelay(_) => false,
    }
}

#[cfg(test)]
mod tests;
