use super::*;
use fedprof_protocol::{Fraction, ProfileId};

fn name(s: &str) -> PartyName {
    PartyName::new(s).unwrap()
}
fn r(s: &str) -> Rho {
    s.parse().unwrap()
}

fn announced(job: u64, request: u8, opened: bool) -> Announced {
    Announced {
        job: JobId(job),
        analyst: name("alice"),
        request: RequestId([request; 16]),
        spec: SpecDigest([request; 32]),
        profile: ProfileTag {
            id: ProfileId([7; 16]),
            analyst: name("alice"),
            cap: Fraction { numer: 1, denom: 1 },
        },
        rho: r("1/10"),
        opened: opened.then(|| Opening {
            period: "2026-12".into(),
            cap: r("1"),
            participants: vec![name("a"), name("b")],
        }),
    }
}

/// A restart keeps every charge of a release nodes may have paid for, refunds the ones no
/// node could pay, remembers what was published, and numbers jobs after the last.
#[test]
fn replay_keeps_paid_charges_refunds_unpaid_and_remembers_publications() {
    let records = vec![
        Record::Announced(announced(1, 1, true)),
        Record::Paying { job: JobId(1) },
        Record::Published {
            job: JobId(1),
            contributors: vec![name("a"), name("b")],
        },
        // Aborted before any node could pay: refunded.
        Record::Announced(announced(2, 2, false)),
        Record::Refunded { job: JobId(2) },
        // Aborted after nodes paid: kept.
        Record::Announced(announced(3, 3, false)),
        Record::Paying { job: JobId(3) },
        Record::Aborted { job: JobId(3) },
        // Running when the coordinator stopped, nodes paying: kept.
        Record::Announced(announced(4, 4, false)),
        Record::Paying { job: JobId(4) },
        // Running when it stopped, before paying: refunded.
        Record::Announced(announced(5, 5, false)),
    ];
    let rec = Recovery::replay(&records).unwrap();
    assert_eq!(rec.last_job, 5);
    // Charged: jobs 1, 3, 4 (3/10 of the job's total 1).
    assert_eq!(rec.profiles.charged(ProfileId([7; 16])), Some(&r("3/10")));
    let state = |n: u8| rec.requests[&(name("alice"), RequestId([n; 16]))].state;
    assert_eq!(state(1), RequestState::Published(JobId(1)));
    assert_eq!(state(2), RequestState::Interrupted(JobId(2)));
    assert_eq!(state(3), RequestState::Interrupted(JobId(3)));
    assert_eq!(state(4), RequestState::Interrupted(JobId(4)));
    assert_eq!(rec.interrupted, vec![(JobId(4), true), (JobId(5), false)]);
}

#[test]
fn replay_refuses_records_out_of_order() {
    let bad = [
        vec![Record::Paying { job: JobId(1) }],
        vec![
            Record::Announced(announced(2, 1, true)),
            Record::Announced(announced(2, 2, false)),
        ],
        vec![
            Record::Announced(announced(1, 1, true)),
            Record::Refunded { job: JobId(1) },
            Record::Published {
                job: JobId(1),
                contributors: vec![],
            },
        ],
    ];
    for records in bad {
        assert!(Recovery::replay(&records).is_err(), "{records:?}");
    }
}

/// On disk: records survive a reopen, a torn last line (a crash while appending) is
/// dropped, and stored results read back.
#[test]
fn the_file_drops_a_torn_tail_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, rec) = JournalFile::open(dir.path()).unwrap();
    assert_eq!(rec.last_job, 0);
    j.append(&Record::Announced(announced(1, 1, true))).unwrap();
    // A real published result (ring vectors and all) reads back exactly.
    let outcome = JobOutcome::Completed {
        result: fedprof_protocol::JobResult {
            spec: crate::round::tests::totals(),
            values: vec![1, u64::MAX, 0],
            contributors: vec![name("a"), name("b")],
            release: fedprof_protocol::ReleaseParams {
                node_variance: vec![Fraction { numer: 4, denom: 1 }],
                min_contributors: 2,
                colluders: 1,
            },
            profile: announced(1, 1, true).profile,
        },
        failures: vec![],
    };
    j.store_result(JobId(1), &outcome).unwrap();
    drop(j);
    let path = dir.path().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"type\":\"paying\",\"jo");
    std::fs::write(&path, text).unwrap();
    let (j, rec) = JournalFile::open(dir.path()).unwrap();
    assert_eq!(rec.last_job, 1);
    // The torn record was never complete: job 1 did not reach its paying phase.
    assert_eq!(rec.interrupted, vec![(JobId(1), false)]);
    assert_eq!(j.load_result(JobId(1)).unwrap(), outcome);
    assert!(j.load_result(JobId(2)).is_err());
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
}

/// Ring vectors survive a JSON round trip too (serde_json writes bytes as numbers).
#[test]
fn results_round_trip_through_json() {
    let result = fedprof_protocol::JobResult {
        spec: crate::round::tests::totals(),
        values: vec![1, u64::MAX, 0],
        contributors: vec![name("a")],
        release: fedprof_protocol::ReleaseParams {
            node_variance: vec![Fraction { numer: 4, denom: 1 }],
            min_contributors: 2,
            colluders: 1,
        },
        profile: announced(1, 1, true).profile,
    };
    let text = serde_json::to_string(&result).unwrap();
    let back: fedprof_protocol::JobResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back, result);
    // Not a whole number of ring elements: refused.
    let bad = text.replace("\"values\":[1,", "\"values\":[");
    assert!(serde_json::from_str::<fedprof_protocol::JobResult>(&bad).is_err());
}

/// Found by fedprof-sim (seed 50): a round interrupted by a restart, whose request then ran
/// again and was published, must not mark the request interrupted at the next replay (the
/// analyst's resend would run the published release a third time and nodes pay again).
#[test]
fn an_interrupted_round_does_not_undo_a_later_publication_of_its_request() {
    let mut rerun = announced(2, 1, false);
    rerun.opened = None;
    let records = vec![
        Record::Announced(announced(1, 1, true)),
        Record::Paying { job: JobId(1) },
        // The coordinator stopped; after the restart the request ran again as job 2.
        Record::Announced(rerun),
        Record::Paying { job: JobId(2) },
        Record::Published {
            job: JobId(2),
            contributors: vec![name("a"), name("b")],
        },
    ];
    let rec = Recovery::replay(&records).unwrap();
    assert_eq!(
        rec.requests[&(name("alice"), RequestId([1; 16]))].state,
        RequestState::Published(JobId(2))
    );
    assert_eq!(rec.interrupted, vec![(JobId(1), true)]);
}
