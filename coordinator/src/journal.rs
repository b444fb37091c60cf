//! The coordinator's job journal: what a restarted coordinator must know that its release
//! ledger does not say.
//!
//! The release ledger records published releases, signed, for auditors. A coordinator that
//! stops (a crash, `kill -9`, a deploy) must also come back knowing
//! - the last job number it used, so numbers never repeat;
//! - every open profiling job: its analyst, declared total, population and what has been
//!   charged to it, including releases that were announced but never published (nodes pay on
//!   announcement, so a restart must not give that budget back);
//! - which analyst requests it published, so a request sent again after a restart gets the
//!   published result back instead of a second round (resuming a profiling job never pays
//!   twice for a published release).
//!
//! Each [`Record`] is one JSON line, appended and fsynced by the shell before the action it
//! describes has any effect outside the process: an announcement is journaled before any node
//! hears of it, a publication before anyone receives the result. A torn last line (a crash
//! while appending) therefore describes an action that never happened and is dropped on open.
//!
//! Sans-IO: [`Recovery::replay`] folds records into the state the core resumes from; the file
//! handling is [`JournalFile`].

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use fedprof_privacy::Rho;
use fedprof_protocol::{
    Body, Envelope, Header, JobId, JobOutcome, JobSpec, PartyName, ProfileTag, RequestId, RoundId,
};
use serde::{Deserialize, Serialize};

use crate::budget::ProfileBook;

/// One journal line.
#[expect(
    clippy::large_enum_variant,
    reason = "records are written one at a time and replayed once at start"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// A release is about to be announced; its rho is charged to its profiling job.
    Announced(Announced),
    /// Nodes may have debited the release (written with the announcement: a node computes and
    /// debits as soon as it accepts), so an interrupted round keeps its charge. Journals
    /// written before this rule may lack it for early phases; their rounds were refunded.
    Paying {
        /// The job.
        job: JobId,
    },
    /// The round ended without a release before any node could pay: the charge is given
    /// back (and a job this release opened is dropped, its total back in the analyst's quota).
    Refunded {
        /// The job.
        job: JobId,
    },
    /// The release was recorded in the release ledger and its result stored; it is published
    /// next. The first published release of a profiling job fixes its population.
    Published {
        /// The job.
        job: JobId,
        /// The nodes in the sum, sorted.
        contributors: Vec<PartyName>,
    },
    /// The round ended without a release after nodes may have paid (an abort in or after
    /// the masked-input phase, or a release the ledger refused): the charge stays.
    Aborted {
        /// The job.
        job: JobId,
    },
}

/// An announced release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announced {
    /// The job number.
    pub job: JobId,
    /// Who asked (an analyst's certificate name, or the coordinator's own for local runs).
    pub analyst: PartyName,
    /// The analyst's idempotency key.
    pub request: RequestId,
    /// SHA-256 of the spec's wire encoding: a request sent again must ask the same.
    pub spec: SpecDigest,
    /// The profiling job and its declared total.
    pub profile: ProfileTag,
    /// The release's rho, charged to the job.
    pub rho: Rho,
    /// Present when this release opened its profiling job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened: Option<Opening>,
}

/// How a profiling job was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opening {
    /// The analysts' quota period it was opened in.
    pub period: String,
    /// Its declared total.
    pub cap: Rho,
    /// The nodes asked.
    pub participants: Vec<PartyName>,
}

/// SHA-256 of a spec's wire encoding, hex in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecDigest(#[serde(with = "hex32")] pub [u8; 32]);

impl SpecDigest {
    /// The digest of `spec` (of its JSON form: field order is the type's, so equal specs
    /// give equal bytes).
    ///
    /// # Errors
    ///
    /// [`SpecDigestError`] if the spec does not serialize. A spec is plain data, so this does
    /// not happen; it is an error rather than a fallback because a fallback digest would be
    /// the same for every spec, and a request id could then name two jobs (review L5).
    pub fn of(spec: &JobSpec) -> Result<SpecDigest, SpecDigestError> {
        let bytes = serde_json::to_vec(spec).map_err(|e| SpecDigestError(e.to_string()))?;
        Ok(SpecDigest(fedprof_crypto::digest(
            fedprof_crypto::label!("fedprof/1 journal spec"),
            &[&bytes],
        )))
    }
}

