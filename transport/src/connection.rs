//! An authenticated connection and the framed, sequence-checked message stream it carries.

use std::net::SocketAddr;

use fedprof_protocol::frame::{HEADER_LEN, parse_header};
use fedprof_protocol::{
    Body, DecodeError, Envelope, ErrorCode, ErrorFrame, FrameError, FrameLimit, Header, JobId,
    PartyId, Role, RoundId, SeqCounter, SeqError, SeqTracker,
};
use rustls_pki_types::CertificateDer;

use crate::TransportError;
use crate::pki::identity_from_cert;

/// Payload bytes reserved before any arrive; the buffer grows with what is received.
const INITIAL_PAYLOAD_CAPACITY: usize = 64 * 1024;

/// QUIC application close codes used by fedprof.
pub mod close_code {
    /// Normal end of a session.
    pub const DONE: u32 = 0;
    /// The peer broke the protocol (see the preceding `Error` frame).
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The closing side is shutting down.
    pub const SHUTTING_DOWN: u32 = 2;
    /// Another connection took over this party's session.
    pub const REPLACED: u32 = 3;
    /// The server refused the authenticated peer (its role, or its identity's share of
    /// connections; the reason says which).
    pub const REFUSED: u32 = 4;
}

/// A connection whose peer has been authenticated by mutual TLS. The peer's identity comes
/// from its verified certificate and nothing else.
#[derive(Debug, Clone)]
pub struct PeerConnection {
    conn: quinn::Connection,
    peer: PartyId,
    certificate: CertificateDer<'static>,
}

impl PeerConnection {
    /// Wraps an established connection, reading the peer's identity from its certificate.
    pub fn from_connection(conn: quinn::Connection) -> Result<Self, TransportError> {
        let certs = conn
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or(TransportError::NoPeerCertificate)?;
        let leaf = certs.first().ok_or(TransportError::NoPeerCertificate)?;
        let peer = identity_from_cert(leaf)?;
        Ok(PeerConnection {
            conn,
            peer,
            certificate: leaf.clone(),
        })
    }

    /// The authenticated peer.
    pub fn peer(&self) -> &PartyId {
        &self.peer
    }

    /// The peer's leaf certificate (DER), as verified in the handshake.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The underlying QUIC connection (for tests and diagnostics).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Opens the message stream (the dialling side does this once, then speaks first).
    pub async fn open_stream(&self, limit: FrameLimit) -> Result<MessageStream, TransportError> {
        let (send, recv) = self.conn.open_bi().await?;
        Ok(MessageStream::new(send, recv, limit))
    }

    /// Accepts the message stream the peer opened.
    pub async fn accept_stream(&self, limit: FrameLimit) -> Result<MessageStream, TransportError> {
        let (send, recv) = self.conn.accept_bi().await?;
        Ok(MessageStream::new(send, recv, limit))
    }

    /// Closes the connection with an application code and a short reason.
    pub fn close(&self, code: u32, reason: &str) {
        self.conn.close(code.into(), reason.as_bytes());
    }

    /// Waits until the connection is closed, by either side or by the idle timeout.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }
}

/// Dials `addr` with `endpoint` (from [`crate::client_endpoint`]), checks the server's
/// certificate against the federation CA and `server_name`, and requires that it names a
/// coordinator.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> Result<PeerConnection, TransportError> {
    let conn = endpoint.connect(addr, server_name)?.await?;
    let peer = PeerConnection::from_connection(conn)?;
    if peer.peer.role != Role::Coordinator {
        peer.close(close_code::PROTOCOL_ERROR, "not a coordinator");
        return Err(TransportError::WrongPeerRole {
            expected: Role::Coordinator,
            got: peer.peer,
        });
    }
    Ok(peer)
}

/// Errors on a message stream. [`StreamError::code`] gives the protocol error code to send the
/// peer before closing, where the peer is at fault.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The peer announced a frame above the limit; nothing was allocated for it.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A replayed, skipped or reordered message.
    #[error(transparent)]
    Sequence(#[from] SeqError),
    /// The peer finished its side in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// Reading failed (connection lost, reset by the peer, ...).
    #[error("receiving failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("sending failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] fedprof_protocol::EncodeError),
}

