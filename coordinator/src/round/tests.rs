//! The round driven with real secure-aggregation nodes (the `fedprof-secagg` node machines,
//! as a node process runs them), without any network.

use super::*;
use chacha20::ChaCha20Rng;
use fedprof_crypto::SigningKey;
use fedprof_ledger::{NodeBody, Writer};
use fedprof_protocol::secagg::{CoordinatorMessage, NodeMessage};
use fedprof_protocol::{Fraction, RefuseReason, RoundOverReason};
use fedprof_secagg::node::{AwaitingBundle, AwaitingDirectory, AwaitingUnmask};
use rand_core::SeedableRng;

fn name(s: &str) -> PartyName {
    PartyName::new(s).unwrap()
}

fn release(min: u32) -> ReleaseParams {
    ReleaseParams {
        node_variance: vec![Fraction { numer: 4, denom: 1 }],
        min_contributors: min,
        colluders: 1,
    }
}

/// A small transaction-totals feature query (3 coordinates, budget 1/2, a new profiling job);
/// the core's tests use it too.
pub(crate) fn totals() -> JobSpec {
    use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
    JobSpec::Features(Box::new(FeatureQuery {
        label: "totals".into(),
        as_of: "2026-06-30".into(),
        scale: 1000,
        segmenter: Segmenter::All,
        parts: vec![
            QueryPart::Count,
            QueryPart::Numeric {
                feature: NumericFeature::TxnCount,
                lo: 0,
                hi: 10,
            },
            QueryPart::Numeric {
                feature: NumericFeature::MonetaryTotal,
                lo: 0,
                hi: 1000,
            },
        ],
        budget: fedprof_protocol::Fraction { numer: 1, denom: 2 },
        reserve: fedprof_protocol::Fraction { numer: 0, denom: 1 },
        job: None,
    }))
}

fn request(job: u64, min: u32, seed: u8) -> RoundRequest {
    RoundRequest {
        job: JobId(job),
        spec: totals(),
        release: release(min),
        profile: fedprof_protocol::ProfileTag {
            id: fedprof_protocol::ProfileId([seed; 16]),
            analyst: name("analyst"),
            cap: Fraction { numer: 1, denom: 2 },
        },
        nonce: [seed; 32],
        graph_seed: [seed; 32],
        require_all: false,
    }
}

fn policy(min_nodes: usize) -> RoundPolicy {
    RoundPolicy {
        min_nodes,
        timeout: Duration::from_secs(10),
    }
}

enum Sim {
    Directory(AwaitingDirectory),
    Bundle(AwaitingBundle),
    Unmask(AwaitingUnmask),
    Gone,
}

struct Fed {
    round: Round,
    nodes: Vec<(PartyName, Sim)>,
    rng: ChaCha20Rng,
    now: Instant,
    /// Messages the round sent to each node, not yet handled.
    inbox: Vec<(PartyName, Body)>,
    /// Every message the round ever sent, in order.
    sent: Vec<(PartyName, Body)>,
    /// Each node's ledger key, for its debit receipts.
    ledger_keys: BTreeMap<PartyName, ed25519_dalek::SigningKey>,
    /// Receipts sent instead of a node's honest debit (attacks).
    bad_receipts: BTreeMap<PartyName, String>,
    /// A node that reveals a corrupted self-mask share (attack).
    liar: Option<PartyName>,
    /// Nodes the round rejected, with the detail.
    rejected: Vec<(PartyName, String)>,
}

impl Fed {
    fn start(names: &[&str], min: u32) -> Fed {
        Fed::start_request(names, request(7, min, 5))
    }

