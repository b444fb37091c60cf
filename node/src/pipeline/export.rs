//! Writing a [`FeatureTable`]: CSV or Parquet, chosen by the output's extension. Monetary totals
//! are exact (a decimal string in CSV, `Decimal128(38, amount_decimals)` in Parquet); means and
//! shares are `f64`, written in their shortest round-trip form.
//!
//! Shares: one column per level the node saw (every distinct normalized channel and category
//! value, sorted by name), dense. The export is local output only (a query never reads it), so
//! a wide file is the data holder's choice; queries read the sparse counts directly.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::types::{Decimal128Type, validate_decimal_precision_and_scale};
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use arrow_schema::DataType;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use super::error::PipelineError;
use super::features::{FeatureTable, MixColumn};
use super::spec::FileFormat;

/// `name` made safe as part of a column name: ASCII letters and digits kept (lowercased), the
/// rest `_`.
fn column_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Column names of `t`, in order.
pub fn header(t: &FeatureTable) -> Vec<String> {
    let mut h: Vec<String> = [
        "customer",
        "txn_count",
        "purchase_days",
        "frequency",
        "recency_days",
        "tenure_days",
        "days_since_last",
        "monetary_total",
        "monetary_mean_repeat",
        "avg_ticket",
        "lifecycle_stage",
    ]
    .map(String::from)
    .to_vec();
    h.extend(
        t.channel_mix
            .names()
            .iter()
            .map(|n| format!("channel_share_{}", column_part(n))),
    );
    h.extend(
        t.category_mix
            .names()
            .iter()
            .map(|n| format!("category_share_{}", column_part(n))),
    );
    if t.demographics.is_some() {
        h.extend(
            [
                "age_band",
                "gender",
                "region",
                "income_band",
                "customer_since_days",
            ]
            .map(String::from),
        );
    }
    if t.credit.is_some() {
        h.extend(["credit_utilization", "delinquency_bucket", "default_flag"].map(String::from));
    }
    h
}

/// Row `r`'s share of every level of `mix`, in level order, into `out` (cleared first): count
/// over the row's transactions.
fn shares_of(mix: &MixColumn, txn_count: u64, r: usize, out: &mut Vec<f64>) {
    out.clear();
    out.resize(mix.names().len(), 0.0);
    for &(l, n) in mix.row(r) {
        if let Some(x) = out.get_mut(l as usize) {
            *x = f64::from(n) / txn_count.max(1) as f64;
        }
    }
}

/// One dense share column of `mix` at `level`, for every row.
fn share_column(mix: &MixColumn, txn_count: &[u64], level: u32) -> Vec<f64> {
    (0..txn_count.len())
        .into_par_iter()
        .map(|r| f64::from(mix.count(r, level)) / txn_count[r].max(1) as f64)
        .collect()
}

/// `minor` as a decimal with `decimals` places.
pub fn format_minor(minor: i128, decimals: u8) -> String {
    if decimals == 0 {
        return minor.to_string();
    }
    let scale = 10i128.pow(u32::from(decimals));
    let sign = if minor < 0 { "-" } else { "" };
    let (int, frac) = (
        minor.unsigned_abs() / scale.unsigned_abs(),
        minor.unsigned_abs() % scale.unsigned_abs(),
    );
    format!("{sign}{int}.{frac:0width$}", width = usize::from(decimals))
}

/// Writes `t` to `path`: Parquet for `.parquet`/`.parq`/`.pq`, CSV otherwise.
pub fn write_features(t: &FeatureTable, path: &Path) -> Result<(), PipelineError> {
    match FileFormat::from_extension(path) {
        FileFormat::Csv => write_csv(t, path),
        FileFormat::Parquet => write_parquet(t, path),
    }
}

