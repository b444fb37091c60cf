//! The privacy review's attacks, performed through the real interfaces: a job file through
//! `fedprof local`, raw feature queries sent by an analyst over QUIC, a coordinator configured
//! against its nodes, the ledgers and caches the processes write. One test per finding, named
//! after it (`../shared/reviews/privacy.md`); each asserts that the attack is refused before any
//! node pays, or that what is released and what is debited agree.
//!
//! Findings tested elsewhere, closer to their code: C2 (the secure-aggregation machines, in
//! `secagg/tests/negative.rs` and `coordinator/src/round/tests.rs`), C3 (`node/tests/
//! pipeline_mix.rs`), H4/H5 (`tests/audit.rs`, `ledger/tests/tamper.rs`), M5
//! (`ledger/src/mechanism.rs`), L2 (`secagg/tests/negative.rs`), the empirical bound of every
//! release kind (`node/tests/empirical_privacy.rs`).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers of tests: a failure is a panic"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fedprof::analyst::{AnalystConfig, submit};
use fedprof::demo::{Prepared, prepare};
use fedprof::local::LocalFederation;
use fedprof::progress::Progress;
use fedprof_ledger::Digest;
use fedprof_protocol::query::{FeatureQuery, MixFeature, QueryPart, Segmenter};
use fedprof_protocol::{Fraction, JobOutcome, JobSpec, ProfileId};

/// A bank-scenario federation of `nodes` branches with a few hundred customers.
fn federation(dir: &Path, nodes: usize) -> Prepared {
    prepare(dir, nodes, 300, 11, &Progress::new()).unwrap()
}

/// Replaces `from` by `to` in `path`, which must contain it.
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} in {}", path.display());
    fs::write(path, text.replace(from, to)).unwrap();
}

/// Node `i`'s state directory (ledger and vector cache).
fn state(p: &Prepared, i: usize) -> PathBuf {
    p.fed_dir
        .join("state")
        .join(format!("node-branch-{}", i + 1))
}

/// Debit lines in every node ledger of `p`.
fn debits(p: &Prepared) -> usize {
    (0..p.node_paths.len())
        .map(|i| {
            fs::read_to_string(state(p, i).join("ledger.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"type\":\"debit\""))
                .count()
        })
        .sum()
}

fn as_of(p: &Prepared) -> String {
    fedprof_profile::rundir::load_spec(&p.job_path)
        .unwrap()
        .as_of
}

/// A one-part query over everyone, opening a new profiling job unless `job` names one.
fn query(p: &Prepared, part: QueryPart, budget: (u64, u64), job: Option<ProfileId>) -> JobSpec {
    JobSpec::Features(Box::new(FeatureQuery {
        label: "attack/q".into(),
        as_of: as_of(p),
        scale: 1000,
        segmenter: Segmenter::All,
        parts: vec![part],
        budget: Fraction {
            numer: budget.0,
            denom: budget.1,
        },
        reserve: Fraction { numer: 0, denom: 1 },
        job,
    }))
}

/// The coordinator and every node of `p`, in this process, over QUIC.
async fn start(p: &Prepared) -> LocalFederation {
    LocalFederation::start(&p.coordinator, &p.node_paths, &Progress::new())
        .await
        .unwrap()
}

/// A one-count release of a new job, run as the coordinator's own (local) job.
async fn count_job(fed: &LocalFederation, p: &Prepared) -> JobOutcome {
    fed.run_job(query(p, QueryPart::Count, (1, 10), None))
        .await
        .unwrap()
}

async fn analyst_submits(p: &Prepared, spec: JobSpec) -> JobOutcome {
    let config = AnalystConfig::load(&p.fed_dir.join("analyst-analyst.toml")).unwrap();
    let submission = fedprof_protocol::Submission {
        request: fedprof::analyst::new_request().unwrap(),
        spec,
    };
    submit(&config, submission, Duration::from_secs(60))
        .await
        .unwrap()
}

fn aborted(outcome: &JobOutcome) -> &str {
    match outcome {
        JobOutcome::Aborted { reason, .. } => reason,
        JobOutcome::Completed { .. } => panic!("expected a refusal, got a release"),
    }
}