/// A job spec that could not be serialized for its digest (see [`SpecDigest::of`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the job spec cannot be serialized for its journal digest: {0}")]
pub struct SpecDigestError(String);

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let bytes = s.as_bytes();
        let mut out = [0u8; 32];
        if bytes.len() != 64 {
            return Err(serde::de::Error::custom("a digest is 64 hex digits"));
        }
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
            out[i] = u8::from_str_radix(pair, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Its round is running as `job`.
    Running(JobId),
    /// Published as `job`; the stored result answers it again.
    Published(JobId),
    /// Announced as `job`, never published (the round aborted or the coordinator stopped):
    /// sent again, it runs as a new release.
    Interrupted(JobId),
}

/// A request the coordinator knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRequest {
    /// Its state.
    pub state: RequestState,
    /// What it asked.
    pub spec: SpecDigest,
}

/// What the core resumes from.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The last job number used.
    pub last_job: u64,
    /// Open profiling jobs, with every charge.
    pub profiles: ProfileBook,
    /// Requests per analyst.
    pub requests: BTreeMap<(PartyName, RequestId), KnownRequest>,
    /// Rounds that were running when the coordinator stopped: `(job, nodes had paid)`.
    pub interrupted: Vec<(JobId, bool)>,
}

/// Why the journal cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error(transparent)]
    File(#[from] fedprof_ledger::file::FileError),
    /// A line is not a record.
    #[error("{path}: line {line}: {error}")]
    Parse {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        error: String,
    },
    /// A record names a job the journal has not announced, or repeats one.
    #[error("{path}: line {line}: {what}")]
    Order {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A stored result cannot be written or read back.
    #[error("{path}: {error}")]
    Result {
        /// The result file.
        path: PathBuf,
        /// What is wrong.
        error: String,
    },
}

#[derive(Debug)]
struct Open {
    announced: Announced,
    paying: bool,
}

impl Recovery {
    /// Folds `records` (in journal order) into the state to resume from. `Err` names the
    /// index of the first record that does not follow from the ones before it.
    pub fn replay(records: &[Record]) -> Result<Recovery, (usize, String)> {
        let mut r = Recovery::default();
        let mut open: BTreeMap<JobId, Open> = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            let mut take = |job: JobId| {
                open.remove(&job)
                    .ok_or_else(|| (i, format!("{job} is not an announced, running release")))
            };
            match record {
                Record::Announced(a) => {
                    if a.job.0 <= r.last_job {
                        return Err((i, format!("{} is not after job {}", a.job, r.last_job)));
                    }
                    r.last_job = a.job.0;
                    if let Some(o) = &a.opened {
                        r.profiles.restore(
                            a.profile.id,
                            &a.analyst,
                            &o.period,
                            o.cap.clone(),
                            o.participants.clone(),
                        );
                    }
                    r.profiles.charge(a.profile.id, &a.rho);
                    r.requests.insert(
                        (a.analyst.clone(), a.request),
                        KnownRequest {
                            state: RequestState::Running(a.job),
                            spec: a.spec,
                        },
                    );
                    open.insert(
                        a.job,
                        Open {
                            announced: a.clone(),
                            paying: false,
                        },
                    );
                }
                Record::Paying { job } => match open.get_mut(job) {
                    Some(o) => o.paying = true,
                    None => return Err((i, format!("{job} is not running"))),
                },
                Record::Refunded { job } => {
                    let o = take(*job)?;
                    r.refund(&o.announced);
                }
                Record::Published { job, contributors } => {
                    let o = take(*job)?;
                    r.profiles.completed(o.announced.profile.id, contributors);
                    r.set_state(&o.announced, RequestState::Published(*job));
                }
                Record::Aborted { job } => {
                    let o = take(*job)?;
                    r.set_state(&o.announced, RequestState::Interrupted(*job));
                }
            }
        }
        // Rounds that were running died with the process: one no node could have paid for is
        // refunded, as an abort at that point would have been; the others keep their charge.
        for (job, o) in open {
            r.interrupted.push((job, o.paying));
            if o.paying {
                r.set_state(&o.announced, RequestState::Interrupted(job));
            } else {
                r.refund(&o.announced);
            }
        }
        Ok(r)
    }

    /// Moves `a`'s request on, unless a later release of the same request took it over (a
    /// round interrupted by a restart is never closed in the journal: it must not overwrite
    /// what the request's next run became; found by fedprof-sim, seed 50).
    fn set_state(&mut self, a: &Announced, state: RequestState) {
        if let Some(k) = self.requests.get_mut(&(a.analyst.clone(), a.request))
            && k.state == RequestState::Running(a.job)
        {
            k.state = state;
        }
    }

    fn refund(&mut self, a: &Announced) {
        self.profiles.refund(a.profile.id, &a.rho);
        if let Some(o) = &a.opened {
            self.profiles.discard(a.profile.id, &o.period);
        }
        self.set_state(a, RequestState::Interrupted(a.job));
    }
}

