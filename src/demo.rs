//! `fedprof demo`: a whole federation on this machine. Creates a federation (CA, certificates,
//! configs), writes synthetic transactions per node, starts a coordinator and the nodes on
//! loopback over QUIC with mutual TLS, runs a job through the real protocol and prints the
//! result next to an independent check.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fedprof_coordinator::{CoordinatorConfig, CoordinatorService};
use fedprof_node::data::{CustomerTotals, TransactionTotals, clipped_totals};
use fedprof_node::{NodeConfig, NodeService};
use fedprof_protocol::{JobOutcome, JobSpec, PartyName};
use fedprof_transport::ShutdownSignal;

use crate::federation::{self, FederationPlan};
use crate::progress::Progress;
use crate::report::{format_minor, noise_sd, released_values, render_outcome, table};

/// Most nodes the demo starts.
pub const MAX_DEMO_NODES: usize = 64;
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where to write the federation and data; a fresh temporary directory if `None`.
    pub out: Option<PathBuf>,
    /// Number of nodes (2 ..= [`MAX_DEMO_NODES`]).
    pub nodes: usize,
    /// Seed of the synthetic data.
    pub seed: u64,
}

/// What the demo did, for callers that check it.
#[derive(Debug)]
pub struct DemoReport {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The released outcome.
    pub outcome: JobOutcome,
    /// The sum of every node's local totals after the release's clipping, computed by the
    /// demo from the files it generated (what the noisy release estimates).
    pub expected: TransactionTotals,
}

/// Runs the demo and prints its result.
pub async fn run(opts: &DemoOptions) -> Result<DemoReport> {
    ensure!(
        (2..=MAX_DEMO_NODES).contains(&opts.nodes),
        "--nodes must be between 2 and {MAX_DEMO_NODES} (a result needs at least two contributors)"
    );
    let progress = Progress::new();
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("fedprof-demo-")
            .tempdir()?
            .keep(),
    };
    let fed_dir = dir.join("federation");

    progress.step("creating the federation: CA, certificates, configs");
    let port = free_udp_port()?;
    let names: Vec<PartyName> = (1..=opts.nodes)
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
        opts.nodes,
        fed_dir.display()
    ));

    progress.step("writing synthetic transactions for each node");
    let privacy = CoordinatorConfig::load(&fed.coordinator_config)?.privacy;
    let mut expected = TransactionTotals::default();
    let mut local_rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = fed_dir
            .join("data")
            .join(name.as_str())
            .join("transactions.csv");
        let customers = write_transactions(&path, opts.seed.wrapping_add(i as u64))?;
        let max_amount = i64::try_from(privacy.max_abs_amount_minor).unwrap_or(i64::MAX);
        let totals = clipped_totals(
            &customers,
            u64::from(privacy.max_rows_per_customer),
            max_amount,
        );
        expected.customers += totals.customers;
        expected.rows += totals.rows;
        expected.amount_minor += totals.amount_minor;
        local_rows.push([
            name.to_string(),
            totals.customers.to_string(),
            totals.rows.to_string(),
            format_minor(totals.amount_minor, 2),
        ]);
    }
    progress.done(format!("{} transactions written", expected.rows));

    progress.step("starting the coordinator");
    let (trigger, shutdown) = ShutdownSignal::new();
    let coordinator_config = CoordinatorConfig::load(&fed.coordinator_config)?;
    let service = CoordinatorService::bind(&coordinator_config)
        .with_context(|| format!("cannot start the coordinator on 127.0.0.1:{port}"))?;
    let (mut handle, server) = service.start(shutdown.clone());
    progress.done(format!(
        "coordinator listening on 127.0.0.1:{port} (QUIC, mutual TLS 1.3)"
    ));

    let mut node_tasks = Vec::new();
    for (_, path) in &fed.node_configs {
        let node = NodeService::new(NodeConfig::load(path)?)?;
        node_tasks.push(tokio::spawn(node.run(shutdown.clone())));
    }
    progress.step(format!("waiting for {} nodes to register", opts.nodes));
    let want = opts.nodes;
    let registered = tokio::time::timeout(
        REGISTRATION_TIMEOUT,
        handle.wait_for_nodes(|n| n.len() >= want),
    )
    .await
    .context("nodes did not register in time")??;
    progress.done(format!(
        "{} nodes registered: {}",
        registered.len(),
        join(&registered)
    ));

    progress.step("running job transaction-totals: secure aggregation + distributed DP noise");
    let outcome = tokio::time::timeout(JOB_TIMEOUT, handle.run_job(JobSpec::TransactionTotals))
        .await
        .context("the job did not finish in time")??;
    progress.done("job finished");

    progress.step("shutting down");
    trigger.trigger();
    for t in node_tasks {
        let _ = t.await;
    }
    let _ = server.await;

    // The auditor's view: every node hands over its ledger; the coordinator's is already in
    // federation/ledgers/. The audit checks chains, signatures against the CA, that the
    // release is covered by every contributor's debit, and recomputes rho and epsilon.
    progress.step("auditing the ledgers");
    for name in &names {
        let from = fed_dir
            .join("state")
            .join(format!("node-{name}"))
            .join("ledger.jsonl");
        let to = fed_dir.join("ledgers").join(format!("node-{name}.jsonl"));
        fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    let audit = crate::audit::run(&crate::audit::AuditCommand::Report(
        crate::audit::AuditArgs {
            dir: fed_dir.clone(),
            json: false,
            delta: 1e-6,
        },
    ));
    progress.finish();

    let mut out = String::new();
    out.push_str(&render_outcome(&outcome, 2));
    out.push_str("\nEach node's own clipped totals (local view, never sent: computed by the demo from the files it wrote):\n");
    out.push_str(&table(
        &["node", "customers", "transactions", "amount"],
        &local_rows,
    ));
    let check = match &outcome {
        JobOutcome::Completed { result, .. } => {
            let truth = [
                expected.customers as i64,
                expected.rows as i64,
                expected.amount_minor,
            ];
            let within = released_values(result)
                .iter()
                .zip(truth)
                .zip(noise_sd(result))
                .all(|((got, want), sd)| ((got - want) as f64).abs() <= 4.0 * sd);
            Some(within)
        }
        JobOutcome::Aborted { .. } => None,
    };
    out.push_str(&format!(
        "\nCheck against the sum of the nodes' clipped local totals: {}\n",
        match check {
            Some(true) => "every released figure is within 4 noise standard deviations",
            Some(false) => "a released figure is more than 4 noise standard deviations off (rare by chance; investigate if it repeats)",
            None => "nothing was released",
        }
    ));
    out.push_str(&format!(
        "\nFiles (kept): {}\n  federation/ca.pem, coordinator.toml, node-*.toml, analyst-analyst.toml, parties/*/ (keys mode 0600)\n  federation/data/<node>/transactions.csv, federation/state/node-*/ (node ledgers), federation/ledgers/ (audit copy)\nRun the parts yourself:\n  fedprof coordinator --config {}\n  fedprof node --config {}\n  fedprof job submit --config {}\n",
        dir.display(),
        fed.coordinator_config.display(),
        fed.node_configs.first().map(|(_, p)| p.display().to_string()).unwrap_or_default(),
        fed.analyst_configs.first().map(|(_, p)| p.display().to_string()).unwrap_or_default(),
    ));
    let audit_ok = audit.is_ok();
    match audit {
        Ok(text) => out.push_str(&format!(
            "\nAudit of the signed ledgers (fedprof audit report {}): verified\n{text}",
            fed_dir.display()
        )),
        Err((text, failure)) => out.push_str(&format!("\nAudit FAILED: {failure}\n{text}")),
    }
    print_stdout(&out);
    if check.is_none() {
        bail!("the job released nothing");
    }
    if !audit_ok {
        bail!("the ledgers do not verify");
    }
    Ok(DemoReport {
        dir,
        outcome,
        expected,
    })
}

