//! The node's configuration file (TOML). Unknown keys are refused; defaults are stated here and
//! in the sample `fedprof federation init` writes.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedprof_config::{ConfigError, ConfigFile};
use fedprof_protocol::FrameLimit;
use fedprof_transport::{ClientLimits, DialTarget, TlsFiles};
use serde::Deserialize;

use crate::pipeline::dates::{DateParser, Day};
use crate::pipeline::postgres::PostgresConfig;
use crate::pipeline::spec::{
    CleaningConfig, CreditConfig, CreditSpec, CustomersConfig, CustomersSpec,
    DEFAULT_MAX_LINE_BYTES, FeaturesConfig, FileFormat, PipelineSpec, SourceSpec, SpecError,
    TransactionsSpec, default_date_column,
};

/// `node-<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The coordinator's address, `HOST:PORT` (a DNS name, an IPv4 address or `[IPv6]`).
    pub coordinator: DialTarget,
    /// The name the coordinator's certificate must carry; defaults to `HOST` of `coordinator`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// This node's TLS files.
    pub tls: TlsFiles,
    /// The node's local data.
    pub data: DataConfig,
    /// Connection behaviour.
    #[serde(default)]
    pub connection: ConnectionConfig,
    /// Feature settings for `fedprof features` (as-of date, lifecycle thresholds, age bands).
    #[serde(default)]
    pub features: FeaturesConfig,
    /// This node's own privacy budget and its signed ledger.
    pub privacy: NodePrivacyConfig,
    /// The least this node assumes and the most it spends, whatever the coordinator
    /// announces (`[floor]`, every field with a default; see docs/PRIVACY.md).
    #[serde(default)]
    pub floor: NodeFloorConfig,
}

/// `[floor]`: this node's privacy floor (see [`crate::floor`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeFloorConfig {
    /// Fewest nodes assumed to collude with the coordinator (default 1: with 0, a node that
    /// receives the result and knows its own noise would face one share less than counted).
    pub min_colluders: u32,
    /// Most honest noise shares (`n_min - colluders`) a release may count on (default 2). Each
    /// node adds `sigma^2 / (n_min - colluders)`: a coordinator announcing a large `n_min` with
    /// few colluders would have every node add little noise, resting the guarantee on its word
    /// that no more collude. Together with `min_colluders` this bounds what the node trusts.
    pub max_honest_shares: u32,
    /// Most rho one release may cost (default 1/2).
    pub max_rho_per_release: fedprof_privacy::Rho,
    /// Most rho one profiling job may cost, over all its releases (default 1).
    pub max_rho_per_job: fedprof_privacy::Rho,
    /// Most rho one analyst's jobs may cost per budget period (default 2, the default period
    /// cap: lower it to keep room for other analysts).
    pub max_rho_per_analyst: fedprof_privacy::Rho,
}

impl Default for NodeFloorConfig {
    fn default() -> Self {
        let rho = |n: u8, d: u8| {
            fedprof_privacy::Rho::from_ratio_exact(num_rational::Ratio::new(n.into(), d.into()))
        };
        NodeFloorConfig {
            min_colluders: 1,
            max_honest_shares: 2,
            max_rho_per_release: rho(1, 2),
            max_rho_per_job: rho(1, 1),
            max_rho_per_analyst: rho(2, 1),
        }
    }
}

