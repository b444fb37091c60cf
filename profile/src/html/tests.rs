//! Tests of the rendered page.

use super::sample::sample_report;
use super::{SECTIONS, external_references, render};
use crate::report::{Cell, ProfileReport};

/// The text of `fragment` with its tags removed.
fn text_of(fragment: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in fragment.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// The part of `html` from `<section id="ID"` to the next `</section>`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!("<section id=\"{id}\"")).unwrap();
    let end = html[start..].find("</section>").unwrap();
    &html[start..start + end]
}

/// The table row of `html` whose row header is `name`, up to its `</tr>`.
fn row<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("<tr><th scope=\"row\">{name}</th>"))
        .unwrap();
    let end = html[start..].find("</tr>").unwrap();
    &html[start..start + end]
}

fn count(html: &str, chart: &str) -> usize {
    html.matches(&format!("data-chart=\"{chart}\"")).count()
}

#[test]
fn every_section_and_chart_is_rendered() {
    let html = render(&sample_report());
    for id in SECTIONS {
        assert_eq!(
            html.matches(&format!(" id=\"{id}\"")).count(),
            1,
            "section {id}"
        );
    }
    // 3 segmentations, 4 numeric and 4 categorical features, 3 segmentations with risk data.
    assert_eq!(count(&html, "segment-sizes"), 3);
    assert_eq!(count(&html, "segment-heatmap"), 3);
    assert_eq!(count(&html, "histogram"), 4);
    assert_eq!(count(&html, "category"), 4);
    assert_eq!(count(&html, "risk"), 3);
    assert_eq!(count(&html, "budgets"), 1);
    assert_eq!(html.matches("data-chart=").count(), 18);
    assert_eq!(
        html.matches("<svg").count(),
        19,
        "the charts and the shared definitions"
    );
    // Each chart is in its section.
    assert_eq!(count(section(&html, "distributions"), "histogram"), 4);
    assert_eq!(
        count(section(&html, "segment-profiles"), "segment-heatmap"),
        3
    );
    assert_eq!(count(section(&html, "budgets"), "budgets"), 1);
}

#[test]
fn sections_say_so_when_empty() {
    let mut r = sample_report();
    r.distributions.clear();
    r.categories.clear();
    r.segmentations.clear();
    r.budgets.clear();
    r.drift = None;
    r.notes.clear();
    r.privacy.releases.clear();
    r.population = Cell::Suppressed;
    let html = render(&r);
    for id in SECTIONS {
        assert!(html.contains(&format!(" id=\"{id}\"")), "section {id}");
    }
    assert_eq!(html.matches("data-chart=").count(), 0);
    assert!(text_of(section(&html, "drift")).contains("first version"));
    let population = text_of(section(&html, "population"));
    assert!(population.contains("suppressed"), "{population}");
    assert!(!population.contains("48"), "{population}");
    assert!(external_references(&html).is_empty());
    assert_balanced(&html);
}

#[test]
fn suppressed_figures_show_no_number() {
    let html = render(&sample_report());
    // The lifecycle segment `new` is suppressed: its size row says so and holds no digit.
    let sizes = section(&html, "segment-sizes");
    let lifecycle = &sizes[sizes.find("<h3>lifecycle</h3>").unwrap()..];
    let new = row(lifecycle, "new");
    assert_eq!(
        new.matches("<td class=\"suppressed\">suppressed</td>")
            .count(),
        2,
        "{new}"
    );
    assert!(!text_of(new).chars().any(|c| c.is_ascii_digit()), "{new}");
    // Its bar is hatched and labelled, with no value: the chart row's text has no digit.
    let bar = &lifecycle[lifecycle.find("<g><title>new: ").unwrap()..];
    let bar = &bar[..bar.find("</g>").unwrap()];
    assert!(bar.contains("url(#hatch)"), "{bar}");
    assert_eq!(text_of(bar), "new: suppressedsuppressed");
    // The heatmap cell of hibernating's utilization.
    let profiles = section(&html, "segment-profiles");
    let cell = &profiles[profiles
        .find("<g><title>hibernating · utilization: ")
        .unwrap()..];
    let cell = &cell[..cell.find("</g>").unwrap()];
    assert_eq!(
        text_of(cell),
        "hibernating · utilization: suppressedsuppressed"
    );
    // The last recency bin, the `other` region, the drift size.
    let bin = &html[html.find("<g><title>≥ 365: ").unwrap()..];
    assert!(text_of(&bin[..bin.find("</g>").unwrap()]).starts_with("≥ 365: suppressed"));
    let other = row(section(&html, "categories"), "other");
    assert_eq!(text_of(other), "othersuppressedsuppressed");
    let drift = section(&html, "drift");
    let hibernating = &drift[drift.find("hibernating</th>").unwrap()..];
    let hibernating = &hibernating[..hibernating.find("</tr>").unwrap()];
    assert_eq!(
        text_of(hibernating),
        "hibernatingsuppressed15,516 ± 2.5suppressedcannot be compared"
    );
    assert!(text_of(section(&html, "lifts")).contains("suppressed"));
    assert!(text_of(section(&html, "risk")).contains("suppressed"));
}

