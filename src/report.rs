//! Human-readable rendering of job outcomes.

use std::fmt::Write;

use fedprof_protocol::query::{NumericFeature, QueryPart, Segmenter};
use fedprof_protocol::{Escaped, JobOutcome, JobResult, JobSpec, NodeFailure};

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
            match totals_bounds(&result.spec) {
                Some(bounds) => render_totals(&mut out, &bounds, &values, &sd, amount_decimals),
                None => {
                    let _ = writeln!(out, "values: {values:?}");
                }
            }
            render_failures(&mut out, failures);
        }
        JobOutcome::Aborted { reason, failures } => {
            let _ = writeln!(out, "Job aborted, nothing released: {}", Escaped(reason));
            render_failures(&mut out, failures);
        }
    }
    out
}

/// The public bounds of a transaction-totals query (`fedprof job submit` without a job spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalsBounds {
    /// Fixed-point scale of the query.
    pub scale: u32,
    /// Transactions of one customer that count.
    pub max_rows: i64,
    /// Clipping of a customer's total amount, in minor units.
    pub amount: (i64, i64),
}

/// The bounds of `spec` when it is a totals query: every customer in one segment, parts
/// `[Count, Numeric{TxnCount, 0, R}, Numeric{MonetaryTotal, lo, hi}]`.
pub fn totals_bounds(spec: &JobSpec) -> Option<TotalsBounds> {
    let JobSpec::Features(q) = spec;
    match (&q.segmenter, q.parts.as_slice()) {
        (
            Segmenter::All,
            [
                QueryPart::Count,
                QueryPart::Numeric {
                    feature: NumericFeature::TxnCount,
                    lo: 0,
                    hi: rows,
                },
                QueryPart::Numeric {
                    feature: NumericFeature::MonetaryTotal,
                    lo,
                    hi,
                },
            ],
        ) => Some(TotalsBounds {
            scale: q.scale,
            max_rows: *rows,
            amount: (*lo, *hi),
        }),
        _ => None,
    }
}

/// A `Numeric` sum decoded into feature units, with its 95% noise half-width: each customer
/// contributed `scale * (x - lo) / (hi - lo)`, so the sum of `x` over `n` customers is
/// `n lo + (hi - lo) value / scale`. `n` is the released count (`count / scale`), so its noise
/// enters through `lo`; both coordinates carry independent noise of the same `sd`.
pub fn decode_numeric(
    count: i64,
    value: i64,
    (lo, hi): (i64, i64),
    scale: u32,
    sd: f64,
) -> (f64, f64) {
    let scale = f64::from(scale.max(1));
    let (lo, width) = (lo as f64, (hi as f64 - lo as f64));
    let estimate = count as f64 / scale * lo + width * value as f64 / scale;
    let spread = sd / scale * (width * width + lo * lo).sqrt();
    (estimate, 1.96 * spread)
}

/// The totals table: customers, transactions and amount, decoded into feature units.
fn render_totals(out: &mut String, b: &TotalsBounds, values: &[i64], sd: &[f64], decimals: u8) {
    let ([count, rows, amount, ..], [sd, ..]) = (values, sd) else {
        let _ = writeln!(out, "values: {values:?}");
        return;
    };
    let whole = |v: f64| {
        let r = v.round();
        let sign = if r < 0.0 { "-" } else { "" };
        format!("{sign}{}", group_thousands(r.abs() as u128))
    };
    let money = |v: f64| format_minor(v.round() as i64, decimals);
    let (customers, ci_c) = decode_numeric(0, *count, (0, 1), b.scale, *sd);
    let (txns, ci_r) = decode_numeric(*count, *rows, (0, b.max_rows), b.scale, *sd);
    let (total, ci_a) = decode_numeric(*count, *amount, b.amount, b.scale, *sd);
    let table_rows = [
        ["customers".to_owned(), whole(customers), whole(ci_c)],
        ["transactions".to_owned(), whole(txns), whole(ci_r)],
        ["total amount".to_owned(), money(total), money(ci_a)],
    ];
    out.push_str(&table(
        &["measure", "released (noisy)", "+/- 95% (noise)"],
        &table_rows,
    ));
    let _ = writeln!(
        out,
        "Each customer counts once (ids normalized as in every feature), for at most {} \
         transactions and an amount clipped to [{}, {}]; rows the nodes could not use are \
         quarantined there. Every node added discrete Gaussian noise, so the figures are exact \
         sums plus noise of the spread shown.",
        b.max_rows,
        format_minor(b.amount.0, decimals),
        format_minor(b.amount.1, decimals),
    );
}

fn render_failures(out: &mut String, failures: &[NodeFailure]) {
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "Nodes that did not contribute:");
    for f in failures {
        let _ = writeln!(out, "  {}: {}", f.node, Escaped(&f.reason));
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
    fn numeric_sums_decode_into_feature_units() {
        // 10 customers at scale 1000: count 10000; amounts in [0, 2000] summing to 5000 are
        // 5000 * 1000 / 2000 = 2500 scaled units.
        let (total, ci) = decode_numeric(10_000, 2_500, (0, 2_000), 1_000, 10.0);
        assert!((total - 5_000.0).abs() < 1e-9, "{total}");
        assert!((ci - 1.96 * 10.0 * 2.0).abs() < 1e-9, "{ci}");
        // With lo = -100 the count's n * lo enters: 10 * -100 + 200 * 500 / 1000 = -900.
        let (total, _) = decode_numeric(10_000, 500, (-100, 100), 1_000, 10.0);
        assert!((total + 900.0).abs() < 1e-9, "{total}");
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
