use chacha20::ChaCha20Rng;
use rand_core::SeedableRng as _;

use super::*;

fn secret() -> SecretKey32 {
    SecretKey32::from_bytes(core::array::from_fn(|i| i as u8))
}

/// Fixed coefficients: the k-th call (from 1) returns `k * 0x0123456789abcdef mod p`. Expected
/// values computed independently in Python (`pow(x, j, p)` sums).
#[test]
fn known_answer_with_fixed_coefficients() {
    let mut k = 0u64;
    let shares = split_with(&secret(), 3, &[1, 2, 7], || {
        k += 1;
        ((u128::from(k) * 0x0123_4567_89ab_cdef) % u128::from(FIELD_PRIME)) as u64
    })
    .unwrap();
    let expected: [[u64; 5]; 3] = [
        [
            0x07fc_ead8_c6b4_a289,
            0x0a4a_7cae_e113_456e,
            0x0c98_0e84_fb71_e853,
            0x0ee5_a05b_15d0_8b38,
            0x1111_1111_302f_2e1d,
        ],
        [
            0x1d9b_1187_fe74_eb46,
            0x0475_b8fc_3f82_c5e8,
            0x0b50_6070_8090_a089,
            0x122b_07e4_c19e_7b2a,
            0x18e3_8e39_02ac_55cb,
        ],
        [
            0x167e_9fc0_e203_230d,
            0x163c_d56e_069f_365e,
            0x15fb_0b1b_2b3b_49af,
            0x15b9_40c8_4fd7_5d00,
            0x1555_5555_7473_7051,
        ],
    ];
    for (share, want) in shares.iter().zip(expected) {
        assert_eq!(share.y, want, "point {}", share.x);
    }
    assert_eq!(reconstruct(&shares, 3).unwrap(), secret());
}

#[test]
fn any_threshold_subset_reconstructs_and_fewer_do_not() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let points: Vec<u64> = (1..=7).collect();
    let shares = split(&secret(), 4, &points, &mut rng).unwrap();
    for subset in [[0, 1, 2, 3], [3, 4, 5, 6], [6, 0, 4, 2]] {
        let picked: Vec<Share> = subset.iter().map(|&i| shares[i].clone()).collect();
        assert_eq!(reconstruct(&picked, 4).unwrap(), secret());
    }
    // Three shares and a threshold of three interpolate a different polynomial.
    assert!(reconstruct(&shares[..3], 3).map_or(true, |s| s != secret()));
    assert_eq!(
        reconstruct(&shares[..3], 4).unwrap_err(),
        ShamirError::NotEnoughShares { have: 3, need: 4 }
    );
}

#[test]
fn a_tampered_share_is_caught_or_changes_the_secret() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let shares = split(&secret(), 2, &[1, 2, 3], &mut rng).unwrap();
    let mut bad = shares[..2].to_vec();
    bad[1].y[0] = add(bad[1].y[0], 1);
    // Chunk 0 moves by a field element; it is either out of range or a different secret.
    assert!(reconstruct(&bad, 2).map_or(true, |s| s != secret()));
    bad[1].y[4] = add(bad[1].y[4], 1 << 40);
    assert_eq!(reconstruct(&bad, 2).unwrap_err(), ShamirError::Inconsistent);
}

#[test]
fn wire_form_round_trips_and_is_checked() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let shares = split(&secret(), 2, &[5, 9], &mut rng).unwrap();
    let parsed: Vec<Share> = shares
        .iter()
        .map(|s| Share::from_bytes(s.point(), s.to_bytes().as_slice()).unwrap())
        .collect();
    assert_eq!(reconstruct(&parsed, 2).unwrap(), secret());
    let mut bytes = *shares[0].to_bytes();
    bytes[..8].copy_from_slice(&FIELD_PRIME.to_le_bytes());
    assert_eq!(
        Share::from_bytes(5, &bytes).unwrap_err(),
        ShamirError::MalformedShare
    );
    assert_eq!(
        Share::from_bytes(5, &bytes[..39]).unwrap_err(),
        ShamirError::MalformedShare
    );
    assert_eq!(
        Share::from_bytes(0, &bytes).unwrap_err(),
        ShamirError::BadPoint(0)
    );
    assert_eq!(format!("{:?}", shares[0]), "Share(x = 5, <redacted>)");
}

#[test]
fn bad_parameters_are_refused() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let s = secret();
    assert_eq!(
        split(&s, 0, &[1, 2], &mut rng).unwrap_err(),
        ShamirError::BadThreshold {
            threshold: 0,
            holders: 2
        }
    );
    assert_eq!(
        split(&s, 3, &[1, 2], &mut rng).unwrap_err(),
        ShamirError::BadThreshold {
            threshold: 3,
            holders: 2
        }
    );
    assert_eq!(
        split(&s, 2, &[1, 0], &mut rng).unwrap_err(),
        ShamirError::BadPoint(0)
    );
    assert_eq!(
        split(&s, 2, &[1, FIELD_PRIME], &mut rng).unwrap_err(),
        ShamirError::BadPoint(FIELD_PRIME)
    );
    assert_eq!(
        split(&s, 2, &[4, 4], &mut rng).unwrap_err(),
        ShamirError::DuplicatePoint(4)
    );
    let shares = split(&s, 2, &[1, 2, 3], &mut rng).unwrap();
    let r = Reconstructor::new(&[1, 2]).unwrap();
    assert_eq!(
        r.reconstruct(&shares[1..]).unwrap_err(),
        ShamirError::BadPoint(2)
    );
    assert_eq!(
        r.reconstruct(&shares).unwrap_err(),
        ShamirError::TooManyShares { expected: 2 }
    );
    assert_eq!(
        r.reconstruct(&shares[..1]).unwrap_err(),
        ShamirError::NotEnoughShares { have: 1, need: 2 }
    );
    assert_eq!(r.reconstruct(&shares[..2]).unwrap(), s);
}

#[test]
fn field_arithmetic_matches_u128_reference() {
    let p = u128::from(FIELD_PRIME);
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let edge = [0, 1, 2, FIELD_PRIME - 1, FIELD_PRIME - 2, 1 << 60];
    let mut values: Vec<u64> = edge.to_vec();
    values.extend((0..200).map(|_| random_element(&mut rng)));
    for &a in &values {
        for &b in &values[..20] {
            assert_eq!(u128::from(mul(a, b)), u128::from(a) * u128::from(b) % p);
            assert_eq!(u128::from(add(a, b)), (u128::from(a) + u128::from(b)) % p);
            assert_eq!(
                u128::from(sub(a, b)),
                (u128::from(a) + p - u128::from(b)) % p
            );
        }
        if a != 0 {
            assert_eq!(mul(a, invert(a)), 1);
        }
    }
}
