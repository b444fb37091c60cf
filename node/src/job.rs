//! The node's part of one job's secure aggregation, as a sans-IO state machine around the
//! typestates of [`fedprof_secagg::node`]: it is handed the coordinator's relayed messages and,
//! once the local computation is done, the node's (noised) vector, and answers with the
//! messages to send. The vector may arrive before or after the share bundle that needs it.

use std::sync::Arc;

use fedprof_crypto::SigningKey;
use fedprof_protocol::secagg::{CoordinatorMessage, NodeMessage, ShareBundle};
use fedprof_protocol::{JobAnnounce, JobId, SecAggGraph};
use fedprof_secagg::{
    AwaitingBundle, AwaitingDirectory, AwaitingUnmask, GraphSpec, NodeError, Party, RoundConfig,
    RoundTag,
};
use rand_core::CryptoRng;

/// Why the node cannot take part in (or go on with) a job's secure aggregation.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The announcement's roster or parameters are unusable.
    #[error("the job's secure-aggregation setup is invalid: {0}")]
    Setup(String),
    /// This node is not in the roster.
    #[error("this node is not in the job's roster")]
    NotInRoster,
    /// The secure-aggregation state machine refused a message.
    #[error(transparent)]
    SecAgg(#[from] NodeError),
    /// A message arrived that this phase does not take.
    #[error("{0} is not expected in this phase")]
    OutOfPhase(&'static str),
}

enum Phase {
    Directory(AwaitingDirectory),
    Bundle(AwaitingBundle),
    Unmask(AwaitingUnmask),
    Done,
}

/// One job's secure-aggregation state on the node.
pub struct NodeJob<R> {
    job: JobId,
    phase: Phase,
    input: Option<Vec<u64>>,
    pending_bundle: Option<ShareBundle>,
    rng: R,
}

impl<R> std::fmt::Debug for NodeJob<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Directory(_) => "awaiting directory",
            Phase::Bundle(_) => "awaiting bundle",
            Phase::Unmask(_) => "awaiting unmask request",
            Phase::Done => "done",
        };
        f.debug_struct("NodeJob")
            .field("job", &self.job)
            .field("phase", &phase)
            .finish_non_exhaustive()
    }
}

/// Builds the round configuration every participant must agree on. `keys[i]` is the
/// certificate key of roster entry `i`, which the caller took from that entry's certificate
/// after verifying it against the federation CA and checking that it names that node.
pub fn round_config(
    job: JobId,
    announce: &JobAnnounce,
    keys: Vec<fedprof_crypto::VerifyingKey>,
) -> Result<Arc<RoundConfig>, JobError> {
    let setup = &announce.secagg;
    if keys.len() != setup.roster.len() {
        return Err(JobError::Setup("one key per roster entry is needed".into()));
    }
    let parties = setup
        .roster
        .iter()
        .zip(keys)
        .map(|(entry, verifying_key)| Party {
            name: entry.name.to_string(),
            verifying_key,
        })
        .collect();
    let graph = match setup.graph {
        SecAggGraph::Complete => GraphSpec::Complete,
        SecAggGraph::Sparse { neighbours, seed } => GraphSpec::Sparse { neighbours, seed },
    };
    RoundConfig::new(
        RoundTag {
            job: job.0,
            round: 0,
        },
        parties,
        announce.spec.vector_len(),
        graph,
        Some(setup.threshold as usize),
    )
    // C2, M4: the round is bound to the release's n_min and to the release itself (query,
    // noise, colluders, job, nonce); a graph that cannot guarantee n_min is refused here.
    .and_then(|c| {
        c.bind(
            (announce.release.min_contributors.max(setup.min_survivors)) as usize,
            announce.release.colluders as usize,
            &announce.release_binding(),
        )
    })
    .map(Arc::new)
    .map_err(|e| JobError::Setup(e.to_string()))
}

impl<R: CryptoRng> NodeJob<R> {
    /// Starts the node's part as roster entry `me`; returns the key advertisement to send.
    pub fn start(
        job: JobId,
        config: Arc<RoundConfig>,
        me: u32,
        key: &SigningKey,
        mut rng: R,
    ) -> Result<(Self, NodeMessage), JobError> {
        let (state, advert) = fedprof_secagg::node::start(config, me, key, &mut rng)?;
        let job = NodeJob {
            job,
            phase: Phase::Directory(state),
            input: None,
            pending_bundle: None,
            rng,
        };
        Ok((job, NodeMessage::Advertise(advert)))
    }

    /// Handles a message from the coordinator.
    pub fn on_relay(
        &mut self,
        message: CoordinatorMessage,
    ) -> Result<Option<NodeMessage>, JobError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, message) {
            (Phase::Directory(state), CoordinatorMessage::Directory(dir)) => {
                let (next, shares) = state.on_directory(&dir, &mut self.rng)?;
                self.phase = Phase::Bundle(next);
                Ok(Some(NodeMessage::Shares(shares)))
            }
            (Phase::Bundle(state), CoordinatorMessage::Bundle(bundle)) => {
                self.phase = Phase::Bundle(state);
                self.pending_bundle = Some(bundle);
                self.try_mask()
            }
            (Phase::Unmask(state), CoordinatorMessage::Unmask(request)) => {
                let response = state.on_unmask_request(&request)?;
                Ok(Some(NodeMessage::Unmask(response)))
            }
            (phase, message) => {
                self.phase = phase;
                Err(JobError::OutOfPhase(match message {
                    CoordinatorMessage::Directory(_) => "a key directory",
                    CoordinatorMessage::Bundle(_) => "a share bundle",
                    CoordinatorMessage::Unmask(_) => "an unmask request",
                }))
            }
        }
    }

    /// Hands over the node's vector (already bounded, noised and debited).
    pub fn set_input(&mut self, input: Vec<u64>) -> Result<Option<NodeMessage>, JobError> {
        self.input = Some(input);
        self.try_mask()
    }

    /// Masks and sends the vector once both it and the share bundle are here.
    fn try_mask(&mut self) -> Result<Option<NodeMessage>, JobError> {
        let (Some(input), Some(bundle)) = (&self.input, &self.pending_bundle) else {
            return Ok(None);
        };
        let Phase::Bundle(state) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Ok(None);
        };
        let (next, masked) = state.on_bundle(bundle, input)?;
        self.phase = Phase::Unmask(next);
        self.input = None;
        self.pending_bundle = None;
        Ok(Some(NodeMessage::Masked(masked)))
    }
}