/// `[privacy]`: the budget this node enforces itself, whatever the coordinator asks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePrivacyConfig {
    /// Directory of the node's hash-chained, signed budget ledger and its cache of sent noisy
    /// vectors (created if missing; keep it on durable storage and back it up).
    pub ledger: PathBuf,
    /// Most zCDP loss (rho, exact, e.g. `"2/1"`) the node spends per period (default 2).
    #[serde(default = "default_cap_rho")]
    pub cap_rho: fedprof_privacy::Rho,
    /// The budget period, `YYYY-MM` (default: the current month, UTC, rolled while the node
    /// runs). A new period opens a fresh budget; the ledger keeps every period. Periods are
    /// UTC months opened during themselves and in increasing order (docs/LEDGER.md, "Time
    /// and periods"), so a pinned period must be the current month, and the node spends
    /// nothing once that month is over.
    #[serde(default)]
    pub period: Option<String>,
    /// Most zCDP loss the node spends over all periods, ever (optional, e.g. `"24/1"`). The
    /// period cap is a rate limit; this is the lifetime bound. Recorded in the signed ledger
    /// (a `lifetime_cap` entry, which the auditor checks); it may be lowered, never raised.
    #[serde(default)]
    pub lifetime_cap_rho: Option<fedprof_privacy::Rho>,
}

fn default_cap_rho() -> fedprof_privacy::Rho {
    fedprof_privacy::Rho::from_ratio_exact(num_rational::Ratio::from_integer(2u8.into()))
}

/// `[data]`: where the transactions are and how to read them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// CSV file of transactions with a header row.
    pub transactions: PathBuf,
    /// Header of the customer id column (default `customer_id`).
    #[serde(default = "default_customer_column")]
    pub customer_column: String,
    /// Header of the amount column (default `amount`).
    #[serde(default = "default_amount_column")]
    pub amount_column: String,
    /// Decimal places of the currency's minor unit (default 2).
    #[serde(default = "default_amount_decimals")]
    pub amount_decimals: u8,
    /// Field delimiter, one ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// `csv` or `parquet`; default by the file's extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// Whether the CSV file starts with a header row (default true).
    #[serde(default = "default_true")]
    pub has_header: bool,
    /// Column names of a CSV file without a header, in file order.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Header of the date or timestamp column (default `date`).
    #[serde(default = "default_date_column")]
    pub date_column: String,
    /// Date format (strftime, e.g. `%d/%m/%Y`); default ISO 8601 dates or timestamps.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Header of the channel column, if any.
    #[serde(default)]
    pub channel_column: Option<String>,
    /// Header of the category column, if any.
    #[serde(default)]
    pub category_column: Option<String>,
    /// Longest accepted CSV line in bytes (default 1048576).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
    /// The node's pseudonym key file (64 hex digits, mode 0600), written by federation init.
    #[serde(default)]
    pub pseudonym_key: Option<PathBuf>,
    /// Cleaning rules.
    #[serde(default)]
    pub cleaning: CleaningConfig,
    /// The optional customers table.
    #[serde(default)]
    pub customers: Option<CustomersConfig>,
    /// The optional credit table.
    #[serde(default)]
    pub credit: Option<CreditConfig>,
    /// Push the aggregation down to PostgreSQL instead of reading `transactions`.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
    /// Map the data holder's own schema with a SQL view (builds with the `sql` feature).
    #[serde(default)]
    pub sql: Option<SqlConfig>,
}

/// `[data.sql]`: the transactions are the result of `query`, over the `transactions` file
/// (table `transactions`) and any files in `tables`; the `[data]` column settings name the
/// query's result columns. Needs a build with the `sql` cargo feature (DataFusion).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// The query (DataFusion SQL), e.g. `SELECT t.client AS customer_id, ... FROM
    /// transactions t JOIN accounts a ON ...`.
    pub query: String,
    /// Further files by table name (CSV with a header, or Parquet, by extension).
    #[serde(default)]
    pub tables: std::collections::BTreeMap<String, PathBuf>,
}

fn default_true() -> bool {
    true
}
fn default_max_line_bytes() -> u64 {
    DEFAULT_MAX_LINE_BYTES
}

fn default_customer_column() -> String {
    "customer_id".into()
}
fn default_amount_column() -> String {
    "amount".into()
}
fn default_amount_decimals() -> u8 {
    2
}
fn default_delimiter() -> char {
    ','
}

