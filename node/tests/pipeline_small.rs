//! The pipeline on small hand-made files: a table computed by hand, pseudonyms, and bad input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{
    self, DateParser, Day, PipelineError, PipelineSpec, RunOptions, Stage, export,
};

fn key() -> Pseudonymizer {
    Pseudonymizer::new(SecretKey32::from_bytes([7; 32]))
}

fn spec(path: &Path, as_of: &str) -> PipelineSpec {
    let mut s = common::transactions_spec(path, as_of);
    s.start = Day::from_ymd(2000, 1, 1).unwrap();
    s
}

fn run(
    spec: &PipelineSpec,
    reveal: bool,
    quarantine: Option<&Path>,
) -> Result<pipeline::RunOutput, PipelineError> {
    pipeline::compute(
        spec,
        &key(),
        &RunOptions {
            reveal_ids: reveal,
            quarantine,
            progress: None,
        },
    )
}

const SMALL: &str = "customer_id,date,amount,channel,category
c1,2026-01-01,10.00,web,food
c1,2026-01-01,5.00,store,food
C1 ,2026-01-11,20.00,Web,toys
c1,2026-01-21T10:00:00,30.00,web,food
c2,2026-01-30,7.50,store,food
c2,2026-01-30,7.50,store,food
c3,2025-06-01,100.00,web,toys
c1,2026-02-01,1.00,web,food
c4,2026-01-05,-3.00,web,food
,2026-01-05,3.00,web,food
c5,not a date,3.00,web,food
c5,2026-01-05,3.001,web,food
c6,1960-01-01,1.00,web,food
c7,2026-01-05,2000000.00,web,food
";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn a_small_table_matches_hand_computed_features_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.csv", SMALL);
    let q = dir.path().join("q.csv");
    let out = run(&spec(&path, "2026-01-31"), true, Some(&q)).unwrap();
    let f = &out.features;
    assert_eq!(f.customer, ["c1", "c2", "c3"]);
    assert_eq!(f.txn_count, [4, 1, 1]);
    assert_eq!(f.purchase_days, [3, 1, 1]);
    assert_eq!(f.frequency, [2, 0, 0]);
    assert_eq!(f.recency_days, [20, 0, 0]);
    assert_eq!(f.tenure_days, [30, 1, 244]);
    assert_eq!(f.days_since_last, [10, 1, 244]);
    assert_eq!(f.monetary_total, [6500, 750, 10000]);
    assert_eq!(f.monetary_mean_repeat, [25.0, 0.0, 0.0]);
    assert_eq!(f.avg_ticket, [16.25, 7.5, 100.0]);
    assert_eq!(f.lifecycle_stage, [Stage::New, Stage::New, Stage::Churned]);
    let shares = |m: &pipeline::MixColumn, name: &str| -> Vec<f64> {
        (0..f.len()).map(|r| m.share(r, name)).collect()
    };
    assert_eq!(f.channel_mix.names(), ["store", "web"]);
    assert_eq!(shares(&f.channel_mix, "store"), [0.25, 1.0, 0.0]);
    assert_eq!(shares(&f.channel_mix, "web"), [0.75, 0.0, 1.0]);
    assert_eq!(f.category_mix.names(), ["food", "toys"]);
    assert_eq!(shares(&f.category_mix, "toys"), [0.25, 0.0, 1.0]);
    assert_eq!(shares(&f.category_mix, "kiosk"), [0.0, 0.0, 0.0]);
    assert_eq!(
        (0..3).map(|r| f.channel_mix.total(r)).collect::<Vec<_>>(),
        f.txn_count
    );

    let t = &out.quality.tables[0];
    assert_eq!((t.rows_in, t.rows_used, t.rows_quarantined), (14, 6, 8));
    assert!(out.quality.balanced());
    let listed = std::fs::read_to_string(&q).unwrap();
    let mut rows: Vec<(u64, String)> = listed
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].parse().unwrap(), f[3].to_owned())
        })
        .collect();
    rows.sort();
    let want = [
        (6, "duplicate"),
        (8, "after_as_of"),
        (9, "negative_amount"),
        (10, "missing_field"),
        (11, "unparsable_date"),
        (12, "unparsable_amount"),
        (13, "before_start"),
        (14, "out_of_range"),
    ];
    assert_eq!(rows, want.map(|(r, s)| (r, s.to_owned())));
    assert!(
        !listed.contains("c5") && !listed.contains("3.001"),
        "no values in quarantine:\n{listed}"
    );
}

#[test]
fn exports_carry_pseudonyms_unless_ids_are_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.csv", SMALL);
    let out = run(&spec(&path, "2026-01-31"), false, None).unwrap();
    let p = key();
    let mut want: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .map(|c| p.pseudonym(c).unwrap().to_hex())
        .collect();
    want.sort();
    assert_eq!(out.features.customer, want);
    let csv = dir.path().join("f.csv");
    export::write_features(&out.features, &csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("customer,txn_count,purchase_days,frequency,recency_days,tenure_days,days_since_last,monetary_total,monetary_mean_repeat,avg_ticket,lifecycle_stage,channel_share_store,channel_share_web,category_share_food,category_share_toys\n"), "{text}");
    assert!(
        !text.contains("c1,") && text.contains(",65.00,25,16.25,new,"),
        "{text}"
    );
    let pq = dir.path().join("f.parquet");
    export::write_features(&out.features, &pq).unwrap();
    assert!(std::fs::metadata(&pq).unwrap().len() > 100);
}

