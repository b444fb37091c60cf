//! Attacks on the accept loop through real QUIC on loopback (security review H2 and M1):
//! handshakes that never finish, roles the server has nothing for, one identity taking every
//! slot. Attackers dial from 127.0.0.2, honest parties from 127.0.0.1 (both loopback).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations
)]

#[allow(
    dead_code,
    reason = "the shared fixtures of mtls.rs; this file uses a few"
)]
mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Federation, SERVER_NAME, bounded, party, register, spawn_echo_server};
use fedprof_protocol::{FrameLimit, JobId, Role, RoundId};
use fedprof_transport::{
    AdmissionLimits, ClientLimits, ServerLimits, TransportError, client_endpoint, close_code,
    connect,
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A client-side certificate check that takes a minute: the client never sends its Finished,
/// so the server holds a handshake in flight for as long as it lets it.
#[derive(Debug)]
struct Stall;

impl ServerCertVerifier for Stall {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        std::thread::sleep(Duration::from_secs(60));
        Err(rustls::Error::General("stalled".into()))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("stalled".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("stalled".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Starts one stalled handshake from [`ATTACKER`] on its own thread (the stall blocks the
/// thread its client runs on). Needs no certificate: the server holds the handshake before it
/// could see one.
fn stalled_handshake(server: SocketAddr) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Stall))
            .with_no_client_auth();
            let mut tls = tls;
            tls.alpn_protocols = vec![fedprof_protocol::ALPN.to_vec()];
            let quic = QuicClientConfig::try_from(tls).unwrap();
            let mut endpoint = quinn::Endpoint::client((ATTACKER, 0).into()).unwrap();
            endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
            let _ = endpoint.connect(server, SERVER_NAME).unwrap().await;
        });
    });
}

/// A normal client endpoint for `creds`, sending from `ip`.
fn endpoint_from(
    creds: &fedprof_transport::Credentials,
    ip: Ipv4Addr,
    server: SocketAddr,
) -> quinn::Endpoint {
    let endpoint = client_endpoint(creds, &ClientLimits::default(), server).unwrap();
    endpoint.rebind(UdpSocket::bind((ip, 0)).unwrap()).unwrap();
    endpoint
}

/// Connects and exchanges one message; the error if the server refused.
async fn exchange(endpoint: &quinn::Endpoint, server: SocketAddr) -> Result<(), TransportError> {
    let peer = connect(endpoint, server, SERVER_NAME).await?;
    let mut stream = peer.open_stream(FrameLimit::DEFAULT).await?;
    stream
        .writer
        .send(JobId::NONE, RoundId(0), register())
        .await
        .map_err(|e| TransportError::Config {
            detail: e.to_string(),
        })?;
    match stream.reader.recv().await {
        Ok(Some(_)) => {
            peer.close(close_code::DONE, "done");
            Ok(())
        }
        other => Err(TransportError::Config {
            detail: format!("no answer: {other:?}"),
        }),
    }
}

fn limits() -> ServerLimits {
    ServerLimits {
        admission: AdmissionLimits {
            max_connections: 8,
            max_handshakes: 8,
            max_handshakes_per_source: 3,
            handshake_timeout: Duration::from_secs(3),
            ..AdmissionLimits::default()
        },
        ..ServerLimits::default()
    }
}

/// Security review H2: twelve handshakes that never finish, from one address, used to take
/// every slot (8 here) so honest parties were refused until the idle timeout. Now the attacker
/// gets its source's share (3), honest parties elsewhere connect at once, and the stalled
/// handshakes are dropped after the handshake timeout, so even the attacker's address works
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_do_not_lock_out_honest_parties() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, _echo) = spawn_echo_server(&fed.coordinator(), limits());
        for _ in 0..12 {
            stalled_handshake(server.addr);
        }
        // Let every stalled handshake reach the server (a Retry round trip, then the hello).
        tokio::time::sleep(Duration::from_millis(700)).await;
        // The attacker's address is at its share: an honest party there is refused...
        let neighbour = endpoint_from(&fed.node("neighbour"), ATTACKER, server.addr);
        match exchange(&neighbour, server.addr).await {
            Err(TransportError::Connection(quinn::ConnectionError::ConnectionClosed(close))) => {
                assert_eq!(
                    close.error_code,
                    quinn::TransportErrorCode::CONNECTION_REFUSED
                );
            }
            other => panic!("the attacker's address was not at its share: {other:?}"),
        }
        // ...while honest parties elsewhere connect at once.
        let started = Instant::now();
        for i in 0..6 {
            let honest = endpoint_from(
                &fed.node(&format!("n{i}")),
                Ipv4Addr::LOCALHOST,
                server.addr,
            );
            exchange(&honest, server.addr)
                .await
                .unwrap_or_else(|e| panic!("honest node n{i} refused: {e}"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // After the handshake timeout the stalled handshakes are dropped and the attacker's
        // address works again.
        let started = Instant::now();
        loop {
            match exchange(&neighbour, server.addr).await {
                Ok(()) => break,
                Err(_) if started.elapsed() < Duration::from_secs(8) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("stalled handshakes were never dropped: {e}"),
            }
        }
        // Not `stop()`: the endpoint waits out the close of the handshakes it dropped (their
        // peers never answer), a few probe timeouts.
        server.trigger.trigger();
        server.task.await.unwrap();
    })
    .await;
}

/// Security review M1: an auditor (which has no messages for the coordinator) and a second
/// coordinator are closed as soon as their certificates are verified, before any frame is
/// read; one identity cannot take more than its share of connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_messages_and_greedy_identities_are_refused() {
    bounded(async {
        let fed = Federation::new("acme");
        let mut limits = limits();
        limits.admission.max_connections_per_identity = 2;
        let (server, echo) = spawn_echo_server(&fed.coordinator(), limits);
        for who in [
            party(Role::Auditor, "aud"),
            party(Role::Coordinator, "other"),
        ] {
            let creds = fed.credentials(&who, &[SERVER_NAME]);
            let endpoint = endpoint_from(&creds, Ipv4Addr::LOCALHOST, server.addr);
            let e = exchange(&endpoint, server.addr).await.unwrap_err();
            assert!(
                format!("{e:?}").contains("may not connect here"),
                "{who}: {e:?}"
            );
        }
        assert_eq!(echo.calls(), 0, "a refused role reached the handler");
        let creds = fed.node("greedy");
        let mut held = Vec::new();
        for _ in 0..2 {
            let endpoint = endpoint_from(&creds, Ipv4Addr::LOCALHOST, server.addr);
            let peer = connect(&endpoint, server.addr, SERVER_NAME).await.unwrap();
            let stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
            held.push((endpoint, peer, stream));
        }
        let third = endpoint_from(&creds, Ipv4Addr::LOCALHOST, server.addr);
        let e = exchange(&third, server.addr).await.unwrap_err();
        assert!(
            format!("{e:?}").contains("already has 2 connections"),
            "{e:?}"
        );
        // Another node is not affected.
        let other = endpoint_from(&fed.node("other"), Ipv4Addr::LOCALHOST, server.addr);
        exchange(&other, server.addr).await.unwrap();
        for (_, peer, _) in &held {
            peer.close(close_code::DONE, "done");
        }
        server.stop().await;
    })
    .await;
}
