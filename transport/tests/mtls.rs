//! Loopback tests of the QUIC + mutual-TLS transport: who gets in, who is refused and where,
//! framing and sequence violations on a live stream, the connection limit and graceful
//! shutdown. Every server binds 127.0.0.1:0 and every test is bounded by
//! [`common::TEST_TIMEOUT`], so a regression fails instead of hanging.

// Test code: unwrap/expect/panic are the assertions; the helpers are `pub` for the module
// boundary only and carry no API documentation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    Event, Federation, SERVER_NAME, bounded, credentials, custom_client, party, raw_frame, refusal,
    register, spawn_echo_server, spawn_server, tls_alert,
};
use fedprof_protocol::{
    ALPN, Body, ErrorCode, ErrorFrame, FrameError, FrameLimit, JobId, Registered, Role, RoundId,
    SeqError,
};
use fedprof_transport::{
    ClientLimits, IssuedParty, PeerConnection, ServerLimits, ShutdownSignal, StreamError,
    TransportError, client_endpoint, close_code, connect,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::AlertDescription;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_valid_certificate_exchanges_messages() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, mut echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        let node = fed.node("branch-a");
        let client = client_endpoint(&node, &ClientLimits::default(), server.addr).unwrap();

        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        assert_eq!(peer.peer(), &party(Role::Coordinator, "coord"));
        let mut stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        stream
            .writer
            .send(JobId(7), RoundId(2), register())
            .await
            .unwrap();

        // The server handler sees the identity from the certificate, and the message as sent.
        let Event::Received(who, envelope) = echo.next().await else {
            panic!("no message")
        };
        assert_eq!(who, party(Role::Node, "branch-a"));
        assert_eq!(envelope.header.job, JobId(7));
        assert_eq!(envelope.header.round, RoundId(2));
        assert_eq!(envelope.header.seq, 0);
        assert_eq!(envelope.body, register());

        // The reply names the party the server authenticated.
        let reply = stream.reader.recv().await.unwrap().unwrap();
        assert_eq!(reply.header.seq, 0);
        assert_eq!(
            reply.body,
            Body::Registered(Registered {
                party: node.identity().clone()
            })
        );

        // A second exchange is numbered 1 on both sides.
        stream
            .writer
            .send(JobId(7), RoundId(2), register())
            .await
            .unwrap();
        assert!(matches!(echo.next().await, Event::Received(_, e) if e.header.seq == 1));
        assert_eq!(stream.reader.recv().await.unwrap().unwrap().header.seq, 1);

        stream.writer.finish();
        assert!(matches!(echo.next().await, Event::Finished(who) if who == *node.identity()));
        assert_eq!(
            stream.reader.recv().await.unwrap(),
            None,
            "server finished its side"
        );
        assert_eq!(echo.calls(), 1);
        peer.close(close_code::DONE, "done");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_refused() {
    bounded(async {
        let fed = Federation::new("acme");
        // A look-alike CA with the same name: only the signature tells them apart.
        let impostor_ca = Federation::new("acme");
        let (server, echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        // Trusts the real CA (so the client accepts the server), presents the impostor's cert.
        let impostor = impostor_ca.issue(&party(Role::Node, "branch-a"), &[]);
        let creds = credentials(&fed.ca.cert_pem(), &impostor);
        let client = client_endpoint(&creds, &ClientLimits::default(), server.addr).unwrap();

        let err = refusal(&client, server.addr).await;
        assert_eq!(
            tls_alert(&err),
            Some(AlertDescription::DecryptError),
            "{err}"
        );
        assert_eq!(
            echo.calls(),
            0,
            "the handler must never see an unauthenticated peer"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        let client = custom_client(&fed.ca.cert_pem(), None, ALPN);

        let err = refusal(&client, server.addr).await;
        assert_eq!(
            tls_alert(&err),
            Some(AlertDescription::CertificateRequired),
            "{err}"
        );
        assert_eq!(echo.calls(), 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_wrong_alpn_is_refused() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        let node = fed.issue(&party(Role::Node, "branch-a"), &[]);
        let client = custom_client(&fed.ca.cert_pem(), Some(&node), b"fedprof/999");

        // The server refuses the ClientHello, so this fails at connect.
        let err = match connect(&client, server.addr, SERVER_NAME).await {
            Err(TransportError::Connection(e)) => e,
            other => panic!("expected a refused handshake, got {other:?}"),
        };
        assert_eq!(
            tls_alert(&err),
            Some(AlertDescription::NoApplicationProtocol),
            "{err}"
        );
        assert_eq!(echo.calls(), 0);

        // Control: the same certificate with the right ALPN gets in.
        let client = custom_client(&fed.ca.cert_pem(), Some(&node), ALPN);
        connect(&client, server.addr, SERVER_NAME).await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_from_another_ca_is_refused_by_the_client() {
    bounded(async {
        let fed = Federation::new("acme");
        let impostor_ca = Federation::new("acme");
        let impostor = impostor_ca.issue(&party(Role::Coordinator, "coord"), &[SERVER_NAME]);
        let (server, echo) = spawn_echo_server(
            &credentials(&fed.ca.cert_pem(), &impostor),
            ServerLimits::default(),
        );
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();

        let err = match connect(&client, server.addr, SERVER_NAME).await {
            Err(TransportError::Connection(e)) => e,
            other => panic!("expected a refused handshake, got {other:?}"),
        };
        assert_eq!(
            tls_alert(&err),
            Some(AlertDescription::DecryptError),
            "{err}"
        );
        assert_eq!(echo.calls(), 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificate_cannot_serve() {
    bounded(async {
        let fed = Federation::new("acme");
        // What the CA issues to a node: client-auth purpose only, whatever names it carries.
        let rogue = fed.credentials(&party(Role::Node, "rogue"), &[SERVER_NAME]);
        let (server, echo) = spawn_echo_server(&rogue, ServerLimits::default());
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();

        let err = match connect(&client, server.addr, SERVER_NAME).await {
            Err(TransportError::Connection(e)) => e,
            other => panic!("expected a refused handshake, got {other:?}"),
        };
        // rustls refuses a server certificate without the server-auth purpose.
        assert_eq!(
            tls_alert(&err),
            Some(AlertDescription::UnsupportedCertificate),
            "{err}"
        );
        assert_eq!(echo.calls(), 0);
        server.stop().await;
    })
    .await;
}

/// A certificate the federation CA never issues: a node identity with the server-auth purpose
/// and the coordinator's address, signed with the real CA key. Only the role check in
/// `connect` stands between it and a node.
fn forge_serving_node(fed: &Federation, name: &str) -> IssuedParty {
    let mut ca_params = CertificateParams::default();
    // Must equal the CA's subject (see `FederationCa::generate`) for chain building to find it.
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("fedprof CA {}", fed.name));
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, fed.name.as_str());
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = Issuer::new(ca_params, KeyPair::from_pem(&fed.ca.key_pem()).unwrap());

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![
        SanType::URI(format!("fedprof://node/{name}").try_into().unwrap()),
        SanType::IpAddress(SERVER_NAME.parse().unwrap()),
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    IssuedParty {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_is_not_a_coordinator_is_refused_by_connect() {
    bounded(async {
        let fed = Federation::new("acme");
        let forged = credentials(&fed.ca.cert_pem(), &forge_serving_node(&fed, "rogue"));
        let (server, _echo) = spawn_echo_server(&forged, ServerLimits::default());
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();

        // TLS accepts it (valid chain, right purpose, right address); the role check does not.
        match connect(&client, server.addr, SERVER_NAME).await {
            Err(TransportError::WrongPeerRole {
                expected: Role::Coordinator,
                got,
            }) => {
                assert_eq!(got, party(Role::Node, "rogue"));
            }
            other => panic!("expected WrongPeerRole, got {other:?}"),
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_is_refused_and_other_clients_keep_working() {
    bounded(async {
        let fed = Federation::new("acme");
        let limit = FrameLimit::new(4096).unwrap();
        let limits = ServerLimits {
            max_frame: limit,
            ..ServerLimits::default()
        };
        let (server, mut echo) = spawn_echo_server(&fed.coordinator(), limits);
        let (bad, good) = (fed.node("bad"), fed.node("good"));
        let bad_ep = client_endpoint(&bad, &ClientLimits::default(), server.addr).unwrap();
        let good_ep = client_endpoint(&good, &ClientLimits::default(), server.addr).unwrap();

        // The good client is connected and mid-session when the bad one misbehaves.
        let good_peer = connect(&good_ep, server.addr, SERVER_NAME).await.unwrap();
        let mut good_stream = good_peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        good_stream
            .writer
            .send(JobId::NONE, RoundId(0), register())
            .await
            .unwrap();
        assert!(matches!(good_stream.reader.recv().await, Ok(Some(_))));
        assert!(matches!(echo.next().await, Event::Received(..)));

        // A length prefix one byte above the server's limit, and no payload at all: the server
        // must refuse on the prefix alone, without waiting for (or allocating) the payload.
        let bad_peer = connect(&bad_ep, server.addr, SERVER_NAME).await.unwrap();
        let (mut send, mut recv) = bad_peer.quic().open_bi().await.unwrap();
        send.write_all(&(limit.bytes() + 1).to_be_bytes())
            .await
            .unwrap();

        match echo.next().await {
            Event::Failed(who, e) => {
                assert_eq!(who, party(Role::Node, "bad"));
                assert_eq!(e.code(), Some(ErrorCode::FrameTooLarge));
                assert!(
                    matches!(
                        e,
                        StreamError::Frame(FrameError::TooLarge {
                            len: 4097,
                            limit: 4096
                        })
                    ),
                    "{e:?}"
                );
            }
            other => panic!("expected a frame error, got {other:?}"),
        }
        let replies = common::parse_frames(&recv.read_to_end(64 << 10).await.unwrap());
        assert_eq!(replies.len(), 1, "{replies:?}");
        let Body::Error(ErrorFrame { code, .. }) = &replies[0].body else {
            panic!("expected an Error frame, got {:?}", replies[0]);
        };
        assert_eq!(*code, ErrorCode::FrameTooLarge);

        // The well-behaved client is unaffected.
        common::exchange(&mut good_stream, 1, good.identity()).await;
        assert!(matches!(echo.next().await, Event::Received(who, _) if who == *good.identity()));
        assert_eq!(echo.calls(), 2);
        bad_peer.close(close_code::DONE, "done");
        good_peer.close(close_code::DONE, "done");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_sequence_number_is_refused() {
    bounded(async {
        let fed = Federation::new("acme");
        let (server, mut echo) = spawn_echo_server(&fed.coordinator(), ServerLimits::default());
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();
        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        let (mut send, mut recv) = peer.quic().open_bi().await.unwrap();
        let mut bytes = raw_frame(0, register());
        bytes.extend(raw_frame(0, register()));
        send.write_all(&bytes).await.unwrap();

        assert!(matches!(echo.next().await, Event::Received(_, e) if e.header.seq == 0));
        match echo.next().await {
            Event::Failed(_, e) => {
                assert_eq!(e.code(), Some(ErrorCode::OutOfSequence));
                assert!(
                    matches!(
                        e,
                        StreamError::Sequence(SeqError {
                            expected: 1,
                            got: 0
                        })
                    ),
                    "{e:?}"
                );
            }
            other => panic!("expected a sequence error, got {other:?}"),
        }
        // The first message was answered; the replay got an OutOfSequence error.
        let replies = common::parse_frames(&recv.read_to_end(64 << 10).await.unwrap());
        let bodies: Vec<_> = replies
            .iter()
            .map(|e| (e.header.seq, e.body.kind()))
            .collect();
        assert_eq!(bodies, [(0, "registered"), (1, "error")]);
        assert!(matches!(
            &replies[1].body,
            Body::Error(ErrorFrame {
                code: ErrorCode::OutOfSequence,
                ..
            })
        ));
        peer.close(close_code::DONE, "done");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_the_second_client() {
    bounded(async {
        let fed = Federation::new("acme");
        let limits = ServerLimits {
            admission: fedprof_transport::AdmissionLimits {
                max_connections: 1,
                ..Default::default()
            },
            ..ServerLimits::default()
        };
        let (server, mut echo) = spawn_echo_server(&fed.coordinator(), limits);
        let first =
            client_endpoint(&fed.node("first"), &ClientLimits::default(), server.addr).unwrap();
        let second =
            client_endpoint(&fed.node("second"), &ClientLimits::default(), server.addr).unwrap();

        let first_peer = connect(&first, server.addr, SERVER_NAME).await.unwrap();
        let mut stream = first_peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        stream
            .writer
            .send(JobId::NONE, RoundId(0), register())
            .await
            .unwrap();
        assert!(matches!(stream.reader.recv().await, Ok(Some(_))));
        assert!(matches!(echo.next().await, Event::Received(..)));

        match connect(&second, server.addr, SERVER_NAME).await {
            Err(TransportError::Connection(quinn::ConnectionError::ConnectionClosed(close))) => {
                assert_eq!(
                    close.error_code,
                    quinn::TransportErrorCode::CONNECTION_REFUSED
                );
            }
            other => panic!("expected the second connection to be refused, got {other:?}"),
        }
        assert_eq!(echo.calls(), 1);

        // Once the first client leaves, its slot is released.
        first_peer.close(close_code::DONE, "done");
        drop(stream);
        let second_peer = loop {
            match connect(&second, server.addr, SERVER_NAME).await {
                Ok(peer) => break peer,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let mut stream = second_peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        stream
            .writer
            .send(JobId::NONE, RoundId(0), register())
            .await
            .unwrap();
        assert!(matches!(stream.reader.recv().await, Ok(Some(_))));
        assert_eq!(echo.calls(), 2);
        second_peer.close(close_code::DONE, "done");
        server.stop().await;
    })
    .await;
}

/// A handler that takes one message, reports it, then waits for shutdown (if `cooperative`)
/// and says `ShuttingDown`, or ignores the signal and never finishes.
fn shutdown_handler(
    cooperative: bool,
    registered: mpsc::UnboundedSender<()>,
    observed: Arc<AtomicBool>,
) -> impl Fn(PeerConnection, ShutdownSignal) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
+ Send
+ Sync
+ 'static {
    move |peer, mut signal| {
        let (registered, observed) = (registered.clone(), observed.clone());
        Box::pin(async move {
            let Ok(mut stream) = peer.accept_stream(FrameLimit::DEFAULT).await else {
                return;
            };
            if !matches!(stream.reader.recv().await, Ok(Some(_))) {
                return;
            }
            let _ = registered.send(());
            if !cooperative {
                std::future::pending::<()>().await;
            }
            signal.wait().await;
            observed.store(true, Ordering::SeqCst);
            stream
                .writer
                .send_error(ErrorCode::ShuttingDown, "coordinator shutting down")
                .await;
            peer.closed().await;
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_handlers_say_goodbye() {
    bounded(async {
        let fed = Federation::new("acme");
        let grace = Duration::from_secs(3);
        let limits = ServerLimits {
            shutdown_grace: grace,
            ..ServerLimits::default()
        };
        let (registered_tx, mut registered) = mpsc::unbounded_channel();
        let observed = Arc::new(AtomicBool::new(false));
        let server = spawn_server(
            &fed.coordinator(),
            limits,
            shutdown_handler(true, registered_tx, observed.clone()),
        );
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();
        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        let mut stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        stream
            .writer
            .send(JobId::NONE, RoundId(0), register())
            .await
            .unwrap();
        registered.recv().await.unwrap();
        assert!(!observed.load(Ordering::SeqCst));

        let started = Instant::now();
        server.trigger.trigger();
        let goodbye = stream.reader.recv().await.unwrap().unwrap();
        assert!(
            matches!(
                goodbye.body,
                Body::Error(ErrorFrame {
                    code: ErrorCode::ShuttingDown,
                    ..
                })
            ),
            "{goodbye:?}"
        );
        assert_eq!(
            stream.reader.recv().await.unwrap(),
            None,
            "stream finished after the error"
        );
        assert!(
            observed.load(Ordering::SeqCst),
            "the handler saw the signal"
        );
        peer.close(close_code::DONE, "bye");

        // The handler finished on its own, so `serve` returns without using up the grace.
        server.task.await.unwrap();
        let took = started.elapsed();
        assert!(took < grace, "serve took {took:?}, grace was {grace:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_handlers_that_overstay_the_grace() {
    bounded(async {
        let fed = Federation::new("acme");
        let grace = Duration::from_millis(500);
        let limits = ServerLimits {
            shutdown_grace: grace,
            ..ServerLimits::default()
        };
        let (registered_tx, mut registered) = mpsc::unbounded_channel();
        let observed = Arc::new(AtomicBool::new(false));
        let server = spawn_server(
            &fed.coordinator(),
            limits,
            shutdown_handler(false, registered_tx, observed.clone()),
        );
        let client =
            client_endpoint(&fed.node("branch-a"), &ClientLimits::default(), server.addr).unwrap();
        let peer = connect(&client, server.addr, SERVER_NAME).await.unwrap();
        let mut stream = peer.open_stream(FrameLimit::DEFAULT).await.unwrap();
        stream
            .writer
            .send(JobId::NONE, RoundId(0), register())
            .await
            .unwrap();
        registered.recv().await.unwrap();

        let started = Instant::now();
        server.trigger.trigger();
        server.task.await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= grace,
            "serve returned after {took:?}, before the grace of {grace:?}"
        );
        assert!(took < grace + Duration::from_secs(3), "serve took {took:?}");
        assert!(!observed.load(Ordering::SeqCst));

        // The client is told why.
        match peer.closed().await {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, close_code::SHUTTING_DOWN.into());
            }
            other => panic!("expected an application close, got {other:?}"),
        }
    })
    .await;
}
