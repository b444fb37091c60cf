//! The per-customer aggregation: the hot path.
//!
//! 1. Bucket the records by customer in place (an American-flag pass: the scan already knows
//!    each bucket's size, so every record moves at most once; no second 320 MB array).
//! 2. Sort each (small) bucket by `(day, fingerprint, row)`: exact duplicate rows become
//!    neighbours, the earliest row first, and days come in order.
//! 3. One sweep per bucket: drop duplicates (quarantined), count distinct days, first-day total,
//!    totals and channel/category counts.
//!
//! Buckets are independent, so steps 2 and 3 run in parallel (rayon), over chunks of customers
//! whose outputs are concatenated in order. Level counts are sparse ([`LevelCounts`]): only the
//! levels a customer has, never `customers x levels`.

use rayon::prelude::*;

use super::ingest::Txn;

/// One customer's behaviour over its used transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Behaviour {
    pub(crate) txn_count: u64,
    pub(crate) purchase_days: u32,
    /// Days after the cleaning start date.
    pub(crate) first_day: u16,
    pub(crate) last_day: u16,
    pub(crate) total: i128,
    /// Sum of the first purchase day's amounts (lifetimes excludes that day from the mean).
    pub(crate) first_day_total: i128,
}

/// Per-customer level counts, sparse (CSR): customer `c`'s `(level, count)` pairs, by level
/// ascending, are `pairs[offsets[c] .. offsets[c + 1]]`. Only levels a customer has appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LevelCounts {
    /// `customers + 1` offsets into `pairs` (fewer pairs than rows, so they fit in u32).
    pub(crate) offsets: Vec<u32>,
    pub(crate) pairs: Vec<(u32, u32)>,
}

impl LevelCounts {
    /// Customer `c`'s pairs (empty for an unknown customer).
    pub(crate) fn of(&self, c: usize) -> &[(u32, u32)] {
        match (self.offsets.get(c), self.offsets.get(c + 1)) {
            (Some(a), Some(b)) => self.pairs.get(*a as usize..*b as usize).unwrap_or_default(),
            _ => &[],
        }
    }

    /// From `(customer, level, count)` triples in any order, for `customers` customers; a
    /// repeated `(customer, level)` is summed, customers out of range are ignored.
    pub(crate) fn from_triples(mut triples: Vec<(u32, u32, u32)>, customers: usize) -> Self {
        triples.sort_unstable_by_key(|&(c, l, _)| (c, l));
        let mut out = LevelCounts {
            offsets: vec![0; customers + 1],
            pairs: Vec::with_capacity(triples.len()),
        };
        let mut last: Option<(u32, u32)> = None;
        for (c, l, n) in triples {
            if c as usize >= customers {
                continue;
            }
            match (last == Some((c, l)), out.pairs.last_mut()) {
                (true, Some(p)) => p.1 = p.1.saturating_add(n),
                _ => {
                    out.pairs.push((l, n));
                    out.offsets[c as usize + 1] += 1;
                }
            }
            last = Some((c, l));
        }
        for c in 0..customers {
            out.offsets[c + 1] += out.offsets[c];
        }
        out
    }
}

/// Behaviour per customer index (`None`: no used transaction), level counts, duplicates.
#[derive(Debug)]
pub(crate) struct Aggregate {
    pub(crate) behaviour: Vec<Option<Behaviour>>,
    pub(crate) channels: LevelCounts,
    pub(crate) categories: LevelCounts,
    /// Rows dropped as exact duplicates, ascending.
    pub(crate) duplicates: Vec<u32>,
    pub(crate) rows_used: u64,
}

/// Customers per parallel task of the sweep.
const CHUNK: usize = 4096;

/// One chunk's output, concatenated in chunk order.
#[derive(Default)]
struct Part {
    behaviour: Vec<Option<Behaviour>>,
    duplicates: Vec<u32>,
    ch: Runs,
    ca: Runs,
    /// Reused level buffers of the current customer.
    scratch_ch: Vec<u32>,
    scratch_ca: Vec<u32>,
}

/// One chunk's level counts: pairs per customer, and the pairs.
#[derive(Default)]
struct Runs {
    len: Vec<u32>,
    pairs: Vec<(u32, u32)>,
}

