//! The files a profiling job writes, sans-IO: the report (JSON and self-contained HTML), the
//! segment model and the CSV tables, as `(file name, contents)`. [`crate::rundir::finish`]
//! writes them, atomically and durably.

use std::fmt::Write as _;

use crate::model::SegmentModel;
use crate::report::{Cell, ProfileReport};

/// Why the outputs cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The report or the model does not serialize.
    #[error("cannot serialize the {what}: {error}")]
    Json {
        /// `report` or `model`.
        what: &'static str,
        /// Why.
        error: serde_json::Error,
    },
    /// The HTML would load something from outside the file (a bug: it must be self-contained).
    #[error("internal error: the report references external resources: {0:?}")]
    External(Vec<String>),
}

/// `report.json`, `report.html`, `model.json`, `segments.csv`, `distributions.csv` and
/// `crosstabs.csv`.
pub fn files(
    report: &ProfileReport,
    model: &SegmentModel,
) -> Result<Vec<(&'static str, String)>, OutputError> {
    let html = crate::html::render(report);
    let external = crate::html::external_references(&html);
    if !external.is_empty() {
        return Err(OutputError::External(external));
    }
    let json = |what, r: Result<String, serde_json::Error>| {
        r.map(|s| s + "\n")
            .map_err(|error| OutputError::Json { what, error })
    };
    Ok(vec![
        (
            "report.json",
            json("report", serde_json::to_string_pretty(report))?,
        ),
        ("report.html", html),
        (
            "model.json",
            json("model", serde_json::to_string_pretty(model))?,
        ),
        ("segments.csv", segments_csv(report)),
        ("distributions.csv", distributions_csv(report)),
        ("crosstabs.csv", crosstabs_csv(report)),
    ])
}

/// A CSV field: quoted when it holds a delimiter, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `value,sd`, or `suppressed,` for a suppressed cell.
fn cell(c: &Cell) -> String {
    match c {
        Cell::Value { value, sd } => format!("{value:.6},{sd:.6}"),
        Cell::Suppressed => "suppressed,".into(),
    }
}

fn segments_csv(r: &ProfileReport) -> String {
    let mut out = String::from("segmentation,segment,measure,value,sd\n");
    for s in &r.segmentations {
        for seg in &s.segments {
            let mut row = |measure: &str, c: &Cell| {
                let _ = writeln!(
                    out,
                    "{},{},{},{}",
                    field(&s.name),
                    field(&seg.name),
                    field(measure),
                    cell(c)
                );
            };
            row("size", &seg.size);
            row("share", &seg.share);
            for m in &seg.means {
                row(&format!("mean_{}", m.feature), &m.mean);
            }
            if let Some(risk) = &seg.risk {
                row("default_rate", &risk.default_rate);
                row("utilization", &risk.utilization);
            }
        }
    }
    out
}

fn distributions_csv(r: &ProfileReport) -> String {
    let mut out = String::from("feature,bin_lo,bin_hi,count,sd\n");
    let edge = |e: Option<f64>| e.map(|x| format!("{x}")).unwrap_or_default();
    for d in &r.distributions {
        for b in &d.bins {
            let _ = writeln!(
                out,
                "{},{},{},{}",
                field(&d.feature),
                edge(b.lo),
                edge(b.hi),
                cell(&b.count)
            );
        }
    }
    out
}

fn crosstabs_csv(r: &ProfileReport) -> String {
    let mut out = String::from("segmentation,segment,feature,level,share,sd,lift,significant\n");
    for s in &r.segmentations {
        for seg in &s.segments {
            for l in &seg.levels {
                for (level, c) in &l.shares {
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{},,",
                        field(&s.name),
                        field(&seg.name),
                        field(&l.feature),
                        field(level),
                        cell(c)
                    );
                }
            }
            for (feature, lifts) in [("channel", &seg.channels), ("category", &seg.categories)] {
                for l in lifts {
                    let lift = l.lift.map(|x| format!("{x:.4}")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{},{},{feature},{},{},{lift},{}",
                        field(&s.name),
                        field(&seg.name),
                        field(&l.level),
                        cell(&l.share),
                        l.significant
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_produced_and_csv_fields_are_quoted() {
        let mut report = crate::html::sample::sample_report();
        report.segmentations[0].name = "rfm, \"v2\"".into();
        let model = crate::model::model_of(&report, Vec::new());
        let files = files(&report, &model).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "report.json",
                "report.html",
                "model.json",
                "segments.csv",
                "distributions.csv",
                "crosstabs.csv"
            ]
        );
        let segments = &files[3].1;
        assert!(segments.starts_with("segmentation,segment,measure,value,sd\n"));
        assert!(segments.contains("\"rfm, \"\"v2\"\"\","), "{segments}");
        let back: ProfileReport = serde_json::from_str(&files[0].1).unwrap();
        assert!(back.name == report.name && back.segmentations.len() == report.segmentations.len());
    }
}
