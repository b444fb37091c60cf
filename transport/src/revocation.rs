//! The federation's deny list of revoked certificates (security review H6): sans-IO parsing,
//! the CA's signature, "is this certificate revoked?", and which list may replace which; plus
//! [`RevocationWatch`], the one small I/O edge that reads the file at start and on reload.
//!
//! A revoked key must stop working everywhere, at once and for good, without rebuilding the
//! federation. X.509 CRLs would do, but every party here already trusts exactly one key, the
//! CA's, and checks exactly one kind of certificate, so a signed JSON list is simpler to read,
//! to audit and to distribute (`DIR/revoked.json`, written by `fedprof federation revoke`):
//!
//! ```json
//! {"list":{"version":1,"sequence":2,"issued_at":"2026-12-08T00:00:00Z","revoked":[
//!   {"fingerprint":"<64 hex: SHA-256 of the certificate DER>","party":"node-branch-a",
//!    "revoked_at":"2026-12-08T00:00:00Z","reason":"key leaked"}]},
//!  "signature":"<128 hex: Ed25519 by the CA key over the canonical `list`>"}
//! ```
//!
//! - The fingerprint is the SHA-256 of the certificate's DER, so it names one certificate, not
//!   a party: a renewed certificate of a party whose old one was revoked for expiry reasons
//!   is not caught by accident, and a leaked key is cut off by revoking every certificate of
//!   that key (`revoke` does). `openssl x509 -outform der | sha256sum` gives the same value.
//! - The signature covers the canonical re-encoding of the parsed `list` (a fixed field order,
//!   no whitespace) under the label [`SIGNATURE_LABEL`], so a list cannot be edited, and a
//!   signature made for something else does not verify.
//! - Lists only grow, and each carries a sequence number one above the list it extends. A
//!   party holding a list refuses one with a lower number (an attacker replaying the older
//!   list that did not yet name a stolen key), and one with the same number but other
//!   entries ([`RevocationList::may_replace`]).
//! - Unknown fields are refused, so a future format is not half-understood.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use fedprof_crypto::{Signature, VerifyingKey};
use fedprof_protocol::PartyId;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::pki::{FederationCa, PkiError, ed25519_public_key, party_from_label, party_label};

/// The purpose label of the CA's signature over a list (domain separation, see
/// `fedprof_crypto::label`).
pub const SIGNATURE_LABEL: &str = "revocation list";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The longest reason kept in an entry, in bytes (the list is read by every party).
pub const MAX_REASON_LEN: usize = 256;
/// The largest list file read, in bytes (about ten thousand entries).
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// Why a list is refused.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The file could not be read.
    #[error("cannot read the revocation list {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_LEN`].
    #[error("the revocation list {0} is larger than {MAX_FILE_LEN} bytes")]
    TooLarge(PathBuf),
    /// Not JSON of the expected shape (unknown fields included).
    #[error("the revocation list is malformed: {0}")]
    Malformed(String),
    /// A format version other than [`FORMAT_VERSION`].
    #[error("revocation list format version {0} is not supported (expected {FORMAT_VERSION})")]
    Version(u32),
    /// The CA's signature does not verify.
    #[error("the revocation list is not signed by the federation CA")]
    BadSignature,
    /// The CA certificate or key cannot be used.
    #[error("the federation CA cannot check or sign revocation lists: {0}")]
    Ca(#[from] PkiError),
    /// The list is older than the one already held.
    #[error("the revocation list has sequence {got}, older than the {held} already loaded")]
    Older {
        /// The new list's sequence number.
        got: u64,
        /// The held list's.
        held: u64,
    },
    /// Same sequence number as the list already held, but other entries.
    #[error("the revocation list has sequence {0}, like the one loaded, but other entries")]
    Conflicting(u64),
    /// The sequence number cannot grow further.
    #[error("the revocation list's sequence number is exhausted")]
    Exhausted,
}

/// SHA-256 of a certificate's DER: which certificate an entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of certificate `der`.
    pub fn of(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    fn parse(hex_text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).ok()?;
        Some(Fingerprint(bytes))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Which certificate.
    pub fingerprint: Fingerprint,
    /// The party it named (for people reading the list; the fingerprint decides).
    pub party: PartyId,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why, in the operator's words (at most [`MAX_REASON_LEN`] bytes, no control characters).
    pub reason: String,
}

/// A verified revocation list: every entry was signed by the federation CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationList {
    sequence: u64,
    issued_at: OffsetDateTime,
    entries: Vec<Revoked>,
    fingerprints: BTreeSet<Fingerprint>,
}

