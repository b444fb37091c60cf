//! Per-segmentation sections: sizes, profile heatmaps, cross-tabs, risk and lifts.

use std::fmt::Write;

use super::format::{Esc, Kind, td};
use super::overview::{COUNTS, LIFTS, MEANS, SHARES};
use super::svg::{self, HeatColumn, Panel};
use super::{close_section, empty, noise_note, open_section};
use crate::report::{Cell, Lift, ProfileReport, Segment, Segmentation};

/// A segmentation's heading and description.
fn heading(out: &mut String, s: &Segmentation) {
    let _ = write!(
        out,
        "<h3>{}</h3><p class=\"desc\">{}</p>",
        Esc(&s.name),
        Esc(&s.description)
    );
}

/// The names of `s`'s segments.
fn names(s: &Segmentation) -> Vec<&str> {
    s.segments.iter().map(|g| g.name.as_str()).collect()
}

/// The distinct keys `keys` yields over all segments, in order of first appearance.
fn union<'a>(s: &'a Segmentation, keys: impl Fn(&'a Segment) -> Vec<&'a str>) -> Vec<&'a str> {
    let mut all: Vec<&str> = Vec::new();
    for g in &s.segments {
        for k in keys(g) {
            if !all.contains(&k) {
                all.push(k);
            }
        }
    }
    all
}