    fn start_request(names: &[&str], request: RoundRequest) -> Fed {
        let min = request.release.min_contributors;
        let rng = ChaCha20Rng::seed_from_u64(9);
        // Each node's certificate key, as the secure-aggregation machine and the node's ledger
        // (which signs its debit receipts) both hold it.
        let seeds: Vec<[u8; 32]> = (1..=names.len()).map(|i| [i as u8; 32]).collect();
        let keys: Vec<SigningKey> = seeds
            .iter()
            .map(|s| SigningKey::from_seed(&fedprof_crypto::SecretKey32::from_bytes(*s)))
            .collect();
        let ledger_keys = names
            .iter()
            .zip(&seeds)
            .map(|(n, s)| (name(n), ed25519_dalek::SigningKey::from_bytes(s)))
            .collect();
        let mut rng = rng;
        let participants = names
            .iter()
            .zip(&keys)
            .map(|(n, k)| Participant {
                name: name(n),
                certificate: vec![1, 2, 3],
                key: k.verifying_key(),
            })
            .collect();
        let now = Instant::now();
        let (round, effects) = Round::start(request, participants, policy(min as usize), now);
        let mut nodes = Vec::new();
        let mut inbox = Vec::new();
        for (effect, key) in effects.into_iter().zip(&keys) {
            let RoundEffect::Send {
                node,
                body: Body::JobAnnounce(announce),
            } = effect
            else {
                panic!("{effect:?}")
            };
            // Each node builds the configuration from the announcement, as a node process does.
            let me = announce
                .secagg
                .roster
                .iter()
                .position(|e| e.name == node)
                .unwrap() as u32;
            let parties = announce
                .secagg
                .roster
                .iter()
                .zip(&keys)
                .map(|(e, k)| Party {
                    name: e.name.to_string(),
                    verifying_key: k.verifying_key(),
                })
                .collect();
            let config = Arc::new(
                RoundConfig::new(
                    RoundTag { job: 7, round: 0 },
                    parties,
                    3,
                    GraphSpec::Complete,
                    Some(announce.secagg.threshold as usize),
                )
                .unwrap()
                .bind(
                    announce
                        .release
                        .min_contributors
                        .max(announce.secagg.min_survivors) as usize,
                    announce.release.colluders as usize,
                    &announce.release_binding(),
                )
                .unwrap(),
            );
            let (state, advert) = fedprof_secagg::node::start(config, me, key, &mut rng).unwrap();
            inbox.push((node.clone(), Body::SecAgg(NodeMessage::Advertise(advert))));
            nodes.push((node, Sim::Directory(state)));
        }
        let mut fed = Fed {
            round,
            nodes,
            rng,
            now,
            inbox: Vec::new(),
            sent: Vec::new(),
            ledger_keys,
            bad_receipts: BTreeMap::new(),
            liar: None,
            rejected: Vec::new(),
        };
        // Deliver the advertisements to the round.
        for (node, body) in inbox {
            let effects = fed.round.on_message(&node, body, now).unwrap();
            fed.absorb(effects);
        }
        fed
    }

    fn absorb(&mut self, effects: Vec<RoundEffect>) {
        for e in effects {
            match e {
                RoundEffect::Send { node, body } => {
                    self.sent.push((node.clone(), body.clone()));
                    self.inbox.push((node, body));
                }
                RoundEffect::Reject { node, detail, .. } => self.rejected.push((node, detail)),
            }
        }
    }

