//! Refusals: tampered shares, bad signatures, replays, messages for another round, keys
//! advertised twice, and survivor lists a node must not answer. Each test drives a small round
//! by hand up to the point of attack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng as _;
use common::{Federation, TAG, federation, federation_with_tag, inputs};
use fedprof_secagg::coordinator::{Phase, Step};
use fedprof_secagg::messages::{
    AdvertiseKeys, CoordinatorMessage, KeyDirectory, NodeMessage, RoundTag, ShareBundle,
    UnmaskRequest,
};
use fedprof_secagg::node::{self, AwaitingBundle, AwaitingDirectory, AwaitingUnmask};
use fedprof_secagg::{AbortReason, Coordinator, CoordinatorError, GraphSpec, NodeError};

const N: usize = 5;
const D: usize = 8;

fn fed() -> Federation {
    federation(N, D, GraphSpec::Complete, None)
}

fn send(step: Step) -> Vec<(u32, CoordinatorMessage)> {
    match step {
        Step::Send(m) => m,
        Step::Finished(_) => panic!("finished early"),
    }
}

/// Phase 0 for every node: states, adverts, and the coordinator having received them.
fn advertised(
    fed: &Federation,
    rng: &mut ChaCha20Rng,
) -> (Vec<AwaitingDirectory>, Vec<AdvertiseKeys>, Coordinator) {
    let mut coordinator = Coordinator::new(Arc::clone(&fed.config));
    let mut states = Vec::new();
    let mut adverts = Vec::new();
    for u in 0..N {
        let (s, a) = node::start(Arc::clone(&fed.config), u as u32, &fed.keys[u], rng).unwrap();
        coordinator
            .receive(u as u32, NodeMessage::Advertise(a.clone()))
            .unwrap();
        states.push(s);
        adverts.push(a);
    }
    (states, adverts, coordinator)
}

fn directory_of(messages: &[(u32, CoordinatorMessage)], u: usize) -> KeyDirectory {
    match &messages[u].1 {
        CoordinatorMessage::Directory(d) => d.clone(),
        _ => panic!("not a directory"),
    }
}

/// Up to the bundles: every node shared; returns the nodes waiting for bundles and the bundles.
fn shared(
    fed: &Federation,
    rng: &mut ChaCha20Rng,
) -> (Vec<AwaitingBundle>, Vec<ShareBundle>, Coordinator) {
    let (states, _, mut coordinator) = advertised(fed, rng);
    let dirs = send(coordinator.close_phase().unwrap());
    let mut next = Vec::new();
    for (u, s) in states.into_iter().enumerate() {
        let (s, reply) = s.on_directory(&directory_of(&dirs, u), rng).unwrap();
        coordinator
            .receive(u as u32, NodeMessage::Shares(reply))
            .unwrap();
        next.push(s);
    }
    let bundles = send(coordinator.close_phase().unwrap())
        .into_iter()
        .map(|(_, m)| match m {
            CoordinatorMessage::Bundle(b) => b,
            _ => panic!("not a bundle"),
        })
        .collect();
    (next, bundles, coordinator)
}

/// Up to the unmask requests.
fn masked(
    fed: &Federation,
    rng: &mut ChaCha20Rng,
) -> (Vec<AwaitingUnmask>, Vec<UnmaskRequest>, Coordinator) {
    let (states, bundles, mut coordinator) = shared(fed, rng);
    let xs = inputs(N, D, 9);
    let mut next = Vec::new();
    for (u, s) in states.into_iter().enumerate() {
        let (s, reply) = s.on_bundle(&bundles[u], &xs[u]).unwrap();
        coordinator
            .receive(u as u32, NodeMessage::Masked(reply))
            .unwrap();
        next.push(s);
    }
    let requests = send(coordinator.close_phase().unwrap())
        .into_iter()
        .map(|(_, m)| match m {
            CoordinatorMessage::Unmask(r) => r,
            _ => panic!("not an unmask request"),
        })
        .collect();
    (next, requests, coordinator)
}

