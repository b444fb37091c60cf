//! Per-customer features as of `as_of`, in columns. Definitions (docs/DATA.md has the full
//! text), in days, with the BTYD conventions of lifetimes' `summary_data_from_transaction_data`
//! (`freq="D"`): rows of one calendar day are one purchase of the day's summed amount.
//!
//! - `purchase_days`: distinct purchase days; `frequency = purchase_days - 1`;
//! - `recency_days = last - first`; `tenure_days = as_of - first` (lifetimes' `T`);
//!   `days_since_last = as_of - last`;
//! - `monetary_total`: exact sum; `monetary_mean_repeat`: mean of the per-day totals of every day
//!   but the first (0 when `frequency` is 0); `avg_ticket = monetary_total / txn_count`.

use std::collections::HashMap;

use rayon::prelude::*;

use super::aggregate::{Aggregate, Behaviour, LevelCounts};
use super::dates::Day;
use super::ingest::{Credit, Demographics};
use super::spec::Lifecycle;

/// Lifecycle stage (see [`Lifecycle`] for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// First purchase recent.
    New,
    /// Bought recently.
    Active,
    /// Has not bought for a while.
    AtRisk,
    /// Has not bought for long.
    Churned,
}

impl Stage {
    /// The stage of a customer with these day counts.
    pub fn of(tenure_days: u32, days_since_last: u32, l: &Lifecycle) -> Stage {
        if tenure_days <= l.new_max_tenure_days {
            Stage::New
        } else if days_since_last <= l.active_max_days {
            Stage::Active
        } else if days_since_last <= l.at_risk_max_days {
            Stage::AtRisk
        } else {
            Stage::Churned
        }
    }

    /// `new`, `active`, `at_risk`, `churned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Active => "active",
            Stage::AtRisk => "at_risk",
            Stage::Churned => "churned",
        }
    }
}

/// Delinquency bucket of the worst days past due: `current`, `1-29`, `30-59`, `60-89`, `90+`.
pub fn delinquency_bucket(days_past_due: i64) -> &'static str {
    match days_past_due {
        ..=0 => "current",
        1..=29 => "1-29",
        30..=59 => "30-59",
        60..=89 => "60-89",
        _ => "90+",
    }
}

/// The band of `age` for increasing lower `edges`: `<25`, `25-34`, ..., `65+`.
pub fn age_band(age: u32, edges: &[u32]) -> String {
    match edges.iter().position(|e| age < *e) {
        Some(0) => format!("<{}", edges[0]),
        Some(i) => format!("{}-{}", edges[i - 1], edges[i] - 1),
        None => edges
            .last()
            .map_or_else(|| "all".to_owned(), |e| format!("{e}+")),
    }
}

/// Demographic columns (present when a customers table is configured).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemographicColumns {
    /// Age band as of as_of.
    pub age_band: Vec<Option<String>>,
    /// Gender, trimmed and lowercased.
    pub gender: Vec<Option<String>>,
    /// Region, trimmed and lowercased.
    pub region: Vec<Option<String>>,
    /// Income band, trimmed and lowercased.
    pub income_band: Vec<Option<String>>,
    /// Days from signup to as_of.
    pub customer_since_days: Vec<Option<u32>>,
}

/// Credit columns (present when a credit table is configured); null without credit rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreditColumns {
    /// Summed balance / summed limit (null when the limit is 0).
    pub utilization: Vec<Option<f64>>,
    /// Bucket of the worst days past due.
    pub delinquency_bucket: Vec<Option<&'static str>>,
    /// Any account in default.
    pub default_flag: Vec<Option<bool>>,
}

