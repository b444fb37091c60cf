//! Message types. Every message travels in an [`Envelope`]: a [`Header`] (job, round, sender
//! sequence number) and a [`Body`]. The protocol version is not a field here: the codec writes it
//! in front of the envelope and refuses any other version before looking at the rest.
//!
//! Variant order is part of the wire format (postcard encodes an enum variant as its index), so
//! new variants go at the end and existing ones are never reordered; `tests/vectors.rs` pins the
//! bytes.

use serde::{Deserialize, Serialize};

use crate::identity::{PartyId, PartyName};

/// A job, numbered by the coordinator. [`JobId::NONE`] marks messages that are not about a job
/// (registration, connection-level errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl JobId {
    /// "Not about a job".
    pub const NONE: JobId = JobId(0);
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

/// A round within a job (a job may take several rounds, e.g. one per k-means iteration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoundId(pub u32);

/// What every message carries besides its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The job the message is about, or [`JobId::NONE`].
    pub job: JobId,
    /// The round within the job (0 when not about a job).
    pub round: RoundId,
    /// The sender's sequence number on this connection: 0, 1, 2, ... with no gaps. A receiver
    /// refuses a repeated, skipped or reordered number (see [`crate::seq`]).
    pub seq: u64,
}

/// A complete message: header and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Job, round and sequence number.
    pub header: Header,
    /// What is said.
    pub body: Body,
}

/// The messages of the protocol. Who may send which is enforced by the receiver from the
/// sender's certificate role (see `docs/PROTOCOL.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Node -> coordinator, first message on a connection.
    Register(Register),
    /// Coordinator -> node: registration accepted, with the identity read from the certificate.
    Registered(Registered),
    /// Coordinator -> node: a job the node is asked to take part in.
    JobAnnounce(JobAnnounce),
    /// Node -> coordinator: the node takes part in the announced job.
    Accept,
    /// Node -> coordinator: the node declines the announced job, and why.
    Refuse(Refusal),
    /// Node -> coordinator: a plain contribution. Kept for the wire format's variant order;
    /// the secure round refuses it (contributions travel as `SecAgg` masked inputs). Remove
    /// at the next protocol version.
    Submit(Contribution),
    /// Coordinator -> node: the released result of a job the node contributed to.
    Result(JobResult),
    /// Analyst -> coordinator: run this job (idempotent per request id).
    SubmitJob(Submission),
    /// Coordinator -> analyst: how a submitted job ended.
    Outcome(JobOutcome),
    /// Either direction: a protocol error; the sender closes the stream after it.
    Error(ErrorFrame),
    /// Node -> coordinator: a secure-aggregation message of the announced job's round.
    SecAgg(crate::secagg::NodeMessage),
    /// Coordinator -> node: a secure-aggregation message relayed or addressed to the node.
    SecAggRelay(crate::secagg::CoordinatorMessage),
    /// Node -> coordinator: the node's signed ledger entry debiting this job's release (one
    /// JSON line, see `docs/LEDGER.md`), sent before its masked input.
    Receipt(String),
    /// Coordinator -> node: the round of the header's job is over for this node, and why.
    /// The node drops the job and frees its slot at once (a contributor to a published
    /// release gets [`Body::Result`] instead). Sent for every way a round ends, so no node
    /// holds a slot for a round that cannot use it (review finding M4).
    RoundOver(RoundOver),
    /// Coordinator -> node: application heartbeat; the node answers [`Body::Pong`] with the
    /// same number from its protocol core, which shows the core (not only the QUIC stack)
    /// is processing messages. See `docs/PROTOCOL.md`, "Heartbeat".
    Ping(u64),
    /// Node -> coordinator: the answer to [`Body::Ping`], carrying its number.
    Pong(u64),
}

impl Body {
    /// A short name for logs (never the payload).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Register(_) => "register",
            Body::Registered(_) => "registered",
            Body::JobAnnounce(_) => "job-announce",
            Body::Accept => "accept",
            Body::Refuse(_) => "refuse",
            Body::Submit(_) => "submit",
            Body::Result(_) => "result",
            Body::SubmitJob(_) => "submit-job",
            Body::Outcome(_) => "outcome",
            Body::Error(_) => "error",
            Body::SecAgg(m) => m.kind(),
            Body::SecAggRelay(_) => "secagg-relay",
            Body::Receipt(_) => "receipt",
            Body::RoundOver(_) => "round-over",
            Body::Ping(_) => "ping",
            Body::Pong(_) => "pong",
        }
    }
}

