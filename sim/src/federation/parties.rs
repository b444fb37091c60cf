//! What each party's answer turns into: the coordinator's effects (sends, closes, journal
//! and ledger records, each shown to the invariants), the nodes' sends, computations and
//! session ends, and the analyst's sends and timers.

use fedprof_coordinator::Input;
use fedprof_protocol::secagg::NodeMessage;
use fedprof_protocol::{Body, JobId};

use super::trace::brief_effect;
use super::{Event, Federation, Peer};
use crate::analyst::AnalystOut;
use crate::coordinator::Effect;
use crate::node::NodeOut;

impl Federation {
    pub(super) fn violation(&mut self, what: String) {
        self.checker.fail_with(what);
    }

    pub(super) fn paid(&mut self, node: usize, release: &fedprof_ledger::ReleaseId) {
        if self.nodes[node].paid_vector(release).is_some() {
            let n = self.nodes[node].party().name.clone();
            self.checker.on_debit(&n, release);
        }
        self.dirty.insert(node);
    }

    pub(super) fn coordinator_input(&mut self, input: Input) {
        let crash = self.crash_next.take();
        let now = self.now();
        let (effects, crashed) = self.coordinator.handle(input, now, crash);
        for effect in effects {
            if self.trace {
                eprintln!("    coordinator: {}", brief_effect(&effect));
            }
            match effect {
                Effect::Send { conn, envelope } => {
                    if let Body::JobAnnounce(a) = &envelope.body {
                        self.checker.on_announce(envelope.header.job, a);
                    }
                    if self.conns.get(&conn).is_some_and(|c| c.at_coordinator) {
                        self.transmit(conn, false, envelope);
                    }
                }
                Effect::Close { conn, .. } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.at_coordinator = false;
                    }
                    self.schedule(self.config.latency, Event::PeerSeesClose { conn });
                }
                Effect::Journaled(record) => self.checker.on_journal(&record),
                Effect::Recorded {
                    job,
                    nonce,
                    outcome,
                } => {
                    let (nodes, index) = (&self.nodes, &self.index);
                    self.checker.on_recorded(
                        job,
                        nonce,
                        &outcome,
                        self.config.min_nodes,
                        |n, r| index.get(n).and_then(|&i| nodes[i].paid_vector(r)),
                    );
                }
                Effect::RecordRefused { job, reason } => {
                    self.violation(format!("the ledger refused {job}'s release: {reason}"));
                }
            }
        }
        if crashed || (crash.is_some() && self.coordinator.is_up()) {
            self.crash_coordinator();
        }
    }

    pub(super) fn node_outputs(&mut self, i: usize, outs: Vec<NodeOut>) {
        for out in outs {
            match out {
                NodeOut::Send { job, body } => {
                    if let Body::SecAgg(NodeMessage::Unmask(r)) = &body {
                        self.checker.on_unmask(job, r);
                    }
                    if let Some(conn) = self.node_conn[i] {
                        self.transmit(conn, true, Self::envelope(job, body));
                    }
                }
                NodeOut::Compute(computation) => {
                    let at = self.config.compute_time;
                    self.schedule(
                        at,
                        Event::Computed {
                            node: i,
                            computation,
                        },
                    );
                }
                NodeOut::End { .. } => {
                    if let Some(conn) = self.node_conn[i].take() {
                        self.nodes[i].disconnect();
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.at_peer = false;
                        }
                        let reason = "the node ended the session".to_owned();
                        self.schedule(
                            self.config.latency,
                            Event::CoordinatorSeesClose { conn, reason },
                        );
                        let wait = self.next_backoff(Peer::Node(i));
                        self.schedule(wait, Event::Dial(Peer::Node(i)));
                    }
                }
            }
        }
        self.arm_node_tick(i);
    }

    /// Queues a tick for node `i` at its core's next deadline, unless one is queued sooner
    /// (a tick early is harmless: the core compares deadlines with the time it is handed).
    fn arm_node_tick(&mut self, i: usize) {
        let Some(deadline) = self.nodes[i].next_deadline() else {
            return;
        };
        let at = deadline.saturating_duration_since(self.base).max(self.now);
        if self.node_tick[i].is_none_or(|queued| at < queued) {
            self.node_tick[i] = Some(at);
            self.schedule(at - self.now, Event::NodeTick(i));
        }
    }

    pub(super) fn analyst_outputs(&mut self, outs: Vec<AnalystOut>) {
        for out in outs {
            match out {
                AnalystOut::Send(body) => {
                    if let Some(conn) = self.analyst_conn {
                        self.transmit(conn, true, Self::envelope(JobId::NONE, body));
                    }
                }
                AnalystOut::Timer(after) => {
                    let epoch = self.analyst.epoch();
                    self.schedule(after, Event::AnalystTimer(epoch));
                }
            }
        }
    }
}
