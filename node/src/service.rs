//! The node on the network: dials the coordinator, registers, serves jobs, and reconnects with
//! exponential backoff when the connection is lost. The async shell around
//! [`crate::core::NodeCore`], which decides everything: this file only moves bytes, runs the
//! local computation on the blocking pool and does the ledger's file I/O.
//!
//! Shutdown is never hidden: every send races the shutdown signal and is bounded by the
//! heartbeat timeout (a coordinator that does not read for that long is treated as gone), and
//! a computation still running when shutdown starts does not pay for its release (the debit
//! checks the signal under the ledger lock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use fedprof_crypto::SigningKey;
use fedprof_protocol::{Body, Escaped, JobId, PartyId, Role, RoundId};
use fedprof_transport::{
    Credentials, MessageWriter, ShutdownSignal, StreamError, TransportError, client_endpoint,
    close_code, connect,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::books::{Books, Paid};
use crate::config::NodeConfig;
use crate::core::{Action, Compute, CoreParams, Input, MAX_CONCURRENT_JOBS, NodeCore, Now};
use fedprof_privacy::encoding::from_ring;

use crate::work::{FeatureCache, Work};

/// What the node tells the coordinator it runs.
const SOFTWARE: &str = concat!("fedprof-node ", env!("CARGO_PKG_VERSION"));

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
    /// The budget books cannot be opened (ledger or period).
    #[error(transparent)]
    Books(#[from] crate::books::OpenError),
    /// The revocation list (`[tls] revoked`) is unreadable, unsigned or malformed.
    #[error(transparent)]
    Revocation(#[from] fedprof_transport::RevocationError),
}

/// Why one connection's session ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Lost { reason: String, registered: bool },
}

/// Why a send did not happen.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("the coordinator did not take a message for {0:?} (not reading)")]
    TimedOut(Duration),
    #[error("shutting down")]
    Shutdown,
}

/// A configured node, ready to run.
#[derive(Debug)]
pub struct NodeService {
    config: Arc<NodeConfig>,
    creds: Arc<Credentials>,
    params: Arc<CoreParams>,
    books: Arc<Mutex<Books>>,
    features: Arc<FeatureCache>,
    revocations: fedprof_transport::RevocationWatch,
}

