//! The columnar aggregation against a naive one (maps of maps), on random tables with
//! duplicates, same-day repeats, id variants and rows after as_of.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{
    self, DateParser, Day, PipelineSpec, RunOptions, SourceSpec, TransactionsSpec,
};
use proptest::prelude::*;

/// (customer, day offset, cents, channel, upper-case id?)
type Row = (u8, u16, u32, u8, bool);

#[derive(Debug, PartialEq)]
struct Naive {
    txn_count: u64,
    purchase_days: u32,
    recency: u32,
    tenure: u32,
    total: i128,
    mean_repeat: f64,
    channel0_share: f64,
}

const AS_OF: u16 = 100;

fn naive(rows: &[Row]) -> BTreeMap<String, Naive> {
    let mut seen = BTreeSet::new();
    let mut per: BTreeMap<String, BTreeMap<u16, (i128, u64, u64)>> = BTreeMap::new();
    for r in rows {
        if r.1 > AS_OF || !seen.insert(*r) {
            continue;
        }
        let days = per.entry(format!("c{}", r.0)).or_default();
        let e = days.entry(r.1).or_default();
        e.0 += i128::from(r.2);
        e.1 += 1;
        e.2 += u64::from(r.3 == 0);
    }
    per.into_iter()
        .map(|(c, days)| {
            let first = *days.keys().next().unwrap();
            let last = *days.keys().last().unwrap();
            let txn_count: u64 = days.values().map(|v| v.1).sum();
            let ch0: u64 = days.values().map(|v| v.2).sum();
            let total: i128 = days.values().map(|v| v.0).sum();
            let repeat: Vec<i128> = days.values().skip(1).map(|v| v.0).collect();
            let mean_repeat = if repeat.is_empty() {
                0.0
            } else {
                repeat.iter().sum::<i128>() as f64 / repeat.len() as f64 / 100.0
            };
            let n = Naive {
                txn_count,
                purchase_days: days.len() as u32,
                recency: u32::from(last - first),
                tenure: u32::from(AS_OF - first),
                total,
                mean_repeat,
                channel0_share: ch0 as f64 / txn_count as f64,
            };
            (c, n)
        })
        .collect()
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    let row = (0u8..12, 0u16..110, 0u32..5000, 0u8..2, any::<bool>());
    prop::collection::vec(row, 0..200)
        .prop_flat_map(|rows| {
            let n = rows.len();
            // Repeat some rows verbatim: exact duplicates.
            (Just(rows), prop::collection::vec(0..n.max(1), 0..20))
        })
        .prop_map(|(mut rows, dups)| {
            for i in dups {
                if let Some(r) = rows.get(i).copied() {
                    rows.push(r);
                }
            }
            rows
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn columnar_equals_naive(rows in rows()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let base = Day::from_ymd(2025, 1, 1).unwrap();
        let mut text = String::from("customer_id,date,amount,channel\n");
        for r in &rows {
            let id = if r.4 { format!(" C{} ", r.0) } else { format!("c{}", r.0) };
            let day = Day::from_days(base.days() + i32::from(r.1));
            // The spelling is part of the row: " C1 " and "c1" are one customer, but two rows
            // that differ only in it are not exact duplicates (the naive side agrees).
            let _ = writeln!(text, "{id},{day},{}.{:02},ch{}", r.2 / 100, r.2 % 100, r.3);
        }
        std::fs::write(&path, &text).unwrap();
        let t = TransactionsSpec {
            source: SourceSpec::new(&path),
            customer: "customer_id".into(),
            date: "date".into(),
            amount: "amount".into(),
            channel: Some("channel".into()),
            category: None,
            date_parser: DateParser::Iso,
        };
        let spec = PipelineSpec::new(t, Day::from_days(base.days() + i32::from(AS_OF)));
        let key = Pseudonymizer::new(SecretKey32::from_bytes([3; 32]));
        let out = pipeline::compute(&spec, &key, &RunOptions { reveal_ids: true, quarantine: None, progress: None }).unwrap();
        prop_assert!(out.quality.balanced());
        let want = naive(&rows);
        let f = &out.features;
        prop_assert_eq!(f.customer.clone(), want.keys().cloned().collect::<Vec<_>>());
        for (i, (_, n)) in want.iter().enumerate() {
            let got = Naive {
                txn_count: f.txn_count[i],
                purchase_days: f.purchase_days[i],
                recency: f.recency_days[i],
                tenure: f.tenure_days[i],
                total: f.monetary_total[i],
                mean_repeat: f.monetary_mean_repeat[i],
                channel0_share: f.channel_mix.share(i, "ch0"),
            };
            prop_assert_eq!(got.txn_count, n.txn_count);
            prop_assert_eq!((got.purchase_days, got.recency, got.tenure, got.total), (n.purchase_days, n.recency, n.tenure, n.total));
            prop_assert!((got.mean_repeat - n.mean_repeat).abs() < 1e-9, "{} vs {}", got.mean_repeat, n.mean_repeat);
            prop_assert!((got.channel0_share - n.channel0_share).abs() < 1e-12);
            prop_assert_eq!(f.frequency[i], n.purchase_days - 1);
        }
    }
}
