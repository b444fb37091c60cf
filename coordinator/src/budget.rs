//! The coordinator's side of budgeting: profiling jobs as one unit, and quotas per analyst.
//!
//! Nodes enforce their own caps (they debit before anything leaves them); this book is the
//! coordinator's policy on top, so that an analyst cannot split a job into many small ones or
//! choose who takes part (review findings M1, M3):
//! - a profiling job opens at its first release with a random [`ProfileId`], a participant
//!   set fixed here (every registered node, then the contributors of its first release) and
//!   a declared total (`budget + reserve` of the first release) no larger than the per-job cap;
//! - every release is charged to its job when it is announced (nodes pay on announcement,
//!   whatever happens next), and refused if the job's charges would pass its total;
//! - an analyst's jobs opened in one period may declare at most the per-analyst quota in all.
//!
//! Sans-IO: ids come from the caller's CSPRNG, the period from the caller's clock.

#![allow(
    clippy::result_large_err,
    reason = "a refusal is built at most once per submitted release; boxing it buys nothing"
)]

use std::collections::BTreeMap;

use fedprof_privacy::Rho;
use fedprof_protocol::{Fraction, PartyName, ProfileId, ProfileTag};

/// One open profiling job.
#[derive(Debug, Clone)]
struct ProfileJob {
    analyst: PartyName,
    cap: Rho,
    charged: Rho,
    participants: Vec<PartyName>,
    /// Whether a release of the job has completed (its contributors now fix the population).
    settled_population: bool,
}

/// Why a release cannot be charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    /// The job's declared total is above the per-job cap.
    #[error("the job's total rho {total} (budget plus reserve) exceeds the per-job cap {cap}")]
    JobCap {
        /// Declared total.
        total: Rho,
        /// The cap.
        cap: Rho,
    },
    /// Opening the job would take the analyst past its quota for the period.
    #[error(
        "analyst {analyst} has opened jobs declaring rho {used} in period {period}; \
         another {asked} would pass the quota {quota}"
    )]
    AnalystQuota {
        /// The analyst.
        analyst: PartyName,
        /// The period.
        period: String,
        /// Declared so far.
        used: Rho,
        /// This job's total.
        asked: Rho,
        /// The quota.
        quota: Rho,
    },
    /// The release names a job this coordinator does not have open.
    #[error("profiling job {0} is not open here (it ended, or the coordinator restarted)")]
    UnknownJob(ProfileId),
    /// The release names another analyst's job.
    #[error("profiling job {id} belongs to {owner}, not to {analyst}")]
    NotOwner {
        /// The job.
        id: ProfileId,
        /// Its analyst.
        owner: PartyName,
        /// Who asked.
        analyst: PartyName,
    },
    /// The release would take the job past its declared total.
    #[error(
        "profiling job {id} has been charged rho {charged} of its total {cap}; \
         this release needs {asked} more"
    )]
    JobTotal {
        /// The job.
        id: ProfileId,
        /// Charged so far.
        charged: Rho,
        /// This release (with the rest of the job's reserve).
        asked: Rho,
        /// Its total.
        cap: Rho,
    },
    /// A budget field is not a valid fraction.
    #[error("{0}: must be a fraction with a non-zero denominator")]
    Fraction(&'static str),
}

/// A release's place in its job: the tag to announce and the nodes to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The job's tag, announced with the release.
    pub tag: ProfileTag,
    /// The nodes of the job's population.
    pub participants: Vec<PartyName>,
}

/// Open profiling jobs and the analysts' declared totals per period.
#[derive(Debug, Default)]
pub struct ProfileBook {
    jobs: BTreeMap<ProfileId, ProfileJob>,
    declared: BTreeMap<(String, PartyName), Rho>,
}

fn rho(f: Fraction, field: &'static str) -> Result<Rho, BudgetRefusal> {
    Rho::from_ratio(f.numer, f.denom).map_err(|_| BudgetRefusal::Fraction(field))
}

/// `r` as a wire fraction; a total that does not fit 64 bits is refused (saturating would
/// announce another cap than the one kept here).
fn fraction(r: &Rho) -> Result<Fraction, BudgetRefusal> {
    match (u64::try_from(r.numer()), u64::try_from(r.denom())) {
        (Ok(numer), Ok(denom)) => Ok(Fraction { numer, denom }),
        _ => Err(BudgetRefusal::Fraction(
            "budget plus reserve (too fine a fraction)",
        )),
    }
}

