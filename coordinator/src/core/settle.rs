//! Settled rounds: what the release ledger records for a completed one (built here, so the
//! shell only appends it), and what every party is told when a round ends for any reason.

use super::*;

impl Coordinator {
    /// Removes settled rounds and reports their outcomes.
    pub(super) fn finish_settled(&mut self, out: &mut Vec<Output>) {
        let settled: Vec<JobId> = self
            .rounds
            .iter()
            .filter(|(_, (r, _))| r.outcome().is_some())
            .map(|(j, _)| *j)
            .collect();
        for job in settled {
            let Some((round, requester)) = self.rounds.remove(&job) else {
                continue;
            };
            let Some(outcome) = round.outcome().cloned() else {
                continue;
            };
            let analyst = match requester {
                Requester::Analyst(conn) if self.sessions.contains_key(&conn) => Some(conn),
                _ => None,
            };
            // M4: every participant still connected learns at once that the round is over for
            // it (contributors to a published release get the result instead, once recorded).
            for (node, over) in round.over_notices() {
                if let Some(&conn) = self.nodes.get(&node) {
                    out.push(Output::Send {
                        conn,
                        job,
                        round: RoundId(0),
                        body: Body::RoundOver(over),
                    });
                }
            }
            let paid = self.paying.remove(&job);
            let request = self.job_requests.remove(&job);
            match &outcome {
                JobOutcome::Completed { result, failures } => {
                    let record = match release_record(job, &round, result) {
                        Ok(record) => record,
                        Err(reason) => {
                            // Nothing the ledger would accept: nothing is published (the
                            // nodes did pay; the request may run again).
                            warn!(%job, %reason, "release cannot be recorded");
                            self.record_failed_now(job, &round, request.as_ref(), out);
                            let outcome = JobOutcome::Aborted {
                                reason: format!("the release cannot be recorded: {reason}"),
                                failures: failures.clone(),
                            };
                            finish(job, requester, analyst, outcome, out);
                            continue;
                        }
                    };
                    self.profiles
                        .completed(result.profile.id, &result.contributors);
                    self.set_request(request.as_ref(), RequestState::Published(job));
                    info!(%job, contributors = result.contributors.len(), failed = failures.len(), "result ready; recording the release");
                    let recipients = result
                        .contributors
                        .iter()
                        .filter_map(|n| self.nodes.get(n).copied())
                        .collect();
                    for receipt in &record.receipts {
                        let head = fedprof_ledger::coordinator::receipt_head(
                            receipt.seq(),
                            &receipt.digest(),
                        );
                        let node = receipt.writer().party().name.clone();
                        self.last_receipts.insert(node, head);
                    }
                    out.push(Output::Publish {
                        job,
                        requester,
                        analyst,
                        outcome,
                        record: Box::new(record),
                        recipients,
                    });
                }
                JobOutcome::Aborted { reason, .. } => {
                    warn!(%job, %reason, paid, "job aborted");
                    if request.is_some() {
                        // Journaled: refunded when no node could have paid, else kept.
                        if paid {
                            out.push(Output::Journal(Record::Aborted { job }));
                        } else {
                            self.refund(request.as_ref());
                            out.push(Output::Journal(Record::Refunded { job }));
                        }
                        self.set_request(request.as_ref(), RequestState::Interrupted(job));
                    }
                    finish(job, requester, analyst, outcome, out);
                }
            }
        }
    }
}

/// Reports how job `job` ended: its outcome to the analyst's connection, if open, and to the
/// shell.
pub(super) fn finish(
    job: JobId,
    requester: Requester,
    analyst: Option<ConnId>,
    outcome: JobOutcome,
    out: &mut Vec<Output>,
) {
    if let Some(conn) = analyst {
        out.push(Output::Send {
            conn,
            job,
            round: RoundId(0),
            body: Body::Outcome(outcome.clone()),
        });
    }
    out.push(Output::JobFinished {
        job,
        requester,
        outcome,
    });
}

/// What the release ledger records for round `round`'s `result`, published as job `job`: the
/// mechanism and release id every receipt was screened against, the contributors' receipts,
/// and the digest of the exact bytes sent as the result.
fn release_record(job: JobId, round: &Round, result: &JobResult) -> Result<ReleaseRecord, String> {
    let expected = round.expected().ok_or("the round was never announced")?;
    let receipts = round.receipts(&result.contributors);
    if receipts.len() != result.contributors.len() {
        return Err("a contributor has no screened receipt".into());
    }
    let published = fedprof_protocol::encode(&Envelope {
        header: fedprof_protocol::Header {
            job,
            round: RoundId(0),
            seq: 0,
        },
        body: Body::Result(result.clone()),
    })
    .map_err(|e| e.to_string())?;
    Ok(ReleaseRecord {
        release: *expected.release(),
        job_kind: Label::new(result.spec.name()).map_err(|e| e.to_string())?,
        mechanism: expected.mechanism().clone(),
        receipts,
        published_digest: Digest::of(&published),
    })
}
