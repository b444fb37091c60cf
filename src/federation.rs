//! `fedprof federation init`: a new federation directory with a CA, one certificate and key per
//! party, and commented sample configs.
//!
//! Layout (relative paths in the configs are relative to the config file):
//! ```text
//! DIR/ca.pem                      federation CA certificate (every party trusts it)
//! DIR/ca.key                      CA private key, mode 0600: move it offline after setup
//! DIR/coordinator.toml            coordinator config
//! DIR/node-<name>.toml            one config per node
//! DIR/analyst-<name>.toml         one config per analyst
//! DIR/parties/<role>-<name>/cert.pem, key.pem (key mode 0600)
//! DIR/parties/node-<name>/pseudonym.key   the node's pseudonym key, 64 hex digits, mode 0600
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedprof_protocol::{PartyId, PartyName, Role};
use fedprof_transport::{DialTarget, FederationCa, Validity};

/// Days a party certificate is valid (also the default of `issue` and `renew`).
pub(crate) const PARTY_CERT_DAYS: i64 = 397;
/// Days the CA certificate is valid.
const CA_CERT_DAYS: i64 = 3650;

/// What to create.
#[derive(Debug, Clone)]
pub struct FederationPlan {
    /// The directory; must not exist or be empty.
    pub dir: PathBuf,
    /// The federation's name (shown in the CA certificate).
    pub name: String,
    /// Where nodes and analysts reach the coordinator: `HOST:PORT`.
    pub coordinator: String,
    /// Node names.
    pub nodes: Vec<PartyName>,
    /// Analyst names.
    pub analysts: Vec<PartyName>,
    /// Auditor names.
    pub auditors: Vec<PartyName>,
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Federation {
    /// The directory.
    pub dir: PathBuf,
    /// `coordinator.toml`.
    pub coordinator_config: PathBuf,
    /// `node-<name>.toml` per node, in the plan's order.
    pub node_configs: Vec<(PartyName, PathBuf)>,
    /// `analyst-<name>.toml` per analyst.
    pub analyst_configs: Vec<(PartyName, PathBuf)>,
}

/// Creates the federation described by `plan`.
pub fn init(plan: &FederationPlan) -> Result<Federation> {
    let target = DialTarget::parse(&plan.coordinator)?;
    let (host, port) = (target.host().to_owned(), target.port());
    check_unique(plan)?;
    if plan.dir.exists() && fs::read_dir(&plan.dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; refusing to overwrite keys",
            plan.dir.display()
        );
    }
    fs::create_dir_all(&plan.dir)
        .with_context(|| format!("cannot create {}", plan.dir.display()))?;
    let now = time::OffsetDateTime::now_utc();
    let ca = FederationCa::generate(&plan.name, Validity::days_from(now, CA_CERT_DAYS))?;
    let dir = &plan.dir;
    write_file(&dir.join("ca.pem"), ca.cert_pem().as_bytes(), 0o644)?;
    write_file(&dir.join("ca.key"), ca.key_pem().as_bytes(), 0o600)?;
    let validity = Validity::days_from(now, PARTY_CERT_DAYS);
    let party = |role, name: &PartyName| PartyId {
        role,
        name: name.clone(),
    };

    let coordinator = party(Role::Coordinator, &PartyName::new("coordinator")?);
    add_party(
        dir,
        &ca,
        &coordinator,
        std::slice::from_ref(&host),
        validity,
        "",
    )?;
    let listen = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        Ok(IpAddr::V4(_)) => format!("{host}:{port}"),
        Err(_) => format!("0.0.0.0:{port}"),
    };
    let coordinator_config = dir.join("coordinator.toml");
    write_file(
        &coordinator_config,
        coordinator_toml(&plan.name, &listen, &party_rel(&coordinator)).as_bytes(),
        0o644,
    )?;

    let mut node_configs = Vec::new();
    let mut analyst_configs = Vec::new();
    let roles = [
        (Role::Node, &plan.nodes),
        (Role::Analyst, &plan.analysts),
        (Role::Auditor, &plan.auditors),
    ];
    for (role, names) in roles {
        for name in names {
            let config = add_party(
                dir,
                &ca,
                &party(role, name),
                &[],
                validity,
                &plan.coordinator,
            )?;
            match (role, config) {
                (Role::Node, Some(path)) => node_configs.push((name.clone(), path)),
                (Role::Analyst, Some(path)) => analyst_configs.push((name.clone(), path)),
                _ => {}
            }
        }
    }
    Ok(Federation {
        dir: dir.clone(),
        coordinator_config,
        node_configs,
        analyst_configs,
    })
}

