//! Scheduled re-profiling, sans-IO: when a `[[schedule]]` job is due and on which `as_of`, and
//! how often to check. The caller passes today's date in (never read from a clock here) with
//! the `as_of` of the job's latest model; the CLI's loop sleeps, runs the due job through the
//! coordinator and writes its files.
//!
//! One run per period: every date in a period maps to the same `as_of` ([`due_as_of`]), and a
//! job is due only when its latest model is older than that `as_of` ([`due`]). A coordinator
//! that was down for several periods runs the job **once** when it comes back, for the latest
//! period only: the missed periods are not run one by one (each would pay a whole job from
//! every node's budget for a profile that is already out of date). A run that fails is retried
//! at the next check, under the same `as_of` while the period lasts.

use std::num::NonZeroU64;
use std::time::Duration;

use time::{Date, Duration as Days};

use crate::config::{Every, ScheduleConfig};

/// Seconds between checks when no `check_secs` says otherwise: the default of
/// `[[schedule]] check_secs`, and the interval with no schedule at all.
pub const DEFAULT_CHECK_SECS: NonZeroU64 = NonZeroU64::MIN.saturating_add(3599);

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

/// The `as_of` to run a job that runs `every` period on, if one is due on `today`; `None` when
/// its latest model (`latest_as_of`, `None` if it has none yet) is as of that date or later.
/// Only the latest period is ever due, however many were missed (module doc). The comparison
/// is of `YYYY-MM-DD` strings, which order as the dates do.
pub fn due(every: Every, today: Date, latest_as_of: Option<&str>) -> Option<Date> {
    let as_of = due_as_of(every, today);
    match latest_as_of {
        Some(latest) if latest >= iso(as_of).as_str() => None,
        _ => Some(as_of),
    }
}

/// How long to wait between checks: the shortest `check_secs` of the schedule, or
/// [`DEFAULT_CHECK_SECS`] without one.
pub fn check_interval(schedule: &[ScheduleConfig]) -> Duration {
    let secs = schedule
        .iter()
        .map(|s| s.check_secs)
        .min()
        .unwrap_or(DEFAULT_CHECK_SECS);
    Duration::from_secs(secs.get())
}

/// `YYYY-MM-DD`.
pub fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
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

    #[test]
    fn a_job_is_due_once_per_period() {
        let june = date(2026, 6, 15);
        // No model yet: due at once.
        assert_eq!(due(Every::Monthly, june, None), Some(date(2026, 5, 31)));
        // The period's run was made: nothing is due for the rest of the month.
        for d in [15, 28, 30] {
            assert_eq!(
                due(Every::Monthly, date(2026, 6, d), Some("2026-05-31")),
                None
            );
        }
        // The next month is due again.
        assert_eq!(
            due(Every::Monthly, date(2026, 7, 1), Some("2026-05-31")),
            Some(date(2026, 6, 30))
        );
        // A model newer than the period (a run by hand as of a later date) is not redone.
        assert_eq!(due(Every::Weekly, june, Some("2026-06-14")), None);
        assert_eq!(due(Every::Weekly, june, Some("2026-06-15")), None);
        assert_eq!(
            due(Every::Weekly, june, Some("2026-06-13")),
            Some(date(2026, 6, 14))
        );
        assert_eq!(
            due(Every::Daily, june, Some("2026-06-13")),
            Some(date(2026, 6, 14))
        );
    }

    #[test]
    fn missed_periods_run_once_for_the_latest_period_only() {
        // The coordinator was down from June to September: one run, as of the end of August.
        let back = date(2026, 9, 10);
        assert_eq!(
            due(Every::Monthly, back, Some("2026-05-31")),
            Some(date(2026, 8, 31))
        );
        // Once it ran, the missed months are not due either.
        assert_eq!(due(Every::Monthly, back, Some("2026-08-31")), None);
        // Daily after three weeks away: yesterday only.
        assert_eq!(
            due(Every::Daily, back, Some("2026-08-19")),
            Some(date(2026, 9, 9))
        );
    }

    #[test]
    fn the_check_interval_is_the_shortest_of_the_schedule() {
        let entry = |secs: u64| ScheduleConfig {
            job: "job.toml".into(),
            every: Every::Daily,
            out: "out".into(),
            check_secs: NonZeroU64::new(secs).unwrap(),
        };
        assert_eq!(check_interval(&[]), Duration::from_secs(3600));
        assert_eq!(
            check_interval(&[entry(900), entry(60), entry(7200)]),
            Duration::from_secs(60)
        );
        assert_eq!(check_interval(&[entry(7200)]), Duration::from_secs(7200));
    }
}
