use super::*;
use crate::clock::{CLOCK_TOLERANCE_SECS, Month};
use crate::testutil::{gaussian, key, node, release, writer};

/// An hour into month `m`.
fn at(m: &str) -> Timestamp {
    Timestamp(m.parse::<Month>().unwrap().start().secs() + 3600)
}

fn book_with_cap(cap: &str) -> (NodeBook, Vec<String>) {
    let k = key("a");
    let mut book = NodeBook::new(writer(node("a"))).unwrap();
    let open = book
        .plan_budget(
            Period::new("2026-11").unwrap(),
            cap.parse().unwrap(),
            at("2026-11"),
            &k,
        )
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
            .plan_debit(
                release(1, round),
                gaussian(4, 2, 1),
                Digest::ZERO,
                at("2026-11"),
                &k,
            )
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
        .plan_budget(
            Period::new("2026-12").unwrap(),
            "1/8".parse().unwrap(),
            at("2026-12"),
            &k,
        )
        .unwrap();
    book.commit(&p).unwrap();
    assert!(book.check_debit(&release(1, 2), &gaussian(4, 2, 1)).is_ok());
    let again = book.plan_budget(
        Period::new("2026-11").unwrap(),
        "1/1".parse().unwrap(),
        at("2026-12"),
        &k,
    );
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
        Entry::sign_at(seq, prev, writer(node("a")), Some(at("2026-11")), body, &k).to_line()
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
        .plan_debit(
            release(1, 0),
            gaussian(4, 2, 1),
            Digest::ZERO,
            at("2026-11"),
            &k,
        )
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
fn debit_halves(book: &mut NodeBook, job: u64, count: u32, now: Timestamp) {
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
            .plan_debit(release(job, round), half.clone(), Digest::ZERO, now, &k)
            .unwrap();
        book.commit(&e).unwrap();
    }
}

