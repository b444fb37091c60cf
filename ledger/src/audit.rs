//! The audit, sans-IO: ledger bytes and verified certificate keys in, a per-node account or the
//! first inconsistent entry out.
//!
//! Order of checks (the first failure is reported): node ledgers in the order given (the CLI
//! sorts them by node name), each completely: torn tail, chain, signatures, budget rules,
//! recomputed rho; then the coordinator ledger: chain, signatures, policy, and for every
//! release its rho, its node count against `n_min`, the per-job cap, and every receipt, which
//! must be signed by its node and byte-for-byte equal to the debit in that node's own ledger.
//!
//! Time (see [`crate::clock`]): within each ledger no entry is dated more than the tolerance
//! before an earlier one, an untimed entry never follows a timed one, timed periods are UTC
//! months opened in increasing order and every timed debit falls in its period's month; these
//! are failures. An entry dated after the auditor's own time ([`AuditInput::now`]) is a
//! warning ([`AuditReport::warnings`]): the writer's clock ran ahead, and a period opened in
//! the future gets a fresh cap early.
//!
//! Besides the per-period accounts, the report gives what a period cap does not bound: each
//! node's spending over all periods ([`NodeSummary::cumulative`], checked against its lifetime
//! cap when one is recorded) and the loss of a person whose records sit at several nodes
//! ([`NodeSummary::person_rho`], [`AuditReport::person_rho`]; see [`person_rho_of_release`]).

use std::collections::HashMap;
use std::fmt;

use fedprof_privacy::Rho;
use fedprof_protocol::{PartyId, PartyName, Role};

use crate::clock::{CLOCK_TOLERANCE_SECS, Timestamp};
use crate::coordinator::{CoordinatorBody, CoordinatorBook};
use crate::encoding::{Digest, Writer};
use crate::entry::KeyRing;
use crate::file::{FileError, ledger_lines};
use crate::mechanism::ReleaseId;
use crate::node::{NodeBook, PeriodAccount};

/// One ledger file handed to the audit.
#[derive(Debug, Clone)]
pub struct LedgerText<'a> {
    /// How to name the file in messages (e.g. `ledgers/node-a.jsonl`).
    pub file: String,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// Everything the audit reads.
#[derive(Debug, Clone)]
pub struct AuditInput<'a> {
    /// Public keys from certificates verified against the federation CA, by party.
    pub keys: KeyRing,
    /// Each node's ledger.
    pub nodes: Vec<(PartyName, LedgerText<'a>)>,
    /// The coordinator and its ledger.
    pub coordinator: (PartyId, LedgerText<'a>),
    /// The federation's declared maximum number of nodes holding records of one person, `K`.
    /// `None`: the number of node ledgers in `nodes`, the conservative default (a person may
    /// be a customer at every node). A value recorded in a ledger, or given on the command
    /// line, is passed as `Some`. `Some(0)` is read as 1 (a person counted is at one node at
    /// least).
    pub max_holders_per_person: Option<u32>,
    /// The auditor's time: entries dated more than [`CLOCK_TOLERANCE_SECS`] after it are
    /// reported as warnings (`None`: not checked).
    pub now: Option<Timestamp>,
}

/// Something an auditor should look at that does not make the ledgers invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditWarning {
    /// The file.
    pub file: String,
    /// The entry's `seq`.
    pub seq: u64,
    /// What was seen.
    pub message: String,
}

impl fmt::Display for AuditWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: entry seq {}: {}", self.file, self.seq, self.message)
    }
}

/// The `K` an audit used, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxHolders {
    /// The most nodes one person's records sit at.
    pub value: u32,
    /// Whether it was declared (`AuditInput::max_holders_per_person` was `Some`) rather than
    /// defaulted to the number of nodes.
    pub declared: bool,
}

/// The first inconsistency found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// The file.
    pub file: String,
    /// 1-based line of the entry (0: the file as a whole).
    pub line: usize,
    /// Sequence number the entry holds at that position (`line - 1`), if it is about an entry.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(
                f,
                "{}: entry seq {seq} (line {}): {}",
                self.file, self.line, self.reason
            ),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for AuditFailure {}

/// The head of one verified ledger: compare `head` with the one seen at the previous audit to
/// detect a ledger cut short (the chain alone cannot show a truncation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    /// The file.
    pub file: String,
    /// Number of entries.
    pub entries: u64,
    /// SHA-256 of the last line (all zero when empty).
    pub head: Digest,
    /// The time of its first timed entry (`None`: no entry is timed, an old ledger).
    pub first_time: Option<Timestamp>,
    /// The latest time of its entries.
    pub last_time: Option<Timestamp>,
}

