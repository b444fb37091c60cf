//! A run directory: where one run of a profiling job keeps its run key while it is unfinished,
//! and writes its outputs once it is done. The one module of this crate that touches files;
//! the decisions (what to release, what a result means) stay in [`crate::run`] and
//! [`crate::driver`], and the caller passes the time in.
//!
//! [`begin`] writes `run.json` (atomically and durably) before the run's first release, or
//! reads the one an unfinished run left: it holds the run's key, from which every release's
//! request id follows, so running the same job into the same directory again resumes it (see
//! [`crate::driver`]). [`finish`] writes the outputs ([`crate::outputs::files`]) atomically
//! and then removes `run.json`: the next run into the directory is a new one. A different
//! spec over an unfinished run is refused, naming the file, so two jobs never share a key.
//!
//! Also here: reading a job file ([`load_spec`]) and a segment model ([`load_model`],
//! [`load_latest_model`]), with errors that name the file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use fedprof_ledger::file::{FileError, sync_dir, write_atomic};
use rand_core::Rng as _;
use time::OffsetDateTime;

use crate::driver::RunKey;
use crate::model::{ModelError, SegmentModel};
use crate::outputs::OutputError;
use crate::report::ProfileReport;
use crate::spec::{ProfileSpec, SpecError};

/// The file of an unfinished run, in its output directory.
pub const RUN_FILE: &str = "run.json";

/// Domain-separation label of the spec digest a run file holds.
const SPEC_DIGEST_LABEL: fedprof_crypto::Label =
    fedprof_crypto::label!("fedprof/1 profile run spec");

/// Why a run directory, a job file or a model cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The output directory cannot be created.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file cannot be written (atomically, durably) or a directory synced.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: FileError,
    },
    /// The run file of a finished run cannot be removed.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The run file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The job file is not a valid job spec.
    #[error("{}: {error}", path.display())]
    Spec {
        /// The job file.
        path: PathBuf,
        /// The field and what is wrong with it.
        error: SpecError,
    },
    /// The model file is not a segment model.
    #[error("{}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        source: ModelError,
    },
    /// `run.json` is not a run file (damaged, or written by something else).
    #[error("{}: not a run file", path.display())]
    NotARunFile {
        /// The run file.
        path: PathBuf,
        /// What the JSON decoder found.
        source: serde_json::Error,
    },
    /// The run file's key is not 12 bytes in hex.
    #[error("{}: key: {problem}", path.display())]
    BadKey {
        /// The run file.
        path: PathBuf,
        /// `24 hex digits expected` or `not hex`.
        problem: &'static str,
    },
    /// The directory holds an unfinished run of another spec: resuming it under this spec
    /// would reuse its request ids for other queries.
    #[error(
        "{} holds an unfinished run of {job} (another spec, started {started}); run that spec \
         again to finish it, or remove the file to abandon it (its published releases stay paid)",
        path.display()
    )]
    AnotherSpec {
        /// The run file.
        path: PathBuf,
        /// The unfinished run's job name.
        job: String,
        /// When it started.
        started: String,
    },
    /// The operating system gave no randomness for a new run key.
    #[error("no randomness for the run key: {0}")]
    Randomness(#[from] fedprof_crypto::rng::RngError),
    /// The outputs cannot be produced.
    #[error(transparent)]
    Outputs(#[from] OutputError),
}

/// How [`begin`] found the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// No unfinished run: a new key was drawn and kept in `run.json`.
    New,
    /// The unfinished run of the same spec goes on under its key: its published releases are
    /// fetched again from the coordinator, not paid again.
    Resumed {
        /// The job's name.
        job: String,
        /// When the run started (UTC, RFC 3339).
        started: String,
    },
}

/// `run.json`: the unfinished run in an output directory.
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

/// Loads and parses a job file; errors name the file and the field.
pub fn load_spec(path: &Path) -> Result<ProfileSpec, RunDirError> {
    let text = fs::read_to_string(path).map_err(read_error(path))?;
    ProfileSpec::from_toml(&text).map_err(|error| RunDirError::Spec {
        path: path.to_owned(),
        error,
    })
}

