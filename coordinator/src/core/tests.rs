use std::time::Duration;

use fedprof_protocol::{Contribution, Header, Register};

use super::*;

fn party(role: Role, name: &str) -> PartyId {
    PartyId { role, name: PartyName::new(name).unwrap() }
}

fn env(job: u64, body: Body) -> Envelope {
    // Sequence numbers are checked by the transport, not the core.
    Envelope { header: Header { job: JobId(job), round: RoundId(0), seq: 0 }, body }
}

struct Fed {
    core: Coordinator,
    now: Instant,
}

impl Fed {
    fn new(min_nodes: usize) -> Self {
        let policy = RoundPolicy { min_nodes, timeout: Duration::from_secs(5) };
        Fed { core: Coordinator::new(policy), now: Instant::now() }
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(input, self.now)
    }

    fn connect(&mut self, conn: ConnId, role: Role, name: &str) {
        assert!(self.input(Input::Connected { conn, party: party(role, name) }).is_empty());
    }

    fn say(&mut self, conn: ConnId, job: u64, body: Body) -> Vec<Output> {
        self.input(Input::Message { conn, envelope: env(job, body) })
    }

    fn register(&mut self, conn: ConnId, name: &str) {
        self.connect(conn, Role::Node, name);
        let out = self.say(conn, 0, Body::Register(Register { software: "test".into() }));
        assert!(
            matches!(&out[0], Output::Send { conn: c, body: Body::Registered(r), .. } if *c == conn && r.party.name.as_str() == name),
            "{out:?}"
        );
    }
}

fn closes_with(out: &[Output], conn: ConnId, code: ErrorCode) -> bool {
    out.iter().any(|o| matches!(o, Output::Close { conn: c, code: k, .. } if *c == conn && *k == code))
}

#[test]
fn an_analyst_certificate_cannot_register_as_a_node() {
    let mut f = Fed::new(1);
    f.connect(1, Role::Analyst, "x");
    let out = f.say(1, 0, Body::Register(Register { software: "evil".into() }));
    assert!(closes_with(&out, 1, ErrorCode::RoleNotPermitted), "{out:?}");
    assert!(f.core.nodes().is_empty());
}

#[test]
fn auditors_and_coordinators_cannot_submit_jobs_and_nodes_must_register_first() {
    let mut f = Fed::new(1);
    f.connect(1, Role::Auditor, "y");
    let out = f.say(1, 0, Body::SubmitJob(JobSpec::TransactionTotals));
    assert!(closes_with(&out, 1, ErrorCode::RoleNotPermitted), "{out:?}");
    f.connect(2, Role::Node, "a");
    let out = f.say(2, 1, Body::Accept);
    assert!(closes_with(&out, 2, ErrorCode::UnexpectedMessage), "{out:?}");
    f.register(3, "b");
    let out = f.say(3, 0, Body::Register(Register { software: "again".into() }));
    assert!(closes_with(&out, 3, ErrorCode::UnexpectedMessage), "registering twice: {out:?}");
    assert!(f.core.nodes().is_empty());
}

#[test]
fn analyst_job_runs_over_registered_nodes_and_the_outcome_returns() {
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    f.connect(9, Role::Analyst, "x");
    let out = f.say(9, 0, Body::SubmitJob(JobSpec::TransactionTotals));
    let announced: Vec<ConnId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { conn, job: JobId(1), body: Body::JobAnnounce(_), .. } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![1, 2]);
    for (conn, values) in [(1, vec![2, 20, 200]), (2, vec![3, 30, 300])] {
        assert!(f.say(conn, 1, Body::Accept).is_empty());
        f.say(conn, 1, Body::Submit(Contribution { values }));
    }
    // The last submission settled the round: results to nodes, outcome to the analyst.
    let out = f.input(Input::Tick);
    assert!(out.is_empty(), "nothing left to do: {out:?}");
}

