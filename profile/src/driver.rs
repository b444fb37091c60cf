//! Driving a profiling job to its end, release by release, through any way of submitting a
//! release (an analyst's connection, an in-process coordinator, a schedule), so that it can
//! be resumed.
//!
//! Every release is submitted under a request id made of the run's random [`RunKey`] and the
//! release's step. The coordinator answers a request it has published with the published
//! result (it never runs it twice), so a run interrupted anywhere (the analyst, the
//! coordinator or a node stopped) is resumed by driving the same spec with the same key
//! again: the releases already published come back as they were, the job's query sequence is
//! the same (a [`ProfileRun`] is deterministic given its results), and only what is missing
//! runs and is paid for. The caller keeps the key durably before the first release
//! ([`crate::rundir::begin`]).
//!
//! A release that aborts (a node lost mid-round, for example) is sent again under the same
//! request a few times: the coordinator makes a later release wait for the job's lost nodes,
//! refunds an aborted round no node could pay for, and refuses a retry the job's declared
//! total cannot pay. Sans-IO apart from awaiting `submit`.

use std::future::Future;

use fedprof_privacy::Rho;
use fedprof_protocol::query::Segmenter;
use fedprof_protocol::{JobOutcome, JobSpec, NodeFailure, RequestId, Submission};

use crate::model::{SegmentModel, model_of};
use crate::report::ProfileReport;
use crate::run::{ProfileRun, RunError, Step};
use crate::spec::{ProfilePolicy, ProfileSpec};

/// How many times an aborted release is sent again before the job stops.
pub const RETRIES: u32 = 2;

/// A run's identity: 12 random bytes the caller draws once per run and keeps until the run
/// has finished (the request of step `k` is those bytes and `k`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RunKey(pub [u8; 12]);

impl RunKey {
    /// The request id of the release at `step` (0-based).
    pub fn request(&self, step: usize) -> RequestId {
        let mut id = [0u8; 16];
        id[..12].copy_from_slice(&self.0);
        let step = u32::try_from(step).unwrap_or(u32::MAX);
        id[12..].copy_from_slice(&step.to_be_bytes());
        RequestId(id)
    }
}

/// What happened, for progress displays and logs.
#[derive(Debug)]
pub enum Event<'a> {
    /// Release `index` (1-based) of `total` is submitted.
    Submitting {
        /// Its position.
        index: usize,
        /// Releases in the plan.
        total: usize,
        /// Its label.
        label: &'a str,
    },
    /// A node was asked but is not in the result.
    LeftOut(&'a NodeFailure),
    /// A release aborted and is sent again.
    Retrying {
        /// Its label.
        label: &'a str,
        /// Why it aborted.
        reason: &'a str,
        /// 1-based retry.
        attempt: u32,
    },
    /// A release was published.
    Released {
        /// Its label.
        label: &'a str,
        /// Its cost per node.
        rho: &'a Rho,
        /// Nodes in the sum.
        contributors: usize,
    },
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DriveError<E> {
    /// The spec, the policy or a result does not fit the job.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The previous model is another job's.
    #[error("the previous model is of job {previous:?}, not {job:?}")]
    PreviousModel {
        /// The model's job.
        previous: String,
        /// This job.
        job: String,
    },
    /// Submitting failed (the connection, a timeout).
    #[error(transparent)]
    Submit(E),
    /// A release aborted every time it was sent.
    #[error(
        "release {label} was aborted: {reason}. Releases before it are published and paid for \
         in the node ledgers; run the job again with the same output to resume it (published \
         releases are not paid again)"
    )]
    Aborted {
        /// The release.
        label: String,
        /// Why, the last time.
        reason: String,
    },
    /// A released result's parameters do not give a rho.
    #[error("release {label}: released parameters refused: {error}")]
    Rho {
        /// The release.
        label: String,
        /// What is wrong.
        error: String,
    },
}

/// Runs `spec` to its end under `key`; `previous` is the model of the job's last run, if any
/// (the new model's version follows it and the report gets a drift table).
pub async fn drive<F, Fut, E>(
    spec: ProfileSpec,
    policy: &ProfilePolicy,
    previous: Option<&SegmentModel>,
    key: RunKey,
    mut submit: F,
    mut on: impl FnMut(Event<'_>),
) -> Result<(ProfileReport, SegmentModel), DriveError<E>>
where
    F: FnMut(Submission) -> Fut,
    Fut: Future<Output = Result<JobOutcome, E>>,
{
    if let Some(p) = previous
        && p.name != spec.name
    {
        return Err(DriveError::PreviousModel {
            previous: p.name.clone(),
            job: spec.name,
        });
    }
    let mut run = ProfileRun::new(spec, policy)?;
    let total = run.plan().len();
    let mut segmenters: Vec<(String, Segmenter)> = Vec::new();
    let mut index = 0;
    while let Some(query) = run.next_query() {
        let step = run.plan().get(index).map(|s| s.0);
        let request = key.request(index);
        index += 1;
        on(Event::Submitting {
            index,
            total,
            label: &query.label,
        });
        let mut attempt = 0;
        let result = loop {
            let submission = Submission {
                request,
                spec: JobSpec::Features(Box::new(query.clone())),
            };
            match submit(submission).await.map_err(DriveError::Submit)? {
                JobOutcome::Completed { result, failures } => {
                    for f in &failures {
                        on(Event::LeftOut(f));
                    }
                    break result;
                }
                JobOutcome::Aborted { reason, .. } if attempt < RETRIES => {
                    attempt += 1;
                    on(Event::Retrying {
                        label: &query.label,
                        reason: &reason,
                        attempt,
                    });
                }
                JobOutcome::Aborted { reason, .. } => {
                    return Err(DriveError::Aborted {
                        label: query.label,
                        reason,
                    });
                }
            }
        };
        let rho = fedprof_privacy::query::query_rho(&query, &result.release).map_err(|e| {
            DriveError::Rho {
                label: query.label.clone(),
                error: e.to_string(),
            }
        })?;
        run.on_result(&result, &rho)?;
        on(Event::Released {
            label: &query.label,
            rho: &rho,
            contributors: result.contributors.len(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_the_run_key_and_the_step() {
        let key = RunKey([7; 12]);
        assert_eq!(key.request(0), key.request(0));
        assert_ne!(key.request(0), key.request(1));
        assert_ne!(key.request(0), RunKey([8; 12]).request(0));
        assert_eq!(&key.request(258).0[12..], &[0, 0, 1, 2]);
    }
}
