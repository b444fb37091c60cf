//! The scan: every row of every table is checked, quarantined or turned into compact columnar
//! records keyed by a dense customer index. Raw ids stop here (see [`super::interner`]).

use std::collections::HashMap;

use super::dates::Day;
use super::error::PipelineError;
use super::interner::{InternError, Interner, simple_id_hash};
use super::quality::{Quarantine, Reason};
use super::source::{Table, open};
use super::spec::{CreditSpec, CustomersSpec, PipelineSpec};
use super::values::{Cell, Column, fingerprints};

/// One used transaction. 40 bytes (34 of fields, aligned to 8); 10M of them are 400 MB.
/// Channel and category are full `u32` level ids: every distinct value is its own level, and a
/// file has fewer than `u32::MAX` rows, so an id never runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Txn {
    /// Fingerprint of the whole source row, for exact duplicates.
    pub(crate) fp: u64,
    /// Minor units, `0 ..= max_amount`.
    pub(crate) amount: i64,
    pub(crate) cust: u32,
    /// 1-based data row in the file.
    pub(crate) row: u32,
    pub(crate) channel: u32,
    pub(crate) category: u32,
    /// Days after the cleaning start date.
    pub(crate) day: u16,
}

/// Distinct values of a channel or category column, normalized (trimmed, lowercased; empty is
/// `unknown`). Every distinct normalized value is its own level, whatever else the file holds:
/// the level a row counts for depends only on that row's value (no cap, no `other`), so what
/// one customer contributes to a mix never depends on other customers' rows. Level ids are
/// internal handles in the order values were met; nothing outside the pipeline sees them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Levels {
    pub(crate) names: Vec<String>,
    /// Raw spelling -> level, searched linearly: most rows hit the first few spellings.
    raw: Vec<(Box<str>, u32)>,
    /// Further raw spellings -> level (bounded; past it a raw value is normalized again).
    lookup: HashMap<Box<str>, u32>,
    /// Normalized name -> level.
    by_name: HashMap<Box<str>, u32>,
}

impl Levels {
    fn level_of_name(&mut self, name: &str) -> u32 {
        if let Some(l) = self.by_name.get(name) {
            return *l;
        }
        // Fewer levels than rows, and rows are counted in u32.
        let l = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.by_name.insert(name.into(), l);
        l
    }

    /// The level of a raw value (`None`: missing, counted as `unknown`).
    pub(crate) fn level(&mut self, raw: Option<&str>) -> u32 {
        let raw = raw.unwrap_or("");
        if let Some((_, l)) = self.raw.iter().find(|(r, _)| &**r == raw) {
            return *l;
        }
        if let Some(l) = self.lookup.get(raw) {
            return *l;
        }
        let name = raw.trim().to_lowercase();
        let l = self.level_of_name(if name.is_empty() { "unknown" } else { &name });
        if self.raw.len() < 64 {
            self.raw.push((raw.into(), l));
        } else if self.lookup.len() < 1 << 16 {
            self.lookup.insert(raw.into(), l);
        }
        l
    }
}

/// What the transactions scan produced.
#[derive(Debug)]
pub(crate) struct TxnScan {
    pub(crate) txns: Vec<Txn>,
    pub(crate) channels: Levels,
    pub(crate) categories: Levels,
}

