//! Loopback benchmarks of the QUIC + mutual-TLS transport; figures in `benches/RESULTS.md`.
//!
//! - `transport/handshake/connect`: a new connection with mutual TLS from a reused client
//!   endpoint, until `connect` returns (server certificate verified, coordinator role checked).
//! - `transport/handshake/connect_first_reply`: the same plus one small message and its reply.
//!   In TLS 1.3 the client finishes first, so only this variant also waits for the server's
//!   verification of the client certificate.
//! - `transport/submit_8MiB`: one `Body::Submit` of 2^20 ring elements (8 MiB of u64) from node
//!   to coordinator on an open stream: encode, frame, send, read with `MessageReader` (length
//!   check, exact reads, decode, sequence check), and a small ack back. Values are uniform, as
//!   masked contributions are, so postcard's varints take about 10 bytes each on the wire.
//!
//! Client and server share one tokio runtime and one process; on a 2-vCPU machine they compete
//! for about one core.

// Bench code: a failed setup step or a wrong ack must abort the run; criterion's macros
// generate undocumented public items.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fedprof_protocol::{
    Body, Contribution, Envelope, ErrorCode, FrameLimit, Header, JobId, PartyId, PartyName, Role,
    RoundId,
};
use fedprof_transport::{
    ClientLimits, Credentials, FederationCa, PeerConnection, ServerLimits, ShutdownSignal,
    TransportError, Validity, client_endpoint, close_code, connect, serve, server_endpoint,
};
use tokio::runtime::Runtime;

const SERVER_NAME: &str = "127.0.0.1";
/// Ring elements per contribution: 2^20 u64 = 8 MiB.
const VALUES: usize = 1 << 20;

fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

/// A fresh in-memory federation: the coordinator's and one node's credentials.
fn federation() -> (Credentials, Credentials) {
    let validity = Validity::days_from(time::OffsetDateTime::now_utc(), 1);
    let ca = FederationCa::generate("bench", validity).unwrap();
    let creds = |p: PartyId, names: &[String]| {
        let issued = ca.issue(&p, names, validity).unwrap();
        Credentials::from_pem(
            ca.cert_pem().as_bytes(),
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .unwrap()
    };
    (
        creds(party(Role::Coordinator, "coord"), &[SERVER_NAME.to_owned()]),
        creds(party(Role::Node, "bench-node"), &[]),
    )
}

/// Server handler: acks every message with `Accept`, after checking that a `Submit` arrived
/// whole (so the bench cannot silently measure a broken path).
async fn ack_everything(peer: PeerConnection, limit: FrameLimit) {
    if let Ok(stream) = peer.accept_stream(limit).await {
        let (mut writer, mut reader) = stream.split();
        while let Ok(Some(envelope)) = reader.recv().await {
            let Header { job, round, .. } = envelope.header;
            match envelope.body {
                Body::Submit(c) if c.values.len() != VALUES => {
                    writer
                        .send_error(ErrorCode::BadContribution, "wrong length")
                        .await;
                    break;
                }
                _ => {
                    if writer.send(job, round, Body::Accept).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    peer.closed().await;
}

/// Uniform u64s from a fixed seed (splitmix64), standing in for masked ring elements.
fn uniform_values(n: usize, mut seed: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

fn transport(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let limit = FrameLimit::new(32 << 20).unwrap();
    let (coordinator, node) = federation();
    let limits = ServerLimits {
        max_frame: limit,
        ..ServerLimits::default()
    };
    let client_limits = ClientLimits {
        max_frame: limit,
        ..ClientLimits::default()
    };

    let (addr, client, trigger, server) = rt.block_on(async {
        let bind: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let endpoint = server_endpoint(bind, &coordinator, &limits).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let (trigger, signal) = ShutdownSignal::new();
        let handler = move |peer, _signal| ack_everything(peer, limit);
        let server = tokio::spawn(serve(endpoint, limits, signal, handler));
        let client = client_endpoint(&node, &client_limits, addr).unwrap();
        (addr, client, trigger, server)
    });

    // Helpers take this instead of the endpoint, so the bench only names fedprof crates.
    let dial = || connect(&client, addr, SERVER_NAME);
    handshake(c, &rt, &dial);
    submit(c, &rt, &dial, limit);

    trigger.trigger();
    rt.block_on(async {
        server.await.unwrap();
        client.wait_idle().await;
    });
}

fn handshake<F>(c: &mut Criterion, rt: &Runtime, dial: &impl Fn() -> F)
where
    F: Future<Output = Result<PeerConnection, TransportError>>,
{
    let mut group = c.benchmark_group("transport/handshake");
    group.bench_function("connect", |b| {
        b.iter(|| {
            rt.block_on(async {
                let peer = dial().await.unwrap();
                peer.close(close_code::DONE, "done");
            });
        });
    });
    group.bench_function("connect_first_reply", |b| {
        b.iter(|| {
            rt.block_on(async {
                let peer = dial().await.unwrap();
                let mut stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
                stream
                    .writer
                    .send(JobId::NONE, RoundId(0), Body::Accept)
                    .await
                    .unwrap();
                let reply = stream.reader.recv().await.unwrap().unwrap();
                assert_eq!(reply.body, Body::Accept);
                peer.close(close_code::DONE, "done");
            });
        });
    });
    group.finish();
}

fn submit<F>(c: &mut Criterion, rt: &Runtime, dial: &impl Fn() -> F, limit: FrameLimit)
where
    F: Future<Output = Result<PeerConnection, TransportError>>,
{
    let values = uniform_values(VALUES, 0x5eed);
    let wire = fedprof_protocol::encode(&Envelope {
        header: Header {
            job: JobId(1),
            round: RoundId(0),
            seq: 0,
        },
        body: Body::Submit(Contribution {
            values: values.clone(),
        }),
    })
    .unwrap()
    .len();
    eprintln!(
        "submit_8MiB: {} values, {wire} bytes per frame on the wire",
        values.len()
    );

    let (peer, mut stream) = rt.block_on(async {
        let peer = dial().await.unwrap();
        let stream = peer.open_stream(limit).await.unwrap();
        (peer, stream)
    });
    let mut group = c.benchmark_group("transport");
    group.throughput(Throughput::Bytes((VALUES * size_of::<u64>()) as u64));
    group.bench_function("submit_8MiB", |b| {
        b.iter_batched(
            // The copy of the vector is setup, not measured.
            || {
                Body::Submit(Contribution {
                    values: values.clone(),
                })
            },
            |body| {
                rt.block_on(async {
                    stream
                        .writer
                        .send(JobId(1), RoundId(0), body)
                        .await
                        .unwrap();
                    let ack = stream.reader.recv().await.unwrap().unwrap();
                    assert_eq!(ack.body, Body::Accept);
                });
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
    peer.close(close_code::DONE, "done");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = transport
}
criterion_main!(benches);
