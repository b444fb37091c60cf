//! The node's configuration file (TOML). Unknown keys are refused; defaults are stated here and
//! in the sample `fedprof federation init` writes.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedprof_config::{ConfigError, ConfigFile};
use fedprof_protocol::FrameLimit;
use fedprof_transport::{ClientLimits, DialTarget, TlsFiles};
use serde::Deserialize;

use crate::data::TransactionsSource;

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

    /// Reconnection backoff bounds.
    pub fn backoff(&self) -> (Duration, Duration) {
        let initial = Duration::from_millis(self.initial_backoff_ms.get());
        (initial, Duration::from_millis(self.max_backoff_ms.get()).max(initial))
    }
}

impl NodeConfig {
    /// Reads and checks `path`; relative paths are resolved against the file's directory, and
    /// the TLS files and the transactions file must exist.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = ConfigFile::read(path)?;
        let mut config: NodeConfig = file.parse()?;
        config.tls.resolve_against(file.dir());
        config.data.transactions = file.resolve(&config.data.transactions);
        file.require_file("tls.ca", &config.tls.ca)?;
        file.require_file("tls.cert", &config.tls.cert)?;
        file.require_file("tls.key", &config.tls.key)?;
        file.require_file("data.transactions", &config.data.transactions)?;
        if !config.data.delimiter.is_ascii() {
            return Err(file.error("data.delimiter", "the delimiter must be one ASCII character"));
        }
        if config.data.amount_decimals > 9 {
            return Err(file.error("data.amount_decimals", "at most 9 decimal places are supported"));
        }
        Ok(config)
    }

    /// The TLS server name to expect on the coordinator's certificate.
    pub fn server_name(&self) -> &str {
        self.server_name.as_deref().unwrap_or(self.coordinator.host())
    }

    /// How to read the transactions.
    pub fn transactions(&self) -> TransactionsSource {
        TransactionsSource {
            path: self.data.transactions.clone(),
            // Checked to be ASCII in `load`.
            delimiter: u8::try_from(self.data.delimiter).unwrap_or(b','),
            customer_column: self.data.customer_column.clone(),
            amount_column: self.data.amount_column.clone(),
            amount_decimals: self.data.amount_decimals,
        }
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

    const TLS: &str = "[tls]\nca = \"ca.pem\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";

    #[test]
    fn loads_with_defaults_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), &format!("coordinator = \"[::1]:7300\"\n{TLS}[data]\ntransactions = \"t.csv\"\n"));
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.server_name(), "::1");
        assert_eq!(c.transactions().path, dir.path().join("t.csv"));
        assert_eq!(c.transactions().delimiter, b',');
        assert_eq!(c.connection.backoff(), (Duration::from_millis(500), Duration::from_secs(30)));
    }

    #[test]
    fn a_missing_data_file_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            &format!("coordinator = \"h:1\"\n{TLS}[data]\ntransactions = \"nope.csv\"\n"),
        );
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("node.toml:7:16: field `data.transactions`") && e.contains("nope.csv"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let dir = tempfile::tempdir().unwrap();
        for (line, field) in [
            ("coordinator = \"no-port\"", "coordinator"),
            ("coordinator = \"h:99999\"", "coordinator"),
        ] {
            let p = write(dir.path(), &format!("{line}\n{TLS}[data]\ntransactions = \"t.csv\"\n"));
            let e = NodeConfig::load(&p).unwrap_err();
            assert_eq!(e.location().unwrap().field, field, "{e}");
            assert_eq!(e.location().unwrap().line_col.map(|(l, _)| l), Some(1), "{e}");
        }
        let p = write(
            dir.path(),
            &format!("coordinator = \"h:1\"\n{TLS}[data]\ntransactions = \"t.csv\"\ndelimiter = \"ü\"\n"),
        );
        assert_eq!(NodeConfig::load(&p).unwrap_err().location().unwrap().field, "data.delimiter");
    }
}