/// Progress callback: rows read so far and the total when known.
pub type ProgressFn<'a> = &'a (dyn Fn(&'static str, u64, Option<u64>) + Sync);

fn row_number(table: &Table, base: u64, i: usize) -> Result<u32, PipelineError> {
    u32::try_from(base + i as u64 + 1).map_err(|_| PipelineError::TooManyRows {
        path: table.path.clone(),
    })
}

fn full(table: &Table) -> PipelineError {
    PipelineError::Columns {
        path: table.path.clone(),
        problem: format!("more than {} distinct customers", u32::MAX - 1),
    }
}

/// Which mapped column a transaction verdict names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Customer,
    Date,
    Amount,
}

/// A row's checks up to interning: its day offset and amount, or why it is quarantined.
type Verdict = Result<(u16, i64), (Reason, Field)>;

/// The row checks that need no state shared with the scan, run on the checking thread
/// (`Table::start`'s second stage).
#[derive(Debug, Clone)]
struct Checks {
    path: std::path::PathBuf,
    columns: [(usize, String); 3],
    date_parser: super::dates::DateParser,
    decimals: u8,
    as_of: i32,
    start: i32,
    max_amount: i64,
    channel: Option<usize>,
    category: Option<usize>,
}

/// What the checking thread prepares for each row of a batch.
#[derive(Debug)]
struct Prepared {
    fp: Vec<u64>,
    verdicts: Vec<Verdict>,
    /// [`simple_id_hash`] of the id, when the id is simple.
    id_hash: Vec<Option<u64>>,
    channel: Vec<u32>,
    category: Vec<u32>,
}

/// The checking thread's own state: channel and category levels (shared with the scan only
/// at the end). Ids are hashed in registers ([`simple_id_hash`]): no copy of an id to wipe.
#[derive(Debug, Default)]
struct WorkerState {
    levels: std::sync::Arc<std::sync::Mutex<(Levels, Levels)>>,
}

impl Checks {
    fn prepare(
        &self,
        batch: &arrow_array::RecordBatch,
        w: &mut WorkerState,
    ) -> Result<Prepared, PipelineError> {
        let verdicts = self.batch(batch)?;
        let fp = fingerprints(batch);
        let path = &self.path;
        let (ci, cn) = &self.columns[0];
        let cust = Column::new(batch.column(*ci), path, cn)?;
        let id_hash = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let text = if v.is_ok() { cust.text(i) } else { None };
                text.and_then(|t| simple_id_hash(&t))
            })
            .collect();
        let mut levels = w.levels.lock().map_err(|_| PipelineError::Columns {
            path: path.clone(),
            problem: "internal error: a reader thread panicked".into(),
        })?;
        let (ch_levels, ca_levels) = &mut *levels;
        let level = |col: Option<usize>,
                     name: &str,
                     levels: &mut Levels|
         -> Result<Vec<u32>, PipelineError> {
            let Some(c) = col else { return Ok(Vec::new()) };
            let view = Column::new(batch.column(c), path, name)?;
            // A dictionary column's rows share the level of their key: one lookup per distinct
            // value (the level is the value's own, as row by row).
            let mut by_key: Vec<Option<u32>> = vec![None; view.distinct()];
            Ok(verdicts
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if v.is_err() {
                        return 0;
                    }
                    match view.key(i).and_then(|k| by_key.get_mut(k)) {
                        Some(Some(l)) => *l,
                        Some(slot) => *slot.insert(levels.level(view.text(i).as_deref())),
                        None => levels.level(view.text(i).as_deref()),
                    }
                })
                .collect())
        };
        let channel = level(self.channel, "channel", ch_levels)?;
        let category = level(self.category, "category", ca_levels)?;
        Ok(Prepared {
            fp,
            verdicts,
            id_hash,
            channel,
            category,
        })
    }

    fn batch(&self, batch: &arrow_array::RecordBatch) -> Result<Vec<Verdict>, PipelineError> {
        let [(ci, cn), (di, dn), (ai, an)] = &self.columns;
        let path = &self.path;
        let ty = |i: usize| batch.schema().field(i).data_type().clone();
        let cust = Column::new(batch.column(*ci), path, cn)?;
        let date = Column::new(batch.column(*di), path, dn)?;
        let amount = Column::new(batch.column(*ai), path, an)?;
        cust.require(cust.can_be_text(), path, cn, &ty(*ci), "customer ids")?;
        date.require(date.can_be_date(), path, dn, &ty(*di), "dates")?;
        amount.require(amount.can_be_number(), path, an, &ty(*ai), "amounts")?;
        let verdict = |i: usize| -> Verdict {
            if !cust.present(i) {
                return Err((Reason::MissingField, Field::Customer));
            }
            let day = date.day(i, &self.date_parser);
            let minor = amount.minor_units(i, self.decimals);
            let (d, a) = match (day, minor) {
                (Cell::Missing, _) => return Err((Reason::MissingField, Field::Date)),
                (_, Cell::Missing) => return Err((Reason::MissingField, Field::Amount)),
                (Cell::Bad, _) => return Err((Reason::UnparsableDate, Field::Date)),
                (_, Cell::Bad) => return Err((Reason::UnparsableAmount, Field::Amount)),
                (Cell::Ok(d), Cell::Ok(a)) => (d.days(), a),
            };
            if a < 0 {
                Err((Reason::NegativeAmount, Field::Amount))
            } else if a > self.max_amount {
                Err((Reason::OutOfRange, Field::Amount))
            } else if d > self.as_of {
                Err((Reason::AfterAsOf, Field::Date))
            } else if d < self.start {
                Err((Reason::BeforeStart, Field::Date))
            } else {
                // In 0..=u16::MAX: start <= d <= as_of, and as_of - start fits (checked in spec).
                Ok((u16::try_from(d - self.start).unwrap_or(u16::MAX), a))
            }
        };
        Ok((0..batch.num_rows()).map(verdict).collect())
    }
}

