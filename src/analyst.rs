//! The analyst's client: submit a job to the coordinator and wait for its outcome.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fedprof_config::ConfigFile;
use fedprof_protocol::query::{FeatureQuery, MAX_SCALE, NumericFeature, QueryPart, Segmenter};
use fedprof_protocol::{Body, Escaped, Fraction, JobId, JobOutcome, RoundId, Submission};
use fedprof_transport::{
    ClientLimits, Credentials, DialTarget, TlsFiles, client_endpoint, close_code, connect,
};
use serde::Deserialize;

/// `analyst-<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalystConfig {
    /// The coordinator's address, `HOST:PORT`.
    pub coordinator: DialTarget,
    /// The name on the coordinator's certificate; defaults to `HOST`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// The analyst's TLS files.
    pub tls: TlsFiles,
}

impl AnalystConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, fedprof_config::ConfigError> {
        let file = ConfigFile::read(path)?;
        let mut config: AnalystConfig = file.parse()?;
        config.tls.resolve_against(file.dir());
        file.require_file("tls.ca", &config.tls.ca)?;
        file.require_file("tls.cert", &config.tls.cert)?;
        file.require_file("tls.key", &config.tls.key)?;
        Ok(config)
    }
}

/// A fresh request id (16 bytes from the OS) for a one-off submission.
pub fn new_request() -> Result<fedprof_protocol::RequestId> {
    use rand_core::Rng as _;
    let mut id = [0u8; 16];
    fedprof_crypto::rng::from_os()
        .map_err(|e| anyhow::anyhow!("no randomness for a request id: {e}"))?
        .fill_bytes(&mut id);
    Ok(fedprof_protocol::RequestId(id))
}

/// Submits `submission` and waits up to `timeout` for the outcome.
pub async fn submit(
    config: &AnalystConfig,
    submission: Submission,
    timeout: Duration,
) -> Result<JobOutcome> {
    let creds = Credentials::load(&config.tls)?;
    let addr = config
        .coordinator
        .resolve()
        .await
        .with_context(|| format!("cannot resolve {}", config.coordinator))?;
    let limits = ClientLimits::default();
    let endpoint = client_endpoint(&creds, &limits, addr)?;
    let server_name = config
        .server_name
        .as_deref()
        .unwrap_or(config.coordinator.host());
    let peer = connect(&endpoint, addr, server_name)
        .await
        .with_context(|| format!("cannot connect to the coordinator at {addr}"))?;
    let (mut writer, mut reader) = peer.open_stream(limits.max_frame).await?.split();
    writer
        .send(JobId::NONE, RoundId(0), Body::SubmitJob(submission))
        .await?;
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            match reader.recv().await? {
                Some(env) => match env.body {
                    Body::Outcome(o) => return Ok(o),
                    Body::Error(e) => bail!(
                        "the coordinator refused: {:?}: {}",
                        e.code,
                        Escaped(&e.detail)
                    ),
                    other => tracing::debug!(kind = other.kind(), "ignoring message"),
                },
                None => bail!("the coordinator closed the session before the job ended"),
            }
        }
    })
    .await
    .with_context(|| format!("no outcome within {} s", timeout.as_secs()))??;
    writer.finish();
    peer.close(close_code::DONE, "");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    Ok(outcome)
}

/// `fedprof job submit --config analyst.toml job.toml`: runs a profiling job release by
/// release, each submitted like any job (the coordinator plans each release's noise and refuses
/// one over its per-job cap; every node checks its own budget, including the rest of the job),
/// and writes the report, the model and the tables.
pub async fn submit_profile(a: &crate::cli::SubmitArgs) -> Result<String> {
    let Some(job) = &a.job else {
        bail!("no job spec given");
    };
    let config = AnalystConfig::load(&a.config)?;
    let spec = fedprof_profile::rundir::load_spec(job)?;
    // The coordinator checks the whole job's rho against its cap at the first release (budget
    // plus reserve); here the spec is checked for everything else before anything is sent.
    let mut policy = fedprof_profile::spec::ProfilePolicy::new(&spec.rho + &spec.retry_reserve);
    policy.min_cell_size_floor = 1;
    spec.validate(&policy)
        .map_err(|e| anyhow::anyhow!("{}: {e}", job.display()))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(&spec.name));
    let previous = fedprof_profile::rundir::load_latest_model(&out.join("model.json"))?;
    let timeout = Duration::from_secs(a.timeout_secs);
    let progress = crate::progress::Progress::new();
    let config = &config;
    let progress_ref = &progress;
    let run_job =
        |s: Submission| async move { submit_retrying(config, s, timeout, progress_ref).await };
    let (report, model) =
        crate::profile_job::run(run_job, spec, &policy, previous.as_ref(), &out, &progress).await?;
    let paths = fedprof_profile::rundir::finish(&out, &report, &model)?;
    progress.finish();
    Ok(crate::report::profile_summary(&report, &paths))
}

