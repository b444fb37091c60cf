//! The coordinator's release ledger, sans-IO: what it records per release and the rules each
//! entry keeps, checked by the coordinator's store before writing and by the auditor after.

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedprof_privacy::Rho;
use fedprof_protocol::{JobId, PartyId, PartyName, Role};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::encoding::{Digest, Label, Writer};
use crate::entry::{Chain, Entry, EntryError, KeyRing};
use crate::mechanism::{MechanismRecord, ReleaseId};
use crate::node::{NodeBody, NodeEntry};

/// Federation policy: limits the coordinator applies to every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Most rho all releases of one job may cost together.
    pub per_job_cap_rho: Rho,
    /// Published cells counting fewer than this many customers are suppressed.
    pub min_cell_size: u64,
    /// The federation's declared maximum number of holders (nodes) one person may be a
    /// customer of: the audit and reports print epsilon for a person at that many holders
    /// (group privacy: `K^2 rho`). Absent in older ledgers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_holders_per_person: Option<u32>,
}

/// What a coordinator ledger entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[expect(
    clippy::large_enum_variant,
    reason = "entries are handled one at a time; boxing would only add an allocation per entry"
)]
pub enum CoordinatorBody {
    /// Sets the policy for the releases after it. Entry 0 is one.
    Policy(Policy),
    /// One published release and what paid for it.
    Release {
        /// The release.
        release: ReleaseId,
        /// The job kind, e.g. `transaction-totals`.
        job_kind: Label,
        /// The mechanism every contributing node debited.
        mechanism: MechanismRecord,
        /// Its cost per node; equals `mechanism.rho()`.
        rho: Rho,
        /// The contributing nodes, in the order of `receipts`.
        nodes: Vec<PartyName>,
        /// Each contributing node's signed debit entry, exactly as in its own ledger.
        receipts: Vec<NodeEntry>,
        /// SHA-256 of the published result's bytes.
        published_digest: Digest,
    },
}

/// A coordinator entry.
pub type CoordinatorEntry = Entry<CoordinatorBody>;

/// What the coordinator asks its ledger to record before publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// The release.
    pub release: ReleaseId,
    /// The job kind.
    pub job_kind: Label,
    /// The mechanism the round used.
    pub mechanism: MechanismRecord,
    /// The receipts of the nodes whose inputs were summed.
    pub receipts: Vec<NodeEntry>,
    /// SHA-256 of the bytes to be published.
    pub published_digest: Digest,
}

/// Why a node receipt does not pay for the release it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt is signed by another party than the node it is listed for.
    #[error("receipt {index} is written by {found}, but the release lists node {expected}")]
    WrongNode {
        /// Position in `receipts`.
        index: usize,
        /// The node listed.
        expected: PartyName,
        /// The receipt's writer.
        found: Writer,
    },
    /// The receipt is not a debit.
    #[error("receipt of node {0} is not a debit entry")]
    NotDebit(PartyName),
    /// The receipt pays for another release, mechanism or rho.
    #[error("receipt of node {node} differs from the release in its {field}")]
    Differs {
        /// The node.
        node: PartyName,
        /// `release`, `mechanism` or `rho`.
        field: &'static str,
    },
    /// The receipt's signature does not verify, or the node's key is unknown.
    #[error("receipt of node {node}: {error}")]
    Entry {
        /// The node.
        node: PartyName,
        /// What is wrong.
        error: EntryError,
    },
}

/// Why a coordinator entry breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorRuleError {
    /// The chain or signature is broken.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// Entry 0 is not a policy, or the writer is not a coordinator.
    #[error("a coordinator ledger must be written by a coordinator and start with a policy entry")]
    BadStart,
    /// The recorded rho is not the mechanism's.
    #[error("release records rho {recorded}, but its mechanism gives {recomputed}")]
    RhoMismatch {
        /// The rho in the entry.
        recorded: Rho,
        /// `mechanism.rho()`.
        recomputed: Rho,
    },
    /// The release was recorded before.
    #[error("release {release} was already recorded at seq {first_seq}")]
    DuplicateRelease {
        /// The release.
        release: ReleaseId,
        /// Where it was first recorded.
        first_seq: u64,
    },
    /// Fewer nodes contributed than the mechanism's `n_min`: the noise is weaker than accounted.
    #[error("release sums {nodes} node(s), but its mechanism assumes at least {n_min}")]
    TooFewNodes {
        /// Contributing nodes.
        nodes: usize,
        /// The mechanism's minimum.
        n_min: u32,
    },
    /// A node is listed twice, or `nodes` and `receipts` differ in length.
    #[error("nodes and receipts do not match one to one ({0})")]
    NodeList(String),
    /// A receipt does not pay for the release.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// The job's releases together exceed the per-job cap (or the profiling job's declared
    /// total, when that is lower).
    #[error("job {job} would spend rho {total} in total, over the per-job cap {cap}")]
    JobCap {
        /// The job (a profiling job's id, or a legacy release's job number).
        job: String,
        /// Its total with this release.
        total: Rho,
        /// The policy's cap.
        cap: Rho,
    },
}

