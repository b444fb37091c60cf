//! A federation on loopback for end-to-end tests: real certificates, real QUIC + mTLS, the real
//! coordinator and node services, each test in its own temporary directory on port 0.

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(unreachable_pub, reason = "test helpers")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedprof::federation::{self, Federation, FederationPlan};
use fedprof_coordinator::{
    CoordinatorConfig, CoordinatorHandle, CoordinatorService, RoundPolicy, open_ledger,
};
use fedprof_node::{NodeConfig, NodeService};
use fedprof_protocol::{PartyName, Role};
use fedprof_transport::{
    ClientLimits, Credentials, DialTarget, PeerConnection, ServerLimits, ShutdownSignal,
    ShutdownTrigger, TlsFiles, client_endpoint, connect,
};
use tokio::task::JoinHandle;

pub const NODES: [&str; 3] = ["a", "b", "c"];

/// A budget no deployment would allow, for tests that need noise below one unit.
pub const HUGE: &str = "40000/1";

/// The day every row of [`transactions`] is dated (before any `as_of` the tests use).
pub const DAY: &str = "2026-01-15";

pub struct TestFed {
    pub dir: tempfile::TempDir,
    pub fed: Federation,
    pub addr: SocketAddr,
    pub handle: CoordinatorHandle,
    pub trigger: ShutdownTrigger,
    pub shutdown: ShutdownSignal,
    pub server: JoinHandle<()>,
}

/// Writes `body` as node `name`'s transactions file.
pub fn write_data(fed_dir: &Path, name: &str, body: &str) {
    let dir = fed_dir.join("data").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("transactions.csv"), body).unwrap();
}

impl TestFed {
    /// A federation with nodes a, b, c, analyst x and auditor y, data for every node written by
    /// `data(name)`, and a coordinator running under `policy` (nodes not started).
    pub async fn start(policy: RoundPolicy, data: impl Fn(&str) -> String) -> TestFed {
        Self::start_with(&NODES, policy, data).await
    }

    /// As [`TestFed::start`] with the given node names.
    pub async fn start_with(
        nodes: &[&str],
        policy: RoundPolicy,
        data: impl Fn(&str) -> String,
    ) -> TestFed {
        Self::start_inner(nodes, policy, data, false).await
    }

    /// As [`TestFed::start`] with a coordinator pinging nodes on `heartbeat`.
    pub async fn start_with_heartbeat(
        policy: RoundPolicy,
        data: impl Fn(&str) -> String,
        heartbeat: fedprof_coordinator::Heartbeat,
    ) -> TestFed {
        Self::start_tuned(&NODES, policy, data, false, heartbeat).await
    }

    /// As [`TestFed::start`], with a coordinator whose per-job and per-analyst caps are huge
    /// (start nodes with [`TestFed::start_generous_node`]): noise of a fraction of a unit.
    pub async fn start_generous(policy: RoundPolicy, data: impl Fn(&str) -> String) -> TestFed {
        Self::start_inner(&NODES, policy, data, true).await
    }

    async fn start_inner(
        nodes: &[&str],
        policy: RoundPolicy,
        data: impl Fn(&str) -> String,
        generous: bool,
    ) -> TestFed {
        let heartbeat = fedprof_coordinator::Heartbeat::default();
        Self::start_tuned(nodes, policy, data, generous, heartbeat).await
    }

    async fn start_tuned(
        nodes: &[&str],
        policy: RoundPolicy,
        data: impl Fn(&str) -> String,
        generous: bool,
        heartbeat: fedprof_coordinator::Heartbeat,
    ) -> TestFed {
        let dir = tempfile::tempdir().unwrap();
        let names = |l: &[&str]| l.iter().map(|n| PartyName::new(*n).unwrap()).collect();
        let fed = federation::init(&FederationPlan {
            dir: dir.path().join("fed"),
            name: "test".into(),
            // Replaced by the real port below: the coordinator binds port 0.
            coordinator: "127.0.0.1:1".into(),
            nodes: names(nodes),
            analysts: names(&["x"]),
            auditors: names(&["y"]),
        })
        .unwrap();
        for n in nodes {
            write_data(&fed.dir, n, &data(n));
        }
        let mut config = CoordinatorConfig::load(&fed.coordinator_config).unwrap();
        if generous {
            config.privacy.rho_per_job = HUGE.parse().unwrap();
            config.privacy.rho_per_analyst_period = HUGE.parse().unwrap();
        }
        let creds = Credentials::load(&config.tls).unwrap();
        let limits = ServerLimits {
            shutdown_grace: Duration::from_secs(2),
            ..ServerLimits::default()
        };
        let release = config.privacy.policy(creds.identity().name.clone());
        let ledger = open_ledger(
            &creds,
            fedprof_ledger::KeyRing::new(),
            &config.ledger.path,
            &release,
            config.ledger.min_cell_size,
        )
        .unwrap();
        let service = CoordinatorService::bind_with(
            "127.0.0.1:0".parse().unwrap(),
            &creds,
            limits,
            policy,
            release,
            ledger,
        )
        .unwrap()
        .with_heartbeat(heartbeat)
        // `fed/revoked.json`, once `fedprof federation revoke` writes it (tests/certs.rs).
        .with_revocations(config.tls.revocations().unwrap());
        let addr = service.local_addr().unwrap();
        let (trigger, shutdown) = ShutdownSignal::new();
        let (handle, server) = service.start(shutdown.clone());
        TestFed {
            dir,
            fed,
            addr,
            handle,
            trigger,
            shutdown,
            server,
        }
    }

