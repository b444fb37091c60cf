//! The federation's public-key infrastructure: a CA, one certificate per party, and reading a
//! party's identity back out of a certificate.
//!
//! Identity encoding (one place, used both when issuing and when verifying): a certificate names
//! its party with exactly one subject-alternative-name URI `fedprof://<role>/<name>` (for
//! example `fedprof://node/branch-a`). The common name repeats it for people reading the
//! certificate but is never trusted. The coordinator's certificate additionally carries the
//! DNS names or IP addresses nodes dial, so ordinary TLS server-name checks apply.
//!
//! All keys are Ed25519: small, fast, deterministic signatures, and later issues sign ledger
//! entries with the same key the certificate binds.

use fedprof_protocol::{PartyId, PartyName, Role};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, ServerName};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

const URI_SCHEME: &str = "fedprof://";

/// Failures issuing or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to generate a key or certificate.
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A server name for the coordinator certificate is neither an IP address nor a DNS name.
    #[error("{0:?} is not a valid DNS name or IP address for the coordinator certificate")]
    BadServerName(String),
    /// The certificate's DER could not be parsed.
    #[error("certificate could not be parsed: {0}")]
    Parse(String),
    /// The certificate carries no `fedprof://` URI, or more than one.
    #[error("certificate does not name exactly one fedprof party (found {0} fedprof:// URIs)")]
    NoIdentity(usize),
    /// The `fedprof://` URI is not `fedprof://<role>/<name>` with a known role and a valid name.
    #[error("certificate names an invalid party {0:?}")]
    BadIdentity(String),
    /// A private key is not an Ed25519 PKCS#8 PEM key (the only kind the federation issues).
    #[error("the private key is not an Ed25519 PKCS#8 PEM key")]
    BadKey,
    /// A private key does not belong to the certificate it was given with (the CA's, or the
    /// party's being renewed).
    #[error("the private key does not match the certificate")]
    KeyMismatch,
}

/// How long issued certificates are valid, counted from `now` (passed in, so tests and
/// reproducible setups control it).
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity; set a little in the past to tolerate clock skew between machines.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From one hour before `now` for `days` days.
    pub fn days_from(now: OffsetDateTime, days: i64) -> Self {
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// A party's freshly issued certificate and private key, both PEM.
pub struct IssuedParty {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM), wiped when dropped. Write it with mode 0600; never log
    /// it.
    pub key_pem: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for IssuedParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedParty")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A federation certificate authority held in memory while issuing: created by
/// [`FederationCa::generate`] once, and read back from its files by [`FederationCa::load`]
/// for every later issue, renewal or revocation.
pub struct FederationCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for FederationCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FederationCa(<key redacted>)")
    }
}

