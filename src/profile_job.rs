//! Running a profiling job and writing what it produced: drives [`ProfileRun`] release by
//! release through any way of running a job (an in-process coordinator for `fedprof local`
//! and the demo), then writes `report.json`, `report.html`, `model.json` and CSV tables.

use std::fmt::Write as _;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedprof_privacy::Rho;
use fedprof_profile::model::{SegmentModel, model_of};
use fedprof_profile::report::{Cell, NodeBudget, ProfileReport};
use fedprof_profile::run::{ProfileRun, Step};
use fedprof_profile::spec::{ProfilePolicy, ProfileSpec};
use fedprof_protocol::query::Segmenter;
use fedprof_protocol::{JobOutcome, JobSpec};

use crate::progress::Progress;

/// Loads and parses a job file; errors name the file and the field.
pub fn load_spec(path: &Path) -> Result<ProfileSpec> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    ProfileSpec::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The profile policy of a coordinator config: its per-job cap, and a minimum cell size no
/// lower than the coordinator's.
pub fn policy(config: &fedprof_coordinator::CoordinatorConfig) -> ProfilePolicy {
    let mut p = ProfilePolicy::new(config.privacy.rho_per_job.clone());
    p.min_cell_size_floor = config.ledger.min_cell_size;
    p.max_holders_per_person = config.privacy.max_holders_per_person;
    p
}

/// Reads a segment model file; errors name the file.
pub fn load_model(path: &Path) -> Result<SegmentModel> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    SegmentModel::from_json(&text).with_context(|| path.display().to_string())
}

/// The model at `path` if there is one (a job's latest version), `None` if the file does not
/// exist; any other failure is an error naming the file.
pub fn load_latest_model(path: &Path) -> Result<Option<SegmentModel>> {
    match load_model(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Runs `spec` release by release through `run_job`; `previous` is the model of the job's
/// last run, if any (the new model's version follows it and the report gets a drift table).
pub async fn run<F, Fut>(
    mut run_job: F,
    spec: ProfileSpec,
    policy: &ProfilePolicy,
    previous: Option<&SegmentModel>,
    progress: &Progress,
) -> Result<(ProfileReport, SegmentModel)>
where
    F: FnMut(JobSpec) -> Fut,
    Fut: Future<Output = Result<JobOutcome>>,
{
    if let Some(p) = previous
        && p.name != spec.name
    {
        bail!(
            "the previous model is of job {:?}, not {:?}",
            p.name,
            spec.name
        );
    }
    let mut run = ProfileRun::new(spec, policy)?;
    let total = run.plan().len();
    let mut segmenters: Vec<(String, Segmenter)> = Vec::new();
    let mut done = 0;
    while let Some(query) = run.next_query() {
        done += 1;
        let step = run.plan().get(done - 1).map(|s| s.0);
        progress.step(format!(
            "release {done}/{total}: {} (secure aggregation + noise + ledgers)",
            query.label
        ));
        let outcome = run_job(JobSpec::Features(Box::new(query.clone()))).await?;
        let result = match outcome {
            JobOutcome::Completed { result, failures } => {
                for f in &failures {
                    progress.done(format!("node {} left out: {}", f.node, f.reason));
                }
                result
            }
            JobOutcome::Aborted { reason, .. } => bail!(
                "release {} was aborted: {reason}. Releases before it were paid for in the node ledgers; fix the cause and run the job again",
                query.label
            ),
        };
        let rho = fedprof_privacy::query::query_rho(&query, &result.release)
            .with_context(|| format!("release {}: released parameters refused", query.label))?;
        run.on_result(&result, &rho)?;
        progress.done(format!(
            "{}: rho {} from {} nodes",
            query.label,
            rho_text(&rho),
            result.contributors.len()
        ));
        let name = match step {
            Some(Step::Rfm) => Some("rfm"),
            Some(Step::Lifecycle) => Some("lifecycle"),
            Some(Step::KMeansProfile) => Some("kmeans"),
            _ => None,
        };
        if let Some(name) = name {
            segmenters.push((name.to_owned(), query.segmenter.clone()));
        }
    }
    let version = previous.map_or(1, |p| p.version + 1);
    let mut report = run.report(version);
    let model = model_of(&report, segmenters);
    report.drift = previous.map(|p| model.drift_from(p));
    Ok((report, model))
}

fn rho_text(rho: &Rho) -> String {
    format!("{:.4}", rho.to_f64())
}

/// Fills the report's per-node budgets from an audit of the ledgers in `dir`.
pub fn add_budgets(report: &mut ProfileReport, dir: &Path) -> Result<()> {
    let audit = crate::audit::verify_dir(dir, time::OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("the ledgers in {} do not verify: {e}", dir.display()))?;
    report.budgets = audit
        .nodes
        .iter()
        .filter_map(|n| {
            let p = n.current()?;
            Some(NodeBudget {
                node: n.node.to_string(),
                spent: p.spent.to_f64(),
                cap: p.cap.to_f64(),
                period: p.period.to_string(),
                cumulative: Some(n.cumulative.to_f64()),
                cumulative_epsilon: Some(fedprof_ledger::epsilon_at_delta(
                    &n.cumulative,
                    report.privacy.delta,
                )),
                lifetime_cap: n.lifetime_cap.as_ref().map(fedprof_ledger::Rho::to_f64),
            })
        })
        .collect();
    Ok(())
}

/// Writes the report (JSON, HTML), the model and the CSV tables into `dir`; returns the paths.
pub fn write_outputs(
    dir: &Path,
    report: &ProfileReport,
    model: &SegmentModel,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let html = fedprof_profile::html::render(report);
    let external = fedprof_profile::html::external_references(&html);
    if !external.is_empty() {
        bail!("internal error: the report references external resources: {external:?}");
    }
    let files = [
        ("report.json", serde_json::to_string_pretty(report)? + "\n"),
        ("report.html", html),
        ("model.json", serde_json::to_string_pretty(model)? + "\n"),
        ("segments.csv", segments_csv(report)),
        ("distributions.csv", distributions_csv(report)),
        ("crosstabs.csv", crosstabs_csv(report)),
    ];
    let mut paths = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        // Atomically and durably (temporary file, fsync, rename, fsync the directory): a crash
        // leaves the old file or the new one, never half of one.
        fedprof_ledger::file::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
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
