//! Hand-written scenarios: the happy path, crashes of each party at chosen points, and a
//! network that duplicates and reorders.

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
