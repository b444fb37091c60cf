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
        max_honest_shares: 2,
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
    // The review's counterexample with one colluder: n_min 10, c 2 credits 8 honest shares, so
    // every node would add sigma^2 / 8; if 5 collude, the true loss is 8/5 of the debit.
    assert_eq!(
        check(&floor, &none, &params(10, 2), &t, &r("1/10"), &zero),
        Err(FloorRefusal::HonestShares {
            announced: 8,
            floor: 2
        })
    );
    assert!(check(&floor, &none, &params(4, 2), &t, &r("1/10"), &zero).is_ok());
    assert!(check(&floor, &none, &params(3, 2), &t, &r("1/10"), &zero).is_ok());
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

/// Budget periods roll while the node runs (restarts issue, item 6): a new month opens a new
/// period with the configured cap (and keeps the lifetime cap), and per-analyst spending
/// starts again; the same month opens nothing.
#[test]
fn a_new_month_opens_a_new_period_while_running() {
    let tmp = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let node = fedprof_protocol::PartyId {
        role: fedprof_protocol::Role::Node,
        name: PartyName::new("a").unwrap_or_else(|_| unreachable!()),
    };
    // The ledger's clock, moved by hand: a period is opened in its own month.
    let now = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clock = {
        let now = now.clone();
        fedprof_ledger::Clock::from_fn(move || {
            fedprof_ledger::Timestamp(now.load(std::sync::atomic::Ordering::SeqCst))
        })
    };
    let month = |m: &str| {
        let m: fedprof_ledger::Month = m.parse().unwrap_or_else(|_| unreachable!());
        now.store(m.start().secs() + 3600, std::sync::atomic::Ordering::SeqCst);
    };
    month("2026-12");
    let mut ledger = fedprof_ledger::NodeLedger::open_with_clock(tmp.path(), key, node, clock)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let period = |p: &str| fedprof_ledger::Period::new(p).unwrap_or_else(|_| unreachable!());
    let mut spending = Spending::default();
    let cap = r("2");
    let opened = |l: &mut fedprof_ledger::NodeLedger, s: &mut Spending, p: &str| {
        roll_period(l, s, period(p), &cap, Some(r("24"))).unwrap_or_else(|e| unreachable!("{e}"))
    };
    assert!(opened(&mut ledger, &mut spending, "2026-12"));
    assert!(!opened(&mut ledger, &mut spending, "2026-12"));
    month("2027-01");
    assert!(opened(&mut ledger, &mut spending, "2027-01"));
    let periods: Vec<String> = ledger
        .book()
        .periods()
        .iter()
        .map(|p| p.period.as_str().to_owned())
        .collect();
    assert_eq!(periods, ["2026-12", "2027-01"]);
    assert_eq!(ledger.book().lifetime_cap(), Some(&r("24")));
    assert_eq!(spending.period.as_deref(), Some("2027-01"));
}
