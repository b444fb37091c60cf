//! Per-sender sequence numbers: each side numbers the messages it sends on a connection 0, 1,
//! 2, ...; the receiver accepts exactly the next number. Together with TLS (which already stops
//! an on-path attacker from injecting or replaying records) this catches replays and reordering
//! above the transport, e.g. a message re-sent by a buggy or malicious peer.

/// The sending side: hands out 0, 1, 2, ...
#[derive(Debug, Default)]
pub struct SeqCounter {
    next: u64,
}

impl SeqCounter {
    /// A counter starting at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number for the next message sent.
    pub fn next_seq(&mut self) -> u64 {
        let n = self.next;
        // Saturation is unreachable in practice (2^64 messages); the receiver refuses anything
        // after u64::MAX, so a saturated counter's repeats are refused, not accepted.
        self.next = self.next.saturating_add(1);
        n
    }
}

/// A sequence number that was not the next expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "sequence number {got} received where {expected} was expected (replayed, skipped or reordered message)"
)]
pub struct SeqError {
    /// The number that was due.
    pub expected: u64,
    /// The number that came.
    pub got: u64,
}

/// The receiving side: accepts exactly 0, 1, 2, ... and, after `u64::MAX`, nothing more.
#[derive(Debug, Default)]
pub struct SeqTracker {
    expected: u64,
    exhausted: bool,
}

impl SeqTracker {
    /// A tracker expecting 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `seq` if it is the next number, and advances.
    pub fn check(&mut self, seq: u64) -> Result<(), SeqError> {
        if seq != self.expected || self.exhausted {
            return Err(SeqError {
                expected: self.expected,
                got: seq,
            });
        }
        match self.expected.checked_add(1) {
            Some(next) => self.expected = next,
            None => self.exhausted = true,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_number_is_accepted_once() {
        let mut t = SeqTracker {
            expected: u64::MAX,
            exhausted: false,
        };
        t.check(u64::MAX).unwrap();
        assert!(
            t.check(u64::MAX).is_err(),
            "a repeat of the last number is a replay"
        );
    }

    #[test]
    fn counter_and_tracker_agree() {
        let (mut c, mut t) = (SeqCounter::new(), SeqTracker::new());
        for _ in 0..5 {
            t.check(c.next_seq()).unwrap();
        }
    }

    #[test]
    fn replay_skip_and_reorder_are_refused() {
        let mut t = SeqTracker::new();
        t.check(0).unwrap();
        t.check(1).unwrap();
        assert_eq!(
            t.check(1),
            Err(SeqError {
                expected: 2,
                got: 1
            }),
            "replay"
        );
        assert_eq!(
            t.check(3),
            Err(SeqError {
                expected: 2,
                got: 3
            }),
            "skip"
        );
        assert_eq!(
            t.check(0),
            Err(SeqError {
                expected: 2,
                got: 0
            }),
            "reorder"
        );
        t.check(2).unwrap();
    }
}
