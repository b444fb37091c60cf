//! The simulated coordinator: the real sans-IO core ([`Coordinator`]) with the shell's file
//! work done as `coordinator/src/service.rs` does it, on real files: the release ledger
//! ([`CoordinatorLedger`]) and the job journal ([`JournalFile`], replayed through
//! [`fedprof_coordinator::journal::Recovery`] on restart).
//!
//! Receipt screening, the release record and the rollback heads are the core's; what is left
//! here is the shell's I/O, in the shell's order. A crash can be placed between any two
//! effects the shell carries out (a journal append, a ledger record, a send), so "the records
//! appended before a crash are kept, the later ones are lost" holds by construction.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fedprof_coordinator::journal::{JournalFile, Record};
use fedprof_coordinator::{Coordinator, Input, Output, ReleasePolicy, Requester, RoundPolicy};
use fedprof_ledger::{CoordinatorLedger, KeyRing, Policy};
use fedprof_protocol::{Body, Envelope, Header, JobId, JobOutcome, PartyId, RoundId};

/// The shell's handle for one connection (the core's type).
pub use fedprof_coordinator::core::ConnId;

/// Why the simulated coordinator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorStartError {
    /// The release ledger.
    #[error("release ledger: {0}")]
    Ledger(String),
    /// The job journal.
    #[error("job journal: {0}")]
    Journal(String),
}

/// What the shell did, for the simulator to deliver and the invariants to check.
#[derive(Debug)]
pub enum Effect {
    /// A message for a peer.
    Send {
        /// Its connection.
        conn: ConnId,
        /// The message.
        envelope: Envelope,
    },
    /// An error frame, then the connection closes.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        detail: String,
    },
    /// A journal record is on disk.
    Journaled(Record),
    /// A release was recorded in the release ledger (and is about to be journaled).
    Recorded {
        /// The job.
        job: JobId,
        /// The release's nonce.
        nonce: [u8; 32],
        /// The published outcome.
        outcome: JobOutcome,
    },
    /// The ledger refused a release: nothing published.
    RecordRefused {
        /// The job.
        job: JobId,
        /// Why.
        reason: String,
    },
}

/// How a crash is placed inside one [`SimCoordinator::handle`]: after this many effects.
pub type CrashAfter = Option<usize>;

struct Process {
    core: Coordinator,
    ledger: CoordinatorLedger,
    journal: JournalFile,
}

/// The coordinator's identity, policies and state directory, and its process when up.
pub struct SimCoordinator {
    party: PartyId,
    seed: [u8; 32],
    dir: PathBuf,
    policy: RoundPolicy,
    release: ReleasePolicy,
    rejoin: Duration,
    nodes: Vec<(PartyId, [u8; 32])>,
    process: Option<Process>,
    starts: u64,
}

impl std::fmt::Debug for SimCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCoordinator")
            .field("up", &self.process.is_some())
            .field("starts", &self.starts)
            .finish_non_exhaustive()
    }
}

impl SimCoordinator {
    /// A coordinator keeping its ledger and journal in `dir`, trusting `nodes`' keys (the
    /// certificates of the federation, as `trust::node_keys` reads them).
    pub fn new(
        party: PartyId,
        seed: [u8; 32],
        dir: &Path,
        (policy, release, rejoin): (RoundPolicy, ReleasePolicy, Duration),
        nodes: Vec<(PartyId, [u8; 32])>,
    ) -> SimCoordinator {
        SimCoordinator {
            party,
            seed,
            dir: dir.to_owned(),
            policy,
            release,
            rejoin,
            nodes,
            process: None,
            starts: 0,
        }
    }

    /// Whether the process runs.
    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }

    /// How many times it started.
    pub fn starts(&self) -> u64 {
        self.starts
    }

    /// The ledger's path.
    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join("coordinator.jsonl")
    }

    /// Starts the process as `CoordinatorService::bind` and `core_loop` do: opens the ledger
    /// (policy recorded if it changed), replays the journal and resumes the core from it.
    pub fn start(&mut self, period: &str) -> Result<(), CoordinatorStartError> {
        let mut ring = KeyRing::new();
        for (party, key) in &self.nodes {
            ring.insert(party.clone(), *key)
                .map_err(|e| CoordinatorStartError::Ledger(e.to_string()))?;
        }
        let key = fedprof_ledger::SigningKey::from_bytes(&self.seed);
        let mut ledger =
            CoordinatorLedger::open(&self.ledger_path(), key, self.party.clone(), ring)
                .map_err(|e| CoordinatorStartError::Ledger(e.to_string()))?;
        let policy = Policy {
            per_job_cap_rho: self.release.rho_per_job.clone(),
            min_cell_size: 1,
            max_holders_per_person: self.release.max_holders_per_person,
        };
        if ledger.book().policy() != Some(&policy) {
            ledger
                .set_policy(policy)
                .map_err(|e| CoordinatorStartError::Ledger(e.to_string()))?;
        }
        let (journal, recovery) = JournalFile::open(&self.dir.join("journal"))
            .map_err(|e| CoordinatorStartError::Journal(e.to_string()))?;
        self.starts += 1;
        // A fresh seed per start, as the shell draws one from the OS.
        let mut seed = self.seed;
        seed[..8].copy_from_slice(&self.starts.to_le_bytes());
        seed[8] ^= 0x5a;
        let mut core = Coordinator::new(self.policy, self.release.clone(), seed);
        core.set_rejoin_timeout(self.rejoin);
        core.resume(recovery);
        core.set_last_receipts(
            ledger
                .book()
                .last_receipts()
                .map(|(node, head)| (node.clone(), head))
                .collect(),
        );
        let _ = core.handle(Input::Period(period.to_owned()), Instant::now());
        self.process = Some(Process {
            core,
            ledger,
            journal,
        });
        Ok(())
    }

    /// `kill -9`.
    pub fn crash(&mut self) {
        self.process = None;
    }

    /// The core's next deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.process.as_ref().and_then(|p| p.core.next_deadline())
    }

    /// The release ledger's count of recorded releases (`None` while down).
    pub fn release_count(&self) -> Option<usize> {
        self.process
            .as_ref()
            .map(|p| p.ledger.book().release_count())
    }

    /// Feeds `input` at `now` and carries out what follows as the shell does, stopping (the
    /// process dead) after `crash_after` effects if given. Returns the effects carried out and
    /// whether the process crashed.
    pub fn handle(
        &mut self,
        input: Input,
        now: Instant,
        crash_after: CrashAfter,
    ) -> (Vec<Effect>, bool) {
        let mut effects = Vec::new();
        let Some(p) = self.process.as_mut() else {
            return (effects, false);
        };
        let crashed = run(p, input, now, crash_after, &mut effects);
        if crashed {
            self.process = None;
        }
        (effects, crashed)
    }
}

