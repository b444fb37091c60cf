//! One federation of 1,000 nodes (a sparse SecAgg+ graph), no faults but a node killed in
//! the middle of the first round.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use std::time::{Duration, Instant};

use fedprof_sim::{Federation, SimConfig};

#[test]
fn a_thousand_nodes_one_release_with_a_node_killed_mid_round() {
    let mut config = SimConfig::small(1000);
    config.nodes = 1000;
    config.customers = 5;
    config.jobs = (1, 1);
    config.phase_timeout = Duration::from_secs(30);
    config.time_limit = Duration::from_secs(3600);
    let started = Instant::now();
    let mut fed = Federation::new(config).unwrap();
    let found = fed
        .step_until(|f| f.last_event().ends_with("job-1 masked-input"))
        .unwrap();
    assert!(found);
    fed.kill_node(17);
    let report = fed.drive();
    eprintln!(
        "1,000 nodes: {:?} wall, {} steps, {report:#?}",
        started.elapsed(),
        report.stats.steps
    );
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.completed, 1, "{report:#?}");
    let (_, result) = &fed.analyst.jobs[0].results[0];
    assert!(
        result.contributors.len() >= 990,
        "{}",
        result.contributors.len()
    );
}
