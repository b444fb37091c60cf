//! The audit's certificates: every party's key, from the certificates under `parties/` that
//! the federation CA vouches for at the audit's time, and the check that each ledger was
//! written while its writer held a valid certificate (`--at written`).
//!
//! A party may hold several certificates for one key: `cert.pem` and the `cert.<n>.pem`
//! that `fedprof federation renew` kept. Any of them can be the one valid at the time asked.

use std::fs;
use std::path::Path;

use fedprof_ledger::audit::{AuditFailure, AuditReport};
use fedprof_protocol::{PartyId, Role};
use fedprof_transport::pki::{pem_certificate, validity_of, verify_party_cert};
use time::OffsetDateTime;

/// When the parties' certificates must be valid (`fedprof audit verify --at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertsAt {
    /// At this time (default: now).
    Time(OffsetDateTime),
    /// Whenever its ledger was written: from each ledger's first to its last timed entry,
    /// some certificate of its writer was valid (`--at written`).
    Written,
}

impl std::str::FromStr for CertsAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "written" {
            return Ok(CertsAt::Written);
        }
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(CertsAt::Time)
            .map_err(|e| {
                format!("{s:?} is neither `written` nor an RFC 3339 time such as 2026-11-30T00:00:00Z: {e}")
            })
    }
}

/// A certificate's validity, `notBefore` to `notAfter` in unix seconds.
type Window = (i64, i64);

/// One party's key and the validity windows of its certificates for it.
#[derive(Debug)]
pub(crate) struct PartyCerts {
    pub(crate) party: PartyId,
    pub(crate) key: [u8; 32],
    windows: Vec<Window>,
}

fn whole(file: &str, reason: String) -> AuditFailure {
    AuditFailure {
        file: file.to_owned(),
        line: 0,
        seq: None,
        reason,
    }
}

/// Reads `parties/<role>-<name>/cert*.pem` and keeps, per party, the certificates the CA
/// (PEM `ca`) vouches for at `at` (with [`CertsAt::Written`], each at the start of its own
/// validity); a party none of whose certificates qualifies fails the audit, naming its
/// `cert.pem`.
pub(crate) fn read_parties(
    dir: &Path,
    ca: &[u8],
    at: CertsAt,
) -> Result<Vec<PartyCerts>, AuditFailure> {
    let mut out = Vec::new();
    for (rel, path) in super::list(dir, "parties", |name| Some(name.to_owned()))? {
        let rel = format!("parties/{rel}/cert.pem");
        // cert.pem first, then the kept ones in the order they were renewed away.
        let kept = super::list(&path, ".", |f| {
            let n = f.strip_prefix("cert.")?.strip_suffix(".pem")?;
            n.parse::<u32>().ok().map(|n| format!("{n:010}"))
        })?;
        let files = std::iter::once(path.join("cert.pem")).chain(kept.into_iter().map(|(_, p)| p));
        let mut found: Option<PartyCerts> = None;
        let mut first_error = None;
        for file in files {
            let pem = fs::read(&file).map_err(|e| whole(&rel, e.to_string()))?;
            match verify_one(ca, &pem, at) {
                Ok((party, key, window)) => match &mut found {
                    None => {
                        found = Some(PartyCerts {
                            party,
                            key,
                            windows: vec![window],
                        })
                    }
                    // Only certificates of the same party and key extend its windows.
                    Some(p) if p.party == party && p.key == key => p.windows.push(window),
                    Some(_) => {}
                },
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        out.push(found.ok_or_else(|| whole(&rel, first_error.unwrap_or_default()))?);
    }
    Ok(out)
}

fn verify_one(ca: &[u8], pem: &[u8], at: CertsAt) -> Result<(PartyId, [u8; 32], Window), String> {
    let text = std::str::from_utf8(pem).map_err(|e| e.to_string())?;
    let validity = validity_of(&pem_certificate(text).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let when = match at {
        CertsAt::Time(t) => t,
        CertsAt::Written => validity.not_before,
    };
    let (party, key) = verify_party_cert(ca, pem, when).map_err(|e| e.to_string())?;
    let window = (
        validity.not_before.unix_timestamp(),
        validity.not_after.unix_timestamp(),
    );
    Ok((party, key, window))
}

/// With [`CertsAt::Written`]: every ledger's entries, from its first to its last timed one,
/// fall within the validity of its writer's certificates (a node ledger's writer is its node,
/// the release ledger's the coordinator).
pub(crate) fn check_written(
    report: &AuditReport,
    parties: &[PartyCerts],
) -> Result<(), AuditFailure> {
    for ledger in &report.ledgers {
        let (Some(first), Some(last)) = (ledger.first_time, ledger.last_time) else {
            continue; // An old ledger without times: nothing to check.
        };
        let writer = parties
            .iter()
            .find(|p| match ledger.file.strip_prefix("ledgers/node-") {
                Some(rest) => {
                    p.party.role == Role::Node
                        && rest.strip_suffix(".jsonl") == Some(p.party.name.as_str())
                }
                None => p.party.role == Role::Coordinator,
            });
        let secs = |t: fedprof_ledger::Timestamp| i64::try_from(t.0).unwrap_or(i64::MAX);
        let covered = writer.is_some_and(|w| covers(&w.windows, secs(first), secs(last)));
        if !covered {
            let reason = format!(
                "entries written from {first} to {last} are not all within the validity of a certificate of their writer"
            );
            return Err(whole(&ledger.file, reason));
        }
    }
    Ok(())
}

/// Whether the union of `windows` covers `[from, to]`.
fn covers(windows: &[Window], from: i64, to: i64) -> bool {
    let mut reached = from;
    loop {
        let Some(end) = windows
            .iter()
            .filter(|(s, e)| *s <= reached && *e >= reached)
            .map(|(_, e)| *e)
            .max()
        else {
            return false;
        };
        if end >= to {
            return true;
        }
        // Windows are whole seconds: the next one must start by the second after.
        reached = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn coverage_needs_windows_without_gaps() {
        assert!(covers(&[(0, 10)], 2, 8));
        assert!(covers(&[(0, 5), (4, 10)], 2, 8));
        assert!(covers(&[(0, 5), (6, 10)], 2, 8));
        assert!(!covers(&[(0, 5), (7, 10)], 2, 8));
        assert!(!covers(&[(3, 10)], 2, 8));
        assert!(!covers(&[], 2, 2));
    }
}