/// The crypto labels are versioned on their own: wire versions 2 and 3 changed messages (the
/// release binding, request ids, round-over notices, the heartbeat), and no construction of
/// the crypto crate changed, so its labels, keys, pseudonyms and test vectors stay those of version 1. A
/// change to any construction must bump the label prefix (and this test).
#[test]
fn label_prefix_is_the_crypto_label_version() {
    assert_eq!(fedprof_crypto::LABEL_PREFIX, "fedprof/1");
    assert_eq!(fedprof_protocol::PROTOCOL_VERSION, 3);
}

/// From the bundles to the result, every node answering: the sum over all five inputs.
fn finish(
    states: Vec<AwaitingBundle>,
    bundles: &[ShareBundle],
    mut coordinator: Coordinator,
    tamper: impl Fn(u32, &mut fedprof_secagg::messages::UnmaskResponse),
) -> (Vec<u64>, Coordinator) {
    let xs = inputs(N, D, 9);
    let mut waiting = Vec::new();
    for (u, s) in states.into_iter().enumerate() {
        let (s, reply) = s.on_bundle(&bundles[u], &xs[u]).unwrap();
        coordinator
            .receive(u as u32, NodeMessage::Masked(reply))
            .unwrap();
        waiting.push(s);
    }
    let requests = send(coordinator.close_phase().unwrap());
    for (u, s) in waiting.into_iter().enumerate() {
        let CoordinatorMessage::Unmask(request) = &requests[u].1 else {
            panic!("not an unmask request")
        };
        let mut resp = s.on_unmask_request(request).unwrap();
        tamper(u as u32, &mut resp);
        coordinator
            .receive(u as u32, NodeMessage::Unmask(resp))
            .unwrap();
    }
    match coordinator.close_phase().unwrap() {
        Step::Finished(sum) => {
            assert_eq!(sum.contributors(), &[0, 1, 2, 3, 4]);
            let all: Vec<u32> = (0..N as u32).collect();
            assert_eq!(
                sum.clone().into_values(),
                common::expected_sum(&xs, &all, D)
            );
            (sum.into_values(), coordinator)
        }
        Step::Send(_) => panic!("no result"),
    }
}

/// Security review M3: a tampered envelope used to make its honest recipient leave the round
/// (so one bad sender aborted every round, blaming its victims). Now the recipient holds no
/// share of that sender, names it, masks with it all the same, and the round finishes with
/// the exact sum.
#[test]
fn a_tampered_envelope_costs_its_recipient_nothing_and_the_round_finishes() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (states, mut bundles, coordinator) = shared(&fed, &mut rng);
    let victim = 2;
    let from = bundles[victim].shares[1].sender;
    bundles[victim].shares[1].ciphertext[7] ^= 0x01;
    // What the victim holds after the bundle (checked on a copy of the round's states).
    let (probe, _, _) = shared(&fed, &mut ChaCha20Rng::seed_from_u64(1));
    let after = probe
        .into_iter()
        .nth(victim)
        .unwrap()
        .on_bundle(&bundles[victim], &[0; D])
        .unwrap()
        .0;
    assert_eq!(
        after.unreadable(),
        vec![(from, NodeError::BadEnvelope(from))]
    );
    assert!(!after.holds_shares_of().contains(&from));
    finish(states, &bundles, coordinator, |_, _| {});
}

#[test]
fn envelope_moved_to_another_recipient_does_not_open() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (mut states, mut bundles, _) = shared(&fed, &mut rng);
    // Node 0's envelope for node 1, relayed to node 2 as if node 0 had sealed it for node 2.
    let stolen = bundles[1]
        .shares
        .iter()
        .find(|s| s.sender == 0)
        .unwrap()
        .ciphertext
        .clone();
    bundles[2]
        .shares
        .iter_mut()
        .find(|s| s.sender == 0)
        .unwrap()
        .ciphertext = stolen;
    let (after, _) = states.remove(2).on_bundle(&bundles[2], &[0; D]).unwrap();
    assert_eq!(after.unreadable(), vec![(0, NodeError::BadEnvelope(0))]);
}