/// `parties/<role>-<name>`: where a party's certificate and keys live, relative to the
/// federation directory (and to the configs in it).
pub(crate) fn party_rel(party: &PartyId) -> String {
    format!("parties/{}", fedprof_transport::pki::party_label(party))
}

/// Adds `party` to the federation in `dir`: a new key and a certificate from `ca` in
/// `parties/<role>-<name>/` (key mode 0600), for a node also its pseudonym key, and for a
/// node or an analyst its config `<role>-<name>.toml` dialling `coordinator` (returned). The
/// party's directory must not exist: keys are never overwritten. Used by `init` for every
/// party and by `fedprof federation issue` for one.
pub(crate) fn add_party(
    dir: &Path,
    ca: &FederationCa,
    party: &PartyId,
    server_names: &[String],
    validity: Validity,
    coordinator: &str,
) -> Result<Option<PathBuf>> {
    let issued = ca.issue(party, server_names, validity)?;
    let rel = party_rel(party);
    fs::create_dir_all(dir.join("parties"))?;
    fs::create_dir(dir.join(&rel)).with_context(|| {
        format!(
            "cannot create {} (is {party} already in the federation?)",
            dir.join(&rel).display()
        )
    })?;
    write_file(
        &dir.join(&rel).join("cert.pem"),
        issued.cert_pem.as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join(&rel).join("key.pem"),
        issued.key_pem.as_bytes(),
        0o600,
    )?;
    let name = &party.name;
    let config = match party.role {
        Role::Node => {
            // The key under which the node pseudonymizes its customer ids; it never leaves
            // the node.
            fedprof_node::pipeline::key::create_key_file(&dir.join(&rel).join("pseudonym.key"))?;
            Some((
                dir.join(format!("node-{name}.toml")),
                node_toml(name, coordinator, &rel),
            ))
        }
        Role::Analyst => Some((
            dir.join(format!("analyst-{name}.toml")),
            analyst_toml(name, coordinator, &rel),
        )),
        Role::Coordinator | Role::Auditor => None,
    };
    config
        .map(|(path, text)| write_file(&path, text.as_bytes(), 0o644).map(|()| path))
        .transpose()
}

fn check_unique(plan: &FederationPlan) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (role, names) in [
        (Role::Node, &plan.nodes),
        (Role::Analyst, &plan.analysts),
        (Role::Auditor, &plan.auditors),
    ] {
        for n in names {
            if !seen.insert((role, n.clone())) {
                bail!("{role} name {n} is given twice");
            }
        }
    }
    if plan.nodes.is_empty() {
        bail!("a federation needs at least one node (--nodes a,b,c)");
    }
    Ok(())
}

/// Writes a new file with `mode`; never overwrites.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn tls_section(rel: &str) -> String {
    format!(
        "[tls]\n\
         # The federation CA: only peers with certificates it issued can connect.\n\
         ca = \"ca.pem\"\n\
         # This party's certificate; its role and name are what the federation knows it by.\n\
         cert = \"{rel}/cert.pem\"\n\
         # Private key (mode 0600). Never share it; never put it in version control.\n\
         key = \"{rel}/key.pem\"\n"
    )
}

