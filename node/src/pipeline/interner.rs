//! Raw customer ids to dense indexes, inside ingest only.
//!
//! Every table's id column goes through one [`Interner`]: the id is normalized exactly as
//! `fedprof_crypto::Pseudonymizer` does (trim Unicode whitespace, then Unicode lowercase), and
//! each distinct normalized id gets the next index. The pseudonym is then computed once per
//! customer rather than once per row (an HMAC per row would be the slowest step of ingest).
//!
//! The normalized ids live in one arena that is wiped when the interner is dropped; nothing here
//! implements `Debug` over ids, and nothing logs them. They leave ingest only as pseudonyms,
//! or, when the operator asks for `--reveal-ids`, in that local export.

use zeroize::Zeroizing;

use super::values::FastHash;

/// Normalized id -> index, open addressing over an arena of id bytes.
pub(crate) struct Interner {
    arena: Zeroizing<Vec<u8>>,
    /// Per index: start and end of its bytes in `arena`.
    spans: Vec<(usize, usize)>,
    /// Per index: its hash.
    hashes: Vec<u64>,
    /// Slots holding the hash's high 32 bits above `index + 1`, 0 when empty; length a power
    /// of two. The tag lets a probe skip other ids without touching `spans` or the arena.
    slots: Vec<u64>,
    /// Scratch for ids that need normalizing (wiped on drop).
    scratch: Zeroizing<String>,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interner({} ids, <redacted>)", self.spans.len())
    }
}

/// Why an id got no index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InternError {
    /// Empty after normalization.
    Empty,
    /// More than `u32::MAX - 1` distinct customers.
    Full,
}

impl Interner {
    pub(crate) fn new() -> Self {
        Interner {
            arena: Zeroizing::new(Vec::with_capacity(1 << 20)),
            spans: Vec::new(),
            hashes: Vec::new(),
            slots: vec![0; 1 << 16],
            scratch: Zeroizing::new(String::new()),
        }
    }

    /// Distinct ids so far.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The normalized id of `index`.
    pub(crate) fn id(&self, index: u32) -> &str {
        let (a, b) = self.spans.get(index as usize).copied().unwrap_or((0, 0));
        std::str::from_utf8(self.arena.get(a..b).unwrap_or_default()).unwrap_or_default()
    }

    /// The index of `raw`, inserting it when `insert` is true; `Ok(None)` when absent.
    pub(crate) fn lookup(&mut self, raw: &str, insert: bool) -> Result<Option<u32>, InternError> {
        let already = !raw.is_empty()
            && raw.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase())
            && !raw.as_bytes()[0].is_ascii_whitespace()
            && !raw.as_bytes()[raw.len() - 1].is_ascii_whitespace();
        let mut scratch = std::mem::take(&mut self.scratch);
        let id: &str = if already {
            raw
        } else {
            scratch.clear();
            let t = raw.trim();
            if t.is_ascii() {
                scratch.push_str(t);
                scratch.make_ascii_lowercase();
            } else {
                scratch.push_str(&t.to_lowercase());
            }
            &scratch
        };
        let result = if id.is_empty() {
            Err(InternError::Empty)
        } else {
            self.lookup_normalized(id, insert)
        };
        self.scratch = scratch;
        result
    }

    fn lookup_normalized(&mut self, id: &str, insert: bool) -> Result<Option<u32>, InternError> {
        let mut h = FastHash::new(0x243f_6a88_85a3_08d3);
        h.bytes(id.as_bytes());
        let hash = h.finish();
        let mask = self.slots.len() - 1;
        let mut slot = (hash as usize) & mask;
        loop {
            let s = self.slots[slot];
            if s == 0 {
                break;
            }
            if s >> 32 == hash >> 32 {
                let index = (s as u32) - 1;
                let (a, b) = self.spans[index as usize];
                if &self.arena[a..b] == id.as_bytes() {
                    return Ok(Some(index));
                }
            }
            slot = (slot + 1) & mask;
        }
        if !insert {
            return Ok(None);
        }
        let index = u32::try_from(self.spans.len())
            .ok()
            .filter(|i| *i < u32::MAX - 1)
            .ok_or(InternError::Full)?;
        let start = self.arena.len();
        if self.arena.capacity() - start < id.len() {
            // Grow by copying into a fresh buffer, so that the old one is wiped (`Zeroizing`)
            // rather than freed with ids in it, as `Vec`'s own growth would.
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                (self.arena.capacity() * 2).max(start + id.len()),
            ));
            bigger.extend_from_slice(&self.arena);
            self.arena = bigger;
        }
        self.arena.extend_from_slice(id.as_bytes());
        self.spans.push((start, self.arena.len()));
        self.hashes.push(hash);
        self.slots[slot] = slot_value(hash, index);
        if self.spans.len() * 2 > self.slots.len() {
            self.grow();
        }
        Ok(Some(index))
    }

    fn grow(&mut self) {
        let mut slots = vec![0u64; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (index, hash) in self.hashes.iter().enumerate() {
            let mut slot = (*hash as usize) & mask;
            while slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            slots[slot] = slot_value(*hash, index as u32);
        }
        self.slots = slots;
    }
}

fn slot_value(hash: u64, index: u32) -> u64 {
    (hash & !0xffff_ffff) | u64::from(index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_the_pseudonymizer() {
        let mut i = Interner::new();
        let a = i.lookup("C001", true).unwrap().unwrap();
        assert_eq!(i.lookup(" c001\t", true).unwrap(), Some(a));
        assert_eq!(i.lookup("\u{a0}C001\u{3000}", false).unwrap(), Some(a));
        assert_eq!(
            i.lookup("ÄBC", true).unwrap(),
            i.lookup("äbc ", false).unwrap()
        );
        assert_eq!(i.lookup("c002", false).unwrap(), None);
        assert_eq!(i.lookup("  ", true), Err(InternError::Empty));
        assert_eq!(i.id(a), "c001");
        for n in 0..100_000 {
            i.lookup(&format!("x{n}"), true).unwrap();
        }
        assert_eq!(i.len(), 100_002);
        assert_eq!(i.lookup("x99999", false).unwrap(), Some(100_001));
        assert!(!format!("{i:?}").contains("c001"));
    }
}
