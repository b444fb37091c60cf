//! The node's budget books: its ledger and what it has spent per profiling job and analyst,
//! behind one lock, and the checks every release passes before this node pays for it.
//!
//! # The order of a release (review finding L10)
//!
//! 1. **Check** ([`check_budget`], read-only): when the announcement is admitted by
//!    [`crate::core::NodeCore`], against the books as they are.
//! 2. **Compute** the exact answer off the network task: no noise yet, nothing that depends
//!    on the budget.
//! 3. **Under the ledger lock** ([`debit`]): the job is not cancelled, the release was never
//!    paid, the period is current, every check of step 1 again (other jobs may have paid in
//!    between); only then is the noise drawn, cached and the debit fsynced. No noise is drawn
//!    for a release this node would not pay for.
//!
//! The vector leaves only with the [`DebitReceipt`] step 3 returns
//! ([`crate::job::NodeJob::set_input`] takes nothing else).

use std::sync::Mutex;

use chacha20::ChaCha20Rng;
use fedprof_ledger::{
    DebitReceipt, MechanismRecord, NodeLedger, Period, ReleaseId, SigningKey, StoreError,
};
use fedprof_protocol::{JobAnnounce, JobSpec, PartyId, Refusal, RefuseReason, ReleaseParams};
use tracing::{info, warn};

use crate::config::{NodeFloorConfig, NodePrivacyConfig};
use crate::floor::Spending;

/// The node's ledger and what it has spent per job and analyst, behind one lock: the floor is
/// checked and the debit written without another debit in between.
#[derive(Debug)]
pub struct Books {
    /// The node's hash-chained budget ledger.
    pub ledger: NodeLedger,
    /// Spending per profiling job and analyst in the open period.
    pub spending: Spending,
}

/// Why the books cannot be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The budget ledger cannot be opened or extended (see docs/LEDGER.md for recovery).
    #[error("budget ledger: {0}")]
    Ledger(Box<StoreError>),
    /// The configured budget period is not `YYYY-MM`.
    #[error("privacy.period {0:?} is not a YYYY-MM month")]
    Period(String),
}

impl Books {
    /// Opens (and verifies) the ledger of `privacy` for `identity`, rebuilds the floor's
    /// spending from it, opens the budget period (the pinned one, else the current UTC month)
    /// and records a configured lifetime cap. What a node process does once at start, and
    /// what a restart after a crash does again: the books on disk are the node's whole
    /// memory of what it paid. Public so that a driver without the service's TLS material
    /// (the simulator) starts a node exactly as the service does.
    pub fn open(
        privacy: &NodePrivacyConfig,
        ledger_key: SigningKey,
        identity: PartyId,
    ) -> Result<Books, OpenError> {
        let ledger_error = |e| OpenError::Ledger(Box::new(e));
        let mut ledger =
            NodeLedger::open(&privacy.ledger, ledger_key, identity).map_err(ledger_error)?;
        let period = privacy.period.clone().unwrap_or_else(utc_month);
        let period = Period::new(&period).map_err(|_| OpenError::Period(period.clone()))?;
        let lifetime = privacy.lifetime_cap_rho.clone();
        let mut spending = Spending::from_ledger(ledger.path());
        let opened = crate::floor::roll_period(
            &mut ledger,
            &mut spending,
            period,
            &privacy.cap_rho,
            lifetime.clone(),
        )
        .map_err(OpenError::Ledger)?;
        if !opened
            && let Some(cap) = lifetime
            && ledger.book().lifetime_cap() != Some(&cap)
        {
            ledger.set_lifetime_cap(cap).map_err(ledger_error)?;
        }
        Ok(Books { ledger, spending })
    }
}

fn policy(detail: String) -> Refusal {
    Refusal {
        reason: RefuseReason::Policy,
        detail,
    }
}