fn coordinator_toml(federation: &str, listen: &str, rel: &str) -> String {
    format!(
        "# fedprof coordinator for federation {federation:?}.\n\
         # Relative paths are relative to this file. Unknown keys are refused.\n\n\
         # UDP address to listen on for QUIC.\n\
         listen = \"{listen}\"\n\n{tls}\n\
         [limits]\n\
         # Most simultaneous authenticated connections; further handshakes are refused.\n\
         max_connections = 1024\n\
         # Before authentication: handshakes in flight in all and per IP address, each given\n\
         # handshake_timeout_secs; a QUIC Retry first for sources that have not proved their\n\
         # address. After: connections per certificate identity (docs/OPERATE.md, \"Limits\").\n\
         max_handshakes = 128\n\
         max_handshakes_per_source = 16\n\
         handshake_timeout_secs = 10\n\
         validate_addresses = true\n\
         max_connections_per_identity = 8\n\
         # Seconds of silence before a connection is closed (nodes send keep-alives).\n\
         idle_timeout_secs = 30\n\
         # Largest accepted message frame, in bytes (1024 ..= 1073741824); analysts' requests\n\
         # are small and get their own limit.\n\
         max_frame_bytes = 16777216\n\
         max_analyst_frame_bytes = 65536\n\
         # Seconds open connections get to finish on shutdown.\n\
         shutdown_grace_secs = 5\n\n\
         [rounds]\n\
         # Fewest contributing nodes for any result to be released.\n\
         min_nodes = 2\n\
         # Seconds nodes get to contribute after a job is announced.\n\
         contribution_timeout_secs = 120\n\
         # Seconds a later release of a profiling job waits for a lost node of the job.\n\
         rejoin_timeout_secs = 300\n\n\
         [privacy]\n\
         # Most zCDP loss (exact rho) one job may cost each node, its retry reserve included;\n\
         # noise is sized to fit it.\n\
         rho_per_job = \"3/5\"\n\
         # Nodes assumed to collude with the coordinator: at least 1 (every node receives the\n\
         # result and knows its own noise), below rounds.min_nodes and below each round's\n\
         # secure-aggregation threshold.\n\
         colluders = 1\n\
         # Most zCDP loss the profiling jobs one analyst opens in one month may declare in all\n\
         # (local and scheduled runs count under the coordinator's name).\n\
         rho_per_analyst_period = \"2/1\"\n\
         # The most holders one person may be a customer of (the privacy unit is a customer\n\
         # at one holder; a person at K holders loses up to K^2 times the rho). Recorded in\n\
         # the ledger; reports and the audit print epsilon at it. Default: every node.\n\
         # max_holders_per_person = 2\n\n\
         [ledger]\n\
         # Every release is recorded here, with the nodes' signed debits, before it is published.\n\
         path = \"ledgers/coordinator.jsonl\"\n\
         # Published cells counting fewer customers are suppressed.\n\
         min_cell_size = 10\n\n\
         # Profiling jobs the coordinator re-runs by itself on a later as_of (docs/PROFILES.md).\n\
         # Each run is paid from the node budgets and refused up front when one would run out.\n\
         # [[schedule]]\n\
         # job = \"jobs/bank-profile.toml\"   # a job spec (docs/job.sample.toml)\n\
         # every = \"monthly\"                # daily | weekly | monthly\n\
         # out = \"profiles/bank-profile\"    # <out>/<as_of>/report.html ..., <out>/model.json\n\
         # check_secs = 3600\n",
        tls = tls_section(rel)
    )
}

