//! Utility of a profiling job on the `bank` scenario: federated DP k-means cost and segment-count
//! errors at the job's rho in {0.05, 0.5, 2}; figures in `benches/RESULTS.md`, comparison with
//! the non-private pooled k-means and diffprivlib in `benches/compare/utility.sh`.
//!
//! The bench generates the demo's federation (`fedprof::demo::prepare`: 3 branches), computes
//! each node's features as the node would, and drives `ProfileRun` in process, without QUIC:
//! every release is planned with `plan_query` as the coordinator plans it, every node adds its
//! noise share with `fedprof_node::query::noisy`, and the vectors are summed in `Z_2^64`, which
//! is what secure aggregation releases. Noise settings (`n_min`, colluders):
//!
//! - `dist-3-1` (3, 1): every branch required, one assumed colluder (at least one is always
//!   assumed: every node receives the result and knows its own noise); two honest shares, each
//!   node adds half the central variance;
//! - `dist-4-1` (4, 1): three honest shares, each node adding a third of the central variance,
//!   summed over the three branches: the noise of the old `(3, 0)` setting, i.e. "every node
//!   honest and none wasted". Valid in a federation of four or more nodes; shown so that the
//!   figures compare with the earlier ones;
//! - `demo-2-1` (2, 1): the demo federation's default; one honest share must protect alone
//!   (also what node-level local DP gives: every node's own noise protects alone);
//! - `noise-free`: the same algorithm on exact sums (no noise; separates the algorithm's loss).
//!
//! k-means cost: mean over the pooled customers (every row of every node; a customer banking at
//! two branches counts twice, as in the federation) of the squared Euclidean distance to the
//! nearest final centroid in the normalized space `[0, 1]^3`. Count error: released minus exact
//! size of each final cluster, compared with the standard deviation of one central Gaussian for
//! the same release budget (`plan_query` with one honest share, `n_min = 2`, one colluder).
//!
//! Environment: `CUSTOMERS` (default 100000), `REPS` (repetitions per rho and setting,
//! default 5), `SEED` (synthetic data, default 2026), `ITERATIONS` (Lloyd iterations instead of
//! the sample job's 5; at most 20, the coordinator's default cap), `UTILITY_OUT` (where
//! `points.csv` and `fedprof.json` go; default `$TMPDIR/fedprof-utility`). Noise comes from
//! `fedprof_crypto::rng::from_os`, the nodes' production generator, so repetitions differ.

#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fedprof_node::NodeConfig;
use fedprof_node::pipeline::FeatureTable;
use fedprof_node::query::{evaluate, nearest, noisy, point};
use fedprof_privacy::Rho;
use fedprof_privacy::encoding::from_ring;
use fedprof_privacy::query::{plan_query, query_rho};
use fedprof_profile::run::{ProfileRun, SCALE};
use fedprof_profile::spec::{ProfilePolicy, ProfileSpec};
use fedprof_protocol::query::Dimension;
use fedprof_protocol::{FeatureQuery, JobResult, JobSpec, PartyName, ReleaseParams};
use serde_json::json;

/// The job's rho values: (numerator, denominator).
const RHOS: [(u64, u64); 3] = [(1, 20), (1, 2), (2, 1)];

/// Branches of the scenario.
const NODES: usize = 3;

/// How the nodes' noise is set.
#[derive(Debug, Clone, Copy)]
struct Setting {
    name: &'static str,
    /// `(n_min, colluders)`; `None`: no noise at all.
    noise: Option<(u32, u32)>,
}

const SETTINGS: [Setting; 4] = [
    Setting {
        name: "dist-3-1",
        noise: Some((3, 1)),
    },
    Setting {
        name: "dist-4-1",
        noise: Some((4, 1)),
    },
    Setting {
        name: "demo-2-1",
        noise: Some((2, 1)),
    },
    Setting {
        name: "noise-free",
        noise: None,
    },
];

/// One node: its name and features.
struct Node {
    name: PartyName,
    table: FeatureTable,
}