/// Security review M3, the coordinator's side: a holder revealing a bad share used to abort the
/// round as `ReconstructionFailed` naming the share's owner. With a spare share, the
/// coordinator rebuilds without the liar, names it, and the sum is exact.
#[test]
fn a_lying_holder_is_named_and_the_round_finishes() {
    let fed = fed();
    // The coordinator rebuilds from the first t = 4 holders by index (0..3), so those are the
    // holders whose lies matter; a lie by holder 4 is never used (checked below).
    for (liar, owner) in [(1u32, 3u32), (0, 4), (3, 0), (2, 2)] {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let (states, bundles, coordinator) = shared(&fed, &mut rng);
        let (_, coordinator) = finish(states, &bundles, coordinator, |u, resp| {
            if u == liar {
                for s in &mut resp.self_mask_shares {
                    if s.owner == owner {
                        s.share[0] ^= 1;
                    }
                }
            }
        });
        assert_eq!(
            coordinator.misbehaving(),
            vec![liar],
            "liar {liar} owner {owner}"
        );
    }
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (states, bundles, coordinator) = shared(&fed, &mut rng);
    let (_, coordinator) = finish(states, &bundles, coordinator, |u, resp| {
        if u == 4 {
            resp.self_mask_shares[0].share[0] ^= 1;
        }
    });
    assert_eq!(coordinator.misbehaving(), Vec::<u32>::new());
}

#[test]
fn bad_signature_is_refused_by_coordinator_and_nodes() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (_, advert) = node::start(Arc::clone(&fed.config), 1, &fed.keys[1], &mut rng).unwrap();
    let mut forged = advert.clone();
    forged.mask_public[0] ^= 1;
    let mut coordinator = Coordinator::new(Arc::clone(&fed.config));
    assert_eq!(
        coordinator
            .receive(1, NodeMessage::Advertise(forged.clone()))
            .unwrap_err(),
        CoordinatorError::BadAdvert(1)
    );
    // A refused node is not heard again in the round.
    assert_eq!(
        coordinator
            .receive(1, NodeMessage::Advertise(advert))
            .unwrap_err(),
        CoordinatorError::NotExpected(1)
    );

    // A node refuses a directory carrying it (a coordinator that forwards it anyway).
    let (mut states, _, mut coordinator) = advertised(&fed, &mut rng);
    let dirs = send(coordinator.close_phase().unwrap());
    let mut dir = directory_of(&dirs, 0);
    dir.adverts[1].cipher_public[3] ^= 1;
    assert_eq!(
        states.remove(0).on_directory(&dir, &mut rng).unwrap_err(),
        NodeError::BadSignature(1)
    );

    // A signature made with another party's certificate key.
    let (_, mut by_other) =
        node::start(Arc::clone(&fed.config), 2, &fed.keys[2], &mut rng).unwrap();
    by_other.sender = 3;
    let mut coordinator = Coordinator::new(Arc::clone(&fed.config));
    assert_eq!(
        coordinator
            .receive(3, NodeMessage::Advertise(by_other))
            .unwrap_err(),
        CoordinatorError::BadAdvert(3)
    );
    // And a node cannot start with a key that is not its certificate key.
    assert_eq!(
        node::start(Arc::clone(&fed.config), 3, &fed.keys[2], &mut rng).unwrap_err(),
        NodeError::NotMyKey
    );
}

