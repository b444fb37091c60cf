//! The job-level sections: header, what the noise means, privacy, population, cluster quality,
//! budgets and drift.

use std::fmt::Write;

use super::format::{Esc, Kind, decimal, fixed, td};
use super::svg::{self, BudgetBar};
use super::{close_section, empty, noise_note, open_section};
use crate::report::{Cell, ProfileReport};

/// What every figure's `±` means; the first lines of the noise section.
const GENERAL: &str = "Every number in this report is an estimate. Before any figure left the \
    nodes, random noise was added to it, so that no single customer can be recognized from the \
    report. Next to each number, <q>± s</q> is the standard deviation of that noise: the true \
    value lies within ± 1.96 s of the estimate 95% of the time (the 95% interval; hover over a \
    number to see it). In the charts the whiskers are these 95% intervals.";

/// What the noise means for each kind of figure.
pub(super) const COUNTS: &str = "a count is off by a few customers, whatever its size: the ± \
    is the same for 20 and for 20,000 customers, so small counts are relatively less precise.";
/// Shares and rates.
pub(super) const SHARES: &str = "a share or rate is a ratio of two noisy figures; the smaller \
    the segment, the wider its interval.";
/// Means.
pub(super) const MEANS: &str = "a mean is a noisy sum divided by a noisy count; values outside \
    the job's bounds for a feature were counted at the bound before summing.";
/// Histograms and quantiles.
pub(super) const HISTOGRAMS: &str = "each bin is a noisy count; the quantiles are read from \
    the noisy histogram, so they are only as precise as the bins are narrow.";
/// Lifts.
pub(super) const LIFTS: &str = "a lift is called over- or under-indexing only when it differs \
    from 1 by more than twice its noise standard deviation; the others are not distinguishable \
    from noise and should not be acted on.";
/// Drift.
pub(super) const DRIFT: &str = "both versions are noisy: a change smaller than 1.96 times \
    the combined standard deviation of the two sizes may be noise alone.";
/// Clustering.
pub(super) const CLUSTERS: &str = "k-means ran on noisy sums, so centroids and costs are \
    approximate; the mean cost is measured with every feature scaled to 0-1.";

/// The page header: name, date, version, nodes, minimum cell size.
pub(super) fn header(out: &mut String, r: &ProfileReport) {
    let nodes: Vec<String> = r.nodes.iter().map(|n| Esc(n).to_string()).collect();
    let _ = writeln!(
        out,
        "<header id=\"header\"><p class=\"kicker\">fedprof · federated customer profile</p>\
         <h1>{}</h1><dl class=\"facts\">\
         <div><dt>As of</dt><dd>{}</dd></div>\
         <div><dt>Model version</dt><dd>{}</dd></div>\
         <div><dt>Nodes ({})</dt><dd>{}</dd></div>\
         <div><dt>Minimum cell size</dt><dd>{} customers</dd></div>\
         </dl></header>",
        Esc(&r.name),
        Esc(&r.as_of),
        r.model_version,
        r.nodes.len(),
        if nodes.is_empty() {
            "none".to_owned()
        } else {
            nodes.join(", ")
        },
        Kind::Count.value(r.min_cell_size as f64)
    );
}

/// What the noise means, per kind of figure, and the job's own notes.
pub(super) fn noise(out: &mut String, r: &ProfileReport) {
    open_section(out, "noise");
    let _ = write!(
        out,
        "<p>{GENERAL}</p><p><strong>Suppressed:</strong> when the noisy count behind a figure \
         is under the minimum cell size ({} customers), the figure is not released: the word \
         <span class=\"suppressed\">suppressed</span> stands in its place and charts leave a \
         hatched slot.</p><ul>",
        Kind::Count.value(r.min_cell_size as f64)
    );
    for (what, text) in [
        ("Counts", COUNTS),
        ("Shares and rates", SHARES),
        ("Means", MEANS),
        ("Histograms and quantiles", HISTOGRAMS),
        ("Lifts", LIFTS),
        ("Drift", DRIFT),
        ("Clusters", CLUSTERS),
    ] {
        let _ = write!(out, "<li><strong>{what}:</strong> {text}</li>");
    }
    out.push_str("</ul>");
    if !r.notes.is_empty() {
        out.push_str("<h3>Notes from this job</h3><ul>");
        for note in &r.notes {
            let _ = write!(out, "<li>{}</li>", Esc(note));
        }
        out.push_str("</ul>");
    }
    close_section(out);
}

/// The sentence every budget figure needs next to it (review finding H5).
const RATE_LIMIT: &str = "<p class=\"rate-limit\">A period cap is a rate limit, not a lifetime \
     bound: each node's cap starts again every period while the same customers are released \
     again, so what a customer has lost is the sum over all periods.</p>";

