//! The envelope codec: `version (u16, big-endian) || postcard(Envelope)`.
//!
//! Decoding is strict and total. It refuses an unknown version before reading anything else,
//! refuses trailing bytes, and allocates memory linear in the input's length: postcard checks a
//! string's or byte sequence's declared length against the bytes actually present, and serde
//! caps a sequence's up-front reservation, so a length prefix of 2^60 costs nothing. The factor
//! is not small for every type (security review M1): a one-byte `QueryPart::Count` decodes into
//! about 56 bytes, a two-byte `RevealedShare` into 32. Hence two bounds: the secure-aggregation
//! lists are refused above [`crate::bounded::MAX_PARTIES`] items before any is decoded (at most
//! a few megabytes whatever the frame), and the frames of analysts, whose requests hold the
//! query parts, are limited to 64 KiB by the coordinator (`FrameLimit::ANALYST`, at most about
//! 3.5 MB decoded). Strings and byte strings decode one to one. Callers bound the input itself
//! with [`crate::FrameLimit`]. Encodings are not canonical (postcard accepts overlong varints): hash
//! or sign a re-encoding, never received bytes.

use crate::PROTOCOL_VERSION;
use crate::frame::{FrameError, FrameLimit, HEADER_LEN, frame_header};
use crate::message::Envelope;

/// Encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// postcard failed; with this crate's message types it does not for in-memory buffers.
    #[error("could not encode a message: {0}")]
    Postcard(#[from] postcard::Error),
    /// The encoded message is larger than the frame limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Why bytes are not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than the two version bytes.
    #[error("message of {0} bytes is too short to hold a protocol version")]
    TooShort(usize),
    /// The version is not [`PROTOCOL_VERSION`].
    #[error(
        "protocol version {got} is not supported (this build speaks version {PROTOCOL_VERSION})"
    )]
    UnsupportedVersion {
        /// The version found.
        got: u16,
    },
    /// The bytes after the version are not a postcard-encoded envelope.
    #[error("malformed message: {0}")]
    Malformed(postcard::Error),
    /// A valid envelope followed by extra bytes.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
}

/// Encodes an envelope with the current protocol version in front.
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let out = PROTOCOL_VERSION.to_be_bytes().to_vec();
    Ok(postcard::to_extend(envelope, out)?)
}

/// Encodes an envelope directly as a frame (`length || version || postcard`), in one buffer
/// with no copy, refusing messages above `limit`.
pub fn encode_framed(envelope: &Envelope, limit: FrameLimit) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    let mut out = postcard::to_extend(envelope, out)?;
    let header = frame_header(out.len() - HEADER_LEN, limit)?;
    out[..HEADER_LEN].copy_from_slice(&header);
    Ok(out)
}

/// Decodes exactly one envelope from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let (version, rest) = match bytes {
        [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
        _ => return Err(DecodeError::TooShort(bytes.len())),
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion { got: version });
    }
    let (envelope, trailing) =
        postcard::take_from_bytes::<Envelope>(rest).map_err(DecodeError::Malformed)?;
    if !trailing.is_empty() {
        return Err(DecodeError::TrailingBytes(trailing.len()));
    }
    Ok(envelope)
}
