//! What the pipeline reads and how: the `[data]` extensions and the `[features]` section of the
//! node config (serde types, unknown keys refused), and [`PipelineSpec`], the checked form the
//! pipeline runs on. The flags form of `fedprof features` builds a [`PipelineSpec`] directly.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::dates::{DateParser, Day, parse_iso_day};

/// Longest physical line accepted in a CSV file unless configured (1 MiB). A longer line is an
/// error found after reading at most this many bytes of it.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 1 << 20;

/// File format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Delimited text, read with arrow-csv.
    Csv,
    /// Apache Parquet, read with the parquet crate's Arrow reader.
    Parquet,
}

impl FileFormat {
    /// `.parquet` / `.parq` / `.pq` is Parquet, anything else CSV.
    pub fn from_extension(path: &Path) -> FileFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("parquet" | "parq" | "pq") => FileFormat::Parquet,
            _ => FileFormat::Csv,
        }
    }
}

/// `[data.cleaning]`: the rules that send a row to quarantine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleaningConfig {
    /// Earliest accepted transaction date, `YYYY-MM-DD` (default `1970-01-01`).
    #[serde(default)]
    pub start: Option<String>,
    /// Largest accepted amount in major units, a decimal (default `1000000`).
    #[serde(default)]
    pub max_amount: Option<String>,
}

/// `[data.customers]`: the optional customer table. Only `path` and `id_column` are required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomersConfig {
    /// CSV or Parquet file.
    pub path: PathBuf,
    /// Header of the customer id column (default `customer_id`).
    #[serde(default = "default_customer_column")]
    pub id_column: String,
    /// Birth date column (dates, see `date_format`).
    #[serde(default)]
    pub birth_date_column: Option<String>,
    /// Age in whole years (used when there is no birth date column).
    #[serde(default)]
    pub age_column: Option<String>,
    /// Gender column (passed through, trimmed and lowercased).
    #[serde(default)]
    pub gender_column: Option<String>,
    /// Region column (passed through, trimmed and lowercased).
    #[serde(default)]
    pub region_column: Option<String>,
    /// Income band column (passed through, trimmed and lowercased).
    #[serde(default)]
    pub income_band_column: Option<String>,
    /// Signup date column.
    #[serde(default)]
    pub signup_date_column: Option<String>,
    /// Date format of the date columns (strftime, e.g. `%d/%m/%Y`); default ISO 8601.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Field delimiter of a CSV file (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

/// `[data.credit]`: the optional credit table; several rows per customer (accounts) are summed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditConfig {
    /// CSV or Parquet file.
    pub path: PathBuf,
    /// Header of the customer id column (default `customer_id`).
    #[serde(default = "default_customer_column")]
    pub id_column: String,
    /// Credit limit (decimal, major units; default column `limit`).
    #[serde(default = "default_limit_column")]
    pub limit_column: String,
    /// Balance owed (decimal, major units; default column `balance`).
    #[serde(default = "default_balance_column")]
    pub balance_column: String,
    /// Days past due, a whole number (default column `days_past_due`).
    #[serde(default = "default_dpd_column")]
    pub days_past_due_column: String,
    /// Default flag: `1/0`, `true/false`, `yes/no`, `y/n` (default column `default_flag`).
    #[serde(default = "default_default_column")]
    pub default_column: String,
    /// Field delimiter of a CSV file (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

/// `[features]`: the as-of date and the thresholds of derived features.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// The as-of date, `YYYY-MM-DD` (inclusive). `--as-of` overrides it; one of them is required.
    #[serde(default)]
    pub as_of: Option<String>,
    /// Lifecycle thresholds.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Lower edges of the age bands after the first (default `[25, 35, 45, 55, 65]`, giving
    /// `<25`, `25-34`, ..., `65+`). Strictly increasing.
    #[serde(default = "default_age_bands")]
    pub age_bands: Vec<u32>,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            as_of: None,
            lifecycle: Lifecycle::default(),
            age_bands: default_age_bands(),
        }
    }
}

/// Lifecycle stage thresholds, in days. Checked in this order: `new` if the first purchase is at
/// most `new_max_tenure_days` before as_of; else `active` if the last purchase is at most
/// `active_max_days` before as_of; else `at_risk` up to `at_risk_max_days`; else `churned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// Default 30.
    pub new_max_tenure_days: u32,
    /// Default 90.
    pub active_max_days: u32,
    /// Default 180.
    pub at_risk_max_days: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            new_max_tenure_days: 30,
            active_max_days: 90,
            at_risk_max_days: 180,
        }
    }
}

pub(crate) fn default_customer_column() -> String {
    "customer_id".into()
}
pub(crate) fn default_date_column() -> String {
    "date".into()
}
fn default_delimiter() -> char {
    ','
}
fn default_limit_column() -> String {
    "limit".into()
}
fn default_balance_column() -> String {
    "balance".into()
}
fn default_dpd_column() -> String {
    "days_past_due".into()
}
fn default_default_column() -> String {
    "default_flag".into()
}
fn default_age_bands() -> Vec<u32> {
    vec![25, 35, 45, 55, 65]
}

