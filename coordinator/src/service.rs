//! The coordinator on the network: the async shell around [`crate::core::Coordinator`].
//!
//! One task owns the core and is the only place its state changes; each connection has a
//! reader (in its handler task) and a writer task, joined to the core by bounded channels.
//! Every wait is bounded: stream opening, error delivery and shutdown all have timeouts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedprof_protocol::{
    Body, ErrorCode, FrameLimit, JobId, JobOutcome, JobSpec, PartyName, RequestId, RoundId,
    Submission,
};
use fedprof_transport::{
    Credentials, PeerConnection, RevocationError, RevocationList, RevocationWatch, ServerLimits,
    ShutdownSignal, TransportError, close_code, serve, server_endpoint,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::CoordinatorConfig;
use fedprof_crypto::VerifyingKey;
use rand_core::Rng as _;

use fedprof_ledger::{CoordinatorLedger, CoordinatorStoreError, KeyRing, Policy};

use crate::core::{ConnId, Coordinator, Heartbeat, Input, Output, ReleasePolicy, Requester};
use crate::journal::{JournalError, JournalFile, Record, Recovery};

mod ledgers;
use crate::round::RoundPolicy;
use ledgers::Journal;

/// How long a connected peer has to open its message stream.
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an `Error` frame gets to reach the peer before the connection is closed anyway.
const ERROR_DELIVERY_TIMEOUT: Duration = Duration::from_secs(1);
/// Messages queued for one connection before it is considered stuck and dropped.
const WRITER_QUEUE: usize = 64;
/// Events queued for the core before connection readers wait.
const EVENT_QUEUE: usize = 1024;

/// Failures of the service's local API.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The coordinator stopped before answering.
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    /// The revocation list could not be reloaded; the one in force stays.
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

enum Event {
    Connected {
        conn: ConnId,
        party: fedprof_protocol::PartyId,
        certificate: Vec<u8>,
        key: VerifyingKey,
        writer: mpsc::Sender<Outgoing>,
    },
    Input(Input),
    Local {
        submission: Submission,
        reply: oneshot::Sender<JobOutcome>,
    },
}

enum Outgoing {
    /// Boxed: a round announcement is far larger than a close.
    Send(JobId, RoundId, Box<Body>),
    Close(ErrorCode, String),
}

/// Why the coordinator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS material or the listening socket.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The release ledger cannot be opened or its policy recorded (docs/LEDGER.md).
    #[error("release ledger: {0}")]
    Ledger(Box<CoordinatorStoreError>),
    /// The private key is not the Ed25519 key the federation issues.
    #[error("the coordinator's private key is not an Ed25519 PKCS#8 key")]
    BadKey,
    /// The federation's party certificates cannot be read.
    #[error("release ledger: {0}")]
    Trust(#[from] crate::trust::TrustError),
    /// The job journal cannot be opened or replayed.
    #[error("job journal: {0}")]
    Journal(#[from] JournalError),
    /// The revocation list (`[tls] revoked`) is unreadable, unsigned or malformed.
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

/// A bound coordinator, ready to start.
#[derive(Debug)]
pub struct CoordinatorService {
    endpoint: fedprof_transport::Endpoint,
    limits: ServerLimits,
    policy: RoundPolicy,
    release: ReleasePolicy,
    ledger: CoordinatorLedger,
    journal: Option<(JournalFile, Recovery)>,
    rejoin_timeout: Option<Duration>,
    heartbeat: Heartbeat,
    revocations: RevocationWatch,
}

impl CoordinatorService {
    /// Loads the TLS material named in `config`, opens the release ledger and binds the listen
    /// address.
    pub fn bind(config: &CoordinatorConfig) -> Result<Self, StartError> {
        let creds = Credentials::load(&config.tls)?;
        let release = config.privacy.policy(creds.identity().name.clone());
        // A restarted coordinator re-verifies every receipt in its ledger: it trusts the node
        // certificates of the federation that verify against the CA (crate::trust).
        let parties = config.ledger.certificates.clone().unwrap_or_else(|| {
            config
                .tls
                .ca
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("parties")
        });
        let nodes = crate::trust::node_keys(&config.tls.ca, &parties)?;
        let ledger = open_ledger(
            &creds,
            nodes,
            &config.ledger.path,
            &release,
            config.ledger.min_cell_size,
        )?;
        // The journal sits beside the ledger, under the ledger's lock (one process).
        let journal = JournalFile::open(&config.ledger.journal_dir())?;
        let mut service = Self::bind_with(
            config.listen,
            &creds,
            config.limits.into(),
            config.rounds.into(),
            release,
            ledger,
        )?;
        service.journal = Some(journal);
        service.rejoin_timeout = Some(Duration::from_secs(config.rounds.rejoin_timeout_secs));
        service.heartbeat = config.limits.heartbeat();
        service.revocations = config.tls.revocations()?;
        Ok(service)
    }

    /// Sets the application heartbeat (default [`Heartbeat::default`]).
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Binds `addr` (port 0 picks a free port) with explicit credentials, settings and ledger.
    pub fn bind_with(
        addr: SocketAddr,
        creds: &Credentials,
        limits: ServerLimits,
        policy: RoundPolicy,
        release: ReleasePolicy,
        ledger: CoordinatorLedger,
    ) -> Result<Self, StartError> {
        let endpoint = server_endpoint(addr, creds, &limits)?;
        Ok(CoordinatorService {
            endpoint,
            limits,
            policy,
            release,
            ledger,
            journal: None,
            rejoin_timeout: None,
            heartbeat: Heartbeat::default(),
            revocations: RevocationWatch::none(),
        })
    }

    /// Resumes from (and keeps) the job journal in `dir` instead of the configured one; a
    /// service bound with [`Self::bind_with`] has none and keeps its requests in memory.
    pub fn with_journal(mut self, dir: &std::path::Path) -> Result<Self, StartError> {
        self.journal = Some(JournalFile::open(dir)?);
        Ok(self)
    }

    /// Enforces the revocation list `watch` (a service bound with [`Self::bind_with`] has
    /// none; [`Self::bind`] reads `[tls] revoked`).
    pub fn with_revocations(mut self, watch: RevocationWatch) -> Self {
        self.revocations = watch;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Starts serving until `shutdown` fires. The returned task ends when every connection is
    /// closed.
    pub fn start(self, shutdown: ShutdownSignal) -> (CoordinatorHandle, JoinHandle<()>) {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (nodes_tx, nodes_rx) = watch::channel(Vec::new());
        let core_task = tokio::spawn(core_loop(
            (
                self.policy,
                self.release,
                self.rejoin_timeout,
                self.heartbeat,
            ),
            (self.ledger, self.journal),
            self.revocations.current(),
            events_rx,
            nodes_tx,
            shutdown.clone(),
        ));
        let next_conn = Arc::new(AtomicU64::new(1));
        let limits = self.limits;
        let events = events_tx.clone();
        let server = tokio::spawn(async move {
            serve(self.endpoint, self.limits, shutdown, move |peer, signal| {
                let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                // Per-role frame limits: an analyst's requests are small (security review M1).
                let limit = limits.frame_limit(peer.peer().role);
                handle_connection(peer, signal, events.clone(), conn, limit)
            })
            .await;
            // Connections are gone; the core can stop once its last events are handled.
            let _ = core_task.await;
        });
        (
            CoordinatorHandle {
                events: events_tx,
                nodes: nodes_rx,
                revocations: self.revocations,
            },
            server,
        )
    }
}

/// Local control of a running coordinator (used by the demo, `fedprof local` and tests).
#[derive(Debug, Clone)]
pub struct CoordinatorHandle {
    events: mpsc::Sender<Event>,
    nodes: watch::Receiver<Vec<PartyName>>,
    revocations: RevocationWatch,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Event::Connected { .. } => "Connected",
            Event::Input(_) => "Input",
            Event::Local { .. } => "Local",
        })
    }
}

impl CoordinatorHandle {
    /// Runs `spec` over the nodes registered now, as a new request, and waits for its
    /// outcome.
    pub async fn run_job(&self, spec: JobSpec) -> Result<JobOutcome, ServiceError> {
        let mut request = [0u8; 16];
        fedprof_crypto::rng::from_os()
            .map_err(|_| ServiceError::ShuttingDown)?
            .fill_bytes(&mut request);
        self.submit(Submission {
            request: RequestId(request),
            spec,
        })
        .await
    }

    /// Submits a job under its request id (idempotent: see [`Submission`]) and waits for its
    /// outcome.
    pub async fn submit(&self, submission: Submission) -> Result<JobOutcome, ServiceError> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(Event::Local { submission, reply })
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        rx.await.map_err(|_| ServiceError::ShuttingDown)
    }

    /// Reads the revocation list again (what SIGHUP does) and, if it may replace the one in
    /// force, closes the connections of every certificate it revokes and refuses them from
    /// now on. On an error the list in force stays.
    pub async fn reload_revocations(&self) -> Result<Arc<RevocationList>, ServiceError> {
        let list = self.revocations.reload()?;
        let input = Input::Revoked(list.fingerprints().clone());
        self.events
            .send(Event::Input(input))
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        Ok(list)
    }

    /// The nodes registered now.
    pub fn nodes(&self) -> Vec<PartyName> {
        self.nodes.borrow().clone()
    }

    /// Waits until the set of registered nodes satisfies `ready`, returning it.
    pub async fn wait_for_nodes(
        &mut self,
        mut ready: impl FnMut(&[PartyName]) -> bool,
    ) -> Result<Vec<PartyName>, ServiceError> {
        let nodes = self
            .nodes
            .wait_for(|n| ready(n))
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        Ok(nodes.clone())
    }
}

