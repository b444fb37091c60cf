//! Mix parts of a feature query through the real pipeline: what one customer contributes depends
//! only on its own rows (privacy review finding C3).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{self, Day, FeatureTable, RunOptions};
use fedprof_node::query::evaluate;
use fedprof_protocol::query::{FeatureQuery, MixFeature, QueryPart, Segmenter};

const SCALE: u32 = 100;

fn features(dir: &Path, name: &str, csv: &str) -> FeatureTable {
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    let mut spec = common::transactions_spec(&path, "2026-01-31");
    spec.start = Day::from_ymd(2000, 1, 1).unwrap();
    let key = Pseudonymizer::new(SecretKey32::from_bytes([7; 32]));
    let opts = RunOptions {
        reveal_ids: true,
        quarantine: None,
        progress: None,
    };
    pipeline::compute_from(&spec, None, &key, &opts)
        .unwrap()
        .features
}

fn query(parts: Vec<QueryPart>) -> FeatureQuery {
    FeatureQuery {
        label: "c3".into(),
        as_of: "2026-01-31".into(),
        scale: SCALE,
        segmenter: Segmenter::All,
        parts,
        budget: fedprof_protocol::Fraction {
            numer: 1,
            denom: 10,
        },
        reserve: fedprof_protocol::Fraction { numer: 0, denom: 1 },
        job: None,
    }
}

/// 40 customers with one transaction each: categories `v01` .. `v31` first, then `shoes` (the
/// 32nd distinct value in row order) for customers `s00` .. `s08`.
fn dataset() -> String {
    let mut csv = String::from("customer_id,date,amount,channel,category\n");
    for i in 1..=31 {
        writeln!(csv, "v{i:02},2026-01-10,10.00,web,v{i:02}").unwrap();
    }
    for i in 0..9 {
        writeln!(csv, "s{i:02},2026-01-11,12.00,store,shoes").unwrap();
    }
    csv
}

/// D' = D plus one customer whose single row comes first, with a category nobody else has.
fn with_kiosk_first(d: &str) -> String {
    let (header, rows) = d.split_once('\n').unwrap();
    format!("{header}\nzz,2026-01-09,1.00,web,kiosk\n{rows}")
}

#[test]
fn c3_one_customer_cannot_push_a_listed_level_into_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset();
    let a = features(dir.path(), "d.csv", &d);
    let b = features(dir.path(), "d_prime.csv", &with_kiosk_first(&d));
    assert_eq!((a.len(), b.len()), (40, 41));
    let q = query(vec![
        QueryPart::Count,
        QueryPart::Mix {
            feature: MixFeature::Category,
            levels: vec!["shoes".into()],
        },
        QueryPart::Mix {
            feature: MixFeature::Category,
            levels: vec!["v31".into(), "kiosk".into(), "shoes".into()],
        },
    ]);
    let (va, vb) = (evaluate(&a, &q).unwrap(), evaluate(&b, &q).unwrap());
    // The shoes customers still count for shoes with the extra customer present.
    assert_eq!(va[1], 9 * i64::from(SCALE), "{va:?}");
    let mut at = 0;
    for part in &q.parts {
        let w = part.width();
        let l1: i64 = (at..at + w).map(|i| (va[i] - vb[i]).abs()).sum();
        assert!(
            l1 <= i64::from(SCALE),
            "one customer moved part {part:?} by {l1} > scale {SCALE}: D {:?}, D' {:?}",
            &va[at..at + w],
            &vb[at..at + w]
        );
        at += w;
    }
}

#[test]
fn every_distinct_value_is_its_own_level() {
    let dir = tempfile::tempdir().unwrap();
    let b = features(dir.path(), "d_prime.csv", &with_kiosk_first(&dataset()));
    let names = b.category_mix.names();
    assert_eq!(names.len(), 33, "{names:?}");
    assert!(names.iter().any(|n| n == "shoes") && names.iter().any(|n| n == "kiosk"));
    assert!(!names.iter().any(|n| n == "other"));
}

#[test]
fn listed_levels_never_seen_count_zero_and_shares_sum_to_at_most_scale() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "customer_id,date,amount,channel,category
a,2026-01-01,1.00,web,food
a,2026-01-02,1.00,store,food
a,2026-01-03,1.00,atm,toys
b,2026-01-04,1.00, WEB ,food
c,2026-01-05,1.00,,food
";
    let t = features(dir.path(), "t.csv", csv);
    let levels: Vec<String> = ["web", "store", "atm", "unknown", "kiosk"]
        .map(String::from)
        .to_vec();
    let q = query(vec![QueryPart::Mix {
        feature: MixFeature::Channel,
        levels: levels.clone(),
    }]);
    // Totals: web a 33 + b 100; store a 33; atm a 33; unknown c 100; kiosk never seen 0.
    assert_eq!(evaluate(&t, &q).unwrap(), [133, 33, 33, 100, 0]);
    // Each customer alone (its own rows through the pipeline): its part sums to at most scale.
    for id in ["a", "b", "c"] {
        let (header, rows) = csv.split_once('\n').unwrap();
        let mine: String = rows
            .lines()
            .filter(|l| l.starts_with(&format!("{id},")))
            .map(|l| format!("{l}\n"))
            .collect();
        let one = features(
            dir.path(),
            &format!("{id}.csv"),
            &format!("{header}\n{mine}"),
        );
        let v = evaluate(&one, &q).unwrap();
        assert!(v.iter().sum::<i64>() <= i64::from(SCALE), "{id}: {v:?}");
        assert_eq!(v[4], 0);
    }
    assert_eq!(t.len(), 3);
}
