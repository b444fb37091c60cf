//! One distributed release end to end, without the network: bound and encode each customer,
//! sum per node, add the node's noise share, reduce into `Z_2^64`, add in the ring (as the
//! unmasked secure-aggregation total would be), decode; then the exact debit and its
//! (epsilon, delta) for display.

use chacha20::ChaCha20Rng;
use fedprof_privacy::encoding::{add_assign_ring, from_ring, reduce};
use fedprof_privacy::{
    ContributionBounds, CoordinateRange, FixedPoint, Neighbouring, NoiseShare, Rho, Variance,
    check_overflow, epsilon_for_delta, epsilon_for_delta_simple,
};
use rand_core::SeedableRng;

#[test]
fn five_nodes_release_counts_and_clipped_amounts() {
    // Per customer: [is a customer (0/1), spend in cents clipped to [0, 1000.00]].
    let cents = FixedPoint::new(100).unwrap();
    let bounds = ContributionBounds::new(
        vec![
            CoordinateRange::indicator(),
            CoordinateRange::new(0, 100_000).unwrap(),
        ],
        None,
    )
    .unwrap();
    let sensitivity = bounds.sensitivity(Neighbouring::AddRemove);
    // Target sigma^2 = 10^10 (sigma = 10^5 cents = 1000.00), n_min = 4, c = 1.
    let share = NoiseShare::new(&"10000000000".parse::<Variance>().unwrap(), 4, 1).unwrap();
    assert_eq!(share.node_variance().to_string(), "10000000000/3");

    let nodes: Vec<Vec<(f64, f64)>> = vec![
        vec![(1.0, 12.5), (1.0, 2500.0), (3.0, -4.0)],
        vec![(1.0, 999.999), (1.0, 0.004)],
        vec![(1.0, 1000.0); 50],
        vec![],
        vec![(1.0, 0.01), (0.0, 55.55)],
    ];
    let mut ring = vec![0u64; 2];
    let mut true_sum = [0i128; 2];
    let mut noise_sum = 0i128;
    for (i, customers) in nodes.iter().enumerate() {
        let mut local = [0i128; 2];
        for &(count, amount) in customers {
            let encoded = [
                cents.encode(count).unwrap() / 100,
                cents.encode(amount).unwrap(),
            ];
            let clipped = bounds.clip(&encoded).unwrap();
            for (l, c) in local.iter_mut().zip(&clipped) {
                *l += i128::from(*c);
            }
        }
        let noise = share.sample(&mut ChaCha20Rng::from_seed([i as u8; 32]), 2);
        let contribution: Vec<u64> = local
            .iter()
            .zip(&noise)
            .map(|(v, e)| reduce(v + i128::from(*e)))
            .collect();
        add_assign_ring(&mut ring, &contribution).unwrap();
        for (t, l) in true_sum.iter_mut().zip(&local) {
            *t += l;
        }
        noise_sum += noise.iter().map(|&e| i128::from(e)).sum::<i128>();
    }
    // 3 + 2 + 50 + 0 + 1 customers counted (a count of 3 clips to 1; one row has count 0).
    assert_eq!(true_sum[0], 56);
    // 12.50 + 1000.00 (clipped) + 0 (clipped) + 1000.00 + 0.00 + 50 * 1000.00 + 0.01 + 55.55.
    assert_eq!(
        true_sum[1],
        1250 + 100_000 + 100_000 + 50 * 100_000 + 1 + 5555
    );
    let decoded: Vec<i128> = ring.iter().map(|&r| i128::from(from_ring(r))).collect();
    assert_eq!(
        decoded.iter().sum::<i128>(),
        true_sum.iter().sum::<i128>() + noise_sum
    );

    // The sums stay far inside the decodable range.
    let report = check_overflow(5, 50 * 100_000, share.node_variance(), 2, 1e-12).unwrap();
    assert!(report.headroom_bits > 35.0, "{report:?}");

    // The debit: Delta_2^2 = 1 + 10^10 over 2 sigma^2 = 2 * 10^10, plus a tau term far below
    // 1e-30; rho is recorded exactly and never below the central Gaussian's.
    let rho = share.rho(&sensitivity);
    let central: Rho = "10000000001/20000000000".parse().unwrap();
    assert!(rho >= central);
    assert!(rho.to_f64() - central.to_f64() < 1e-30);
    let eps = epsilon_for_delta(&rho, 1e-6).unwrap();
    assert!(eps < epsilon_for_delta_simple(&rho, 1e-6).unwrap());
    assert!((4.0..6.0).contains(&eps), "{eps}");
}