    pub fn node_config(&self, name: &str) -> NodeConfig {
        let path = self.fed.dir.join(format!("node-{name}.toml"));
        let mut config = NodeConfig::load(&path).unwrap();
        config.coordinator = DialTarget::parse(&self.addr.to_string()).unwrap();
        config.connection.initial_backoff_ms = std::num::NonZeroU64::new(50).unwrap();
        config
    }

    /// Starts node `name` with every budget limit raised to [`HUGE`].
    pub fn start_generous_node(&self, name: &str) -> JoinHandle<()> {
        let mut config = self.node_config(name);
        let huge: fedprof_privacy::Rho = HUGE.parse().unwrap();
        config.privacy.cap_rho = huge.clone();
        config.floor.max_rho_per_release = huge.clone();
        config.floor.max_rho_per_job = huge.clone();
        config.floor.max_rho_per_analyst = huge;
        let node = NodeService::new(config).unwrap();
        tokio::spawn(node.run(self.shutdown.clone()))
    }

    /// Starts node `name` as a task; abort the task to kill the node.
    pub fn start_node(&self, name: &str) -> JoinHandle<()> {
        let node = NodeService::new(self.node_config(name)).unwrap();
        tokio::spawn(node.run(self.shutdown.clone()))
    }

    pub async fn wait_for(&mut self, n: usize) -> Vec<PartyName> {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.handle.wait_for_nodes(|l| l.len() >= n),
        )
        .await
        .expect("nodes did not register in time")
        .unwrap()
    }

    pub fn tls(&self, role: Role, name: &str) -> TlsFiles {
        let party = self.fed.dir.join("parties").join(format!("{role}-{name}"));
        TlsFiles {
            ca: self.fed.dir.join("ca.pem"),
            cert: party.join("cert.pem"),
            key: party.join("key.pem"),
            revoked: None,
        }
    }

    /// Connects as any party of this federation (for tests that misbehave on purpose).
    pub async fn connect_as(
        &self,
        role: Role,
        name: &str,
    ) -> (fedprof_transport::Endpoint, PeerConnection) {
        let creds = Credentials::load(&self.tls(role, name)).unwrap();
        let endpoint = client_endpoint(&creds, &ClientLimits::default(), self.addr).unwrap();
        let peer = connect(&endpoint, self.addr, "127.0.0.1").await.unwrap();
        (endpoint, peer)
    }

    pub fn analyst_config(&self) -> PathBuf {
        self.fed.analyst_configs[0].1.clone()
    }

    /// Stops the coordinator and returns the temporary directory, which lives as long as the
    /// returned value.
    pub async fn stop_keeping_files(self) -> tempfile::TempDir {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("coordinator did not shut down in time")
            .unwrap();
        self.dir
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("coordinator did not shut down in time")
            .unwrap();
    }
}

/// A transactions file with `rows` rows over `customers` customers, every row on [`DAY`]
/// with its own transaction id (rows identical in every column are quarantined as duplicates).
pub fn transactions(customers: u64, rows: u64, cents_per_row: i64) -> String {
    let mut s = String::from("customer_id,date,amount,txn_id\n");
    for i in 0..rows {
        let cents = cents_per_row;
        s.push_str(&format!(
            "c{},{DAY},{}.{:02},t{i}\n",
            i % customers,
            cents / 100,
            cents % 100
        ));
    }
    s
}

/// The totals query the analyst CLI sends (`fedprof job submit` without a job spec), with the
/// test bounds: 10 transactions and 200.00 per customer, as of 2026-06-30, rho `rho`.
pub fn totals_spec(rho: &str) -> fedprof_protocol::JobSpec {
    let args = fedprof::analyst::TotalsArgs {
        max_rows: 10,
        min_amount_minor: 0,
        max_amount_minor: 20_000,
        amount_decimals: 2,
        as_of: Some("2026-06-30".into()),
        scale: fedprof_protocol::query::MAX_SCALE,
        rho: rho.parse().unwrap(),
    };
    fedprof_protocol::JobSpec::Features(Box::new(fedprof::analyst::totals_query(&args).unwrap()))
}

pub fn policy(min_nodes: usize, timeout_secs: u64) -> RoundPolicy {
    RoundPolicy {
        min_nodes,
        timeout: Duration::from_secs(timeout_secs),
    }
}
