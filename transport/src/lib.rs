//! fedprof transport: QUIC (quinn) with mutual TLS (rustls, TLS 1.3 only, *ring* provider),
//! certificate-based identities, and framed, sequence-checked message streams.
//!
//! Owns: the federation PKI ([`pki`]), endpoint configuration and limits ([`tls`]),
//! authenticated connections and message streams ([`connection`]), the accept loop with
//! graceful shutdown ([`server`]) and the CA-signed deny list of revoked certificates
//! ([`revocation`]). Does not own any business rule: what a message means, which role may
//! send it, and what a revoked peer is refused, is decided by the node and coordinator crates
//! from the identity and certificate this crate hands them. That identity comes only from the peer's verified certificate.

pub mod address;
pub mod admission;
pub mod connection;
pub mod pki;
pub mod revocation;
pub mod secret_file;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use address::{DialTarget, DialTargetError};
pub use admission::{Admission, AdmissionLimits, OnIncoming, Refused};
pub use connection::{
    MessageReader, MessageStream, MessageWriter, PeerConnection, StreamError, close_code, connect,
};
pub use pki::{FederationCa, IssuedParty, PkiError, Validity, identity_from_cert};
/// The QUIC endpoint type, re-exported so callers need not depend on quinn.
pub use quinn::Endpoint;
pub use revocation::{Fingerprint, RevocationError, RevocationList, RevocationWatch};
pub use server::{ShutdownSignal, ShutdownTrigger, serve};
pub use tls::{
    ClientLimits, Credentials, ServerLimits, TlsFiles, client_endpoint, server_endpoint,
};

/// Failures setting up endpoints and connections.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The private key file is not private (or not a file, or unreadable).
    #[error(transparent)]
    SecretFile(#[from] secret_file::SecretFileError),
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS file is not valid PEM of the expected kind.
    #[error("invalid {what}{}: {detail}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Pem {
        /// Which item ("CA certificate", "certificate", "private key").
        what: &'static str,
        /// The parser's complaint.
        detail: String,
        /// The file, when known.
        path: Option<PathBuf>,
    },
    /// A certificate names no valid fedprof party.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
    /// Another configuration problem.
    #[error("transport configuration refused: {detail}")]
    Config {
        /// What was wrong.
        detail: String,
    },
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The connection attempt could not start (e.g. invalid server name).
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed (handshake refused, timeout, peer closed).
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// The peer's certificate names the wrong kind of party.
    #[error("expected a {expected}, but the peer's certificate names {got}")]
    WrongPeerRole {
        /// The role required.
        expected: fedprof_protocol::Role,
        /// The identity found.
        got: fedprof_protocol::PartyId,
    },
}