impl FederationCa {
    /// Creates a new self-signed CA for the federation called `federation`.
    pub fn generate(federation: &str, validity: Validity) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("fedprof CA {federation}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, federation);
        // The CA signs party certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(FederationCa {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// Reads a CA back from its certificate and private key (`ca.pem`, `ca.key`), to add,
    /// renew or revoke parties of an existing federation. The issuer name and key identifier
    /// come from the certificate itself, so new certificates chain to the CA every party
    /// already trusts; a key that is not the certificate's is refused.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = ed25519_key(key_pem)?;
        let der = pem_certificate(cert_pem)?;
        if ed25519_public_key(&der)? != key.public_key_raw() {
            return Err(PkiError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der, key)?;
        Ok(FederationCa {
            issuer,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate (PEM), which every party trusts.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key (PKCS#8 PEM). Only needed to issue more certificates: keep offline.
    pub fn key_pem(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// The CA key as a signing key for records the CA vouches for outside X.509 (the
    /// revocation list, [`crate::revocation`]).
    pub fn signing_key(&self) -> Result<fedprof_crypto::SigningKey, PkiError> {
        let der = zeroize::Zeroizing::new(self.issuer.key().serialize_der());
        fedprof_crypto::SigningKey::from_pkcs8_der(&der).map_err(|_| PkiError::BadKey)
    }

    /// Issues a certificate for `party` with a new key. `server_names` (DNS names or IP
    /// addresses) are only meaningful for the coordinator, the one party that accepts
    /// connections.
    pub fn issue(
        &self,
        party: &PartyId,
        server_names: &[String],
        validity: Validity,
    ) -> Result<IssuedParty, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        Ok(IssuedParty {
            cert_pem: self.certify(party, server_names, validity, &key)?,
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
        })
    }

    /// A new certificate (PEM) for the party, server names and key of `old_cert_pem`, signed
    /// with `key_pem` (the party's existing private key, which must match): the party keeps
    /// its key, so everything it signed before (ledger entries) still verifies under the new
    /// certificate.
    pub fn renew(
        &self,
        old_cert_pem: &str,
        key_pem: &str,
        validity: Validity,
    ) -> Result<String, PkiError> {
        let key = ed25519_key(key_pem)?;
        let old = pem_certificate(old_cert_pem)?;
        if ed25519_public_key(&old)? != key.public_key_raw() {
            return Err(PkiError::KeyMismatch);
        }
        let party = identity_from_cert(&old)?;
        self.certify(&party, &server_names(&old)?, validity, &key)
    }

    fn certify(
        &self,
        party: &PartyId,
        server_names: &[String],
        validity: Validity,
        key: &KeyPair,
    ) -> Result<String, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} {}", party.role, party.name));
        params
            .subject_alt_names
            .push(SanType::URI(identity_uri(party).try_into()?));
        for name in server_names {
            // The same syntax check a dialling party applies to the name, so a certificate is
            // never issued for a name nobody could connect to.
            let bad = || PkiError::BadServerName(name.clone());
            let san = match ServerName::try_from(name.as_str()).map_err(|_| bad())? {
                ServerName::IpAddress(ip) => SanType::IpAddress(std::net::IpAddr::from(ip)),
                ServerName::DnsName(dns) => {
                    SanType::DnsName(dns.as_ref().to_owned().try_into().map_err(|_| bad())?)
                }
                _ => return Err(bad()),
            };
            params.subject_alt_names.push(san);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match party.role {
            Role::Coordinator => {
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ]
            }
            Role::Node | Role::Analyst | Role::Auditor => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }
}

/// An Ed25519 key pair from PKCS#8 PEM; any other kind of key is refused.
fn ed25519_key(key_pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem_and_sign_algo(key_pem, &rcgen::PKCS_ED25519).map_err(|_| PkiError::BadKey)
}

/// The first certificate of a PEM text.
pub fn pem_certificate(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Parse(e.to_string()))
}

/// The DNS names and IP addresses a certificate is issued for (the coordinator's), in the
/// certificate's order, as text a dialling party would use.
pub fn server_names(der: &CertificateDer<'_>) -> Result<Vec<String>, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    let mut names = Vec::new();
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).map(std::net::IpAddr::from).ok(),
                    16 => <[u8; 16]>::try_from(*bytes)
                        .map(std::net::IpAddr::from)
                        .ok(),
                    _ => None,
                };
                names.push(
                    ip.ok_or_else(|| PkiError::Parse("a malformed IP address SAN".into()))?
                        .to_string(),
                );
            }
            _ => {}
        }
    }
    Ok(names)
}

/// How many days before its expiry a certificate is warned about: the log says so at these
/// distances (security review H7: nobody was told before a whole federation stopped).
pub const EXPIRY_WARNING_DAYS: [i64; 3] = [30, 7, 1];

/// A certificate that expires soon, or has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryWarning {
    /// Time left until `notAfter` (negative once expired).
    pub left: Duration,
    /// The smallest of [`EXPIRY_WARNING_DAYS`] that `left` is within (0 once expired).
    pub within_days: i64,
}

/// Whether a certificate valid until `not_after` is to be warned about at `now`.
pub fn expiry_warning(not_after: OffsetDateTime, now: OffsetDateTime) -> Option<ExpiryWarning> {
    let left = not_after - now;
    if left <= Duration::ZERO {
        return Some(ExpiryWarning {
            left,
            within_days: 0,
        });
    }
    EXPIRY_WARNING_DAYS
        .iter()
        .rev()
        .find(|&&days| left <= Duration::days(days))
        .map(|&within_days| ExpiryWarning { left, within_days })
}

/// When a certificate stops being valid (its `notAfter`).
pub fn not_after(der: &[u8]) -> Result<OffsetDateTime, PkiError> {
    Ok(validity_of(der)?.not_after)
}

