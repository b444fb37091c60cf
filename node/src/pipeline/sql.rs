//! SQL views (optional `sql` cargo feature): a data holder whose files do not have the logical
//! tables' shape maps them with a query instead of column settings. The files are registered
//! under names of the operator's choosing and the query's result is read like a file with the
//! configured column names. DataFusion runs the query; it is a heavy engine, so it is only in
//! builds that ask for it (`cargo build --features fedprof-node/sql`).
//!
//! The query runs on a thread of its own with its own single-threaded async runtime, so it can be
//! called from anywhere (a tokio task, a blocking task, a plain thread). The result is collected
//! in memory before the scan, which suits per-node transaction volumes of a few GB at most.

use std::path::PathBuf;

use super::error::PipelineError;

/// A query over named files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlView {
    /// `(name, file)`: CSV (with a header row) or Parquet by extension.
    pub tables: Vec<(String, PathBuf)>,
    /// The query; its result columns are the ones the configuration names.
    pub query: String,
    /// Where the query was configured (for messages), e.g. `data.sql.transactions`.
    pub field: String,
}

#[cfg(feature = "sql")]
pub(crate) use engine::run;

#[cfg(not(feature = "sql"))]
/// Without the `sql` feature: an error that says how to get it.
pub(crate) fn run(
    view: &SqlView,
) -> Result<(arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>), PipelineError> {
    Err(PipelineError::Columns {
        path: PathBuf::from(&view.field),
        problem: "this build has no SQL support; rebuild with `--features fedprof-node/sql` \
                  or map the columns with the [data] settings"
            .into(),
    })
}

/// The path shown in messages about a view.
pub(crate) fn display_path(view: &SqlView) -> PathBuf {
    PathBuf::from(format!("[{}]", view.field))
}

#[cfg(feature = "sql")]
fn check_tables(view: &SqlView) -> Result<(), PipelineError> {
    for (name, file) in &view.tables {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PipelineError::Columns {
                path: display_path(view),
                problem: format!("table name {name:?}: use letters, digits and '_'"),
            });
        }
        std::fs::metadata(file).map_err(|e| PipelineError::io(file, e))?;
    }
    Ok(())
}

#[cfg(feature = "sql")]
mod engine {
    use super::*;
    use arrow_array::RecordBatch;
    use arrow_schema::SchemaRef;
    use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

    use crate::pipeline::spec::FileFormat;

    /// Runs the view's query; returns its schema and batches.
    pub(crate) fn run(view: &SqlView) -> Result<(SchemaRef, Vec<RecordBatch>), PipelineError> {
        check_tables(view)?;
        let fail = |problem: String| PipelineError::Columns {
            path: display_path(view),
            problem,
        };
        let owned = view.clone();
        let handle = std::thread::spawn(move || -> Result<_, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(query(&owned)).map_err(|e| e.to_string())
        });
        let (schema, batches) = handle
            .join()
            .map_err(|_| fail("the SQL engine stopped unexpectedly".into()))?
            .map_err(fail)?;
        Ok((schema, batches))
    }

    async fn query(view: &SqlView) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
        let ctx = SessionContext::new();
        for (name, file) in &view.tables {
            let path = file.to_string_lossy();
            match FileFormat::from_extension(file) {
                FileFormat::Parquet => {
                    ctx.register_parquet(name, path.as_ref(), ParquetReadOptions::default())
                        .await?
                }
                FileFormat::Csv => {
                    let ext = file
                        .extension()
                        .map(|e| format!(".{}", e.to_string_lossy()))
                        .unwrap_or_default();
                    let options = CsvReadOptions::new().file_extension(&ext);
                    ctx.register_csv(name, path.as_ref(), options).await?
                }
            }
        }
        let df = ctx.sql(&view.query).await?;
        let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok((schema, batches))
    }
}
