//! Reading a node's transactions for the first job type: distinct customers, rows and the total
//! amount in minor currency units.
//!
//! Amounts are parsed as exact decimals into integers (no floating point anywhere): with
//! `amount_decimals = 2`, `"12.3"` is 1230 and `"-0.05"` is -5; more decimal places than
//! configured, or anything that is not a plain decimal number, is an error that names the file,
//! line and column. Nothing is skipped silently: a bad row fails the whole computation, and the
//! node refuses the job with the location (never the value) as the reason.

use std::collections::HashMap;
use std::path::PathBuf;

/// How to read the transactions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionsSource {
    /// The CSV file (with a header row).
    pub path: PathBuf,
    /// Field delimiter, e.g. `b','`.
    pub delimiter: u8,
    /// Header of the customer id column.
    pub customer_column: String,
    /// Header of the amount column.
    pub amount_column: String,
    /// Decimal places of the currency's minor unit (2 for cents).
    pub amount_decimals: u8,
}

/// The node's local totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransactionTotals {
    /// Distinct customer ids in the file.
    pub customers: u64,
    /// Data rows (transactions).
    pub rows: u64,
    /// Sum of amounts in minor units.
    pub amount_minor: i64,
}

/// Why the transactions could not be totalled.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: csv::Error,
    },
    /// A configured column is not in the header.
    #[error("{}: no column named {column:?} in the header (found: {found})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The configured column name.
        column: String,
        /// The header's column names.
        found: String,
    },
    /// A value is unusable.
    #[error("{}:{line}: column {column:?}: {problem}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line in the file.
        line: u64,
        /// The column.
        column: String,
        /// What is wrong (never the value itself: it may identify a customer).
        problem: String,
    },
}

impl DataError {
    /// The error as told to the coordinator: the file's name without its directory (the node's
    /// file layout is its own business), the line and column, and the problem. Never a value.
    pub fn detail_for_peer(&self) -> String {
        let name = |p: &PathBuf| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        match self {
            DataError::Read { path, .. } => format!("cannot read {}", name(path)),
            DataError::MissingColumn { path, column, .. } => {
                format!("{}: no column named {column:?}", name(path))
            }
            DataError::BadValue {
                path,
                line,
                column,
                problem,
            } => {
                format!("{}:{line}: column {column:?}: {problem}", name(path))
            }
        }
    }
}

/// One customer's rows and summed amount (minor units). The customer's id is dropped once its
/// rows are grouped: nothing downstream needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CustomerTotals {
    /// Rows (transactions) of the customer.
    pub rows: u64,
    /// Sum of the customer's amounts in minor units.
    pub amount_minor: i64,
}

/// Totals after clipping every customer to at most `max_rows` rows and an amount in
/// `[-max_abs_amount, max_abs_amount]`: the contribution whose sensitivity the release's noise
/// is sized for.
pub fn clipped_totals(
    customers: &[CustomerTotals],
    max_rows: u64,
    max_abs_amount: i64,
) -> TransactionTotals {
    let mut t = TransactionTotals {
        customers: customers.len() as u64,
        ..Default::default()
    };
    for c in customers {
        t.rows += c.rows.min(max_rows);
        // |clamped| <= max_abs_amount, so the sum of at most 2^63 / max customers cannot wrap
        // for any file this process can hold; saturate rather than wrap regardless.
        t.amount_minor = t
            .amount_minor
            .saturating_add(c.amount_minor.clamp(-max_abs_amount, max_abs_amount));
    }
    t
}

