//! Attacks by one node on a round (security review M2, M3): the round drops or rejects the
//! attacker and the honest nodes' release goes on.

use super::*;

/// Review finding M2: a node whose debit receipt does not pay for exactly this release (another
/// rho, another release, another mechanism, another writer, a forged signature, not a debit,
/// not a ledger line, too long) is dropped from the round when the receipt arrives, before its
/// masked input counts; the honest nodes' release goes on without it, and every receipt the
/// release carries is its contributor's own debit of it.
#[test]
fn a_bad_receipt_drops_its_sender_not_the_release() {
    type Attack = Box<dyn Fn(&Fed) -> String>;
    let attacks: Vec<(&str, Attack)> = vec![
        (
            "another rho",
            Box::new(|f: &Fed| {
                f.debit(&name("c"), |b| {
                    if let NodeBody::Debit { rho, .. } = b {
                        *rho = "1/1000".parse().unwrap();
                    }
                })
            }),
        ),
        (
            "another release",
            Box::new(|f: &Fed| {
                f.debit(&name("c"), |b| {
                    if let NodeBody::Debit { release, .. } = b {
                        release.nonce = Digest::from_bytes([7; 32]);
                    }
                })
            }),
        ),
        (
            "another job",
            Box::new(|f: &Fed| {
                f.debit(&name("c"), |b| {
                    if let NodeBody::Debit { release, .. } = b {
                        release.job = JobId(8);
                    }
                })
            }),
        ),
        (
            "written as another node",
            Box::new(|f: &Fed| f.debit(&name("a"), |_| {})),
        ),
        (
            "signed with another key",
            Box::new(|f: &Fed| {
                let honest = f.debit(&name("c"), |_| {});
                let entry = NodeEntry::from_line(&honest).unwrap();
                NodeEntry::sign(
                    0,
                    Digest::ZERO,
                    entry.writer().clone(),
                    entry.body().clone(),
                    &ed25519_dalek::SigningKey::from_bytes(&[99; 32]),
                )
                .to_line()
            }),
        ),
        (
            "not a debit",
            Box::new(|f: &Fed| {
                f.debit(&name("c"), |b| {
                    *b = NodeBody::Budget {
                        period: fedprof_ledger::Period::new("2026-11").unwrap(),
                        cap_rho: "1/1".parse().unwrap(),
                    }
                })
            }),
        ),
        ("not a ledger line", Box::new(|_: &Fed| "not json".into())),
        (
            "too long",
            Box::new(|_: &Fed| "x".repeat(MAX_RECEIPT_BYTES + 1)),
        ),
    ];
    for (attack, receipt) in attacks {
        let mut f = Fed::start(&["a", "b", "c"], 2);
        let bad = receipt(&f);
        f.bad_receipts.insert(name("c"), bad);
        for _ in 0..4 {
            f.step(vector);
        }
        let Some(JobOutcome::Completed { result, failures }) = f.round.outcome() else {
            panic!("{attack}: {:?}", f.round.outcome())
        };
        assert_eq!(result.contributors, vec![name("a"), name("b")], "{attack}");
        assert_eq!(result.values, vec![3, 30, (-100i64) as u64], "{attack}");
        assert!(
            failures.len() == 1
                && failures[0].node == name("c")
                && failures[0].reason.contains("invalid debit receipt"),
            "{attack}: {failures:?}"
        );
        let receipts = f.round.receipts(&result.contributors);
        let expected = f.round.expected().unwrap();
        for (node, receipt) in result.contributors.iter().zip(&receipts) {
            let key = f.ledger_keys[node].verifying_key().to_bytes();
            expected.screen(node, receipt, &key).unwrap();
        }
    }
}

/// Security review M3 through the round: a node that reveals corrupted shares of every other
/// node's self-mask seed used to abort the round after everyone paid, naming an honest owner.
/// With a spare share the round releases the exact sum over all four nodes, and the liar is
/// the one rejected. (With exactly t responders nothing can be told apart: secagg's
/// `tampered_revealed_share_aborts_without_release`.)
#[test]
fn a_node_revealing_bad_shares_is_rejected_and_the_release_goes_on() {
    let mut f = Fed::start(&["a", "b", "c", "d"], 2);
    f.liar = Some(name("a"));
    for _ in 0..4 {
        f.step(vector);
    }
    let Some(JobOutcome::Completed { result, .. }) = f.round.outcome() else {
        panic!("{:?}", f.round.outcome())
    };
    assert_eq!(
        result.contributors,
        vec![name("a"), name("b"), name("c"), name("d")]
    );
    let sum: Vec<u64> = (0..3)
        .map(|k| (0..4).fold(0u64, |acc, i| acc.wrapping_add(vector(i)[k])))
        .collect();
    assert_eq!(result.values, sum);
    assert_eq!(f.rejected.len(), 1, "{:?}", f.rejected);
    assert_eq!(f.rejected[0].0, name("a"));
    assert!(
        f.rejected[0]
            .1
            .contains("does not match its owner's commitment")
    );
}
