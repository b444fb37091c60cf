//! Certificates that may no longer be used, decided in the coordinator's core (security
//! review H6, H7): a peer whose certificate is revoked or expired is refused when it connects,
//! and a live connection is closed as soon as a list revoking it is loaded or its certificate
//! expires (a deadline like any other), so such a node leaves every round and never appears
//! in a roster again.
//!
//! The list itself (file, CA signature, sequence numbers) is read and checked by
//! `fedprof_transport::revocation`; the shell hands the core the fingerprints in force with
//! [`super::Input::Revoked`], at start and after every reload (SIGHUP).

use std::collections::BTreeSet;
use std::time::Instant;

use fedprof_protocol::ErrorCode;
use fedprof_transport::Fingerprint;
use tracing::warn;

use super::{ConnId, Coordinator, Output, Session};

/// The detail of the `Error` frame a revoked peer is closed with (code
/// [`ErrorCode::RoleNotPermitted`]: its certificate may not send anything any more).
pub const REVOKED: &str = "certificate revoked";
/// The detail of the `Error` frame a peer is closed with when its certificate expires.
pub const EXPIRED: &str = "certificate expired";

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
        let revoked = |c: &Self, s: &Session| c.is_revoked(&s.certificate);
        self.close_where(revoked, REVOKED, now, out);
    }

    /// Refuses a new connection whose certificate is revoked, or expired at `now` (it was
    /// valid at the handshake, a moment ago); returns whether it did.
    pub(super) fn refuse_unusable(
        &self,
        conn: ConnId,
        (party, der, valid_until): (&fedprof_protocol::PartyId, &[u8], Option<Instant>),
        now: Instant,
        out: &mut Vec<Output>,
    ) -> bool {
        let detail = if self.is_revoked(der) {
            REVOKED
        } else if valid_until.is_some_and(|t| t <= now) {
            EXPIRED
        } else {
            return false;
        };
        warn!(peer = %party, %detail, "refusing a connection");
        out.push(Output::Close {
            conn,
            code: ErrorCode::RoleNotPermitted,
            detail: detail.into(),
        });
        true
    }

    /// Closes every connection whose certificate has expired by `now` (called on every tick
    /// and before a roster is built).
    pub(super) fn close_expired(&mut self, now: Instant, out: &mut Vec<Output>) {
        let expired = |_: &Self, s: &Session| s.valid_until.is_some_and(|t| t <= now);
        self.close_where(expired, EXPIRED, now, out);
    }

    /// Closes every connection whose session is `unusable`, with `detail`.
    fn close_where(
        &mut self,
        unusable: impl Fn(&Self, &Session) -> bool,
        detail: &str,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        // In connection order, so the same inputs give the same outputs (sessions are hashed).
        let mut conns: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| unusable(self, s))
            .map(|(conn, _)| *conn)
            .collect();
        conns.sort_unstable();
        for conn in conns {
            if let Some(s) = self.sessions.get(&conn) {
                warn!(peer = %s.party, %detail, "closing its connection");
            }
            self.reject(conn, ErrorCode::RoleNotPermitted, detail.into(), now, out);
        }
    }
}
