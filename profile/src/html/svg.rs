//! Hand-built inline SVG charts: horizontal bars with 95% whiskers, histograms, heatmaps and
//! budget bars.
//!
//! Every chart is an `<svg class="chart" data-chart="NAME">` with a `<title>`. A suppressed cell
//! is drawn as a hatched slot labelled "suppressed", never as a value. Colours come from the
//! page's CSS classes; the hatch pattern and the heatmap gradient are defined once per page in
//! [`DEFS`] and referenced as `url(#hatch)` and `url(#heat)`.

use std::fmt::Write;

use super::format::{Esc, Kind, cell_text};
use crate::report::Cell;

/// Shared pattern and gradient definitions, written once at the top of the page.
pub(super) const DEFS: &str = concat!(
    "<svg class=\"defs\" width=\"0\" height=\"0\" aria-hidden=\"true\" focusable=\"false\"><defs>",
    "<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" ",
    "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f2f2f2\"/>",
    "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b3b3b3\" stroke-width=\"2\"/></pattern>",
    "<linearGradient id=\"heat\"><stop offset=\"0\" stop-color=\"rgb(238,243,250)\"/>",
    "<stop offset=\"1\" stop-color=\"rgb(31,78,138)\"/></linearGradient>",
    "</defs></svg>"
);

/// Height of a bar chart row.
const ROW: f64 = 26.0;
/// Height of a bar.
const BAR: f64 = 16.0;
/// Labels longer than this are shortened (the full label is in the tooltip).
const MAX_LABEL: usize = 30;

/// A cell's value and noise sd, when it has a finite value.
fn finite(cell: &Cell) -> Option<(f64, f64)> {
    match *cell {
        Cell::Value { value, sd } if value.is_finite() => {
            Some((value, if sd.is_finite() { sd.abs() } else { 0.0 }))
        }
        _ => None,
    }
}

/// A label, shortened to [`MAX_LABEL`] characters.
fn short(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(MAX_LABEL - 1).collect();
        s.push('…');
        s
    }
}

/// Width of the label column for `labels`.
fn label_width<'a>(labels: impl Iterator<Item = &'a str>) -> f64 {
    let chars = labels.map(|l| short(l).chars().count()).max().unwrap_or(0);
    (chars as f64 * 7.0 + 16.0).clamp(60.0, 230.0)
}

/// Opens a chart.
fn open(out: &mut String, chart: &str, caption: &str, width: f64, height: f64) {
    let _ = write!(
        out,
        "<svg class=\"chart\" data-chart=\"{chart}\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         width=\"{width:.0}\" height=\"{height:.0}\" role=\"img\"><title>{}</title>",
        Esc(caption)
    );
}

/// The largest upper end of a 95% interval (at least the value), or 1 when there is none.
fn scale_max(cells: &[Cell]) -> f64 {
    let max = cells
        .iter()
        .filter_map(finite)
        .map(|(v, sd)| v.max(v + 1.96 * sd))
        .fold(0.0_f64, f64::max);
    if max > 0.0 { max } else { 1.0 }
}

/// One panel of a horizontal bar chart: one bar per row, on its own scale from zero.
#[derive(Debug)]
pub(super) struct Panel<'a> {
    /// Title above the panel.
    pub(super) title: &'a str,
    /// How its values are written.
    pub(super) kind: Kind,
    /// CSS class of its bars.
    pub(super) class: &'a str,
    /// One cell per row.
    pub(super) cells: Vec<Cell>,
}