    /// Lets every live node answer what it received; `input(i)` is node i's vector.
    fn step(&mut self, input: impl Fn(usize) -> Vec<u64>) {
        let inbox = std::mem::take(&mut self.inbox);
        for (node, body) in inbox {
            let Some(i) = self.nodes.iter().position(|(n, _)| *n == node) else {
                continue;
            };
            let Body::SecAggRelay(message) = body else {
                continue;
            };
            let sim = std::mem::replace(&mut self.nodes[i].1, Sim::Gone);
            let (next, reply) = match (sim, message) {
                (Sim::Directory(s), CoordinatorMessage::Directory(d)) => {
                    let (n, m) = s.on_directory(&d, &mut self.rng).unwrap();
                    (Sim::Bundle(n), NodeMessage::Shares(m))
                }
                (Sim::Bundle(s), CoordinatorMessage::Bundle(b)) => {
                    // Inputs follow the roster order (a, b, c, ...), whoever has left.
                    let roster_index = usize::from(node.as_str().as_bytes()[0] - b'a');
                    let (n, m) = s.on_bundle(&b, &input(roster_index)).unwrap();
                    (Sim::Unmask(n), NodeMessage::Masked(m))
                }
                (Sim::Unmask(s), CoordinatorMessage::Unmask(r)) => {
                    let mut response = s.on_unmask_request(&r).unwrap();
                    if self.liar.as_ref() == Some(&node) {
                        for share in &mut response.self_mask_shares {
                            share.share[0] ^= 1;
                        }
                    }
                    (Sim::Gone, NodeMessage::Unmask(response))
                }
                (other, _) => {
                    self.nodes[i].1 = other;
                    continue;
                }
            };
            self.nodes[i].1 = next;
            if matches!(reply, NodeMessage::Masked(_)) {
                // A node shows its signed debit before its masked input.
                let line = match self.bad_receipts.get(&node) {
                    Some(bad) => bad.clone(),
                    None => self.debit(&node, |_| {}),
                };
                let effects = self
                    .round
                    .on_message(&node, Body::Receipt(line), self.now)
                    .unwrap();
                if !effects.is_empty() {
                    // Refused: the node is out of the round and sends nothing more.
                    self.absorb(effects);
                    continue;
                }
            }
            let effects = self
                .round
                .on_message(&node, Body::SecAgg(reply), self.now)
                .unwrap();
            self.absorb(effects);
        }
    }

    /// `node`'s signed debit of this round's release (as its ledger writes it), changed by
    /// `edit` first (for the attacks).
    fn debit(&self, node: &PartyName, edit: impl FnOnce(&mut NodeBody)) -> String {
        let expected = self.round.expected().expect("announced");
        let mut body = NodeBody::Debit {
            release: *expected.release(),
            mechanism: expected.mechanism().clone(),
            rho: expected.mechanism().rho(),
            vector_digest: Digest::ZERO,
        };
        edit(&mut body);
        let writer = Writer::new(fedprof_protocol::PartyId {
            role: fedprof_protocol::Role::Node,
            name: node.clone(),
        });
        NodeEntry::sign(0, Digest::ZERO, writer, body, &self.ledger_keys[node]).to_line()
    }

    fn kill(&mut self, node: &str) {
        self.nodes.retain(|(n, _)| n.as_str() != node);
        let effects = self.round.on_disconnect(&name(node), "killed", self.now);
        self.absorb(effects);
    }
}

fn vector(i: usize) -> Vec<u64> {
    vec![
        i as u64 + 1,
        10 * (i as u64 + 1),
        (-(i as i64) * 100) as u64,
    ]
}

#[test]
fn the_round_releases_exactly_the_sum_of_the_vectors() {
    let mut f = Fed::start(&["a", "b", "c"], 2);
    for _ in 0..3 {
        f.step(vector);
    }
    let Some(JobOutcome::Completed { result, failures }) = f.round.outcome() else {
        panic!("{:?}", f.round.outcome())
    };
    assert_eq!(result.values, vec![6, 60, (-300i64) as u64]);
    assert_eq!(result.contributors, vec![name("a"), name("b"), name("c")]);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        f.inbox.is_empty(),
        "nothing is sent before the driver records the release"
    );
    let names = [name("a"), name("b"), name("c")];
    let writers: Vec<PartyName> = f
        .round
        .receipts(&names)
        .iter()
        .map(|r| r.writer().party().name.clone())
        .collect();
    assert_eq!(
        writers, names,
        "each contributor's own screened debit, in order"
    );
}

#[test]
fn a_node_lost_after_sharing_keys_is_unmasked_out_and_reported() {
    let mut f = Fed::start(&["a", "b", "c", "d"], 2);
    f.step(vector); // directories -> shares
    f.kill("c"); // after sharing, before its masked input
    for _ in 0..2 {
        f.step(vector);
    }
    let Some(JobOutcome::Completed { result, failures }) = f.round.outcome() else {
        panic!("{:?}", f.round.outcome())
    };
    // a, b, d: 1+2+4, 10+20+40, 0-100-300.
    assert_eq!(result.values, vec![7, 70, (-400i64) as u64]);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].reason.contains("connection lost: killed"),
        "{failures:?}"
    );
}

