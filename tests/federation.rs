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

use common::{DAY, TestFed, policy, totals_spec, transactions};
use fedprof::analyst::{AnalystConfig, submit};
use fedprof::report::{decode_numeric, noise_sd, released_values, render_outcome, totals_bounds};
use fedprof_protocol::{
    Body, ErrorCode, FrameDecoder, FrameLimit, JobId, JobOutcome, JobSpec, Register, Role, RoundId,
};
use fedprof_transport::DialTarget;

const T: Duration = Duration::from_secs(60);

fn data(name: &str) -> String {
    match name {
        "a" => transactions(10, 100, 125),
        "b" => transactions(20, 50, 300),
        // A refund is quarantined at the node (negative_amount): c2 has no usable row.
        _ => format!(
            "customer_id,date,amount,txn_id\nc1,{DAY},0.99,t1\nc2,{DAY},-10.00,t2\nc1,{DAY},4.01,t3\n"
        ),
    }
}

/// Customers, transactions and amount (minor units) of `data`.
const EXPECTED: [f64; 3] = [
    10.0 + 20.0 + 1.0,
    100.0 + 50.0 + 2.0,
    12_500.0 + 15_000.0 + 500.0,
];

/// The released totals decoded into feature units (customers, transactions, minor units), the
/// contributors, the failures (node, reason) and each figure's noise standard deviation.
type Completed = (Vec<f64>, Vec<String>, Vec<(String, String)>, Vec<f64>);

fn completed(outcome: &JobOutcome) -> Completed {
    let JobOutcome::Completed { result, failures } = outcome else {
        panic!("aborted: {outcome:?}")
    };
    let b = totals_bounds(&result.spec).expect("a totals query");
    let (v, sd) = (released_values(result), noise_sd(result)[0]);
    assert!(sd >= 2.0, "every node adds noise of sd >= 2: {sd}");
    let decoded = [
        decode_numeric(0, v[0], (0, 1), b.scale, sd),
        decode_numeric(v[0], v[1], (0, b.max_rows), b.scale, sd),
        decode_numeric(v[0], v[2], b.amount, b.scale, sd),
    ];
    (
        decoded.iter().map(|d| d.0).collect(),
        result.contributors.iter().map(|n| n.to_string()).collect(),
        failures
            .iter()
            .map(|f| (f.node.to_string(), f.reason.clone()))
            .collect(),
        decoded.iter().map(|d| d.1 / 1.96).collect(),
    )
}

/// Every released figure is the true (clipped) sum plus noise of the announced spread: within
/// 6 standard deviations (a false failure has probability below 1e-8 per figure), plus one
/// unit for the fixed-point rounding of each customer's coordinates.
fn assert_within_noise(released: &[f64], truth: &[f64], sd: &[f64]) {
    assert_eq!(released.len(), truth.len());
    for ((got, want), sd) in released.iter().zip(truth).zip(sd) {
        assert!(
            (got - want).abs() <= 6.0 * sd + 1.0,
            "released {got}, true {want}, noise sd {sd}"
        );
    }
}

/// The totals query at the coordinator's default per-job cap.
fn totals() -> JobSpec {
    totals_spec("1/2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_and_three_nodes_release_noisy_totals_through_secure_aggregation() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;

    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals()))
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
    let submission = fedprof_protocol::Submission {
        request: fedprof::analyst::new_request().unwrap(),
        spec: totals(),
    };
    let outcome = submit(&analyst, submission, T).await.unwrap();
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
async fn the_analyst_cli_asks_for_totals_as_a_feature_query_and_prints_them_decoded() {
    let mut fed = TestFed::start(policy(2, 30), data).await;
    let _nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;
    let config = fed.analyst_config();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("\"127.0.0.1:1\"", &format!("\"{}\"", fed.addr));
    std::fs::write(&config, text).unwrap();
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fedprof"))
            .args(["job", "submit", "--config"])
            .arg(&config)
            .args(["--as-of", "2026-06-30", "--max-rows", "10"])
            .args(["--max-amount-minor", "20000"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    println!("{stdout}");
    assert!(
        stdout.contains("Job features released: 3 contributing node(s): a, b, c"),
        "{stdout}"
    );
    for line in [
        "customers",
        "transactions",
        "total amount",
        "at most 10 transactions",
    ] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    fed.stop().await;
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
    let job = tokio::spawn(async move { handle.run_job(totals()).await });
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
    let truth = [16.0, 32.0, 8.0 * 100.0 * f64::from(1 + 2 + 3 + 4)];
    assert_within_noise(&values, &truth, &sd);
    // The coordinator keeps serving: the next job runs over the four nodes still there.
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals()))
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
async fn a_malformed_row_is_quarantined_not_a_refusal_with_its_line() {
    // H6(b): one bad amount used to make node c refuse with "transactions.csv:3"; now the row
    // is quarantined at c and c contributes like every other node.
    let mut fed = TestFed::start(policy(2, 30), |n| {
        if n == "c" {
            format!("customer_id,date,amount,txn_id\nc1,{DAY},1.00,t1\nsecret-id,{DAY},12x,t2\n")
        } else {
            data(n)
        }
    })
    .await;
    let _nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals()))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, failures, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b", "c"]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_within_noise(&values, &[31.0, 151.0, 27_600.0], &sd);
    let shown = render_outcome(&outcome, 2);
    for secret in ["transactions.csv", ":3", "12x", "secret-id"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_upper_case_id_is_the_same_customer_in_the_totals() {
    // H6(a): " C001 " and "c001" are one customer (ids normalized as in every feature), so
    // the release counts 1 customer with 3 transactions at c. A huge budget makes the noise a
    // fraction of a customer, so 1 and 2 are told apart.
    let mut fed = TestFed::start_generous(policy(2, 30), |n| match n {
        "c" => format!(
            "customer_id,date,amount,txn_id\n C001 ,{DAY},1.00,t1\nc001,{DAY},2.00,t2\nC001,{DAY},3.00,t3\n"
        ),
        _ => transactions(2, 4, 100),
    })
    .await;
    let _nodes: Vec<_> = common::NODES
        .iter()
        .map(|n| fed.start_generous_node(n))
        .collect();
    fed.wait_for(3).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals_spec("2000/1")))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, failures, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b", "c"]);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(sd[0] < 0.1, "noise sd {} customers", sd[0]);
    // a and b: 2 customers, 4 rows of 1.00 each; c: one customer, 3 rows, 6.00.
    assert!((values[0] - 5.0).abs() < 0.5, "customers {}", values[0]);
    // Transactions carry more noise (a customer adds up to its row bound): within 4 of its
    // standard deviations (the test failed 1 run in 12 with a fixed tolerance of 1).
    assert!(sd[1] < 1.0, "noise sd {} transactions", sd[1]);
    let tol = (4.0 * sd[1]).max(1.0);
    assert!(
        (values[1] - 11.0).abs() < tol,
        "transactions {} (sd {})",
        values[1],
        sd[1]
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

    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals()))
        .await
        .unwrap()
        .unwrap();
    let (values, contributors, _, sd) = completed(&outcome);
    assert_eq!(contributors, ["a", "b"]);
    assert_within_noise(&values, &[30.0, 150.0, 27_500.0], &sd);
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_nodes_release_nothing() {
    let mut fed = TestFed::start(policy(3, 30), data).await;
    let _a = fed.start_node("a");
    fed.wait_for(1).await;
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals()))
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
    let outcome = tokio::time::timeout(T, fed.handle.run_job(totals()))
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
