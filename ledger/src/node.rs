//! A node's budget ledger, sans-IO: entry bodies, the rules every entry must keep, and the
//! running account ([`NodeBook`]) that both the node's store and the auditor build from lines.

use std::collections::HashMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedprof_privacy::Rho;
use fedprof_protocol::{Refusal, RefuseReason, Role};
use serde::{Deserialize, Serialize};

use crate::encoding::{Digest, Period, Writer};
use crate::entry::{Chain, Entry, EntryError};
use crate::mechanism::{MechanismRecord, ReleaseId};

/// What a node ledger entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[expect(
    clippy::large_enum_variant,
    reason = "entries are handled one at a time; boxing would only add an allocation per entry"
)]
pub enum NodeBody {
    /// Opens budget period `period` with cap `cap_rho`; later debits count against it until
    /// the next `budget` entry. Entry 0 of every node ledger is one; a period name is never
    /// reused within a ledger.
    Budget {
        /// The period's name, chosen by the node operator (e.g. `2026-11`).
        period: Period,
        /// Most rho the node spends in the period.
        cap_rho: Rho,
    },
    /// Caps the node's spending over all periods, from the start of the ledger: a later debit
    /// is refused if the sum of every debit in the ledger would exceed `cap_rho`. Once set, a
    /// lifetime cap stays in force across period openings; a later `lifetime_cap` entry may
    /// lower it (or restate it) but never raise it, so the cap an auditor reads is a bound on
    /// the whole ledger. Never entry 0 (that is a `budget` entry). A separate entry rather
    /// than a field of `budget`, so that ledgers written before it parse and verify unchanged,
    /// and so that a cap over all periods is not restated, possibly differently, per period.
    LifetimeCap {
        /// Most rho the node spends over all periods.
        cap_rho: Rho,
    },
    /// Pays for one release, before the node's input for it leaves.
    Debit {
        /// The release paid for.
        release: ReleaseId,
        /// The noise that protects it, with exact parameters.
        mechanism: MechanismRecord,
        /// Its cost; must equal `mechanism.rho()`.
        rho: Rho,
        /// [`crate::vector_digest`] of the noisy vector the node sends for it.
        vector_digest: Digest,
    },
}

/// A node entry.
pub type NodeEntry = Entry<NodeBody>;

/// Why a node refuses to debit (and so to contribute to) a release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The release would take the node past its cap for the current period.
    #[error(
        "budget exceeded in period {period}: spent rho {spent} of cap {cap}, release needs {requested} more"
    )]
    BudgetExceeded {
        /// The current period.
        period: Period,
        /// Rho already spent in it.
        spent: Rho,
        /// Rho the release would cost.
        requested: Rho,
        /// The period's cap.
        cap: Rho,
    },
    /// The release would take the node's spending over all periods past its lifetime cap.
    #[error(
        "lifetime cap exceeded: spent rho {spent} over all periods of lifetime cap {cap}, release needs {requested} more"
    )]
    LifetimeCapExceeded {
        /// Rho spent over all periods.
        spent: Rho,
        /// Rho the release (and its reserve) would cost.
        requested: Rho,
        /// The lifetime cap in force.
        cap: Rho,
    },
    /// A `lifetime_cap` entry would raise (or drop) the cap in force.
    #[error("lifetime cap {cap} is in force; it may be lowered, not raised to {requested}")]
    LifetimeCapRaised {
        /// The cap in force.
        cap: Rho,
        /// The higher cap asked for.
        requested: Rho,
    },
    /// The ledger has no budget period yet.
    #[error("no budget period is open: open one before contributing")]
    NoPeriod,
    /// A period of this name was opened before.
    #[error("period {0} was already opened in this ledger")]
    PeriodReused(Period),
    /// This release was already paid for, or its noise already drawn, under other parameters.
    #[error("release {0} was already prepared under a different mechanism; it is not redone")]
    ReleaseMismatch(ReleaseId),
}

impl BudgetError {
    /// The refusal a node sends the coordinator (no customer data, just the accounting).
    pub fn refusal(&self) -> Refusal {
        Refusal {
            reason: RefuseReason::BudgetExhausted,
            detail: self.to_string(),
        }
    }
}

/// Why a line breaks the rules of a node ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeRuleError {
    /// The chain or signature is broken.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// Entry 0 is not a `budget` entry, or the writer is not a node.
    #[error("a node ledger must be written by a node and start with a budget entry")]
    BadStart,
    /// A debit records a rho other than the one its mechanism gives.
    #[error("debit records rho {recorded}, but its mechanism gives {recomputed}")]
    RhoMismatch {
        /// The rho in the entry.
        recorded: Rho,
        /// `mechanism.rho()`.
        recomputed: Rho,
    },
    /// The same release is debited twice.
    #[error("release {release} is debited a second time (first at seq {first_seq})")]
    DoubleDebit {
        /// The release.
        release: ReleaseId,
        /// Where it was first debited.
        first_seq: u64,
    },
    /// The entry breaks a budget rule (over the cap, reused period, no period).
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// Spending in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodAccount {
    /// The period.
    pub period: Period,
    /// Its cap.
    pub cap: Rho,
    /// Rho debited in it.
    pub spent: Rho,
    /// Number of debits in it.
    pub debits: u64,
}