#[test]
fn a_refusal_counts_as_a_failure_and_too_few_survivors_release_nothing() {
    let mut f = Fed::start(&["a", "b", "c"], 3);
    let refusal = Refusal {
        reason: RefuseReason::BudgetExhausted,
        detail: "cap reached".into(),
    };
    let effects = f
        .round
        .on_message(&name("b"), Body::Refuse(refusal), f.now)
        .unwrap();
    f.absorb(effects);
    for _ in 0..3 {
        f.step(vector);
    }
    let Some(JobOutcome::Aborted { failures, .. }) = f.round.outcome() else {
        panic!("{:?}", f.round.outcome())
    };
    assert!(
        failures
            .iter()
            .any(|x| x.node == name("b") && x.reason.contains("BudgetExhausted"))
    );
    assert!(
        !f.inbox.iter().any(|(_, b)| matches!(b, Body::Result(_))),
        "nothing released"
    );
    // C2: with n_min = 3 and two nodes left, the threshold (2 of 3) alone would have let the
    // coordinator unmask the sum of two; it must stop before asking anyone to unmask.
    assert!(
        !f.sent
            .iter()
            .any(|(_, b)| matches!(b, Body::SecAggRelay(CoordinatorMessage::Unmask(_)))),
        "an unmask request was sent below n_min"
    );
}

#[test]
fn silent_nodes_time_out_phase_by_phase() {
    let mut f = Fed::start(&["a", "b", "c"], 2);
    f.nodes.retain(|(n, _)| n.as_str() != "c"); // c goes silent, connection stays up
    f.step(vector);
    assert!(f.round.outcome().is_none());
    f.now += Duration::from_secs(10);
    let effects = f.round.on_tick(f.now);
    f.absorb(effects);
    for _ in 0..2 {
        f.step(vector);
    }
    let Some(JobOutcome::Completed { result, failures }) = f.round.outcome() else {
        panic!("{:?}", f.round.outcome())
    };
    assert_eq!(result.values, vec![3, 30, (-100i64) as u64]);
    assert!(
        failures[0].reason.contains("no answer in phase"),
        "{failures:?}"
    );
}

#[test]
fn too_few_nodes_abort_at_once_and_strangers_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let p = Participant {
        name: name("a"),
        certificate: vec![],
        key: SigningKey::generate(&mut rng).verifying_key(),
    };
    let (mut r, effects) = Round::start(request(1, 2, 0), vec![p], policy(2), Instant::now());
    assert!(
        effects.is_empty(),
        "nobody computes for a round that cannot release"
    );
    assert!(
        matches!(r.outcome(), Some(JobOutcome::Aborted { reason, .. }) if reason.contains("at least 2"))
    );
    assert_eq!(
        r.on_message(&name("z"), Body::Accept, Instant::now()),
        Err(RoundError::NotAMember(name("z")))
    );
}

#[test]
fn messages_that_do_not_belong_in_a_round_are_rejected() {
    let mut f = Fed::start(&["a", "b", "c"], 2);
    let effects = f
        .round
        .on_message(
            &name("a"),
            Body::Submit(fedprof_protocol::Contribution {
                values: vec![1, 2, 3],
            }),
            f.now,
        )
        .unwrap();
    assert!(matches!(
        &effects[..],
        [RoundEffect::Reject {
            code: ErrorCode::UnexpectedMessage,
            ..
        }]
    ));
}

