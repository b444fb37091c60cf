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
    for run in 0..2 {
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
            .all(|n| n.current().unwrap().debits == 2)
    );
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
