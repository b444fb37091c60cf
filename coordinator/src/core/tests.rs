use std::time::Duration;

use fedprof_protocol::{ErrorFrame, Header, Refusal, RefuseReason, Register};

use super::*;
use fedprof_privacy::Rho;

fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

fn env(job: u64, body: Body) -> Envelope {
    // Sequence numbers are checked by the transport, not the core.
    Envelope {
        header: Header {
            job: JobId(job),
            round: RoundId(0),
            seq: 0,
        },
        body,
    }
}

use crate::round::tests::totals;

/// `spec` as a new request (a fresh id each call).
fn sub(spec: JobSpec) -> Submission {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(1);
    Submission {
        request: RequestId([NEXT.fetch_add(1, Ordering::Relaxed); 16]),
        spec,
    }
}

struct Fed {
    core: Coordinator,
    now: Instant,
}

impl Fed {
    fn new(min_nodes: usize) -> Self {
        let policy = RoundPolicy {
            min_nodes,
            timeout: Duration::from_secs(5),
        };
        let release = ReleasePolicy {
            rho_per_job: Rho::from_ratio_exact(num_rational::Ratio::new(1u8.into(), 2u8.into())),
            colluders: 1,
            rho_per_analyst_period: Rho::from_ratio_exact(num_rational::Ratio::new(
                3u8.into(),
                2u8.into(),
            )),
            max_holders_per_person: None,
            name: PartyName::new("coordinator").unwrap(),
        };
        Fed {
            core: Coordinator::new(policy, release, [3; 32]),
            now: Instant::now(),
        }
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(input, self.now)
    }

    fn connect(&mut self, conn: ConnId, role: Role, name: &str) {
        let key = fedprof_crypto::SigningKey::from_seed(&fedprof_crypto::SecretKey32::from_bytes(
            [conn as u8; 32],
        ))
        .verifying_key();
        let connected = Input::Connected {
            conn,
            party: party(role, name),
            certificate: vec![],
            key,
            valid_until: None,
        };
        assert!(self.input(connected).is_empty());
    }

    fn say(&mut self, conn: ConnId, job: u64, body: Body) -> Vec<Output> {
        self.input(Input::Message {
            conn,
            envelope: env(job, body),
        })
    }

    fn register(&mut self, conn: ConnId, name: &str) -> Vec<Output> {
        self.connect(conn, Role::Node, name);
        let out = self.say(
            conn,
            0,
            Body::Register(Register {
                software: "test".into(),
            }),
        );
        assert!(
            matches!(&out[0], Output::Send { conn: c, body: Body::Registered(r), .. } if *c == conn && r.party.name.as_str() == name),
            "{out:?}"
        );
        out
    }
}

fn closes_with(out: &[Output], conn: ConnId, code: ErrorCode) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Close { conn: c, code: k, .. } if *c == conn && *k == code))
}

#[test]
fn an_analyst_certificate_cannot_register_as_a_node() {
    let mut f = Fed::new(1);
    f.connect(1, Role::Analyst, "x");
    let out = f.say(
        1,
        0,
        Body::Register(Register {
            software: "evil".into(),
        }),
    );
    assert!(closes_with(&out, 1, ErrorCode::RoleNotPermitted), "{out:?}");
    assert!(f.core.nodes().is_empty());
}

#[test]
fn auditors_and_coordinators_cannot_submit_jobs_and_nodes_must_register_first() {
    let mut f = Fed::new(1);
    f.connect(1, Role::Auditor, "y");
    let out = f.say(1, 0, Body::SubmitJob(sub(totals())));
    assert!(closes_with(&out, 1, ErrorCode::RoleNotPermitted), "{out:?}");
    f.connect(2, Role::Node, "a");
    let out = f.say(2, 1, Body::Accept);
    assert!(
        closes_with(&out, 2, ErrorCode::UnexpectedMessage),
        "{out:?}"
    );
    f.register(3, "b");
    let out = f.say(
        3,
        0,
        Body::Register(Register {
            software: "again".into(),
        }),
    );
    assert!(
        closes_with(&out, 3, ErrorCode::UnexpectedMessage),
        "registering twice: {out:?}"
    );
    assert!(f.core.nodes().is_empty());
}

