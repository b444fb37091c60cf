//! The fedprof wire protocol: what parties say to each other, and how it is framed.
//!
//! This crate owns the message types ([`message`]), the versioned envelope and its strict codec
//! ([`codec`]), length-prefixed framing with a hard size limit ([`frame`]), per-sender sequence
//! numbers ([`seq`]) and the party identities that certificates carry ([`identity`]).
//!
//! It does no I/O and no cryptography, and must never depend on tokio or quinn: the transport
//! crate moves the bytes, the node and coordinator crates decide what the messages mean. Every
//! decoder here is total: any byte string yields a value or a typed error, never a panic, and
//! never an allocation larger than the configured frame limit. See `docs/PROTOCOL.md`.

pub mod bounded;
pub mod codec;
pub mod frame;
pub mod identity;
pub mod message;
pub mod profile;
pub mod query;
pub mod secagg;
pub mod seq;

pub use codec::{DecodeError, EncodeError, decode, encode, encode_framed};
pub use frame::{FrameDecoder, FrameError, FrameLimit};
pub use identity::{PartyId, PartyName, PartyNameError, Role};
pub use message::{
    Body, Contribution, Envelope, ErrorCode, ErrorFrame, Fraction, Header, JobAnnounce, JobId,
    JobOutcome, JobResult, JobSpec, NodeFailure, ReceiptHead, Refusal, RefuseReason, Register,
    Registered, ReleaseParams, RosterEntry, RoundId, RoundOver, RoundOverReason, SecAggGraph,
    SecAggSetup, Submission,
};
pub use profile::{ProfileId, ProfileTag, RequestId};
pub use query::{FeatureQuery, QueryPart, Segmenter};
pub use seq::{SeqCounter, SeqError, SeqTracker};

/// The protocol version this build speaks. It is the first two bytes of every encoded envelope,
/// it is carried in the TLS ALPN identifier ([`ALPN`]) (cryptographic labels carry their own
/// version, `fedprof_crypto::LABEL_PREFIX`), so two builds that disagree on it cannot talk at
/// all rather than misread each other.
pub const PROTOCOL_VERSION: u16 = 3;

/// The ALPN protocol identifier, `fedprof/<PROTOCOL_VERSION>`. A test pins it to
/// [`PROTOCOL_VERSION`]; a peer speaking another version fails the TLS handshake.
pub const ALPN: &[u8] = b"fedprof/3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_carries_protocol_version() {
        assert_eq!(ALPN, format!("fedprof/{PROTOCOL_VERSION}").as_bytes());
    }
}
