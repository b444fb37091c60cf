use fedprof_crypto::{SecretKey32, SigningKey};

use super::*;

fn parties(n: usize) -> Vec<Party> {
    (0..n)
        .map(|i| Party {
            name: format!("node-{i}"),
            verifying_key: SigningKey::from_seed(&SecretKey32::from_bytes([i as u8 + 1; 32]))
                .verifying_key(),
        })
        .collect()
}

const TAG: RoundTag = RoundTag { job: 9, round: 1 };

#[test]
fn default_threshold_is_two_thirds_and_at_least_two() {
    assert_eq!(default_threshold(2), 2);
    assert_eq!(default_threshold(3), 2);
    assert_eq!(default_threshold(10), 7);
    assert_eq!(default_threshold(1000), 667);
    let cfg = RoundConfig::new(TAG, parties(10), 4, GraphSpec::Complete, None).unwrap();
    assert_eq!(cfg.threshold(), 7);
}

#[test]
fn bad_configurations_are_refused() {
    assert_eq!(
        RoundConfig::new(TAG, parties(1), 4, GraphSpec::Complete, None).unwrap_err(),
        ConfigError::PartyCount(1)
    );
    assert_eq!(
        RoundConfig::new(TAG, parties(5), 0, GraphSpec::Complete, None).unwrap_err(),
        ConfigError::VectorLen(0)
    );
    // Not a majority of 10, and above 10.
    for t in [1, 5, 11] {
        assert_eq!(
            RoundConfig::new(TAG, parties(10), 4, GraphSpec::Complete, Some(t)).unwrap_err(),
            ConfigError::Threshold {
                threshold: t,
                size: 10
            }
        );
    }
    for k in [0, 3, 10] {
        let spec = GraphSpec::Sparse {
            neighbours: k,
            seed: [0; 32],
        };
        assert_eq!(
            RoundConfig::new(TAG, parties(10), 4, spec, None).unwrap_err(),
            ConfigError::Neighbours(k)
        );
    }
    let mut dup = parties(3);
    dup[2].name = "node-0".to_owned();
    assert!(matches!(
        RoundConfig::new(TAG, dup, 4, GraphSpec::Complete, None).unwrap_err(),
        ConfigError::DuplicateParty(_)
    ));
}

#[test]
fn sparse_graph_is_regular_symmetric_and_deterministic() {
    let spec = GraphSpec::Sparse {
        neighbours: 6,
        seed: [7; 32],
    };
    let cfg = RoundConfig::new(TAG, parties(50), 4, spec, None).unwrap();
    assert_eq!(cfg.threshold(), 5);
    for u in 0..50u32 {
        let nb = cfg.neighbourhood(u);
        assert_eq!(nb.len(), 7, "node {u}");
        assert!(nb.contains(&u));
        for &v in &nb {
            assert!(cfg.are_neighbours(v, u));
            assert!(cfg.neighbourhood(v).contains(&u));
        }
        let others = (0..50u32).filter(|v| cfg.are_neighbours(u, *v)).count();
        assert_eq!(others, 7);
    }
    // Same inputs, same graph; another seed or round, another graph.
    let again = RoundConfig::new(TAG, parties(50), 4, spec, None).unwrap();
    assert_eq!(cfg.neighbourhood(3), again.neighbourhood(3));
    assert_eq!(cfg.digest(), again.digest());
    let other =
        RoundConfig::new(RoundTag { job: 9, round: 2 }, parties(50), 4, spec, None).unwrap();
    assert_ne!(cfg.digest(), other.digest());
    assert!((0..50).any(|u| cfg.neighbourhood(u) != other.neighbourhood(u)));
    // Not just a ring in index order.
    assert!((0..50).any(|u| !cfg.are_neighbours(u, (u + 1) % 50)));
}
