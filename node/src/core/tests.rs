//! `NodeCore` driven through whole sequences without sockets: three node cores with real
//! ledgers on a temp dir and the `secagg` coordinator machine in between, on a virtual clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chacha20::ChaCha20Rng;
use fedprof_crypto::SigningKey;
use fedprof_ledger::{NodeLedger, Period};
use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
use fedprof_protocol::secagg::NodeMessage;
use fedprof_protocol::{
    Body, Envelope, Fraction, Header, JobAnnounce, JobId, JobSpec, PartyId, PartyName, ProfileId,
    ProfileTag, RefuseReason, Registered, Role, RosterEntry, RoundId, RoundOver, RoundOverReason,
    SecAggGraph, SecAggSetup,
};
use fedprof_secagg::coordinator::Step;
use rand_core::SeedableRng as _;

use super::*;
use crate::books::{Books, Paid};
use crate::config::NodeConfig;
use crate::floor::Spending;

const NODES: [&str; 3] = ["a", "b", "c"];

fn name(s: &str) -> PartyName {
    PartyName::new(s).unwrap_or_else(|e| unreachable!("{e}"))
}

fn party(s: &str) -> PartyId {
    PartyId {
        role: Role::Node,
        name: name(s),
    }
}

fn signing_key(i: usize) -> SigningKey {
    let seed = u8::try_from(i).unwrap_or(0) + 1;
    SigningKey::generate(&mut ChaCha20Rng::from_seed([seed; 32]))
}

/// A stand-in for the federation CA: a "certificate" is a node's name, trusted if listed.
struct FakeCa(BTreeMap<Vec<u8>, (PartyId, [u8; 32])>);

impl Certificates for FakeCa {
    fn verify_party(&self, der: &[u8], _now: SystemTime) -> Result<(PartyId, [u8; 32]), String> {
        self.0
            .get(der)
            .cloned()
            .ok_or_else(|| "not issued by the federation CA".to_owned())
    }
}

fn ca() -> Arc<FakeCa> {
    Arc::new(FakeCa(
        NODES
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let key = signing_key(i).verifying_key().to_bytes();
                (n.as_bytes().to_vec(), (party(n), key))
            })
            .collect(),
    ))
}

/// One node: its core's parameters, its books (a real ledger) and its config.
struct Node {
    params: Arc<CoreParams>,
    books: Mutex<Books>,
    config: NodeConfig,
    _dir: tempfile::TempDir,
}

fn node(i: usize, max_jobs: usize) -> Node {
    node_with_cap(i, max_jobs, "2")
}