/// Rows whose interner entries are touched together before they are looked up
/// ([`Interner::warm`]).
const WARM_ROWS: usize = 256;

/// Scans the transactions table. Decoding runs on one thread, fingerprints, the per-row checks
/// and levels on another (`Table::start`); interning and quarantine writes on this one.
pub(crate) fn scan_transactions(
    spec: &PipelineSpec,
    ids: &mut Interner,
    closed: bool,
    q: &mut Quarantine,
    progress: Option<ProgressFn<'_>>,
) -> Result<TxnScan, PipelineError> {
    let t = &spec.transactions;
    let categorical: Vec<&str> = [&t.channel, &t.category]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let mut table = open(&t.source, &categorical)?;
    let slot = q.table("transactions", &table.path);
    let checks = Checks {
        path: table.path.clone(),
        columns: [
            (table.column(&t.customer)?, t.customer.clone()),
            (table.column(&t.date)?, t.date.clone()),
            (table.column(&t.amount)?, t.amount.clone()),
        ],
        date_parser: t.date_parser.clone(),
        decimals: spec.amount_decimals,
        as_of: spec.as_of.days(),
        start: spec.start.days(),
        max_amount: spec.max_amount_minor,
        channel: t.channel.as_deref().map(|c| table.column(c)).transpose()?,
        category: t.category.as_deref().map(|c| table.column(c)).transpose()?,
    };
    let ci = checks.columns[0].0;
    let mut out = TxnScan {
        txns: Vec::new(),
        channels: Levels::default(),
        categories: Levels::default(),
    };
    if let Some(n) = table.rows_hint {
        out.txns.reserve(usize::try_from(n).unwrap_or(0));
    }
    let col_name = |f: Field| match f {
        Field::Customer => &t.customer,
        Field::Date => &t.date,
        Field::Amount => &t.amount,
    };
    let mut base = 0u64;
    let mut worker = WorkerState::default();
    let levels = std::sync::Arc::clone(&worker.levels);
    let batches = table.start(move |b| checks.prepare(b, &mut worker));
    while let Some(batch) = batches.recv() {
        let (batch, p) = batch?;
        let cust = Column::new(batch.column(ci), &table.path, &t.customer)?;
        for (i, verdict) in p.verdicts.iter().enumerate() {
            if i % WARM_ROWS == 0 {
                let ahead = p.id_hash.get(i..).unwrap_or_default().iter();
                ids.warm(ahead.take(WARM_ROWS).flatten().copied());
            }
            let row = row_number(&table, base, i)?;
            let (day, a) = match *verdict {
                Ok(v) => v,
                Err((reason, field)) => {
                    q.reject(slot, u64::from(row), reason, col_name(field))?;
                    continue;
                }
            };
            let id = cust.text(i);
            let id = id.as_deref().unwrap_or("");
            let found = match p.id_hash.get(i).copied().flatten() {
                Some(hash) => ids.lookup_simple(id, hash, !closed),
                None => ids.lookup(id, !closed),
            };
            let index = match found {
                Ok(Some(index)) => index,
                Ok(None) => {
                    q.reject(slot, u64::from(row), Reason::UnknownCustomer, &t.customer)?;
                    continue;
                }
                Err(InternError::Empty) => {
                    q.reject(slot, u64::from(row), Reason::MissingField, &t.customer)?;
                    continue;
                }
                Err(InternError::Full) => return Err(full(&table)),
            };
            let ch = p.channel.get(i).copied().unwrap_or(0);
            let ca = p.category.get(i).copied().unwrap_or(0);
            out.txns.push(Txn {
                fp: p.fp[i],
                amount: a,
                cust: index,
                row,
                channel: ch,
                category: ca,
                day,
            });
        }
        base += batch.num_rows() as u64;
        if let Some(c) = q.counts(slot) {
            c.rows_in = base;
        }
        if let Some(p) = progress {
            p("transactions", base, table.rows_hint);
        }
    }
    // Waits for the reading threads: the checking stage's levels are final.
    drop(batches);
    // A poisoned lock means the checking stage panicked, which ends the batches with an error
    // before this point; were it ever reached, the levels would be missing, so it is an error.
    let mut l = levels.lock().map_err(|_| PipelineError::Columns {
        path: table.path.clone(),
        problem: "internal error: the checking thread stopped while mapping levels".into(),
    })?;
    (out.channels, out.categories) = std::mem::take(&mut *l);
    drop(l);
    Ok(out)
}

