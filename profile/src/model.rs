//! The segment model that goes back to the nodes (`model.json`, schema
//! `fedprof-segment-model/1`): each segmentation's segmenter exactly as the releases used it, so
//! `fedprof label` puts every customer where the federated job counted it. Contains only
//! released or public values (cut-offs from released quantiles, noisy centroids, bounds).

use fedprof_protocol::query::Segmenter;
use serde::{Deserialize, Serialize};

use crate::report::{Cell, Drift, ProfileReport, SizeChange};
use crate::run::SCALE;

/// The model's schema name and version.
pub const MODEL_SCHEMA: &str = "fedprof-segment-model/1";

/// A versioned segment model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    /// [`MODEL_SCHEMA`].
    pub schema: String,
    /// The job's name.
    pub name: String,
    /// 1 for a job's first run, then one more per re-run.
    pub version: u32,
    /// The features' date.
    pub as_of: String,
    /// Fixed-point scale of centroid coordinates.
    pub scale: u32,
    /// The segmentations.
    pub segmentations: Vec<ModelSegmentation>,
}

/// One segmentation of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSegmentation {
    /// `rfm`, `lifecycle` or `kmeans`.
    pub name: String,
    /// How customers are assigned.
    pub segmenter: Segmenter,
    /// Segment names, in segmenter order.
    pub segments: Vec<String>,
    /// Released sizes, for drift tables.
    pub sizes: Vec<Cell>,
}

/// Why a model file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not JSON of the schema.
    #[error("not a segment model: {0}")]
    Parse(#[from] serde_json::Error),
    /// Another schema.
    #[error("model schema {0:?} is not {MODEL_SCHEMA}")]
    Schema(String),
    /// A segmenter that does not validate.
    #[error("segmentation {0}: {1}")]
    Invalid(String, String),
}

impl SegmentModel {
    /// Parses and checks a model file's text.
    pub fn from_json(text: &str) -> Result<SegmentModel, ModelError> {
        let m: SegmentModel = serde_json::from_str(text)?;
        if m.schema != MODEL_SCHEMA {
            return Err(ModelError::Schema(m.schema));
        }
        if m.scale == 0 || m.scale > fedprof_protocol::query::MAX_SCALE {
            return Err(ModelError::Invalid(
                "scale".into(),
                format!("must be in 1..={}", fedprof_protocol::query::MAX_SCALE),
            ));
        }
        for s in &m.segmentations {
            s.segmenter
                .validate(m.scale)
                .map_err(|e| ModelError::Invalid(s.name.clone(), e.to_string()))?;
            if s.segments.len() != s.segmenter.segments() {
                return Err(ModelError::Invalid(
                    s.name.clone(),
                    "segment names do not match the segmenter".into(),
                ));
            }
        }
        Ok(m)
    }

    /// The segmentation named `name`, or the k-means one, or the first.
    pub fn segmentation(&self, name: Option<&str>) -> Option<&ModelSegmentation> {
        match name {
            Some(n) => self.segmentations.iter().find(|s| s.name == n),
            None => self
                .segmentations
                .iter()
                .find(|s| s.name == "kmeans")
                .or_else(|| self.segmentations.first()),
        }
    }

    /// Drift from `previous` to this model: sizes per segment and centroid moves (normalized
    /// space, Euclidean, in units of each dimension's range).
    pub fn drift_from(&self, previous: &SegmentModel) -> Drift {
        let mut sizes = Vec::new();
        let mut moves = Vec::new();
        for s in &self.segmentations {
            let Some(p) = previous.segmentations.iter().find(|p| p.name == s.name) else {
                continue;
            };
            for (i, name) in s.segments.iter().enumerate() {
                sizes.push(SizeChange {
                    segmentation: s.name.clone(),
                    segment: name.clone(),
                    before: p.sizes.get(i).copied().unwrap_or(Cell::Suppressed),
                    now: s.sizes.get(i).copied().unwrap_or(Cell::Suppressed),
                });
            }
            if let (
                Segmenter::Centroids { centroids: now, .. },
                Segmenter::Centroids {
                    centroids: before, ..
                },
            ) = (&s.segmenter, &p.segmenter)
            {
                for (i, (a, b)) in now.iter().zip(before).enumerate() {
                    let d: f64 = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (f64::from(*x) - f64::from(*y)) / f64::from(self.scale))
                        .map(|d| d * d)
                        .sum::<f64>()
                        .sqrt();
                    let name = s.segments.get(i).cloned().unwrap_or_default();
                    moves.push((name, d));
                }
            }
        }
        Drift {
            previous_version: previous.version,
            previous_as_of: previous.as_of.clone(),
            sizes,
            centroid_moves: moves,
        }
    }
}