#[test]
fn an_as_of_date_ignores_later_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.csv", SMALL);
    let out = run(&spec(&path, "2026-01-15"), true, None).unwrap();
    assert_eq!(out.features.customer, ["c1", "c3"]);
    assert_eq!(out.features.txn_count[0], 3);
    assert_eq!(out.quality.tables[0].by_reason["after_as_of"], 4);
}

fn expect_err(spec: &PipelineSpec) -> String {
    let e = run(spec, false, None).unwrap_err();
    e.to_string()
}

#[test]
fn bad_input_is_an_error_naming_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let e = expect_err(&spec(&dir.path().join("absent.csv"), "2026-01-31"));
    assert!(
        e.contains("absent.csv") && e.contains("No such file"),
        "{e}"
    );

    let empty = write(dir.path(), "empty.csv", "");
    assert!(expect_err(&spec(&empty, "2026-01-31")).contains("empty.csv: the file is empty"));

    let wrong = write(
        dir.path(),
        "wrong.csv",
        "client,date,amount,channel,category\nc1,2026-01-01,1,web,x\n",
    );
    let e = expect_err(&spec(&wrong, "2026-01-31"));
    assert!(
        e.contains("wrong.csv: no column named \"customer_id\" (found: client, date, amount"),
        "{e}"
    );

    let long = write(
        dir.path(),
        "fields.csv",
        "customer_id,date,amount,channel,category\nc1,2026-01-01,1,web,x,extra\n",
    );
    let e = expect_err(&spec(&long, "2026-01-31"));
    assert!(
        e.contains("fields.csv: malformed CSV") && e.contains("incorrect number of fields"),
        "{e}"
    );

    // A Parquet amount column of booleans cannot hold amounts.
    let pq = dir.path().join("typed.parquet");
    let batch = RecordBatch::try_from_iter([
        (
            "customer_id",
            Arc::new(StringArray::from(vec!["c1"])) as ArrayRef,
        ),
        (
            "date",
            Arc::new(StringArray::from(vec!["2026-01-01"])) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(BooleanArray::from(vec![true])) as ArrayRef,
        ),
        (
            "channel",
            Arc::new(StringArray::from(vec!["web"])) as ArrayRef,
        ),
        (
            "category",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&pq).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let e = expect_err(&spec(&pq, "2026-01-31"));
    assert!(
        e.contains("typed.parquet: column \"amount\" has type Boolean, which cannot hold amounts"),
        "{e}"
    );

    // zstd needs a C build and is left out: the error says what to do. (The fixture was written
    // by DuckDB: COPY ... TO 'zstd.parquet' (FORMAT parquet, COMPRESSION zstd).)
    let zstd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zstd.parquet");
    let e = expect_err(&spec(&zstd, "2026-01-31"));
    assert!(
        e.contains("zstd.parquet: cannot read Parquet")
            && e.contains("zstd")
            && e.contains("rewrite the file"),
        "{e}"
    );

    // Wrong types inside a CSV are per-row problems: quarantined, counted, nothing lost.
    let text = write(
        dir.path(),
        "text.csv",
        "customer_id,date,amount,channel,category\nc1,2026-01-01,abc,web,x\nc1,yesterday,1,web,x\n",
    );
    let out = run(&spec(&text, "2026-01-31"), false, None).unwrap();
    assert!(out.features.is_empty() && out.quality.balanced());
    assert_eq!(out.quality.tables[0].rows_quarantined, 2);
}

#[test]
fn a_huge_line_fails_fast_without_being_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.csv");
    std::fs::write(
        &path,
        "customer_id,date,amount,channel,category\nc1,2026-01-01,1,web,x\n",
    )
    .unwrap();
    // A sparse 2 GiB tail with no line break: one line of 2 GiB.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(2 << 30).unwrap();
    let started = Instant::now();
    let e = expect_err(&spec(&path, "2026-01-31"));
    assert!(
        e.contains("huge.csv:3: line is longer than 1048576 bytes"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn headerless_files_use_given_names_and_other_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.txt", "c1;01/02/2026;3,50\nc1;03/02/2026;1\n");
    let mut s = spec(&path, "2026-02-28");
    s.transactions.source.has_header = false;
    s.transactions.source.delimiter = b';';
    s.transactions.source.columns =
        Some(vec!["customer_id".into(), "date".into(), "amount".into()]);
    s.transactions.channel = None;
    s.transactions.category = None;
    s.transactions.date_parser = DateParser::new(Some("%d/%m/%Y")).unwrap();
    let out = run(&s, true, None).unwrap();
    // "3,50" is not a decimal with a point: quarantined, not guessed.
    assert_eq!(out.features.txn_count, [1]);
    assert_eq!(out.quality.tables[0].by_reason["unparsable_amount"], 1);
    assert_eq!(out.features.tenure_days, [25]);
}