/// A certificate's validity period (`notBefore`, `notAfter`), as read (not verified).
pub fn validity_of(der: &[u8]) -> Result<Validity, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    Ok(Validity {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    })
}

/// A party as `<role>-<name>` (`node-branch-a`), as in `parties/<role>-<name>/` and the
/// `--party` argument of the certificate commands. Roles contain no `-`, so it reads back
/// unambiguously with [`party_from_label`].
pub fn party_label(party: &PartyId) -> String {
    format!("{}-{}", party.role, party.name)
}

/// Reads a [`party_label`] back.
pub fn party_from_label(label: &str) -> Option<PartyId> {
    let (role, name) = label.split_once('-')?;
    Some(PartyId {
        role: Role::from_label(role)?,
        name: PartyName::new(name).ok()?,
    })
}

fn identity_uri(party: &PartyId) -> String {
    format!("{URI_SCHEME}{}/{}", party.role, party.name)
}

/// Reads the party a certificate names (see the module docs for the encoding).
///
/// This does not verify the certificate: call it on certificates rustls has already verified
/// against the federation CA.
pub fn identity_from_cert(der: &CertificateDer<'_>) -> Result<PartyId, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(URI_SCHEME) => Some(*uri),
            _ => None,
        })
        .collect();
    let [uri] = uris.as_slice() else {
        return Err(PkiError::NoIdentity(uris.len()));
    };
    parse_identity_uri(uri).ok_or_else(|| PkiError::BadIdentity((*uri).to_owned()))
}

/// The raw Ed25519 public key a certificate binds (every federation key is Ed25519).
///
/// Does not verify the certificate: call it on certificates already verified against the CA.
pub fn ed25519_public_key(der: &CertificateDer<'_>) -> Result<[u8; 32], PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return Err(PkiError::Parse(
            "the certificate's key is not Ed25519".into(),
        ));
    }
    <[u8; 32]>::try_from(spki.subject_public_key.data.as_ref())
        .map_err(|_| PkiError::Parse("the Ed25519 key is not 32 bytes".into()))
}

