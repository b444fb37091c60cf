//! The seeded fault suite: many federations, each with every kind of fault drawn from its
//! seed, and zero invariant violations allowed. A few hundred schedules by default
//! (`SIM_SCHEDULES` overrides), 10,000 with `cargo test -p fedprof-sim -- --ignored`.
//! A failing seed replays alone: `SIM_SEED=<seed> cargo test -p fedprof-sim --test faults
//! replay -- --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use fedprof_sim::{Federation, Report, SimConfig};

fn run(seed: u64) -> Report {
    let mut fed = Federation::new(SimConfig::faulty(seed)).expect("federation");
    fed.drive()
}

#[derive(Default, Debug)]
struct Totals {
    runs: usize,
    finished: usize,
    jobs_completed: usize,
    jobs_aborted: usize,
    resumed: u32,
    retried: u32,
    recorded: usize,
    recorded_unpublished: usize,
    rerun_requests: usize,
    refunded_but_paid: usize,
    node_crashes: u64,
    coordinator_crashes: u64,
    disconnects: u64,
    dropped: u64,
    duplicated: u64,
    steps: u64,
}

fn suite(first: u64, count: u64) {
    let mut t = Totals::default();
    let mut failures = Vec::new();
    for seed in first..first + count {
        let r = run(seed);
        t.runs += 1;
        t.finished += usize::from(r.finished);
        t.jobs_completed += r.completed;
        t.jobs_aborted += r.aborted.len();
        t.resumed += r.resumed;
        t.retried += r.retried;
        t.recorded += r.recorded;
        t.recorded_unpublished += r.recorded_unpublished;
        t.rerun_requests += r.rerun_requests;
        t.refunded_but_paid += r.refunded_but_paid;
        t.node_crashes += r.stats.node_crashes;
        t.coordinator_crashes += r.stats.coordinator_crashes;
        t.disconnects += r.stats.disconnects;
        t.dropped += r.stats.dropped;
        t.duplicated += r.stats.duplicated;
        t.steps += r.stats.steps;
        if !r.violations.is_empty() {
            failures.push((seed, r.violations[0].clone()));
        }
    }
    eprintln!("{t:#?}");
    assert!(
        failures.is_empty(),
        "{} failing seed(s): {failures:#?}",
        failures.len()
    );
    // The suite must exercise what it claims to.
    assert!(
        t.node_crashes > 0 && t.coordinator_crashes > 0 && t.duplicated > 0,
        "{t:#?}"
    );
    assert!(t.jobs_completed > 0, "{t:#?}");
}

#[test]
fn a_few_hundred_seeded_fault_schedules_break_no_invariant() {
    let count = std::env::var("SIM_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    suite(0, count);
}

#[test]
#[ignore = "10,000 schedules: run with --ignored (CI runs it)"]
fn ten_thousand_seeded_fault_schedules_break_no_invariant() {
    suite(1_000_000, 10_000);
}

#[test]
fn replay() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let r = run(seed);
    eprintln!("{r:#?}");
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    // The same seed is the same run.
    let again = run(seed);
    assert_eq!(again.stats, r.stats);
    assert_eq!(again.recorded, r.recorded);
}
