//! The command line: argument definitions and dispatch. Each command is a few lines that call
//! into the crates; errors propagate to `main`, which prints them without a stack trace.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fedprof_coordinator::{CoordinatorConfig, CoordinatorService};
use fedprof_node::{NodeConfig, NodeService};
use fedprof_protocol::{JobOutcome, JobSpec, PartyName};
use fedprof_transport::ShutdownSignal;
use tracing::info;

use crate::{analyst, audit, demo, features, federation, gen_data, label, local, report, schedule};

/// Privacy-preserving federated customer profiling.
///
/// Data holders run a node beside their own data; a coordinator merges what the nodes send over
/// QUIC with mutual TLS. Start with `fedprof demo`.
#[derive(Debug, Parser)]
#[command(name = "fedprof", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole federation on this machine with synthetic data and print the result.
    Demo(DemoArgs),
    /// Set up a federation: CA, certificates and sample configs.
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Run the coordinator until interrupted (Ctrl-C).
    Coordinator(ConfigArg),
    /// Run a node until interrupted (Ctrl-C); it dials the coordinator and reconnects as needed.
    Node(ConfigArg),
    /// Submit jobs as an analyst.
    #[command(subcommand)]
    Job(JobCommand),
    /// Verify the federation's ledgers (auditor): chains, signatures, budgets, releases.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Export this node's per-customer features locally (CSV or Parquet): clean, pseudonymize,
    /// compute as of a date; writes a quarantine list and a data-quality report beside it.
    Features(features::FeaturesArgs),
    /// Write seeded synthetic data for N data holders, with a manifest of every dirty row.
    GenData(gen_data::GenDataArgs),
    /// Run a profiling job on a whole federation on this machine, from node configs
    /// (coordinator and nodes in this process, over QUIC on loopback).
    Local(local::LocalArgs),
    /// Label this node's own customers with a segment model, locally.
    Label(label::LabelArgs),
}

/// `fedprof demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the federation, data and results (default: a new temporary directory,
    /// kept and printed at the end).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub nodes: usize,
    /// Distinct customers over all branches (some bank at several).
    #[arg(long, default_value_t = 100_000, value_name = "C")]
    pub customers: u64,
    /// Seed of the synthetic data (the same seed writes the same data).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

/// `fedprof federation ...`.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Create a federation directory: CA, one certificate and key per party, sample configs.
    Init(InitArgs),
}

/// `fedprof federation init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Address nodes and analysts dial, HOST:PORT; HOST goes into the coordinator's certificate.
    #[arg(long, value_name = "HOST:PORT")]
    pub coordinator: String,
    /// Node names, comma-separated (lowercase letters, digits, '-').
    #[arg(long, value_delimiter = ',', required = true, value_name = "NAMES")]
    pub nodes: Vec<PartyName>,
    /// Analyst names, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub analysts: Vec<PartyName>,
    /// Auditor names, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub auditors: Vec<PartyName>,
    /// The federation's name, shown in the CA certificate.
    #[arg(long, default_value = "fedprof")]
    pub name: String,
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `fedprof job ...`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job to the coordinator and print its outcome.
    Submit(SubmitArgs),
}

/// `fedprof job submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The analyst's config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The kind of job (when no job spec is given).
    #[arg(long, value_enum, default_value_t = JobKind::Totals)]
    pub kind: JobKind,
    /// Bounds and budget of the totals query (when no job spec is given).
    #[command(flatten)]
    pub totals: analyst::TotalsArgs,
    /// A profiling job spec (TOML, docs/job.sample.toml): run it release by release.
    #[arg(value_name = "JOB.toml")]
    pub job: Option<PathBuf>,
    /// Where a profiling job writes its report, model and tables (default: ./<job name>/;
    /// a model.json already there is the previous version, for the drift table).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seconds to wait for each outcome.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// Job kinds selectable on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum JobKind {
    /// Customers, transactions and total amount over every node: a feature query with public
    /// per-customer bounds (`--max-rows`, `--min-amount-minor`, `--max-amount-minor`).
    #[value(alias = "transaction-totals")]
    Totals,
}

