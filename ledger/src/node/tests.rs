use super::*;
use crate::testutil::{gaussian, key, node, release, writer};

fn book_with_cap(cap: &str) -> (NodeBook, Vec<String>) {
    let k = key("a");
    let mut book = NodeBook::new(writer(node("a"))).unwrap();
    let open = book
        .plan_budget(Period::new("2026-11").unwrap(), cap.parse().unwrap(), &k)
        .unwrap();
    book.commit(&open).unwrap();
    (book, vec![open.to_line()])
}

#[test]
fn debits_add_up_exactly_and_stop_at_the_cap() {
    let k = key("a");
    let (mut book, _) = book_with_cap("1/4");
    for round in 0..2 {
        let e = book
            .plan_debit(release(1, round), gaussian(4, 2, 1), Digest::ZERO, &k)
            .unwrap();
        book.commit(&e).unwrap();
    }
    assert_eq!(book.periods()[0].spent, "1/4".parse().unwrap());
    let err = book
        .check_debit(&release(1, 2), &gaussian(4, 2, 1))
        .unwrap_err();
    assert_eq!(
        err,
        BudgetError::BudgetExceeded {
            period: Period::new("2026-11").unwrap(),
            spent: "1/4".parse().unwrap(),
            requested: "1/8".parse().unwrap(),
            cap: "1/4".parse().unwrap(),
        }
    );
    let refusal = err.refusal();
    assert_eq!(refusal.reason, RefuseReason::BudgetExhausted);
    assert!(
        refusal.detail.contains("spent rho 1/4 of cap 1/4"),
        "{}",
        refusal.detail
    );
    // A new period starts from zero; an old name cannot be reused.
    let p = book
        .plan_budget(Period::new("2026-12").unwrap(), "1/8".parse().unwrap(), &k)
        .unwrap();
    book.commit(&p).unwrap();
    assert!(book.check_debit(&release(1, 2), &gaussian(4, 2, 1)).is_ok());
    let again = book.plan_budget(Period::new("2026-11").unwrap(), "1/1".parse().unwrap(), &k);
    assert!(matches!(again, Err(BudgetError::PeriodReused(_))));
}

/// Entries that a node signs but that break the rules are refused by whoever replays them.
#[test]
fn replay_refuses_rule_breaking_entries() {
    let k = key("a");
    let vk = k.verifying_key();
    let replay = |lines: &[String]| {
        let mut b = NodeBook::new(writer(node("a"))).unwrap();
        for (i, l) in lines.iter().enumerate() {
            b.apply_line(l, &vk).map_err(|e| (i, e))?;
        }
        Ok::<_, (usize, NodeRuleError)>(b)
    };
    let (book, lines) = book_with_cap("1/8");
    let debit = |seq, prev, rho: &str, r| {
        let body = NodeBody::Debit {
            release: release(1, r),
            mechanism: gaussian(4, 2, 1),
            rho: rho.parse().unwrap(),
            vector_digest: Digest::ZERO,
        };
        Entry::sign(seq, prev, writer(node("a")), body, &k).to_line()
    };
    let prev = *book.chain().last_digest();
    let wrong_rho = [lines.clone(), vec![debit(1, prev, "1/100", 0)]].concat();
    assert!(matches!(
        replay(&wrong_rho),
        Err((1, NodeRuleError::RhoMismatch { .. }))
    ));

    let first = debit(1, prev, "1/8", 0);
    let twice = [
        lines.clone(),
        vec![
            first.clone(),
            debit(2, Digest::of(first.as_bytes()), "1/8", 0),
        ],
    ]
    .concat();
    assert!(matches!(
        replay(&twice),
        Err((2, NodeRuleError::DoubleDebit { first_seq: 1, .. }))
    ));

    let over = [
        lines.clone(),
        vec![
            first.clone(),
            debit(2, Digest::of(first.as_bytes()), "1/8", 1),
        ],
    ]
    .concat();
    let err = replay(&over).unwrap_err();
    assert!(
        matches!(
            err,
            (2, NodeRuleError::Budget(BudgetError::BudgetExceeded { .. }))
        ),
        "{err:?}"
    );

    let headless = vec![debit(0, Digest::ZERO, "1/8", 0)];
    assert!(matches!(
        replay(&headless),
        Err((0, NodeRuleError::BadStart))
    ));
    assert!(replay(&[lines, vec![first]].concat()).is_ok());
}

#[test]
fn headroom_covers_the_release_and_the_rest_of_its_job() {
    let k = key("a");
    let (mut book, _) = book_with_cap("1/2");
    let e = book
        .plan_debit(release(1, 0), gaussian(4, 2, 1), Digest::ZERO, &k)
        .unwrap();
    book.commit(&e).unwrap();
    // Spent 1/8 of 1/2: 1/8 now plus 1/4 later fits exactly; 1/8 plus 1/4 + 1/100 does not.
    let r = |s: &str| -> Rho { s.parse().unwrap() };
    assert!(book.check_headroom(&r("1/8"), &r("1/4")).is_ok());
    assert_eq!(
        book.check_headroom(&r("1/8"), &r("26/100")),
        Err(BudgetError::BudgetExceeded {
            period: Period::new("2026-11").unwrap(),
            spent: r("1/8"),
            requested: r("77/200"),
            cap: r("1/2"),
        })
    );
}