impl NodeService {
    /// Loads the node's TLS material and checks that its certificate is a node's.
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        let creds = Arc::new(Credentials::load(&config.tls)?);
        if creds.identity().role != Role::Node {
            return Err(NodeError::NotANode(creds.identity().clone()));
        }
        let key =
            SigningKey::from_pkcs8_der(creds.key_pkcs8_der()).map_err(|_| NodeError::BadKey)?;
        let ledger_key = ed25519_dalek::SigningKey::from_pkcs8_der(creds.key_pkcs8_der())
            .map_err(|_| NodeError::BadKey)?;
        let books = Books::open(&config.privacy, ledger_key, creds.identity().clone())?;
        let revocations = config.tls.revocations()?;
        let certificates = crate::job::Unrevoked {
            inner: Arc::clone(&creds),
            revocations: revocations.clone(),
        };
        let params = Arc::new(CoreParams {
            identity: creds.identity().clone(),
            key,
            certificates: Arc::new(certificates) as Arc<dyn crate::job::Certificates>,
            floor: config.floor.clone(),
            max_jobs: MAX_CONCURRENT_JOBS,
            heartbeat_timeout: config.connection.heartbeat_timeout(),
        });
        Ok(NodeService {
            config: Arc::new(config),
            creds,
            params,
            books: Arc::new(Mutex::new(books)),
            features: Arc::default(),
            revocations,
        })
    }

    /// The revocation list this node enforces on roster certificates; `reload` it on SIGHUP
    /// (the next announcement is checked against the list then in force).
    pub fn revocations(&self) -> &fedprof_transport::RevocationWatch {
        &self.revocations
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
                    // The reason can quote the coordinator (its QUIC close reason).
                    warn!(reason = %Escaped(&reason), "connection to the coordinator lost");
                    if registered {
                        delay = initial;
                        attempt = 0;
                    }
                }
                // A refused handshake can quote the coordinator's close reason.
                Err(e) => warn!(error = %Escaped(&e.to_string()), "cannot reach the coordinator"),
            }
            if shutdown.is_triggered() {
                return;
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
        let (done_tx, mut computed) = mpsc::channel(MAX_CONCURRENT_JOBS);
        let seed = fedprof_crypto::rng::from_os()
            .map(|mut rng| {
                let mut seed = [0u8; 32];
                rand_core::Rng::fill_bytes(&mut rng, &mut seed);
                seed
            })
            .map_err(|e| TransportError::Config {
                detail: format!("no randomness: {e}"),
            })?;
        let (mut core, mut actions) =
            NodeCore::start(Arc::clone(&self.params), SOFTWARE, seed, Now::system());
        let mut cancels: HashMap<JobId, Arc<AtomicBool>> = HashMap::new();
        let send_timeout = self.params.heartbeat_timeout;
        let end = 'session: loop {
            for action in std::mem::take(&mut actions) {
                match action {
                    Action::Send { job, body } => {
                        match send(&mut writer, job, body, send_timeout, shutdown).await {
                            Ok(()) => {}
                            Err(SendError::Shutdown) => break 'session SessionEnd::Shutdown,
                            Err(e) => break 'session lost(e.to_string(), &core),
                        }
                    }
                    Action::Compute(work) => {
                        let cancel = Arc::new(AtomicBool::new(false));
                        cancels.insert(work.job, Arc::clone(&cancel));
                        self.spawn_compute(*work, cancel, shutdown.clone(), done_tx.clone());
                    }
                    Action::Cancel { job } => {
                        if let Some(flag) = cancels.remove(&job) {
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                    Action::Released { job, result } => {
                        cancels.remove(&job);
                        // Noise can take a small count below zero: read values as signed.
                        let values: Vec<i64> =
                            result.values.iter().map(|v| from_ring(*v)).collect();
                        info!(%job, contributors = result.contributors.len(), "noisy result released");
                        // Released values are the analyst's business: never at INFO or
                        // DEBUG (security review L3), only for a developer tracing a run.
                        tracing::trace!(%job, ?values, "released values");
                    }
                    Action::End { reason } => break 'session lost(reason, &core),
                }
            }
            let deadline = core.next_deadline().map(tokio::time::Instant::from_std);
            let input = tokio::select! {
                received = messages.recv() => match received {
                    Some(Ok(Some(envelope))) => Input::Message(envelope),
                    Some(Ok(None)) | None => {
                        break lost("coordinator ended the session".into(), &core);
                    }
                    Some(Err(e)) => {
                        if let Some(code) = e.code() {
                            // Bounded: a coordinator that does not read must not hold us.
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                writer.send_error(code, e.to_string()),
                            )
                            .await;
                        }
                        break lost(e.to_string(), &core);
                    }
                },
                Some((job, result)) = computed.recv() => Input::Computed { job, result },
                () = sleep_until(deadline) => Input::Tick,
                () = shutdown.wait() => break SessionEnd::Shutdown,
            };
            if matches!(input, Input::Message(_)) {
                self.roll_period();
            }
            actions = core.handle(input, Now::system(), &self.books);
        };
        // Nothing still computing pays once the session is over.
        for flag in cancels.values() {
            flag.store(true, Ordering::SeqCst);
        }
        if matches!(end, SessionEnd::Shutdown) {
            writer.finish();
        }
        reader_task.abort();
        peer.close(close_code::DONE, "node leaving");
        // Let the close reach the coordinator, but never hang on it.
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        Ok(end)
    }

    /// Opens the clock's budget period if the month rolled (the ledger write is the shell's;
    /// the core only reads the books). A failure is logged by `roll` and refused at the debit.
    /// Skipped while a debit holds the lock (it rolls the period itself): the network loop
    /// does not wait for an fsync just to compare month names.
    fn roll_period(&self) {
        if let Ok(mut books) = self.books.try_lock() {
            let _ = crate::books::roll(&mut books, &self.config.privacy);
        }
    }

    /// Runs an admitted job's computation and debit on the blocking pool, in the order
    /// [`crate::books`] documents, and hands the outcome back to the session.
    fn spawn_compute(
        &self,
        work: Compute,
        cancel: Arc<AtomicBool>,
        shutdown: ShutdownSignal,
        done: mpsc::Sender<(JobId, crate::books::Computed)>,
    ) {
        let compute = Work::new(&work.announce.spec, &self.config, &self.features);
        let (books, config) = (Arc::clone(&self.books), Arc::clone(&self.config));
        tokio::task::spawn_blocking(move || {
            use rand_core::SeedableRng as _;
            let mut rng = chacha20::ChaCha20Rng::from_seed(work.noise_seed);
            let cancelled = || cancel.load(Ordering::SeqCst) || shutdown.is_triggered();
            let paid = Paid {
                privacy: &config.privacy,
                floor: &config.floor,
                announce: &work.announce,
                release: work.release,
                reserve: work.reserve,
                cancelled: &cancelled,
            };
            let result = compute.exact().and_then(|exact| {
                crate::books::debit(
                    &books,
                    &paid,
                    work.mechanism,
                    &exact,
                    &work.announce.release,
                    &mut rng,
                )
                .map(Box::new)
            });
            let _ = done.blocking_send((work.job, result));
        });
    }
}

fn lost(reason: String, core: &NodeCore) -> SessionEnd {
    SessionEnd::Lost {
        reason,
        registered: core.is_registered(),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends one message, raced against shutdown and bounded by `timeout`: a write blocked by a
/// coordinator that does not read never hides Ctrl-C or SIGTERM, and never lasts longer than
/// the coordinator may stay silent.
async fn send(
    writer: &mut MessageWriter,
    job: JobId,
    body: Body,
    timeout: Duration,
    shutdown: &mut ShutdownSignal,
) -> Result<(), SendError> {
    tokio::select! {
        sent = tokio::time::timeout(timeout, writer.send(job, RoundId(0), body)) => match sent {
            Ok(result) => Ok(result?),
            Err(_) => Err(SendError::TimedOut(timeout)),
        },
        () = shutdown.wait() => Err(SendError::Shutdown),
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
