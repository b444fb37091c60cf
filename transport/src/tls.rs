//! TLS and QUIC configuration: TLS 1.3 only, the *ring* provider only, client certificates
//! required and verified against the federation CA, ALPN = [`fedprof_protocol::ALPN`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fedprof_protocol::{ALPN, FrameLimit, PartyId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::TransportError;
use crate::admission::AdmissionLimits;
use crate::pki::identity_from_cert;

/// Where a party's TLS material lives. Relative paths are resolved against the directory of
/// the config file that names them (see [`TlsFiles::resolve_against`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA certificate (PEM), trusted for every peer.
    pub ca: PathBuf,
    /// This party's certificate (PEM).
    pub cert: PathBuf,
    /// This party's private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
    /// The CA-signed list of revoked certificates ([`crate::revocation`]), re-read on SIGHUP.
    /// Default: `revoked.json` beside the CA certificate, if it exists; a file named here must
    /// exist.
    #[serde(default)]
    pub revoked: Option<PathBuf>,
}

/// The file name of the revocation list beside the CA certificate (the default).
pub const REVOCATION_FILE: &str = "revoked.json";

impl TlsFiles {
    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve_against(&mut self, base: &Path) {
        let revoked = self.revoked.iter_mut();
        for p in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .chain(revoked)
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The revocation list this party enforces, read now (see [`TlsFiles::revoked`]).
    pub fn revocations(&self) -> Result<crate::RevocationWatch, crate::RevocationError> {
        let ca =
            std::fs::read_to_string(&self.ca).map_err(|source| crate::RevocationError::Read {
                path: self.ca.clone(),
                source,
            })?;
        let path = match &self.revoked {
            Some(path) if !path.exists() => {
                return Err(crate::RevocationError::Read {
                    path: path.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            Some(path) => path.clone(),
            None => self
                .ca
                .parent()
                .unwrap_or(Path::new("."))
                .join(REVOCATION_FILE),
        };
        crate::RevocationWatch::open(Some(path), &ca)
    }
}

/// A party's loaded TLS material: the trusted CA, its own chain and key, and the identity its
/// certificate names.
pub struct Credentials {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    identity: PartyId,
}

/// The key's DER bytes are wiped when the credentials are dropped (rustls keeps its own
/// parsed copy inside the endpoint's configuration for as long as the endpoint lives).
impl Drop for Credentials {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.key.zeroize();
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads the files named in `files`.
    pub fn load(files: &TlsFiles) -> Result<Self, TransportError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TransportError::ReadFile {
                path: p.to_owned(),
                source,
            })
        };
        // The key is read only if only its owner may read it (security review M12), into
        // memory wiped on drop.
        let key = crate::secret_file::read(&files.key)?;
        Self::from_pem(&read(&files.ca)?, &read(&files.cert)?, &key).map_err(|e| {
            match e {
                // Say which file was wrong.
                TransportError::Pem { what, detail, .. } => {
                    let path = match what {
                        "CA certificate" => &files.ca,
                        "certificate" => &files.cert,
                        _ => &files.key,
                    };
                    TransportError::Pem {
                        what,
                        detail,
                        path: Some(path.clone()),
                    }
                }
                other => other,
            }
        })
    }

    /// Builds credentials from PEM bytes.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TransportError> {
        let pem_err = |what: &'static str| {
            move |e: rustls_pki_types::pem::Error| TransportError::Pem {
                what,
                detail: e.to_string(),
                path: None,
            }
        };
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca) {
            roots
                .add(c.map_err(pem_err("CA certificate"))?)
                .map_err(|e| TransportError::Pem {
                    what: "CA certificate",
                    detail: e.to_string(),
                    path: None,
                })?;
        }
        if roots.is_empty() {
            return Err(pem_err("CA certificate")(
                rustls_pki_types::pem::Error::NoItemsFound,
            ));
        }
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("certificate"))?;
        let leaf = chain
            .first()
            .ok_or_else(|| pem_err("certificate")(rustls_pki_types::pem::Error::NoItemsFound))?;
        let identity = identity_from_cert(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_err("private key"))?;
        Ok(Credentials {
            roots: Arc::new(roots),
            chain,
            key,
            identity,
        })
    }

    /// Verifies another party's certificate received outside a handshake (e.g. in a job's
    /// roster) against the federation CA, exactly as the TLS layer verifies client
    /// certificates, at time `now`; returns the party it names and its Ed25519 key.
    pub fn verify_party(
        &self,
        der: &[u8],
        now: std::time::SystemTime,
    ) -> Result<(PartyId, [u8; 32]), crate::pki::PartyCertError> {
        let now = rustls_pki_types::UnixTime::since_unix_epoch(
            now.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        crate::pki::verify_party_der(self.roots.clone(), &CertificateDer::from(der), now)
    }

    /// This party's own certificate (DER).
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.chain.first()
    }

    /// This party's private key (PKCS#8 DER), for signing with the certificate key (ledger
    /// entries, secure-aggregation key advertisements). Never log it.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        self.key.secret_der()
    }

    /// Who this party is, according to its own certificate.
    pub fn identity(&self) -> &PartyId {
        &self.identity
    }
}

