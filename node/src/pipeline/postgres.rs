//! PostgreSQL source: the per-customer aggregation is pushed down as SQL, so a large data
//! holder's own database does the heavy work and only one row per customer (plus one per
//! customer and channel/category) crosses to the node.
//!
//! The SQL applies the same cleaning rules as the file path, in the same order, on typed
//! columns (the date column must be `date` or `timestamp[tz]`, the amount `numeric`, an integer
//! type or a float: the database's types rule out unparsable values). Differences, stated in
//! docs/DATA.md: exact duplicates are counted over all rows (`SELECT DISTINCT *`) before the
//! other rules, and quarantined rows are counted by reason but not listed (a table has no row
//! numbers). The `customers` and `credit` tables, when configured, are files read as usual.
//! Customer ids are normalized in SQL by trimming ASCII whitespace and `lower()`; the
//! node then applies the exact normalization of the pseudonymizer and refuses (rather than
//! guesses) if two SQL groups become one, which needs non-ASCII case or whitespace variants.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedprof_crypto::Pseudonymizer;
use serde::Deserialize;
use tokio_postgres::NoTls;

use super::RunOutput;
use super::aggregate::{Aggregate, Behaviour, LevelCounts};
use super::error::PipelineError;
use super::features;
use super::ingest;
use super::interner::Interner;
use super::quality::{QualityReport, Quarantine, Reason, TableQuality};
use super::spec::PipelineSpec;

/// `[data.postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection string without the password, e.g.
    /// `host=127.0.0.1 port=5432 user=fedprof dbname=bank`.
    pub connection: String,
    /// File holding the password (first line), if the server wants one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The table or view of transactions, optionally schema-qualified (`sales.transactions`).
    pub table: String,
}

fn pg(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Postgres(e.to_string())
}

/// `"name"` with embedded quotes doubled; `schema.table` quoted part by part.
fn ident(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Connects with `config`.
pub async fn connect(config: &PostgresConfig) -> Result<tokio_postgres::Client, PipelineError> {
    let mut c: tokio_postgres::Config = config.connection.parse().map_err(pg)?;
    if let Some(p) = &config.password_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(p).map_err(|e| PipelineError::io(p, e))?,
        );
        c.password(text.lines().next().unwrap_or_default());
    }
    let (client, connection) = c.connect(NoTls).await.map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The SQL of the push-down, for `spec` over `table`. Parameters: `$1` as_of, `$2` start
/// (dates), `$3` max amount in minor units.
pub fn pushdown_sql(spec: &PipelineSpec, table: &str) -> (String, String, String) {
    let t = &spec.transactions;
    let scale = 10i64.pow(u32::from(spec.amount_decimals));
    let (c, d, a) = (ident(&t.customer), ident(&t.date), ident(&t.amount));
    let ws = r"E' \t\r\n\f\v'";
    let level = |col: &Option<String>| {
        col.as_ref().map_or_else(
            || "''".to_owned(),
            |n| format!("lower(btrim(coalesce({}::text, ''), {ws}))", ident(n)),
        )
    };
    let classified = format!(
        "WITH dedup AS (SELECT DISTINCT * FROM {table}), \
         x AS (SELECT lower(btrim({c}::text, {ws})) AS cid, {d}::date AS d, {a}::numeric * {scale} AS m, \
               {ch} AS ch, {cat} AS cat FROM dedup), \
         r AS (SELECT *, CASE \
               WHEN cid IS NULL OR cid = '' THEN 'missing_field' WHEN d IS NULL OR m IS NULL THEN 'missing_field' \
               WHEN m <> trunc(m) THEN 'unparsable_amount' WHEN m < 0 THEN 'negative_amount' \
               WHEN m > $3::bigint THEN 'out_of_range' WHEN d > $1::text::date THEN 'after_as_of' WHEN d < $2::text::date THEN 'before_start' \
               ELSE NULL END AS reason FROM x)",
        ch = level(&t.channel),
        cat = level(&t.category),
    );
    let customers = format!(
        "{classified}, clean AS (SELECT cid, d, m::bigint AS m, ch, cat FROM r WHERE reason IS NULL), \
         days AS (SELECT cid, d, sum(m) AS total, count(*) AS n FROM clean GROUP BY cid, d), \
         cust AS (SELECT cid, sum(n)::bigint AS txn_count, count(*)::bigint AS purchase_days, min(d) AS first, \
                  max(d) AS last, sum(total) AS total FROM days GROUP BY cid) \
         SELECT c.cid, c.txn_count, c.purchase_days, (c.first - $2::text::date)::int, (c.last - $2::text::date)::int, \
                c.total::text, f.total::text FROM cust c JOIN days f ON f.cid = c.cid AND f.d = c.first"
    );
    let levels = format!(
        "{classified} SELECT cid, ch, cat, count(*)::bigint FROM r WHERE reason IS NULL GROUP BY cid, ch, cat"
    );
    let quality = format!(
        "{classified} SELECT coalesce(reason, ''), count(*)::bigint FROM r GROUP BY 1 \
         UNION ALL SELECT 'rows_in', count(*)::bigint FROM {table}"
    );
    (customers, levels, quality)
}