fn write_csv(t: &FeatureTable, path: &Path) -> Result<(), PipelineError> {
    let io = |e| PipelineError::io(path, e);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
    writeln!(w, "{}", header(t).join(",")).map_err(io)?;
    let opt = |v: &Option<String>| v.as_deref().map(csv_text).unwrap_or_default();
    let mut line = String::with_capacity(512);
    let mut shares = Vec::new();
    for r in 0..t.len() {
        use std::fmt::Write as _;
        line.clear();
        let _ = write!(
            line,
            "{},{},{},{},{},{},{},{},{},{},{}",
            t.customer[r],
            t.txn_count[r],
            t.purchase_days[r],
            t.frequency[r],
            t.recency_days[r],
            t.tenure_days[r],
            t.days_since_last[r],
            format_minor(t.monetary_total[r], t.decimals),
            t.monetary_mean_repeat[r],
            t.avg_ticket[r],
            t.lifecycle_stage[r].as_str()
        );
        for mix in [&t.channel_mix, &t.category_mix] {
            shares_of(mix, t.txn_count[r], r, &mut shares);
            for x in &shares {
                let _ = write!(line, ",{x}");
            }
        }
        if let Some(d) = &t.demographics {
            let since = d.customer_since_days[r]
                .map(|v| v.to_string())
                .unwrap_or_default();
            let _ = write!(
                line,
                ",{},{},{},{},{since}",
                opt(&d.age_band[r]),
                opt(&d.gender[r]),
                opt(&d.region[r]),
                opt(&d.income_band[r])
            );
        }
        if let Some(c) = &t.credit {
            let u = c.utilization[r].map(|v| v.to_string()).unwrap_or_default();
            let f = c.default_flag[r]
                .map(|v| u8::from(v).to_string())
                .unwrap_or_default();
            let _ = write!(
                line,
                ",{u},{},{f}",
                c.delinquency_bucket[r].unwrap_or_default()
            );
        }
        line.push('\n');
        w.write_all(line.as_bytes()).map_err(io)?;
    }
    w.flush().map_err(io)
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The table as one Arrow batch, columns named by [`header`]. Each column is copied into its
/// Arrow array on the rayon pool (a million rows make this a memory-bound copy per column).
pub fn to_record_batch(t: &FeatureTable) -> Result<RecordBatch, PipelineError> {
    type Build<'a> = Box<dyn Fn() -> ArrayRef + Send + Sync + 'a>;
    let strs = |v: &'_ [String]| -> ArrayRef { Arc::new(StringArray::from_iter_values(v)) };
    let opt_strs = |v: &'_ [Option<String>]| -> ArrayRef {
        Arc::new(v.iter().map(Option::as_deref).collect::<StringArray>())
    };
    let u32s = |v: &'_ [u32]| -> ArrayRef { Arc::new(UInt32Array::from(v.to_vec())) };
    let f64s = |v: &'_ [f64]| -> ArrayRef { Arc::new(Float64Array::from(v.to_vec())) };
    let scale = t.decimals as i8;
    validate_decimal_precision_and_scale::<Decimal128Type>(38, scale).map_err(|e| {
        PipelineError::Parquet {
            path: "features".into(),
            message: e.to_string(),
        }
    })?;
    let mut cols: Vec<Build<'_>> = vec![
        Box::new(|| strs(&t.customer)),
        Box::new(|| Arc::new(UInt64Array::from(t.txn_count.clone()))),
        Box::new(|| u32s(&t.purchase_days)),
        Box::new(|| u32s(&t.frequency)),
        Box::new(|| u32s(&t.recency_days)),
        Box::new(|| u32s(&t.tenure_days)),
        Box::new(|| u32s(&t.days_since_last)),
        Box::new(move || {
            // Precision and scale were validated above.
            let money = DataType::Decimal128(38, scale);
            Arc::new(Decimal128Array::from(t.monetary_total.clone()).with_data_type(money))
        }),
        Box::new(|| f64s(&t.monetary_mean_repeat)),
        Box::new(|| f64s(&t.avg_ticket)),
        Box::new(|| {
            Arc::new(StringArray::from_iter_values(
                t.lifecycle_stage.iter().map(|s| s.as_str()),
            ))
        }),
    ];
    for mix in [&t.channel_mix, &t.category_mix] {
        for level in 0..mix.names().len() as u32 {
            cols.push(Box::new(move || {
                Arc::new(Float64Array::from(share_column(mix, &t.txn_count, level)))
            }));
        }
    }
    if let Some(d) = &t.demographics {
        cols.push(Box::new(|| opt_strs(&d.age_band)));
        cols.push(Box::new(|| opt_strs(&d.gender)));
        cols.push(Box::new(|| opt_strs(&d.region)));
        cols.push(Box::new(|| opt_strs(&d.income_band)));
        cols.push(Box::new(|| {
            Arc::new(UInt32Array::from(d.customer_since_days.clone()))
        }));
    }
    if let Some(c) = &t.credit {
        cols.push(Box::new(|| {
            Arc::new(Float64Array::from(c.utilization.clone()))
        }));
        cols.push(Box::new(|| {
            Arc::new(
                c.delinquency_bucket
                    .iter()
                    .copied()
                    .collect::<StringArray>(),
            )
        }));
        cols.push(Box::new(|| {
            Arc::new(BooleanArray::from(c.default_flag.clone()))
        }));
    }
    let cols: Vec<ArrayRef> = cols.par_iter().map(|build| build()).collect();
    let names = header(t);
    RecordBatch::try_from_iter(names.into_iter().zip(cols)).map_err(|e| PipelineError::Parquet {
        path: "features".into(),
        message: e.to_string(),
    })
}

fn write_parquet(t: &FeatureTable, path: &Path) -> Result<(), PipelineError> {
    let perr = |e: parquet::errors::ParquetError| PipelineError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let batch = to_record_batch(t)?;
    let file = File::create(path).map_err(|e| PipelineError::io(path, e))?;
    // Pseudonyms are unique, uniformly random hex: a dictionary never pays and snappy finds
    // nothing to compress, so that column skips both.
    let customer = parquet::schema::types::ColumnPath::from("customer");
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_column_dictionary_enabled(customer.clone(), false)
        .set_column_compression(customer, Compression::UNCOMPRESSED)
        .build();
    // The columns are encoded in parallel (rayon), one row group of up to 1M rows at a time,
    // then appended in order: the file is the one ArrowWriter would write.
    let schema = batch.schema();
    let (mut writer, factory) = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
        .and_then(ArrowWriter::into_serialized_writer)
        .map_err(perr)?;
    let rows = batch.num_rows();
    for (group, start) in (0..rows).step_by(ROW_GROUP_ROWS).enumerate() {
        let len = ROW_GROUP_ROWS.min(rows - start);
        let mut leaves = Vec::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, &column.slice(start, len)).map_err(perr)?);
        }
        let writers = factory.create_column_writers(group).map_err(perr)?;
        let chunks = writers
            .into_par_iter()
            .zip(leaves)
            .map(|(mut w, leaf)| {
                w.write(&leaf)?;
                w.close()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(perr)?;
        let mut row_group = writer.next_row_group().map_err(perr)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(perr)?;
        }
        row_group.close().map_err(perr)?;
    }
    writer.close().map_err(perr)?;
    Ok(())
}

/// Rows per Parquet row group of an export (ArrowWriter's default).
const ROW_GROUP_ROWS: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_format_exactly() {
        assert_eq!(format_minor(1234, 2), "12.34");
        assert_eq!(format_minor(-5, 2), "-0.05");
        assert_eq!(format_minor(7, 0), "7");
        assert_eq!(column_part("Mobile App"), "mobile_app");
    }
}