#[test]
fn analyst_job_runs_over_registered_nodes_and_the_outcome_returns() {
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    f.connect(9, Role::Analyst, "x");
    let out = f.say(9, 0, Body::SubmitJob(sub(totals())));
    let announced: Vec<ConnId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                job: JobId(1),
                body: Body::JobAnnounce(_),
                ..
            } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![1, 2]);
    // Nobody answers: at the deadline the round aborts and the analyst hears why.
    f.now += Duration::from_secs(6);
    let out = f.input(Input::Tick);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                conn: 9,
                body: Body::Outcome(JobOutcome::Aborted { .. }),
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn a_node_lost_mid_job_leaves_the_round_and_the_next_job_runs_without_it() {
    let mut f = Fed::new(2);
    for (conn, name) in [(1, "a"), (2, "b"), (3, "c")] {
        f.register(conn, name);
    }
    let out = f.input(Input::SubmitJob {
        submission: sub(totals()),
        requester: Requester::Local(1),
    });
    assert!(
        matches!(out[0], Output::Journal(Record::Announced(_))),
        "journaled before any node hears of it: {out:?}"
    );
    assert!(matches!(out[1], Output::Journal(Record::Paying { .. })));
    assert_eq!(
        out.len(),
        5,
        "the journal, then one announcement per node: {out:?}"
    );
    let out = f.input(Input::Closed {
        conn: 2,
        reason: "connection lost: reset".into(),
    });
    assert!(out.contains(&Output::NodesChanged(vec![
        PartyName::new("a").unwrap(),
        PartyName::new("c").unwrap()
    ])));
    // The next job is announced to the remaining nodes only.
    let out = f.input(Input::SubmitJob {
        submission: sub(totals()),
        requester: Requester::Local(2),
    });
    let announced: Vec<ConnId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                body: Body::JobAnnounce(_),
                ..
            } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![1, 3]);
}

#[test]
fn a_reconnecting_node_replaces_its_old_connection() {
    let mut f = Fed::new(1);
    f.register(1, "a");
    f.connect(2, Role::Node, "a");
    let out = f.say(
        2,
        0,
        Body::Register(Register {
            software: "t".into(),
        }),
    );
    assert!(closes_with(&out, 1, ErrorCode::Replaced), "{out:?}");
    assert_eq!(f.core.nodes(), vec![PartyName::new("a").unwrap()]);
    // The old connection's close does not unregister the new one.
    f.input(Input::Closed {
        conn: 1,
        reason: "replaced".into(),
    });
    assert_eq!(f.core.nodes().len(), 1);
}

/// H6: a revoked certificate is refused when it connects, and a live registered node whose
/// certificate the reloaded list names is closed and leaves the roster; others stay.
#[test]
fn h6_revoked_certificates_are_refused_and_live_ones_closed() {
    use fedprof_transport::Fingerprint;
    let mut f = Fed::new(1);
    // `Fed::connect` gives every peer an empty certificate: the revoked one differs.
    let revoked_cert = b"cert of a".to_vec();
    let key = |n: u8| {
        fedprof_crypto::SigningKey::from_seed(&fedprof_crypto::SecretKey32::from_bytes([n; 32]))
            .verifying_key()
    };
    let connect_a = |conn: ConnId| Input::Connected {
        conn,
        party: party(Role::Node, "a"),
        certificate: revoked_cert.clone(),
        key: key(9),
        valid_until: None,
    };
    assert!(f.input(connect_a(1)).is_empty());
    f.say(
        1,
        0,
        Body::Register(Register {
            software: "t".into(),
        }),
    );
    f.register(2, "b");
    assert_eq!(f.core.nodes().len(), 2);
    let list: BTreeSet<Fingerprint> = [Fingerprint::of(&revoked_cert)].into();
    let out = f.input(Input::Revoked(list.clone()));
    assert!(closes_with(&out, 1, ErrorCode::RoleNotPermitted), "{out:?}");
    assert!(
        !closes_with(&out, 2, ErrorCode::RoleNotPermitted),
        "{out:?}"
    );
    assert_eq!(f.core.nodes(), vec![PartyName::new("b").unwrap()]);
    // Reconnecting with the revoked certificate is refused at once, and nothing it sends
    // registers it.
    let out = f.input(connect_a(3));
    assert!(closes_with(&out, 3, ErrorCode::RoleNotPermitted), "{out:?}");
    f.say(
        3,
        0,
        Body::Register(Register {
            software: "t".into(),
        }),
    );
    assert_eq!(f.core.nodes(), vec![PartyName::new("b").unwrap()]);
    // The same list again closes nothing more; an empty one lets the certificate back in.
    assert!(!closes_with(
        &f.input(Input::Revoked(list)),
        2,
        ErrorCode::RoleNotPermitted
    ));
    f.input(Input::Revoked(BTreeSet::new()));
    assert!(f.input(connect_a(4)).is_empty());
}

