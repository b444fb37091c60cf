//! The node on the network: dials the coordinator, registers, serves jobs, and reconnects with
//! exponential backoff when the connection is lost. The async shell around
//! [`crate::session::NodeSession`] and, per job, [`crate::job::NodeJob`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use fedprof_ledger::{Digest, MechanismRecord, NodeLedger, Period, ReleaseId, StoreError};

use chacha20::ChaCha20Rng;
use fedprof_crypto::{SigningKey, VerifyingKey};
use fedprof_protocol::secagg::NodeMessage;
use fedprof_protocol::{
    Body, JobAnnounce, JobId, JobSpec, PartyId, Refusal, RefuseReason, Role, RoundId,
};
use fedprof_transport::{
    Credentials, MessageWriter, ShutdownSignal, StreamError, TransportError, client_endpoint,
    close_code, connect,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{NodeConfig, NodeFloorConfig};
use crate::floor::Spending;
use fedprof_privacy::encoding::from_ring;

use crate::job::{NodeJob, round_config};
use crate::session::{NodeAction, NodeSession};
use crate::work::{FeatureCache, Work};

/// What the node tells the coordinator it runs.
const SOFTWARE: &str = concat!("fedprof-node ", env!("CARGO_PKG_VERSION"));
/// Most jobs a node works on at once; further announcements are refused as busy.
const MAX_CONCURRENT_JOBS: usize = 4;
/// A job whose round has not ended after this many phase timeouts is dropped locally.
const JOB_LIFETIME_PHASES: u32 = 6;

/// Failures that stop a node before it can try to connect.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The certificate is not a node's.
    #[error("this certificate belongs to {0}, not to a node")]
    NotANode(PartyId),
    /// The private key is not the Ed25519 key the federation issues.
    #[error("the private key is not an Ed25519 PKCS#8 key")]
    BadKey,
    /// The budget ledger cannot be opened or extended (see docs/LEDGER.md for recovery).
    #[error("budget ledger: {0}")]
    Ledger(Box<StoreError>),
    /// The configured budget period is not `YYYY-MM`.
    #[error("privacy.period {0:?} is not a YYYY-MM month")]
    Period(String),
}

/// Why one connection's session ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Lost { reason: String, registered: bool },
}

/// The node's ledger and what it has spent per job and analyst, behind one lock: the floor is
/// checked and the debit written without another debit in between.
#[derive(Debug)]
struct Books {
    ledger: NodeLedger,
    spending: Spending,
}

struct ActiveJob {
    secagg: NodeJob<ChaCha20Rng>,
    expires: Instant,
}

/// A configured node, ready to run.
#[derive(Debug)]
pub struct NodeService {
    config: Arc<NodeConfig>,
    creds: Credentials,
    key: SigningKey,
    books: Arc<Mutex<Books>>,
    features: Arc<FeatureCache>,
}

