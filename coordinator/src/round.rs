//! One job's round, as a sans-IO state machine: it is told who was asked, what they said and
//! what time it is, and answers with the messages to send and, once settled, the outcome.
//!
//! Contributions go through secure aggregation ([`fedprof_secagg::Coordinator`], Bonawitz et
//! al. double masking): the round relays key directories and encrypted shares, collects masked
//! vectors, asks the survivors for the shares that remove the masks, and releases only the
//! [`fedprof_secagg::UnmaskedSum`], a value that exists only once every mask is removed. It
//! never holds one node's vector in the clear. Every phase has a deadline; a node that misses
//! it, disconnects, refuses or breaks the protocol leaves the round, which carries on while the
//! secure-aggregation threshold and the release's `min_contributors` still hold, and otherwise
//! aborts with nothing released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedprof_crypto::VerifyingKey;
use fedprof_ledger::{Digest, ExpectedDebit, MechanismRecord, NodeEntry, ReleaseId};
use fedprof_protocol::{
    Body, ErrorCode, JobAnnounce, JobId, JobOutcome, JobResult, JobSpec, NodeFailure, PartyName,
    ProfileTag, Refusal, ReleaseParams, RosterEntry, RoundOver, RoundOverReason, SecAggGraph,
    SecAggSetup,
};
use fedprof_secagg::coordinator::{CoordinatorError, Step};
use fedprof_secagg::{GraphSpec, Party, RoundConfig, RoundTag};

/// The policy a round runs under (from the coordinator config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundPolicy {
    /// Fewest contributing nodes for a result to be released.
    pub min_nodes: usize,
    /// How long nodes get for each phase of the round.
    pub timeout: Duration,
}

/// A node asked to take part, with the certificate key its messages must be signed with.
#[derive(Debug, Clone)]
pub struct Participant {
    /// The node.
    pub name: PartyName,
    /// Its certificate (DER), sent to every other participant, which verifies it itself.
    pub certificate: Vec<u8>,
    /// The Ed25519 key in that certificate.
    pub key: VerifyingKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Active,
    Failed(String),
}

/// What the round asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundEffect {
    /// Send `body` to `node` (about this round's job).
    Send {
        /// Recipient.
        node: PartyName,
        /// Message.
        body: Body,
    },
    /// Tell `node` it broke the protocol, then drop it from the federation's connections.
    Reject {
        /// The offending node.
        node: PartyName,
        /// Error code.
        code: ErrorCode,
        /// Detail for the node's operator.
        detail: String,
    },
}

/// A node said something the round cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    /// The sender was not asked to take part.
    #[error("{0} is not a member of this round")]
    NotAMember(PartyName),
}

/// What a round releases: the spec, its planned noise, the profiling job it belongs to, and
/// the randomness the coordinator drew for it (from its CSPRNG).
#[derive(Debug, Clone)]
pub struct RoundRequest {
    /// The job (release) number.
    pub job: JobId,
    /// What to compute.
    pub spec: JobSpec,
    /// Its bounds and noise.
    pub release: ReleaseParams,
    /// The profiling job it belongs to.
    pub profile: ProfileTag,
    /// Fresh random bytes bound into the round's configuration (and so into the release's id
    /// in every ledger).
    pub nonce: [u8; 32],
    /// Public randomness for the secure-aggregation graph.
    pub graph_seed: [u8; 32],
    /// Every participant must contribute (a later release of a profiling job: its figures
    /// must cover the job's whole population, review finding M3). The round is then bound to
    /// the whole roster as its fewest survivors, so it stops before any unmasking if one
    /// drops out, and nodes refuse an unmask request without everyone.
    pub require_all: bool,
}

