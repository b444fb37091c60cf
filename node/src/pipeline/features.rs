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

use super::aggregate::{Aggregate, Behaviour};
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
    /// Channel levels, in column order (sorted by name).
    pub channel_names: Vec<String>,
    /// `channel_shares[level][row]`: share of the customer's transactions.
    pub channel_shares: Vec<Vec<f64>>,
    /// Category levels.
    pub category_names: Vec<String>,
    /// `category_shares[level][row]`.
    pub category_shares: Vec<Vec<f64>>,
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
    // Share columns in name order, whatever order the levels were met in: the schema of an
    // export does not depend on row order or on the source.
    let sorted = |names: &Option<Vec<String>>| {
        let names = names.clone().unwrap_or_default();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|a, b| names[*a].cmp(&names[*b]));
        let sorted_names = order.iter().map(|i| names[*i].clone()).collect::<Vec<_>>();
        (order, sorted_names)
    };
    let (ch_order, channel_names) = sorted(&cx.channels);
    let (ca_order, category_names) = sorted(&cx.categories);
    let shares = |order: &[usize], counts: &[u32]| -> Vec<Vec<f64>> {
        let stride = counts.len() / agg.behaviour.len().max(1);
        order
            .par_iter()
            .map(|l| {
                column(&rows, |c, b| {
                    let n = counts.get(c as usize * stride + l).copied().unwrap_or(0);
                    f64::from(n) / b.txn_count as f64
                })
            })
            .collect()
    };
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
        channel_shares: shares(&ch_order, &agg.channel_counts),
        category_shares: shares(&ca_order, &agg.category_counts),
        channel_names,
        category_names,
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
