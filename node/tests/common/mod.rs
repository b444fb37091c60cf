//! Specs shared by the pipeline tests: the column names `fedprof gen-data` writes.

#![allow(
    dead_code,
    reason = "each test binary includes this module and uses only some of it"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;

use fedprof_node::pipeline::spec::{CustomersConfig, CustomersSpec};
use fedprof_node::pipeline::{self, DateParser, PipelineSpec, SourceSpec, TransactionsSpec};

/// The transactions file at `path` (`customer_id`, `date`, `amount`, `channel`, `category`,
/// ISO dates) as of `as_of` (YYYY-MM-DD).
pub(crate) fn transactions_spec(path: &Path, as_of: &str) -> PipelineSpec {
    let t = TransactionsSpec {
        source: SourceSpec::new(path),
        customer: "customer_id".into(),
        date: "date".into(),
        amount: "amount".into(),
        channel: Some("channel".into()),
        category: Some("category".into()),
        date_parser: DateParser::Iso,
    };
    PipelineSpec::new(t, pipeline::dates::parse_iso_day(as_of).unwrap())
}

/// The `customers.csv` of a generated node directory.
pub(crate) fn customers_spec(dir: &Path) -> CustomersSpec {
    let columns = CustomersConfig {
        path: dir.join("customers.csv"),
        id_column: "customer_id".into(),
        birth_date_column: Some("birth_date".into()),
        age_column: None,
        gender_column: Some("gender".into()),
        region_column: Some("region".into()),
        income_band_column: Some("income_band".into()),
        signup_date_column: Some("signup_date".into()),
        date_format: None,
        delimiter: ',',
    };
    CustomersSpec {
        source: SourceSpec::new(dir.join("customers.csv")),
        columns,
        date_parser: DateParser::Iso,
    }
}
