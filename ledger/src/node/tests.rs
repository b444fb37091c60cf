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
            .plan_debit(release(1, round), gaussian(2, 2, 0), Digest::ZERO, &k)
            .unwrap();
        book.commit(&e).unwrap();
    }
    assert_eq!(book.periods()[0].spent, "1/4".parse().unwrap());
    let err = book
        .check_debit(&release(1, 2), &gaussian(2, 2, 0))
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
    assert!(book.check_debit(&release(1, 2), &gaussian(2, 2, 0)).is_ok());
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
            mechanism: gaussian(2, 2, 0),
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
        .plan_debit(release(1, 0), gaussian(2, 2, 0), Digest::ZERO, &k)
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
