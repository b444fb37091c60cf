//! The simulated analyst: runs profiling jobs of a few releases each over its connection, the
//! way `fedprof_profile::driver` does (one request id per release, the same id sent again
//! after a lost connection or an abort, so the coordinator answers a published release from
//! its journal instead of running it twice).
//!
//! Its queries are fixed (count, two bounded numeric sums, a histogram) rather than a
//! `ProfileRun`'s, whose later queries depend on released values; what the simulator checks
//! (population, budget, idempotence) does not depend on which query a release asks.

use std::time::Duration;

use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
use fedprof_protocol::{
    Body, Envelope, Fraction, JobId, JobOutcome, JobResult, JobSpec, PartyId, PartyName, ProfileId,
    RequestId, Submission,
};

/// Times an aborted release is sent again before its job is given up (the driver's).
pub const RETRIES: u32 = fedprof_profile::driver::RETRIES;

/// How a profiling job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Every release was published.
    Completed,
    /// A release could not be published; the job stopped there.
    Aborted {
        /// The release that failed (0-based).
        step: usize,
        /// The coordinator's last reason.
        reason: String,
    },
}

/// What the analyst wants done.
#[derive(Debug)]
pub enum AnalystOut {
    /// Send a message on its connection.
    Send(Body),
    /// Call [`SimAnalyst::on_timer`] after this long.
    Timer(Duration),
}

/// One profiling job's progress.
#[derive(Debug, Clone, Default)]
pub struct JobRecord {
    /// The published results, in order.
    pub results: Vec<(JobId, JobResult)>,
    /// The profiling job's id (from its first result).
    pub profile: Option<ProfileId>,
    /// How it ended (`None`: still running).
    pub end: Option<JobEnd>,
    /// Requests sent again after a lost connection (resumes).
    pub resumed: u32,
    /// Aborted releases sent again.
    pub retried: u32,
}

/// The analyst.
#[derive(Debug)]
pub struct SimAnalyst {
    party: PartyId,
    seed: u64,
    releases: usize,
    budget: Fraction,
    /// Per job.
    pub jobs: Vec<JobRecord>,
    current: usize,
    attempts: u32,
    connected: bool,
    /// The current release's request was sent at least once.
    sent: bool,
    /// Timers set before the last change of state are ignored.
    timer_epoch: u64,
    /// How long to wait for an answer before sending the request again.
    patience: Duration,
}

impl SimAnalyst {
    /// An analyst that runs `jobs` profiling jobs of `releases` releases, each release asking
    /// `budget`.
    pub fn new(
        name: PartyName,
        seed: u64,
        (jobs, releases): (usize, usize),
        budget: Fraction,
    ) -> Self {
        SimAnalyst {
            party: PartyId {
                role: fedprof_protocol::Role::Analyst,
                name,
            },
            seed,
            releases,
            budget,
            jobs: vec![JobRecord::default(); jobs],
            current: 0,
            attempts: 0,
            connected: false,
            sent: false,
            timer_epoch: 0,
            patience: Duration::from_secs(600),
        }
    }

    /// Who it is.
    pub fn party(&self) -> &PartyId {
        &self.party
    }

    /// Whether every job has ended.
    pub fn finished(&self) -> bool {
        self.current >= self.jobs.len()
    }

