//! Liveness over real QUIC on loopback: round-over notices free node slots (review finding
//! M4), the application heartbeat closes a node that stays connected but processes nothing,
//! and a node's shutdown is not held by a coordinator that never reads (M11).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::time::Duration;

use common::{TestFed, policy, totals_spec, transactions};
use fedprof_coordinator::Heartbeat;
use fedprof_protocol::{Body, ErrorCode, JobId, JobOutcome, Register, Role, RoundId};

const T: Duration = Duration::from_secs(60);

fn data(_: &str) -> String {
    transactions(4, 8, 100)
}

/// Connects as node `name` and registers, then reads nothing more: a node whose QUIC stack is
/// up but whose protocol core is stuck (as under SIGSTOP, minus the QUIC keep-alives).
async fn stuck_node(
    fed: &TestFed,
    name: &str,
) -> (
    fedprof_transport::Endpoint,
    fedprof_transport::PeerConnection,
    fedprof_transport::MessageReader,
    fedprof_transport::MessageWriter,
) {
    let (endpoint, peer) = fed.connect_as(Role::Node, name).await;
    let stream = peer
        .open_stream(fedprof_protocol::FrameLimit::default())
        .await
        .unwrap();
    let (mut writer, reader) = stream.split();
    writer
        .send(
            JobId::NONE,
            RoundId(0),
            Body::Register(Register {
                software: "stuck".into(),
            }),
        )
        .await
        .unwrap();
    (endpoint, peer, reader, writer)
}

/// M4: with 3 nodes and min 3, node c stuck, 4 jobs abort. Before round-over notices, a and b
/// kept each job's slot for 6 phase timeouts and answered the next job "Busy" even once c was
/// back; now the abort tells them, they free the slots at once, and the 5th job, with c back,
/// is released by all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_rounds_free_the_other_nodes_slots_at_once() {
    // A phase timeout of 3 s: slots held for 6 of them would still be held for the 5th job.
    let mut fed = TestFed::start(policy(3, 3), data).await;
    let a = fed.start_node("a");
    let b = fed.start_node("b");
    let stuck = stuck_node(&fed, "c").await;
    fed.wait_for(3).await;
    let jobs: Vec<_> = (0..4)
        .map(|_| {
            let handle = fed.handle.clone();
            tokio::spawn(async move { handle.run_job(totals_spec("1/8")).await })
        })
        .collect();
    for job in jobs {
        let outcome = tokio::time::timeout(T, job)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            matches!(&outcome, JobOutcome::Aborted { failures, .. }
                if failures.iter().any(|f| f.node.as_str() == "c")),
            "{outcome:?}"
        );
    }
    // c comes back as a real node (its new connection replaces the stuck one).
    drop(stuck);
    let c = fed.start_node("c");
    fed.handle.wait_for_nodes(|n| n.len() == 3).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals_spec("1/8")))
        .await
        .unwrap()
        .unwrap();
    match &outcome {
        JobOutcome::Completed { result, failures } => {
            let names: Vec<&str> = result.contributors.iter().map(|n| n.as_str()).collect();
            assert_eq!(names, ["a", "b", "c"], "{failures:?}");
        }
        JobOutcome::Aborted { reason, failures } => {
            panic!("the 5th job aborted: {reason}; {failures:?}")
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the 5th job waited for slots"
    );
    fed.stop().await;
    for n in [a, b, c] {
        tokio::time::timeout(T, n)
            .await
            .expect("node did not stop")
            .unwrap();
    }
}

/// The heartbeat: a registered node that processes nothing is closed with `Unresponsive` and
/// leaves the registry (so it leaves rosters), while real nodes answer the pings and stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_pings_is_closed_and_deregistered() {
    let heartbeat = Heartbeat {
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(1),
    };
    let mut fed = TestFed::start_with_heartbeat(policy(2, 30), data, heartbeat).await;
    let a = fed.start_node("a");
    let b = fed.start_node("b");
    let (_endpoint, _peer, mut reader, _writer) = stuck_node(&fed, "c").await;
    fed.wait_for(3).await;
    let left = tokio::time::timeout(
        Duration::from_secs(10),
        fed.handle.wait_for_nodes(|n| n.len() == 2),
    )
    .await
    .expect("the silent node was never deregistered")
    .unwrap();
    let names: Vec<&str> = left.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    // What the stuck node would have read: pings, then the reason it was closed.
    let mut pings = 0;
    let code = loop {
        match tokio::time::timeout(T, reader.recv()).await.unwrap() {
            Ok(Some(env)) => match env.body {
                Body::Ping(_) => pings += 1,
                Body::Error(e) => break e.code,
                _ => {}
            },
            other => panic!("stream ended without an error frame: {other:?}"),
        }
    };
    assert_eq!(code, ErrorCode::Unresponsive);
    assert!(pings >= 2, "{pings} ping(s)");
    // Real nodes answer: several timeouts later they are still registered, and a job runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fed.handle.nodes().len(), 2);
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals_spec("1/8")))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, JobOutcome::Completed { .. }),
        "{outcome:?}"
    );
    fed.stop().await;
    for n in [a, b] {
        tokio::time::timeout(T, n)
            .await
            .expect("node did not stop")
            .unwrap();
    }
}