/// H7: a node is closed when its certificate expires (a deadline of the core), so it is in
/// no roster after; a certificate already expired is refused at connection.
#[test]
fn h7_expired_certificates_leave_and_are_refused() {
    let mut f = Fed::new(1);
    let key =
        fedprof_crypto::SigningKey::from_seed(&fedprof_crypto::SecretKey32::from_bytes([7; 32]))
            .verifying_key();
    // Within the heartbeat timeout (30 s), so b, which sends no pongs here, stays.
    let expires = f.now + Duration::from_secs(20);
    let connect = |conn: ConnId, valid_until| Input::Connected {
        conn,
        party: party(Role::Node, "a"),
        certificate: vec![1],
        key,
        valid_until: Some(valid_until),
    };
    assert!(f.input(connect(1, expires)).is_empty());
    f.say(
        1,
        0,
        Body::Register(Register {
            software: "t".into(),
        }),
    );
    f.register(2, "b");
    assert_eq!(f.core.nodes().len(), 2);
    assert!(f.core.next_deadline().is_some_and(|d| d <= expires));
    f.now = expires;
    let out = f.input(Input::Tick);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Close { conn: 1, detail, .. } if detail == EXPIRED)),
        "{out:?}"
    );
    assert_eq!(f.core.nodes(), vec![PartyName::new("b").unwrap()]);
    let out = f.input(connect(3, f.now));
    assert!(closes_with(&out, 3, ErrorCode::RoleNotPermitted), "{out:?}");
}

#[test]
fn messages_about_unknown_jobs_are_refused_and_late_ones_ignored() {
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    f.input(Input::SubmitJob {
        submission: sub(totals()),
        requester: Requester::Local(1),
    });
    f.say(1, 1, Body::Accept);
    // Nobody advertises keys: the round aborts at the deadline.
    f.now += Duration::from_secs(6);
    let out = f.input(Input::Tick);
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
    assert!(
        f.say(2, 1, Body::Accept).is_empty(),
        "late answer to a settled job is ignored"
    );
    let out = f.say(2, 42, Body::Accept);
    assert!(closes_with(&out, 2, ErrorCode::UnknownJob), "{out:?}");
}

#[test]
fn a_feature_query_over_the_per_job_cap_is_refused_before_any_node_is_asked() {
    use fedprof_protocol::query::{FeatureQuery, QueryPart, Segmenter};
    use fedprof_protocol::{Fraction, JobOutcome};
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    f.connect(9, Role::Analyst, "x");
    let query = |numer, reserve| {
        JobSpec::Features(Box::new(FeatureQuery {
            label: "p/distributions".into(),
            as_of: "2026-06-30".into(),
            scale: 1000,
            segmenter: Segmenter::All,
            parts: vec![QueryPart::Count],
            budget: Fraction { numer, denom: 10 },
            reserve: Fraction {
                numer: reserve,
                denom: 10,
            },
            job: None,
        }))
    };
    // The policy's cap is 1/2: 1/10 now plus 5/10 later is over it.
    let out = f.say(9, 0, Body::SubmitJob(sub(query(1, 5))));
    let refused = out.iter().any(|o| {
        matches!(o, Output::Send { conn: 9, body: Body::Outcome(JobOutcome::Aborted { reason, .. }), .. }
            if reason.contains("exceeds the per-job cap"))
    });
    assert!(refused, "{out:?}");
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::Send {
                body: Body::JobAnnounce(_),
                ..
            }
        )),
        "no node was asked: {out:?}"
    );
    // Within the cap it is announced to both nodes.
    let out = f.say(9, 1, Body::SubmitJob(sub(query(1, 4))));
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
    assert_eq!(announced, 2, "{out:?}");
}

