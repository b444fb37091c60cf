//! The node's data pipeline: sources, cleaning with quarantine, pseudonymization at ingest and
//! per-customer features (DESIGN.md section 5; docs/DATA.md for every rule and definition).
//!
//! ```text
//! customers (optional) --+
//! transactions ----------+--> scan: check every row --> quarantine file + quality counts
//! credit (optional) -----+        | normalized id -> dense index (raw ids stop here)
//!                                 v
//!                      compact records (40 B/row) --> aggregate: bucket by customer,
//!                                                     dedup, days, totals, shares
//!                                                             v
//!                         pseudonym per customer (HMAC, once) + features as of as_of
//! ```
//!
//! CSV and Parquet are read with the Arrow readers ([`source`]); the aggregation is written for
//! exactly this job ([`aggregate`]). PostgreSQL sources push the aggregation down as SQL
//! ([`postgres`]). Nothing here reads a clock: `as_of` is an input.

mod aggregate;
pub mod dates;
pub mod error;
pub mod export;
pub mod features;
mod ingest;
mod interner;
pub mod key;
pub mod postgres;
pub mod quality;
mod source;
pub mod spec;
pub mod sql;
mod values;

pub use values::{AmountError, parse_minor_units};

use std::path::Path;

use fedprof_crypto::Pseudonymizer;
use rayon::prelude::*;

pub use dates::{DateParser, Day};
pub use error::PipelineError;
pub use features::{FeatureTable, MixColumn, Stage};
pub use ingest::ProgressFn;
pub use quality::{QualityReport, Reason};
pub use source::catching_panics;
pub use spec::{FileFormat, PipelineSpec, SourceSpec, TransactionsSpec};

use quality::Quarantine;

/// How to run.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// Export normalized raw ids instead of pseudonyms (local use only).
    pub reveal_ids: bool,
    /// Where to list quarantined rows (`None`: count only).
    pub quarantine: Option<&'a Path>,
    /// Called after every batch of transactions.
    pub progress: Option<ProgressFn<'a>>,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("reveal_ids", &self.reveal_ids)
            .field("quarantine", &self.quarantine)
            .finish_non_exhaustive()
    }
}

/// Features and the quality report of one run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// One row per customer with at least one used transaction.
    pub features: FeatureTable,
    /// Counts per table and reason.
    pub quality: QualityReport,
}

/// Runs the pipeline of a node's data: over `spec`'s files, or, when `postgres` is given, with
/// the transactions aggregation pushed down to that database ([`postgres::compute`]; the
/// customers and credit files are read here either way). The one entry point for everything
/// that computes a node's features from its configuration: the node's job work, `fedprof
/// features` and `fedprof label`.
///
/// Blocking. The PostgreSQL client runs on a thread of its own with its own single-threaded
/// runtime, so this can be called from synchronous code, a blocking task or inside an async
/// runtime alike (`Handle::block_on` would panic on a runtime thread). Progress is reported for
/// files only; the database does its own reading.
pub fn compute_from(
    spec: &PipelineSpec,
    postgres: Option<&postgres::PostgresConfig>,
    pseudonymizer: &Pseudonymizer,
    opts: &RunOptions<'_>,
) -> Result<RunOutput, PipelineError> {
    let Some(pg) = postgres else {
        return compute(spec, pseudonymizer, opts);
    };
    let stopped = || PipelineError::Postgres("the PostgreSQL client stopped unexpectedly".into());
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| PipelineError::Postgres(format!("cannot start a runtime: {e}")))?;
                runtime.block_on(postgres::compute(
                    spec,
                    pg,
                    pseudonymizer,
                    opts.reveal_ids,
                    opts.quarantine,
                ))
            })
            .join()
            .map_err(|_| stopped())?
    })
}

/// Runs the pipeline over files.
pub fn compute(
    spec: &PipelineSpec,
    pseudonymizer: &Pseudonymizer,
    opts: &RunOptions<'_>,
) -> Result<RunOutput, PipelineError> {
    spec.check_dates().map_err(|e| PipelineError::Columns {
        path: spec.transactions.source.path.clone(),
        problem: e.to_string(),
    })?;
    let mut ids = interner::Interner::new();
    let mut q = Quarantine::new(opts.quarantine)?;
    let demographics = spec
        .customers
        .as_ref()
        .map(|c| ingest::scan_customers(c, spec.as_of, &mut ids, &mut q))
        .transpose()?;
    let closed = demographics.is_some();
    let slot = usize::from(closed);
    let scan = ingest::scan_transactions(spec, &mut ids, closed, &mut q, opts.progress)?;
    let credit = spec
        .credit
        .as_ref()
        .map(|c| ingest::scan_credit(c, spec.amount_decimals, &mut ids, closed, &mut q))
        .transpose()?;
    let t = &spec.transactions;
    let agg = aggregate::aggregate(scan.txns, ids.len());
    for row in &agg.duplicates {
        q.reject(slot, u64::from(*row), Reason::Duplicate, "(all columns)")?;
    }
    if let Some(c) = q.counts(slot) {
        c.rows_used = agg.rows_used;
    }
    let names: Vec<String> = (0..ids.len())
        .into_par_iter()
        .map(|c| {
            if agg.behaviour[c].is_none() {
                String::new()
            } else if opts.reveal_ids {
                ids.id(c as u32).to_owned()
            } else {
                pseudonymizer
                    .pseudonym(ids.id(c as u32))
                    .map(|p| p.to_hex())
                    .unwrap_or_default()
            }
        })
        .collect();
    drop(ids);
    let cx = features::Context {
        as_of: spec.as_of,
        start: spec.start,
        decimals: spec.amount_decimals,
        lifecycle: &spec.lifecycle,
        age_bands: &spec.age_bands,
        channels: t.channel.as_ref().map(|_| scan.channels.names.clone()),
        categories: t.category.as_ref().map(|_| scan.categories.names.clone()),
        demographics: demographics.as_deref(),
        credit: credit.as_ref(),
    };
    let table = features::assemble(&agg, names, &cx);
    let (tables, quarantine) = q.finish()?;
    let quality = QualityReport {
        as_of: spec.as_of.to_string(),
        customers: table.len() as u64,
        tables,
        quarantine_file: quarantine.map(|p| p.display().to_string()),
    };
    Ok(RunOutput {
        features: table,
        quality,
    })
}
