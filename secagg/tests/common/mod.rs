//! An in-process round: one coordinator and `n` nodes exchanging messages in memory, with
//! dropouts injected per phase. Shared by the simulation and negative tests and the bench.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng as _, SeedableRng as _};
use fedprof_crypto::{SecretKey32, SigningKey};
use fedprof_secagg::coordinator::Step;
use fedprof_secagg::messages::{CoordinatorMessage, NodeMessage, RoundTag};
use fedprof_secagg::node::{self, AwaitingBundle, AwaitingDirectory, AwaitingUnmask};
use fedprof_secagg::{Coordinator, CoordinatorError, GraphSpec, Party, RoundConfig, UnmaskedSum};

pub const TAG: RoundTag = RoundTag { job: 42, round: 3 };

/// The phase at which a node stops answering (it sends nothing from then on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropAt {
    Advertise,
    Share,
    Masked,
    Unmask,
}

pub const PHASES: [DropAt; 4] = [
    DropAt::Advertise,
    DropAt::Share,
    DropAt::Masked,
    DropAt::Unmask,
];

/// A federation's keys and round configuration.
pub struct Federation {
    pub config: Arc<RoundConfig>,
    pub keys: Vec<SigningKey>,
}

pub fn federation(n: usize, d: usize, graph: GraphSpec, threshold: Option<usize>) -> Federation {
    federation_with_tag(TAG, n, d, graph, threshold)
}

pub fn federation_with_tag(
    tag: RoundTag,
    n: usize,
    d: usize,
    graph: GraphSpec,
    threshold: Option<usize>,
) -> Federation {
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SigningKey::from_seed(&SecretKey32::from_bytes(seed))
        })
        .collect();
    let parties = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Party {
            name: format!("node-{i}"),
            verifying_key: k.verifying_key(),
        })
        .collect();
    let config = Arc::new(RoundConfig::new(tag, parties, d, graph, threshold).unwrap());
    Federation { config, keys }
}

/// Seeded random inputs over the whole ring.
pub fn inputs(n: usize, d: usize, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..d).map(|_| rng.next_u64()).collect())
        .collect()
}

/// `count` distinct nodes chosen with a seeded shuffle.
pub fn pick(n: usize, count: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut all: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        all.swap(i, j);
    }
    all.truncate(count);
    all.sort_unstable();
    all
}

/// Sizes and times of one round.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Bytes each node sent (postcard), summed over its messages.
    pub sent: Vec<usize>,
    /// Bytes each node received.
    pub received: Vec<usize>,
    /// Time spent in node state machines, summed over all nodes.
    pub node_time: Duration,
    /// Time spent in the coordinator.
    pub coordinator_time: Duration,
}

enum State {
    Directory(AwaitingDirectory),
    Bundle(AwaitingBundle),
    Unmask(AwaitingUnmask),
    Gone,
}

/// A node of the simulation: its state machine and its own seeded RNG (so the outcome does
/// not depend on the order or the thread in which nodes run).
struct Node {
    state: State,
    rng: ChaCha20Rng,
}

/// What a round ended with.
pub struct Outcome {
    pub result: Result<UnmaskedSum, CoordinatorError>,
    pub stats: Stats,
    /// Nodes whose masked input was sent (the expected contributors).
    pub contributors: Vec<u32>,
    /// The masked vector node 0 sent, if it did (for the uniformity test).
    pub masked_of_first: Option<Vec<u8>>,
}

/// How a round is driven.
#[derive(Debug, Clone, Copy)]
pub struct Driver {
    /// Encode every message with postcard to count its bytes (postcard writes a `Vec<u8>`
    /// byte by byte, which costs more than the masking at large `d`).
    pub count_bytes: bool,
    /// Threads that run the nodes' state machines within a phase; the coordinator runs on the
    /// calling thread and takes the replies in node order, so the outcome is the same for any
    /// number of threads.
    pub threads: usize,
}

impl Driver {
    /// One thread, bytes counted (the bench's tables).
    pub const COUNTING: Driver = Driver {
        count_bytes: true,
        threads: 1,
    };

