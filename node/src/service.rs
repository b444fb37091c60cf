//! The node on the network: dials the coordinator, registers, serves jobs, and reconnects with
//! exponential backoff when the connection is lost. The async shell around
//! [`crate::session::NodeSession`].

use std::time::Duration;

use fedprof_protocol::{JobId, JobSpec, PartyId, Refusal, RefuseReason, RoundId};
use fedprof_transport::{
    Credentials, ShutdownSignal, TransportError, client_endpoint, close_code, connect,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::data::{TransactionTotals, TransactionsSource, transaction_totals};
use crate::session::{NodeAction, NodeSession};

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
}

/// Why one connection's session ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Lost { reason: String, registered: bool },
}

/// A configured node, ready to run.
#[derive(Debug)]
pub struct NodeService {
    config: NodeConfig,
    creds: Credentials,
}

impl NodeService {
    /// Loads the node's TLS material and checks that its certificate is a node's.
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        let creds = Credentials::load(&config.tls)?;
        if creds.identity().role != fedprof_protocol::Role::Node {
            return Err(NodeError::NotANode(creds.identity().clone()));
        }
        Ok(NodeService { config, creds })
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
        let addr = self.config.coordinator.resolve().await.map_err(|e| TransportError::Config {
            detail: format!("cannot resolve {}: {e}", self.config.coordinator),
        })?;
        let server_name = self.config.server_name();
        let limits = self.config.connection.client_limits();
        let endpoint = client_endpoint(&self.creds, &limits, addr)?;
        let peer = connect(&endpoint, addr, server_name).await?;
        info!(coordinator = %addr, "connected");
        let stream = peer.open_stream(limits.max_frame).await?;
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
        let (done_tx, mut computed) = mpsc::channel::<(JobId, Result<Vec<u64>, Refusal>)>(1);
        let (mut session, first) = NodeSession::start(SOFTWARE);
        let mut actions = vec![first];
        let end = 'session: loop {
            for action in actions.drain(..) {
                match action {
                    NodeAction::Send { job, body } => {
                        if let Err(e) = writer.send(job, RoundId(0), body).await {
                            break 'session SessionEnd::Lost {
                                reason: e.to_string(),
                                registered: session.is_registered(),
                            };
                        }
                    }
                    NodeAction::Compute { job, spec } => {
                        info!(%job, kind = spec.name(), "computing contribution");
                        let (source, done) = (self.config.transactions(), done_tx.clone());
                        tokio::task::spawn_blocking(move || {
                            let _ = done.blocking_send((job, compute(&spec, &source)));
                        });
                    }
                    NodeAction::Released { job, result } => match TransactionTotals::from_ring(&result.values) {
                        Some(t) => info!(%job, contributors = result.contributors.len(), customers = t.customers, rows = t.rows, amount_minor = t.amount_minor, "result released"),
                        None => info!(%job, contributors = result.contributors.len(), "result released"),
                    },
                    NodeAction::End { reason } => {
                        break 'session SessionEnd::Lost { reason, registered: session.is_registered() };
                    }
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
                        break SessionEnd::Lost { reason: "coordinator ended the session".into(), registered: session.is_registered() };
                    }
                    Some(Err(e)) => {
                        if let Some(code) = e.code() {
                            writer.send_error(code, e.to_string()).await;
                        }
                        break SessionEnd::Lost { reason: e.to_string(), registered: session.is_registered() };
                    }
                },
                Some((job, result)) = computed.recv() => actions = session.on_computed(job, result),
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
}

/// Computes this node's contribution to `spec`, or the refusal to send instead.
pub fn compute(spec: &JobSpec, source: &TransactionsSource) -> Result<Vec<u64>, Refusal> {
    match spec {
        JobSpec::TransactionTotals => transaction_totals(source).map(TransactionTotals::to_ring).map_err(|e| {
            warn!(error = %e, "local data unusable; refusing the job");
            Refusal { reason: RefuseReason::DataUnavailable, detail: e.detail_for_peer() }
        }),
    }
}

/// Spreads reconnections of many nodes over up to half the current delay, so a restarted
/// coordinator is not hit by every node at the same instant. Derived from the node's name and
/// the attempt number, not from an RNG: it needs spread, not secrecy.
fn jitter(me: &PartyId, attempt: u32, delay: Duration) -> Duration {
    let seed = me.name.as_str().bytes().fold(u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15), |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let half = delay.as_millis() as u64 / 2;
    Duration::from_millis(if half == 0 { 0 } else { seed % half })
}