fn node_with_cap(i: usize, max_jobs: usize, cap: &str) -> Node {
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    for f in ["ca.pem", "cert.pem", "key.pem", "t.csv"] {
        std::fs::write(dir.path().join(f), "x").unwrap_or_else(|e| unreachable!("{e}"));
    }
    let toml = format!(
        "coordinator = \"h:1\"\n[tls]\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \
         \"key.pem\"\n[privacy]\nledger = \"l\"\ncap_rho = \"{cap}\"\nperiod = \"2026-12\"\n\
         [data]\ntransactions = \"t.csv\"\n"
    );
    let path = dir.path().join("node.toml");
    std::fs::write(&path, toml).unwrap_or_else(|e| unreachable!("{e}"));
    let config = NodeConfig::load(&path).unwrap_or_else(|e| unreachable!("{e}"));
    let me = party(NODES[i]);
    let ledger_key = ed25519_dalek::SigningKey::from_bytes(&[u8::try_from(i).unwrap_or(0); 32]);
    let mut ledger = NodeLedger::open(&config.privacy.ledger, ledger_key, me.clone())
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut spending = Spending::default();
    let period = Period::new("2026-12").unwrap_or_else(|_| unreachable!());
    crate::floor::roll_period(
        &mut ledger,
        &mut spending,
        period,
        &config.privacy.cap_rho,
        None,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let params = Arc::new(CoreParams {
        identity: me,
        key: signing_key(i),
        certificates: ca(),
        floor: config.floor.clone(),
        max_jobs,
        heartbeat_timeout: Duration::from_secs(30),
    });
    Node {
        params,
        books: Mutex::new(Books { ledger, spending }),
        config,
        _dir: dir,
    }
}

fn at(t0: Instant, secs: u64) -> Now {
    Now {
        instant: t0 + Duration::from_secs(secs),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    }
}

fn env(job: JobId, body: Body) -> Envelope {
    Envelope {
        header: Header {
            job,
            round: RoundId(0),
            seq: 0,
        },
        body,
    }
}

fn query(budget: (u64, u64)) -> FeatureQuery {
    FeatureQuery {
        label: "t".into(),
        as_of: "2026-06-30".into(),
        scale: 8,
        segmenter: Segmenter::All,
        parts: vec![
            QueryPart::Count,
            QueryPart::Numeric {
                feature: NumericFeature::TxnCount,
                lo: 0,
                hi: 5,
            },
        ],
        budget: Fraction {
            numer: budget.0,
            denom: budget.1,
        },
        reserve: Fraction { numer: 0, denom: 1 },
        job: None,
    }
}

/// An announcement to all three nodes, planned as the coordinator plans it.
fn announce(nonce: u8, budget: (u64, u64)) -> JobAnnounce {
    let q = query(budget);
    let cap =
        fedprof_privacy::Rho::from_ratio(budget.0, budget.1).unwrap_or_else(|_| unreachable!());
    let release =
        fedprof_privacy::query::plan_query(&cap, &q, 3, 1).unwrap_or_else(|e| unreachable!("{e}"));
    JobAnnounce {
        spec: JobSpec::Features(Box::new(q)),
        timeout_ms: 10_000,
        release,
        secagg: SecAggSetup {
            roster: NODES
                .iter()
                .map(|n| RosterEntry {
                    name: name(n),
                    certificate: n.as_bytes().to_vec(),
                })
                .collect(),
            threshold: 2,
            graph: SecAggGraph::Complete,
            min_survivors: 3,
        },
        profile: ProfileTag {
            id: ProfileId([nonce; 16]),
            analyst: name("x"),
            cap: Fraction { numer: 1, denom: 1 },
        },
        nonce: [nonce; 32],
        last_receipt: None,
    }
}

fn registered(n: &Node, t0: Instant) -> NodeCore {
    let seed = [n.params.identity.name.as_str().as_bytes()[0]; 32];
    let (mut core, first) = NodeCore::start(Arc::clone(&n.params), "t", seed, at(t0, 0));
    assert!(matches!(
        &first[..],
        [Action::Send {
            body: Body::Register(_),
            ..
        }]
    ));
    let reg = Body::Registered(Registered {
        party: n.params.identity.clone(),
    });
    assert!(
        core.handle(Input::Message(env(JobId::NONE, reg)), at(t0, 0), &n.books)
            .is_empty()
    );
    assert!(core.is_registered());
    core
}

/// What the shell does with a work order: the debit (with an all-zero exact answer).
fn pay(n: &Node, c: &Compute, cancelled: bool) -> crate::books::Computed {
    let exact = vec![0i64; c.announce.spec.vector_len()];
    let mut rng = ChaCha20Rng::from_seed(c.noise_seed);
    let is_cancelled = move || cancelled;
    let paid = Paid {
        privacy: &n.config.privacy,
        floor: &n.config.floor,
        announce: &c.announce,
        release: c.release,
        reserve: c.reserve.clone(),
        cancelled: &is_cancelled,
    };
    crate::books::debit(
        &n.books,
        &paid,
        c.mechanism.clone(),
        &exact,
        &c.announce.release,
        &mut rng,
    )
    .map(Box::new)
}

fn sends(actions: &[Action]) -> Vec<&Body> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { body, .. } => Some(body),
            _ => None,
        })
        .collect()
}

fn compute(actions: Vec<Action>) -> Option<Box<Compute>> {
    actions.into_iter().find_map(|a| match a {
        Action::Compute(c) => Some(c),
        _ => None,
    })
}

fn debits(n: &Node) -> usize {
    let books = n.books.lock().unwrap_or_else(|_| unreachable!());
    books
        .ledger
        .book()
        .periods()
        .iter()
        .map(|p| p.debits)
        .sum::<u64>() as usize
}