/// A node's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The node's software version, for the coordinator's logs.
    pub software: String,
}

/// The coordinator's answer to [`Register`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// Who the coordinator took the node to be, from its certificate.
    pub party: PartyId,
}

/// The kinds of job. Each fixes the layout of the contribution vector. One kind today (the
/// transaction totals the analyst CLI asks for are a feature query too); an enum so that
/// future kinds are new variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSpec {
    /// A linear release over each node's customer features (see [`crate::query`]): the
    /// building block of profiling jobs.
    Features(Box<crate::query::FeatureQuery>),
}

impl JobSpec {
    /// Number of ring elements in a contribution to this job.
    pub fn vector_len(&self) -> usize {
        match self {
            JobSpec::Features(q) => q.vector_len(),
        }
    }

    /// A short name for logs and reports.
    pub fn name(&self) -> &'static str {
        match self {
            JobSpec::Features(_) => "features",
        }
    }
}

/// An announced job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAnnounce {
    /// What to compute.
    pub spec: JobSpec,
    /// How long the coordinator waits for each phase of this node's part, in milliseconds.
    pub timeout_ms: u32,
    /// How each node bounds its contribution and how much noise it adds.
    pub release: ReleaseParams,
    /// The secure-aggregation round the contribution goes through.
    pub secagg: SecAggSetup,
    /// The profiling job this release belongs to and who asked for it; nodes budget per job
    /// and per analyst with it, and it is recorded with the release in every ledger.
    pub profile: crate::profile::ProfileTag,
    /// 32 fresh random bytes the coordinator draws for this round. With the spec and the
    /// release parameters it is bound into the round configuration every node signs
    /// ([`JobAnnounce::release_binding`]), so no two rounds share a configuration digest
    /// (which names the release in the ledgers), and nodes told different queries, noise or
    /// `n_min` refuse each other's keys.
    pub nonce: [u8; 32],
    /// The latest debit receipt of the addressed node that the coordinator's ledger recorded
    /// (`None`: none yet). Differs per node and is not part of the release binding. A node
    /// whose own ledger does not hold that very entry was restored from an older copy, which
    /// would reset the budget it spent since: it refuses with [`RefuseReason::RolledBack`]
    /// (review finding L9; docs/LEDGER.md, "Rollback protection"). Boxed to keep `Body`
    /// small; postcard encodes a box as its content.
    pub last_receipt: Option<Box<ReceiptHead>>,
}

/// Where a node's debit entry sits in the node's own ledger: its sequence number and the
/// SHA-256 of its canonical line (the ledger's entry digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptHead {
    /// The entry's `seq`.
    pub seq: u64,
    /// SHA-256 of the entry's line.
    pub digest: [u8; 32],
}

impl JobAnnounce {
    /// The canonical bytes of what a node's signature on the round must cover besides the
    /// roster and the graph: the protocol version, the spec (the whole query), the release
    /// parameters (variances, `n_min`, colluders) and the nonce, in the wire encoding.
    ///
    /// # Errors
    ///
    /// [`EncodeError::Postcard`](crate::EncodeError::Postcard) if postcard fails, which it
    /// does not for plain data in memory. An error, not an empty fallback: an empty binding
    /// would be the same for every release, so rounds would no longer be bound to their
    /// nonce (security review L5).
    pub fn release_binding(&self) -> Result<Vec<u8>, crate::EncodeError> {
        Ok(postcard::to_stdvec(&(
            crate::PROTOCOL_VERSION,
            &self.spec,
            &self.release,
            &self.profile,
            &self.nonce,
        ))?)
    }
}

/// An exact non-negative fraction `numer / denom` on the wire. Receivers check `denom != 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    /// Numerator.
    pub numer: u64,
    /// Denominator (non-zero).
    pub denom: u64,
}