/// The model of a finished run: its segmenters (taken from the queries that were released)
/// and the sizes from its report.
pub fn model_of(report: &ProfileReport, segmenters: Vec<(String, Segmenter)>) -> SegmentModel {
    let segmentations = segmenters
        .into_iter()
        .map(|(name, segmenter)| {
            let seg = report.segmentations.iter().find(|s| s.name == name);
            ModelSegmentation {
                segments: seg
                    .map(|s| s.segments.iter().map(|x| x.name.clone()).collect())
                    .unwrap_or_default(),
                sizes: seg
                    .map(|s| s.segments.iter().map(|x| x.size).collect())
                    .unwrap_or_default(),
                name,
                segmenter,
            }
        })
        .collect();
    SegmentModel {
        schema: MODEL_SCHEMA.into(),
        name: report.name.clone(),
        version: report.model_version,
        as_of: report.as_of.clone(),
        scale: SCALE,
        segmentations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> SegmentModel {
        SegmentModel {
            schema: MODEL_SCHEMA.into(),
            name: "p".into(),
            version: 1,
            as_of: "2026-06-30".into(),
            scale: SCALE,
            segmentations: vec![ModelSegmentation {
                name: "lifecycle".into(),
                segmenter: Segmenter::Lifecycle,
                segments: fedprof_protocol::query::LIFECYCLE_SEGMENTS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                sizes: vec![Cell::Suppressed; 4],
            }],
        }
    }

    #[test]
    fn models_round_trip_and_bad_ones_are_refused() {
        let text = serde_json::to_string(&model()).unwrap();
        assert_eq!(SegmentModel::from_json(&text).unwrap(), model());
        let wrong_schema = text.replace(MODEL_SCHEMA, "fedprof-segment-model/9");
        assert!(matches!(
            SegmentModel::from_json(&wrong_schema),
            Err(ModelError::Schema(_))
        ));
        let mut m = model();
        m.segmentations[0].segments.pop();
        let names = serde_json::to_string(&m).unwrap();
        assert!(matches!(
            SegmentModel::from_json(&names),
            Err(ModelError::Invalid(..))
        ));
        let mut m = model();
        m.segmentations[0].segmenter = Segmenter::Centroids {
            dimensions: Vec::new(),
            centroids: vec![vec![1]],
        };
        m.segmentations[0].segments = vec!["c".into()];
        let bad = serde_json::to_string(&m).unwrap();
        assert!(matches!(
            SegmentModel::from_json(&bad),
            Err(ModelError::Invalid(..))
        ));
        assert!(matches!(
            SegmentModel::from_json("{"),
            Err(ModelError::Parse(_))
        ));
    }

    #[test]
    fn drift_compares_sizes_and_centroids() {
        let centroids = |c: Vec<Vec<u32>>| ModelSegmentation {
            name: "kmeans".into(),
            segmenter: Segmenter::Centroids {
                dimensions: vec![fedprof_protocol::query::Dimension {
                    feature: fedprof_protocol::query::NumericFeature::Frequency,
                    lo: 0,
                    hi: 10,
                }],
                centroids: c,
            },
            segments: vec!["cluster-1".into(), "cluster-2".into()],
            sizes: vec![
                Cell::Value {
                    value: 10.0,
                    sd: 1.0,
                },
                Cell::Suppressed,
            ],
        };
        let mut before = model();
        before.segmentations = vec![centroids(vec![vec![0], vec![500]])];
        let mut now = before.clone();
        now.version = 2;
        now.segmentations = vec![centroids(vec![vec![300], vec![500]])];
        let d = now.drift_from(&before);
        assert_eq!(d.previous_version, 1);
        assert_eq!(d.sizes.len(), 2);
        assert_eq!(d.centroid_moves[0].0, "cluster-1");
        assert!((d.centroid_moves[0].1 - 0.3).abs() < 1e-12);
        assert_eq!(d.centroid_moves[1].1, 0.0);
    }
}