impl NodeService {
    /// Loads the node's TLS material and checks that its certificate is a node's.
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        let creds = Credentials::load(&config.tls)?;
        if creds.identity().role != Role::Node {
            return Err(NodeError::NotANode(creds.identity().clone()));
        }
        let key =
            SigningKey::from_pkcs8_der(creds.key_pkcs8_der()).map_err(|_| NodeError::BadKey)?;
        let ledger_key = ed25519_dalek::SigningKey::from_pkcs8_der(creds.key_pkcs8_der())
            .map_err(|_| NodeError::BadKey)?;
        let mut ledger =
            NodeLedger::open(&config.privacy.ledger, ledger_key, creds.identity().clone())
                .map_err(|e| NodeError::Ledger(Box::new(e)))?;
        let period = config.privacy.period.clone().unwrap_or_else(utc_month);
        let period = Period::new(&period).map_err(|_| NodeError::Period(period.clone()))?;
        let lifetime = config.privacy.lifetime_cap_rho.clone();
        let mut spending = Spending::from_ledger(ledger.path());
        let opened = crate::floor::roll_period(
            &mut ledger,
            &mut spending,
            period,
            &config.privacy.cap_rho,
            lifetime.clone(),
        )
        .map_err(NodeError::Ledger)?;
        if !opened
            && let Some(cap) = lifetime
            && ledger.book().lifetime_cap() != Some(&cap)
        {
            ledger
                .set_lifetime_cap(cap)
                .map_err(|e| NodeError::Ledger(Box::new(e)))?;
        }
        Ok(NodeService {
            config: Arc::new(config),
            creds,
            key,
            books: Arc::new(Mutex::new(Books { ledger, spending })),
            features: Arc::default(),
        })
    }

    /// Who this node is, from its certificate.
    pub fn identity(&self) -> &PartyId {
        self.creds.identity()
    }

    /// Serves the coordinator until `shutdown` fires, reconnecting as needed.
    pub async fn run(self, mut shutdown: ShutdownSignal) {
        let (initial, max) = self.config.connection.backoff();
        let mut delay = initial;
        let mut attempt: u32 = 0;
        loop {
            match self.session(&mut shutdown).await {
                Ok(SessionEnd::Shutdown) => return,
                Ok(SessionEnd::Lost { reason, registered }) => {
                    warn!(%reason, "connection to the coordinator lost");
                    if registered {
                        delay = initial;
                        attempt = 0;
                    }
                }
                Err(e) => warn!(error = %e, "cannot reach the coordinator"),
            }
            attempt = attempt.saturating_add(1);
            let wait = delay + jitter(self.identity(), attempt, delay);
            info!(attempt, wait_ms = wait.as_millis() as u64, "reconnecting");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.wait() => return,
            }
            delay = (delay * 2).min(max);
        }
    }

    async fn session(&self, shutdown: &mut ShutdownSignal) -> Result<SessionEnd, TransportError> {
        let addr = self
            .config
            .coordinator
            .resolve()
            .await
            .map_err(|e| TransportError::Config {
                detail: format!("cannot resolve {}: {e}", self.config.coordinator),
            })?;
        let limits = self.config.connection.client_limits();
        let endpoint = client_endpoint(&self.creds, &limits, addr)?;
        // A handshake with an unreachable coordinator lasts until the idle timeout: shutdown
        // must not wait for it.
        let peer = tokio::select! {
            peer = connect(&endpoint, addr, self.config.server_name()) => peer?,
            () = shutdown.wait() => return Ok(SessionEnd::Shutdown),
        };
        info!(coordinator = %addr, "connected");
        let stream = tokio::select! {
            stream = peer.open_stream(limits.max_frame) => stream?,
            () = shutdown.wait() => return Ok(SessionEnd::Shutdown),
        };
        let (mut writer, mut reader) = stream.split();

        // The reader runs in its own task: `recv` is not cancel-safe, a channel is.
        let (msg_tx, mut messages) = mpsc::channel(16);
        let reader_task = tokio::spawn(async move {
            loop {
                let received = reader.recv().await;
                let stop = !matches!(received, Ok(Some(_)));
                if msg_tx.send(received).await.is_err() || stop {
                    return;
                }
            }
        });
        let (done_tx, mut computed) = mpsc::channel::<(JobId, Computed)>(MAX_CONCURRENT_JOBS);
        let mut jobs: BTreeMap<JobId, ActiveJob> = BTreeMap::new();
        let (mut session, first) = NodeSession::start(SOFTWARE);
        let mut actions = vec![first];
        let lost = |reason: String, session: &NodeSession| SessionEnd::Lost {
            reason,
            registered: session.is_registered(),
        };
        let end = 'session: loop {
            for action in std::mem::take(&mut actions) {
                let sent = match action {
                    NodeAction::Send { job, body } => send(&mut writer, job, body).await,
                    NodeAction::StartJob { job, announce } => {
                        jobs.retain(|_, j| j.expires > Instant::now());
                        match self.start_job(job, &announce, jobs.len(), &done_tx) {
                            Ok((active, advert)) => {
                                jobs.insert(job, active);
                                match send(&mut writer, job, Body::Accept).await {
                                    Ok(()) => send(&mut writer, job, Body::SecAgg(advert)).await,
                                    Err(e) => Err(e),
                                }
                            }
                            Err(refusal) => {
                                warn!(%job, detail = %refusal.detail, "refusing job");
                                send(&mut writer, job, Body::Refuse(refusal)).await
                            }
                        }
                    }
                    NodeAction::Relay { job, message } => match jobs.get_mut(&job) {
                        Some(active) => match active.secagg.on_relay(message) {
                            Ok(Some(reply)) => send(&mut writer, job, Body::SecAgg(reply)).await,
                            Ok(None) => Ok(()),
                            Err(e) => {
                                jobs.remove(&job);
                                warn!(%job, error = %e, "leaving the job's secure aggregation");
                                let refusal = Refusal {
                                    reason: RefuseReason::Policy,
                                    detail: e.to_string(),
                                };
                                send(&mut writer, job, Body::Refuse(refusal)).await
                            }
                        },
                        None => Ok(()), // A job this node already left or never took.
                    },
                    NodeAction::Released { job, result } => {
                        jobs.remove(&job);
                        // Noise can take a small count below zero: read values as signed.
                        let values: Vec<i64> =
                            result.values.iter().map(|v| from_ring(*v)).collect();
                        info!(%job, contributors = result.contributors.len(), "noisy result released");
                        // Released values are the analyst's business: never at INFO.
                        tracing::debug!(%job, ?values, "released values");
                        Ok(())
                    }
                    NodeAction::End { reason } => break 'session lost(reason, &session),
                };
                if let Err(e) = sent {
                    break 'session lost(e.to_string(), &session);
                }
            }
            tokio::select! {
                received = messages.recv() => match received {
                    Some(Ok(Some(envelope))) => {
                        let was_registered = session.is_registered();
                        actions = session.on_message(envelope);
                        if !was_registered && session.is_registered() {
                            info!(node = %self.identity().name, "registered");
                        }
                    }
                    Some(Ok(None)) | None => {
                        break lost("coordinator ended the session".into(), &session);
                    }
                    Some(Err(e)) => {
                        if let Some(code) = e.code() {
                            writer.send_error(code, e.to_string()).await;
                        }
                        break lost(e.to_string(), &session);
                    }
                },
                Some((job, result)) = computed.recv() => {
                    let Some(active) = jobs.get_mut(&job) else { continue };
                    actions = match result {
                        // The receipt goes first: the coordinator refuses a masked input from
                        // a node that has not shown it paid for the release.
                        Ok((vector, receipt)) => match active.secagg.set_input(vector) {
                            Ok(masked) => std::iter::once(Body::Receipt(receipt))
                                .chain(masked.map(Body::SecAgg))
                                .map(|body| NodeAction::Send { job, body })
                                .collect(),
                            Err(e) => {
                                jobs.remove(&job);
                                let refusal = Refusal { reason: RefuseReason::Policy, detail: e.to_string() };
                                vec![NodeAction::Send { job, body: Body::Refuse(refusal) }]
                            }
                        },
                        Err(refusal) => {
                            jobs.remove(&job);
                            vec![NodeAction::Send { job, body: Body::Refuse(refusal) }]
                        }
                    };
                }
                () = shutdown.wait() => {
                    writer.finish();
                    break SessionEnd::Shutdown;
                }
            }
        };
        reader_task.abort();
        peer.close(close_code::DONE, "node leaving");
        // Let the close reach the coordinator, but never hang on it.
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        Ok(end)
    }

    /// Checks an announced job and starts this node's part: verifies every roster certificate
    /// against the federation CA, builds the round, and starts the local computation. Returns
    /// the key advertisement to send, or the refusal to send instead.
    fn start_job(
        &self,
        job: JobId,
        announce: &JobAnnounce,
        running: usize,
        done: &mpsc::Sender<(JobId, Computed)>,
    ) -> Result<(ActiveJob, NodeMessage), Refusal> {
        let refuse = |reason, detail: String| Refusal { reason, detail };
        if running >= MAX_CONCURRENT_JOBS {
            return Err(refuse(
                RefuseReason::Busy,
                format!("already working on {running} jobs"),
            ));
        }
        let now = SystemTime::now();
        let mut keys = Vec::with_capacity(announce.secagg.roster.len());
        let mut me = None;
        for (i, entry) in announce.secagg.roster.iter().enumerate() {
            let (party, key) = self
                .creds
                .verify_party(&entry.certificate, now)
                .map_err(|e| {
                    refuse(
                        RefuseReason::Policy,
                        format!("roster certificate of {} is not trusted: {e}", entry.name),
                    )
                })?;
            if party.role != Role::Node || party.name != entry.name {
                return Err(refuse(
                    RefuseReason::Policy,
                    format!(
                        "roster entry {} carries the certificate of {party}",
                        entry.name
                    ),
                ));
            }
            if party == *self.identity() {
                me = u32::try_from(i).ok();
            }
            keys.push(VerifyingKey::from_bytes(&key).map_err(|_| {
                refuse(
                    RefuseReason::Policy,
                    format!("roster key of {} is not a valid Ed25519 key", entry.name),
                )
            })?);
        }
        let me = me.ok_or_else(|| {
            refuse(
                RefuseReason::Policy,
                "this node is not in the roster".into(),
            )
        })?;
        let (rho, mechanism) =
            crate::work::mechanism(&announce.spec, &announce.release, &announce.profile)?;
        let config = round_config(job, announce, keys)
            .map_err(|e| refuse(RefuseReason::Policy, e.to_string()))?;
        let release = ReleaseId {
            job,
            round: RoundId(0),
            nonce: Digest::from_bytes(config.digest()),
        };
        let reserve = match &announce.spec {
            // The rest of the job must fit too: refuse at its start, not half-way.
            JobSpec::Features(q) => {
                fedprof_privacy::Rho::from_ratio(q.reserve.numer, q.reserve.denom)
                    .unwrap_or_else(|_| fedprof_privacy::Rho::zero())
            }
        };
        {
            let mut books = self
                .books
                .lock()
                .map_err(|_| refuse(RefuseReason::Policy, "ledger unavailable".into()))?;
            roll(&mut books, &self.config)?;
            once(&books, &release)?;
            check_budget(
                &books,
                &self.config.floor,
                announce,
                &release,
                &mechanism,
                &reserve,
            )?;
        }
        let rng = || {
            fedprof_crypto::rng::from_os().map_err(|e| refuse(RefuseReason::Policy, e.to_string()))
        };
        let (secagg, advert) = NodeJob::start(job, config, me, &self.key, rng()?)
            .map_err(|e| refuse(RefuseReason::Policy, e.to_string()))?;
        info!(%job, kind = announce.spec.name(), %rho, rho_f64 = rho.to_f64(), "accepted job; computing this node's noisy vector");
        let (work, params, done, mut noise_rng) = (
            Work::new(&announce.spec, &self.config, &self.features),
            announce.release.clone(),
            done.clone(),
            rng()?,
        );
        let books = Arc::clone(&self.books);
        let lifetime = Duration::from_millis(u64::from(announce.timeout_ms)) * JOB_LIFETIME_PHASES;
        let announce = announce.clone();
        let config = Arc::clone(&self.config);
        tokio::task::spawn_blocking(move || {
            let paid = Paid {
                config: &config,
                announce: &announce,
                release,
                reserve,
            };
            let result = work
                .run(&params, &mut noise_rng)
                .and_then(|noisy| debit(&books, &paid, mechanism, noisy, &mut noise_rng));
            let _ = done.blocking_send((job, result));
        });
        Ok((
            ActiveJob {
                secagg,
                expires: Instant::now() + lifetime,
            },
            advert,
        ))
    }
}

