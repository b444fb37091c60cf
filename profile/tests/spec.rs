//! Job specs: the sample parses and plans; bad specs are refused naming the field; the budget
//! split is exact.

use fedprof_privacy::Rho;
use fedprof_profile::run::{ProfileRun, Step};
use fedprof_profile::spec::{ProfilePolicy, ProfileSpec};
use num_bigint::BigUint;
use num_rational::Ratio;

const SAMPLE: &str = include_str!("../../docs/job.sample.toml");

/// The per-job cap of `federation init`'s coordinator: the sample's rho 1/2 plus its retry
/// reserve 1/10.
fn policy() -> ProfilePolicy {
    ProfilePolicy::new(Rho::from_ratio_exact(Ratio::new(
        BigUint::from(3u8),
        BigUint::from(5u8),
    )))
}

/// The first release declares the job's rho plus its retry reserve (what every node checks
/// it can pay); later releases declare only the budgets after them, so a re-run release's
/// extra debit fits the declared total exactly when it fits the retry reserve. A reserve
/// past the coordinator's cap is refused naming the field.
#[test]
fn the_first_release_declares_the_retry_reserve_and_later_ones_do_not() {
    let spec = ProfileSpec::from_toml(SAMPLE).unwrap();
    assert_eq!(spec.retry_reserve, "1/10".parse::<Rho>().unwrap());
    let mut run = ProfileRun::new(spec.clone(), &policy()).unwrap();
    let ratio =
        |f: fedprof_protocol::Fraction| Ratio::new(BigUint::from(f.numer), BigUint::from(f.denom));
    let first = run.next_query().unwrap();
    assert_eq!(
        ratio(first.budget) + ratio(first.reserve),
        Ratio::new(BigUint::from(3u8), BigUint::from(5u8))
    );
    let plan: Vec<_> = run.plan().iter().map(|s| ratio(s.1)).collect();
    let later: Ratio<BigUint> = plan[1..].iter().cloned().sum();
    assert_eq!(
        ratio(first.reserve),
        later + Ratio::new(BigUint::from(1u8), BigUint::from(10u8))
    );
    let tight = ProfilePolicy::new("1/2".parse().unwrap());
    let e = ProfileRun::new(spec, &tight).unwrap_err().to_string();
    assert!(e.contains("retry_reserve"), "{e}");
}

#[test]
fn the_sample_plans_releases_whose_budgets_sum_to_rho_exactly() {
    let spec = ProfileSpec::from_toml(SAMPLE).unwrap();
    let run = ProfileRun::new(spec, &policy()).unwrap();
    let steps: Vec<Step> = run.plan().iter().map(|s| s.0).collect();
    assert_eq!(
        steps[..3],
        [Step::Distributions, Step::Rfm, Step::Lifecycle]
    );
    assert_eq!(steps.len(), 3 + 1 + 5 + 1);
    assert_eq!(steps[3], Step::KMeansInit);
    let sum: Ratio<BigUint> = run
        .plan()
        .iter()
        .map(|(_, f)| Ratio::new(BigUint::from(f.numer), BigUint::from(f.denom)))
        .sum();
    assert_eq!(sum, Ratio::new(BigUint::from(1u8), BigUint::from(2u8)));
}

#[test]
fn every_query_of_the_sample_is_valid_before_any_result() {
    let spec = ProfileSpec::from_toml(SAMPLE).unwrap();
    let mut run = ProfileRun::new(spec, &policy()).unwrap();
    let q = run.next_query().unwrap();
    q.validate().unwrap();
    assert_eq!(q.label, "bank-profile/distributions");
    // Asking again without a result returns the same pending query.
    assert_eq!(run.next_query().unwrap(), q);
}

#[test]
fn bad_specs_name_the_field() {
    for (from, to, field) in [
        (
            "\"frequency\", \"recency_days\"",
            "\"frequency\", \"loyalty\"",
            "features",
        ),
        ("rho = \"1/2\"", "rho = \"3/1\"", "rho"),
        ("k = 5", "k = 50", "segmentations.kmeans.k"),
        (
            "iterations = 5",
            "iterations = 0",
            "segmentations.kmeans.iterations",
        ),
        ("min_cell_size = 20", "min_cell_size = 0", "min_cell_size"),
        ("min_cell_size = 20", "min_cell_size = 5", "min_cell_size"),
        ("as_of = \"2026-06-30\"", "as_of = \"30/06/2026\"", "as_of"),
        ("region = [", "regio = [", "levels"),
        (
            "monetary_total = [0, 20000]",
            "monetary_total = [5, 1]",
            "bounds.monetary_total",
        ),
        ("delta = 1e-6", "delta = 2.0", "delta"),
        (
            "[budget]\ndistributions = 2",
            "[budget]\ndistributions = 0",
            "budget",
        ),
        ("name = \"bank-profile\"", "name = \"bank profile\"", "name"),
        // Security review H5: every release label is `name/step`, copied into every ledger.
        (
            "name = \"bank-profile\"",
            format!("name = \"{}\"", "x".repeat(65)).as_str(),
            "name: 65 bytes; at most 64",
        ),
    ] {
        assert!(SAMPLE.contains(from), "{from}");
        let text = SAMPLE.replace(from, to);
        let err = ProfileSpec::from_toml(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                ProfileRun::new(s, &policy())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .expect_err(to);
        assert!(err.contains(field), "{to}: {err}");
    }
}
