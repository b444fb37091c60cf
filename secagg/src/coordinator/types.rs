//! The coordinator's public vocabulary: phases, progress, steps, refusals and abort reasons.

use crate::unmask::UnmaskedSum;
use fedprof_protocol::secagg::{CoordinatorMessage, RoundTag};

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Collecting key advertisements.
    AdvertiseKeys,
    /// Collecting encrypted shares.
    ShareKeys,
    /// Collecting masked inputs.
    MaskedInput,
    /// Collecting unmask responses.
    Unmask,
    /// The sum was released.
    Finished,
    /// The round aborted; nothing was released.
    Aborted,
}

/// Why a round aborted. Nothing is released after an abort.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbortReason {
    /// Fewer than the threshold answered in a phase.
    #[error("only {have} node(s) answered in phase {phase:?}; the threshold is {need}")]
    TooFewSurvivors {
        /// The phase that ended.
        phase: Phase,
        /// Nodes that answered.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// Some node's neighbourhood fell below the threshold (sparse graph): its secrets could
    /// not be rebuilt, or its neighbours would refuse to go on.
    #[error(
        "only {have} of party {party}'s neighbourhood answered in phase {phase:?}; {need} are needed"
    )]
    NeighbourhoodTooSmall {
        /// The phase that ended.
        phase: Phase,
        /// The node.
        party: u32,
        /// Its neighbours (itself included) still in the round.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// A secret rebuilt from `t` shares does not match its commitment (self-mask seed) or its
    /// public key (mask key): a share was wrong. Nothing is released.
    #[error("the {what} of party {owner} could not be rebuilt from its shares")]
    ReconstructionFailed {
        /// Whose secret.
        owner: u32,
        /// Which secret.
        what: &'static str,
    },
}

/// Why a node's message was refused. The round goes on without that node for this phase
/// (a refused node is not counted and is not heard again in the round).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// The round already ended.
    #[error("the round is over ({0:?})")]
    RoundOver(Phase),
    /// The round aborted when a phase closed.
    #[error("the round aborted: {0}")]
    Aborted(AbortReason),
    /// `close_phase` was called in a final state.
    #[error("no phase to close")]
    NothingToClose,
    /// The sender index is not in the roster.
    #[error("party {0} is not in the roster")]
    UnknownParty(u32),
    /// The message claims another sender than the connection's.
    #[error("party {from} sent a message claiming to be party {claimed}")]
    SenderMismatch {
        /// The connection's party.
        from: u32,
        /// The message's sender field.
        claimed: u32,
    },
    /// The message is for another round.
    #[error("message is for {got:?}, this round is {expected:?}")]
    WrongRound {
        /// This round.
        expected: RoundTag,
        /// The message's tag.
        got: RoundTag,
    },
    /// The message belongs to another phase (late or early).
    #[error("{kind} is not expected in phase {phase:?}")]
    OutOfPhase {
        /// Current phase.
        phase: Phase,
        /// The message kind.
        kind: &'static str,
    },
    /// The sender is not (or no longer) in the round: it missed an earlier phase, or sent an
    /// invalid message before.
    #[error("party {0} is not taking part in this phase")]
    NotExpected(u32),
    /// The sender already answered this phase (a replay or a repeat).
    #[error("party {0} already answered this phase")]
    Duplicate(u32),
    /// The advertisement's signature does not verify, or its keys are not distinct.
    #[error("advertisement of party {0} is invalid")]
    BadAdvert(u32),
    /// The message's content does not have the expected shape.
    #[error("message from party {party} is malformed: {what}")]
    Malformed {
        /// The sender.
        party: u32,
        /// What was wrong.
        what: &'static str,
    },
}

/// How far the current phase has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Nodes that answered this phase.
    pub answered: usize,
    /// Nodes expected to answer.
    pub expected: usize,
}

impl Progress {
    /// Every expected node answered: the driver can close the phase without waiting.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.answered == self.expected
    }
}

/// What closing a phase produced.
#[derive(Debug)]
pub enum Step {
    /// Messages of the next phase, one per recipient.
    Send(Vec<(u32, CoordinatorMessage)>),
    /// The round's result.
    Finished(UnmaskedSum),
}
