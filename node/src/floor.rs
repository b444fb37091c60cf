//! The node's own privacy floor: what it assumes and the most it spends, whatever the
//! coordinator announces (review finding H3).
//!
//! The coordinator plans every release (noise, `n_min`, colluders) and a node debits what the
//! announced parameters cost. Left at that, the honest-noise assumption at the core of the
//! guarantee would be set by the party it protects against. So each node holds a floor in its
//! own config and refuses, with a typed reason, any announcement below it:
//! - at least `min_colluders` nodes are assumed to collude with the coordinator, and a release
//!   counts on at most `max_honest_shares` honest noise shares (`n_min - colluders`): each node
//!   adds `sigma^2 / (n_min - c)`, so the more honest shares a release credits, the less noise
//!   each node adds and the more the guarantee rests on the coordinator's word that only `c`
//!   collude;
//! - at most `max_rho_per_release` per release, `max_rho_per_job` per profiling job (and never
//!   more than the job's declared total), `max_rho_per_analyst` per analyst per period, on top
//!   of the period cap the ledger enforces.
//!
//! Spending per job and per analyst is recomputed from the node's own signed ledger at start
//! (every debit records its job and analyst), so the floor holds across restarts.

use std::collections::BTreeMap;
use std::path::Path;

use fedprof_ledger::{Entry, NodeBody, NodeEntry};
use fedprof_privacy::Rho;
use fedprof_protocol::{PartyName, ProfileId, ProfileTag, Refusal, RefuseReason, ReleaseParams};

use crate::config::NodeFloorConfig;

/// Why an announcement is below this node's floor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FloorRefusal {
    /// Fewer colluders assumed than this node assumes.
    #[error(
        "the release assumes {announced} colluding node(s); this node assumes at least {floor}"
    )]
    Colluders {
        /// Announced.
        announced: u32,
        /// This node's floor.
        floor: u32,
    },
    /// More honest shares credited than this node allows (it would add too little noise).
    #[error(
        "the release counts on {announced} honest noise share(s) (n_min - colluders); this node \
         credits at most {floor}, so it would add too little noise"
    )]
    HonestShares {
        /// Announced `n_min - colluders`.
        announced: u32,
        /// This node's limit.
        floor: u32,
    },
    /// The release costs more than this node allows one release.
    #[error("the release costs rho {rho}; this node allows at most {max} per release")]
    Release {
        /// This release.
        rho: Rho,
        /// This node's limit.
        max: Rho,
    },
    /// The job would cost this node more than its per-job limit or the job's declared total.
    #[error(
        "profiling job {job} has cost this node rho {spent}; this release and the job's reserve \
         need {asked} more, past its limit {max}"
    )]
    Job {
        /// The job.
        job: ProfileId,
        /// Spent on it so far.
        spent: Rho,
        /// This release plus the job's reserve.
        asked: Rho,
        /// The smaller of this node's per-job limit and the job's declared total.
        max: Rho,
    },
    /// The analyst's jobs would cost this node more than its per-analyst limit this period.
    #[error(
        "analyst {analyst} has cost this node rho {spent} this period; this release needs {rho} \
         more, past the limit {max}"
    )]
    Analyst {
        /// The analyst.
        analyst: PartyName,
        /// Spent this period.
        spent: Rho,
        /// This release.
        rho: Rho,
        /// This node's limit.
        max: Rho,
    },
    /// A budget field of the announcement is not a valid fraction.
    #[error("the announced {0} is not a valid fraction")]
    Fraction(&'static str),
}

impl FloorRefusal {
    /// The refusal to send.
    pub fn refusal(&self) -> Refusal {
        Refusal {
            reason: RefuseReason::PrivacyFloor,
            detail: self.to_string(),
        }
    }
}

/// What this node has spent per profiling job and per analyst (in the current period).
#[derive(Debug, Clone, Default)]
pub struct Spending {
    period: Option<String>,
    per_job: BTreeMap<ProfileId, Rho>,
    per_analyst: BTreeMap<PartyName, Rho>,
}

