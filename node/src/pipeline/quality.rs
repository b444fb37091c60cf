//! Quarantine and the data-quality report.
//!
//! Every row a table yields ends in exactly one of two places: used, or quarantined with one
//! reason (the first rule it breaks, in the order of [`Reason`]). The quarantine file names the
//! table, the file, the row and the column, never the value: the operator looks the row up in
//! their own file, and no raw customer id is copied anywhere.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::PipelineError;

/// Why a row was quarantined, in the order the rules are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A required field (customer id, date, amount; any configured credit field) is null, empty
    /// or only whitespace.
    MissingField,
    /// A date does not parse in the configured format, or names no calendar day.
    UnparsableDate,
    /// An amount is not an exact decimal with at most `amount_decimals` places.
    UnparsableAmount,
    /// Another value (age, days past due, default flag) does not parse.
    UnparsableValue,
    /// An amount below zero.
    NegativeAmount,
    /// An amount above `max_amount`, or another value out of its range (age over 150, negative
    /// limit or days past due).
    OutOfRange,
    /// A date after as_of (transactions, birth and signup dates).
    AfterAsOf,
    /// A transaction date before the configured start.
    BeforeStart,
    /// A customer id not in the customers table (only when one is configured).
    UnknownCustomer,
    /// The same customer id a second time in the customers table, with different values.
    DuplicateCustomer,
    /// A row identical in every column to an earlier row of the same file; the first is kept.
    Duplicate,
    /// PostgreSQL push-down: the database grouped ids apart that normalize alike (they differ
    /// only in non-ASCII case or whitespace); every row of that customer is left out, since
    /// the groups cannot be merged exactly.
    AmbiguousId,
}

impl Reason {
    /// The snake_case name used in the quarantine file and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingField => "missing_field",
            Reason::UnparsableDate => "unparsable_date",
            Reason::UnparsableAmount => "unparsable_amount",
            Reason::UnparsableValue => "unparsable_value",
            Reason::NegativeAmount => "negative_amount",
            Reason::OutOfRange => "out_of_range",
            Reason::AfterAsOf => "after_as_of",
            Reason::BeforeStart => "before_start",
            Reason::UnknownCustomer => "unknown_customer",
            Reason::DuplicateCustomer => "duplicate_customer",
            Reason::Duplicate => "duplicate",
            Reason::AmbiguousId => "ambiguous_id",
        }
    }
}

/// One table's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableQuality {
    /// `transactions`, `customers` or `credit`.
    pub table: &'static str,
    /// The file (or the database table for the PostgreSQL source).
    pub file: String,
    /// Data rows read.
    pub rows_in: u64,
    /// Rows that went into features.
    pub rows_used: u64,
    /// Rows quarantined; `rows_in == rows_used + rows_quarantined`.
    pub rows_quarantined: u64,
    /// Quarantined rows by reason.
    pub by_reason: BTreeMap<&'static str, u64>,
}

/// The data-quality report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// The as-of date.
    pub as_of: String,
    /// Customers with at least one used transaction (rows of the feature export).
    pub customers: u64,
    /// Per table, in the order read.
    pub tables: Vec<TableQuality>,
    /// Where the quarantined rows are listed.
    pub quarantine_file: Option<String>,
}

impl QualityReport {
    /// Whether `rows_in == rows_used + rows_quarantined` holds for every table.
    pub fn balanced(&self) -> bool {
        self.tables.iter().all(|t| {
            t.rows_in == t.rows_used + t.rows_quarantined
                && t.by_reason.values().sum::<u64>() == t.rows_quarantined
        })
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "data quality as of {}: {} customers with features\n",
            self.as_of, self.customers
        );
        for t in &self.tables {
            s.push_str(&format!(
                "  {}: {} rows in, {} used, {} quarantined",
                t.table, t.rows_in, t.rows_used, t.rows_quarantined
            ));
            if !t.by_reason.is_empty() {
                let parts: Vec<String> = t
                    .by_reason
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                s.push_str(&format!(" ({})", parts.join(", ")));
            }
            s.push('\n');
        }
        if let Some(q) = &self.quarantine_file {
            s.push_str(&format!("  quarantined rows are listed in {q}\n"));
        }
        s
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), PipelineError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| PipelineError::io(path, std::io::Error::other(e)))?;
        std::fs::write(path, text + "\n").map_err(|e| PipelineError::io(path, e))
    }
}

/// The quarantine file writer and the per-table counters.
#[derive(Debug)]
pub struct Quarantine {
    out: Option<(PathBuf, BufWriter<File>)>,
    tables: Vec<TableQuality>,
}

impl Quarantine {
    /// Writes to `path` (CSV: `table,file,source_row,reason,column`), or only counts when `None`.
    pub fn new(path: Option<&Path>) -> Result<Self, PipelineError> {
        let out = match path {
            None => None,
            Some(p) => {
                let mut w = BufWriter::new(File::create(p).map_err(|e| PipelineError::io(p, e))?);
                w.write_all(b"table,file,source_row,reason,column\n")
                    .map_err(|e| PipelineError::io(p, e))?;
                Some((p.to_owned(), w))
            }
        };
        Ok(Quarantine {
            out,
            tables: Vec::new(),
        })
    }

    /// Starts counting a table; returns its slot.
    pub(crate) fn table(&mut self, table: &'static str, file: &Path) -> usize {
        self.tables.push(TableQuality {
            table,
            file: file.display().to_string(),
            rows_in: 0,
            rows_used: 0,
            rows_quarantined: 0,
            by_reason: BTreeMap::new(),
        });
        self.tables.len() - 1
    }

    pub(crate) fn counts(&mut self, slot: usize) -> Option<&mut TableQuality> {
        self.tables.get_mut(slot)
    }

    /// Quarantines `row` (1-based data row) of table `slot`.
    pub(crate) fn reject(
        &mut self,
        slot: usize,
        row: u64,
        reason: Reason,
        column: &str,
    ) -> Result<(), PipelineError> {
        let Some(t) = self.tables.get_mut(slot) else {
            return Ok(());
        };
        t.rows_quarantined += 1;
        *t.by_reason.entry(reason.as_str()).or_insert(0) += 1;
        if let Some((path, w)) = &mut self.out {
            let file = csv_field(&t.file);
            writeln!(
                w,
                "{},{},{},{},{}",
                t.table,
                file,
                row,
                reason.as_str(),
                csv_field(column)
            )
            .map_err(|e| PipelineError::io(path, e))?;
        }
        Ok(())
    }

    /// Flushes the file and returns the counts.
    pub(crate) fn finish(mut self) -> Result<(Vec<TableQuality>, Option<PathBuf>), PipelineError> {
        let path = match &mut self.out {
            Some((path, w)) => {
                w.flush().map_err(|e| PipelineError::io(path, e))?;
                Some(path.clone())
            }
            None => None,
        };
        Ok((self.tables, path))
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