impl StreamError {
    /// The error code to report to the peer, if the peer caused this error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            StreamError::Frame(FrameError::TooLarge { .. }) => Some(ErrorCode::FrameTooLarge),
            StreamError::Decode(DecodeError::UnsupportedVersion { .. }) => {
                Some(ErrorCode::UnsupportedVersion)
            }
            StreamError::Decode(_) | StreamError::Truncated => Some(ErrorCode::Malformed),
            StreamError::Sequence(_) => Some(ErrorCode::OutOfSequence),
            StreamError::Frame(FrameError::InvalidLimit(_))
            | StreamError::Read(_)
            | StreamError::Write(_)
            | StreamError::Encode(_) => None,
        }
    }
}

/// A bidirectional stream of framed envelopes. Outgoing messages are numbered automatically;
/// incoming ones must be numbered 0, 1, 2, ... or are refused.
#[derive(Debug)]
pub struct MessageStream {
    /// Sending half.
    pub writer: MessageWriter,
    /// Receiving half.
    pub reader: MessageReader,
}

impl MessageStream {
    fn new(send: quinn::SendStream, recv: quinn::RecvStream, limit: FrameLimit) -> Self {
        MessageStream {
            writer: MessageWriter {
                send,
                limit,
                seq: SeqCounter::new(),
            },
            reader: MessageReader {
                recv,
                limit,
                seq: SeqTracker::new(),
            },
        }
    }

    /// Splits into halves that can live in different tasks.
    pub fn split(self) -> (MessageWriter, MessageReader) {
        (self.writer, self.reader)
    }
}

/// The sending half of a [`MessageStream`].
#[derive(Debug)]
pub struct MessageWriter {
    send: quinn::SendStream,
    limit: FrameLimit,
    seq: SeqCounter,
}

impl MessageWriter {
    /// Sends `body` about `job`/`round` with the next sequence number.
    pub async fn send(
        &mut self,
        job: JobId,
        round: RoundId,
        body: Body,
    ) -> Result<(), StreamError> {
        let envelope = Envelope {
            header: Header {
                job,
                round,
                seq: self.seq.next_seq(),
            },
            body,
        };
        let frame = fedprof_protocol::encode_framed(&envelope, self.limit)?;
        self.send.write_all(&frame).await?;
        Ok(())
    }

    /// Sends an `Error` frame and finishes the stream; the peer will read nothing after it.
    pub async fn send_error(&mut self, code: ErrorCode, detail: impl Into<String>) {
        let body = Body::Error(ErrorFrame {
            code,
            detail: detail.into(),
        });
        // Best effort: the peer may already be gone, and there is nothing more to tell it.
        let _ = self.send(JobId::NONE, RoundId(0), body).await;
        self.finish();
    }

    /// Finishes the sending side cleanly.
    pub fn finish(&mut self) {
        // Only fails if already finished or reset, which is the state asked for.
        let _ = self.send.finish();
    }

    /// Waits until the peer has received everything sent (or the stream was reset).
    pub async fn stopped(&mut self) {
        let _ = self.send.stopped().await;
    }
}

/// The receiving half of a [`MessageStream`].
#[derive(Debug)]
pub struct MessageReader {
    recv: quinn::RecvStream,
    limit: FrameLimit,
    seq: SeqTracker,
}

impl MessageReader {
    /// Receives the next envelope; `Ok(None)` when the peer finished its side cleanly between
    /// frames. Not cancel-safe: do not race it in `select!` against other work whose completion
    /// drops it; run it in its own task instead.
    pub async fn recv(&mut self) -> Result<Option<Envelope>, StreamError> {
        let mut header = [0u8; HEADER_LEN];
        match self.recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(StreamError::Truncated),
            Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        // The limit is checked before anything is allocated for the payload.
        let len = parse_header(header, self.limit)?;
        // Grow the buffer as bytes arrive instead of reserving the announced length up front:
        // a peer that announces a large frame and then stalls holds only what it really sent.
        let mut payload = Vec::with_capacity(len.min(INITIAL_PAYLOAD_CAPACITY));
        while payload.len() < len {
            match self.recv.read_chunk(len - payload.len(), true).await? {
                Some(chunk) => payload.extend_from_slice(&chunk.bytes),
                None => return Err(StreamError::Truncated),
            }
        }
        let envelope = fedprof_protocol::decode(&payload)?;
        self.seq.check(envelope.header.seq)?;
        Ok(Some(envelope))
    }

    /// Tells the peer to stop sending (used after a protocol error).
    pub fn stop(&mut self, code: u32) {
        // Only fails if already stopped or finished.
        let _ = self.recv.stop(code.into());
    }
}
