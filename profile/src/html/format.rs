//! Escaping and number formatting for the HTML report.
//!
//! Every figure goes through a [`Kind`], which decides how its value and the standard deviation
//! of its noise are written: customer counts as integers with thousands separators, shares as
//! percentages (their noise in percentage points), currency with two decimals.

use std::fmt::{self, Write};

use crate::report::Cell;

/// Text escaped for HTML content and quoted attribute values (`& < > " '`).
pub(super) struct Esc<'a>(pub(super) &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// How a figure is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Customers: an integer with thousands separators.
    Count,
    /// A share in `0..=1`, written as a percentage.
    Share,
    /// Money: two decimals.
    Currency,
    /// Already a percentage.
    Percent,
    /// Anything else (days, transactions): decimals by magnitude.
    Plain,
    /// Small quantities such as a clustering cost: four decimals.
    Fine,
}

impl Kind {
    /// The kind for a feature's display unit (`currency`, `share`, `%`; anything else is plain).
    pub(super) fn of_unit(unit: &str) -> Kind {
        match unit {
            "currency" => Kind::Currency,
            "share" => Kind::Share,
            "%" => Kind::Percent,
            "customers" => Kind::Count,
            _ => Kind::Plain,
        }
    }

    /// A value.
    pub(super) fn value(self, v: f64) -> String {
        match self {
            Kind::Count => fixed(v, 0),
            Kind::Share => format!("{}%", fixed(v * 100.0, 1)),
            Kind::Currency => fixed(v, 2),
            Kind::Percent => format!("{}%", fixed(v, 1)),
            Kind::Fine => fixed(v, 4),
            Kind::Plain => {
                let decimals = match v.abs() {
                    a if a >= 1000.0 => 0,
                    a if a >= 10.0 => 1,
                    _ => 2,
                };
                fixed(v, decimals)
            }
        }
    }

    /// A histogram edge: like [`Kind::value`], without decimals when it is a whole number.
    pub(super) fn edge(self, v: f64) -> String {
        match self {
            Kind::Share if (v * 100.0).fract() == 0.0 => format!("{}%", fixed(v * 100.0, 0)),
            Kind::Percent if v.fract() == 0.0 => format!("{}%", fixed(v, 0)),
            Kind::Currency | Kind::Plain | Kind::Fine | Kind::Count if v.fract() == 0.0 => {
                fixed(v, 0)
            }
            _ => self.value(v),
        }
    }

    /// The standard deviation of the noise, as `± s` (percentage points for shares).
    pub(super) fn sd(self, sd: f64) -> String {
        match self {
            Kind::Share => format!("± {} pp", significant(sd * 100.0)),
            Kind::Percent => format!("± {} pp", significant(sd)),
            _ => format!("± {}", significant(sd)),
        }
    }

    /// The 95% interval `value ± 1.96 sd`, as text; counts and shares are not negative and
    /// shares not above 100%.
    pub(super) fn interval(self, value: f64, sd: f64) -> String {
        let (mut lo, mut hi) = (value - 1.96 * sd, value + 1.96 * sd);
        if matches!(self, Kind::Count | Kind::Share) {
            lo = lo.max(0.0);
        }
        if self == Kind::Share {
            hi = hi.min(1.0);
        }
        format!("{} to {}", self.value(lo), self.value(hi))
    }
}

/// `v` with `decimals` places and `,` between thousands; `n/a` when not finite.
pub(super) fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    let digits = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits.as_str(), None),
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    // No sign on a value that rounds to zero.
    if v < 0.0 && digits.bytes().any(|b| matches!(b, b'1'..=b'9')) {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// `v` to two significant digits (at most six decimals), with thousands separators.
pub(super) fn significant(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    if v == 0.0 {
        return "0".to_owned();
    }
    let decimals = (1.0 - v.abs().log10().floor()).clamp(0.0, 6.0) as usize;
    fixed(v, decimals)
}

/// A privacy parameter (rho, epsilon): up to `max_decimals` places, trailing zeros dropped.
pub(super) fn decimal(v: f64, max_decimals: usize) -> String {
    let s = fixed(v, max_decimals);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A cell as plain text: `value ± sd`, or `suppressed`.
pub(super) fn cell_text(cell: &Cell, kind: Kind) -> String {
    match *cell {
        Cell::Value { value, sd } => format!("{} {}", kind.value(value), kind.sd(sd)),
        Cell::Suppressed => "suppressed".to_owned(),
    }
}

/// A cell as a table cell: the value, its noise sd, and the 95% interval as a tooltip. A
/// suppressed cell is the word `suppressed`, never a number.
pub(super) fn td(out: &mut String, cell: &Cell, kind: Kind) {
    match *cell {
        Cell::Value { value, sd } => {
            let _ = write!(
                out,
                "<td class=\"num\" title=\"95% interval: {}\">{} <span class=\"sd\">{}</span></td>",
                kind.interval(value, sd),
                kind.value(value),
                kind.sd(sd)
            );
        }
        Cell::Suppressed => out.push_str("<td class=\"suppressed\">suppressed</td>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fixed(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(fixed(999.5, 0), "1,000");
        assert_eq!(fixed(-0.2, 0), "0");
        assert_eq!(fixed(-12_345.0, 0), "-12,345");
        assert_eq!(fixed(f64::NAN, 2), "n/a");
        assert_eq!(Kind::Count.value(48_213.4), "48,213");
        assert_eq!(Kind::Share.value(0.1234), "12.3%");
        assert_eq!(Kind::Currency.value(1234.5), "1,234.50");
        assert_eq!(Kind::Plain.value(45.26), "45.3");
        assert_eq!(Kind::Share.sd(0.0042), "± 0.42 pp");
        assert_eq!(Kind::Count.sd(5.0), "± 5.0");
        assert_eq!(Kind::Count.sd(123.4), "± 123");
        assert_eq!(Kind::Count.interval(10.0, 10.0), "0 to 30");
        assert_eq!(Kind::Share.edge(0.5), "50%");
        assert_eq!(Kind::Currency.edge(2500.0), "2,500");
        assert_eq!(decimal(0.125, 4), "0.125");
        assert_eq!(decimal(2.0, 4), "2");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            Esc("<a href=\"x\">Tom & Jerry's</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
        assert_eq!(Esc("café ✓").to_string(), "café ✓");
    }

    #[test]
    fn suppressed_cell_has_no_number() {
        let mut out = String::new();
        td(&mut out, &Cell::Suppressed, Kind::Count);
        assert_eq!(out, "<td class=\"suppressed\">suppressed</td>");
        assert_eq!(cell_text(&Cell::Suppressed, Kind::Share), "suppressed");
    }
}
