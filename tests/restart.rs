//! A coordinator restarted on its own ledger (the demo's suggested next step): it reopens the
//! ledger, re-verifying every receipt with the node keys of the federation's certificates, and
//! the next job on the same federation is released and audits clean. Before, the restart
//! failed at once ("no verified certificate for writer node/branch-1"), and with the ledger
//! moved aside the first release aborted: release ids repeated and nodes held cached vectors
//! for them (the random nonce of every round now keeps ids unique).

#![allow(clippy::unwrap_used, clippy::panic, reason = "test")]

use fedprof::demo::prepare;
use fedprof::local::{LocalFederation, collect_ledgers};
use fedprof::progress::Progress;
use fedprof_protocol::query::{FeatureQuery, QueryPart, Segmenter};
use fedprof_protocol::{Fraction, JobOutcome, JobSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_reopens_its_ledger_and_runs_the_next_job() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let p = prepare(dir.path(), 2, 300, 5, &progress).unwrap();
    let as_of = fedprof::profile_job::load_spec(&p.job_path).unwrap().as_of;
    let spec = || {
        JobSpec::Features(Box::new(FeatureQuery {
            label: "restart/count".into(),
            as_of: as_of.clone(),
            scale: 1000,
            segmenter: Segmenter::All,
            parts: vec![QueryPart::Count],
            budget: Fraction {
                numer: 1,
                denom: 10,
            },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        }))
    };
    for run in 0..3 {
        if run == 2 {
            // Even with its job journal gone, job numbers go on after the ledger's.
            std::fs::remove_dir_all(p.fed_dir.join("ledgers/coordinator.journal")).unwrap();
        }
        let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
            .await
            .unwrap_or_else(|e| panic!("start {run}: {e:#}"));
        let outcome = fed.run_job(spec()).await.unwrap();
        assert!(
            matches!(outcome, JobOutcome::Completed { .. }),
            "run {run}: {outcome:?}"
        );
        fed.stop().await;
    }
    collect_ledgers(&p.fed_dir, &p.node_paths).unwrap();
    let report = fedprof::audit::verify_dir(&p.fed_dir, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(report.nodes.len(), 2);
    assert!(
        report
            .nodes
            .iter()
            .all(|n| n.current().unwrap().debits == 3)
    );
    let ledger = std::fs::read_to_string(p.fed_dir.join("ledgers/coordinator.jsonl")).unwrap();
    let jobs: Vec<u64> = ledger
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["body"]["release"]["job"].as_u64()
        })
        .collect();
    assert_eq!(jobs, [1, 2, 3], "job numbers never repeat across restarts");
}

/// One process per state (restarts issue, item 4): while a federation runs, a second
/// coordinator on the same ledger, or a `fedprof local` on the same node state, is refused
/// and names the holder's pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let p = prepare(dir.path(), 2, 200, 6, &progress).unwrap();
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let second = LocalFederation::start(&p.coordinator, &p.node_paths, &progress).await;
    let e = format!("{:#}", second.expect_err("a second coordinator started"));
    assert!(
        e.contains("in use by another process") && e.contains(&std::process::id().to_string()),
        "{e}"
    );
    let node = fedprof_node::NodeConfig::load(&p.node_paths[0]).unwrap();
    let e = fedprof_node::NodeService::new(node)
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use by another process"), "{e}");
    fed.stop().await;
}

/// The layout of a report: nodes, the job's rho, which distributions and segmentations it
/// has and how many bins and segments each (the noisy values differ from run to run).
fn layout(r: &fedprof_profile::report::ProfileReport) -> Vec<String> {
    let mut l = vec![
        format!("nodes {:?}", r.nodes),
        format!("rho {}", r.privacy.rho),
    ];
    l.extend(
        r.distributions
            .iter()
            .map(|d| format!("distribution {} {}", d.feature, d.bins.len())),
    );
    l.extend(
        r.segmentations
            .iter()
            .map(|s| format!("segmentation {} {}", s.name, s.segments.len())),
    );
    l
}

/// Debits per node in `fed_dir`'s ledgers (after collecting them).
fn debits(p: &fedprof::demo::Prepared) -> Vec<u64> {
    collect_ledgers(&p.fed_dir, &p.node_paths).unwrap();
    let report = fedprof::audit::verify_dir(&p.fed_dir, time::OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("the ledgers verify: {e}"));
    report
        .nodes
        .iter()
        .map(|n| n.current().unwrap().debits)
        .collect()
}

/// Restarts issue, item 1: the coordinator and the driver of a profiling job stop after a
/// release was published but before the driver saw its result (the worst moment: the
/// release is paid and recorded, its result never arrived). Started again on the same
/// state and output directory, the job resumes: the published releases come back from the
/// coordinator's journal instead of running again, every node pays each release exactly
/// once, and the report has the layout and budget of an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiling_job_interrupted_after_a_publication_resumes_without_paying_twice() {
    let progress = Progress::quiet();
    // An uninterrupted run, for reference.
    let ref_dir = tempfile::tempdir().unwrap();
    let r = prepare(ref_dir.path(), 3, 300, 7, &progress).unwrap();
    let spec = fedprof::profile_job::load_spec(&r.job_path).unwrap();
    let fed = LocalFederation::start(&r.coordinator, &r.node_paths, &progress)
        .await
        .unwrap();
    let out = ref_dir.path().join("out");
    let (reference, _) = fedprof::local::profile(&fed, spec, None, &out, &progress)
        .await
        .unwrap();
    fed.stop().await;
    let releases = debits(&r);

    let dir = tempfile::tempdir().unwrap();
    let p = prepare(dir.path(), 3, 300, 7, &progress).unwrap();
    let out = dir.path().join("out");
    let spec = fedprof::profile_job::load_spec(&p.job_path).unwrap();
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let policy = fed.policy();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let interrupted = fedprof::profile_job::run(
        |s| {
            let (fed, calls) = (&fed, &calls);
            async move {
                let outcome = fed.submit(s).await?;
                // The third release is published; the driver dies before it sees it.
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
                    anyhow::bail!("simulated crash after a publication");
                }
                Ok(outcome)
            }
        },
        spec.clone(),
        &policy,
        None,
        &out,
        &progress,
    )
    .await;
    assert!(interrupted.is_err());
    assert!(out.join("run.json").is_file(), "the unfinished run is kept");
    fed.stop().await;
    assert_eq!(debits(&p), vec![3, 3, 3], "three releases were paid");

    // The coordinator restarts on its ledger and journal; the job runs again into `out`.
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let (resumed, model) = fedprof::local::profile(&fed, spec, None, &out, &progress)
        .await
        .unwrap();
    fed.stop().await;
    fedprof::profile_job::write_outputs(&out, &resumed, &model).unwrap();
    assert!(
        !out.join("run.json").exists(),
        "written outputs end the run"
    );
    assert_eq!(layout(&resumed), layout(&reference));
    assert_eq!(
        debits(&p),
        releases,
        "each release paid once, as without the crash"
    );
}