/// What the guarantee rests on, in plain words (docs/PRIVACY.md, "The guarantee").
const WHO_SEES_WHAT: &str = "<p class=\"who-sees-what\">Who sees what: the coordinator only ever \
     sees the sum of at least the required number of nodes, each node's contribution masked and \
     noised; the noise that protects a figure is counted only from the nodes assumed honest, at \
     least one node being assumed to collude (every node receives the figures and knows its own \
     noise). Every node checked each release against its own floor (assumed colluders, the most \
     it spends per release, per job and per analyst) and paid for it in its own signed ledger \
     before anything left it; the ledgers record the query, the job and the analyst of every \
     release, and an auditor can recompute every cost from them.</p>";

/// The privacy cost and the releases.
pub(super) fn privacy(out: &mut String, r: &ProfileReport) {
    let p = &r.privacy;
    open_section(out, "privacy");
    let _ = write!(
        out,
        "<p>The privacy unit is a customer at one node. For such a customer this job costs \
         <strong>ρ = {}</strong> ({}) in zero-concentrated differential privacy, which implies \
         (ε, δ)-differential privacy with <strong>ε = {}</strong> at <strong>δ = {}</strong>; \
         each release's share is in the table below.</p>",
        Esc(&p.rho),
        decimal(p.rho_f64, 4),
        decimal(p.epsilon, 3),
        Esc(&format!("{:e}", p.delta))
    );
    let who = if p.max_holders_declared {
        "the federation's declared maximum"
    } else {
        "every contributing node, as the federation declared no maximum"
    };
    let _ = write!(
        out,
        "<p>A person whose records sit at several nodes loses more: their records at the \
         contributing nodes add up in the sum, so a release costs them the square of that \
         number of nodes times its ρ. For a person at <strong>{} nodes</strong> ({who}), this \
         job costs <strong>ρ = {}</strong> ({}), <strong>ε = {}</strong> at the same δ.</p>",
        p.max_holders,
        Esc(&p.person_rho),
        decimal(p.person_rho_f64, 4),
        decimal(p.person_epsilon, 3),
    );
    let known: Vec<String> = r
        .budgets
        .iter()
        .filter_map(|b| {
            let c = b.cumulative?;
            let e = b
                .cumulative_epsilon
                .map_or_else(String::new, |e| format!(", ε = {}", decimal(e, 3)));
            Some(format!("{} ρ = {}{e}", Esc(&b.node), decimal(c, 4)))
        })
        .collect();
    if !known.is_empty() {
        let _ = write!(
            out,
            "<p>Spent by each node over all its budget periods, this job included (for one \
             customer at that node): {}.</p>",
            known.join("; ")
        );
    }
    out.push_str(RATE_LIMIT);
    out.push_str(WHO_SEES_WHAT);
    if p.releases.is_empty() {
        empty(out, "No release is recorded for this job.");
    } else {
        out.push_str(
            "<table><thead><tr><th>Release</th><th>ρ per node</th><th>ε</th>\
             <th>Noise sd of one count (customers)</th><th>Nodes</th></tr></thead><tbody>",
        );
        for rel in &p.releases {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                Esc(&rel.label),
                decimal(rel.rho, 4),
                decimal(rel.epsilon, 3),
                fixed(rel.count_sd, 2),
                rel.contributors
            );
        }
        let _ = write!(
            out,
            "</tbody><tfoot><tr class=\"total\"><th scope=\"row\">Total</th>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td></td><td></td></tr></tfoot></table>",
            decimal(p.rho_f64, 4),
            decimal(p.epsilon, 3)
        );
    }
    noise_note(
        out,
        "each release added noise whose standard deviation on one count is shown above; the \
         more budget (ρ) a release had, the less noise.",
    );
    close_section(out);
}

/// The population.
pub(super) fn population(out: &mut String, r: &ProfileReport) {
    open_section(out, "population");
    match r.population {
        Cell::Value { value, sd } => {
            let _ = write!(
                out,
                "<p class=\"big\">{} <span class=\"sd\">{}</span> customers</p>\
                 <p>95% interval: {} customers.</p>",
                Kind::Count.value(value),
                Kind::Count.sd(sd),
                Kind::Count.interval(value, sd)
            );
        }
        Cell::Suppressed => {
            out.push_str("<p class=\"big suppressed\">suppressed</p>");
        }
    }
    noise_note(out, COUNTS);
    close_section(out);
}

/// Clustering quality and centroids of the k-means segmentations.
pub(super) fn quality(out: &mut String, r: &ProfileReport) {
    open_section(out, "quality");
    let clustered: Vec<_> = r
        .segmentations
        .iter()
        .filter_map(|s| s.quality.as_ref().map(|q| (s, q)))
        .collect();
    if clustered.is_empty() {
        empty(out, "No k-means segmentation in this job.");
    } else {
        out.push_str(
            "<table><thead><tr><th>Segmentation</th><th>Lloyd iterations</th>\
             <th>Mean squared distance to centroid (0-1 scale)</th><th>ρ spent on clustering</th>\
             </tr></thead><tbody>",
        );
        for (s, q) in &clustered {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td>",
                Esc(&s.name),
                q.iterations
            );
            td(out, &q.mean_cost, Kind::Fine);
            let _ = write!(out, "<td class=\"num\">{}</td></tr>", decimal(q.rho, 4));
        }
        out.push_str("</tbody></table>");
    }
    for s in &r.segmentations {
        if s.segments.iter().all(|g| g.centroid.is_none()) {
            continue;
        }
        let _ = write!(
            out,
            "<h3>Centroids: {}</h3><p class=\"desc\">In the model's dimension order, in feature \
             units.</p><table><tbody>",
            Esc(&s.name)
        );
        for g in &s.segments {
            let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(&g.name));
            match &g.centroid {
                Some(c) => {
                    let coords: Vec<String> = c.iter().map(|v| Kind::Plain.value(*v)).collect();
                    let _ = write!(out, "<td class=\"num\">({})</td></tr>", coords.join(", "));
                }
                None => out.push_str("<td class=\"na\">—</td></tr>"),
            }
        }
        out.push_str("</tbody></table>");
    }
    noise_note(out, CLUSTERS);
    close_section(out);
}

