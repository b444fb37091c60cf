//! Empirical privacy (DP auditing): for each kind of feature-query release, the real node
//! computation plus its noise is run many times on neighbouring datasets, and a statistical
//! lower bound on epsilon at the recorded delta must not exceed the epsilon the ledger accounts
//! for. A deliberately mis-accounted release (the negative control) must be caught.
//!
//! # What is measured
//!
//! * **Neighbouring datasets.** `D` is a handful of customers written as CSV files (transactions
//!   and a customers table); `D'` is `D` plus one worst-case customer for the release kind. Both
//!   go through the real pipeline ([`pipeline::compute`]) and the real query evaluation
//!   ([`evaluate`]) once; `Delta = exact(D') - exact(D)`. The test asserts that the customer
//!   really is worst case: `|Delta|_2^2 = parts x scale^2`, the sensitivity the accounting
//!   charges (so the audit is not made easy by a weak neighbour).
//! * **Adversary.** It knows both datasets, the query, every colluder's share and the exact sums;
//!   only the `honest = n_min - colluders` honest noise shares are unknown. So the output of a
//!   trial is `exact + sum of honest shares`, each share an independent
//!   [`DiscreteGaussian`] per coordinate with the per-node variance [`plan_query`] chose (the
//!   sampler [`fedprof_node::query::noisy`] uses; a check below confirms that `noisy` draws
//!   exactly these samples). Coordinates where `Delta = 0` are independent of the rest and
//!   identical under `D` and `D'`, so they are not sampled.
//! * **Statistic.** The projection `T = <y - exact(D), Delta>`: the likelihood-ratio
//!   (Neyman-Pearson optimal) test for Gaussian noise. `N` trials on `D` and `N` on `D'`.
//! * **Bound.** For an event `S` (`T >= t`, or `T < t` for the other direction),
//!   (epsilon, delta)-DP implies `P_D'(S) <= e^eps P_D(S) + delta` (and the same with `D`, `D'`
//!   swapped), so `eps >= ln((p1_lower - delta) / p0_upper)` whenever the Clopper-Pearson bounds
//!   hold. Each of the two one-sided bounds has level `alpha / 2` (union bound): the lower
//!   bound is valid with confidence `1 - alpha = 95%`.
//! * **Threshold selection.** The threshold and direction are chosen on the first half of the
//!   samples of each side (maximizing the same bound over a geometric grid of tail counts), and
//!   the bound is then computed once on the second, independent half, so no multiple-testing
//!   correction is needed. The table reports `N` per side (half of it decides the bound).
//! * **Accounted epsilon.** [`epsilon_for_delta`] of [`query_rho`] at `delta = 1e-6` (the
//!   product's default display delta).
//!
//! # Negative control
//!
//! The pre-fix repeated-levels bug: a Mix level listed `k = 8` times put the customer's share in
//! 8 coordinates, each with its own noise, while the accounting charged one part. It is not built
//! as a query with repeated levels (validation refuses those): the one-level query is evaluated
//! by the real pipeline, its coordinate repeated 8 times with independent noise, and charged at
//! the one-level query's rho. Its true loss is 8 times the charge; the audit must find a bound
//! above the accounted epsilon. Rho 1/8 is chosen for power: there the accounted epsilon is 2.42,
//! and the leaked Gaussian (shift `sqrt(8) x 0.5 = 1.41` noise deviations instead of 0.5) yields
//! an expected bound of about 3.2 with 10,000 evaluation trials per side, 3.5 with 25,000 and 4.5
//! with 500,000 (expected counts and scipy's Clopper-Pearson). Honest releases' bounds are well
//! below their accounted epsilon (about 0.6 of it with 10^6 trials): the conversion from zCDP is
//! nearly tight for the Gaussian (the exact Gaussian epsilon at rho 1/8 and delta 1e-6 is 2.25),
//! but the events that would show it have probabilities near delta, which a finite sample cannot
//! see. That is expected; it means the audit catches gross mis-accounting (the long run would
//! catch a loss about 3 times the charge, the default one about 5 times), not small slack.
//!
//! # Running
//!
//! The default test uses 20,000 trials per side (50,000 for the control, whose margin over its
//! accounted epsilon is thin at 20,000) and takes about 20 s in the debug `cargo test`; the long
//! one (10^6 per side, about 15 s in release) is ignored by default:
//! `cargo test --release -p fedprof-node --test empirical_privacy -- --ignored --nocapture`.
//! Seeded: the same seed gives the same table.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a test fails by panicking and prints its table for --nocapture"
)]

