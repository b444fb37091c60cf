//! Audit verification time for large ledgers (release mode, one thread, fixed keys).
//!
//! `cargo bench -p fedprof-ledger --bench verify` prints a Markdown table: per scenario the
//! number of entries, the thread CPU time and wall time of the best of three runs, and the CPU
//! time per entry. `LEDGER_BENCH_ENTRIES` changes the size (default 100,000). Ledgers are built in memory with the
//! sans-IO books (signing is not measured), then written to a temporary directory for the
//! store-open scenario.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark"
)]

use std::time::{Duration, Instant};

use fedprof_ledger::audit::{self, AuditInput, LedgerText};
use fedprof_ledger::{
    CoordinatorBook, Digest, DiscreteGaussian, KeyRing, Label, MechanismRecord, NodeBook,
    NodeLedger, Period, Policy, ReleaseId, ReleaseRecord, Sensitivity, SigningKey, Writer,
    vector_digest,
};
use fedprof_protocol::{JobId, PartyId, PartyName, Role, RoundId};

fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

fn key(name: &str) -> SigningKey {
    SigningKey::from_bytes(Digest::of(name.as_bytes()).as_bytes())
}

fn gaussian() -> MechanismRecord {
    let g = DiscreteGaussian::new(
        Sensitivity {
            l2_sq: "1".parse().unwrap(),
            l1: "1".parse().unwrap(),
        },
        3,
        "4".parse().unwrap(),
        2,
        1,
    )
    .unwrap();
    MechanismRecord::DistributedDiscreteGaussian(g)
}

fn release(i: u64) -> ReleaseId {
    ReleaseId {
        job: JobId(i / 4),
        round: RoundId((i % 4) as u32),
        nonce: Digest::of(&i.to_le_bytes()),
    }
}

/// One ledger per node in `nodes`, each a budget entry and `debits` debits, and the coordinator
/// ledger: its policy, plus (if `record`) every release with all nodes' receipts.
fn build(nodes: &[&str], debits: u64, record: bool) -> (Vec<String>, String) {
    let mut books: Vec<(NodeBook, SigningKey, String)> = nodes
        .iter()
        .map(|n| {
            let k = key(n);
            let mut b = NodeBook::new(Writer::new(party(Role::Node, n))).unwrap();
            let e = b
                .plan_budget(
                    Period::new("2026-11").unwrap(),
                    "1000000".parse().unwrap(),
                    NOV,
                    &k,
                )
                .unwrap();
            b.commit(&e).unwrap();
            let line = e.to_line() + "\n";
            (b, k, line)
        })
        .collect();
    let ck = key("coordinator");
    let ring = ring(nodes);
    let mut coord =
        CoordinatorBook::new(Writer::new(party(Role::Coordinator, "coordinator"))).unwrap();
    let policy = Policy {
        per_job_cap_rho: "1000000".parse().unwrap(),
        min_cell_size: 10,
        max_holders_per_person: None,
    };
    let e = coord.plan_policy(policy, NOV, &ck).unwrap();
    coord.commit(&e, &ring).unwrap();
    let mut coord_text = e.to_line() + "\n";
    let digest = vector_digest(&fedprof_ledger::Digest::from_bytes([9; 32]), &[1, 2, 3]);
    for i in 0..debits {
        let mut receipts = Vec::new();
        for (b, k, text) in &mut books {
            let e = b
                .plan_debit(release(i), gaussian(), digest, NOV, k)
                .unwrap();
            b.commit(&e).unwrap();
            text.push_str(&e.to_line());
            text.push('\n');
            receipts.push(e);
        }
        if record {
            let r = ReleaseRecord {
                release: release(i),
                job_kind: Label::new("transaction-totals").unwrap(),
                mechanism: gaussian(),
                receipts,
                published_digest: Digest::of(b"result"),
            };
            let e = coord.plan_release(r, NOV, &ck, &ring).unwrap();
            coord.commit(&e, &ring).unwrap();
            coord_text.push_str(&e.to_line());
            coord_text.push('\n');
        }
    }
    (books.into_iter().map(|(_, _, t)| t).collect(), coord_text)
}

/// 2026-11-15T00:00:00Z: when the bench's entries are dated (their period is 2026-11).
const NOV: fedprof_ledger::Timestamp = fedprof_ledger::Timestamp(1_794_700_800);