impl Command {
    /// The log level used when `RUST_LOG` is not set.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Demo(_) | Command::Federation(_) | Command::Job(_) | Command::Audit(_) => {
                "warn"
            }
            Command::Features(_) | Command::GenData(_) | Command::Label(_) => "warn",
            Command::Local(_) => "warn",
            Command::Coordinator(_) | Command::Node(_) => "info",
        }
    }
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(a) => {
            demo::run(&demo::DemoOptions {
                out: a.out,
                nodes: a.nodes,
                customers: a.customers,
                seed: a.seed,
            })
            .await?;
        }
        Command::Federation(FederationCommand::Init(a)) => {
            let fed = federation::init(&federation::FederationPlan {
                dir: a.dir,
                name: a.name,
                coordinator: a.coordinator,
                nodes: a.nodes,
                analysts: a.analysts,
                auditors: a.auditors,
            })?;
            let mut msg = format!("Federation created in {}\n", fed.dir.display());
            msg.push_str(&format!(
                "  coordinator: {}\n",
                fed.coordinator_config.display()
            ));
            for (name, path) in fed.node_configs.iter().chain(&fed.analyst_configs) {
                msg.push_str(&format!("  {name}: {}\n", path.display()));
            }
            msg.push_str("Move ca.key offline; give each party only its own config, cert and key, plus ca.pem.\n");
            print_stdout(&msg);
        }
        Command::Coordinator(a) => {
            let config = CoordinatorConfig::load(&a.config)?;
            let service = CoordinatorService::bind(&config)?;
            info!(listen = %service.local_addr()?, "coordinator started");
            let (trigger, shutdown) = ShutdownSignal::new();
            let (handle, server) = service.start(shutdown.clone());
            let scheduler = (!config.schedule.is_empty()).then(|| {
                info!(jobs = config.schedule.len(), "scheduled profiling enabled");
                tokio::spawn(schedule::run_forever(handle, config.clone(), shutdown))
            });
            let mut server = server;
            tokio::select! {
                signal = interrupted() => info!(signal = signal?, "shutting down"),
                ended = &mut server => {
                    anyhow::bail!("the coordinator's service ended by itself ({ended:?}); see the log above");
                }
            }
            trigger.trigger();
            if let Some(s) = scheduler {
                let _ = s.await;
            }
            server.await.context("coordinator task failed")?;
        }
        Command::Node(a) => {
            let node = NodeService::new(NodeConfig::load(&a.config)?)?;
            info!(node = %node.identity(), "node started");
            let (trigger, shutdown) = ShutdownSignal::new();
            let mut task = tokio::spawn(node.run(shutdown));
            tokio::select! {
                signal = interrupted() => info!(signal = signal?, "shutting down"),
                ended = &mut task => {
                    anyhow::bail!("the node's service ended by itself ({ended:?}); see the log above");
                }
            }
            trigger.trigger();
            task.await.context("node task failed")?;
        }
        Command::Job(JobCommand::Submit(a)) if a.job.is_some() => {
            print_stdout(&analyst::submit_profile(&a).await?);
        }
        Command::Job(JobCommand::Submit(a)) => {
            let config = analyst::AnalystConfig::load(&a.config)?;
            let spec = match a.kind {
                JobKind::Totals => JobSpec::Features(Box::new(analyst::totals_query(&a.totals)?)),
            };
            let submission = fedprof_protocol::Submission {
                request: analyst::new_request()?,
                spec,
            };
            let progress = crate::progress::Progress::new();
            let outcome = analyst::submit_retrying(
                &config,
                submission,
                Duration::from_secs(a.timeout_secs),
                &progress,
            )
            .await?;
            print_stdout(&report::render_outcome(&outcome, a.totals.amount_decimals));
            if let JobOutcome::Aborted { reason, .. } = outcome {
                anyhow::bail!("job aborted: {reason}");
            }
        }
        Command::Audit(cmd) => match audit::run(&cmd) {
            Ok(out) => print_stdout(&out),
            Err((out, failure)) => {
                print_stdout(&out);
                anyhow::bail!("audit failed: {failure}");
            }
        },
        Command::Features(a) => print_stdout(&features::run(&a).await?),
        Command::GenData(a) => print_stdout(&gen_data::run(&a)?),
        Command::Local(a) => print_stdout(&local::run(&a).await?),
        Command::Label(a) => print_stdout(&label::run(&a)?),
    }
    Ok(())
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM (what service managers send), whichever comes first,
/// and names it: both shut a long-running service down the same graceful way.
async fn interrupted() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").context("cannot listen for Ctrl-C"),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

#[expect(clippy::print_stdout, reason = "command output goes to stdout")]
fn print_stdout(s: &str) {
    print!("{s}");
}
