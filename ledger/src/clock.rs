//! Wall-clock time in ledgers: the timestamp every entry carries, the UTC months budget periods
//! are named after, and the clock the stores read (the books take the time as an argument).
//!
//! **Unix seconds, not RFC 3339.** An entry's time is a JSON integer: seconds since
//! 1970-01-01T00:00:00Z, UTC, leap seconds not counted (POSIX time). An integer has exactly
//! one canonical text (plain decimal, which the line's canonical-form check already enforces),
//! needs no parser and orders by comparison. An RFC 3339 string has many spellings of one
//! instant (`Z` or `+00:00`, fractions, lowercase `t`) that a strict reader would have to
//! refuse one by one; the audit prints RFC 3339 for people instead ([`Timestamp`]'s
//! `Display`). Seconds are enough: the rules below have a tolerance of minutes.
//!
//! **Rules** (checked by the writer before it signs and by the auditor after, in
//! [`crate::Chain`] and the books):
//! - once an entry of a ledger carries a time, every later entry does (entries written before
//!   timestamps carry none, and still verify);
//! - a time is never more than [`CLOCK_TOLERANCE_SECS`] before the latest time earlier in the
//!   same ledger (a clock stepped back by NTP or a VM resume by less is tolerated; more is an
//!   error naming both times);
//! - a timed budget period is a UTC month `YYYY-MM`, opened in strictly increasing order, and
//!   the entry opening it and every debit in it are dated within that month, give or take the
//!   tolerance.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How far (seconds) an entry's time may lie before the latest earlier time in its ledger, or
/// outside its budget period's month: five minutes, well above the steps NTP makes to a
/// synchronised clock, well below a month.
pub const CLOCK_TOLERANCE_SECS: u64 = 300;

/// A point in time: whole seconds since 1970-01-01T00:00:00Z (UTC, POSIX time).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The seconds since the epoch.
    pub fn secs(self) -> u64 {
        self.0
    }

    /// The time now, from the operating system's clock (a clock before 1970 reads as 0).
    pub fn now() -> Timestamp {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }

    /// The UTC month this time falls in.
    pub fn month(self) -> Month {
        let (year, month, _) = civil_from_days(self.0 / 86_400);
        Month { year, month }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, e.g. `2026-12-07T15:04:18Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0 / 86_400);
        let s = self.0 % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}, {self})", self.0)
    }
}

/// A UTC calendar month, the unit of budget periods; written `YYYY-MM`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: u64,
    month: u8,
}

/// Why a text is not a `YYYY-MM` month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month YYYY-MM (1970-01 to 9999-12)")]
pub struct MonthError(pub String);

impl Month {
    /// The month `year-month` (`month` 1 to 12, `year` 1970 to 9999).
    pub fn new(year: u64, month: u8) -> Result<Month, MonthError> {
        if (1970..=9999).contains(&year) && (1..=12).contains(&month) {
            Ok(Month { year, month })
        } else {
            Err(MonthError(format!("{year:04}-{month:02}")))
        }
    }

    /// Its first second.
    pub fn start(self) -> Timestamp {
        Timestamp(days_from_civil(self.year, self.month) * 86_400)
    }

    /// The month after it.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Whether `t` falls in this month, or within `tolerance` seconds of it.
    pub fn contains(self, t: Timestamp, tolerance: u64) -> bool {
        let from = self.start().0.saturating_sub(tolerance);
        let to = self.next().start().0.saturating_add(tolerance);
        (from..to).contains(&t.0)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl FromStr for Month {
    type Err = MonthError;
    /// Exactly four digits, `-`, two digits: one text per month.
    fn from_str(s: &str) -> Result<Month, MonthError> {
        let bad = || MonthError(s.chars().take(40).collect());
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let year = s[..4].parse().map_err(|_| bad())?;
        let month = s[5..].parse().map_err(|_| bad())?;
        Month::new(year, month).map_err(|_| bad())
    }
}

/// Days since 1970-01-01 of the first day of `year-month` (H. Hinnant's `days_from_civil`,
/// for years from 1970).
fn days_from_civil(year: u64, month: u8) -> u64 {
    let m = u64::from(month);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day counted from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Where a store reads the time of the entries it writes: the system clock in production, a
/// controlled one in tests (a store is otherwise sans-clock: the books take `now`).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The operating system's clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Timestamp::now))
    }

    /// A clock that reads `f()`.
    pub fn from_fn(f: impl Fn() -> Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// A clock stopped at `t`.
    pub fn fixed(t: Timestamp) -> Clock {
        Clock::from_fn(move || t)
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_times_match_the_calendar() {
        // 2026-12-07T15:04:18Z, checked with `date -u -d @1796655858`.
        let t = Timestamp(1_796_655_858);
        assert_eq!(t.to_string(), "2026-12-07T15:04:18Z");
        assert_eq!(t.month().to_string(), "2026-12");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        // A leap day and the month boundaries around it.
        let feb: Month = "2028-02".parse().unwrap();
        assert_eq!(feb.start().to_string(), "2028-02-01T00:00:00Z");
        assert_eq!(feb.next().start().to_string(), "2028-03-01T00:00:00Z");
        assert_eq!(
            Timestamp(feb.next().start().0 - 1).to_string(),
            "2028-02-29T23:59:59Z"
        );
        let dec: Month = "2026-12".parse().unwrap();
        assert_eq!(dec.next().to_string(), "2027-01");
        // Every month start maps back to its month, over 400 years (a full Gregorian cycle).
        let mut m = Month::new(1970, 1).unwrap();
        while m.year < 2370 {
            assert_eq!(m.start().month(), m);
            assert_eq!(Timestamp(m.next().start().0 - 1).month(), m);
            m = m.next();
        }
    }

    #[test]
    fn month_text_is_strict_and_containment_has_a_tolerance() {
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-12", "2026/12", "1969-12", "2026-12 ", "+026-12",
            "pilot_q4",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
        let dec: Month = "2026-12".parse().unwrap();
        let start = dec.start().0;
        assert!(dec.contains(Timestamp(start), 0));
        assert!(!dec.contains(Timestamp(start - 1), 0));
        assert!(dec.contains(Timestamp(start - 1), CLOCK_TOLERANCE_SECS));
        let end = dec.next().start().0;
        assert!(!dec.contains(Timestamp(end), 0));
        assert!(dec.contains(
            Timestamp(end + CLOCK_TOLERANCE_SECS - 1),
            CLOCK_TOLERANCE_SECS
        ));
        assert!(!dec.contains(Timestamp(end + CLOCK_TOLERANCE_SECS), CLOCK_TOLERANCE_SECS));
    }
}