/// One node's verified account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    /// The node.
    pub node: PartyName,
    /// Its periods, oldest first (never empty: entry 0 opens one).
    pub periods: Vec<PeriodAccount>,
    /// Debits in its ledger.
    pub debits: u64,
    /// Debits that a published release used (the rest were paid for and never published:
    /// aborted rounds or crashes, counted as spent).
    pub released: u64,
    /// Rho debited over all periods: the exact sum of every debit in the ledger. This, not a
    /// period's figure, is the loss of a customer at this node alone over the ledger's life.
    pub cumulative: Rho,
    /// The lifetime cap in force at the end of the ledger, if one was recorded (every debit
    /// was checked against the cap in force when it was made).
    pub lifetime_cap: Option<Rho>,
    /// Loss over all periods, through this node's debits, of a person whose records sit at up
    /// to `K` nodes ([`AuditReport::max_holders`]): the sum over the node's debits of
    /// [`person_rho_of_release`]. Releases this node took no part in are not in it: see
    /// [`AuditReport::person_rho`] for the federation-wide figure.
    pub person_rho: Rho,
}

impl NodeSummary {
    /// The current (last) period.
    pub fn current(&self) -> Option<&PeriodAccount> {
        self.periods.last()
    }

    /// Rho left in the current period.
    pub fn remaining(&self) -> Rho {
        self.current().map_or_else(Rho::zero, |p| {
            // cap >= spent is a rule the audit checked for every debit.
            let left = p.cap.as_ratio() - p.spent.as_ratio().min(p.cap.as_ratio());
            Rho::from_ratio_exact(left)
        })
    }

    /// Rho left under the lifetime cap, if one is recorded (0 when a lowered cap is below what
    /// was already spent).
    pub fn lifetime_remaining(&self) -> Option<Rho> {
        self.lifetime_cap.as_ref().map(|cap| {
            let spent = self.cumulative.as_ratio().min(cap.as_ratio());
            Rho::from_ratio_exact(cap.as_ratio() - spent)
        })
    }
}

/// A successful audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Per node, in input order.
    pub nodes: Vec<NodeSummary>,
    /// Releases in the coordinator ledger.
    pub releases: u64,
    /// The head of every ledger, nodes first.
    pub ledgers: Vec<LedgerHead>,
    /// The `K` used for [`NodeSummary::person_rho`] and [`AuditReport::person_rho`].
    pub max_holders: MaxHolders,
    /// Loss over all periods of a person whose records sit at up to `K` of the audited nodes:
    /// the sum, over every release any node ledger debits, of [`person_rho_of_release`] with
    /// `n` the number of node ledgers debiting it and `rho` the largest of their debits.
    /// Counts releases paid for and never published too (a node's input may have left).
    pub person_rho: Rho,
    /// Loss over all periods of a person at one node: the largest [`NodeSummary::cumulative`].
    pub person_rho_one_holder: Rho,
    /// Entries dated after the auditor's time, in file order.
    pub warnings: Vec<AuditWarning>,
}

/// zCDP group privacy for one release: a person whose records sit at `holders` nodes, of which
/// `contributors` took part in a release costing `rho` per customer at one node, loses
/// `min(holders, contributors)^2 * rho` in it.
///
/// Why: the privacy unit of a release is a customer at one node, whose block changes that
/// node's input by at most the sensitivity `Delta` (L2). The person's blocks at the `m =
/// min(holders, contributors)` contributing nodes that hold them add up in the secure sum, so
/// the released sum moves by up to `m * Delta`; the same Gaussian noise then gives
/// `(m Delta)^2 / (2 sigma^2) = m^2 rho`. Losses of successive releases add (composition).
/// `holders` of 0 is read as 1.
pub fn person_rho_of_release(rho: &Rho, holders: u32, contributors: u32) -> Rho {
    let m = holders.clamp(1, contributors.max(1));
    fedprof_privacy::group_rho(rho, m)
}

/// (epsilon, delta)-DP implied by rho-zCDP, for people to read, with the tight
/// Canonne-Kamath-Steinke conversion: [`fedprof_privacy::epsilon_at_delta`], the one function
/// every fedprof report uses (checked against Google's dp-accounting). `delta` must be in
/// (0, 1); otherwise infinity (no guarantee is claimed).
pub fn epsilon_at_delta(rho: &Rho, delta: f64) -> f64 {
    fedprof_privacy::epsilon_at_delta(rho, delta)
}

/// The simple bound `rho + 2 sqrt(rho ln(1/delta))` (Bun and Steinke 2016, Proposition 1.3),
/// shown next to the tight one.
pub fn epsilon_simple_at_delta(rho: &Rho, delta: f64) -> f64 {
    let r = rho.to_f64();
    r + 2.0 * (r * (1.0 / delta).ln()).sqrt()
}