    /// The request id of release `step` of job `job` (a run key per job, as the driver's).
    pub fn request(&self, job: usize, step: usize) -> RequestId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.seed.to_le_bytes());
        id[8..12].copy_from_slice(&u32::try_from(job).unwrap_or(u32::MAX).to_le_bytes());
        id[12..].copy_from_slice(&u32::try_from(step).unwrap_or(u32::MAX).to_le_bytes());
        RequestId(id)
    }

    fn label(job: usize, step: usize) -> String {
        format!("sim/job-{job}/release-{step}")
    }

    /// The spec of release `step` of job `job`.
    pub fn spec(&self, job: usize, step: usize) -> Option<JobSpec> {
        let record = self.jobs.get(job)?;
        let profile = if step == 0 {
            None
        } else {
            Some(record.profile?)
        };
        // The releases after this one; the first release also reserves one spare, so the
        // job's declared total lets one aborted release the nodes paid for be sent again.
        let after = self.releases.saturating_sub(step + 1) + usize::from(step == 0);
        let left = u64::try_from(after).unwrap_or(0);
        let reserve = Fraction {
            numer: self.budget.numer * left,
            denom: self.budget.denom,
        };
        Some(JobSpec::Features(Box::new(FeatureQuery {
            label: Self::label(job, step),
            as_of: "2026-11-30".into(),
            scale: 1000,
            segmenter: Segmenter::All,
            parts: vec![
                QueryPart::Count,
                QueryPart::Numeric {
                    feature: NumericFeature::TxnCount,
                    lo: 0,
                    hi: 20,
                },
                QueryPart::Numeric {
                    feature: NumericFeature::MonetaryTotal,
                    lo: 0,
                    hi: 40_000,
                },
                QueryPart::Histogram {
                    feature: NumericFeature::DaysSinceLast,
                    edges: vec![30, 90, 180],
                },
            ],
            budget: self.budget,
            reserve,
            job: profile,
        })))
    }

    fn step(&self) -> usize {
        self.jobs.get(self.current).map_or(0, |j| j.results.len())
    }

    fn submit(&mut self) -> Vec<AnalystOut> {
        self.timer_epoch += 1;
        let (job, step) = (self.current, self.step());
        let Some(spec) = self.spec(job, step) else {
            return Vec::new();
        };
        if !self.connected {
            return Vec::new();
        }
        self.sent = true;
        vec![
            AnalystOut::Send(Body::SubmitJob(Submission {
                request: self.request(job, step),
                spec,
            })),
            AnalystOut::Timer(self.patience),
        ]
    }

    /// Its connection is up: the current request is sent (again, if it was sent before).
    pub fn connected(&mut self) -> Vec<AnalystOut> {
        self.connected = true;
        if self.finished() {
            return Vec::new();
        }
        if self.sent
            && let Some(j) = self.jobs.get_mut(self.current)
        {
            j.resumed += 1;
        }
        self.submit()
    }

    /// Its connection is gone.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.timer_epoch += 1;
    }

    /// A timer set with [`AnalystOut::Timer`] fired (`epoch` as given by [`Self::epoch`]).
    pub fn on_timer(&mut self, epoch: u64) -> Vec<AnalystOut> {
        if epoch != self.timer_epoch || self.finished() {
            return Vec::new();
        }
        self.submit()
    }

    /// The epoch a timer set now carries.
    pub fn epoch(&self) -> u64 {
        self.timer_epoch
    }

    /// A message from the coordinator. Returns what to do, and the result it took as the
    /// current release's (for the invariants).
    pub fn on_message(
        &mut self,
        envelope: Envelope,
    ) -> (Vec<AnalystOut>, Option<(RequestId, JobId, JobResult)>) {
        let Body::Outcome(outcome) = envelope.body else {
            return (Vec::new(), None);
        };
        if self.finished() {
            return (Vec::new(), None);
        }
        let (job, step) = (self.current, self.step());
        let label = Self::label(job, step);
        match outcome {
            JobOutcome::Completed { result, .. } => {
                let JobSpec::Features(q) = &result.spec;
                if q.label != label {
                    return (Vec::new(), None); // A stale copy of an earlier answer.
                }
                let request = self.request(job, step);
                let record = &mut self.jobs[job];
                if step == 0 {
                    record.profile = Some(result.profile.id);
                }
                let taken = (request, envelope.header.job, result.clone());
                record.results.push((envelope.header.job, result));
                self.attempts = 0;
                self.sent = false;
                if record.results.len() >= self.releases {
                    record.end = Some(JobEnd::Completed);
                    self.current += 1;
                }
                (self.submit(), Some(taken))
            }
            JobOutcome::Aborted { reason, .. } => {
                self.attempts += 1;
                if self.attempts > RETRIES {
                    self.jobs[job].end = Some(JobEnd::Aborted { step, reason });
                    self.current += 1;
                    self.attempts = 0;
                    self.sent = false;
                    return (self.submit(), None);
                }
                self.jobs[job].retried += 1;
                self.timer_epoch += 1;
                (vec![AnalystOut::Timer(Duration::from_secs(3))], None)
            }
        }
    }
}
