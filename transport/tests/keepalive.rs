//! A coordinator whose idle timeout is shorter than a client's keeps the client's connection
//! alive while nobody has anything to say (found by the kill -9 harness, tests/faults/).
//!
//! QUIC closes a connection after the smaller of both sides' idle timeouts. Clients (nodes,
//! analysts) send keep-alives at a third of their *own* timeout; the analyst's is the default
//! 30 s, so with a coordinator configured at `idle_timeout_secs = 5` an analyst waiting for a
//! job that pauses for a dead node (5 s until its connection is declared idle) lost its
//! connection, and the release it had asked for was recorded and published to nobody. The
//! server now sends keep-alives at a third of its own timeout too, so the shorter timeout of
//! the two always has a keep-alive under it; a dead peer is still closed (keep-alives are not
//! acknowledged by a dead peer, and QUIC restarts its idle timer only on what it receives).

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

use common::{Event, Federation, SERVER_NAME, bounded, register, spawn_echo_server};
use fedprof_protocol::{FrameLimit, JobId, RoundId};
use fedprof_transport::{ClientLimits, ServerLimits, client_endpoint, close_code, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_longer_idle_timeout_survives_a_silent_spell_longer_than_the_servers() {
    bounded(async {
        let fed = Federation::new("acme");
        let limits = ServerLimits {
            idle_timeout: Duration::from_secs(1),
            ..ServerLimits::default()
        };
        let (server, mut echo) = spawn_echo_server(&fed.coordinator(), limits);
        // The analyst's limits: the default 30 s, keep-alives every 10 s.
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();
        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        let mut stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        stream
            .writer
            .send(JobId(1), RoundId(0), register())
            .await
            .unwrap();
        assert!(matches!(echo.next().await, Event::Received(..)));
        stream.reader.recv().await.unwrap().unwrap();

        // Three of the server's idle timeouts without a message either way.
        tokio::time::sleep(Duration::from_secs(3)).await;

        stream
            .writer
            .send(JobId(1), RoundId(0), register())
            .await
            .expect("the connection is still open after the silent spell");
        let reply = stream.reader.recv().await.expect("a reply, not a timeout");
        assert!(reply.is_some(), "the server answered on the same stream");
        peer.close(close_code::DONE, "done");
        server.stop().await;
    })
    .await;
}
