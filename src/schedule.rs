//! Scheduled re-profiling: the coordinator re-runs each `[[schedule]]` job on a later `as_of`
//! (daily, weekly, monthly), so profiles stay current without anyone starting them.
//!
//! Each run is an ordinary profiling job: every release is paid from the nodes' budgets, and a
//! node whose budget cannot pay the whole run refuses it at its first release (the query's
//! reserve), so a run never stops half-way for lack of budget; with fewer than `min_nodes`
//! able to pay, the run is refused and retried at the next check. The latest model is
//! `<out>/model.json`; each run writes `<out>/<as_of>/` (report, model, tables), with a drift
//! table against the previous version.
//!
//! When a run is due and on which `as_of` is the coordinator's decision
//! ([`fedprof_coordinator::schedule`], sans-IO); this is the loop around it that reads the
//! clock, sleeps, submits through the coordinator handle and writes the files.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use fedprof_coordinator::schedule::{check_interval, due, iso};
use fedprof_coordinator::{CoordinatorConfig, CoordinatorHandle, ScheduleConfig};
use fedprof_profile::rundir;
use fedprof_transport::ShutdownSignal;
use time::Date;
use tracing::{info, warn};

use crate::profile_job;
use crate::progress::Progress;

/// Longest one release of a scheduled run may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `entry` if a run is due on `today` and none was made for its `as_of` yet; returns the
/// run's directory, or `None` when nothing was due.
pub async fn run_due(
    handle: &CoordinatorHandle,
    config: &CoordinatorConfig,
    entry: &ScheduleConfig,
    today: Date,
) -> Result<Option<PathBuf>> {
    let latest = entry.out.join("model.json");
    let previous = rundir::load_latest_model(&latest)?;
    let Some(as_of) = due(
        entry.every,
        today,
        previous.as_ref().map(|m| m.as_of.as_str()),
    ) else {
        return Ok(None);
    };
    let as_of = iso(as_of);
    let mut spec = rundir::load_spec(&entry.job)?;
    spec.as_of = as_of.clone();
    let policy = profile_job::policy(config);
    info!(job = %spec.name, %as_of, "scheduled profiling run is due");
    let progress = Progress::quiet();
    let run_job = |s| async move {
        Ok(tokio::time::timeout(RELEASE_TIMEOUT, handle.submit(s))
            .await
            .context("a release did not finish in time")??)
    };
    // A run that stopped part-way (a crash, a failed release) resumes from its run file in
    // the run's directory at the next check: published releases are not paid again.
    let dir = entry.out.join(&as_of);
    let (report, model) =
        profile_job::run(run_job, spec, &policy, previous.as_ref(), &dir, &progress).await?;
    rundir::finish(&dir, &report, &model)?;
    // The latest model is replaced only once the run is complete, atomically and durably.
    let model_bytes = fs::read(dir.join("model.json"))?;
    fedprof_ledger::file::write_atomic(&latest, &model_bytes)?;
    info!(job = %report.name, %as_of, version = model.version, dir = %dir.display(), "scheduled profiling run finished");
    Ok(Some(dir))
}

/// Checks every schedule at start and then every `check_secs`, until `shutdown`.
pub async fn run_forever(
    handle: CoordinatorHandle,
    config: CoordinatorConfig,
    mut shutdown: ShutdownSignal,
) {
    let every = check_interval(&config.schedule);
    let min_nodes = config.rounds.min_nodes.get();
    loop {
        if handle.nodes().len() >= min_nodes {
            let today = time::OffsetDateTime::now_utc().date();
            for entry in &config.schedule {
                if let Err(e) = run_due(&handle, &config, entry, today).await {
                    warn!(job = %entry.job.display(), error = %format!("{e:#}"), "scheduled profiling run failed; retrying at the next check");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
    }
}
