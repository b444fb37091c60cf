//! Secure-aggregation benchmarks (a plain binary, fixed seeds); figures in
//! `benches/RESULTS.md`, section "Secure aggregation".
//!
//! - `prg`: mask expansion throughput, ChaCha20 into `Z_2^64` (`fedprof_crypto::expand_into`,
//!   and `MaskStreams` folding three streams into wire bytes in one pass).
//! - `round`: a whole in-process round (the nodes and the coordinator one after another in this
//!   thread; mask streams longer than 8,192 elements are folded on the rayon pool, as in
//!   production; messages encoded with postcard to count bytes), for n in {10, 100, 1000} and d in {1k, 100k, 1M}:
//!   node compute per node, coordinator compute, wall time of the round, and bytes each node
//!   sends relative to its plain vector (8d bytes).
//!
//! `cargo bench -p fedprof-secagg --bench round` runs both tables;
//! `... -- compare N D NEIGHBOURS REPEATS` runs the round used by `benches/compare/secagg.sh`
//! and prints `fedprof_round_seconds <best>` (wall) after `fedprof_round_cpu_seconds <best>` (the
//! process's CPU time over all threads, Linux only; messages moved in memory, not encoded).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{federation, run};
use fedprof_crypto::{MaskOp, MaskStreams, SecretKey32, expand_into};
use fedprof_secagg::GraphSpec;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("compare") {
        let num = |i: usize| {
            args.get(i)
                .and_then(|a| a.parse::<usize>().ok())
                .expect("compare N D NEIGHBOURS REPEATS")
        };
        compare(num(1), num(2), num(3), num(4));
        return;
    }
    prg();
    rounds();
}

fn best_of<F: FnMut() -> Duration>(times: usize, mut f: F) -> Duration {
    (0..times).map(|_| f()).min().unwrap()
}

fn prg() {
    println!("## Mask expansion (ChaCha20 -> Z_2^64), best of 7");
    println!();
    println!(
        "`expand_into` folds one stream into a vector; `MaskStreams` folds 3 (a node with 2 \
         neighbours) in one pass, straight into the wire bytes. Elements/s counts every stream."
    );
    println!();
    println!("| what | elements | time | elements/s | GB/s of mask |");
    println!("|---|---:|---:|---:|---:|");
    let seeds: Vec<SecretKey32> = (7..10u8)
        .map(|i| SecretKey32::from_bytes([i; 32]))
        .collect();
    for len in [1_000usize, 100_000, 1_000_000] {
        let mut v = vec![0u64; len];
        let reps = (10_000_000 / len).max(1);
        let t = best_of(7, || {
            let start = Instant::now();
            for _ in 0..reps {
                expand_into(&seeds[0], MaskOp::Add, &mut v).unwrap();
            }
            start.elapsed() / reps as u32
        });
        prg_row("expand_into", len, 1, t);
    }
    for len in [100_000usize, 1_000_000] {
        let input = vec![0u64; len];
        let mut bytes = Vec::with_capacity(8 * len);
        let reps = (10_000_000 / len).max(1);
        let t = best_of(7, || {
            let start = Instant::now();
            for _ in 0..reps {
                let mut masks = MaskStreams::with_capacity(seeds.len());
                for seed in &seeds {
                    masks.push(seed, MaskOp::Add);
                }
                bytes.clear();
                masks.apply_to_le_bytes(&input, &mut bytes).unwrap();
            }
            start.elapsed() / reps as u32
        });
        prg_row("MaskStreams, 3 streams to bytes", len, seeds.len(), t);
    }
    println!();
}

fn prg_row(what: &str, len: usize, streams: usize, t: Duration) {
    let rate = (len * streams) as f64 / t.as_secs_f64();
    println!(
        "| {what} | {len} | {:.1} us | {:.0} M | {:.2} |",
        t.as_secs_f64() * 1e6,
        rate / 1e6,
        rate * 8.0 / 1e9
    );
}