/// One job's round.
#[derive(Debug)]
pub struct Round {
    spec: JobSpec,
    profile: ProfileTag,
    policy: RoundPolicy,
    release: ReleaseParams,
    roster: Vec<PartyName>,
    index: BTreeMap<PartyName, u32>,
    members: BTreeMap<PartyName, Member>,
    secagg: Option<fedprof_secagg::Coordinator>,
    /// Each member's signed debit of this release, screened as it arrived.
    receipts: BTreeMap<PartyName, NodeEntry>,
    /// What every receipt must say (set once the round is announced).
    expected: Option<ExpectedDebit>,
    /// Each member's certificate key, which its receipt must be signed with.
    keys: BTreeMap<PartyName, [u8; 32]>,
    /// The release's nonce in every ledger: the digest of the round's configuration.
    nonce: [u8; 32],
    deadline: Instant,
    outcome: Option<JobOutcome>,
    /// Contributors required besides the policy and `n_min` (all of them, for a later
    /// release of a profiling job).
    required: usize,
}

/// Longest receipt (one ledger line) a node may send.
const MAX_RECEIPT_BYTES: usize = 64 * 1024;

impl Round {
    /// Starts a round asking `participants` to compute the request's spec under its release
    /// parameters, masked with a secure-aggregation graph drawn from its `graph_seed`;
    /// returns the announcements to send.
    ///
    /// With fewer participants than the release needs, or a graph whose threshold cannot
    /// keep the release's colluders from rebuilding an honest node's secrets (`c >= t`), the
    /// round is settled at once as aborted and nobody is asked to compute anything.
    pub fn start(
        request: RoundRequest,
        participants: Vec<Participant>,
        policy: RoundPolicy,
        now: Instant,
    ) -> (Round, Vec<RoundEffect>) {
        let RoundRequest {
            job,
            spec,
            release,
            profile,
            nonce,
            graph_seed,
            require_all,
        } = request;
        let roster: Vec<PartyName> = participants.iter().map(|p| p.name.clone()).collect();
        let mut round = Round {
            spec,
            profile,
            policy,
            members: roster.iter().map(|n| (n.clone(), Member::Active)).collect(),
            index: roster
                .iter()
                .zip(0u32..)
                .map(|(n, i)| (n.clone(), i))
                .collect(),
            roster,
            release,
            secagg: None,
            receipts: BTreeMap::new(),
            expected: None,
            keys: participants
                .iter()
                .map(|p| (p.name.clone(), p.key.to_bytes()))
                .collect(),
            nonce: [0; 32],
            deadline: now + policy.timeout,
            outcome: None,
            required: 0,
        };
        round.required = if require_all { participants.len() } else { 0 };
        let needed = round.needed();
        if participants.len() < needed {
            round.abort(format!(
                "only {} node(s) connected; the policy requires at least {needed}",
                participants.len()
            ));
            return (round, Vec::new());
        }
        // L1: the released sums must decode exactly. A node holds at most 2^32 customers
        // (its customer indices are u32) and each adds at most `scale` per coordinate, so a
        // round whose worst case could pass 2^63 with its noise is refused, not wrapped.
        if let Err(e) = overflow_check(&round.spec, &round.release, participants.len()) {
            round.abort(format!("the released sums could overflow: {e}"));
            return (round, Vec::new());
        }
        let graph = graph_for(participants.len(), graph_seed, needed);
        let config = RoundConfig::new(
            RoundTag {
                job: job.0,
                round: 0,
            },
            participants
                .iter()
                .map(|p| Party {
                    name: p.name.to_string(),
                    verifying_key: p.key,
                })
                .collect(),
            round.spec.vector_len(),
            graph,
            None,
        );
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                round.abort(format!("cannot set up secure aggregation: {e}"));
                return (round, Vec::new());
            }
        };
        let t = config.threshold();
        let setup = SecAggSetup {
            roster: participants
                .into_iter()
                .map(|p| RosterEntry {
                    name: p.name,
                    certificate: p.certificate,
                })
                .collect(),
            threshold: u32::try_from(t).unwrap_or(u32::MAX),
            min_survivors: u32::try_from(round.needed()).unwrap_or(u32::MAX),
            graph: match graph {
                GraphSpec::Complete => SecAggGraph::Complete,
                GraphSpec::Sparse { neighbours, seed } => SecAggGraph::Sparse { neighbours, seed },
            },
        };
        let announce = JobAnnounce {
            spec: round.spec.clone(),
            timeout_ms: u32::try_from(policy.timeout.as_millis()).unwrap_or(u32::MAX),
            release: round.release.clone(),
            secagg: setup,
            profile: round.profile.clone(),
            nonce,
            // Per node: the service fills in each node's last recorded receipt (L9).
            last_receipt: None,
        };
        // C2, M4: the secure-aggregation machine knows n_min and the release it serves.
        // The secure-aggregation machines stop below n_min, or below the whole roster when
        // every participant is required; nodes bind the same (SecAggSetup::min_survivors).
        let min = round.needed();
        let colluders = round.release.colluders as usize;
        let config = match config.bind(min, colluders, &announce.release_binding()) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                round.abort(format!("cannot set up secure aggregation: {e}"));
                return (round, Vec::new());
            }
        };
        round.nonce = config.digest();
        // What each node will debit, as its ledger records it: receipts are screened against
        // it on arrival (M2).
        let mechanism = MechanismRecord::for_release(&round.spec, &round.release, &round.profile);
        let mechanism = match mechanism {
            Ok(m) => m,
            Err(e) => {
                round.abort(format!("the release has no valid mechanism record: {e}"));
                return (round, Vec::new());
            }
        };
        round.expected = Some(ExpectedDebit::new(
            ReleaseId {
                job,
                round: fedprof_protocol::RoundId(0),
                nonce: Digest::from_bytes(round.nonce),
            },
            mechanism,
        ));
        round.secagg = Some(fedprof_secagg::Coordinator::new(config));
        let effects = round
            .roster
            .iter()
            .map(|node| RoundEffect::Send {
                node: node.clone(),
                body: Body::JobAnnounce(announce.clone()),
            })
            .collect();
        (round, effects)
    }

    /// Fewest contributors this round may release with.
    fn needed(&self) -> usize {
        self.policy
            .min_nodes
            .max(self.release.min_contributors as usize)
            .max(self.required)
    }

    /// When the current phase ends, if the round is still open.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// Whether nodes may have debited the release: from the announcement on (a node computes
    /// and debits as soon as it accepts, before the share bundles; found by fedprof-sim, where
    /// a round killed before its bundles was refunded although its nodes had paid). Only a
    /// round settled before anyone was asked is free.
    pub fn nodes_may_have_paid(&self) -> bool {
        self.secagg.is_some()
    }

    /// The outcome, once the round released a result or aborted.
    pub fn outcome(&self) -> Option<&JobOutcome> {
        self.outcome.as_ref()
    }

    /// Whether `node` is still an active member of a round that has not settled: a message
    /// from anyone else for this round changes nothing (and counts as stray in the core).
    pub fn is_active(&self, node: &PartyName) -> bool {
        self.outcome.is_none() && self.members.get(node) == Some(&Member::Active)
    }

    /// Handles a message from `node` about this round's job.
    pub fn on_message(
        &mut self,
        node: &PartyName,
        body: Body,
        now: Instant,
    ) -> Result<Vec<RoundEffect>, RoundError> {
        let Some(state) = self.members.get(node) else {
            return Err(RoundError::NotAMember(node.clone()));
        };
        if self.outcome.is_some() || *state != Member::Active {
            // Late or repeated answers after the member or the round settled change nothing.
            return Ok(Vec::new());
        }
        let mut effects = Vec::new();
        match body {
            Body::Accept => {}
            Body::Refuse(Refusal { reason, detail }) => {
                self.fail(node, format!("refused ({reason:?}): {detail}"));
            }
            Body::Receipt(line) if !self.receipts.contains_key(node) => {
                // Screened now, before this node's masked input can count (M2): a receipt
                // that does not pay for exactly this release drops its sender only.
                match self.screen(node, &line) {
                    Ok(entry) => {
                        self.receipts.insert(node.clone(), entry);
                    }
                    Err(detail) => {
                        let detail = format!("invalid debit receipt: {detail}");
                        self.fail(node, format!("protocol violation: {detail}"));
                        effects.push(RoundEffect::Reject {
                            node: node.clone(),
                            code: ErrorCode::UnexpectedMessage,
                            detail,
                        });
                    }
                }
            }
            // A second receipt changes nothing (the first one was screened and kept).
            Body::Receipt(_) => {}
            Body::SecAgg(fedprof_protocol::secagg::NodeMessage::Masked(_))
                if !self.receipts.contains_key(node) =>
            {
                let detail = "masked input before the debit receipt".to_owned();
                self.fail(node, format!("protocol violation: {detail}"));
                effects.push(RoundEffect::Reject {
                    node: node.clone(),
                    code: ErrorCode::UnexpectedMessage,
                    detail,
                });
            }
            Body::SecAgg(message) => {
                let from = self.index[node];
                let kind = message.kind();
                let Some(secagg) = self.secagg.as_mut() else {
                    return Ok(effects);
                };
                match secagg.receive(from, message) {
                    Ok(progress) if progress.is_complete() => return Ok(self.close_phase(now)),
                    Ok(_) | Err(CoordinatorError::RoundOver(_) | CoordinatorError::Aborted(_)) => {}
                    Err(e) => {
                        self.fail(node, format!("secure aggregation refused its {kind}: {e}"));
                        effects.push(RoundEffect::Reject {
                            node: node.clone(),
                            code: ErrorCode::UnexpectedMessage,
                            detail: e.to_string(),
                        });
                    }
                }
            }
            other => {
                let detail = format!(
                    "{} is not expected at this point of the round",
                    other.kind()
                );
                self.fail(node, format!("protocol violation: {detail}"));
                effects.push(RoundEffect::Reject {
                    node: node.clone(),
                    code: ErrorCode::UnexpectedMessage,
                    detail,
                });
            }
        }
        effects.extend(self.close_if_settled(now));
        Ok(effects)
    }

    /// Records that `node`'s connection is gone.
    pub fn on_disconnect(
        &mut self,
        node: &PartyName,
        reason: &str,
        now: Instant,
    ) -> Vec<RoundEffect> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        if self.members.get(node) == Some(&Member::Active) {
            self.fail(node, format!("connection lost: {reason}"));
        }
        self.close_if_settled(now)
    }

    /// Closes the current phase when its deadline has passed.
    pub fn on_tick(&mut self, now: Instant) -> Vec<RoundEffect> {
        if self.outcome.is_some() || now < self.deadline {
            return Vec::new();
        }
        self.close_phase(now)
    }

    fn fail(&mut self, node: &PartyName, reason: String) {
        if let Some(state) = self.members.get_mut(node) {
            *state = Member::Failed(reason);
        }
    }

    /// Closes the phase early once every node it still waits for has failed.
    fn close_if_settled(&mut self, now: Instant) -> Vec<RoundEffect> {
        let Some(secagg) = &self.secagg else {
            return Vec::new();
        };
        let waiting = secagg
            .pending()
            .into_iter()
            .any(|i| self.members.get(&self.roster[i as usize]) == Some(&Member::Active));
        if self.outcome.is_none() && !waiting {
            self.close_phase(now)
        } else {
            Vec::new()
        }
    }

    fn close_phase(&mut self, now: Instant) -> Vec<RoundEffect> {
        let Some(secagg) = self.secagg.as_mut() else {
            return Vec::new();
        };
        let secs = self.policy.timeout.as_secs_f64();
        let phase = secagg.phase();
        // Nodes the phase waited for in vain are out of the round from here on, and told so
        // (M4: a node that is only slow frees its job slot at once).
        let mut notices = Vec::new();
        for i in secagg.pending() {
            let name = self.roster[i as usize].clone();
            if self.members.get(&name) == Some(&Member::Active) {
                let detail = format!("no answer in phase {phase:?} within {secs:.1} s");
                self.fail(&name, detail.clone());
                notices.push(RoundEffect::Send {
                    node: name,
                    body: Body::RoundOver(RoundOver {
                        reason: RoundOverReason::Excluded,
                        detail,
                    }),
                });
            }
        }
        let mut effects = self.advance(now);
        notices.append(&mut effects);
        notices
    }

    /// Closes the secure aggregation's current phase: the next phase's messages, or the
    /// round's outcome.
    fn advance(&mut self, now: Instant) -> Vec<RoundEffect> {
        let Some(secagg) = self.secagg.as_mut() else {
            return Vec::new();
        };
        match secagg.close_phase() {
            Ok(Step::Send(messages)) => {
                self.deadline = now + self.policy.timeout;
                messages
                    .into_iter()
                    .filter_map(|(i, m)| {
                        let node = self.roster.get(i as usize)?.clone();
                        (self.members.get(&node) == Some(&Member::Active)).then_some(
                            RoundEffect::Send {
                                node,
                                body: Body::SecAggRelay(m),
                            },
                        )
                    })
                    .collect()
            }
            Ok(Step::Finished(sum)) => {
                let misbehaving = secagg.misbehaving();
                let contributors: Vec<PartyName> = sum
                    .contributors()
                    .iter()
                    .map(|&i| self.roster[i as usize].clone())
                    .collect();
                if contributors.len() < self.needed() {
                    self.abort(format!(
                        "only {} of {} node(s) contributed; the release requires at least {}",
                        contributors.len(),
                        self.roster.len(),
                        self.needed()
                    ));
                    return Vec::new();
                }
                for name in &self.roster {
                    if !contributors.contains(name)
                        && self.members.get(name) == Some(&Member::Active)
                    {
                        self.members
                            .insert(name.clone(), Member::Failed("not in the sum".into()));
                    }
                }
                // Holders that revealed a share their owner's commitment refutes: the sum is
                // right without them (secagg rebuilt from other holders), and each is told it
                // broke the protocol and leaves the federation's connections (security review
                // M3: the blame goes to the liar, not to the share's owner).
                let liars: Vec<RoundEffect> = misbehaving
                    .into_iter()
                    .filter_map(|i| self.roster.get(i as usize).cloned())
                    .map(|node| RoundEffect::Reject {
                        node,
                        code: ErrorCode::UnexpectedMessage,
                        detail: "revealed a secret share that does not match its owner's \
                                 commitment"
                            .into(),
                    })
                    .collect();
                let mut sorted = contributors;
                sorted.sort();
                let result = JobResult {
                    spec: self.spec.clone(),
                    values: sum.into_values(),
                    contributors: sorted,
                    release: self.release.clone(),
                    profile: self.profile.clone(),
                };
                // Nothing is sent here: the driver records the release in the coordinator's
                // ledger first and only then publishes it (see `Output::Publish`).
                self.outcome = Some(JobOutcome::Completed {
                    result,
                    failures: self.failures(),
                });
                liars
            }
            Err(e) => {
                self.abort(format!("secure aggregation ended without a result: {e}"));
                Vec::new()
            }
        }
    }

    fn abort(&mut self, reason: String) {
        self.outcome = Some(JobOutcome::Aborted {
            reason,
            failures: self.failures(),
        });
    }

    fn failures(&self) -> Vec<NodeFailure> {
        self.members
            .iter()
            .filter_map(|(node, s)| match s {
                Member::Failed(reason) => Some(NodeFailure {
                    node: node.clone(),
                    reason: reason.clone(),
                }),
                Member::Active => None,
            })
            .collect()
    }

    /// Once the round is settled, the round-over notice for every roster member that gets no
    /// result: all of them when the round aborted, the non-contributors when it released.
    /// (A contributor whose release then fails to be recorded is told by the shell.)
    pub fn over_notices(&self) -> Vec<(PartyName, RoundOver)> {
        let (reason, detail, contributors): (_, String, &[PartyName]) = match &self.outcome {
            None => return Vec::new(),
            Some(JobOutcome::Aborted { reason, .. }) => {
                (RoundOverReason::Aborted, reason.clone(), &[])
            }
            Some(JobOutcome::Completed { result, .. }) => (
                RoundOverReason::NotInSum,
                "the release was published without this node's vector".into(),
                &result.contributors,
            ),
        };
        self.roster
            .iter()
            .filter(|n| !contributors.contains(n))
            .map(|n| {
                let detail = match self.members.get(n) {
                    Some(Member::Failed(why)) => format!("{detail} ({why})"),
                    _ => detail.clone(),
                };
                (n.clone(), RoundOver { reason, detail })
            })
            .collect()
    }

    /// Checks `node`'s receipt line: at most [`MAX_RECEIPT_BYTES`], a ledger entry, and the
    /// node's own signed debit of exactly this release, mechanism and rho.
    fn screen(&self, node: &PartyName, line: &str) -> Result<NodeEntry, String> {
        if line.len() > MAX_RECEIPT_BYTES {
            return Err(format!(
                "{} bytes, more than the {MAX_RECEIPT_BYTES} a receipt may have",
                line.len()
            ));
        }
        let (Some(expected), Some(key)) = (&self.expected, self.keys.get(node)) else {
            return Err("the round was not announced to this node".into());
        };
        let entry = NodeEntry::from_line(line).map_err(|e| e.to_string())?;
        expected
            .screen(node, &entry, key)
            .map_err(|e| e.to_string())?;
        Ok(entry)
    }

    /// What the release's receipts pay for (`None` for a round settled before it was
    /// announced).
    pub fn expected(&self) -> Option<&ExpectedDebit> {
        self.expected.as_ref()
    }

    /// The screened receipts of `nodes`, in their order; a contributor always has one (a
    /// masked input without a receipt is refused).
    pub fn receipts(&self, nodes: &[PartyName]) -> Vec<NodeEntry> {
        nodes
            .iter()
            .filter_map(|n| self.receipts.get(n).cloned())
            .collect()
    }

    /// The release's nonce (digest of the round configuration, which covers the request's
    /// random nonce and the release it serves).
    pub fn nonce(&self) -> [u8; 32] {
        self.nonce
    }

    /// The profiling job this round serves.
    pub fn profile(&self) -> &ProfileTag {
        &self.profile
    }

    /// The roster asked to take part.
    pub fn roster(&self) -> &[PartyName] {
        &self.roster
    }
}

