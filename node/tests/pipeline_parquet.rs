//! Parquet channel and category columns are read as dictionaries (one normalization, level
//! lookup and fingerprint hash per distinct value). Whatever the file's layout — dictionary
//! pages, plain pages, dictionaries that change between row groups inside one batch, or
//! columns stored with an Arrow dictionary type — the features, levels (every distinct
//! normalized value, no cap), exact duplicates and quarantine counts must be those of the same
//! rows read from CSV, where every value is plain text.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch, StringArray};
use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{self, Day, RunOptions};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// One row: customer, date, amount, channel, category (`None`: empty / null).
type Row = (String, String, String, Option<String>, Option<String>);

/// Rows with 45 channel spellings (case and blanks that normalize together, blank and missing
/// values), 40 categories (more than the 32 levels an old cap kept), exact duplicate rows, and rows that
/// differ from a neighbour only in the channel.
fn rows() -> Vec<Row> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let channel = |k: u64| match k {
        0 => None,
        1 => Some(String::new()),
        2 => Some("Web".to_owned()),
        3 => Some(" web ".to_owned()),
        4 => Some("WEB".to_owned()),
        k => Some(format!("ch{k:02}")),
    };
    let mut out: Vec<Row> = Vec::new();
    for i in 0..3_000 {
        let row = (
            format!("c{}", next(300)),
            format!("2026-{:02}-{:02}", 1 + next(6), 1 + next(28)),
            format!("{}.{:02}", 1 + next(500), next(100)),
            channel(next(45)),
            (next(20) != 0).then(|| format!("cat{:02}", next(40))),
        );
        out.push(row.clone());
        if i % 97 == 0 {
            out.push(row.clone());
        }
        if i % 89 == 0 {
            let mut other = row;
            other.3 = Some("branch".to_owned());
            out.push(other);
        }
    }
    out
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from("customer_id,date,amount,channel,category\n");
    for (c, d, a, ch, ca) in rows {
        let ch = ch.as_deref().unwrap_or_default();
        let ca = ca.as_deref().unwrap_or_default();
        s.push_str(&format!("{c},{d},{a},{ch},{ca}\n"));
    }
    s
}

fn text(v: impl Iterator<Item = Option<String>>) -> StringArray {
    v.collect()
}

/// Writes `rows` as Parquet; `dictionary_type` stores channel and category with an Arrow
/// dictionary type, `dictionary_pages` lets the writer use dictionary pages.
fn parquet(path: &Path, rows: &[Row], dictionary_type: bool, dictionary_pages: bool) {
    let col = |f: fn(&Row) -> Option<String>| -> ArrayRef {
        let values = text(rows.iter().map(f));
        if dictionary_type {
            let d: DictionaryArray<Int32Type> = values.iter().collect();
            Arc::new(d)
        } else {
            Arc::new(values)
        }
    };
    let plain =
        |f: fn(&Row) -> String| -> ArrayRef { Arc::new(text(rows.iter().map(|r| Some(f(r))))) };
    let batch = RecordBatch::try_from_iter([
        ("customer_id", plain(|r| r.0.clone())),
        ("date", plain(|r| r.1.clone())),
        ("amount", plain(|r| r.2.clone())),
        ("channel", col(|r| r.3.clone())),
        ("category", col(|r| r.4.clone())),
    ])
    .unwrap();
    // Small row groups and pages: a 65,536-row read batch spans many row groups, each with its
    // own dictionary.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(700))
        .set_data_page_row_count_limit(128)
        .set_write_batch_size(64)
        .set_dictionary_enabled(dictionary_pages)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn run(path: &Path) -> pipeline::RunOutput {
    let mut spec = common::transactions_spec(path, "2026-06-30");
    spec.start = Day::from_ymd(2000, 1, 1).unwrap();
    let key = Pseudonymizer::new(SecretKey32::from_bytes([3; 32]));
    let opts = RunOptions {
        reveal_ids: true,
        quarantine: None,
        progress: None,
    };
    pipeline::compute(&spec, &key, &opts).unwrap()
}

/// Rows in, used, quarantined, and per reason, of one table.
type Counts = (u64, u64, u64, Vec<(&'static str, u64)>);

/// Counts per table, without the file name.
fn counts(out: &pipeline::RunOutput) -> Vec<Counts> {
    out.quality
        .tables
        .iter()
        .map(|t| {
            let reasons = t.by_reason.iter().map(|(k, v)| (*k, *v)).collect();
            (t.rows_in, t.rows_used, t.rows_quarantined, reasons)
        })
        .collect()
}

#[test]
fn every_parquet_layout_of_categorical_columns_gives_the_csv_features() {
    let dir = tempfile::tempdir().unwrap();
    let rows = rows();
    let csv_path = dir.path().join("t.csv");
    std::fs::write(&csv_path, csv(&rows)).unwrap();
    let reference = run(&csv_path);

    // The data exercise what they should: more than 32 levels, blank channels, duplicates.
    // Every distinct normalized value is its own level (no cap, no `other`).
    let f = &reference.features;
    let categories = f.category_mix.names();
    assert!(!categories.iter().any(|n| n == "other"), "{categories:?}");
    let mut want: Vec<String> = (0..40).map(|i| format!("cat{i:02}")).collect();
    want.push("unknown".into());
    assert_eq!(categories, want, "40 categories and unknown");
    let channels = f.channel_mix.names();
    assert!(channels.iter().any(|n| n == "unknown"));
    assert!(channels.iter().any(|n| n == "web"));
    assert!(!channels.iter().any(|n| n == "WEB" || n == " web "));
    assert!((0..f.len()).all(|r| f.category_mix.total(r) == f.txn_count[r]));
    let dups = reference.quality.tables[0]
        .by_reason
        .get("duplicate")
        .copied();
    assert_eq!(dups, Some(31), "3,000 rows with every 97th doubled");
    assert_eq!(reference.quality.tables[0].rows_in, rows.len() as u64);

    for (dictionary_type, dictionary_pages) in [(false, true), (false, false), (true, true)] {
        let path = dir
            .path()
            .join(format!("t-{dictionary_type}-{dictionary_pages}.parquet"));
        parquet(&path, &rows, dictionary_type, dictionary_pages);
        let out = run(&path);
        let layout = format!("dictionary type {dictionary_type}, pages {dictionary_pages}");
        assert_eq!(out.features, reference.features, "{layout}");
        assert_eq!(counts(&out), counts(&reference), "{layout}");
    }
}