#[path = "common/clopper_pearson.rs"]
mod clopper_pearson;
mod common;

use std::path::Path;
use std::time::Instant;

use chacha20::ChaCha20Rng;
use clopper_pearson::{cp_lower, cp_upper};
use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{self, FeatureTable, RunOptions};
use fedprof_node::query::{evaluate, noisy};
use fedprof_privacy::query::{plan_query, query_rho, query_variance};
use fedprof_privacy::{DiscreteGaussian, Rho, epsilon_for_delta};
use fedprof_protocol::query::{
    CategoricalFeature, Dimension, FeatureQuery, MixFeature, NumericFeature, QueryPart, Segmenter,
};
use fedprof_protocol::{Fraction, ReleaseParams};
use rand_core::SeedableRng;

const SCALE: u32 = 1000;
const AS_OF: &str = "2026-01-31";
/// The display delta the product uses by default (`fedprof audit --delta`, profile specs).
const DELTA: f64 = 1e-6;
/// One minus the confidence of the lower bound.
const ALPHA: f64 = 0.05;
const SEED: u64 = 0x00fe_dd9a_0d17;
/// Coordinates the control repeats the one-level coordinate into.
const REPEATS: usize = 8;

// ---------------------------------------------------------------------------------------------
// The lower bound from two samples of the statistic.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The event `T >= t` (likelier under `D'`).
    Up,
    /// The event `T < t` (likelier under `D`).
    Down,
}

/// `ln((lower(p_more) - delta) / upper(p_less))` for the event `(direction, t)`, from sorted
/// samples under `D` (`s0`) and `D'` (`s1`) of equal size; `-inf` when the numerator is not
/// positive.
fn eps_at(direction: Direction, t: i128, s0: &[i128], s1: &[i128]) -> f64 {
    let n = s0.len();
    let at_least = |s: &[i128]| s.len() - s.partition_point(|x| *x < t);
    let below = |s: &[i128]| s.partition_point(|x| *x < t);
    let (more, less) = match direction {
        Direction::Up => (at_least(s1), at_least(s0)),
        Direction::Down => (below(s0), below(s1)),
    };
    let numerator = cp_lower(more, n, ALPHA / 2.0) - DELTA;
    if numerator <= 0.0 {
        return f64::NEG_INFINITY;
    }
    (numerator / cp_upper(less, n, ALPHA / 2.0)).ln()
}

/// Candidate events: thresholds cutting `k` samples off the tail of the less likely side, `k`
/// on a geometric grid from 0 to `n / 2`.
fn candidates(s0: &[i128], s1: &[i128]) -> Vec<(Direction, i128)> {
    let n = s0.len();
    let mut out = vec![(Direction::Up, s0[n - 1] + 1), (Direction::Down, s1[0])];
    let mut k = 1usize;
    while k <= n / 2 {
        out.push((Direction::Up, s0[n - k]));
        out.push((Direction::Down, s1[k]));
        k = (k * 9 / 8).max(k + 1);
    }
    out
}

/// The audited lower bound: the event is chosen on the first halves, the bound computed on
/// the second halves. Returns the bound (at least 0) and the chosen event.
fn lower_bound(mut s0: Vec<i128>, mut s1: Vec<i128>) -> (f64, Direction, i128) {
    let half = s0.len() / 2;
    let (mut select0, mut select1) = (s0[..half].to_vec(), s1[..half].to_vec());
    let (eval0, eval1) = (&mut s0[half..], &mut s1[half..]);
    select0.sort_unstable();
    select1.sort_unstable();
    eval0.sort_unstable();
    eval1.sort_unstable();
    let (direction, t) = candidates(&select0, &select1)
        .into_iter()
        .map(|(d, t)| (eps_at(d, t, &select0, &select1), d, t))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, d, t)| (d, t))
        .expect("candidates are never empty");
    let eps = eps_at(direction, t, eval0, eval1).max(0.0);
    (eps, direction, t)
}

