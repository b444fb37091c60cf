//! Who may take a connection slot, decided before any TLS work and again once the peer is
//! authenticated: sans-IO (the accept loop in [`crate::server`] asks, and carries out the
//! answer).
//!
//! The coordinator is reachable from the internet by design, so anything it holds for a peer
//! that has not proved who it is must be small, short-lived and shared fairly (security review
//! H2: a thousand stalled handshakes once held every slot, for 40 KB/s of attacker traffic and
//! no certificate). Hence four separate limits:
//!
//! - **Address validation.** A source that has not shown it receives at its address is sent a
//!   QUIC Retry (a stateless token round trip) and holds nothing until it answers; a spoofed
//!   source never does.
//! - **Handshakes in flight**, in all and per source address, counted apart from authenticated
//!   connections, and each bounded in time by the accept loop ([`AdmissionLimits::handshake_timeout`]).
//!   A validated source that stalls its handshakes fills its own per-source share, not the
//!   federation's.
//! - **Authenticated connections**, in all ([`AdmissionLimits::max_connections`]) and per
//!   identity: one stolen or buggy certificate cannot open every slot.
//! - **Roles.** A role the server has no messages for (an auditor at the coordinator, another
//!   coordinator) is refused as soon as its certificate is verified.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use fedprof_protocol::{PartyId, Role};

/// The accept loop's limits. Every field is a named, documented limit of the coordinator's
/// `[limits]` config; [`AdmissionLimits::default`] states the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Most authenticated connections at once. Default 1,024.
    pub max_connections: usize,
    /// Most handshakes in flight at once, from all sources. Default 128.
    pub max_handshakes: usize,
    /// Most handshakes in flight from one source address. Default 16.
    pub max_handshakes_per_source: usize,
    /// Most authenticated connections of one identity (a node reconnecting briefly overlaps
    /// its old connection; an analyst may run a few jobs at once). Default 8.
    pub max_connections_per_identity: usize,
    /// A handshake not finished in this time is dropped. Default 10 s.
    pub handshake_timeout: Duration,
    /// Send a Retry to every source that has not validated its address. Default on.
    pub validate_addresses: bool,
    /// Roles that may connect at all. Default: nodes and analysts.
    pub roles: &'static [Role],
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_connections: 1024,
            max_handshakes: 128,
            max_handshakes_per_source: 16,
            max_connections_per_identity: 8,
            handshake_timeout: Duration::from_secs(10),
            validate_addresses: true,
            roles: &[Role::Node, Role::Analyst],
        }
    }
}

/// What to do with a new incoming connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnIncoming {
    /// Start the handshake; call [`Admission::handshake_over`] with the same source when it
    /// ends, however it ends.
    Accept,
    /// Answer with a QUIC Retry (the source must prove its address first); nothing is held.
    Retry,
    /// Refuse at the QUIC level, before any TLS work.
    Refuse(Refused),
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every authenticated slot is taken.
    #[error("connection limit reached ({0})")]
    Connections(usize),
    /// Too many handshakes in flight.
    #[error("handshake limit reached ({0} in flight)")]
    Handshakes(usize),
    /// Too many handshakes in flight from this source.
    #[error("handshake limit for this source reached ({0} in flight)")]
    SourceHandshakes(usize),
    /// This identity already holds its share of connections.
    #[error("{peer} already has {limit} connections")]
    Identity {
        /// The identity.
        peer: PartyId,
        /// The per-identity limit.
        limit: usize,
    },
    /// This server has nothing to say to this role.
    #[error("{0} may not connect here")]
    Role(PartyId),
}

/// The accept loop's counts. The accept loop keeps one behind a lock and reports every start
/// and end of a handshake or connection; the counts never go below zero (an end without a
/// start is ignored).
#[derive(Debug, Default)]
pub struct Admission {
    limits: AdmissionLimits,
    handshakes: usize,
    per_source: HashMap<IpAddr, usize>,
    connections: usize,
    per_identity: HashMap<PartyId, usize>,
}