/// One row per customer, in columns, ordered by the `customer` column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureTable {
    /// Decimal places of amounts.
    pub decimals: u8,
    /// Pseudonym (64 hex digits), or the normalized id with `--reveal-ids`.
    pub customer: Vec<String>,
    /// Used transactions.
    pub txn_count: Vec<u64>,
    /// Distinct purchase days.
    pub purchase_days: Vec<u32>,
    /// Repeat purchase days (`purchase_days - 1`).
    pub frequency: Vec<u32>,
    /// Last minus first purchase day.
    pub recency_days: Vec<u32>,
    /// as_of minus first purchase day.
    pub tenure_days: Vec<u32>,
    /// as_of minus last purchase day.
    pub days_since_last: Vec<u32>,
    /// Sum of amounts, minor units.
    pub monetary_total: Vec<i128>,
    /// Mean per-day total over repeat days, major units.
    pub monetary_mean_repeat: Vec<f64>,
    /// Mean amount per transaction, major units.
    pub avg_ticket: Vec<f64>,
    /// Lifecycle stage.
    pub lifecycle_stage: Vec<Stage>,
    /// Transactions per channel level (every distinct normalized value is a level).
    pub channel_mix: MixColumn,
    /// Transactions per category level.
    pub category_mix: MixColumn,
    /// From the customers table.
    pub demographics: Option<DemographicColumns>,
    /// From the credit table.
    pub credit: Option<CreditColumns>,
}

impl FeatureTable {
    /// Rows.
    pub fn len(&self) -> usize {
        self.customer.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
    }
}

/// Exact per-customer transaction counts of a channel or category, sparse: a row lists only the
/// levels it has. Levels are every distinct normalized value the node saw (no cap, no `other`),
/// sorted by name; what a row counts for depends only on that customer's own rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MixColumn {
    /// Level names, sorted, distinct.
    names: Vec<String>,
    /// Row `r`'s `(level, count)` pairs, by level ascending, are
    /// `pairs[offsets[r] .. offsets[r + 1]]`.
    offsets: Vec<u32>,
    pairs: Vec<(u32, u32)>,
}

impl MixColumn {
    /// From level `names` (any order; equal names are one level) and, per row in table order,
    /// `(index into names, count)` pairs in any order. Pairs naming no level are dropped;
    /// repeated levels in one row are summed.
    pub fn new<'a, I>(names: &[String], rows: I) -> MixColumn
    where
        I: IntoIterator<Item = &'a [(u32, u32)]>,
    {
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        // Old index -> sorted index.
        let rank: Vec<u32> = names
            .iter()
            .map(|n| sorted.binary_search(n).map_or(u32::MAX, |i| i as u32))
            .collect();
        let mut out = MixColumn {
            names: sorted,
            offsets: vec![0],
            pairs: Vec::new(),
        };
        for row in rows {
            let start = out.pairs.len();
            out.pairs.extend(
                row.iter()
                    .filter_map(|&(l, n)| Some((*rank.get(l as usize)?, n)))
                    .filter(|&(l, n)| l != u32::MAX && n > 0),
            );
            let tail = &mut out.pairs[start..];
            tail.sort_unstable_by_key(|p| p.0);
            // Merge repeats in place.
            let mut w = start;
            for r in start..out.pairs.len() {
                let p = out.pairs[r];
                if w > start && out.pairs[w - 1].0 == p.0 {
                    out.pairs[w - 1].1 = out.pairs[w - 1].1.saturating_add(p.1);
                } else {
                    out.pairs[w] = p;
                    w += 1;
                }
            }
            out.pairs.truncate(w);
            out.offsets
                .push(u32::try_from(out.pairs.len()).unwrap_or(u32::MAX));
        }
        out
    }