#[test]
fn outcome_reaches_the_analyst_with_exact_totals() {
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    f.connect(9, Role::Analyst, "x");
    f.say(9, 0, Body::SubmitJob(JobSpec::TransactionTotals));
    f.say(1, 1, Body::Accept);
    f.say(1, 1, Body::Submit(Contribution { values: vec![2, 20, 200] }));
    f.say(2, 1, Body::Accept);
    let out = f.say(2, 1, Body::Submit(Contribution { values: vec![3, 30, 300] }));
    let results = out.iter().filter(|o| matches!(o, Output::Send { body: Body::Result(_), .. })).count();
    assert_eq!(results, 2);
    let outcome = out
        .iter()
        .find_map(|o| match o {
            Output::Send { conn: 9, body: Body::Outcome(o), .. } => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    let JobOutcome::Completed { result, failures } = outcome else { panic!("{outcome:?}") };
    assert_eq!(result.values, vec![5, 50, 500]);
    assert!(failures.is_empty());
}

#[test]
fn a_node_lost_mid_job_is_reported_and_the_coordinator_keeps_going() {
    let mut f = Fed::new(2);
    for (conn, name) in [(1, "a"), (2, "b"), (3, "c")] {
        f.register(conn, name);
    }
    f.input(Input::SubmitJob { spec: JobSpec::TransactionTotals, requester: Requester::Local(1) });
    f.say(1, 1, Body::Accept);
    f.say(2, 1, Body::Accept);
    let out = f.input(Input::Closed { conn: 2, reason: "connection lost: reset".into() });
    assert!(out.contains(&Output::NodesChanged(vec![PartyName::new("a").unwrap(), PartyName::new("c").unwrap()])));
    f.say(1, 1, Body::Submit(Contribution { values: vec![1, 1, 1] }));
    f.say(3, 1, Body::Accept);
    let out = f.say(3, 1, Body::Submit(Contribution { values: vec![1, 1, 1] }));
    let Some(Output::JobFinished { outcome: JobOutcome::Completed { result, failures }, .. }) =
        out.iter().find(|o| matches!(o, Output::JobFinished { .. }))
    else {
        panic!("{out:?}")
    };
    assert_eq!(result.values, vec![2, 2, 2]);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].node.as_str(), "b");
    assert!(failures[0].reason.contains("reset"));
    // The next job runs over the remaining nodes.
    let out = f.input(Input::SubmitJob { spec: JobSpec::TransactionTotals, requester: Requester::Local(2) });
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn a_reconnecting_node_replaces_its_old_connection() {
    let mut f = Fed::new(1);
    f.register(1, "a");
    f.connect(2, Role::Node, "a");
    let out = f.say(2, 0, Body::Register(Register { software: "t".into() }));
    assert!(closes_with(&out, 1, ErrorCode::Replaced), "{out:?}");
    assert_eq!(f.core.nodes(), vec![PartyName::new("a").unwrap()]);
    // The old connection's close does not unregister the new one.
    f.input(Input::Closed { conn: 1, reason: "replaced".into() });
    assert_eq!(f.core.nodes().len(), 1);
}

#[test]
fn messages_about_unknown_jobs_are_refused_and_late_ones_ignored() {
    let mut f = Fed::new(1);
    f.register(1, "a");
    f.register(2, "b");
    f.input(Input::SubmitJob { spec: JobSpec::TransactionTotals, requester: Requester::Local(1) });
    f.say(1, 1, Body::Accept);
    f.say(1, 1, Body::Submit(Contribution { values: vec![1, 1, 1] }));
    f.now += Duration::from_secs(6);
    let out = f.input(Input::Tick);
    assert!(out.iter().any(|o| matches!(o, Output::JobFinished { .. })), "{out:?}");
    assert!(f.say(2, 1, Body::Accept).is_empty(), "late answer to a settled job is ignored");
    let out = f.say(2, 42, Body::Accept);
    assert!(closes_with(&out, 2, ErrorCode::UnknownJob), "{out:?}");
}