/// `[connection]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// First wait before reconnecting, in milliseconds (default 500).
    pub initial_backoff_ms: NonZeroU64,
    /// Longest wait between reconnection attempts, in milliseconds (default 30000).
    pub max_backoff_ms: NonZeroU64,
    /// Seconds of silence before the connection is considered dead (default 30); keep-alives
    /// go out at a third of it.
    pub idle_timeout_secs: NonZeroU64,
    /// Largest accepted frame in bytes (default 16 MiB).
    pub max_frame_bytes: FrameLimit,
    /// Seconds without any message from the coordinator (which pings every registered node,
    /// by default every 10 s) after which the node ends the session and reconnects (default
    /// 30). Also the longest a single send may block: a coordinator that does not read for
    /// that long is treated as gone. See docs/PROTOCOL.md, "Heartbeat".
    pub heartbeat_timeout_secs: NonZeroU64,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        let limits = ClientLimits::default();
        ConnectionConfig {
            initial_backoff_ms: NonZeroU64::new(500).unwrap_or(NonZeroU64::MIN),
            max_backoff_ms: NonZeroU64::new(30_000).unwrap_or(NonZeroU64::MIN),
            idle_timeout_secs: NonZeroU64::new(limits.idle_timeout.as_secs())
                .unwrap_or(NonZeroU64::MIN),
            max_frame_bytes: limits.max_frame,
            heartbeat_timeout_secs: NonZeroU64::new(
                crate::core::DEFAULT_HEARTBEAT_TIMEOUT.as_secs(),
            )
            .unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl ConnectionConfig {
    /// The transport limits these settings describe.
    pub fn client_limits(&self) -> ClientLimits {
        ClientLimits {
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.get()),
            max_frame: self.max_frame_bytes,
        }
    }

    /// How long the coordinator may stay silent (see `heartbeat_timeout_secs`).
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_secs.get())
    }

    /// Reconnection backoff bounds.
    pub fn backoff(&self) -> (Duration, Duration) {
        let initial = Duration::from_millis(self.initial_backoff_ms.get());
        (
            initial,
            Duration::from_millis(self.max_backoff_ms.get()).max(initial),
        )
    }
}

