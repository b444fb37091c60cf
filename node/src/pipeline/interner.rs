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
        if let Some(hash) = simple_id_hash(raw) {
            return self.lookup_simple(raw, hash, insert);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.push_str(&raw.trim().to_lowercase());
        let result = if scratch.is_empty() {
            Err(InternError::Empty)
        } else {
            let id = scratch.as_bytes();
            self.find_or_insert(id_hash(id), |stored| stored == id, insert.then_some(id))
        };
        self.scratch = scratch;
        result
    }

    /// [`Interner::lookup`] for an id [`simple_id_hash`] accepted, with that hash (computed
    /// ahead, possibly on another thread).
    pub(crate) fn lookup_simple(
        &mut self,
        raw: &str,
        hash: u64,
        insert: bool,
    ) -> Result<Option<u32>, InternError> {
        let raw = raw.as_bytes();
        // Stored ids are normalized, so ASCII-lowercase: equal to raw's lowercase exactly when
        // equal ignoring ASCII case.
        let found = self.find_or_insert(hash, |stored| stored.eq_ignore_ascii_case(raw), None)?;
        if found.is_some() || !insert {
            return Ok(found);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(raw.iter().map(|b| char::from(b.to_ascii_lowercase())));
        let result = self.find_or_insert(hash, |_| false, Some(scratch.as_bytes()));
        self.scratch = scratch;
        result
    }

    /// Touches the table memory that looking up `hashes` will read (the slot, and for a
    /// matching tag the id's span and bytes), without changing anything.
    ///
    /// Lookups over a million ids miss the cache two or three times each, one after the other.
    /// Touching a few hundred rows' entries first, in a loop with no dependency from one row to
    /// the next, lets the processor have many of those misses in flight at once; the lookups
    /// that follow then hit the cache. (A prefetch instruction would say this directly, but
    /// needs `unsafe`, which this workspace forbids.)
    pub(crate) fn warm(&self, hashes: impl Iterator<Item = u64>) {
        let mask = self.slots.len() - 1;
        let mut sum = 0u64;
        for hash in hashes {
            let s = self.slots[(hash as usize) & mask];
            if s != 0 && s >> 32 == hash >> 32 {
                let (a, _) = self
                    .spans
                    .get((s as u32 - 1) as usize)
                    .copied()
                    .unwrap_or_default();
                sum ^= u64::from(self.arena.get(a).copied().unwrap_or(0));
            }
            sum ^= s;
        }
        std::hint::black_box(sum);
    }

    /// Probes for `hash`; returns the first index whose stored bytes satisfy `matches`, or
    /// inserts `insert` (normalized bytes) when given.
    fn find_or_insert(
        &mut self,
        hash: u64,
        matches: impl Fn(&[u8]) -> bool,
        insert: Option<&[u8]>,
    ) -> Result<Option<u32>, InternError> {
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
                if matches(&self.arena[a..b]) {
                    return Ok(Some(index));
                }
            }
            slot = (slot + 1) & mask;
        }
        let Some(id) = insert else { return Ok(None) };
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
        self.arena.extend_from_slice(id);
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

const ID_SEED: u64 = 0x243f_6a88_85a3_08d3;

/// The table hash of a normalized id.
pub(crate) fn id_hash(normalized: &[u8]) -> u64 {
    let mut h = FastHash::new(ID_SEED);
    h.bytes(normalized);
    h.finish()
}

/// For an id that is ASCII, non-empty and has no whitespace at either end, its normalized form
/// is its ASCII lowercase: the hash of that, computed without copying the id (the words are
/// lowercased in registers, [`ascii_lower_word`]). `None` for any other id, which needs the
/// full normalization.
pub(crate) fn simple_id_hash(raw: &str) -> Option<u64> {
    // Unicode White_Space within ASCII: \t \n \x0b \x0c \r and space.
    let ws = |b: u8| b.is_ascii_whitespace() || b == 0x0b;
    let b = raw.as_bytes();
    let (first, last) = (*b.first()?, *b.last()?);
    if ws(first) || ws(last) || !raw.is_ascii() {
        return None;
    }
    let mut h = FastHash::new(ID_SEED);
    h.bytes_mapped(b, ascii_lower_word);
    Some(h.finish())
}

/// Eight ASCII bytes with `A..=Z` turned into `a..=z`, all at once: for a byte `b < 0x80`,
/// `b + 0x3f` has its top bit set exactly when `b >= b'A'`, and `b + 0x25` exactly when
/// `b > b'Z'` (no sum carries into the next byte); the difference of the two is the
/// upper-case mask, and `0x80 >> 2` is the case bit `0x20`.
fn ascii_lower_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let at_least_a = w.wrapping_add(ONES * (0x80 - u64::from(b'A')));
    let past_z = w.wrapping_add(ONES * (0x80 - u64::from(b'Z') - 1));
    let upper = at_least_a & !past_z & (ONES * 0x80);
    w | (upper >> 2)
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
        assert_eq!(
            i.lookup("\x0bc001", false).unwrap(),
            Some(a),
            "vertical tab is trimmed"
        );
        let h = simple_id_hash("C001").unwrap();
        assert_eq!(i.lookup_simple("C001", h, false).unwrap(), Some(a));
        assert_eq!(simple_id_hash(" C001"), None);
        assert_eq!(simple_id_hash("ÄBC"), None);
        let h = simple_id_hash("New9").unwrap();
        let n = i.lookup_simple("New9", h, true).unwrap();
        assert_eq!(i.lookup("new9", false).unwrap(), n);
        for n in 0..100_000 {
            i.lookup(&format!("x{n}"), true).unwrap();
        }
        assert_eq!(i.len(), 100_003);
        assert_eq!(i.lookup("x99999", false).unwrap(), Some(100_002));
        assert!(!format!("{i:?}").contains("c001"));
    }

    /// The in-register lowercase hash equals the hash of the lowercased copy, for every ASCII
    /// byte in every position of ids of every length up to 40.
    #[test]
    fn simple_hash_is_the_hash_of_the_ascii_lowercase() {
        for b in 0u8..0x80 {
            let w = u64::from_le_bytes([b, b'A', b'Z', b'@', b'[', b'`', b'{', b]);
            let lower: Vec<u8> = w.to_le_bytes().iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(
                ascii_lower_word(w).to_le_bytes().to_vec(),
                lower,
                "byte {b:#x}"
            );
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 1..=40 {
            for _ in 0..200 {
                let id: String = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        char::from(b'!' + ((state >> 33) % 94) as u8)
                    })
                    .collect();
                let expected = id_hash(id.to_ascii_lowercase().as_bytes());
                assert_eq!(simple_id_hash(&id), Some(expected), "{id:?}");
            }
        }
    }
}