/// Where a debit is and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitInfo {
    /// Its entry's position.
    pub seq: u64,
    /// SHA-256 of its canonical line: equal digests mean byte-identical entries.
    pub line_digest: Digest,
    /// The vector digest it records.
    pub vector_digest: Digest,
    /// Its cost.
    pub rho: Rho,
}

/// A node ledger's running account: chain state, periods and debits so far.
#[derive(Debug, Clone)]
pub struct NodeBook {
    chain: Chain,
    periods: Vec<PeriodAccount>,
    debits: HashMap<ReleaseId, DebitInfo>,
    cumulative: Rho,
    lifetime_cap: Option<Rho>,
}

impl NodeBook {
    /// The empty ledger of `writer`, which must be a node.
    pub fn new(writer: Writer) -> Result<Self, NodeRuleError> {
        if writer.party().role != Role::Node {
            return Err(NodeRuleError::BadStart);
        }
        Ok(NodeBook {
            chain: Chain::new(writer),
            periods: Vec::new(),
            debits: HashMap::new(),
            cumulative: Rho::zero(),
            lifetime_cap: None,
        })
    }

    /// The chain state.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Every period so far, oldest first.
    pub fn periods(&self) -> &[PeriodAccount] {
        &self.periods
    }

    /// Rho debited over all periods (exact sum of every debit in the ledger).
    pub fn cumulative(&self) -> &Rho {
        &self.cumulative
    }

    /// The lifetime cap in force (the last `lifetime_cap` entry), if any.
    pub fn lifetime_cap(&self) -> Option<&Rho> {
        self.lifetime_cap.as_ref()
    }

    /// Every debit, by release (in no particular order).
    pub fn debits(&self) -> impl Iterator<Item = (&ReleaseId, &DebitInfo)> {
        self.debits.iter()
    }

    /// The debit of `release`, if any.
    pub fn debit(&self, release: &ReleaseId) -> Option<&DebitInfo> {
        self.debits.get(release)
    }

    /// Number of debits in the ledger.
    pub fn debit_count(&self) -> usize {
        self.debits.len()
    }

    /// Checks `line` as the next entry (chain, signature by `key`, rules) and applies it.
    pub fn apply_line(
        &mut self,
        line: &str,
        key: &VerifyingKey,
    ) -> Result<NodeEntry, NodeRuleError> {
        let mut chain = self.chain.clone();
        let entry: NodeEntry = chain.accept(line, key)?;
        self.check(&entry)?;
        self.chain = chain;
        self.record(&entry, Digest::of(line.as_bytes()));
        Ok(entry)
    }

    /// Signs the entry opening `period` with `cap`, without applying it.
    pub fn plan_budget(
        &self,
        period: Period,
        cap: Rho,
        key: &SigningKey,
    ) -> Result<NodeEntry, BudgetError> {
        if self.periods.iter().any(|p| p.period == period) {
            return Err(BudgetError::PeriodReused(period));
        }
        Ok(self.chain.sign_next(
            NodeBody::Budget {
                period,
                cap_rho: cap,
            },
            key,
        ))
    }

    /// Signs an entry setting the lifetime cap (over all periods) to `cap`, without applying
    /// it. Refused if a lower cap is in force (a cap is lowered or restated, never raised) or
    /// if no period is open yet (entry 0 opens a period). A cap below what was already spent
    /// is allowed: it refuses every later debit.
    pub fn plan_lifetime_cap(&self, cap: Rho, key: &SigningKey) -> Result<NodeEntry, BudgetError> {
        self.check_lifetime_cap(&cap)?;
        Ok(self
            .chain
            .sign_next(NodeBody::LifetimeCap { cap_rho: cap }, key))
    }