    /// Level names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The level called `name` (normalized), if the node saw it.
    pub fn level(&self, name: &str) -> Option<u32> {
        self.names
            .binary_search_by(|n| n.as_str().cmp(name))
            .ok()
            .map(|i| i as u32)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Row `row`'s `(level, count)` pairs, by level ascending.
    pub fn row(&self, row: usize) -> &[(u32, u32)] {
        match (self.offsets.get(row), self.offsets.get(row + 1)) {
            (Some(a), Some(b)) => self.pairs.get(*a as usize..*b as usize).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Row `row`'s transactions at `level` (0 for a level the row does not have).
    pub fn count(&self, row: usize, level: u32) -> u32 {
        let pairs = self.row(row);
        pairs
            .binary_search_by_key(&level, |p| p.0)
            .map_or(0, |i| pairs[i].1)
    }

    /// Row `row`'s transactions over all levels (its `txn_count` when the column is mapped).
    pub fn total(&self, row: usize) -> u64 {
        self.row(row).iter().map(|p| u64::from(p.1)).sum()
    }

    /// Row `row`'s share of its transactions at level `name` (0 for a level it does not have),
    /// for local output; queries use the exact counts.
    pub fn share(&self, row: usize, name: &str) -> f64 {
        let n = self.level(name).map_or(0, |l| self.count(row, l));
        if n == 0 {
            return 0.0;
        }
        f64::from(n) / self.total(row) as f64
    }

    /// The `(level, count)` pairs of one row only (a one-row column).
    pub fn single(&self, row: usize) -> MixColumn {
        let pairs = self.row(row).to_vec();
        MixColumn {
            names: self.names.clone(),
            offsets: vec![0, u32::try_from(pairs.len()).unwrap_or(u32::MAX)],
            pairs,
        }
    }
}

/// Inputs of [`assemble`] besides the aggregate.
pub(crate) struct Context<'a> {
    pub(crate) as_of: Day,
    pub(crate) start: Day,
    pub(crate) decimals: u8,
    pub(crate) lifecycle: &'a Lifecycle,
    pub(crate) age_bands: &'a [u32],
    pub(crate) channels: Option<Vec<String>>,
    pub(crate) categories: Option<Vec<String>>,
    pub(crate) demographics: Option<&'a [Demographics]>,
    pub(crate) credit: Option<&'a HashMap<u32, Credit>>,
}

/// Builds the table; `names[c]` is customer index `c`'s output name, rows sorted by it.
///
/// Every column is an independent map over the sorted rows, built on the rayon pool (the rows
/// are visited in name order, i.e. in random customer-index order, so this is memory-bound work
/// that gains from a second core).
pub(crate) fn assemble(agg: &Aggregate, mut names: Vec<String>, cx: &Context<'_>) -> FeatureTable {
    // Sorted by name; the first 8 bytes, big-endian, decide almost every comparison cheaply.
    let prefix = |n: &str| {
        let mut b = [0u8; 8];
        let k = n.len().min(8);
        b[..k].copy_from_slice(&n.as_bytes()[..k]);
        u64::from_be_bytes(b)
    };
    let mut keyed: Vec<(u64, u32)> = (0..agg.behaviour.len() as u32)
        .filter(|c| agg.behaviour[*c as usize].is_some())
        .map(|c| (prefix(&names[c as usize]), c))
        .collect();
    keyed.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| names[a.1 as usize].cmp(&names[b.1 as usize]))
    });
    let rows: Vec<(u32, Behaviour)> = keyed
        .par_iter()
        .filter_map(|&(_, c)| Some((c, agg.behaviour[c as usize]?)))
        .collect();
    let customer: Vec<String> = keyed
        .iter()
        .map(|&(_, c)| std::mem::take(&mut names[c as usize]))
        .collect();
    let scale = 10f64.powi(i32::from(cx.decimals));
    let as_of = cx.as_of.days() - cx.start.days();
    let frequency = |b: &Behaviour| b.purchase_days.saturating_sub(1);
    let tenure = |b: &Behaviour| u32::try_from(as_of - i32::from(b.first_day)).unwrap_or(0);
    let since_last = |b: &Behaviour| u32::try_from(as_of - i32::from(b.last_day)).unwrap_or(0);
    // Levels in name order, whatever order they were met in: the schema of an export does not
    // depend on row order or on the source.
    let mix = |names: &Option<Vec<String>>, counts: &LevelCounts| match names {
        Some(names) => MixColumn::new(names, rows.iter().map(|(c, _)| counts.of(*c as usize))),
        None => MixColumn::default(),
    };
    let (channel_mix, category_mix) = rayon::join(
        || mix(&cx.channels, &agg.channels),
        || mix(&cx.categories, &agg.categories),
    );
    let demographics = cx.demographics.map(|demo| {
        let get = |c: u32| demo.get(c as usize);
        let text = |f: &(dyn Fn(&Demographics) -> Option<String> + Sync)| -> Vec<Option<String>> {
            column(&rows, |c, _| get(c).and_then(f))
        };
        DemographicColumns {
            age_band: text(&|d| d.age.map(|a| age_band(a, cx.age_bands))),
            gender: text(&|d| d.gender.clone()),
            region: text(&|d| d.region.clone()),
            income_band: text(&|d| d.income_band.clone()),
            customer_since_days: column(&rows, |c, _| {
                get(c)
                    .and_then(|d| d.signup)
                    .and_then(|s| u32::try_from(cx.as_of.days() - s.days()).ok())
            }),
        }
    });
    let credit = cx.credit.map(|credit| {
        let of = |c: u32| credit.get(&c);
        CreditColumns {
            utilization: column(&rows, |c, _| {
                of(c).and_then(|k| (k.limit > 0).then(|| k.balance as f64 / k.limit as f64))
            }),
            delinquency_bucket: column(&rows, |c, _| {
                of(c).map(|k| delinquency_bucket(k.max_days_past_due))
            }),
            default_flag: column(&rows, |c, _| of(c).map(|k| k.default)),
        }
    });
    FeatureTable {
        decimals: cx.decimals,
        customer,
        txn_count: column(&rows, |_, b| b.txn_count),
        purchase_days: column(&rows, |_, b| b.purchase_days),
        frequency: column(&rows, |_, b| frequency(b)),
        recency_days: column(&rows, |_, b| u32::from(b.last_day - b.first_day)),
        tenure_days: column(&rows, |_, b| tenure(b)),
        days_since_last: column(&rows, |_, b| since_last(b)),
        monetary_total: column(&rows, |_, b| b.total),
        monetary_mean_repeat: column(&rows, |_, b| match frequency(b) {
            0 => 0.0,
            f => (b.total - b.first_day_total) as f64 / f64::from(f) / scale,
        }),
        avg_ticket: column(&rows, |_, b| {
            b.total as f64 / b.txn_count.max(1) as f64 / scale
        }),
        lifecycle_stage: column(&rows, |_, b| {
            Stage::of(tenure(b), since_last(b), cx.lifecycle)
        }),
        channel_mix,
        category_mix,
        demographics,
        credit,
    }
}

/// One column of the table: `f(customer index, behaviour)` for every row, in row order, on the
/// rayon pool.
fn column<T: Send>(rows: &[(u32, Behaviour)], f: impl Fn(u32, &Behaviour) -> T + Sync) -> Vec<T> {
    rows.par_iter().map(|(c, b)| f(*c, b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_stages() {
        let edges = [25, 35, 45, 55, 65];
        let bands: Vec<String> = [0, 24, 25, 34, 35, 64, 65, 120]
            .iter()
            .map(|a| age_band(*a, &edges))
            .collect();
        assert_eq!(
            bands,
            [
                "<25", "<25", "25-34", "25-34", "35-44", "55-64", "65+", "65+"
            ]
        );
        let l = Lifecycle::default();
        assert_eq!(Stage::of(30, 0, &l), Stage::New);
        assert_eq!(Stage::of(31, 90, &l), Stage::Active);
        assert_eq!(Stage::of(400, 91, &l), Stage::AtRisk);
        assert_eq!(Stage::of(400, 181, &l), Stage::Churned);
        assert_eq!(delinquency_bucket(0), "current");
        assert_eq!(delinquency_bucket(30), "30-59");
        assert_eq!(delinquency_bucket(365), "90+");
    }
}