// ---------------------------------------------------------------------------------------------
// Data and the real pipeline.

const TXN_HEADER: &str = "customer_id,date,amount,channel,category\n";
const CUSTOMER_HEADER: &str = "customer_id,birth_date,gender,region,income_band,signup_date\n";

/// `D`: five customers of mixed channels, categories, stages and regions.
const BASE_TXNS: &str = "a,2026-01-05,12.00,web,food
a,2026-01-20,30.00,store,toys
b,2025-03-01,250.00,store,food
b,2025-03-09,8.50,store,food
c,2025-11-15,45.00,web,toys
d,2026-01-30,5.00,app,food
d,2026-01-30,7.00,web,food
e,2024-06-01,99.00,store,toys
e,2024-06-02,1.00,app,toys
";
const BASE_CUSTOMERS: &str = "a,1990-01-01,f,north,low,2024-01-01
b,1975-06-15,m,south,high,2023-05-01
c,1988-03-03,f,east,mid,2025-01-01
d,2001-09-09,m,north,mid,2025-12-01
e,1960-12-12,f,south,high,2020-01-01
";

/// Runs the real pipeline over `txns` and `customers` written into `dir`; every row must be
/// used (a quarantined worst-case row would make the neighbour weaker than intended).
fn features(dir: &Path, txns: &str, customers: &str) -> FeatureTable {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("transactions.csv");
    std::fs::write(&path, format!("{TXN_HEADER}{txns}")).unwrap();
    std::fs::write(
        dir.join("customers.csv"),
        format!("{CUSTOMER_HEADER}{customers}"),
    )
    .unwrap();
    let mut spec = common::transactions_spec(&path, AS_OF);
    spec.customers = Some(common::customers_spec(dir));
    let key = Pseudonymizer::new(SecretKey32::from_bytes([3; 32]));
    let opts = RunOptions {
        reveal_ids: true,
        quarantine: None,
        progress: None,
    };
    let out = pipeline::compute(&spec, &key, &opts).unwrap();
    for t in &out.quality.tables {
        assert_eq!(t.rows_quarantined, 0, "{t:?}");
    }
    out.features
}

/// One release kind: a query, the worst-case customer `w` added to `D`, and the participation.
struct Case {
    kind: &'static str,
    query: FeatureQuery,
    /// The worst-case customer's transactions (customer id `w`).
    worst: &'static str,
    /// Its region in the customers table.
    region: &'static str,
    n_min: u32,
    colluders: u32,
}

fn query(segmenter: Segmenter, parts: Vec<QueryPart>, cap: (u64, u64)) -> FeatureQuery {
    FeatureQuery {
        label: "empirical-privacy".into(),
        as_of: AS_OF.into(),
        scale: SCALE,
        segmenter,
        parts,
        budget: Fraction {
            numer: cap.0,
            denom: cap.1,
        },
        reserve: Fraction { numer: 0, denom: 1 },
        job: None,
    }
}

fn mix_query(feature: MixFeature, levels: &[&str], cap: (u64, u64)) -> FeatureQuery {
    let levels = levels.iter().map(|l| (*l).to_owned()).collect();
    query(
        Segmenter::All,
        vec![QueryPart::Mix { feature, levels }],
        cap,
    )
}