#[test]
fn replayed_messages_are_refused() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (states, adverts, mut coordinator) = advertised(&fed, &mut rng);
    assert_eq!(
        coordinator
            .receive(0, NodeMessage::Advertise(adverts[0].clone()))
            .unwrap_err(),
        CoordinatorError::Duplicate(0)
    );
    let dirs = send(coordinator.close_phase().unwrap());
    // An advert replayed after its phase closed.
    assert!(matches!(
        coordinator
            .receive(0, NodeMessage::Advertise(adverts[0].clone()))
            .unwrap_err(),
        CoordinatorError::OutOfPhase {
            phase: Phase::ShareKeys,
            ..
        }
    ));
    let mut states = states.into_iter();
    let (_, reply) = states
        .next()
        .unwrap()
        .on_directory(&directory_of(&dirs, 0), &mut rng)
        .unwrap();
    coordinator
        .receive(0, NodeMessage::Shares(reply.clone()))
        .unwrap();
    assert_eq!(
        coordinator
            .receive(0, NodeMessage::Shares(reply))
            .unwrap_err(),
        CoordinatorError::Duplicate(0)
    );

    // A directory entry replayed twice (a duplicated advert) is refused by nodes.
    let mut dir = directory_of(&dirs, 1);
    let copy = dir.adverts[2].clone();
    dir.adverts.insert(2, copy);
    assert_eq!(
        states
            .next()
            .unwrap()
            .on_directory(&dir, &mut rng)
            .unwrap_err(),
        NodeError::Duplicate(2)
    );
}

#[test]
fn messages_for_another_round_are_refused() {
    let fed = fed();
    let other_tag = RoundTag {
        job: TAG.job,
        round: TAG.round + 1,
    };
    let other = federation_with_tag(other_tag, N, D, GraphSpec::Complete, None);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // An advert from the other round, as sent.
    let (_, old) = node::start(Arc::clone(&other.config), 1, &other.keys[1], &mut rng).unwrap();
    let mut coordinator = Coordinator::new(Arc::clone(&fed.config));
    assert_eq!(
        coordinator
            .receive(1, NodeMessage::Advertise(old.clone()))
            .unwrap_err(),
        CoordinatorError::WrongRound {
            expected: TAG,
            got: other_tag
        }
    );
    // ... and with its tag rewritten: the signature covers the tag and the config digest.
    let mut rewritten = old;
    rewritten.tag = TAG;
    assert_eq!(
        coordinator
            .receive(1, NodeMessage::Advertise(rewritten))
            .unwrap_err(),
        CoordinatorError::BadAdvert(1)
    );

    // Shares from the other round relayed into this one do not open.
    let (mut states, mut bundles, _) = shared(&fed, &mut rng);
    let (_, other_bundles, _) = shared(&other, &mut rng);
    bundles[0].shares[0].ciphertext = other_bundles[0].shares[0].ciphertext.clone();
    let from = bundles[0].shares[0].sender;
    let (after, _) = states.remove(0).on_bundle(&bundles[0], &[0; D]).unwrap();
    assert_eq!(
        after.unreadable(),
        vec![(from, NodeError::BadEnvelope(from))]
    );

    // A whole bundle tagged for the other round.
    let (mut states, _, _) = shared(&fed, &mut rng);
    assert_eq!(
        states
            .remove(0)
            .on_bundle(&other_bundles[0], &[0; D])
            .unwrap_err(),
        NodeError::WrongRound {
            expected: TAG,
            got: other_tag
        }
    );
}