impl Admission {
    /// No handshakes or connections yet.
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            ..Admission::default()
        }
    }

    /// The limits.
    pub fn limits(&self) -> &AdmissionLimits {
        &self.limits
    }

    /// A new connection from `source`, whose address QUIC has (`validated`) or has not yet
    /// validated. Order: authenticated slots (no point shaking hands when none is free), then
    /// validation, then the handshake caps; an accepted handshake is counted at once.
    pub fn on_incoming(&mut self, source: IpAddr, validated: bool) -> OnIncoming {
        if self.connections >= self.limits.max_connections {
            return OnIncoming::Refuse(Refused::Connections(self.limits.max_connections));
        }
        if self.limits.validate_addresses && !validated {
            return OnIncoming::Retry;
        }
        if self.handshakes >= self.limits.max_handshakes {
            return OnIncoming::Refuse(Refused::Handshakes(self.handshakes));
        }
        let from_source = self.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.limits.max_handshakes_per_source {
            return OnIncoming::Refuse(Refused::SourceHandshakes(from_source));
        }
        self.handshakes += 1;
        *self.per_source.entry(source).or_insert(0) += 1;
        OnIncoming::Accept
    }

    /// A handshake that [`Admission::on_incoming`] accepted from `source` ended (finished,
    /// failed or timed out).
    pub fn handshake_over(&mut self, source: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
            self.handshakes = self.handshakes.saturating_sub(1);
        }
    }

    /// The handshake of `peer` finished: may it take a connection slot? On `Ok` the slot is
    /// counted; call [`Admission::connection_over`] when the connection ends.
    pub fn on_authenticated(&mut self, peer: &PartyId) -> Result<(), Refused> {
        if !self.limits.roles.contains(&peer.role) {
            return Err(Refused::Role(peer.clone()));
        }
        if self.connections >= self.limits.max_connections {
            return Err(Refused::Connections(self.limits.max_connections));
        }
        let mine = self.per_identity.get(peer).copied().unwrap_or(0);
        if mine >= self.limits.max_connections_per_identity {
            return Err(Refused::Identity {
                peer: peer.clone(),
                limit: self.limits.max_connections_per_identity,
            });
        }
        self.connections += 1;
        *self.per_identity.entry(peer.clone()).or_insert(0) += 1;
        Ok(())
    }

    /// A connection [`Admission::on_authenticated`] admitted ended.
    pub fn connection_over(&mut self, peer: &PartyId) {
        if let Some(n) = self.per_identity.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.per_identity.remove(peer);
            }
            self.connections = self.connections.saturating_sub(1);
        }
    }

    /// Handshakes in flight and authenticated connections, for logs.
    pub fn counts(&self) -> (usize, usize) {
        (self.handshakes, self.connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedprof_protocol::PartyName;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn party(role: Role, name: &str) -> PartyId {
        PartyId {
            role,
            name: PartyName::new(name).unwrap(),
        }
    }

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_connections: 3,
            max_handshakes: 4,
            max_handshakes_per_source: 2,
            max_connections_per_identity: 2,
            ..AdmissionLimits::default()
        }
    }

    #[test]
    fn unvalidated_sources_get_a_retry_and_hold_nothing() {
        let mut a = Admission::new(limits());
        for _ in 0..1000 {
            assert_eq!(a.on_incoming(ip(2), false), OnIncoming::Retry);
        }
        assert_eq!(a.counts(), (0, 0));
        assert_eq!(a.on_incoming(ip(2), true), OnIncoming::Accept);
        let mut off = limits();
        off.validate_addresses = false;
        assert_eq!(
            Admission::new(off).on_incoming(ip(2), false),
            OnIncoming::Accept
        );
    }

    /// Security review H2: one source stalling its handshakes fills its own share only, and
    /// the total cap on handshakes is apart from the authenticated connections.
    #[test]
    fn stalled_handshakes_from_one_source_leave_room_for_others() {
        let mut a = Admission::new(limits());
        assert_eq!(a.on_incoming(ip(2), true), OnIncoming::Accept);
        assert_eq!(a.on_incoming(ip(2), true), OnIncoming::Accept);
        for _ in 0..100 {
            assert_eq!(
                a.on_incoming(ip(2), true),
                OnIncoming::Refuse(Refused::SourceHandshakes(2))
            );
        }
        assert_eq!(a.on_incoming(ip(3), true), OnIncoming::Accept);
        assert_eq!(a.on_incoming(ip(4), true), OnIncoming::Accept);
        assert_eq!(
            a.on_incoming(ip(5), true),
            OnIncoming::Refuse(Refused::Handshakes(4))
        );
        // A timed-out handshake gives its slot back.
        a.handshake_over(ip(2));
        assert_eq!(a.on_incoming(ip(5), true), OnIncoming::Accept);
        assert_eq!(a.counts(), (4, 0));
        // Ends without a start change nothing.
        a.handshake_over(ip(9));
        assert_eq!(a.counts(), (4, 0));
    }

    #[test]
    fn roles_identities_and_the_connection_cap() {
        let mut a = Admission::new(limits());
        let auditor = party(Role::Auditor, "aud");
        assert_eq!(
            a.on_authenticated(&auditor),
            Err(Refused::Role(auditor.clone()))
        );
        assert_eq!(
            a.on_authenticated(&party(Role::Coordinator, "c")),
            Err(Refused::Role(party(Role::Coordinator, "c")))
        );
        let n1 = party(Role::Node, "n1");
        assert_eq!(a.on_authenticated(&n1), Ok(()));
        assert_eq!(a.on_authenticated(&n1), Ok(()));
        assert_eq!(
            a.on_authenticated(&n1),
            Err(Refused::Identity {
                peer: n1.clone(),
                limit: 2
            })
        );
        let an = party(Role::Analyst, "a");
        assert_eq!(a.on_authenticated(&an), Ok(()));
        assert_eq!(
            a.on_authenticated(&party(Role::Node, "n2")),
            Err(Refused::Connections(3))
        );
        // Full: new handshakes are refused before any TLS work.
        assert_eq!(
            a.on_incoming(ip(2), true),
            OnIncoming::Refuse(Refused::Connections(3))
        );
        a.connection_over(&n1);
        assert_eq!(a.counts(), (0, 2));
        assert_eq!(a.on_authenticated(&party(Role::Node, "n2")), Ok(()));
        // A connection that was never admitted ending changes nothing.
        a.connection_over(&auditor);
        assert_eq!(a.counts(), (0, 3));
    }
}