/// What the per-job cap counts by: the profiling job a release names, or (legacy records
/// without one) the release's job number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum JobKey {
    Profile(fedprof_protocol::ProfileId),
    Legacy(JobId),
}

impl JobKey {
    fn of(release: &ReleaseId, mechanism: &MechanismRecord) -> JobKey {
        mechanism
            .profile()
            .map_or(JobKey::Legacy(release.job), |t| JobKey::Profile(t.id))
    }
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobKey::Profile(id) => write!(f, "profiling job {id}"),
            JobKey::Legacy(job) => write!(f, "{job}"),
        }
    }
}

/// A coordinator ledger's running state.
#[derive(Debug, Clone)]
pub struct CoordinatorBook {
    chain: Chain,
    policy: Option<Policy>,
    releases: HashMap<ReleaseId, u64>,
    job_spent: HashMap<JobKey, Rho>,
    /// Per node, the latest receipt recorded (its seq in the node's ledger and the digest of
    /// its line): what the coordinator tells the node so that a node restored from an old
    /// backup notices (review finding L9).
    last_receipts: HashMap<PartyName, (u64, Digest)>,
}

impl CoordinatorBook {
    /// The empty ledger of `writer`, which must be a coordinator.
    pub fn new(writer: Writer) -> Result<Self, CoordinatorRuleError> {
        if writer.party().role != Role::Coordinator {
            return Err(CoordinatorRuleError::BadStart);
        }
        Ok(CoordinatorBook {
            chain: Chain::new(writer),
            policy: None,
            releases: HashMap::new(),
            job_spent: HashMap::new(),
            last_receipts: HashMap::new(),
        })
    }

    /// The chain state.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The policy in force.
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// Number of releases recorded.
    pub fn release_count(&self) -> usize {
        self.releases.len()
    }

    /// The highest job number of a recorded release (0 when none): a restarted coordinator
    /// numbers its jobs after it even without its job journal.
    pub fn last_job(&self) -> u64 {
        self.releases.keys().map(|r| r.job.0).max().unwrap_or(0)
    }

    /// The latest receipt of `node` this ledger recorded (highest seq in the node's own
    /// ledger): a node whose ledger does not hold that very entry was rolled back (see
    /// [`crate::NodeBook::check_receipt_head`]).
    pub fn last_receipt(&self, node: &PartyName) -> Option<fedprof_protocol::ReceiptHead> {
        self.last_receipts
            .get(node)
            .map(|(seq, digest)| receipt_head(*seq, digest))
    }

