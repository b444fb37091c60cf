use super::*;
use fedprof_protocol::query::{Dimension, RFM_SEGMENTS};
use proptest::prelude::*;

/// Three customers, hand-made: (frequency, days_since_last, monetary_total, stage, channel
/// shares web/branch).
fn table() -> FeatureTable {
    FeatureTable {
        decimals: 2,
        customer: vec!["a".into(), "b".into(), "c".into()],
        txn_count: vec![1, 4, 10],
        purchase_days: vec![1, 3, 8],
        frequency: vec![0, 2, 7],
        recency_days: vec![0, 30, 200],
        tenure_days: vec![5, 100, 300],
        days_since_last: vec![5, 70, 100],
        monetary_total: vec![1_000, 25_000, 90_000],
        monetary_mean_repeat: vec![0.0, 100.0, 110.0],
        avg_ticket: vec![10.0, 62.5, 90.0],
        lifecycle_stage: vec![Stage::New, Stage::AtRisk, Stage::AtRisk],
        // Transactions per level: branch 1, 1, 5; web 0, 3, 5.
        channel_mix: MixColumn::new(
            &["web".into(), "branch".into()],
            [&[(1, 1)][..], &[(0, 3), (1, 1)], &[(1, 5), (0, 5)]],
        ),
        ..FeatureTable::default()
    }
}

fn query(segmenter: Segmenter, parts: Vec<QueryPart>) -> FeatureQuery {
    FeatureQuery {
        label: "t".into(),
        as_of: "2026-01-31".into(),
        scale: 100,
        segmenter,
        parts,
        budget: fedprof_protocol::Fraction {
            numer: 1,
            denom: 10,
        },
        reserve: fedprof_protocol::Fraction { numer: 0, denom: 1 },
        job: None,
    }
}

#[test]
fn hand_computed_blocks_by_lifecycle() {
    let q = query(
        Segmenter::Lifecycle,
        vec![
            QueryPart::Count,
            QueryPart::Numeric {
                feature: NumericFeature::Frequency,
                lo: 0,
                hi: 8,
            },
            QueryPart::Histogram {
                feature: NumericFeature::DaysSinceLast,
                edges: vec![30, 90],
            },
            QueryPart::Mix {
                feature: MixFeature::Channel,
                levels: vec!["web".into(), "atm".into()],
            },
        ],
    );
    // Block: count, frequency, 3 bins, web, atm = 7 coordinates; 4 segments.
    let v = evaluate(&table(), &q).unwrap();
    let new = [100, 0, 100, 0, 0, 0, 0];
    // b: freq 2/8 -> 25; c: 7/8 -> 87.5 -> 88 (round half up); days 70 -> bin 1, 100 -> bin 2;
    // web 0.75 -> 75 and 0.5 -> 50.
    let at_risk = [200, 25 + 88, 0, 100, 100, 125, 0];
    let mut expected = vec![0i64; 28];
    expected[..7].copy_from_slice(&new);
    expected[14..21].copy_from_slice(&at_risk);
    assert_eq!(v, expected);
}

#[test]
fn rfm_segments_follow_the_map() {
    let q = query(
        Segmenter::Rfm {
            recency: [10, 30, 60, 90],
            frequency: [1, 2, 4, 6],
            monetary: [2_000, 10_000, 40_000, 80_000],
        },
        vec![QueryPart::Count],
    );
    let v = evaluate(&table(), &q).unwrap();
    // a: days 5 -> r 5; f 0 -> 1, m 1000 -> 1; fm 1 -> new customers.
    // b: days 70 -> r 2; f 2 -> 3, m 25000 -> 3; fm 3 -> at risk.
    // c: days 100 -> r 1; f 7 -> 5, m 90000 -> 5; fm 5 -> cannot lose.
    let idx = |name| RFM_SEGMENTS.iter().position(|n| *n == name).unwrap();
    let mut expected = vec![0i64; 11];
    expected[idx("new_customers")] = 100;
    expected[idx("at_risk")] = 100;
    expected[idx("cannot_lose")] = 100;
    assert_eq!(v, expected);
    // Every name is reachable, and nothing else.
    let mut seen = std::collections::BTreeSet::new();
    for r in 1..=5 {
        for fm in 1..=5 {
            seen.insert(rfm_segment(r, fm));
        }
    }
    assert_eq!(seen.len(), RFM_SEGMENTS.len());
}