/// The privacy parameters of one release, fixed by the coordinator's policy and checked by
/// every node against its own budget before anything leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseParams {
    /// Variance of each node's discrete Gaussian noise share on every coordinate: exactly one
    /// entry (a list so that a future job kind may give one per coordinate). The bounds of
    /// each customer's contribution are in the query itself.
    pub node_variance: Vec<Fraction>,
    /// Fewest contributing nodes the round accepts (`n_min`).
    pub min_contributors: u32,
    /// Nodes assumed to collude with the coordinator (`c`); only the other shares count as
    /// noise in the accounting.
    pub colluders: u32,
}

/// Who takes part in a job's secure aggregation, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecAggSetup {
    /// The participating nodes; a node's index in the round is its position here.
    pub roster: Vec<RosterEntry>,
    /// Shares needed to rebuild a secret (`t`).
    pub threshold: u32,
    /// Which pairs of nodes mask against each other.
    pub graph: SecAggGraph,
    /// Fewest survivors whose sum may be unmasked: the release's `n_min`, or the whole roster
    /// for a later release of a profiling job (every release of a job covers the same nodes).
    /// Nodes bind the round to the larger of this and `n_min`.
    pub min_survivors: u32,
}

/// One participant: its name and its certificate, which every node verifies against the
/// federation CA before trusting the key in it (the coordinator cannot substitute keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// The node's name.
    pub name: PartyName,
    /// The node's certificate (DER).
    #[serde(with = "serde_byte_string")]
    pub certificate: Vec<u8>,
}

/// The masking graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecAggGraph {
    /// Every node with every other.
    Complete,
    /// SecAgg+: each node with `neighbours` others, chosen from the public `seed`.
    Sparse {
        /// Neighbours per node (even).
        neighbours: u32,
        /// Public seed of the graph.
        seed: [u8; 32],
    },
}

/// Why a node declined a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseReason {
    /// The node does not implement this job kind.
    UnsupportedJob,
    /// The node's data could not be read or failed validation.
    DataUnavailable,
    /// The job would take the node past its privacy budget.
    BudgetExhausted,
    /// The node's operator policy forbids this job.
    Policy,
    /// The node is already busy with another job.
    Busy,
    /// The release is below the node's own privacy floor (too few assumed colluders or
    /// honest shares, or more than it spends per release, per job or per analyst).
    PrivacyFloor,
    /// The node's ledger lacks a receipt the coordinator recorded from it: its state was
    /// restored from an older copy (see [`JobAnnounce::last_receipt`]).
    RolledBack,
}

impl RefuseReason {
    /// Every reason, in wire order (for generators and exhaustive checks).
    pub const ALL: [RefuseReason; 7] = [
        RefuseReason::UnsupportedJob,
        RefuseReason::DataUnavailable,
        RefuseReason::BudgetExhausted,
        RefuseReason::Policy,
        RefuseReason::Busy,
        RefuseReason::PrivacyFloor,
        RefuseReason::RolledBack,
    ];
}

/// Why a round is over for the node told so (see [`Body::RoundOver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundOverReason {
    /// The release was published; this node is not among its contributors (it failed or
    /// was not among the survivors whose sum was unmasked).
    NotInSum,
    /// The round aborted; nothing was released.
    Aborted,
    /// This node was excluded from the round that goes on without it (it missed a phase
    /// deadline).
    Excluded,
}

/// The round of a job is over for the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundOver {
    /// Why.
    pub reason: RoundOverReason,
    /// Details for the node's log (never customer data).
    pub detail: String,
}

/// A refusal with a human-readable detail (never customer data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The machine-readable reason.
    pub reason: RefuseReason,
    /// What the node operator would want to read.
    pub detail: String,
}

/// A node's contribution: a vector over the ring `Z_2^64`, laid out as the job's spec says.
/// Today the values are plain; with secure aggregation they are masked and noised, and the
/// coordinator's merge (wrapping addition) stays the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Ring elements (on the wire: fixed-width, see [`ring_vector`]).
    #[serde(with = "ring_vector")]
    pub values: Vec<u64>,
}

