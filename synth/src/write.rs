//! Writing one node's rows: `transactions.csv`, `transactions.parquet`, `customers.csv` and,
//! for banks, `credit.csv`; and collecting the manifest of dirty rows.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampSecondArray,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::rows::{DirtyKind, NodeData, customer_rng, levels};
use crate::{DirtyRows, MAX_AMOUNT, NodeManifest, Plan, Scenario, SynthError, format_day};

const UNPARSABLE_DATES: [&str; 4] = ["2025-13-45", "31/02/2025", "yesterday", "2025-02-30"];
const UNPARSABLE_AMOUNTS: [&str; 4] = ["\"12,50\"", "abc", "1.234", "1e3"];

fn io(path: &Path) -> impl Fn(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_owned(),
        source,
    }
}

fn customer_id(out: &mut Vec<u8>, c: u64, style: u8) {
    match style {
        1 => write!(out, "c{c:07}"),
        2 => write!(out, " C{c:07} "),
        _ => write!(out, "C{c:07}"),
    }
    .unwrap_or(());
}

fn civil(days: i32) -> (i32, u32, u32) {
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i32::from(m <= 2), m, d)
}

/// Writes the node's files and returns its manifest.
pub(crate) fn write_node(
    plan: &Plan,
    name: &str,
    dir: &Path,
    d: &NodeData,
) -> Result<NodeManifest, SynthError> {
    let (channels, categories) = levels(plan.scenario);
    let mut dirty_csv = DirtyRows::new();
    let mut dirty_parquet = DirtyRows::new();
    for (i, k) in d.dirty.iter().enumerate() {
        if let Some(k) = k {
            let row = i as u64 + 1;
            dirty_csv.entry(k.reason()).or_default().push(row);
            let pk = match k {
                DirtyKind::UnparsableDate | DirtyKind::UnparsableAmount => DirtyKind::MissingField,
                k => *k,
            };
            dirty_parquet.entry(pk.reason()).or_default().push(row);
        }
    }
    for v in dirty_parquet.values_mut() {
        v.sort_unstable();
    }
    let timestamps = plan.scenario == Scenario::Brands;

    let path = dir.join("transactions.csv");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io(&path))?);
    w.write_all(b"txn_id,customer_id,date,amount,channel,category\n")
        .map_err(io(&path))?;
    let mut line: Vec<u8> = Vec::with_capacity(128);
    for i in 0..d.txn_id.len() {
        line.clear();
        let kind = d.dirty[i];
        write!(line, "{},", d.txn_id[i]).unwrap_or(());
        let missing = if kind == Some(DirtyKind::MissingField) {
            i % 3
        } else {
            3
        };
        if missing != 0 {
            customer_id(&mut line, d.cust[i], d.id_style[i]);
        }
        line.push(b',');
        if kind == Some(DirtyKind::UnparsableDate) {
            line.extend_from_slice(UNPARSABLE_DATES[i % 4].as_bytes());
        } else if missing != 1 {
            let (y, m, dd) = civil(d.day[i]);
            write!(line, "{y:04}-{m:02}-{dd:02}").unwrap_or(());
            if timestamps {
                let s = d.second[i];
                write!(line, "T{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60).unwrap_or(());
            }
        }
        line.push(b',');
        if kind == Some(DirtyKind::UnparsableAmount) {
            line.extend_from_slice(UNPARSABLE_AMOUNTS[i % 4].as_bytes());
        } else if missing != 2 {
            let a = d.amount[i];
            let sign = if a < 0 { "-" } else { "" };
            write!(
                line,
                "{sign}{}.{:02}",
                a.unsigned_abs() / 100,
                a.unsigned_abs() % 100
            )
            .unwrap_or(());
        }
        writeln!(
            line,
            ",{},{}",
            channels[usize::from(d.channel[i])],
            categories[usize::from(d.category[i])]
        )
        .unwrap_or(());
        w.write_all(&line).map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;

    if plan.parquet {
        write_parquet(
            &dir.join("transactions.parquet"),
            d,
            timestamps,
            channels,
            categories,
        )?;
    }
    let customer_rows = write_customers(plan, dir, d)?;
    let credit_rows = if plan.scenario == Scenario::Bank {
        write_credit(plan, dir, d)?
    } else {
        0
    };
    Ok(NodeManifest {
        node: name.to_owned(),
        scenario: plan.scenario.as_str(),
        as_of: format_day(plan.as_of_days),
        start: format_day(plan.as_of_days - plan.history_days),
        max_amount: MAX_AMOUNT.to_string(),
        transaction_rows: d.txn_id.len() as u64,
        customer_rows,
        credit_rows,
        dirty_csv,
        dirty_parquet,
    })
}

fn write_parquet(
    path: &Path,
    d: &NodeData,
    timestamps: bool,
    channels: &[&str],
    categories: &[&str],
) -> Result<(), SynthError> {
    let perr = |e: parquet::errors::ParquetError| SynthError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let aerr = |e: arrow_schema::ArrowError| SynthError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = File::create(path).map_err(io(path))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer: Option<ArrowWriter<File>> = None;
    let chunk = 1 << 20;
    let mut id = Vec::with_capacity(16);
    for start in (0..d.txn_id.len()).step_by(chunk) {
        let end = (start + chunk).min(d.txn_id.len());
        let r = start..end;
        let kind = |i: usize| d.dirty[i];
        let missing =
            |i: usize, which: usize| kind(i) == Some(DirtyKind::MissingField) && i % 3 == which;
        let ids: StringArray = r
            .clone()
            .map(|i| {
                (!missing(i, 0)).then(|| {
                    id.clear();
                    customer_id(&mut id, d.cust[i], d.id_style[i]);
                    String::from_utf8_lossy(&id).into_owned()
                })
            })
            .collect();
        let date_ok = |i: usize| !missing(i, 1) && kind(i) != Some(DirtyKind::UnparsableDate);
        let date: ArrayRef = if timestamps {
            Arc::new(
                r.clone()
                    .map(|i| {
                        date_ok(i).then(|| i64::from(d.day[i]) * 86_400 + i64::from(d.second[i]))
                    })
                    .collect::<TimestampSecondArray>(),
            )
        } else {
            Arc::new(
                r.clone()
                    .map(|i| date_ok(i).then_some(d.day[i]))
                    .collect::<Date32Array>(),
            )
        };
        let amount = r
            .clone()
            .map(|i| {
                (!missing(i, 2) && kind(i) != Some(DirtyKind::UnparsableAmount))
                    .then(|| i128::from(d.amount[i]))
            })
            .collect::<Decimal128Array>()
            .with_precision_and_scale(18, 2)
            .map_err(aerr)?;
        let batch = RecordBatch::try_from_iter([
            (
                "txn_id",
                Arc::new(Int64Array::from(d.txn_id[r.clone()].to_vec())) as ArrayRef,
            ),
            ("customer_id", Arc::new(ids)),
            ("date", date),
            ("amount", Arc::new(amount)),
            (
                "channel",
                Arc::new(
                    r.clone()
                        .map(|i| Some(channels[usize::from(d.channel[i])]))
                        .collect::<StringArray>(),
                ),
            ),
            (
                "category",
                Arc::new(
                    r.clone()
                        .map(|i| Some(categories[usize::from(d.category[i])]))
                        .collect::<StringArray>(),
                ),
            ),
        ])
        .map_err(aerr)?;
        if writer.is_none() {
            writer = Some(
                ArrowWriter::try_new(
                    file.try_clone().map_err(io(path))?,
                    batch.schema(),
                    Some(props.clone()),
                )
                .map_err(perr)?,
            );
        }
        if let Some(w) = &mut writer {
            w.write(&batch).map_err(perr)?;
        }
    }
    if let Some(w) = writer {
        w.close().map_err(perr)?;
    }
    Ok(())
}

fn write_customers(plan: &Plan, dir: &Path, d: &NodeData) -> Result<u64, SynthError> {
    const GENDERS: [&str; 3] = ["f", "m", "x"];
    const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
    const INCOME: [&str; 3] = ["low", "middle", "high"];
    let path = dir.join("customers.csv");
    let mut w = BufWriter::new(File::create(&path).map_err(io(&path))?);
    w.write_all(b"customer_id,birth_date,gender,region,income_band,signup_date\n")
        .map_err(io(&path))?;
    for &c in &d.customers {
        let mut r = customer_rng(plan.seed ^ 0x5eed, c);
        let birth = plan.as_of_days - 18 * 366 - r.below(60 * 365) as i32;
        let signup = plan.as_of_days - plan.history_days - r.below(3650) as i32;
        let g = GENDERS[(r.below(100) / 49).min(2) as usize];
        writeln!(
            w,
            "C{c:07},{},{g},{},{},{}",
            format_day(birth),
            REGIONS[r.below(5) as usize],
            INCOME[r.below(3) as usize],
            format_day(signup)
        )
        .map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;
    Ok(d.customers.len() as u64)
}

fn write_credit(plan: &Plan, dir: &Path, d: &NodeData) -> Result<u64, SynthError> {
    let path = dir.join("credit.csv");
    let mut w = BufWriter::new(File::create(&path).map_err(io(&path))?);
    w.write_all(b"customer_id,limit,balance,days_past_due,default_flag\n")
        .map_err(io(&path))?;
    let mut rows = 0;
    for &c in &d.customers {
        let mut r = customer_rng(plan.seed ^ 0xc4ed17, c);
        for _ in 0..r.below(3) {
            let limit = 500 + r.below(20) * 500;
            let balance = r.below(limit * 110 / 100 + 1);
            let dpd = if r.chance(850_000) {
                0
            } else {
                1 + r.below(180)
            };
            let default = u8::from(dpd > 90 && r.chance(500_000));
            writeln!(w, "C{c:07},{limit}.00,{balance}.00,{dpd},{default}").map_err(io(&path))?;
            rows += 1;
        }
    }
    w.flush().map_err(io(&path))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_634), (2026, 6, 30));
        assert_eq!(format_day(20_634), "2026-06-30");
    }
}
