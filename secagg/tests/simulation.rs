//! In-process rounds with dropouts injected at each phase: the released sum is exact every
//! time, and below the threshold the round aborts and releases nothing.
//!
//! The `#[ignore]`d runs are nearly all public-key work, linear in the edges of the graph:
//! per round every node checks one Ed25519 signature and does two X25519 agreements per
//! neighbour (80 at 1000 nodes sparse, 999 on the complete graph). They take minutes, so they
//! run on every core (the nodes of a phase are independent) and one at a time; see
//! `docs/SECAGG.md`, "Simulations":
//! `cargo test --release -p fedprof-secagg --test simulation -- --ignored --test-threads 1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{
    Driver, DropAt, PHASES, assert_exact, federation, inputs, run, run_with, run_with_dropouts,
};
use fedprof_secagg::{AbortReason, CoordinatorError, GraphSpec};

const SPARSE_SEED: [u8; 32] = [0x5a; 32];

fn check_dropouts(n: usize, d: usize, graph: GraphSpec, threshold: Option<usize>, rates: &[usize]) {
    let fed = federation(n, d, graph, threshold);
    let xs = inputs(n, d, 1);
    for &percent in rates {
        for (i, phase) in PHASES.into_iter().enumerate() {
            let count = n * percent / 100;
            let outcome = run_with_dropouts(&fed, &xs, phase, count, 100 + i as u64);
            let what = format!("n={n} {graph:?} {percent}% at {phase:?}");
            assert_exact(&outcome, &xs, d, &what);
            let expected = if phase == DropAt::Unmask {
                n
            } else {
                n - count
            };
            assert_eq!(outcome.contributors.len(), expected, "{what}");
        }
    }
}

fn check_below_threshold_aborts(n: usize, d: usize, graph: GraphSpec, threshold: Option<usize>) {
    let fed = federation(n, d, graph, threshold);
    let t = fed.config.threshold();
    let xs = inputs(n, d, 2);
    for (i, phase) in PHASES.into_iter().enumerate() {
        // One more dropout than the threshold allows.
        let outcome = run_with_dropouts(&fed, &xs, phase, n - t + 1, 200 + i as u64);
        match outcome.result {
            Err(CoordinatorError::Aborted(
                AbortReason::TooFewSurvivors { .. } | AbortReason::NeighbourhoodTooSmall { .. },
            )) => {}
            Err(e) => panic!("{phase:?}: unexpected error {e}"),
            Ok(_) => panic!("{phase:?}: released a sum below the threshold"),
        }
    }
}

#[test]
fn no_dropouts_gives_the_exact_sum() {
    let fed = federation(6, 33, GraphSpec::Complete, None);
    let xs = inputs(6, 33, 3);
    let outcome = run(&fed, &xs, &[None; 6], 3);
    assert_exact(&outcome, &xs, 33, "complete, no dropouts");
    assert_eq!(outcome.contributors.len(), 6);
}

/// The default-suite variant (a few hundred signature checks and agreements, so it stays fast
/// in debug builds): 100 nodes on a sparse graph (4 neighbours, threshold 3 of 5),
/// 10% dropouts spread over every phase in one round, then below-threshold aborts.
#[test]
fn hundred_nodes_sparse_dropouts_in_every_phase() {
    let graph = GraphSpec::Sparse {
        neighbours: 4,
        seed: SPARSE_SEED,
    };
    let fed = federation(100, 8, graph, Some(3));
    let xs = inputs(100, 8, 4);
    let mut drop_at = vec![None; 100];
    for (k, u) in common::pick(100, 10, 7).into_iter().enumerate() {
        drop_at[u as usize] = Some(PHASES[k % 4]);
    }
    let outcome = run(&fed, &xs, &drop_at, 7);
    assert_exact(&outcome, &xs, 8, "100 nodes, 10% over all phases");
    // Of the 10, 3 stop at advertising, 3 at sharing, 2 at masking and 2 at unmasking (these
    // two are in the sum: their masked inputs arrived).
    assert_eq!(outcome.contributors.len(), 92);
    // Fewer than t advertisements in the whole round: abort before anything is shared.
    let outcome = common::run_with_dropouts(&fed, &xs, DropAt::Advertise, 98, 8);
    assert!(matches!(
        outcome.result,
        Err(CoordinatorError::Aborted(AbortReason::TooFewSurvivors {
            have: 2,
            need: 3,
            ..
        }))
    ));
}

/// The harness runs the nodes of a phase on several threads for the large sweeps; every
/// node has its own seeded RNG and the coordinator takes the replies in node order, so the
/// round (masked vectors, bytes, result) is the same on one thread and on four.
#[test]
fn outcome_does_not_depend_on_the_number_of_threads() {
    let graph = GraphSpec::Sparse {
        neighbours: 4,
        seed: SPARSE_SEED,
    };
    let fed = federation(12, 40, graph, Some(3));
    let xs = inputs(12, 40, 9);
    let mut drop_at = vec![None; 12];
    drop_at[3] = Some(DropAt::Masked);
    drop_at[7] = Some(DropAt::Unmask);
    let driver = |threads| Driver {
        count_bytes: true,
        threads,
    };
    let one = run_with(&fed, &xs, &drop_at, 9, driver(1));
    let four = run_with(&fed, &xs, &drop_at, 9, driver(4));
    assert_exact(&one, &xs, 40, "one thread");
    assert_exact(&four, &xs, 40, "four threads");
    assert_eq!(one.contributors.len(), 11);
    assert_eq!(one.masked_of_first, four.masked_of_first);
    assert_eq!(one.stats.sent, four.stats.sent);
    assert_eq!(one.stats.received, four.stats.received);
    assert_eq!(one.result.unwrap(), four.result.unwrap());
}