/// A released result: the ring sum of the contributions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// What was computed.
    pub spec: JobSpec,
    /// The sum over contributors, element-wise in `Z_2^64` (on the wire: see [`ring_vector`]).
    #[serde(with = "ring_vector")]
    pub values: Vec<u64>,
    /// The nodes whose contributions are in the sum, sorted.
    pub contributors: Vec<PartyName>,
    /// The bounds and noise of the release, so readers can size confidence intervals.
    pub release: ReleaseParams,
    /// The profiling job the release belongs to (its id goes into the job's later releases).
    pub profile: crate::profile::ProfileTag,
}

/// An analyst's job, with the key that makes sending it again safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The analyst's idempotency key: the same request sent again gets the outcome of the
    /// first (a published result is sent back, a round still running is joined), never a
    /// second round. A request the coordinator saw announced but never published (it
    /// restarted mid-round) runs again as a new release.
    pub request: crate::profile::RequestId,
    /// What to compute.
    pub spec: JobSpec,
}

/// How one node failed a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFailure {
    /// The node.
    pub node: PartyName,
    /// What went wrong, for people.
    pub reason: String,
}

/// How a submitted job ended, as told to the analyst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    /// A result was released; some nodes may have failed without preventing it.
    Completed {
        /// The released result.
        result: JobResult,
        /// Nodes that were asked but are not in the result.
        failures: Vec<NodeFailure>,
    },
    /// Nothing was released.
    Aborted {
        /// Why, for people.
        reason: String,
        /// Nodes that failed.
        failures: Vec<NodeFailure>,
    },
}

/// The closed set of protocol error codes. A receiver that sends one closes the stream after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A frame's length prefix was above the receiver's limit.
    FrameTooLarge,
    /// The bytes did not decode as an envelope.
    Malformed,
    /// The envelope's protocol version is not the receiver's.
    UnsupportedVersion,
    /// A sequence number was repeated, skipped or reordered.
    OutOfSequence,
    /// The sender's certificate role may not send this message.
    RoleNotPermitted,
    /// The message is valid but not expected in the current state.
    UnexpectedMessage,
    /// The message names a job or round the receiver does not know.
    UnknownJob,
    /// The contribution does not have the job's layout.
    BadContribution,
    /// The receiver is shutting down.
    ShuttingDown,
    /// Another connection registered the same party; this one is closed.
    Replaced,
    /// The receiver failed internally; the sender did nothing wrong.
    Internal,
    /// The peer did not answer the application heartbeat in time (its connection may be up,
    /// but nothing processes its messages).
    Unresponsive,
}

/// A protocol error as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// What kind of error.
    pub code: ErrorCode,
    /// Details for the peer's logs (never customer data).
    pub detail: String,
}

/// Wire form of a vector over `Z_2^64`: one byte string of 8 little-endian bytes per element.
///
/// Masked and noised vectors are uniformly random, so varints would cost about 9.3 bytes per
/// element instead of 8, and be slower to encode and decode; fixed width is smaller and a plain
/// copy. A byte string whose length is not a multiple of 8 is refused.
pub mod ring_vector {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes `values` as one byte string.
    pub fn serialize<S: Serializer>(values: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    /// Deserializes a byte string of 8-byte little-endian elements.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_bytes(RingVisitor)
    }

    struct RingVisitor;

    impl<'de> Visitor<'de> for RingVisitor {
        type Value = Vec<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string of 8-byte little-endian ring elements")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u64>, E> {
            if !bytes.len().is_multiple_of(8) {
                return Err(E::invalid_length(bytes.len(), &self));
            }
            Ok(bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut le = [0u8; 8];
                    le.copy_from_slice(c);
                    u64::from_le_bytes(le)
                })
                .collect())
        }

        /// Self-describing formats without byte strings (JSON) write bytes as a sequence of
        /// numbers; read them back the same way, so a result survives a JSON round trip.
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element::<u8>()? {
                bytes.push(b);
            }
            self.visit_bytes(&bytes)
        }
    }
}

/// Serializes a `Vec<u8>` as one byte string (a length and a copy) instead of postcard's
/// element-by-element sequence.
pub(crate) mod serde_byte_string {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl Visitor<'_> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }
    }
}
