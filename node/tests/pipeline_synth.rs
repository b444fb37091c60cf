//! Generated data with a manifest of dirty rows: cleaning must find exactly those, kind by kind
//! and row by row, in CSV and in Parquet, and both formats must give the same features.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::spec::{CleaningConfig, FeaturesConfig};
use fedprof_node::pipeline::{self, PipelineSpec, RunOptions};
use fedprof_synth::{NodeManifest, Plan, Scenario};

fn spec(dir: &Path, file: &str, m: &NodeManifest) -> PipelineSpec {
    let mut s = common::transactions_spec(&dir.join(file), &m.as_of);
    s.customers = Some(common::customers_spec(dir));
    let cleaning = CleaningConfig {
        start: Some(m.start.clone()),
        max_amount: Some(m.max_amount.clone()),
    };
    s.apply(&cleaning, &FeaturesConfig::default()).unwrap();
    s
}

fn quarantined(path: &Path) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[0] == "transactions" {
            out.entry(f[3].to_owned())
                .or_default()
                .push(f[2].parse().unwrap());
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

fn check(scenario: Scenario) {
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = Plan::new(scenario, 2, 3_000, 11, tmp.path());
    plan.dirty_per_million = 40_000;
    let summary = fedprof_synth::generate(&plan, &|_, _| {}).unwrap();
    let key = Pseudonymizer::new(SecretKey32::from_bytes([1; 32]));
    for (dir, m) in &summary.nodes {
        let mut features = Vec::new();
        for (file, want) in [
            ("transactions.csv", &m.dirty_csv),
            ("transactions.parquet", &m.dirty_parquet),
        ] {
            let q = dir.join(format!("{file}.quarantine.csv"));
            let opts = RunOptions {
                reveal_ids: false,
                quarantine: Some(&q),
                progress: None,
            };
            let out = pipeline::compute(&spec(dir, file, m), &key, &opts).unwrap();
            let want: BTreeMap<String, Vec<u64>> = want
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            assert_eq!(
                want.len(),
                9 - usize::from(file.ends_with("parquet")) * 2,
                "every kind is exercised: {want:?}"
            );
            assert_eq!(quarantined(&q), want, "{} {file}", m.node);
            assert!(out.quality.balanced());
            let t = &out.quality.tables[1];
            assert_eq!(t.rows_in, m.transaction_rows);
            assert_eq!(out.quality.tables[0].rows_in, m.customer_rows);
            assert_eq!(out.quality.tables[0].rows_quarantined, 0);
            assert!(
                out.features
                    .demographics
                    .as_ref()
                    .unwrap()
                    .age_band
                    .iter()
                    .all(Option::is_some)
            );
            features.push(out.features);
        }
        assert_eq!(
            features[0], features[1],
            "CSV and Parquet give the same features"
        );
        assert!(features[0].len() > 1000);
    }
}

#[test]
fn bank_cleaning_finds_exactly_the_manifest() {
    check(Scenario::Bank);
}

#[test]
fn brands_cleaning_finds_exactly_the_manifest() {
    check(Scenario::Brands);
}

#[test]
fn generation_is_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&a, &b] {
        fedprof_synth::generate(&Plan::new(Scenario::Bank, 2, 500, 5, d.path()), &|_, _| {})
            .unwrap();
    }
    for f in [
        "branch-1/transactions.csv",
        "branch-2/credit.csv",
        "branch-1/manifest.json",
        "branch-2/customers.csv",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f}"
        );
    }
}