/// [`fedprof_privacy::encoding::check_overflow`] for a release of `spec` over `nodes` nodes,
/// at failure probability `2^-40`.
fn overflow_check(spec: &JobSpec, release: &ReleaseParams, nodes: usize) -> Result<(), String> {
    let JobSpec::Features(q) = spec;
    let variance = fedprof_privacy::query::query_variance(release).map_err(|e| e.to_string())?;
    fedprof_privacy::encoding::check_overflow(
        nodes as u64,
        u64::from(u32::MAX) * u64::from(q.scale),
        &variance,
        q.vector_len() as u64,
        2f64.powi(-40),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Complete graph for small federations; SecAgg+ ring with about `2 log2 n` neighbours (even)
/// once that is well below `n`, so per-node cost grows logarithmically.
///
/// A sparse graph's nodes see only their neighbourhood, so only its threshold can guarantee
/// a release's fewest survivors: when `min_survivors` is above that threshold (a large
/// `n_min`, or a later release of a profiling job needing its whole population), the graph is
/// complete, at linear cost per node.
fn graph_for(n: usize, seed: [u8; 32], min_survivors: usize) -> GraphSpec {
    let log = usize::BITS - n.leading_zeros();
    let neighbours = 2 * log as usize;
    let sparse_threshold = fedprof_secagg::default_threshold(neighbours + 1);
    if n <= 32 || neighbours + 1 >= n || min_survivors > sparse_threshold {
        GraphSpec::Complete
    } else {
        GraphSpec::Sparse {
            neighbours: u32::try_from(neighbours).unwrap_or(u32::MAX) & !1,
            seed,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
