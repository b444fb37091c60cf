//! The logical rows of one node, in columns, before they are written in any format.

use crate::{MAX_AMOUNT, Plan, Scenario};

/// SplitMix64 (Steele, Lea, Flood 2014): 64-bit state, passes BigCrush; for synthetic data only.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; Lemire's multiply-shift, bias below 2^-32 for our sizes).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `per_million / 1e6`.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }
}

/// The defect a dirty row carries; its name is the quarantine reason the node must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DirtyKind {
    /// An exact copy of an earlier clean row.
    Duplicate,
    /// Empty customer id, date or amount.
    MissingField,
    /// A date that is not a date.
    UnparsableDate,
    /// An amount that is not an exact decimal with 2 places.
    UnparsableAmount,
    /// A negative amount.
    NegativeAmount,
    /// An amount above the maximum.
    OutOfRange,
    /// A date after as_of.
    AfterAsOf,
    /// A date before the start.
    BeforeStart,
    /// A customer not in the node's customers table.
    UnknownCustomer,
}

impl DirtyKind {
    /// Every kind.
    pub const ALL: [DirtyKind; 9] = [
        DirtyKind::Duplicate,
        DirtyKind::MissingField,
        DirtyKind::UnparsableDate,
        DirtyKind::UnparsableAmount,
        DirtyKind::NegativeAmount,
        DirtyKind::OutOfRange,
        DirtyKind::AfterAsOf,
        DirtyKind::BeforeStart,
        DirtyKind::UnknownCustomer,
    ];

    /// The node's quarantine reason for this defect.
    pub fn reason(self) -> &'static str {
        match self {
            DirtyKind::Duplicate => "duplicate",
            DirtyKind::MissingField => "missing_field",
            DirtyKind::UnparsableDate => "unparsable_date",
            DirtyKind::UnparsableAmount => "unparsable_amount",
            DirtyKind::NegativeAmount => "negative_amount",
            DirtyKind::OutOfRange => "out_of_range",
            DirtyKind::AfterAsOf => "after_as_of",
            DirtyKind::BeforeStart => "before_start",
            DirtyKind::UnknownCustomer => "unknown_customer",
        }
    }
}

/// Channel and category names of a scenario.
pub(crate) fn levels(s: Scenario) -> (&'static [&'static str], &'static [&'static str]) {
    match s {
        Scenario::Bank => (
            &["branch", "online", "mobile", "atm"],
            &["groceries", "travel", "utilities", "dining", "fuel"],
        ),
        Scenario::Brands => (
            &["store", "web", "app"],
            &["apparel", "shoes", "accessories", "beauty"],
        ),
    }
}

/// One node's rows in columns.
#[derive(Debug, Default)]
pub(crate) struct NodeData {
    pub(crate) txn_id: Vec<i64>,
    /// Customer number; numbers `>= plan.customers` are unknown customers.
    pub(crate) cust: Vec<u64>,
    /// 0: `C0000001`; 1: lowercase; 2: padded with spaces. All name the same customer.
    pub(crate) id_style: Vec<u8>,
    pub(crate) day: Vec<i32>,
    pub(crate) second: Vec<u32>,
    /// Minor units.
    pub(crate) amount: Vec<i64>,
    pub(crate) channel: Vec<u8>,
    pub(crate) category: Vec<u8>,
    pub(crate) dirty: Vec<Option<DirtyKind>>,
    /// Customers of this node, ascending.
    pub(crate) customers: Vec<u64>,
}

/// A per-customer generator, the same at every node: attributes agree across nodes.
pub(crate) fn customer_rng(seed: u64, c: u64) -> SplitMix64 {
    let mut r = SplitMix64(seed ^ c.wrapping_mul(0xd134_2543_de82_ef95));
    r.next_u64();
    r
}

fn at_node(plan: &Plan, node: usize, c: u64) -> bool {
    let mut r = customer_rng(plan.seed, c);
    let n = plan.nodes as u64;
    let home = r.below(n) as usize;
    if home == node {
        return true;
    }
    match plan.scenario {
        Scenario::Bank => {
            let second = r.below(n) as usize;
            r.chance(300_000) && second == node
        }
        Scenario::Brands => {
            let mut r =
                SplitMix64(plan.seed ^ c.rotate_left(17) ^ (node as u64).wrapping_mul(0x9e37_79b9));
            r.chance(400_000)
        }
    }
}

