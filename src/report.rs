//! Human-readable rendering of job outcomes.

use std::fmt::Write;

use fedprof_node::data::TransactionTotals;
use fedprof_protocol::{JobOutcome, JobSpec, NodeFailure};

/// Formats minor units with `decimals` places: `-123` with 2 gives `-1.23`.
pub fn format_minor(amount: i64, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let abs = amount.unsigned_abs() as u128;
    let sign = if amount < 0 { "-" } else { "" };
    let int = group_thousands(abs / scale);
    if decimals == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{:0width$}", abs % scale, width = usize::from(decimals))
    }
}

fn group_thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Renders an outcome as a table plus failures.
pub fn render_outcome(outcome: &JobOutcome, amount_decimals: u8) -> String {
    let mut out = String::new();
    match outcome {
        JobOutcome::Completed { result, failures } => {
            let names: Vec<&str> = result.contributors.iter().map(|n| n.as_str()).collect();
            let _ = writeln!(out, "Job {} completed: {} contributing node(s): {}", result.spec.name(), names.len(), names.join(", "));
            match (&result.spec, TransactionTotals::from_ring(&result.values)) {
                (JobSpec::TransactionTotals, Some(t)) => {
                    let rows = [
                        ("customers (summed over nodes)", group_thousands(u128::from(t.customers))),
                        ("transactions", group_thousands(u128::from(t.rows))),
                        ("total amount", format_minor(t.amount_minor, amount_decimals)),
                    ];
                    out.push_str(&table(&["measure", "federated total"], &rows.map(|(a, b)| [a.to_owned(), b])));
                }
                _ => {
                    let _ = writeln!(out, "values: {:?}", result.values);
                }
            }
            render_failures(&mut out, failures);
        }
        JobOutcome::Aborted { reason, failures } => {
            let _ = writeln!(out, "Job aborted, nothing released: {reason}");
            render_failures(&mut out, failures);
        }
    }
    out
}

fn render_failures(out: &mut String, failures: &[NodeFailure]) {
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "Nodes that did not contribute:");
    for f in failures {
        let _ = writeln!(out, "  {}: {}", f.node, f.reason);
    }
}

/// A plain-text table with right-aligned value columns.
pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i == 0 {
                let _ = write!(s, "  {cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{cell}", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(rule.iter().map(String::as_str).collect()));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_exactly() {
        assert_eq!(format_minor(-123, 2), "-1.23");
        assert_eq!(format_minor(123_456_789, 2), "1,234,567.89");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(i64::MIN, 2), "-92,233,720,368,547,758.08");
        assert_eq!(format_minor(1000, 0), "1,000");
    }

    #[test]
    fn tables_align() {
        let t = table(&["a", "value"], &[["x".into(), "1".into()], ["longer".into(), "22".into()]]);
        assert_eq!(t, "  a       value\n  ------  -----\n  x           1\n  longer     22\n");
    }
}
