//! The per-customer aggregation: the hot path.
//!
//! 1. Bucket the records by customer in place (an American-flag pass: the scan already knows
//!    each bucket's size, so every record moves at most once; no second 320 MB array).
//! 2. Sort each (small) bucket by `(day, fingerprint, row)`: exact duplicate rows become
//!    neighbours, the earliest row first, and days come in order.
//! 3. One sweep per bucket: drop duplicates (quarantined), count distinct days, first-day total,
//!    totals and channel/category counts.
//!
//! Buckets are independent, so steps 2 and 3 run in parallel (rayon).

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

/// Behaviour per customer index (`None`: no used transaction), level counts, duplicates.
#[derive(Debug)]
pub(crate) struct Aggregate {
    pub(crate) behaviour: Vec<Option<Behaviour>>,
    /// `channel_counts[c * channels + level]`.
    pub(crate) channel_counts: Vec<u32>,
    pub(crate) category_counts: Vec<u32>,
    /// Rows dropped as exact duplicates, ascending.
    pub(crate) duplicates: Vec<u32>,
    pub(crate) rows_used: u64,
}

/// Aggregates `txns` for `customers` customer indexes with `channels` and `categories` levels
/// (each at least 1).
pub(crate) fn aggregate(
    mut txns: Vec<Txn>,
    customers: usize,
    channels: usize,
    categories: usize,
) -> Aggregate {
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
    let (channels, categories) = (channels.max(1), categories.max(1));
    let mut channel_counts = vec![0u32; customers * channels];
    let mut category_counts = vec![0u32; customers * categories];
    let mut slices: Vec<&mut [Txn]> = Vec::with_capacity(customers);
    let mut rest: &mut [Txn] = &mut txns;
    for c in 0..customers {
        let (head, tail) = rest.split_at_mut(starts[c + 1] - starts[c]);
        slices.push(head);
        rest = tail;
    }
    let results: Vec<(Option<Behaviour>, Vec<u32>)> = slices
        .into_par_iter()
        .zip(channel_counts.par_chunks_mut(channels))
        .zip(category_counts.par_chunks_mut(categories))
        .map(|((bucket, ch), ca)| sweep(bucket, ch, ca))
        .collect();
    let mut behaviour = Vec::with_capacity(customers);
    let mut duplicates = Vec::new();
    let mut rows_used = 0;
    for (b, d) in results {
        rows_used += b.map_or(0, |b| b.txn_count);
        behaviour.push(b);
        duplicates.extend(d);
    }
    duplicates.sort_unstable();
    Aggregate {
        behaviour,
        channel_counts,
        category_counts,
        duplicates,
        rows_used,
    }
}

fn sweep(bucket: &mut [Txn], ch: &mut [u32], ca: &mut [u32]) -> (Option<Behaviour>, Vec<u32>) {
    bucket.sort_unstable_by_key(|t| (t.day, t.fp, t.row));
    let mut dups = Vec::new();
    let Some(first) = bucket.first() else {
        return (None, dups);
    };
    let mut b = Behaviour {
        first_day: first.day,
        last_day: first.day,
        ..Behaviour::default()
    };
    let mut prev: Option<&Txn> = None;
    for t in bucket.iter() {
        if let Some(p) = prev
            && p.day == t.day
            && p.fp == t.fp
        {
            dups.push(t.row);
            continue;
        }
        if prev.is_none_or(|p| p.day != t.day) {
            b.purchase_days += 1;
        }
        b.txn_count += 1;
        b.total += i128::from(t.amount);
        if t.day == b.first_day {
            b.first_day_total += i128::from(t.amount);
        }
        b.last_day = t.day;
        if let Some(x) = ch.get_mut(usize::from(t.channel)) {
            *x += 1;
        }
        if let Some(x) = ca.get_mut(usize::from(t.category)) {
            *x += 1;
        }
        prev = Some(t);
    }
    (Some(b), dups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(cust: u32, row: u32, day: u16, amount: i64, fp: u64) -> Txn {
        Txn {
            cust,
            row,
            day,
            channel: (row % 2) as u8,
            category: 0,
            fp,
            amount,
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
        let a = aggregate(txns, 3, 2, 1);
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
        assert_eq!(&a.channel_counts[2..4], &[2, 2]);
    }
}