async fn send(writer: &mut MessageWriter, job: JobId, body: Body) -> Result<(), StreamError> {
    writer.send(job, RoundId(0), body).await
}

/// A job's local result: the vector to mask and the signed debit receipt, or a refusal.
type Computed = Result<(Vec<u64>, String), Refusal>;

/// Every check a release must pass before this node pays for it: the period cap and the
/// job's reserve (the ledger), and this node's own floor (per release, job, analyst; assumed
/// colluders and honest shares).
fn check_budget(
    books: &Books,
    floor: &NodeFloorConfig,
    announce: &JobAnnounce,
    release: &ReleaseId,
    mechanism: &MechanismRecord,
    reserve: &fedprof_privacy::Rho,
) -> Result<(), Refusal> {
    let book = books.ledger.book();
    // L9: a ledger restored from an older copy lacks the coordinator's last receipt of ours.
    book.check_receipt_head(announce.last_receipt.as_deref())
        .map_err(|e| e.refusal())?;
    let rho = book
        .check_debit(release, mechanism)
        .map_err(|e| e.refusal())?;
    // The noise the coordinator announced must fit the budget the analyst's query asked for.
    let JobSpec::Features(q) = &announce.spec;
    let asked = fedprof_privacy::Rho::from_ratio(q.budget.numer, q.budget.denom)
        .unwrap_or_else(|_| fedprof_privacy::Rho::zero());
    if rho > asked {
        return Err(Refusal {
            reason: RefuseReason::PrivacyFloor,
            detail: format!(
                "the announced noise costs rho {rho}, more than the query's budget {asked}"
            ),
        });
    }
    book.check_headroom(&rho, reserve)
        .map_err(|e| e.refusal())?;
    crate::floor::check(
        floor,
        &books.spending,
        &announce.release,
        &announce.profile,
        &rho,
        reserve,
    )
    .map_err(|e| e.refusal())
}

