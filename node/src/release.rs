//! The node's contribution to a `TransactionTotals` release: per-customer bounding, then this
//! node's share of distributed discrete Gaussian noise, encoded into the ring `Z_2^64`.
//!
//! The clipping bounds and noise variances come from the job announcement; the node checks them
//! with the same function the coordinator planned them with and the auditor recomputes them with
//! (`fedprof_privacy::release`), so all three agree on the rho every node pays.

use fedprof_privacy::DiscreteGaussian;
use fedprof_privacy::encoding::to_ring;
use fedprof_privacy::release::{ReleaseError, node_variances};
use fedprof_protocol::ReleaseParams;
use rand_core::CryptoRng;

use crate::data::{CustomerTotals, TransactionTotals, clipped_totals};

/// The clipped totals and the noisy ring vector this node sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRelease {
    /// The totals after clipping (never sent).
    pub clipped: TransactionTotals,
    /// `clipped + noise`, in `Z_2^64`: what is masked and sent.
    pub noisy: Vec<u64>,
}

/// Bounds `customers` as `params` says and adds this node's noise share.
pub fn noisy_totals<R: CryptoRng + ?Sized>(
    customers: &[CustomerTotals],
    params: &ReleaseParams,
    rng: &mut R,
) -> Result<NodeRelease, ReleaseError> {
    let variances = node_variances(params)?;
    let max_amount = i64::try_from(params.max_abs_amount_minor)
        .map_err(|_| ReleaseError::Bound(params.max_abs_amount_minor))?;
    let clipped = clipped_totals(
        customers,
        u64::from(params.max_rows_per_customer),
        max_amount,
    );
    let exact = [
        clipped.customers as i64,
        clipped.rows as i64,
        clipped.amount_minor,
    ];
    let noisy = exact
        .iter()
        .zip(&variances)
        .map(|(x, v)| to_ring(*x).wrapping_add(to_ring(DiscreteGaussian::new(v).sample(rng))))
        .collect();
    Ok(NodeRelease { clipped, noisy })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha20Rng;
    use fedprof_privacy::Rho;
    use fedprof_privacy::release::plan_totals;
    use rand_core::SeedableRng;

    #[test]
    fn noise_is_added_around_the_clipped_totals_with_the_announced_variance() {
        let params = plan_totals(&Rho::from_ratio(1, 2).unwrap(), 3, 1_000, 3, 1).unwrap();
        let customers = vec![
            CustomerTotals {
                rows: 5,
                amount_minor: 5_000
            };
            10
        ];
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let n = 2000;
        let mut sums = [0f64; 3];
        let mut squares = [0f64; 3];
        for _ in 0..n {
            let r = noisy_totals(&customers, &params, &mut rng).unwrap();
            assert_eq!(
                r.clipped,
                TransactionTotals {
                    customers: 10,
                    rows: 30,
                    amount_minor: 10_000
                }
            );
            let exact = [10i64, 30, 10_000];
            for i in 0..3 {
                let noise = (r.noisy[i] as i64 - exact[i]) as f64;
                sums[i] += noise;
                squares[i] += noise * noise;
            }
        }
        for i in 0..3 {
            let var = params.node_variance[i].numer as f64 / params.node_variance[i].denom as f64;
            let (mean, second) = (sums[i] / n as f64, squares[i] / n as f64);
            // 5 standard errors: mean's sd is sqrt(var/n), the second moment's about var*sqrt(2/n).
            assert!(
                mean.abs() < 5.0 * (var / n as f64).sqrt(),
                "coordinate {i}: mean {mean}"
            );
            assert!(
                (second - var).abs() < 5.0 * var * (2.0 / n as f64).sqrt(),
                "coordinate {i}: {second} vs {var}"
            );
        }
    }

    #[test]
    fn invalid_parameters_are_refused_before_any_noise() {
        let mut params = plan_totals(&Rho::from_ratio(1, 2).unwrap(), 3, 1_000, 3, 1).unwrap();
        params.node_variance.truncate(1);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(noisy_totals(&[], &params, &mut rng).is_err());
    }
}
