//! `fedprof label`: a node labels its own customers with a segment model, locally. Nothing is
//! sent anywhere; the output holds pseudonyms unless `--reveal-ids` is given.
//!
//! With `--previous-model`, the node also counts how many of its customers changed segment
//! between the two model versions (a local drift table, never released).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use fedprof_node::NodeConfig;
use fedprof_node::pipeline::{self, FeatureTable, RunOptions, dates::parse_iso_day, key};
use fedprof_node::query::segment_of;
use fedprof_profile::model::{ModelSegmentation, SegmentModel};

/// `fedprof label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// The node's config.
    #[arg(long, value_name = "NODE.toml")]
    pub config: PathBuf,
    /// The segment model (model.json of a profiling run).
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// Where to write `customer,segment` rows (CSV).
    #[arg(long, value_name = "OUT.csv")]
    pub out: PathBuf,
    /// Which segmentation of the model (default: kmeans, else the first).
    #[arg(long, value_name = "NAME")]
    pub segmentation: Option<String>,
    /// Features as of this date (default: the model's as-of date).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
    /// An earlier model version: also count customers changing segment (local only).
    #[arg(long, value_name = "MODEL.json")]
    pub previous_model: Option<PathBuf>,
    /// Write normalized raw customer ids instead of pseudonyms (keep the file in-house).
    #[arg(long)]
    pub reveal_ids: bool,
}

fn pick<'a>(m: &'a SegmentModel, name: Option<&str>, path: &Path) -> Result<&'a ModelSegmentation> {
    m.segmentation(name).with_context(|| {
        let have: Vec<&str> = m.segmentations.iter().map(|s| s.name.as_str()).collect();
        format!(
            "{}: no segmentation {:?} (the model has: {})",
            path.display(),
            name.unwrap_or("kmeans"),
            have.join(", ")
        )
    })
}

/// The node's features as of `as_of` (pseudonymized unless `reveal_ids`).
pub fn node_features(config: &NodeConfig, as_of: &str, reveal_ids: bool) -> Result<FeatureTable> {
    let day =
        parse_iso_day(as_of).with_context(|| format!("{as_of:?} is not a date YYYY-MM-DD"))?;
    let spec = config
        .pipeline_spec(Some(day))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pseudonymizer = match &config.data.pseudonym_key {
        Some(p) => key::load_pseudonymizer(p)?,
        None if reveal_ids => fedprof_crypto::Pseudonymizer::new(key::random_key()?),
        None => bail!("set data.pseudonym_key in the node config (or pass --reveal-ids)"),
    };
    let opts = RunOptions {
        reveal_ids,
        quarantine: None,
        progress: None,
    };
    let postgres = config.data.postgres.as_ref();
    Ok(pipeline::compute_from(&spec, postgres, &pseudonymizer, &opts)?.features)
}

/// Labels every customer; returns each customer's segment index.
pub fn labels(t: &FeatureTable, s: &ModelSegmentation, scale: u32) -> Vec<usize> {
    (0..t.len())
        .map(|row| segment_of(t, &s.segmenter, scale, row))
        .collect()
}

/// Runs `fedprof label`; returns the text for stdout.
pub fn run(a: &LabelArgs) -> Result<String> {
    let config = NodeConfig::load(&a.config)?;
    let model = fedprof_profile::rundir::load_model(&a.model)?;
    let seg = pick(&model, a.segmentation.as_deref(), &a.model)?;
    let as_of = a.as_of.clone().unwrap_or_else(|| model.as_of.clone());
    let table = node_features(&config, &as_of, a.reveal_ids)?;
    let now = labels(&table, seg, model.scale);
    let mut csv = String::from("customer,segment\n");
    let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
    for (row, s) in now.iter().enumerate() {
        let _ = writeln!(csv, "{},{}", table.customer[row], seg.segments[*s]);
        *counts.entry(*s).or_default() += 1;
    }
    fedprof_ledger::file::write_atomic(&a.out, csv.as_bytes())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let mut out = format!(
        "Labelled {} customers with {} segmentation {} of model {} v{} (as of {as_of}) -> {}\n",
        table.len(),
        model.name,
        seg.name,
        model.name,
        model.version,
        a.out.display()
    );
    for (s, n) in &counts {
        let _ = writeln!(out, "  {:<20} {n}", seg.segments[*s]);
    }
    if let Some(prev_path) = &a.previous_model {
        let prev = fedprof_profile::rundir::load_model(prev_path)?;
        let before_seg = pick(&prev, Some(&seg.name), prev_path)?;
        let before = labels(&table, before_seg, prev.scale);
        let moved = before.iter().zip(&now).filter(|(b, n)| b != n).count();
        let mut flows: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for (b, n) in before.iter().zip(&now) {
            *flows.entry((*b, *n)).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "\nLocal drift (this node only, not released): {moved} of {} customers change segment from v{} to v{}",
            table.len(),
            prev.version,
            model.version
        );
        for ((b, n), c) in flows.iter().filter(|((b, n), _)| b != n) {
            let _ = writeln!(
                out,
                "  {:<20} -> {:<20} {c}",
                before_seg.segments[*b], seg.segments[*n]
            );
        }
    }
    Ok(out)
}
