//! The coordinator's configuration file (TOML). Unknown keys are refused; every default is
//! stated here and in the sample that `fedprof federation init` writes.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use fedprof_config::{ConfigError, ConfigFile};
use fedprof_protocol::{FrameLimit, PartyName, Role};
use fedprof_transport::{AdmissionLimits, ServerLimits, TlsFiles};
use serde::Deserialize;

use fedprof_privacy::Rho;

use crate::core::ReleasePolicy;
use crate::round::RoundPolicy;

/// `coordinator.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// UDP address to listen on, e.g. `"0.0.0.0:7300"`.
    pub listen: SocketAddr,
    /// The coordinator's TLS files.
    pub tls: TlsFiles,
    /// Connection limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Round policy.
    #[serde(default)]
    pub rounds: RoundsConfig,
    /// Privacy policy of every release.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// The coordinator's signed release ledger.
    pub ledger: LedgerConfig,
    /// Profiling jobs the coordinator re-runs by itself (`[[schedule]]`, any number).
    #[serde(default)]
    pub schedule: Vec<ScheduleConfig>,
}

/// `[[schedule]]`: re-run a profiling job on a later `as_of`, so profiles stay current.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The job spec (TOML); its `as_of` is replaced by the run's date.
    pub job: std::path::PathBuf,
    /// `daily`, `weekly` (as of the last Sunday) or `monthly` (as of the last day of the
    /// previous month).
    pub every: Every,
    /// Where each run writes `<as_of>/report.*` and the latest `model.json`.
    pub out: std::path::PathBuf,
    /// Seconds between checks for a due run (default 3600).
    #[serde(default = "default_check_secs")]
    pub check_secs: NonZeroU64,
}

/// How often a scheduled job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Every {
    /// As of yesterday.
    Daily,
    /// As of the last Sunday before today.
    Weekly,
    /// As of the last day of the previous month.
    Monthly,
}

fn default_check_secs() -> NonZeroU64 {
    crate::schedule::DEFAULT_CHECK_SECS
}

/// `[ledger]`: where releases are recorded before they are published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The ledger file (JSON lines; created if missing). An auditor reads it with every node's
    /// ledger (`fedprof audit verify`).
    pub path: std::path::PathBuf,
    /// Published cells counting fewer customers are suppressed (recorded policy; default 10).
    #[serde(default = "default_min_cell_size")]
    pub min_cell_size: u64,
    /// Directory of the federation's party certificates (`<party>/cert.pem`), whose node keys
    /// check the ledger's receipts when it is reopened (default: `parties/` beside the CA).
    #[serde(default)]
    pub certificates: Option<std::path::PathBuf>,
    /// Directory of the job journal (what a restarted coordinator resumes from: job numbers,
    /// open profiling jobs and their charges, published results; see
    /// `coordinator::journal`). Default: `<ledger file stem>.journal/` beside the ledger.
    #[serde(default)]
    pub journal: Option<std::path::PathBuf>,
}

impl LedgerConfig {
    /// The job journal's directory.
    pub fn journal_dir(&self) -> std::path::PathBuf {
        self.journal.clone().unwrap_or_else(|| {
            let stem = self.path.file_stem().map_or_else(
                || "coordinator".into(),
                |s| s.to_string_lossy().into_owned(),
            );
            self.path.with_file_name(format!("{stem}.journal"))
        })
    }
}

fn default_min_cell_size() -> u64 {
    10
}

/// `[privacy]`: how releases are bounded and noised. See `docs/PRIVACY.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Most zCDP loss (rho, exact, e.g. `"1/2"`) one job may cost each node (default 1/2).
    pub rho_per_job: Rho,
    /// Nodes assumed to collude with the coordinator (default 1); at least 1 (every
    /// contributor receives the result and knows its own noise) and below `rounds.min_nodes`,
    /// since only the others' noise counts. Each round also needs `colluders <= n - t`.
    pub colluders: u32,
    /// Most zCDP loss the profiling jobs one analyst opens in one month may declare in all
    /// (default 2, the nodes' default monthly cap). Local and scheduled runs count under the
    /// coordinator's own name.
    pub rho_per_analyst_period: Rho,
    /// The most holders (nodes) one person may be a customer of, as the federation declares
    /// it (optional; default: every node). Recorded in the release ledger: the audit and the
    /// reports print epsilon for a person at that many holders (`K^2 rho` per release).
    pub max_holders_per_person: Option<u32>,
    /// Removed keys of the retired transaction-totals job, read only to refuse them by name
    /// with the reason (see [`REMOVED_TOTALS_KEY`]).
    #[serde(rename = "max_rows_per_customer")]
    removed_max_rows: Option<serde::de::IgnoredAny>,
    #[serde(rename = "max_abs_amount_minor")]
    removed_max_amount: Option<serde::de::IgnoredAny>,
}

