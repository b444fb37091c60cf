//! The accept loop: a function of a bound endpoint and a shutdown signal (as in mini-redis).

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedprof_protocol::PartyId;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::admission::{Admission, OnIncoming};
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
/// - Admission ([`crate::admission`]): a source that has not validated its address gets a
///   QUIC Retry; handshakes in flight are capped in all and per source and each must finish
///   within `limits.admission.handshake_timeout`; authenticated connections are capped in all
///   and per identity; roles the server does not serve are refused. A refusal before the
///   handshake happens at the QUIC level, before any TLS work.
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
    let gate = Arc::new(Mutex::new(Admission::new(limits.admission)));
    let mut refusals = Throttle::default();
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
        let remote = incoming.remote_address();
        let decision = lock(&gate).on_incoming(remote.ip(), incoming.remote_address_validated());
        match decision {
            OnIncoming::Accept => {}
            OnIncoming::Retry => {
                // `retry` fails only for a source that may not be retried (already validated,
                // which `on_incoming` rules out); refuse it then.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                continue;
            }
            OnIncoming::Refuse(why) => {
                refusals.note(|suppressed| {
                    warn!(%remote, reason = %why, suppressed, "refusing a connection");
                });
                incoming.refuse();
                continue;
            }
        }
        let handshake = Held::Handshake(gate.clone(), remote.ip());
        let (handler, signal) = (handler.clone(), shutdown.clone());
        let timeout = limits.admission.handshake_timeout;
        let gate = gate.clone();
        tasks.spawn(async move {
            let conn = match incoming.accept() {
                Ok(connecting) => match tokio::time::timeout(timeout, connecting).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        info!(%remote, error = %e, "handshake failed");
                        return;
                    }
                    // Dropping the handshake closes it.
                    Err(_) => {
                        info!(%remote, ?timeout, "handshake not finished in time; dropped");
                        return;
                    }
                },
                Err(e) => {
                    info!(%remote, error = %e, "could not accept connection");
                    return;
                }
            };
            drop(handshake);
            let peer = match PeerConnection::from_connection(conn.clone()) {
                Ok(peer) => peer,
                Err(e) => {
                    warn!(%remote, error = %e, "refusing peer without a fedprof identity");
                    conn.close(close_code::PROTOCOL_ERROR.into(), b"no fedprof identity");
                    return;
                }
            };
            let admitted = lock(&gate).on_authenticated(peer.peer());
            if let Err(why) = admitted {
                warn!(%remote, peer = %peer.peer(), reason = %why, "refusing an authenticated peer");
                conn.close(close_code::REFUSED.into(), why.to_string().as_bytes());
                return;
            }
            let _slot = Held::Connection(gate, peer.peer().clone());
            debug!(%remote, peer = %peer.peer(), "peer authenticated");
            let on_abort = CloseOnAbort(Some(conn.clone()));
            handler(peer, signal).await;
            on_abort.disarm();
        });
    }
    info!(
        connections = lock(&gate).counts().1,
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

/// The admission gate's lock; a handler that panicked while holding it leaves counts that
/// are still consistent (every update is one statement), so a poisoned lock is used as is.
fn lock(gate: &Mutex<Admission>) -> std::sync::MutexGuard<'_, Admission> {
    gate.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A handshake or connection slot, given back to the gate when dropped (however the task
/// ends: finished, failed, timed out or aborted at shutdown).
enum Held {
    Handshake(Arc<Mutex<Admission>>, IpAddr),
    Connection(Arc<Mutex<Admission>>, PartyId),
}

impl Drop for Held {
    fn drop(&mut self) {
        match self {
            Held::Handshake(gate, source) => lock(gate).handshake_over(*source),
            Held::Connection(gate, peer) => lock(gate).connection_over(peer),
        }
    }
}

/// At most one log line a second for refused connections, with the number left out since
/// the last one: a flood of handshakes must not become a flood of log lines.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn note(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
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
