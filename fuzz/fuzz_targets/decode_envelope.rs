//! Arbitrary bytes into `decode`: never a panic, errors consistent with the bytes, no trailing
//! byte accepted and no truncation either, and any envelope that decodes re-encodes to a
//! canonical form that decodes to the same value.

#![no_main]

use fedprof_protocol::{DecodeError, PROTOCOL_VERSION, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(envelope) => {
            let bytes = encode(&envelope).expect("a decoded envelope encodes");
            // Postcard accepts overlong varints, so `bytes` may be shorter than `data`, never
            // longer; the value and the canonical bytes are fixed points.
            assert!(bytes.len() <= data.len());
            let again = decode(&bytes).expect("a re-encoded envelope decodes");
            assert_eq!(again, envelope);
            assert_eq!(encode(&again).expect("encodes"), bytes);
            // Exactly one envelope: one byte more is trailing, one byte less is not a message.
            let mut longer = data.to_vec();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes(1)));
            assert!(decode(&data[..data.len() - 1]).is_err());
        }
        Err(DecodeError::TooShort(n)) => assert!(n == data.len() && n < 2),
        Err(DecodeError::UnsupportedVersion { got }) => {
            assert_ne!(got, PROTOCOL_VERSION);
            assert_eq!(got.to_be_bytes(), data[..2]);
        }
        Err(DecodeError::TrailingBytes(n)) => {
            assert!(n >= 1 && n < data.len());
            assert!(decode(&data[..data.len() - n]).is_ok());
        }
        Err(DecodeError::Malformed(_)) => assert_eq!(data[..2], PROTOCOL_VERSION.to_be_bytes()),
    }
});
