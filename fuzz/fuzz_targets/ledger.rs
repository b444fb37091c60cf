//! Arbitrary bytes as a node's `ledger.jsonl`: the line splitter, both entry parsers and the
//! node book's rules. The harness and its checks are `fedprof_sim::fuzz::ledger` (run on stable
//! by `sim/tests/fuzz.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fedprof_sim::fuzz::ledger(data));