/// C1, through a job file: one channel listed eight times. Before the fix the job ran all its
/// releases, every node debited the nominal rho, and each customer's share was added eight
/// times. Now `fedprof local` refuses the file, naming the field, and no node debits anything.
#[test]
fn c1_a_job_file_with_repeated_channels_is_refused_before_any_node_debits() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 2);
    edit(
        &p.job_path,
        r#"channels = ["branch", "online", "mobile", "atm"]"#,
        &format!("channels = [{}]", [r#""online""#; 8].join(", ")),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fedprof"));
    cmd.arg("local");
    for n in &p.node_paths {
        cmd.arg("--node").arg(n);
    }
    let out = cmd
        .arg("--coordinator")
        .arg(&p.coordinator)
        .arg("--job")
        .arg(&p.job_path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job ran: {stderr}");
    assert!(
        stderr.contains("channels[1]") && stderr.contains("repeats channels[0]"),
        "{stderr}"
    );
    assert_eq!(debits(&p), 0, "a node paid for a refused job");
}

/// C1, through the wire: an analyst's raw query with a Mix part listing one level twice is
/// refused by the coordinator before any node is asked, naming the part and the level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_a_raw_query_with_repeated_mix_levels_is_refused_before_any_node_debits() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 2);
    let fed = start(&p).await;
    for levels in [
        vec!["online".to_owned(); 1000],
        vec!["online".into(), "atm".into(), "online".into()],
        vec!["Online".into()],
    ] {
        let part = QueryPart::Mix {
            feature: MixFeature::Channel,
            levels,
        };
        let outcome = analyst_submits(&p, query(&p, part, (1, 10), None)).await;
        let reason = aborted(&outcome);
        assert!(reason.contains("parts[0].levels["), "{reason}");
    }
    fed.stop().await;
    assert_eq!(debits(&p), 0);
}

/// H1: the debit receipt the coordinator (and the auditor) sees commits to the node's noisy
/// vector with a secret salt kept in the node's cache: the unsalted digest of the vector, which
/// an attacker could compute for every candidate value of a one-coordinate release, is not in
/// the ledger; the salted one is, and the cache holds the salt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_receipts_do_not_identify_the_noisy_vector() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 2);
    let fed = start(&p).await;
    let outcome = count_job(&fed, &p).await;
    assert!(
        matches!(outcome, JobOutcome::Completed { .. }),
        "{outcome:?}"
    );
    fed.stop().await;
    let coordinator = fs::read_to_string(p.fed_dir.join("ledgers/coordinator.jsonl")).unwrap();
    for i in 0..p.node_paths.len() {
        let caches: Vec<_> = fs::read_dir(state(&p, i).join("vectors"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let [cache] = caches.as_slice() else {
            panic!("one cached vector expected: {caches:?}")
        };
        let cached: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(cache).unwrap()).unwrap();
        let vector: Vec<u64> = serde_json::from_value(cached["vector"].clone()).unwrap();
        let salt: Digest = serde_json::from_value(cached["salt"].clone()).unwrap();
        assert_eq!(vector.len(), 1, "a one-coordinate release");
        let recorded = fedprof_ledger::vector_digest(&salt, &vector).to_string();
        assert!(
            coordinator.contains(&recorded),
            "the receipt commits to the vector"
        );
        // The unsalted digest (what the receipt held before): not anywhere in the ledger.
        let unsalted = fedprof_ledger::legacy_vector_digest(&vector).to_string();
        assert!(
            !coordinator.contains(&unsalted),
            "node {i}'s vector is identifiable"
        );
    }
}

/// H2: with `colluders = 0`, every node would learn the others' sum with its own share fewer
/// than the accounting counts. The coordinator refuses the configuration, naming the field.
#[test]
fn h2_a_coordinator_assuming_no_colluders_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 2);
    edit(&p.coordinator, "colluders = 1\n", "colluders = 0\n");
    let e = fedprof_coordinator::CoordinatorConfig::load(&p.coordinator)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("privacy.colluders") && e.contains("at least 1"),
        "{e}"
    );
}

/// H3: a coordinator configured with fewer colluders than the nodes assume is refused by every
/// node, with its typed reason, before any node pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_nodes_refuse_a_release_below_their_own_floor() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 3);
    edit(&p.coordinator, "min_nodes = 2\n", "min_nodes = 3\n");
    for n in &p.node_paths {
        edit(n, "min_colluders = 1\n", "min_colluders = 2\n");
    }
    let fed = start(&p).await;
    let outcome = count_job(&fed, &p).await;
    let JobOutcome::Aborted { failures, .. } = &outcome else {
        panic!("released below the nodes' floor: {outcome:?}")
    };
    assert_eq!(failures.len(), 3, "{failures:?}");
    for f in failures {
        // The reason, not the node's floor settings: those stay in the node's log (L8).
        assert!(
            f.reason.contains("PrivacyFloor") && !f.reason.contains("assumes at least 2"),
            "{f:?}"
        );
    }
    fed.stop().await;
    assert_eq!(debits(&p), 0);
}