    /// Every node's latest recorded receipt (see [`CoordinatorBook::last_receipt`]).
    pub fn last_receipts(
        &self,
    ) -> impl Iterator<Item = (&PartyName, fedprof_protocol::ReceiptHead)> + '_ {
        self.last_receipts
            .iter()
            .map(|(node, (seq, digest))| (node, receipt_head(*seq, digest)))
    }

    /// Checks `line` as the next entry (chain, signature by `key`, receipts against `nodes`,
    /// rules) and applies it.
    pub fn apply_line(
        &mut self,
        line: &str,
        key: &VerifyingKey,
        nodes: &KeyRing,
    ) -> Result<CoordinatorEntry, CoordinatorRuleError> {
        let mut chain = self.chain.clone();
        let entry: CoordinatorEntry = chain.accept(line, key)?;
        self.check(&entry, nodes)?;
        self.chain = chain;
        self.record(&entry);
        Ok(entry)
    }

    /// Signs a policy entry dated `now`, without applying it.
    pub fn plan_policy(
        &self,
        policy: Policy,
        now: Timestamp,
        key: &SigningKey,
    ) -> Result<CoordinatorEntry, CoordinatorRuleError> {
        Ok(self
            .chain
            .sign_next(CoordinatorBody::Policy(policy), now, key)?)
    }

    /// Checks `record` against the rules and signs its entry, without applying it.
    pub fn plan_release(
        &self,
        record: ReleaseRecord,
        now: Timestamp,
        key: &SigningKey,
        nodes: &KeyRing,
    ) -> Result<CoordinatorEntry, CoordinatorRuleError> {
        let names = record
            .receipts
            .iter()
            .map(|r| r.writer().party().name.clone())
            .collect();
        let body = CoordinatorBody::Release {
            release: record.release,
            job_kind: record.job_kind,
            rho: record.mechanism.rho(),
            mechanism: record.mechanism,
            nodes: names,
            receipts: record.receipts,
            published_digest: record.published_digest,
        };
        let entry = self.chain.sign_next(body, now, key)?;
        self.check(&entry, nodes)?;
        Ok(entry)
    }

    /// Applies an entry this coordinator signed (from `plan_*`) once its line is durable.
    pub fn commit(
        &mut self,
        entry: &CoordinatorEntry,
        nodes: &KeyRing,
    ) -> Result<(), CoordinatorRuleError> {
        if entry.seq() != self.chain.next_seq() || entry.prev() != self.chain.last_digest() {
            return Err(EntryError::Seq {
                expected: self.chain.next_seq(),
                found: entry.seq(),
            }
            .into());
        }
        self.chain.check_time(entry.time())?;
        self.check(entry, nodes)?;
        self.chain.advance(entry.digest(), entry.time());
        self.record(entry);
        Ok(())
    }

    fn check(&self, entry: &CoordinatorEntry, keys: &KeyRing) -> Result<(), CoordinatorRuleError> {
        let CoordinatorBody::Release {
            release,
            mechanism,
            rho,
            nodes,
            receipts,
            ..
        } = entry.body()
        else {
            return Ok(());
        };
        let policy = self.policy.as_ref().ok_or(CoordinatorRuleError::BadStart)?;
        if let Some(first_seq) = self.releases.get(release) {
            return Err(CoordinatorRuleError::DuplicateRelease {
                release: *release,
                first_seq: *first_seq,
            });
        }
        let recomputed = mechanism.rho();
        if &recomputed != rho {
            return Err(CoordinatorRuleError::RhoMismatch {
                recorded: rho.clone(),
                recomputed,
            });
        }
        if nodes.len() != receipts.len() {
            let why = format!("{} nodes, {} receipts", nodes.len(), receipts.len());
            return Err(CoordinatorRuleError::NodeList(why));
        }
        if nodes.iter().collect::<BTreeSet<_>>().len() != nodes.len() {
            return Err(CoordinatorRuleError::NodeList(
                "a node is listed twice".into(),
            ));
        }
        if (nodes.len() as u64) < u64::from(mechanism.n_min()) {
            return Err(CoordinatorRuleError::TooFewNodes {
                nodes: nodes.len(),
                n_min: mechanism.n_min(),
            });
        }
        for (index, (node, receipt)) in nodes.iter().zip(receipts).enumerate() {
            check_receipt(index, node, receipt, release, mechanism, rho, keys)?;
        }
        // A profiling job is one unit for the cap (review finding M1): its releases share its
        // id, and its declared total binds when below the policy's per-job cap.
        let key = JobKey::of(release, mechanism);
        let total = self
            .job_spent
            .get(&key)
            .map_or_else(|| rho.clone(), |s| s + rho);
        let declared = mechanism
            .profile()
            .and_then(|t| Rho::from_ratio(t.cap.numer, t.cap.denom).ok());
        let cap = match declared {
            Some(d) if d < policy.per_job_cap_rho => d,
            _ => policy.per_job_cap_rho.clone(),
        };
        if total > cap {
            return Err(CoordinatorRuleError::JobCap {
                job: key.to_string(),
                total,
                cap,
            });
        }
        Ok(())
    }

    fn record(&mut self, entry: &CoordinatorEntry) {
        match entry.body() {
            CoordinatorBody::Policy(p) => self.policy = Some(p.clone()),
            CoordinatorBody::Release {
                release,
                rho,
                mechanism,
                receipts,
                ..
            } => {
                for r in receipts {
                    let node = r.writer().party().name.clone();
                    let head = (r.seq(), r.digest());
                    let last = self.last_receipts.entry(node).or_insert(head);
                    if head.0 > last.0 {
                        *last = head;
                    }
                }
                self.releases.insert(*release, entry.seq());
                let key = JobKey::of(release, mechanism);
                let spent = self.job_spent.entry(key).or_insert_with(Rho::zero);
                *spent = &*spent + rho;
            }
        }
    }
}

/// The wire form of a receipt's place in its node's ledger.
pub fn receipt_head(seq: u64, digest: &Digest) -> fedprof_protocol::ReceiptHead {
    fedprof_protocol::ReceiptHead {
        seq,
        digest: *digest.as_bytes(),
    }
}