/// Refuses a release this node has already paid for. Its noisy vector goes into one masking
/// round only: a coordinator replaying an announcement (same nonce, so the same release id)
/// would otherwise get the same vector into a second round with another survivor set, and
/// the difference of the two sums would expose one node's vector with its own noise share
/// alone. A crash after the debit loses the release (the safe side).
fn once(books: &Books, release: &ReleaseId) -> Result<(), Refusal> {
    match books.ledger.book().debit(release) {
        None => Ok(()),
        Some(d) => Err(Refusal {
            reason: RefuseReason::Policy,
            detail: format!(
                "release {release} was already paid for (ledger entry {}); a release's vector \
                 goes into one masking round only",
                d.seq
            ),
        }),
    }
}

/// The current month, `YYYY-MM` (UTC): the default budget period.
fn utc_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// Opens the clock's budget period when the month rolled while the node ran (unless the config
/// pins `privacy.period`): the period cap is a rate per month, not per process start.
fn roll(books: &mut Books, config: &NodeConfig) -> Result<(), Refusal> {
    if config.privacy.period.is_some() {
        return Ok(());
    }
    let name = utc_month();
    let failed = |detail: String| Refusal {
        reason: RefuseReason::Policy,
        detail,
    };
    let period = Period::new(&name).map_err(|e| failed(format!("budget period {name}: {e}")))?;
    let Books { ledger, spending } = books;
    match crate::floor::roll_period(
        ledger,
        spending,
        period,
        &config.privacy.cap_rho,
        config.privacy.lifetime_cap_rho.clone(),
    ) {
        Ok(true) => {
            info!(period = %name, "new budget period opened");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            warn!(error = %e, "cannot open the new budget period");
            Err(failed(format!("the node's ledger failed: {e}")))
        }
    }
}

