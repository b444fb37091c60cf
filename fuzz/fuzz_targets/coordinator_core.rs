//! Arbitrary bytes as a sequence of connections, messages, closes, ticks, local jobs and ledger
//! failures fed to `fedprof_coordinator::Coordinator`, with its promises checked after every
//! input. The harness and its checks are `fedprof_sim::fuzz::coordinator_core` (run on stable
//! by `sim/tests/fuzz.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fedprof_sim::fuzz::coordinator_core(data));
