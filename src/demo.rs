//! `fedprof demo`: the full bank scenario on this machine. Creates a federation (CA,
//! certificates, configs), generates synthetic bank data per branch (overlapping customers,
//! demographics, credit, dirty rows), starts a coordinator and the nodes on loopback over QUIC
//! with mutual TLS, runs the profiling job of `docs/job.sample.toml` through secure aggregation,
//! distributed noise and signed ledgers, writes the report and model, and audits the ledgers.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use fedprof_profile::report::ProfileReport;
use fedprof_protocol::PartyName;
use fedprof_synth::{Plan, Scenario};

use crate::federation::{self, FederationPlan};
use crate::local::{LocalFederation, collect_ledgers};
use crate::profile_job;
use crate::progress::Progress;

/// Most nodes the demo starts.
pub const MAX_DEMO_NODES: usize = 64;

/// The demo's job: the annotated sample of docs/job.sample.toml.
pub const SAMPLE_JOB: &str = include_str!("../docs/job.sample.toml");

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where to write the federation and data; a fresh temporary directory if `None`.
    pub out: Option<PathBuf>,
    /// Number of nodes (2 ..= [`MAX_DEMO_NODES`]).
    pub nodes: usize,
    /// Distinct customers over all branches.
    pub customers: u64,
    /// Seed of the synthetic data.
    pub seed: u64,
}

/// What the demo did, for callers that check it.
#[derive(Debug)]
pub struct DemoReport {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The profiling report.
    pub report: ProfileReport,
}

/// Turns on the customers and credit tables, the channel and category columns and the
/// cleaning rules of the generated data in a node config written by `federation init`.
fn enable_bank_data(text: &str, name: &str, start: &str, max_amount: &str) -> String {
    let mut t = text
        .replace("# [data.customers]", "[data.customers]")
        .replace("# [data.credit]", "[data.credit]")
        .replace("# [data.cleaning]", "[data.cleaning]")
        .replace("# channel_column", "channel_column")
        .replace("# category_column", "category_column")
        .replace("# start = \"2020-01-01\"", &format!("start = \"{start}\""))
        .replace(
            "# max_amount = \"1000000\"",
            &format!("max_amount = \"{max_amount}\""),
        );
    for line in [
        format!("path = \"data/{name}/customers.csv\""),
        format!("path = \"data/{name}/credit.csv\""),
        "id_column = \"customer_id\"".into(),
        "birth_date_column = \"birth_date\"".into(),
        "gender_column = \"gender\"".into(),
        "region_column = \"region\"".into(),
        "income_band_column = \"income_band\"".into(),
        "signup_date_column = \"signup_date\"".into(),
    ] {
        t = t.replace(&format!("# {line}"), &line);
    }
    t
}

/// A bank-scenario federation on disk, ready to start.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `DIR/federation`.
    pub fed_dir: PathBuf,
    /// The coordinator config.
    pub coordinator: PathBuf,
    /// One config per node.
    pub node_paths: Vec<PathBuf>,
    /// The job spec (the sample, on the generated data's as-of date).
    pub job_path: PathBuf,
}

/// Creates the federation under `dir/federation`, generates the bank scenario for `nodes`
/// branches and `customers` customers, configures every node to read all of it, and writes
/// the sample job.
pub fn prepare(
    dir: &std::path::Path,
    nodes: usize,
    customers: u64,
    seed: u64,
    progress: &Progress,
) -> Result<Prepared> {
    let fed_dir = dir.join("federation");

    progress.step("creating the federation: CA, certificates, configs");
    let port = free_udp_port()?;
    let names: Vec<PartyName> = (1..=nodes)
        .map(|i| PartyName::new(format!("branch-{i}")))
        .collect::<Result<_, _>>()?;
    let fed = federation::init(&FederationPlan {
        dir: fed_dir.clone(),
        name: "fedprof-demo".into(),
        coordinator: format!("127.0.0.1:{port}"),
        nodes: names.clone(),
        analysts: vec![PartyName::new("analyst")?],
        auditors: vec![PartyName::new("auditor")?],
    })?;
    progress.done(format!(
        "federation with {} nodes in {}",
        nodes,
        fed_dir.display()
    ));

    progress.step("generating the bank scenario: branches, customers, credit, dirty rows");
    let plan = Plan::new(Scenario::Bank, nodes, customers, seed, fed_dir.join("data"));
    let summary = fedprof_synth::generate(&plan, &|_, _| {})?;
    let as_of = summary
        .nodes
        .first()
        .map(|(_, m)| m.as_of.clone())
        .context("no data was generated")?;
    for ((_, manifest), (name, config)) in summary.nodes.iter().zip(&fed.node_configs) {
        let text = fs::read_to_string(config)?;
        let text = enable_bank_data(&text, name.as_str(), &manifest.start, &manifest.max_amount);
        fs::write(config, text).with_context(|| format!("cannot write {}", config.display()))?;
    }
    let dirty: u64 = summary
        .nodes
        .iter()
        .flat_map(|(_, m)| m.dirty_csv.values())
        .map(|rows| rows.len() as u64)
        .sum();
    progress.done(format!(
        "{} transactions ({dirty} dirty rows the nodes must quarantine) for {} customers",
        summary.transaction_rows, customers
    ));

    let job_text = SAMPLE_JOB.replace("as_of = \"2026-06-30\"", &format!("as_of = \"{as_of}\""));
    let job_path = fed_dir.join("job.toml");
    fs::write(&job_path, &job_text)?;
    Ok(Prepared {
        fed_dir,
        coordinator: fed.coordinator_config.clone(),
        node_paths: fed.node_configs.iter().map(|(_, p)| p.clone()).collect(),
        job_path,
    })
}