/// How many times a release is sent again after the connection to the coordinator failed.
const CONNECTION_RETRIES: u32 = 4;

/// [`submit`], sent again (same request id) with backoff when the connection fails: requests
/// are idempotent, so a coordinator that restarted or a network that dropped the session costs
/// nothing (a published release comes back, a running round is joined).
pub async fn submit_retrying(
    config: &AnalystConfig,
    submission: Submission,
    timeout: Duration,
    progress: &crate::progress::Progress,
) -> Result<JobOutcome> {
    let mut wait = Duration::from_secs(1);
    let mut attempt = 0;
    loop {
        match submit(config, submission.clone(), timeout).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) if attempt < CONNECTION_RETRIES => {
                attempt += 1;
                progress.done(format!(
                    "{e:#}; sending the release again in {} s ({attempt}/{CONNECTION_RETRIES})",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The public bounds and budget of `fedprof job submit` without a job spec: the transaction
/// totals, asked as one feature query over every customer (docs/PRIVACY.md, "Totals").
#[derive(Debug, Clone, clap::Args)]
pub struct TotalsArgs {
    /// Transactions of one customer that count (further ones are left out of the count).
    #[arg(long, default_value_t = 100, value_name = "R")]
    pub max_rows: i64,
    /// A customer's total amount is clipped below at this many minor units (negative amounts
    /// are quarantined by the nodes' cleaning, so 0 loses nothing).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "MINOR",
        allow_negative_numbers = true
    )]
    pub min_amount_minor: i64,
    /// A customer's total amount is clipped above at this many minor units (default 1000000,
    /// 10,000.00 in a currency with cents).
    #[arg(long, default_value_t = 1_000_000, value_name = "MINOR")]
    pub max_amount_minor: i64,
    /// Decimal places of the minor unit, for printing the amount.
    #[arg(long, default_value_t = 2)]
    pub amount_decimals: u8,
    /// The date the nodes compute their customers as of, `YYYY-MM-DD` (default: today, UTC;
    /// later rows are quarantined).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Fixed-point scale of each customer's coordinates (at most 2^20, the default): a bound
    /// of width W is resolved to W / scale per customer.
    #[arg(long, default_value_t = MAX_SCALE)]
    pub scale: u32,
    /// The zCDP loss (rho, exact) the release may cost each node; the coordinator refuses more
    /// than its per-job cap (default 1/2).
    #[arg(long, default_value = "1/2", value_name = "RHO")]
    pub rho: fedprof_privacy::Rho,
}

/// The transaction-totals feature query `args` describe: every customer in one segment, parts
/// `[Count, Numeric{TxnCount, 0, R}, Numeric{MonetaryTotal, lo, hi}]`, `args.rho` as budget,
/// no reserve, and a new one-release profiling job. Checked as the nodes will check it.
pub fn totals_query(args: &TotalsArgs) -> Result<FeatureQuery> {
    let as_of = match &args.as_of {
        Some(d) => d.clone(),
        None => {
            let today = time::OffsetDateTime::now_utc().date();
            format!(
                "{:04}-{:02}-{:02}",
                today.year(),
                u8::from(today.month()),
                today.day()
            )
        }
    };
    let budget = match (
        u64::try_from(args.rho.numer()),
        u64::try_from(args.rho.denom()),
    ) {
        (Ok(numer), Ok(denom)) if numer > 0 => Fraction { numer, denom },
        _ => bail!("--rho must be a positive fraction of 64-bit integers"),
    };
    let query = FeatureQuery {
        label: "totals".into(),
        as_of,
        scale: args.scale,
        segmenter: Segmenter::All,
        parts: vec![
            QueryPart::Count,
            QueryPart::Numeric {
                feature: NumericFeature::TxnCount,
                lo: 0,
                hi: args.max_rows,
            },
            QueryPart::Numeric {
                feature: NumericFeature::MonetaryTotal,
                lo: args.min_amount_minor,
                hi: args.max_amount_minor,
            },
        ],
        budget,
        reserve: Fraction { numer: 0, denom: 1 },
        job: None,
    };
    query
        .validate()
        .map_err(|e| anyhow::anyhow!("totals query: {e}"))?;
    Ok(query)
}
