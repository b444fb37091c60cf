//! The command line: argument definitions and dispatch. Each command is a few lines that call
//! into the crates; errors propagate to `main`, which prints them without a stack trace.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fedprof_coordinator::{CoordinatorConfig, CoordinatorService};
use fedprof_node::{NodeConfig, NodeService};
use fedprof_protocol::{JobOutcome, JobSpec, PartyId, PartyName, Role};
use fedprof_transport::ShutdownSignal;
use tracing::info;

use crate::{
    analyst, audit, certs, demo, features, federation, gen_data, label, local, report, schedule,
};

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
    /// Add a party to an existing federation: certificate and key (and config) from its CA.
    Issue(IssueArgs),
    /// Give a party a new certificate for its existing key (its ledger stays verifiable).
    Renew(RenewArgs),
    /// Revoke every certificate of a party: extends the CA-signed DIR/revoked.json, which the
    /// coordinator and nodes enforce from their next SIGHUP (or start).
    Revoke(RevokeArgs),
}

/// `fedprof federation issue`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("party").required(true).multiple(false)))]
pub struct IssueArgs {
    /// The federation directory (with ca.pem and ca.key).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// A new node: cert, key and pseudonym key under parties/node-NAME/, and node-NAME.toml.
    #[arg(long, group = "party", value_name = "NAME")]
    pub node: Option<PartyName>,
    /// A new analyst: cert and key, and analyst-NAME.toml.
    #[arg(long, group = "party", value_name = "NAME")]
    pub analyst: Option<PartyName>,
    /// A new auditor: cert and key.
    #[arg(long, group = "party", value_name = "NAME")]
    pub auditor: Option<PartyName>,
    /// Where the new party's config dials the coordinator, HOST:PORT (default: what the
    /// federation's other node and analyst configs dial).
    #[arg(long, value_name = "HOST:PORT")]
    pub coordinator: Option<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = federation::PARTY_CERT_DAYS, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub days: i64,
}

/// A party of a federation directory (`renew`, `revoke`).
#[derive(Debug, Args)]
pub struct PartyArgs {
    /// The federation directory (with ca.pem and ca.key).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The party, as `<role>-<name>` (its directory under parties/), e.g. `node-branch-a`.
    #[arg(long, value_name = "ROLE-NAME", value_parser = parse_party)]
    pub party: PartyId,
}

/// `fedprof federation renew`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Whose certificate.
    #[command(flatten)]
    pub of: PartyArgs,
    /// Days the new certificate is valid.
    #[arg(long, default_value_t = federation::PARTY_CERT_DAYS, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub days: i64,
}

/// `fedprof federation revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Whose certificates.
    #[command(flatten)]
    pub of: PartyArgs,
    /// Why (kept in the list; at most 256 bytes).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
}