fn cases() -> Vec<Case> {
    use NumericFeature as N;
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let case = |kind, query, worst, region, n_min, colluders| Case {
        kind,
        query,
        worst,
        region,
        n_min,
        colluders,
    };
    vec![
        case(
            "count, all",
            query(Segmenter::All, vec![QueryPart::Count], (1, 4)),
            "w,2026-01-10,1.00,store,food\n",
            "east",
            3,
            1,
        ),
        case(
            "numeric monetary_total at hi",
            query(
                Segmenter::All,
                vec![QueryPart::Numeric {
                    feature: N::MonetaryTotal,
                    lo: 0,
                    hi: 10_000,
                }],
                (1, 8),
            ),
            "w,2026-01-10,500.00,store,food\n",
            "east",
            2,
            1,
        ),
        case(
            "histogram txn_count",
            query(
                Segmenter::All,
                vec![QueryPart::Histogram {
                    feature: N::TxnCount,
                    edges: vec![2, 5],
                }],
                (1, 8),
            ),
            "w,2026-01-10,1.00,store,food\n",
            "east",
            2,
            1,
        ),
        case(
            "levels region (customers table)",
            query(
                Segmenter::All,
                vec![QueryPart::Levels {
                    feature: CategoricalFeature::Region,
                    levels: strings(&["north", "south"]),
                }],
                (1, 8),
            ),
            "w,2026-01-10,1.00,store,food\n",
            "north",
            2,
            1,
        ),
        case(
            "mix channel, share 1.0 at web",
            mix_query(MixFeature::Channel, &["web", "store"], (1, 8)),
            "w,2026-01-10,10.00,web,food\nw,2026-01-12,20.00,web,toys\n",
            "east",
            2,
            1,
        ),
        case(
            "count + numeric + present",
            query(
                Segmenter::All,
                vec![
                    QueryPart::Count,
                    QueryPart::Numeric {
                        feature: N::Frequency,
                        lo: 0,
                        hi: 3,
                    },
                    QueryPart::Present {
                        feature: N::AvgTicket,
                    },
                ],
                (1, 2),
            ),
            "w,2026-01-01,1.00,web,food\nw,2026-01-02,1.00,web,food\n\
             w,2026-01-03,1.00,web,food\nw,2026-01-04,1.00,web,food\n",
            "east",
            5,
            2,
        ),
        case(
            "rfm: count + numeric days_since_last",
            query(
                Segmenter::Rfm {
                    recency: [30, 90, 180, 365],
                    frequency: [1, 2, 3, 4],
                    monetary: [1_000, 5_000, 10_000, 50_000],
                },
                vec![
                    QueryPart::Count,
                    QueryPart::Numeric {
                        feature: N::DaysSinceLast,
                        lo: 0,
                        hi: 365,
                    },
                ],
                (1, 8),
            ),
            "w,2024-01-01,3.00,store,food\n",
            "east",
            2,
            1,
        ),
        case(
            "lifecycle: count + mix category",
            query(
                Segmenter::Lifecycle,
                vec![
                    QueryPart::Count,
                    QueryPart::Mix {
                        feature: MixFeature::Category,
                        levels: strings(&["food", "toys"]),
                    },
                ],
                (1, 8),
            ),
            "w,2025-12-01,4.00,store,food\nw,2025-12-20,6.00,web,food\n",
            "east",
            3,
            1,
        ),
        case(
            "centroids: count + cost",
            query(
                Segmenter::Centroids {
                    dimensions: vec![Dimension {
                        feature: N::MonetaryTotal,
                        lo: 0,
                        hi: 10_000,
                    }],
                    centroids: vec![vec![0]],
                },
                vec![QueryPart::Count, QueryPart::Cost],
                (1, 8),
            ),
            "w,2026-01-10,300.00,store,food\n",
            "east",
            2,
            1,
        ),
        case(
            "grid txn_count x monetary_total",
            query(
                Segmenter::All,
                vec![QueryPart::Grid {
                    features: vec![N::TxnCount, N::MonetaryTotal],
                    edges: vec![vec![3], vec![5_000]],
                }],
                (1, 8),
            ),
            "w,2026-01-10,80.00,store,food\n",
            "east",
            2,
            1,
        ),
    ]
}