/// Runs the demo and prints its result.
pub async fn run(opts: &DemoOptions) -> Result<DemoReport> {
    ensure!(
        (2..=MAX_DEMO_NODES).contains(&opts.nodes),
        "--nodes must be between 2 and {MAX_DEMO_NODES} (a result needs at least two contributors)"
    );
    ensure!(
        (100..=10_000_000).contains(&opts.customers),
        "--customers must be between 100 and 10000000"
    );
    let started = std::time::Instant::now();
    let progress = Progress::new();
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("fedprof-demo-")
            .tempdir()?
            .keep(),
    };
    let Prepared {
        fed_dir,
        node_paths,
        job_path,
        coordinator: coordinator_config,
    } = prepare(&dir, opts.nodes, opts.customers, opts.seed, &progress)?;
    let spec = fedprof_profile::rundir::load_spec(&job_path)?;

    let local = LocalFederation::start(&coordinator_config, &node_paths, &progress).await?;
    let result = crate::local::profile(&local, spec, None, &dir.join("profile"), &progress).await;
    progress.step("shutting down");
    local.stop().await;
    let (mut report, model) = result?;

    // The auditor's view: every node hands over its ledger; the coordinator's is already in
    // federation/ledgers/. The audit checks chains, signatures against the CA, that every
    // release is covered by every contributor's debit, and recomputes rho and epsilon.
    progress.step("auditing the ledgers");
    collect_ledgers(&fed_dir, &node_paths)?;
    profile_job::add_budgets(&mut report, &fed_dir)?;
    let audit = crate::audit::run(&crate::audit::AuditCommand::Report(
        crate::audit::AuditArgs {
            dir: fed_dir.clone(),
            json: false,
            delta: 1e-6,
            max_holders: None,
            at: None,
        },
    ));
    let paths = fedprof_profile::rundir::finish(&dir.join("profile"), &report, &model)?;
    progress.finish();

    let mut out = crate::report::profile_summary(&report, &paths);
    out.push_str(&format!(
        "\nEverything is in {} (kept): federation/ (CA, configs, keys mode 0600, data, node state, ledgers), profile/\nRun the parts yourself:\n  fedprof local --node {} ... --job {} --out DIR\n  fedprof label --config {} --model {} --out labels.csv\n  fedprof audit report {}\n",
        dir.display(),
        node_paths.first().map(|p| p.display().to_string()).unwrap_or_default(),
        job_path.display(),
        node_paths.first().map(|p| p.display().to_string()).unwrap_or_default(),
        dir.join("profile/model.json").display(),
        fed_dir.display(),
    ));
    let audit_ok = audit.is_ok();
    match audit {
        Ok(text) => out.push_str(&format!(
            "\nAudit of the signed ledgers (fedprof audit report {}): verified\n{text}",
            fed_dir.display()
        )),
        Err((text, failure)) => out.push_str(&format!("\nAudit FAILED: {failure}\n{text}")),
    }
    out.push_str(&format!(
        "\nDemo finished in {:.1} s.\n",
        started.elapsed().as_secs_f64()
    ));
    print_stdout(&out);
    if !audit_ok {
        bail!("the ledgers do not verify");
    }
    Ok(DemoReport { dir, report })
}

#[expect(clippy::print_stdout, reason = "the demo's result goes to stdout")]
fn print_stdout(s: &str) {
    print!("{s}");
}

/// A UDP port that was free a moment ago (the coordinator binds it right after).
fn free_udp_port() -> Result<u16> {
    let socket =
        std::net::UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP socket on loopback")?;
    Ok(socket.local_addr()?.port())
}