/// Per known customer, from the customers table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Demographics {
    pub(crate) age: Option<u32>,
    pub(crate) gender: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) income_band: Option<String>,
    pub(crate) signup: Option<Day>,
}

fn age_at(birth: Day, as_of: Day) -> u32 {
    let ((by, bm, bd), (ay, am, ad)) = (birth.ymd(), as_of.ymd());
    let years = ay - by - i32::from((am, ad) < (bm, bd));
    u32::try_from(years).unwrap_or(0)
}

/// Scans the customers table: interns every valid id first, so that transactions of other ids
/// are unknown customers. Returns demographics by customer index.
pub(crate) fn scan_customers(
    spec: &CustomersSpec,
    as_of: Day,
    ids: &mut Interner,
    q: &mut Quarantine,
) -> Result<Vec<Demographics>, PipelineError> {
    let c = &spec.columns;
    let categorical: Vec<&str> = [&c.gender_column, &c.region_column, &c.income_band_column]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let mut table = open(&spec.source, &categorical)?;
    let slot = q.table("customers", &table.path);
    let idx = |t: &Table, name: &Option<String>| name.as_deref().map(|n| t.column(n)).transpose();
    let id_i = table.column(&c.id_column)?;
    let (birth_i, age_i, gender_i) = (
        idx(&table, &c.birth_date_column)?,
        idx(&table, &c.age_column)?,
        idx(&table, &c.gender_column)?,
    );
    let (region_i, income_i, signup_i) = (
        idx(&table, &c.region_column)?,
        idx(&table, &c.income_band_column)?,
        idx(&table, &c.signup_date_column)?,
    );
    let mut out: Vec<Demographics> = Vec::new();
    let mut first_fp: Vec<u64> = Vec::new();
    let mut base = 0u64;
    let norm = |v: Option<std::borrow::Cow<'_, str>>| v.map(|s| s.trim().to_lowercase());
    let batches = table.start(|b| Ok(fingerprints(b)));
    while let Some(batch) = batches.recv() {
        let (batch, fp) = batch?;
        let path = table.path.clone();
        let view = |i: Option<usize>, name: &str| {
            i.map(|i| Column::new(batch.column(i), &path, name))
                .transpose()
        };
        let id = Column::new(batch.column(id_i), &path, &c.id_column)?;
        let (birth, age, gender) = (
            view(birth_i, "birth_date")?,
            view(age_i, "age")?,
            view(gender_i, "gender")?,
        );
        let (region, income, signup) = (
            view(region_i, "region")?,
            view(income_i, "income_band")?,
            view(signup_i, "signup_date")?,
        );
        for (i, &row_fp) in fp.iter().enumerate() {
            let row = base + i as u64 + 1;
            let col = |o: &Option<String>| o.clone().unwrap_or_default();
            let birth_v = birth
                .as_ref()
                .map_or(Cell::Missing, |b| b.day(i, &spec.date_parser));
            let signup_v = signup
                .as_ref()
                .map_or(Cell::Missing, |b| b.day(i, &spec.date_parser));
            let age_v = age.as_ref().map_or(Cell::Missing, |a| a.integer(i));
            let mut d = Demographics::default();
            let verdict = (|| {
                let raw = id
                    .text(i)
                    .ok_or((Reason::MissingField, c.id_column.clone()))?;
                if birth_v == Cell::Bad {
                    return Err((Reason::UnparsableDate, col(&c.birth_date_column)));
                }
                if signup_v == Cell::Bad {
                    return Err((Reason::UnparsableDate, col(&c.signup_date_column)));
                }
                if age_v == Cell::Bad {
                    return Err((Reason::UnparsableValue, col(&c.age_column)));
                }
                if let Cell::Ok(b) = birth_v {
                    if b > as_of {
                        return Err((Reason::AfterAsOf, col(&c.birth_date_column)));
                    }
                    d.age = Some(age_at(b, as_of));
                } else if let Cell::Ok(a) = age_v {
                    d.age = Some(
                        u32::try_from(a)
                            .ok()
                            .filter(|a| *a <= 150)
                            .ok_or((Reason::OutOfRange, col(&c.age_column)))?,
                    );
                }
                if let Cell::Ok(s) = signup_v {
                    if s > as_of {
                        return Err((Reason::AfterAsOf, col(&c.signup_date_column)));
                    }
                    d.signup = Some(s);
                }
                Ok(raw)
            })();
            let raw = match verdict {
                Ok(raw) => raw,
                Err((reason, column)) => {
                    q.reject(slot, row, reason, &column)?;
                    continue;
                }
            };
            let before = ids.len();
            let index = match ids.lookup(&raw, true) {
                Ok(Some(index)) => index as usize,
                Ok(None) | Err(InternError::Empty) => {
                    q.reject(slot, row, Reason::MissingField, &c.id_column)?;
                    continue;
                }
                Err(InternError::Full) => return Err(full(&table)),
            };
            if ids.len() == before {
                let same = first_fp.get(index) == Some(&row_fp);
                q.reject(
                    slot,
                    row,
                    if same {
                        Reason::Duplicate
                    } else {
                        Reason::DuplicateCustomer
                    },
                    &c.id_column,
                )?;
                continue;
            }
            d.gender = norm(gender.as_ref().and_then(|g| g.text(i)));
            d.region = norm(region.as_ref().and_then(|g| g.text(i)));
            d.income_band = norm(income.as_ref().and_then(|g| g.text(i)));
            out.push(d);
            first_fp.push(row_fp);
            if let Some(t) = q.counts(slot) {
                t.rows_used += 1;
            }
        }
        base += batch.num_rows() as u64;
        if let Some(t) = q.counts(slot) {
            t.rows_in = base;
        }
    }
    Ok(out)
}