/// The budget period of the wall clock: `YYYY-MM`, UTC.
fn current_period() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// Opens (or creates) the coordinator's release ledger, checking its receipts with `nodes`
/// (see [`crate::trust::node_keys`]), and records the policy if it changed.
pub fn open_ledger(
    creds: &Credentials,
    nodes: KeyRing,
    path: &std::path::Path,
    release: &ReleasePolicy,
    min_cell_size: u64,
) -> Result<CoordinatorLedger, StartError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(creds.key_pkcs8_der())
        .map_err(|_| StartError::BadKey)?;
    let ledger_err = |e| StartError::Ledger(Box::new(e));
    let mut ledger =
        CoordinatorLedger::open(path, key, creds.identity().clone(), nodes).map_err(ledger_err)?;
    let policy = Policy {
        per_job_cap_rho: release.rho_per_job.clone(),
        min_cell_size,
        max_holders_per_person: release.max_holders_per_person,
    };
    if ledger.book().policy() != Some(&policy) {
        ledger.set_policy(policy).map_err(ledger_err)?;
    }
    Ok(ledger)
}

async fn core_loop(
    (policy, release, rejoin, heartbeat): (RoundPolicy, ReleasePolicy, Option<Duration>, Heartbeat),
    (mut ledger, journal): (CoordinatorLedger, Option<(JournalFile, Recovery)>),
    revoked: Arc<RevocationList>,
    mut events: mpsc::Receiver<Event>,
    nodes: watch::Sender<Vec<PartyName>>,
    mut shutdown: ShutdownSignal,
) {
    let mut writers: HashMap<ConnId, mpsc::Sender<Outgoing>> = HashMap::new();
    let mut waiting: HashMap<u64, oneshot::Sender<JobOutcome>> = HashMap::new();
    let mut next_ticket = 0u64;
    let mut full: Vec<ConnId> = Vec::new();
    let mut rng = match fedprof_crypto::rng::from_os() {
        Ok(rng) => rng,
        Err(e) => {
            tracing::error!(error = %e, "no randomness; the coordinator cannot run rounds");
            return;
        }
    };
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut core = Coordinator::new(policy, release, seed);
    core.set_heartbeat(heartbeat);
    let _ = core.handle(
        Input::Revoked(revoked.fingerprints().clone()),
        std::time::Instant::now(),
    );
    if let Some(timeout) = rejoin {
        core.set_rejoin_timeout(timeout);
    }
    // Job numbers go on after the journal's last and the ledger's last release (a journal
    // lost or moved aside must not make numbers repeat).
    let (journal, mut recovery) = match journal {
        Some((file, recovery)) => (Journal::File(file), recovery),
        None => (Journal::Memory(HashMap::new()), Recovery::default()),
    };
    recovery.last_job = recovery.last_job.max(ledger.book().last_job());
    core.resume(recovery);
    core.set_last_receipts(
        ledger
            .book()
            .last_receipts()
            .map(|(node, head)| (node.clone(), head))
            .collect(),
    );
    let mut journal = journal;
    let mut period = String::new();
    'serve: loop {
        // Analysts' quotas count per UTC month; the core is told when it rolls over.
        let now_period = current_period();
        if now_period != period {
            period = now_period;
            let _ = core.handle(Input::Period(period.clone()), std::time::Instant::now());
        }
        let deadline = core.next_deadline().map(Instant::from_std);
        let input = tokio::select! {
            event = events.recv() => match event {
                None => break,
                Some(Event::Connected { conn, party, certificate, key, writer }) => {
                    writers.insert(conn, writer);
                    if party.role == fedprof_protocol::Role::Node {
                        // The key comes from a certificate the handshake verified.
                        let _ = ledger.trust_node(party.clone(), key.to_bytes());
                    }
                    let valid_until = valid_until(&party, &certificate);
                    Input::Connected { conn, party, certificate, key, valid_until }
                }
                Some(Event::Input(input)) => match input {
                    Input::Closed { conn, reason } => {
                        writers.remove(&conn);
                        Input::Closed { conn, reason }
                    }
                    other => other,
                },
                Some(Event::Local { submission, reply }) => {
                    next_ticket += 1;
                    waiting.insert(next_ticket, reply);
                    Input::SubmitJob { submission, requester: Requester::Local(next_ticket) }
                }
            },
            () = sleep_until(deadline) => Input::Tick,
            () = shutdown.wait() => break,
        };
        // A peer whose queue filled is dropped by `deliver`; the core is told it closed (it
        // leaves every roster and round), and what that causes is carried out in turn.
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            for output in core.handle(input, std::time::Instant::now()) {
                match output {
                    Output::Send {
                        conn,
                        job,
                        round,
                        body,
                    } => {
                        deliver(
                            &mut writers,
                            &mut full,
                            conn,
                            Outgoing::Send(job, round, Box::new(body)),
                        );
                    }
                    Output::Close { conn, code, detail } => {
                        deliver(&mut writers, &mut full, conn, Outgoing::Close(code, detail));
                        writers.remove(&conn);
                    }
                    Output::JobFinished {
                        requester: Requester::Local(ticket),
                        outcome,
                        ..
                    } => {
                        if let Some(reply) = waiting.remove(&ticket) {
                            let _ = reply.send(outcome);
                        }
                    }
                    Output::JobFinished { .. } => {}
                    Output::NodesChanged(list) => {
                        nodes.send_replace(list);
                    }
                    Output::Journal(record) => {
                        // Before any later output: an announcement reaches no node unless
                        // the journal holds it. A coordinator that cannot write its journal
                        // stops rather than run rounds a restart would forget.
                        if let Err(e) = journal.append(&record) {
                            tracing::error!(error = %e, "cannot write the job journal; stopping");
                            break 'serve;
                        }
                    }
                    Output::Resend {
                        job,
                        requester,
                        analyst,
                    } => {
                        let outcome = journal.load(job).unwrap_or_else(|e| JobOutcome::Aborted {
                            reason: format!(
                                "the result published as {job} cannot be read back: {e}"
                            ),
                            failures: Vec::new(),
                        });
                        answer(
                            (&mut writers, &mut full, &mut waiting),
                            (job, requester, analyst),
                            outcome,
                        );
                    }
                    Output::Publish {
                        job,
                        requester,
                        analyst,
                        outcome,
                        record,
                        recipients,
                    } => {
                        // Record first; publish only what the ledger accepted.
                        let outcome = match ledger.record_release(*record) {
                            Ok(_) => {
                                // Stored before anyone has it: a request sent again after a
                                // restart is answered with this very result.
                                if let Err(e) = journal.published(job, &outcome) {
                                    tracing::error!(%job, error = %e, "cannot journal a recorded release; stopping");
                                    break 'serve;
                                }
                                if let JobOutcome::Completed { result, .. } = &outcome {
                                    for conn in recipients {
                                        let body = Body::Result(result.clone());
                                        deliver(
                                            &mut writers,
                                            &mut full,
                                            conn,
                                            Outgoing::Send(job, RoundId(0), Box::new(body)),
                                        );
                                    }
                                }
                                outcome
                            }
                            Err(e) => {
                                let reason = format!("the release ledger refused it: {e}");
                                tracing::error!(%job, %reason, "release not recorded; nothing published");
                                // The contributors were promised nothing else: their round is
                                // over (M4), they free the job's slot now.
                                for conn in recipients {
                                    let body = Body::RoundOver(fedprof_protocol::RoundOver {
                                        reason: fedprof_protocol::RoundOverReason::Aborted,
                                        detail: "the release could not be recorded".into(),
                                    });
                                    deliver(
                                        &mut writers,
                                        &mut full,
                                        conn,
                                        Outgoing::Send(job, RoundId(0), Box::new(body)),
                                    );
                                }
                                if let Err(e) = journal.append(&Record::Aborted { job }) {
                                    tracing::error!(error = %e, "cannot write the job journal; stopping");
                                    break 'serve;
                                }
                                inputs.push(Input::RecordFailed { job });
                                JobOutcome::Aborted {
                                    reason,
                                    failures: Vec::new(),
                                }
                            }
                        };
                        answer(
                            (&mut writers, &mut full, &mut waiting),
                            (job, requester, analyst),
                            outcome,
                        );
                    }
                }
            }
            inputs.extend(full.drain(..).map(|conn| Input::Closed {
                conn,
                reason: "its outgoing queue was full (not reading its messages)".into(),
            }));
        }
    }
    debug!("coordinator core stopped");
}

