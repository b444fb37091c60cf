//! The coordinator core's heartbeat, on a virtual clock: pings to registered nodes on the
//! interval, a node that sends nothing for the timeout closed and deregistered, and the round
//! it was in settled without it.

use std::time::Duration;

use fedprof_protocol::{Header, Register};

use super::*;

fn name(s: &str) -> PartyName {
    PartyName::new(s).unwrap_or_else(|e| unreachable!("{e}"))
}

fn env(body: Body) -> Envelope {
    Envelope {
        header: Header {
            job: JobId::NONE,
            round: RoundId(0),
            seq: 0,
        },
        body,
    }
}

fn core() -> Coordinator {
    let policy = RoundPolicy {
        min_nodes: 2,
        timeout: Duration::from_secs(120),
    };
    let release = ReleasePolicy {
        rho_per_job: Rho::from_ratio(1, 2).unwrap_or_else(|_| unreachable!()),
        colluders: 1,
        rho_per_analyst_period: Rho::from_ratio(3, 2).unwrap_or_else(|_| unreachable!()),
        max_holders_per_person: None,
        name: name("coordinator"),
    };
    let mut core = Coordinator::new(policy, release, [5; 32]);
    core.set_heartbeat(Heartbeat {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    });
    core
}

fn register(core: &mut Coordinator, conn: ConnId, node: &str, now: Instant) {
    let key = fedprof_crypto::SigningKey::from_seed(&fedprof_crypto::SecretKey32::from_bytes(
        [u8::try_from(conn).unwrap_or(0); 32],
    ))
    .verifying_key();
    let party = PartyId {
        role: Role::Node,
        name: name(node),
    };
    let connected = Input::Connected {
        conn,
        party,
        certificate: vec![],
        key,
        valid_until: None,
    };
    assert!(core.handle(connected, now).is_empty());
    let register = Body::Register(Register {
        software: "t".into(),
    });
    let out = core.handle(
        Input::Message {
            conn,
            envelope: env(register),
        },
        now,
    );
    assert!(
        matches!(
            &out[0],
            Output::Send {
                body: Body::Registered(_),
                ..
            }
        ),
        "{out:?}"
    );
}

fn pinged(out: &[Output]) -> Vec<ConnId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                body: Body::Ping(_),
                ..
            } => Some(*conn),
            _ => None,
        })
        .collect()
}

#[test]
fn registered_nodes_are_pinged_and_a_silent_one_is_closed_and_leaves_the_round() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut c = core();
    register(&mut c, 1, "a", t0);
    register(&mut c, 2, "b", t0);
    register(&mut c, 3, "c", t0);
    assert_eq!(c.next_deadline(), Some(at(10)));
    assert!(pinged(&c.handle(Input::Tick, at(9))).is_empty());
    assert_eq!(pinged(&c.handle(Input::Tick, at(10))), [1, 2, 3]);
    // a and b answer; c's core is stuck. A job starts meanwhile.
    for conn in [1, 2] {
        let pong = Input::Message {
            conn,
            envelope: env(Body::Pong(1)),
        };
        assert!(c.handle(pong, at(11)).is_empty());
    }
    let out = c.handle(
        Input::SubmitJob {
            submission: fedprof_protocol::Submission {
                request: fedprof_protocol::RequestId([9; 16]),
                spec: crate::round::tests::totals(),
            },
            requester: Requester::Local(1),
        },
        at(12),
    );
    let announced = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    body: Body::JobAnnounce(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(announced, 3);
    assert_eq!(pinged(&c.handle(Input::Tick, at(20))), [1, 2, 3]);
    // At 30 s of silence c is closed as unresponsive and deregistered; a and b stay.
    let out = c.handle(Input::Tick, at(30));
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Close {
                conn: 3,
                code: ErrorCode::Unresponsive,
                ..
            }
        )),
        "{out:?}"
    );
    assert!(
        out.contains(&Output::NodesChanged(vec![name("a"), name("b")])),
        "{out:?}"
    );
    assert_eq!(c.nodes(), [name("a"), name("b")]);
    // a and b went quiet too (no pong since 11 s): closed at 41 s, not before.
    assert!(
        c.handle(Input::Tick, at(40))
            .iter()
            .all(|o| !matches!(o, Output::Close { .. }))
    );
    assert_eq!(c.next_deadline(), Some(at(41)));
    let out = c.handle(Input::Tick, at(41));
    let closed: Vec<ConnId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Close {
                conn,
                code: ErrorCode::Unresponsive,
                ..
            } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [1, 2]);
    assert!(c.nodes().is_empty());
    // The round lost its members: it settled as aborted, and the requester heard.
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::JobFinished {
                outcome: JobOutcome::Aborted { .. },
                ..
            }
        )),
        "{out:?}"
    );
}