/// The graph used at each size: complete for 10 nodes; sparse with 2 * ceil(log2 n)
/// neighbours beyond that (threshold: the default two thirds of the neighbourhood).
fn graph_for(n: usize) -> GraphSpec {
    if n <= 10 {
        GraphSpec::Complete
    } else {
        let k = 2 * (n as f64).log2().ceil() as u32;
        GraphSpec::Sparse {
            neighbours: k,
            seed: [9; 32],
        }
    }
}

fn rounds() {
    println!(
        "## Full round in one process (parties one after another; long mask streams folded on the rayon pool), no dropouts, best of 3 (1 for the largest)"
    );
    println!();
    println!(
        "| n | d | graph | node compute / node | coordinator compute | round wall | sent / node | sent / 8d | received / node |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for n in [10usize, 100, 1000] {
        for d in [1_000usize, 100_000, 1_000_000] {
            if n == 1000 && d == 1_000_000 {
                println!(
                    "| 1000 | 1000000 | sparse | skipped: estimated > 2 min (1000 x 21 PRG streams of 8 MB) | | | | | |"
                );
                continue;
            }
            let graph = graph_for(n);
            let fed = federation(n, d, graph, None);
            let xs = common::inputs(1, d, 1);
            let repeats = if n * d >= 100_000_000 { 1 } else { 3 };
            let mut best: Option<(Duration, common::Stats)> = None;
            for r in 0..repeats {
                let start = Instant::now();
                let outcome = run(&fed, &xs, &vec![None; n], 100 + r as u64);
                let wall = start.elapsed();
                assert!(outcome.result.is_ok(), "round failed");
                if best.as_ref().is_none_or(|(w, _)| wall < *w) {
                    best = Some((wall, outcome.stats));
                }
            }
            let (wall, stats) = best.unwrap();
            let sent = stats.sent.iter().sum::<usize>() as f64 / n as f64;
            let received = stats.received.iter().sum::<usize>() as f64 / n as f64;
            let graph_name = match graph {
                GraphSpec::Complete => "complete".to_owned(),
                GraphSpec::Sparse { neighbours, .. } => format!("sparse k={neighbours}"),
            };
            println!(
                "| {n} | {d} | {graph_name} | {} | {} | {} | {} | {:.4} | {} |",
                ms(stats.node_time / n as u32),
                ms(stats.coordinator_time),
                ms(wall),
                bytes(sent),
                sent / (8.0 * d as f64),
                bytes(received),
            );
        }
    }
    println!();
}

fn compare(n: usize, d: usize, neighbours: usize, repeats: usize) {
    let graph = if neighbours + 1 >= n {
        GraphSpec::Complete
    } else {
        GraphSpec::Sparse {
            neighbours: neighbours as u32,
            seed: [9; 32],
        }
    };
    let fed = federation(n, d, graph, None);
    let xs = common::inputs(n, d, 1);
    let mut best = Duration::MAX;
    let mut best_cpu: Option<f64> = None;
    for r in 0..repeats {
        let cpu = process_cpu_seconds();
        let start = Instant::now();
        // Messages are moved, not encoded (the Flower router passes objects too).
        let outcome = common::run_counting(&fed, &xs, &vec![None; n], 500 + r as u64, false);
        best = best.min(start.elapsed());
        if let (Some(before), Some(after)) = (cpu, process_cpu_seconds()) {
            best_cpu = Some(best_cpu.map_or(after - before, |b| b.min(after - before)));
        }
        common::assert_exact(&outcome, &xs, d, "compare round");
    }
    if let Some(cpu) = best_cpu {
        println!("fedprof_round_cpu_seconds {cpu:.6}");
    }
    println!("fedprof_round_seconds {:.6}", best.as_secs_f64());
}

/// CPU time of the whole process, every thread summed (Linux: the first field of each
/// `/proc/self/task/*/schedstat`, in ns; masks of long vectors are folded on the rayon pool),
/// to tell the round's own cost from the wait for a loaded machine's cores. `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let mut ns = 0f64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<f64>().ok()?;
    }
    Some(ns / 1e9)
}

fn ms(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

fn bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}
