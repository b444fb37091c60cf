//! Typed access to one column of a batch, whatever its Arrow type: text from CSV, or the native
//! types of a Parquet file (integers, floats, decimals, dates, timestamps, dictionaries).
//! Every accessor answers [`Cell::Missing`], [`Cell::Bad`] or a value, never panics.

use rayon::prelude::*;
use std::borrow::Cow;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, DictionaryArray, PrimitiveArray, StringArray};
use arrow_schema::{DataType, TimeUnit};

use super::dates::{DateParser, Day};
use super::error::PipelineError;

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell<T> {
    /// Null, empty or only whitespace.
    Missing,
    /// Present but not a valid value of the expected kind.
    Bad,
    /// A value.
    Ok(T),
}

/// A column of one batch, viewed by kind.
#[derive(Debug)]
pub(crate) enum Column {
    Text(StringArray),
    /// Text stored once per distinct value: Parquet string columns read as dictionaries (see
    /// `source::open`'s `categorical` columns). Keys index the values array.
    Dict(PrimitiveArray<Int32Type>, StringArray),
    Int(PrimitiveArray<Int64Type>),
    Float(PrimitiveArray<Float64Type>),
    Decimal(PrimitiveArray<Decimal128Type>, i8),
    Date(PrimitiveArray<Date32Type>),
    /// Timestamp values and units per day.
    Timestamp(Vec<Option<i64>>, i64),
    Bool(arrow_array::BooleanArray),
}

fn cast(a: &ArrayRef, to: &DataType, path: &Path, name: &str) -> Result<ArrayRef, PipelineError> {
    arrow_cast::cast(a, to).map_err(|_| PipelineError::WrongType {
        path: path.to_owned(),
        column: name.to_owned(),
        found: a.data_type().to_string(),
        expected: "a value of this column",
    })
}

impl Column {
    /// Views `a`; types without a native view are converted to text.
    pub(crate) fn new(a: &ArrayRef, path: &Path, name: &str) -> Result<Self, PipelineError> {
        Ok(match a.data_type() {
            DataType::Utf8 => Column::Text(a.as_string::<i32>().clone()),
            DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                let d: &DictionaryArray<Int32Type> = a.as_dictionary();
                match d.values().as_string_opt::<i32>() {
                    Some(values) => Column::Dict(d.keys().clone(), values.clone()),
                    None => Column::Text(
                        cast(a, &DataType::Utf8, path, name)?
                            .as_string::<i32>()
                            .clone(),
                    ),
                }
            }
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Column::Int(
                cast(a, &DataType::Int64, path, name)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Column::Float(
                cast(a, &DataType::Float64, path, name)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            DataType::Decimal128(_, s) => {
                Column::Decimal(a.as_primitive::<Decimal128Type>().clone(), *s)
            }
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
                let to = DataType::Decimal128(*p, *s);
                Column::Decimal(
                    cast(a, &to, path, name)?
                        .as_primitive::<Decimal128Type>()
                        .clone(),
                    *s,
                )
            }
            DataType::Date32 | DataType::Date64 => Column::Date(
                cast(a, &DataType::Date32, path, name)?
                    .as_primitive::<Date32Type>()
                    .clone(),
            ),
            DataType::Timestamp(unit, _) => {
                let (values, per_day): (Vec<Option<i64>>, i64) = match unit {
                    TimeUnit::Second => (
                        a.as_primitive::<TimestampSecondType>().iter().collect(),
                        86_400,
                    ),
                    TimeUnit::Millisecond => (
                        a.as_primitive::<TimestampMillisecondType>()
                            .iter()
                            .collect(),
                        86_400_000,
                    ),
                    TimeUnit::Microsecond => (
                        a.as_primitive::<TimestampMicrosecondType>()
                            .iter()
                            .collect(),
                        86_400_000_000,
                    ),
                    TimeUnit::Nanosecond => (
                        a.as_primitive::<TimestampNanosecondType>().iter().collect(),
                        86_400_000_000_000,
                    ),
                };
                Column::Timestamp(values, per_day)
            }
            DataType::Boolean => Column::Bool(a.as_boolean().clone()),
            _ => Column::Text(
                cast(a, &DataType::Utf8, path, name)?
                    .as_string::<i32>()
                    .clone(),
            ),
        })
    }