/// A horizontal bar chart: one row per label, one bar per panel, each with its 95% whisker
/// and its value; suppressed cells hatched.
pub(super) fn hbars(
    out: &mut String,
    chart: &str,
    caption: &str,
    labels: &[&str],
    panels: &[Panel<'_>],
) {
    let label_w = label_width(labels.iter().copied());
    let panel_w = if panels.len() > 1 { 330.0 } else { 520.0 };
    let (gap, top, text_room) = (24.0, 24.0, 130.0);
    let plot_w = panel_w - text_room;
    let width = label_w + panels.len() as f64 * (panel_w + gap);
    let height = top + labels.len() as f64 * ROW + 6.0;
    open(out, chart, caption, width, height);
    for (i, label) in labels.iter().enumerate() {
        let y = top + i as f64 * ROW + ROW / 2.0 + 4.0;
        let _ = write!(
            out,
            "<text class=\"label\" x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            Esc(&short(label))
        );
    }
    for (p, panel) in panels.iter().enumerate() {
        let x0 = label_w + p as f64 * (panel_w + gap);
        let scale = plot_w / scale_max(&panel.cells);
        let _ = write!(
            out,
            "<text class=\"ptitle\" x=\"{x0:.1}\" y=\"14\">{}</text>\
             <line class=\"axis\" x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x0:.1}\" y2=\"{:.1}\"/>",
            Esc(panel.title),
            top - 4.0,
            height - 4.0
        );
        for (i, (cell, label)) in panel.cells.iter().zip(labels).enumerate() {
            let y = top + i as f64 * ROW + (ROW - BAR) / 2.0;
            let _ = write!(
                out,
                "<g><title>{}: {}</title>",
                Esc(label),
                Esc(&cell_text(cell, panel.kind))
            );
            match finite(cell) {
                Some((v, sd)) => {
                    let w = v.max(0.0) * scale;
                    let lo = (v - 1.96 * sd).max(0.0) * scale;
                    let hi = ((v + 1.96 * sd).max(0.0) * scale).min(plot_w);
                    let cy = y + BAR / 2.0;
                    let _ = write!(
                        out,
                        "<rect class=\"{}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
                         height=\"{BAR}\"/>",
                        panel.class
                    );
                    whisker_h(out, x0 + lo, x0 + hi, cy);
                    let _ = write!(
                        out,
                        "<text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{} {}</text>",
                        x0 + w.max(hi) + 6.0,
                        cy + 4.0,
                        panel.kind.value(v),
                        panel.kind.sd(sd)
                    );
                }
                None => suppressed_h(out, x0, y, plot_w, cell),
            }
            out.push_str("</g>");
        }
    }
    out.push_str("</svg>");
}

/// A horizontal whisker from `x1` to `x2` at height `y`.
fn whisker_h(out: &mut String, x1: f64, x2: f64, y: f64) {
    let _ = write!(
        out,
        "<path class=\"whisker\" d=\"M{x1:.1} {:.1}V{:.1}M{x1:.1} {y:.1}H{x2:.1}M{x2:.1} {:.1}V{:.1}\"/>",
        y - 4.0,
        y + 4.0,
        y - 4.0,
        y + 4.0
    );
}

/// A vertical whisker from `y1` to `y2` at `x`.
fn whisker_v(out: &mut String, x: f64, y1: f64, y2: f64) {
    let _ = write!(
        out,
        "<path class=\"whisker\" d=\"M{:.1} {y1:.1}H{:.1}M{x:.1} {y1:.1}V{y2:.1}M{:.1} {y2:.1}H{:.1}\"/>",
        x - 3.0,
        x + 3.0,
        x - 3.0,
        x + 3.0
    );
}

/// A hatched horizontal slot for a cell without a value.
fn suppressed_h(out: &mut String, x: f64, y: f64, w: f64, cell: &Cell) {
    let word = if matches!(cell, Cell::Suppressed) {
        "suppressed"
    } else {
        "n/a"
    };
    let _ = write!(
        out,
        "<rect class=\"hatched\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR}\" \
         fill=\"url(#hatch)\"/><text class=\"supp\" x=\"{:.1}\" y=\"{:.1}\">{word}</text>",
        x + 6.0,
        y + BAR / 2.0 + 4.0
    );
}

/// One histogram bar.
#[derive(Debug)]
pub(super) struct HistBar {
    /// The bin's range, as text.
    pub(super) label: String,
    /// Customers in it.
    pub(super) cell: Cell,
}

/// A histogram: bins of equal drawn width, counts with 95% whiskers, suppressed bins hatched,
/// and optionally a dashed marker at `marker.0` bins from the left labelled `marker.1`.
pub(super) fn histogram(
    out: &mut String,
    caption: &str,
    bars: &[HistBar],
    marker: Option<(f64, &str)>,
) {
    let n = bars.len().max(1) as f64;
    let bar_w = (640.0 / n).clamp(18.0, 72.0);
    let (left, top, plot_h, bottom) = (64.0, 18.0, 180.0, 78.0);
    let plot_w = n * bar_w;
    let (width, height) = (left + plot_w + 16.0, top + plot_h + bottom);
    let base = top + plot_h;
    let cells: Vec<Cell> = bars.iter().map(|b| b.cell).collect();
    let max = scale_max(&cells);
    let scale = plot_h / max;
    open(out, "histogram", caption, width, height);
    for t in [0.0, 0.5, 1.0] {
        let y = base - t * plot_h;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            Kind::Count.value(t * max)
        );
    }
    for (i, bar) in bars.iter().enumerate() {
        let x = left + i as f64 * bar_w;
        let cx = x + bar_w / 2.0;
        let _ = write!(
            out,
            "<g><title>{}: {} customers</title>",
            Esc(&bar.label),
            Esc(&cell_text(&bar.cell, Kind::Count))
        );
        match finite(&bar.cell) {
            Some((v, sd)) => {
                let h = v.max(0.0) * scale;
                let _ = write!(
                    out,
                    "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>",
                    x + 1.0,
                    base - h,
                    bar_w - 2.0
                );
                let lo = (v - 1.96 * sd).max(0.0) * scale;
                let hi = ((v + 1.96 * sd).max(0.0) * scale).min(plot_h);
                whisker_v(out, cx, base - hi, base - lo);
            }
            None => {
                let word = if matches!(bar.cell, Cell::Suppressed) {
                    "suppressed"
                } else {
                    "n/a"
                };
                let _ = write!(
                    out,
                    "<rect class=\"hatched\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" \
                     height=\"{plot_h:.1}\" fill=\"url(#hatch)\"/><text class=\"supp\" \
                     x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
                     transform=\"rotate(-90 {cx:.1} {:.1})\">{word}</text>",
                    x + 1.0,
                    bar_w - 2.0,
                    top + plot_h / 2.0 + 4.0,
                    top + plot_h / 2.0
                );
            }
        }
        let ly = base + 14.0;
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" \
             transform=\"rotate(-40 {cx:.1} {ly:.1})\">{}</text></g>",
            Esc(&short(&bar.label))
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/>",
        left + plot_w
    );
    if let Some((pos, text)) = marker {
        let x = left + pos.clamp(0.0, n) * bar_w;
        let _ = write!(
            out,
            "<line class=\"marker\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{base:.1}\"/>\
             <text class=\"mlabel\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            top - 4.0,
            x + 4.0,
            top + 8.0,
            Esc(text)
        );
    }
    out.push_str("</svg>");
}

