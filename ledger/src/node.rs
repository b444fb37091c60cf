//! A node's budget ledger, sans-IO: entry bodies, the rules every entry must keep, and the
//! running account ([`NodeBook`]) that both the node's store and the auditor build from lines.

use std::collections::HashMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedprof_privacy::Rho;
use fedprof_protocol::{Refusal, RefuseReason, Role};
use serde::{Deserialize, Serialize};

use crate::clock::{CLOCK_TOLERANCE_SECS, Timestamp};
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
    /// reused within a ledger. A timed entry opens a UTC month `YYYY-MM`, later than every
    /// month opened before, and is dated within it.
    Budget {
        /// The period: the UTC month (e.g. `2026-11`; other names only in untimed entries).
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
    /// A period is opened before (or at) a later one already open: periods open in strictly
    /// increasing order, so a clock moved back cannot reopen a month or spend an old one's cap.
    #[error(
        "budget period {requested} cannot be opened after period {latest}: periods open in \
         increasing order. Was the clock moved back? Correct it; the node spends nothing until \
         the clock reaches a month after {latest} (docs/LEDGER.md, \"Time and periods\")"
    )]
    PeriodOrder {
        /// The latest period opened.
        latest: Period,
        /// The one asked for.
        requested: Period,
    },
    /// A period that is not a UTC month `YYYY-MM` (only untimed, old entries may hold one).
    #[error("budget period {0:?} is not a UTC month YYYY-MM")]
    PeriodNotAMonth(Period),
    /// An entry of a period is dated outside the period's month (beyond the tolerance).
    #[error(
        "the clock reads {time}, outside budget period {period}: a period is opened, and \
         spent, during its own month only (open the clock's month first)"
    )]
    OutsidePeriod {
        /// The period.
        period: Period,
        /// The entry's time.
        time: Timestamp,
    },
    /// The time is not after the ledger's latest entry (see [`EntryError::TimeBackwards`]).
    #[error("the node's clock: {0}")]
    Clock(EntryError),
    /// This release was already paid for, or its noise already drawn, under other parameters.
    #[error("release {0} was already prepared under a different mechanism; it is not redone")]
    ReleaseMismatch(ReleaseId),
}

impl BudgetError {
    /// The refusal a node sends the coordinator (no customer data, just the accounting).
    pub fn refusal(&self) -> Refusal {
        let reason = match self {
            BudgetError::BudgetExceeded { .. } | BudgetError::LifetimeCapExceeded { .. } => {
                RefuseReason::BudgetExhausted
            }
            _ => RefuseReason::Policy,
        };
        Refusal {
            reason,
            detail: self.to_string(),
        }
    }
}

/// The coordinator recorded a receipt of this node that the node's own ledger does not hold:
/// the node's state was restored from an older copy (a backup, a snapshot), which would make
/// it forget the budget it spent since (review finding L9). The node takes part in nothing
/// until its operator puts the newest ledger back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this node's ledger is older than the coordinator's record of it: the coordinator recorded \
     this node's receipt at seq {seq} (entry {digest}), but {found}. The state directory was \
     probably restored from an older copy, which would reset the budget spent since. Stop the \
     node and restore its newest ledger.jsonl and vectors/; if that copy is lost, ask the \
     auditor: the coordinator's ledger holds this node's receipts (docs/LEDGER.md, \
     \"Rollback protection\")"
)]
pub struct RollbackError {
    /// The receipt's `seq` in the coordinator's record.
    pub seq: u64,
    /// Its entry digest in the coordinator's record.
    pub digest: Digest,
    /// What this node's ledger holds instead, in words (its head, or another entry there).
    pub found: String,
}