/// Credit totals of one customer over its accounts (rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Credit {
    pub(crate) limit: i128,
    pub(crate) balance: i128,
    pub(crate) max_days_past_due: i64,
    pub(crate) default: bool,
}

/// Scans the credit table; rows of one customer are summed (limits, balances), their worst
/// delinquency and any default kept.
pub(crate) fn scan_credit(
    spec: &CreditSpec,
    decimals: u8,
    ids: &mut Interner,
    closed: bool,
    q: &mut Quarantine,
) -> Result<HashMap<u32, Credit>, PipelineError> {
    let c = &spec.columns;
    let mut table = open(&spec.source, &[])?;
    let slot = q.table("credit", &table.path);
    let cols = [
        &c.id_column,
        &c.limit_column,
        &c.balance_column,
        &c.days_past_due_column,
        &c.default_column,
    ];
    let idx: Vec<usize> = cols
        .iter()
        .map(|n| table.column(n))
        .collect::<Result<_, _>>()?;
    let mut out: HashMap<u32, Credit> = HashMap::new();
    let mut seen: std::collections::HashSet<(u32, u64)> = std::collections::HashSet::new();
    let mut base = 0u64;
    let batches = table.start(|b| Ok(fingerprints(b)));
    while let Some(batch) = batches.recv() {
        let (batch, fp) = batch?;
        let v: Vec<Column> = idx
            .iter()
            .zip(cols)
            .map(|(i, n)| Column::new(batch.column(*i), &table.path, n))
            .collect::<Result<_, _>>()?;
        for (i, &row_fp) in fp.iter().enumerate() {
            let row = base + i as u64 + 1;
            let (id, limit, balance, dpd, default) = (
                v[0].text(i),
                v[1].minor_units(i, decimals),
                v[2].minor_units(i, decimals),
                v[3].integer(i),
                v[4].flag(i),
            );
            let verdict = if id.is_none() {
                Err((Reason::MissingField, cols[0]))
            } else if limit == Cell::Missing {
                Err((Reason::MissingField, cols[1]))
            } else if balance == Cell::Missing {
                Err((Reason::MissingField, cols[2]))
            } else if dpd == Cell::Missing {
                Err((Reason::MissingField, cols[3]))
            } else if default == Cell::Missing {
                Err((Reason::MissingField, cols[4]))
            } else {
                match (limit, balance, dpd, default) {
                    (Cell::Ok(l), Cell::Ok(b), Cell::Ok(d), Cell::Ok(f)) if l >= 0 && d >= 0 => {
                        Ok((l, b, d, f))
                    }
                    (Cell::Ok(l), Cell::Ok(_), Cell::Ok(_), Cell::Ok(_)) if l < 0 => {
                        Err((Reason::OutOfRange, cols[1]))
                    }
                    (Cell::Ok(_), Cell::Ok(_), Cell::Ok(_), Cell::Ok(_)) => {
                        Err((Reason::OutOfRange, cols[3]))
                    }
                    (Cell::Bad, ..) => Err((Reason::UnparsableAmount, cols[1])),
                    (_, Cell::Bad, ..) => Err((Reason::UnparsableAmount, cols[2])),
                    (_, _, Cell::Bad, _) => Err((Reason::UnparsableValue, cols[3])),
                    _ => Err((Reason::UnparsableValue, cols[4])),
                }
            };
            let (l, b, d, f) = match verdict {
                Ok(x) => x,
                Err((reason, col)) => {
                    q.reject(slot, row, reason, col)?;
                    continue;
                }
            };
            let index = match ids.lookup(id.as_deref().unwrap_or(""), !closed) {
                Ok(Some(index)) => index,
                Ok(None) => {
                    q.reject(slot, row, Reason::UnknownCustomer, cols[0])?;
                    continue;
                }
                Err(InternError::Empty) => {
                    q.reject(slot, row, Reason::MissingField, cols[0])?;
                    continue;
                }
                Err(InternError::Full) => return Err(full(&table)),
            };
            if !seen.insert((index, row_fp)) {
                q.reject(slot, row, Reason::Duplicate, cols[0])?;
                continue;
            }
            let e = out.entry(index).or_default();
            e.limit += i128::from(l);
            e.balance += i128::from(b);
            e.max_days_past_due = e.max_days_past_due.max(d);
            e.default |= f;
            if let Some(t) = q.counts(slot) {
                t.rows_used += 1;
            }
        }
        base += batch.num_rows() as u64;
        if let Some(t) = q.counts(slot) {
            t.rows_in = base;
        }
    }
    Ok(out)
}