/// Why `[privacy] max_rows_per_customer` and `max_abs_amount_minor` are refused: they bounded
/// the retired transaction-totals job, whose bounds are now in the query the analyst sends.
pub const REMOVED_TOTALS_KEY: &str = "was removed: transaction totals are a feature query now, \
     and the analyst's query carries its own bounds (fedprof job submit --max-rows, \
     --max-amount-minor); delete the key";

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            rho_per_job: Rho::from_ratio_exact(num_rational::Ratio::new(1u8.into(), 2u8.into())),
            colluders: 1,
            rho_per_analyst_period: Rho::from_ratio_exact(num_rational::Ratio::from_integer(
                2u8.into(),
            )),
            max_holders_per_person: None,
            removed_max_rows: None,
            removed_max_amount: None,
        }
    }
}

impl PrivacyConfig {
    /// The release policy of a coordinator named `name` (its certificate name).
    pub fn policy(&self, name: PartyName) -> ReleasePolicy {
        ReleasePolicy {
            rho_per_job: self.rho_per_job.clone(),
            colluders: self.colluders,
            rho_per_analyst_period: self.rho_per_analyst_period.clone(),
            max_holders_per_person: self.max_holders_per_person,
            name,
        }
    }
}

/// `[limits]`: see [`ServerLimits`] for what each limit does.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most simultaneous authenticated connections (default 1024).
    pub max_connections: NonZeroUsize,
    /// Most TLS handshakes in flight, from all sources (default 128). Counted apart from
    /// `max_connections`, so handshakes that never finish cannot take connection slots.
    pub max_handshakes: NonZeroUsize,
    /// Most TLS handshakes in flight from one IP address (default 16).
    pub max_handshakes_per_source: NonZeroUsize,
    /// Most connections one certificate identity may hold at once (default 8).
    pub max_connections_per_identity: NonZeroUsize,
    /// Seconds a handshake may take before it is dropped (default 10, at most 300).
    pub handshake_timeout_secs: NonZeroU64,
    /// Answer every source that has not proved its address with a QUIC Retry before any TLS
    /// work (default true; a stateless round trip that spoofed addresses cannot complete).
    pub validate_addresses: bool,
    /// Largest frame accepted from an analyst, in bytes (default 65536: an analyst's largest
    /// message is a job request, whose query is at most 48 KiB written as JSON and less on the
    /// wire; nodes get `max_frame_bytes`, as their masked inputs are large). Security review
    /// M1: a frame is decoded only once it has arrived whole, so this bounds what an analyst
    /// certificate can make the coordinator decode.
    pub max_analyst_frame_bytes: FrameLimit,
    /// Seconds of silence before a connection is closed (default 30).
    pub idle_timeout_secs: NonZeroU64,
    /// Largest accepted frame in bytes (default 16 MiB).
    pub max_frame_bytes: FrameLimit,
    /// Seconds open connections get to finish on shutdown (default 5).
    pub shutdown_grace_secs: u64,
    /// Seconds between application heartbeat pings to each registered node (default 10).
    pub heartbeat_interval_secs: NonZeroU64,
    /// Seconds a registered node may send nothing (not even a pong) before it is closed and
    /// leaves every roster (default 30). See docs/PROTOCOL.md, "Heartbeat".
    pub heartbeat_timeout_secs: NonZeroU64,
}