fn ring(nodes: &[&str]) -> KeyRing {
    let mut ring = KeyRing::new();
    for n in nodes {
        ring.insert(party(Role::Node, n), key(n).verifying_key().to_bytes())
            .unwrap();
    }
    ring.insert(
        party(Role::Coordinator, "coordinator"),
        key("coordinator").verifying_key().to_bytes(),
    )
    .unwrap();
    ring
}

fn audit_once(nodes: &[&str], texts: &[String], coord: &str) {
    let input = AuditInput {
        keys: ring(nodes),
        nodes: nodes
            .iter()
            .zip(texts)
            .map(|(n, t)| {
                (
                    PartyName::new(*n).unwrap(),
                    LedgerText {
                        file: format!("node-{n}.jsonl"),
                        bytes: t.as_bytes(),
                    },
                )
            })
            .collect(),
        coordinator: (
            party(Role::Coordinator, "coordinator"),
            LedgerText {
                file: "coordinator.jsonl".into(),
                bytes: coord.as_bytes(),
            },
        ),
        max_holders_per_person: None,
        now: None,
    };
    audit::verify(&input).unwrap();
}

/// On-CPU time of this thread (Linux `schedstat`, nanoseconds): on a shared machine it is the
/// time a dedicated core would take, where wall time also counts waiting for the CPU.
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Best of three runs: (wall, thread CPU).
fn best_of_3(mut f: impl FnMut()) -> (Duration, Duration) {
    (0..3)
        .map(|_| {
            let (t, c) = (Instant::now(), thread_cpu());
            f();
            (t.elapsed(), thread_cpu() - c)
        })
        .min_by_key(|(_, cpu)| *cpu)
        .unwrap()
}

fn row(name: &str, entries: u64, bytes: usize, (wall, cpu): (Duration, Duration)) {
    let per = cpu.as_secs_f64() * 1e6 / entries as f64;
    println!(
        "| {name} | {entries} | {:.1} | {:.2} s | {:.2} s | {per:.1} us | {:.0} |",
        bytes as f64 / 1_048_576.0,
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        entries as f64 / cpu.as_secs_f64()
    );
}

fn main() {
    let n: u64 = std::env::var("LEDGER_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    println!(
        "| scenario | entries | MiB | CPU (best of 3) | wall | CPU per entry | entries/s (CPU) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");

    // One node ledger of n entries (1 budget + n-1 debits), policy-only coordinator ledger.
    let (texts, coord) = build(&["a"], n - 1, false);
    let d = best_of_3(|| audit_once(&["a"], &texts, &coord));
    row("audit: 1 node ledger", n, texts[0].len(), d);

    // Peer reference: the Ed25519 checks alone (verify_strict over messages of the same
    // length), so the rest (parse, canonical re-encoding, SHA-256, exact rho) is the difference.
    let sample: Vec<&str> = texts[0].lines().skip(1).take(10_000).collect();
    let k = key("a");
    let signed: Vec<(Vec<u8>, ed25519_dalek::Signature)> = sample
        .iter()
        .map(|l| {
            (
                l.as_bytes().to_vec(),
                ed25519_dalek::Signer::sign(&k, l.as_bytes()),
            )
        })
        .collect();
    let vk = k.verifying_key();
    let d = best_of_3(|| {
        for (m, sig) in &signed {
            vk.verify_strict(m, sig).unwrap();
        }
    });
    row(
        "peer: ed25519 verify_strict alone",
        signed.len() as u64,
        sample.iter().map(|l| l.len()).sum(),
        d,
    );

    // Open a node store on the same file (what a node does at start-up).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ledger.jsonl"), &texts[0]).unwrap();
    let d = best_of_3(|| {
        NodeLedger::open(tmp.path(), key("a"), party(Role::Node, "a")).unwrap();
    });
    row("node store open (verify own chain)", n, texts[0].len(), d);

    // Federation: 2 nodes with n/2 debits each, every release recorded with both receipts.
    let half = n / 2;
    let (texts, coord) = build(&["a", "b"], half, true);
    let bytes = texts.iter().map(String::len).sum::<usize>() + coord.len();
    let entries = 2 * (half + 1) + half + 1;
    let d = best_of_3(|| audit_once(&["a", "b"], &texts, &coord));
    row(
        "audit: 2 nodes x n/2 debits + n/2 releases (2 receipts)",
        entries,
        bytes,
        d,
    );
}
