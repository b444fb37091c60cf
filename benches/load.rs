//! Load figure of the restarts issue: many nodes, each with its own QUIC connection on
//! loopback, and one release of a wide vector.
//!
//! The coordinator runs as its own process (`fedprof coordinator`, the release binary) so its
//! CPU time and peak RSS can be read from `/proc`; the nodes run in this process, one
//! `NodeService` (own endpoint, own connection, own ledger) each; the analyst's job goes over
//! QUIC too. The job is a one-release feature query: a histogram of each customer's total
//! amount, transaction count and days since the last purchase (`ceil(cbrt(D))` bins each, so at
//! least `D` coordinates; 103,823 for the default), under the coordinator's default policy.
//!
//! `cargo bench --bench load` (defaults: 200 nodes, D = 100,000); `FEDPROF_LOAD_NODES` and
//! `FEDPROF_LOAD_D` override. Prints a table and a last `RATIO` line: the round's wall time
//! per node-megabyte of masked input. Figures in `benches/RESULTS.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    reason = "bench: a failed step aborts the run, and the table goes to stdout"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedprof::analyst::{AnalystConfig, submit};
use fedprof::demo::prepare;
use fedprof::progress::Progress;
use fedprof_node::{NodeConfig, NodeService};
use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
use fedprof_protocol::{Fraction, JobOutcome, JobSpec, Submission};
use fedprof_transport::ShutdownSignal;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(user+system CPU seconds, peak RSS in MiB)` of process `pid`, from `/proc`.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm_kib / 1024.0)
}

struct Coordinator(Child);

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_coordinator(config: &Path, log: &Path) -> Coordinator {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(["coordinator", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the fedprof binary starts");
    Coordinator(child)
}

fn main() {
    // Node logs (warnings and errors) go to stderr; the coordinator's to its log file, kept
    // (with the whole run directory) when the job does not complete.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let nodes = env_usize("FEDPROF_LOAD_NODES", 200);
    let d = env_usize("FEDPROF_LOAD_D", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::quiet();
    let p = prepare(dir.path(), nodes, (nodes as u64) * 20, 11, &progress).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let coordinator = start_coordinator(&p.coordinator, &dir.path().join("coordinator.log"));
    let pid = coordinator.0.id();
    let (trigger, shutdown) = ShutdownSignal::new();
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        let mut tasks = Vec::new();
        for path in &p.node_paths {
            let node = NodeService::new(NodeConfig::load(path).unwrap()).unwrap();
            tasks.push(tokio::spawn(node.run(shutdown.clone())));
        }
        let analyst = AnalystConfig::load(&p.fed_dir.join("analyst-analyst.toml")).unwrap();
        // A joint histogram of three features with `k` bins each, `k^3 >= D` coordinates:
        // as wide as asked, with edge lists short enough for every receipt to carry.
        let k = (1..).find(|k: &usize| k.pow(3) >= d).unwrap_or(1);
        let edges: Vec<i64> = (1..i64::try_from(k).unwrap()).map(|i| i * 10).collect();
        let spec = JobSpec::Features(Box::new(FeatureQuery {
            label: "load/grid".into(),
            as_of: fedprof_profile::rundir::load_spec(&p.job_path)
                .unwrap()
                .as_of,
            scale: 1,
            segmenter: Segmenter::All,
            parts: vec![QueryPart::Grid {
                features: vec![
                    NumericFeature::MonetaryTotal,
                    NumericFeature::TxnCount,
                    NumericFeature::DaysSinceLast,
                ],
                edges: vec![edges.clone(), edges.clone(), edges],
            }],
            budget: Fraction {
                numer: 1,
                denom: 10,
            },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        }));
        // Submit once every node has registered (the first release takes every registered
        // node): the coordinator logs each registration.
        let log = dir.path().join("coordinator.log");
        let ready = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("node registered").count() >= nodes {
                break;
            }
            assert!(
                ready.elapsed() < Duration::from_secs(600),
                "nodes did not register within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "{nodes} nodes registered in {:.1} s",
            ready.elapsed().as_secs_f64()
        );
        let submission = Submission {
            request: fedprof::analyst::new_request().unwrap(),
            spec,
        };
        let round = Instant::now();
        let outcome = submit(&analyst, submission, Duration::from_secs(1800))
            .await
            .unwrap();
        let round = round.elapsed();
        trigger.trigger();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        (outcome, round)
    });
    let (outcome, round) = outcome;
    let (cpu, rss) = usage(pid);
    drop(coordinator);
    let (contributors, d) = match &outcome {
        JobOutcome::Completed { result, .. } => (result.contributors.len(), result.values.len()),
        JobOutcome::Aborted { reason, .. } => {
            let kept = dir.keep();
            panic!(
                "the job aborted: {reason} (run directory kept: {})",
                kept.display()
            )
        }
    };
    println!(
        "| nodes | D | contributors | round (s) | coordinator CPU (s) | coordinator peak RSS (MiB) | total (s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {nodes} | {d} | {contributors} | {:.1} | {cpu:.1} | {rss:.0} | {:.1} |",
        round.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let node_mib = (contributors * d * 8) as f64 / (1024.0 * 1024.0);
    println!(
        "RATIO round-seconds-per-node-MiB {:.4}",
        round.as_secs_f64() / node_mib
    );
}