impl LimitsConfig {
    /// The heartbeat these settings describe.
    pub fn heartbeat(&self) -> crate::core::Heartbeat {
        crate::core::Heartbeat {
            interval: Duration::from_secs(self.heartbeat_interval_secs.get()),
            timeout: Duration::from_secs(self.heartbeat_timeout_secs.get()),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = ServerLimits::default();
        let hb = crate::core::Heartbeat::default();
        let a = d.admission;
        let nonzero = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        LimitsConfig {
            max_connections: nonzero(a.max_connections),
            max_handshakes: nonzero(a.max_handshakes),
            max_handshakes_per_source: nonzero(a.max_handshakes_per_source),
            max_connections_per_identity: nonzero(a.max_connections_per_identity),
            handshake_timeout_secs: NonZeroU64::new(a.handshake_timeout.as_secs())
                .unwrap_or(NonZeroU64::MIN),
            validate_addresses: a.validate_addresses,
            max_analyst_frame_bytes: FrameLimit::ANALYST,
            idle_timeout_secs: NonZeroU64::new(d.idle_timeout.as_secs()).unwrap_or(NonZeroU64::MIN),
            max_frame_bytes: d.max_frame,
            shutdown_grace_secs: d.shutdown_grace.as_secs(),
            heartbeat_interval_secs: NonZeroU64::new(hb.interval.as_secs())
                .unwrap_or(NonZeroU64::MIN),
            heartbeat_timeout_secs: NonZeroU64::new(hb.timeout.as_secs())
                .unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl From<LimitsConfig> for ServerLimits {
    fn from(l: LimitsConfig) -> Self {
        ServerLimits {
            admission: AdmissionLimits {
                max_connections: l.max_connections.get(),
                max_handshakes: l.max_handshakes.get(),
                max_handshakes_per_source: l.max_handshakes_per_source.get(),
                max_connections_per_identity: l.max_connections_per_identity.get(),
                handshake_timeout: Duration::from_secs(l.handshake_timeout_secs.get()),
                validate_addresses: l.validate_addresses,
                // The coordinator serves nodes and analysts; auditors read ledgers offline.
                roles: &[Role::Node, Role::Analyst],
            },
            idle_timeout: Duration::from_secs(l.idle_timeout_secs.get()),
            max_frame: l.max_frame_bytes,
            max_analyst_frame: l.max_analyst_frame_bytes,
            shutdown_grace: Duration::from_secs(l.shutdown_grace_secs),
        }
    }
}

/// `[rounds]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoundsConfig {
    /// Fewest contributing nodes for a result to be released (default 2).
    pub min_nodes: NonZeroUsize,
    /// Seconds nodes get to contribute after a job is announced (default 120).
    pub contribution_timeout_secs: NonZeroU64,
    /// Seconds a later release of a profiling job waits for a lost node of the job to
    /// reconnect before it is refused (default 300, at most a day): every release of a job
    /// covers the same nodes.
    pub rejoin_timeout_secs: u64,
}

impl Default for RoundsConfig {
    fn default() -> Self {
        RoundsConfig {
            min_nodes: NonZeroUsize::MIN.saturating_add(1),
            contribution_timeout_secs: NonZeroU64::MIN.saturating_add(119),
            rejoin_timeout_secs: 300,
        }
    }
}

impl From<RoundsConfig> for RoundPolicy {
    fn from(r: RoundsConfig) -> Self {
        RoundPolicy {
            min_nodes: r.min_nodes.get(),
            timeout: Duration::from_secs(r.contribution_timeout_secs.get()),
        }
    }
}

impl CoordinatorConfig {
    /// Reads and checks `path`; TLS paths are resolved against the file's directory and must
    /// exist.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file(&ConfigFile::read(path)?)
    }

    /// Checks a config already read (or held in memory, as the fuzz harness in
    /// `fedprof_sim::fuzz` does): everything [`CoordinatorConfig::load`] does but reading the file.
    pub fn from_file(file: &ConfigFile) -> Result<Self, ConfigError> {
        let mut config: CoordinatorConfig = file.parse()?;
        for (key, set) in [
            ("max_rows_per_customer", &config.privacy.removed_max_rows),
            ("max_abs_amount_minor", &config.privacy.removed_max_amount),
        ] {
            if set.is_some() {
                return Err(file.error(&format!("privacy.{key}"), REMOVED_TOTALS_KEY));
            }
        }
        config.tls.resolve_against(file.dir());
        config.ledger.path = file.resolve(&config.ledger.path);
        config.ledger.certificates = config.ledger.certificates.as_ref().map(|p| file.resolve(p));
        config.ledger.journal = config.ledger.journal.as_ref().map(|p| file.resolve(p));
        // Durations are bounded at load, so no deadline computed from them can overflow
        // (security review L1: a huge timeout once panicked the core on `now + timeout`).
        for (key, secs, most) in [
            (
                "rounds.contribution_timeout_secs",
                config.rounds.contribution_timeout_secs.get(),
                6 * 3600,
            ),
            (
                "limits.idle_timeout_secs",
                config.limits.idle_timeout_secs.get(),
                3600,
            ),
            (
                "limits.shutdown_grace_secs",
                config.limits.shutdown_grace_secs,
                3600,
            ),
            (
                "limits.heartbeat_interval_secs",
                config.limits.heartbeat_interval_secs.get(),
                3600,
            ),
            (
                "limits.heartbeat_timeout_secs",
                config.limits.heartbeat_timeout_secs.get(),
                3 * 3600,
            ),
            (
                "limits.handshake_timeout_secs",
                config.limits.handshake_timeout_secs.get(),
                300,
            ),
        ] {
            if secs > most {
                return Err(file.error(key, format!("must be at most {most} seconds")));
            }
        }
        if config.limits.max_analyst_frame_bytes > config.limits.max_frame_bytes {
            return Err(file.error(
                "limits.max_analyst_frame_bytes",
                "must not exceed limits.max_frame_bytes",
            ));
        }
        if config.rounds.rejoin_timeout_secs > 86_400 {
            return Err(file.error(
                "rounds.rejoin_timeout_secs",
                "must be at most 86400 (a day)",
            ));
        }
        for (i, entry) in config.schedule.iter_mut().enumerate() {
            entry.job = file.resolve(&entry.job);
            entry.out = file.resolve(&entry.out);
            file.require_file(&format!("schedule[{i}].job"), &entry.job)?;
        }
        file.require_file("tls.ca", &config.tls.ca)?;
        file.require_file("tls.cert", &config.tls.cert)?;
        file.require_file("tls.key", &config.tls.key)?;
        if config.privacy.colluders == 0 {
            return Err(file.error(
                "privacy.colluders",
                "must be at least 1: every contributor receives the result and knows its own \
                 noise share, so that share never protects the others",
            ));
        }
        if config.privacy.max_holders_per_person == Some(0) {
            return Err(file.error(
                "privacy.max_holders_per_person",
                "must be at least 1 (a person is a customer of at least one holder)",
            ));
        }
        if config.privacy.rho_per_analyst_period.is_zero() {
            return Err(file.error("privacy.rho_per_analyst_period", "must be above 0"));
        }
        if config.privacy.colluders as usize >= config.rounds.min_nodes.get() {
            return Err(file.error(
                "privacy.colluders",
                format!(
                    "must be below rounds.min_nodes ({}): only the noise of the other nodes counts",
                    config.rounds.min_nodes
                ),
            ));
        }
        if config.privacy.rho_per_job.is_zero() {
            return Err(file.error("privacy.rho_per_job", "must be above 0"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let f = ConfigFile::from_text(
            "/c/coordinator.toml",
            "listen = \"127.0.0.1:7300\"\n[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n[ledger]\npath = \"l.jsonl\"\n",
        );
        let c: CoordinatorConfig = f.parse().unwrap();
        let limits = ServerLimits::from(c.limits);
        assert_eq!(limits, ServerLimits::default());
        let policy = RoundPolicy::from(c.rounds);
        assert_eq!(policy.min_nodes, 2);
        assert_eq!(policy.timeout, Duration::from_secs(120));
    }

    #[test]
    fn removed_totals_keys_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.toml");
        for key in [
            "max_rows_per_customer = 100",
            "max_abs_amount_minor = 1000000",
        ] {
            let body = format!(
                "listen = \"127.0.0.1:7300\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n\
                 [ledger]\npath = \"l.jsonl\"\n[privacy]\n{key}\n"
            );
            std::fs::write(&path, body).unwrap();
            let e = CoordinatorConfig::load(&path).unwrap_err().to_string();
            let field = key.split(' ').next().unwrap();
            assert!(e.contains(&format!("privacy.{field}")), "{e}");
            assert!(e.contains("was removed") && e.contains(":9"), "{e}");
        }
    }

    #[test]
    fn zero_and_out_of_range_values_are_refused_with_their_field() {
        let base = "listen = \"127.0.0.1:7300\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n";
        for (extra, field) in [
            ("[rounds]\nmin_nodes = 0\n", "rounds.min_nodes"),
            ("[limits]\nmax_frame_bytes = 10\n", "limits.max_frame_bytes"),
            ("[limits]\nmax_conections = 10\n", "limits.max_conections"),
        ] {
            let f = ConfigFile::from_text("/c/coordinator.toml", format!("{base}{extra}"));
            let e = f.parse::<CoordinatorConfig>().unwrap_err();
            assert_eq!(e.location().unwrap().field, field, "{e}");
            assert_eq!(
                e.location().unwrap().line_col.map(|(l, _)| l),
                Some(7),
                "{e}"
            );
        }
    }

    /// Security review L1: a huge timeout once overflowed `Instant` and panicked the core;
    /// every duration is bounded at load, naming its field.
    #[test]
    fn durations_that_could_overflow_a_deadline_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.toml");
        for (extra, field) in [
            (
                "[rounds]\ncontribution_timeout_secs = 18446744073709551615\n",
                "rounds.contribution_timeout_secs",
            ),
            (
                "[limits]\nidle_timeout_secs = 3601\n",
                "limits.idle_timeout_secs",
            ),
            (
                "[limits]\nheartbeat_timeout_secs = 99999999\n",
                "limits.heartbeat_timeout_secs",
            ),
            (
                "[limits]\nhandshake_timeout_secs = 301\n",
                "limits.handshake_timeout_secs",
            ),
            (
                "[limits]\nmax_analyst_frame_bytes = 33554432\n",
                "limits.max_analyst_frame_bytes",
            ),
        ] {
            let body = format!(
                "listen = \"127.0.0.1:7300\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n\
                 [ledger]\npath = \"l.jsonl\"\n{extra}"
            );
            std::fs::write(&path, body).unwrap();
            let e = CoordinatorConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains(field), "{extra}: {e}");
        }
    }
}