fn node_toml(name: &PartyName, coordinator: &str, rel: &str) -> String {
    format!(
        "# fedprof node {name}.\n\
         # Relative paths are relative to this file. Unknown keys are refused.\n\n\
         # Where the coordinator listens (HOST:PORT). Nodes dial out; they need no open port.\n\
         coordinator = \"{coordinator}\"\n\
         # The name on the coordinator's certificate; defaults to HOST above.\n\
         # server_name = \"coordinator.example\"\n\n{tls}\n\
         [data]\n\
         # This node's transactions: CSV with a header row. Raw rows never leave this machine.\n\
         transactions = \"data/{name}/transactions.csv\"\n\
         # Column headers for the customer id and the amount.\n\
         customer_column = \"customer_id\"\n\
         amount_column = \"amount\"\n\
         # Decimal places of the currency's minor unit (2 = cents); amounts are parsed exactly.\n\
         amount_decimals = 2\n\
         # Field delimiter (one ASCII character).\n\
         delimiter = \",\"\n\
         # Key of this node's customer pseudonyms (64 hex digits, mode 0600). Never share it.\n\
         pseudonym_key = \"{rel}/pseudonym.key\"\n\
         # For `fedprof features` (docs/DATA.md): date column and format (strftime; default ISO),\n\
         # optional channel and category columns, file format (default by extension).\n\
         # date_column = \"date\"\n\
         # date_format = \"%d/%m/%Y\"\n\
         # channel_column = \"channel\"\n\
         # category_column = \"category\"\n\
         # format = \"parquet\"\n\n\
         # [data.cleaning]\n\
         # start = \"2020-01-01\"        # earlier transactions are quarantined (default 1970-01-01)\n\
         # max_amount = \"1000000\"      # larger amounts are quarantined (major units)\n\n\
         # [data.customers]               # optional; transactions of other ids are quarantined\n\
         # path = \"data/{name}/customers.csv\"\n\
         # id_column = \"customer_id\"\n\
         # birth_date_column = \"birth_date\"\n\
         # gender_column = \"gender\"\n\
         # region_column = \"region\"\n\
         # income_band_column = \"income_band\"\n\
         # signup_date_column = \"signup_date\"\n\n\
         # [data.credit]                  # optional; columns limit, balance, days_past_due, default_flag\n\
         # path = \"data/{name}/credit.csv\"\n\n\
         # [data.sql]                     # builds with --features fedprof-node/sql (docs/DATA.md)\n\
         # query = \"SELECT client AS customer_id, booked AS date, cents / 100.0 AS amount FROM transactions\"\n\
         # tables = {{ accounts = \"data/{name}/accounts.csv\" }}\n\n\
         # [features]\n\
         # as_of = \"2026-06-30\"          # or --as-of\n\
         # age_bands = [25, 35, 45, 55, 65]\n\
         # [features.lifecycle]\n\
         # new_max_tenure_days = 30\n\
         # active_max_days = 90\n\
         # at_risk_max_days = 180\n\n\
         [connection]\n\
         # Reconnection backoff: first wait and longest wait, in milliseconds.\n\
         initial_backoff_ms = 500\n\
         max_backoff_ms = 30000\n\
         # Seconds of silence before the connection is considered dead.\n\
         idle_timeout_secs = 30\n\
         # Largest accepted message frame, in bytes.\n\
         max_frame_bytes = 16777216\n\n\
         [privacy]\n\
         # This node's signed, hash-chained budget ledger (and the noisy vectors it sent).\n\
         # Every release is debited here, durably, before anything leaves the node.\n\
         ledger = \"state/node-{name}\"\n\
         # Most zCDP loss (exact rho) this node spends per period; jobs beyond it are refused.\n\
         cap_rho = \"2/1\"\n\
         # Budget period (YYYY-MM); default: the current month (UTC), rolled while running.\n\
         # A pinned period must be the current month; the node stops spending when it ends.\n\
         # period = \"2026-11\"\n\
         # The period cap is a rate limit; this bounds the node's spending over all periods.\n\
         # It is recorded in the signed ledger and may be lowered later, never raised.\n\
         # lifetime_cap_rho = \"24/1\"\n\n\
         [floor]\n\
         # This node's own privacy floor: announcements below it are refused, whatever the\n\
         # coordinator's configuration says (docs/PRIVACY.md, \"The node's floor\").\n\
         # Fewest nodes assumed to collude with the coordinator, and most honest noise shares a\n\
         # release may count on (n_min - colluders; each node adds sigma^2 / that many).\n\
         min_colluders = 1\n\
         max_honest_shares = 2\n\
         # Most zCDP loss per release, per profiling job, and per analyst per period.\n\
         max_rho_per_release = \"1/2\"\n\
         max_rho_per_job = \"1/1\"\n\
         max_rho_per_analyst = \"2/1\"\n",
        tls = tls_section(rel)
    )
}

