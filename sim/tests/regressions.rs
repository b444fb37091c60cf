//! Bugs the simulator found, each as a named test (with the seed that found it).

use fedprof_coordinator::journal::{Announced, KnownRequest, Opening, Record, Recovery, RequestState, SpecDigest};
use fedprof_privacy::Rho;
use fedprof_protocol::{Fraction, JobId, PartyName, ProfileId, ProfileTag, RequestId};
use fedprof_sim::{Federation, SimConfig};

fn announced(job: u64, request: RequestId, profile: u8) -> Record {
    let analyst = PartyName::new("analyst").unwrap();
    let rho = Rho::from_ratio(1, 16).unwrap();
    Record::Announced(Announced {
        job: JobId(job),
        analyst: analyst.clone(),
        request,
        spec: SpecDigest([9; 32]),
        profile: ProfileTag {
            id: ProfileId([profile; 16]),
            analyst,
            cap: Fraction { numer: 1, denom: 4 },
        },
        rho,
        opened: Some(Opening {
            period: "2026-11".into(),
            cap: Rho::from_ratio(1, 4).unwrap(),
            participants: vec![PartyName::new("a").unwrap()],
        }),
    })
}

/// Seed 50 of the fault suite. The coordinator died in a round nodes had paid for (job 6);
/// restarted, it ran the request again as job 7 and published it; restarted a second time,
/// its journal replay still saw job 6 as open (an interrupted round is never closed in the
/// journal) and marked the request interrupted over job 7's publication, so the analyst's
/// resend ran the published release a third time (job 8) and the nodes paid again.
#[test]
fn a_request_published_after_a_restart_stays_published_after_the_next_restart() {
    let request = RequestId([3; 16]);
    let records = [
        announced(6, request, 1),
        Record::Paying { job: JobId(6) },
        // (the coordinator died here, and restarted)
        announced(7, request, 2),
        Record::Paying { job: JobId(7) },
        Record::Published {
            job: JobId(7),
            contributors: vec![PartyName::new("a").unwrap()],
        },
    ];
    let recovery = Recovery::replay(&records).unwrap();
    let key = (PartyName::new("analyst").unwrap(), request);
    assert!(
        matches!(
            recovery.requests.get(&key),
            Some(KnownRequest { state: RequestState::Published(JobId(7)), .. })
        ),
        "{:?}",
        recovery.requests.get(&key)
    );
    assert_eq!(recovery.last_job, 7);
}

/// The same through the whole federation: seed 50 runs without a violation.
#[test]
fn seed_50_two_coordinator_restarts_around_one_request() {
    let mut fed = Federation::new(SimConfig::faulty(50)).unwrap();
    let report = fed.drive();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.stats.coordinator_crashes >= 2, "{report:#?}");
}