fn node_writer(name: &PartyName) -> Writer {
    Writer::new(PartyId {
        role: Role::Node,
        name: name.clone(),
    })
}

fn fail(file: &str, line: usize, reason: impl fmt::Display) -> AuditFailure {
    let seq = line.checked_sub(1).map(|s| s as u64);
    AuditFailure {
        file: file.to_owned(),
        line,
        seq,
        reason: reason.to_string(),
    }
}

fn lines<'a>(text: &LedgerText<'a>) -> Result<Vec<&'a str>, AuditFailure> {
    ledger_lines(std::path::Path::new(&text.file), text.bytes).map_err(|e| match e {
        FileError::TornTail { line, .. } => fail(
            &text.file,
            line,
            "incomplete last line (torn append); see docs/LEDGER.md, Recovery",
        ),
        FileError::NotText { line, .. } => fail(&text.file, line, "not UTF-8 text"),
        e @ (FileError::Io { .. } | FileError::Locked { .. }) => AuditFailure {
            file: text.file.clone(),
            line: 0,
            seq: None,
            reason: e.to_string(),
        },
    })
}

/// Runs the audit; see the module docs for what it checks, in which order.
pub fn verify(input: &AuditInput<'_>) -> Result<AuditReport, AuditFailure> {
    let mut books: HashMap<PartyName, (usize, NodeBook)> = HashMap::new();
    let mut ledgers = Vec::new();
    let mut warnings = Vec::new();
    for (index, (name, text)) in input.nodes.iter().enumerate() {
        let writer = node_writer(name);
        let whole = |reason: String| AuditFailure {
            file: text.file.clone(),
            line: 0,
            seq: None,
            reason,
        };
        let key = input.keys.get(&writer).map_err(|e| whole(e.to_string()))?;
        let mut book = NodeBook::new(writer).map_err(|e| whole(e.to_string()))?;
        let lines = lines(text)?;
        let mut first_time = None;
        for (i, line) in lines.iter().enumerate() {
            let entry = book
                .apply_line(line, key)
                .map_err(|e| fail(&text.file, i + 1, e))?;
            note_time(text, &entry, input.now, &mut first_time, &mut warnings);
        }
        if lines.is_empty() {
            return Err(whole(
                "ledger is empty: a node ledger starts with a budget entry".into(),
            ));
        }
        ledgers.push(head(text, book.chain(), lines.len(), first_time));
        books.insert(name.clone(), (index, book));
    }

    let (coordinator, text) = &input.coordinator;
    let whole = |reason: String| AuditFailure {
        file: text.file.clone(),
        line: 0,
        seq: None,
        reason,
    };
    let writer = Writer::new(coordinator.clone());
    let key = input.keys.get(&writer).map_err(|e| whole(e.to_string()))?;
    let mut book = CoordinatorBook::new(writer).map_err(|e| whole(e.to_string()))?;
    let mut released = vec![0u64; input.nodes.len()];
    let lines = lines(text)?;
    let mut first_time = None;
    for (i, line) in lines.iter().enumerate() {
        let entry = book
            .apply_line(line, key, &input.keys)
            .map_err(|e| fail(&text.file, i + 1, e))?;
        note_time(text, &entry, input.now, &mut first_time, &mut warnings);
        let CoordinatorBody::Release {
            release, receipts, ..
        } = entry.body()
        else {
            continue;
        };
        for receipt in receipts {
            let node = &receipt.writer().party().name;
            let Some((index, node_book)) = books.get(node) else {
                return Err(fail(
                    &text.file,
                    i + 1,
                    format!("node {node} contributed, but its ledger is missing"),
                ));
            };
            let Some(debit) = node_book.debit(release) else {
                let why =
                    format!("release {release} is not covered by a debit in node {node}'s ledger");
                return Err(fail(&text.file, i + 1, why));
            };
            if debit.line_digest != receipt.digest() {
                let why = format!(
                    "receipt of node {node} differs from its own ledger entry seq {}",
                    debit.seq
                );
                return Err(fail(&text.file, i + 1, why));
            }
            released[*index] += 1;
        }
    }
    if lines.is_empty() {
        return Err(whole(
            "ledger is empty: a coordinator ledger starts with a policy entry".into(),
        ));
    }
    ledgers.push(head(text, book.chain(), lines.len(), first_time));

    // K: the auditor's own value, else the federation's as its coordinator ledger records
    // it, else (conservatively) every node.
    let recorded = book.policy().and_then(|p| p.max_holders_per_person);
    let declared = input.max_holders_per_person.or(recorded);
    let max_holders = MaxHolders {
        value: declared
            .unwrap_or(u32::try_from(input.nodes.len()).unwrap_or(u32::MAX))
            .max(1),
        declared: declared.is_some(),
    };
    // Per release debited anywhere: how many node ledgers debit it, and the largest rho.
    let mut debited: HashMap<ReleaseId, (u32, Rho)> = HashMap::new();
    for (_, b) in books.values() {
        for (release, debit) in b.debits() {
            let e = debited.entry(*release).or_insert((0, Rho::zero()));
            e.0 += 1;
            if debit.rho > e.1 {
                e.1 = debit.rho.clone();
            }
        }
    }
    let k = max_holders.value;
    let person_rho: Rho = debited
        .values()
        .map(|(n, rho)| person_rho_of_release(rho, k, *n))
        .sum();
    let mut nodes = Vec::new();
    for (index, (name, _)) in input.nodes.iter().enumerate() {
        if let Some((_, b)) = books.get(name) {
            let person_rho = b
                .debits()
                .map(|(release, debit)| {
                    let n = debited.get(release).map_or(1, |d| d.0);
                    person_rho_of_release(&debit.rho, k, n)
                })
                .sum();
            nodes.push(NodeSummary {
                node: name.clone(),
                periods: b.periods().to_vec(),
                debits: b.debit_count() as u64,
                released: released[index],
                cumulative: b.cumulative().clone(),
                lifetime_cap: b.lifetime_cap().cloned(),
                person_rho,
            });
        }
    }
    let person_rho_one_holder = nodes
        .iter()
        .map(|n| n.cumulative.clone())
        .max()
        .unwrap_or_else(Rho::zero);
    Ok(AuditReport {
        nodes,
        releases: book.release_count() as u64,
        ledgers,
        max_holders,
        person_rho,
        person_rho_one_holder,
        warnings,
    })
}