/// M3: the analyst never chooses who takes part (a query names its profiling job, not
/// nodes), and a later release of a job that cannot reach the job's whole population is
/// refused before anyone is asked: two releases over different node sets could be
/// differenced into one node's aggregate.
#[test]
fn m3_a_later_release_cannot_run_over_another_population() {
    let mut f = Fed::new(2);
    for (conn, name) in [(1, "a"), (2, "b"), (3, "c")] {
        f.register(conn, name);
    }
    f.connect(9, Role::Analyst, "x");
    let tenth = fedprof_protocol::Fraction {
        numer: 1,
        denom: 10,
    };
    let JobSpec::Features(mut first) = totals();
    (first.budget, first.reserve) = (tenth, tenth);
    let out = f.say(9, 0, Body::SubmitJob(sub(JobSpec::Features(first))));
    let id = out
        .iter()
        .find_map(|o| match o {
            Output::Send {
                body: Body::JobAnnounce(a),
                ..
            } => Some(a.profile.id),
            _ => None,
        })
        .expect("announced");
    let announced = |out: &[Output]| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        body: Body::JobAnnounce(_),
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(announced(&out), 3);
    // Node c leaves; the job's next release would describe a and b only.
    f.input(Input::Closed {
        conn: 3,
        reason: "gone".into(),
    });
    let JobSpec::Features(mut q) = totals();
    (q.job, q.budget) = (Some(id), tenth);
    let out = f.say(9, 0, Body::SubmitJob(sub(JobSpec::Features(q))));
    assert_eq!(announced(&out), 0, "{out:?}");
    // It waits for c (restarts issue, item 3), and is refused once the wait is over.
    assert!(f.core.next_deadline().is_some());
    f.now += DEFAULT_REJOIN_TIMEOUT + Duration::from_secs(1);
    let out = f.input(Input::Tick);
    assert_eq!(announced(&out), 0, "{out:?}");
    assert!(
        out.iter().any(|o| matches!(o, Output::Send { conn: 9, body: Body::Outcome(JobOutcome::Aborted { reason, .. }), .. } if reason.contains("c") && reason.contains("same nodes") && reason.contains("did not reconnect"))),
        "{out:?}"
    );
}

fn announcements(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    body: Body::JobAnnounce(_),
                    ..
                }
            )
        })
        .count()
}

/// A request sent again gets what the first got: it joins its running round (no second
/// announcement), a different job under the same id is refused, and an aborted round keeps
/// its charge (nodes debit as soon as they accept, so every announced round may be paid for);
/// sent again, the request runs as a new release.
#[test]
fn requests_are_idempotent_and_aborted_rounds_keep_their_charge() {
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    f.connect(9, Role::Analyst, "x");
    let first = sub(totals());
    let out = f.say(9, 0, Body::SubmitJob(first.clone()));
    assert_eq!(announcements(&out), 2);
    // The analyst reconnects and sends the same request: it joins the running round.
    f.connect(8, Role::Analyst, "x");
    let out = f.say(8, 0, Body::SubmitJob(first.clone()));
    assert!(out.is_empty(), "{out:?}");
    // The same id for another job is refused.
    let JobSpec::Features(mut other) = totals();
    other.label = "other".into();
    let out = f.say(
        8,
        0,
        Body::SubmitJob(Submission {
            request: first.request,
            spec: JobSpec::Features(other),
        }),
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Send { conn: 8, body: Body::Outcome(JobOutcome::Aborted { reason, .. }), .. } if reason.contains("another job"))),
        "{out:?}"
    );
    // Nobody answers: the round aborts in its first phase; the charge stays.
    f.now += Duration::from_secs(6);
    let out = f.input(Input::Tick);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Journal(Record::Aborted { job: JobId(1) }))),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                conn: 8,
                body: Body::Outcome(JobOutcome::Aborted { .. }),
                ..
            }
        )),
        "the outcome goes to the connection that asked last: {out:?}"
    );
    // Sent again, the interrupted request runs as a new release.
    let out = f.say(8, 0, Body::SubmitJob(first));
    assert_eq!(announcements(&out), 2, "{out:?}");
}

