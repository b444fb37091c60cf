//! The simulated connections: QUIC streams as ordered queues with a latency, faults drawn
//! per message (drop, duplicate, reorder, jitter), breaks noticed after the idle timeout,
//! closes, and dialling with the parties' reconnection backoff.

use std::time::Duration;

use fedprof_coordinator::Input;
use fedprof_protocol::Envelope;

use super::{Event, Federation, Peer, seed_bytes};
use crate::coordinator::ConnId;

/// One connection, as both ends see it.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) peer: Peer,
    /// The coordinator still holds it open.
    pub(super) at_coordinator: bool,
    /// The peer still holds it open.
    pub(super) at_peer: bool,
    /// Broken: nothing more gets through.
    pub(super) broken: bool,
    /// When the last in-order message towards the coordinator arrives.
    last_up: Duration,
    /// When the last in-order message towards the peer arrives.
    last_down: Duration,
}

impl Federation {
    /// Sends `envelope` on `conn`, towards the coordinator (`up`) or the peer.
    pub(super) fn transmit(&mut self, conn: ConnId, up: bool, envelope: Envelope) {
        self.stats.messages += 1;
        let fate = self.faults.fate();
        let latency = self.config.latency;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.broken {
            return;
        }
        if fate.dropped {
            self.stats.dropped += 1;
            return;
        }
        let mut at = self.now + latency + fate.jitter;
        let last = if up { &mut c.last_up } else { &mut c.last_down };
        if !fate.reordered {
            at = at.max(*last + Duration::from_micros(1));
            *last = at;
        }
        let copies = if fate.duplicated {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for k in 0..copies {
            let event = if up {
                Event::ToCoordinator {
                    conn,
                    envelope: envelope.clone(),
                }
            } else {
                Event::ToPeer {
                    conn,
                    envelope: envelope.clone(),
                }
            };
            let delay = (at + Duration::from_micros(k)).saturating_sub(self.now);
            self.schedule(delay, event);
        }
    }

    /// Breaks `conn`: both ends notice after the idle timeout.
    pub(super) fn break_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.broken {
            return;
        }
        c.broken = true;
        self.stats.disconnects += 1;
        let idle = self.config.idle_timeout;
        let reason = "idle timeout (connection broke)".to_owned();
        self.schedule(idle, Event::CoordinatorSeesClose { conn, reason });
        self.schedule(idle, Event::PeerSeesClose { conn });
    }

    pub(super) fn peer_closed(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.at_peer {
            return;
        }
        c.at_peer = false;
        let peer = c.peer;
        match peer {
            Peer::Node(i) => {
                if self.node_conn[i] == Some(conn) {
                    self.node_conn[i] = None;
                    self.nodes[i].disconnect();
                }
            }
            Peer::Analyst => {
                if self.analyst_conn == Some(conn) {
                    self.analyst_conn = None;
                    self.analyst.disconnected();
                }
            }
        }
        let wait = self.next_backoff(peer);
        self.schedule(wait, Event::Dial(peer));
    }

    pub(super) fn next_backoff(&mut self, peer: Peer) -> Duration {
        let b = self
            .backoff
            .entry(peer)
            .or_insert(Duration::from_millis(500));
        let wait = *b;
        *b = (*b * 2).min(Duration::from_secs(8));
        wait + self.faults.between(Duration::ZERO, wait / 2)
    }

    pub(super) fn dial(&mut self, peer: Peer) {
        let (up, connected) = match peer {
            Peer::Node(i) => (self.nodes[i].is_up(), self.node_conn[i].is_some()),
            Peer::Analyst => (true, self.analyst_conn.is_some()),
        };
        if !up || connected {
            return;
        }
        if !self.coordinator.is_up() {
            let wait = self.next_backoff(peer);
            self.schedule(wait, Event::Dial(peer));
            return;
        }
        self.backoff.remove(&peer);
        let conn = self.next_conn;
        self.next_conn += 1;
        let (party, key) = match peer {
            Peer::Node(i) => (self.nodes[i].party().clone(), self.nodes[i].verifying_key()),
            Peer::Analyst => (
                self.analyst.party().clone(),
                crate::node::signing_key(seed_bytes(self.config.seed, u64::MAX)).verifying_key(),
            ),
        };
        self.conns.insert(
            conn,
            Conn {
                peer,
                at_coordinator: true,
                at_peer: true,
                broken: false,
                last_up: self.now,
                last_down: self.now,
            },
        );
        self.coordinator_input(Input::Connected {
            conn,
            party,
            certificate: key.to_bytes().to_vec(),
            key,
            valid_until: None,
        });
        match peer {
            Peer::Node(i) => {
                self.node_conn[i] = Some(conn);
                let now = self.node_now();
                let outs = self.nodes[i].connect(now);
                self.node_outputs(i, outs);
            }
            Peer::Analyst => {
                self.analyst_conn = Some(conn);
                let outs = self.analyst.connected();
                self.analyst_outputs(outs);
            }
        }
    }
}
