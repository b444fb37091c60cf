//! `fedprof gen-data` and `fedprof features` through the real binary: flags form, config form,
//! pseudonyms versus --reveal-ids, reports, and errors without panics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

fn fedprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = fedprof(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "fedprof {}\n{out}\n{err}",
        args.join(" ")
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn gen_data_then_features_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&[
        "gen-data",
        "--scenario",
        "brands",
        "--nodes",
        "2",
        "--customers",
        "300",
        "--seed",
        "4",
        "--out",
        s(&data),
    ]);
    assert!(
        out.contains("brand-1") && out.contains("try: fedprof features"),
        "{out}"
    );
    let tx = data.join("brand-1/transactions.csv");
    assert!(
        data.join("brand-2/transactions.parquet").is_file()
            && data.join("brand-1/manifest.json").is_file()
    );

    let features = dir.path().join("f.csv");
    let base = [
        "features",
        "--transactions",
        s(&tx),
        "--customer-col",
        "customer_id",
        "--date-col",
        "date",
        "--amount-col",
        "amount",
        "--channel-col",
        "channel",
        "--category-col",
        "category",
        "--as-of",
        "2026-06-30",
        "--out",
        s(&features),
    ];
    let out = ok(&base);
    assert!(
        out.contains("pseudonymized ids")
            && out.contains("transactions:")
            && out.contains("quarantined"),
        "{out}"
    );
    let text = std::fs::read_to_string(&features).unwrap();
    let header = text.lines().next().unwrap();
    for col in [
        "customer",
        "frequency",
        "recency_days",
        "tenure_days",
        "monetary_mean_repeat",
        "lifecycle_stage",
        "channel_share_app",
        "category_share_shoes",
    ] {
        assert!(header.split(',').any(|h| h == col), "{col} in {header}");
    }
    let first = text.lines().nth(1).unwrap();
    assert_eq!(
        first.split(',').next().unwrap().len(),
        64,
        "a pseudonym: {first}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("f.csv.quality.json")).unwrap(),
    )
    .unwrap();
    let t = &report["tables"][0];
    assert_eq!(
        t["rows_in"],
        t["rows_used"].as_u64().unwrap() + t["rows_quarantined"].as_u64().unwrap()
    );
    assert!(dir.path().join("f.csv.quarantine.csv").is_file());

    let mut reveal = base.to_vec();
    reveal.push("--reveal-ids");
    let out = ok(&reveal);
    assert!(out.contains("RAW customer ids"), "{out}");
    let text = std::fs::read_to_string(&features).unwrap();
    assert!(
        text.lines().nth(1).unwrap().starts_with("c0"),
        "{text:.200}"
    );
}

#[test]
fn features_from_a_node_config_with_its_pseudonym_key() {
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    ok(&[
        "federation",
        "init",
        "--dir",
        s(&fed),
        "--coordinator",
        "127.0.0.1:7300",
        "--nodes",
        "a",
    ]);
    let key = fed.join("parties/node-a/pseudonym.key");
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    ok(&[
        "gen-data",
        "--scenario",
        "bank",
        "--nodes",
        "1",
        "--customers",
        "200",
        "--out",
        s(&dir.path().join("g")),
    ]);
    std::fs::create_dir_all(fed.join("data/a")).unwrap();
    for f in ["transactions.parquet", "customers.csv", "credit.csv"] {
        std::fs::copy(
            dir.path().join("g/branch-1").join(f),
            fed.join("data/a").join(f),
        )
        .unwrap();
    }
    let config = fed.join("node-a.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("transactions.csv", "transactions.parquet")
        .replace("# [data.customers]", "[data.customers]")
        .replace(
            "# path = \"data/a/customers.csv\"",
            "path = \"data/a/customers.csv\"",
        )
        .replace("# birth_date_column", "birth_date_column")
        .replace("# [data.credit]", "[data.credit]")
        .replace(
            "# path = \"data/a/credit.csv\"",
            "path = \"data/a/credit.csv\"",
        )
        .replace("# [data.cleaning]", "[data.cleaning]")
        .replace("# start = \"2020-01-01\"", "start = \"2024-06-30\"");
    std::fs::write(&config, text).unwrap();
    let out_file = dir.path().join("f.parquet");
    let out = ok(&[
        "features",
        "--config",
        s(&config),
        "--as-of",
        "2026-06-30",
        "--out",
        s(&out_file),
    ]);
    assert!(
        out.contains("customers:") && out.contains("credit:"),
        "{out}"
    );
    assert!(std::fs::metadata(&out_file).unwrap().len() > 1000);

    // A key readable by others is refused, with the fix named.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = fedprof(&[
        "features",
        "--config",
        s(&config),
        "--as-of",
        "2026-06-30",
        "--out",
        s(&out_file),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("chmod 600"), "{err}");
}

#[test]
fn bad_input_fails_with_file_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let out = dir.path().join("o.csv");
    let o = fedprof(&[
        "features",
        "--transactions",
        s(&missing),
        "--customer-col",
        "c",
        "--date-col",
        "d",
        "--amount-col",
        "a",
        "--as-of",
        "2026-01-01",
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nope.csv"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let o = fedprof(&["features", "--transactions", s(&missing), "--out", s(&out)]);
    assert!(!o.status.success());
    let help = ok(&["--help"]);
    assert!(
        help.contains("features") && help.contains("gen-data"),
        "{help}"
    );
}

/// A Parquet file whose footer carries a damaged embedded Arrow schema (found by fuzzing; the
/// arrow-ipc decoder panics on it): the command reads the file by its Parquet schema, says so in
/// a warning, and prints no panic message.
#[test]
fn a_damaged_arrow_schema_is_a_warning_not_a_panic_message() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("node/tests/data/bad-arrow-schema.parquet");
    let out_file = dir.path().join("f.csv");
    let o = fedprof(&[
        "features",
        "--transactions",
        s(&file),
        "--customer-col",
        "customer_id",
        "--date-col",
        "date",
        "--amount-col",
        "amount",
        "--as-of",
        "2026-06-30",
        "--out",
        s(&out_file),
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("51 rows in"), "{out}");
    assert!(err.contains("embedded Arrow schema is malformed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
