//! SQL views (`--features sql`): a data holder's own schema, mapped by a query joining two
//! files, gives exactly the features of the same data in the logical layout.
#![cfg(feature = "sql")]
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use std::fmt::Write as _;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use fedprof_node::pipeline::sql::SqlView;
use fedprof_node::pipeline::{self, Day, PipelineSpec, RunOptions, SourceSpec, TransactionsSpec};
use fedprof_synth::{Plan, Scenario};

fn spec(
    path: &std::path::Path,
    customer: &str,
    date: &str,
    amount: &str,
    as_of: Day,
) -> PipelineSpec {
    let t = TransactionsSpec {
        source: SourceSpec::new(path),
        customer: customer.into(),
        date: date.into(),
        amount: amount.into(),
        channel: Some("channel".into()),
        category: Some("category".into()),
        date_parser: pipeline::DateParser::new(None).unwrap(),
    };
    let mut s = PipelineSpec::new(t, as_of);
    s.start = Day::from_ymd(2024, 6, 30).unwrap();
    s
}

#[test]
fn a_view_over_the_holders_own_schema_gives_the_same_features() {
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = Plan::new(Scenario::Bank, 1, 1_500, 4, tmp.path());
    plan.dirty_per_million = 0;
    plan.parquet = false;
    let summary = fedprof_synth::generate(&plan, &|_, _| {}).unwrap();
    let (dir, _) = &summary.nodes[0];
    let logical = dir.join("transactions.csv");

    // The holder's layout: amounts in cents, the customer behind an account number in a second
    // file, other column names.
    let text = std::fs::read_to_string(&logical).unwrap();
    let mut tx = String::from("id,acct,booked,cents,channel,category\n");
    let mut accounts = String::from("acct,client\n");
    let mut seen = std::collections::BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let next = seen.len();
        let acct = *seen.entry(f[1].to_owned()).or_insert(next);
        let cents = fedprof_node::pipeline::parse_minor_units(f[3], 2).unwrap();
        writeln!(tx, "{},A{acct},{},{cents},{},{}", f[0], f[2], f[4], f[5]).unwrap();
    }
    for (client, acct) in &seen {
        writeln!(accounts, "A{acct},{client}").unwrap();
    }
    let own = tmp.path().join("bookings.csv");
    let accts = tmp.path().join("accounts.csv");
    std::fs::write(&own, tx).unwrap();
    std::fs::write(&accts, accounts).unwrap();

    let as_of = Day::from_ymd(2026, 6, 30).unwrap();
    let key = Pseudonymizer::new(SecretKey32::from_bytes([5; 32]));
    let opts = RunOptions {
        reveal_ids: false,
        quarantine: None,
        progress: None,
    };
    let direct = pipeline::compute(
        &spec(&logical, "customer_id", "date", "amount", as_of),
        &key,
        &opts,
    )
    .unwrap();

    let mut viewed = spec(&own, "customer_id", "date", "amount", as_of);
    viewed.transactions.source.sql = Some(SqlView {
        tables: vec![
            ("transactions".into(), own.clone()),
            ("accounts".into(), accts.clone()),
        ],
        query: "SELECT a.client AS customer_id, CAST(t.booked AS VARCHAR) AS date, \
                CAST(t.cents AS DECIMAL(18, 0)) / 100 AS amount, t.channel, t.category \
                FROM transactions t JOIN accounts a ON t.acct = a.acct"
            .into(),
        field: "data.sql.query".into(),
    });
    let via_sql = pipeline::compute(&viewed, &key, &opts).unwrap();
    assert!(direct.features.len() > 1_000);
    assert_eq!(via_sql.features, direct.features);

    // A query error names the configured field.
    let mut bad = viewed.clone();
    if let Some(v) = &mut bad.transactions.source.sql {
        v.query = "SELECT nope FROM transactions".into();
    }
    let e = pipeline::compute(&bad, &key, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.sql.query") && e.contains("nope"), "{e}");
}
