//! Bugs the simulator found, each as a named test (with the seed that found it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use fedprof_coordinator::journal::{
    Announced, KnownRequest, Opening, Record, Recovery, RequestState, SpecDigest,
};
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
            period: fedprof_sim::federation::current_period(),
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
            Some(KnownRequest {
                state: RequestState::Published(JobId(7)),
                ..
            })
        ),
        "{:?}",
        recovery.requests.get(&key)
    );
    assert_eq!(recovery.last_job, 7);
}

/// The same through the whole federation, scripted as seed 50 ran it: the coordinator is
/// killed in the masked-input phase of the first release (nodes paid), reruns the request after
/// its restart and publishes it, and is killed again while that result's outcome is on its way
/// to the analyst; the analyst sends the request again and must get the published release
/// back, not a third round.
#[test]
fn coordinator_killed_twice_around_one_request_publishes_it_once() {
    let mut fed = Federation::new(SimConfig::small(50)).unwrap();
    let found = fed
        .step_until(|f| f.last_event().ends_with("job-1 masked-input"))
        .unwrap();
    assert!(found);
    fed.kill_coordinator();
    // The rerun's result reaches the nodes; the outcome to the analyst is still in flight.
    let found = fed
        .step_until(|f| {
            f.last_event().starts_with("to peer") && f.last_event().ends_with(" result")
        })
        .unwrap();
    assert!(found);
    fed.kill_coordinator();
    let report = fed.drive();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.stats.coordinator_crashes, 2);
    assert!(report.finished, "{report:#?}");
    let first = &fed.analyst.jobs[0].results[0];
    assert_ne!(
        first.0,
        JobId(1),
        "the first release was rerun after the first kill"
    );
}
