//! Running a profiling job from the CLI: drives it release by release
//! ([`fedprof_profile::driver::drive`]) through any way of running a job (an analyst's
//! connection, an in-process coordinator for `fedprof local` and the demo, a schedule) in a
//! run directory ([`fedprof_profile::rundir`]: the run file that makes it resumable, and the
//! outputs), showing its progress; and the policy and budgets the CLI adds.

use std::future::Future;
use std::path::Path;

use anyhow::Result;
use fedprof_privacy::Rho;
use fedprof_profile::driver::{DriveError, Event, RETRIES, drive};
use fedprof_profile::model::SegmentModel;
use fedprof_profile::report::{NodeBudget, ProfileReport};
use fedprof_profile::rundir::{self, Begun};
use fedprof_profile::spec::{ProfilePolicy, ProfileSpec};
use fedprof_protocol::{Escaped, JobOutcome, Submission};

use crate::progress::Progress;

/// The profile policy of a coordinator config: its per-job cap, and a minimum cell size no
/// lower than the coordinator's.
pub fn policy(config: &fedprof_coordinator::CoordinatorConfig) -> ProfilePolicy {
    let mut p = ProfilePolicy::new(config.privacy.rho_per_job.clone());
    p.min_cell_size_floor = config.ledger.min_cell_size;
    p.max_holders_per_person = config.privacy.max_holders_per_person;
    p
}

/// Runs `spec` release by release through `submit`, resuming the unfinished run in `out` if
/// there is one (the outputs go to `out` too: [`rundir::finish`] ends the run); `previous` is
/// the model of the job's last run, if any.
pub async fn run<F, Fut>(
    submit: F,
    spec: ProfileSpec,
    policy: &ProfilePolicy,
    previous: Option<&SegmentModel>,
    out: &Path,
    progress: &Progress,
) -> Result<(ProfileReport, SegmentModel)>
where
    F: FnMut(Submission) -> Fut,
    Fut: Future<Output = Result<JobOutcome>>,
{
    let (key, begun) = rundir::begin(out, &spec, time::OffsetDateTime::now_utc())?;
    if let Begun::Resumed { job, started } = begun {
        progress.done(format!(
            "resuming the unfinished run of {job} started {started} (published releases are fetched again, not paid again)"
        ));
    }
    let on = |e: Event<'_>| match e {
        Event::Submitting {
            index,
            total,
            label,
        } => progress.step(format!(
            "release {index}/{total}: {label} (secure aggregation + noise + ledgers)"
        )),
        Event::LeftOut(f) => {
            progress.done(format!("node {} left out: {}", f.node, Escaped(&f.reason)))
        }
        Event::Retrying {
            label,
            reason,
            attempt,
        } => progress.done(format!(
            "{label} aborted ({reason}); sending it again ({attempt}/{RETRIES})"
        )),
        Event::Released {
            label,
            rho,
            contributors,
        } => progress.done(format!(
            "{label}: rho {} from {contributors} nodes",
            rho_text(rho)
        )),
    };
    drive(spec, policy, previous, key, submit, on)
        .await
        .map_err(|e| match e {
            DriveError::Submit(e) => e,
            other => anyhow::anyhow!(other),
        })
}

fn rho_text(rho: &Rho) -> String {
    format!("{:.4}", rho.to_f64())
}

/// Fills the report's per-node budgets from an audit of the ledgers in `dir`.
pub fn add_budgets(report: &mut ProfileReport, dir: &Path) -> Result<()> {
    let audit = crate::audit::verify_dir(dir, time::OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("the ledgers in {} do not verify: {e}", dir.display()))?;
    report.budgets = audit
        .nodes
        .iter()
        .filter_map(|n| {
            let p = n.current()?;
            Some(NodeBudget {
                node: n.node.to_string(),
                spent: p.spent.to_f64(),
                cap: p.cap.to_f64(),
                period: p.period.to_string(),
                cumulative: Some(n.cumulative.to_f64()),
                cumulative_epsilon: Some(fedprof_ledger::epsilon_at_delta(
                    &n.cumulative,
                    report.privacy.delta,
                )),
                lifetime_cap: n.lifetime_cap.as_ref().map(fedprof_ledger::Rho::to_f64),
            })
        })
        .collect();
    Ok(())
}
