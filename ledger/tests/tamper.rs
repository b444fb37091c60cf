//! The audit against a small federation's ledgers, intact and tampered with in every way the
//! issue names: each tampering is caught at the entry it touched.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers"
)]

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fedprof_ledger::audit::{self, AuditFailure, AuditInput, LedgerText};
use fedprof_ledger::{
    Clock, CoordinatorBody, CoordinatorLedger, Digest, DiscreteGaussian, Entry, KeyRing, Label,
    MechanismRecord, NodeBody, NodeLedger, Period, Policy, ReleaseId, ReleaseRecord, Sensitivity,
    Timestamp,
};
use fedprof_protocol::{JobId, PartyId, PartyName, Role, RoundId};

const NODES: [&str; 3] = ["a", "b", "c"];

const SALT: [u8; 32] = [0x5a; 32];

/// 2026-11-15T00:00:00Z: when these ledgers are written (their period is 2026-11).
const NOV: Timestamp = Timestamp(1_794_700_800);

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

fn release(job: u64, round: u32) -> ReleaseId {
    ReleaseId {
        job: JobId(job),
        round: RoundId(round),
        nonce: Digest::of(&[job as u8, round as u8]),
    }
}

struct Federation {
    _tmp: tempfile::TempDir,
    nodes: Vec<PathBuf>,
    coordinator: PathBuf,
}

/// Three nodes (cap 1/2 each), releases (1,0) by a,b,c, (1,1) by a,b, (2,0) by b,c, and a debit
/// of node a for (3,0) that was never published.
fn federation() -> Federation {
    federation_declaring(None)
}

