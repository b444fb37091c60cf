//! Throughput of the exact discrete Gaussian sampler (samples per second, one thread) for
//! sigma in {1, 10, 10^3, 10^6}, with a fixed-seed ChaCha20 CSPRNG as in production.
//!
//! Run: `cargo bench -p fedprof-privacy --bench sampler`. Each figure is the best of 7 rounds of
//! about 0.3 s (timings drift on a shared machine; the best round is the least disturbed). The
//! table also shows the raw ChaCha20 rate, to tell sampler cost from generator cost.
#![expect(
    clippy::print_stdout,
    clippy::expect_used,
    reason = "a harness-less bench prints its table; its constant inputs are valid"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use fedprof_privacy::{DiscreteGaussian, Variance};
use rand_core::{Rng, SeedableRng};

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(300);

/// Best rate (operations per second) of `op` over [`ROUNDS`] timed rounds.
fn best_rate(mut op: impl FnMut() -> i64) -> f64 {
    // Calibrate a batch size that takes about ROUND_TIME.
    let mut batch = 1usize;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(op());
        }
        if start.elapsed() >= ROUND_TIME / 4 {
            break;
        }
        batch *= 2;
    }
    batch *= 4;
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(op());
            }
            batch as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let mut rng = ChaCha20Rng::from_seed([42; 32]);
    let chacha = best_rate(|| rng.next_u64() as i64);
    println!("| sigma | sigma^2 | samples/s (best of {ROUNDS}) | ns/sample |");
    println!("|---:|---:|---:|---:|");
    for (sigma, variance) in [
        ("1", "1"),
        ("10", "100"),
        ("10^3", "1000000"),
        ("10^6", "1000000000000"),
    ] {
        let v: Variance = variance.parse().expect("valid variance");
        let g = DiscreteGaussian::new(&v);
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let rate = best_rate(|| g.sample(&mut rng));
        println!("| {sigma} | {variance} | {rate:.0} | {:.0} |", 1e9 / rate);
    }
    println!(
        "| (ChaCha20Rng::next_u64 alone) | | {chacha:.0} | {:.1} |",
        1e9 / chacha
    );
}
