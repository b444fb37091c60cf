//! The service's ledger and journal work, done in the core task: receipts screened as they
//! arrive, releases recorded before they are published, the job journal (a file, or memory for
//! a service bound without one), and the coordinator's last receipt of a node for its
//! announcements (rollback protection).

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

/// Tells a node, in each job announcement, the latest receipt of its that the coordinator's
/// ledger recorded, so that a node whose state was restored from an older copy refuses
/// instead of spending its budget again (review finding L9; the node's check is
/// `NodeBook::check_receipt_head`).
pub(super) fn tell_last_receipt(
    ledger: &CoordinatorLedger,
    party: Option<&fedprof_protocol::PartyId>,
    body: &mut Body,
) {
    if let (Body::JobAnnounce(announce), Some(party)) = (body, party) {
        announce.last_receipt = ledger.last_receipt(&party.name).map(Box::new);
    }
}

/// Checks a node's debit receipt when it arrives: it must parse, be signed by the node on this
/// connection with its certificate key, and debit a release of this job. A bad receipt is
/// turned into that node's refusal, so the round goes on without it instead of failing when the
/// release is recorded.
pub fn screen_receipt(
    ledger: &CoordinatorLedger,
    party: Option<&fedprof_protocol::PartyId>,
    envelope: &mut fedprof_protocol::Envelope,
) {
    let Body::Receipt(line) = &envelope.body else {
        return;
    };
    let check = || -> Result<(), String> {
        let entry = NodeEntry::from_line(line).map_err(|e| e.to_string())?;
        if Some(entry.writer().party()) != party {
            return Err(format!(
                "signed by {}, not by this connection's node",
                entry.writer().party()
            ));
        }
        ledger
            .verify_node_entry(&entry)
            .map_err(|e| e.to_string())?;
        match entry.body() {
            fedprof_ledger::NodeBody::Debit { release, .. }
                if release.job == envelope.header.job =>
            {
                Ok(())
            }
            _ => Err("not a debit of this job".into()),
        }
    };
    if let Err(detail) = check() {
        warn!(job = %envelope.header.job, %detail, "invalid debit receipt");
        envelope.body = Body::Refuse(fedprof_protocol::Refusal {
            reason: fedprof_protocol::RefuseReason::Policy,
            detail: format!("invalid debit receipt: {detail}"),
        });
    }
}

/// Records a completed release in the coordinator's ledger: the mechanism, the contributors'
/// receipts (each must be that node's own signed debit of this very release) and a digest of
/// the published result.
pub fn record(
    ledger: &mut CoordinatorLedger,
    job: JobId,
    outcome: &JobOutcome,
    receipts: &[String],
    nonce: [u8; 32],
) -> Result<(), String> {
    let JobOutcome::Completed { result, .. } = outcome else {
        return Err("nothing to record".into());
    };
    let receipts = receipts
        .iter()
        .map(|line| NodeEntry::from_line(line).map_err(|e| format!("a receipt is invalid: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mechanism = MechanismRecord::for_release(&result.spec, &result.release, &result.profile)
        .map_err(|e| e.to_string())?;
    let published = fedprof_protocol::encode(&fedprof_protocol::Envelope {
        header: fedprof_protocol::Header {
            job,
            round: RoundId(0),
            seq: 0,
        },
        body: Body::Result(result.clone()),
    })
    .map_err(|e| e.to_string())?;
    let record = ReleaseRecord {
        release: ReleaseId {
            job,
            round: RoundId(0),
            nonce: Digest::from_bytes(nonce),
        },
        job_kind: Label::new(result.spec.name()).map_err(|e| e.to_string())?,
        mechanism,
        receipts,
        published_digest: Digest::of(&published),
    };
    ledger
        .record_release(record)
        .map(|_| ())
        .map_err(|e| format!("the release ledger refused it: {e}"))
}
