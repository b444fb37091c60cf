//! Arbitrary bytes as TOML config text: the first byte picks the node's (even) or the
//! coordinator's (odd). The harness and its checks are `fedprof_sim::fuzz::config` (run on
//! stable by `sim/tests/fuzz.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fedprof_sim::fuzz::config(data));