impl Spending {
    /// Recomputed from the node's ledger file (already verified by `NodeLedger::open`).
    pub fn from_ledger(path: &Path) -> Spending {
        let mut s = Spending::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return s;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(entry) = Entry::from_line(line) {
                s.record(&entry);
            }
        }
        s
    }

    /// Takes one ledger entry into account (a period opening or a debit).
    pub fn record(&mut self, entry: &NodeEntry) {
        match entry.body() {
            NodeBody::Budget { period, .. } => self.start_period(period),
            NodeBody::Debit { mechanism, .. } => {
                if let Some(tag) = mechanism.profile() {
                    let rho = mechanism.rho();
                    add(&mut self.per_job, tag.id, &rho);
                    add(&mut self.per_analyst, tag.analyst.clone(), &rho);
                }
            }
            // The ledger itself enforces the lifetime cap.
            NodeBody::LifetimeCap { .. } => {}
        }
    }

    /// A new budget period: per-analyst spending starts again, per-job spending stays.
    fn start_period(&mut self, period: &fedprof_ledger::Period) {
        self.period = Some(period.as_str().to_owned());
        self.per_analyst.clear();
    }

    /// Spent on job `id`.
    pub fn job(&self, id: ProfileId) -> Rho {
        self.per_job.get(&id).cloned().unwrap_or_else(Rho::zero)
    }

    /// Spent on `analyst`'s jobs this period.
    pub fn analyst(&self, analyst: &PartyName) -> Rho {
        self.per_analyst
            .get(analyst)
            .cloned()
            .unwrap_or_else(Rho::zero)
    }
}

fn add<K: Ord>(map: &mut BTreeMap<K, Rho>, key: K, rho: &Rho) {
    let e = map.entry(key).or_insert_with(Rho::zero);
    *e = &*e + rho;
}

#[allow(
    clippy::result_large_err,
    reason = "built at most once per announced release; boxing it would buy nothing"
)]
fn rho_of(f: fedprof_protocol::Fraction, field: &'static str) -> Result<Rho, FloorRefusal> {
    Rho::from_ratio(f.numer, f.denom).map_err(|_| FloorRefusal::Fraction(field))
}

/// Checks an announced release costing `rho`, with `reserve` still to come in its job, against
/// the floor and what this node has spent. Sans-IO: the caller holds the ledger lock, so a
/// debit cannot slip between this check and the debit.
#[allow(
    clippy::result_large_err,
    reason = "built at most once per announced release; boxing it would buy nothing"
)]
pub fn check(
    floor: &NodeFloorConfig,
    spending: &Spending,
    params: &ReleaseParams,
    tag: &ProfileTag,
    rho: &Rho,
    reserve: &Rho,
) -> Result<(), FloorRefusal> {
    if params.colluders < floor.min_colluders {
        return Err(FloorRefusal::Colluders {
            announced: params.colluders,
            floor: floor.min_colluders,
        });
    }
    let honest = params.min_contributors.saturating_sub(params.colluders);
    if honest > floor.max_honest_shares {
        return Err(FloorRefusal::HonestShares {
            announced: honest,
            floor: floor.max_honest_shares,
        });
    }
    if rho > &floor.max_rho_per_release {
        return Err(FloorRefusal::Release {
            rho: rho.clone(),
            max: floor.max_rho_per_release.clone(),
        });
    }
    let declared = rho_of(tag.cap, "job total")?;
    let max = if declared < floor.max_rho_per_job {
        declared
    } else {
        floor.max_rho_per_job.clone()
    };
    let spent = spending.job(tag.id);
    let asked = rho + reserve;
    if &spent + &asked > max {
        return Err(FloorRefusal::Job {
            job: tag.id,
            spent,
            asked,
            max,
        });
    }
    let spent = spending.analyst(&tag.analyst);
    if &spent + rho > floor.max_rho_per_analyst {
        return Err(FloorRefusal::Analyst {
            analyst: tag.analyst.clone(),
            spent,
            rho: rho.clone(),
            max: floor.max_rho_per_analyst.clone(),
        });
    }
    Ok(())
}

/// Opens `period` in `ledger` when it is not the ledger's current one (the month rolled while
/// the node ran, or a ledger's first period), with the period cap `cap` and the lifetime cap
/// `lifetime`, and starts the period in `spending` (per-analyst spending starts again).
/// Returns whether it opened one. The caller holds the ledger lock and passes the period.
pub fn roll_period(
    ledger: &mut fedprof_ledger::NodeLedger,
    spending: &mut Spending,
    period: fedprof_ledger::Period,
    cap: &Rho,
    lifetime: Option<Rho>,
) -> Result<bool, Box<fedprof_ledger::StoreError>> {
    if ledger.book().periods().last().map(|p| &p.period) == Some(&period) {
        return Ok(false);
    }
    spending.start_period(&period);
    ledger
        .open_period_capped(period, cap.clone(), lifetime)
        .map_err(Box::new)?;
    Ok(true)
}

#[cfg(test)]
#[path = "floor_tests.rs"]
mod tests;