fn join(names: &[PartyName]) -> String {
    names
        .iter()
        .map(PartyName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
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

/// SplitMix64: a tiny, seeded generator for synthetic data only (never for keys, masks or
/// noise, which use a CSPRNG).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes a node's synthetic transactions and returns each customer's rows and amount,
/// computed here independently of the node's CSV reader.
fn write_transactions(path: &Path, seed: u64) -> Result<Vec<CustomerTotals>> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut rng = SplitMix64(seed);
    let customers = 200 + rng.below(300);
    let rows = 1_000 + rng.below(2_000);
    let channels = ["branch", "online", "mobile", "atm"];
    let mut per_customer = vec![CustomerTotals::default(); customers as usize];
    let mut csv = String::from("date,customer_id,amount,channel\n");
    for _ in 0..rows {
        let c = rng.below(customers);
        // Mostly purchases of 1.00 to 500.00; one in twenty is a refund.
        let cents = 100 + rng.below(49_900) as i64;
        let amount = if rng.below(20) == 0 { -cents } else { cents };
        per_customer[c as usize].rows += 1;
        per_customer[c as usize].amount_minor += amount;
        let day = 1 + rng.below(28);
        let month = 1 + rng.below(12);
        let channel = channels[rng.below(channels.len() as u64) as usize];
        csv.push_str(&format!(
            "2026-{month:02}-{day:02},C{c:06},{},{channel}\n",
            format_minor(amount, 2).replace(',', "")
        ));
    }
    fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(per_customer.into_iter().filter(|c| c.rows > 0).collect())
}
