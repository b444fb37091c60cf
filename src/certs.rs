//! `fedprof federation issue|renew|revoke`: the certificate lifecycle of an existing
//! federation directory (security review H6, H7), with the CA read back from `ca.pem` and
//! `ca.key` (`FederationCa::load`).
//!
//! - `issue` adds one party exactly as `init` adds each (`federation::add_party`).
//! - `renew` gives a party a new certificate for its *existing* key, so everything it signed
//!   (ledger entries) still verifies. The old certificate is kept beside the new one as
//!   `cert.<n>.pem`: the audit still finds a certificate valid when an old entry was written
//!   (`fedprof audit verify --at`), and `revoke` revokes every certificate of the party.
//! - `revoke` extends the CA-signed deny list `DIR/revoked.json`
//!   (`fedprof_transport::revocation`) with every certificate of the party; the coordinator
//!   and the nodes enforce the new list on SIGHUP.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedprof_protocol::PartyId;
use fedprof_transport::pki::party_label;
use fedprof_transport::revocation::{Fingerprint, Revoked};
use fedprof_transport::{FederationCa, RevocationList, Validity};
use time::OffsetDateTime;

use crate::federation::{add_party, party_rel};

/// Reads the federation's CA from `DIR/ca.pem` and `DIR/ca.key` (refused unless only its
/// owner may read the key).
pub fn load_ca(dir: &Path) -> Result<FederationCa> {
    let cert = fs::read_to_string(dir.join("ca.pem"))
        .with_context(|| format!("cannot read {}", dir.join("ca.pem").display()))?;
    let key = fedprof_transport::secret_file::read(&dir.join("ca.key"))?;
    let key = std::str::from_utf8(&key).context("ca.key is not PEM text")?;
    FederationCa::load(&cert, key).context("cannot load the federation CA")
}

/// Issues a certificate and key for a new `party` valid `days` from `now`; returns its config
/// (nodes and analysts), which dials `coordinator` (default: what the federation's existing
/// node and analyst configs dial).
pub fn issue(
    dir: &Path,
    party: &PartyId,
    coordinator: Option<&str>,
    days: i64,
    now: OffsetDateTime,
) -> Result<Option<PathBuf>> {
    let ca = load_ca(dir)?;
    let coordinator = match coordinator {
        Some(c) => c.to_owned(),
        None => dialled_coordinator(dir)?,
    };
    fedprof_transport::DialTarget::parse(&coordinator)?;
    add_party(
        dir,
        &ca,
        party,
        &[],
        Validity::days_from(now, days),
        &coordinator,
    )
}

/// Gives `party` a new certificate for its existing key, valid `days` from `now`; the old one
/// moves to `cert.<n>.pem`. Returns the new certificate's path.
pub fn renew(dir: &Path, party: &PartyId, days: i64, now: OffsetDateTime) -> Result<PathBuf> {
    let ca = load_ca(dir)?;
    let party_dir = existing_party(dir, party)?;
    let cert_path = party_dir.join("cert.pem");
    let old = fs::read_to_string(&cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))?;
    let key = fedprof_transport::secret_file::read(&party_dir.join("key.pem"))?;
    let key = std::str::from_utf8(&key).context("key.pem is not PEM text")?;
    let renewed = ca
        .renew(&old, key, Validity::days_from(now, days))
        .with_context(|| format!("cannot renew the certificate of {party}"))?;
    let kept = (1u32..)
        .map(|n| party_dir.join(format!("cert.{n}.pem")))
        .find(|p| !p.exists())
        .context("no free name for the old certificate")?;
    // cert.pem exists at every moment: the old one is kept under a second name, then the
    // new one replaces it with one rename.
    fs::hard_link(&cert_path, &kept)
        .with_context(|| format!("cannot keep {} as {}", cert_path.display(), kept.display()))?;
    let fresh = party_dir.join("cert.pem.new");
    crate::federation::write_file(&fresh, renewed.as_bytes(), 0o644)?;
    fs::rename(&fresh, &cert_path)
        .with_context(|| format!("cannot replace {}", cert_path.display()))?;
    fedprof_ledger::file::sync_dir(&party_dir)?;
    Ok(cert_path)
}

/// What `revoke` did.
#[derive(Debug)]
pub struct Revocation {
    /// The new list's sequence number.
    pub sequence: u64,
    /// The certificates it revoked now (the party's current and earlier ones).
    pub revoked: Vec<Fingerprint>,
    /// `DIR/revoked.json`.
    pub path: PathBuf,
}

/// Revokes every certificate of `party` (current and renewed-away ones): writes the next
/// signed `DIR/revoked.json`, atomically.
pub fn revoke(
    dir: &Path,
    party: &PartyId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Revocation> {
    let ca = load_ca(dir)?;
    let party_dir = existing_party(dir, party)?;
    let path = dir.join(fedprof_transport::tls::REVOCATION_FILE);
    let held = match fedprof_ledger::file::read_optional(&path)? {
        Some(text) => RevocationList::parse_verified(&text, &ca.cert_pem())
            .with_context(|| format!("refusing to extend {}", path.display()))?,
        None => RevocationList::empty(),
    };
    let entries = party_certificates(&party_dir)?
        .into_iter()
        .map(|der| Revoked {
            fingerprint: Fingerprint::of(&der),
            party: party.clone(),
            revoked_at: now,
            reason: reason.to_owned(),
        })
        .filter(|e| !held.fingerprints().contains(&e.fingerprint))
        .collect::<Vec<_>>();
    if entries.is_empty() {
        bail!("every certificate of {party} is already revoked");
    }
    let revoked = entries.iter().map(|e| e.fingerprint).collect();
    let next = held.extended(entries, now)?;
    fedprof_ledger::file::write_atomic(&path, next.sign(&ca)?.as_bytes())?;
    Ok(Revocation {
        sequence: next.sequence(),
        revoked,
        path,
    })
}

/// Every certificate (DER) in a party's directory: `cert.pem` and the `cert.<n>.pem` that
/// renewals kept, in file-name order.
pub fn party_certificates(party_dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = fs::read_dir(party_dir)
        .with_context(|| format!("cannot read {}", party_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("cert") && n.ends_with(".pem"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let pem =
                fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok(fedprof_transport::pki::pem_certificate(&pem)
                .with_context(|| format!("{} is not a certificate", p.display()))?
                .to_vec())
        })
        .collect()
}

fn existing_party(dir: &Path, party: &PartyId) -> Result<PathBuf> {
    let party_dir = dir.join(party_rel(party));
    if !party_dir.join("cert.pem").is_file() {
        bail!(
            "{} is not a party of the federation in {} (no {}/cert.pem)",
            party_label(party),
            dir.display(),
            party_rel(party)
        );
    }
    Ok(party_dir)
}

/// The `coordinator = "HOST:PORT"` the federation's node and analyst configs dial (the first
/// found, in name order).
fn dialled_coordinator(dir: &Path) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Dials {
        coordinator: String,
    }
    let mut configs: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                (n.starts_with("node-") || n.starts_with("analyst-")) && n.ends_with(".toml")
            })
        })
        .collect();
    configs.sort();
    let first = configs.first().with_context(|| {
        format!(
            "no node or analyst config in {} says where the coordinator is: pass --coordinator HOST:PORT",
            dir.display()
        )
    })?;
    let dials: Dials = fedprof_config::ConfigFile::read(first)?.parse()?;
    Ok(dials.coordinator)
}

#[cfg(test)]
mod tests;
