//! The accept loop: a function of a bound endpoint and a shutdown signal (as in mini-redis).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::connection::{PeerConnection, close_code};
use crate::tls::ServerLimits;

/// Tells connection handlers that the server is shutting down.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// A signal and the function that triggers it.
    pub fn new() -> (ShutdownTrigger, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(Arc::new(tx)), ShutdownSignal(rx))
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when shutdown begins (immediately if it already has). Cancel-safe.
    pub async fn wait(&mut self) {
        // An error means every trigger was dropped: treat that as shutdown too.
        let _ = self.0.wait_for(|&v| v).await;
    }
}

/// Starts a shutdown. Cloning shares the trigger; dropping every trigger also shuts down.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

impl ShutdownTrigger {
    /// Begins shutdown.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// Accepts connections on `endpoint` until `shutdown` fires, running `handler` for each
/// authenticated peer in its own task.
///
/// - At most `limits.max_connections` connections at once; beyond that, new handshakes are
///   refused at the QUIC level before any TLS work.
/// - A peer whose certificate does not verify against the federation CA, or names no fedprof
///   party, never reaches `handler`.
/// - On shutdown: stop accepting, let handlers see the signal and finish for up to
///   `limits.shutdown_grace`, then close every connection and wait for the endpoint to go idle.
pub async fn serve<H, F>(
    endpoint: quinn::Endpoint,
    limits: ServerLimits,
    mut shutdown: ShutdownSignal,
    handler: H,
) where
    H: Fn(PeerConnection, ShutdownSignal) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let active = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
            // Reap finished handlers so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        if active.load(Ordering::Acquire) >= limits.max_connections {
            warn!(remote = %incoming.remote_address(), limit = limits.max_connections, "connection limit reached; refusing");
            incoming.refuse();
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let guard = ActiveGuard(active.clone());
        let (handler, signal) = (handler.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _guard = guard;
            let remote = incoming.remote_address();
            let conn = match incoming.accept() {
                Ok(connecting) => match connecting.await {
                    Ok(c) => c,
                    Err(e) => {
                        info!(%remote, error = %e, "handshake failed");
                        return;
                    }
                },
                Err(e) => {
                    info!(%remote, error = %e, "could not accept connection");
                    return;
                }
            };
            match PeerConnection::from_connection(conn.clone()) {
                Ok(peer) => {
                    debug!(%remote, peer = %peer.peer(), "peer authenticated");
                    let on_abort = CloseOnAbort(Some(conn.clone()));
                    handler(peer, signal).await;
                    on_abort.disarm();
                }
                Err(e) => {
                    warn!(%remote, error = %e, "refusing peer without a fedprof identity");
                    conn.close(close_code::PROTOCOL_ERROR.into(), b"no fedprof identity");
                }
            }
        });
    }
    info!(
        connections = active.load(Ordering::Acquire),
        "shutting down: no new connections"
    );
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drain)
        .await
        .is_err()
    {
        warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period; closing them");
        tasks.abort_all();
        // Wait until the aborted handlers are dropped (and their connections closed).
        while tasks.join_next().await.is_some() {}
    }
    endpoint.close(close_code::SHUTTING_DOWN.into(), b"shutting down");
    endpoint.wait_idle().await;
}

/// Closes a handler's connection with `SHUTTING_DOWN` if the handler is dropped before it
/// finishes (aborted at the end of the grace period). Without it the last handle's drop closes
/// the connection with code 0 (`DONE`) before `Endpoint::close`, which is only queued to the
/// connection's driver, takes effect, and the peer is told the session ended normally.
struct CloseOnAbort(Option<quinn::Connection>);

impl CloseOnAbort {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CloseOnAbort {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.close(close_code::SHUTTING_DOWN.into(), b"shutting down");
        }
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