/// `exact(D)` and `exact(D')` of a case, by the real pipeline and evaluation.
fn exact_pair(root: &Path, case: &Case) -> (Vec<i64>, Vec<i64>) {
    let tag = case.kind.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let d = features(&root.join(format!("{tag}-d")), BASE_TXNS, BASE_CUSTOMERS);
    let worst_customer = format!("w,1985-05-05,m,{},mid,2021-01-01\n", case.region);
    let d1 = features(
        &root.join(format!("{tag}-d1")),
        &format!("{BASE_TXNS}{}", case.worst),
        &format!("{BASE_CUSTOMERS}{worst_customer}"),
    );
    assert_eq!(d1.len(), d.len() + 1, "{}: one customer added", case.kind);
    (
        evaluate(&d, &case.query).unwrap(),
        evaluate(&d1, &case.query).unwrap(),
    )
}

// ---------------------------------------------------------------------------------------------
// The audit.

/// A release as the adversary sees it: the exact sums on the coordinates that differ, and the
/// honest noise.
struct Mechanism {
    exact0: Vec<i64>,
    exact1: Vec<i64>,
    noise: DiscreteGaussian,
    honest: u32,
}

impl Mechanism {
    /// Restricts `(exact(D), exact(D'))` to the coordinates where they differ.
    fn new(exact0: &[i64], exact1: &[i64], params: &ReleaseParams) -> Mechanism {
        let (exact0, exact1) = exact0
            .iter()
            .zip(exact1)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (*a, *b))
            .unzip();
        Mechanism {
            exact0,
            exact1,
            noise: DiscreteGaussian::new(&query_variance(params).unwrap()),
            honest: params.min_contributors - params.colluders,
        }
    }

    fn delta_l2_squared(&self) -> i128 {
        self.exact0
            .iter()
            .zip(&self.exact1)
            .map(|(a, b)| i128::from(b - a).pow(2))
            .sum()
    }

    /// `n` draws of `T = <y - exact(D), Delta>` with `y` the noisy release of `D'` (`on_d1`)
    /// or of `D`.
    fn statistics(&self, on_d1: bool, n: usize, rng: &mut ChaCha20Rng) -> Vec<i128> {
        let exact = if on_d1 { &self.exact1 } else { &self.exact0 };
        (0..n)
            .map(|_| {
                exact
                    .iter()
                    .zip(&self.exact0)
                    .zip(&self.exact1)
                    .map(|((x, x0), x1)| {
                        let noise: i64 = (0..self.honest).map(|_| self.noise.sample(rng)).sum();
                        i128::from(x + noise - x0) * i128::from(x1 - x0)
                    })
                    .sum()
            })
            .collect()
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    kind: String,
    rho: f64,
    epsilon: f64,
    lower_bound: f64,
    trials: usize,
    event: String,
}

fn audit(kind: &str, m: &Mechanism, rho: &Rho, trials: usize, seed: u64) -> Row {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let s0 = m.statistics(false, trials, &mut rng);
    let s1 = m.statistics(true, trials, &mut rng);
    let (lower_bound, direction, t) = lower_bound(s0, s1);
    let op = match direction {
        Direction::Up => ">=",
        Direction::Down => "<",
    };
    Row {
        kind: kind.to_owned(),
        rho: rho.to_f64(),
        epsilon: epsilon_for_delta(rho, DELTA).unwrap(),
        lower_bound,
        trials,
        event: format!("T {op} {t}"),
    }
}