/// The rest of the profiling job this release belongs to must fit too: the node refuses at
/// the job's start, not half-way.
pub fn reserve_of(spec: &JobSpec) -> fedprof_privacy::Rho {
    match spec {
        JobSpec::Features(q) => fedprof_privacy::Rho::from_ratio(q.reserve.numer, q.reserve.denom)
            .unwrap_or_else(|_| fedprof_privacy::Rho::zero()),
    }
}

/// Every check a release must pass before this node pays for it: the period cap and the
/// job's reserve (the ledger), and this node's own floor (per release, job, analyst; assumed
/// colluders and honest shares).
pub fn check_budget(
    books: &Books,
    floor: &NodeFloorConfig,
    announce: &JobAnnounce,
    release: &ReleaseId,
    mechanism: &MechanismRecord,
    reserve: &fedprof_privacy::Rho,
) -> Result<(), Refusal> {
    let book = books.ledger.book();
    // L9: a ledger restored from an older copy lacks the coordinator's last receipt of ours.
    book.check_receipt_head(announce.last_receipt.as_deref())
        .map_err(|e| e.refusal())?;
    let rho = book
        .check_debit(release, mechanism)
        .map_err(|e| e.refusal())?;
    // The noise the coordinator announced must fit the budget the analyst's query asked for.
    let JobSpec::Features(q) = &announce.spec;
    let asked = fedprof_privacy::Rho::from_ratio(q.budget.numer, q.budget.denom)
        .unwrap_or_else(|_| fedprof_privacy::Rho::zero());
    if rho > asked {
        return Err(Refusal {
            reason: RefuseReason::PrivacyFloor,
            detail: format!(
                "the announced noise costs rho {rho}, more than the query's budget {asked}"
            ),
        });
    }
    book.check_headroom(&rho, reserve)
        .map_err(|e| e.refusal())?;
    crate::floor::check(
        floor,
        &books.spending,
        &announce.release,
        &announce.profile,
        &rho,
        reserve,
    )
    .map_err(|e| e.refusal())
}

/// Refuses a release this node has already paid for. Its noisy vector goes into one masking
/// round only: a coordinator replaying an announcement (same nonce, so the same release id)
/// would otherwise get the same vector into a second round with another survivor set, and
/// the difference of the two sums would expose one node's vector with its own noise share
/// alone. A crash after the debit loses the release (the safe side).
pub fn once(books: &Books, release: &ReleaseId) -> Result<(), Refusal> {
    match books.ledger.book().debit(release) {
        None => Ok(()),
        Some(d) => Err(policy(format!(
            "release {release} was already paid for (ledger entry {}); a release's vector \
             goes into one masking round only",
            d.seq
        ))),
    }
}

/// The current month, `YYYY-MM` (UTC): the default budget period.
pub fn utc_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// Opens the clock's budget period when the month rolled while the node ran (unless the config
/// pins `privacy.period`): the period cap is a rate per month, not per process start.
pub fn roll(books: &mut Books, privacy: &NodePrivacyConfig) -> Result<(), Refusal> {
    if privacy.period.is_some() {
        return Ok(());
    }
    let name = utc_month();
    let period = Period::new(&name).map_err(|e| policy(format!("budget period {name}: {e}")))?;
    let Books { ledger, spending } = books;
    match crate::floor::roll_period(
        ledger,
        spending,
        period,
        &privacy.cap_rho,
        privacy.lifetime_cap_rho.clone(),
    ) {
        Ok(true) => {
            info!(period = %name, "new budget period opened");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            warn!(error = %e, "cannot open the new budget period");
            Err(policy(format!("the node's ledger failed: {e}")))
        }
    }
}

/// A job's local outcome: the debit receipt (the vector is paid for and may be sent), or the
/// refusal to send instead.
pub type Computed = Result<Box<DebitReceipt>, Refusal>;

/// What a debit is checked against again under the ledger lock.
pub struct Paid<'a> {
    /// The node's budget settings (cap, period).
    pub privacy: &'a NodePrivacyConfig,
    /// The node's own floor.
    pub floor: &'a NodeFloorConfig,
    /// The announcement paid for.
    pub announce: &'a JobAnnounce,
    /// Its release id.
    pub release: ReleaseId,
    /// The rest of its profiling job.
    pub reserve: fedprof_privacy::Rho,
    /// True once the job was dropped (round over, expired, session lost) or the node is
    /// shutting down: nothing is paid after that.
    pub cancelled: &'a dyn Fn() -> bool,
}

