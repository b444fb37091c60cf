use super::*;
use fedprof_protocol::RefuseReason;

fn name(s: &str) -> PartyName {
    PartyName::new(s).unwrap()
}

fn policy(min_nodes: usize) -> RoundPolicy {
    RoundPolicy { min_nodes, timeout: Duration::from_secs(10) }
}

fn start(nodes: &[&str], min: usize, now: Instant) -> Round {
    let (round, effects) =
        Round::start(JobId(7), JobSpec::TransactionTotals, nodes.iter().map(|n| name(n)), policy(min), now);
    if nodes.len() >= min {
        assert_eq!(effects.len(), nodes.len(), "one announcement per node");
        assert!(effects.iter().all(|e| matches!(e, RoundEffect::Send { body: Body::JobAnnounce(_), .. })));
    }
    round
}

fn submit(round: &mut Round, node: &str, values: Vec<u64>) -> Vec<RoundEffect> {
    assert!(round.on_message(&name(node), Body::Accept).unwrap().is_empty());
    round.on_message(&name(node), Body::Submit(Contribution { values })).unwrap()
}

#[test]
fn sums_every_contribution_exactly_in_the_ring() {
    let mut r = start(&["a", "b", "c"], 2, Instant::now());
    submit(&mut r, "a", vec![3, 10, 500]);
    // A negative amount is its two's complement in Z_2^64.
    submit(&mut r, "b", vec![1, 1, (-200i64) as u64]);
    let effects = submit(&mut r, "c", vec![u64::MAX, 4, 1]);
    assert_eq!(effects.len(), 3, "every contributor gets the result");
    let Some(JobOutcome::Completed { result, failures }) = r.outcome() else {
        panic!("not completed: {:?}", r.outcome());
    };
    assert_eq!(result.values, vec![3, 15, 301]);
    assert_eq!(result.contributors, vec![name("a"), name("b"), name("c")]);
    assert!(failures.is_empty());
    assert_eq!(r.deadline(), None);
}

#[test]
fn a_refusal_and_a_lost_node_are_reported_and_the_rest_released() {
    let mut r = start(&["a", "b", "c", "d"], 2, Instant::now());
    submit(&mut r, "a", vec![1, 2, 3]);
    let refusal = Refusal { reason: RefuseReason::DataUnavailable, detail: "row 3".into() };
    r.on_message(&name("b"), Body::Refuse(refusal)).unwrap();
    r.on_message(&name("c"), Body::Accept).unwrap();
    assert!(r.on_disconnect(&name("c"), "killed").is_empty());
    assert!(r.outcome().is_none(), "d is still due");
    submit(&mut r, "d", vec![1, 1, 1]);
    let Some(JobOutcome::Completed { result, failures }) = r.outcome() else {
        panic!("not completed: {:?}", r.outcome());
    };
    assert_eq!(result.values, vec![2, 3, 4]);
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].node, name("b"));
    assert!(failures[0].reason.contains("DataUnavailable") && failures[0].reason.contains("row 3"));
    assert_eq!(failures[1].node, name("c"));
    assert!(failures[1].reason.contains("connection lost: killed"), "{}", failures[1].reason);
}

#[test]
fn below_minimum_contributors_nothing_is_released() {
    let mut r = start(&["a", "b", "c"], 3, Instant::now());
    let effects = submit(&mut r, "a", vec![1, 2, 3]);
    assert!(effects.is_empty());
    r.on_disconnect(&name("b"), "gone");
    let effects = submit(&mut r, "c", vec![1, 2, 3]);
    assert!(effects.is_empty(), "no result is sent when aborting: {effects:?}");
    assert!(matches!(r.outcome(), Some(JobOutcome::Aborted { failures, .. }) if failures.len() == 1));
}

#[test]
fn too_few_nodes_aborts_at_once() {
    let (r, effects) =
        Round::start(JobId(1), JobSpec::TransactionTotals, [name("a")], policy(2), Instant::now());
    assert!(effects.is_empty(), "nobody computes for a round that cannot release");
    assert!(matches!(r.outcome(), Some(JobOutcome::Aborted { reason, .. }) if reason.contains("at least 2")));
}

#[test]
fn deadline_fails_silent_nodes() {
    let t0 = Instant::now();
    let mut r = start(&["a", "b", "c"], 2, t0);
    submit(&mut r, "a", vec![1, 1, 1]);
    submit(&mut r, "b", vec![1, 1, 1]);
    assert!(r.on_tick(t0 + Duration::from_secs(9)).is_empty());
    assert!(r.outcome().is_none());
    assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(10)));
    let effects = r.on_tick(t0 + Duration::from_secs(10));
    assert_eq!(effects.len(), 2);
    let Some(JobOutcome::Completed { failures, .. }) = r.outcome() else { panic!() };
    assert_eq!(failures[0].node, name("c"));
    assert!(failures[0].reason.contains("no contribution within 10.0 s"));
}

#[test]
fn malformed_and_out_of_order_messages_are_rejected() {
    let mut r = start(&["a", "b", "c"], 1, Instant::now());
    // Wrong vector length.
    let effects = submit(&mut r, "a", vec![1, 2]);
    assert!(matches!(&effects[..], [RoundEffect::Reject { code: ErrorCode::BadContribution, .. }]));
    // Submit without accepting first.
    let effects =
        r.on_message(&name("b"), Body::Submit(Contribution { values: vec![1, 2, 3] })).unwrap();
    assert!(matches!(&effects[..], [RoundEffect::Reject { code: ErrorCode::UnexpectedMessage, .. }]));
    // A stranger.
    assert_eq!(r.on_message(&name("z"), Body::Accept), Err(RoundError::NotAMember(name("z"))));
    submit(&mut r, "c", vec![5, 5, 5]);
    let Some(JobOutcome::Completed { result, failures }) = r.outcome() else { panic!() };
    assert_eq!(result.values, vec![5, 5, 5], "rejected vectors are not in the sum");
    assert_eq!(failures.len(), 2);
    // Late messages after settling change nothing.
    assert!(r.on_message(&name("c"), Body::Accept).unwrap().is_empty());
}
