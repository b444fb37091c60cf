//! Domain separation: every input this crate signs, derives from or authenticates starts with
//! [`LABEL_PREFIX`] and a purpose label, so that a value made for one purpose (or one protocol
//! version) is never accepted for another.

/// The label prefix: `fedprof/<crypto label version>`. It is versioned apart from the wire
/// protocol (`fedprof_protocol::PROTOCOL_VERSION`, 2 since the release binding was added to
/// round announcements): it changes when a construction here changes, and changing it
/// changes every signature, key and mask derived here. A test in the secure-aggregation
/// crate pins both.
pub const LABEL_PREFIX: &str = "fedprof/1";

/// Longest purpose label accepted by [`framed`] (labels are compile-time constants in practice).
pub(crate) const MAX_LABEL_LEN: usize = 255;

/// A purpose label known to fit [`framed`]'s one-byte length: at most 255 bytes. Made by
/// [`label!`](crate::label!) in a constant, so a longer label fails the build instead of
/// reaching a fallback at run time: the derivation and digest functions that take one
/// cannot fail (security review L5: their old fallbacks were a zero key and a zero digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(&'static str);

impl Label {
    /// `label`, checked against the length limit. Call it through [`label!`](crate::label!),
    /// which evaluates it in a constant.
    ///
    /// # Panics
    ///
    /// When `label` is over 255 bytes: at compile time through [`label!`](crate::label!).
    #[must_use]
    pub const fn new(label: &'static str) -> Self {
        assert!(
            label.len() <= MAX_LABEL_LEN,
            "a purpose label is at most 255 bytes"
        );
        Label(label)
    }

    /// The label's text.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

/// A [`Label`] checked at compile time: `label!("secagg/self-mask")`.
#[macro_export]
macro_rules! label {
    ($text:expr) => {{
        const LABEL: $crate::Label = $crate::Label::new($text);
        LABEL
    }};
}

/// `LABEL_PREFIX || 0x00 || len(label) as u8 || label || parts...`.
///
/// The prefix is NUL-terminated and the label is length-prefixed, so no two distinct
/// `(label, first part)` pairs share an encoding. The parts are concatenated as given: callers
/// pass fixed-width fields (or length-prefix variable ones themselves).
///
/// Use it for associated data and other byte strings that must carry the same domain
/// separation as this crate's signatures and keys. A label longer than 255 bytes is truncated
/// to its first 255 bytes (labels are constants; the signing and derivation functions refuse
/// long labels outright).
pub fn framed(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let label = &label.as_bytes()[..label.len().min(MAX_LABEL_LEN)];
    let len = parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(LABEL_PREFIX.len() + 2 + label.len() + len);
    out.extend_from_slice(LABEL_PREFIX.as_bytes());
    out.push(0);
    // Truncated above, so the length fits in a byte.
    out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(label);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_up_to_255_bytes_are_accepted() {
        const LONGEST: &str = concat!(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        );
        assert_eq!(crate::label!(LONGEST).as_str().len(), MAX_LABEL_LEN);
        assert_eq!(crate::label!("ab").as_str(), "ab");
    }

    #[test]
    #[should_panic(expected = "at most 255 bytes")]
    fn a_longer_label_is_refused() {
        // At run time here only to observe it; `label!` makes this a compile error.
        let long: &'static str = Box::leak("l".repeat(MAX_LABEL_LEN + 1).into_boxed_str());
        let _ = Label::new(long);
    }

    #[test]
    fn framing_is_unambiguous() {
        assert_eq!(framed("ab", &[b"c"]), b"fedprof/1\x00\x02abc".to_vec());
        assert_ne!(framed("ab", &[b"c"]), framed("a", &[b"bc"]));
        assert_ne!(framed("", &[b"x"]), framed("x", &[]));
    }
}
