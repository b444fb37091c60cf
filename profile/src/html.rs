//! The report as one self-contained HTML page (`report.html`).
//!
//! [`render`] writes a single UTF-8 page: inline CSS, charts as inline SVG drawn here, no
//! script, no font, image or style sheet from anywhere else, so the file can be mailed or
//! archived and opens the same offline. All text taken from the report is escaped.
//!
//! Every figure is shown with the standard deviation of its noise (`± s`) and its 95% interval
//! (`value ± 1.96 s`, as a tooltip in tables and as whiskers in charts). A suppressed figure is
//! the word "suppressed" in tables and a hatched slot in charts, never a number.
//!
//! [`external_references`] scans a page for anything that would load from elsewhere; the tests
//! and the command that writes the report use it.

mod features;
mod format;
mod overview;
pub mod sample;
mod segments;
mod svg;
#[cfg(test)]
mod tests;

use std::fmt::Write;

use crate::report::ProfileReport;
use format::Esc;

/// The `id` of every section of the page, in page order.
pub const SECTIONS: &[&str] = &[
    "header",
    "noise",
    "privacy",
    "population",
    "segment-sizes",
    "segment-profiles",
    "distributions",
    "categories",
    "crosstabs",
    "risk",
    "lifts",
    "quality",
    "budgets",
    "drift",
];

/// Renders `report` as one self-contained HTML page.
pub fn render(report: &ProfileReport) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · fedprof profile report</title><style>{CSS}</style></head><body>\n",
        Esc(&report.name)
    );
    out.push_str(svg::DEFS);
    overview::header(&mut out, report);
    nav(&mut out);
    out.push_str("<main>\n");
    overview::noise(&mut out, report);
    overview::privacy(&mut out, report);
    overview::population(&mut out, report);
    segments::sizes(&mut out, report);
    segments::profiles(&mut out, report);
    features::distributions(&mut out, report);
    features::categories(&mut out, report);
    segments::crosstabs(&mut out, report);
    segments::risk(&mut out, report);
    segments::lifts(&mut out, report);
    overview::quality(&mut out, report);
    overview::budgets(&mut out, report);
    overview::drift(&mut out, report);
    let _ = write!(
        out,
        "</main>\n<footer><p>Schema {} · written by fedprof. Every figure is a noisy estimate; \
         see <a href=\"#noise\">what the noise means</a>.</p></footer>\n</body></html>\n",
        Esc(&report.schema)
    );
    out
}

/// Section titles for the table of contents (the header has none).
const TITLES: &[(&str, &str)] = &[
    ("noise", "What the noise means"),
    ("privacy", "Privacy"),
    ("population", "Population"),
    ("segment-sizes", "Segment sizes"),
    ("segment-profiles", "Segment profiles"),
    ("distributions", "Feature distributions"),
    ("categories", "Categorical distributions"),
    ("crosstabs", "Cross-tabs"),
    ("risk", "Risk by segment"),
    ("lifts", "Marketing lifts"),
    ("quality", "Cluster quality"),
    ("budgets", "Budget per node"),
    ("drift", "Drift"),
];

/// The title of section `id`.
fn title(id: &str) -> &'static str {
    TITLES.iter().find(|(i, _)| *i == id).map_or("", |(_, t)| t)
}

/// The table of contents.
fn nav(out: &mut String) {
    out.push_str("<nav><ol>");
    for (id, title) in TITLES {
        let _ = write!(out, "<li><a href=\"#{id}\">{title}</a></li>");
    }
    out.push_str("</ol></nav>\n");
}

/// Opens section `id` with its title.
fn open_section(out: &mut String, id: &str) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", title(id));
}

/// Closes a section.
fn close_section(out: &mut String) {
    out.push_str("</section>\n");
}

/// A one-line note on what the noise means for the figures of a section.
fn noise_note(out: &mut String, text: &str) {
    let _ = write!(
        out,
        "<p class=\"noise-note\"><strong>Noise:</strong> {text}</p>"
    );
}

/// A paragraph saying there is nothing to show.
fn empty(out: &mut String, text: &str) {
    let _ = write!(out, "<p class=\"empty\">{}</p>", Esc(text));
}

/// Everything in `html` that would make a browser fetch something: absolute or
/// protocol-relative URLs, `src=`, `href=` other than `#fragment`, CSS `@import` and `url()`
/// other than `url(#fragment)`, and elements that embed other documents. Each finding names
/// what matched and shows the text around it; an empty list means the page is self-contained.
///
/// Markup (tags and their attributes, comments) and the contents of `<style>` and `<script>`
/// are scanned; text between tags is not, since it is only displayed (it is escaped, so it
/// cannot contain markup).
pub fn external_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            // Text: skipped up to the next tag.
            i = lower[i..].find('<').map_or(bytes.len(), |n| i + n);
            continue;
        }
        let end = if lower[i..].starts_with("<!--") {
            lower[i..].find("-->").map_or(bytes.len(), |n| i + n + 3)
        } else {
            tag_end(bytes, i)
        };
        scan(html, &lower, i, end, &mut found);
        let raw = ["<style", "<script"]
            .into_iter()
            .find(|t| lower[i..].starts_with(t) && !is_name_byte(bytes.get(i + t.len())));
        i = end;
        if let Some(tag) = raw {
            // Raw text: scanned whole, up to the closing tag.
            let close = format!("</{}", &tag[1..]);
            let stop = lower[i..].find(&close).map_or(bytes.len(), |n| i + n);
            scan(html, &lower, i, stop, &mut found);
            i = stop;
        }
    }
    found
}