/// Debits 1/2 each (sigma^2 1 at n_min 2, one colluder: rho = 1 / (2 * 1 * 1) = 1/2) in `book`.
fn debit_halves(book: &mut NodeBook, job: u64, count: u32) {
    let k = key("a");
    let half = crate::mechanism::MechanismRecord::DistributedDiscreteGaussian(
        crate::mechanism::DiscreteGaussian::new(
            crate::mechanism::Sensitivity {
                l2_sq: "1".parse().unwrap(),
                l1: "1".parse().unwrap(),
            },
            3,
            "1".parse().unwrap(),
            2,
            1,
        )
        .unwrap(),
    );
    for round in 0..count {
        let e = book
            .plan_debit(release(job, round), half.clone(), Digest::ZERO, &k)
            .unwrap();
        book.commit(&e).unwrap();
    }
}

#[test]
fn cumulative_spending_adds_up_over_periods_exactly() {
    let k = key("a");
    let (mut book, _) = book_with_cap("2");
    debit_halves(&mut book, 1, 4);
    for (name, cap, job, n) in [("2026-12", "2", 2, 4), ("2027-01", "2", 3, 1)] {
        let p = book
            .plan_budget(Period::new(name).unwrap(), cap.parse().unwrap(), &k)
            .unwrap();
        book.commit(&p).unwrap();
        debit_halves(&mut book, job, n);
    }
    let spent: Vec<String> = book.periods().iter().map(|p| p.spent.to_string()).collect();
    assert_eq!(spent, ["2/1", "2/1", "1/2"]);
    // 2 + 2 + 1/2 = 9/2 over all periods, though no period is over its cap of 2.
    assert_eq!(book.cumulative(), &"9/2".parse::<Rho>().unwrap());
    assert_eq!(book.lifetime_cap(), None);
}

#[test]
fn debits_beyond_the_lifetime_cap_are_refused() {
    let k = key("a");
    let (mut book, _) = book_with_cap("2");
    let cap = book.plan_lifetime_cap("5/2".parse().unwrap(), &k).unwrap();
    book.commit(&cap).unwrap();
    debit_halves(&mut book, 1, 4);
    let p = book
        .plan_budget(Period::new("2026-12").unwrap(), "2".parse().unwrap(), &k)
        .unwrap();
    book.commit(&p).unwrap();
    // The new period has room (0 of 2 spent), the lifetime cap has 1/2 left: one more half.
    debit_halves(&mut book, 2, 1);
    assert_eq!(book.cumulative(), &"5/2".parse::<Rho>().unwrap());
    let err = book
        .check_debit(&release(3, 0), &gaussian(4, 2, 1))
        .unwrap_err();
    assert_eq!(
        err,
        BudgetError::LifetimeCapExceeded {
            spent: "5/2".parse().unwrap(),
            requested: "1/8".parse().unwrap(),
            cap: "5/2".parse().unwrap(),
        }
    );
    assert!(
        err.to_string()
            .contains("spent rho 5/2 over all periods of lifetime cap 5/2"),
        "{err}"
    );
    assert!(matches!(
        book.check_headroom(&Rho::zero(), &"1/8".parse().unwrap()),
        Err(BudgetError::LifetimeCapExceeded { .. })
    ));
    assert!(
        book.plan_debit(release(3, 0), gaussian(4, 2, 1), Digest::ZERO, &k)
            .is_err()
    );
    // A cap is lowered or restated, never raised.
    let raised = book.plan_lifetime_cap("3".parse().unwrap(), &k);
    assert_eq!(
        raised.unwrap_err(),
        BudgetError::LifetimeCapRaised {
            cap: "5/2".parse().unwrap(),
            requested: "3".parse().unwrap(),
        }
    );
    assert!(book.plan_lifetime_cap("5/2".parse().unwrap(), &k).is_ok());
    assert!(book.plan_lifetime_cap("1".parse().unwrap(), &k).is_ok());
}

#[test]
fn a_lifetime_cap_entry_cannot_open_a_ledger_or_be_raised_on_replay() {
    let k = key("a");
    let vk = k.verifying_key();
    let w = writer(node("a"));
    let cap = |seq, prev, c: &str| {
        let body = NodeBody::LifetimeCap {
            cap_rho: c.parse().unwrap(),
        };
        Entry::sign(seq, prev, w.clone(), body, &k)
    };
    let mut empty = NodeBook::new(w.clone()).unwrap();
    let first = cap(0, Digest::ZERO, "1").to_line();
    assert!(matches!(
        empty.apply_line(&first, &vk),
        Err(NodeRuleError::BadStart)
    ));
    let (mut book, _) = book_with_cap("1");
    let lower = cap(1, *book.chain().last_digest(), "1/2");
    book.apply_line(&lower.to_line(), &vk).unwrap();
    assert_eq!(book.lifetime_cap(), Some(&"1/2".parse::<Rho>().unwrap()));
    let higher = cap(2, *book.chain().last_digest(), "1").to_line();
    assert!(matches!(
        book.apply_line(&higher, &vk),
        Err(NodeRuleError::Budget(BudgetError::LifetimeCapRaised { .. }))
    ));
}
