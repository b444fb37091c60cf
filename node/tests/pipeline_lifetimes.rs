//! fedprof's BTYD features against the `lifetimes` Python package.
//!
//! `tests/data/lifetimes/expected.csv` is `lifetimes.utils.summary_data_from_transaction_data`
//! (freq "D", monetary values, observation end 2026-06-30) over `transactions.csv`, written by
//! `benches/compare/lifetimes_reference.sh` and committed, so this test needs no Python.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{
    self, DateParser, PipelineSpec, RunOptions, SourceSpec, TransactionsSpec,
};

#[test]
fn btyd_features_match_lifetimes() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lifetimes");
    let t = TransactionsSpec {
        source: SourceSpec::new(data.join("transactions.csv")),
        customer: "customer_id".into(),
        date: "timestamp".into(),
        amount: "amount".into(),
        channel: None,
        category: None,
        date_parser: DateParser::Iso,
    };
    let spec = PipelineSpec::new(t, pipeline::dates::parse_iso_day("2026-06-30").unwrap());
    let key = Pseudonymizer::new(SecretKey32::from_bytes([0; 32]));
    let out = pipeline::compute(
        &spec,
        &key,
        &RunOptions {
            reveal_ids: true,
            quarantine: None,
            progress: None,
        },
    )
    .unwrap();
    let f = &out.features;
    let mut expected: BTreeMap<String, (f64, f64, f64, f64)> = BTreeMap::new();
    let text = std::fs::read_to_string(data.join("expected.csv")).unwrap();
    for line in text.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        let n = |i: usize| v[i].parse::<f64>().unwrap();
        expected.insert(v[0].to_owned(), (n(1), n(2), n(3), n(4)));
    }
    assert!(
        expected.len() > 300,
        "reference has {} customers",
        expected.len()
    );
    assert_eq!(
        f.customer,
        expected.keys().cloned().collect::<Vec<_>>(),
        "the same customers"
    );
    let mut repeaters = 0;
    for (i, (c, (frequency, recency, t, monetary))) in expected.iter().enumerate() {
        assert_eq!(f64::from(f.frequency[i]), *frequency, "{c} frequency");
        assert_eq!(f64::from(f.recency_days[i]), *recency, "{c} recency");
        assert_eq!(f64::from(f.tenure_days[i]), *t, "{c} T");
        let got = f.monetary_mean_repeat[i];
        assert!(
            (got - monetary).abs() < 1e-6 * monetary.max(1.0),
            "{c} monetary_value {got} vs {monetary}"
        );
        repeaters += usize::from(*frequency > 0.0);
    }
    assert!(
        repeaters > 100,
        "the reference exercises repeat purchases ({repeaters})"
    );
    // Rows after the observation end are ignored by lifetimes and quarantined here.
    assert!(
        out.quality.tables[0]
            .by_reason
            .get("after_as_of")
            .copied()
            .unwrap_or(0)
            > 0
    );
}
