//! `fedprof features`: a node's per-customer features, exported locally (CSV or Parquet by the
//! output's extension), from a node config or, for a quick look at one file, from flags alone.
//! Writes next to the output a quarantine list (`OUT.quarantine.csv`) and a data-quality report
//! (`OUT.quality.json`), and prints the report's summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use fedprof_crypto::Pseudonymizer;
use fedprof_node::NodeConfig;
use fedprof_node::pipeline::dates::parse_iso_day;
use fedprof_node::pipeline::{
    self, DateParser, PipelineSpec, RunOptions, SourceSpec, TransactionsSpec, export, key,
};

use crate::progress::Progress;

/// `fedprof features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// The node config: `[data]` (sources, columns, cleaning, pseudonym key) and `[features]`.
    #[arg(long, value_name = "FILE", conflicts_with = "transactions")]
    pub config: Option<PathBuf>,
    /// Without --config: the transactions file (CSV, or Parquet by extension).
    #[arg(long, value_name = "FILE", required_unless_present = "config")]
    pub transactions: Option<PathBuf>,
    /// Customer id column (flags form).
    #[arg(long, value_name = "C", requires = "transactions")]
    pub customer_col: Option<String>,
    /// Date or timestamp column (flags form).
    #[arg(long, value_name = "D", requires = "transactions")]
    pub date_col: Option<String>,
    /// Amount column (flags form).
    #[arg(long, value_name = "A", requires = "transactions")]
    pub amount_col: Option<String>,
    /// Channel column (flags form, optional).
    #[arg(long, value_name = "COL", requires = "transactions")]
    pub channel_col: Option<String>,
    /// Category column (flags form, optional).
    #[arg(long, value_name = "COL", requires = "transactions")]
    pub category_col: Option<String>,
    /// Date format, strftime (`%d/%m/%Y`); default ISO 8601 dates or timestamps.
    #[arg(long, value_name = "FMT", requires = "transactions")]
    pub date_format: Option<String>,
    /// Field delimiter: `,` `;` `\t` (or `tab`) or `ws` (one space).
    #[arg(long, value_name = "D", default_value = ",", requires = "transactions")]
    pub delimiter: String,
    /// The file has no header row; name its columns with --columns.
    #[arg(long, requires = "columns")]
    pub no_header: bool,
    /// Column names, comma-separated, in file order (with --no-header).
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,...")]
    pub columns: Option<Vec<String>>,
    /// Decimal places of the currency's minor unit (flags form).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub amount_decimals: u8,
    /// The as-of date, YYYY-MM-DD (inclusive; later rows are quarantined). Overrides the config.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
    /// Pseudonym key file (flags form; the config names its own). Without one, a random key is
    /// used for this run only, so pseudonyms do not match other runs.
    #[arg(long, value_name = "FILE")]
    pub pseudonym_key: Option<PathBuf>,
    /// Output file: `.parquet` writes Parquet, anything else CSV. One row per customer.
    #[arg(long, value_name = "OUT")]
    pub out: PathBuf,
    /// Export normalized raw customer ids instead of pseudonyms. The file then identifies
    /// customers: keep it inside the data holder.
    #[arg(long)]
    pub reveal_ids: bool,
}

fn delimiter(text: &str) -> Result<u8> {
    Ok(match text {
        "ws" | " " => b' ',
        "\\t" | "\t" | "tab" => b'\t',
        t if t.len() == 1 && t.is_ascii() => t.as_bytes()[0],
        _ => bail!("--delimiter must be one ASCII character, `\\t` or `ws`"),
    })
}

fn as_of(text: &Option<String>) -> Result<Option<pipeline::Day>> {
    text.as_deref()
        .map(|t| {
            parse_iso_day(t).with_context(|| format!("--as-of {t:?}: expected a date YYYY-MM-DD"))
        })
        .transpose()
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    out.with_file_name(name)
}

