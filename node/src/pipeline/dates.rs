//! Calendar days: parsing dates and timestamps into a day number, without time zones.
//!
//! A transaction's day is the calendar date *as written*: `2026-03-01T23:30:00+05:00` is
//! 2026-03-01 (the offset is validated, not applied), which is what pandas'
//! `to_period("D")` does with such strings in lifetimes. Parquet timestamps with a time zone
//! are instants and are taken in UTC.

use std::fmt;

use time::format_description::OwnedFormatItem;

/// A calendar day: days since 1970-01-01 (negative before).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i32);

impl Day {
    /// From days since 1970-01-01.
    pub const fn from_days(days: i32) -> Self {
        Day(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> i32 {
        self.0
    }

    /// The day of a civil date, if the date exists (years 1..=9999).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Day> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        if day > days_in_month(year, month) {
            return None;
        }
        // Howard Hinnant's days_from_civil.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = month as i32;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(Day(era * 146_097 + doe - 719_468))
    }

    /// The civil date of this day.
    pub fn ymd(self) -> (i32, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i32::from(m <= 2);
        (y, m, d)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Day({self})")
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// Parses exactly `YYYY-MM-DD`.
pub fn parse_iso_day(text: &str) -> Option<Day> {
    let b = text.trim().as_bytes();
    if b.len() != 10 {
        return None;
    }
    parse_date_prefix(b)
}

fn parse_date_prefix(b: &[u8]) -> Option<Day> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    Day::from_ymd(
        digits(&b[..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )
}

/// `HH:MM[:SS[.fraction]]` then optionally `Z` or `±HH:MM` / `±HHMM`.
fn valid_time(b: &[u8]) -> bool {
    let two = |s: &[u8], max: u32| s.len() >= 2 && digits(&s[..2]).is_some_and(|v| v <= max);
    if !(two(b, 23) && b.get(2) == Some(&b':') && two(&b[3..], 59)) {
        return false;
    }
    let mut rest = &b[5..];
    if rest.first() == Some(&b':') {
        if !two(&rest[1..], 60) {
            return false;
        }
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            rest = &rest[1 + n..];
        }
    }
    match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] | [b'+' | b'-', h1, h2, m1, m2] => {
            digits(&[*h1, *h2]).is_some_and(|h| h <= 23)
                && digits(&[*m1, *m2]).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// How a table's dates are written.
#[derive(Clone)]
pub enum DateParser {
    /// ISO 8601: `YYYY-MM-DD`, optionally followed by `T` or a space and a valid time
    /// (`HH:MM[:SS[.f]]`, optional `Z` or offset).
    Iso,
    /// A strftime pattern such as `%d/%m/%Y` or `%m/%d/%Y %H:%M` (the `time` crate's strftime
    /// syntax); only the date part is kept.
    Format {
        /// The pattern as configured (for messages).
        pattern: String,
        /// The compiled pattern.
        items: OwnedFormatItem,
    },
}

impl fmt::Debug for DateParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateParser::Iso => f.write_str("Iso"),
            DateParser::Format { pattern, .. } => write!(f, "Format({pattern:?})"),
        }
    }
}

impl DateParser {
    /// ISO when `pattern` is `None`, else the compiled strftime pattern.
    pub fn new(pattern: Option<&str>) -> Result<Self, String> {
        match pattern {
            None => Ok(DateParser::Iso),
            Some(p) => {
                let items = time::format_description::parse_strftime_owned(p)
                    .map_err(|e| format!("invalid date format {p:?}: {e}"))?;
                Ok(DateParser::Format {
                    pattern: p.to_owned(),
                    items,
                })
            }
        }
    }

    /// The day `text` names, or `None` when it is not a valid date in this format.
    pub fn parse(&self, text: &str) -> Option<Day> {
        let t = text.trim();
        match self {
            DateParser::Iso => {
                let b = t.as_bytes();
                let day = parse_date_prefix(b)?;
                match b.get(10) {
                    None => Some(day),
                    Some(b'T' | b' ') if valid_time(&b[11..]) => Some(day),
                    Some(_) => None,
                }
            }
            DateParser::Format { items, .. } => {
                let d = time::Date::parse(t, items).ok()?;
                Day::from_ymd(d.year(), u8::from(d.month()).into(), d.day().into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_known_days() {
        assert_eq!(Day::from_ymd(1970, 1, 1), Some(Day(0)));
        assert_eq!(Day::from_ymd(2000, 3, 1).unwrap().days(), 11_017);
        assert_eq!(Day::from_ymd(1969, 12, 31), Some(Day(-1)));
        for d in (-719_000..2_900_000).step_by(997) {
            let (y, m, dd) = Day(d).ymd();
            assert_eq!(Day::from_ymd(y, m, dd), Some(Day(d)), "{d}");
        }
        assert_eq!(
            Day::from_ymd(2024, 2, 29).unwrap().to_string(),
            "2024-02-29"
        );
        assert_eq!(Day::from_ymd(2023, 2, 29), None);
        assert_eq!(Day::from_ymd(2023, 13, 1), None);
    }

    #[test]
    fn iso_dates_and_timestamps() {
        let p = DateParser::Iso;
        let d = Day::from_ymd(2026, 3, 1);
        for ok in [
            "2026-03-01",
            " 2026-03-01 ",
            "2026-03-01T23:30",
            "2026-03-01 23:30:59",
            "2026-03-01T23:30:59.123456Z",
            "2026-03-01T23:30:00+05:00",
            "2026-03-01T00:00:00-0800",
        ] {
            assert_eq!(p.parse(ok), d, "{ok}");
        }
        for bad in [
            "2026-3-01",
            "2026-02-30",
            "01/03/2026",
            "2026-03-01X",
            "2026-03-01T24:00",
            "2026-03-01T10:61",
            "",
            "2026-03-01T10:00:00+5",
        ] {
            assert_eq!(p.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn strftime_formats() {
        let p = DateParser::new(Some("%d/%m/%Y")).unwrap();
        assert_eq!(p.parse("01/03/2026"), Day::from_ymd(2026, 3, 1));
        assert_eq!(p.parse("31/02/2026"), None);
        let p = DateParser::new(Some("%m/%d/%Y %H:%M")).unwrap();
        assert_eq!(p.parse("03/01/2026 10:15"), Day::from_ymd(2026, 3, 1));
        assert!(DateParser::new(Some("%Q")).is_err());
    }
}