#[test]
fn numbers_are_formatted() {
    let html = render(&sample_report());
    let population = text_of(section(&html, "population"));
    assert!(
        population.contains("48,213 ± 5.0 customers"),
        "{population}"
    );
    assert!(
        population.contains("95% interval: 48,203 to 48,223"),
        "{population}"
    );
    let sizes = section(&html, "segment-sizes");
    assert_eq!(
        text_of(row(sizes, "champions")),
        "champions6,412 ± 2.513.3% ± 0.0052 pp"
    );
    let heat = section(&html, "segment-profiles");
    assert!(
        heat.contains(">4,820.55</text>"),
        "currency with two decimals"
    );
    assert!(heat.contains(">31.0%</text>"), "shares as percentages");
    let privacy = text_of(section(&html, "privacy"));
    assert!(privacy.contains("ρ = 1/2 (0.5)"), "{privacy}");
    // The tight conversion (5.757 was the simple bound rho + 2 sqrt(rho ln(1/delta))).
    assert!(privacy.contains("ε = 5.222 at δ = 1e-6"), "{privacy}");
    // A person at the 3 banks: 3^2 * 1/2 = 9/2, epsilon 19.2295 by dp-accounting.
    assert!(
        privacy.contains("For a person at 3 nodes (the federation's declared maximum), this job costs ρ = 9/2 (4.5), ε = 19.23"),
        "{privacy}"
    );
    assert!(privacy.contains("bank-south ρ = 9.75"), "{privacy}");
    assert!(
        privacy.contains("A period cap is a rate limit, not a lifetime bound")
            && privacy.contains("Who sees what")
            && privacy.contains("its own floor"),
        "{privacy}"
    );
    let budgets = text_of(section(&html, "budgets"));
    assert!(budgets.contains("1.75 of 2 (87.5%)"), "{budgets}");
    assert!(budgets.contains("ρ over all periods"), "{budgets}");
    assert!(
        budgets.contains("A period cap is a rate limit, not a lifetime bound"),
        "{budgets}"
    );
}

#[test]
fn lifts_are_read_against_the_noise() {
    let html = render(&sample_report());
    let lifts = section(&html, "lifts");
    let rfm = &lifts[lifts.find("<h3>rfm</h3>").unwrap()..];
    let summary = text_of(&rfm[..rfm.find("<table>").unwrap()]);
    assert!(
        summary.contains("champions is over-indexing on channel online (1.42×)"),
        "{summary}"
    );
    assert!(
        summary.contains("at_risk is under-indexing on category travel (0.66×)"),
        "{summary}"
    );
    assert!(!summary.contains("mobile"), "{summary}");
    // champions: online 1.42 and travel 1.83 over, branch 0.55 under (all significant);
    // mobile, groceries and dining within the noise; phone suppressed.
    let champions = &rfm[rfm.find("<tbody>").unwrap()..rfm.find("loyal</th>").unwrap()];
    assert!(champions.contains(">champions</th>"));
    assert_eq!(
        champions
            .matches("<td class=\"over\">over-indexing</td>")
            .count(),
        2
    );
    assert_eq!(
        champions
            .matches("<td class=\"under\">under-indexing</td>")
            .count(),
        1
    );
    let noise = "<td class=\"noise\">not distinguishable from noise</td>";
    assert_eq!(champions.matches(noise).count(), 3);
    assert_eq!(
        champions
            .matches("<td class=\"suppressed\">suppressed</td>")
            .count(),
        3
    );
    assert_eq!(champions.matches("<tr class=\"sig\">").count(), 3);
    // An insignificant lift is never called over- or under-indexing, however large.
    let mut r = sample_report();
    for s in &mut r.segmentations {
        for g in &mut s.segments {
            for l in g.channels.iter_mut().chain(&mut g.categories) {
                l.significant = false;
            }
        }
    }
    let html = render(&r);
    let lifts = section(&html, "lifts");
    assert!(!lifts.contains("<td class=\"over\">") && !lifts.contains("<td class=\"under\">"));
    let none = "No lift in this segmentation is distinguishable from noise.";
    assert_eq!(lifts.matches(none).count(), 3);
}

