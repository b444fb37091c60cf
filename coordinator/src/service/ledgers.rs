//! The job journal as the core task writes it: a file, or memory for a service bound without
//! one. (Receipt screening, release records and the rollback heads in announcements are the
//! core's: [`crate::round::Round`] and [`crate::core::Coordinator`].)

use super::*;

/// Where the job journal goes: a file (a configured coordinator), or memory (a service bound
/// without one, as tests do).
pub(super) enum Journal {
    File(JournalFile),
    Memory(HashMap<JobId, JobOutcome>),
}

impl Journal {
    pub(super) fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        match self {
            Journal::File(f) => f.append(record),
            Journal::Memory(_) => Ok(()),
        }
    }

    /// Stores a recorded release's outcome, then journals its publication.
    pub(super) fn published(
        &mut self,
        job: JobId,
        outcome: &JobOutcome,
    ) -> Result<(), JournalError> {
        let contributors = match outcome {
            JobOutcome::Completed { result, .. } => result.contributors.clone(),
            JobOutcome::Aborted { .. } => Vec::new(),
        };
        match self {
            Journal::File(f) => {
                f.store_result(job, outcome)?;
                f.append(&Record::Published { job, contributors })
            }
            Journal::Memory(m) => {
                m.insert(job, outcome.clone());
                Ok(())
            }
        }
    }

    pub(super) fn load(&self, job: JobId) -> Result<JobOutcome, String> {
        match self {
            Journal::File(f) => f.load_result(job).map_err(|e| e.to_string()),
            Journal::Memory(m) => m.get(&job).cloned().ok_or_else(|| "not kept".into()),
        }
    }
}