    /// Checks that this column can hold `expected` at all (a Parquet boolean cannot be an amount).
    pub(crate) fn require(
        &self,
        ok: bool,
        path: &Path,
        name: &str,
        found: &DataType,
        expected: &'static str,
    ) -> Result<(), PipelineError> {
        if ok {
            Ok(())
        } else {
            Err(PipelineError::WrongType {
                path: path.to_owned(),
                column: name.to_owned(),
                found: found.to_string(),
                expected,
            })
        }
    }

    pub(crate) fn can_be_text(&self) -> bool {
        matches!(self, Column::Text(_) | Column::Dict(..) | Column::Int(_))
    }

    pub(crate) fn can_be_date(&self) -> bool {
        matches!(
            self,
            Column::Text(_) | Column::Dict(..) | Column::Date(_) | Column::Timestamp(..)
        )
    }

    pub(crate) fn can_be_number(&self) -> bool {
        matches!(
            self,
            Column::Text(_)
                | Column::Dict(..)
                | Column::Int(_)
                | Column::Float(_)
                | Column::Decimal(..)
        )
    }

    /// The non-blank string of row `i` of a text column (plain or dictionary); `None` when
    /// null, blank or not a text column.
    fn str_cell(&self, i: usize) -> Option<&str> {
        match self {
            Column::Text(a) => text_cell(a, i),
            Column::Dict(keys, values) => {
                dict_key(keys, values, i).and_then(|k| text_cell(values, k))
            }
            _ => None,
        }
    }

    /// Row `i`'s key into the distinct values of a dictionary column (`None`: null row, or not
    /// a dictionary column). Rows with the same key have the same text, so per-value work can
    /// be done once per key.
    pub(crate) fn key(&self, i: usize) -> Option<usize> {
        match self {
            Column::Dict(keys, values) => dict_key(keys, values, i),
            _ => None,
        }
    }

    /// Distinct values a dictionary column's keys index (0 for other columns).
    pub(crate) fn distinct(&self) -> usize {
        match self {
            Column::Dict(_, values) => values.len(),
            _ => 0,
        }
    }

    /// Whether row `i` has a non-blank value (what [`Column::text`] would return, without
    /// formatting it).
    pub(crate) fn present(&self, i: usize) -> bool {
        match self {
            Column::Text(_) | Column::Dict(..) => self.str_cell(i).is_some(),
            Column::Int(a) => !a.is_null(i),
            _ => self.text(i).is_some(),
        }
    }

