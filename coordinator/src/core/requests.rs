//! The core's front door for jobs: idempotent requests, resumed profiling jobs, releases that
//! wait for a lost node of their job, and what the journal is told about each round.
//!
//! A request is keyed by its analyst and [`RequestId`]. Sent again, it gets what the first
//! one got: a round still running is joined, a published result is sent back from the
//! journal's store ([`Output::Resend`]); only a request that was interrupted (its round
//! aborted, or the coordinator stopped during it) runs again, as a new release. A later
//! release of a profiling job covers the job's whole population, so while a node of the job is
//! away it waits (up to the rejoin timeout) rather than running without it.

use super::*;

/// What a running round's request charged, to refund or keep when it ends.
#[derive(Debug)]
pub(super) struct Running {
    /// The analyst and request.
    pub key: (PartyName, RequestId),
    /// The profiling job charged.
    pub profile: ProfileId,
    /// The charge.
    pub rho: Rho,
    /// The quota period, when this release opened its job.
    pub opened: Option<String>,
}

/// A later release of a profiling job waiting for nodes of the job to reconnect.
#[derive(Debug)]
pub(super) struct Pending {
    submission: Submission,
    requester: Requester,
    analyst: PartyName,
    /// When it is refused if the nodes are still away.
    pub until: Instant,
}