/// Whether `b` continues a tag name.
fn is_name_byte(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// The index just after the `>` closing the tag that starts at `start` (quotes respected).
fn tag_end(bytes: &[u8], start: usize) -> usize {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    bytes.len()
}

/// Patterns that always mean a fetch, in markup, CSS or script.
const ALWAYS: &[&str] = &[
    "http:", "https:", "ftp:", "file:", "//", "@import", "src=", "srcset=", "<link", "<iframe",
    "<frame", "<object", "<embed", "<base", "<portal",
];

/// Scans `lower[from..to]` (the lowercased `html`) and records what it finds.
fn scan(html: &str, lower: &str, from: usize, to: usize, found: &mut Vec<String>) {
    let part = &lower[from..to];
    let mut record = |what: &str, at: usize| {
        let a = floor_boundary(html, (from + at).saturating_sub(30));
        let b = floor_boundary(html, (from + at + 50).min(html.len()));
        found.push(format!("{what} at byte {}: {}", from + at, &html[a..b]));
    };
    for pattern in ALWAYS {
        for (at, _) in part.match_indices(pattern) {
            record(pattern, at);
        }
    }
    for (at, _) in part.match_indices("href") {
        let rest = part[at + 4..].trim_start();
        if let Some(value) = rest.strip_prefix('=') {
            let value = value.trim_start().trim_start_matches(['"', '\'']);
            if !value.starts_with('#') {
                record("href= (not #fragment)", at);
            }
        }
    }
    for (at, _) in part.match_indices("url(") {
        let value = part[at + 4..].trim_start().trim_start_matches(['"', '\'']);
        if !value.starts_with('#') {
            record("url( (not #fragment)", at);
        }
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The page's style sheet.
const CSS: &str = "
:root{--ink:#1d2733;--muted:#5b6775;--line:#d6dde5;--bg:#ffffff;--band:#f5f7fa;
--bar:#3b6ea5;--risk:#b8492e;--util:#6a7f2b;--warn:#d08a1e;--over:#c0392b;--accent:#1f4e8a}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
color:var(--ink);background:var(--bg)}
header,main,footer,nav{max-width:1180px;margin:0 auto;padding:0 24px}
header{padding-top:24px;border-bottom:3px solid var(--accent)}
.kicker{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:12px}
h1{margin:4px 0 12px;font-size:28px}
h2{margin:36px 0 8px;font-size:21px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{margin:22px 0 6px;font-size:16px}
.facts{display:flex;flex-wrap:wrap;gap:8px 32px;margin:0 0 16px}
.facts div{min-width:120px}
.facts dt{color:var(--muted);font-size:12px}
.facts dd{margin:0;font-weight:600}
nav ol{display:flex;flex-wrap:wrap;gap:4px 18px;list-style:none;padding:10px 0;margin:0;font-size:13px}
nav a,footer a{color:var(--accent);text-decoration:none}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
thead th{background:var(--band);font-weight:600}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.sd{color:var(--muted);font-size:11px}
td.suppressed,.suppressed{color:var(--muted);font-style:italic;
background:repeating-linear-gradient(45deg,#f6f6f6 0 4px,#ececec 4px 8px)}
td.na{color:var(--muted);text-align:center}
tr.total th,tr.total td{font-weight:600;border-top:2px solid var(--line)}
.over{color:var(--over);font-weight:600}
.under{color:var(--accent);font-weight:600}
.noise{color:var(--muted)}
tr.sig td{background:#fbf6e9}
.big{font-size:32px;font-weight:700;margin:4px 0}
.big .sd{font-size:16px}
.noise-note{color:var(--muted);font-size:12.5px;border-left:3px solid var(--line);padding-left:8px}
.empty{color:var(--muted);font-style:italic}
.figure{margin:12px 0 24px}
.desc{color:var(--muted);margin:0 0 6px}
details summary{cursor:pointer;color:var(--accent);font-size:13px}
.scroll{overflow-x:auto}
svg.defs{position:absolute;width:0;height:0;overflow:hidden}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0;font-family:inherit}
.chart text{font-size:11.5px;fill:var(--ink)}
.chart .ptitle{font-weight:600;font-size:12px}
.chart .ctitle{font-size:10.5px;font-weight:600}
.chart .tick,.chart .mlabel{font-size:10.5px;fill:var(--muted)}
.chart .value{font-size:11px;fill:var(--muted)}
.chart .supp{font-style:italic;fill:var(--muted)}
.chart .hv{font-size:11px}
.chart .hv.dark{fill:#ffffff}
.chart .bar{fill:var(--bar)}
.chart .bar.risk{fill:var(--risk)}
.chart .bar.util{fill:var(--util)}
.chart .bar.warn{fill:var(--warn)}
.chart .bar.over{fill:var(--over)}
.chart .cap{fill:var(--band);stroke:var(--muted);stroke-width:1}
.chart .heat{stroke:#ffffff}
.chart .heat.empty{stroke:var(--line)}
.chart .hatched{stroke:#d0d0d0}
.chart .whisker{stroke:var(--ink);stroke-width:1.2;fill:none}
.chart .axis{stroke:var(--muted);stroke-width:1}
.chart .grid{stroke:var(--line);stroke-width:1}
.chart .marker{stroke:var(--over);stroke-width:1.5;stroke-dasharray:4 3}
footer{color:var(--muted);font-size:12px;margin-top:40px;padding-bottom:30px;
border-top:1px solid var(--line)}
@media print{nav{display:none}h2{break-after:avoid}.figure,table{break-inside:avoid}}
";