    /// The text of row `i` (integers formatted in decimal); `None` when null or blank.
    pub(crate) fn text(&self, i: usize) -> Option<Cow<'_, str>> {
        match self {
            Column::Text(_) | Column::Dict(..) => self.str_cell(i).map(Cow::Borrowed),
            Column::Int(a) => (!a.is_null(i)).then(|| Cow::Owned(a.value(i).to_string())),
            Column::Bool(a) => {
                (!a.is_null(i)).then(|| Cow::Borrowed(if a.value(i) { "true" } else { "false" }))
            }
            Column::Float(a) => (!a.is_null(i)).then(|| Cow::Owned(a.value(i).to_string())),
            Column::Decimal(..) | Column::Date(_) | Column::Timestamp(..) => None,
        }
    }

    /// The day of row `i`.
    pub(crate) fn day(&self, i: usize, parser: &DateParser) -> Cell<Day> {
        match self {
            Column::Text(_) | Column::Dict(..) => match self.str_cell(i) {
                None => Cell::Missing,
                Some(t) => parser.parse(t).map_or(Cell::Bad, Cell::Ok),
            },
            Column::Date(a) if !a.is_null(i) => Cell::Ok(Day::from_days(a.value(i))),
            Column::Timestamp(v, per_day) => match v.get(i).copied().flatten() {
                None => Cell::Missing,
                Some(t) => i32::try_from(t.div_euclid(*per_day))
                    .map_or(Cell::Bad, |d| Cell::Ok(Day::from_days(d))),
            },
            _ => Cell::Missing,
        }
    }

    /// Row `i` as an exact amount with `decimals` places, in minor units.
    pub(crate) fn minor_units(&self, i: usize, decimals: u8) -> Cell<i64> {
        let scale = 10i64.pow(u32::from(decimals));
        match self {
            Column::Text(_) | Column::Dict(..) => match self.str_cell(i) {
                None => Cell::Missing,
                Some(t) => parse_minor_units(t, decimals).map_or(Cell::Bad, Cell::Ok),
            },
            Column::Int(a) if !a.is_null(i) => {
                a.value(i).checked_mul(scale).map_or(Cell::Bad, Cell::Ok)
            }
            Column::Float(a) if !a.is_null(i) => {
                // Rounded to the nearest minor unit; NaN, infinities and values past 2^53 are bad.
                let v = (a.value(i) * scale as f64).round();
                if v.is_finite() && v.abs() < 9.0e15 {
                    Cell::Ok(v as i64)
                } else {
                    Cell::Bad
                }
            }
            Column::Decimal(a, s) if !a.is_null(i) => {
                rescale(a.value(i), *s, decimals).map_or(Cell::Bad, Cell::Ok)
            }
            _ => Cell::Missing,
        }
    }

    /// Row `i` as a whole number.
    pub(crate) fn integer(&self, i: usize) -> Cell<i64> {
        match self {
            Column::Int(a) if !a.is_null(i) => Cell::Ok(a.value(i)),
            Column::Text(_) | Column::Dict(..) => match self.str_cell(i) {
                None => Cell::Missing,
                Some(t) => parse_minor_units(t, 0).map_or(Cell::Bad, Cell::Ok),
            },
            Column::Float(a) if !a.is_null(i) => {
                let v = a.value(i);
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Cell::Ok(v as i64)
                } else {
                    Cell::Bad
                }
            }
            Column::Decimal(a, s) if !a.is_null(i) => {
                rescale(a.value(i), *s, 0).map_or(Cell::Bad, Cell::Ok)
            }
            _ => Cell::Missing,
        }
    }

    /// Row `i` as a flag: `1/0`, `true/false`, `yes/no`, `y/n`, `t/f` in any case.
    pub(crate) fn flag(&self, i: usize) -> Cell<bool> {
        match self {
            Column::Bool(a) if !a.is_null(i) => Cell::Ok(a.value(i)),
            Column::Int(a) if !a.is_null(i) => match a.value(i) {
                0 => Cell::Ok(false),
                1 => Cell::Ok(true),
                _ => Cell::Bad,
            },
            Column::Text(_) | Column::Dict(..) => {
                match self.str_cell(i).map(|t| t.trim().to_ascii_lowercase()) {
                    None => Cell::Missing,
                    Some(t) => match t.as_str() {
                        "1" | "true" | "yes" | "y" | "t" => Cell::Ok(true),
                        "0" | "false" | "no" | "n" | "f" => Cell::Ok(false),
                        _ => Cell::Bad,
                    },
                }
            }
            _ => Cell::Missing,
        }
    }
}

/// Whether `t` is empty or only ASCII whitespace (the common non-blank case costs one byte).
fn blank(t: &str) -> bool {
    match t.as_bytes().first() {
        None => true,
        Some(b) if !b.is_ascii_whitespace() => false,
        Some(_) => t.bytes().all(|b| b.is_ascii_whitespace()),
    }
}