fn flags_spec(a: &FeaturesArgs) -> Result<PipelineSpec> {
    let Some(path) = &a.transactions else {
        bail!("give --config or --transactions")
    };
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .with_context(|| format!("{flag} is required with --transactions"))
    };
    let as_of = as_of(&a.as_of)?.context("--as-of is required with --transactions")?;
    let mut source = SourceSpec::new(path);
    source.delimiter = delimiter(&a.delimiter)?;
    source.has_header = !a.no_header;
    source.columns.clone_from(&a.columns);
    let transactions = TransactionsSpec {
        source,
        customer: need(&a.customer_col, "--customer-col")?,
        date: need(&a.date_col, "--date-col")?,
        amount: need(&a.amount_col, "--amount-col")?,
        channel: a.channel_col.clone(),
        category: a.category_col.clone(),
        date_parser: DateParser::new(a.date_format.as_deref()).map_err(anyhow::Error::msg)?,
    };
    let mut spec = PipelineSpec::new(transactions, as_of);
    if a.amount_decimals > 9 {
        bail!("--amount-decimals must be at most 9");
    }
    spec.amount_decimals = a.amount_decimals;
    spec.max_amount_minor = 1_000_000 * 10i64.pow(u32::from(a.amount_decimals));
    spec.check_dates().map_err(anyhow::Error::msg)?;
    Ok(spec)
}

/// Runs `fedprof features`; returns the text for stdout.
pub async fn run(a: &FeaturesArgs) -> Result<String> {
    let progress = Progress::new();
    let mut notes = String::new();
    let (spec, pseudonymizer, postgres) = match &a.config {
        Some(path) => {
            let config = NodeConfig::load(path)?;
            let spec = config
                .pipeline_spec(as_of(&a.as_of)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let key_path = config.data.pseudonym_key.as_deref().with_context(|| {
                format!("{}: set data.pseudonym_key (federation init writes parties/node-NAME/pseudonym.key)", path.display())
            })?;
            (
                spec,
                key::load_pseudonymizer(key_path)?,
                config.data.postgres.clone(),
            )
        }
        None => {
            let spec = flags_spec(a)?;
            let p = match &a.pseudonym_key {
                Some(k) => key::load_pseudonymizer(k)?,
                None => {
                    notes.push_str("note: no --pseudonym-key: pseudonyms use a random key and match no other run\n");
                    Pseudonymizer::new(key::random_key()?)
                }
            };
            (spec, p, None)
        }
    };
    let quarantine = sibling(&a.out, ".quarantine.csv");
    let report = sibling(&a.out, ".quality.json");
    // Row counts only on a terminal (the spinner's message); logs get the step lines.
    let live = std::io::stderr().is_terminal();
    let path = spec.transactions.source.path.display().to_string();
    let on_rows = |table: &'static str, rows: u64, total: Option<u64>| {
        if live {
            progress.step(match total {
                Some(t) => format!("reading {path}: {table} {rows} of {t} rows"),
                None => format!("reading {path}: {table} {rows} rows"),
            });
        }
    };
    progress.step(match &postgres {
        Some(pg) => format!(
            "pushing the aggregation down to PostgreSQL table {}",
            pg.table
        ),
        None => format!("reading {}", spec.transactions.source.path.display()),
    });
    let opts = RunOptions {
        reveal_ids: a.reveal_ids,
        quarantine: Some(&quarantine),
        progress: Some(&on_rows),
    };
    let out = pipeline::compute_from(&spec, postgres.as_ref(), &pseudonymizer, &opts)?;
    progress.done(format!("{} customers", out.features.len()));
    progress.step(format!("writing {}", a.out.display()));
    export::write_features(&out.features, &a.out)?;
    out.quality.write_json(&report)?;
    let customers = out.features.len();
    // The command ends here: freeing a million small strings one by one would take a quarter
    // of a second on this path (measured, benches/RESULTS.md), and the process exit returns the
    // memory anyway. Nothing in the table needs a destructor (no secrets: pseudonyms, or raw ids
    // the operator asked to export).
    std::mem::forget(out.features);
    progress.finish();
    if !out.quality.balanced() {
        bail!(
            "internal error: the quality counts do not balance; see {}",
            report.display()
        );
    }
    let ids = if a.reveal_ids {
        "RAW customer ids (keep this file inside the data holder)"
    } else {
        "pseudonymized ids"
    };
    Ok(format!(
        "{notes}wrote {customers} customers to {} ({ids})\n{}  report: {}\n",
        a.out.display(),
        out.quality.summary(),
        report.display()
    ))
}
