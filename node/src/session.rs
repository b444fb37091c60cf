//! The node's side of a connection, as a sans-IO state machine: it is handed each message from
//! the coordinator and each finished local computation, and answers with what to send or do.
//!
//! Later job types (masked, noised vectors) change what [`NodeAction::Compute`] produces, not
//! this flow: announce, accept, compute, submit, result.

use fedprof_protocol::{
    Body, Contribution, Envelope, ErrorCode, JobId, JobResult, JobSpec, Refusal, RefuseReason,
    Register,
};

/// What the node's driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// Send `body` about `job`.
    Send {
        /// The job (or [`JobId::NONE`]).
        job: JobId,
        /// The message.
        body: Body,
    },
    /// Compute the local contribution for `spec`, then call [`NodeSession::on_computed`].
    Compute {
        /// The job.
        job: JobId,
        /// What to compute.
        spec: JobSpec,
    },
    /// A job this node contributed to was released.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Registering,
    Idle,
    Working(JobId),
}

/// One connection's worth of node protocol state.
#[derive(Debug)]
pub struct NodeSession {
    state: State,
}

impl NodeSession {
    /// Starts a session; the returned action registers the node.
    pub fn start(software: &str) -> (Self, NodeAction) {
        let register = Body::Register(Register { software: software.to_owned() });
        (NodeSession { state: State::Registering }, NodeAction::Send { job: JobId::NONE, body: register })
    }

    /// Whether the coordinator has acknowledged the registration.
    pub fn is_registered(&self) -> bool {
        self.state != State::Registering
    }

    /// Handles a message from the coordinator.
    pub fn on_message(&mut self, envelope: Envelope) -> Vec<NodeAction> {
        let job = envelope.header.job;
        match (self.state, envelope.body) {
            (State::Registering, Body::Registered(_)) => {
                self.state = State::Idle;
                Vec::new()
            }
            (State::Idle, Body::JobAnnounce(announce)) => {
                self.state = State::Working(job);
                vec![
                    NodeAction::Send { job, body: Body::Accept },
                    NodeAction::Compute { job, spec: announce.spec },
                ]
            }
            (State::Working(current), Body::JobAnnounce(_)) => {
                let detail = format!("still working on {current}");
                vec![NodeAction::Send {
                    job,
                    body: Body::Refuse(Refusal { reason: RefuseReason::Busy, detail }),
                }]
            }
            (State::Idle | State::Working(_), Body::Result(result)) => {
                vec![NodeAction::Released { job, result }]
            }
            (_, Body::Error(e)) => {
                vec![NodeAction::End { reason: format!("coordinator error {:?}: {}", e.code, e.detail) }]
            }
            (_, other) => vec![
                NodeAction::Send {
                    job: JobId::NONE,
                    body: Body::Error(fedprof_protocol::ErrorFrame {
                        code: ErrorCode::UnexpectedMessage,
                        detail: format!("{} is not expected by a node here", other.kind()),
                    }),
                },
                NodeAction::End { reason: format!("coordinator sent an unexpected {}", other.kind()) },
            ],
        }
    }

    /// Hands over a finished computation for `job`: the contribution, or why there is none.
    pub fn on_computed(&mut self, job: JobId, result: Result<Vec<u64>, Refusal>) -> Vec<NodeAction> {
        if self.state != State::Working(job) {
            return Vec::new();
        }
        self.state = State::Idle;
        let body = match result {
            Ok(values) => Body::Submit(Contribution { values }),
            Err(refusal) => Body::Refuse(refusal),
        };
        vec![NodeAction::Send { job, body }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedprof_protocol::{Header, JobAnnounce, PartyId, PartyName, Registered, Role, RoundId};

    fn env(job: u64, body: Body) -> Envelope {
        Envelope { header: Header { job: JobId(job), round: RoundId(0), seq: 0 }, body }
    }

    fn registered() -> NodeSession {
        let (mut s, first) = NodeSession::start("t");
        assert!(matches!(first, NodeAction::Send { body: Body::Register(_), .. }));
        assert!(!s.is_registered());
        let party = PartyId {
            role: Role::Node,
            name: PartyName::new("a").unwrap_or_else(|_| unreachable!("valid name")),
        };
        assert!(s.on_message(env(0, Body::Registered(Registered { party }))).is_empty());
        assert!(s.is_registered());
        s
    }

    fn announce(job: u64) -> Envelope {
        env(job, Body::JobAnnounce(JobAnnounce { spec: JobSpec::TransactionTotals, timeout_ms: 1 }))
    }

    #[test]
    fn announce_accept_compute_submit() {
        let mut s = registered();
        let actions = s.on_message(announce(3));
        assert_eq!(
            actions,
            vec![
                NodeAction::Send { job: JobId(3), body: Body::Accept },
                NodeAction::Compute { job: JobId(3), spec: JobSpec::TransactionTotals },
            ]
        );
        // A second job while busy is refused, not queued.
        let busy = s.on_message(announce(4));
        assert!(matches!(&busy[..], [NodeAction::Send { job: JobId(4), body: Body::Refuse(r) }] if r.reason == RefuseReason::Busy));
        let sent = s.on_computed(JobId(3), Ok(vec![1, 2, 3]));
        assert_eq!(sent, vec![NodeAction::Send { job: JobId(3), body: Body::Submit(Contribution { values: vec![1, 2, 3] }) }]);
        assert!(s.on_computed(JobId(3), Ok(vec![1])).is_empty(), "a job is submitted once");
        assert_eq!(s.on_message(announce(5)).len(), 2, "idle again");
    }

    #[test]
    fn a_failed_computation_refuses_with_the_reason() {
        let mut s = registered();
        s.on_message(announce(1));
        let refusal = Refusal { reason: RefuseReason::DataUnavailable, detail: "t.csv:3".into() };
        let sent = s.on_computed(JobId(1), Err(refusal.clone()));
        assert_eq!(sent, vec![NodeAction::Send { job: JobId(1), body: Body::Refuse(refusal) }]);
    }

    #[test]
    fn jobs_before_registration_and_errors_end_the_session() {
        let (mut s, _) = NodeSession::start("t");
        let actions = s.on_message(announce(1));
        assert!(matches!(actions.last(), Some(NodeAction::End { .. })), "{actions:?}");
        let mut s = registered();
        let err = Body::Error(fedprof_protocol::ErrorFrame { code: ErrorCode::ShuttingDown, detail: "bye".into() });
        assert!(matches!(&s.on_message(env(0, err))[..], [NodeAction::End { reason }] if reason.contains("ShuttingDown")));
    }
}
