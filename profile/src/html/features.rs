//! Population-wide feature sections: numeric histograms with quantiles, and categorical
//! distributions.

use std::fmt::Write;

use super::format::{Esc, Kind, td};
use super::overview::{COUNTS, HISTOGRAMS};
use super::svg::{self, HistBar, Panel};
use super::{close_section, empty, noise_note, open_section};
use crate::report::{Bin, Cell, Distribution, ProfileReport};

/// A unit as shown after a feature name (`currency` and `share` say it in the numbers).
fn unit_suffix(unit: &str) -> String {
    match unit {
        "" | "currency" | "share" | "%" => String::new(),
        u => format!(" <span class=\"desc\">({})</span>", Esc(u)),
    }
}

/// A bin's range as text: `< hi`, `lo – hi`, `≥ lo`.
fn bin_label(bin: &Bin, kind: Kind) -> String {
    match (bin.lo, bin.hi) {
        (None, Some(hi)) => format!("< {}", kind.edge(hi)),
        (Some(lo), Some(hi)) => format!("{} – {}", kind.edge(lo), kind.edge(hi)),
        (Some(lo), None) => format!("≥ {}", kind.edge(lo)),
        (None, None) => "all".to_owned(),
    }
}

/// A quantile's name: `median` or `pNN`.
fn quantile_name(p: f64) -> String {
    if (p - 0.5).abs() < 1e-9 {
        "median".to_owned()
    } else {
        format!("p{:.0}", p * 100.0)
    }
}

/// Where `q` falls in `bins`, in bins from the left (within a closed bin, by interpolation).
fn position(bins: &[Bin], q: f64) -> Option<f64> {
    bins.iter().enumerate().find_map(|(i, b)| {
        let above = b.lo.is_none_or(|lo| q >= lo);
        let below = b.hi.is_none_or(|hi| q < hi);
        (above && below).then(|| match (b.lo, b.hi) {
            (Some(lo), Some(hi)) if hi > lo => i as f64 + (q - lo) / (hi - lo),
            _ => i as f64 + 0.5,
        })
    })
}

/// One numeric feature: histogram, quantiles and the bins as a table.
fn distribution(out: &mut String, d: &Distribution) {
    let kind = Kind::of_unit(&d.unit);
    let _ = write!(
        out,
        "<div class=\"figure\"><h3>{}{}</h3>",
        Esc(&d.feature),
        unit_suffix(&d.unit)
    );
    if d.bins.is_empty() {
        empty(out, "No histogram was released for this feature.");
    } else {
        let bars: Vec<HistBar> = d
            .bins
            .iter()
            .map(|b| HistBar {
                label: bin_label(b, kind),
                cell: b.count,
            })
            .collect();
        let median = d
            .quantiles
            .iter()
            .find(|(p, _)| (p - 0.5).abs() < 1e-9)
            .and_then(|(_, q)| position(&d.bins, *q));
        let caption = format!("Histogram of {} (customers per bin)", d.feature);
        out.push_str("<div class=\"scroll\">");
        svg::histogram(out, &caption, &bars, median.map(|m| (m, "median")));
        out.push_str("</div>");
    }
    if !d.quantiles.is_empty() {
        out.push_str("<table class=\"quantiles\"><thead><tr>");
        for (p, _) in &d.quantiles {
            let _ = write!(out, "<th>{}</th>", quantile_name(*p));
        }
        out.push_str("</tr></thead><tbody><tr>");
        for (_, q) in &d.quantiles {
            let _ = write!(out, "<td class=\"num\">{}</td>", kind.value(*q));
        }
        out.push_str("</tr></tbody></table>");
    }
    if !d.bins.is_empty() {
        out.push_str(
            "<details><summary>Bins</summary><table><thead><tr><th>Range</th>\
             <th>Customers</th></tr></thead><tbody>",
        );
        for b in &d.bins {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th>",
                Esc(&bin_label(b, kind))
            );
            td(out, &b.count, Kind::Count);
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></details>");
    }
    out.push_str("</div>");
}

/// The numeric features.
pub(super) fn distributions(out: &mut String, r: &ProfileReport) {
    open_section(out, "distributions");
    if r.distributions.is_empty() {
        empty(out, "No numeric feature distribution in this report.");
    }
    for d in &r.distributions {
        distribution(out, d);
    }
    noise_note(out, HISTOGRAMS);
    close_section(out);
}

/// The categorical features.
pub(super) fn categories(out: &mut String, r: &ProfileReport) {
    open_section(out, "categories");
    if r.categories.is_empty() {
        empty(out, "No categorical feature distribution in this report.");
    }
    let population = r.population.value().filter(|p| p.is_finite() && *p > 0.0);
    for c in &r.categories {
        let _ = write!(out, "<div class=\"figure\"><h3>{}</h3>", Esc(&c.feature));
        if c.levels.is_empty() {
            empty(out, "No level was released.");
            out.push_str("</div>");
            continue;
        }
        let labels: Vec<&str> = c.levels.iter().map(|(l, _)| l.as_str()).collect();
        let panel = Panel {
            title: "Customers",
            kind: Kind::Count,
            class: "bar",
            cells: c.levels.iter().map(|(_, cell)| *cell).collect(),
        };
        let caption = format!("Customers by {}", c.feature);
        out.push_str("<div class=\"scroll\">");
        svg::hbars(out, "category", &caption, &labels, &[panel]);
        out.push_str(
            "</div><table><thead><tr><th>Level</th><th>Customers</th>\
             <th>Share of population</th></tr></thead><tbody>",
        );
        for (level, cell) in &c.levels {
            let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(level));
            td(out, cell, Kind::Count);
            match (cell, population) {
                (Cell::Value { value, .. }, Some(p)) => {
                    let _ = write!(
                        out,
                        "<td class=\"num\">{}</td>",
                        Kind::Share.value(value / p)
                    );
                }
                (Cell::Value { .. }, None) => out.push_str("<td class=\"na\">—</td>"),
                (Cell::Suppressed, _) => out.push_str("<td class=\"suppressed\">suppressed</td>"),
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    noise_note(
        out,
        &format!(
            "{COUNTS} Shares of the population are computed here from the noisy counts; for a \
             mix (channel or category mix) each customer counts once in total, split by share."
        ),
    );
    close_section(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(lo: Option<f64>, hi: Option<f64>) -> Bin {
        Bin {
            lo,
            hi,
            count: Cell::Suppressed,
        }
    }

    #[test]
    fn bins_and_quantiles() {
        let bins = [
            bin(None, Some(10.0)),
            bin(Some(10.0), Some(20.0)),
            bin(Some(20.0), None),
        ];
        assert_eq!(bin_label(&bins[0], Kind::Plain), "< 10");
        assert_eq!(bin_label(&bins[1], Kind::Currency), "10 – 20");
        assert_eq!(bin_label(&bins[2], Kind::Share), "≥ 2,000%");
        assert_eq!(position(&bins, 15.0), Some(1.5));
        assert_eq!(position(&bins, -3.0), Some(0.5));
        assert_eq!(position(&bins, 99.0), Some(2.5));
        assert_eq!(quantile_name(0.5), "median");
        assert_eq!(quantile_name(0.1), "p10");
    }
}