impl std::fmt::Debug for Paid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paid")
            .field("release", &self.release)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}

/// Debits the release in the node's ledger (durably, before the vector may leave) and returns
/// the receipt with the vector to send: `exact` plus this node's noise share, drawn only here,
/// after every check passed under the lock (see the module doc), or the vector cached for this
/// release by an earlier attempt, so a retried release never carries a second noise draw and
/// is never paid twice.
pub fn debit(
    books: &Mutex<Books>,
    paid: &Paid<'_>,
    mechanism: MechanismRecord,
    exact: &[i64],
    params: &ReleaseParams,
    rng: &mut ChaCha20Rng,
) -> Result<DebitReceipt, Refusal> {
    let mut books = books
        .lock()
        .map_err(|_| policy("ledger unavailable".into()))?;
    if (paid.cancelled)() {
        return Err(policy(
            "the job was cancelled before this node paid for it".into(),
        ));
    }
    let release = paid.release;
    // Checked again under the lock: two copies of one announcement may both have started.
    once(&books, &release)?;
    roll(&mut books, paid.privacy)?;
    check_budget(
        &books,
        paid.floor,
        paid.announce,
        &release,
        &mechanism,
        &paid.reserve,
    )?;
    let noisy = crate::query::noisy(exact, params, rng).map_err(|e| policy(e.to_string()))?;
    let mut salt = [0u8; 32];
    rand_core::Rng::fill_bytes(rng, &mut salt);
    match books
        .ledger
        .prepare_release(release, mechanism, salt, move || noisy)
    {
        Ok(receipt) => {
            info!(job = %release.job, retry = receipt.is_retry(), "release debited");
            if !receipt.is_retry() {
                books.spending.record(receipt.entry());
            }
            Ok(receipt)
        }
        Err(StoreError::Budget(e)) => Err(e.refusal()),
        Err(e) => {
            warn!(error = %e, "budget ledger failed; refusing the job");
            Err(policy(format!("the node's ledger failed: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use fedprof_privacy::Rho;
    use fedprof_protocol::{PartyName, Role};

    use super::*;

    fn privacy(dir: &std::path::Path, period: Option<&str>) -> NodePrivacyConfig {
        NodePrivacyConfig {
            ledger: dir.join("ledger"),
            cap_rho: Rho::from_ratio(2, 1).unwrap_or_else(|e| unreachable!("{e}")),
            period: period.map(str::to_owned),
            lifetime_cap_rho: Some(Rho::from_ratio(24, 1).unwrap_or_else(|e| unreachable!("{e}"))),
        }
    }

    fn me() -> PartyId {
        PartyId {
            role: Role::Node,
            name: PartyName::new("a").unwrap_or_else(|e| unreachable!("{e}")),
        }
    }

    #[test]
    fn books_open_the_period_and_lifetime_cap_once_and_refuse_a_bad_period() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let key = || SigningKey::from_bytes(&[7; 32]);
        let bad = Books::open(&privacy(dir.path(), Some("2026/13")), key(), me());
        assert!(
            matches!(&bad, Err(OpenError::Period(p)) if p == "2026/13"),
            "{bad:?}"
        );
        // A restart opens the same books again: one period, the cap recorded once.
        for _ in 0..2 {
            let books = Books::open(&privacy(dir.path(), None), key(), me())
                .unwrap_or_else(|e| unreachable!("{e}"));
            let book = books.ledger.book();
            let periods: Vec<&str> = book.periods().iter().map(|p| p.period.as_str()).collect();
            assert_eq!(periods, [utc_month().as_str()]);
            assert_eq!(
                book.lifetime_cap(),
                privacy(dir.path(), None).lifetime_cap_rho.as_ref()
            );
        }
    }
}