#[test]
fn key_advertised_twice_is_refused() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    // Node 3 advertises (and validly signs) node 1's public keys as its own.
    let (mut states, adverts, _) = advertised(&fed, &mut rng);
    let mut copy = node::start(Arc::clone(&fed.config), 3, &fed.keys[3], &mut rng)
        .unwrap()
        .1;
    copy.cipher_public = adverts[1].cipher_public;
    copy.mask_public = adverts[1].mask_public;
    let signed = resign(&fed, &copy);
    let mut dir = KeyDirectory {
        tag: TAG,
        recipient: 0,
        adverts: adverts.clone(),
    };
    dir.adverts[3] = signed;
    assert_eq!(
        states.remove(0).on_directory(&dir, &mut rng).unwrap_err(),
        NodeError::KeyReused(3)
    );

    // One node using the same key for both purposes.
    let mut same = adverts[2].clone();
    same.mask_public = same.cipher_public;
    let same = resign(&fed, &same);
    let mut coordinator = Coordinator::new(Arc::clone(&fed.config));
    assert_eq!(
        coordinator
            .receive(2, NodeMessage::Advertise(same))
            .unwrap_err(),
        CoordinatorError::BadAdvert(2)
    );
}

/// Re-signs an altered advert with its sender's real key (a node that lies, not a forger).
fn resign(fed: &Federation, advert: &AdvertiseKeys) -> AdvertiseKeys {
    // The signed bytes, as the crate defines them (config digest, tag, sender, keys, commitment).
    let mut msg = fed.config.digest().to_vec();
    msg.extend_from_slice(&advert.tag.job.to_be_bytes());
    msg.extend_from_slice(&advert.tag.round.to_be_bytes());
    msg.extend_from_slice(&advert.sender.to_be_bytes());
    msg.extend_from_slice(&advert.cipher_public);
    msg.extend_from_slice(&advert.mask_public);
    msg.extend_from_slice(&advert.self_mask_commitment);
    let sig = fed.keys[advert.sender as usize]
        .sign("secagg/advertise", &msg)
        .unwrap();
    AdvertiseKeys {
        signature: sig.to_bytes().to_vec(),
        ..advert.clone()
    }
}

#[test]
fn resigned_advert_verifies_so_the_reuse_check_is_what_refuses() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (_, adverts, _) = advertised(&fed, &mut rng);
    let mut coordinator = Coordinator::new(Arc::clone(&fed.config));
    coordinator
        .receive(4, NodeMessage::Advertise(resign(&fed, &adverts[4])))
        .unwrap();
}

#[test]
fn unmask_requests_a_node_must_not_answer() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (states, requests, _) = masked(&fed, &mut rng);
    let mut states = states.into_iter();
    let mut bad = requests[0].clone();
    bad.survivors.retain(|&v| v != 0);
    assert_eq!(
        states.next().unwrap().on_unmask_request(&bad).unwrap_err(),
        NodeError::NotASurvivor
    );
    let mut bad = requests[1].clone();
    bad.survivors.push(77);
    assert_eq!(
        states.next().unwrap().on_unmask_request(&bad).unwrap_err(),
        NodeError::UnknownSurvivor(77)
    );
    let mut bad = requests[2].clone();
    bad.survivors = vec![0, 2]; // below the threshold of 4
    assert!(matches!(
        states.next().unwrap().on_unmask_request(&bad).unwrap_err(),
        NodeError::BelowThreshold {
            have: 2,
            need: 4,
            ..
        }
    ));
    // A node answers once: the response reveals, per neighbour, exactly one kind of share.
    let mut req = requests[3].clone();
    req.survivors = vec![0, 1, 3, 4]; // "node 2 dropped"
    let resp = states.next().unwrap().on_unmask_request(&req).unwrap();
    let b: Vec<u32> = resp.self_mask_shares.iter().map(|s| s.owner).collect();
    let s: Vec<u32> = resp.mask_key_shares.iter().map(|s| s.owner).collect();
    assert_eq!(b, vec![0, 1, 3, 4]);
    assert_eq!(s, vec![2]);
    // (`on_unmask_request` takes the state by value: a second request cannot even be written.)
}