/// Reads a segment model file; errors name the file.
pub fn load_model(path: &Path) -> Result<SegmentModel, RunDirError> {
    let text = fs::read_to_string(path).map_err(read_error(path))?;
    SegmentModel::from_json(&text).map_err(|source| RunDirError::Model {
        path: path.to_owned(),
        source,
    })
}

/// The model at `path` if there is one (a job's latest version), `None` if the file does not
/// exist; any other failure is an error naming the file.
pub fn load_latest_model(path: &Path) -> Result<Option<SegmentModel>, RunDirError> {
    match load_model(path) {
        Ok(m) => Ok(Some(m)),
        Err(RunDirError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The run key for `spec` in `out`: the unfinished run's if `out` holds one of the same spec
/// (resuming it), otherwise a new one from the operating system's random source, kept durably
/// in `out/run.json` (the directory is created) before this returns, so before anything is
/// submitted. `now` is the run's start, recorded in the file.
pub fn begin(
    out: &Path,
    spec: &ProfileSpec,
    now: OffsetDateTime,
) -> Result<(RunKey, Begun), RunDirError> {
    let path = out.join(RUN_FILE);
    let digest = spec_digest(spec);
    match fs::read(&path) {
        Ok(bytes) => {
            let run: RunFile =
                serde_json::from_slice(&bytes).map_err(|source| RunDirError::NotARunFile {
                    path: path.clone(),
                    source,
                })?;
            if run.spec != digest {
                return Err(RunDirError::AnotherSpec {
                    path,
                    job: run.job,
                    started: run.started,
                });
            }
            let key = parse_key(&run.key).map_err(|problem| RunDirError::BadKey {
                path: path.clone(),
                problem,
            })?;
            let begun = Begun::Resumed {
                job: run.job,
                started: run.started,
            };
            Ok((RunKey(key), begun))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut key = [0u8; 12];
            fedprof_crypto::rng::from_os()?.fill_bytes(&mut key);
            let run = RunFile {
                job: spec.name.clone(),
                spec: digest,
                key: hex::encode(key),
                started: rfc3339(now),
            };
            fs::create_dir_all(out).map_err(|source| RunDirError::CreateDir {
                path: out.to_owned(),
                source,
            })?;
            // A struct of four strings always serializes.
            let json = serde_json::to_vec_pretty(&run).unwrap_or_default();
            write_atomic(&path, &json).map_err(write_error(&path))?;
            Ok((RunKey(key), Begun::New))
        }
        Err(e) => Err(read_error(&path)(e)),
    }
}

/// Writes the report (JSON, HTML), the model and the CSV tables into `dir`, each atomically
/// and durably (temporary file, fsync, rename, fsync the directory: a crash leaves the old
/// file or the new one, never half of one), then ends the run by removing `dir/run.json` if
/// there is one. Returns the paths written.
pub fn finish(
    dir: &Path,
    report: &ProfileReport,
    model: &SegmentModel,
) -> Result<Vec<PathBuf>, RunDirError> {
    fs::create_dir_all(dir).map_err(|source| RunDirError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let files = crate::outputs::files(report, model)?;
    let mut paths = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes()).map_err(write_error(&path))?;
        paths.push(path);
    }
    // The run is finished once its outputs are on disk: the next run in `dir` is a new one.
    let run = dir.join(RUN_FILE);
    match fs::remove_file(&run) {
        Ok(()) => sync_dir(dir).map_err(write_error(dir))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(RunDirError::Remove { path: run, source }),
    }
    Ok(paths)
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Read {
        path: path.to_owned(),
        source,
    }
}

fn write_error(path: &Path) -> impl FnOnce(FileError) -> RunDirError + '_ {
    move |source| RunDirError::Write {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 (labelled) of the spec's `Debug` form, hex: the same spec parsed again gives the
/// same digest, any change to a field gives another.
fn spec_digest(spec: &ProfileSpec) -> String {
    let text = format!("{spec:?}");
    let d = fedprof_crypto::digest(SPEC_DIGEST_LABEL, &[text.as_bytes()]);
    hex::encode(d)
}

/// The 12 key bytes from 24 hex digits.
fn parse_key(text: &str) -> Result<[u8; 12], &'static str> {
    if text.len() != 24 {
        return Err("24 hex digits expected");
    }
    let mut key = [0u8; 12];
    hex::decode_to_slice(text, &mut key).map_err(|_| "not hex")?;
    Ok(key)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests;
