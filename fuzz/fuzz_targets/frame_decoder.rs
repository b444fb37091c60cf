//! Arbitrary bytes into `FrameDecoder`, pushed in pieces whose size is the input's first byte.
//! Checks: no panic, no livelock, frames and errors identical to a one-pass reference framer, and
//! every drained frame goes through `decode` (and round-trips if it decodes).

#![no_main]

use fedprof_protocol::frame::HEADER_LEN;
use fedprof_protocol::{FrameDecoder, FrameError, FrameLimit, decode, encode};
use libfuzzer_sys::fuzz_target;

/// Small, so that valid frames are easy to reach; it is the smallest a deployment may configure.
const LIMIT: u32 = FrameLimit::MIN;

/// Frames of a whole stream, and the error it ends in if a complete prefix exceeds the limit.
fn reference(stream: &[u8]) -> (Vec<&[u8]>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some(prefix) = stream.get(pos..pos + HEADER_LEN) {
        let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes"));
        if len > LIMIT {
            return (
                frames,
                Some(FrameError::TooLarge {
                    len: len.into(),
                    limit: LIMIT,
                }),
            );
        }
        let end = pos + HEADER_LEN + len as usize;
        let Some(payload) = stream.get(pos + HEADER_LEN..end) else {
            break;
        };
        frames.push(payload);
        pos = end;
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = FrameDecoder::new(FrameLimit::new(LIMIT.into()).expect("MIN is valid"));
    let mut frames = Vec::new();
    let mut error = None;
    'stream: for mut piece in stream.chunks(chunk) {
        while !piece.is_empty() {
            let before = piece.len();
            piece = match decoder.push(piece) {
                Ok(rest) => rest,
                Err(e) => {
                    error = Some(e);
                    break 'stream;
                }
            };
            // With the buffer drained before every push, a push always consumes something.
            assert!(piece.len() < before, "push consumed nothing");
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break 'stream;
                    }
                }
            }
        }
    }
    if error.is_none() {
        error = decoder.next_frame().err();
    }
    let (want_frames, want_error) = reference(stream);
    assert_eq!(frames, want_frames);
    assert_eq!(error, want_error);
    for frame in &frames {
        if let Ok(envelope) = decode(frame) {
            let bytes = encode(&envelope).expect("a decoded envelope encodes");
            assert_eq!(
                decode(&bytes).expect("re-encoded envelope decodes"),
                envelope
            );
        }
    }
});