fn parse_party(s: &str) -> Result<PartyId, String> {
    fedprof_transport::pki::party_from_label(s).ok_or_else(|| {
        format!("{s:?} is not <role>-<name> (role: coordinator, node, analyst or auditor)")
    })
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
        Command::Federation(cmd) => print_stdout(&federation_command(cmd)?),
        Command::Coordinator(a) => {
            // Before anything else: a SIGHUP's default action would end the process.
            let mut hangups = hangups()?;
            let config = CoordinatorConfig::load(&a.config)?;
            let service = CoordinatorService::bind(&config)?;
            info!(listen = %service.local_addr()?, "coordinator started");
            tokio::spawn(warn_own_expiry(config.tls.cert.clone()));
            let (trigger, shutdown) = ShutdownSignal::new();
            let (handle, server) = service.start(shutdown.clone());
            let scheduler = (!config.schedule.is_empty()).then(|| {
                info!(jobs = config.schedule.len(), "scheduled profiling enabled");
                tokio::spawn(schedule::run_forever(
                    handle.clone(),
                    config.clone(),
                    shutdown,
                ))
            });
            let mut server = server;
            let stop = interrupted();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    signal = &mut stop => {
                        info!(signal = signal?, "shutting down");
                        break;
                    }
                    ended = &mut server => {
                        anyhow::bail!("the coordinator's service ended by itself ({ended:?}); see the log above");
                    }
                    _ = hangups.recv() => log_reload(handle.reload_revocations().await.map_err(Into::into)),
                }
            }
            trigger.trigger();
            if let Some(s) = scheduler {
                let _ = s.await;
            }
            server.await.context("coordinator task failed")?;
        }
        Command::Node(a) => {
            let mut hangups = hangups()?;
            let config = NodeConfig::load(&a.config)?;
            let cert = config.tls.cert.clone();
            let node = NodeService::new(config)?;
            info!(node = %node.identity(), "node started");
            tokio::spawn(warn_own_expiry(cert));
            let revocations = node.revocations().clone();
            let (trigger, shutdown) = ShutdownSignal::new();
            let mut task = tokio::spawn(node.run(shutdown));
            let stop = interrupted();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    signal = &mut stop => {
                        info!(signal = signal?, "shutting down");
                        break;
                    }
                    ended = &mut task => {
                        anyhow::bail!("the node's service ended by itself ({ended:?}); see the log above");
                    }
                    _ = hangups.recv() => log_reload(revocations.reload().map_err(Into::into)),
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

/// `fedprof federation ...`: returns what to print.
fn federation_command(cmd: FederationCommand) -> Result<String> {
    let now = time::OffsetDateTime::now_utc();
    Ok(match cmd {
        FederationCommand::Init(a) => {
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
            msg
        }
        FederationCommand::Issue(a) => {
            let (role, name) = match (a.node, a.analyst, a.auditor) {
                (Some(n), _, _) => (Role::Node, n),
                (_, Some(n), _) => (Role::Analyst, n),
                (_, _, Some(n)) => (Role::Auditor, n),
                // clap's required group rules this out.
                (None, None, None) => anyhow::bail!("give --node, --analyst or --auditor"),
            };
            let party = PartyId { role, name };
            let config = certs::issue(&a.dir, &party, a.coordinator.as_deref(), a.days, now)?;
            let mut msg = format!(
                "Issued {party}: {}/\n",
                a.dir.join(federation::party_rel(&party)).display()
            );
            if let Some(config) = config {
                msg.push_str(&format!("  config: {}\n", config.display()));
            }
            msg
        }
        FederationCommand::Renew(a) => {
            let cert = certs::renew(&a.of.dir, &a.of.party, a.days, now)?;
            format!(
                "Renewed {} for {} days, same key: {}\n",
                a.of.party,
                a.days,
                cert.display()
            )
        }
        FederationCommand::Revoke(a) => {
            let done = certs::revoke(&a.of.dir, &a.of.party, &a.reason, now)?;
            let mut msg = format!(
                "Revoked {} ({} certificate(s)); {} is now at sequence {}.\n",
                a.of.party,
                done.revoked.len(),
                done.path.display(),
                done.sequence
            );
            for f in &done.revoked {
                msg.push_str(&format!("  {f}\n"));
            }
            msg.push_str(
                "Copy it beside ca.pem on the coordinator and every node, then send them SIGHUP.\n",
            );
            msg
        }
    })
}

/// Listens for SIGHUP, which reloads the revocation list. Registered before a service starts:
/// once registered, a SIGHUP never ends the process (its default action would).
fn hangups() -> Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).context("cannot listen for SIGHUP")
}

/// Warns at start and then once a day while this party's own certificate `cert` expires
/// within 30, 7 or 1 days, or has expired (security review H7: a whole federation once
/// stopped on the same day without a word). Runs until the process ends.
async fn warn_own_expiry(cert: PathBuf) {
    use fedprof_transport::pki;
    loop {
        let now = time::OffsetDateTime::now_utc();
        let warning = std::fs::read_to_string(&cert)
            .ok()
            .and_then(|pem| pki::pem_certificate(&pem).ok())
            .and_then(|der| pki::not_after(&der).ok())
            .and_then(|not_after| pki::expiry_warning(not_after, now));
        if let Some(w) = warning {
            tracing::warn!(
                cert = %cert.display(),
                hours_left = w.left.whole_hours(),
                within_days = w.within_days,
                "this party's certificate expires soon: renew it (fedprof federation renew) and restart"
            );
        }
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
}

/// Logs the outcome of a SIGHUP reload; a refused list leaves the one in force.
fn log_reload(reloaded: Result<std::sync::Arc<fedprof_transport::RevocationList>>) {
    match reloaded {
        Ok(list) => info!(
            sequence = list.sequence(),
            revoked = list.entries().len(),
            "SIGHUP: revocation list in force"
        ),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "SIGHUP: revocation list not reloaded; the one in force stays")
        }
    }
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