impl ProfileBook {
    /// Opens a job for `analyst` declaring `budget + reserve`, over `participants` (the
    /// registered nodes), with id `id` from the caller's CSPRNG.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; every value is distinct"
    )]
    pub fn open(
        &mut self,
        id: ProfileId,
        analyst: &PartyName,
        period: &str,
        (budget, reserve): (Fraction, Fraction),
        (per_job, per_analyst): (&Rho, &Rho),
        participants: Vec<PartyName>,
    ) -> Result<Charge, BudgetRefusal> {
        let total = &rho(budget, "budget")? + &rho(reserve, "reserve")?;
        if &total > per_job {
            return Err(BudgetRefusal::JobCap {
                total,
                cap: per_job.clone(),
            });
        }
        let cap = fraction(&total)?;
        let key = (period.to_owned(), analyst.clone());
        let used = self.declared.get(&key).cloned().unwrap_or_else(Rho::zero);
        if &(&used + &total) > per_analyst {
            return Err(BudgetRefusal::AnalystQuota {
                analyst: analyst.clone(),
                period: period.to_owned(),
                used,
                asked: total,
                quota: per_analyst.clone(),
            });
        }
        self.declared.insert(key, &used + &total);
        self.jobs.insert(
            id,
            ProfileJob {
                analyst: analyst.clone(),
                cap: total.clone(),
                charged: Rho::zero(),
                participants: participants.clone(),
                settled_population: false,
            },
        );
        Ok(Charge {
            tag: ProfileTag {
                id,
                analyst: analyst.clone(),
                cap,
            },
            participants,
        })
    }

    /// The tag and population of a later release of job `id` asking `budget` with `reserve`
    /// still to come.
    pub fn next(
        &self,
        id: ProfileId,
        analyst: &PartyName,
        (budget, reserve): (Fraction, Fraction),
    ) -> Result<Charge, BudgetRefusal> {
        let job = self.jobs.get(&id).ok_or(BudgetRefusal::UnknownJob(id))?;
        if &job.analyst != analyst {
            return Err(BudgetRefusal::NotOwner {
                id,
                owner: job.analyst.clone(),
                analyst: analyst.clone(),
            });
        }
        let asked = &rho(budget, "budget")? + &rho(reserve, "reserve")?;
        if &job.charged + &asked > job.cap {
            return Err(BudgetRefusal::JobTotal {
                id,
                charged: job.charged.clone(),
                asked,
                cap: job.cap.clone(),
            });
        }
        Ok(Charge {
            tag: ProfileTag {
                id,
                analyst: job.analyst.clone(),
                cap: fraction(&job.cap)?,
            },
            participants: job.participants.clone(),
        })
    }

    /// Charges an announced release's `rho` to job `id` (nodes pay on announcement).
    pub fn charge(&mut self, id: ProfileId, rho: &Rho) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.charged = &job.charged + rho;
        }
    }

    /// Re-opens job `id` as the journal recorded it (a restarted coordinator): no cap or quota
    /// check, they were made when it opened; its total counts against the analyst's quota.
    pub fn restore(
        &mut self,
        id: ProfileId,
        analyst: &PartyName,
        period: &str,
        cap: Rho,
        participants: Vec<PartyName>,
    ) {
        let key = (period.to_owned(), analyst.clone());
        let used = self.declared.get(&key).cloned().unwrap_or_else(Rho::zero);
        self.declared.insert(key, &used + &cap);
        self.jobs.insert(
            id,
            ProfileJob {
                analyst: analyst.clone(),
                cap,
                charged: Rho::zero(),
                participants,
                settled_population: false,
            },
        );
    }

    /// Gives back `rho` charged to job `id` for a release no node could have paid for (its
    /// round ended before the nodes were asked for their inputs).
    pub fn refund(&mut self, id: ProfileId, rho: &Rho) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.charged = if job.charged > *rho {
                Rho::from_ratio_exact(job.charged.as_ratio() - rho.as_ratio())
            } else {
                Rho::zero()
            };
        }
    }

    /// Drops job `id`, opened in `period` by a release nobody was asked to compute, and gives
    /// its declared total back to its analyst's quota.
    pub fn discard(&mut self, id: ProfileId, period: &str) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(used) = self.declared.get_mut(&(period.to_owned(), job.analyst)) {
            *used = if *used > job.cap {
                Rho::from_ratio_exact(used.as_ratio() - job.cap.as_ratio())
            } else {
                Rho::zero()
            };
        }
    }

    /// A release of job `id` completed with `contributors`: the first one fixes the job's
    /// population for the rest of it.
    pub fn completed(&mut self, id: ProfileId, contributors: &[PartyName]) {
        if let Some(job) = self.jobs.get_mut(&id)
            && !job.settled_population
        {
            job.participants = contributors.to_vec();
            job.settled_population = true;
        }
    }

    /// Rho charged to job `id` so far (`None`: not open).
    pub fn charged(&self, id: ProfileId) -> Option<&Rho> {
        self.jobs.get(&id).map(|j| &j.charged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u64, d: u64) -> Fraction {
        Fraction { numer: n, denom: d }
    }
    fn r(s: &str) -> Rho {
        s.parse().unwrap_or_else(|_| Rho::zero())
    }
    fn name(s: &str) -> PartyName {
        PartyName::new(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn a_job_is_one_unit_and_analysts_have_quotas() {
        let mut book = ProfileBook::default();
        let (per_job, quota) = (r("1"), r("3/2"));
        let alice = name("alice");
        let nodes = vec![name("a"), name("b"), name("c")];
        let id = ProfileId([1; 16]);
        // Declares 1/10 + 9/10: the whole per-job cap.
        let c = book
            .open(
                id,
                &alice,
                "2026-12",
                (f(1, 10), f(9, 10)),
                (&per_job, &quota),
                nodes.clone(),
            )
            .unwrap();
        assert_eq!(c.participants, nodes);
        book.charge(id, &r("1/10"));
        book.completed(id, &nodes[..2]);
        // Later releases: the population of the first result; within the declared total.
        let c = book.next(id, &alice, (f(1, 2), f(2, 5))).unwrap();
        assert_eq!(c.participants, nodes[..2].to_vec());
        book.charge(id, &r("1/2"));
        assert!(matches!(
            book.next(id, &alice, (f(1, 2), f(0, 1))),
            Err(BudgetRefusal::JobTotal { .. })
        ));
        assert!(matches!(
            book.next(id, &name("mallory"), (f(1, 100), f(0, 1))),
            Err(BudgetRefusal::NotOwner { .. })
        ));
        assert!(matches!(
            book.next(ProfileId([2; 16]), &alice, (f(1, 100), f(0, 1))),
            Err(BudgetRefusal::UnknownJob(_))
        ));
        // Over the per-job cap at opening.
        assert!(matches!(
            book.open(
                ProfileId([3; 16]),
                &alice,
                "2026-12",
                (f(2, 1), f(0, 1)),
                (&per_job, &quota),
                nodes.clone()
            ),
            Err(BudgetRefusal::JobCap { .. })
        ));
        // The quota counts declared totals: 1 used, 1/2 left in this period.
        assert!(
            book.open(
                ProfileId([4; 16]),
                &alice,
                "2026-12",
                (f(1, 2), f(0, 1)),
                (&per_job, &quota),
                nodes.clone()
            )
            .is_ok()
        );
        assert!(matches!(
            book.open(
                ProfileId([5; 16]),
                &alice,
                "2026-12",
                (f(1, 100), f(0, 1)),
                (&per_job, &quota),
                nodes.clone()
            ),
            Err(BudgetRefusal::AnalystQuota { .. })
        ));
        // A job whose first release was never announced gives its total back.
        book.discard(ProfileId([4; 16]), "2026-12");
        assert!(
            book.next(ProfileId([4; 16]), &alice, (f(1, 100), f(0, 1)))
                .is_err()
        );
        assert!(
            book.open(
                ProfileId([8; 16]),
                &alice,
                "2026-12",
                (f(1, 2), f(0, 1)),
                (&per_job, &quota),
                nodes.clone()
            )
            .is_ok()
        );
        // Another analyst, or the next period, has its own quota.
        assert!(
            book.open(
                ProfileId([6; 16]),
                &name("bob"),
                "2026-12",
                (f(1, 2), f(0, 1)),
                (&per_job, &quota),
                nodes.clone()
            )
            .is_ok()
        );
        assert!(
            book.open(
                ProfileId([7; 16]),
                &alice,
                "2027-01",
                (f(1, 2), f(0, 1)),
                (&per_job, &quota),
                nodes
            )
            .is_ok()
        );
    }
}
