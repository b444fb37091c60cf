//! Scheduled re-profiling: the coordinator re-runs each `[[schedule]]` job on a later `as_of`
//! (daily, weekly, monthly), so profiles stay current without anyone starting them.
//!
//! Each run is an ordinary profiling job: every release is paid from the nodes' budgets, and a
//! node whose budget cannot pay the whole run refuses it at its first release (the query's
//! reserve), so a run never stops half-way for lack of budget; with fewer than `min_nodes`
//! able to pay, the run is refused and retried at the next check. The latest model is
//! `<out>/model.json`; each run writes `<out>/<as_of>/` (report, model, tables), with a drift
//! table against the previous version.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use fedprof_coordinator::{CoordinatorConfig, CoordinatorHandle, Every, ScheduleConfig};
use fedprof_transport::ShutdownSignal;
use time::{Date, Duration as Days};
use tracing::{info, warn};

use crate::profile_job;
use crate::progress::Progress;

/// Longest one release of a scheduled run may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The `as_of` a run due on `today` uses: yesterday, the last Sunday before today, or the last
/// day of the previous month. Every date in a period maps to the same `as_of`, so a job runs
/// once per period however often it is checked.
pub fn due_as_of(every: Every, today: Date) -> Date {
    match every {
        Every::Daily => today.previous_day().unwrap_or(today),
        Every::Weekly => {
            let back = i64::from(today.weekday().number_days_from_sunday());
            let back = if back == 0 { 7 } else { back };
            today - Days::days(back)
        }
        Every::Monthly => {
            let first = today.replace_day(1).unwrap_or(today);
            first.previous_day().unwrap_or(first)
        }
    }
}

/// `YYYY-MM-DD`.
pub fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Runs `entry` if a run is due on `today` and none was made for its `as_of` yet; returns the
/// run's directory, or `None` when nothing was due.
pub async fn run_due(
    handle: &CoordinatorHandle,
    config: &CoordinatorConfig,
    entry: &ScheduleConfig,
    today: Date,
) -> Result<Option<PathBuf>> {
    let as_of = iso(due_as_of(entry.every, today));
    let latest = entry.out.join("model.json");
    let previous = profile_job::load_latest_model(&latest)?;
    if previous.as_ref().is_some_and(|m| m.as_of >= as_of) {
        return Ok(None);
    }
    let mut spec = profile_job::load_spec(&entry.job)?;
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
    profile_job::write_outputs(&dir, &report, &model)?;
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
    let every = config
        .schedule
        .iter()
        .map(|s| s.check_secs.get())
        .min()
        .unwrap_or(3600);
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
            () = tokio::time::sleep(Duration::from_secs(every)) => {}
            () = shutdown.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Month;

    fn date(y: i32, m: u8, d: u8) -> Date {
        Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap()
    }

    #[test]
    fn each_period_maps_to_one_as_of() {
        // 2026-11-26 is a Thursday.
        let today = date(2026, 11, 26);
        assert_eq!(iso(due_as_of(Every::Daily, today)), "2026-11-25");
        assert_eq!(iso(due_as_of(Every::Weekly, today)), "2026-11-22");
        assert_eq!(
            due_as_of(Every::Weekly, today).weekday(),
            time::Weekday::Sunday
        );
        assert_eq!(iso(due_as_of(Every::Monthly, today)), "2026-10-31");
        // A Sunday looks back a whole week; 1 March finds the end of February.
        assert_eq!(
            iso(due_as_of(Every::Weekly, date(2026, 11, 22))),
            "2026-11-15"
        );
        assert_eq!(
            iso(due_as_of(Every::Monthly, date(2028, 3, 1))),
            "2028-02-29"
        );
        for d in 1..=30 {
            assert_eq!(
                due_as_of(Every::Monthly, date(2026, 11, d)),
                date(2026, 10, 31)
            );
        }
    }
}