/// Checks that the product's `noisy` adds exactly one sample of this sampler per coordinate, in
/// order, from the same stream: the noise model of the audit is the product's.
fn noisy_is_this_sampler(exact: &[i64], params: &ReleaseParams, seed: u64) {
    let got = noisy(exact, params, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
    let sampler = DiscreteGaussian::new(&query_variance(params).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let want: Vec<u64> = exact
        .iter()
        .map(|x| x.wrapping_add(sampler.sample(&mut rng)) as u64)
        .collect();
    assert_eq!(got, want);
}

/// Every release kind with `trials` per side, plus the control (the last row) with
/// `control_trials`.
fn audit_all(trials: usize, control_trials: usize) -> Vec<Row> {
    let root = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let q = &case.query;
        let cap = Rho::from_ratio(q.budget.numer, q.budget.denom).unwrap();
        let params = plan_query(&cap, q, case.n_min, case.colluders).unwrap();
        let rho = query_rho(q, &params).unwrap();
        let (exact0, exact1) = exact_pair(root.path(), case);
        noisy_is_this_sampler(&exact1, &params, SEED ^ 0xa5a5);
        let m = Mechanism::new(&exact0, &exact1, &params);
        let parts = i128::from(q.block_bound().l2_squared);
        assert_eq!(
            m.delta_l2_squared(),
            parts * i128::from(SCALE).pow(2),
            "{}: the added customer must move the release by the full sensitivity",
            case.kind
        );
        let kind = format!("{} (honest {})", case.kind, m.honest);
        rows.push(audit(&kind, &m, &rho, trials, SEED + i as u64));
    }
    rows.push(control(root.path(), control_trials));
    rows
}

/// The negative control (module docs): one Mix level whose coordinate is released `REPEATS`
/// times with independent noise, charged as the one-level query.
fn control(root: &Path, trials: usize) -> Row {
    let case = Case {
        kind: "control",
        query: mix_query(MixFeature::Channel, &["web"], (1, 8)),
        worst: "w,2026-01-10,10.00,web,food\n",
        region: "east",
        n_min: 2,
        colluders: 1,
    };
    let cap = Rho::from_ratio(1, 8).unwrap();
    let params = plan_query(&cap, &case.query, case.n_min, case.colluders).unwrap();
    let rho = query_rho(&case.query, &params).unwrap();
    let (exact0, exact1) = exact_pair(root, &case);
    assert_eq!(exact1[0] - exact0[0], i64::from(SCALE));
    let m = Mechanism::new(&[exact0[0]; REPEATS], &[exact1[0]; REPEATS], &params);
    let kind = format!("CONTROL: mix level x{REPEATS}, charged as one");
    audit(&kind, &m, &rho, trials, SEED + 1000)
}

fn print_table(title: &str, rows: &[Row], seconds: f64) {
    println!(
        "\n{title} ({seconds:.1} s, delta = {DELTA:e}, confidence {:.0}%)",
        100.0 * (1.0 - ALPHA)
    );
    println!(
        "| {:<52} | {:>10} | {:>11} | {:>11} | {:>9} | {:<16} |",
        "release kind", "rho", "epsilon", "lower bound", "trials", "event (eval half)"
    );
    println!(
        "|{:-<54}|{:->12}|{:->13}|{:->13}|{:->11}|{:-<18}|",
        "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<52} | {:>10.6} | {:>11.4} | {:>11.4} | {:>9} | {:<16} |",
            r.kind, r.rho, r.epsilon, r.lower_bound, r.trials, r.event
        );
    }
}

fn run_and_check(title: &str, trials: usize, control_trials: usize) {
    let started = Instant::now();
    let rows = audit_all(trials, control_trials);
    print_table(title, &rows, started.elapsed().as_secs_f64());
    let (control, honest) = rows.split_last().unwrap();
    for r in honest {
        assert!(
            r.lower_bound <= r.epsilon,
            "{}: empirical lower bound {} exceeds the accounted epsilon {}",
            r.kind,
            r.lower_bound,
            r.epsilon
        );
    }
    assert!(
        control.lower_bound > control.epsilon,
        "the audit has no power: the mis-accounted control's bound {} is not above its accounted \
         epsilon {}",
        control.lower_bound,
        control.epsilon
    );
}

#[test]
fn every_release_kind_stays_within_its_accounted_epsilon_and_the_control_is_caught() {
    run_and_check("empirical privacy, default", 20_000, 50_000);
}

#[test]
#[ignore = "long (10^6 trials per side): cargo test --release -p fedprof-node --test empirical_privacy -- --ignored --nocapture"]
fn long_every_release_kind_stays_within_its_accounted_epsilon() {
    run_and_check("empirical privacy, long", 1_000_000, 1_000_000);
}

#[test]
fn the_same_seed_gives_the_same_bound() {
    let root = tempfile::tempdir().unwrap();
    let a = control(root.path(), 2_000);
    let b = control(root.path(), 2_000);
    assert_eq!(a, b);
    assert!(a.lower_bound > 0.0, "{a:?}");
}