fn parse_identity_uri(uri: &str) -> Option<PartyId> {
    let (role, name) = uri.strip_prefix(URI_SCHEME)?.split_once('/')?;
    Some(PartyId {
        role: Role::from_label(role)?,
        name: PartyName::new(name).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn party(role: Role, name: &str) -> PartyId {
        PartyId {
            role,
            name: PartyName::new(name).unwrap(),
        }
    }

    fn validity() -> Validity {
        Validity::days_from(OffsetDateTime::now_utc(), 1)
    }

    #[test]
    fn issued_identity_reads_back() {
        let ca = FederationCa::generate("test", validity()).unwrap();
        for p in [
            party(Role::Node, "branch-a"),
            party(Role::Analyst, "x"),
            party(Role::Auditor, "y"),
        ] {
            let issued = ca.issue(&p, &[], validity()).unwrap();
            let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
            assert_eq!(identity_from_cert(&der).unwrap(), p);
        }
        let coord = party(Role::Coordinator, "coordinator");
        let issued = ca
            .issue(
                &coord,
                &["127.0.0.1".into(), "coord.example".into()],
                validity(),
            )
            .unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        assert_eq!(identity_from_cert(&der).unwrap(), coord);
    }

    #[test]
    fn certificates_without_identity_are_refused() {
        // A CA certificate has no fedprof:// URI.
        let ca = FederationCa::generate("test", validity()).unwrap();
        let der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        assert!(matches!(
            identity_from_cert(&der),
            Err(PkiError::NoIdentity(0))
        ));
        assert!(matches!(
            identity_from_cert(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            Err(PkiError::Parse(_))
        ));
    }

    #[test]
    fn identity_uris_are_strict() {
        assert_eq!(
            parse_identity_uri("fedprof://node/a"),
            Some(party(Role::Node, "a"))
        );
        for bad in [
            "fedprof://admin/a",
            "fedprof://node/A",
            "fedprof://node",
            "http://node/a",
            "fedprof://node/a/b",
        ] {
            assert_eq!(parse_identity_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_loaded_ca_issues_certificates_the_old_ca_certificate_verifies() {
        let now = OffsetDateTime::now_utc();
        let ca = FederationCa::generate("test", validity()).unwrap();
        let loaded = FederationCa::load(&ca.cert_pem(), &ca.key_pem()).unwrap();
        let p = party(Role::Node, "late");
        let issued = loaded.issue(&p, &[], validity()).unwrap();
        let (got, _) =
            verify_party_cert(ca.cert_pem().as_bytes(), issued.cert_pem.as_bytes(), now).unwrap();
        assert_eq!(got, p);
        // Another CA's key, or a party key, is not this CA's key.
        let other = FederationCa::generate("other", validity()).unwrap();
        assert!(matches!(
            FederationCa::load(&ca.cert_pem(), &other.key_pem()),
            Err(PkiError::KeyMismatch)
        ));
        assert!(matches!(
            FederationCa::load(&ca.cert_pem(), "not a key"),
            Err(PkiError::BadKey)
        ));
    }

    #[test]
    fn renewal_keeps_the_key_the_party_and_the_server_names() {
        let now = OffsetDateTime::now_utc();
        let ca = FederationCa::generate("test", validity()).unwrap();
        let coord = party(Role::Coordinator, "c");
        let names = vec!["127.0.0.1".to_owned(), "coord.example".to_owned()];
        let old = ca
            .issue(&coord, &names, Validity::days_from(now, 1))
            .unwrap();
        let renewed = ca
            .renew(&old.cert_pem, &old.key_pem, Validity::days_from(now, 30))
            .unwrap();
        let ca_pem = ca.cert_pem();
        let (p1, k1) = verify_party_cert(ca_pem.as_bytes(), old.cert_pem.as_bytes(), now).unwrap();
        let later = now + Duration::days(10);
        let (p2, k2) = verify_party_cert(ca_pem.as_bytes(), renewed.as_bytes(), later).unwrap();
        assert_eq!((p1, k1), (p2, k2));
        assert!(verify_party_cert(ca_pem.as_bytes(), old.cert_pem.as_bytes(), later).is_err());
        let der = pem_certificate(&renewed).unwrap();
        assert_eq!(server_names(&der).unwrap(), names);
        assert!(not_after(&der).unwrap() > later);
        // Renewing with someone else's key is refused.
        let stranger = ca.issue(&party(Role::Node, "x"), &[], validity()).unwrap();
        assert!(matches!(
            ca.renew(&old.cert_pem, &stranger.key_pem, validity()),
            Err(PkiError::KeyMismatch)
        ));
    }

    #[test]
    fn expiry_is_warned_at_30_7_and_1_days() {
        let now = OffsetDateTime::now_utc();
        let within = |left: Duration| expiry_warning(now + left, now).map(|w| w.within_days);
        assert_eq!(within(Duration::days(31)), None);
        assert_eq!(within(Duration::days(30)), Some(30));
        assert_eq!(within(Duration::days(8)), Some(30));
        assert_eq!(within(Duration::days(7)), Some(7));
        assert_eq!(within(Duration::hours(23)), Some(1));
        assert_eq!(within(Duration::ZERO), Some(0));
        assert_eq!(within(-Duration::days(3)), Some(0));
    }

    #[test]
    fn party_labels_read_back() {
        let p = party(Role::Node, "branch-a");
        assert_eq!(party_label(&p), "node-branch-a");
        assert_eq!(party_from_label("node-branch-a"), Some(p));
        for bad in ["node", "admin-a", "node-A", "-a"] {
            assert_eq!(party_from_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_server_name_is_reported() {
        let ca = FederationCa::generate("test", validity()).unwrap();
        let err = ca.issue(
            &party(Role::Coordinator, "c"),
            &["bad name".into()],
            validity(),
        );
        assert!(matches!(err, Err(PkiError::BadServerName(_))), "{err:?}");
    }
}

/// Why a party certificate is not accepted as the key of a federation party (for checking
/// signed records such as ledgers, outside any TLS handshake).
#[derive(Debug, thiserror::Error)]
pub enum PartyCertError {
    /// The text holds no PEM certificate.
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    /// The CA certificate cannot serve as a trust anchor.
    #[error("the federation CA certificate is unusable: {0}")]
    Ca(String),
    /// The certificate does not chain to the federation CA, is not valid at the given time, or
    /// is not a client-authentication end-entity certificate.
    #[error("certificate is not trusted by the federation CA: {0}")]
    Untrusted(String),
    /// The certificate names no valid party.
    #[error(transparent)]
    Identity(#[from] PkiError),
    /// The certificate's key is not Ed25519 (the only key type the federation issues).
    #[error("certificate key is not Ed25519")]
    NotEd25519,
}

/// Verifies a party certificate (PEM) against the federation CA (PEM) at time `at`, exactly as
/// the TLS layer verifies client certificates (webpki, *ring*), and returns the party it names
/// and its raw Ed25519 public key.
pub fn verify_party_cert(
    ca_pem: &[u8],
    cert_pem: &[u8],
    at: OffsetDateTime,
) -> Result<(PartyId, [u8; 32]), PartyCertError> {
    use rustls_pki_types::UnixTime;
    use rustls_pki_types::pem::PemObject;

    let ca =
        CertificateDer::from_pem_slice(ca_pem).map_err(|e| PartyCertError::Pem(e.to_string()))?;
    let cert =
        CertificateDer::from_pem_slice(cert_pem).map_err(|e| PartyCertError::Pem(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| PartyCertError::Ca(e.to_string()))?;
    // Times before 1970 are not valid for any certificate we issue; clamp rather than fail.
    let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    verify_party_der(std::sync::Arc::new(roots), &cert, now)
}

/// Verifies a party certificate (DER) against `roots` at `now`, exactly as the TLS layer
/// verifies client certificates (webpki, *ring*), and returns the party it names and its raw
/// Ed25519 public key. The one place certificates received outside a handshake are checked.
pub fn verify_party_der(
    roots: std::sync::Arc<rustls::RootCertStore>,
    cert: &CertificateDer<'_>,
    now: rustls_pki_types::UnixTime,
) -> Result<(PartyId, [u8; 32]), PartyCertError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| PartyCertError::Ca(e.to_string()))?;
    verifier
        .verify_client_cert(cert, &[], now)
        .map_err(|e| PartyCertError::Untrusted(e.to_string()))?;
    let party = identity_from_cert(cert)?;
    let key = ed25519_public_key(cert).map_err(|_| PartyCertError::NotEd25519)?;
    Ok((party, key))
}

#[cfg(test)]
mod verify_party_cert_tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn party(role: Role, name: &str) -> PartyId {
        PartyId {
            role,
            name: PartyName::new(name).unwrap(),
        }
    }

    #[test]
    fn accepts_the_federations_parties_only() {
        let now = OffsetDateTime::now_utc();
        let validity = Validity::days_from(now, 1);
        let ca = FederationCa::generate("test", validity).unwrap();
        let other = FederationCa::generate("other", validity).unwrap();
        let p = party(Role::Node, "a");
        let issued = ca.issue(&p, &[], validity).unwrap();
        let (got, key) =
            verify_party_cert(ca.cert_pem().as_bytes(), issued.cert_pem.as_bytes(), now).unwrap();
        assert_eq!(got, p);
        // The key is the one the PKCS#8 private key holds (its last 32 bytes in rcgen's v2 form).
        let der =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        assert!(
            der.secret_der().ends_with(&key),
            "public key matches the private key file"
        );
        let coord = ca
            .issue(
                &party(Role::Coordinator, "c"),
                &["127.0.0.1".into()],
                validity,
            )
            .unwrap();
        assert!(
            verify_party_cert(ca.cert_pem().as_bytes(), coord.cert_pem.as_bytes(), now).is_ok()
        );
        let foreign = other.issue(&p, &[], validity).unwrap();
        let err = verify_party_cert(ca.cert_pem().as_bytes(), foreign.cert_pem.as_bytes(), now);
        assert!(matches!(err, Err(PartyCertError::Untrusted(_))), "{err:?}");
        let later = now + Duration::days(3);
        let err = verify_party_cert(ca.cert_pem().as_bytes(), issued.cert_pem.as_bytes(), later);
        assert!(
            matches!(err, Err(PartyCertError::Untrusted(_))),
            "expired: {err:?}"
        );
        assert!(matches!(
            verify_party_cert(b"junk", issued.cert_pem.as_bytes(), now),
            Err(PartyCertError::Pem(_))
        ));
    }
}