    fn check_lifetime_cap(&self, cap: &Rho) -> Result<(), BudgetError> {
        if self.periods.is_empty() {
            return Err(BudgetError::NoPeriod);
        }
        match &self.lifetime_cap {
            Some(current) if cap > current => Err(BudgetError::LifetimeCapRaised {
                cap: current.clone(),
                requested: cap.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses `requested` more rho if it would take the spending over all periods past the
    /// lifetime cap in force.
    fn check_lifetime(&self, requested: &Rho) -> Result<(), BudgetError> {
        match &self.lifetime_cap {
            Some(cap) if &(&self.cumulative + requested) > cap => {
                Err(BudgetError::LifetimeCapExceeded {
                    spent: self.cumulative.clone(),
                    requested: requested.clone(),
                    cap: cap.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks that `release` can be paid for under `mechanism` (not yet debited, within the
    /// current period's cap and the lifetime cap, if one is set), and returns its cost. Call
    /// before producing anything.
    pub fn check_debit(
        &self,
        release: &ReleaseId,
        mechanism: &MechanismRecord,
    ) -> Result<Rho, BudgetError> {
        if self.debits.contains_key(release) {
            return Err(BudgetError::ReleaseMismatch(*release));
        }
        let rho = mechanism.rho();
        let current = self.periods.last().ok_or(BudgetError::NoPeriod)?;
        if &current.spent + &rho > current.cap {
            return Err(BudgetError::BudgetExceeded {
                period: current.period.clone(),
                spent: current.spent.clone(),
                requested: rho,
                cap: current.cap.clone(),
            });
        }
        self.check_lifetime(&rho)?;
        Ok(rho)
    }

    /// Checks that the current period (and the lifetime cap, if one is set) can pay `rho` now
    /// and `reserve` later (the rest of the job the release belongs to), so that a job is
    /// refused before its first release rather than when the budget runs out half-way.
    pub fn check_headroom(&self, rho: &Rho, reserve: &Rho) -> Result<(), BudgetError> {
        let current = self.periods.last().ok_or(BudgetError::NoPeriod)?;
        let requested = rho + reserve;
        if &current.spent + &requested > current.cap {
            return Err(BudgetError::BudgetExceeded {
                period: current.period.clone(),
                spent: current.spent.clone(),
                requested,
                cap: current.cap.clone(),
            });
        }
        self.check_lifetime(&requested)
    }

    /// Signs the debit of `release`, without applying it.
    pub fn plan_debit(
        &self,
        release: ReleaseId,
        mechanism: MechanismRecord,
        vector_digest: Digest,
        key: &SigningKey,
    ) -> Result<NodeEntry, BudgetError> {
        let rho = self.check_debit(&release, &mechanism)?;
        Ok(self.chain.sign_next(
            NodeBody::Debit {
                release,
                mechanism,
                rho,
                vector_digest,
            },
            key,
        ))
    }

    /// Applies an entry this node signed itself (from `plan_*`) once its line is durable.
    pub fn commit(&mut self, entry: &NodeEntry) -> Result<(), NodeRuleError> {
        if entry.seq() != self.chain.next_seq() || entry.prev() != self.chain.last_digest() {
            return Err(EntryError::Seq {
                expected: self.chain.next_seq(),
                found: entry.seq(),
            }
            .into());
        }
        self.check(entry)?;
        let digest = entry.digest();
        self.chain.advance(digest);
        self.record(entry, digest);
        Ok(())
    }

    fn check(&self, entry: &NodeEntry) -> Result<(), NodeRuleError> {
        match entry.body() {
            NodeBody::Budget { period, .. } => {
                if self.periods.iter().any(|p| &p.period == period) {
                    return Err(BudgetError::PeriodReused(period.clone()).into());
                }
            }
            NodeBody::LifetimeCap { cap_rho } => {
                if entry.seq() == 0 {
                    return Err(NodeRuleError::BadStart);
                }
                self.check_lifetime_cap(cap_rho)?;
            }
            NodeBody::Debit {
                release,
                mechanism,
                rho,
                ..
            } => {
                if entry.seq() == 0 {
                    return Err(NodeRuleError::BadStart);
                }
                if let Some(first) = self.debits.get(release) {
                    return Err(NodeRuleError::DoubleDebit {
                        release: *release,
                        first_seq: first.seq,
                    });
                }
                let recomputed = mechanism.rho();
                if &recomputed != rho {
                    return Err(NodeRuleError::RhoMismatch {
                        recorded: rho.clone(),
                        recomputed,
                    });
                }
                self.check_debit(release, mechanism)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, entry: &NodeEntry, line_digest: Digest) {
        match entry.body() {
            NodeBody::Budget { period, cap_rho } => self.periods.push(PeriodAccount {
                period: period.clone(),
                cap: cap_rho.clone(),
                spent: Rho::zero(),
                debits: 0,
            }),
            NodeBody::LifetimeCap { cap_rho } => self.lifetime_cap = Some(cap_rho.clone()),
            NodeBody::Debit {
                release,
                rho,
                vector_digest,
                ..
            } => {
                if let Some(current) = self.periods.last_mut() {
                    current.spent = &current.spent + rho;
                    current.debits += 1;
                }
                self.cumulative = &self.cumulative + rho;
                let info = DebitInfo {
                    seq: entry.seq(),
                    line_digest,
                    vector_digest: *vector_digest,
                    rho: rho.clone(),
                };
                self.debits.insert(*release, info);
            }
        }
    }
}

#[cfg(test)]
mod tests;