/// The key of row `i`, when not null and within `values` (a key out of range reads as null:
/// the reader validates keys, but nothing here may panic on a file's content).
fn dict_key(keys: &PrimitiveArray<Int32Type>, values: &StringArray, i: usize) -> Option<usize> {
    if i >= keys.len() || keys.is_null(i) {
        return None;
    }
    usize::try_from(keys.value(i))
        .ok()
        .filter(|k| *k < values.len())
}

fn text_cell(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) {
        return None;
    }
    let t = a.value(i);
    if blank(t) { None } else { Some(t) }
}

/// `value * 10^-scale` in units of `10^-decimals`, when exact and within 64 bits.
fn rescale(value: i128, scale: i8, decimals: u8) -> Option<i64> {
    let shift = i32::from(decimals) - i32::from(scale);
    let v = if shift == 0 {
        value
    } else if shift > 0 {
        value.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?
    } else {
        let d = 10i128.checked_pow(shift.unsigned_abs())?;
        if value % d != 0 {
            return None;
        }
        value / d
    };
    i64::try_from(v).ok()
}

/// A fast 64-bit mixing hash (FxHash's multiply-rotate over words, with a final avalanche):
/// not for adversaries, for fingerprints and hash tables over a data holder's own data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHash(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHash {
    pub(crate) fn new(seed: u64) -> Self {
        FastHash(seed)
    }

    #[inline]
    pub(crate) fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }

    #[inline]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.bytes_mapped(b, |w| w);
    }

    /// [`FastHash::bytes`] of the bytes that `map` makes of each little-endian 8-byte word
    /// (the last one zero-padded, so `map` must keep zero bytes zero).
    #[inline]
    pub(crate) fn bytes_mapped(&mut self, b: &[u8], map: impl Fn(u64) -> u64) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(map(u64::from_le_bytes(w)));
        }
        let rem = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        self.word(map(u64::from_le_bytes(w)) ^ ((b.len() as u64) << 56));
    }

    #[inline]
    pub(crate) fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// The hash of one text value (its bytes and length), as folded into row fingerprints.
#[inline]
fn text_digest(t: &str) -> u64 {
    let mut h = FastHash::new(0x6a09_e667_f3bc_c908);
    h.bytes(t.as_bytes());
    h.finish()
}

/// splitmix64's finalizer.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    // Every input bit affects every output bit.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Every row's fingerprint over all columns of `batch`.
pub(crate) fn fingerprints(batch: &arrow_array::RecordBatch) -> Vec<u64> {
    // Rows are independent: slices of rows are hashed on the rayon pool (zero-copy slices of
    // every column), with the same result as one pass.
    const ROWS: usize = 8_192;
    let mut fp = vec![0x9e37_79b9_7f4a_7c15u64; batch.num_rows()];
    fp.par_chunks_mut(ROWS).enumerate().for_each(|(i, rows)| {
        for c in batch.columns() {
            fingerprint_column(&c.slice(i * ROWS, rows.len()), rows);
        }
        for f in rows.iter_mut() {
            *f = mix(*f);
        }
    });
    fp
}