/// A heatmap column.
#[derive(Debug)]
pub(super) struct HeatColumn<'a> {
    /// Its title (a feature name).
    pub(super) title: &'a str,
    /// How its values are written.
    pub(super) kind: Kind,
}

/// A heatmap of `cells[row][column]`, each column coloured from its lowest to its highest
/// value, with the value written in each cell (`None`: not released for that row).
pub(super) fn heatmap(
    out: &mut String,
    caption: &str,
    rows: &[&str],
    columns: &[HeatColumn<'_>],
    cells: &[Vec<Option<Cell>>],
) {
    let label_w = label_width(rows.iter().copied());
    let (col_w, row_h, header, legend) = (124.0, 30.0, 44.0, 34.0);
    let width = label_w + columns.len() as f64 * col_w + 8.0;
    let height = header + rows.len() as f64 * row_h + legend;
    open(out, "segment-heatmap", caption, width, height);
    for (c, column) in columns.iter().enumerate() {
        let x = label_w + c as f64 * col_w + col_w / 2.0;
        column_title(out, x, header, column.title);
    }
    for (r, row) in rows.iter().enumerate() {
        let y = header + r as f64 * row_h;
        let _ = write!(
            out,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + row_h / 2.0 + 4.0,
            Esc(&short(row))
        );
    }
    for (c, column) in columns.iter().enumerate() {
        let values: Vec<f64> = cells
            .iter()
            .filter_map(|row| row.get(c).copied().flatten())
            .filter_map(|cell| finite(&cell))
            .map(|(v, _)| v)
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let x = label_w + c as f64 * col_w;
        let cx = x + col_w / 2.0;
        for (r, row) in cells.iter().enumerate() {
            let y = header + r as f64 * row_h;
            let cy = y + row_h / 2.0 + 4.0;
            let cell = row.get(c).copied().flatten();
            let _ = write!(
                out,
                "<g><title>{} · {}: {}</title>",
                Esc(rows.get(r).copied().unwrap_or("")),
                Esc(column.title),
                cell.map_or_else(|| "not released".to_owned(), |c| cell_text(&c, column.kind))
            );
            let rect = |out: &mut String, fill: &str, class: &str| {
                let _ = write!(
                    out,
                    "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                     height=\"{:.1}\" fill=\"{fill}\"/>",
                    x + 1.0,
                    y + 1.0,
                    col_w - 2.0,
                    row_h - 2.0
                );
            };
            match cell.as_ref().map(|c| (c, finite(c))) {
                Some((_, Some((v, _)))) => {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    rect(out, &heat_colour(t), "heat");
                    let class = if t > 0.55 { "hv dark" } else { "hv" };
                    let _ = write!(
                        out,
                        "<text class=\"{class}\" x=\"{cx:.1}\" y=\"{cy:.1}\" \
                         text-anchor=\"middle\">{}</text>",
                        column.kind.value(v)
                    );
                }
                Some((c, None)) => {
                    rect(out, "url(#hatch)", "hatched");
                    let word = if matches!(c, Cell::Suppressed) {
                        "suppressed"
                    } else {
                        "n/a"
                    };
                    let _ = write!(
                        out,
                        "<text class=\"supp\" x=\"{cx:.1}\" y=\"{cy:.1}\" \
                         text-anchor=\"middle\">{word}</text>"
                    );
                }
                None => {
                    rect(out, "#ffffff", "heat empty");
                    let _ = write!(
                        out,
                        "<text class=\"supp\" x=\"{cx:.1}\" y=\"{cy:.1}\" \
                         text-anchor=\"middle\">—</text>"
                    );
                }
            }
            out.push_str("</g>");
        }
    }
    let ly = header + rows.len() as f64 * row_h + 14.0;
    let _ = write!(
        out,
        "<rect x=\"{label_w:.1}\" y=\"{ly:.1}\" width=\"120\" height=\"10\" fill=\"url(#heat)\"/>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">lowest to highest segment mean in each \
         column</text></svg>",
        label_w + 128.0,
        ly + 9.0
    );
}

/// A column title centred at `x` above `bottom`, split at an underscore when long.
fn column_title(out: &mut String, x: f64, bottom: f64, title: &str) {
    let split = (title.chars().count() > 17)
        .then(|| {
            let mid = title.len() / 2;
            title
                .match_indices('_')
                .map(|(i, _)| i)
                .min_by_key(|i| i.abs_diff(mid))
        })
        .flatten();
    let (first, second) = match split {
        Some(i) => (&title[..=i], Some(&title[i + 1..])),
        None => (title, None),
    };
    let y = if second.is_some() {
        bottom - 22.0
    } else {
        bottom - 8.0
    };
    let _ = write!(
        out,
        "<text class=\"ctitle\" x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\">{}",
        Esc(&short(first))
    );
    if let Some(second) = second {
        let _ = write!(
            out,
            "<tspan x=\"{x:.1}\" dy=\"14\">{}</tspan>",
            Esc(&short(second))
        );
    }
    out.push_str("</text>");
}

/// The heatmap colour at `t` in `0..=1` (the same ends as the `heat` gradient).
fn heat_colour(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round();
    format!(
        "rgb({:.0},{:.0},{:.0})",
        mix(238.0, 31.0),
        mix(243.0, 78.0),
        mix(250.0, 138.0)
    )
}

/// One node's budget.
#[derive(Debug)]
pub(super) struct BudgetBar<'a> {
    /// The node.
    pub(super) node: &'a str,
    /// zCDP spent.
    pub(super) spent: f64,
    /// The cap.
    pub(super) cap: f64,
}

