//! Opening a table as a stream of Arrow record batches: CSV through arrow-csv (every column as
//! text, so that each bad value can be quarantined with its row instead of failing the batch) and
//! Parquet through the parquet crate's Arrow reader (columns keep their types).
//!
//! CSV lines are bounded: [`LineLimit`] sits under the CSV reader and fails as soon as one
//! physical line passes `max_line_bytes`, so a 2 GB line costs at most that many bytes of
//! memory and reading, never the whole line.
//!
//! Decoding runs on a thread of its own and the per-batch work that needs no state shared with
//! the scan (fingerprints, row checks, id hashes) on another, each one batch ahead of the next
//! stage (bounded channels of two), so that decoding, checking and the scan overlap.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use super::error::PipelineError;
use super::spec::{FileFormat, SourceSpec};

/// Rows per batch: large enough to amortize per-batch work, small enough to stay in cache-ish
/// memory (a few MB per batch).
pub(crate) const BATCH_ROWS: usize = 65_536;

/// An open table.
pub(crate) struct Table {
    /// The file.
    pub(crate) path: PathBuf,
    /// Column names and types.
    pub(crate) schema: SchemaRef,
    /// Rows in the file when known up front (Parquet), for progress.
    pub(crate) rows_hint: Option<u64>,
    batches: Option<Batches>,
    mapper: Mapper,
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Turns reader errors into located errors.
#[derive(Debug, Clone)]
struct Mapper {
    path: PathBuf,
    line_state: Option<Arc<LineState>>,
    format: FileFormat,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("format", &self.mapper.format)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Index of column `name`, or an error listing the columns there are.
    pub(crate) fn column(&self, name: &str) -> Result<usize, PipelineError> {
        self.schema
            .index_of(name)
            .map_err(|_| PipelineError::MissingColumn {
                path: self.path.clone(),
                column: name.to_owned(),
                found: self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Starts reading on two threads of their own: one decodes batches, the other runs `prep`
    /// on each (row checks, hashes), each one batch ahead of the next stage (bounded channels
    /// of two), so that decoding, checking and the caller's scan overlap. The receiver yields
    /// batches in order and ends after the last one or after the first error. Call once.
    ///
    /// A panic in either stage (a reader's bug on a malformed file, or ours) becomes the
    /// stream's last item, an error naming the file and the rows read before it: the scan stops
    /// on it rather than taking the closed channel for the end of the file and silently using
    /// the rows read so far.
    pub(crate) fn start<P: Send + 'static>(
        &mut self,
        mut prep: impl FnMut(&RecordBatch) -> Result<P, PipelineError> + Send + 'static,
    ) -> Reading<P> {
        let (tx, rx) = sync_channel(2);
        let Some(batches) = self.batches.take() else {
            return Reading {
                rx: Some(rx),
                threads: Vec::new(),
            };
        };
        let (decoded_tx, decoded) = sync_channel(2);
        let mapper = self.mapper.clone();
        let decoding = stage(self.mapper.clone(), decoded_tx, move |send| {
            for item in batches {
                if !send(item.map_err(|e| mapper.error(e))) {
                    break;
                }
            }
        });
        let checking = stage(self.mapper.clone(), tx, move |send| {
            for item in decoded {
                let item = item.and_then(|b: RecordBatch| prep(&b).map(|p| (b, p)));
                if !send(item) {
                    break;
                }
            }
        });
        Reading {
            rx: Some(rx),
            threads: vec![checking, decoding],
        }
    }
}

/// A table being read ([`Table::start`]): its batches in order, each with what `prep` made of
/// it. Dropping it stops the reading threads and waits for them, so that no thread outlives the
/// read and whatever the checking stage owned (its levels) is released by the time the caller
/// goes on.
pub(crate) struct Reading<P> {
    rx: Option<Receiver<Result<(RecordBatch, P), PipelineError>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<P> Reading<P> {
    /// The next batch; `None` after the last one (an error is the last item when there is one).
    pub(crate) fn recv(&self) -> Option<Result<(RecordBatch, P), PipelineError>> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl<P> Drop for Reading<P> {
    fn drop(&mut self) {
        // Closing the channel makes a stage blocked on sending stop at once; one busy decoding
        // a batch stops after it.
        drop(self.rx.take());
        for thread in self.threads.drain(..) {
            // A stage's panic was caught and sent as an error item; there is nothing to join.
            let _ = thread.join();
        }
    }
}

thread_local! {
    /// Set while this thread runs code whose panics the pipeline catches on purpose.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside code whose panics the pipeline catches and turns into
/// an error or a fallback (a reader's bug on a damaged file). A program's panic hook can stay
/// quiet then: the error or the log says what happened, and a panic message before a
/// successful run would only alarm.
pub fn catching_panics() -> bool {
    CATCHING.with(std::cell::Cell::get)
}

/// Runs `f`, catching a panic in it (see [`catching_panics`]).
fn catching<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let before = CATCHING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(before));
    result
}

/// Runs one stage of reading on a thread of its own. `work` hands each item to `send`, which
/// says whether to go on (not after an error, nor once the receiver is gone). A panic in `work`
/// is sent as a last error item.
fn stage<T: Send + 'static>(
    mapper: Mapper,
    out: SyncSender<Result<T, PipelineError>>,
    work: impl FnOnce(&mut dyn FnMut(Result<T, PipelineError>) -> bool) + Send + 'static,
) -> std::thread::JoinHandle<()>
where
    Result<T, PipelineError>: Rows,
{
    std::thread::spawn(move || {
        let mut rows = 0u64;
        let run = || {
            work(&mut |item: Result<T, PipelineError>| {
                let failed = item.is_err();
                rows += item.rows();
                out.send(item).is_ok() && !failed
            });
        };
        if let Err(panic) = catching(run) {
            let _ = out.send(Err(mapper.stopped(rows, &*panic)));
        }
    })
}

/// Rows in a stage's item, for the message when a later batch fails.
trait Rows {
    fn rows(&self) -> u64;
}

impl Rows for Result<RecordBatch, PipelineError> {
    fn rows(&self) -> u64 {
        self.as_ref().map_or(0, |b| b.num_rows() as u64)
    }
}

impl<P> Rows for Result<(RecordBatch, P), PipelineError> {
    fn rows(&self) -> u64 {
        self.as_ref().map_or(0, |(b, _)| b.num_rows() as u64)
    }
}

impl Mapper {
    /// The error for a reader that panicked after `rows` rows.
    fn stopped(&self, rows: u64, panic: &(dyn std::any::Any + Send)) -> PipelineError {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        let message = format!(
            "the reader failed after {rows} rows, so the file is probably malformed ({why}); \
             no row of it was used"
        );
        match self.format {
            FileFormat::Csv => PipelineError::Csv {
                path: self.path.clone(),
                message,
            },
            FileFormat::Parquet => PipelineError::Parquet {
                path: self.path.clone(),
                message,
            },
        }
    }

    fn error(&self, e: ArrowError) -> PipelineError {
        if let Some(state) = &self.line_state
            && state.too_long.load(Relaxed)
        {
            return PipelineError::LineTooLong {
                path: self.path.clone(),
                line: state.line.load(Relaxed),
                limit: state.limit,
            };
        }
        match (self.format, e) {
            (_, ArrowError::IoError(_, source)) => PipelineError::io(&self.path, source),
            (FileFormat::Csv, e) => PipelineError::Csv {
                path: self.path.clone(),
                message: strip_prefix(e),
            },
            (FileFormat::Parquet, e) => PipelineError::Parquet {
                path: self.path.clone(),
                message: codec_hint(strip_prefix(e)),
            },
        }
    }
}

fn strip_prefix(e: ArrowError) -> String {
    match e {
        ArrowError::CsvError(m) | ArrowError::ParseError(m) | ArrowError::ParquetError(m) => m,
        ArrowError::ExternalError(e) => e.to_string(),
        e => e.to_string(),
    }
}

/// Drops the parquet crate's own error prefixes (the message already says "cannot read
/// Parquet") and adds what to do when a file uses a codec this build leaves out.
fn codec_hint(message: String) -> String {
    let mut rest = message.as_str();
    while let Some(r) = ["Parquet error: ", "External: "]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
    {
        rest = r;
    }
    let message = rest.to_owned();
    if message.contains("Disabled feature at compile time") {
        format!(
            "{message} (this build reads snappy, lz4, gzip and uncompressed Parquet: \
             rewrite the file with one of those)"
        )
    } else {
        message
    }
}

/// Opens `spec`'s file. `categorical` names columns with few distinct values (channel,
/// category): a Parquet file's string columns among them are read as dictionaries, so that
/// per-value work (normalizing, levels, fingerprints) is done once per distinct value instead
/// of once per row, and no string is copied per row. Other formats ignore it.
pub(crate) fn open(spec: &SourceSpec, categorical: &[&str]) -> Result<Table, PipelineError> {
    if let Some(view) = &spec.sql {
        return open_view(view);
    }
    let path = &spec.path;
    let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| PipelineError::io(path, e))?
        .len();
    if len == 0 {
        return Err(PipelineError::Empty { path: path.clone() });
    }
    match spec.format {
        FileFormat::Csv => open_csv(spec, file),
        FileFormat::Parquet => open_parquet(path, file, categorical),
    }
}

/// The result of a SQL view, as a table (typed columns, like Parquet).
fn open_view(view: &super::sql::SqlView) -> Result<Table, PipelineError> {
    let (schema, batches) = super::sql::run(view)?;
    let path = super::sql::display_path(view);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    Ok(Table {
        path: path.clone(),
        schema,
        rows_hint: Some(rows as u64),
        batches: Some(Box::new(batches.into_iter().map(Ok))),
        mapper: Mapper {
            path,
            line_state: None,
            format: FileFormat::Parquet,
        },
    })
}

fn open_parquet(path: &Path, file: File, categorical: &[&str]) -> Result<Table, PipelineError> {
    let perr = |e: parquet::errors::ParquetError| PipelineError::Parquet {
        path: path.to_owned(),
        message: codec_hint(e.to_string()),
    };
    // The footer is decoded under catch_unwind: a reader's bug on a damaged file must be an
    // error naming the file, not a crash. The Arrow schema a writer may embed there is only a
    // type hint (it restores e.g. second-resolution timestamps, which Parquet has no type for),
    // and its flatbuffer decoder panics on some malformed bytes (found by fuzz/ingest_file:
    // "Date type with unit of <UNKNOWN 4>"): then the file is read by its Parquet schema
    // alone, and a column that loses its type there is refused by name like any other.
    let load = |skip_arrow_schema: bool| {
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(skip_arrow_schema);
        catching(|| ArrowReaderMetadata::load(&file, options))
    };
    let meta = match load(false) {
        Ok(meta) => meta,
        Err(_) => {
            tracing::warn!(
                file = %path.display(),
                "the Parquet footer's embedded Arrow schema is malformed; reading by the Parquet schema"
            );
            load(true)
        }
        .map_err(|_| PipelineError::Parquet {
            path: path.to_owned(),
            message: "the footer is malformed (the reader failed on it)".into(),
        })?,
    }
    .map_err(perr)?;
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut changed = false;
    let fields: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if categorical.contains(&f.name().as_str()) && *f.data_type() == DataType::Utf8 {
                changed = true;
                f.as_ref().clone().with_data_type(dictionary.clone())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let meta = if changed {
        let hint = Arc::new(Schema::new_with_metadata(
            fields,
            meta.schema().metadata().clone(),
        ));
        let options = ArrowReaderOptions::new().with_schema(hint);
        ArrowReaderMetadata::try_new(Arc::clone(meta.metadata()), options).map_err(perr)?
    } else {
        meta
    };
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(perr)?;
    let schema = reader.schema();
    Ok(Table {
        path: path.to_owned(),
        schema,
        rows_hint: Some(rows),
        batches: Some(Box::new(reader)),
        mapper: Mapper {
            path: path.to_owned(),
            line_state: None,
            format: FileFormat::Parquet,
        },
    })
}

fn open_csv(spec: &SourceSpec, file: File) -> Result<Table, PipelineError> {
    let path = &spec.path;
    let state = Arc::new(LineState::new(spec.max_line_bytes));
    let mut reader = BufReader::with_capacity(
        1 << 20,
        LineLimit {
            inner: file,
            state: Arc::clone(&state),
        },
    );
    let too_long = |e: std::io::Error| {
        if state.too_long.load(Relaxed) {
            PipelineError::LineTooLong {
                path: path.clone(),
                line: state.line.load(Relaxed),
                limit: state.limit,
            }
        } else {
            PipelineError::io(path, e)
        }
    };
    let names = if spec.has_header {
        let mut header = Vec::new();
        reader.read_until(b'\n', &mut header).map_err(too_long)?;
        if header.starts_with(b"\xef\xbb\xbf") {
            header.drain(..3);
        }
        let mut fields = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(spec.delimiter)
            .from_reader(header.as_slice());
        let mut record = csv::StringRecord::new();
        let ok = fields
            .read_record(&mut record)
            .map_err(|e| PipelineError::Csv {
                path: path.clone(),
                message: format!("header: {e}"),
            })?;
        if !ok {
            return Err(PipelineError::Empty { path: path.clone() });
        }
        let names: Vec<String> = record.iter().map(|s| s.trim().to_owned()).collect();
        if let Some(cols) = &spec.columns {
            if cols.len() != names.len() {
                return Err(PipelineError::Columns {
                    path: path.clone(),
                    problem: format!(
                        "{} column names given but the header has {}",
                        cols.len(),
                        names.len()
                    ),
                });
            }
            cols.clone()
        } else {
            names
        }
    } else {
        spec.columns.clone().ok_or_else(|| PipelineError::Columns {
            path: path.clone(),
            problem: "a file without a header needs its column names (--columns or `columns`)"
                .into(),
        })?
    };
    let schema: SchemaRef = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let reader = arrow_csv::ReaderBuilder::new(Arc::clone(&schema))
        .with_header(false)
        .with_delimiter(spec.delimiter)
        .with_batch_size(BATCH_ROWS)
        .with_truncated_rows(true)
        .build_buffered(reader)
        .map_err(|e| PipelineError::Csv {
            path: path.clone(),
            message: strip_prefix(e),
        })?;
    Ok(Table {
        path: path.clone(),
        schema,
        rows_hint: None,
        batches: Some(Box::new(reader)),
        mapper: Mapper {
            path: path.clone(),
            line_state: Some(state),
            format: FileFormat::Csv,
        },
    })
}

/// Written only by the decoding stage's reader; read after it reports an error.
#[derive(Debug)]
struct LineState {
    /// 1-based physical line being read.
    line: AtomicU64,
    /// Bytes of that line read so far.
    run: AtomicU64,
    too_long: AtomicBool,
    limit: u64,
}

impl LineState {
    fn new(limit: u64) -> Self {
        LineState {
            line: AtomicU64::new(1),
            run: AtomicU64::new(0),
            too_long: AtomicBool::new(false),
            limit,
        }
    }
}

/// A reader that fails once a physical line exceeds the limit, and counts lines.
struct LineLimit<R> {
    inner: R,
    state: Arc<LineState>,
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let s = &self.state;
        let (mut run, mut line) = (s.run.load(Relaxed), s.line.load(Relaxed));
        let data = buf.get(..n).unwrap_or_default();
        // `start`: where the current line began in `data` (its first `run` bytes came before).
        let mut start = 0usize;
        let mut too_long = false;
        for pos in memchr::memchr_iter(b'\n', data) {
            if run + (pos - start) as u64 > s.limit {
                too_long = true;
                break;
            }
            line += 1;
            run = 0;
            start = pos + 1;
        }
        if !too_long {
            run += (data.len() - start) as u64;
            too_long = run > s.limit;
        }
        s.line.store(line, Relaxed);
        s.run.store(run, Relaxed);
        if too_long {
            s.too_long.store(true, Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {line} is longer than {} bytes", s.limit),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that panics part-way (here the per-batch work, on the second batch) ends the
    /// stream with an error naming the file and the rows read, not with a quiet end of file.
    #[test]
    fn a_panicking_reader_is_an_error_not_the_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut body = String::from("id,amount\n");
        for i in 0..BATCH_ROWS + 10 {
            body.push_str(&format!("c{i},1.00\n"));
        }
        std::fs::write(&path, body).unwrap();
        let mut table = open(&SourceSpec::new(&path), &[]).unwrap();
        let mut calls = 0;
        let rx = table.start(move |b| {
            calls += 1;
            assert!(calls < 2, "a reader bug");
            Ok(b.num_rows())
        });
        let items: Vec<_> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().map(|(_, n)| *n).ok(), Some(BATCH_ROWS));
        let e = items[1].as_ref().err().unwrap().to_string();
        assert!(e.contains("t.csv"), "{e}");
        assert!(
            e.contains(&format!("failed after {BATCH_ROWS} rows")),
            "{e}"
        );
        assert!(e.contains("a reader bug"), "{e}");
    }

    #[test]
    fn line_limit_counts_lines_and_stops_long_ones() {
        let state = Arc::new(LineState::new(5));
        let mut r = LineLimit {
            inner: &b"ab\ncdefg\nxy"[..],
            state: Arc::clone(&state),
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(state.line.load(Relaxed), 3);
        let state = Arc::new(LineState::new(5));
        let mut r = LineLimit {
            inner: &b"ab\ncdefgh\nxy"[..],
            state: Arc::clone(&state),
        };
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert!(state.too_long.load(Relaxed));
        assert_eq!(state.line.load(Relaxed), 2);
    }
}