#[test]
fn nearest_centroid_with_ties_to_the_lower_index_and_cost() {
    let dims = vec![Dimension {
        feature: NumericFeature::Frequency,
        lo: 0,
        hi: 8,
    }];
    // Points: 0, 25, 88 (scale 100). Centroids 0 and 50: 25 is a tie -> 0.
    let q = query(
        Segmenter::Centroids {
            dimensions: dims,
            centroids: vec![vec![0], vec![50]],
        },
        vec![QueryPart::Count, QueryPart::Cost],
    );
    let v = evaluate(&table(), &q).unwrap();
    // Cost: d^2 / (dims * scale): 0, 625/100 = 6, (88-50)^2 = 1444 / 100 = 14.
    assert_eq!(v, vec![200, 6, 100, 14]);
}

#[test]
fn grid_cells_are_row_major() {
    // Frequency bins (<2, 2..10, >=10) x days since last (<30, >=30): 6 cells.
    let q = query(
        Segmenter::All,
        vec![QueryPart::Grid {
            features: vec![NumericFeature::Frequency, NumericFeature::DaysSinceLast],
            edges: vec![vec![2, 10], vec![30]],
        }],
    );
    // a: freq 0, days 5 -> (0, 0) = cell 0; b: freq 2, days 70 -> (1, 1) = 3;
    // c: freq 7, days 100 -> (1, 1) = 3.
    assert_eq!(evaluate(&table(), &q).unwrap(), vec![100, 0, 0, 200, 0, 0]);
}

#[test]
fn normalization_rounds_and_clamps() {
    assert_eq!(normalize(-5, 0, 10, 100), 0);
    assert_eq!(normalize(15, 0, 10, 100), 100);
    assert_eq!(normalize(1, 0, 8, 100), 13); // 12.5 rounds up
    assert_eq!(normalize(i64::MAX, i64::MIN, i64::MAX, 1000), 1000);
}

fn random_table() -> impl Strategy<Value = FeatureTable> {
    let row = (
        0u32..400,
        0u32..400,
        -1_000_000i64..10_000_000,
        0usize..4,
        0.0f64..=1.0,
    );
    prop::collection::vec(row, 1..40).prop_map(|rows| {
        let mut t = FeatureTable::default();
        let mut counts: Vec<[(u32, u32); 2]> = Vec::new();
        for (i, (f, days, money, stage, share)) in rows.into_iter().enumerate() {
            t.customer.push(format!("c{i}"));
            t.txn_count.push(u64::from(f) + 1);
            t.purchase_days.push(f + 1);
            t.frequency.push(f);
            t.recency_days.push(days);
            t.tenure_days.push(days + 10);
            t.days_since_last.push(days);
            t.monetary_total.push(i128::from(money));
            t.monetary_mean_repeat.push(money as f64 / 100.0);
            t.avg_ticket.push(money as f64 / 100.0);
            t.lifecycle_stage
                .push([Stage::New, Stage::Active, Stage::AtRisk, Stage::Churned][stage]);
            // Of f + 1 transactions, about `share` at level a, the rest at b.
            let a = (share * f64::from(f + 1)).round() as u32;
            counts.push([(0, a), (1, f + 1 - a)]);
        }
        let names = ["a".to_owned(), "b".to_owned()];
        t.channel_mix = MixColumn::new(&names, counts.iter().map(|c| &c[..]));
        t
    })
}

fn every_part() -> Vec<QueryPart> {
    vec![
        QueryPart::Count,
        QueryPart::Numeric {
            feature: NumericFeature::MonetaryTotal,
            lo: 0,
            hi: 5_000_000,
        },
        QueryPart::Present {
            feature: NumericFeature::UtilizationBp,
        },
        QueryPart::Histogram {
            feature: NumericFeature::Frequency,
            edges: vec![1, 5, 50],
        },
        QueryPart::Levels {
            feature: CategoricalFeature::LifecycleStage,
            levels: vec!["new".into(), "active".into()],
        },
        QueryPart::Mix {
            feature: MixFeature::Channel,
            levels: vec!["a".into(), "b".into()],
        },
        QueryPart::Cost,
        QueryPart::Grid {
            features: vec![NumericFeature::Frequency, NumericFeature::DaysSinceLast],
            edges: vec![vec![2, 10], vec![30]],
        },
    ]
}

