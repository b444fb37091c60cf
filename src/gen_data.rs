//! `fedprof gen-data`: seeded synthetic data for N data holders (bank branches or partner
//! brands), with a manifest of every dirty row per node. See `fedprof-synth`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use fedprof_synth::{Plan, Scenario};

use crate::progress::Progress;

/// The scenarios.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScenarioArg {
    /// Bank branches: transactions, customers and credit; customers with a home branch.
    Bank,
    /// Partner brands: transactions and customers; customers shop at several brands.
    Brands,
}

/// `fedprof gen-data`.
#[derive(Debug, Args)]
pub struct GenDataArgs {
    /// Which federation to simulate.
    #[arg(long, value_enum)]
    pub scenario: ScenarioArg,
    /// Number of data holders.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub nodes: usize,
    /// Customers in the shared universe.
    #[arg(long, default_value_t = 10_000, value_name = "C")]
    pub customers: u64,
    /// Mean transactions per customer at each node where the customer is present.
    #[arg(long, default_value_t = 10, value_name = "T")]
    pub transactions_per_customer: u32,
    /// Dirty rows per million (each one listed in the node's manifest.json).
    #[arg(long, default_value_t = 5_000, value_name = "PPM")]
    pub dirty_per_million: u32,
    /// Seed: the same seed writes the same files.
    #[arg(long, default_value_t = 2026, value_name = "S")]
    pub seed: u64,
    /// Output directory (one folder per node).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write CSV only (no transactions.parquet).
    #[arg(long)]
    pub no_parquet: bool,
}

/// Runs `fedprof gen-data`; returns the text for stdout.
pub fn run(a: &GenDataArgs) -> Result<String> {
    let scenario = match a.scenario {
        ScenarioArg::Bank => Scenario::Bank,
        ScenarioArg::Brands => Scenario::Brands,
    };
    let mut plan = Plan::new(scenario, a.nodes, a.customers, a.seed, &a.out);
    plan.transactions_per_customer = a.transactions_per_customer;
    plan.dirty_per_million = a.dirty_per_million;
    plan.parquet = !a.no_parquet;
    let progress = Progress::new();
    progress.step(format!(
        "generating {} nodes of {} data",
        a.nodes,
        scenario.as_str()
    ));
    let started = std::time::Instant::now();
    let summary = fedprof_synth::generate(&plan, &|done, total| {
        progress.step(format!("node {done} of {total} written"))
    })?;
    progress.finish();
    let mut s = format!(
        "wrote {} transactions for {} nodes to {} in {:.1} s\n",
        summary.transaction_rows,
        summary.nodes.len(),
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    for (dir, m) in &summary.nodes {
        let dirty: u64 = m.dirty_csv.values().map(|v| v.len() as u64).sum();
        s.push_str(&format!(
            "  {}: {} transactions ({dirty} dirty), {} customers\n",
            dir.display(),
            m.transaction_rows,
            m.customer_rows
        ));
    }
    if let Some((dir, m)) = summary.nodes.first() {
        s.push_str(&format!(
            "try: fedprof features --transactions {}/transactions.csv --customer-col customer_id --date-col date \
             --amount-col amount --channel-col channel --category-col category --as-of {} --out features.csv\n",
            dir.display(),
            m.as_of
        ));
    }
    Ok(s)
}
