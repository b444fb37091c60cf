//! One job's round, as a sans-IO state machine: it is told who was asked, what they said and
//! what time it is, and answers with the messages to send and, once settled, the outcome.
//!
//! The merge is element-wise addition in `Z_2^64`, folded in as each contribution arrives, so
//! a round never holds more than the running sum. With plain contributions (this job type) the
//! coordinator still sees each node's vector as it arrives; with secure aggregation the same
//! sum runs over masked vectors and only the unmasked total is meaningful.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fedprof_protocol::{
    Body, Contribution, ErrorCode, JobAnnounce, JobId, JobOutcome, JobResult, JobSpec, NodeFailure,
    PartyName, Refusal,
};

/// The policy a round runs under (from the coordinator config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundPolicy {
    /// Fewest contributing nodes for a result to be released.
    pub min_nodes: usize,
    /// How long nodes get, from the announcement, to contribute.
    pub timeout: Duration,
}

/// Where one node stands in the round.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Announced,
    Accepted,
    Submitted,
    Failed(String),
}

impl Member {
    fn is_settled(&self) -> bool {
        matches!(self, Member::Submitted | Member::Failed(_))
    }
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

/// One job's round.
#[derive(Debug)]
pub struct Round {
    job: JobId,
    spec: JobSpec,
    policy: RoundPolicy,
    deadline: Instant,
    members: BTreeMap<PartyName, Member>,
    sum: Vec<u64>,
    outcome: Option<JobOutcome>,
}

impl Round {
    /// Starts a round asking `nodes` to compute `spec`; returns the announcements to send.
    ///
    /// With fewer than `policy.min_nodes` nodes, the round is settled at once as aborted.
    pub fn start(
        job: JobId,
        spec: JobSpec,
        nodes: impl IntoIterator<Item = PartyName>,
        policy: RoundPolicy,
        now: Instant,
    ) -> (Round, Vec<RoundEffect>) {
        let members: BTreeMap<_, _> = nodes.into_iter().map(|n| (n, Member::Announced)).collect();
        let timeout_ms = u32::try_from(policy.timeout.as_millis()).unwrap_or(u32::MAX);
        let effects = members
            .keys()
            .map(|node| RoundEffect::Send {
                node: node.clone(),
                body: Body::JobAnnounce(JobAnnounce { spec: spec.clone(), timeout_ms }),
            })
            .collect();
        let mut round = Round {
            job,
            sum: vec![0; spec.vector_len()],
            spec,
            policy,
            deadline: now + policy.timeout,
            members,
            outcome: None,
        };
        let effects = if round.members.len() < policy.min_nodes {
            round.outcome = Some(JobOutcome::Aborted {
                reason: format!(
                    "only {} node(s) connected; the policy requires at least {}",
                    round.members.len(),
                    policy.min_nodes
                ),
                failures: Vec::new(),
            });
            Vec::new()
        } else {
            effects
        };
        (round, effects)
    }

    /// The job this round computes.
    pub fn job(&self) -> JobId {
        self.job
    }

    /// When the round will time out, if it is still open.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// The outcome, once every member has contributed or failed.
    pub fn outcome(&self) -> Option<&JobOutcome> {
        self.outcome.as_ref()
    }

    /// Whether `node` was asked to take part.
    pub fn is_member(&self, node: &PartyName) -> bool {
        self.members.contains_key(node)
    }

    /// Handles a message from `node` about this round's job.
    pub fn on_message(
        &mut self,
        node: &PartyName,
        body: Body,
    ) -> Result<Vec<RoundEffect>, RoundError> {
        let Some(state) = self.members.get_mut(node) else {
            return Err(RoundError::NotAMember(node.clone()));
        };
        if self.outcome.is_some() || state.is_settled() {
            // Late or repeated answers after the member or the round settled change nothing.
            return Ok(Vec::new());
        }
        let mut effects = Vec::new();
        match (&*state, body) {
            (Member::Announced, Body::Accept) => *state = Member::Accepted,
            (Member::Announced | Member::Accepted, Body::Refuse(Refusal { reason, detail })) => {
                *state = Member::Failed(format!("refused ({reason:?}): {detail}"));
            }
            (Member::Accepted, Body::Submit(Contribution { values })) => {
                if values.len() == self.sum.len() {
                    for (acc, v) in self.sum.iter_mut().zip(values) {
                        *acc = acc.wrapping_add(v);
                    }
                    *state = Member::Submitted;
                } else {
                    let detail = format!(
                        "contribution has {} elements; {} takes {}",
                        values.len(),
                        self.spec.name(),
                        self.sum.len()
                    );
                    *state = Member::Failed(format!("bad contribution: {detail}"));
                    effects.push(RoundEffect::Reject {
                        node: node.clone(),
                        code: ErrorCode::BadContribution,
                        detail,
                    });
                }
            }
            (_, other) => {
                let detail = format!("{} is not expected at this point of the round", other.kind());
                *state = Member::Failed(format!("protocol violation: {detail}"));
                effects.push(RoundEffect::Reject {
                    node: node.clone(),
                    code: ErrorCode::UnexpectedMessage,
                    detail,
                });
            }
        }
        effects.extend(self.settle_if_done());
        Ok(effects)
    }

    /// Records that `node`'s connection is gone.
    pub fn on_disconnect(&mut self, node: &PartyName, reason: &str) -> Vec<RoundEffect> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        if let Some(state) = self.members.get_mut(node).filter(|s| !s.is_settled()) {
            *state = Member::Failed(format!("connection lost: {reason}"));
        }
        self.settle_if_done()
    }

    /// Fails every member that has not settled by the deadline.
    pub fn on_tick(&mut self, now: Instant) -> Vec<RoundEffect> {
        if self.outcome.is_some() || now < self.deadline {
            return Vec::new();
        }
        let secs = self.policy.timeout.as_secs_f64();
        for state in self.members.values_mut().filter(|s| !s.is_settled()) {
            *state = Member::Failed(format!("no contribution within {secs:.1} s"));
        }
        self.settle_if_done()
    }

    fn settle_if_done(&mut self) -> Vec<RoundEffect> {
        if self.outcome.is_some() || !self.members.values().all(Member::is_settled) {
            return Vec::new();
        }
        let failures: Vec<NodeFailure> = self
            .members
            .iter()
            .filter_map(|(node, s)| match s {
                Member::Failed(reason) => {
                    Some(NodeFailure { node: node.clone(), reason: reason.clone() })
                }
                _ => None,
            })
            .collect();
        let contributors: Vec<PartyName> = self
            .members
            .iter()
            .filter(|(_, s)| **s == Member::Submitted)
            .map(|(n, _)| n.clone())
            .collect();
        if contributors.len() < self.policy.min_nodes {
            self.outcome = Some(JobOutcome::Aborted {
                reason: format!(
                    "only {} of {} node(s) contributed; the policy requires at least {}",
                    contributors.len(),
                    self.members.len(),
                    self.policy.min_nodes
                ),
                failures,
            });
            return Vec::new();
        }
        let result = JobResult {
            spec: self.spec.clone(),
            values: std::mem::take(&mut self.sum),
            contributors: contributors.clone(),
        };
        let effects = contributors
            .into_iter()
            .map(|node| RoundEffect::Send { node, body: Body::Result(result.clone()) })
            .collect();
        self.outcome = Some(JobOutcome::Completed { result, failures });
        effects
    }
}

#[cfg(test)]
mod tests;
