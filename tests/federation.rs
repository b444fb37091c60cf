//! End to end over real QUIC with mutual TLS on loopback: the coordinator service, node
//! services, an analyst, and parties that misbehave on purpose.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::Duration;

use common::{TestFed, policy, transactions};
use fedprof::analyst::{AnalystConfig, submit};
use fedprof::report::{noise_sd, released_values};
use fedprof_protocol::{
    Body, ErrorCode, FrameDecoder, FrameLimit, JobId, JobOutcome, JobSpec, Register, Role, RoundId,
};
use fedprof_transport::DialTarget;

const T: Duration = Duration::from_secs(60);

fn data(name: &str) -> String {
    match name {
        "a" => transactions(10, 100, 125),
        "b" => transactions(20, 50, 300),
        // A refund makes the sum exercise negative values in Z_2^64.
        _ => "customer_id,amount\nc1,0.99\nc2,-10.00\nc1,4.01\n".into(),
    }
}

const EXPECTED: [i64; 3] = [10 + 20 + 2, 100 + 50 + 3, 12_500 + 15_000 - 500];

/// The released vector, the contributors, the failures (node, reason) and the noise standard
/// deviations of a completed job.
type Completed = (Vec<i64>, Vec<String>, Vec<(String, String)>, Vec<f64>);

fn completed(outcome: &JobOutcome) -> Completed {
    let JobOutcome::Completed { result, failures } = outcome else {
        panic!("aborted: {outcome:?}")
    };
    (
        released_values(result),
        result.contributors.iter().map(|n| n.to_string()).collect(),
        failures
            .iter()
            .map(|f| (f.node.to_string(), f.reason.clone()))
            .collect(),
        noise_sd(result),
    )
}

