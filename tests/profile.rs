//! Profiling end to end over real QUIC: a federation of three bank branches runs the sample job
//! with a very large budget, and the released segment counts and means must equal the pooled,
//! non-private computation within 3 standard deviations of the noise the releases recorded
//! (with this budget, a fraction of a customer). The pooled truth is computed here from each
//! node's features without the query code (lifecycle stages, clipped means), and with it
//! (RFM and k-means assignment, which is the model's definition). `fedprof label` must agree
//! with the released cluster sizes.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "helpers of tests: a failure is a panic"
)]

use std::collections::BTreeMap;
use std::fs;

use fedprof::demo::prepare;
use fedprof::label::{labels, node_features};
use fedprof::local::{LocalFederation, profile};
use fedprof::progress::Progress;
use fedprof_node::NodeConfig;
use fedprof_node::pipeline::FeatureTable;
use fedprof_profile::report::{Cell, ProfileReport, Segmentation};
use fedprof_profile::rundir::load_spec;

/// Released figures against their truth, in units of their recorded noise sd. Each must be
/// within 5 sd, and at most two of the (about 26) within 3 sd may fail: with honest noise a
/// third such miss has probability about 5e-5, while a single 3-sd bound per figure would fail
/// a correct run about 7% of the time.
#[derive(Default)]
struct Checks {
    beyond_3: Vec<String>,
}

impl Checks {
    fn within(&mut self, cell: &Cell, truth: f64, what: &str) {
        let Cell::Value { value, sd } = cell else {
            panic!("{what}: suppressed, expected {truth}");
        };
        let z = (value - truth).abs() / sd.max(1e-12);
        assert!(
            z <= 5.0,
            "{what}: released {value} (sd {sd}) vs pooled {truth}: {z:.1} sd"
        );
        if z > 3.0 {
            self.beyond_3.push(format!("{what}: {z:.2} sd"));
        }
    }

    fn finish(self) {
        assert!(
            self.beyond_3.len() <= 2,
            "too many figures beyond 3 sd: {:?}",
            self.beyond_3
        );
    }
}

