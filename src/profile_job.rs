//! Running a profiling job and writing what it produced: drives [`ProfileRun`] release by
//! release through any way of running a job (an in-process coordinator for `fedprof local`
//! and the demo), then writes `report.json`, `report.html`, `model.json` and CSV tables.

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedprof_privacy::Rho;
use fedprof_profile::driver::{DriveError, Event, RETRIES, RunKey, drive};
use fedprof_profile::model::SegmentModel;
use fedprof_profile::report::{NodeBudget, ProfileReport};
use fedprof_profile::spec::{ProfilePolicy, ProfileSpec};
use fedprof_protocol::{JobOutcome, Submission};
use rand_core::Rng as _;

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

/// The unfinished run in an output directory: `run.json`, written (atomically) before the
/// run's first release and removed by [`write_outputs`] once the run's outputs are written.
/// It holds the run's key, from which every release's request id follows, so running the same
/// job into the same directory again resumes it (see [`fedprof_profile::driver`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    /// The job's name.
    job: String,
    /// SHA-256 of the parsed spec (its `Debug` form: every field, maps in key order).
    spec: String,
    /// The run key, hex.
    key: String,
    /// When the run started (UTC, RFC 3339).
    started: String,
}

const RUN_FILE: &str = "run.json";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spec_digest(spec: &ProfileSpec) -> Result<String> {
    let text = format!("{spec:?}");
    let d = fedprof_crypto::digest("fedprof/1 profile run spec", &[text.as_bytes()])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(hex(&d))
}

/// The run key for `spec` in `out`: the unfinished run's (resuming it), or a new one, kept
/// durably before anything is submitted.
fn run_key(out: &Path, spec: &ProfileSpec, progress: &Progress) -> Result<RunKey> {
    let path = out.join(RUN_FILE);
    let digest = spec_digest(spec)?;
    match fs::read(&path) {
        Ok(bytes) => {
            let run: RunFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a run file", path.display()))?;
            if run.spec != digest {
                bail!(
                    "{} holds an unfinished run of {} (another spec, started {}); run that                      spec again to finish it, or remove the file to abandon it (its published                      releases stay paid)",
                    path.display(),
                    run.job,
                    run.started
                );
            }
            let mut key = [0u8; 12];
            let bytes = run.key.as_bytes();
            if bytes.len() != 24 {
                bail!("{}: key: 24 hex digits expected", path.display());
            }
            for (i, pair) in bytes.chunks_exact(2).enumerate() {
                let pair = std::str::from_utf8(pair).unwrap_or("zz");
                key[i] = u8::from_str_radix(pair, 16)
                    .with_context(|| format!("{}: key: not hex", path.display()))?;
            }
            progress.done(format!(
                "resuming the unfinished run of {} started {} (published releases are fetched again, not paid again)",
                run.job, run.started
            ));
            Ok(RunKey(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 12];
            fedprof_crypto::rng::from_os()
                .map_err(|e| anyhow::anyhow!("no randomness for the run key: {e}"))?
                .fill_bytes(&mut key);
            let now = time::OffsetDateTime::now_utc();
            let started = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            );
            let run = RunFile {
                job: spec.name.clone(),
                spec: digest,
                key: hex(&key),
                started,
            };
            fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
            fedprof_ledger::file::write_atomic(&path, &serde_json::to_vec_pretty(&run)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(RunKey(key))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Runs `spec` release by release through `submit`, resuming the unfinished run in `out` if
/// there is one (the outputs go to `out` too: [`write_outputs`] ends the run); `previous` is
/// the model of the job's last run, if any.
pub async fn run<F, Fut>(
    submit: F,
    spec: ProfileSpec,
    policy: &ProfilePolicy,
    previous: Option<&SegmentModel>,
    out: &Path,
    progress: &Progress,
) -> Result<(ProfileReport, SegmentModel)>
where
    F: FnMut(Submission) -> Fut,
    Fut: Future<Output = Result<JobOutcome>>,
{
    let key = run_key(out, &spec, progress)?;
    let on = |e: Event<'_>| match e {
        Event::Submitting {
            index,
            total,
            label,
        } => progress.step(format!(
            "release {index}/{total}: {label} (secure aggregation + noise + ledgers)"
        )),
        Event::LeftOut(f) => progress.done(format!("node {} left out: {}", f.node, f.reason)),
        Event::Retrying {
            label,
            reason,
            attempt,
        } => progress.done(format!(
            "{label} aborted ({reason}); sending it again ({attempt}/{RETRIES})"
        )),
        Event::Released {
            label,
            rho,
            contributors,
        } => progress.done(format!(
            "{label}: rho {} from {contributors} nodes",
            rho_text(rho)
        )),
    };
    drive(spec, policy, previous, key, submit, on)
        .await
        .map_err(|e| match e {
            DriveError::Submit(e) => e,
            other => anyhow::anyhow!(other),
        })
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
    let files = fedprof_profile::outputs::files(report, model)?;
    let mut paths = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        // Atomically and durably (temporary file, fsync, rename, fsync the directory): a crash
        // leaves the old file or the new one, never half of one.
        fedprof_ledger::file::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    // The run is finished once its outputs are on disk: the next run in `dir` is a new one.
    let run = dir.join(RUN_FILE);
    match fs::remove_file(&run) {
        Ok(()) => fedprof_ledger::file::sync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", run.display())),
    }
    Ok(paths)
}
