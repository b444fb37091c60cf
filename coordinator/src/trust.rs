//! The node keys the coordinator's release ledger is checked with when it is reopened.
//!
//! Every release entry embeds the contributors' signed debit receipts. Opening an existing
//! ledger re-verifies them, so the coordinator needs every node's certificate key before it
//! has seen any node connect: it reads the federation's party certificates (by default the
//! `parties/` directory beside the CA file, as `fedprof federation init` lays them out),
//! verifies each against the federation CA, and trusts the key of every node certificate.
//! A certificate that does not verify is skipped with a warning; a release it signed then
//! fails to verify, naming the node.

use std::path::Path;

use fedprof_ledger::KeyRing;
use fedprof_protocol::Role;
use tracing::warn;

/// Why the federation's certificates cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The keys of every node certificate under `dir/*/cert.pem` that verifies against the CA
/// at `ca` now. A missing `dir` gives an empty ring (a new federation without a ledger yet).
pub fn node_keys(ca: &Path, dir: &Path) -> Result<KeyRing, TrustError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let mut ring = KeyRing::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ring),
        Err(source) => {
            return Err(TrustError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let ca_pem = read(ca)?;
    let now = time::OffsetDateTime::now_utc();
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("cert.pem"))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let pem = read(&path)?;
        match fedprof_transport::pki::verify_party_cert(&ca_pem, &pem, now) {
            Ok((party, key)) if party.role == Role::Node => {
                if let Err(e) = ring.insert(party, key) {
                    warn!(path = %path.display(), error = %e, "node key not trusted");
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(path = %path.display(), error = %e, "certificate does not verify against the federation CA; not trusted");
            }
        }
    }
    Ok(ring)
}