impl RollbackError {
    /// The refusal a node sends the coordinator (both heads, no customer data).
    pub fn refusal(&self) -> Refusal {
        Refusal {
            reason: RefuseReason::RolledBack,
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

    /// Checks that this ledger holds the receipt the coordinator last recorded from this node
    /// (`head`, from the job announcement; `None`: the coordinator recorded none): the entry
    /// at `head.seq` must be a debit whose line hashes to `head.digest`. A ledger that ends
    /// before it, or holds another entry there, was rolled back or replaced.
    pub fn check_receipt_head(
        &self,
        head: Option<&fedprof_protocol::ReceiptHead>,
    ) -> Result<(), RollbackError> {
        let Some(head) = head else {
            return Ok(());
        };
        let digest = Digest::from_bytes(head.digest);
        let held = self.debits.values().find(|d| d.seq == head.seq);
        let found = match held {
            Some(d) if d.line_digest == digest => return Ok(()),
            Some(d) => format!(
                "its entry seq {} is another debit ({})",
                head.seq, d.line_digest
            ),
            None if head.seq < self.chain.next_seq() => {
                format!("its entry seq {} is not that debit", head.seq)
            }
            None => match self.chain.next_seq().checked_sub(1) {
                Some(last) => format!(
                    "this node's ledger ends at seq {last} (entry {})",
                    self.chain.last_digest()
                ),
                None => "this node's ledger is empty".to_owned(),
            },
        };
        Err(RollbackError {
            seq: head.seq,
            digest,
            found,
        })
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

    /// Signs the entry opening `period` with `cap` at time `now`, without applying it: the
    /// period must be the UTC month of `now` (give or take [`CLOCK_TOLERANCE_SECS`]) and later
    /// than every month opened before.
    pub fn plan_budget(
        &self,
        period: Period,
        cap: Rho,
        now: Timestamp,
        key: &SigningKey,
    ) -> Result<NodeEntry, BudgetError> {
        self.check_period(&period, Some(now))?;
        let body = NodeBody::Budget {
            period,
            cap_rho: cap,
        };
        self.chain
            .sign_next(body, now, key)
            .map_err(BudgetError::Clock)
    }

    /// The rules of a period opened at `time` (`None`: an old, untimed entry, which only must
    /// not reuse a name).
    fn check_period(&self, period: &Period, time: Option<Timestamp>) -> Result<(), BudgetError> {
        if self.periods.iter().any(|p| &p.period == period) {
            return Err(BudgetError::PeriodReused(period.clone()));
        }
        let Some(time) = time else {
            return Ok(());
        };
        let month = period
            .month()
            .ok_or_else(|| BudgetError::PeriodNotAMonth(period.clone()))?;
        if let Some(latest) = self
            .periods
            .iter()
            .filter(|p| p.period.month().is_some_and(|m| m >= month))
            .max_by_key(|p| p.period.month())
        {
            return Err(BudgetError::PeriodOrder {
                latest: latest.period.clone(),
                requested: period.clone(),
            });
        }
        if !month.contains(time, CLOCK_TOLERANCE_SECS) {
            return Err(BudgetError::OutsidePeriod {
                period: period.clone(),
                time,
            });
        }
        Ok(())
    }

    /// A debit at `time` must fall in the current period's month (untimed, old debits are not
    /// checked).
    fn check_in_period(&self, time: Option<Timestamp>) -> Result<(), BudgetError> {
        let (Some(time), Some(current)) = (time, self.periods.last()) else {
            return Ok(());
        };
        match current.period.month() {
            Some(m) if m.contains(time, CLOCK_TOLERANCE_SECS) => Ok(()),
            _ => Err(BudgetError::OutsidePeriod {
                period: current.period.clone(),
                time,
            }),
        }
    }

    /// Signs an entry setting the lifetime cap (over all periods) to `cap`, without applying
    /// it. Refused if a lower cap is in force (a cap is lowered or restated, never raised) or
    /// if no period is open yet (entry 0 opens a period). A cap below what was already spent
    /// is allowed: it refuses every later debit.
    pub fn plan_lifetime_cap(
        &self,
        cap: Rho,
        now: Timestamp,
        key: &SigningKey,
    ) -> Result<NodeEntry, BudgetError> {
        self.check_lifetime_cap(&cap)?;
        self.chain
            .sign_next(NodeBody::LifetimeCap { cap_rho: cap }, now, key)
            .map_err(BudgetError::Clock)
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

    /// [`NodeBook::check_debit`] for a debit written at `now`, which must also fall in the
    /// current period's month and not before the ledger's latest entry: the store checks this
    /// before it generates anything.
    pub fn check_debit_at(
        &self,
        release: &ReleaseId,
        mechanism: &MechanismRecord,
        now: Timestamp,
    ) -> Result<Rho, BudgetError> {
        let rho = self.check_debit(release, mechanism)?;
        self.chain
            .check_time(Some(now))
            .map_err(BudgetError::Clock)?;
        self.check_in_period(Some(now))?;
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

    /// Signs the debit of `release` at time `now`, without applying it.
    pub fn plan_debit(
        &self,
        release: ReleaseId,
        mechanism: MechanismRecord,
        vector_digest: Digest,
        now: Timestamp,
        key: &SigningKey,
    ) -> Result<NodeEntry, BudgetError> {
        let rho = self.check_debit_at(&release, &mechanism, now)?;
        let body = NodeBody::Debit {
            release,
            mechanism,
            rho,
            vector_digest,
        };
        self.chain
            .sign_next(body, now, key)
            .map_err(BudgetError::Clock)
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
        self.chain.check_time(entry.time())?;
        self.check(entry)?;
        let digest = entry.digest();
        self.chain.advance(digest, entry.time());
        self.record(entry, digest);
        Ok(())
    }

    fn check(&self, entry: &NodeEntry) -> Result<(), NodeRuleError> {
        match entry.body() {
            NodeBody::Budget { period, .. } => self.check_period(period, entry.time())?,
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
                self.check_in_period(entry.time())?;
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