/// Dense pairwise-mask recovery in the default suite: 3 of 10 drop after sharing.
#[test]
fn ten_nodes_complete_dropouts_after_sharing() {
    let fed = federation(10, 8, GraphSpec::Complete, None);
    let xs = inputs(10, 8, 5);
    let outcome = common::run_with_dropouts(&fed, &xs, DropAt::Masked, 3, 5);
    assert_exact(&outcome, &xs, 8, "10 nodes, 3 dropped before masking");
    assert_eq!(outcome.contributors.len(), 7);
    let outcome = common::run_with_dropouts(&fed, &xs, DropAt::Masked, 4, 6);
    assert!(matches!(
        outcome.result,
        Err(CoordinatorError::Aborted(AbortReason::TooFewSurvivors {
            have: 6,
            need: 7,
            ..
        }))
    ));
}

#[test]
#[ignore = "seconds in release; see docs/SECAGG.md, Simulations"]
fn hundred_nodes_sparse_dropouts_at_each_phase() {
    let graph = GraphSpec::Sparse {
        neighbours: 20,
        seed: SPARSE_SEED,
    };
    // 10% with the default threshold (14 of 21); 30% with a majority threshold (11 of 21).
    check_dropouts(100, 16, graph, None, &[10]);
    check_dropouts(100, 16, graph, Some(11), &[30]);
    check_below_threshold_aborts(100, 4, graph, None);
}

#[test]
#[ignore = "seconds in release; see docs/SECAGG.md, Simulations"]
fn hundred_nodes_complete_dropouts_at_each_phase() {
    check_dropouts(100, 16, GraphSpec::Complete, None, &[10, 30]);
    check_below_threshold_aborts(100, 4, GraphSpec::Complete, None);
}

/// About 140 s of CPU in release (12 rounds, 8.6 of them full: 2.1 million X25519 agreements
/// and signature checks).
#[test]
#[ignore = "minutes in release; see docs/SECAGG.md, Simulations"]
fn thousand_nodes_sparse_dropouts_at_each_phase() {
    let graph = GraphSpec::Sparse {
        neighbours: 80,
        seed: SPARSE_SEED,
    };
    check_dropouts(1000, 16, graph, None, &[10]);
    check_dropouts(1000, 16, graph, Some(41), &[30]);
    check_below_threshold_aborts(1000, 4, graph, None);
}

/// The dense graph at 1000 nodes costs about 2000 X25519 agreements and 1000 signature checks
/// per node (about 200 s of CPU per round in release), so it runs the hardest case only: 30%
/// drop after sharing (every dropped key rebuilt, 210,000 pairwise masks removed), plus an
/// abort.
#[test]
#[ignore = "minutes in release; see docs/SECAGG.md, Simulations"]
fn thousand_nodes_complete_dropouts_after_sharing() {
    let (n, d) = (1000, 16);
    let fed = federation(n, d, GraphSpec::Complete, None);
    let xs = inputs(n, d, 1);
    let outcome = common::run_with_dropouts(&fed, &xs, DropAt::Masked, 300, 300);
    assert_exact(&outcome, &xs, d, "1000 nodes complete, 30% after sharing");
    assert_eq!(outcome.contributors.len(), 700);
    let outcome = common::run_with_dropouts(&fed, &xs, DropAt::Advertise, 334, 301);
    assert!(matches!(
        outcome.result,
        Err(CoordinatorError::Aborted(AbortReason::TooFewSurvivors {
            have: 666,
            need: 667,
            ..
        }))
    ));
}

/// One node's masked vector, byte by byte, against the uniform distribution (chi-square with
/// 255 degrees of freedom): the input is all small numbers (most bytes zero), the masked
/// vector is indistinguishable from uniform, and the unmasked total is still exact.
#[test]
fn masked_vector_is_uniform_and_total_exact() {
    let n = 5;
    let d = 1 << 15;
    let fed = federation(n, d, GraphSpec::Complete, None);
    // Small counts: 7 of every 8 bytes are zero.
    let xs: Vec<Vec<u64>> = (0..n)
        .map(|u| (0..d as u64).map(|i| (i * 7 + u as u64) % 100).collect())
        .collect();
    let outcome = run(&fed, &xs, &[None; 5], 11);
    assert_exact(&outcome, &xs, d, "uniformity round");
    let masked = outcome.masked_of_first.expect("node 0 sent a masked input");
    let plain: Vec<u8> = xs[0].iter().flat_map(|v| v.to_le_bytes()).collect();
    // Critical value of chi-square(255) at p = 0.001 is 330.5; at p = 0.999 it is 190.9.
    let chi_masked = chi_square(&masked);
    assert!(
        (190.9..330.5).contains(&chi_masked),
        "masked bytes: chi2 = {chi_masked}"
    );
    let chi_plain = chi_square(&plain);
    assert!(
        chi_plain > 100_000.0,
        "the test can tell structure from noise: chi2 = {chi_plain}"
    );
}

fn chi_square(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let expected = bytes.len() as f64 / 256.0;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}
