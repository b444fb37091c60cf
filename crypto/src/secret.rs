//! Secret values as types: a 32-byte key and a raw customer id.
//!
//! Both types print as `<redacted>`, are wiped when dropped, implement neither `Display` nor
//! serde, and hand out their contents only through a method named `expose_secret`, so that a
//! reviewer can find every place a secret leaves its wrapper with one search. Neither is `Clone`:
//! a second copy is a second thing to wipe; pass a reference instead.

use core::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ct_hex;

/// Why a key file's text is not a key. Never contains any part of the text it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Once surrounding whitespace is trimmed, the text is not exactly 64 characters long.
    #[error(
        "a key must be exactly 64 hex characters (32 bytes), found {found} characters \
         after trimming surrounding whitespace"
    )]
    WrongLength {
        /// How many characters (not bytes) remained after trimming.
        found: usize,
    },
    /// The text has 64 characters but one of them is not a hex digit (`0-9`, `a-f`, `A-F`).
    #[error("a key must be hex: character {position} of 64 is not a hex digit")]
    NotHex {
        /// 1-based position of the first offending character, counted after trimming.
        position: usize,
    },
}

/// A 32-byte secret key (for example a node's pseudonym key).
///
/// `Debug` prints `SecretKey32(<redacted>)`; equality is constant-time; the bytes are zeroized on
/// drop. Key files hold the key as 64 hex digits ([`SecretKey32::from_hex`],
/// [`SecretKey32::to_hex`]); reading and writing the file, with mode 0600, is the caller's job.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey32([u8; 32]);

