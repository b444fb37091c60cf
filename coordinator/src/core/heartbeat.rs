//! The application heartbeat, decided in the coordinator's core (see docs/PROTOCOL.md,
//! "Heartbeat"): which registered nodes to ping now, and which to close for silence.

use std::time::{Duration, Instant};

use fedprof_protocol::{Body, ErrorCode, JobId, RoundId};

use super::{ConnId, Coordinator, Output};

/// The application heartbeat (see docs/PROTOCOL.md, "Heartbeat"). The coordinator pings every
/// registered node every `interval`; a node that sends nothing at all (no answer, no other
/// message) for `timeout` is closed with [`ErrorCode::Unresponsive`] and deregistered, so it
/// leaves every roster and round. QUIC keep-alives only show that the peer's network stack is
/// up; a pong comes from the node's protocol core, so it shows the node processes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time between pings to one node.
    pub interval: Duration,
    /// Longest silence of a registered node before it is closed.
    pub timeout: Duration,
}

impl Default for Heartbeat {
    /// A ping every 10 s, closed after 30 s of silence: two lost pings are survived, and a
    /// stuck node leaves rosters well within a round's default 120 s phase timeout.
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

impl Coordinator {
    /// Pings registered nodes that are due, and closes those silent for too long.
    pub(super) fn heartbeats(&mut self, now: Instant, out: &mut Vec<Output>) {
        let (interval, timeout) = (self.heartbeat.interval, self.heartbeat.timeout);
        // In connection order, so the same inputs give the same outputs (sessions are hashed).
        let mut conns: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.registered)
            .map(|(&c, _)| c)
            .collect();
        conns.sort_unstable();
        let mut silent = Vec::new();
        for conn in conns {
            let Some(s) = self.sessions.get_mut(&conn) else {
                continue;
            };
            let quiet = now.saturating_duration_since(s.heard);
            if quiet >= timeout {
                silent.push((conn, quiet));
            } else if now >= s.next_ping {
                self.pings += 1;
                s.next_ping = now + interval;
                out.push(Output::Send {
                    conn,
                    job: JobId::NONE,
                    round: RoundId(0),
                    body: Body::Ping(self.pings),
                });
            }
        }
        for (conn, quiet) in silent {
            let detail = format!(
                "nothing received for {:.1} s (heartbeat timeout {:.1} s)",
                quiet.as_secs_f64(),
                timeout.as_secs_f64()
            );
            self.reject(conn, ErrorCode::Unresponsive, detail, now, out);
        }
    }
}