    /// Every core, nothing counted (the large simulations: the nodes' X25519 agreements and
    /// signature checks are nearly all the work, and they are independent within a phase).
    pub fn all_cores() -> Driver {
        Driver {
            count_bytes: false,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// Runs a whole round in one thread, counting bytes; node `u` stops at `drop_at[u]`. Node
/// `u`'s input is `inputs[u % inputs.len()]` (a bench passes one vector for all nodes).
pub fn run(
    fed: &Federation,
    inputs: &[Vec<u64>],
    drop_at: &[Option<DropAt>],
    rng_seed: u64,
) -> Outcome {
    run_with(fed, inputs, drop_at, rng_seed, Driver::COUNTING)
}

/// [`run`] in one thread, optionally without counting bytes.
pub fn run_counting(
    fed: &Federation,
    inputs: &[Vec<u64>],
    drop_at: &[Option<DropAt>],
    rng_seed: u64,
    count_bytes: bool,
) -> Outcome {
    let driver = Driver {
        count_bytes,
        threads: 1,
    };
    run_with(fed, inputs, drop_at, rng_seed, driver)
}

/// One node's work on one coordinator message: its reply (`None` if it has dropped).
struct Job {
    u: usize,
    node: Node,
    message: Option<CoordinatorMessage>,
    /// The node drops at this phase: it receives the message and never answers.
    drops: bool,
    reply: Option<NodeMessage>,
    time: Duration,
    received: usize,
    sent: usize,
}

impl Job {
    fn run(&mut self, inputs: &[Vec<u64>], count_bytes: bool) {
        let u = self.u;
        let Some(msg) = self.message.take() else {
            return;
        };
        if count_bytes {
            self.received = postcard::to_allocvec(&msg).unwrap().len();
        }
        if self.drops {
            self.node.state = State::Gone;
            return;
        }
        let t = Instant::now();
        let node = &mut self.node;
        let reply = match (std::mem::replace(&mut node.state, State::Gone), msg) {
            (State::Directory(s), CoordinatorMessage::Directory(m)) => {
                let (next, reply) = s.on_directory(&m, &mut node.rng).unwrap();
                node.state = State::Bundle(next);
                NodeMessage::Shares(reply)
            }
            (State::Bundle(s), CoordinatorMessage::Bundle(m)) => {
                let (next, reply) = s.on_bundle(&m, &inputs[u % inputs.len()]).unwrap();
                node.state = State::Unmask(next);
                NodeMessage::Masked(reply)
            }
            (State::Unmask(s), CoordinatorMessage::Unmask(m)) => {
                NodeMessage::Unmask(s.on_unmask_request(&m).unwrap())
            }
            _ => panic!("node {u} got a message for another phase"),
        };
        self.time = t.elapsed();
        if count_bytes {
            self.sent = postcard::to_allocvec(&reply).unwrap().len();
        }
        self.reply = Some(reply);
    }
}

/// Runs a whole round as `driver` says; node `u` stops at `drop_at[u]`.
pub fn run_with(
    fed: &Federation,
    inputs: &[Vec<u64>],
    drop_at: &[Option<DropAt>],
    rng_seed: u64,
    driver: Driver,
) -> Outcome {
    let cfg = &fed.config;
    let n = cfg.n();
    let mut stats = Stats {
        sent: vec![0; n],
        received: vec![0; n],
        ..Stats::default()
    };
    let mut coordinator = Coordinator::new(Arc::clone(cfg));
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut contributors = Vec::new();
    let mut masked_of_first = None;
    let drops = |u: usize, phase: DropAt| drop_at[u].is_some_and(|p| p <= phase);

    let deliver = |coordinator: &mut Coordinator, stats: &mut Stats, u: usize, msg: NodeMessage| {
        let t = Instant::now();
        let r = coordinator.receive(u as u32, msg);
        stats.coordinator_time += t.elapsed();
        r.expect("an honest node's message is accepted");
    };

    // Phase 0.
    for u in 0..n {
        let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
        rng.set_stream(u as u64);
        if drops(u, DropAt::Advertise) {
            nodes.push(Node {
                state: State::Gone,
                rng,
            });
            continue;
        }
        let t = Instant::now();
        let (state, advert) =
            node::start(Arc::clone(cfg), u as u32, &fed.keys[u], &mut rng).unwrap();
        stats.node_time += t.elapsed();
        nodes.push(Node {
            state: State::Directory(state),
            rng,
        });
        let advert = NodeMessage::Advertise(advert);
        if driver.count_bytes {
            stats.sent[u] += postcard::to_allocvec(&advert).unwrap().len();
        }
        deliver(&mut coordinator, &mut stats, u, advert);
    }
    let mut phase = DropAt::Share;
    loop {
        let t = Instant::now();
        let step = coordinator.close_phase();
        stats.coordinator_time += t.elapsed();
        let messages = match step {
            Ok(Step::Send(messages)) => messages,
            Ok(Step::Finished(sum)) => {
                return Outcome {
                    result: Ok(sum),
                    stats,
                    contributors,
                    masked_of_first,
                };
            }
            Err(e) => {
                return Outcome {
                    result: Err(e),
                    stats,
                    contributors,
                    masked_of_first,
                };
            }
        };
        let mut jobs: Vec<Job> = messages
            .into_iter()
            .map(|(u, msg)| {
                let u = u as usize;
                let gone = Node {
                    state: State::Gone,
                    rng: ChaCha20Rng::seed_from_u64(0),
                };
                let node = std::mem::replace(&mut nodes[u], gone);
                Job {
                    u,
                    message: Some(msg),
                    drops: drops(u, phase),
                    node,
                    reply: None,
                    time: Duration::ZERO,
                    received: 0,
                    sent: 0,
                }
            })
            .collect();
        // Takes a node's reply to the coordinator (in node order).
        let mut finish = |job: Job| {
            let u = job.u;
            nodes[u] = job.node;
            stats.node_time += job.time;
            stats.received[u] += job.received;
            stats.sent[u] += job.sent;
            let Some(reply) = job.reply else {
                return;
            };
            if let NodeMessage::Masked(m) = &reply {
                contributors.push(u as u32);
                if u == 0 {
                    masked_of_first = Some(m.masked.clone());
                }
            }
            deliver(&mut coordinator, &mut stats, u, reply);
        };
        if driver.threads <= 1 {
            // Each reply is delivered before the next node runs, as a node-by-node transport
            // would (one masked vector alive at a time).
            for mut job in jobs {
                job.run(inputs, driver.count_bytes);
                finish(job);
            }
        } else {
            let per_thread = jobs.len().div_ceil(driver.threads).max(1);
            std::thread::scope(|s| {
                for chunk in jobs.chunks_mut(per_thread) {
                    s.spawn(move || {
                        for job in chunk {
                            job.run(inputs, driver.count_bytes);
                        }
                    });
                }
            });
            jobs.into_iter().for_each(finish);
        }
        phase = match phase {
            DropAt::Share => DropAt::Masked,
            DropAt::Masked => DropAt::Unmask,
            _ => DropAt::Unmask,
        };
    }
}

/// The plain sum of the contributors' inputs.
pub fn expected_sum(inputs: &[Vec<u64>], contributors: &[u32], d: usize) -> Vec<u64> {
    let mut sum = vec![0u64; d];
    for &u in contributors {
        for (s, x) in sum.iter_mut().zip(&inputs[u as usize % inputs.len()]) {
            *s = s.wrapping_add(*x);
        }
    }
    sum
}

/// Drop `count` nodes at `phase` (seeded), run on every core, and return the outcome.
pub fn run_with_dropouts(
    fed: &Federation,
    inputs: &[Vec<u64>],
    phase: DropAt,
    count: usize,
    seed: u64,
) -> Outcome {
    let n = fed.config.n();
    let mut drop_at = vec![None; n];
    for u in pick(n, count, seed) {
        drop_at[u as usize] = Some(phase);
    }
    run_with(fed, inputs, &drop_at, seed ^ 0x5eed, Driver::all_cores())
}

/// Asserts the round released exactly the sum of the nodes that sent masked inputs.
pub fn assert_exact(outcome: &Outcome, inputs: &[Vec<u64>], d: usize, what: &str) {
    let sum = match &outcome.result {
        Ok(sum) => sum,
        Err(e) => panic!("{what}: round aborted: {e}"),
    };
    assert_eq!(
        sum.contributors(),
        outcome.contributors.as_slice(),
        "{what}: contributors"
    );
    assert_eq!(
        sum.values(),
        expected_sum(inputs, &outcome.contributors, d).as_slice(),
        "{what}: sum"
    );
}