/// Reads `source` and groups it by customer.
pub fn per_customer(source: &TransactionsSource) -> Result<Vec<CustomerTotals>, DataError> {
    let path = &source.path;
    let read_err = |source| DataError::Read {
        path: path.clone(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(source.delimiter)
        .has_headers(true)
        .from_path(path)
        .map_err(read_err)?;
    let headers = reader.headers().map_err(read_err)?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: path.clone(),
                column: name.to_owned(),
                found: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let (cust_idx, amount_idx) = (
        column(&source.customer_column)?,
        column(&source.amount_column)?,
    );
    let mut customers: HashMap<String, CustomerTotals> = HashMap::new();
    let mut total: i64 = 0;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(read_err)? {
        let line = record.position().map_or(0, csv::Position::line);
        let bad = |column: &str, problem: String| DataError::BadValue {
            path: path.clone(),
            line,
            column: column.to_owned(),
            problem,
        };
        let customer = record.get(cust_idx).map(str::trim).unwrap_or_default();
        if customer.is_empty() {
            return Err(bad(&source.customer_column, "customer id is empty".into()));
        }
        let raw_amount = record.get(amount_idx).unwrap_or_default();
        let amount = parse_minor_units(raw_amount, source.amount_decimals)
            .map_err(|e| bad(&source.amount_column, e.to_string()))?;
        total = total.checked_add(amount).ok_or_else(|| {
            bad(
                &source.amount_column,
                "total amount overflows 64 bits".into(),
            )
        })?;
        let entry = match customers.get_mut(customer) {
            Some(e) => e,
            None => customers.entry(customer.to_owned()).or_default(),
        };
        entry.rows += 1;
        // Bounded by |total| checks above only for the running file total; a customer's own
        // sum is a partial sum of the same values, checked here too.
        entry.amount_minor = entry.amount_minor.checked_add(amount).ok_or_else(|| {
            bad(
                &source.amount_column,
                "a customer's amount overflows 64 bits".into(),
            )
        })?;
    }
    Ok(customers.into_values().collect())
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
    use std::path::Path;

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

    fn source(dir: &Path, body: &str) -> TransactionsSource {
        let path = dir.join("t.csv");
        std::fs::write(&path, body).unwrap();
        TransactionsSource {
            path,
            delimiter: b',',
            customer_column: "customer_id".into(),
            amount_column: "amount".into(),
            amount_decimals: 2,
        }
    }

    #[test]
    fn totals_count_distinct_customers_rows_and_exact_amounts() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(
            dir.path(),
            "date,customer_id,amount\n2026-01-01,c1,10.10\n2026-01-02,c2,0.20\n2026-01-03, c1 ,-1.00\n",
        );
        let mut per = per_customer(&s).unwrap();
        per.sort_by_key(|c| c.rows);
        assert_eq!(
            per,
            vec![
                CustomerTotals {
                    rows: 1,
                    amount_minor: 20
                },
                CustomerTotals {
                    rows: 2,
                    amount_minor: 910
                }
            ]
        );
        // Clipping: at most 1 row and 5.00 per customer.
        assert_eq!(
            clipped_totals(&per, 1, 500),
            TransactionTotals {
                customers: 2,
                rows: 2,
                amount_minor: 520
            }
        );
        assert_eq!(
            clipped_totals(
                &[CustomerTotals {
                    rows: 3,
                    amount_minor: -900
                }],
                9,
                500
            )
            .amount_minor,
            -500
        );
        // Bounds no customer reaches leave the exact totals.
        assert_eq!(
            clipped_totals(&per, u64::MAX, i64::MAX),
            TransactionTotals {
                customers: 2,
                rows: 3,
                amount_minor: 930
            }
        );
    }

    #[test]
    fn a_bad_row_is_located_and_its_value_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path(), "customer_id,amount\nc1,1.00\nc2,12abc\n");
        let e = per_customer(&s).unwrap_err().to_string();
        assert!(
            e.ends_with("t.csv:3: column \"amount\": amount is not a plain decimal number"),
            "{e}"
        );
        assert!(!e.contains("12abc") && !e.contains("c2"), "{e}");
        let s = source(dir.path(), "customer_id,amount\n ,1.00\n");
        assert!(
            per_customer(&s)
                .unwrap_err()
                .to_string()
                .contains("customer id is empty")
        );
    }

    #[test]
    fn missing_columns_and_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path(), "client,amount\nc1,1\n");
        let e = per_customer(&s).unwrap_err().to_string();
        assert!(
            e.contains("no column named \"customer_id\"") && e.contains("client, amount"),
            "{e}"
        );
        let mut s = source(dir.path(), "");
        s.path = dir.path().join("absent.csv");
        assert!(
            per_customer(&s)
                .unwrap_err()
                .to_string()
                .contains("absent.csv")
        );
    }
}
