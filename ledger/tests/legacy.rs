//! Ledgers written before entries carried timestamps (and before period names were checked)
//! still verify, and the stores go on writing to them: the fixtures in `tests/fixtures/legacy`
//! were written by that format (commit "ledger: fixture ledgers written by the format before
//! timestamps") and are never regenerated.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::path::{Path, PathBuf};

use fedprof_ledger::audit::{self, AuditInput, LedgerText};
use fedprof_ledger::{
    BudgetError, Clock, CoordinatorLedger, Digest, DiscreteGaussian, KeyRing, MechanismRecord,
    NodeEntry, NodeLedger, Period, ReleaseId, Sensitivity, StoreError, Timestamp,
};
use fedprof_protocol::{JobId, PartyId, PartyName, Role, RoundId};

fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

/// The fixtures' keys (as in `tests/tamper.rs`).
fn key(name: &str) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(Digest::of(name.as_bytes()).as_bytes())
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    for n in ["a", "b"] {
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

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name)
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

fn at(month: &str) -> Timestamp {
    Timestamp(
        month
            .parse::<fedprof_ledger::Month>()
            .unwrap()
            .start()
            .secs()
            + 3600,
    )
}

fn verify(a: &[u8], b: &[u8], c: &[u8]) -> Result<audit::AuditReport, audit::AuditFailure> {
    let text = |file: &str, bytes| LedgerText {
        file: file.into(),
        bytes,
    };
    audit::verify(&AuditInput {
        keys: ring(),
        nodes: vec![
            (PartyName::new("a").unwrap(), text("node-a.jsonl", a)),
            (PartyName::new("b").unwrap(), text("node-b.jsonl", b)),
        ],
        coordinator: (
            party(Role::Coordinator, "coordinator"),
            text("coordinator.jsonl", c),
        ),
        max_holders_per_person: None,
        now: Some(at("2027-02")),
    })
}

#[test]
fn old_untimed_ledgers_still_verify() {
    let read = |n| std::fs::read(fixture(n)).unwrap();
    let (a, b, c) = (
        read("node-a.jsonl"),
        read("node-b.jsonl"),
        read("coordinator.jsonl"),
    );
    for line in String::from_utf8(a.clone()).unwrap().lines() {
        assert!(NodeEntry::from_line(line).unwrap().time().is_none());
    }
    let report = verify(&a, &b, &c).unwrap();
    assert_eq!(report.releases, 2);
    let periods: Vec<&str> = report.nodes[1]
        .periods
        .iter()
        .map(|p| p.period.as_str())
        .collect();
    // A free-text period name of the old format is still read.
    assert_eq!(periods, ["pilot_q4"]);
    assert!(report.ledgers.iter().all(|h| h.first_time.is_none()));
    assert!(report.warnings.is_empty());
}

/// An old ledger is continued by the new store: its next entries are timed and checked, the
/// old ones stay as they are, and the whole still verifies. An old free-text period cannot be
/// spent from with a timed debit: the store opens a month first.
#[test]
fn old_ledgers_are_continued_with_timed_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = |name: &str, dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(fixture(name), dir.join("ledger.jsonl")).unwrap();
    };
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    copy("node-a.jsonl", &da);
    copy("node-b.jsonl", &db);
    let jan = Clock::fixed(at("2027-01"));
    let mut a =
        NodeLedger::open_with_clock(&da, key("a"), party(Role::Node, "a"), jan.clone()).unwrap();
    let mut b =
        NodeLedger::open_with_clock(&db, key("b"), party(Role::Node, "b"), jan.clone()).unwrap();
    let release = ReleaseId {
        job: JobId(3),
        round: RoundId(0),
        nonce: Digest::of(b"after the upgrade"),
    };
    // Node a's legacy period 2026-12 is a month, but not January's: a timed debit needs 2027-01.
    let e = a.prepare_release(release, gaussian(), [1; 32], || vec![1]);
    assert!(
        matches!(
            e,
            Err(StoreError::Budget(BudgetError::OutsidePeriod { .. }))
        ),
        "{e:?}"
    );
    // An old month cannot be opened again, nor one before the latest.
    let e = a.open_period(Period::new("2026-12").unwrap(), "1/2".parse().unwrap());
    assert!(matches!(
        e,
        Err(StoreError::Budget(BudgetError::PeriodReused(_)))
    ));
    a.open_period(Period::new("2027-01").unwrap(), "1/2".parse().unwrap())
        .unwrap();
    let e = b.prepare_release(release, gaussian(), [1; 32], || vec![1]);
    assert!(
        matches!(
            e,
            Err(StoreError::Budget(BudgetError::OutsidePeriod { .. }))
        ),
        "{e:?}"
    );
    b.open_period(Period::new("2027-01").unwrap(), "1/2".parse().unwrap())
        .unwrap();
    let ra = a
        .prepare_release(release, gaussian(), [1; 32], || vec![1])
        .unwrap();
    let rb = b
        .prepare_release(release, gaussian(), [1; 32], || vec![1])
        .unwrap();
    assert_eq!(ra.entry().time(), Some(at("2027-01")));
    let coord_path = tmp.path().join("coordinator.jsonl");
    std::fs::copy(fixture("coordinator.jsonl"), &coord_path).unwrap();
    let mut c = CoordinatorLedger::open_with_clock(
        &coord_path,
        key("coordinator"),
        party(Role::Coordinator, "coordinator"),
        ring(),
        jan,
    )
    .unwrap();
    // The coordinator's record of each node's last receipt covers the old releases too.
    let old_b = c.last_receipt(&PartyName::new("b").unwrap()).unwrap();
    assert_eq!(old_b.seq, 2);
    c.record_release(fedprof_ledger::ReleaseRecord {
        release,
        job_kind: fedprof_ledger::Label::new("transaction-totals").unwrap(),
        mechanism: gaussian(),
        receipts: vec![ra.entry().clone(), rb.entry().clone()],
        published_digest: Digest::of(b"r"),
    })
    .unwrap();
    let head = c.last_receipt(&PartyName::new("b").unwrap()).unwrap();
    assert_eq!(
        (head.seq, head.digest),
        (rb.entry().seq(), *rb.entry().digest().as_bytes())
    );
    assert!(b.book().check_receipt_head(Some(&head)).is_ok());
    drop((a, b, c));
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    let report = verify(
        &read(da.join("ledger.jsonl")),
        &read(db.join("ledger.jsonl")),
        &read(coord_path),
    )
    .unwrap();
    assert_eq!(report.releases, 3);
    assert_eq!(report.ledgers[0].first_time, Some(at("2027-01")));
    assert_eq!(report.ledgers[2].last_time, Some(at("2027-01")));
}