/// Budget spent per node against its cap.
pub(super) fn budgets(out: &mut String, r: &ProfileReport) {
    open_section(out, "budgets");
    if r.budgets.is_empty() {
        empty(out, "No node ledger was available for this report.");
        close_section(out);
        return;
    }
    let bars: Vec<BudgetBar<'_>> = r
        .budgets
        .iter()
        .map(|b| BudgetBar {
            node: &b.node,
            spent: b.spent,
            cap: b.cap,
        })
        .collect();
    out.push_str("<div class=\"figure scroll\">");
    svg::budget_bars(out, &bars);
    out.push_str(
        "</div><table><thead><tr><th>Node</th><th>ρ spent</th><th>ρ cap</th><th>Used</th>\
         <th>Period</th><th>ρ over all periods</th><th>ε over all periods</th>\
         <th>Lifetime cap</th></tr></thead><tbody>",
    );
    for b in &r.budgets {
        let used = if b.cap > 0.0 {
            Kind::Share.value(b.spent / b.cap)
        } else {
            "n/a".to_owned()
        };
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{used}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            Esc(&b.node),
            decimal(b.spent, 4),
            decimal(b.cap, 4),
            Esc(&b.period),
            b.cumulative
                .map_or_else(|| "unknown".to_owned(), |c| decimal(c, 4)),
            b.cumulative_epsilon
                .map_or_else(|| "unknown".to_owned(), |e| decimal(e, 3)),
            b.lifetime_cap
                .map_or_else(|| "none".to_owned(), |c| decimal(c, 4)),
        );
    }
    out.push_str("</tbody></table>");
    noise_note(
        out,
        "budgets are exact: they are read from the nodes' ledgers, not estimated. A node \
         refuses any release that would take its spending over the cap of the current period, \
         or over its lifetime cap where it has one.",
    );
    out.push_str(RATE_LIMIT);
    close_section(out);
}

/// Changes against the previous model version.
pub(super) fn drift(out: &mut String, r: &ProfileReport) {
    open_section(out, "drift");
    let Some(d) = &r.drift else {
        empty(
            out,
            "This is the first version of this model: there is nothing to compare with.",
        );
        close_section(out);
        return;
    };
    let _ = write!(
        out,
        "<p>Compared with model version {} (as of {}).</p>",
        d.previous_version,
        Esc(&d.previous_as_of)
    );
    if d.sizes.is_empty() {
        empty(out, "No segment sizes to compare.");
    } else {
        out.push_str(
            "<table><thead><tr><th>Segmentation</th><th>Segment</th><th>Before</th><th>Now</th>\
             <th>Change</th><th>Reading</th></tr></thead><tbody>",
        );
        for c in &d.sizes {
            let _ = write!(
                out,
                "<tr><td>{}</td><th scope=\"row\">{}</th>",
                Esc(&c.segmentation),
                Esc(&c.segment)
            );
            td(out, &c.before, Kind::Count);
            td(out, &c.now, Kind::Count);
            match (c.before, c.now) {
                (Cell::Value { value: b, sd: sb }, Cell::Value { value: n, sd: sn }) => {
                    let change = Cell::Value {
                        value: n - b,
                        sd: sb.hypot(sn),
                    };
                    td(out, &change, Kind::Count);
                    let beyond = (n - b).abs() > 1.96 * sb.hypot(sn);
                    out.push_str(if beyond {
                        "<td class=\"over\">changed beyond the noise</td>"
                    } else {
                        "<td class=\"noise\">not distinguishable from noise</td>"
                    });
                }
                _ => out.push_str(
                    "<td class=\"suppressed\">suppressed</td><td class=\"noise\">cannot be \
                     compared</td>",
                ),
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    if !d.centroid_moves.is_empty() {
        out.push_str(
            "<h3>Centroid moves</h3><table><thead><tr><th>Segment</th>\
             <th>Distance moved (0-1 scale)</th></tr></thead><tbody>",
        );
        for (segment, distance) in &d.centroid_moves {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td></tr>",
                Esc(segment),
                fixed(*distance, 3)
            );
        }
        out.push_str("</tbody></table>");
    }
    noise_note(out, DRIFT);
    close_section(out);
}