impl Coordinator {
    /// A submitted job: answered from what the request already got, made to wait for its
    /// job's nodes, or started.
    pub(super) fn submit(
        &mut self,
        submission: Submission,
        requester: Requester,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let (analyst, conn) = match requester {
            Requester::Analyst(conn) => match self.sessions.get(&conn) {
                Some(s) => (s.party.name.clone(), Some(conn)),
                None => return, // The analyst's connection closed while the job was on its way.
            },
            Requester::Local(_) => (self.release.name.clone(), None),
        };
        let request = submission.request;
        if let Some(known) = self.requests.get(&(analyst.clone(), request)) {
            let reason = match SpecDigest::of(&submission.spec) {
                Ok(digest) if digest == known.spec => None,
                Ok(_) => Some(format!(
                    "refused: request {request} was sent before with another job; a request id \
                     names one job"
                )),
                Err(e) => Some(format!("refused: {e}")),
            };
            if let Some(reason) = reason {
                self.refuse_job(JobId::NONE, requester, reason, out);
                return;
            }
            match known.state {
                RequestState::Running(job) => {
                    if let Some((_, r)) = self.rounds.get_mut(&job) {
                        info!(%job, %analyst, %request, "request sent again; it joins its running round");
                        *r = requester;
                        return;
                    }
                }
                RequestState::Published(job) => {
                    info!(%job, %analyst, %request, "request sent again; its published result is sent back");
                    out.push(Output::Resend {
                        job,
                        requester,
                        analyst: conn,
                    });
                    return;
                }
                RequestState::Interrupted(job) => {
                    info!(%job, %analyst, %request, "request was interrupted; it runs again as a new release");
                }
            }
        }
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.analyst == analyst && p.submission.request == request)
        {
            p.requester = requester;
            return;
        }
        let missing = self.missing_nodes(&submission.spec, &analyst);
        if missing.is_empty() {
            self.start_job((submission.spec, request), (requester, analyst), now, out);
        } else {
            let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
            info!(%analyst, %request, missing = %names.join(", "), wait_secs = self.rejoin_timeout.as_secs(),
                "release waits for node(s) of its profiling job to reconnect");
            self.pending.push(Pending {
                submission,
                requester,
                analyst,
                until: now + self.rejoin_timeout,
            });
        }
    }

    /// The nodes of the profiling job a later release belongs to that are not connected
    /// (empty for a first release, or one the budget book refuses: that refusal is made, with
    /// its reason, when the job starts).
    fn missing_nodes(&self, spec: &JobSpec, analyst: &PartyName) -> Vec<PartyName> {
        let JobSpec::Features(q) = spec;
        let Some(id) = q.job else {
            return Vec::new();
        };
        match self.profiles.next(id, analyst, (q.budget, q.reserve)) {
            Ok(charge) => charge
                .participants
                .into_iter()
                .filter(|n| !self.nodes.contains_key(n))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Starts the waiting releases whose nodes are all back, and refuses those whose wait is
    /// over.
    pub(super) fn retry_pending(&mut self, now: Instant, out: &mut Vec<Output>) {
        for p in std::mem::take(&mut self.pending) {
            let missing = self.missing_nodes(&p.submission.spec, &p.analyst);
            if missing.is_empty() {
                info!(analyst = %p.analyst, request = %p.submission.request, "the job's nodes are back; the release starts");
                let Pending {
                    submission,
                    requester,
                    analyst,
                    ..
                } = p;
                self.start_job(
                    (submission.spec, submission.request),
                    (requester, analyst),
                    now,
                    out,
                );
            } else if now >= p.until {
                let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
                let reason = format!(
                    "refused: node(s) {} of the profiling job did not reconnect within {} s; \
                     every release of a job covers the same nodes, so it cannot go on without \
                     them (nothing was paid for this release; send it again once they are back)",
                    names.join(", "),
                    self.rejoin_timeout.as_secs()
                );
                warn!(analyst = %p.analyst, request = %p.submission.request, %reason, "release refused");
                self.refuse_job(JobId::NONE, p.requester, reason, out);
            } else {
                self.pending.push(p);
            }
        }
    }

    /// The ledger refused the release of `job`: its request was not published after all.
    pub(super) fn record_failed(&mut self, job: JobId) {
        for known in self.requests.values_mut() {
            if known.state == RequestState::Published(job) {
                known.state = RequestState::Interrupted(job);
            }
        }
    }

    /// A completed round whose release cannot be recorded (found before it reaches the
    /// ledger): its contributors paid, so it is journaled as aborted (kept), its request may run
    /// again, and the contributors are told at once that the round is over for them (M4).
    pub(super) fn record_failed_now(
        &mut self,
        job: JobId,
        round: &Round,
        request: Option<&Running>,
        out: &mut Vec<Output>,
    ) {
        for node in round.roster() {
            if let Some(&conn) = self.nodes.get(node) {
                out.push(Output::Send {
                    conn,
                    job,
                    round: RoundId(0),
                    body: Body::RoundOver(fedprof_protocol::RoundOver {
                        reason: fedprof_protocol::RoundOverReason::Aborted,
                        detail: "the release could not be recorded".into(),
                    }),
                });
            }
        }
        if request.is_some() {
            out.push(Output::Journal(Record::Aborted { job }));
            self.set_request(request, RequestState::Interrupted(job));
        }
    }

    pub(super) fn set_request(&mut self, running: Option<&Running>, state: RequestState) {
        if let Some(known) = running.and_then(|r| self.requests.get_mut(&r.key)) {
            known.state = state;
        }
    }

    /// Gives back what a round no node could have paid for charged; a job it opened is
    /// dropped, its total back in the analyst's quota.
    pub(super) fn refund(&mut self, running: Option<&Running>) {
        if let Some(r) = running {
            self.profiles.refund(r.profile, &r.rho);
            if let Some(period) = &r.opened {
                self.profiles.discard(r.profile, period);
            }
        }
    }

    /// Carries out a round's effects; the first time its nodes may pay (the share bundles
    /// are about to be relayed), the journal is told first.
    pub(super) fn advance(
        &mut self,
        job: JobId,
        effects: Vec<RoundEffect>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let paying = self
            .rounds
            .get(&job)
            .is_some_and(|(r, _)| r.nodes_may_have_paid());
        if paying && self.job_requests.contains_key(&job) && self.paying.insert(job) {
            out.push(Output::Journal(Record::Paying { job }));
        }
        self.apply(job, effects, now, out);
    }
}
