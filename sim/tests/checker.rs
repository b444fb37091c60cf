//! The invariants fire: each check is fed a broken history built from a real run's release.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use fedprof_protocol::{JobId, JobOutcome, RequestId};
use fedprof_sim::invariants::Checker;
use fedprof_sim::{Federation, SimConfig};

fn released() -> (fedprof_protocol::JobResult, Vec<u64>) {
    let mut fed = Federation::new(SimConfig::small(3)).unwrap();
    let report = fed.drive();
    assert!(report.violations.is_empty() && report.completed == 2);
    let (_, r) = fed.analyst.jobs[0].results[0].clone();
    let n = r.values.len();
    (r, vec![0; n])
}

fn outcome(result: &fedprof_protocol::JobResult) -> JobOutcome {
    JobOutcome::Completed {
        result: result.clone(),
        failures: Vec::new(),
    }
}

#[test]
fn a_release_without_every_contributors_debit_or_with_another_sum_is_caught() {
    let (result, zeros) = released();
    let mut c = Checker::default();
    c.on_recorded(JobId(1), [1; 32], &outcome(&result), 3, |_, _| None);
    assert!(
        c.violations()
            .iter()
            .any(|v| v.what.contains("never debited")),
        "{:?}",
        c.violations()
    );

    let mut c = Checker::default();
    c.on_recorded(JobId(1), [1; 32], &outcome(&result), 3, |_, _| Some(&zeros));
    assert!(
        c.violations()
            .iter()
            .any(|v| v.what.contains("not the sum")),
        "{:?}",
        c.violations()
    );
}

#[test]
fn too_few_contributors_mixed_node_sets_and_a_second_answer_to_one_request_are_caught() {
    let (result, _) = released();
    let mut c = Checker::default();
    c.on_taken(RequestId([1; 16]), JobId(1), &result);
    assert!(c.violations().is_empty());
    let mut fewer = result.clone();
    fewer.contributors.pop();
    c.on_taken(RequestId([2; 16]), JobId(2), &fewer);
    assert!(
        c.violations()
            .iter()
            .any(|v| v.what.contains("mixes node sets")),
        "{:?}",
        c.violations()
    );
    c.on_taken(RequestId([1; 16]), JobId(3), &result);
    assert!(
        c.violations()
            .iter()
            .any(|v| v.what.contains("not idempotent")),
        "{:?}",
        c.violations()
    );

    let mut c = Checker::default();
    let mut two = result.clone();
    two.contributors.truncate(2);
    let zeros = vec![0u64; result.values.len()];
    c.on_recorded(JobId(1), [1; 32], &outcome(&two), 3, |_, _| Some(&zeros));
    assert!(
        c.violations()
            .iter()
            .any(|v| v.what.contains("fewer than n_min")),
        "{:?}",
        c.violations()
    );
}
