//! Shared fixtures for the transport integration tests: an in-memory federation (CA and
//! certificates, nothing on disk), a server running [`serve`] on 127.0.0.1:0 with an echoing
//! handler that reports what it saw, hand-built TLS clients, and helpers to read the failure a
//! refused client observes.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fedprof_protocol::frame::encode_frame;
use fedprof_protocol::{
    Body, Envelope, FrameDecoder, FrameLimit, Header, JobId, PartyId, PartyName, Register,
    Registered, Role, RoundId,
};
use fedprof_transport::{
    Credentials, FederationCa, IssuedParty, MessageStream, PeerConnection, ServerLimits,
    ShutdownSignal, ShutdownTrigger, StreamError, TransportError, Validity, close_code, connect,
    serve, server_endpoint,
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound on any single test; nothing here should take more than a few seconds.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The name clients dial; coordinator certificates carry it as an IP SAN.
pub const SERVER_NAME: &str = "127.0.0.1";

/// Runs `fut`, failing the test (instead of hanging) if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// 127.0.0.1 port 0: the OS picks a free port.
pub fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

pub fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

/// A federation CA held in memory.
#[derive(Debug)]
pub struct Federation {
    pub name: String,
    pub ca: FederationCa,
}

impl Federation {
    pub fn new(name: &str) -> Self {
        let ca = FederationCa::generate(name, validity()).unwrap();
        Federation {
            name: name.to_owned(),
            ca,
        }
    }

    pub fn issue(&self, party: &PartyId, server_names: &[&str]) -> IssuedParty {
        let names: Vec<String> = server_names.iter().map(|s| (*s).to_owned()).collect();
        self.ca.issue(party, &names, validity()).unwrap()
    }

    /// Credentials for `party`, trusting this federation's CA.
    pub fn credentials(&self, party: &PartyId, server_names: &[&str]) -> Credentials {
        credentials(&self.ca.cert_pem(), &self.issue(party, server_names))
    }

    /// The coordinator `coord`, reachable as [`SERVER_NAME`].
    pub fn coordinator(&self) -> Credentials {
        self.credentials(&party(Role::Coordinator, "coord"), &[SERVER_NAME])
    }

    pub fn node(&self, name: &str) -> Credentials {
        self.credentials(&party(Role::Node, name), &[])
    }
}

pub fn validity() -> Validity {
    Validity::days_from(OffsetDateTime::now_utc(), 1)
}

/// Credentials presenting `issued` while trusting the CA in `ca_pem` (which need not be the CA
/// that issued it).
pub fn credentials(ca_pem: &str, issued: &IssuedParty) -> Credentials {
    Credentials::from_pem(
        ca_pem.as_bytes(),
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
    )
    .unwrap()
}

/// A running [`serve`] loop.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub trigger: ShutdownTrigger,
    pub task: JoinHandle<()>,
}

pub fn spawn_server<H, F>(creds: &Credentials, limits: ServerLimits, handler: H) -> TestServer
where
    H: Fn(PeerConnection, ShutdownSignal) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let endpoint = server_endpoint(loopback(), creds, &limits).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (trigger, signal) = ShutdownSignal::new();
    let task = tokio::spawn(serve(endpoint, limits, signal, handler));
    TestServer {
        addr,
        trigger,
        task,
    }
}

impl TestServer {
    /// Triggers shutdown and waits for [`serve`] to return. Tests close their clients first, so
    /// this must not take anything like the default 5 s grace.
    pub async fn stop(self) {
        let started = Instant::now();
        self.trigger.trigger();
        self.task.await.unwrap();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "serve took {took:?} to shut down"
        );
    }
}

/// What the echo handler saw.
#[derive(Debug)]
pub enum Event {
    Received(PartyId, Envelope),
    Failed(PartyId, StreamError),
    Finished(PartyId),
}

/// The echo server's observations: how often the handler ran, and what it saw.
#[derive(Debug)]
pub struct Echo {
    pub calls: Arc<AtomicUsize>,
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl Echo {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub async fn next(&mut self) -> Event {
        self.events.recv().await.unwrap()
    }
}

/// A server whose handler accepts one message stream (with `limits.max_frame`), answers every
/// envelope with `Registered { party: <peer from the certificate> }`, and on a stream error
/// sends the error's code to the peer (as a real coordinator would) and stops.
pub fn spawn_echo_server(creds: &Credentials, limits: ServerLimits) -> (TestServer, Echo) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, events) = mpsc::unbounded_channel();
    let handler = {
        let calls = calls.clone();
        move |peer: PeerConnection, _signal: ShutdownSignal| {
            calls.fetch_add(1, Ordering::SeqCst);
            echo(peer, limits.max_frame, tx.clone())
        }
    };
    (spawn_server(creds, limits, handler), Echo { calls, events })
}

