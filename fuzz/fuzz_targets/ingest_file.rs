//! Arbitrary bytes as a node's transactions file: the first byte picks the format (even: CSV,
//! odd: Parquet), the rest is the file. The pipeline must answer with features whose quality
//! counts balance or with an error naming the file; never a panic that escapes (the pipeline
//! catches its dependencies' panics on damaged files and turns them into such errors or, for a
//! damaged embedded Arrow schema, reads the file by its Parquet schema).

#![no_main]

use std::path::PathBuf;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::{
    self, DateParser, Day, PipelineSpec, RunOptions, SourceSpec, TransactionsSpec,
};
use libfuzzer_sys::fuzz_target;

fn file(parquet: bool) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let ext = if parquet { "parquet" } else { "csv" };
    dir.join(format!("fedprof-fuzz-{}.{ext}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys installs a panic hook that aborts on any panic, even one the code under
    // test catches on purpose (the pipeline turns a dependency's panic on a damaged footer or
    // batch into an error or a fallback). Back to the default hook: a caught panic prints its
    // message and the run goes on; an uncaught one still reaches libfuzzer-sys's own
    // catch_unwind, which aborts and reports the crash.
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let Some((&format, body)) = data.split_first() else {
        return;
    };
    let path = file(format % 2 == 1);
    std::fs::write(&path, body).expect("the scratch file is writable");
    let t = TransactionsSpec {
        source: SourceSpec::new(&path),
        customer: "customer_id".into(),
        date: "date".into(),
        amount: "amount".into(),
        channel: Some("channel".into()),
        category: Some("category".into()),
        date_parser: DateParser::Iso,
    };
    let mut spec = PipelineSpec::new(t, Day::from_ymd(2026, 6, 30).expect("a date"));
    spec.start = Day::from_ymd(2000, 1, 1).expect("a date");
    let key = Pseudonymizer::new(SecretKey32::from_bytes([1; 32]));
    let opts = RunOptions {
        reveal_ids: false,
        quarantine: None,
        progress: None,
    };
    match pipeline::compute(&spec, &key, &opts) {
        Ok(out) => {
            assert!(out.quality.balanced(), "quality counts balance");
            assert_eq!(out.quality.customers, out.features.len() as u64);
        }
        Err(e) => {
            let text = e.to_string();
            // Includes the parquet crate's own panics on some damaged pages ("column start
            // and length should not be negative"), which the reading threads turn into this
            // error: a dependency's bug, handled, not ours to fix.
            assert!(text.contains("fedprof-fuzz-"), "the error names the file: {text}");
        }
    }
});
