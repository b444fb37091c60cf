//! The frame layer's limits, byte by byte: what a frame of exactly the limit, one byte over,
//! or a header at the edges decodes to (split from `vectors.rs`, which pins the messages).

#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use fedprof_protocol::frame::{HEADER_LEN, encode_frame, parse_header};
use fedprof_protocol::{Body, Contribution, FrameDecoder, FrameError, FrameLimit};

fn limit_1024() -> FrameLimit {
    FrameLimit::new(u64::from(FrameLimit::MIN)).unwrap()
}

#[test]
fn limit_range() {
    assert_eq!(
        FrameLimit::new(u64::from(FrameLimit::MIN)).map(FrameLimit::bytes),
        Ok(1024)
    );
    assert_eq!(
        FrameLimit::new(u64::from(FrameLimit::MAX)).map(FrameLimit::bytes),
        Ok(1 << 30)
    );
    assert_eq!(FrameLimit::DEFAULT.bytes(), 16 << 20);
    for bad in [
        0,
        1023,
        (1 << 30) + 1,
        u64::from(u32::MAX) + 1 + 1024,
        u64::MAX,
    ] {
        assert_eq!(
            FrameLimit::new(bad),
            Err(FrameError::InvalidLimit(bad)),
            "{bad}"
        );
    }
    // The serde form (used by configuration files) is validated too.
    assert!(postcard::from_bytes::<FrameLimit>(&postcard::to_stdvec(&1023u64).unwrap()).is_err());
    let ok = postcard::from_bytes::<FrameLimit>(&postcard::to_stdvec(&4096u64).unwrap());
    assert_eq!(ok.map(FrameLimit::bytes), Ok(4096));
}

#[test]
fn encode_frame_accepts_exactly_the_limit() {
    let limit = limit_1024();
    let frame = encode_frame(&[0xaa; 1024], limit).unwrap();
    assert_eq!(frame.len(), HEADER_LEN + 1024);
    assert_eq!(frame[..HEADER_LEN], [0x00, 0x00, 0x04, 0x00]);
    assert_eq!(
        encode_frame(&[0xaa; 1025], limit),
        Err(FrameError::TooLarge {
            len: 1025,
            limit: 1024
        })
    );
}

#[test]
fn parse_header_at_the_edges() {
    let limit = limit_1024();
    assert_eq!(parse_header([0x00, 0x00, 0x04, 0x00], limit), Ok(1024));
    assert_eq!(
        parse_header([0x00, 0x00, 0x04, 0x01], limit),
        Err(FrameError::TooLarge {
            len: 1025,
            limit: 1024
        })
    );
    let max = FrameLimit::new(u64::from(FrameLimit::MAX)).unwrap();
    assert_eq!(parse_header([0x40, 0x00, 0x00, 0x00], max), Ok(1 << 30));
    assert_eq!(
        parse_header([0xff; 4], max),
        Err(FrameError::TooLarge {
            len: u64::from(u32::MAX),
            limit: 1 << 30
        })
    );
}

#[test]
fn decoder_refuses_a_header_above_the_limit_before_any_payload() {
    let mut d = FrameDecoder::new(limit_1024());
    // Header announcing 1025 bytes, then payload bytes the decoder must not take.
    let stream = [&[0x00, 0x00, 0x04, 0x01][..], &[0u8; 32]].concat();
    let rest = d.push(&stream).unwrap();
    assert_eq!(rest.len(), 32, "no payload is buffered behind a bad header");
    let too_large = FrameError::TooLarge {
        len: 1025,
        limit: 1024,
    };
    assert_eq!(d.next_frame(), Err(too_large.clone()));
    // The stream is dead from here on.
    assert_eq!(d.push(rest), Err(too_large.clone()));
    assert_eq!(d.next_frame(), Err(too_large));
}

#[test]
fn decoder_takes_a_frame_of_exactly_the_limit() {
    let mut d = FrameDecoder::new(limit_1024());
    let frame = encode_frame(&[0x5a; 1024], limit_1024()).unwrap();
    let (head, tail) = frame.split_at(HEADER_LEN);
    assert_eq!(d.push(head), Ok(&[][..]));
    assert_eq!(d.next_frame(), Ok(None), "prefix alone is no frame");
    assert_eq!(d.push(&tail[..1000]), Ok(&[][..]));
    assert_eq!(d.next_frame(), Ok(None), "partial payload is no frame");
    assert_eq!(d.push(&tail[1000..]), Ok(&[][..]));
    assert_eq!(d.next_frame(), Ok(Some(vec![0x5a; 1024])));
}

#[test]
fn ring_vectors_must_hold_whole_elements() {
    // Submit whose values byte string is 7 bytes long: not a whole number of 8-byte elements.
    let bytes = [&[0x00, 0x03, 0x07, 0x00, 0x03, 0x05, 0x07][..], &[0u8; 7]].concat();
    assert!(matches!(
        fedprof_protocol::decode(&bytes),
        Err(fedprof_protocol::DecodeError::Malformed(_))
    ));
    // Eight bytes are one element.
    let bytes = [
        &[0x00, 0x03, 0x07, 0x00, 0x03, 0x05, 0x08][..],
        &[1, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let env = fedprof_protocol::decode(&bytes).unwrap();
    assert_eq!(env.body, Body::Submit(Contribution { values: vec![1] }));
}