fn check_receipt(
    index: usize,
    node: &PartyName,
    receipt: &NodeEntry,
    release: &ReleaseId,
    mechanism: &MechanismRecord,
    rho: &Rho,
    keys: &KeyRing,
) -> Result<(), ReceiptError> {
    let expected = check_debit(index, node, receipt, release, mechanism, rho)?;
    let entry_error = |error| ReceiptError::Entry {
        node: node.clone(),
        error,
    };
    receipt
        .verify_signature(keys.get(&expected).map_err(entry_error)?)
        .map_err(entry_error)
}

/// Checks that `receipt` is `node`'s debit of exactly `release`, `mechanism` and `rho` (not its
/// signature); returns the writer it must be signed by.
fn check_debit(
    index: usize,
    node: &PartyName,
    receipt: &NodeEntry,
    release: &ReleaseId,
    mechanism: &MechanismRecord,
    rho: &Rho,
) -> Result<Writer, ReceiptError> {
    let expected = Writer::new(PartyId {
        role: Role::Node,
        name: node.clone(),
    });
    if receipt.writer() != &expected {
        return Err(ReceiptError::WrongNode {
            index,
            expected: node.clone(),
            found: receipt.writer().clone(),
        });
    }
    let NodeBody::Debit {
        release: r,
        mechanism: m,
        rho: p,
        ..
    } = receipt.body()
    else {
        return Err(ReceiptError::NotDebit(node.clone()));
    };
    let differs = |field| ReceiptError::Differs {
        node: node.clone(),
        field,
    };
    if r != release {
        return Err(differs("release"));
    }
    if m != mechanism {
        return Err(differs("mechanism"));
    }
    if p != rho {
        return Err(differs("rho"));
    }
    Ok(expected)
}

/// What every contributor's debit receipt of one release must say: the coordinator screens
/// each receipt with it as it arrives (before that node's masked input is accepted), so one
/// bad receipt drops its sender from the round instead of failing the release when it is
/// recorded, after every node paid (review finding M2). Recording checks the same rules again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedDebit {
    release: ReleaseId,
    mechanism: MechanismRecord,
    rho: Rho,
}

impl ExpectedDebit {
    /// The debit of `release` under `mechanism` (at its rho).
    pub fn new(release: ReleaseId, mechanism: MechanismRecord) -> Self {
        let rho = mechanism.rho();
        ExpectedDebit {
            release,
            mechanism,
            rho,
        }
    }

    /// The release.
    pub fn release(&self) -> &ReleaseId {
        &self.release
    }

    /// The mechanism.
    pub fn mechanism(&self) -> &MechanismRecord {
        &self.mechanism
    }

