//! The floor refuses what the coordinator may not impose on this node (review finding H3).

use super::*;
use fedprof_protocol::Fraction;

fn r(s: &str) -> Rho {
    s.parse().unwrap_or_else(|_| unreachable!("{s}"))
}

fn params(n_min: u32, colluders: u32) -> ReleaseParams {
    ReleaseParams {
        node_variance: vec![Fraction {
            numer: 100,
            denom: 1,
        }],
        min_contributors: n_min,
        colluders,
    }
}

fn tag(id: u8, analyst: &str, cap: (u64, u64)) -> ProfileTag {
    ProfileTag {
        id: ProfileId([id; 16]),
        analyst: PartyName::new(analyst).unwrap_or_else(|_| unreachable!()),
        cap: Fraction {
            numer: cap.0,
            denom: cap.1,
        },
    }
}

#[test]
fn h3_an_announcement_below_the_nodes_floor_is_refused_with_a_typed_reason() {
    let floor = NodeFloorConfig {
        min_colluders: 2,
        min_honest_shares: 2,
        ..NodeFloorConfig::default()
    };
    let none = Spending::default();
    let t = tag(1, "risk-team", (1, 1));
    let zero = Rho::zero();
    // The coordinator's (mis)configuration: min_nodes 10, colluders 0 or 1.
    assert_eq!(
        check(&floor, &none, &params(10, 1), &t, &r("1/10"), &zero),
        Err(FloorRefusal::Colluders {
            announced: 1,
            floor: 2
        })
    );
    assert_eq!(
        check(&floor, &none, &params(3, 2), &t, &r("1/10"), &zero),
        Err(FloorRefusal::HonestShares {
            announced: 1,
            floor: 2
        })
    );
    assert!(check(&floor, &none, &params(4, 2), &t, &r("1/10"), &zero).is_ok());
    let e = check(&floor, &none, &params(4, 2), &t, &r("3/4"), &zero).unwrap_err();
    assert!(matches!(e, FloorRefusal::Release { .. }), "{e}");
    assert_eq!(e.refusal().reason, RefuseReason::PrivacyFloor);
}

#[test]
fn h3_job_and_analyst_limits_count_this_nodes_own_debits() {
    let floor = NodeFloorConfig {
        max_rho_per_job: r("1/2"),
        max_rho_per_analyst: r("3/4"),
        ..NodeFloorConfig::default()
    };
    let mut spent = Spending {
        period: Some("2026-12".into()),
        ..Spending::default()
    };
    add(&mut spent.per_job, ProfileId([1; 16]), &r("2/5"));
    add(
        &mut spent.per_analyst,
        PartyName::new("risk-team").unwrap_or_else(|_| unreachable!()),
        &r("2/5"),
    );
    let p = params(3, 1);
    let zero = Rho::zero();
    // The job declared 1 but this node allows 1/2 per job: 2/5 + 1/5 is too much.
    let big = tag(1, "risk-team", (1, 1));
    assert!(matches!(
        check(&floor, &spent, &p, &big, &r("1/5"), &zero),
        Err(FloorRefusal::Job { .. })
    ));
    // The job's own declared total binds when it is below the node's limit.
    let small = tag(1, "risk-team", (9, 20));
    assert!(matches!(
        check(&floor, &spent, &p, &small, &r("1/10"), &zero),
        Err(FloorRefusal::Job { .. })
    ));
    // The reserve counts: a release that fits alone but not with the rest of its job.
    assert!(matches!(
        check(&floor, &spent, &p, &big, &r("1/20"), &r("1/10")),
        Err(FloorRefusal::Job { .. })
    ));
    assert!(check(&floor, &spent, &p, &big, &r("1/20"), &zero).is_ok());
    // Another job of the same analyst: the per-analyst limit 3/4 binds at 2/5 + 2/5.
    let other = tag(2, "risk-team", (1, 1));
    assert!(matches!(
        check(&floor, &spent, &p, &other, &r("2/5"), &zero),
        Err(FloorRefusal::Analyst { .. })
    ));
    assert!(
        check(
            &floor,
            &spent,
            &p,
            &tag(3, "marketing", (1, 1)),
            &r("2/5"),
            &zero
        )
        .is_ok()
    );
}
