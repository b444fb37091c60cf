//! Errors that stop a pipeline run. A bad *row* is never one of these: it goes to quarantine.
//! These name the file and, where there is one, the row or line and the column; never a value.

use std::path::PathBuf;

/// Why the pipeline could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file has no bytes at all (not even a header).
    #[error("{}: the file is empty (expected a header row or data)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A physical line is longer than the limit; found after reading at most `limit` bytes of it.
    #[error("{}:{line}: line is longer than {limit} bytes (raise max_line_bytes if this is intended)", path.display())]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// 1-based physical line.
        line: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The CSV reader refused the file's structure (for example a row with more fields than the
    /// header). The message carries arrow-csv's line number, counted after the header.
    #[error("{}: malformed CSV: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// arrow-csv's description.
        message: String,
    },
    /// The Parquet reader failed (corrupt file, unsupported codec such as zstd, ...).
    #[error("{}: cannot read Parquet: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The reader's description.
        message: String,
    },
    /// A configured column is not in the file.
    #[error("{}: no column named {column:?} (found: {found})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The configured name.
        column: String,
        /// The file's columns.
        found: String,
    },
    /// A configured column has a type that cannot hold what it should (a Parquet boolean amount).
    #[error("{}: column {column:?} has type {found}, which cannot hold {expected}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its type in the file.
        found: String,
        /// What the column should hold.
        expected: &'static str,
    },
    /// A headerless CSV was given without column names, or with a different number of names.
    #[error("{}: {problem}", path.display())]
    Columns {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// More rows than a table can index (2^32 - 1).
    #[error("{}: more than {} rows; split the file or use the PostgreSQL source", path.display(), u32::MAX)]
    TooManyRows {
        /// The file.
        path: PathBuf,
    },
    /// The pseudonym key file is missing, readable by others, or not a key.
    #[error("pseudonym key {}: {problem}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never key material).
        problem: String,
    },
    /// The PostgreSQL push-down failed.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

impl PipelineError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        PipelineError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
