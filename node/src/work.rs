//! What a node computes for an announced job, off the network task: the mechanism it pays
//! for, and the noisy vector it sends.
//!
//! Every job is a feature query: it runs the full pipeline ([`crate::pipeline`]: cleaning with
//! quarantine, pseudonymization, features) as of the query's date and answers from the features
//! ([`crate::query`]). A bad row is quarantined, never a refusal: what the node sends does not
//! depend on whether one row parses, and no line number or value ever leaves it. A profiling job asks several
//! queries on the same date, so the last feature table is kept, keyed by that date and the
//! input files' modification times.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fedprof_ledger::MechanismRecord;
use fedprof_privacy::Rho;
use fedprof_protocol::{FeatureQuery, JobSpec, Refusal, RefuseReason, ReleaseParams};
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::pipeline::{self, FeatureTable, RunOptions, dates::parse_iso_day, key};

fn policy(detail: String) -> Refusal {
    Refusal {
        reason: RefuseReason::Policy,
        detail,
    }
}

/// The loss of the announced release and the record the ledger keeps of it, from the same
/// functions the coordinator planned with and the auditor recomputes with.
pub(crate) fn mechanism(
    spec: &JobSpec,
    release: &ReleaseParams,
    profile: &fedprof_protocol::ProfileTag,
) -> Result<(Rho, MechanismRecord), Refusal> {
    let refused = |e: &dyn std::fmt::Display| policy(format!("release parameters refused: {e}"));
    let rho = match spec {
        JobSpec::Features(q) => {
            fedprof_privacy::query::query_rho(q, release).map_err(|e| refused(&e))?
        }
    };
    let record = MechanismRecord::for_release(spec, release, profile).map_err(|e| refused(&e))?;
    Ok((rho, record))
}

/// The last feature table computed, and what it was computed from (empty: `Default`).
#[derive(Debug, Default)]
pub struct FeatureCache {
    last: Mutex<Option<(CacheKey, Arc<FeatureTable>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    as_of: String,
    inputs: Vec<(PathBuf, Option<SystemTime>)>,
}

fn cache_key(config: &NodeConfig, as_of: &str) -> CacheKey {
    let d = &config.data;
    let mut paths = vec![d.transactions.clone()];
    paths.extend(d.customers.as_ref().map(|c| c.path.clone()));
    paths.extend(d.credit.as_ref().map(|c| c.path.clone()));
    let inputs = paths
        .into_iter()
        .map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, modified)
        })
        .collect();
    CacheKey {
        as_of: as_of.to_owned(),
        inputs,
    }
}

/// This node's features as of `as_of` (from the cache when the inputs have not changed).
/// Errors are logged here in full and reach the coordinator without paths or values.
pub fn features(
    config: &NodeConfig,
    as_of: &str,
    cache: &FeatureCache,
) -> Result<Arc<FeatureTable>, Refusal> {
    let unavailable = |detail: &str| Refusal {
        reason: RefuseReason::DataUnavailable,
        detail: detail.to_owned(),
    };
    let key = cache_key(config, as_of);
    if let Ok(last) = cache.last.lock()
        && let Some((k, table)) = last.as_ref()
        && *k == key
    {
        return Ok(Arc::clone(table));
    }
    let day =
        parse_iso_day(as_of).ok_or_else(|| policy(format!("as_of {as_of:?} is not a date")))?;
    let spec = config.pipeline_spec(Some(day)).map_err(|e| {
        warn!(error = %e, "node configuration cannot serve feature queries");
        unavailable("the node's data configuration is invalid (see the node's log)")
    })?;
    let pseudonymizer = match &config.data.pseudonym_key {
        Some(path) => key::load_pseudonymizer(path),
        // Pseudonyms are not part of any query's answer; a throwaway key does.
        None => key::random_key().map(fedprof_crypto::Pseudonymizer::new),
    }
    .map_err(|e| {
        warn!(error = %e, "pseudonym key unusable");
        unavailable("the node's pseudonym key is unusable (see the node's log)")
    })?;
    let started = std::time::Instant::now();
    let opts = RunOptions {
        reveal_ids: false,
        quarantine: None,
        progress: None,
    };
    let out = pipeline::compute_from(&spec, config.data.postgres.as_ref(), &pseudonymizer, &opts)
        .map_err(|e| {
        warn!(error = %e, "local data unusable; refusing the job");
        unavailable("the node's local data could not be read (see the node's log)")
    })?;
    info!(
        customers = out.features.len(),
        rows_in = out.quality.tables.iter().map(|t| t.rows_in).sum::<u64>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        %as_of,
        "features computed"
    );
    let table = Arc::new(out.features);
    if let Ok(mut last) = cache.last.lock() {
        *last = Some((key, Arc::clone(&table)));
    }
    Ok(table)
}

/// What to compute for one job.
pub(crate) enum Work {
    /// A feature query.
    Features {
        config: Arc<NodeConfig>,
        cache: Arc<FeatureCache>,
        query: FeatureQuery,
    },
}

impl Work {
    /// The work for `spec`.
    pub(crate) fn new(spec: &JobSpec, config: &Arc<NodeConfig>, cache: &Arc<FeatureCache>) -> Self {
        match spec {
            JobSpec::Features(q) => Work::Features {
                config: Arc::clone(config),
                cache: Arc::clone(cache),
                query: (**q).clone(),
            },
        }
    }

    /// Computes this node's exact (noise-free) answer, or the refusal to send instead. The
    /// noise is drawn only once the release passed its budget checks under the ledger lock
    /// ([`crate::books::debit`]).
    pub(crate) fn exact(&self) -> Result<Vec<i64>, Refusal> {
        match self {
            Work::Features {
                config,
                cache,
                query,
            } => {
                let table = features(config, &query.as_of, cache)?;
                answer_query(&table, query)
            }
        }
    }
}

/// This node's exact (noise-free) answer to `spec` from an already computed feature table,
/// or the refusal to send instead: what [`Work`] does once the pipeline has run. Public so
/// that a driver holding its features in memory (the simulator) answers with the same
/// evaluation and the same refusal as the service.
pub fn answer(table: &FeatureTable, spec: &JobSpec) -> Result<Vec<i64>, Refusal> {
    match spec {
        JobSpec::Features(q) => answer_query(table, q),
    }
}

fn answer_query(table: &FeatureTable, query: &FeatureQuery) -> Result<Vec<i64>, Refusal> {
    crate::query::evaluate(table, query).map_err(|e| policy(e.to_string()))
}