proptest! {
    /// Against a naive reference: the query's sum is the sum of one-customer queries, and every
    /// customer's vector stays within the sensitivity the accounting assumes.
    #[test]
    fn sums_of_single_customers_and_bounded_blocks(t in random_table()) {
        let q = query(
            Segmenter::Centroids {
                dimensions: vec![
                    Dimension { feature: NumericFeature::Frequency, lo: 0, hi: 100 },
                    Dimension { feature: NumericFeature::DaysSinceLast, lo: 0, hi: 365 },
                ],
                centroids: vec![vec![10, 10], vec![90, 50], vec![50, 90]],
            },
            every_part(),
        );
        let total = evaluate(&t, &q).unwrap();
        let mut reference = vec![0i64; q.vector_len()];
        let scale = i64::from(q.scale);
        for row in 0..t.len() {
            let one = single(&t, row);
            let v = evaluate(&one, &q).unwrap();
            let nonzero_blocks = v.chunks(q.block_len()).filter(|b| b.iter().any(|x| *x != 0)).count();
            prop_assert_eq!(nonzero_blocks, 1);
            prop_assert!(v.iter().all(|x| (0..=scale).contains(x)));
            // Part by part (slack in one part must not hide excess in another): each stays
            // within the bound the accounting charges it.
            let block = v.chunks(q.block_len()).find(|b| b.iter().any(|x| *x != 0)).unwrap_or(&[]);
            let mut at = 0;
            for part in &q.parts {
                let bound = part.bound();
                let coords = &block[at..at + part.width()];
                at += part.width();
                let l2: i64 = coords.iter().map(|x| x * x).sum();
                let l1: i64 = coords.iter().map(|x| x.abs()).sum();
                prop_assert!(l2 <= bound.l2_squared as i64 * scale * scale, "{part:?}");
                prop_assert!(l1 <= bound.l1 as i64 * scale, "{part:?}");
            }
            for (r, x) in reference.iter_mut().zip(v) {
                *r += x;
            }
        }
        prop_assert_eq!(total, reference);
    }
}

fn single(t: &FeatureTable, row: usize) -> FeatureTable {
    FeatureTable {
        decimals: t.decimals,
        customer: vec![t.customer[row].clone()],
        txn_count: vec![t.txn_count[row]],
        purchase_days: vec![t.purchase_days[row]],
        frequency: vec![t.frequency[row]],
        recency_days: vec![t.recency_days[row]],
        tenure_days: vec![t.tenure_days[row]],
        days_since_last: vec![t.days_since_last[row]],
        monetary_total: vec![t.monetary_total[row]],
        monetary_mean_repeat: vec![t.monetary_mean_repeat[row]],
        avg_ticket: vec![t.avg_ticket[row]],
        lifecycle_stage: vec![t.lifecycle_stage[row]],
        channel_mix: t.channel_mix.single(row),
        category_mix: t.category_mix.single(row),
        demographics: None,
        credit: None,
    }
}

fn any_part() -> impl Strategy<Value = QueryPart> {
    prop_oneof![
        Just(QueryPart::Count),
        Just(QueryPart::Cost),
        (any::<i64>(), any::<i64>()).prop_map(|(lo, hi)| QueryPart::Numeric {
            feature: NumericFeature::MonetaryTotal,
            lo,
            hi
        }),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|edges| QueryPart::Histogram {
            feature: NumericFeature::Frequency,
            edges
        }),
        prop::collection::vec("[a-z]{0,3}", 0..3).prop_map(|levels| QueryPart::Mix {
            feature: MixFeature::Channel,
            levels
        }),
        prop::collection::vec(prop::collection::vec(any::<i64>(), 0..3), 0..3).prop_map(|edges| {
            QueryPart::Grid {
                features: vec![NumericFeature::TenureDays; edges.len()],
                edges,
            }
        }),
    ]
}

fn any_segmenter() -> impl Strategy<Value = Segmenter> {
    prop_oneof![
        Just(Segmenter::All),
        Just(Segmenter::Lifecycle),
        (any::<[i64; 4]>(), any::<[i64; 4]>()).prop_map(|(r, f)| Segmenter::Rfm {
            recency: r,
            frequency: f,
            monetary: r
        }),
        (
            any::<i64>(),
            any::<i64>(),
            prop::collection::vec(prop::collection::vec(any::<u32>(), 0..3), 0..70)
        )
            .prop_map(|(lo, hi, centroids)| Segmenter::Centroids {
                dimensions: vec![Dimension {
                    feature: NumericFeature::DaysSinceLast,
                    lo,
                    hi
                }],
                centroids,
            }),
    ]
}

proptest! {
    /// A query is peer input: whatever arrives, evaluation returns a vector of the announced
    /// length or an error, and never panics.
    #[test]
    fn any_query_is_answered_or_refused(
        t in random_table(),
        segmenter in any_segmenter(),
        parts in prop::collection::vec(any_part(), 0..5),
        scale in any::<u32>(),
    ) {
        let mut q = query(segmenter, parts);
        q.scale = scale;
        match evaluate(&t, &q) {
            Ok(v) => {
                prop_assert!(q.validate().is_ok());
                prop_assert_eq!(v.len(), q.vector_len());
            }
            Err(_) => prop_assert!(q.validate().is_err()),
        }
    }
}
