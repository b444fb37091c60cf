//! Crashes and restarts: `kill -9` of a node (its computations in flight paid or not), of
//! the coordinator (also half-way through the effects of one input), of the analyst's
//! connection; the random draw of each fault after every step; the restarts from disk.

use std::time::Duration;

use super::{Event, Federation, Peer, current_period};
use crate::coordinator::ConnId;

impl Federation {
    pub(super) fn crash_coordinator(&mut self) {
        if self.trace {
            eprintln!("    COORDINATOR CRASH");
        }
        self.stats.coordinator_crashes += 1;
        self.coordinator.crash();
        let idle = self.config.idle_timeout;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.at_coordinator = false;
                c.broken = true;
                if c.at_peer {
                    self.schedule(idle, Event::PeerSeesClose { conn });
                }
            }
        }
        let delay = self.faults.restart_delay();
        self.schedule(delay, Event::RestartCoordinator);
    }

    pub(super) fn crash_node(&mut self, i: usize) {
        self.stats.node_crashes += 1;
        // Computations in flight: the crash came before or after their debit was fsynced.
        let pending: Vec<(Duration, u64)> = self
            .queue
            .iter()
            .filter(|(_, e)| matches!(e, Event::Computed { node, .. } if *node == i))
            .map(|(k, _)| *k)
            .collect();
        for key in pending {
            if let Some(Event::Computed { computation, .. }) = self.queue.remove(&key)
                && self.faults.chance(0.5)
            {
                let release = computation.release();
                self.nodes[i].pay_only(&computation);
                self.paid(i, &release);
            }
        }
        self.nodes[i].crash();
        if let Some(conn) = self.node_conn[i].take()
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.at_peer = false;
            c.broken = true;
            let reason = "idle timeout (the node died)".to_owned();
            self.schedule(
                self.config.idle_timeout,
                Event::CoordinatorSeesClose { conn, reason },
            );
        }
        let delay = self.faults.restart_delay();
        self.schedule(delay, Event::RestartNode(i));
    }

    pub(super) fn random_faults(&mut self) {
        let c = self.faults.config().clone();
        if self.faults.chance(c.crash_node) {
            let up: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_up())
                .collect();
            if !up.is_empty() {
                let i = up[self.faults.below(up.len())];
                self.crash_node(i);
            }
        }
        if self.coordinator.is_up()
            && self.crash_next.is_none()
            && self.faults.chance(c.crash_coordinator)
        {
            // Dies during its next input, after 1 to 4 of the effects it causes (or at its end).
            self.crash_next = Some(1 + self.faults.below(4));
        }
        if self.faults.chance(c.disconnect) {
            let open: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| !c.broken && c.at_peer)
                .map(|(k, _)| *k)
                .collect();
            if !open.is_empty() {
                let conn = open[self.faults.below(open.len())];
                self.break_conn(conn);
            }
        }
        if self.faults.chance(c.crash_analyst)
            && let Some(conn) = self.analyst_conn
        {
            self.stats.analyst_crashes += 1;
            self.break_conn(conn);
        }
    }

    pub(super) fn restart_node(&mut self, i: usize) {
        if self.nodes[i].is_up() {
            return;
        }
        match self.nodes[i].start() {
            Ok(()) => {
                self.dirty.insert(i);
                self.schedule(Duration::ZERO, Event::Dial(Peer::Node(i)));
            }
            Err(e) => {
                self.checker.at(self.stats.steps);
                let what = format!("a node cannot restart: {e}");
                self.violation(what);
            }
        }
    }

    pub(super) fn restart_coordinator(&mut self) {
        if self.coordinator.is_up() {
            return;
        }
        match self.coordinator.start(&current_period()) {
            Ok(()) => {
                let count = self.coordinator.release_count().unwrap_or(0);
                self.checker.check_coordinator_ledger(count);
            }
            Err(e) => self.violation(format!("the coordinator cannot restart: {e}")),
        }
    }
}