fn analyst_toml(name: &PartyName, coordinator: &str, rel: &str) -> String {
    format!(
        "# fedprof analyst {name}: submits jobs and reads their results.\n\
         # Relative paths are relative to this file. Unknown keys are refused.\n\n\
         coordinator = \"{coordinator}\"\n\
         # server_name = \"coordinator.example\"\n\n{tls}",
        tls = tls_section(rel)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedprof_coordinator::CoordinatorConfig;
    use std::os::unix::fs::PermissionsExt;

    fn names(list: &[&str]) -> Vec<PartyName> {
        list.iter().map(|n| PartyName::new(*n).unwrap()).collect()
    }

    fn plan(dir: &Path) -> FederationPlan {
        FederationPlan {
            dir: dir.to_owned(),
            name: "test".into(),
            coordinator: "127.0.0.1:7300".into(),
            nodes: names(&["a", "b"]),
            analysts: names(&["x"]),
            auditors: names(&["y"]),
        }
    }

    #[test]
    fn writes_keys_private_and_configs_that_load() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fed");
        let fed = init(&plan(&dir)).unwrap();
        for key in [
            "ca.key",
            "parties/node-a/key.pem",
            "parties/node-a/pseudonym.key",
            "parties/coordinator-coordinator/key.pem",
            "parties/auditor-y/key.pem",
        ] {
            let mode = fs::metadata(dir.join(key)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        let c = fedprof_coordinator::CoordinatorConfig::load(&fed.coordinator_config).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7300");
        // Node configs parse; they only fail on the data file, which init does not create.
        let e = fedprof_node::NodeConfig::load(&fed.node_configs[0].1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `data.transactions`"), "{e}");
        let node_dir = dir.join("data/a");
        fs::create_dir_all(&node_dir).unwrap();
        fs::write(node_dir.join("transactions.csv"), "customer_id,amount\n").unwrap();
        let n = fedprof_node::NodeConfig::load(&fed.node_configs[0].1).unwrap();
        let svc = fedprof_node::NodeService::new(n).unwrap();
        assert_eq!(svc.identity().to_string(), "node a");
    }

    #[test]
    fn the_commented_schedule_sample_loads_when_enabled() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fed");
        let fed = init(&plan(&dir)).unwrap();
        let text = fs::read_to_string(&fed.coordinator_config).unwrap();
        let enabled: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if ["[[schedule]]", "job =", "every =", "out =", "check_secs ="]
                        .iter()
                        .any(|k| rest.starts_with(k)) =>
                {
                    format!("{rest}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        fs::write(&fed.coordinator_config, enabled).unwrap();
        // The job file must exist: the error names the field.
        let e = CoordinatorConfig::load(&fed.coordinator_config).unwrap_err();
        assert!(e.to_string().contains("schedule[0].job"), "{e}");
        fs::create_dir_all(dir.join("jobs")).unwrap();
        fs::write(dir.join("jobs/bank-profile.toml"), "").unwrap();
        let c = CoordinatorConfig::load(&fed.coordinator_config).unwrap();
        assert_eq!(c.schedule.len(), 1);
        assert_eq!(c.schedule[0].every, fedprof_coordinator::Every::Monthly);
        assert!(c.schedule[0].out.ends_with("profiles/bank-profile"));
    }

    #[test]
    fn refuses_to_overwrite_and_duplicate_names() {
        let tmp = tempfile::tempdir().unwrap();
        init(&plan(tmp.path())).unwrap();
        let e = init(&plan(tmp.path())).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
        let mut p = plan(&tmp.path().join("other"));
        p.nodes = names(&["a", "a"]);
        assert!(init(&p).unwrap_err().to_string().contains("given twice"));
        p.nodes.clear();
        assert!(
            init(&p)
                .unwrap_err()
                .to_string()
                .contains("at least one node")
        );
    }
}
