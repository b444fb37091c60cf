//! Federation-pseudonym throughput: first blinding, re-blinding, and both as rayon batches.
//!
//! `cargo bench -p fedprof-crypto --bench blind` prints a Markdown table. `BLIND_BENCH_IDS`
//! changes the number of ids (default 100,000). Ids (`C0000000`, ...) and the key (ChaCha20
//! seed `[7; 32]`) are fixed and made before timing. Single-thread rows report this thread's
//! CPU time (`/proc/thread-self/schedstat`): on a shared machine that is what a dedicated core
//! would take. Batch rows report wall time and the CPU time of all the process's threads
//! (`/proc/self/task/*/schedstat`), on a 2-thread rayon pool.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    reason = "benchmark"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use fedprof_crypto::blind::{BlindedId, BlindingKey};
use rand_core::SeedableRng;

fn schedstat_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn thread_cpu() -> Duration {
    Duration::from_nanos(schedstat_ns("/proc/thread-self/schedstat"))
}

/// CPU time of every live thread of the process (rayon's workers stay alive, so this is
/// monotone across one measurement).
fn process_cpu() -> Duration {
    let total = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|t| schedstat_ns(&format!("{}/schedstat", t.path().display())))
                .sum()
        })
        .unwrap_or(0);
    Duration::from_nanos(total)
}

struct Row {
    name: &'static str,
    threads: usize,
    wall: Duration,
    cpu: Duration,
}

/// Best of three by CPU time.
fn measure(mut f: impl FnMut(), cpu: fn() -> Duration) -> (Duration, Duration) {
    (0..3)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu());
            f();
            (t.elapsed(), cpu() - c)
        })
        .min_by_key(|&(_, c)| c)
        .unwrap()
}

fn main() {
    let n: usize = std::env::var("BLIND_BENCH_IDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let owned: Vec<String> = (0..n).map(|i| format!("C{i:07}")).collect();
    let raws: Vec<&str> = owned.iter().map(String::as_str).collect();
    let a = BlindingKey::generate(&mut ChaCha20Rng::from_seed([7; 32]));
    let b = BlindingKey::generate(&mut ChaCha20Rng::from_seed([8; 32]));
    let blinded: Vec<BlindedId> = a.blind_batch(&raws).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();

    let mut rows = Vec::new();
    let (wall, cpu) = measure(
        || {
            for raw in &raws {
                black_box(a.blind_raw(black_box(raw)).unwrap());
            }
        },
        thread_cpu,
    );
    rows.push(Row {
        name: "first blinding (hash + mul + compress)",
        threads: 1,
        wall,
        cpu,
    });
    let (wall, cpu) = measure(
        || {
            for x in &blinded {
                black_box(b.reblind(black_box(x)).unwrap());
            }
        },
        thread_cpu,
    );
    rows.push(Row {
        name: "re-blinding (decompress + mul + compress)",
        threads: 1,
        wall,
        cpu,
    });
    let (wall, cpu) = measure(
        || {
            black_box(pool.install(|| a.blind_batch(black_box(&raws)).unwrap()));
        },
        process_cpu,
    );
    rows.push(Row {
        name: "blind_batch",
        threads: 2,
        wall,
        cpu,
    });
    let (wall, cpu) = measure(
        || {
            black_box(pool.install(|| b.reblind_batch(black_box(&blinded)).unwrap()));
        },
        process_cpu,
    );
    rows.push(Row {
        name: "reblind_batch",
        threads: 2,
        wall,
        cpu,
    });

    println!("{n} ids, best of 3 by CPU time\n");
    println!(
        "| operation | threads | wall | CPU | CPU per id | ids/s per core (CPU) | ids/s whole machine (wall) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let per_id = r.cpu.as_secs_f64() / n as f64;
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.1} us | {:.0} | {:.0} |",
            r.name,
            r.threads,
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            per_id * 1e6,
            1.0 / per_id,
            n as f64 / r.wall.as_secs_f64(),
        );
    }
}