/// L1: a round whose worst-case sum (2^32 customers per node at scale 2^20, plus noise) could
/// pass 2^63 is refused before anyone computes; the same query over a few nodes runs.
#[test]
fn l1_a_round_that_could_overflow_the_ring_is_refused() {
    use fedprof_protocol::query::{FeatureQuery, MAX_SCALE, QueryPart, Segmenter};
    let query = FeatureQuery {
        label: "big".into(),
        as_of: "2026-06-30".into(),
        scale: MAX_SCALE,
        segmenter: Segmenter::All,
        parts: vec![QueryPart::Count],
        budget: Fraction { numer: 1, denom: 2 },
        reserve: Fraction { numer: 0, denom: 1 },
        job: None,
    };
    let cap = fedprof_privacy::Rho::from_ratio(1, 2).unwrap();
    let release = fedprof_privacy::query::plan_query(&cap, &query, 2, 1).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut participants = |n: usize| -> Vec<Participant> {
        (0..n)
            .map(|i| Participant {
                name: name(&format!("n{i}")),
                certificate: vec![],
                key: SigningKey::generate(&mut rng).verifying_key(),
            })
            .collect()
    };
    let request = RoundRequest {
        spec: JobSpec::Features(Box::new(query)),
        release,
        ..request(1, 2, 1)
    };
    let (r, effects) = Round::start(
        request.clone(),
        participants(4096),
        policy(2),
        Instant::now(),
    );
    assert!(effects.is_empty());
    assert!(
        matches!(r.outcome(), Some(JobOutcome::Aborted { reason, .. }) if reason.contains("overflow")),
        "{:?}",
        r.outcome()
    );
    let (r, _) = Round::start(request, participants(3), policy(2), Instant::now());
    assert!(r.outcome().is_none(), "{:?}", r.outcome());
}

/// M2, the rule chosen: colluders must stay below the threshold (`c < t`), not `c <= n - t`
/// as the review proposed. With two nodes the default threshold is 2, so `c <= n - t` would
/// allow no colluder at all, while every contributor receives the result and knows its own
/// noise, so at least one must be assumed (H2): the review's rule would forbid every two-node
/// federation. `c = 1 < t = 2` is safe: the colluder holds one share of each of the honest
/// node's secrets, fewer than the threshold, and the accounting counts exactly the honest
/// node's own share, the full central variance (what the colluder and the coordinator see of
/// the honest node is its vector with that noise, the sum minus the colluder's own).
#[test]
fn m2_two_node_federations_stay_possible_and_fully_accounted() {
    use fedprof_protocol::query::{FeatureQuery, QueryPart, Segmenter};
    let mut f = Fed::start(&["a", "b"], 2);
    for _ in 0..4 {
        f.step(vector);
    }
    assert!(
        matches!(f.round.outcome(), Some(JobOutcome::Completed { .. })),
        "{:?}",
        f.round.outcome()
    );
    let query = FeatureQuery {
        label: "two".into(),
        as_of: "2026-06-30".into(),
        scale: 1000,
        segmenter: Segmenter::All,
        parts: vec![QueryPart::Count],
        budget: Fraction { numer: 1, denom: 2 },
        reserve: Fraction { numer: 0, denom: 1 },
        job: None,
    };
    let cap = fedprof_privacy::Rho::from_ratio(1, 2).unwrap();
    let two = fedprof_privacy::query::plan_query(&cap, &query, 2, 1).unwrap();
    // One honest share carries the whole central variance: sigma^2 = Delta^2 / (2 rho).
    let central = 1000u64 * 1000;
    assert!(two.node_variance[0].numer / two.node_variance[0].denom >= central);
    // The colluder's one share of a 2-of-2 secret rebuilds nothing.
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let secret = fedprof_crypto::SecretKey32::from_bytes([7; 32]);
    let shares = fedprof_crypto::shamir::split(&secret, 2, &[1, 2], &mut rng).unwrap();
    assert!(fedprof_crypto::shamir::reconstruct(&shares[..1], 2).is_err());
}

/// M3: a later release of a profiling job requires its whole population: one node of three
/// refusing stops the round before any unmask request, although `n_min = 2` would allow a sum
/// of the other two (which, differenced with the job's earlier releases, would expose the
/// refusing node's aggregate).
#[test]
fn m3_a_later_release_of_a_job_stops_without_its_whole_population() {
    let mut f = Fed::start_request(
        &["a", "b", "c"],
        RoundRequest {
            require_all: true,
            ..request(7, 2, 5)
        },
    );
    let refusal = Refusal {
        reason: RefuseReason::BudgetExhausted,
        detail: "cap reached".into(),
    };
    let effects = f
        .round
        .on_message(&name("c"), Body::Refuse(refusal), f.now)
        .unwrap();
    f.absorb(effects);
    for _ in 0..3 {
        f.step(vector);
    }
    assert!(
        matches!(f.round.outcome(), Some(JobOutcome::Aborted { .. })),
        "{:?}",
        f.round.outcome()
    );
    assert!(
        !f.sent
            .iter()
            .any(|(_, b)| matches!(b, Body::SecAggRelay(CoordinatorMessage::Unmask(_)))),
        "an unmask request was sent without the whole population"
    );
}