/// One effect carried out; `true` when the crash point is reached.
fn done(effects: &mut Vec<Effect>, effect: Effect, crash_after: CrashAfter) -> bool {
    effects.push(effect);
    crash_after.is_some_and(|n| effects.len() >= n)
}

fn send(conn: ConnId, job: JobId, body: Body) -> Effect {
    Effect::Send {
        conn,
        envelope: envelope(job, body),
    }
}

/// `body` about `job` as the core sees it: sequence numbers are the transport's business.
pub(crate) fn envelope(job: JobId, body: Body) -> Envelope {
    Envelope {
        header: Header {
            job,
            round: RoundId(0),
            seq: 0,
        },
        body,
    }
}

fn run(
    p: &mut Process,
    input: Input,
    now: Instant,
    crash_after: CrashAfter,
    effects: &mut Vec<Effect>,
) -> bool {
    let input = match input {
        Input::Connected {
            conn,
            party,
            certificate,
            key,
            valid_until,
        } => {
            if party.role == fedprof_protocol::Role::Node {
                let _ = p.ledger.trust_node(party.clone(), key.to_bytes());
            }
            Input::Connected {
                conn,
                party,
                certificate,
                key,
                valid_until,
            }
        }
        other => other,
    };
    let mut inputs = vec![input];
    while let Some(input) = inputs.pop() {
        for output in p.core.handle(input, now) {
            match output {
                Output::Send {
                    conn, job, body, ..
                } => {
                    if done(effects, send(conn, job, body), crash_after) {
                        return true;
                    }
                }
                Output::Close { conn, detail, .. } => {
                    if done(effects, Effect::Close { conn, detail }, crash_after) {
                        return true;
                    }
                }
                Output::JobFinished { .. } | Output::NodesChanged(_) => {}
                Output::Journal(record) => {
                    if p.journal.append(&record).is_err() {
                        return true; // The shell stops when it cannot journal.
                    }
                    if done(effects, Effect::Journaled(record), crash_after) {
                        return true;
                    }
                }
                Output::Resend {
                    job,
                    analyst,
                    requester,
                } => {
                    let outcome =
                        p.journal
                            .load_result(job)
                            .unwrap_or_else(|e| JobOutcome::Aborted {
                                reason: format!(
                                    "the result published as {job} cannot be read back: {e}"
                                ),
                                failures: Vec::new(),
                            });
                    let _ = requester;
                    if let Some(conn) = analyst
                        && done(
                            effects,
                            send(conn, job, Body::Outcome(outcome)),
                            crash_after,
                        )
                    {
                        return true;
                    }
                }
                Output::Publish {
                    job,
                    requester,
                    analyst,
                    outcome,
                    record,
                    recipients,
                } => {
                    let _: Requester = requester;
                    let nonce = *record.release.nonce.as_bytes();
                    let recorded = p
                        .ledger
                        .record_release(*record)
                        .map_err(|e| format!("the release ledger refused it: {e}"));
                    let outcome = match recorded {
                        Ok(_) => {
                            let recorded = Effect::Recorded {
                                job,
                                nonce,
                                outcome: outcome.clone(),
                            };
                            if done(effects, recorded, crash_after) {
                                return true;
                            }
                            let contributors = match &outcome {
                                JobOutcome::Completed { result, .. } => result.contributors.clone(),
                                JobOutcome::Aborted { .. } => Vec::new(),
                            };
                            if p.journal.store_result(job, &outcome).is_err() {
                                return true;
                            }
                            let published = Record::Published { job, contributors };
                            if p.journal.append(&published).is_err() {
                                return true;
                            }
                            if done(effects, Effect::Journaled(published), crash_after) {
                                return true;
                            }
                            if let JobOutcome::Completed { result, .. } = &outcome {
                                for conn in recipients {
                                    let body = Body::Result(result.clone());
                                    if done(effects, send(conn, job, body), crash_after) {
                                        return true;
                                    }
                                }
                            }
                            outcome
                        }
                        Err(reason) => {
                            if p.journal.append(&Record::Aborted { job }).is_err() {
                                return true;
                            }
                            let refused = Effect::RecordRefused {
                                job,
                                reason: reason.clone(),
                            };
                            if done(effects, refused, crash_after) {
                                return true;
                            }
                            inputs.push(Input::RecordFailed { job });
                            JobOutcome::Aborted {
                                reason,
                                failures: Vec::new(),
                            }
                        }
                    };
                    if let Some(conn) = analyst
                        && done(
                            effects,
                            send(conn, job, Body::Outcome(outcome)),
                            crash_after,
                        )
                    {
                        return true;
                    }
                }
            }
        }
    }
    false
}