/// Segment sizes: bars with 95% whiskers, and a table with shares.
pub(super) fn sizes(out: &mut String, r: &ProfileReport) {
    open_section(out, "segment-sizes");
    if r.segmentations.is_empty() {
        empty(out, "No segmentation in this report.");
    }
    for s in &r.segmentations {
        out.push_str("<div class=\"figure\">");
        heading(out, s);
        if s.segments.is_empty() {
            empty(out, "No segment.");
            out.push_str("</div>");
            continue;
        }
        let panel = Panel {
            title: "Customers",
            kind: Kind::Count,
            class: "bar",
            cells: s.segments.iter().map(|g| g.size).collect(),
        };
        let caption = format!("Segment sizes: {}", s.name);
        out.push_str("<div class=\"scroll\">");
        svg::hbars(out, "segment-sizes", &caption, &names(s), &[panel]);
        out.push_str(
            "</div><table><thead><tr><th>Segment</th><th>Customers</th>\
             <th>Share of population</th></tr></thead><tbody>",
        );
        for g in &s.segments {
            let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(&g.name));
            td(out, &g.size, Kind::Count);
            td(out, &g.share, Kind::Share);
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    noise_note(out, &format!("{COUNTS} Whiskers are 95% intervals."));
    close_section(out);
}

/// Segment profiles: a heatmap of feature means per segment, and the means with their noise.
pub(super) fn profiles(out: &mut String, r: &ProfileReport) {
    open_section(out, "segment-profiles");
    if r.segmentations.is_empty() {
        empty(out, "No segmentation in this report.");
    }
    for s in &r.segmentations {
        out.push_str("<div class=\"figure\">");
        heading(out, s);
        let features = union(s, |g| g.means.iter().map(|m| m.feature.as_str()).collect());
        if features.is_empty() || s.segments.is_empty() {
            empty(out, "No feature mean was released for this segmentation.");
            out.push_str("</div>");
            continue;
        }
        let unit = |f: &str| {
            s.segments
                .iter()
                .flat_map(|g| &g.means)
                .find(|m| m.feature == f)
                .map_or("", |m| m.unit.as_str())
        };
        let columns: Vec<HeatColumn<'_>> = features
            .iter()
            .map(|f| HeatColumn {
                title: f,
                kind: Kind::of_unit(unit(f)),
            })
            .collect();
        let mean = |g: &Segment, f: &str| g.means.iter().find(|m| m.feature == f).map(|m| m.mean);
        let cells: Vec<Vec<Option<Cell>>> = s
            .segments
            .iter()
            .map(|g| features.iter().map(|f| mean(g, f)).collect())
            .collect();
        let caption = format!("Mean of each feature per segment: {}", s.name);
        out.push_str("<div class=\"scroll\">");
        svg::heatmap(out, &caption, &names(s), &columns, &cells);
        out.push_str(
            "</div><details><summary>Means with their noise</summary><div class=\"scroll\">\
             <table><thead><tr><th>Segment</th>",
        );
        for f in &features {
            let u = unit(f);
            let u = if u.is_empty() {
                String::new()
            } else {
                format!(" ({})", Esc(u))
            };
            let _ = write!(out, "<th>{}{u}</th>", Esc(f));
        }
        out.push_str("</tr></thead><tbody>");
        for (g, row) in s.segments.iter().zip(&cells) {
            let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(&g.name));
            for (cell, column) in row.iter().zip(&columns) {
                match cell {
                    Some(c) => td(out, c, column.kind),
                    None => out.push_str("<td class=\"na\">—</td>"),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div></details></div>");
    }
    noise_note(
        out,
        &format!(
            "{MEANS} Colours compare segments within a column: the darkest cell is the highest \
             segment mean of that feature."
        ),
    );
    close_section(out);
}

/// A segments-by-levels table of shares; `share(segment, level)` is `None` when not released.
fn share_table<'a>(
    out: &mut String,
    title: &str,
    s: &'a Segmentation,
    levels: &[&'a str],
    share: impl Fn(&'a Segment, &str) -> Option<Cell>,
) {
    let _ = write!(
        out,
        "<h4>{} × {}</h4><div class=\"scroll\"><table><thead><tr><th>Segment</th>",
        Esc(&s.name),
        Esc(title)
    );
    for l in levels {
        let _ = write!(out, "<th>{}</th>", Esc(l));
    }
    out.push_str("</tr></thead><tbody>");
    for g in &s.segments {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(&g.name));
        for l in levels {
            match share(g, l) {
                Some(cell) => td(out, &cell, Kind::Share),
                None => out.push_str("<td class=\"na\">—</td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// The share of `level` in a channel or category mix.
fn lift_share(lifts: &[Lift], level: &str) -> Option<Cell> {
    lifts.iter().find(|l| l.level == level).map(|l| l.share)
}

/// Cross-tabs: segments by each categorical feature, by channel and by category.
pub(super) fn crosstabs(out: &mut String, r: &ProfileReport) {
    open_section(out, "crosstabs");
    let mut any = false;
    for s in &r.segmentations {
        let features = union(s, |g| g.levels.iter().map(|m| m.feature.as_str()).collect());
        let channels = union(s, |g| g.channels.iter().map(|l| l.level.as_str()).collect());
        let categories = union(s, |g| {
            g.categories.iter().map(|l| l.level.as_str()).collect()
        });
        if features.is_empty() && channels.is_empty() && categories.is_empty() {
            continue;
        }
        any = true;
        out.push_str("<div class=\"figure\">");
        heading(out, s);
        for f in &features {
            let levels = union(s, |g| {
                g.levels
                    .iter()
                    .filter(|m| m.feature == *f)
                    .flat_map(|m| m.shares.iter().map(|(l, _)| l.as_str()))
                    .collect()
            });
            share_table(out, f, s, &levels, |g, level| {
                let mix = g.levels.iter().find(|m| m.feature == *f)?;
                mix.shares.iter().find(|(l, _)| l == level).map(|(_, c)| *c)
            });
        }
        if !channels.is_empty() {
            share_table(out, "channel", s, &channels, |g, l| {
                lift_share(&g.channels, l)
            });
        }
        if !categories.is_empty() {
            share_table(out, "category", s, &categories, |g, l| {
                lift_share(&g.categories, l)
            });
        }
        out.push_str("</div>");
    }
    if !any {
        empty(out, "No categorical mix was released per segment.");
    }
    noise_note(
        out,
        &format!(
            "{SHARES} Each row is one segment's mix; a dash means the level was not released."
        ),
    );
    close_section(out);
}

/// Credit risk per segment: default rate and utilization, and the delinquency mix.
pub(super) fn risk(out: &mut String, r: &ProfileReport) {
    open_section(out, "risk");
    let mut any = false;
    for s in &r.segmentations {
        let with_risk: Vec<_> = s
            .segments
            .iter()
            .filter_map(|g| g.risk.as_ref().map(|k| (g, k)))
            .collect();
        if with_risk.is_empty() {
            continue;
        }
        any = true;
        out.push_str("<div class=\"figure\">");
        heading(out, s);
        let labels: Vec<&str> = with_risk.iter().map(|(g, _)| g.name.as_str()).collect();
        let panels = [
            Panel {
                title: "Default rate",
                kind: Kind::Share,
                class: "bar risk",
                cells: with_risk.iter().map(|(_, k)| k.default_rate).collect(),
            },
            Panel {
                title: "Mean utilization",
                kind: Kind::Share,
                class: "bar util",
                cells: with_risk.iter().map(|(_, k)| k.utilization).collect(),
            },
        ];
        let caption = format!("Default rate and utilization per segment: {}", s.name);
        out.push_str("<div class=\"scroll\">");
        svg::hbars(out, "risk", &caption, &labels, &panels);
        let mut buckets: Vec<&str> = Vec::new();
        for (_, k) in &with_risk {
            for (b, _) in &k.delinquency {
                if !buckets.contains(&b.as_str()) {
                    buckets.push(b);
                }
            }
        }
        out.push_str(
            "</div><div class=\"scroll\"><table><thead><tr><th rowspan=\"2\">Segment</th>\
             <th rowspan=\"2\">Default rate</th><th rowspan=\"2\">Mean utilization</th>",
        );
        if !buckets.is_empty() {
            let _ = write!(
                out,
                "<th colspan=\"{}\">Delinquency (days past due)</th></tr><tr>",
                buckets.len()
            );
            for b in &buckets {
                let _ = write!(out, "<th>{}</th>", Esc(b));
            }
        }
        out.push_str("</tr></thead><tbody>");
        for (g, k) in &with_risk {
            let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(&g.name));
            td(out, &k.default_rate, Kind::Share);
            td(out, &k.utilization, Kind::Share);
            for b in &buckets {
                match k.delinquency.iter().find(|(name, _)| name == b) {
                    Some((_, cell)) => td(out, cell, Kind::Share),
                    None => out.push_str("<td class=\"na\">—</td>"),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
        let without = s.segments.len() - with_risk.len();
        if without > 0 {
            let _ = write!(
                out,
                "<p class=\"desc\">{without} segment(s) have no credit data and are not shown.</p>"
            );
        }
        out.push_str("</div>");
    }
    if !any {
        empty(out, "No node had credit data: there is no risk profile.");
    }
    noise_note(
        out,
        &format!("{SHARES} Rates are over the customers with credit data in each segment."),
    );
    close_section(out);
}

/// How a lift reads: its CSS class and words.
fn reading(l: &Lift) -> (&'static str, &'static str) {
    match (l.share, l.lift) {
        (Cell::Suppressed, _) | (_, None) => ("suppressed", "suppressed"),
        (_, Some(x)) if l.significant && x > 1.0 => ("over", "over-indexing"),
        (_, Some(x)) if l.significant && x < 1.0 => ("under", "under-indexing"),
        _ => ("noise", "not distinguishable from noise"),
    }
}

/// Marketing lifts: each segment's channel and category mix against the population.
pub(super) fn lifts(out: &mut String, r: &ProfileReport) {
    open_section(out, "lifts");
    let mut any = false;
    for s in &r.segmentations {
        let rows: Vec<(&Segment, &str, &Lift)> = s
            .segments
            .iter()
            .flat_map(|g| {
                let channels = g.channels.iter().map(move |l| (g, "channel", l));
                channels.chain(g.categories.iter().map(move |l| (g, "category", l)))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        any = true;
        out.push_str("<div class=\"figure\">");
        heading(out, s);
        let notable: Vec<String> = rows
            .iter()
            .filter_map(|(g, mix, l)| {
                let (class, words) = reading(l);
                matches!(class, "over" | "under").then(|| {
                    format!(
                        "<span class=\"{class}\">{}</span> is {words} on {mix} {} ({}×)",
                        Esc(&g.name),
                        Esc(&l.level),
                        l.lift.map_or_else(String::new, |x| format!("{x:.2}"))
                    )
                })
            })
            .collect();
        if notable.is_empty() {
            empty(
                out,
                "No lift in this segmentation is distinguishable from noise.",
            );
        } else {
            let _ = write!(
                out,
                "<p>Distinguishable from noise: {}.</p>",
                notable.join("; ")
            );
        }
        out.push_str(
            "<table><thead><tr><th>Segment</th><th>Mix</th><th>Level</th>\
             <th>Share in segment</th><th>Lift</th><th>Reading</th></tr></thead><tbody>",
        );
        for g in &s.segments {
            let mine: Vec<_> = rows
                .iter()
                .filter(|(h, _, _)| std::ptr::eq(*h, g))
                .collect();
            for (i, (_, mix, l)) in mine.iter().enumerate() {
                let (class, words) = reading(l);
                let sig = if matches!(class, "over" | "under") {
                    " class=\"sig\""
                } else {
                    ""
                };
                let _ = write!(out, "<tr{sig}>");
                if i == 0 {
                    let _ = write!(
                        out,
                        "<th scope=\"rowgroup\" rowspan=\"{}\">{}</th>",
                        mine.len(),
                        Esc(&g.name)
                    );
                }
                let _ = write!(out, "<td>{mix}</td><td>{}</td>", Esc(&l.level));
                td(out, &l.share, Kind::Share);
                match (l.share, l.lift) {
                    (Cell::Value { .. }, Some(x)) => {
                        let _ = write!(out, "<td class=\"num\">{x:.2}×</td>");
                    }
                    _ => out.push_str("<td class=\"suppressed\">suppressed</td>"),
                }
                let _ = write!(out, "<td class=\"{class}\">{words}</td></tr>");
            }
        }
        out.push_str("</tbody></table></div>");
    }
    if !any {
        empty(out, "No channel or category mix was released per segment.");
    }
    noise_note(out, LIFTS);
    close_section(out);
}
