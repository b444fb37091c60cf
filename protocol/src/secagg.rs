//! The secure-aggregation messages: plain serde data (integers and byte strings, no crypto
//! types), carried in [`crate::Body::SecAgg`] and [`crate::Body::SecAggRelay`]. Parsing them
//! into keys, signatures and shares, and every check, happens in the `fedprof-secagg` crate
//! (`node` and `coordinator` modules); this crate only defines their shape.
//!
//! Every message names its round ([`RoundTag`]: job and round id), and every signature and
//! AEAD associated data covers the tag as well, so a message or share made for one round is
//! refused in another. Parties are named by their dense index `0..n` in the round's roster.
//!
//! Field order and variant order are part of the wire format (postcard); add at the end.

use serde::{Deserialize, Serialize};

/// The round a message belongs to: the coordinator's job id and the round within the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoundTag {
    /// The job (as `fedprof_protocol::JobId`).
    pub job: u64,
    /// The round within the job (as `fedprof_protocol::RoundId`).
    pub round: u32,
}

/// Phase 0, node -> coordinator (and relayed to the node's neighbours): the node's two fresh
/// X25519 public keys and a commitment to its self-mask seed, signed with its certificate key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertiseKeys {
    /// The round.
    pub tag: RoundTag,
    /// The advertising node's index.
    pub sender: u32,
    /// Public key whose agreements key the share envelopes (`c_u^PK` in the paper).
    pub cipher_public: [u8; 32],
    /// Public key whose agreements seed the pairwise masks (`s_u^PK`).
    pub mask_public: [u8; 32],
    /// `SHA-256` commitment to the self-mask seed `b_u` (label `secagg/self-mask-commitment`);
    /// the coordinator checks the reconstructed seed against it.
    pub self_mask_commitment: [u8; 32],
    /// Ed25519 signature (64 bytes) over the round configuration digest, the tag, the sender
    /// and the three values above (label `secagg/advertise`).
    pub signature: Vec<u8>,
}

/// Phase 1, coordinator -> node: the advertisements of the recipient's neighbourhood (itself
/// included) that arrived, sorted by sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDirectory {
    /// The round.
    pub tag: RoundTag,
    /// The node this directory is for.
    pub recipient: u32,
    /// One advertisement per neighbour that advertised, sorted by sender.
    #[serde(with = "crate::bounded::parties")]
    pub adverts: Vec<AdvertiseKeys>,
}

/// One encrypted pair of shares, addressed to a neighbour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShare {
    /// The neighbour the shares are for.
    pub recipient: u32,
    /// ChaCha20-Poly1305 of (self-mask seed share || mask-key share), 96 bytes.
    pub ciphertext: Vec<u8>,
}

/// Phase 1, node -> coordinator: the node's shares for each neighbour in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareKeys {
    /// The round.
    pub tag: RoundTag,
    /// The sharing node.
    pub sender: u32,
    /// One envelope per other neighbour in the directory, sorted by recipient.
    #[serde(with = "crate::bounded::parties")]
    pub shares: Vec<SealedShare>,
}

/// An envelope relayed by the coordinator, with the node that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedShare {
    /// The node that sealed the envelope.
    pub sender: u32,
    /// The ciphertext, as the sender produced it.
    pub ciphertext: Vec<u8>,
}

/// Phase 2, coordinator -> node: the envelopes addressed to the recipient by the neighbours
/// that shared, sorted by sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareBundle {
    /// The round.
    pub tag: RoundTag,
    /// The node these envelopes are for.
    pub recipient: u32,
    /// The envelopes, sorted by sender.
    #[serde(with = "crate::bounded::parties")]
    pub shares: Vec<RelayedShare>,
}

/// Phase 2, node -> coordinator: the masked input `y_u`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedInput {
    /// The round.
    pub tag: RoundTag,
    /// The contributing node.
    pub sender: u32,
    /// `x_u + PRG(b_u) + sum_v (+/-) PRG(s_uv)` over `Z_2^64`, 8 little-endian bytes per
    /// element (a byte string, so that postcard writes it at 8 bytes per element rather than
    /// as up to 10-byte varints).
    #[serde(with = "crate::message::serde_byte_string")]
    pub masked: Vec<u8>,
}

/// Phase 3, coordinator -> node: which of the recipient's neighbours sent a masked input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    /// The round.
    pub tag: RoundTag,
    /// The node asked to unmask.
    pub recipient: u32,
    /// The survivors among the recipient's neighbourhood (itself included), sorted.
    #[serde(with = "crate::bounded::parties")]
    pub survivors: Vec<u32>,
}

/// A share revealed to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedShare {
    /// The node whose secret this is a share of.
    pub owner: u32,
    /// The share's 40 bytes (five field elements, little-endian).
    pub share: Vec<u8>,
}

/// Phase 3, node -> coordinator: for every neighbour that shared with the node, exactly one
/// share: of the self-mask seed for a survivor, of the mask secret key for a dropped node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskResponse {
    /// The round.
    pub tag: RoundTag,
    /// The responding node.
    pub sender: u32,
    /// Shares of `b_v` for each survivor `v`, sorted by owner.
    #[serde(with = "crate::bounded::parties")]
    pub self_mask_shares: Vec<RevealedShare>,
    /// Shares of `s_v^SK` for each dropped `v`, sorted by owner.
    #[serde(with = "crate::bounded::parties")]
    pub mask_key_shares: Vec<RevealedShare>,
}

/// Everything a node sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeMessage {
    /// Phase 0.
    Advertise(AdvertiseKeys),
    /// Phase 1.
    Shares(ShareKeys),
    /// Phase 2.
    Masked(MaskedInput),
    /// Phase 3.
    Unmask(UnmaskResponse),
}

impl NodeMessage {
    /// A short name for logs (never the payload).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            NodeMessage::Advertise(_) => "advertise-keys",
            NodeMessage::Shares(_) => "share-keys",
            NodeMessage::Masked(_) => "masked-input",
            NodeMessage::Unmask(_) => "unmask-response",
        }
    }
}

/// Everything the coordinator sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorMessage {
    /// Phase 1.
    Directory(KeyDirectory),
    /// Phase 2.
    Bundle(ShareBundle),
    /// Phase 3.
    Unmask(UnmaskRequest),
}
