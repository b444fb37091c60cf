//! The invariants, checked after every step from what the parties did (the messages they sent,
//! the records they made durable) and from the nodes' real ledgers.
//!
//! | invariant | where it is observed |
//! |---|---|
//! | no node over its cap | each touched node's ledger book, and the simulator's own tally of what it paid |
//! | no release published without every contributor's debit | each release the coordinator's ledger recorded: every contributor paid exactly that release id, and the released sum is exactly the sum of the vectors they paid for |
//! | no sum over fewer than `n_min`; no single node's vector unmasked | each recorded release's contributors; every unmask response nodes sent: no node's self-mask seed and mask key both reach the threshold |
//! | no release id reused | every announcement (job number with its nonce) and every debit (job with its configuration digest) |
//! | no report mixing node sets | the releases the analyst took into each profiling job, and every recorded release of a profiling job |
//! | retries idempotent | no request announced again after it was journaled as published; the analyst never gets two different releases for one request |
//! | nothing durable lost | on every restart, the coordinator's ledger holds every release recorded before, each node's ledger every debit |

use std::collections::{BTreeMap, BTreeSet};

use fedprof_coordinator::journal::Record;
use fedprof_ledger::{Digest, ReleaseId};
use fedprof_protocol::secagg::UnmaskResponse;
use fedprof_protocol::{
    JobAnnounce, JobId, JobOutcome, JobResult, PartyName, ProfileId, RequestId, RoundId,
};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step}: {what}")]
pub struct Violation {
    /// The simulator step it was seen at.
    pub step: u64,
    /// What broke.
    pub what: String,
}

#[derive(Debug, Default)]
struct RoundSeen {
    threshold: usize,
    roster: Vec<PartyName>,
    /// Owner index -> senders that revealed its self-mask seed share.
    self_mask: BTreeMap<u32, BTreeSet<u32>>,
    /// Owner index -> senders that revealed its mask-key share.
    mask_key: BTreeMap<u32, BTreeSet<u32>>,
}

/// What the checker has seen so far.
#[derive(Debug, Default)]
pub struct Checker {
    step: u64,
    violations: Vec<Violation>,
    /// Job -> announced nonce.
    announced: BTreeMap<JobId, [u8; 32]>,
    /// Announced nonce -> job.
    nonces: BTreeMap<[u8; 32], JobId>,
    rounds: BTreeMap<JobId, RoundSeen>,
    /// Job -> the configuration digest nodes debited it under.
    debited: BTreeMap<JobId, Digest>,
    /// Releases recorded in the coordinator's ledger.
    recorded: BTreeMap<JobId, Vec<PartyName>>,
    /// Profiling job -> the node set of its first recorded release.
    populations: BTreeMap<ProfileId, Vec<PartyName>>,
    /// Profiling job -> the node set of the first release the analyst took.
    reports: BTreeMap<ProfileId, Vec<PartyName>>,
    /// Request -> the jobs announced for it.
    requests: BTreeMap<(PartyName, RequestId), Vec<JobId>>,
    job_request: BTreeMap<JobId, (PartyName, RequestId)>,
    published_requests: BTreeMap<(PartyName, RequestId), JobId>,
    /// Request -> the job whose result the analyst took for it.
    taken: BTreeMap<RequestId, JobId>,
    /// Releases recorded, then never journaled as published (the coordinator died between).
    pub recorded_unpublished: BTreeSet<JobId>,
    /// Rounds the coordinator refunded ("no node could have paid") that a node had debited:
    /// nodes pay right after accepting, before the share bundles (see sim/README.md, bug 2).
    pub refunded_but_paid: BTreeSet<JobId>,
}

impl Checker {
    /// Sets the step number later violations carry.
    pub fn at(&mut self, step: u64) {
        self.step = step;
    }

    /// The violations so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Records a violation found outside the checker (a party that cannot restart).
    pub fn fail_with(&mut self, what: String) {
        self.fail(what);
    }

    fn fail(&mut self, what: String) {
        self.violations.push(Violation {
            step: self.step,
            what,
        });
    }

