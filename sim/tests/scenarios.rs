//! Hand-written scenarios: the happy path, crashes of each party at chosen points, and a
//! network that duplicates and reorders.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use fedprof_sim::{Federation, SimConfig};

#[test]
fn happy_path_every_job_completes_over_the_same_nodes() {
    let mut fed = Federation::new(SimConfig::small(1)).unwrap();
    let report = fed.drive();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.finished, "{report:#?}");
    assert_eq!(report.completed, 2, "{report:#?}");
    assert_eq!(report.recorded, 6);
    for job in &fed.analyst.jobs {
        for (_, r) in &job.results {
            assert_eq!(r.contributors.len(), 5);
        }
    }
}

/// The phases a round goes through, by the message that marks each at the coordinator.
const PHASES: [&str; 6] = [
    "accept",
    "advertise-keys",
    "share-keys",
    "receipt",
    "masked-input",
    "unmask-response",
];

fn at_phase(fed: &mut Federation, phase: &str, release: u64) {
    let wanted = format!("job-{release} {phase}");
    let found = fed
        .step_until(|f| {
            f.last_event().starts_with("to coordinator") && f.last_event().ends_with(&wanted)
        })
        .unwrap();
    assert!(found, "never reached {wanted}");
}

#[test]
fn coordinator_killed_in_each_phase_restarts_and_every_job_completes() {
    for (i, phase) in PHASES.iter().enumerate() {
        for release in [1, 2] {
            let mut fed = Federation::new(SimConfig::small(100 + i as u64)).unwrap();
            at_phase(&mut fed, phase, release);
            fed.kill_coordinator();
            let report = fed.drive();
            assert!(
                report.violations.is_empty(),
                "{phase}: {:#?}",
                report.violations
            );
            assert!(report.finished, "{phase}: {report:#?}");
            assert_eq!(report.stats.coordinator_crashes, 1);
            // Killed before the share bundles, a round is refunded at restart although the
            // nodes already paid (bug 2 in sim/README.md): a later release's retry is then
            // refused by the nodes' floors and its job ends aborted. From the bundles on,
            // every job completes.
            let paid_phase = i >= 3;
            if paid_phase || release == 1 {
                assert_eq!(
                    report.completed, 2,
                    "{phase} of release {release}: {report:#?}"
                );
            } else {
                assert!(
                    report.completed >= 1,
                    "{phase} of release {release}: {report:#?}"
                );
            }
            assert!(
                report.resumed >= 1,
                "{phase}: the analyst resent its request: {report:#?}"
            );
        }
    }
}

#[test]
fn node_killed_mid_round_restarts_and_the_job_keeps_one_population() {
    for phase in PHASES {
        let mut fed = Federation::new(SimConfig::small(7)).unwrap();
        // Release 2 is a later release of the first profiling job: it must wait for the node.
        at_phase(&mut fed, phase, 2);
        fed.kill_node(0);
        let report = fed.drive();
        assert!(
            report.violations.is_empty(),
            "{phase}: {:#?}",
            report.violations
        );
        assert!(report.finished, "{phase}: {report:#?}");
        assert_eq!(report.stats.node_crashes, 1);
        assert!(fed.nodes[0].is_up(), "{phase}: the node came back");
        for job in &fed.analyst.jobs {
            let sets: Vec<_> = job
                .results
                .iter()
                .map(|(_, r)| r.contributors.clone())
                .collect();
            assert!(sets.windows(2).all(|w| w[0] == w[1]), "{phase}: {sets:?}");
        }
        // The second profiling job, opened after the node came back, covers all five.
        let last = &fed.analyst.jobs[1];
        assert!(
            last.results.iter().all(|(_, r)| r.contributors.len() == 5),
            "{phase}: {report:#?}"
        );
    }
}

#[test]
fn a_network_that_duplicates_and_reorders_breaks_nothing() {
    let mut config = SimConfig::small(11);
    config.faults.duplicate = 0.2;
    config.faults.reorder = 0.2;
    config.faults.jitter = std::time::Duration::from_millis(40);
    let mut fed = Federation::new(config).unwrap();
    let report = fed.drive();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.finished, "{report:#?}");
    assert!(report.stats.duplicated > 10, "{report:#?}");
}

/// Bug 2 (found by the scenario above, seed 100): the coordinator killed during the key
/// phases of a later release refunds the round on restart ("no node could have paid"), but
/// every node debited it right after accepting (the node service starts computing and pays
/// at once, before any share bundle). The profiling job's retry is then refused by the nodes'
/// own per-job floors and the job ends aborted. Fixed: the coordinator keeps the charge of
/// every announced round (`Round::nodes_may_have_paid`).
#[test]
fn coordinator_killed_before_the_bundles_of_a_later_release_still_completes_the_job() {
    for phase in &PHASES[..3] {
        let mut fed = Federation::new(SimConfig::small(100)).unwrap();
        at_phase(&mut fed, phase, 2);
        fed.kill_coordinator();
        let report = fed.drive();
        assert!(
            report.violations.is_empty(),
            "{phase}: {:#?}",
            report.violations
        );
        assert_eq!(report.completed, 2, "{phase}: {report:#?}");
    }
}

/// The node service cancels what a session started when the session ends, so a computation
/// still running when the coordinator dies never pays (node/src/books.rs, the cancel flag
/// checked under the ledger lock). Here the coordinator dies just after the first accept,
/// nodes notice after the idle timeout (3 s) while still computing (10 s): no node may pay
/// for that round, only for the release the restarted coordinator runs again.
#[test]
fn a_computation_whose_session_ended_never_pays() {
    let mut config = SimConfig::small(21);
    config.jobs = (1, 1);
    config.compute_time = std::time::Duration::from_secs(10);
    config.phase_timeout = std::time::Duration::from_secs(30);
    let mut fed = Federation::new(config).unwrap();
    at_phase(&mut fed, "accept", 1);
    fed.kill_coordinator();
    let report = fed.drive();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.finished && report.completed == 1, "{report:#?}");
    assert!(
        fed.analyst.jobs[0].results.iter().all(|(job, _)| job.0 > 1),
        "{report:#?}"
    );
    assert_eq!(report.recorded, 1, "{report:#?}");
    for node in &fed.nodes {
        assert_eq!(node.paid_count(), 1, "{node:?} paid for the cut-off round");
    }
}
