//! Hex encoding and decoding without secret-dependent branches or table lookups.
//!
//! Key files hold hex text, so a key passes through here on every load and save. The usual
//! decoders branch on each character's range (or index a table with it), which can leak key
//! nibbles through timing or cache state; these functions use only arithmetic and masks, in the
//! manner of the `base16ct` crate. Error *positions* are found by a separate, ordinary pass that
//! runs only once decoding has already failed: the text is then not a key, and the position is
//! reported to the user anyway.

use zeroize::Zeroizing;

use crate::secret::KeyError;

/// Number of hex digits in the text form of a 32-byte value.
pub(crate) const HEX_LEN_32: usize = 64;

/// Decodes exactly [`HEX_LEN_32`] hex digits (either case) into 32 bytes.
///
/// The time taken depends on the length of `text` and on whether it is valid, never on which
/// valid digits it holds. The output is wrapped so that the decoded bytes are wiped on drop.
pub(crate) fn decode_32(text: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let found = text.chars().count();
    if found != HEX_LEN_32 {
        return Err(KeyError::WrongLength { found });
    }
    let mut out = Zeroizing::new([0u8; 32]);
    // Non-ASCII text has more than 64 bytes, and only the first 64 are decoded. That still
    // rejects it: its first non-ASCII character follows only ASCII ones, so it starts within
    // the first 64 bytes, and bytes of non-ASCII characters (0x80 and up) are never hex digits.
    let mut invalid = 0u16;
    let (pairs, _) = text.as_bytes().as_chunks::<2>();
    for (byte, [hi, lo]) in out.iter_mut().zip(pairs) {
        let hi = decode_nibble(*hi);
        let lo = decode_nibble(*lo);
        // An invalid digit decodes to 0xffff, so bit 8 and up flag it.
        invalid |= (hi | lo) >> 8;
        // Truncation keeps the two valid nibbles; on error `out` is dropped (and wiped) anyway.
        *byte = ((hi << 4) | lo) as u8;
    }
    if invalid != 0 {
        let position = text.chars().take_while(char::is_ascii_hexdigit).count() + 1;
        return Err(KeyError::NotHex { position });
    }
    Ok(out)
}

/// Appends the lowercase hex form of `bytes` to `out`, two digits per byte.
///
/// Callers holding a secret reserve capacity first, so `out` never reallocates and leaves a
/// stray copy of the digits in freed memory.
pub(crate) fn encode_lower_into(bytes: &[u8], out: &mut String) {
    for byte in bytes {
        out.push(char::from(encode_nibble(byte >> 4)));
        out.push(char::from(encode_nibble(byte & 0x0f)));
    }
}

/// The value of hex digit `c` (`0-9`, `a-f`, `A-F`), or `0xffff` if `c` is not one.
///
/// Each range test is `((lower - c) & (c - upper)) >> 8`, which is all ones exactly when
/// `lower < c < upper` (both differences negative) and zero otherwise; it selects that range's
/// offset. At most one range matches, so the sum starting at -1 is the digit value or stays -1.
fn decode_nibble(c: u8) -> u16 {
    let c = i16::from(c);
    let mut value: i16 = -1;
    // '0'..='9' is 0x30..=0x39: value = c - 0x30.
    value += (((0x2f - c) & (c - 0x3a)) >> 8) & (c - 0x30 + 1);
    // 'A'..='F' is 0x41..=0x46: value = c - 0x41 + 10.
    value += (((0x40 - c) & (c - 0x47)) >> 8) & (c - 0x41 + 10 + 1);
    // 'a'..='f' is 0x61..=0x66: value = c - 0x61 + 10.
    value += (((0x60 - c) & (c - 0x67)) >> 8) & (c - 0x61 + 10 + 1);
    // -1 reinterpreted as u16 is 0xffff, the error flag; 0..=15 are unchanged.
    value as u16
}

/// The lowercase hex digit for `nibble` (0..=15).
fn encode_nibble(nibble: u8) -> u8 {
    let n = i16::from(nibble);
    // (9 - n) >> 8 is all ones exactly when n > 9; it then adds the gap from '0'+10 to 'a'.
    let letter_gap = ((9 - n) >> 8) & i16::from(b'a' - b'0' - 10);
    // The sum is an ASCII digit or letter, so it fits in u8.
    (n + i16::from(b'0') + letter_gap) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_nibble_matches_std_for_every_byte() {
        for c in 0..=u8::MAX {
            // `to_digit(16)` accepts only ASCII digits and letters, as the key format does.
            let expected = char::from(c).to_digit(16).map_or(0xffff, |d| d as u16);
            assert_eq!(decode_nibble(c), expected, "byte {c:#04x}");
        }
    }

    #[test]
    fn encode_matches_hex_crate_for_every_byte() {
        let all: Vec<u8> = (0..=u8::MAX).collect();
        let mut ours = String::new();
        encode_lower_into(&all, &mut ours);
        assert_eq!(ours, hex::encode(&all));
    }

    #[test]
    fn decode_round_trips_both_cases() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5));
        let lower = hex::encode(bytes);
        let upper = lower.to_ascii_uppercase();
        assert_eq!(*decode_32(&lower).unwrap(), bytes);
        assert_eq!(*decode_32(&upper).unwrap(), bytes);
    }

    #[test]
    fn decode_reports_length_in_characters_and_first_bad_position() {
        let good = "ab".repeat(32);
        assert_eq!(
            decode_32(&good[1..]),
            Err(KeyError::WrongLength { found: 63 })
        );
        assert_eq!(decode_32(""), Err(KeyError::WrongLength { found: 0 }));
        // 64 characters but 65 bytes: the non-ASCII character is the error, not the length.
        let accented = format!("{}é{}", &good[..10], &good[11..]);
        assert_eq!(decode_32(&accented), Err(KeyError::NotHex { position: 11 }));
        let last_bad = format!("{}g", &good[..63]);
        assert_eq!(decode_32(&last_bad), Err(KeyError::NotHex { position: 64 }));
        let first_bad = format!(" {}", &good[1..]);
        assert_eq!(decode_32(&first_bad), Err(KeyError::NotHex { position: 1 }));
    }
}