    /// Checks `receipt` as `node`'s debit of this release: written by `node`, a debit of this
    /// release, mechanism and rho, and signed with `public_key` (the Ed25519 key of the
    /// certificate `node` authenticated with).
    pub fn screen(
        &self,
        node: &PartyName,
        receipt: &NodeEntry,
        public_key: &[u8; 32],
    ) -> Result<(), ReceiptError> {
        let writer = check_debit(0, node, receipt, &self.release, &self.mechanism, &self.rho)?;
        let entry_error = |error| ReceiptError::Entry {
            node: node.clone(),
            error,
        };
        let key = VerifyingKey::from_bytes(public_key)
            .map_err(|_| entry_error(EntryError::UnknownWriter(writer)))?;
        receipt.verify_signature(&key).map_err(entry_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Period;
    use crate::testutil::{NOW, coordinator, gaussian, key, node, release, ring, writer};

    fn receipt(name: &str, r: ReleaseId, m: &MechanismRecord) -> NodeEntry {
        let k = key(name);
        let mut b = crate::node::NodeBook::new(writer(node(name))).unwrap();
        let open = b
            .plan_budget(
                Period::new("2026-12").unwrap(),
                "10".parse().unwrap(),
                NOW,
                &k,
            )
            .unwrap();
        b.commit(&open).unwrap();
        b.plan_debit(r, m.clone(), Digest::ZERO, NOW, &k).unwrap()
    }

    fn record(r: ReleaseId, nodes: &[&str], m: &MechanismRecord) -> ReleaseRecord {
        ReleaseRecord {
            release: r,
            job_kind: Label::new("t").unwrap(),
            mechanism: m.clone(),
            receipts: nodes.iter().map(|n| receipt(n, r, m)).collect(),
            published_digest: Digest::ZERO,
        }
    }

    #[test]
    fn releases_keep_policy_node_count_and_uniqueness() {
        let (ck, ring) = (key("coordinator"), ring(&["a", "b", "c"]));
        let mut book = CoordinatorBook::new(writer(coordinator())).unwrap();
        let m = gaussian(4, 2, 1); // rho 1/8
        let no_policy = book.plan_release(record(release(1, 0), &["a", "b"], &m), NOW, &ck, &ring);
        assert!(
            matches!(no_policy, Err(CoordinatorRuleError::BadStart)),
            "{no_policy:?}"
        );
        let p = book
            .plan_policy(
                Policy {
                    per_job_cap_rho: "1/4".parse().unwrap(),
                    min_cell_size: 5,
                    max_holders_per_person: None,
                },
                NOW,
                &ck,
            )
            .unwrap();
        book.commit(&p, &ring).unwrap();
        for round in 0..2 {
            let e = book
                .plan_release(record(release(1, round), &["a", "b"], &m), NOW, &ck, &ring)
                .unwrap();
            book.commit(&e, &ring).unwrap();
        }
        let over = book.plan_release(record(release(1, 2), &["a", "b"], &m), NOW, &ck, &ring);
        assert!(
            matches!(over, Err(CoordinatorRuleError::JobCap { .. })),
            "{over:?}"
        );
        let again = book.plan_release(record(release(1, 0), &["a", "c"], &m), NOW, &ck, &ring);
        assert!(
            matches!(
                again,
                Err(CoordinatorRuleError::DuplicateRelease { first_seq: 1, .. })
            ),
            "{again:?}"
        );
        let few = book.plan_release(record(release(2, 0), &["a"], &m), NOW, &ck, &ring);
        assert!(
            matches!(
                few,
                Err(CoordinatorRuleError::TooFewNodes { nodes: 1, n_min: 2 })
            ),
            "{few:?}"
        );
        let twice = book.plan_release(record(release(2, 0), &["a", "a"], &m), NOW, &ck, &ring);
        assert!(
            matches!(twice, Err(CoordinatorRuleError::NodeList(_))),
            "{twice:?}"
        );
        // A receipt for another mechanism does not pay for this release.
        let mut r = record(release(2, 0), &["a", "b"], &m);
        r.receipts[1] = receipt("b", release(2, 0), &gaussian(2, 2, 1));
        let differs = book.plan_release(r, NOW, &ck, &ring);
        assert!(
            matches!(
                differs,
                Err(CoordinatorRuleError::Receipt(ReceiptError::Differs { .. }))
            ),
            "{differs:?}"
        );
        assert_eq!(book.release_count(), 2);
    }

    /// M1: releases of one profiling job share its cap whatever their job numbers, and the
    /// job's declared total binds below the policy's cap.
    #[test]
    fn a_profiling_job_is_one_unit_for_the_cap() {
        use fedprof_protocol::query::{FeatureQuery, QueryPart, Segmenter};
        use fedprof_protocol::{Fraction, JobSpec, ProfileId, ProfileTag};
        let (ck, ring) = (key("coordinator"), ring(&["a", "b"]));
        let mut book = CoordinatorBook::new(writer(coordinator())).unwrap();
        let p = book
            .plan_policy(
                Policy {
                    per_job_cap_rho: "1".parse().unwrap(),
                    min_cell_size: 5,
                    max_holders_per_person: None,
                },
                NOW,
                &ck,
            )
            .unwrap();
        book.commit(&p, &ring).unwrap();
        let query = FeatureQuery {
            label: "p/count".into(),
            as_of: "2026-06-30".into(),
            scale: 1000,
            segmenter: Segmenter::All,
            parts: vec![QueryPart::Count],
            budget: Fraction {
                numer: 1,
                denom: 10,
            },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        };
        let cap = "1/10".parse().unwrap();
        let params = fedprof_privacy::query::plan_query(&cap, &query, 2, 1).unwrap();
        let tag = ProfileTag {
            id: ProfileId([4; 16]),
            analyst: PartyName::new("risk-team").unwrap(),
            // Declared 3/20: one release of about 1/10 fits, a second does not.
            cap: Fraction {
                numer: 3,
                denom: 20,
            },
        };
        let spec = JobSpec::Features(Box::new(query));
        let m = MechanismRecord::for_release(&spec, &params, &tag).unwrap();
        let e = book
            .plan_release(record(release(1, 0), &["a", "b"], &m), NOW, &ck, &ring)
            .unwrap();
        book.commit(&e, &ring).unwrap();
        // Another job number, the same profiling job: over its declared total.
        let over = book.plan_release(record(release(2, 0), &["a", "b"], &m), NOW, &ck, &ring);
        assert!(
            matches!(&over, Err(CoordinatorRuleError::JobCap { job, .. }) if job.contains("04040404")),
            "{over:?}"
        );
    }
}