/// Settings of an accepting endpoint (the coordinator). Every field is a named, documented
/// limit; [`ServerLimits::default`] states the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Who may take a handshake or a connection slot (address validation, handshakes in
    /// flight in all and per source, connections in all and per identity, roles).
    pub admission: AdmissionLimits,
    /// A connection silent for this long is closed. Default 30 s. Both sides send keep-alives
    /// at a third of their own idle timeout, so a healthy idle peer is never cut off whichever
    /// timeout is shorter (a client's keep-alives alone, at a third of a longer client timeout,
    /// let a short server timeout close an analyst waiting for its job: tests/keepalive.rs).
    pub idle_timeout: Duration,
    /// Largest frame accepted from nodes (and any role without its own limit). Default
    /// [`FrameLimit::DEFAULT`].
    pub max_frame: FrameLimit,
    /// Largest frame accepted from an analyst. Default [`FrameLimit::ANALYST`] (64 KiB): an
    /// analyst only sends job requests, and a frame is read whole before it is decoded, so
    /// this bounds what one analyst certificate can make the server hold and decode.
    pub max_analyst_frame: FrameLimit,
    /// On shutdown, how long open connections get to finish before they are closed.
    /// Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            admission: AdmissionLimits::default(),
            idle_timeout: Duration::from_secs(30),
            max_frame: FrameLimit::DEFAULT,
            max_analyst_frame: FrameLimit::ANALYST,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl ServerLimits {
    /// The largest frame accepted from a peer of `role`.
    pub fn frame_limit(&self, role: fedprof_protocol::Role) -> FrameLimit {
        match role {
            fedprof_protocol::Role::Analyst => self.max_analyst_frame.min(self.max_frame),
            _ => self.max_frame,
        }
    }
}

/// Settings of a dialling endpoint (node, analyst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// A connection silent for this long is closed; keep-alives go out at a third of it.
    /// Default 30 s.
    pub idle_timeout: Duration,
    /// Largest frame accepted. Default [`FrameLimit::DEFAULT`].
    pub max_frame: FrameLimit,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            idle_timeout: Duration::from_secs(30),
            max_frame: FrameLimit::DEFAULT,
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config(
    idle: Duration,
    keep_alive: bool,
) -> Result<quinn::TransportConfig, TransportError> {
    let mut t = quinn::TransportConfig::default();
    let timeout = quinn::IdleTimeout::try_from(idle).map_err(|_| TransportError::Config {
        detail: format!("idle timeout {idle:?} is out of range"),
    })?;
    t.max_idle_timeout(Some(timeout));
    if keep_alive {
        t.keep_alive_interval(Some(idle / 3));
    }
    // The protocol uses exactly one long-lived bidirectional stream per connection. Credit for
    // more would let a peer open streams nobody accepts, each buffered up to the stream window
    // (security review L2); with a credit of one, a second `open_bi` waits until the first
    // stream is gone.
    t.max_concurrent_bidi_streams(1u8.into());
    t.max_concurrent_uni_streams(0u8.into());
    // Nothing is sent as a datagram: receiving none means not advertising the extension, so a
    // peer cannot fill a datagram buffer either.
    t.datagram_receive_buffer_size(None);
    Ok(t)
}

/// Binds an accepting endpoint at `addr` (use port 0 in tests and read
/// [`quinn::Endpoint::local_addr`]).
pub fn server_endpoint(
    addr: SocketAddr,
    creds: &Credentials,
    limits: &ServerLimits,
) -> Result<quinn::Endpoint, TransportError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(creds.roots.clone(), provider.clone())
            .build()
            .map_err(|e| TransportError::Config {
                detail: e.to_string(),
            })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain.clone(), creds.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Config {
        detail: e.to_string(),
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(limits.idle_timeout, true)?));
    quinn::Endpoint::server(config, addr).map_err(|source| TransportError::Bind { addr, source })
}

/// Creates a dialling endpoint presenting `creds`, for servers reachable from `peer_family`
/// (an address of the server to dial, used to pick IPv4 or IPv6).
pub fn client_endpoint(
    creds: &Credentials,
    limits: &ClientLimits,
    peer_family: SocketAddr,
) -> Result<quinn::Endpoint, TransportError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(creds.roots.clone())
        .with_client_auth_cert(creds.chain.clone(), creds.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Config {
        detail: e.to_string(),
    })?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(limits.idle_timeout, true)?));
    let bind: SocketAddr = if peer_family.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(bind)
        .map_err(|source| TransportError::Bind { addr: bind, source })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}
