//! `fedprof local`: a whole federation on this machine from node configs (the coordinator and
//! every node in this process, talking QUIC with mutual TLS on loopback exactly as deployed),
//! to try a profiling job on real files before deploying. Also the engine of the demo.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use fedprof_coordinator::{CoordinatorConfig, CoordinatorHandle, CoordinatorService};
use fedprof_node::{NodeConfig, NodeService};
use fedprof_profile::model::SegmentModel;
use fedprof_profile::report::ProfileReport;
use fedprof_profile::rundir;
use fedprof_profile::spec::{ProfilePolicy, ProfileSpec};
use fedprof_protocol::{JobOutcome, JobSpec, Submission};
use fedprof_transport::{ShutdownSignal, ShutdownTrigger};
use tokio::task::JoinHandle;

use crate::profile_job;
use crate::progress::Progress;

const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one release may take (features of every node plus a secure round).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(600);

/// `fedprof local`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// A node config (repeat for every node; at least the coordinator's `min_nodes`).
    #[arg(long = "node", required = true, value_name = "NODE.toml")]
    pub nodes: Vec<PathBuf>,
    /// The job spec (TOML; see docs/job.sample.toml).
    #[arg(long, value_name = "JOB.toml")]
    pub job: PathBuf,
    /// Where to write report.json, report.html, model.json and the CSV tables.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The coordinator config (default: coordinator.toml beside the first node config).
    #[arg(long, value_name = "COORDINATOR.toml")]
    pub coordinator: Option<PathBuf>,
    /// The previous model of this job, for a drift table (default: DIR/model.json if present).
    #[arg(long, value_name = "MODEL.json")]
    pub previous_model: Option<PathBuf>,
}

/// A coordinator and nodes running in this process.
#[derive(Debug)]
pub struct LocalFederation {
    handle: CoordinatorHandle,
    trigger: ShutdownTrigger,
    server: JoinHandle<()>,
    nodes: Vec<JoinHandle<()>>,
    /// The coordinator's config.
    pub config: CoordinatorConfig,
}

impl LocalFederation {
    /// Starts the coordinator of `coordinator` and every node of `nodes`, and waits until all
    /// nodes registered.
    pub async fn start(
        coordinator: &Path,
        nodes: &[PathBuf],
        progress: &Progress,
    ) -> Result<LocalFederation> {
        let config = CoordinatorConfig::load(coordinator)?;
        let node_configs = nodes
            .iter()
            .map(|p| NodeConfig::load(p).map_err(anyhow::Error::from))
            .collect::<Result<Vec<_>>>()?;
        progress.step("starting the coordinator");
        let (trigger, shutdown) = ShutdownSignal::new();
        let service = CoordinatorService::bind(&config)
            .with_context(|| format!("cannot start the coordinator on {}", config.listen))?;
        let (mut handle, server) = service.start(shutdown.clone());
        progress.done(format!(
            "coordinator listening on {} (QUIC, mutual TLS 1.3)",
            config.listen
        ));
        let mut tasks = Vec::new();
        for c in node_configs {
            let node = NodeService::new(c)?;
            tasks.push(tokio::spawn(node.run(shutdown.clone())));
        }
        let want = nodes.len();
        progress.step(format!("waiting for {want} nodes to register"));
        let registered = tokio::time::timeout(
            REGISTRATION_TIMEOUT,
            handle.wait_for_nodes(|n| n.len() >= want),
        )
        .await
        .context("nodes did not register in time (see the log lines above)")??;
        progress.done(format!("{} nodes registered", registered.len()));
        Ok(LocalFederation {
            handle,
            trigger,
            server,
            nodes: tasks,
            config,
        })
    }

    /// The coordinator's handle.
    pub fn handle(&self) -> &CoordinatorHandle {
        &self.handle
    }

    /// Runs one job.
    pub async fn run_job(&self, spec: JobSpec) -> Result<JobOutcome> {
        Ok(
            tokio::time::timeout(RELEASE_TIMEOUT, self.handle.run_job(spec))
                .await
                .context("a release did not finish in time")??,
        )
    }

    /// Submits a release under its request id (sent again, it gets the first outcome) and
    /// waits for its outcome.
    pub async fn submit(&self, submission: Submission) -> Result<JobOutcome> {
        Ok(
            tokio::time::timeout(RELEASE_TIMEOUT, self.handle.submit(submission))
                .await
                .context("a release did not finish in time")??,
        )
    }

    /// The profile policy of the coordinator's config.
    pub fn policy(&self) -> ProfilePolicy {
        profile_job::policy(&self.config)
    }

    /// Stops everything and waits for it.
    pub async fn stop(self) {
        self.trigger.trigger();
        for t in self.nodes {
            let _ = t.await;
        }
        let _ = self.server.await;
    }
}

/// Copies every node's ledger into `<federation>/ledgers/node-<name>.jsonl` beside the
/// coordinator's, the layout `fedprof audit` reads (the auditor's view: nodes hand over their
/// ledgers).
pub fn collect_ledgers(fed_dir: &Path, nodes: &[PathBuf]) -> Result<()> {
    for path in nodes {
        let config = NodeConfig::load(path)?;
        let name = fedprof_transport::Credentials::load(&config.tls)?
            .identity()
            .name
            .clone();
        let from = config.privacy.ledger.join("ledger.jsonl");
        let to = fed_dir.join("ledgers").join(format!("node-{name}.jsonl"));
        fs::create_dir_all(fed_dir.join("ledgers"))?;
        fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}

/// Runs a profiling job on a local federation and writes its outputs into `out`.
/// Runs a profiling job on `fed`, resuming the unfinished run in `out` if there is one.
pub async fn profile(
    fed: &LocalFederation,
    spec: ProfileSpec,
    previous: Option<&SegmentModel>,
    out: &Path,
    progress: &Progress,
) -> Result<(ProfileReport, SegmentModel)> {
    let policy = fed.policy();
    profile_job::run(|s| fed.submit(s), spec, &policy, previous, out, progress).await
}

/// Runs `fedprof local`; returns the text for stdout.
pub async fn run(a: &LocalArgs) -> Result<String> {
    let spec = rundir::load_spec(&a.job)?;
    let coordinator = match &a.coordinator {
        Some(c) => c.clone(),
        None => a.nodes[0]
            .parent()
            .unwrap_or(Path::new("."))
            .join("coordinator.toml"),
    };
    let fed_dir = coordinator.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Refuse a bad spec before anything starts.
    let config = CoordinatorConfig::load(&coordinator)?;
    let policy = profile_job::policy(&config);
    spec.validate(&policy)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.job.display()))?;
    let previous = match &a.previous_model {
        Some(path) => Some(rundir::load_model(path)?),
        None => rundir::load_latest_model(&a.out.join("model.json"))?,
    };
    let progress = Progress::new();
    let fed = LocalFederation::start(&coordinator, &a.nodes, &progress).await?;
    let result = profile(&fed, spec, previous.as_ref(), &a.out, &progress).await;
    progress.step("shutting down");
    fed.stop().await;
    let (mut report, model) = result?;
    collect_ledgers(&fed_dir, &a.nodes)?;
    profile_job::add_budgets(&mut report, &fed_dir)?;
    let paths = rundir::finish(&a.out, &report, &model)?;
    progress.finish();
    Ok(crate::report::profile_summary(&report, &paths))
}