async fn echo(peer: PeerConnection, limit: FrameLimit, tx: mpsc::UnboundedSender<Event>) {
    let who = peer.peer().clone();
    let Ok(stream) = peer.accept_stream(limit).await else {
        return;
    };
    let (mut writer, mut reader) = stream.split();
    loop {
        match reader.recv().await {
            Ok(Some(envelope)) => {
                let _ = tx.send(Event::Received(who.clone(), envelope));
                let reply = Body::Registered(Registered { party: who.clone() });
                if writer.send(JobId::NONE, RoundId(0), reply).await.is_err() {
                    break;
                }
            }
            Ok(None) => {
                let _ = tx.send(Event::Finished(who.clone()));
                writer.finish();
                break;
            }
            Err(e) => {
                let code = e.code();
                let detail = e.to_string();
                let _ = tx.send(Event::Failed(who.clone(), e));
                if let Some(code) = code {
                    writer.send_error(code, detail).await;
                }
                reader.stop(close_code::PROTOCOL_ERROR);
                break;
            }
        }
    }
    // Dropping the connection would abort the reply in flight: wait for the client to close.
    peer.closed().await;
}

/// Sends `register()` on `stream` and checks the echo server's reply: numbered `seq` and
/// naming `who` (the party the server authenticated).
pub async fn exchange(stream: &mut MessageStream, seq: u64, who: &PartyId) {
    stream
        .writer
        .send(JobId::NONE, RoundId(0), register())
        .await
        .unwrap();
    let reply = stream.reader.recv().await.unwrap().unwrap();
    assert_eq!(reply.header.seq, seq);
    assert_eq!(
        reply.body,
        Body::Registered(Registered { party: who.clone() })
    );
}

pub fn register() -> Body {
    Body::Register(Register {
        software: "fedprof-test".into(),
    })
}

/// One frame as a well-behaved sender would write it, but with a sequence number of our choice.
pub fn raw_frame(seq: u64, body: Body) -> Vec<u8> {
    let envelope = Envelope {
        header: Header {
            job: JobId::NONE,
            round: RoundId(0),
            seq,
        },
        body,
    };
    encode_frame(
        &fedprof_protocol::encode(&envelope).unwrap(),
        FrameLimit::DEFAULT,
    )
    .unwrap()
}

/// Splits everything the server sent on a raw stream into envelopes; fails on leftover bytes.
pub fn parse_frames(mut bytes: &[u8]) -> Vec<Envelope> {
    let mut decoder = FrameDecoder::new(FrameLimit::DEFAULT);
    let mut out = Vec::new();
    while !bytes.is_empty() {
        bytes = decoder.push(bytes).unwrap();
        while let Some(payload) = decoder.next_frame().unwrap() {
            out.push(fedprof_protocol::decode(&payload).unwrap());
        }
    }
    assert_eq!(
        decoder.next_frame().unwrap(),
        None,
        "incomplete frame at the end"
    );
    out
}

/// A TLS 1.3, *ring*-only QUIC client that trusts `ca_pem`, presents `auth` (or no
/// certificate at all) and offers `alpn`: for building clients that `client_endpoint` cannot.
pub fn custom_client(ca_pem: &str, auth: Option<&IssuedParty>, alpn: &[u8]) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    let mut tls = match auth {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let chain = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

/// Dials `addr` and tries one message exchange, expecting the server to refuse the TLS
/// handshake; returns the connection error the client saw, wherever it surfaced. In TLS 1.3
/// the client finishes its side of the handshake first, so a refusal of the *client's*
/// certificate may only show at the first stream read or write.
pub async fn refusal(endpoint: &quinn::Endpoint, addr: SocketAddr) -> quinn::ConnectionError {
    let peer = match connect(endpoint, addr, SERVER_NAME).await {
        Ok(peer) => peer,
        Err(TransportError::Connection(e)) => return e,
        Err(e) => panic!("connect failed, but not with a connection error: {e:?}"),
    };
    let mut stream = match peer.open_stream(FrameLimit::DEFAULT).await {
        Ok(stream) => stream,
        Err(TransportError::Connection(e)) => return e,
        Err(e) => panic!("open_stream failed, but not with a connection error: {e:?}"),
    };
    match stream
        .writer
        .send(JobId::NONE, RoundId(0), register())
        .await
    {
        Ok(()) => {}
        Err(StreamError::Write(quinn::WriteError::ConnectionLost(e))) => return e,
        Err(e) => panic!("send failed, but not with a lost connection: {e:?}"),
    }
    match stream.reader.recv().await {
        Err(StreamError::Read(quinn::ReadError::ConnectionLost(e))) => e,
        other => panic!("the server did not refuse the connection: {other:?}"),
    }
}

/// The TLS alert a connection failed with, whether this side sent it (a local handshake error)
/// or the peer did (a CONNECTION_CLOSE with a QUIC crypto error code, 0x100 + alert).
pub fn tls_alert(e: &quinn::ConnectionError) -> Option<rustls::AlertDescription> {
    let code = match e {
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
        quinn::ConnectionError::TransportError(err) => err.code,
        _ => return None,
    };
    let alert = u64::from(code)
        .checked_sub(0x100)
        .and_then(|a| u8::try_from(a).ok())?;
    Some(rustls::AlertDescription::from(alert))
}
