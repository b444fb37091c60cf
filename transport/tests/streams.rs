//! What a peer may open besides the one message stream, over real QUIC on loopback (security
//! review L2): no second bidirectional stream (so nothing is buffered on a stream nobody
//! accepts) and no datagrams, while the first stream keeps working.

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

use std::time::Duration;

use common::{
    Event, Federation, SERVER_NAME, bounded, custom_client, exchange, party, spawn_echo_server,
};
use fedprof_protocol::{ALPN, FrameLimit, Role};
use fedprof_transport::{ClientLimits, ServerLimits, client_endpoint, connect};

/// Long enough for a stream credit to arrive on loopback many times over.
const NO_CREDIT_WAIT: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_stream_gets_no_credit_and_the_first_keeps_working() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, mut echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        let node = fed.node("branch-a");
        let client = client_endpoint(&node, &ClientLimits::default(), server.addr).unwrap();
        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        let mut stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        let me = party(Role::Node, "branch-a");
        exchange(&mut stream, 0, &me).await;
        assert!(matches!(echo.next().await, Event::Received(..)));

        // The server grants one bidirectional stream: a second one cannot even be opened, so
        // no byte of it is ever sent, let alone buffered by the server.
        let second = tokio::time::timeout(NO_CREDIT_WAIT, peer.quic().open_bi()).await;
        assert!(second.is_err(), "the server granted a second stream");
        assert!(
            peer.quic().open_uni().now_or_never_is_pending(),
            "the server granted a unidirectional stream"
        );

        // The first stream is untouched by the attempt.
        exchange(&mut stream, 1, &me).await;
        peer.close(0, "done");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_side_accepts_datagrams() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, _echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        // A client with quinn's defaults, which would send datagrams if the server took them.
        let issued = fed.issue(&party(Role::Node, "branch-a"), &[]);
        let eager = custom_client(&fed.ca.cert_pem(), Some(&issued), ALPN);
        let peer = connect(&eager, server.addr, SERVER_NAME).await.unwrap();
        assert_eq!(peer.quic().max_datagram_size(), None);
        assert!(matches!(
            peer.quic().send_datagram(vec![0u8; 16].into()),
            Err(quinn::SendDatagramError::UnsupportedByPeer)
        ));
        peer.close(0, "done");

        // Our own clients take none either.
        let client =
            client_endpoint(&fed.node("branch-b"), &ClientLimits::default(), server.addr).unwrap();
        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        assert!(matches!(
            peer.quic().send_datagram(vec![0u8; 16].into()),
            Err(quinn::SendDatagramError::Disabled)
        ));
        peer.close(0, "done");
        server.stop().await;
    })
    .await;
}

/// Polls a future once: whether it is still pending (a stream open without credit is).
trait PendingOnce {
    fn now_or_never_is_pending(self) -> bool;
}

impl<F: std::future::Future> PendingOnce for F {
    fn now_or_never_is_pending(self) -> bool {
        let mut fut = std::pin::pin!(self);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        fut.as_mut().poll(&mut cx).is_pending()
    }
}