impl NodeConfig {
    /// Reads and checks `path`; relative paths are resolved against the file's directory, and
    /// the TLS files and the transactions file must exist.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file(&ConfigFile::read(path)?)
    }

    /// Checks a config already read (or held in memory, as the fuzz harness in
    /// `fedprof_sim::fuzz` does): everything [`NodeConfig::load`] does but reading the file.
    pub fn from_file(file: &ConfigFile) -> Result<Self, ConfigError> {
        let mut config: NodeConfig = file.parse()?;
        config.tls.resolve_against(file.dir());
        config.data.transactions = file.resolve(&config.data.transactions);
        config.privacy.ledger = file.resolve(&config.privacy.ledger);
        if config.privacy.cap_rho.is_zero() {
            return Err(file.error("privacy.cap_rho", "must be above 0"));
        }
        file.require_file("tls.ca", &config.tls.ca)?;
        file.require_file("tls.cert", &config.tls.cert)?;
        file.require_file("tls.key", &config.tls.key)?;
        // With a PostgreSQL source, `fedprof features` does not read the file (the running
        // job still does, so a node serving jobs needs it either way).
        if config.data.postgres.is_none() {
            file.require_file("data.transactions", &config.data.transactions)?;
        }
        if !config.data.delimiter.is_ascii() {
            return Err(file.error(
                "data.delimiter",
                "the delimiter must be one ASCII character",
            ));
        }
        if config.data.amount_decimals > 9 {
            return Err(file.error(
                "data.amount_decimals",
                "at most 9 decimal places are supported",
            ));
        }
        let data = &mut config.data;
        if let Some(k) = &data.pseudonym_key {
            data.pseudonym_key = Some(file.resolve(k));
        }
        if let Some(c) = &mut data.customers {
            c.path = file.resolve(&c.path);
            file.require_file("data.customers.path", &c.path)?;
        }
        if let Some(c) = &mut data.credit {
            c.path = file.resolve(&c.path);
            file.require_file("data.credit.path", &c.path)?;
        }
        if let Some(k) = &config.data.pseudonym_key {
            file.require_file("data.pseudonym_key", k)?;
        }
        if let Some(sql) = &mut config.data.sql {
            if !cfg!(feature = "sql") {
                return Err(file.error(
                    "data.sql",
                    "this build has no SQL support: rebuild with `--features fedprof-node/sql`, \
                     or map the columns with the [data] settings",
                ));
            }
            for (name, path) in &mut sql.tables {
                *path = file.resolve(path);
                file.require_file(&format!("data.sql.tables.{name}"), path)?;
            }
        }
        // Everything the pipeline checks is checked now, so errors point into this file.
        let placeholder = config
            .data
            .cleaning
            .start
            .as_deref()
            .and_then(crate::pipeline::dates::parse_iso_day);
        let as_of = config.features.as_of.as_deref().map_or(
            Ok(placeholder.unwrap_or(Day::from_days(0))),
            |t| {
                crate::pipeline::dates::parse_iso_day(t)
                    .ok_or_else(|| file.error("features.as_of", "expected a date YYYY-MM-DD"))
            },
        )?;
        if let Err(e) = config.pipeline_spec(Some(as_of)) {
            let field = if e.field == "as_of" {
                "features.as_of"
            } else {
                e.field
            };
            return Err(file.error(field, e.problem));
        }
        Ok(config)
    }

    /// The TLS server name to expect on the coordinator's certificate.
    pub fn server_name(&self) -> &str {
        self.server_name
            .as_deref()
            .unwrap_or(self.coordinator.host())
    }

    /// The pipeline spec of this node's data; `as_of` overrides `[features] as_of`, and one of
    /// them is required.
    pub fn pipeline_spec(&self, as_of: Option<Day>) -> Result<PipelineSpec, SpecError> {
        let d = &self.data;
        let err = |field: &'static str, problem: String| SpecError { field, problem };
        let ascii = |field: &'static str, c: char| {
            u8::try_from(c)
                .ok()
                .filter(u8::is_ascii)
                .ok_or_else(|| err(field, "the delimiter must be one ASCII character".into()))
        };
        let as_of = match (as_of, &self.features.as_of) {
            (Some(day), _) => day,
            (None, Some(t)) => crate::pipeline::dates::parse_iso_day(t)
                .ok_or_else(|| err("features.as_of", "expected a date YYYY-MM-DD".into()))?,
            (None, None) => {
                return Err(err(
                    "features.as_of",
                    "an as-of date is required (--as-of or [features] as_of)".into(),
                ));
            }
        };
        let source = |path: &Path, delimiter: u8| SourceSpec {
            format: FileFormat::from_extension(path),
            delimiter,
            ..SourceSpec::new(path)
        };
        let mut tx_source = source(&d.transactions, ascii("data.delimiter", d.delimiter)?);
        tx_source.format = d.format.unwrap_or(tx_source.format);
        tx_source.sql = d.sql.as_ref().map(|sql| crate::pipeline::sql::SqlView {
            tables: std::iter::once(("transactions".to_owned(), d.transactions.clone()))
                .chain(sql.tables.iter().map(|(n, p)| (n.clone(), p.clone())))
                .collect(),
            query: sql.query.clone(),
            field: "data.sql.query".to_owned(),
        });
        tx_source.has_header = d.has_header;
        tx_source.columns.clone_from(&d.columns);
        tx_source.max_line_bytes = d.max_line_bytes;
        let transactions = TransactionsSpec {
            source: tx_source,
            customer: d.customer_column.clone(),
            date: d.date_column.clone(),
            amount: d.amount_column.clone(),
            channel: d.channel_column.clone(),
            category: d.category_column.clone(),
            date_parser: DateParser::new(d.date_format.as_deref())
                .map_err(|p| err("data.date_format", p))?,
        };
        let mut spec = PipelineSpec::new(transactions, as_of);
        spec.amount_decimals = d.amount_decimals;
        if let Some(c) = &d.customers {
            spec.customers = Some(CustomersSpec {
                source: source(&c.path, ascii("data.customers.delimiter", c.delimiter)?),
                columns: c.clone(),
                date_parser: DateParser::new(c.date_format.as_deref())
                    .map_err(|p| err("data.customers.date_format", p))?,
            });
        }
        if let Some(c) = &d.credit {
            spec.credit = Some(CreditSpec {
                source: source(&c.path, ascii("data.credit.delimiter", c.delimiter)?),
                columns: c.clone(),
            });
        }
        spec.apply(&d.cleaning, &self.features)?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        for f in ["ca.pem", "cert.pem", "key.pem", "t.csv"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let p = dir.join("node.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    const TLS: &str = "[tls]\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[privacy]\nledger = \"l\"\n";

    #[test]
    fn loads_with_defaults_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            &format!("coordinator = \"[::1]:7300\"\n{TLS}[data]\ntransactions = \"t.csv\"\n"),
        );
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.server_name(), "::1");
        assert_eq!(c.data.transactions, dir.path().join("t.csv"));
        assert_eq!(c.data.delimiter, ',');
        assert_eq!(
            c.connection.backoff(),
            (Duration::from_millis(500), Duration::from_secs(30))
        );
    }

    #[test]
    fn sql_views_need_the_feature_and_existing_tables() {
        let dir = tempfile::tempdir().unwrap();
        let body = |tables: &str| {
            format!(
                "coordinator = \"h:1\"\n{TLS}[data]\ntransactions = \"t.csv\"\n[data.sql]\nquery = \"SELECT 1\"\n{tables}"
            )
        };
        let p = write(dir.path(), &body(""));
        let result = NodeConfig::load(&p);
        if cfg!(feature = "sql") {
            let c = result.unwrap();
            assert_eq!(c.data.sql.unwrap().query, "SELECT 1");
            let p = write(dir.path(), &body("tables = { accounts = \"gone.csv\" }\n"));
            let e = NodeConfig::load(&p).unwrap_err();
            assert_eq!(
                e.location().unwrap().field,
                "data.sql.tables.accounts",
                "{e}"
            );
        } else {
            let e = result.unwrap_err();
            assert_eq!(e.location().unwrap().field, "data.sql", "{e}");
            assert!(e.to_string().contains("--features fedprof-node/sql"), "{e}");
        }
    }

    #[test]
    fn a_missing_data_file_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            &format!("coordinator = \"h:1\"\n{TLS}[data]\ntransactions = \"nope.csv\"\n"),
        );
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("node.toml:9:16: field `data.transactions`") && e.contains("nope.csv"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_located() {
        let dir = tempfile::tempdir().unwrap();
        for (line, field) in [
            ("coordinator = \"no-port\"", "coordinator"),
            ("coordinator = \"h:99999\"", "coordinator"),
        ] {
            let p = write(
                dir.path(),
                &format!("{line}\n{TLS}[data]\ntransactions = \"t.csv\"\n"),
            );
            let e = NodeConfig::load(&p).unwrap_err();
            assert_eq!(e.location().unwrap().field, field, "{e}");
            assert_eq!(
                e.location().unwrap().line_col.map(|(l, _)| l),
                Some(1),
                "{e}"
            );
        }
        let p = write(
            dir.path(),
            &format!(
                "coordinator = \"h:1\"\n{TLS}[data]\ntransactions = \"t.csv\"\ndelimiter = \"ü\"\n"
            ),
        );
        assert_eq!(
            NodeConfig::load(&p).unwrap_err().location().unwrap().field,
            "data.delimiter"
        );
    }
}
