//! Revoked certificates, decided in the coordinator's core (security review H6): a peer whose
//! certificate is on the federation's revocation list is refused when it connects, and a live
//! connection is closed as soon as the list naming it is loaded, so a revoked node leaves
//! every round and never appears in a roster again.
//!
//! The list itself (file, CA signature, sequence numbers) is read and checked by
//! `fedprof_transport::revocation`; the shell hands the core the fingerprints in force with
//! [`super::Input::Revoked`], at start and after every reload (SIGHUP).

use std::collections::BTreeSet;
use std::time::Instant;

use fedprof_protocol::ErrorCode;
use fedprof_transport::Fingerprint;
use tracing::warn;

use super::{ConnId, Coordinator, Output};

/// The detail of the `Error` frame a revoked peer is closed with (code
/// [`ErrorCode::RoleNotPermitted`]: its certificate may not send anything any more).
pub const REVOKED: &str = "certificate revoked";

impl Coordinator {
    /// Whether certificate `der` is revoked by the list in force.
    pub(super) fn is_revoked(&self, der: &[u8]) -> bool {
        self.revoked.contains(&Fingerprint::of(der))
    }

    /// Puts `revoked` in force and closes every connection whose certificate it names.
    pub(super) fn on_revoked(
        &mut self,
        revoked: BTreeSet<Fingerprint>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        self.revoked = revoked;
        // In connection order, so the same inputs give the same outputs (sessions are hashed).
        let mut conns: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| self.is_revoked(&s.certificate))
            .map(|(conn, _)| *conn)
            .collect();
        conns.sort_unstable();
        for conn in conns {
            if let Some(s) = self.sessions.get(&conn) {
                warn!(peer = %s.party, "certificate revoked; closing its connection");
            }
            self.reject(conn, ErrorCode::RoleNotPermitted, REVOKED.into(), now, out);
        }
    }

    /// Refuses a new connection with a revoked certificate; returns whether it did.
    pub(super) fn refuse_revoked(
        &self,
        conn: ConnId,
        party: &fedprof_protocol::PartyId,
        der: &[u8],
        out: &mut Vec<Output>,
    ) -> bool {
        if !self.is_revoked(der) {
            return false;
        }
        warn!(peer = %party, "refusing a revoked certificate");
        out.push(Output::Close {
            conn,
            code: ErrorCode::RoleNotPermitted,
            detail: REVOKED.into(),
        });
        true
    }
}
