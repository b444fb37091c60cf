//! The node's side of a connection, as a sans-IO state machine: registration, then the routing
//! of each message from the coordinator to what the node must do about it. Jobs themselves run
//! in [`crate::job::NodeJob`]; this machine only knows whether the node is registered. It is
//! a part of [`crate::core::NodeCore`], which carries out what it routes; it answers the
//! coordinator's heartbeat `Ping` itself.

use fedprof_protocol::secagg::CoordinatorMessage;
use fedprof_protocol::{
    Body, Envelope, ErrorCode, Escaped, JobAnnounce, JobId, JobResult, Register, RoundOver,
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
    /// A job was announced: check it, then accept and start it, or refuse it.
    StartJob {
        /// The job.
        job: JobId,
        /// The announcement.
        announce: Box<JobAnnounce>,
    },
    /// A secure-aggregation message for a running job.
    Relay {
        /// The job.
        job: JobId,
        /// The message.
        message: CoordinatorMessage,
    },
    /// A job this node contributed to was released.
    Released {
        /// The job.
        job: JobId,
        /// The released result.
        result: JobResult,
    },
    /// The coordinator says the job's round is over for this node: drop the job.
    RoundOver {
        /// The job.
        job: JobId,
        /// Why.
        over: RoundOver,
    },
    /// The session cannot go on; close the connection (the driver reconnects with backoff).
    End {
        /// Why, for the operator.
        reason: String,
    },
}

/// One connection's worth of node protocol state.
#[derive(Debug)]
pub struct NodeSession {
    registered: bool,
}

impl NodeSession {
    /// Starts a session; the returned action registers the node.
    pub fn start(software: &str) -> (Self, NodeAction) {
        let register = Body::Register(Register {
            software: software.to_owned(),
        });
        (
            NodeSession { registered: false },
            NodeAction::Send {
                job: JobId::NONE,
                body: register,
            },
        )
    }

    /// Whether the coordinator has acknowledged the registration.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Handles a message from the coordinator.
    pub fn on_message(&mut self, envelope: Envelope) -> Vec<NodeAction> {
        let job = envelope.header.job;
        match (self.registered, envelope.body) {
            (false, Body::Registered(_)) => {
                self.registered = true;
                Vec::new()
            }
            (true, Body::JobAnnounce(announce)) => {
                vec![NodeAction::StartJob {
                    job,
                    announce: Box::new(announce),
                }]
            }
            (true, Body::SecAggRelay(message)) => vec![NodeAction::Relay { job, message }],
            (true, Body::Result(result)) => vec![NodeAction::Released { job, result }],
            (true, Body::RoundOver(over)) => vec![NodeAction::RoundOver { job, over }],
            // The heartbeat is answered here, by the protocol core, so a reply shows that
            // the node processes messages (not only that its QUIC stack is up).
            (true, Body::Ping(n)) => vec![NodeAction::Send {
                job: JobId::NONE,
                body: Body::Pong(n),
            }],
            (_, Body::Error(e)) => {
                vec![NodeAction::End {
                    reason: format!("coordinator error {:?}: {}", e.code, Escaped(&e.detail)),
                }]
            }
            (_, other) => vec![
                NodeAction::Send {
                    job: JobId::NONE,
                    body: Body::Error(fedprof_protocol::ErrorFrame {
                        code: ErrorCode::UnexpectedMessage,
                        detail: format!("{} is not expected by a node here", other.kind()),
                    }),
                },
                NodeAction::End {
                    reason: format!("coordinator sent an unexpected {}", other.kind()),
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedprof_protocol::{Header, PartyId, PartyName, Registered, Role, RoundId};

    fn env(job: u64, body: Body) -> Envelope {
        Envelope {
            header: Header {
                job: JobId(job),
                round: RoundId(0),
                seq: 0,
            },
            body,
        }
    }

    fn registered() -> NodeSession {
        let (mut s, first) = NodeSession::start("t");
        assert!(matches!(
            first,
            NodeAction::Send {
                body: Body::Register(_),
                ..
            }
        ));
        assert!(!s.is_registered());
        let party = PartyId {
            role: Role::Node,
            name: PartyName::new("a").unwrap(),
        };
        assert!(
            s.on_message(env(0, Body::Registered(Registered { party })))
                .is_empty()
        );
        assert!(s.is_registered());
        s
    }

    #[test]
    fn relays_and_results_are_routed_to_their_job() {
        let mut s = registered();
        let unmask = CoordinatorMessage::Unmask(fedprof_protocol::secagg::UnmaskRequest {
            tag: fedprof_protocol::secagg::RoundTag { job: 3, round: 0 },
            recipient: 0,
            survivors: vec![0, 1],
        });
        let actions = s.on_message(env(3, Body::SecAggRelay(unmask.clone())));
        assert_eq!(
            actions,
            vec![NodeAction::Relay {
                job: JobId(3),
                message: unmask
            }]
        );
    }

    #[test]
    fn jobs_before_registration_and_errors_end_the_session() {
        let (mut s, _) = NodeSession::start("t");
        let actions = s.on_message(env(1, Body::Accept));
        assert!(
            matches!(actions.last(), Some(NodeAction::End { .. })),
            "{actions:?}"
        );
        let mut s = registered();
        let err = Body::Error(fedprof_protocol::ErrorFrame {
            code: ErrorCode::ShuttingDown,
            detail: "bye".into(),
        });
        assert!(
            matches!(&s.on_message(env(0, err))[..], [NodeAction::End { reason }] if reason.contains("ShuttingDown"))
        );
    }

    #[test]
    fn l3_a_coordinator_error_detail_ends_the_session_escaped() {
        let mut s = registered();
        let err = Body::Error(fedprof_protocol::ErrorFrame {
            code: ErrorCode::Malformed,
            detail: format!("bye\n\u{1b}[2Jforged{}", "x".repeat(10_000)),
        });
        let actions = s.on_message(env(0, err));
        let [NodeAction::End { reason }] = &actions[..] else {
            panic!("{actions:?}")
        };
        // The reason goes to the node's log as it is: one bounded, printable line.
        assert!(reason.contains("bye\\n\\u{1b}[2Jforged"), "{reason}");
        assert!(!reason.chars().any(char::is_control), "{reason}");
        assert!(reason.len() < 400, "{reason}");
    }
}