#[test]
fn cumulative_spending_adds_up_over_periods_exactly() {
    let k = key("a");
    let (mut book, _) = book_with_cap("2");
    debit_halves(&mut book, 1, 4, at("2026-11"));
    for (name, cap, job, n) in [("2026-12", "2", 2, 4), ("2027-01", "2", 3, 1)] {
        let p = book
            .plan_budget(
                Period::new(name).unwrap(),
                cap.parse().unwrap(),
                at(name),
                &k,
            )
            .unwrap();
        book.commit(&p).unwrap();
        debit_halves(&mut book, job, n, at(name));
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
    let cap = book
        .plan_lifetime_cap("5/2".parse().unwrap(), at("2026-11"), &k)
        .unwrap();
    book.commit(&cap).unwrap();
    debit_halves(&mut book, 1, 4, at("2026-11"));
    let dec = at("2026-12");
    let p = book
        .plan_budget(
            Period::new("2026-12").unwrap(),
            "2".parse().unwrap(),
            dec,
            &k,
        )
        .unwrap();
    book.commit(&p).unwrap();
    // The new period has room (0 of 2 spent), the lifetime cap has 1/2 left: one more half.
    debit_halves(&mut book, 2, 1, dec);
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
        book.plan_debit(release(3, 0), gaussian(4, 2, 1), Digest::ZERO, dec, &k)
            .is_err()
    );
    // A cap is lowered or restated, never raised.
    let raised = book.plan_lifetime_cap("3".parse().unwrap(), dec, &k);
    assert_eq!(
        raised.unwrap_err(),
        BudgetError::LifetimeCapRaised {
            cap: "5/2".parse().unwrap(),
            requested: "3".parse().unwrap(),
        }
    );
    assert!(
        book.plan_lifetime_cap("5/2".parse().unwrap(), dec, &k)
            .is_ok()
    );
    assert!(
        book.plan_lifetime_cap("1".parse().unwrap(), dec, &k)
            .is_ok()
    );
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
        Entry::sign_at(seq, prev, w.clone(), Some(at("2026-11")), body, &k)
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

/// M9: a timed period is a UTC month, opened in strictly increasing order and dated within
/// itself; a clock moved back is an error naming both periods (not a reopened month), and a
/// debit dated outside its period is refused before anything is generated.
#[test]
fn m9_periods_are_months_in_order_and_debits_fall_in_them() {
    let k = key("a");
    let mut book = NodeBook::new(writer(node("a"))).unwrap();
    let cap: Rho = "1".parse().unwrap();
    let period = |p: &str| Period::new(p).unwrap();
    assert_eq!(
        book.plan_budget(period("pilot_q4"), cap.clone(), at("2026-12"), &k),
        Err(BudgetError::PeriodNotAMonth(period("pilot_q4")))
    );
    // Opened in another month than the clock's: refused.
    assert!(matches!(
        book.plan_budget(period("2026-11"), cap.clone(), at("2026-12"), &k),
        Err(BudgetError::OutsidePeriod { .. })
    ));
    let dec = book
        .plan_budget(period("2026-12"), cap.clone(), at("2026-12"), &k)
        .unwrap();
    book.commit(&dec).unwrap();
    // The clock moved back a month: November cannot be opened after December.
    let back = book
        .plan_budget(period("2026-11"), cap.clone(), at("2026-11"), &k)
        .unwrap_err();
    assert!(matches!(&back, BudgetError::PeriodOrder { .. }), "{back:?}");
    // A debit with the clock moved back past the tolerance: refused by the chain's time rule.
    let behind = Timestamp(at("2026-12").secs() - CLOCK_TOLERANCE_SECS - 1);
    assert!(matches!(
        book.check_debit_at(&release(1, 0), &gaussian(4, 2, 1), behind),
        Err(BudgetError::Clock(EntryError::TimeBackwards { .. }))
    ));
    // Even dated within the tolerance (the entry's time alone would pass), the order holds.
    let start = "2026-12".parse::<Month>().unwrap().start().secs();
    let just_before = Timestamp(start - 1);
    let mut early = NodeBook::new(writer(node("a"))).unwrap();
    let e = early
        .plan_budget(period("2026-12"), cap.clone(), Timestamp(start + 10), &k)
        .unwrap();
    early.commit(&e).unwrap();
    let order = early
        .plan_budget(period("2026-11"), cap.clone(), just_before, &k)
        .unwrap_err();
    assert_eq!(
        order,
        BudgetError::PeriodOrder {
            latest: period("2026-12"),
            requested: period("2026-11"),
        }
    );
    let text = order.to_string();
    assert!(
        text.contains("2026-11") && text.contains("2026-12") && text.contains("clock"),
        "{text}"
    );
    assert_eq!(order.refusal().reason, RefuseReason::Policy);
    // A debit in January while December is still the open period: refused, and so is its
    // replay; within the tolerance after the month's end it is accepted (the roll is racing).
    let jan = at("2027-01");
    let refused = book.check_debit_at(&release(1, 0), &gaussian(4, 2, 1), jan);
    assert!(
        matches!(refused, Err(BudgetError::OutsidePeriod { .. })),
        "{refused:?}"
    );
    let end = "2027-01".parse::<Month>().unwrap().start().secs();
    let late = Timestamp(end + CLOCK_TOLERANCE_SECS - 1);
    assert!(
        book.check_debit_at(&release(1, 0), &gaussian(4, 2, 1), late)
            .is_ok()
    );
    let body = NodeBody::Debit {
        release: release(1, 0),
        mechanism: gaussian(4, 2, 1),
        rho: "1/8".parse().unwrap(),
        vector_digest: Digest::ZERO,
    };
    let outside = Entry::sign_at(1, dec.digest(), writer(node("a")), Some(jan), body, &k);
    let mut replay = NodeBook::new(writer(node("a"))).unwrap();
    let vk = k.verifying_key();
    replay.apply_line(&dec.to_line(), &vk).unwrap();
    assert!(matches!(
        replay.apply_line(&outside.to_line(), &vk),
        Err(NodeRuleError::Budget(BudgetError::OutsidePeriod { .. }))
    ));
    // January opens in January, after December.
    let p = book.plan_budget(period("2027-01"), cap, jan, &k).unwrap();
    book.commit(&p).unwrap();
    assert!(
        book.check_debit_at(&release(1, 0), &gaussian(4, 2, 1), jan)
            .is_ok()
    );
}

/// Old, untimed ledgers keep their rules: any label as a period (unique), debits unchecked
/// against months; a timed entry after them must open a month.
#[test]
fn untimed_entries_keep_the_old_rules() {
    let k = key("a");
    let vk = k.verifying_key();
    let w = writer(node("a"));
    let budget = |p: &str| NodeBody::Budget {
        period: Period::new(p).unwrap(),
        cap_rho: "1".parse().unwrap(),
    };
    let first = Entry::sign(0, Digest::ZERO, w.clone(), budget("pilot_q4"), &k);
    let mut book = NodeBook::new(w.clone()).unwrap();
    book.apply_line(&first.to_line(), &vk).unwrap();
    let reused = Entry::sign(1, first.digest(), w.clone(), budget("pilot_q4"), &k);
    assert!(matches!(
        book.clone().apply_line(&reused.to_line(), &vk),
        Err(NodeRuleError::Budget(BudgetError::PeriodReused(_)))
    ));
    // A timed debit in a legacy (non-month) period: refused, the period must be a month.
    assert!(matches!(
        book.check_debit_at(&release(1, 0), &gaussian(4, 2, 1), at("2026-12")),
        Err(BudgetError::OutsidePeriod { .. })
    ));
    let p = book
        .plan_budget(
            Period::new("2026-12").unwrap(),
            "1".parse().unwrap(),
            at("2026-12"),
            &k,
        )
        .unwrap();
    book.commit(&p).unwrap();
    assert!(
        book.check_debit_at(&release(1, 0), &gaussian(4, 2, 1), at("2026-12"))
            .is_ok()
    );
}

/// L9: the node's ledger must hold the receipt the coordinator last recorded from it; one that
/// ends before it (restored from an older copy) or holds another entry there is refused with
/// both heads named.
#[test]
fn l9_a_ledger_without_the_coordinators_last_receipt_was_rolled_back() {
    let k = key("a");
    let (mut old, _) = book_with_cap("1");
    let mut book = old.clone();
    let debit = |b: &mut NodeBook, round| {
        let e = b
            .plan_debit(
                release(1, round),
                gaussian(4, 2, 1),
                Digest::ZERO,
                at("2026-11"),
                &k,
            )
            .unwrap();
        b.commit(&e).unwrap();
        e
    };
    let first = debit(&mut book, 0);
    old = {
        let mut o = old;
        o.commit(&first).unwrap();
        o
    };
    let second = debit(&mut book, 1);
    let head = |e: &NodeEntry| fedprof_protocol::ReceiptHead {
        seq: e.seq(),
        digest: *e.digest().as_bytes(),
    };
    assert_eq!(book.check_receipt_head(None), Ok(()));
    assert_eq!(book.check_receipt_head(Some(&head(&second))), Ok(()));
    assert_eq!(book.check_receipt_head(Some(&head(&first))), Ok(()));
    // The copy from before the second debit.
    let err = old.check_receipt_head(Some(&head(&second))).unwrap_err();
    assert_eq!((err.seq, err.digest), (2, second.digest()));
    let text = err.to_string();
    assert!(
        text.contains("seq 2")
            && text.contains(&second.digest().to_string())
            && text.contains("ends at seq 1")
            && text.contains(&old.chain().last_digest().to_string())
            && text.contains("restore"),
        "{text}"
    );
    assert_eq!(err.refusal().reason, RefuseReason::RolledBack);
    // Another ledger of the same length (e.g. a reinstalled node): the entry there differs.
    let mut other = old.clone();
    let third = |b: &mut NodeBook| {
        let e = b
            .plan_debit(
                release(9, 0),
                gaussian(4, 2, 1),
                Digest::ZERO,
                at("2026-11"),
                &k,
            )
            .unwrap();
        b.commit(&e).unwrap();
    };
    third(&mut other);
    let err = other.check_receipt_head(Some(&head(&second))).unwrap_err();
    assert!(err.found.contains("another debit"), "{err}");
    // A head pointing at a non-debit entry.
    let bogus = fedprof_protocol::ReceiptHead {
        seq: 0,
        digest: [7; 32],
    };
    assert!(book.check_receipt_head(Some(&bogus)).is_err());
}
