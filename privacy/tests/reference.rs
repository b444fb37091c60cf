//! fedprof's (epsilon, delta) conversion and Gaussian composition against Google's
//! dp-accounting, from `tests/data/dp_accounting_reference.json`, which
//! `benches/compare/dp_accounting.sh` regenerates (see `benches/compare/dp_accounting.py` for
//! exactly which dp-accounting functions produce each number).

#![expect(
    clippy::expect_used,
    reason = "tests: a failed expect is a failed test"
)]

use fedprof_privacy::{
    Rho, Variance, compose, delta_for_epsilon, epsilon_at_delta, epsilon_for_delta, gaussian_rho,
    group_rho,
};
use num_bigint::BigUint;
use num_rational::Ratio;
use serde_json::Value;

const REL_TOL: f64 = 1e-6;

fn data() -> Value {
    let text = include_str!("data/dp_accounting_reference.json");
    serde_json::from_str(text).expect("reference JSON parses")
}

fn rel(a: f64, b: f64) -> f64 {
    (a / b - 1.0).abs()
}

fn rho_of(v: &Value) -> Rho {
    v.as_str()
        .expect("rho is a string")
        .parse()
        .expect("rho is exact")
}

#[test]
fn rho_to_epsilon_matches_dp_accounting() {
    let d = data();
    let rows = d["rho_to_epsilon"].as_array().expect("rows");
    assert_eq!(rows.len(), 27);
    println!(
        "| rho | delta | fedprof epsilon | dp-accounting (dense orders) | rel. diff | dp-accounting (default orders) |"
    );
    for row in rows {
        let rho = rho_of(&row["rho"]);
        let delta = row["delta"].as_f64().expect("delta");
        let reference = row["epsilon"].as_f64().expect("epsilon");
        let coarse = row["epsilon_default_orders"].as_f64().expect("default");
        let ours = epsilon_for_delta(&rho, delta).expect("converts");
        println!(
            "| {rho} | {delta:e} | {ours:.9} | {reference:.9} | {:.1e} | {coarse:.9} |",
            rel(ours, reference)
        );
        assert!(
            rel(ours, reference) <= REL_TOL,
            "rho {rho}, delta {delta}: {ours} vs {reference}"
        );
        // Minimising over continuous alpha can only do better than a grid.
        assert!(
            ours <= coarse * (1.0 + 1e-12),
            "rho {rho}, delta {delta}: {ours} vs grid {coarse}"
        );
    }
}

/// The reference epsilon of `rho` at `delta`, which must be in the table.
fn reference_epsilon(d: &Value, rho: &str, delta: f64) -> f64 {
    let rho: Rho = rho.parse().expect("exact");
    d["rho_to_epsilon"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| rho_of(&r["rho"]) == rho && r["delta"].as_f64() == Some(delta))
        .and_then(|r| r["epsilon"].as_f64())
        .expect("the rho and delta are in the reference table")
}

/// The figures the audit and the reports print for the defaults: the node's period cap
/// (rho 2), a year of monthly caps (24), and a person at three holders of a job of rho 1/2
/// (group privacy: 3^2 * 1/2 = 9/2).
#[test]
fn default_caps_and_group_privacy_are_pinned() {
    let d = data();
    let half: Rho = "1/2".parse().expect("exact");
    let person = group_rho(&half, 3);
    assert_eq!(person, "9/2".parse::<Rho>().expect("exact"));
    assert_eq!(group_rho(&half, 1), half);
    let year = compose(&vec!["2".parse::<Rho>().expect("exact"); 12]);
    assert_eq!(year, "24".parse::<Rho>().expect("exact"));
    for (rho, delta, about) in [
        ("2", 1e-6, 11.69),
        ("24", 1e-6, 58.83),
        ("9/2", 1e-6, 19.23),
        ("1/2", 1e-6, 5.222),
        ("27/8", 1e-6, 16.07),
    ] {
        let reference = reference_epsilon(&d, rho, delta);
        let ours = epsilon_at_delta(&rho.parse().expect("exact"), delta);
        assert!(
            rel(ours, reference) <= REL_TOL,
            "rho {rho}: {ours} vs {reference}"
        );
        assert!((ours - about).abs() < 0.01, "rho {rho}: {ours}");
    }
    assert!(rel(epsilon_at_delta(&person, 1e-6), 19.229510437656728) <= REL_TOL);
    assert_eq!(epsilon_at_delta(&half, 1.5), f64::INFINITY);
}

#[test]
fn gaussian_compositions_match_dp_accounting() {
    let d = data();
    let rows = d["compositions"].as_array().expect("rows");
    assert_eq!(rows.len(), 12);
    for row in rows {
        let mut losses = Vec::new();
        for m in row["mechanisms"].as_array().expect("mechanisms") {
            let count = m["count"].as_u64().expect("count");
            let sens: Ratio<BigUint> = {
                let r: Rho = m["sensitivity_sq"]
                    .as_str()
                    .expect("sensitivity")
                    .parse()
                    .expect("exact");
                r.as_ratio().clone()
            };
            let variance: Variance = m["variance"]
                .as_str()
                .expect("variance")
                .parse()
                .expect("exact");
            for _ in 0..count {
                losses.push(gaussian_rho(&sens, &variance));
            }
        }
        let rho = compose(&losses);
        // The exact rho equals Python's Fraction arithmetic.
        assert_eq!(rho, rho_of(&row["rho"]), "{}", row["name"]);
        let delta = row["delta"].as_f64().expect("delta");
        let reference = row["epsilon"].as_f64().expect("epsilon");
        let ours = epsilon_for_delta(&rho, delta).expect("converts");
        println!(
            "| {} | {rho} | {delta:e} | {ours:.9} | {reference:.9} | {:.1e} |",
            row["name"],
            rel(ours, reference)
        );
        assert!(
            rel(ours, reference) <= REL_TOL,
            "{}: {ours} vs {reference}",
            row["name"]
        );
    }
}

#[test]
fn epsilon_to_delta_matches_dp_accounting() {
    let d = data();
    let rows = d["epsilon_to_delta"].as_array().expect("rows");
    assert!(!rows.is_empty());
    for row in rows {
        let rho = rho_of(&row["rho"]);
        let eps = row["epsilon"].as_f64().expect("epsilon");
        let reference = row["delta"].as_f64().expect("delta");
        let ours = delta_for_epsilon(&rho, eps).expect("converts");
        println!(
            "| {rho} | {eps} | {ours:.6e} | {reference:.6e} | {:.1e} |",
            rel(ours, reference)
        );
        assert!(
            rel(ours, reference) <= REL_TOL,
            "rho {rho}, eps {eps}: {ours} vs {reference}"
        );
    }
}

#[test]
fn a_perturbed_rho_would_be_caught() {
    // The comparison is sharp enough to see a 0.01% error in rho.
    let d = data();
    let row = &d["rho_to_epsilon"][4];
    let rho = rho_of(&row["rho"]);
    let bumped = Rho::from_ratio_exact(
        rho.as_ratio() * Ratio::new(BigUint::from(10_001u32), BigUint::from(10_000u32)),
    );
    let delta = row["delta"].as_f64().expect("delta");
    let ours = epsilon_for_delta(&bumped, delta).expect("converts");
    assert!(rel(ours, row["epsilon"].as_f64().expect("epsilon")) > REL_TOL);
}
