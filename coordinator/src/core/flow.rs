//! Floods from authenticated peers (security review M8): a peer that sends faster than any
//! protocol step needs, or keeps sending for rounds it is no longer part of, is closed, so it
//! cannot keep the core busy while honest nodes' answers wait behind its messages and miss
//! their deadlines. Sans-IO: time is the `now` the core is handed.

use std::time::Instant;

/// Messages a connection may send per second, sustained. A node in the most rounds it may
/// join at once (4) sends about six messages per round and phase, and a pong every heartbeat;
/// an analyst one request per release. 200 a second is far above both.
pub const MESSAGES_PER_SECOND: u64 = 200;

/// Messages a connection may send in a burst above the sustained rate (a node answering
/// several rounds' phases at once, an analyst resending after a reconnect).
pub const MESSAGE_BURST: u64 = 1000;

/// Messages in a row for rounds the sender is no longer part of (settled, or the sender was
/// failed or excluded) before the connection is closed. A node that is only slow sends a few
/// late answers per round, and any message for a live round resets the count.
pub const MAX_STRAY_MESSAGES: u32 = 64;

/// One connection's message budget: a token bucket in thousandths of a message, and the count
/// of stray messages in a row.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    milli_tokens: u64,
    refilled: Instant,
    stray: u32,
}

/// Why a connection is closed for flooding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flood {
    /// Over the rate.
    Rate,
    /// Too many messages in a row for rounds it is not in.
    Stray,
}

impl Flood {
    /// The detail sent to the peer and logged.
    pub(crate) fn detail(self) -> String {
        match self {
            Flood::Rate => format!(
                "more than {MESSAGE_BURST} messages at once or {MESSAGES_PER_SECOND} a second"
            ),
            Flood::Stray => format!(
                "{MAX_STRAY_MESSAGES} messages in a row for rounds this peer is not part of"
            ),
        }
    }
}

impl Flow {
    /// A full bucket at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Flow {
            milli_tokens: MESSAGE_BURST * 1000,
            refilled: now,
            stray: 0,
        }
    }

    /// Takes one message from the budget; `Err` when the connection is over its rate.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Flood> {
        let elapsed = now.saturating_duration_since(self.refilled);
        // MESSAGES_PER_SECOND thousandths of a message per millisecond.
        let refill = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(MESSAGES_PER_SECOND);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(MESSAGE_BURST * 1000);
        self.refilled = now;
        match self.milli_tokens.checked_sub(1000) {
            Some(left) => {
                self.milli_tokens = left;
                Ok(())
            }
            None => Err(Flood::Rate),
        }
    }

    /// A message for a round the sender is not part of; `Err` once there were too many in a
    /// row.
    pub(crate) fn stray(&mut self) -> Result<(), Flood> {
        self.stray = self.stray.saturating_add(1);
        if self.stray > MAX_STRAY_MESSAGES {
            Err(Flood::Stray)
        } else {
            Ok(())
        }
    }

    /// A message that served a purpose: the stray count starts again.
    pub(crate) fn useful(&mut self) {
        self.stray = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut f = Flow::new(t0);
        for _ in 0..MESSAGE_BURST {
            assert_eq!(f.admit(t0), Ok(()));
        }
        assert_eq!(f.admit(t0), Err(Flood::Rate));
        // One second refills MESSAGES_PER_SECOND messages, no more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..MESSAGES_PER_SECOND {
            assert_eq!(f.admit(t1), Ok(()));
        }
        assert_eq!(f.admit(t1), Err(Flood::Rate));
        // A long silence refills the burst, not more.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..MESSAGE_BURST {
            assert_eq!(f.admit(t2), Ok(()));
        }
        assert_eq!(f.admit(t2), Err(Flood::Rate));
        // A clock that seems to go back refills nothing and does not panic.
        assert_eq!(f.admit(t0), Err(Flood::Rate));
    }

    #[test]
    fn strays_in_a_row_are_counted_and_useful_messages_reset_them() {
        let mut f = Flow::new(Instant::now());
        for _ in 0..MAX_STRAY_MESSAGES {
            assert_eq!(f.stray(), Ok(()));
        }
        f.useful();
        for _ in 0..MAX_STRAY_MESSAGES {
            assert_eq!(f.stray(), Ok(()));
        }
        assert_eq!(f.stray(), Err(Flood::Stray));
    }
}