#[test]
fn text_is_escaped() {
    let mut r: ProfileReport = sample_report();
    r.name = "<b>bold</b> & co".to_owned();
    r.segmentations[0].segments[0].name = "<script>alert(\"x\")</script>".to_owned();
    r.segmentations[0].description = "it's \"quoted\"".to_owned();
    r.distributions[0].feature = "a<b>&c".to_owned();
    r.categories[0].levels[0].0 = "<img src=x onerror=alert(1)>".to_owned();
    r.notes
        .push("see https://example.com/x.png or url(http://x) // @import".to_owned());
    r.nodes[0] = "\" onmouseover=\"alert(1)".to_owned();
    let html = render(&r);
    assert!(!html.contains("<script"), "no script element at all");
    assert!(!html.contains("<b>") && !html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
    assert!(html.contains("it&#39;s &quot;quoted&quot;"));
    assert!(html.contains("a&lt;b&gt;&amp;c"));
    assert!(html.contains("&quot; onmouseover=&quot;alert(1)"));
    // Text that merely mentions a URL is displayed, not fetched.
    assert_eq!(external_references(&html), Vec::<String>::new());
    assert_balanced(&html);
}

#[test]
fn the_page_is_self_contained() {
    let html = render(&sample_report());
    assert_eq!(external_references(&html), Vec::<String>::new());
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"));
    assert!(
        html.contains("fill=\"url(#hatch)\""),
        "fragment references are allowed"
    );
    assert!(
        html.contains("<a href=\"#noise\">"),
        "and so are fragment links"
    );
    assert!(!html.contains("<script") && !html.contains("xmlns"));
    // The scanner catches what a careless change would add.
    for bad in [
        "<link rel=\"stylesheet\" href=\"style.css\">",
        "<img src=\"logo.png\">",
        "<a href=\"https://example.com\">x</a>",
        "<a href='//cdn.example.com/x'>x</a>",
        "<style>@import \"fonts.css\";</style>",
        "<style>body{background:url(bg.png)}</style>",
        "<div style=\"background: url( 'bg.png' )\"></div>",
        "<script>fetch(\"data.json\"); let u = \"http:\" + \"//x\";</script>",
        "<svg><image href=\"a.png\"/></svg>",
        "<svg><use xlink:href=\"sprites.svg#a\"/></svg>",
        "<iframe></iframe>",
        "<!-- <img src=x> -->",
        "<IMG SRC=\"x.png\">",
    ] {
        let page = html.replace("</body>", &format!("{bad}</body>"));
        assert!(!external_references(&page).is_empty(), "not caught: {bad}");
    }
    for good in [
        "<a href=\"#privacy\">x</a>",
        "<rect fill=\"url(#hatch)\"/>",
        "<p>see http://example.com // url(x) @import src=</p>",
        "<style>.x{fill:url( '#heat' )}</style>",
    ] {
        let page = html.replace("</body>", &format!("{good}</body>"));
        assert_eq!(
            external_references(&page),
            Vec::<String>::new(),
            "flagged: {good}"
        );
    }
}

#[test]
fn tags_are_balanced() {
    assert_balanced(&render(&sample_report()));
}

/// Fails unless every element is closed in order (void and self-closed elements aside).
fn assert_balanced(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link", "col", "wbr"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>').unwrap();
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(closing) = tag.strip_prefix('/') {
            let closing = closing.trim().to_ascii_lowercase();
            let context: String = rest.chars().take(80).collect();
            assert_eq!(
                stack.pop().as_deref(),
                Some(closing.as_str()),
                "before {context}"
            );
        } else if !VOID.contains(&name.as_str()) {
            stack.push(name.clone());
            if name == "style" {
                let close = rest.find("</style>").unwrap();
                rest = &rest[close..];
            }
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}
