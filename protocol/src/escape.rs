//! Peer-supplied text made safe for a log line or a terminal (security review L3).
//!
//! Strings a peer sends (`Register::software`, `ErrorFrame::detail`, `Refusal::detail`,
//! `RoundOver::detail`, a failure reason the coordinator relays, a QUIC close reason) are
//! opaque bytes to us. Logged as they are, a newline forges a log line, an ANSI escape
//! rewrites the operator's terminal, a bidirectional override hides text, and a frame-sized
//! detail floods the log. tracing-subscriber escapes ANSI in fields but not newlines, so every
//! site that logs or re-words a peer string wraps it in [`Escaped`]: one place decides what
//! survives.

use std::fmt;

/// How many characters of a peer string are kept; the rest is counted, not shown.
pub const MAX_ESCAPED_CHARS: usize = 200;

/// Displays a peer-supplied string on one line: control characters (newlines, ANSI `ESC`,
/// ...), Unicode bidirectional and invisible formatting characters and the backslash are
/// written as Rust escapes (`\n`, `\u{1b}`, `\\`), so the output is unambiguous and printable;
/// after [`MAX_ESCAPED_CHARS`] characters it stops and says how many bytes were left out.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (taken, (at, c)) in self.0.char_indices().enumerate() {
            if taken == MAX_ESCAPED_CHARS {
                return write!(f, "...[{} more bytes]", self.0.len() - at);
            }
            if c == '\\' || c.is_control() || is_format_char(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Invisible characters that change how the text around them reads: bidirectional marks,
/// embeddings, overrides and isolates ("Trojan Source", CVE-2021-42574), zero-width ones,
/// the line and paragraph separators and the byte-order mark.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        Escaped(s).to_string()
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(esc("fedprof 0.1 (linux) é"), "fedprof 0.1 (linux) é");
        assert_eq!(esc(""), "");
    }

    #[test]
    fn control_and_format_characters_are_escaped() {
        assert_eq!(
            esc("ok\n2026-12-01 INFO forged\r\t"),
            "ok\\n2026-12-01 INFO forged\\r\\t"
        );
        assert_eq!(esc("\u{1b}[31mred\u{1b}[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(
            esc("a\u{202e}b\u{2066}c\u{200b}"),
            "a\\u{202e}b\\u{2066}c\\u{200b}"
        );
        assert_eq!(esc("\u{0}\u{7f}\u{85}"), "\\u{0}\\u{7f}\\u{85}");
        // A backslash is escaped too, so a literal "\n" cannot pass for an escaped newline.
        assert_eq!(esc("a\\nb"), "a\\\\nb");
        assert!(!esc("x\ny\u{1b}z\u{2028}").chars().any(|c| c.is_control()));
    }

    #[test]
    fn long_strings_are_cut_and_counted() {
        let long = "é".repeat(MAX_ESCAPED_CHARS + 5);
        let out = esc(&long);
        assert_eq!(
            out,
            format!("{}...[10 more bytes]", "é".repeat(MAX_ESCAPED_CHARS))
        );
        assert_eq!(
            esc(&"a".repeat(MAX_ESCAPED_CHARS)),
            "a".repeat(MAX_ESCAPED_CHARS)
        );
        // A megabyte of newlines yields a bounded line.
        let flood = "\n".repeat(1 << 20);
        assert!(esc(&flood).len() < 4 * MAX_ESCAPED_CHARS);
    }
}
