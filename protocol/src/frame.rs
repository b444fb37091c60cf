//! Length-prefixed framing: `length (u32, big-endian) || payload`, with a hard maximum.
//!
//! The receiver reads the 4-byte prefix, refuses a length above its [`FrameLimit`] before
//! reserving any memory, and only then reads the payload. [`FrameDecoder`] is the same logic for
//! a byte stream fed in arbitrary pieces (used by the fuzz targets and by any non-QUIC carrier);
//! the QUIC transport reads the prefix and payload with exact reads and [`parse_header`].

use serde::{Deserialize, Serialize};

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest frame a receiver accepts, in bytes (payload only, prefix excluded).
///
/// Between [`FrameLimit::MIN`] and [`FrameLimit::MAX`]; the default, [`FrameLimit::DEFAULT`], is
/// 16 MiB, which holds a contribution vector of two million 64-bit elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct FrameLimit(u32);

impl FrameLimit {
    /// Smallest configurable limit: every control message fits in it.
    pub const MIN: u32 = 1024;
    /// Largest configurable limit (1 GiB).
    pub const MAX: u32 = 1 << 30;
    /// The default limit, 16 MiB.
    pub const DEFAULT: FrameLimit = FrameLimit(16 << 20);
    /// An analyst's messages (job requests) are small: 64 KiB.
    pub const ANALYST: FrameLimit = FrameLimit(64 << 10);

    /// Validates a limit in bytes.
    pub fn new(bytes: u64) -> Result<Self, FrameError> {
        match u32::try_from(bytes) {
            Ok(b) if (Self::MIN..=Self::MAX).contains(&b) => Ok(FrameLimit(b)),
            _ => Err(FrameError::InvalidLimit(bytes)),
        }
    }

    /// The limit in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }
}

impl Default for FrameLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u64> for FrameLimit {
    type Error = FrameError;
    fn try_from(v: u64) -> Result<Self, FrameError> {
        FrameLimit::new(v)
    }
}

impl From<FrameLimit> for u64 {
    fn from(l: FrameLimit) -> u64 {
        u64::from(l.0)
    }
}

/// A framing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or a payload to send) is above the limit.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced or attempted length.
        len: u64,
        /// The limit in force.
        limit: u32,
    },
    /// A configured limit is out of range.
    #[error("frame limit {0} is out of range ({min}..={max} bytes)", min = FrameLimit::MIN, max = FrameLimit::MAX)]
    InvalidLimit(u64),
}

/// Prefixes `payload` with its length, refusing payloads above `limit`.
pub fn encode_frame(payload: &[u8], limit: FrameLimit) -> Result<Vec<u8>, FrameError> {
    let header = frame_header(payload.len(), limit)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(out)
}

/// The length prefix for a payload of `len` bytes, refusing lengths above `limit`.
pub fn frame_header(len: usize, limit: FrameLimit) -> Result<[u8; HEADER_LEN], FrameError> {
    Ok(check_len(len as u64, limit)?.to_be_bytes())
}

/// Reads a length prefix and checks it against `limit`; returns the payload length.
pub fn parse_header(header: [u8; HEADER_LEN], limit: FrameLimit) -> Result<usize, FrameError> {
    let len = check_len(u64::from(u32::from_be_bytes(header)), limit)?;
    Ok(len as usize)
}

fn check_len(len: u64, limit: FrameLimit) -> Result<u32, FrameError> {
    match u32::try_from(len) {
        Ok(l) if l <= limit.0 => Ok(l),
        _ => Err(FrameError::TooLarge {
            len,
            limit: limit.0,
        }),
    }
}