/// Budget bars: each node's spending as a share of its own cap (the outlined box is the cap).
pub(super) fn budget_bars(out: &mut String, rows: &[BudgetBar<'_>]) {
    let label_w = label_width(rows.iter().map(|r| r.node));
    let (plot_w, top, over) = (420.0, 22.0, 1.25);
    let width = label_w + plot_w * over + 190.0;
    let height = top + rows.len() as f64 * ROW + 6.0;
    open(
        out,
        "budgets",
        "Privacy budget spent per node, against its cap",
        width,
        height,
    );
    let _ = write!(
        out,
        "<text class=\"ptitle\" x=\"{label_w:.1}\" y=\"14\">Share of the period's cap spent</text>"
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + i as f64 * ROW + (ROW - BAR) / 2.0;
        let ratio = if row.cap > 0.0 {
            row.spent / row.cap
        } else if row.spent > 0.0 {
            over
        } else {
            0.0
        };
        let ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        let class = match ratio {
            r if r > 1.0 => "bar over",
            r if r >= 0.8 => "bar warn",
            _ => "bar",
        };
        let w = ratio.min(over) * plot_w;
        let _ = write!(
            out,
            "<g><title>{}: {} of {}</title>\
             <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"cap\" x=\"{label_w:.1}\" y=\"{y:.1}\" width=\"{plot_w:.1}\" height=\"{BAR}\"/>\
             <rect class=\"{class}\" x=\"{label_w:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{} of {} ({})</text></g>",
            Esc(row.node),
            super::format::decimal(row.spent, 4),
            super::format::decimal(row.cap, 4),
            label_w - 8.0,
            y + BAR / 2.0 + 4.0,
            Esc(&short(row.node)),
            y + 3.0,
            BAR - 6.0,
            label_w + plot_w.max(w) + 8.0,
            y + BAR / 2.0 + 4.0,
            super::format::decimal(row.spent, 4),
            super::format::decimal(row.cap, 4),
            Kind::Share.value(ratio)
        );
    }
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressed_bar_has_no_value() {
        let mut out = String::new();
        let panel = Panel {
            title: "Customers",
            kind: Kind::Count,
            class: "bar",
            cells: vec![
                Cell::Suppressed,
                Cell::Value {
                    value: 1234.0,
                    sd: 5.0,
                },
            ],
        };
        hbars(&mut out, "t", "test", &["small", "big"], &[panel]);
        assert_eq!(out.matches("url(#hatch)").count(), 1);
        assert_eq!(out.matches(">suppressed<").count(), 1);
        assert!(out.contains("1,234 ± 5.0"));
        assert!(out.contains("<title>small: suppressed</title>"));
    }

    #[test]
    fn heat_colours_span_the_gradient() {
        assert_eq!(heat_colour(0.0), "rgb(238,243,250)");
        assert_eq!(heat_colour(1.0), "rgb(31,78,138)");
        assert_eq!(heat_colour(f64::NAN), heat_colour(0.5));
    }

    #[test]
    fn long_column_titles_split_at_an_underscore() {
        let mut out = String::new();
        column_title(&mut out, 10.0, 40.0, "monetary_mean_repeat");
        assert!(out.contains(">monetary_<tspan"), "{out}");
        assert!(out.contains(">mean_repeat</tspan>"), "{out}");
    }
}
