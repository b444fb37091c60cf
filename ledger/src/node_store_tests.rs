use std::cell::Cell;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::testutil::{TestClock, gaussian, key, node, release};

/// Opens with a clock in November 2026, the period these tests open.
fn open_in(dir: &Path, key: SigningKey, node: PartyId) -> Result<NodeLedger, StoreError> {
    NodeLedger::open_with_clock(dir, key, node, TestClock::in_month("2026-11").clock())
}

fn open(dir: &Path) -> NodeLedger {
    open_in(dir, key("a"), node("a")).unwrap()
}

fn fresh(cap: &str) -> (tempfile::TempDir, NodeLedger) {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = open(tmp.path());
    l.open_period(Period::new("2026-11").unwrap(), cap.parse().unwrap())
        .unwrap();
    (tmp, l)
}

fn line_count(l: &NodeLedger) -> usize {
    fs::read_to_string(l.path()).unwrap().lines().count()
}

const SALT: [u8; 32] = [0x5a; 32];

fn never() -> Vec<u64> {
    panic!("the noisy vector must not be generated again")
}

#[test]
fn a_retry_returns_the_same_vector_and_debits_once() {
    let (_tmp, mut l) = fresh("1/1");
    let calls = Cell::new(0);
    let make = || {
        calls.set(calls.get() + 1);
        vec![1, 2, u64::MAX]
    };
    let first = l
        .prepare_release(release(1, 0), gaussian(4, 2, 1), SALT, make)
        .unwrap();
    assert!(!first.is_retry());
    let again = l
        .prepare_release(release(1, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap();
    assert!(again.is_retry());
    assert_eq!(again.noisy_vector(), first.noisy_vector());
    assert_eq!(again.entry(), first.entry());
    assert_eq!(calls.get(), 1);
    assert_eq!(line_count(&l), 2);
    assert_eq!(l.book().periods()[0].spent, "1/8".parse().unwrap());
    // Same release, other parameters: refused, not debited.
    let other = l.prepare_release(release(1, 0), gaussian(2, 2, 1), SALT, never);
    assert!(
        matches!(
            other,
            Err(StoreError::Budget(BudgetError::ReleaseMismatch(_)))
        ),
        "{other:?}"
    );
    assert!(
        !format!("{first:?}").contains("18446744073709551615"),
        "Debug redacts the vector"
    );
}

#[test]
fn a_crash_after_the_debit_counts_as_spent_and_resends_the_same_vector() {
    let (tmp, mut l) = fresh("1/1");
    let sent = l
        .prepare_release(release(2, 0), gaussian(4, 2, 1), SALT, || vec![40, 2])
        .unwrap();
    drop(l); // crash before sending
    let mut l = open(tmp.path());
    assert_eq!(l.book().periods()[0].spent, "1/8".parse().unwrap());
    let again = l
        .prepare_release(release(2, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap();
    assert_eq!(again.noisy_vector(), &[40, 2]);
    assert_eq!(again.entry(), sent.entry());
    assert_eq!(line_count(&l), 2, "no second debit");
}

#[test]
fn a_crash_between_cache_and_debit_reuses_the_cached_vector() {
    let (tmp, mut l) = fresh("1/1");
    l.crash_after_cache = true;
    let err = l
        .prepare_release(release(3, 0), gaussian(4, 2, 1), SALT, || vec![9, 9, 9])
        .unwrap_err();
    assert!(err.to_string().contains("simulated crash"));
    assert_eq!(line_count(&l), 1, "no debit was written");
    drop(l);
    let mut l = open(tmp.path());
    assert_eq!(l.book().debit_count(), 0);
    let r = l
        .prepare_release(release(3, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap();
    assert_eq!(r.noisy_vector(), &[9, 9, 9]);
    assert!(!r.is_retry());
    assert_eq!(line_count(&l), 2);
    let NodeBody::Debit {
        vector_digest: d, ..
    } = r.entry().body()
    else {
        panic!("not a debit")
    };
    assert_eq!(*d, vector_digest(&Digest::from_bytes(SALT), &[9, 9, 9]));
    // H1: the receipt does not identify the vector without the cache's secret salt.
    assert_ne!(*d, crate::mechanism::legacy_vector_digest(&[9, 9, 9]));
}

#[test]
fn a_cached_vector_is_never_reused_under_other_parameters() {
    let (tmp, mut l) = fresh("1/1");
    l.crash_after_cache = true;
    let _ = l.prepare_release(release(3, 0), gaussian(4, 2, 1), SALT, || vec![1]);
    drop(l);
    let mut l = open(tmp.path());
    // The round is retried with less noise per node: the cached vector must not be debited
    // under the new parameters.
    let err = l
        .prepare_release(release(3, 0), gaussian(2, 2, 1), SALT, never)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Budget(BudgetError::ReleaseMismatch(_))),
        "{err:?}"
    );
    assert_eq!(l.book().debit_count(), 0);
}

#[test]
fn budget_exhaustion_refuses_before_generating_anything() {
    let (tmp, mut l) = fresh("1/8");
    l.prepare_release(release(4, 0), gaussian(4, 2, 1), SALT, || vec![1])
        .unwrap();
    let called = Cell::new(false);
    let err = l
        .prepare_release(release(4, 1), gaussian(4, 2, 1), SALT, || {
            called.set(true);
            vec![2]
        })
        .unwrap_err();
    assert!(
        !called.get(),
        "the closure ran although the budget was exhausted"
    );
    let StoreError::Budget(BudgetError::BudgetExceeded {
        spent,
        requested,
        cap,
        ..
    }) = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (spent.to_string(), requested.to_string(), cap.to_string()),
        ("1/8".into(), "1/8".into(), "1/8".into())
    );
    assert_eq!(line_count(&l), 2);
    assert_eq!(
        fs::read_dir(tmp.path().join("vectors")).unwrap().count(),
        1,
        "no vector cached"
    );
    // Without any period the node refuses as well.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut bare = open(tmp2.path());
    let e = bare.prepare_release(release(4, 0), gaussian(4, 2, 1), SALT, never);
    assert!(matches!(e, Err(StoreError::Budget(BudgetError::NoPeriod))));
}

#[test]
fn a_torn_last_line_is_refused_and_repairable() {
    let (tmp, mut l) = fresh("1/1");
    l.crash_after_cache = true;
    let _ = l.prepare_release(release(5, 0), gaussian(4, 2, 1), SALT, || vec![5]);
    // The crash hit while appending the debit: half a line, no newline.
    let line = l
        .book()
        .plan_debit(
            release(5, 0),
            gaussian(4, 2, 1),
            vector_digest(&Digest::from_bytes(SALT), &[5]),
            TestClock::in_month("2026-11").clock().now(),
            &key("a"),
        )
        .unwrap()
        .to_line();
    let path = l.path().to_owned();
    drop(l);
    let intact = fs::read(&path).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&line.as_bytes()[..40])
        .unwrap();
    let err = open_in(tmp.path(), key("a"), node("a")).unwrap_err();
    assert!(
        matches!(err, StoreError::File(FileError::TornTail { line: 2, .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("Recovery"), "{err}");
    // Recovery (docs/LEDGER.md): cut the torn line; the cached vector is debited on retry.
    fs::write(&path, &intact).unwrap();
    let mut l = open(tmp.path());
    let r = l
        .prepare_release(release(5, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap();
    assert_eq!(r.noisy_vector(), &[5]);
}

#[test]
fn tampering_and_lost_caches_are_reported() {
    let (tmp, mut l) = fresh("1/1");
    l.prepare_release(release(6, 0), gaussian(4, 2, 1), SALT, || vec![6])
        .unwrap();
    let path = l.path().to_owned();
    drop(l);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replacen("\"1/8\"", "\"1/9\"", 1)).unwrap();
    let err = open_in(tmp.path(), key("a"), node("a")).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { line: 2, .. }),
        "{err:?}"
    );
    fs::write(&path, &text).unwrap();
    // Another node's key cannot open this ledger.
    assert!(open_in(tmp.path(), key("b"), node("a")).is_err());
    let cache = fs::read_dir(tmp.path().join("vectors"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::write(&cache, "{}").unwrap();
    let mut l = open(tmp.path());
    let err = l
        .prepare_release(release(6, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap_err();
    assert!(matches!(err, StoreError::CacheCorrupt { .. }), "{err:?}");
    fs::remove_file(&cache).unwrap();
    let err = l
        .prepare_release(release(6, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap_err();
    assert!(matches!(err, StoreError::CacheMissing { .. }), "{err:?}");
}

#[test]
fn a_lifetime_cap_is_recorded_once_kept_across_periods_and_never_raised() {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClock::in_month("2026-11");
    let mut l = NodeLedger::open_with_clock(dir.path(), key("a"), node("a"), time.clock()).unwrap();
    let p = |s: &str| Period::new(s).unwrap();
    l.open_period_capped(
        p("2026-11"),
        "2".parse().unwrap(),
        Some("3".parse().unwrap()),
    )
    .unwrap();
    // Restating the same cap writes no entry; omitting it keeps it.
    time.set_month("2026-12");
    l.open_period_capped(
        p("2026-12"),
        "2".parse().unwrap(),
        Some("3".parse().unwrap()),
    )
    .unwrap();
    time.set_month("2027-01");
    l.open_period(p("2027-01"), "2".parse().unwrap()).unwrap();
    time.set_month("2027-02");
    assert_eq!(l.book().chain().next_seq(), 4);
    assert_eq!(l.book().lifetime_cap(), Some(&"3".parse().unwrap()));
    let raised = l.open_period_capped(
        p("2027-02"),
        "2".parse().unwrap(),
        Some("4".parse().unwrap()),
    );
    assert!(
        matches!(
            raised,
            Err(StoreError::Budget(BudgetError::LifetimeCapRaised { .. }))
        ),
        "{raised:?}"
    );
    // Nothing was written for the refused call: the period can still be opened.
    assert_eq!(l.book().chain().next_seq(), 4);
    l.open_period_capped(
        p("2027-02"),
        "2".parse().unwrap(),
        Some("1".parse().unwrap()),
    )
    .unwrap();
    drop(l);
    // Reopening replays and checks every entry, the lifetime cap included.
    let l = NodeLedger::open(dir.path(), key("a"), node("a")).unwrap();
    assert_eq!(l.book().lifetime_cap(), Some(&"1".parse().unwrap()));
    let times: Vec<String> = fs::read_to_string(l.path())
        .unwrap()
        .lines()
        .map(|line| {
            crate::NodeEntry::from_line(line)
                .unwrap()
                .time()
                .unwrap()
                .month()
                .to_string()
        })
        .collect();
    // Every entry is dated by the store's clock, in the month of its period.
    assert_eq!(
        times,
        [
            "2026-11", "2026-11", "2026-12", "2027-01", "2027-02", "2027-02"
        ]
    );
    assert_eq!(l.book().periods().len(), 4);
}

/// One process per state directory (restarts issue, item 4): a second open of a node ledger
/// while the first is open is refused and names the holder's pid; once the first is closed
/// the ledger opens again (the lock is the OS's and dies with its holder).
#[test]
fn a_second_opener_of_a_node_ledger_is_refused_naming_the_holder() {
    let (tmp, l) = fresh("1/1");
    let e = open_in(tmp.path(), key("a"), node("a")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("in use by another process")
            && text.contains(&std::process::id().to_string()),
        "{text}"
    );
    drop(l);
    assert!(open_in(tmp.path(), key("a"), node("a")).is_ok());
}

/// M9 through the store: its clock dates every entry; with the clock moved back a month the
/// old month is not reopened (an error naming both periods), and nothing is debited while the
/// clock is behind the ledger; once the clock is right the node spends again.
#[test]
fn m9_a_clock_moved_back_is_an_error_naming_both_periods() {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClock::in_month("2026-12");
    let mut l = NodeLedger::open_with_clock(dir.path(), key("a"), node("a"), time.clock()).unwrap();
    let p = |s: &str| Period::new(s).unwrap();
    l.open_period(p("2026-12"), "1".parse().unwrap()).unwrap();
    time.set_month("2026-11");
    let e = l
        .open_period(p("2026-11"), "1".parse().unwrap())
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, StoreError::Budget(BudgetError::PeriodOrder { .. }))
            && text.contains("2026-11 cannot be opened after period 2026-12"),
        "{text}"
    );
    let e = l
        .prepare_release(release(1, 0), gaussian(4, 2, 1), SALT, never)
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Budget(BudgetError::Clock(crate::EntryError::TimeBackwards { .. }))
        ),
        "{e:?}"
    );
    assert_eq!(
        line_count(&l),
        1,
        "nothing written while the clock is behind"
    );
    assert_eq!(fs::read_dir(dir.path().join("vectors")).unwrap().count(), 0);
    time.set_month("2026-12");
    l.prepare_release(release(1, 0), gaussian(4, 2, 1), SALT, || vec![1])
        .unwrap();
    assert_eq!(line_count(&l), 2);
}
