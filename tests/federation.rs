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
use fedprof_node::data::TransactionTotals;
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

const EXPECTED: TransactionTotals =
    TransactionTotals { customers: 10 + 20 + 2, rows: 100 + 50 + 3, amount_minor: 12_500 + 15_000 - 500 };

fn completed(outcome: &JobOutcome) -> (TransactionTotals, Vec<String>, Vec<(String, String)>) {
    let JobOutcome::Completed { result, failures } = outcome else { panic!("aborted: {outcome:?}") };
    (
        TransactionTotals::from_ring(&result.values).unwrap(),
        result.contributors.iter().map(|n| n.to_string()).collect(),
        failures.iter().map(|f| (f.node.to_string(), f.reason.clone())).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_and_three_nodes_return_exact_totals() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;

    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals)).await.unwrap().unwrap();
    let (totals, contributors, failures) = completed(&outcome);
    assert_eq!(totals, EXPECTED);
    assert_eq!(contributors, ["a", "b", "c"]);
    assert!(failures.is_empty(), "{failures:?}");

    // The same job submitted by the analyst over the network.
    let mut analyst = AnalystConfig::load(&fed.analyst_config()).unwrap();
    analyst.coordinator = DialTarget::parse(&fed.addr.to_string()).unwrap();
    let outcome = submit(&analyst, JobSpec::TransactionTotals, T).await.unwrap();
    assert_eq!(completed(&outcome).0, EXPECTED);

    fed.stop().await;
    for n in nodes {
        tokio::time::timeout(T, n).await.expect("node did not stop").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_a_job_is_reported_and_the_coordinator_keeps_running() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let _a = fed.start_node("a");
    let _b = fed.start_node("b");
    // Node c speaks the protocol by hand so it can die at an exact point: after accepting the
    // job, before submitting.
    let (endpoint, peer) = fed.connect_as(Role::Node, "c").await;
    let (mut w, mut r) = peer.open_stream(FrameLimit::DEFAULT).await.unwrap().split();
    w.send(JobId::NONE, RoundId(0), Body::Register(Register { software: "test".into() })).await.unwrap();
    assert!(matches!(r.recv().await.unwrap().unwrap().body, Body::Registered(_)));
    fed.wait_for(3).await;

    let handle = fed.handle.clone();
    let job = tokio::spawn(async move { handle.run_job(JobSpec::TransactionTotals).await });
    let announce = r.recv().await.unwrap().unwrap();
    assert!(matches!(announce.body, Body::JobAnnounce(_)));
    w.send(announce.header.job, RoundId(0), Body::Accept).await.unwrap();
    drop((w, r));
    peer.close(0, "killed");
    drop(peer);
    drop(endpoint);

    let outcome = tokio::time::timeout(T, job).await.unwrap().unwrap().unwrap();
    let (totals, contributors, failures) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    assert_eq!(totals.rows, 150);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, "c");
    assert!(failures[0].1.contains("connection lost"), "{}", failures[0].1);

    // The coordinator keeps serving: the next job runs over the nodes still there.
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals)).await.unwrap().unwrap();
    let (_, contributors, failures) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    assert!(failures.is_empty(), "{failures:?}");
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_bad_data_refuses_with_a_located_reason_and_no_value() {
    let mut fed = TestFed::start(policy(2, 30), |n| {
        if n == "c" { "customer_id,amount\nc1,1.00\nsecret-id,12x\n".into() } else { data(n) }
    })
    .await;
    let _nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals)).await.unwrap().unwrap();
    let (totals, _, failures) = completed(&outcome);
    assert_eq!(totals.rows, 150);
    let (node, reason) = &failures[0];
    assert_eq!(node, "c");
    assert!(reason.contains("DataUnavailable") && reason.contains("transactions.csv:3"), "{reason}");
    assert!(!reason.contains("12x") && !reason.contains("secret-id"), "no data in reasons: {reason}");
    assert!(!reason.contains(fed.dir.path().to_str().unwrap()), "no local paths: {reason}");
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_certificate_cannot_register_as_a_node() {
    let fed = TestFed::start(policy(1, 30), data).await;
    let (_endpoint, peer) = fed.connect_as(Role::Analyst, "x").await;
    let (mut w, mut r) = peer.open_stream(FrameLimit::DEFAULT).await.unwrap().split();
    w.send(JobId::NONE, RoundId(0), Body::Register(Register { software: "claims to be a".into() })).await.unwrap();
    let reply = tokio::time::timeout(T, r.recv()).await.unwrap().unwrap().unwrap();
    assert!(matches!(reply.body, Body::Error(ref e) if e.code == ErrorCode::RoleNotPermitted), "{reply:?}");
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
    let reply = tokio::time::timeout(T, recv.read_to_end(4096)).await.unwrap().unwrap();
    let mut frames = FrameDecoder::new(FrameLimit::new(4096).unwrap());
    assert!(frames.push(&reply).unwrap().is_empty());
    let env = fedprof_protocol::decode(&frames.next_frame().unwrap().unwrap()).unwrap();
    let Body::Error(e) = env.body else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::FrameTooLarge);
    assert!(e.detail.contains(&len.to_string()), "{}", e.detail);

    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals)).await.unwrap().unwrap();
    let (totals, contributors, _) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    assert_eq!(totals.rows, 150);
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_nodes_release_nothing() {
    let mut fed = TestFed::start(policy(3, 30), data).await;
    let _a = fed.start_node("a");
    fed.wait_for(1).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(JobSpec::TransactionTotals)).await.unwrap().unwrap();
    assert!(matches!(outcome, JobOutcome::Aborted { ref reason, .. } if reason.contains("at least 3")), "{outcome:?}");
    fed.stop().await;
}