fn segmentation<'a>(r: &'a ProfileReport, name: &str) -> &'a Segmentation {
    r.segmentations.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_profile_with_a_huge_budget_equals_the_pooled_computation() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let p = prepare(dir.path(), 3, 1_200, 7, &progress).unwrap();
    // A budget no deployment would allow: the noise is a fraction of a customer.
    let raise = |path: &std::path::Path, from: &str, to: &str| {
        let text = fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{from} in {}", path.display());
        fs::write(path, text.replace(from, to)).unwrap();
    };
    raise(
        &p.coordinator,
        "rho_per_job = \"3/5\"",
        "rho_per_job = \"20001/1\"",
    );
    raise(
        &p.coordinator,
        "rho_per_analyst_period = \"2/1\"",
        "rho_per_analyst_period = \"40000/1\"",
    );
    for n in &p.node_paths {
        raise(n, "cap_rho = \"2/1\"", "cap_rho = \"40000/1\"");
        // Every limit of the node's floor, raised with the cap (a huge budget is the point).
        for (from, to) in [
            (
                "max_rho_per_release = \"1/2\"",
                "max_rho_per_release = \"40000/1\"",
            ),
            ("max_rho_per_job = \"1/1\"", "max_rho_per_job = \"40000/1\""),
            (
                "max_rho_per_analyst = \"2/1\"",
                "max_rho_per_analyst = \"40000/1\"",
            ),
        ] {
            raise(n, from, to);
        }
    }
    raise(&p.job_path, "rho = \"1/2\"", "rho = \"20000/1\"");
    let spec = load_spec(&p.job_path).unwrap();
    let as_of = spec.as_of.clone();

    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let result = profile(&fed, spec, None, &dir.path().join("out"), &progress).await;
    fed.stop().await;
    let (report, model) = result.unwrap();
    assert_eq!(report.nodes, ["branch-1", "branch-2", "branch-3"]);
    assert_eq!(report.privacy.releases.len(), 1 + 1 + 1 + 1 + 5 + 1);
    let spent: f64 = report.privacy.releases.iter().map(|r| r.rho).sum();
    assert!(spent <= 20_000.0 + 1e-6, "{spent}");

    // The pooled truth, from every node's own features.
    let tables: Vec<FeatureTable> = p
        .node_paths
        .iter()
        .map(|n| node_features(&NodeConfig::load(n).unwrap(), &as_of, false).unwrap())
        .collect();
    let customers: usize = tables.iter().map(FeatureTable::len).sum();
    let mut checks = Checks::default();
    checks.within(&report.population, customers as f64, "population");

    // Lifecycle: sizes and mean monetary_total (clamped to the job's bounds, 0..20000.00).
    let lifecycle = segmentation(&report, "lifecycle");
    let mut sizes: BTreeMap<&str, f64> = BTreeMap::new();
    let mut money: BTreeMap<&str, f64> = BTreeMap::new();
    for t in &tables {
        for row in 0..t.len() {
            let stage = t.lifecycle_stage[row].as_str();
            *sizes.entry(stage).or_default() += 1.0;
            let m = (t.monetary_total[row] as f64 / 100.0).clamp(0.0, 20_000.0);
            *money.entry(stage).or_default() += m;
        }
    }
    for seg in &lifecycle.segments {
        let n = sizes.get(seg.name.as_str()).copied().unwrap_or(0.0);
        if n < 20.0 {
            continue; // may be suppressed
        }
        checks.within(&seg.size, n, &format!("lifecycle {} size", seg.name));
        let mean = seg
            .means
            .iter()
            .find(|m| m.feature == "monetary_total")
            .unwrap();
        // Values are rounded to 1/1000 of the range per customer (at most 10.00 each way).
        let truth = money[seg.name.as_str()] / n;
        let Cell::Value { value, sd } = mean.mean else {
            panic!("suppressed mean")
        };
        assert!(
            (value - truth).abs() <= 3.0 * sd + 10.0,
            "lifecycle {} mean monetary_total {value} vs {truth}",
            seg.name
        );
    }

    // RFM and k-means: the model's segmenters applied to the pooled customers.
    for name in ["rfm", "kmeans"] {
        let released = segmentation(&report, name);
        let m = model.segmentation(Some(name)).unwrap();
        let mut counts = vec![0f64; m.segments.len()];
        for t in &tables {
            for s in labels(t, m, model.scale) {
                counts[s] += 1.0;
            }
        }
        for (seg, truth) in released.segments.iter().zip(&counts) {
            if *truth >= 20.0 {
                checks.within(&seg.size, *truth, &format!("{name} {} size", seg.name));
            }
        }
        assert_eq!(counts.iter().sum::<f64>(), customers as f64);
    }
    // `fedprof label` at every node: its counts are the node's own share of the released
    // cluster sizes (exactly what the node's contribution counted), and they add up to them.
    let model_path = dir.path().join("model.json");
    fs::write(&model_path, serde_json::to_string(&model).unwrap()).unwrap();
    let kmeans = model.segmentation(Some("kmeans")).unwrap();
    let mut labelled = vec![0f64; kmeans.segments.len()];
    for (node, table) in p.node_paths.iter().zip(&tables) {
        let out = dir.path().join("labels.csv");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_fedprof"))
            .args(["label", "--config"])
            .arg(node)
            .arg("--model")
            .arg(&model_path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let csv = fs::read_to_string(&out).unwrap();
        let mut local = vec![0f64; kmeans.segments.len()];
        for line in csv.lines().skip(1) {
            let (customer, segment) = line.split_once(',').unwrap();
            assert_eq!(customer.len(), 64, "pseudonyms, not raw ids: {customer}");
            let s = kmeans.segments.iter().position(|n| n == segment).unwrap();
            local[s] += 1.0;
        }
        // The node's own contribution to the final release, computed locally.
        let q = fedprof_protocol::FeatureQuery {
            label: "check".into(),
            as_of: as_of.clone(),
            scale: model.scale,
            segmenter: kmeans.segmenter.clone(),
            parts: vec![fedprof_protocol::QueryPart::Count],
            budget: fedprof_protocol::Fraction { numer: 1, denom: 1 },
            reserve: fedprof_protocol::Fraction { numer: 0, denom: 1 },
            job: None,
        };
        let contribution = fedprof_node::query::evaluate(table, &q).unwrap();
        let counted: Vec<f64> = contribution
            .iter()
            .map(|v| *v as f64 / f64::from(model.scale))
            .collect();
        assert_eq!(local, counted, "{}", node.display());
        for (l, x) in labelled.iter_mut().zip(&local) {
            *l += x;
        }
    }
    for (seg, n) in segmentation(&report, "kmeans")
        .segments
        .iter()
        .zip(&labelled)
    {
        if *n >= 20.0 {
            checks.within(&seg.size, *n, &format!("labels of {}", seg.name));
        }
    }

    checks.finish();

    let quality = segmentation(&report, "kmeans").quality.as_ref().unwrap();
    assert_eq!(quality.iterations, 5);
    assert!(quality.mean_cost.value().unwrap() > 0.0);
}