/// Runs the pipeline with the aggregation pushed down to PostgreSQL. The `customers` and
/// `credit` tables, when configured, are files read as in [`super::compute`]; their quarantined
/// rows go to `quarantine`.
pub async fn compute(
    spec: &PipelineSpec,
    config: &PostgresConfig,
    pseudonymizer: &Pseudonymizer,
    reveal_ids: bool,
    quarantine: Option<&std::path::Path>,
) -> Result<RunOutput, PipelineError> {
    let mut ids = Interner::new();
    let mut q = Quarantine::new(quarantine)?;
    let demographics = spec
        .customers
        .as_ref()
        .map(|c| ingest::scan_customers(c, spec.as_of, &mut ids, &mut q))
        .transpose()?;
    let closed = demographics.is_some();
    let client = connect(config).await?;
    let table = ident(&config.table);
    let (sql_customers, sql_levels, sql_quality) = pushdown_sql(spec, &table);
    let to_date = |d: super::Day| {
        let (y, m, dd) = d.ymd();
        time::Month::try_from(m as u8)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(y, m, dd as u8).ok())
    };
    let (Some(as_of), Some(start)) = (to_date(spec.as_of), to_date(spec.start)) else {
        return Err(PipelineError::Postgres("dates out of range".into()));
    };
    let as_of = as_of.to_string();
    let start = start.to_string();
    // Dates travel as text and are cast in SQL: no date type mapping feature needed.
    let max = spec.max_amount_minor;
    let rows = client
        .query(&sql_customers, &[&as_of, &start, &max])
        .await
        .map_err(pg)?;
    let mut behaviour: Vec<Option<Behaviour>> = vec![None; ids.len()];
    let mut unknown = 0u64;
    // Ids the database grouped apart that normalize alike, and ids empty once normalized:
    // quarantined, never a refusal of the whole pipeline (whether a node refuses must not
    // depend on one customer's rows).
    let mut ambiguous: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
    let (mut ambiguous_rows, mut empty_rows) = (0u64, 0u64);
    for row in &rows {
        let cid: String = row.try_get(0).map_err(pg)?;
        let txn_count: i64 = row.try_get(1).map_err(pg)?;
        let index = match ids.lookup(&cid, !closed) {
            Ok(Some(index)) => index,
            Ok(None) => {
                unknown += u64::try_from(txn_count).map_err(pg)?;
                continue;
            }
            Err(_) => {
                empty_rows += u64::try_from(txn_count).map_err(pg)?;
                continue;
            }
        };
        behaviour.resize(ids.len(), None);
        if ambiguous.contains(&index) {
            ambiguous_rows += u64::try_from(txn_count).map_err(pg)?;
            continue;
        }
        if let Some(first) = behaviour[index as usize].take() {
            ambiguous.insert(index);
            ambiguous_rows += first.txn_count + u64::try_from(txn_count).map_err(pg)?;
            continue;
        }
        let num = |i: usize| -> Result<i128, PipelineError> {
            let s: String = row.try_get(i).map_err(pg)?;
            s.parse::<i128>().map_err(pg)
        };
        let day = |i: usize| -> Result<u16, PipelineError> {
            let v: i32 = row.try_get(i).map_err(pg)?;
            u16::try_from(v).map_err(pg)
        };
        let purchase_days: i64 = row.try_get(2).map_err(pg)?;
        behaviour[index as usize] = Some(Behaviour {
            txn_count: u64::try_from(txn_count).map_err(pg)?,
            purchase_days: u32::try_from(purchase_days).map_err(pg)?,
            first_day: day(3)?,
            last_day: day(4)?,
            total: num(5)?,
            first_day_total: num(6)?,
        });
    }
    // Every distinct normalized value is its own level (no cap): a customer's counts depend
    // only on its own rows, whatever order the database returns the groups in.
    let (mut channels, mut categories) = (Levels::default(), Levels::default());
    let (mut ch_counts, mut ca_counts) = (Vec::new(), Vec::new());
    for row in client
        .query(&sql_levels, &[&as_of, &start, &max])
        .await
        .map_err(pg)?
    {
        let cid: String = row.try_get(0).map_err(pg)?;
        let Ok(Some(index)) = ids.lookup(&cid, false) else {
            continue;
        };
        if ambiguous.contains(&index) {
            continue;
        }
        let (ch, cat): (String, String) =
            (row.try_get(1).map_err(pg)?, row.try_get(2).map_err(pg)?);
        let n = u32::try_from(row.try_get::<_, i64>(3).map_err(pg)?).map_err(pg)?;
        ch_counts.push((index, channels.of(ch), n));
        ca_counts.push((index, categories.of(cat), n));
    }
    let credit = spec
        .credit
        .as_ref()
        .map(|c| ingest::scan_credit(c, spec.amount_decimals, &mut ids, closed, &mut q))
        .transpose()?;
    let n = ids.len();
    behaviour.resize(n, None);
    let mut agg = Aggregate {
        behaviour,
        channels: LevelCounts::from_triples(ch_counts, n),
        categories: LevelCounts::from_triples(ca_counts, n),
        duplicates: Vec::new(),
        rows_used: 0,
    };
    agg.rows_used = agg.behaviour.iter().flatten().map(|b| b.txn_count).sum();
    let mut by_reason = BTreeMap::new();
    let mut rows_in = 0u64;
    let mut deduped = 0u64;
    for row in client
        .query(&sql_quality, &[&as_of, &start, &max])
        .await
        .map_err(pg)?
    {
        let (k, v): (String, i64) = (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        let v = u64::try_from(v).map_err(pg)?;
        match k.as_str() {
            "rows_in" => rows_in = v,
            "" => deduped += v,
            reason => {
                deduped += v;
                by_reason.insert(reason_name(reason), v);
            }
        }
    }
    if rows_in > deduped {
        by_reason.insert(Reason::Duplicate.as_str(), rows_in - deduped);
    }
    if unknown > 0 {
        by_reason.insert(Reason::UnknownCustomer.as_str(), unknown);
    }
    if ambiguous_rows > 0 {
        by_reason.insert(Reason::AmbiguousId.as_str(), ambiguous_rows);
    }
    if empty_rows > 0 {
        *by_reason.entry(Reason::MissingField.as_str()).or_insert(0) += empty_rows;
    }
    let names: Vec<String> = (0..n as u32)
        .map(|c| {
            if reveal_ids {
                ids.id(c).to_owned()
            } else {
                pseudonymizer
                    .pseudonym(ids.id(c))
                    .map(|p| p.to_hex())
                    .unwrap_or_default()
            }
        })
        .collect();
    drop(ids);
    let t = &spec.transactions;
    let cx = features::Context {
        as_of: spec.as_of,
        start: spec.start,
        decimals: spec.amount_decimals,
        lifecycle: &spec.lifecycle,
        age_bands: &spec.age_bands,
        channels: t.channel.as_ref().map(|_| channels.names),
        categories: t.category.as_ref().map(|_| categories.names),
        demographics: demographics.as_deref(),
        credit: credit.as_ref(),
    };
    let table_q = TableQuality {
        table: "transactions",
        file: format!("postgres:{}", config.table),
        rows_in,
        rows_used: agg.rows_used,
        rows_quarantined: by_reason.values().sum(),
        by_reason,
    };
    let features = features::assemble(&agg, names, &cx);
    let (mut tables, quarantine_file) = q.finish()?;
    tables.insert(usize::from(closed), table_q);
    let quality = QualityReport {
        as_of: spec.as_of.to_string(),
        customers: features.len() as u64,
        tables,
        quarantine_file: quarantine_file.map(|p| p.display().to_string()),
    };
    Ok(RunOutput { features, quality })
}

/// Level names met so far (the SQL already trimmed and lowercased them; empty is `unknown`).
#[derive(Default)]
struct Levels {
    names: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
}

impl Levels {
    fn of(&mut self, v: String) -> u32 {
        let v = if v.is_empty() {
            "unknown".to_owned()
        } else {
            v
        };
        if let Some(l) = self.ids.get(&v) {
            return *l;
        }
        let l = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(v.clone());
        self.ids.insert(v, l);
        l
    }
}

fn reason_name(s: &str) -> &'static str {
    let all = [
        Reason::MissingField,
        Reason::UnparsableAmount,
        Reason::NegativeAmount,
        Reason::OutOfRange,
        Reason::AfterAsOf,
        Reason::BeforeStart,
    ];
    all.iter()
        .find(|r| r.as_str() == s)
        .map_or("other", |r| r.as_str())
}