/// The journal on disk: `<dir>/journal.jsonl` and each published outcome in
/// `<dir>/results/job-<n>.json`.
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    results: PathBuf,
    file: File,
}

impl JournalFile {
    /// Opens the journal in `dir` (created if missing), drops a torn last line and replays it.
    pub fn open(dir: &Path) -> Result<(JournalFile, Recovery), JournalError> {
        use fedprof_ledger::file;
        file::ensure_dir(dir)?;
        let path = dir.join("journal.jsonl");
        let results = dir.join("results");
        file::ensure_dir(&results)?;
        let bytes = file::read_optional(&path)?.unwrap_or_default();
        let (complete, torn) = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => (&bytes[..=end], end + 1 < bytes.len()),
            None => (&bytes[..0], !bytes.is_empty()),
        };
        if torn {
            // The record was never complete, so the action after it never happened.
            tracing::warn!(path = %path.display(), "dropping a torn last journal line (a crash while appending)");
            std::fs::write(&path, complete).map_err(|e| JournalError::Result {
                path: path.clone(),
                error: e.to_string(),
            })?;
        }
        let mut records = Vec::new();
        for (i, line) in file::ledger_lines(&path, complete)?.into_iter().enumerate() {
            let record = serde_json::from_str(line).map_err(|e| JournalError::Parse {
                path: path.clone(),
                line: i + 1,
                error: e.to_string(),
            })?;
            records.push(record);
        }
        let recovery = Recovery::replay(&records).map_err(|(i, what)| JournalError::Order {
            path: path.clone(),
            line: i + 1,
            what,
        })?;
        let file = file::open_append(&path)?;
        Ok((
            JournalFile {
                path,
                results,
                file,
            },
            recovery,
        ))
    }

    /// Appends `record` and waits until it is on disk.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let line = serde_json::to_string(record).map_err(|e| JournalError::Parse {
            path: self.path.clone(),
            line: 0,
            error: e.to_string(),
        })?;
        fedprof_ledger::file::append_line(&mut self.file, &self.path, &line)?;
        Ok(())
    }

    fn result_path(&self, job: JobId) -> PathBuf {
        self.results.join(format!("job-{}.bin", job.0))
    }

    /// Stores the outcome published for `job` (atomically and durably), in the wire
    /// encoding of the `Outcome` message that carries it.
    pub fn store_result(&self, job: JobId, outcome: &JobOutcome) -> Result<(), JournalError> {
        let path = self.result_path(job);
        let envelope = Envelope {
            header: Header {
                job,
                round: RoundId(0),
                seq: 0,
            },
            body: Body::Outcome(outcome.clone()),
        };
        let bytes = fedprof_protocol::encode(&envelope).map_err(|e| JournalError::Result {
            path: path.clone(),
            error: e.to_string(),
        })?;
        fedprof_ledger::file::write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// The outcome published for `job`.
    pub fn load_result(&self, job: JobId) -> Result<JobOutcome, JournalError> {
        let path = self.result_path(job);
        let bytes = std::fs::read(&path).map_err(|e| JournalError::Result {
            path: path.clone(),
            error: e.to_string(),
        })?;
        let bad = |error: String| JournalError::Result {
            path: path.clone(),
            error,
        };
        match fedprof_protocol::decode(&bytes).map_err(|e| bad(e.to_string()))? {
            Envelope {
                header,
                body: Body::Outcome(outcome),
            } if header.job == job => Ok(outcome),
            _ => Err(bad(format!("not the outcome of {job}"))),
        }
    }
}

#[cfg(test)]
mod tests;