/// Large federations: the sparse graph is used only where its neighbourhood threshold can
/// guarantee the release's fewest survivors; a later release of a job (all of its 40 nodes
/// required) falls back to the complete graph instead of failing to bind.
#[test]
fn the_graph_can_always_guarantee_the_fewest_survivors() {
    assert!(matches!(
        graph_for(40, [0; 32], 2),
        GraphSpec::Sparse { .. }
    ));
    assert!(matches!(graph_for(40, [0; 32], 40), GraphSpec::Complete));
    assert!(matches!(graph_for(10, [0; 32], 2), GraphSpec::Complete));
    for (n, min) in [(40, 2), (40, 9), (40, 10), (40, 40), (100, 14), (100, 100)] {
        let parties = (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                Party {
                    name: format!("n{i}"),
                    verifying_key: SigningKey::from_seed(&fedprof_crypto::SecretKey32::from_bytes(
                        seed,
                    ))
                    .verifying_key(),
                }
            })
            .collect();
        let config = RoundConfig::new(
            RoundTag { job: 1, round: 0 },
            parties,
            3,
            graph_for(n, [1; 32], min),
            None,
        )
        .unwrap();
        assert!(config.bind(min, 1, b"r").is_ok(), "n {n}, min {min}");
    }
}

/// M4: every roster member that gets no result learns the round is over for it. A node
/// silent past a phase deadline is told at once that it is excluded (it frees its slot while
/// the round goes on); once released, a node left out of the sum is told `NotInSum`, and the
/// contributors (who get the result) nothing.
#[test]
fn m4_members_without_a_result_are_told_the_round_is_over() {
    let mut f = Fed::start(&["a", "b", "c"], 2);
    f.nodes.retain(|(n, _)| n.as_str() != "c"); // c goes silent, connection stays up
    f.step(vector);
    f.now += Duration::from_secs(10);
    let effects = f.round.on_tick(f.now);
    assert!(
        effects.iter().any(
            |e| matches!(e, RoundEffect::Send { node, body: Body::RoundOver(o) }
            if node.as_str() == "c" && o.reason == RoundOverReason::Excluded)
        ),
        "{effects:?}"
    );
    f.absorb(effects);
    assert!(
        f.round.over_notices().is_empty(),
        "nothing to tell before the round settles"
    );
    for _ in 0..2 {
        f.step(vector);
    }
    assert!(matches!(
        f.round.outcome(),
        Some(JobOutcome::Completed { .. })
    ));
    let over = f.round.over_notices();
    let notices: Vec<(&str, RoundOverReason)> =
        over.iter().map(|(n, o)| (n.as_str(), o.reason)).collect();
    assert_eq!(notices, [("c", RoundOverReason::NotInSum)]);
}

/// M4: when a round aborts, every member is told, whatever its state.
#[test]
fn m4_an_aborted_round_tells_every_member() {
    let mut f = Fed::start(&["a", "b", "c"], 3);
    f.kill("c");
    for _ in 0..3 {
        f.step(vector);
    }
    assert!(matches!(
        f.round.outcome(),
        Some(JobOutcome::Aborted { .. })
    ));
    let notices: Vec<(String, RoundOverReason)> = f
        .round
        .over_notices()
        .into_iter()
        .map(|(n, o)| (n.to_string(), o.reason))
        .collect();
    let aborted = RoundOverReason::Aborted;
    assert_eq!(
        notices,
        [
            ("a".into(), aborted),
            ("b".into(), aborted),
            ("c".into(), aborted)
        ]
    );
}

mod attacks;