/// Folds every row's value of column `a` into `fp` (one running hash per row), for exact
/// duplicate detection over *all* columns. Nulls and values are told apart; text is folded as
/// the hash of its bytes and length ([`text_digest`]), so a dictionary column costs one hash
/// per distinct value and folds to the same fingerprint as the same text stored plainly;
/// fixed-width types are folded by their bytes. The caller finishes each row's hash once,
/// after the last column ([`mix`]).
pub(crate) fn fingerprint_column(a: &ArrayRef, fp: &mut [u64]) {
    let text;
    let a: &ArrayRef = match a.data_type() {
        DataType::Utf8 => a,
        DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => a,
        t if t.primitive_width().is_some() => a,
        _ => match arrow_cast::cast(a, &DataType::Utf8) {
            Ok(t) => {
                text = t;
                &text
            }
            Err(_) => return,
        },
    };
    let fold = |f: &mut u64, digest: Option<u64>| {
        let mut h = FastHash::new(*f);
        h.word(digest.unwrap_or(u64::MAX));
        *f = h.0;
    };
    if let Some(s) = a.as_string_opt::<i32>() {
        for (i, f) in fp.iter_mut().enumerate() {
            fold(f, (!s.is_null(i)).then(|| text_digest(s.value(i))));
        }
        return;
    }
    if let Some(d) = a.as_dictionary_opt::<Int32Type>()
        && let Some(values) = d.values().as_string_opt::<i32>()
    {
        let keys = d.keys();
        // A null key or a null value is a null row, as in a plain column.
        let digest = |k: usize| (!values.is_null(k)).then(|| text_digest(values.value(k)));
        // Digests of the distinct values once, unless the dictionary is larger than the slice.
        let table: Option<Vec<Option<u64>>> =
            (values.len() <= fp.len()).then(|| (0..values.len()).map(digest).collect());
        for (i, f) in fp.iter_mut().enumerate() {
            let d = dict_key(keys, values, i).and_then(|k| match &table {
                Some(t) => t.get(k).copied().flatten(),
                None => digest(k),
            });
            fold(f, d);
        }
        return;
    }
    let data = a.to_data();
    let width = a.data_type().primitive_width().unwrap_or(0);
    let Some(buf) = data.buffers().first() else {
        return;
    };
    let start = data.offset() * width;
    // The null mask once, not a dynamic `is_null` call per row.
    let nulls = data.nulls();
    for (i, f) in fp.iter_mut().enumerate() {
        let mut h = FastHash::new(*f);
        if nulls.is_some_and(|n| n.is_null(i)) {
            h.word(u64::MAX);
        } else if let Some(bytes) = buf
            .as_slice()
            .get(start + i * width..start + (i + 1) * width)
        {
            h.bytes(bytes);
        }
        *f = h.0;
    }
}

/// Why an amount is not a valid decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Empty field.
    #[error("amount is empty")]
    Empty,
    /// Not `[-+]digits[.digits]`.
    #[error("amount is not a plain decimal number")]
    NotDecimal,
    /// More decimal places than the minor unit has.
    #[error("amount has more than {0} decimal places")]
    TooPrecise(u8),
    /// Does not fit in 64 bits of minor units.
    #[error("amount is too large")]
    Overflow,
}