/// When `certificate` expires, on the core's clock; logs a warning when a node's certificate
/// expires within 30, 7 or 1 days (security review H7), so its operator renews it in time.
fn valid_until(
    party: &fedprof_protocol::PartyId,
    certificate: &[u8],
) -> Option<std::time::Instant> {
    let not_after = fedprof_transport::pki::not_after(certificate).ok()?;
    let now = time::OffsetDateTime::now_utc();
    if party.role == fedprof_protocol::Role::Node
        && let Some(w) = fedprof_transport::pki::expiry_warning(not_after, now)
    {
        warn!(
            node = %party.name,
            hours_left = w.left.whole_hours(),
            within_days = w.within_days,
            "node certificate expires soon: renew it (fedprof federation renew)"
        );
    }
    let left = std::time::Duration::try_from(not_after - now).unwrap_or(Duration::ZERO);
    std::time::Instant::now().checked_add(left)
}

/// Each connection's outgoing queue.
type Writers = HashMap<ConnId, mpsc::Sender<Outgoing>>;
/// Local callers waiting for their jobs' outcomes, by ticket.
type Waiting = HashMap<u64, oneshot::Sender<JobOutcome>>;

/// Sends a job's outcome to whoever asked: the analyst's connection, if still open, and a
/// local caller waiting on its ticket.
fn answer(
    (writers, full, waiting): (&mut Writers, &mut Vec<ConnId>, &mut Waiting),
    (job, requester, analyst): (JobId, Requester, Option<ConnId>),
    outcome: JobOutcome,
) {
    if let Some(conn) = analyst {
        let body = Body::Outcome(outcome.clone());
        deliver(
            writers,
            full,
            conn,
            Outgoing::Send(job, RoundId(0), Box::new(body)),
        );
    }
    if let Requester::Local(ticket) = requester
        && let Some(reply) = waiting.remove(&ticket)
    {
        let _ = reply.send(outcome);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Queues a message for a connection; a connection that does not keep up is closed.
fn deliver(
    writers: &mut HashMap<ConnId, mpsc::Sender<Outgoing>>,
    full: &mut Vec<ConnId>,
    conn: ConnId,
    msg: Outgoing,
) {
    let Some(tx) = writers.get(&conn) else { return };
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg) {
        warn!(
            conn,
            "peer is not reading its messages; dropping the connection"
        );
        writers.remove(&conn);
        full.push(conn);
    }
}

async fn handle_connection(
    peer: PeerConnection,
    mut signal: ShutdownSignal,
    events: mpsc::Sender<Event>,
    conn: ConnId,
    limit: FrameLimit,
) {
    let stream = match tokio::time::timeout(STREAM_OPEN_TIMEOUT, peer.accept_stream(limit)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(peer = %peer.peer(), error = %e, "no message stream");
            return;
        }
        Err(_) => {
            warn!(peer = %peer.peer(), "peer opened no message stream in time");
            peer.close(close_code::PROTOCOL_ERROR, "no message stream");
            return;
        }
    };
    let (mut writer, mut reader) = stream.split();
    let key = match fedprof_transport::pki::ed25519_public_key(peer.certificate())
        .ok()
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
    {
        Some(k) => k,
        None => {
            writer
                .send_error(
                    ErrorCode::RoleNotPermitted,
                    "certificate key is not Ed25519",
                )
                .await;
            peer.close(close_code::PROTOCOL_ERROR, "bad certificate key");
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(WRITER_QUEUE);
    let party = peer.peer().clone();
    let certificate = peer.certificate().to_vec();
    let connected = Event::Connected {
        conn,
        party,
        certificate,
        key,
        writer: tx.clone(),
    };
    if events.send(connected).await.is_err() {
        return;
    }
    let writer_peer = peer.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                Outgoing::Send(job, round, body) => {
                    if writer.send(job, round, *body).await.is_err() {
                        break;
                    }
                }
                Outgoing::Close(code, detail) => {
                    writer.send_error(code, detail).await;
                    let _ = tokio::time::timeout(ERROR_DELIVERY_TIMEOUT, writer.stopped()).await;
                    writer_peer.close(close_code::PROTOCOL_ERROR, "protocol error");
                    return;
                }
            }
        }
        writer.finish();
    });
    let reason = loop {
        tokio::select! {
            received = reader.recv() => match received {
                Ok(Some(envelope)) => {
                    if events.send(Event::Input(Input::Message { conn, envelope })).await.is_err() {
                        break "coordinator stopped".to_owned();
                    }
                }
                Ok(None) => break "peer ended the session".to_owned(),
                Err(e) => {
                    if let Some(code) = e.code() {
                        reader.stop(close_code::PROTOCOL_ERROR);
                        let _ = tx.try_send(Outgoing::Close(code, e.to_string()));
                    }
                    break e.to_string();
                }
            },
            () = signal.wait() => {
                let _ = tx.try_send(Outgoing::Close(ErrorCode::ShuttingDown, "coordinator is shutting down".into()));
                break "coordinator shutting down".to_owned();
            }
        }
    };
    let _ = events
        .send(Event::Input(Input::Closed { conn, reason }))
        .await;
    drop(tx);
    // The writer ends once the core drops its sender too; bound the wait either way.
    let _ = tokio::time::timeout(ERROR_DELIVERY_TIMEOUT * 2, writer_task).await;
    peer.close(close_code::DONE, "");
}
