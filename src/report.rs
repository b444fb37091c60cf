//! Human-readable rendering of job outcomes.

use std::fmt::Write;

use fedprof_protocol::{JobOutcome, JobResult, JobSpec, NodeFailure};

/// Formats minor units with `decimals` places: `-123` with 2 gives `-1.23`.
pub fn format_minor(amount: i64, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let abs = amount.unsigned_abs() as u128;
    let sign = if amount < 0 { "-" } else { "" };
    let int = group_thousands(abs / scale);
    if decimals == 0 {
        format!("{sign}{int}")
    } else {
        format!(
            "{sign}{int}.{:0width$}",
            abs % scale,
            width = usize::from(decimals)
        )
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

/// The standard deviation of the total noise on each coordinate of a release: every
/// contributor added its share, so the variance is `node_variance * contributors`.
pub fn noise_sd(result: &JobResult) -> Vec<f64> {
    let n = result.contributors.len() as f64;
    result
        .release
        .node_variance
        .iter()
        .map(|v| (v.numer as f64 / v.denom.max(1) as f64 * n).sqrt())
        .collect()
}

/// The released values read back as signed integers (noise can push a small count below 0).
pub fn released_values(result: &JobResult) -> Vec<i64> {
    result
        .values
        .iter()
        .map(|v| fedprof_privacy::encoding::from_ring(*v))
        .collect()
}

/// Renders an outcome as a table plus failures.
pub fn render_outcome(outcome: &JobOutcome, amount_decimals: u8) -> String {
    let mut out = String::new();
    match outcome {
        JobOutcome::Completed { result, failures } => {
            let names: Vec<&str> = result.contributors.iter().map(|n| n.as_str()).collect();
            let _ = writeln!(
                out,
                "Job {} released: {} contributing node(s): {}",
                result.spec.name(),
                names.len(),
                names.join(", ")
            );
            let values = released_values(result);
            let sd = noise_sd(result);
            match (&result.spec, values.as_slice(), sd.as_slice()) {
                (JobSpec::TransactionTotals, [customers, rows, amount], [sd_c, sd_r, sd_a]) => {
                    let count = |v: i64| {
                        let sign = if v < 0 { "-" } else { "" };
                        format!("{sign}{}", group_thousands(u128::from(v.unsigned_abs())))
                    };
                    let ci = |sd: f64| format!("{:.0}", 1.96 * sd);
                    let money_ci =
                        |sd: f64| format_minor((1.96 * sd).round() as i64, amount_decimals);
                    let rows = [
                        [
                            "customers (summed over nodes)".to_owned(),
                            count(*customers),
                            ci(*sd_c),
                        ],
                        ["transactions".to_owned(), count(*rows), ci(*sd_r)],
                        [
                            "total amount".to_owned(),
                            format_minor(*amount, amount_decimals),
                            money_ci(*sd_a),
                        ],
                    ];
                    out.push_str(&table(
                        &["measure", "released (noisy)", "+/- 95% (noise)"],
                        &rows,
                    ));
                    let _ = writeln!(
                        out,
                        "Each customer counts for at most {} transactions and +/- {} of amount; \
                         every node added discrete Gaussian noise, so the figures are exact sums \
                         plus noise of the spread shown.",
                        result.release.max_rows_per_customer,
                        format_minor(
                            i64::try_from(result.release.max_abs_amount_minor).unwrap_or(i64::MAX),
                            amount_decimals
                        ),
                    );
                }
                _ => {
                    let _ = writeln!(out, "values: {values:?}");
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

/// The summary a profiling run prints: segment sizes per segmentation, the clustering quality,
/// what it cost, and where the files are.
pub fn profile_summary(
    r: &fedprof_profile::report::ProfileReport,
    paths: &[std::path::PathBuf],
) -> String {
    use fedprof_profile::report::Cell;
    let show = |c: &Cell, digits: usize| match c {
        Cell::Value { value, sd } => format!("{value:.digits$} ± {:.digits$}", 1.96 * sd),
        Cell::Suppressed => "suppressed".to_owned(),
    };
    let mut out = format!(
        "Profile {} as of {} (model version {}), nodes: {}\nPopulation: {} customers\n",
        r.name,
        r.as_of,
        r.model_version,
        r.nodes.join(", "),
        show(&r.population, 0)
    );
    for s in &r.segmentations {
        out.push_str(&format!("\n{} — {}\n", s.name, s.description));
        let rows: Vec<[String; 3]> = s
            .segments
            .iter()
            .map(|seg| {
                let share = match seg.share {
                    Cell::Value { value, sd } => {
                        format!("{:.1}% ± {:.1}", 100.0 * value, 196.0 * sd)
                    }
                    Cell::Suppressed => "suppressed".to_owned(),
                };
                [seg.name.clone(), show(&seg.size, 0), share]
            })
            .collect();
        out.push_str(&table(&["segment", "customers (95% CI)", "share"], &rows));
        if let Some(q) = &s.quality {
            out.push_str(&format!(
                "clustering: {} iterations, mean squared distance to centroid (normalized) {}, rho {:.4}\n",
                q.iterations,
                show(&q.mean_cost, 5),
                q.rho
            ));
        }
    }
    out.push_str(&format!(
        "\nPrivacy: rho {} per node ({} releases), epsilon {:.3} at delta {:e}\n",
        r.privacy.rho,
        r.privacy.releases.len(),
        r.privacy.epsilon,
        r.privacy.delta
    ));
    out.push_str(&format!(
        "  for a customer at one node; a person at {} nodes: rho {}, epsilon {:.3}\n",
        r.privacy.max_holders, r.privacy.person_rho, r.privacy.person_epsilon
    ));
    for b in &r.budgets {
        out.push_str(&format!(
            "  {}: spent {:.4} of cap {:.4} in {}\n",
            b.node, b.spent, b.cap, b.period
        ));
    }
    out.push_str("\nFiles:\n");
    for p in paths {
        out.push_str(&format!("  {}\n", p.display()));
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
        let t = table(
            &["a", "value"],
            &[["x".into(), "1".into()], ["longer".into(), "22".into()]],
        );
        assert_eq!(
            t,
            "  a       value\n  ------  -----\n  x           1\n  longer     22\n"
        );
    }
}
