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

/// M11: a node's sends race its shutdown. A coordinator that floods pings and never reads
/// fills the node's send window until the node's write blocks; Ctrl-C (the shutdown signal)
/// must still stop the node at once, not wait for the coordinator to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_by_a_coordinator_that_never_reads() {
    let fed = TestFed::start(policy(2, 30), data).await;
    // A fake coordinator with the federation's coordinator certificate.
    let config = fedprof_coordinator::CoordinatorConfig::load(&fed.fed.coordinator_config).unwrap();
    let creds = fedprof_transport::Credentials::load(&config.tls).unwrap();
    let limits = fedprof_transport::ServerLimits::default();
    let endpoint =
        fedprof_transport::server_endpoint("127.0.0.1:0".parse().unwrap(), &creds, &limits)
            .unwrap();
    let fake = endpoint.local_addr().unwrap();
    let (stalled_tx, stalled) = tokio::sync::oneshot::channel::<u64>();
    let stalled_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(stalled_tx)));
    let (fake_trigger, fake_shutdown) = fedprof_transport::ShutdownSignal::new();
    let server = tokio::spawn(fedprof_transport::serve(
        endpoint,
        limits,
        fake_shutdown,
        move |peer, _signal| {
            let stalled_tx = std::sync::Arc::clone(&stalled_tx);
            async move {
                let stream = peer
                    .accept_stream(fedprof_protocol::FrameLimit::default())
                    .await
                    .unwrap();
                let (mut writer, mut reader) = stream.split();
                let first = reader.recv().await.unwrap().unwrap();
                assert!(matches!(first.body, Body::Register(_)));
                let party = peer.peer().clone();
                let registered = Body::Registered(fedprof_protocol::Registered { party });
                writer
                    .send(JobId::NONE, RoundId(0), registered)
                    .await
                    .unwrap();
                // Never read again; ping until the node stops taking messages.
                let mut n = u64::MAX / 2;
                loop {
                    n += 1;
                    let ping = writer.send(JobId::NONE, RoundId(0), Body::Ping(n));
                    match tokio::time::timeout(Duration::from_secs(1), ping).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => break,
                    }
                }
                if let Some(tx) = stalled_tx.lock().unwrap().take() {
                    let _ = tx.send(n - u64::MAX / 2);
                }
                // Keep the connection open (and unread) until the node leaves.
                let _ = peer.closed().await;
                drop(reader);
            }
        },
    ));
    let mut node_config = fed.node_config("a");
    node_config.coordinator = fedprof_transport::DialTarget::parse(&fake.to_string()).unwrap();
    let node = fedprof_node::NodeService::new(node_config).unwrap();
    let (trigger, shutdown) = fedprof_transport::ShutdownSignal::new();
    let task = tokio::spawn(node.run(shutdown));
    let pings = tokio::time::timeout(Duration::from_secs(120), stalled)
        .await
        .expect("the node kept reading: its writes never blocked")
        .unwrap();
    assert!(pings > 1000, "stalled after {pings} pings");
    let asked = std::time::Instant::now();
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("a blocked send held the node's shutdown")
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    fake_trigger.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    fed.stop().await;
}

/// M11: SIGTERM stops a `fedprof node` process whose local computation is stuck (its data
/// file is a pipe nobody writes): the runtime does not wait for blocking work forever, and the
/// round goes on without the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_whose_computation_is_stuck() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let b = fed.start_node("b");
    let c = fed.start_node("c");
    let original = fed.fed.dir.join("node-a.toml");
    let toml = std::fs::read_to_string(&original).unwrap();
    let toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("coordinator") {
                format!("coordinator = \"{}\"\n", fed.addr)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let config = fed.fed.dir.join("node-a-live.toml");
    std::fs::write(&config, toml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(["node", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    fed.wait_for(3).await;
    // The config check wants a regular file at start-up; the FIFO replaces it now.
    let fifo = fed.fed.dir.join("data/a/transactions.csv");
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let handle = fed.handle.clone();
    let job = tokio::spawn(async move { handle.run_job(totals_spec("1/8")).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!job.is_finished(), "the round waits for a's masked input");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            // Unblock nothing: the process is gone; report the hang.
            panic!("the node process did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    let outcome = tokio::time::timeout(T, job)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match &outcome {
        JobOutcome::Completed { result, failures } => {
            let names: Vec<&str> = result.contributors.iter().map(|n| n.as_str()).collect();
            assert_eq!(names, ["b", "c"]);
            assert!(
                failures.iter().any(|f| f.node.as_str() == "a"),
                "{failures:?}"
            );
        }
        JobOutcome::Aborted { reason, .. } => panic!("aborted: {reason}"),
    }
    assert!(
        !log.contains("release debited"),
        "the stuck node paid: {log}"
    );
    fed.stop().await;
    for n in [b, c] {
        tokio::time::timeout(T, n)
            .await
            .expect("node did not stop")
            .unwrap();
    }
}

/// The node's side of the heartbeat: a coordinator that accepts the registration, then sends
/// nothing (its core is stuck; its QUIC stack still answers keep-alives) is left after the
/// node's `heartbeat_timeout_secs`, and the node reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_leaves_a_silent_coordinator_and_reconnects() {
    let fed = TestFed::start(policy(2, 30), data).await;
    let config = fedprof_coordinator::CoordinatorConfig::load(&fed.fed.coordinator_config).unwrap();
    let creds = fedprof_transport::Credentials::load(&config.tls).unwrap();
    let limits = fedprof_transport::ServerLimits::default();
    let endpoint =
        fedprof_transport::server_endpoint("127.0.0.1:0".parse().unwrap(), &creds, &limits)
            .unwrap();
    let fake = endpoint.local_addr().unwrap();
    let (sessions_tx, mut sessions) = tokio::sync::mpsc::unbounded_channel::<std::time::Instant>();
    let (fake_trigger, fake_shutdown) = fedprof_transport::ShutdownSignal::new();
    let server = tokio::spawn(fedprof_transport::serve(
        endpoint,
        limits,
        fake_shutdown,
        move |peer, _signal| {
            let sessions_tx = sessions_tx.clone();
            async move {
                let Ok(stream) = peer
                    .accept_stream(fedprof_protocol::FrameLimit::default())
                    .await
                else {
                    return;
                };
                let (mut writer, mut reader) = stream.split();
                let Ok(Some(_register)) = reader.recv().await else {
                    return;
                };
                let party = peer.peer().clone();
                let registered = Body::Registered(fedprof_protocol::Registered { party });
                if writer
                    .send(JobId::NONE, RoundId(0), registered)
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = sessions_tx.send(std::time::Instant::now());
                // Silent from here on: read and drop whatever comes, answer nothing.
                while let Ok(Some(_)) = reader.recv().await {}
            }
        },
    ));
    let mut node_config = fed.node_config("a");
    node_config.coordinator = fedprof_transport::DialTarget::parse(&fake.to_string()).unwrap();
    node_config.connection.heartbeat_timeout_secs = std::num::NonZeroU64::new(1).unwrap();
    let node = fedprof_node::NodeService::new(node_config).unwrap();
    let (trigger, shutdown) = fedprof_transport::ShutdownSignal::new();
    let task = tokio::spawn(node.run(shutdown));
    let first = tokio::time::timeout(T, sessions.recv())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), sessions.recv())
        .await
        .expect("the node stayed with a silent coordinator")
        .unwrap();
    let gap = second - first;
    assert!(
        gap >= Duration::from_millis(900),
        "left after {gap:?}, before the timeout"
    );
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    fake_trigger.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    fed.stop().await;
}