/// M1: an analyst cannot split a profiling job into many small ones past the coordinator's
/// quota per analyst and period, and a job's later release cannot take it past its total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_an_analyst_cannot_split_a_job_past_its_quota_or_its_total() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 2);
    edit(
        &p.coordinator,
        "rho_per_analyst_period = \"2/1\"",
        "rho_per_analyst_period = \"3/10\"",
    );
    let fed = start(&p).await;
    // A job declaring 1/10 now and 1/10 later.
    let mut first = query(&p, QueryPart::Count, (1, 10), None);
    let JobSpec::Features(q) = &mut first;
    q.reserve = Fraction {
        numer: 1,
        denom: 10,
    };
    let JobOutcome::Completed { result, .. } = analyst_submits(&p, first).await else {
        panic!("the first release was refused")
    };
    let id = result.profile.id;
    assert_eq!(result.profile.analyst.as_str(), "analyst");
    // Its next release asks 1/5: past the job's declared total of 1/5.
    let outcome = analyst_submits(&p, query(&p, QueryPart::Count, (1, 5), Some(id))).await;
    assert!(aborted(&outcome).contains("of its total"), "{outcome:?}");
    // Within the total it runs, under the same job id.
    let outcome = analyst_submits(&p, query(&p, QueryPart::Count, (1, 10), Some(id))).await;
    let JobOutcome::Completed { result, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(result.profile.id, id);
    // Fresh jobs: 1/5 declared so far; 1/10 more fits the quota of 3/10, then nothing does.
    let outcome = analyst_submits(&p, query(&p, QueryPart::Count, (1, 10), None)).await;
    assert!(
        matches!(outcome, JobOutcome::Completed { .. }),
        "{outcome:?}"
    );
    let outcome = analyst_submits(&p, query(&p, QueryPart::Count, (1, 100), None)).await;
    assert!(aborted(&outcome).contains("quota"), "{outcome:?}");
    // Someone else's job id is not the analyst's to continue.
    let outcome = analyst_submits(
        &p,
        query(&p, QueryPart::Count, (1, 100), Some(ProfileId([9; 16]))),
    )
    .await;
    assert!(aborted(&outcome).contains("not open"), "{outcome:?}");
    fed.stop().await;
    // What was released is what was debited: three releases, two nodes.
    assert_eq!(debits(&p), 6);
}

/// M2: colluders holding as many shares as the threshold would rebuild an honest node's
/// secrets; the coordinator refuses such a round before any node computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m2_colluders_reaching_the_threshold_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 3);
    // Three nodes: threshold 2; two colluders (below min_nodes 3) would hold 2 shares.
    edit(&p.coordinator, "min_nodes = 2\n", "min_nodes = 3\n");
    edit(&p.coordinator, "colluders = 1\n", "colluders = 2\n");
    let fed = start(&p).await;
    let outcome = count_job(&fed, &p).await;
    let reason = aborted(&outcome);
    assert!(reason.contains("threshold 2 must exceed them"), "{reason}");
    fed.stop().await;
    assert_eq!(debits(&p), 0);
}

/// M4: two identical releases over the same roster carry different release ids (nonces) in
/// every ledger: the nonce is fresh randomness, bound into what every node signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m4_identical_releases_have_distinct_random_nonces() {
    let dir = tempfile::tempdir().unwrap();
    let p = federation(dir.path(), 2);
    let fed = start(&p).await;
    for _ in 0..2 {
        let outcome = count_job(&fed, &p).await;
        assert!(
            matches!(outcome, JobOutcome::Completed { .. }),
            "{outcome:?}"
        );
    }
    fed.stop().await;
    let ledger = fs::read_to_string(state(&p, 0).join("ledger.jsonl")).unwrap();
    let nonces: Vec<String> = ledger
        .lines()
        .filter(|l| l.contains("\"type\":\"debit\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["body"]["release"]["nonce"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(nonces.len(), 2);
    assert_ne!(nonces[0], nonces[1]);
}