/// Aggregates `txns` for `customers` customer indexes.
pub(crate) fn aggregate(mut txns: Vec<Txn>, customers: usize) -> Aggregate {
    let mut starts = vec![0usize; customers + 1];
    for t in &txns {
        starts[t.cust as usize + 1] += 1;
    }
    for c in 0..customers {
        starts[c + 1] += starts[c];
    }
    // American flag sort: `next[b]` is the first slot of bucket b not yet holding a b-record.
    let mut next: Vec<usize> = starts[..customers].to_vec();
    for b in 0..customers {
        let end = starts[b + 1];
        while next[b] < end {
            let c = txns[next[b]].cust as usize;
            if c == b {
                next[b] += 1;
            } else {
                txns.swap(next[b], next[c]);
                next[c] += 1;
            }
        }
    }
    drop(next);
    let mut slices: Vec<&mut [Txn]> = Vec::with_capacity(customers);
    let mut rest: &mut [Txn] = &mut txns;
    for c in 0..customers {
        let (head, tail) = rest.split_at_mut(starts[c + 1] - starts[c]);
        slices.push(head);
        rest = tail;
    }
    let parts: Vec<Part> = slices
        .par_chunks_mut(CHUNK)
        .map(|chunk| {
            let mut p = Part::default();
            for bucket in chunk.iter_mut() {
                sweep(bucket, &mut p);
            }
            p
        })
        .collect();
    let mut behaviour = Vec::with_capacity(customers);
    let mut duplicates = Vec::new();
    let counts = |pick: fn(&Part) -> &Runs| {
        let total = parts.iter().map(|p| pick(p).pairs.len()).sum();
        let mut out = LevelCounts {
            offsets: Vec::with_capacity(customers + 1),
            pairs: Vec::with_capacity(total),
        };
        out.offsets.push(0);
        let mut at = 0u32;
        for p in &parts {
            let runs = pick(p);
            for n in &runs.len {
                at = at.saturating_add(*n);
                out.offsets.push(at);
            }
            out.pairs.extend_from_slice(&runs.pairs);
        }
        out
    };
    let channels = counts(|p| &p.ch);
    let categories = counts(|p| &p.ca);
    let mut rows_used = 0;
    for p in parts {
        rows_used += p
            .behaviour
            .iter()
            .flatten()
            .map(|b| b.txn_count)
            .sum::<u64>();
        behaviour.extend(p.behaviour);
        duplicates.extend(p.duplicates);
    }
    duplicates.sort_unstable();
    Aggregate {
        behaviour,
        channels,
        categories,
        duplicates,
        rows_used,
    }
}

/// Appends the run-length encoding of `levels` (sorted here) to `pairs`; returns the pair count.
fn count_levels(levels: &mut [u32], pairs: &mut Vec<(u32, u32)>) -> u32 {
    levels.sort_unstable();
    let before = pairs.len();
    for &l in levels.iter() {
        let fresh = pairs.len() == before;
        match pairs.last_mut() {
            Some(p) if !fresh && p.0 == l => p.1 += 1,
            _ => pairs.push((l, 1)),
        }
    }
    (pairs.len() - before) as u32
}

/// One customer's bucket: its behaviour, duplicates and level counts appended to `p`.
fn sweep(bucket: &mut [Txn], p: &mut Part) {
    bucket.sort_unstable_by_key(|t| (t.day, t.fp, t.row));
    let Some(first) = bucket.first() else {
        p.behaviour.push(None);
        p.ch.len.push(0);
        p.ca.len.push(0);
        return;
    };
    let mut b = Behaviour {
        first_day: first.day,
        last_day: first.day,
        ..Behaviour::default()
    };
    let mut prev: Option<&Txn> = None;
    p.scratch_ch.clear();
    p.scratch_ca.clear();
    for t in bucket.iter() {
        if let Some(q) = prev
            && q.day == t.day
            && q.fp == t.fp
        {
            p.duplicates.push(t.row);
            continue;
        }
        if prev.is_none_or(|q| q.day != t.day) {
            b.purchase_days += 1;
        }
        b.txn_count += 1;
        b.total += i128::from(t.amount);
        if t.day == b.first_day {
            b.first_day_total += i128::from(t.amount);
        }
        b.last_day = t.day;
        p.scratch_ch.push(t.channel);
        p.scratch_ca.push(t.category);
        prev = Some(t);
    }
    p.ch.len
        .push(count_levels(&mut p.scratch_ch, &mut p.ch.pairs));
    p.ca.len
        .push(count_levels(&mut p.scratch_ca, &mut p.ca.pairs));
    p.behaviour.push(Some(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(cust: u32, row: u32, day: u16, amount: i64, fp: u64) -> Txn {
        Txn {
            fp,
            amount,
            cust,
            row,
            channel: row % 2,
            category: 0,
            day,
        }
    }

    #[test]
    fn buckets_days_and_duplicates() {
        let txns = vec![
            t(1, 1, 5, 100, 1),
            t(0, 2, 3, 10, 2),
            t(1, 3, 5, 50, 3),
            t(1, 4, 9, 7, 4),
            t(0, 5, 3, 10, 2), // exact duplicate of row 2
            t(1, 6, 2, 1, 5),
        ];
        let a = aggregate(txns, 3);
        assert_eq!(a.duplicates, vec![5]);
        assert_eq!(a.rows_used, 5);
        let b0 = a.behaviour[0].unwrap();
        assert_eq!(
            (b0.txn_count, b0.purchase_days, b0.total, b0.first_day_total),
            (1, 1, 10, 10)
        );
        let b1 = a.behaviour[1].unwrap();
        assert_eq!(
            (b1.txn_count, b1.purchase_days, b1.first_day, b1.last_day),
            (4, 3, 2, 9)
        );
        assert_eq!((b1.total, b1.first_day_total), (158, 1));
        assert_eq!(a.behaviour[2], None);
        assert_eq!(a.channels.of(1), &[(0, 2), (1, 2)]);
        assert_eq!(a.channels.of(0), &[(0, 1)]);
        assert_eq!(a.categories.of(1), &[(0, 4)]);
        assert_eq!(a.channels.of(2), &[]);
        let c = LevelCounts::from_triples(vec![(1, 5, 2), (0, 3, 1), (1, 5, 1), (1, 2, 4)], 3);
        assert_eq!(
            (c.of(0), c.of(1), c.of(2)),
            (&[(3, 1)][..], &[(2, 4), (5, 3)][..], &[][..])
        );
    }
}