/// With no spare share (only t = 4 of 5 answer), a bad revealed share cannot be told from a
/// good one: the round aborts without a release (and names the owner it could not rebuild).
#[test]
fn tampered_revealed_share_aborts_without_release() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let (states, requests, mut coordinator) = masked(&fed, &mut rng);
    for (u, s) in states.into_iter().enumerate() {
        let mut resp = s.on_unmask_request(&requests[u]).unwrap();
        if u < 4 {
            // The first four responders are the ones the coordinator rebuilds from (t = 4).
            if u == 1 {
                resp.self_mask_shares[3].share[0] ^= 1;
            }
            coordinator
                .receive(u as u32, NodeMessage::Unmask(resp))
                .unwrap();
        }
    }
    match coordinator.close_phase() {
        Err(CoordinatorError::Aborted(AbortReason::ReconstructionFailed { owner: 3, .. })) => {}
        other => panic!("expected an abort, got {other:?}"),
    }
    assert_eq!(coordinator.phase(), Phase::Aborted);
    assert!(matches!(
        coordinator.close_phase(),
        Err(CoordinatorError::NothingToClose)
    ));
}

#[test]
fn coordinator_refuses_impostors_and_malformed_input() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (_, adverts, mut coordinator) = {
        let mut c = Coordinator::new(Arc::clone(&fed.config));
        let (s, a) = node::start(Arc::clone(&fed.config), 0, &fed.keys[0], &mut rng).unwrap();
        assert_eq!(
            c.receive(1, NodeMessage::Advertise(a.clone())).unwrap_err(),
            CoordinatorError::SenderMismatch {
                from: 1,
                claimed: 0
            }
        );
        assert_eq!(
            c.receive(9, NodeMessage::Advertise(a.clone())).unwrap_err(),
            CoordinatorError::UnknownParty(9)
        );
        (vec![s], vec![a], c)
    };
    let _ = adverts;
    // Wrong-length masked input (after a normal start).
    let (_, bundles, mut c2) = shared(&fed, &mut rng);
    let _ = bundles;
    let bad = fedprof_secagg::messages::MaskedInput {
        tag: TAG,
        sender: 0,
        masked: vec![0; 8 * D - 1],
    };
    assert!(matches!(
        c2.receive(0, NodeMessage::Masked(bad)).unwrap_err(),
        CoordinatorError::Malformed { party: 0, .. }
    ));
    // Fewer than t advertisements: the round aborts at once.
    assert!(matches!(
        coordinator.close_phase(),
        Err(CoordinatorError::Aborted(AbortReason::TooFewSurvivors {
            phase: Phase::AdvertiseKeys,
            have: 0,
            need: 4
        }))
    ));
    assert_eq!(
        coordinator
            .receive(
                0,
                NodeMessage::Advertise(AdvertiseKeys {
                    tag: TAG,
                    sender: 0,
                    cipher_public: [0; 32],
                    mask_public: [0; 32],
                    self_mask_commitment: [0; 32],
                    signature: vec![],
                })
            )
            .unwrap_err(),
        CoordinatorError::RoundOver(Phase::Aborted)
    );
}

#[test]
fn wrong_input_length_and_wrong_recipient_are_refused() {
    let fed = fed();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let (mut states, bundles, _) = shared(&fed, &mut rng);
    let s0 = states.remove(0);
    assert_eq!(
        s0.on_bundle(&bundles[0], &[0; D + 1]).unwrap_err(),
        NodeError::WrongInputLength {
            expected: D,
            got: D + 1
        }
    );
    assert_eq!(
        states
            .remove(0)
            .on_bundle(&bundles[2], &[0; D])
            .unwrap_err(),
        NodeError::WrongRecipient(2)
    );
}

/// A federation of `N` nodes whose round is bound to a release needing `min` survivors.
fn bound_fed(min: usize) -> Federation {
    let mut fed = fed();
    let config = (*fed.config).clone().bind(min, 1, b"release").unwrap();
    fed.config = Arc::new(config);
    fed
}