impl Default for RevocationList {
    fn default() -> Self {
        RevocationList::empty()
    }
}

/// The file's shape: the signed list and its signature.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    list: Wire,
    signature: String,
}

/// The signed part. Its field order is the canonical encoding the signature covers.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    version: u32,
    sequence: u64,
    issued_at: String,
    revoked: Vec<WireEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry {
    fingerprint: String,
    party: String,
    revoked_at: String,
    reason: String,
}

impl RevocationList {
    /// The list before anything was revoked (sequence 0; any signed list may replace it).
    pub fn empty() -> Self {
        RevocationList {
            sequence: 0,
            issued_at: OffsetDateTime::UNIX_EPOCH,
            entries: Vec::new(),
            fingerprints: BTreeSet::new(),
        }
    }

    /// Parses `text` and checks the signature with the key of `ca_cert_pem`; refuses unknown
    /// fields, other versions, malformed entries and any list the CA did not sign.
    pub fn parse_verified(text: &[u8], ca_cert_pem: &str) -> Result<Self, RevocationError> {
        let file: File =
            serde_json::from_slice(text).map_err(|e| RevocationError::Malformed(e.to_string()))?;
        if file.list.version != FORMAT_VERSION {
            return Err(RevocationError::Version(file.list.version));
        }
        let key = ed25519_public_key(&crate::pki::pem_certificate(ca_cert_pem)?)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| RevocationError::BadSignature)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&file.signature, &mut sig).map_err(|_| {
            RevocationError::Malformed("the signature is not 128 hex digits".into())
        })?;
        key.verify(
            SIGNATURE_LABEL,
            &canonical(&file.list)?,
            &Signature::from_bytes(sig),
        )
        .map_err(|_| RevocationError::BadSignature)?;
        Self::from_wire(file.list)
    }

    fn from_wire(wire: Wire) -> Result<Self, RevocationError> {
        let bad = |what: String| RevocationError::Malformed(what);
        let mut list = RevocationList {
            sequence: wire.sequence,
            issued_at: parse_time(&wire.issued_at).ok_or_else(|| bad("issued_at".into()))?,
            ..RevocationList::empty()
        };
        for (i, e) in wire.revoked.into_iter().enumerate() {
            let entry = Revoked {
                fingerprint: Fingerprint::parse(&e.fingerprint)
                    .ok_or_else(|| bad(format!("revoked[{i}].fingerprint")))?,
                party: party_from_label(&e.party)
                    .ok_or_else(|| bad(format!("revoked[{i}].party")))?,
                revoked_at: parse_time(&e.revoked_at)
                    .ok_or_else(|| bad(format!("revoked[{i}].revoked_at")))?,
                reason: check_reason(e.reason)
                    .ok_or_else(|| bad(format!("revoked[{i}].reason")))?,
            };
            list.push(entry);
        }
        Ok(list)
    }

    fn push(&mut self, entry: Revoked) {
        if self.fingerprints.insert(entry.fingerprint) {
            self.entries.push(entry);
        }
    }

    /// This list's sequence number (0 for the empty list).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When the CA signed it.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }

    /// The revoked certificates, oldest first.
    pub fn entries(&self) -> &[Revoked] {
        &self.entries
    }

    /// The revoked certificates' fingerprints.
    pub fn fingerprints(&self) -> &BTreeSet<Fingerprint> {
        &self.fingerprints
    }

    /// Whether certificate `der` is revoked.
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        self.fingerprints.contains(&Fingerprint::of(der))
    }

    /// Whether a party holding `self` may take `next` instead: only a list with a higher
    /// sequence number, or the same list again.
    pub fn may_replace(&self, next: &RevocationList) -> Result<(), RevocationError> {
        if next.sequence < self.sequence {
            return Err(RevocationError::Older {
                got: next.sequence,
                held: self.sequence,
            });
        }
        if next.sequence == self.sequence && next != self {
            return Err(RevocationError::Conflicting(next.sequence));
        }
        Ok(())
    }

    /// The next list: these entries added (a fingerprint already listed is kept once, with
    /// its first entry), the sequence number one higher, issued at `now`. Reasons are cut to
    /// [`MAX_REASON_LEN`] bytes and control characters replaced.
    pub fn extended(
        &self,
        entries: impl IntoIterator<Item = Revoked>,
        now: OffsetDateTime,
    ) -> Result<RevocationList, RevocationError> {
        let mut next = self.clone();
        next.sequence = self
            .sequence
            .checked_add(1)
            .ok_or(RevocationError::Exhausted)?;
        next.issued_at = now;
        for mut e in entries {
            e.reason = clean_reason(&e.reason);
            next.push(e);
        }
        Ok(next)
    }

    /// The signed file text, signed with the CA key.
    pub fn sign(&self, ca: &FederationCa) -> Result<String, RevocationError> {
        let wire = self.to_wire()?;
        let signature = ca
            .signing_key()?
            .sign(SIGNATURE_LABEL, &canonical(&wire)?)
            .map_err(|_| RevocationError::BadSignature)?;
        let file = File {
            list: wire,
            signature: hex::encode(signature.to_bytes()),
        };
        let mut text =
            serde_json::to_string(&file).map_err(|e| RevocationError::Malformed(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }

    fn to_wire(&self) -> Result<Wire, RevocationError> {
        let revoked = self
            .entries
            .iter()
            .map(|e| {
                Ok(WireEntry {
                    fingerprint: e.fingerprint.to_string(),
                    party: party_label(&e.party),
                    revoked_at: format_time(e.revoked_at)?,
                    reason: e.reason.clone(),
                })
            })
            .collect::<Result<_, RevocationError>>()?;
        Ok(Wire {
            version: FORMAT_VERSION,
            sequence: self.sequence,
            issued_at: format_time(self.issued_at)?,
            revoked,
        })
    }
}

fn canonical(wire: &Wire) -> Result<Vec<u8>, RevocationError> {
    serde_json::to_vec(wire).map_err(|e| RevocationError::Malformed(e.to_string()))
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn format_time(t: OffsetDateTime) -> Result<String, RevocationError> {
    t.format(&Rfc3339)
        .map_err(|e| RevocationError::Malformed(e.to_string()))
}

fn check_reason(reason: String) -> Option<String> {
    (reason.len() <= MAX_REASON_LEN && !reason.chars().any(char::is_control)).then_some(reason)
}

fn clean_reason(reason: &str) -> String {
    let mut out = String::new();
    for c in reason.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_REASON_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// The revocation list a running party enforces, read from its file at start and again on
/// every [`RevocationWatch::reload`] (the services call it on SIGHUP). Shared: cloning shares
/// the list.
///
/// A file that is missing is the empty list, until a list was loaded; after that a missing,
/// unreadable, unsigned, older or conflicting file is refused and the list held stays in
/// force (a reload can never un-revoke anything).
#[derive(Debug, Clone)]
pub struct RevocationWatch {
    path: Option<PathBuf>,
    ca_pem: Arc<str>,
    current: Arc<RwLock<Arc<RevocationList>>>,
}

impl RevocationWatch {
    /// Reads `path` (if any), checked against the CA certificate `ca_pem`.
    pub fn open(path: Option<PathBuf>, ca_pem: &str) -> Result<Self, RevocationError> {
        let watch = RevocationWatch {
            path,
            ca_pem: Arc::from(ca_pem),
            current: Arc::new(RwLock::new(Arc::new(RevocationList::empty()))),
        };
        watch.reload()?;
        Ok(watch)
    }

    /// A watch on no file: nothing is revoked (tests and in-process federations).
    pub fn none() -> Self {
        RevocationWatch {
            path: None,
            ca_pem: Arc::from(""),
            current: Arc::new(RwLock::new(Arc::new(RevocationList::empty()))),
        }
    }

    /// The file watched, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The list in force.
    pub fn current(&self) -> Arc<RevocationList> {
        // A writer that panicked left a whole list behind (the swap is one assignment).
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again and puts it in force if it may replace the list held; returns the
    /// list in force.
    pub fn reload(&self) -> Result<Arc<RevocationList>, RevocationError> {
        let held = self.current();
        let Some(path) = &self.path else {
            return Ok(held);
        };
        let text = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && held.sequence() == 0 => {
                return Ok(held);
            }
            Ok(meta) if meta.len() > MAX_FILE_LEN => {
                return Err(RevocationError::TooLarge(path.clone()));
            }
            _ => std::fs::read(path).map_err(|source| RevocationError::Read {
                path: path.clone(),
                source,
            })?,
        };
        let next = RevocationList::parse_verified(&text, &self.ca_pem)?;
        held.may_replace(&next)?;
        let next = Arc::new(next);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next.clone();
        Ok(next)
    }
}

#[cfg(test)]
mod tests;
