//! fedprof synthetic data: seeded, multi-holder data sets for demos, tests and benchmarks.
//!
//! Owns generating `transactions` (CSV and Parquet), `customers` and, for banks, `credit`
//! tables for N data holders who share part of one customer universe, with a known set of dirty
//! rows and a manifest listing each of them by kind and row, so tests can check that cleaning
//! finds exactly those. Does not read data or compute features (that is `fedprof-node`).
//!
//! The same seed and plan give byte-identical files. The generator is a self-contained
//! SplitMix64 (statistical quality is enough for synthetic data; it is not a CSPRNG and is
//! never used for anything secret).

mod rows;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use rows::{DirtyKind, SplitMix64};

/// Which kind of federation to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Branches of a bank: customers with a home branch, some using a second one; credit table.
    Bank,
    /// Partner brands: each customer shops at each brand with some probability.
    Brands,
}

impl Scenario {
    /// `bank` or `brands`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Bank => "bank",
            Scenario::Brands => "brands",
        }
    }

    fn node_prefix(self) -> &'static str {
        match self {
            Scenario::Bank => "branch",
            Scenario::Brands => "brand",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Bank or brands.
    pub scenario: Scenario,
    /// Data holders (at least 1).
    pub nodes: usize,
    /// Customers in the shared universe.
    pub customers: u64,
    /// Mean transactions per customer and node where the customer is present (at least 1).
    pub transactions_per_customer: u32,
    /// Seed: the same seed writes the same files.
    pub seed: u64,
    /// Output directory (one folder per node).
    pub out: PathBuf,
    /// Dirty rows per million rows (default 5000, i.e. 0.5%).
    pub dirty_per_million: u32,
    /// Days since 1970-01-01 of the as-of date the dirty rows are made against.
    pub as_of_days: i32,
    /// History length in days before as_of (also the cleaning start the manifest states).
    pub history_days: i32,
    /// Write Parquet next to CSV.
    pub parquet: bool,
}

impl Plan {
    /// Defaults: 10 transactions per customer, 0.5% dirty rows, as_of 2026-06-30, two years of
    /// history, CSV and Parquet.
    pub fn new(
        scenario: Scenario,
        nodes: usize,
        customers: u64,
        seed: u64,
        out: impl Into<PathBuf>,
    ) -> Self {
        Plan {
            scenario,
            nodes,
            customers,
            transactions_per_customer: 10,
            seed,
            out: out.into(),
            dirty_per_million: 5_000,
            // 2026-06-30
            as_of_days: 20_634,
            history_days: 730,
            parquet: true,
        }
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The plan is unusable.
    #[error("{0}")]
    Plan(String),
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing Parquet failed.
    #[error("{}: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Dirty rows of one file, by kind (the node's quarantine reason), 1-based data rows.
pub type DirtyRows = BTreeMap<&'static str, Vec<u64>>;

/// One node's manifest (`manifest.json` in its folder).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeManifest {
    /// Node name, e.g. `branch-1`.
    pub node: String,
    /// Scenario.
    pub scenario: &'static str,
    /// The as-of date the dirty rows are made against, `YYYY-MM-DD`.
    pub as_of: String,
    /// The cleaning start date they are made against.
    pub start: String,
    /// The largest clean amount, major units (the cleaning `max_amount` to use).
    pub max_amount: String,
    /// Data rows in `transactions.csv` (and `.parquet`).
    pub transaction_rows: u64,
    /// Rows of `customers.csv`.
    pub customer_rows: u64,
    /// Rows of `credit.csv` (bank only).
    pub credit_rows: u64,
    /// Dirty rows of `transactions.csv`.
    pub dirty_csv: DirtyRows,
    /// Dirty rows of `transactions.parquet`: unparsable values cannot exist in typed columns,
    /// so those rows hold nulls there and are `missing_field`.
    pub dirty_parquet: DirtyRows,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Per node, in order.
    pub nodes: Vec<(PathBuf, NodeManifest)>,
    /// All transaction rows written (per format).
    pub transaction_rows: u64,
}

/// The largest clean amount, in major units.
pub const MAX_AMOUNT: i64 = 1_000_000;

/// Generates `plan`; `progress(node_index, nodes)` after each node.
pub fn generate(
    plan: &Plan,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Summary, SynthError> {
    if plan.nodes == 0 || plan.nodes > 1000 {
        return Err(SynthError::Plan(
            "--nodes must be between 1 and 1000".into(),
        ));
    }
    if plan.customers == 0 || plan.customers > 100_000_000 {
        return Err(SynthError::Plan(
            "--customers must be between 1 and 100000000".into(),
        ));
    }
    if plan.transactions_per_customer == 0 || plan.transactions_per_customer > 10_000 {
        return Err(SynthError::Plan(
            "transactions per customer must be between 1 and 10000".into(),
        ));
    }
    if !(1..=36_500).contains(&plan.history_days) {
        return Err(SynthError::Plan(
            "history must be between 1 and 36500 days".into(),
        ));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SynthError::Io { path, source }
    };
    std::fs::create_dir_all(&plan.out).map_err(io(&plan.out))?;
    let mut nodes = Vec::new();
    let mut total = 0;
    for n in 0..plan.nodes {
        let name = format!("{}-{}", plan.scenario.node_prefix(), n + 1);
        let dir = plan.out.join(&name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let data = rows::node_data(plan, n);
        let manifest = write::write_node(plan, &name, &dir, &data)?;
        total += manifest.transaction_rows;
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| SynthError::Plan(e.to_string()))?;
        let path = dir.join("manifest.json");
        std::fs::write(&path, text + "\n").map_err(io(&path))?;
        nodes.push((dir, manifest));
        progress(n + 1, plan.nodes);
    }
    Ok(Summary {
        nodes,
        transaction_rows: total,
    })
}

/// `days` since 1970-01-01 as `YYYY-MM-DD`.
pub fn format_day(days: i32) -> String {
    let date = time::Date::from_julian_day(days + 2_440_588).unwrap_or(time::Date::MIN);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}