/// Restarts issue, item 3: a later release of a profiling job waits for a lost node of the
/// job and runs over the whole population once it is back; nothing is announced meanwhile.
#[test]
fn a_later_release_waits_for_its_lost_node_and_runs_when_it_returns() {
    let mut f = Fed::new(2);
    for (conn, name) in [(1, "a"), (2, "b"), (3, "c")] {
        f.register(conn, name);
    }
    f.connect(9, Role::Analyst, "x");
    let tenth = fedprof_protocol::Fraction {
        numer: 1,
        denom: 10,
    };
    let JobSpec::Features(mut q) = totals();
    (q.budget, q.reserve) = (tenth, tenth);
    let out = f.say(9, 0, Body::SubmitJob(sub(JobSpec::Features(q))));
    let Some(id) = out.iter().find_map(|o| match o {
        Output::Send {
            body: Body::JobAnnounce(a),
            ..
        } => Some(a.profile.id),
        _ => None,
    }) else {
        panic!("announced: {out:?}")
    };
    f.input(Input::Closed {
        conn: 3,
        reason: "killed".into(),
    });
    let JobSpec::Features(mut q) = totals();
    (q.job, q.budget) = (Some(id), tenth);
    let out = f.say(9, 0, Body::SubmitJob(sub(JobSpec::Features(q))));
    assert_eq!(announcements(&out), 0, "{out:?}");
    // (Within the first round's phase timeout: an unfinished first release that aborts
    // before anyone paid takes its job with it.)
    f.now += Duration::from_secs(1);
    assert_eq!(announcements(&f.input(Input::Tick)), 0);
    // c comes back (a new connection) within the wait: the release goes to all three.
    let out = f.register(4, "c");
    assert_eq!(f.core.nodes().len(), 3);
    let started = announcements(&out);
    assert_eq!(started, 3, "{out:?}");
}

/// A restarted coordinator numbers jobs after the journal's last, keeps the charges of
/// releases nodes may have paid for, and answers a published request from its store.
#[test]
fn a_resumed_core_continues_numbering_and_resends_published_requests() {
    use crate::journal::{Recovery, RequestState};
    let mut f = Fed::new(2);
    let mut recovery = Recovery {
        last_job: 41,
        ..Recovery::default()
    };
    let published = sub(totals());
    recovery.requests.insert(
        (PartyName::new("x").unwrap(), published.request),
        KnownRequest {
            state: RequestState::Published(JobId(40)),
            spec: SpecDigest::of(&published.spec).unwrap(),
        },
    );
    f.core.resume(recovery);
    f.register(1, "a");
    f.register(2, "b");
    f.connect(9, Role::Analyst, "x");
    let out = f.say(9, 0, Body::SubmitJob(published));
    assert_eq!(
        out,
        vec![Output::Resend {
            job: JobId(40),
            requester: Requester::Analyst(9),
            analyst: Some(9)
        }]
    );
    let out = f.say(9, 0, Body::SubmitJob(sub(totals())));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Journal(Record::Announced(a)) if a.job == JobId(42))),
        "{out:?}"
    );
}

/// Review finding L9, in the core: each announcement tells its node the latest receipt of its
/// that the release ledger holds (seeded from the ledger at start), and only its own.
#[test]
fn announcements_carry_each_nodes_last_recorded_receipt() {
    let mut f = Fed::new(2);
    let head = ReceiptHead {
        seq: 4,
        digest: [9; 32],
    };
    f.core
        .set_last_receipts(BTreeMap::from([(PartyName::new("a").unwrap(), head)]));
    f.register(1, "a");
    f.register(2, "b");
    let out = f.input(Input::SubmitJob {
        submission: sub(totals()),
        requester: Requester::Local(1),
    });
    let announced: BTreeMap<ConnId, Option<ReceiptHead>> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn,
                body: Body::JobAnnounce(a),
                ..
            } => Some((*conn, a.last_receipt.as_deref().cloned())),
            _ => None,
        })
        .collect();
    assert_eq!(
        announced,
        BTreeMap::from([(1, Some(head)), (2, None)]),
        "{out:?}"
    );
}

mod hostile;