/// Parses a decimal string exactly into minor units with `decimals` places.
pub fn parse_minor_units(text: &str, decimals: u8) -> Result<i64, AmountError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    let (negative, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(AmountError::NotDecimal);
    }
    if frac_part.len() > usize::from(decimals) {
        return Err(AmountError::TooPrecise(decimals));
    }
    let mut value: i64 = 0;
    let padded = frac_part
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(usize::from(decimals));
    for b in int_part.bytes().chain(padded) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(AmountError::Overflow)?;
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        for (text, want) in [
            ("12.34", 1234),
            ("12.3", 1230),
            ("12", 1200),
            (" -0.05 ", -5),
            ("+7.", 700),
            (".5", 50),
            ("0", 0),
            ("92233720368547758.07", i64::MAX),
        ] {
            assert_eq!(parse_minor_units(text, 2), Ok(want), "{text}");
        }
        assert_eq!(parse_minor_units("12", 0), Ok(12));
    }

    #[test]
    fn bad_amounts_are_refused() {
        assert_eq!(parse_minor_units("", 2), Err(AmountError::Empty));
        for text in ["abc", "1,5", "1e3", "--1", "1.2.3", ".", "-", "0x10", "١٢"] {
            assert_eq!(
                parse_minor_units(text, 2),
                Err(AmountError::NotDecimal),
                "{text}"
            );
        }
        assert_eq!(
            parse_minor_units("1.234", 2),
            Err(AmountError::TooPrecise(2))
        );
        assert_eq!(
            parse_minor_units("92233720368547758.08", 2),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn rescale_is_exact() {
        assert_eq!(rescale(12345, 2, 2), Some(12345));
        assert_eq!(rescale(12345, 3, 2), None);
        assert_eq!(rescale(12340, 3, 2), Some(1234));
        assert_eq!(rescale(5, 0, 2), Some(500));
        assert_eq!(rescale(i128::MAX, 0, 2), None);
    }

    #[test]
    fn fingerprints_tell_nulls_values_and_columns_apart() {
        use std::sync::Arc;
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some(""),
            Some("a"),
        ]));
        let mut fp = vec![0u64; 4];
        fingerprint_column(&a, &mut fp);
        let fp: Vec<u64> = fp.into_iter().map(mix).collect();
        let mut fp = fp;
        assert_eq!(fp[0], fp[3]);
        assert_ne!(fp[1], fp[2]);
        assert_ne!(fp[0], fp[1]);
        let b: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1, 1, 1, 2]));
        fingerprint_column(&b, &mut fp);
        assert_ne!(fp[0], fp[3]);
    }

    /// Dictionary columns fold to the fingerprints of the same text stored plainly, whatever
    /// the dictionary's order, duplicate values or size (large dictionaries hash per row), so
    /// exact duplicates are found across batches whose dictionaries differ.
    #[test]
    fn dictionary_text_fingerprints_like_plain_text() {
        use std::sync::Arc;
        let rows = [
            Some("web"),
            None,
            Some(""),
            Some("store"),
            Some("web"),
            Some(" web"),
        ];
        let fold = |a: ArrayRef| {
            let mut fp = vec![7u64; rows.len()];
            fingerprint_column(&a, &mut fp);
            fp
        };
        let plain = fold(Arc::new(StringArray::from(rows.to_vec())));
        let dict = |values: Vec<&str>, keys: Vec<Option<i32>>| -> ArrayRef {
            let keys = PrimitiveArray::<Int32Type>::from(keys);
            Arc::new(DictionaryArray::new(
                keys,
                Arc::new(StringArray::from(values)),
            ))
        };
        let layouts = [
            dict(
                vec!["web", "", "store", " web"],
                vec![Some(0), None, Some(1), Some(2), Some(0), Some(3)],
            ),
            // Another order, a duplicate value, unused values: more values than rows.
            dict(
                vec![" web", "store", "web", "web", "", "x", "y", "z"],
                vec![Some(2), None, Some(4), Some(1), Some(3), Some(0)],
            ),
        ];
        // A null *value* (not key) reads as a null row too.
        let null_value: ArrayRef = Arc::new(DictionaryArray::new(
            PrimitiveArray::<Int32Type>::from(vec![0, 1, 2, 3, 0, 4]),
            Arc::new(StringArray::from(vec![
                Some("web"),
                None,
                Some(""),
                Some("store"),
                Some(" web"),
            ])),
        ));
        assert_eq!(fold(null_value.clone()), plain);
        let layouts = [
            (layouts[0].clone(), true),
            (layouts[1].clone(), true),
            (null_value, false),
        ];
        for (d, null_key) in layouts {
            assert_eq!(fold(d.clone()), plain);
            let c = Column::new(&d, Path::new("t"), "channel").unwrap();
            let texts: Vec<Option<String>> = (0..rows.len())
                .map(|i| c.text(i).map(|t| t.into_owned()))
                .collect();
            assert_eq!(
                texts,
                [
                    Some("web"),
                    None,
                    None,
                    Some("store"),
                    Some("web"),
                    Some(" web")
                ]
                .map(|t| t.map(str::to_owned))
            );
            assert_eq!(c.key(1).is_none(), null_key, "a null key is no key");
        }
        assert_ne!(
            plain[0], plain[5],
            "' web' is not 'web' before normalization"
        );
    }
}
