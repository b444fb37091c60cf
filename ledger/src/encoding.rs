//! Small value types of the ledger format, each with exactly one text form.
//!
//! Every string that can appear in a ledger line is restricted to printable ASCII without `"`
//! or `\`, so the canonical JSON of an entry (see [`crate::entry`]) never needs an escape and
//! two implementations cannot disagree on it.

use std::fmt;
use std::str::FromStr;

use fedprof_protocol::{PartyId, PartyName, Role};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::clock::Month;

/// A SHA-256 value, written as 64 lowercase hex digits (uppercase is refused, so the text form
/// is unique).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a text is not a value of one of this module's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not exactly the expected number of lowercase hex digits.
    #[error("{what}: expected {len} lowercase hex digits, got {got:?}")]
    Hex {
        /// What was being read.
        what: &'static str,
        /// Expected number of hex digits.
        len: usize,
        /// The text (truncated to 80 characters).
        got: String,
    },
    /// A writer is not `<role>/<name>` with a known role and a valid party name.
    #[error("writer {0:?} is not <role>/<name> (e.g. node/branch-a)")]
    Writer(String),
    /// A label or period holds a character outside its alphabet or has a bad length.
    #[error("{what} {got:?} must be 1 to {max} characters of a-z, A-Z, 0-9, '-', '_', '.'")]
    Label {
        /// What was being read.
        what: &'static str,
        /// Longest accepted length.
        max: usize,
        /// The text (truncated to 80 characters).
        got: String,
    },
}

fn truncated(s: &str) -> String {
    s.chars().take(80).collect()
}

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], FormatError> {
    let bad = || FormatError::Hex {
        what,
        len: 2 * N,
        got: truncated(s),
    };
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
    Ok(out)
}

impl Digest {
    /// The all-zero digest: the `prev` of entry 0.
    pub const ZERO: Digest = Digest([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        parse_hex::<32>("digest", s).map(Digest)
    }
}

/// An Ed25519 signature, written as 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureHex(pub(crate) [u8; 64]);

impl fmt::Debug for SignatureHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}..)", hex::encode(&self.0[..8]))
    }
}

impl FromStr for SignatureHex {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        parse_hex::<64>("signature", s).map(SignatureHex)
    }
}

impl fmt::Display for SignatureHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The party that wrote and signed an entry, written `<role>/<name>` (e.g. `node/branch-a`),
/// the same pair as the certificate's `fedprof://<role>/<name>` URI.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Writer(PartyId);

impl Writer {
    /// The writer `party`.
    pub fn new(party: PartyId) -> Self {
        Writer(party)
    }

    /// The party.
    pub fn party(&self) -> &PartyId {
        &self.0
    }
}

impl fmt::Display for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.role, self.0.name)
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Writer({self})")
    }
}

impl FromStr for Writer {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let bad = || FormatError::Writer(truncated(s));
        let (role, name) = s.split_once('/').ok_or_else(bad)?;
        let role = Role::from_label(role).ok_or_else(bad)?;
        let name = PartyName::new(name).map_err(|_| bad())?;
        Ok(Writer(PartyId { role, name }))
    }
}

fn label_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted text, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, FormatError> {
                let s = s.into();
                if label_ok(&s, $max) {
                    Ok($name(s))
                } else {
                    Err(FormatError::Label { what: $what, max: $max, got: truncated(&s) })
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, FormatError> {
                $name::new(s)
            }
        }
    };
}

label_type!(
    /// A budget period: a UTC month `YYYY-MM` (e.g. `2026-11`; see [`Period::month`]). The
    /// type reads any 1 to 32 characters of `a-z A-Z 0-9 - _ .`, because ledgers written
    /// before periods were checked may hold other names; the books accept those only in
    /// entries without a timestamp, and every period they open now is a month.
    Period,
    "period",
    32
);

impl Period {
    /// The period of UTC month `month`.
    pub fn of_month(month: Month) -> Period {
        Period(month.to_string())
    }

    /// The month this period is, if its name is one (`YYYY-MM`); `None` for a legacy name.
    pub fn month(&self) -> Option<Month> {
        self.0.parse().ok()
    }
}

label_type!(
    /// A short machine label such as a job kind (`transaction-totals`): 1 to 64 characters of
    /// `a-z A-Z 0-9 - _ .`.
    Label,
    "label",
    64
);

/// Serde through `Display`/`FromStr`, so the JSON form is the one text form above.
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(Digest, SignatureHex, Writer, Period, Label);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_have_one_text_form() {
        let d = Digest::of(b"abc");
        let text = d.to_string();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<Digest>().unwrap(), d);
        assert!(text.to_uppercase().parse::<Digest>().is_err());
        assert!(text[..62].parse::<Digest>().is_err());
        assert!(format!("{text}00").parse::<Digest>().is_err());
    }

    #[test]
    fn writers_and_labels_are_strict() {
        let w: Writer = "node/branch-a".parse().unwrap();
        assert_eq!(w.to_string(), "node/branch-a");
        assert_eq!(w.party().role, Role::Node);
        for bad in ["node", "admin/a", "node/A", "node/a/b", "/a", "node/"] {
            assert!(bad.parse::<Writer>().is_err(), "{bad}");
        }
        assert!(Period::new("2026-11").is_ok());
        for bad in ["", "a b", "a\"b", "é", &"x".repeat(33)] {
            assert!(Period::new(bad).is_err(), "{bad:?}");
        }
        assert!(Label::new("x".repeat(64)).is_ok());
    }
}