    /// Releases the coordinator's ledger recorded.
    pub fn recorded_count(&self) -> usize {
        self.recorded.len()
    }

    /// The coordinator announced `announce` as `job`.
    pub fn on_announce(&mut self, job: JobId, announce: &JobAnnounce) {
        match self.announced.get(&job) {
            Some(n) if *n != announce.nonce => {
                self.fail(format!(
                    "release id reused: {job} announced with two nonces"
                ));
            }
            Some(_) => return, // The same announcement, sent to another node.
            None => {}
        }
        if let Some(other) = self.nonces.get(&announce.nonce)
            && *other != job
        {
            self.fail(format!("nonce reused by {job} and {other}"));
        }
        self.announced.insert(job, announce.nonce);
        self.nonces.insert(announce.nonce, job);
        self.rounds.insert(
            job,
            RoundSeen {
                threshold: announce.secagg.threshold as usize,
                roster: announce
                    .secagg
                    .roster
                    .iter()
                    .map(|e| e.name.clone())
                    .collect(),
                ..RoundSeen::default()
            },
        );
    }

    /// A node debited `release`.
    pub fn on_debit(&mut self, node: &PartyName, release: &ReleaseId) {
        match self.debited.get(&release.job) {
            Some(d) if *d != release.nonce => self.fail(format!(
                "release id reused: {node} debited {} under a second configuration",
                release.job
            )),
            Some(_) => {}
            None => {
                self.debited.insert(release.job, release.nonce);
            }
        }
    }

    /// A node sent an unmask response for `job`.
    pub fn on_unmask(&mut self, job: JobId, response: &UnmaskResponse) {
        let Some(round) = self.rounds.get_mut(&job) else {
            return;
        };
        for s in &response.self_mask_shares {
            round
                .self_mask
                .entry(s.owner)
                .or_default()
                .insert(response.sender);
        }
        for s in &response.mask_key_shares {
            round
                .mask_key
                .entry(s.owner)
                .or_default()
                .insert(response.sender);
        }
        let t = round.threshold;
        let exposed: Vec<u32> = round
            .self_mask
            .iter()
            .filter(|(owner, senders)| {
                senders.len() >= t && round.mask_key.get(owner).is_some_and(|m| m.len() >= t)
            })
            .map(|(o, _)| *o)
            .collect();
        let names: Vec<String> = exposed
            .iter()
            .filter_map(|o| round.roster.get(*o as usize).map(ToString::to_string))
            .collect();
        if !names.is_empty() {
            self.fail(format!(
                "{job}: both secrets of {} revealed to the threshold: a single vector can be unmasked",
                names.join(", ")
            ));
        }
    }

    /// The coordinator journaled `record`.
    pub fn on_journal(&mut self, record: &Record) {
        match record {
            Record::Announced(a) => {
                let key = (a.analyst.clone(), a.request);
                if let Some(job) = self.published_requests.get(&key) {
                    self.fail(format!(
                        "retry not idempotent: request {} announced again as {} after it was \
                         published as {job}",
                        a.request, a.job
                    ));
                }
                self.requests.entry(key.clone()).or_default().push(a.job);
                self.job_request.insert(a.job, key);
            }
            Record::Published { job, .. } => {
                self.recorded_unpublished.remove(job);
                if let Some(key) = self.job_request.get(job).cloned() {
                    self.published_requests.insert(key, *job);
                }
            }
            Record::Refunded { job } => {
                if self.debited.contains_key(job) {
                    self.refunded_but_paid.insert(*job);
                }
            }
            Record::Paying { .. } | Record::Aborted { .. } => {}
        }
    }

