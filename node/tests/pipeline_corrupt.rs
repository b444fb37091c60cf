//! Damaged input files: every byte-level corruption of a valid Parquet or CSV file must give
//! either a result or an error naming the file, never a panic and never a silently shortened
//! table. (A stable-toolchain complement to fuzzing: the mutations are drawn from a fixed seed,
//! so a failure replays exactly.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::path::Path;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{self, RunOptions};
use fedprof_synth::{Plan, Scenario};

/// xorshift64: the mutation stream.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One to four bytes overwritten, a run zeroed, or the file cut short.
fn mutate(original: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = original.to_vec();
    match rng.below(4) {
        0 | 1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] = rng.below(256) as u8;
            }
        }
        2 => {
            let i = rng.below(b.len());
            let n = (1 + rng.below(64)).min(b.len() - i);
            b[i..i + n].fill(0);
        }
        _ => b.truncate(rng.below(b.len())),
    }
    b
}

/// Runs the pipeline on `file` written with `bytes`; `Ok(rows_in)` or the error's text.
fn run(file: &Path, bytes: &[u8], as_of: &str) -> Result<u64, String> {
    std::fs::write(file, bytes).unwrap();
    let spec = common::transactions_spec(file, as_of);
    let key = Pseudonymizer::new(SecretKey32::from_bytes([5; 32]));
    let opts = RunOptions {
        reveal_ids: false,
        quarantine: None,
        progress: None,
    };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pipeline::compute(&spec, &key, &opts)
    }));
    match out {
        Err(_) => panic!("the pipeline panicked on a damaged {}", file.display()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) => {
            assert!(out.quality.balanced(), "counts balance on damaged input");
            Ok(out.quality.tables[0].rows_in)
        }
    }
}

fn check(name: &str, mutations: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = Plan::new(Scenario::Bank, 1, 300, 11, tmp.path());
    plan.dirty_per_million = 0;
    let summary = fedprof_synth::generate(&plan, &|_, _| {}).unwrap();
    let (dir, m) = &summary.nodes[0];
    let original = std::fs::read(dir.join(name)).unwrap();
    let file = tmp.path().join(name);
    let rows = run(&file, &original, &m.as_of).unwrap();
    assert_eq!(rows, m.transaction_rows, "the undamaged file is read whole");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..mutations {
        let damaged = mutate(&original, &mut rng);
        match run(&file, &damaged, &m.as_of) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.contains(name), "the error names the file: {e}");
                assert!(!e.contains("Parquet error: "), "no doubled prefix: {e}");
                refused += 1;
            }
        }
    }
    eprintln!("{name}: {ok} damaged files read, {refused} refused with an error");
    assert!(refused > 0, "some damage is detected");
}

#[test]
fn damaged_parquet_files_are_read_or_refused_never_a_panic() {
    check("transactions.parquet", 400);
}

#[test]
fn damaged_csv_files_are_read_or_refused_never_a_panic() {
    check("transactions.csv", 200);
}

/// Found by fuzz/ingest_file: a footer whose embedded Arrow schema is damaged ("Date type with
/// unit of <UNKNOWN 4>") made arrow-ipc panic while the file was opened, on the caller's thread.
/// The file is now read by its Parquet schema, and every row is accounted for.
#[test]
fn a_damaged_embedded_arrow_schema_is_read_by_the_parquet_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-arrow-schema.parquet");
    let bytes = std::fs::read(&path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rows = run(&tmp.path().join("t.parquet"), &bytes, "2026-06-30").unwrap();
    assert_eq!(rows, 51);
}
