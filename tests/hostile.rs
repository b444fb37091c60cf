//! The security review's attacks by hostile analysts, performed against a real coordinator and
//! real nodes over QUIC (`../shared/reviews/security.md`). Each asserts that the attack is
//! refused before any node pays and that the federation keeps serving honest requests.
//!
//! Tested elsewhere, closer to their code: H2 and the role refusal of M1
//! (`transport/tests/admission.rs`, real QUIC), M2 (`coordinator/src/round/tests.rs`,
//! `a_bad_receipt_drops_its_sender_not_the_release`), M6's limits
//! (`protocol/src/query.rs`, `labels_dimensions_and_levels_are_bounded`).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers of tests: a failure is a panic"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedprof::analyst::{AnalystConfig, submit};
use fedprof::demo::{Prepared, prepare};
use fedprof::local::LocalFederation;
use fedprof::progress::Progress;
use fedprof_protocol::query::{FeatureQuery, QueryPart, Segmenter};
use fedprof_protocol::{Fraction, JobOutcome, JobSpec};

fn federation(dir: &Path) -> Prepared {
    prepare(dir, 2, 300, 5, &Progress::new()).unwrap()
}

fn state(p: &Prepared, i: usize) -> PathBuf {
    p.fed_dir
        .join("state")
        .join(format!("node-branch-{}", i + 1))
}

/// Bytes of every node's ledger: a refused attack must not have made any node write.
fn ledger_bytes(p: &Prepared) -> u64 {
    (0..p.node_paths.len())
        .map(|i| {
            fs::metadata(state(p, i).join("ledger.jsonl"))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

fn count_query(p: &Prepared, label: String) -> JobSpec {
    JobSpec::Features(Box::new(FeatureQuery {
        label,
        as_of: fedprof_profile::rundir::load_spec(&p.job_path)
            .unwrap()
            .as_of,
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
}

async fn analyst_submits(p: &Prepared, spec: JobSpec) -> anyhow::Result<JobOutcome> {
    let config = AnalystConfig::load(&p.fed_dir.join("analyst-analyst.toml")).unwrap();
    let submission = fedprof_protocol::Submission {
        request: fedprof::analyst::new_request().unwrap(),
        spec,
    };
    submit(&config, submission, Duration::from_secs(60)).await
}

/// H5: an analyst's label is copied into every node's debit and the coordinator's record. A
/// megabyte label once made every node write megabytes and then be disconnected for an
/// oversized receipt. Now a request that large does not even fit an analyst's frame (64 KiB,
/// M1), a label that fits the frame but not the label rules is refused before any node
/// computes, and in both cases no node writes a byte; honest requests keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_long_or_hostile_labels_never_reach_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path());
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &Progress::new())
        .await
        .unwrap();
    let before = ledger_bytes(&p);
    // A megabyte: the coordinator refuses the frame before decoding it.
    let e = analyst_submits(&p, count_query(&p, "x".repeat(1 << 20)))
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("FrameTooLarge") || e.contains("exceeds the limit"),
        "{e}"
    );
    // Fits the frame, breaks the label rules: refused by name before any node computes.
    for label in [
        "x".repeat(97),
        "job\nINFO forged log line".to_owned(),
        "two words".to_owned(),
    ] {
        let outcome = analyst_submits(&p, count_query(&p, label.clone()))
            .await
            .unwrap();
        match outcome {
            JobOutcome::Aborted { reason, .. } => {
                assert!(reason.contains("label: "), "{label:?}: {reason}");
            }
            JobOutcome::Completed { .. } => panic!("{label:?} was released"),
        }
    }
    assert_eq!(
        ledger_bytes(&p),
        before,
        "a refused request made a node write"
    );
    // The federation still serves an honest request.
    match analyst_submits(&p, count_query(&p, "honest/count".into()))
        .await
        .unwrap()
    {
        JobOutcome::Completed { .. } => {}
        JobOutcome::Aborted { reason, .. } => panic!("honest request aborted: {reason}"),
    }
    fed.stop().await;
}