    /// The coordinator's ledger recorded `job`'s release; `paid(node, release)` is the vector
    /// `node` paid for `release`, if any; `min_nodes` the policy's fewest contributors.
    pub fn on_recorded<'a>(
        &mut self,
        job: JobId,
        nonce: [u8; 32],
        outcome: &JobOutcome,
        min_nodes: usize,
        paid: impl Fn(&PartyName, &ReleaseId) -> Option<&'a [u64]>,
    ) {
        let JobOutcome::Completed { result, .. } = outcome else {
            self.fail(format!("{job}: a non-result was recorded"));
            return;
        };
        if self
            .recorded
            .insert(job, result.contributors.clone())
            .is_some()
        {
            self.fail(format!("{job} recorded twice"));
        }
        self.recorded_unpublished.insert(job);
        let n_min = (result.release.min_contributors as usize).max(min_nodes);
        if result.contributors.len() < n_min {
            self.fail(format!(
                "{job}: released over {} contributor(s), fewer than n_min {n_min}",
                result.contributors.len()
            ));
        }
        let release = ReleaseId {
            job,
            round: RoundId(0),
            nonce: Digest::from_bytes(nonce),
        };
        let mut sum = vec![0u64; result.values.len()];
        for node in &result.contributors {
            match paid(node, &release) {
                None => self.fail(format!(
                    "{job}: released with {node} as a contributor, but {node} never debited {release}"
                )),
                Some(v) if v.len() != sum.len() => {
                    self.fail(format!("{job}: {node}'s vector has the wrong length"));
                }
                Some(v) => {
                    for (s, x) in sum.iter_mut().zip(v) {
                        *s = s.wrapping_add(*x);
                    }
                }
            }
        }
        if sum != result.values {
            self.fail(format!(
                "{job}: the released sum is not the sum of the contributors' paid vectors"
            ));
        }
        self.same_population(job, result, false);
    }

    fn same_population(&mut self, job: JobId, result: &JobResult, report: bool) {
        let map = if report {
            &mut self.reports
        } else {
            &mut self.populations
        };
        let id = result.profile.id;
        match map.get(&id) {
            None => {
                map.insert(id, result.contributors.clone());
            }
            Some(first) if *first != result.contributors => {
                let (first, now) = (first.len(), result.contributors.len());
                let whose = if report {
                    "the analyst's report"
                } else {
                    "the ledger"
                };
                self.fail(format!(
                    "{whose} mixes node sets in one profiling job: {job} covers {now} node(s), \
                     an earlier release {first}"
                ));
            }
            Some(_) => {}
        }
    }

    /// The analyst took `result` (published as `job`) for `request`.
    pub fn on_taken(&mut self, request: RequestId, job: JobId, result: &JobResult) {
        match self.taken.get(&request) {
            Some(j) if *j != job => self.fail(format!(
                "retry not idempotent: request {request} answered by {j} and by {job}"
            )),
            _ => {
                self.taken.insert(request, job);
            }
        }
        self.same_population(job, result, true);
    }

    /// `node`'s ledger: what it spent in its period against its cap, and the simulator's tally
    /// of what it paid.
    pub fn check_node(
        &mut self,
        node: &PartyName,
        book: &fedprof_ledger::NodeBook,
        tally: &fedprof_privacy::Rho,
    ) {
        for p in book.periods() {
            if p.spent > p.cap {
                self.fail(format!(
                    "{node} over its cap in {}: spent {} of {}",
                    p.period, p.spent, p.cap
                ));
            }
        }
        if let Some(p) = book.periods().last()
            && tally > &p.cap
        {
            self.fail(format!(
                "{node} paid {tally} in all, over its cap {}",
                p.cap
            ));
        }
        if book.cumulative() < tally {
            self.fail(format!(
                "{node}'s ledger lost debits: it holds {} of the {tally} paid",
                book.cumulative()
            ));
        }
    }

    /// After a coordinator restart, its ledger holds `count` releases.
    pub fn check_coordinator_ledger(&mut self, count: usize) {
        if count < self.recorded.len() {
            self.fail(format!(
                "the coordinator's ledger lost releases: {count} after a restart, {} recorded",
                self.recorded.len()
            ));
        }
    }

    /// Requests announced more than once (interrupted, then run again): what crashes cost.
    pub fn rerun_requests(&self) -> usize {
        self.requests.values().filter(|j| j.len() > 1).count()
    }
}