#[test]
fn bad_job_specs_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let p = prepare(dir.path(), 2, 200, 1, &Progress::new()).unwrap();
    let sample = fs::read_to_string(&p.job_path).unwrap();
    for (from, to, field) in [
        (
            "\"frequency\", \"recency_days\"",
            "\"frequency\", \"loyalty\"",
            "features",
        ),
        ("rho = \"1/2\"", "rho = \"3/1\"", "rho"),
        ("k = 5", "k = 50", "segmentations.kmeans.k"),
        ("min_cell_size = 20", "min_cell_size = 0", "min_cell_size"),
    ] {
        let job = dir.path().join("bad.toml");
        fs::write(&job, sample.replace(from, to)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fedprof"))
            .args(["local", "--job", job.to_str().unwrap(), "--out"])
            .arg(dir.path().join("out"))
            .args(
                p.node_paths
                    .iter()
                    .flat_map(|n| ["--node".into(), n.clone()]),
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{to} was accepted");
        assert!(err.contains(field), "{to}: {err}");
        assert!(
            !err.contains("registered"),
            "{to}: nodes were started: {err}"
        );
        assert!(!dir.path().join("out").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_budget_cannot_pay_the_whole_job_refuses_it_at_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let p = prepare(dir.path(), 3, 300, 3, &progress).unwrap();
    // branch-3 can pay one release of the job (1/2) but not all of them.
    let config = &p.node_paths[2];
    let text = fs::read_to_string(config).unwrap();
    fs::write(
        config,
        text.replace("cap_rho = \"2/1\"", "cap_rho = \"1/4\""),
    )
    .unwrap();
    let spec = load_spec(&p.job_path).unwrap();
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let result = profile(&fed, spec, None, &dir.path().join("out"), &progress).await;
    fed.stop().await;
    let (report, _) = result.unwrap();
    assert_eq!(report.nodes, ["branch-1", "branch-2"]);
    assert!(report.privacy.releases.iter().all(|r| r.contributors == 2));
    // It debited nothing: the ledger holds only the budget entry.
    let node = NodeConfig::load(config).unwrap();
    let ledger = fs::read_to_string(node.privacy.ledger.join("ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_make_new_model_versions_with_drift_and_stop_when_budgets_run_out() {
    use fedprof::schedule::run_due;
    use fedprof_coordinator::{Every, ScheduleConfig};
    use std::num::NonZeroU64;
    use time::{Date, Month};

    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let p = prepare(dir.path(), 3, 300, 5, &progress).unwrap();
    // Caps of 1.2: two runs of rho 1/2 fit, a third does not.
    for n in &p.node_paths {
        let text = fs::read_to_string(n).unwrap();
        fs::write(n, text.replace("cap_rho = \"2/1\"", "cap_rho = \"6/5\"")).unwrap();
    }
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let entry = ScheduleConfig {
        job: p.job_path.clone(),
        every: Every::Monthly,
        out: dir.path().join("profiles"),
        check_secs: NonZeroU64::MIN,
    };
    let day = |m: Month, d: u8| Date::from_calendar_date(2026, m, d).unwrap();
    let june = run_due(fed.handle(), &fed.config, &entry, day(Month::June, 15))
        .await
        .unwrap()
        .unwrap();
    assert!(june.ends_with("2026-05-31"), "{}", june.display());
    // Checked again in the same month: nothing is due.
    let again = run_due(fed.handle(), &fed.config, &entry, day(Month::June, 28)).await;
    assert!(again.unwrap().is_none());
    let july = run_due(fed.handle(), &fed.config, &entry, day(Month::July, 2))
        .await
        .unwrap()
        .unwrap();
    let report: ProfileReport =
        serde_json::from_str(&fs::read_to_string(july.join("report.json")).unwrap()).unwrap();
    assert_eq!(report.as_of, "2026-06-30");
    assert_eq!(report.model_version, 2);
    let drift = report.drift.as_ref().unwrap();
    assert_eq!(drift.previous_version, 1);
    assert_eq!(drift.previous_as_of, "2026-05-31");
    assert_eq!(drift.centroid_moves.len(), 5);
    assert!(!drift.sizes.is_empty());
    // A third run would take every node past its cap: refused before anything is spent.
    let august = run_due(fed.handle(), &fed.config, &entry, day(Month::August, 3)).await;
    fed.stop().await;
    let err = format!("{:#}", august.unwrap_err());
    assert!(err.contains("aborted"), "{err}");
    let latest = fs::read_to_string(entry.out.join("model.json")).unwrap();
    assert!(latest.contains("\"version\": 2"), "{latest}");
    for n in &p.node_paths {
        let node = NodeConfig::load(n).unwrap();
        let ledger = fs::read_to_string(node.privacy.ledger.join("ledger.jsonl")).unwrap();
        // One budget entry and 10 debits per run, for two runs.
        assert_eq!(ledger.lines().count(), 1 + 2 * 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_submits_a_profiling_job_over_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let p = prepare(dir.path(), 2, 300, 9, &progress).unwrap();
    let fed = LocalFederation::start(&p.coordinator, &p.node_paths, &progress)
        .await
        .unwrap();
    let out = dir.path().join("out");
    let analyst = p.fed_dir.join("analyst-analyst.toml");
    let (job, out_dir) = (p.job_path.clone(), out.clone());
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fedprof"))
            .args(["job", "submit", "--config"])
            .arg(&analyst)
            .arg(&job)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    fed.stop().await;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("nodes: branch-1, branch-2"), "{stdout}");
    let model = fs::read_to_string(out.join("model.json")).unwrap();
    assert!(model.contains("\"version\": 1"), "{model}");
    assert!(out.join("report.html").is_file());
}