impl SecretKey32 {
    /// Wraps 32 secret bytes. The caller should wipe its own copy of `bytes` (for instance by
    /// holding it in [`Zeroizing`]): this wrapper can only wipe what it owns.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the body of a key file: exactly 64 hex digits, either case, with any surrounding
    /// whitespace (such as a final newline) ignored.
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongLength`] when the trimmed text is not 64 characters long, and
    /// [`KeyError::NotHex`] when one of them is not a hex digit. The error says where, never
    /// what: it carries no character of `text`.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = ct_hex::decode_32(text.trim())?;
        Ok(Self(*bytes))
    }

    /// The key as 64 lowercase hex digits, for writing a key file. The string is wiped on drop.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        // Exact capacity up front: growing the string would leave a copy in freed memory.
        let mut out = Zeroizing::new(String::with_capacity(ct_hex::HEX_LEN_32));
        ct_hex::encode_lower_into(&self.0, &mut out);
        out
    }

    /// The secret bytes. Every call is a place where the key leaves its wrapper: keep the
    /// borrow short and never log, format or copy what it returns.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey32(<redacted>)")
    }
}

impl ConstantTimeEq for SecretKey32 {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Constant-time: the time taken does not depend on where two keys differ.
impl PartialEq for SecretKey32 {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SecretKey32 {}

/// A customer id exactly as a data source spelled it, before pseudonymization.
///
/// Raw ids identify people, so they never leave ingest: `Debug` prints
/// `RawCustomerId(<redacted>)`, the string is zeroized on drop, and equality compares contents in
/// constant time (lengths in variable time: the length of an id is not treated as secret). No
/// normalization happens here; [`crate::Pseudonymizer`] owns that.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RawCustomerId(String);

impl RawCustomerId {
    /// Takes ownership of the id, so that this wrapper is the one copy to wipe.
    #[must_use]
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    /// The raw id. Every call is a place where the id leaves its wrapper: pass it straight to
    /// the pseudonymizer and never log, format or store it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawCustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawCustomerId(<redacted>)")
    }
}

impl ConstantTimeEq for RawCustomerId {
    fn ct_eq(&self, other: &Self) -> Choice {
        // `subtle` returns early (false) on a length mismatch and compares contents in constant time.
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

/// Contents compared in constant time; see [`RawCustomerId`].
impl PartialEq for RawCustomerId {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for RawCustomerId {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key whose hex form is easy to search for in formatted output.
    fn sample_bytes() -> [u8; 32] {
        core::array::from_fn(|i| 0xa0 ^ (i as u8))
    }

    /// Compile-time check that both secret types wipe themselves on drop.
    fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn secret_types_zeroize_on_drop() {
        assert_zeroize_on_drop::<SecretKey32>();
        assert_zeroize_on_drop::<RawCustomerId>();
        // `zeroize` is what drop runs; check it reaches the bytes.
        let mut key = SecretKey32::from_bytes(sample_bytes());
        key.zeroize();
        assert_eq!(key.expose_secret(), &[0u8; 32]);
        let mut id = RawCustomerId::new("C001".to_owned());
        id.zeroize();
        assert_eq!(id.expose_secret(), "");
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SecretKey32::from_bytes(sample_bytes());
        let hex_lower = hex::encode(sample_bytes());
        for shown in [format!("{key:?}"), format!("{key:#?}")] {
            assert_eq!(shown, "SecretKey32(<redacted>)");
            assert!(!shown.to_ascii_lowercase().contains(&hex_lower[..8]));
        }
        // Nor does a struct that derives Debug around it.
        let wrapped = format!("{:?}", Some(&key));
        assert!(!wrapped.contains(&hex_lower[..8]), "{wrapped}");
    }

    #[test]
    fn debug_never_shows_raw_id() {
        let id = RawCustomerId::new("customer-4711".to_owned());
        let shown = format!("{id:?}");
        assert_eq!(shown, "RawCustomerId(<redacted>)");
        assert!(!shown.contains("4711"));
    }

    #[test]
    fn key_equality_compares_every_byte() {
        let key = SecretKey32::from_bytes(sample_bytes());
        assert_eq!(key, SecretKey32::from_bytes(sample_bytes()));
        for i in [0, 17, 31] {
            let mut other = sample_bytes();
            other[i] ^= 1;
            assert_ne!(key, SecretKey32::from_bytes(other), "byte {i}");
        }
    }

    #[test]
    fn raw_id_equality_is_exact() {
        let id = RawCustomerId::new("C001".to_owned());
        assert_eq!(id, RawCustomerId::new("C001".to_owned()));
        assert_ne!(id, RawCustomerId::new("c001".to_owned()));
        assert_ne!(id, RawCustomerId::new("C0011".to_owned()));
    }

    #[test]
    fn hex_round_trip_with_surrounding_whitespace() {
        let hex_lower = hex::encode(sample_bytes());
        let key = SecretKey32::from_bytes(sample_bytes());
        assert_eq!(key.to_hex().as_str(), hex_lower);
        for body in [
            hex_lower.clone(),
            format!("{hex_lower}\n"),
            format!("  {hex_lower}\r\n"),
            format!("\t{}\n", hex_lower.to_ascii_uppercase()),
        ] {
            assert_eq!(SecretKey32::from_hex(&body).unwrap(), key, "{body:?}");
        }
    }

    #[test]
    fn from_hex_refuses_malformed_text_without_echoing_it() {
        let good = hex::encode(sample_bytes());
        let cases = [
            (good[..63].to_owned(), KeyError::WrongLength { found: 63 }),
            (format!("{good}0"), KeyError::WrongLength { found: 65 }),
            (String::new(), KeyError::WrongLength { found: 0 }),
            (
                format!("{}x{}", &good[..20], &good[21..]),
                KeyError::NotHex { position: 21 },
            ),
            // Inner whitespace is not trimmed.
            (
                format!("{} {}", &good[..32], &good[33..]),
                KeyError::NotHex { position: 33 },
            ),
        ];
        for (text, expected) in cases {
            let err = SecretKey32::from_hex(&text).unwrap_err();
            assert_eq!(err, expected, "{text:?}");
            // The message says where the text went wrong.
            let where_ = match err {
                KeyError::WrongLength { found } => format!("found {found} characters"),
                KeyError::NotHex { position } => format!("character {position} of 64"),
            };
            assert!(err.to_string().contains(&where_), "{err}");
            for shown in [err.to_string(), format!("{err:?}")] {
                // No run of 6 input characters may appear in what a user or log sees.
                let chars: Vec<char> = text.chars().collect();
                for window in chars.windows(6) {
                    let window: String = window.iter().collect();
                    assert!(!shown.contains(&window), "{shown:?} echoes {window:?}");
                }
            }
        }
    }
}