fn head(
    text: &LedgerText<'_>,
    chain: &crate::entry::Chain,
    entries: usize,
    first_time: Option<Timestamp>,
) -> LedgerHead {
    LedgerHead {
        file: text.file.clone(),
        entries: entries as u64,
        head: *chain.last_digest(),
        first_time,
        last_time: chain.latest_time(),
    }
}

/// Keeps the first time of a ledger, and warns about an entry dated after the auditor's time.
fn note_time<B>(
    text: &LedgerText<'_>,
    entry: &crate::entry::Entry<B>,
    now: Option<Timestamp>,
    first: &mut Option<Timestamp>,
    warnings: &mut Vec<AuditWarning>,
) {
    let Some(t) = entry.time() else { return };
    first.get_or_insert(t);
    if let Some(now) = now
        && t.secs() > now.secs().saturating_add(CLOCK_TOLERANCE_SECS)
    {
        warnings.push(AuditWarning {
            file: text.file.clone(),
            seq: entry.seq(),
            message: format!(
                "dated {t}, after the audit's time {now}: the writer's clock ran ahead (a \
                 budget period opened early starts a fresh cap early)"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_bound_matches_the_formula() {
        let rho: Rho = "1/8".parse().unwrap();
        let tight = epsilon_at_delta(&rho, 1e-6);
        let eps = epsilon_simple_at_delta(&rho, 1e-6);
        assert!(
            tight > 0.0 && tight < eps,
            "the tight conversion is below the simple bound"
        );
        let want = 0.125 + 2.0 * (0.125f64 * (1e6f64).ln()).sqrt();
        assert!((eps - want).abs() < 1e-12);
        assert_eq!(epsilon_simple_at_delta(&Rho::zero(), 1e-6), 0.0);
        // Monotone in rho and in 1/delta.
        assert!(epsilon_simple_at_delta(&"1/4".parse().unwrap(), 1e-6) > eps);
        assert!(epsilon_simple_at_delta(&rho, 1e-9) > eps);
        assert!(epsilon_at_delta(&"1/4".parse().unwrap(), 1e-6) > tight);
    }

    #[test]
    fn group_privacy_is_quadratic_in_the_holders_that_contributed() {
        let half: Rho = "1/2".parse().unwrap();
        let r = |k, n| person_rho_of_release(&half, k, n).to_string();
        // A person at 3 contributing holders: 3^2 * 1/2.
        assert_eq!(r(3, 3), "9/2");
        assert_eq!(r(3, 10), "9/2");
        // Only holders that took part count.
        assert_eq!(r(3, 2), "2/1");
        assert_eq!(r(1, 5), "1/2");
        assert_eq!(r(0, 5), "1/2");
        let tight = epsilon_at_delta(&"9/2".parse().unwrap(), 1e-6);
        // Google's dp-accounting: 19.229510437656728 (privacy/tests/data).
        assert!((tight / 19.229510437656728 - 1.0).abs() < 1e-6, "{tight}");
    }
}