/// Generates node `node`'s rows.
pub(crate) fn node_data(plan: &Plan, node: usize) -> NodeData {
    let mut d = NodeData {
        customers: (0..plan.customers)
            .filter(|c| at_node(plan, node, *c))
            .collect(),
        ..NodeData::default()
    };
    let mean = u64::from(plan.transactions_per_customer);
    let expected = d.customers.len() * mean as usize;
    d.txn_id.reserve(expected + expected / 50);
    d.cust.reserve(expected);
    d.day.reserve(expected);
    d.amount.reserve(expected);
    let mut r = SplitMix64(plan.seed ^ (node as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    let (channels, categories) = levels(plan.scenario);
    let start = plan.as_of_days - plan.history_days;
    let mut unknown = plan.customers;
    let customers = std::mem::take(&mut d.customers);
    for &c in &customers {
        let mut cr = customer_rng(plan.seed, c);
        let base = 500 + cr.below(20_000) as i64;
        let fav_channel = cr.below(channels.len() as u64) as u8;
        let fav_category = cr.below(categories.len() as u64) as u8;
        let first = start + r.below(plan.history_days as u64 + 1) as i32;
        let n = 1 + r.below(2 * mean - 1);
        for _ in 0..n {
            let day = first + r.below((plan.as_of_days - first) as u64 + 1) as i32;
            let amount = (base / 2 + r.below(base as u64) as i64).max(1);
            let ch = if r.chance(600_000) {
                fav_channel
            } else {
                r.below(channels.len() as u64) as u8
            };
            let ca = if r.chance(500_000) {
                fav_category
            } else {
                r.below(categories.len() as u64) as u8
            };
            let style = if r.chance(20_000) {
                1 + r.below(2) as u8
            } else {
                0
            };
            push(
                &mut d,
                c,
                style,
                day,
                r.below(86_400) as u32,
                amount,
                ch,
                ca,
                None,
            );
            let last_clean = d.txn_id.len() - 1;
            if r.chance(plan.dirty_per_million) {
                let kind = DirtyKind::ALL[r.below(DirtyKind::ALL.len() as u64) as usize];
                let sec = r.below(86_400) as u32;
                let i = d.txn_id.len();
                match kind {
                    DirtyKind::Duplicate => {
                        let j = last_clean;
                        let row = (
                            d.cust[j],
                            d.id_style[j],
                            d.day[j],
                            d.second[j],
                            d.amount[j],
                            d.channel[j],
                            d.category[j],
                        );
                        push(
                            &mut d,
                            row.0,
                            row.1,
                            row.2,
                            row.3,
                            row.4,
                            row.5,
                            row.6,
                            Some(kind),
                        );
                        d.txn_id[i] = d.txn_id[j];
                    }
                    DirtyKind::NegativeAmount => {
                        push(&mut d, c, 0, day, sec, -amount, ch, ca, Some(kind))
                    }
                    DirtyKind::OutOfRange => {
                        let big = MAX_AMOUNT * 100 + 1 + r.below(100_000_000) as i64;
                        push(&mut d, c, 0, day, sec, big, ch, ca, Some(kind));
                    }
                    DirtyKind::AfterAsOf => {
                        push(
                            &mut d,
                            c,
                            0,
                            plan.as_of_days + 1 + r.below(60) as i32,
                            sec,
                            amount,
                            ch,
                            ca,
                            Some(kind),
                        );
                    }
                    DirtyKind::BeforeStart => {
                        push(
                            &mut d,
                            c,
                            0,
                            start - 1 - r.below(1000) as i32,
                            sec,
                            amount,
                            ch,
                            ca,
                            Some(kind),
                        );
                    }
                    DirtyKind::UnknownCustomer => {
                        push(&mut d, unknown, 0, day, sec, amount, ch, ca, Some(kind));
                        unknown += 1;
                    }
                    DirtyKind::MissingField
                    | DirtyKind::UnparsableDate
                    | DirtyKind::UnparsableAmount => {
                        push(&mut d, c, 0, day, sec, amount, ch, ca, Some(kind));
                    }
                }
            }
        }
    }
    d.customers = customers;
    d
}

#[expect(clippy::too_many_arguments, reason = "one row's columns")]
fn push(
    d: &mut NodeData,
    c: u64,
    style: u8,
    day: i32,
    second: u32,
    amount: i64,
    ch: u8,
    ca: u8,
    dirty: Option<DirtyKind>,
) {
    d.txn_id.push(d.txn_id.len() as i64 + 1);
    d.cust.push(c);
    d.id_style.push(style);
    d.day.push(day);
    d.second.push(second);
    d.amount.push(amount);
    d.channel.push(ch);
    d.category.push(ca);
    d.dirty.push(dirty);
}