/// What one run of the job gave.
#[derive(Debug)]
struct Outcome {
    cost: f64,
    centroids: Vec<Vec<f64>>,
    /// Released minus exact size of each final cluster, in customers.
    count_errors: Vec<f64>,
    /// Released minus exact value of every coordinate of the final release, in fixed-point units.
    coordinate_errors: Vec<f64>,
    /// Standard deviation of one central Gaussian for the final release, in customers.
    central_sd: f64,
    /// Standard deviation of the noise the nodes actually added there, in customers.
    added_sd: f64,
}

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    let customers = env_u64("CUSTOMERS", 100_000)?;
    let reps = env_u64("REPS", 5)?.max(1);
    let seed = env_u64("SEED", 2026)?;
    let iterations = std::env::var("ITERATIONS")
        .ok()
        .map(|_| env_u64("ITERATIONS", 5))
        .transpose()?;
    let out = std::env::var_os("UTILITY_OUT").map_or_else(
        || std::env::temp_dir().join("fedprof-utility"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out)?;

    let dir = tempfile::Builder::new()
        .prefix("fedprof-utility-")
        .tempdir()?;
    let started = Instant::now();
    let progress = fedprof::progress::Progress::new();
    let prepared = fedprof::demo::prepare(dir.path(), NODES, customers, seed, &progress)?;
    progress.finish();
    let generated = started.elapsed().as_secs_f64();
    let job_text = std::fs::read_to_string(&prepared.job_path)?;
    let base = ProfileSpec::from_toml(&job_text)?;
    let lloyd = iterations.unwrap_or(
        base.segmentations
            .kmeans
            .as_ref()
            .map_or(0, |k| u64::from(k.iterations)),
    );

    let started = Instant::now();
    let mut nodes = Vec::new();
    for (i, path) in prepared.node_paths.iter().enumerate() {
        let config = NodeConfig::load(path)?;
        nodes.push(Node {
            name: PartyName::new(format!("branch-{}", i + 1))?,
            table: fedprof::label::node_features(&config, &base.as_of, false)?,
        });
    }
    let featured = started.elapsed().as_secs_f64();
    let dims = kmeans_dimensions(&base)?;
    let points: Vec<Vec<u32>> = nodes
        .iter()
        .flat_map(|n| (0..n.table.len()).map(|row| point(&n.table, &dims, row, SCALE)))
        .collect();
    write_points(&out.join("points.csv"), &points)?;
    eprintln!(
        "{customers} customers, {} pooled rows at {NODES} nodes; data {generated:.1} s, features {featured:.1} s",
        points.len()
    );

    let mut cache = HashMap::new();
    let mut results = Vec::new();
    let mut table = String::from(concat!(
        "| rho | setting | runs | k-means cost (mean) | cost sd | count RMS error | central sd ",
        "| ratio | expected ratio | all-coordinate ratio |\n",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    ));
    let started = Instant::now();
    for (numer, denom) in RHOS {
        let rho = Rho::from_ratio(numer, denom)?;
        let spec = job_spec(&job_text, &rho, iterations)?;
        for setting in SETTINGS {
            let runs = if setting.noise.is_some() { reps } else { 1 };
            let mut outcomes = Vec::new();
            for _ in 0..runs {
                outcomes.push(run_job(&spec, &nodes, setting, &points, &mut cache)?);
            }
            let summary = summarize(&outcomes);
            let _ = writeln!(
                table,
                "| {} | {} | {runs} | {:.5} | {:.5} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} |",
                rho.to_f64(),
                setting.name,
                summary.cost,
                summary.cost_sd,
                summary.count_rms,
                summary.central_sd,
                summary.ratio,
                summary.expected_ratio,
                summary.coordinate_ratio,
            );
            results.push(json!({
                "rho": rho.to_f64(),
                "rho_exact": rho.to_string(),
                "setting": setting.name,
                "noise": setting.noise.map(|(n, c)| json!({"n_min": n, "colluders": c})),
                "runs": runs,
                "costs": outcomes.iter().map(|o| o.cost).collect::<Vec<_>>(),
                "cost": summary.cost,
                "count_rms_error": summary.count_rms,
                "central_sd": summary.central_sd,
                "count_error_ratio": summary.ratio,
                "expected_ratio": summary.expected_ratio,
                "coordinate_ratio": summary.coordinate_ratio,
                "count_errors": outcomes.iter().map(|o| o.count_errors.clone()).collect::<Vec<_>>(),
                "centroids": outcomes.iter().map(|o| o.centroids.clone()).collect::<Vec<_>>(),
            }));
            eprintln!(
                "rho {} {}: {runs} runs, cost {:.5} ({:.0} s so far)",
                rho,
                setting.name,
                summary.cost,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let report = json!({
        "customers": customers,
        "nodes": NODES,
        "pooled_rows": points.len(),
        "seed": seed,
        "reps": reps,
        "iterations": lloyd,
        "dimensions": base.segmentations.kmeans.iter().flat_map(|k| &k.features).map(|f| f.name()).collect::<Vec<_>>(),
        "generate_seconds": generated,
        "features_seconds": featured,
        "runs_seconds": started.elapsed().as_secs_f64(),
        "results": results,
    });
    std::fs::write(
        out.join("fedprof.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!(
        "fedprof profiling utility: bank scenario, {customers} customers at {NODES} nodes ({} pooled rows), k = 5, {} Lloyd iterations\n",
        points.len(),
        lloyd
    );
    println!("{table}");
    println!("points: {}", out.join("points.csv").display());
    println!("results: {}", out.join("fedprof.json").display());
    Ok(())
}

/// The sample job with its rho (and, if given, its Lloyd iterations) replaced; the as-of date
/// is already the data's.
fn job_spec(job_text: &str, rho: &Rho, iterations: Option<u64>) -> Result<ProfileSpec> {
    let mut text = job_text.to_owned();
    let mut swap = |line: &str, by: String| {
        if !text.contains(line) {
            bail!("the sample job has no line {line}");
        }
        text = text.replace(line, &by);
        Ok(())
    };
    swap("rho = \"1/2\"", format!("rho = \"{rho}\""))?;
    if let Some(i) = iterations {
        swap("iterations = 5", format!("iterations = {i}"))?;
    }
    Ok(ProfileSpec::from_toml(&text)?)
}

/// The k-means space of the job: its features with their wire bounds.
fn kmeans_dimensions(spec: &ProfileSpec) -> Result<Vec<Dimension>> {
    let k = spec
        .segmentations
        .kmeans
        .as_ref()
        .context("the sample job has no k-means")?;
    Ok(k.features
        .iter()
        .map(|f| {
            let (lo, hi) = spec.wire_bounds(*f);
            Dimension {
                feature: f.wire(),
                lo,
                hi,
            }
        })
        .collect())
}

fn write_points(path: &std::path::Path, points: &[Vec<u32>]) -> Result<()> {
    let mut text = String::from("x0,x1,x2\n");
    for p in points {
        let cells: Vec<String> = p
            .iter()
            .map(|x| format!("{:.3}", f64::from(*x) / f64::from(SCALE)))
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Mean squared distance to the nearest centroid, in `[0, 1]^d`.
fn kmeans_cost(points: &[Vec<u32>], centroids: &[Vec<u32>]) -> f64 {
    let total: u128 = points.iter().map(|p| nearest(p, centroids).1).sum();
    total as f64 / f64::from(SCALE).powi(2) / points.len().max(1) as f64
}

/// The exact sums of every node for `query`, cached by what they depend on (the first
/// release is the same in every run).
fn exact_sums<'a>(
    nodes: &[Node],
    query: &FeatureQuery,
    cache: &'a mut HashMap<String, Vec<Vec<i64>>>,
) -> Result<&'a Vec<Vec<i64>>> {
    let key = serde_json::to_string(&(&query.as_of, query.scale, &query.segmenter, &query.parts))?;
    if !cache.contains_key(&key) {
        let sums = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|n| s.spawn(|| evaluate(&n.table, query)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(_) => Err(anyhow::anyhow!("a node's evaluation panicked")),
                })
                .collect::<Result<Vec<_>>>()
        })?;
        cache.insert(key.clone(), sums);
    }
    cache.get(&key).context("cache entry vanished")
}

/// Runs the whole job once: every release planned as the coordinator plans it, every node's
/// noisy vector, their sum as secure aggregation would release it.
fn run_job(
    spec: &ProfileSpec,
    nodes: &[Node],
    setting: Setting,
    points: &[Vec<u32>],
    cache: &mut HashMap<String, Vec<Vec<i64>>>,
) -> Result<Outcome> {
    let policy = ProfilePolicy::new(Rho::from_ratio(1000, 1)?);
    let mut run = ProfileRun::new(spec.clone(), &policy)?;
    let (n_min, colluders) = setting.noise.unwrap_or((NODES as u32, 1));
    let mut last = None;
    while let Some(query) = run.next_query() {
        let budget = Rho::from_ratio(query.budget.numer, query.budget.denom)?;
        let params = plan_query(&budget, &query, n_min, colluders)?;
        let exact = exact_sums(nodes, &query, cache)?;
        let mut values = vec![0u64; query.vector_len()];
        let mut total = vec![0i64; query.vector_len()];
        for sums in exact {
            // A fresh generator per node and release, seeded by the OS, as a node does per job.
            let vector = match setting.noise {
                Some(_) => noisy(sums, &params, &mut fedprof_crypto::rng::from_os()?)?,
                None => sums.iter().map(|x| *x as u64).collect(),
            };
            for (v, x) in values.iter_mut().zip(vector) {
                *v = v.wrapping_add(x);
            }
            for (t, x) in total.iter_mut().zip(sums) {
                *t += x;
            }
        }
        let result = JobResult {
            spec: JobSpec::Features(Box::new(query.clone())),
            values,
            contributors: nodes.iter().map(|n| n.name.clone()).collect(),
            release: params.clone(),
            profile: fedprof_protocol::ProfileTag {
                id: fedprof_protocol::ProfileId([1; 16]),
                analyst: fedprof_protocol::PartyName::new("bench")?,
                cap: query.budget,
            },
        };
        run.on_result(&result, &query_rho(&query, &params)?)?;
        last = Some((query, params, total, result.values));
    }
    let (query, params, exact, values) = last.context("the job released nothing")?;
    if !query.label.ends_with("/kmeans-profile") {
        bail!(
            "the last release is {}, not the k-means profile",
            query.label
        );
    }
    let centroids = run.centroids().to_vec();
    let scale = f64::from(query.scale);
    let coordinate_errors: Vec<f64> = values
        .iter()
        .zip(&exact)
        .map(|(v, x)| (from_ring(*v) - x) as f64)
        .collect();
    let block = query.block_len();
    let count_errors = (0..query.segmenter.segments())
        .map(|j| coordinate_errors.get(j * block).copied().unwrap_or(0.0) / scale)
        .collect();
    let budget = Rho::from_ratio(query.budget.numer, query.budget.denom)?;
    // One honest share: the central discrete Gaussian for this budget.
    let central = plan_query(&budget, &query, 2, 1)?;
    let added = match setting.noise {
        Some(_) => variance(&params)? * nodes.len() as f64,
        None => 0.0,
    };
    Ok(Outcome {
        cost: kmeans_cost(points, &centroids),
        centroids: centroids
            .iter()
            .map(|c| c.iter().map(|x| f64::from(*x) / scale).collect())
            .collect(),
        count_errors,
        coordinate_errors,
        central_sd: variance(&central)?.sqrt() / scale,
        added_sd: added.sqrt() / scale,
    })
}

/// The per-node variance of a feature-query release.
fn variance(params: &ReleaseParams) -> Result<f64> {
    let f = params
        .node_variance
        .first()
        .context("release parameters without a variance")?;
    Ok(f.numer as f64 / f.denom as f64)
}

/// Means over the runs of one rho and setting.
#[derive(Debug)]
struct Summary {
    cost: f64,
    cost_sd: f64,
    count_rms: f64,
    central_sd: f64,
    /// Observed RMS count error / central sd.
    ratio: f64,
    /// Standard deviation of the noise added / central sd.
    expected_ratio: f64,
    /// RMS error of every coordinate of the final release / central sd.
    coordinate_ratio: f64,
}

fn rms(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), x| (s + x * x, n + 1));
    (sum / n.max(1) as f64).sqrt()
}

fn summarize(outcomes: &[Outcome]) -> Summary {
    let n = outcomes.len().max(1) as f64;
    let cost = outcomes.iter().map(|o| o.cost).sum::<f64>() / n;
    let var = outcomes
        .iter()
        .map(|o| (o.cost - cost).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    // The central sd is the same in every run of a rho (same release shape and budget).
    let central_sd = outcomes.first().map_or(0.0, |o| o.central_sd);
    let added_sd = outcomes.first().map_or(0.0, |o| o.added_sd);
    let count_rms = rms(outcomes.iter().flat_map(|o| o.count_errors.iter().copied()));
    let coordinate_rms = rms(outcomes
        .iter()
        .flat_map(|o| o.coordinate_errors.iter().copied()))
        / f64::from(SCALE);
    let over = |x: f64| {
        if central_sd > 0.0 {
            x / central_sd
        } else {
            0.0
        }
    };
    Summary {
        cost,
        cost_sd: var.sqrt(),
        count_rms,
        central_sd,
        ratio: over(count_rms),
        expected_ratio: over(added_sd),
        coordinate_ratio: over(coordinate_rms),
    }
}
