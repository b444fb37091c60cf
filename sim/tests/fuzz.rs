//! The fuzz harnesses of `fedprof_sim::fuzz` on stable, without a fuzzer (security review
//! L12): each over 10,000 seeded inputs, half of them mutated seeds (valid ledgers, configs,
//! a job's message sequence), half random bytes. `FUZZ_CASES=N` runs N each instead. A
//! failure prints the case's seed; `FUZZ_SEED=S` replays it alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use chacha20::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng as _};

/// Runs `harness` over the cases (or the one `FUZZ_SEED` names), naming the failing seed.
fn run(harness: fn(&[u8]), seeds: &[&[u8]]) {
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let only: Option<u64> = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok());
    for case in only.map_or(0..cases, |s| s..s + 1) {
        let mut rng = ChaCha20Rng::seed_from_u64(case);
        let input = if case % 2 == 0 && !seeds.is_empty() {
            let seed = seeds[(rng.next_u64() % seeds.len() as u64) as usize];
            fedprof_sim::fuzz::mutate(seed, &mut rng)
        } else {
            let mut bytes = vec![0u8; (rng.next_u64() % 512) as usize];
            rng.fill_bytes(&mut bytes);
            bytes
        };
        if std::panic::catch_unwind(|| harness(&input)).is_err() {
            panic!("FUZZ_SEED={case} fails; input: {input:?}");
        }
    }
}

#[test]
fn ledger_lines_and_books() {
    run(
        fedprof_sim::fuzz::ledger,
        &[
            include_bytes!("../../ledger/tests/fixtures/legacy/node-a.jsonl"),
            include_bytes!("../../ledger/tests/fixtures/legacy/node-b.jsonl"),
            include_bytes!("../../ledger/tests/fixtures/legacy/coordinator.jsonl"),
        ],
    );
}

const NODE_TOML: &[u8] = b"\x00coordinator = \"127.0.0.1:7300\"\n\
[tls]\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
[data]\ntransactions = \"t.csv\"\npseudonym_key = \"k\"\n\
[connection]\ninitial_backoff_ms = 500\nmax_backoff_ms = 30000\n\
[privacy]\nledger = \"state\"\ncap_rho = \"2/1\"\n\
[floor]\nmin_colluders = 1\nmax_honest_shares = 2\nmax_rho_per_release = \"1/2\"\n";

const COORDINATOR_TOML: &[u8] = b"\x01listen = \"127.0.0.1:7300\"\n\
[tls]\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
[limits]\nidle_timeout_secs = 30\nmax_frame_bytes = 16777216\n\
[rounds]\nmin_nodes = 2\ncontribution_timeout_secs = 120\n\
[privacy]\nrho_per_job = \"3/5\"\ncolluders = 1\nrho_per_analyst_period = \"2/1\"\n\
[ledger]\npath = \"l.jsonl\"\nmin_cell_size = 10\n";

#[test]
fn node_and_coordinator_configs() {
    run(fedprof_sim::fuzz::config, &[NODE_TOML, COORDINATOR_TOML]);
}

/// After the harness's prelude (nodes a, b, c registered on connections 1-3, analyst d on
/// 4): d submits a job, a and b accept it, c refuses, time passes, a's connection closes.
const A_JOB: &[u8] = &[
    1, 3, 0, 4, 1, 2, // d submits a job (request 1, budget 1/2)
    1, 0, 1, 1, // a accepts job 1
    1, 1, 1, 1, // b accepts it
    1, 2, 1, 2, 2, 3, b'c', b'a', b'p', // c refuses it
    6, 60, // six seconds pass
    5, 0, 0, // a's connection closes
];

#[test]
fn coordinator_core_message_orders() {
    run(fedprof_sim::fuzz::coordinator_core, &[A_JOB]);
}

/// The harnesses can fail: a broken invariant in what they check is reported with its seed.
#[test]
fn a_failing_harness_is_reported() {
    let caught = std::panic::catch_unwind(|| {
        run(|data| assert!(data.len() < 400, "long input"), &[]);
    });
    let message = caught.unwrap_err();
    let text = message.downcast_ref::<String>().unwrap();
    assert!(text.contains("FUZZ_SEED="), "{text}");
}