/// What a debit is checked against again under the ledger lock.
struct Paid<'a> {
    config: &'a NodeConfig,
    announce: &'a JobAnnounce,
    release: ReleaseId,
    reserve: fedprof_privacy::Rho,
}

/// Debits the release in the node's ledger (durably, before the vector may leave) and returns
/// the vector to send: `noisy`, or the vector cached for this release by an earlier attempt, so
/// a retried release never carries a second noise draw and is never paid twice. The floor is
/// checked again under the lock, so concurrent jobs cannot both slip under it.
fn debit(
    books: &Mutex<Books>,
    paid: &Paid<'_>,
    mechanism: MechanismRecord,
    noisy: Vec<u64>,
    rng: &mut ChaCha20Rng,
) -> Result<(Vec<u64>, String), Refusal> {
    let mut books = books.lock().map_err(|_| Refusal {
        reason: RefuseReason::Policy,
        detail: "ledger unavailable".into(),
    })?;
    let release = paid.release;
    // Checked again under the lock: two copies of one announcement may both have started.
    once(&books, &release)?;
    roll(&mut books, paid.config)?;
    check_budget(
        &books,
        &paid.config.floor,
        paid.announce,
        &release,
        &mechanism,
        &paid.reserve,
    )?;
    let mut salt = [0u8; 32];
    rand_core::Rng::fill_bytes(rng, &mut salt);
    match books
        .ledger
        .prepare_release(release, mechanism, salt, move || noisy)
    {
        Ok(receipt) => {
            info!(job = %release.job, retry = receipt.is_retry(), "release debited");
            if !receipt.is_retry() {
                books.spending.record(receipt.entry());
            }
            let (entry, vector) = receipt.into_parts();
            Ok((vector, entry.to_line()))
        }
        Err(StoreError::Budget(e)) => Err(e.refusal()),
        Err(e) => {
            warn!(error = %e, "budget ledger failed; refusing the job");
            Err(Refusal {
                reason: RefuseReason::Policy,
                detail: format!("the node's ledger failed: {e}"),
            })
        }
    }
}

/// Spreads reconnections of many nodes over up to half the current delay, so a restarted
/// coordinator is not hit by every node at the same instant. Derived from the node's name and
/// the attempt number, not from an RNG: it needs spread, not secrecy.
fn jitter(me: &PartyId, attempt: u32, delay: Duration) -> Duration {
    let seed = me.name.as_str().bytes().fold(
        u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3),
    );
    let half = delay.as_millis() as u64 / 2;
    Duration::from_millis(if half == 0 { 0 } else { seed % half })
}