/// How to read one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// The file.
    pub path: PathBuf,
    /// CSV or Parquet.
    pub format: FileFormat,
    /// CSV delimiter.
    pub delimiter: u8,
    /// Whether a CSV file starts with a header row.
    pub has_header: bool,
    /// Column names of a CSV file without a header (required then).
    pub columns: Option<Vec<String>>,
    /// Longest physical CSV line accepted.
    pub max_line_bytes: u64,
    /// Read the result of this SQL view instead of the file (`sql` feature).
    pub sql: Option<super::sql::SqlView>,
}

impl SourceSpec {
    /// A headed file with `,` as delimiter, format by extension.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        SourceSpec {
            format: FileFormat::from_extension(&path),
            path,
            delimiter: b',',
            has_header: true,
            columns: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            sql: None,
        }
    }
}

/// The transactions table: the one required table.
#[derive(Debug, Clone)]
pub struct TransactionsSpec {
    /// Where.
    pub source: SourceSpec,
    /// Customer id column.
    pub customer: String,
    /// Date or timestamp column.
    pub date: String,
    /// Amount column.
    pub amount: String,
    /// Optional channel column.
    pub channel: Option<String>,
    /// Optional category column.
    pub category: Option<String>,
    /// How dates are written.
    pub date_parser: DateParser,
}

/// The optional customers table.
#[derive(Debug, Clone)]
pub struct CustomersSpec {
    /// Where.
    pub source: SourceSpec,
    /// The configured columns.
    pub columns: CustomersConfig,
    /// How dates are written.
    pub date_parser: DateParser,
}

/// The optional credit table.
#[derive(Debug, Clone)]
pub struct CreditSpec {
    /// Where.
    pub source: SourceSpec,
    /// The configured columns.
    pub columns: CreditConfig,
}

/// Everything one pipeline run needs, checked.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Transactions.
    pub transactions: TransactionsSpec,
    /// Customers, if any: transactions of customers not in it are quarantined.
    pub customers: Option<CustomersSpec>,
    /// Credit, if any.
    pub credit: Option<CreditSpec>,
    /// Decimal places of the currency's minor unit.
    pub amount_decimals: u8,
    /// The as-of day (inclusive).
    pub as_of: Day,
    /// The earliest accepted transaction day.
    pub start: Day,
    /// The largest accepted amount, in minor units.
    pub max_amount_minor: i64,
    /// Lifecycle thresholds.
    pub lifecycle: Lifecycle,
    /// Age band edges.
    pub age_bands: Vec<u32>,
}

/// Why a spec is not usable; the caller locates it (config field or flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// The config field or flag.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl PipelineSpec {
    /// A spec with the default cleaning rules and thresholds.
    pub fn new(transactions: TransactionsSpec, as_of: Day) -> Self {
        PipelineSpec {
            transactions,
            customers: None,
            credit: None,
            amount_decimals: 2,
            as_of,
            start: Day::from_days(0),
            max_amount_minor: 1_000_000 * 100,
            lifecycle: Lifecycle::default(),
            age_bands: default_age_bands(),
        }
    }

    /// Applies `[data.cleaning]` and `[features]` (after `amount_decimals` is set).
    pub fn apply(
        &mut self,
        cleaning: &CleaningConfig,
        features: &FeaturesConfig,
    ) -> Result<(), SpecError> {
        if let Some(start) = &cleaning.start {
            self.start = parse_iso_day(start).ok_or_else(|| SpecError {
                field: "data.cleaning.start",
                problem: "expected a date YYYY-MM-DD".into(),
            })?;
        }
        let max = cleaning.max_amount.as_deref().unwrap_or("1000000");
        self.max_amount_minor = super::parse_minor_units(max, self.amount_decimals)
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| SpecError {
                field: "data.cleaning.max_amount",
                problem: "expected a non-negative decimal number of major units".into(),
            })?;
        self.lifecycle = features.lifecycle;
        let l = self.lifecycle;
        if l.active_max_days > l.at_risk_max_days {
            return Err(SpecError {
                field: "features.lifecycle",
                problem: "active_max_days must not exceed at_risk_max_days".into(),
            });
        }
        if features.age_bands.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SpecError {
                field: "features.age_bands",
                problem: "edges must increase strictly".into(),
            });
        }
        self.age_bands.clone_from(&features.age_bands);
        self.check_dates()
    }

    /// Checks that `start <= as_of` and that the span fits the 16-bit day offsets the
    /// aggregation stores (179 years).
    pub fn check_dates(&self) -> Result<(), SpecError> {
        let span = i64::from(self.as_of.days()) - i64::from(self.start.days());
        if span < 0 {
            return Err(SpecError {
                field: "as_of",
                problem: "as_of is before the cleaning start date".into(),
            });
        }
        if span > i64::from(u16::MAX) {
            return Err(SpecError {
                field: "data.cleaning.start",
                problem: "start must be at most 65535 days (179 years) before as_of".into(),
            });
        }
        Ok(())
    }
}