/// C2: with `n_min = N` and one node silent in the masked-input phase, the coordinator
/// machine aborts before it sends any unmask request (the threshold alone, 4 of 5, would have
/// let it rebuild the sum of 4).
#[test]
fn c2_the_coordinator_aborts_before_any_unmask_request_below_n_min() {
    let fed = bound_fed(N);
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let (states, bundles, mut coordinator) = shared(&fed, &mut rng);
    let xs = inputs(N, D, 9);
    for (u, s) in states.into_iter().enumerate().skip(1) {
        let (_, reply) = s.on_bundle(&bundles[u], &xs[u]).unwrap();
        coordinator
            .receive(u as u32, NodeMessage::Masked(reply))
            .unwrap();
    }
    match coordinator.close_phase() {
        Err(CoordinatorError::Aborted(AbortReason::TooFewSurvivors { have, need, .. })) => {
            assert_eq!((have, need), (N - 1, N));
        }
        other => panic!("expected an abort before unmasking, got {other:?}"),
    }
    assert_eq!(coordinator.phase(), Phase::Aborted);
}

/// C2, node side: a node of a round bound to `n_min = N` refuses an unmask request that
/// lists fewer survivors, even when they meet the threshold.
#[test]
fn c2_a_node_refuses_an_unmask_request_below_n_min() {
    let fed = bound_fed(N);
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let (mut states, requests, _) = masked(&fed, &mut rng);
    let mut short = requests[0].clone();
    short.survivors.retain(|&v| v != 4);
    assert!(short.survivors.len() >= fed.config.threshold());
    let e = states.remove(0).on_unmask_request(&short).unwrap_err();
    assert!(
        matches!(
            e,
            NodeError::BelowThreshold {
                have: 4,
                need: 5,
                ..
            }
        ),
        "{e:?}"
    );
}

/// C2 and L2: binding refuses what the graph cannot guarantee.
#[test]
fn c2_binding_refuses_what_the_graph_cannot_guarantee() {
    use fedprof_secagg::ConfigError;
    let fed = fed();
    for min in [0, 1, N + 1] {
        assert!(matches!(
            (*fed.config).clone().bind(min, 1, b"r"),
            Err(ConfigError::MinSurvivors { .. })
        ));
    }
    // A sparse graph whose neighbourhood threshold is below n_min cannot guarantee it.
    let sparse = federation(
        40,
        D,
        GraphSpec::Sparse {
            neighbours: 12,
            seed: [1; 32],
        },
        None,
    );
    assert_eq!(sparse.config.threshold(), 9);
    assert!((*sparse.config).clone().bind(9, 1, b"r").is_ok());
    assert!(matches!(
        (*sparse.config).clone().bind(10, 1, b"r"),
        Err(ConfigError::MinSurvivors { .. })
    ));
    // L2: a ring of 2 neighbours over 40 nodes can be cut by two dropouts.
    let thin = federation(
        40,
        D,
        GraphSpec::Sparse {
            neighbours: 2,
            seed: [1; 32],
        },
        None,
    );
    assert!(matches!(
        (*thin.config).clone().bind(2, 1, b"r"),
        Err(ConfigError::SparseTooThin { need: 12, .. })
    ));
    // M2: colluders must stay below the threshold (4 of 5 here): 3 are tolerated, 4 hold
    // enough shares to rebuild an honest node's secrets.
    assert!((*fed.config).clone().bind(3, 3, b"r").is_ok());
    assert!(matches!(
        (*fed.config).clone().bind(3, 4, b"r"),
        Err(ConfigError::Colluders {
            colluders: 4,
            threshold: 4
        })
    ));
    // M4: the release bytes are part of the digest every node signs.
    let a = (*fed.config).clone().bind(3, 1, b"query A").unwrap();
    let b = (*fed.config).clone().bind(3, 1, b"query B").unwrap();
    let c = (*fed.config).clone().bind(4, 1, b"query A").unwrap();
    assert_ne!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
    assert_ne!(a.digest(), fed.config.digest());
}