/// A whole round through three cores and the secure-aggregation coordinator: accept, keys,
/// shares, receipt before masked input, unmask; the sum is released, every node paid once.
#[test]
fn three_cores_complete_a_round_and_each_pays_once() {
    let t0 = Instant::now();
    let nodes: Vec<Node> = (0..3).map(|i| node(i, 4)).collect();
    let mut cores: Vec<NodeCore> = nodes.iter().map(|n| registered(n, t0)).collect();
    let job = JobId(1);
    let ann = announce(1, (1, 2));
    let roster = VerifiedRoster::verify(
        &ann.secagg.roster,
        &party("a"),
        ca().as_ref(),
        at(t0, 0).wall,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let config = round_config(job, &ann, &roster).unwrap_or_else(|e| unreachable!("{e}"));
    let mut secagg = fedprof_secagg::Coordinator::new(config);

    let mut work = Vec::new();
    for (i, (core, n)) in cores.iter_mut().zip(&nodes).enumerate() {
        let out = core.handle(
            Input::Message(env(job, Body::JobAnnounce(ann.clone()))),
            at(t0, 1),
            &n.books,
        );
        let bodies = sends(&out);
        assert!(
            matches!(
                bodies[..],
                [Body::Accept, Body::SecAgg(NodeMessage::Advertise(_))]
            ),
            "{out:?}"
        );
        if let [_, Body::SecAgg(m)] = bodies[..] {
            let i = u32::try_from(i).unwrap_or(0);
            secagg
                .receive(i, m.clone())
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
        work.push(compute(out).unwrap_or_else(|| unreachable!("no work order")));
        assert_eq!(core.jobs(), vec![job]);
    }
    // Nothing is paid before the work is done.
    assert!(nodes.iter().all(|n| debits(n) == 0));
    // The work finishes early for a, late for b and c: the vector may come before or after
    // the share bundle.
    let mut receipts = 0;
    let feed = |secagg: &mut fedprof_secagg::Coordinator,
                i: usize,
                out: &[Action],
                receipts: &mut usize| {
        let mut seen_receipt = false;
        for b in sends(out) {
            match b {
                Body::Receipt(_) => {
                    seen_receipt = true;
                    *receipts += 1;
                }
                Body::SecAgg(m) => {
                    if matches!(m, NodeMessage::Masked(_)) {
                        assert!(
                            seen_receipt || *receipts > 0,
                            "masked input before its receipt"
                        );
                    }
                    let i = u32::try_from(i).unwrap_or(0);
                    secagg
                        .receive(i, m.clone())
                        .unwrap_or_else(|e| unreachable!("{e}"));
                }
                other => unreachable!("unexpected {other:?}"),
            }
        }
    };
    let out = cores[0].handle(
        Input::Computed {
            job,
            result: pay(&nodes[0], &work[0], false),
        },
        at(t0, 2),
        &nodes[0].books,
    );
    assert!(matches!(sends(&out)[..], [Body::Receipt(_)]), "{out:?}");
    feed(&mut secagg, 0, &out, &mut receipts);
    let mut step = secagg.close_phase().unwrap_or_else(|e| unreachable!("{e}"));
    let mut t = 3;
    let sum = loop {
        match step {
            Step::Send(messages) => {
                for (i, m) in messages {
                    let i = i as usize;
                    let out = cores[i].handle(
                        Input::Message(env(job, Body::SecAggRelay(m))),
                        at(t0, t),
                        &nodes[i].books,
                    );
                    feed(&mut secagg, i, &out, &mut receipts);
                }
                if t == 4 {
                    for i in 1..3 {
                        let out = cores[i].handle(
                            Input::Computed {
                                job,
                                result: pay(&nodes[i], &work[i], false),
                            },
                            at(t0, t),
                            &nodes[i].books,
                        );
                        feed(&mut secagg, i, &out, &mut receipts);
                    }
                }
                t += 1;
                step = secagg.close_phase().unwrap_or_else(|e| unreachable!("{e}"));
            }
            Step::Finished(sum) => break sum,
        }
    };
    assert_eq!(sum.contributors(), &[0, 1, 2]);
    assert_eq!(receipts, 3);
    assert!(nodes.iter().all(|n| debits(n) == 1));
    // The result frees every slot.
    for (core, n) in cores.iter_mut().zip(&nodes) {
        let result = fedprof_protocol::JobResult {
            spec: ann.spec.clone(),
            values: sum.values().to_vec(),
            contributors: NODES.iter().map(|s| name(s)).collect(),
            release: ann.release.clone(),
            profile: ann.profile.clone(),
        };
        let out = core.handle(
            Input::Message(env(job, Body::Result(result))),
            at(t0, t),
            &n.books,
        );
        assert!(matches!(out[..], [Action::Released { .. }]), "{out:?}");
        assert!(core.jobs().is_empty());
    }
}

/// M4 at the core: a busy node refuses as Busy, and a round-over notice frees the slot at once
/// (cancelling the unpaid debit), so the next announcement is accepted.
#[test]
fn round_over_frees_the_slot_and_cancels_the_unpaid_debit() {
    let t0 = Instant::now();
    let n = node(0, 1);
    let mut core = registered(&n, t0);
    let first = core.handle(
        Input::Message(env(JobId(1), Body::JobAnnounce(announce(1, (1, 4))))),
        at(t0, 1),
        &n.books,
    );
    let work = compute(first).unwrap_or_else(|| unreachable!());
    let busy = core.handle(
        Input::Message(env(JobId(2), Body::JobAnnounce(announce(2, (1, 4))))),
        at(t0, 1),
        &n.books,
    );
    assert!(
        matches!(sends(&busy)[..], [Body::Refuse(r)] if r.reason == RefuseReason::Busy),
        "{busy:?}"
    );
    let over = RoundOver {
        reason: RoundOverReason::Aborted,
        detail: "only 2 of 3".into(),
    };
    let out = core.handle(
        Input::Message(env(JobId(1), Body::RoundOver(over))),
        at(t0, 2),
        &n.books,
    );
    assert!(
        matches!(out[..], [Action::Cancel { job: JobId(1) }]),
        "{out:?}"
    );
    assert!(core.jobs().is_empty());
    // The shell's cancel flag stops the debit; the late outcome changes nothing.
    let late = pay(&n, &work, true);
    assert!(late.is_err());
    assert_eq!(debits(&n), 0, "a cancelled job was paid for");
    assert!(
        core.handle(
            Input::Computed {
                job: JobId(1),
                result: late
            },
            at(t0, 2),
            &n.books
        )
        .is_empty()
    );
    let third = core.handle(
        Input::Message(env(JobId(3), Body::JobAnnounce(announce(3, (1, 4))))),
        at(t0, 3),
        &n.books,
    );
    assert!(
        matches!(sends(&third)[..], [Body::Accept, Body::SecAgg(_)]),
        "{third:?}"
    );
}

/// The roster is verified before anything: an entry whose certificate the CA did not issue, or
/// one carrying another node's certificate, is refused with no work order.
#[test]
fn an_untrusted_or_swapped_roster_certificate_is_refused_before_any_work() {
    let t0 = Instant::now();
    let n = node(0, 4);
    let mut core = registered(&n, t0);
    let mut forged = announce(1, (1, 4));
    forged.secagg.roster[1].certificate = b"mallory".to_vec();
    let mut swapped = announce(2, (1, 4));
    swapped.secagg.roster[2].certificate = b"b".to_vec();
    for (job, ann) in [(JobId(1), forged), (JobId(2), swapped)] {
        let out = core.handle(
            Input::Message(env(job, Body::JobAnnounce(ann))),
            at(t0, 1),
            &n.books,
        );
        assert!(
            matches!(sends(&out)[..], [Body::Refuse(r)] if r.reason == RefuseReason::Policy),
            "{out:?}"
        );
        assert!(compute(out).is_none());
    }
    assert!(core.jobs().is_empty());
}

/// A receipt is the only way to set the input, and only this job's: a debit of another
/// release handed to a job is refused and nothing masked leaves.
#[test]
fn a_receipt_for_another_release_does_not_unlock_the_masked_input() {
    let t0 = Instant::now();
    let n = node(0, 4);
    let mut core = registered(&n, t0);
    let one = compute(core.handle(
        Input::Message(env(JobId(1), Body::JobAnnounce(announce(1, (1, 4))))),
        at(t0, 1),
        &n.books,
    ))
    .unwrap_or_else(|| unreachable!());
    let _two = compute(core.handle(
        Input::Message(env(JobId(2), Body::JobAnnounce(announce(2, (1, 4))))),
        at(t0, 1),
        &n.books,
    ))
    .unwrap_or_else(|| unreachable!());
    let receipt_of_one = pay(&n, &one, false);
    assert!(receipt_of_one.is_ok());
    let out = core.handle(
        Input::Computed {
            job: JobId(2),
            result: receipt_of_one,
        },
        at(t0, 2),
        &n.books,
    );
    assert!(
        matches!(sends(&out)[..], [Body::Refuse(r)] if r.detail.contains("not for this job's release")),
        "{out:?}"
    );
    assert_eq!(core.jobs(), vec![JobId(1)]);
}

/// L10: a release refused at the debit (the budget ran out between admission and payment)
/// draws no noise: the noise generator is untouched, and nothing is debited.
#[test]
fn no_noise_is_drawn_for_a_release_refused_at_the_debit() {
    let t0 = Instant::now();
    let n = node_with_cap(0, 4, "3/4");
    let mut core = registered(&n, t0);
    // Two admitted jobs of 1/2 rho each against a cap of 3/4: both pass admission, the second
    // cannot be paid once the first is.
    let a = compute(core.handle(
        Input::Message(env(JobId(1), Body::JobAnnounce(announce(1, (1, 2))))),
        at(t0, 1),
        &n.books,
    ))
    .unwrap_or_else(|| unreachable!());
    let b = compute(core.handle(
        Input::Message(env(JobId(2), Body::JobAnnounce(announce(2, (1, 2))))),
        at(t0, 1),
        &n.books,
    ))
    .unwrap_or_else(|| unreachable!());
    assert!(pay(&n, &a, false).is_ok());
    let exact = vec![0i64; b.announce.spec.vector_len()];
    let mut rng = ChaCha20Rng::from_seed(b.noise_seed);
    let never = || false;
    let paid = Paid {
        privacy: &n.config.privacy,
        floor: &n.config.floor,
        announce: &b.announce,
        release: b.release,
        reserve: b.reserve.clone(),
        cancelled: &never,
    };
    let refused = crate::books::debit(
        &n.books,
        &paid,
        b.mechanism.clone(),
        &exact,
        &b.announce.release,
        &mut rng,
    );
    assert!(
        matches!(&refused, Err(r) if r.reason == RefuseReason::BudgetExhausted),
        "{refused:?}"
    );
    assert_eq!(
        rng.get_word_pos(),
        0,
        "noise was drawn for a release that was not paid"
    );
    assert_eq!(debits(&n), 1);
}

/// The heartbeat: a ping is answered by the core; a coordinator silent for the timeout ends
/// the session (and cancels the jobs), and `next_deadline` says when to look.
#[test]
fn pings_are_answered_and_a_silent_coordinator_ends_the_session() {
    let t0 = Instant::now();
    let n = node(0, 4);
    let mut core = registered(&n, t0);
    assert_eq!(core.next_deadline(), Some(t0 + Duration::from_secs(30)));
    let out = core.handle(
        Input::Message(env(JobId::NONE, Body::Ping(9))),
        at(t0, 20),
        &n.books,
    );
    assert!(matches!(sends(&out)[..], [Body::Pong(9)]), "{out:?}");
    assert_eq!(core.next_deadline(), Some(t0 + Duration::from_secs(50)));
    let _ = compute(core.handle(
        Input::Message(env(JobId(1), Body::JobAnnounce(announce(1, (1, 4))))),
        at(t0, 21),
        &n.books,
    ));
    assert!(core.handle(Input::Tick, at(t0, 50), &n.books).is_empty());
    let out = core.handle(Input::Tick, at(t0, 51), &n.books);
    assert!(
        matches!(&out[..], [Action::End { reason }, Action::Cancel { job: JobId(1) }] if reason.contains("heartbeat")),
        "{out:?}"
    );
    assert_eq!(core.next_deadline(), None);
}

/// A job whose round never ends is dropped after its lifetime (the backstop behind the
/// round-over notice), and a repeated announcement of a running job leaves it.
#[test]
fn jobs_expire_and_a_repeated_announcement_leaves_the_job() {
    let t0 = Instant::now();
    let n = node(0, 4);
    let mut core = registered(&n, t0);
    let ann = announce(1, (1, 4));
    let _ = compute(core.handle(
        Input::Message(env(JobId(1), Body::JobAnnounce(ann.clone()))),
        at(t0, 1),
        &n.books,
    ));
    let again = core.handle(
        Input::Message(env(JobId(1), Body::JobAnnounce(ann))),
        at(t0, 2),
        &n.books,
    );
    assert!(
        matches!(
            &again[..],
            [
                Action::Cancel { .. },
                Action::Send {
                    body: Body::Refuse(_),
                    ..
                }
            ]
        ),
        "{again:?}"
    );
    assert!(core.jobs().is_empty());
    let _ = compute(core.handle(
        Input::Message(env(JobId(2), Body::JobAnnounce(announce(2, (1, 4))))),
        at(t0, 3),
        &n.books,
    ));
    // Lifetime: 6 phases of 10 s. Keep the coordinator audible meanwhile.
    let _ = core.handle(
        Input::Message(env(JobId::NONE, Body::Ping(1))),
        at(t0, 60),
        &n.books,
    );
    assert_eq!(core.next_deadline(), Some(t0 + Duration::from_secs(63)));
    let out = core.handle(Input::Tick, at(t0, 63), &n.books);
    assert!(
        matches!(out[..], [Action::Cancel { job: JobId(2) }]),
        "{out:?}"
    );
    assert!(core.jobs().is_empty());
}