/// Every released figure is the true (clipped) sum plus noise of the announced spread: within
/// 6 standard deviations (a false failure has probability below 1e-8 per figure).
fn assert_within_noise(released: &[i64], truth: &[i64], sd: &[f64]) {
    assert_eq!(released.len(), truth.len());
    for ((got, want), sd) in released.iter().zip(truth).zip(sd) {
        assert!(*sd >= 2.0, "every node adds noise of sd >= 2: {sd}");
        assert!(
            ((got - want) as f64).abs() <= 6.0 * sd,
            "released {got}, true {want}, noise sd {sd}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_and_three_nodes_release_noisy_totals_through_secure_aggregation() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;

    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, failures, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b", "c"]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_within_noise(&values, &EXPECTED, &sd);

    // The same job submitted by the analyst over the network.
    let mut analyst = AnalystConfig::load(&fed.analyst_config()).unwrap();
    analyst.coordinator = DialTarget::parse(&fed.addr.to_string()).unwrap();
    let outcome = submit(&analyst, JobSpec::TransactionTotals, T)
        .await
        .unwrap();
    let (values, _, _, sd) = completed(&outcome);
    assert_within_noise(&values, &EXPECTED, &sd);

    fed.stop().await;
    for n in nodes {
        tokio::time::timeout(T, n)
            .await
            .expect("node did not stop")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_one_killed_after_sharing_keys_the_others_are_released() {
    let names = ["a", "b", "c", "d", "e"];
    let mut fed = TestFed::start_with(&names, policy(2, 30), |n| {
        transactions(4, 8, 100 * (n.as_bytes()[0] - b'a' + 1) as i64)
    })
    .await;
    // Node e reads its transactions from a FIFO nobody writes yet: it advertises and shares its
    // keys (that needs no data), then waits for its input before masking, where it is killed.
    // The config check wants a regular file at start-up; the FIFO replaces it afterwards.
    let tasks: Vec<_> = names.iter().map(|n| fed.start_node(n)).collect();
    let fifo = fed.fed.dir.join("data/e/transactions.csv");
    std::fs::remove_file(&fifo).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fed.wait_for(5).await;
    let handle = fed.handle.clone();
    let job = tokio::spawn(async move { handle.run_job(JobSpec::TransactionTotals).await });
    // Keys and shares go round in milliseconds on loopback; then e is stuck on its data.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!job.is_finished(), "the round waits for e's masked input");
    tasks[4].abort();
    let outcome = tokio::time::timeout(T, job)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (values, contributors, failures, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b", "c", "d"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, "e");
    assert!(
        failures[0].1.contains("connection lost"),
        "{}",
        failures[0].1
    );
    // a..d: 4 customers and 8 rows each; 8 rows of 1.00 x (1..4) each.
    let truth = [16, 32, 8 * 100 * (1 + 2 + 3 + 4)];
    assert_within_noise(&values, &truth, &sd);
    // The coordinator keeps serving: the next job runs over the four nodes still there.
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, failures, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b", "c", "d"]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_within_noise(&values, &truth, &sd);
    // Unblock e's reader thread so the test process can exit.
    drop(std::fs::OpenOptions::new().write(true).open(&fifo));
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_bad_data_refuses_with_a_located_reason_and_no_value() {
    let mut fed = TestFed::start(policy(2, 30), |n| {
        if n == "c" {
            "customer_id,amount\nc1,1.00\nsecret-id,12x\n".into()
        } else {
            data(n)
        }
    })
    .await;
    let _nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, failures, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    assert_within_noise(&values, &[30, 150, 27_500], &sd);
    let (node, reason) = &failures[0];
    assert_eq!(node, "c");
    assert!(
        reason.contains("DataUnavailable") && reason.contains("transactions.csv:3"),
        "{reason}"
    );
    assert!(
        !reason.contains("12x") && !reason.contains("secret-id"),
        "no data in reasons: {reason}"
    );
    assert!(
        !reason.contains(fed.dir.path().to_str().unwrap()),
        "no local paths: {reason}"
    );
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_certificate_cannot_register_as_a_node() {
    let fed = TestFed::start(policy(1, 30), data).await;
    let (_endpoint, peer) = fed.connect_as(Role::Analyst, "x").await;
    let (mut w, mut r) = peer.open_stream(FrameLimit::DEFAULT).await.unwrap().split();
    w.send(
        JobId::NONE,
        RoundId(0),
        Body::Register(Register {
            software: "claims to be a".into(),
        }),
    )
    .await
    .unwrap();
    let reply = tokio::time::timeout(T, r.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(reply.body, Body::Error(ref e) if e.code == ErrorCode::RoleNotPermitted),
        "{reply:?}"
    );
    assert!(fed.handle.nodes().is_empty());
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_closes_that_stream_and_the_others_keep_working() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let _a = fed.start_node("a");
    let _b = fed.start_node("b");
    fed.wait_for(2).await;

    let (_endpoint, peer) = fed.connect_as(Role::Node, "c").await;
    let (mut send, mut recv) = peer.quic().open_bi().await.unwrap();
    // Announce a frame one byte above the coordinator's limit; nothing is allocated for it.
    let len = FrameLimit::DEFAULT.bytes() + 1;
    send.write_all(&len.to_be_bytes()).await.unwrap();
    let reply = tokio::time::timeout(T, recv.read_to_end(4096))
        .await
        .unwrap()
        .unwrap();
    let mut frames = FrameDecoder::new(FrameLimit::new(4096).unwrap());
    assert!(frames.push(&reply).unwrap().is_empty());
    let env = fedprof_protocol::decode(&frames.next_frame().unwrap().unwrap()).unwrap();
    let Body::Error(e) = env.body else {
        panic!("{env:?}")
    };
    assert_eq!(e.code, ErrorCode::FrameTooLarge);
    assert!(e.detail.contains(&len.to_string()), "{}", e.detail);

    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, _, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    assert_within_noise(&values, &[30, 150, 27_500], &sd);
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_nodes_release_nothing() {
    let mut fed = TestFed::start(policy(3, 30), data).await;
    let _a = fed.start_node("a");
    fed.wait_for(1).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, JobOutcome::Aborted { ref reason, .. } if reason.contains("at least 3")),
        "{outcome:?}"
    );
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_past_its_budget_refuses_before_anything_leaves_and_audits_clean() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    // Node c allows itself less than one release costs (the coordinator plans rho 1/2).
    let mut tight = fed.node_config("c");
    tight.privacy.cap_rho = "1/100".parse().unwrap();
    let c = tokio::spawn(
        fedprof_node::NodeService::new(tight)
            .unwrap()
            .run(fed.shutdown.clone()),
    );
    let _ab = [fed.start_node("a"), fed.start_node("b")];
    fed.wait_for(3).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals))
        .await
        .unwrap()
        .unwrap();
    let (_, contributors, failures, _) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    let (node, reason) = &failures[0];
    assert_eq!(node, "c");
    assert!(reason.contains("BudgetExhausted"), "{reason}");
    // c debited nothing and wrote no vector: its ledger holds only the budget it opened.
    let ledger = std::fs::read_to_string(fed.fed.dir.join("state/node-c/ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
    assert!(!ledger.contains("\"debit\""), "{ledger}");
    let vectors = std::fs::read_dir(fed.fed.dir.join("state/node-c/vectors"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(vectors, 0);
    // An auditor given every ledger finds them consistent: a and b paid for the release.
    let (dir, _keep) = (fed.fed.dir.clone(), fed.stop_keeping_files().await);
    let _ = c.await;
    for n in common::NODES {
        let from = dir.join(format!("state/node-{n}/ledger.jsonl"));
        std::fs::copy(&from, dir.join(format!("ledgers/node-{n}.jsonl"))).unwrap();
    }
    let report = fedprof::audit::verify_dir(&dir, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(report.releases, 1);
}