/// [`federation`] whose coordinator policy declares `k` holders per person at most.
fn federation_declaring(k: Option<u32>) -> Federation {
    let tmp = tempfile::tempdir().unwrap();
    let mut stores: Vec<NodeLedger> = NODES
        .iter()
        .map(|n| {
            let mut l = NodeLedger::open_with_clock(
                &tmp.path().join(n),
                key(n),
                party(Role::Node, n),
                Clock::fixed(NOV),
            )
            .unwrap();
            l.open_period(Period::new("2026-11").unwrap(), "1/2".parse().unwrap())
                .unwrap();
            l
        })
        .collect();
    let coord_path = tmp.path().join("coordinator.jsonl");
    let mut coord = CoordinatorLedger::open_with_clock(
        &coord_path,
        key("coordinator"),
        party(Role::Coordinator, "coordinator"),
        ring(),
        Clock::fixed(NOV),
    )
    .unwrap();
    coord
        .set_policy(Policy {
            per_job_cap_rho: "1/1".parse().unwrap(),
            min_cell_size: 10,
            max_holders_per_person: k,
        })
        .unwrap();
    for (job, round, who) in [(1, 0, &[0, 1, 2][..]), (1, 1, &[0, 1]), (2, 0, &[1, 2])] {
        let receipts = who
            .iter()
            .map(|i| {
                let r = stores[*i].prepare_release(release(job, round), gaussian(), SALT, || {
                    vec![job, u64::from(round)]
                });
                r.unwrap().entry().clone()
            })
            .collect();
        coord
            .record_release(ReleaseRecord {
                release: release(job, round),
                job_kind: Label::new("transaction-totals").unwrap(),
                mechanism: gaussian(),
                receipts,
                published_digest: Digest::of(b"result"),
            })
            .unwrap();
    }
    stores[0]
        .prepare_release(release(3, 0), gaussian(), SALT, || vec![3])
        .unwrap();
    let nodes = stores.iter().map(|s| s.path().to_owned()).collect();
    Federation {
        _tmp: tmp,
        nodes,
        coordinator: coord_path,
    }
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    for n in NODES {
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

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// Audits the federation with the lines of `file` (a node index or 3 for the coordinator)
/// replaced by `edit(lines)`.
fn audit_with(
    fed: &Federation,
    file: usize,
    edit: impl FnOnce(&mut Vec<String>),
) -> Result<audit::AuditReport, AuditFailure> {
    audit_with_holders(fed, None, file, edit)
}

/// [`audit_with`] with `max_holders_per_person` given.
fn audit_with_holders(
    fed: &Federation,
    max_holders_per_person: Option<u32>,
    file: usize,
    edit: impl FnOnce(&mut Vec<String>),
) -> Result<audit::AuditReport, AuditFailure> {
    let mut texts: Vec<Vec<u8>> = fed
        .nodes
        .iter()
        .chain([&fed.coordinator])
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let paths: Vec<&PathBuf> = fed.nodes.iter().chain([&fed.coordinator]).collect();
    let mut lines = read_lines(paths[file]);
    edit(&mut lines);
    texts[file] = join(&lines);
    let nodes = NODES
        .iter()
        .zip(&texts)
        .map(|(n, t)| {
            (
                PartyName::new(*n).unwrap(),
                LedgerText {
                    file: format!("node-{n}.jsonl"),
                    bytes: t,
                },
            )
        })
        .collect();
    let input = AuditInput {
        keys: ring(),
        nodes,
        coordinator: (
            party(Role::Coordinator, "coordinator"),
            LedgerText {
                file: "coordinator.jsonl".into(),
                bytes: &texts[3],
            },
        ),
        max_holders_per_person,
        now: Some(Timestamp(NOV.secs() + 86_400)),
    };
    audit::verify(&input)
}

fn expect_failure(r: Result<audit::AuditReport, AuditFailure>, file: &str, seq: u64, reason: &str) {
    let f = r.expect_err("tampering went unnoticed");
    assert_eq!((f.file.as_str(), f.seq), (file, Some(seq)), "{f}");
    assert!(f.reason.contains(reason), "expected {reason:?} in: {f}");
}

#[test]
fn intact_ledgers_verify_and_add_up_exactly() {
    let fed = federation();
    let report = audit_with(&fed, 0, |_| {}).unwrap();
    assert_eq!(report.releases, 3);
    let a = &report.nodes[0];
    assert_eq!((a.debits, a.released), (3, 2));
    assert_eq!(a.current().unwrap().spent.to_string(), "3/8");
    assert_eq!(a.remaining().to_string(), "1/8");
    let b = &report.nodes[1];
    assert_eq!(
        (b.debits, b.released, b.current().unwrap().spent.to_string()),
        (3, 3, "3/8".into())
    );
    assert_eq!(report.nodes[2].current().unwrap().spent.to_string(), "1/4");
    assert_eq!(report.ledgers.len(), 4);
    assert_eq!(report.ledgers[3].entries, 4);
    // One period, so the cumulative equals it; no lifetime cap recorded.
    assert_eq!(a.cumulative.to_string(), "3/8");
    assert_eq!(a.lifetime_cap, None);
    // K defaults to the 3 nodes. Node a's debits: (1,0) debited by 3 nodes, (1,1) by 2, (3,0)
    // by a alone: 9/8 + 4/8 + 1/8 = 7/4.
    assert_eq!(
        report.max_holders,
        audit::MaxHolders {
            value: 3,
            declared: false
        }
    );
    assert_eq!(a.person_rho.to_string(), "7/4");
    // Federation-wide: (1,0) 9/8, (1,1) 4/8, (2,0) 4/8, (3,0) 1/8.
    assert_eq!(report.person_rho.to_string(), "9/4");
    assert_eq!(report.person_rho_one_holder.to_string(), "3/8");
}

#[test]
fn a_declared_maximum_of_holders_replaces_the_default() {
    let fed = federation();
    let report = audit_with_holders(&fed, Some(2), 0, |_| {}).unwrap();
    assert!(report.max_holders.declared);
    // (1,0) counts 2^2 instead of 3^2: 4/8 + 4/8 + 4/8 + 1/8.
    assert_eq!(report.person_rho.to_string(), "13/8");
    assert_eq!(report.nodes[0].person_rho.to_string(), "9/8");
    let one = audit_with_holders(&fed, Some(1), 0, |_| {}).unwrap();
    assert_eq!(one.nodes[1].person_rho, one.nodes[1].cumulative);
}

/// H4: the federation's declared maximum, recorded in the coordinator's ledger, is what the
/// audit uses when the auditor gives none.
#[test]
fn the_maximum_of_holders_recorded_in_the_ledger_is_used() {
    let fed = federation_declaring(Some(2));
    let report = audit_with_holders(&fed, None, 0, |_| {}).unwrap();
    assert!(report.max_holders.declared);
    assert_eq!(report.max_holders.value, 2);
    assert_eq!(report.person_rho.to_string(), "13/8");
    // The auditor's own value still wins.
    let three = audit_with_holders(&fed, Some(3), 0, |_| {}).unwrap();
    assert_eq!(three.max_holders.value, 3);
}

/// Node a's ledger with a `lifetime_cap` entry of `cap` inserted after entry 0, every later
/// entry re-signed by node a so that chain and signatures are intact.
fn with_lifetime_cap(lines: &mut Vec<String>, cap: &str) {
    let mut bodies: Vec<NodeBody> = lines
        .iter()
        .map(|l| Entry::<NodeBody>::from_line(l).unwrap().body().clone())
        .collect();
    bodies.insert(
        1,
        NodeBody::LifetimeCap {
            cap_rho: cap.parse().unwrap(),
        },
    );
    let writer = Entry::<NodeBody>::from_line(&lines[0])
        .unwrap()
        .writer()
        .clone();
    let mut prev = Digest::ZERO;
    lines.clear();
    for (seq, body) in bodies.into_iter().enumerate() {
        let line =
            Entry::sign_at(seq as u64, prev, writer.clone(), Some(NOV), body, &key("a")).to_line();
        prev = Digest::of(line.as_bytes());
        lines.push(line);
    }
}

#[test]
fn a_ledger_spending_past_its_recorded_lifetime_cap_is_caught() {
    let fed = federation();
    // Node a debits 1/8 three times; a lifetime cap of 3/8 holds, 1/4 is broken by the third.
    // With 3/8 node a's ledger passes every node rule: the audit gets to the coordinator
    // ledger, whose receipts are node a's lines before they were re-signed.
    let kept = audit_with(&fed, 0, |l| with_lifetime_cap(l, "3/8"));
    expect_failure(kept, "coordinator.jsonl", 1, "receipt of node a differs");
    let broken = audit_with(&fed, 0, |l| with_lifetime_cap(l, "1/4"));
    expect_failure(
        broken,
        "node-a.jsonl",
        4,
        "lifetime cap exceeded: spent rho 1/4 over all periods of lifetime cap 1/4",
    );
}

fn flip(line: &mut String, at: usize) {
    let mut bytes = std::mem::take(line).into_bytes();
    bytes[at] ^= 0x01;
    *line = String::from_utf8(bytes).unwrap();
}

#[test]
fn every_tampering_of_a_node_ledger_names_the_entry() {
    let fed = federation();
    for at in [3, 60, 150, 300] {
        expect_failure(
            audit_with(&fed, 1, |l| {
                let n = l[2].len() - 2;
                flip(&mut l[2], at.min(n))
            }),
            "node-b.jsonl",
            2,
            "",
        );
    }
    expect_failure(
        audit_with(&fed, 1, |l| drop(l.remove(1))),
        "node-b.jsonl",
        1,
        "sequence number 2, expected 1",
    );
    expect_failure(
        audit_with(&fed, 1, |l| l.swap(1, 2)),
        "node-b.jsonl",
        1,
        "sequence number 2, expected 1",
    );
    expect_failure(
        audit_with(&fed, 1, |l| l.push(l[1].clone())),
        "node-b.jsonl",
        4,
        "sequence number 1, expected 4",
    );
    // Re-signed with node a's key: right content, wrong signer.
    expect_failure(
        audit_with(&fed, 1, |l| {
            let e = Entry::<NodeBody>::from_line(&l[2]).unwrap();
            l[2] = Entry::sign_at(
                e.seq(),
                *e.prev(),
                e.writer().clone(),
                e.time(),
                e.body().clone(),
                &key("a"),
            )
            .to_line();
        }),
        "node-b.jsonl",
        2,
        "signature does not verify",
    );
    // Node b's last debit cut off: its chain is fine, but a published release is unpaid.
    expect_failure(
        audit_with(&fed, 1, |l| drop(l.pop())),
        "coordinator.jsonl",
        3,
        "not covered by a debit in node b's ledger",
    );
    // A torn final line.
    let f = audit_with(&fed, 2, |l| {
        let last = l.len() - 1;
        l[last].truncate(30);
    });
    expect_failure(f, "node-c.jsonl", 2, "");
}

#[test]
fn every_tampering_of_the_coordinator_ledger_names_the_entry() {
    let fed = federation();
    let c = "coordinator.jsonl";
    expect_failure(audit_with(&fed, 3, |l| flip(&mut l[1], 200)), c, 1, "");
    expect_failure(
        audit_with(&fed, 3, |l| drop(l.remove(1))),
        c,
        1,
        "sequence number 2",
    );
    expect_failure(
        audit_with(&fed, 3, |l| l.swap(2, 3)),
        c,
        2,
        "sequence number 3",
    );
    expect_failure(
        audit_with(&fed, 3, |l| l.push(l[2].clone())),
        c,
        4,
        "sequence number 2, expected 4",
    );
    expect_failure(
        audit_with(&fed, 3, |l| {
            let e = Entry::<CoordinatorBody>::from_line(&l[1]).unwrap();
            l[1] = Entry::sign_at(
                e.seq(),
                *e.prev(),
                e.writer().clone(),
                e.time(),
                e.body().clone(),
                &key("b"),
            )
            .to_line();
        }),
        c,
        1,
        "signature does not verify",
    );
    // A coordinator that rewrites history consistently (re-signing every later entry with its
    // own key) is still caught when a receipt is not what the node signed.
    let resign = |l: &mut Vec<String>, at: usize, edit: &dyn Fn(&mut CoordinatorBody)| {
        let mut prev = Entry::<CoordinatorBody>::from_line(&l[at])
            .unwrap()
            .prev()
            .to_owned();
        for line in &mut l[at..] {
            let e = Entry::<CoordinatorBody>::from_line(line).unwrap();
            let mut body = e.body().clone();
            if e.seq() as usize == at {
                edit(&mut body);
            }
            let signed = Entry::sign_at(
                e.seq(),
                prev,
                e.writer().clone(),
                e.time(),
                body,
                &key("coordinator"),
            );
            *line = signed.to_line();
            prev = signed.digest();
        }
    };
    // Receipt forged by the coordinator itself.
    let forged = audit_with(&fed, 3, |l| {
        resign(l, 1, &|b| {
            let CoordinatorBody::Release { receipts, .. } = b else {
                panic!()
            };
            let r = receipts[2].clone();
            receipts[2] = Entry::sign_at(
                r.seq(),
                *r.prev(),
                r.writer().clone(),
                r.time(),
                r.body().clone(),
                &key("coordinator"),
            );
        })
    });
    expect_failure(forged, c, 1, "receipt of node c");
    // A receipt that node c did sign, but that is not the entry in its own ledger.
    let equivocated = audit_with(&fed, 3, |l| {
        resign(l, 1, &|b| {
            let CoordinatorBody::Release { receipts, .. } = b else {
                panic!()
            };
            let r = receipts[2].clone();
            let NodeBody::Debit {
                release,
                mechanism,
                rho,
                ..
            } = r.body().clone()
            else {
                panic!()
            };
            let body = NodeBody::Debit {
                release,
                mechanism,
                rho,
                vector_digest: Digest::of(b"other"),
            };
            receipts[2] = Entry::sign_at(
                r.seq(),
                *r.prev(),
                r.writer().clone(),
                r.time(),
                body,
                &key("c"),
            );
        })
    });
    expect_failure(
        equivocated,
        c,
        1,
        "receipt of node c differs from its own ledger entry seq 1",
    );
    // Node a's receipt for release (1,0) reused for release (1,1) in place of b's.
    let swapped = audit_with(&fed, 3, |l| {
        resign(l, 2, &|b| {
            let CoordinatorBody::Release {
                receipts, nodes, ..
            } = b
            else {
                panic!()
            };
            nodes.truncate(1);
            receipts.truncate(1);
        })
    });
    expect_failure(
        swapped,
        c,
        2,
        "sums 1 node(s), but its mechanism assumes at least 2",
    );
}

/// Item 6: the audit checks the time of every entry: one dated before an earlier entry (more
/// than the tolerance) fails at that entry, a debit dated outside its period fails, and an
/// entry dated after the auditor's own time is reported as a warning (a clock run ahead).
#[test]
fn entry_times_are_audited() {
    let fed = federation();
    let report = audit_with(&fed, 0, |_| {}).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(report.ledgers.iter().all(|h| h.first_time == Some(NOV)));
    // Node a's entries re-signed with times: entry 2 an hour before entry 1.
    let retime = |times: &[Timestamp]| {
        let times = times.to_vec();
        move |lines: &mut Vec<String>| {
            let mut prev = Digest::ZERO;
            for (line, t) in lines
                .iter_mut()
                .zip(times.iter().chain(std::iter::repeat(&NOV)))
            {
                let e = Entry::<NodeBody>::from_line(line).unwrap();
                let signed = Entry::sign_at(
                    e.seq(),
                    prev,
                    e.writer().clone(),
                    Some(*t),
                    e.body().clone(),
                    &key("a"),
                );
                *line = signed.to_line();
                prev = signed.digest();
            }
        }
    };
    let hour = |h: u64| Timestamp(NOV.secs() + h * 3600);
    let backwards = audit_with(&fed, 0, retime(&[hour(1), hour(3), hour(2), hour(3)]));
    expect_failure(backwards, "node-a.jsonl", 2, "before an earlier entry");
    // A debit in December, in the November period (the node did not roll its period).
    let dec = Timestamp(NOV.secs() + 20 * 86_400);
    let outside = audit_with(&fed, 0, retime(&[NOV, dec, dec, dec]));
    expect_failure(outside, "node-a.jsonl", 1, "outside budget period 2026-11");
    // The unpublished debit dated a day after the audit's time: verified, and warned about
    // (the other entries re-signed with their own time are byte-identical: Ed25519 is
    // deterministic, so the coordinator's receipts still match).
    let ahead = Timestamp(NOV.secs() + 2 * 86_400);
    let fine = audit_with(&fed, 0, retime(&[NOV, NOV, NOV, ahead])).unwrap();
    let w: Vec<(u64, &str)> = fine
        .warnings
        .iter()
        .map(|w| (w.seq, w.file.as_str()))
        .collect();
    assert_eq!(w, [(3, "node-a.jsonl")]);
    assert!(fine.warnings[0].message.contains("clock ran ahead"));
}