/// Splits a byte stream, fed in arbitrary pieces, into frames.
///
/// Buffers at most one frame (at most the limit plus the prefix). After an error the stream is
/// unusable: the peer's framing is lost, so the connection must be closed.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: FrameLimit,
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder refusing frames above `limit`.
    pub fn new(limit: FrameLimit) -> Self {
        FrameDecoder {
            limit,
            buf: Vec::new(),
        }
    }

    /// Appends received bytes.
    ///
    /// Bytes are only accepted up to the end of the frame being assembled, so a peer cannot make
    /// the buffer grow past `limit + HEADER_LEN`; the rest of `data` is returned as not consumed,
    /// to be pushed again after [`FrameDecoder::next_frame`].
    pub fn push<'a>(&mut self, data: &'a [u8]) -> Result<&'a [u8], FrameError> {
        let rest = self.fill(data, self.wanted()?);
        // If that completed the prefix, the payload's length is now known: take the payload too,
        // or a frame would need two pushes. A length above the limit is reported by the next
        // call (`next_frame` or `push`), before any payload is buffered.
        Ok(match self.wanted() {
            Ok(want) => self.fill(rest, want),
            Err(_) => rest,
        })
    }

    /// Moves bytes from `data` into the buffer until it holds `want` bytes; returns the rest.
    fn fill<'a>(&mut self, data: &'a [u8], want: usize) -> &'a [u8] {
        let take = want.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        &data[take..]
    }

    /// Total bytes needed in the buffer to complete the next step (prefix or whole frame).
    fn wanted(&self) -> Result<usize, FrameError> {
        match self.buf.get(..HEADER_LEN) {
            None => Ok(HEADER_LEN),
            Some(h) => {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(h);
                Ok(HEADER_LEN + parse_header(header, self.limit)?)
            }
        }
    }

    /// Returns the next complete frame's payload, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let want = self.wanted()?;
        if self.buf.len() < want {
            return Ok(None);
        }
        if want == HEADER_LEN {
            // Zero-length frame.
            self.buf.clear();
            return Ok(Some(Vec::new()));
        }
        let payload = self.buf.split_off(HEADER_LEN);
        self.buf.clear();
        Ok(Some(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> FrameLimit {
        FrameLimit::new(2048).unwrap()
    }

    #[test]
    fn limits_are_validated() {
        assert!(FrameLimit::new(1023).is_err());
        assert!(FrameLimit::new(u64::from(FrameLimit::MAX) + 1).is_err());
        assert_eq!(FrameLimit::new(4096).unwrap().bytes(), 4096);
        assert_eq!(FrameLimit::default().bytes(), 16 << 20);
    }

    #[test]
    fn header_is_big_endian_length() {
        // 0x00000102 = 258 bytes of payload.
        assert_eq!(parse_header([0, 0, 1, 2], limit()), Ok(258));
        let frame = encode_frame(b"abc", limit()).unwrap();
        assert_eq!(frame, [0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn oversize_is_refused_on_both_sides() {
        assert_eq!(
            parse_header([0, 0, 8, 1], limit()),
            Err(FrameError::TooLarge {
                len: 2049,
                limit: 2048
            })
        );
        assert!(matches!(
            encode_frame(&[0; 2049], limit()),
            Err(FrameError::TooLarge { .. })
        ));
        let mut d = FrameDecoder::new(limit());
        d.push(&[0xff, 0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn decoder_reassembles_byte_by_byte() {
        let mut stream = encode_frame(b"hello", limit()).unwrap();
        stream.extend(encode_frame(b"", limit()).unwrap());
        stream.extend(encode_frame(b"world!", limit()).unwrap());
        let mut d = FrameDecoder::new(limit());
        let mut frames = Vec::new();
        for byte in &stream {
            let mut rest: &[u8] = std::slice::from_ref(byte);
            while !rest.is_empty() {
                rest = d.push(rest).unwrap();
                while let Some(f) = d.next_frame().unwrap() {
                    frames.push(f);
                }
            }
        }
        assert_eq!(frames, vec![b"hello".to_vec(), vec![], b"world!".to_vec()]);
    }

    #[test]
    fn decoder_never_buffers_past_one_frame() {
        let mut stream = encode_frame(b"one", limit()).unwrap();
        stream.extend(encode_frame(b"two", limit()).unwrap());
        let mut d = FrameDecoder::new(limit());
        let rest = d.push(&stream).unwrap();
        assert_eq!(rest.len(), 7, "the second frame stays with the caller");
        assert_eq!(d.next_frame().unwrap(), Some(b"one".to_vec()));
        let rest = d.push(rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(d.next_frame().unwrap(), Some(b"two".to_vec()));
        assert_eq!(d.next_frame().unwrap(), None);
    }
}
