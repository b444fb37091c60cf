//! One-sided Clopper-Pearson bounds on a binomial probability, from the regularized incomplete
//! beta function (a continued fraction, as Numerical Recipes' `betacf`) and a bisection for its
//! quantile. Used by `empirical_privacy.rs` (included there with `#[path]`).

/// `ln Gamma(x)` for `x >= 0.5`: Lanczos (g = 7, n = 9), relative error about 1e-15.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    assert!(x >= 0.5, "ln_gamma({x})");
    let x = x - 1.0;
    let a = C
        .iter()
        .enumerate()
        .skip(1)
        .fold(C[0], |acc, (i, c)| acc + c / (x + i as f64));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes'
/// `betacf`). Converges in `O(sqrt(max(a, b)))` steps for `x < (a + 1) / (a + b + 2)`.
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=200_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            return h;
        }
    }
    panic!("beta_cf({a}, {b}, {x}) did not converge");
}

/// The regularized incomplete beta function `I_x(a, b)`, for `a, b >= 0.5`.
fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (-x).ln_1p();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The `q`-quantile of Beta(a, b): bisection of the increasing `I_x(a, b)` to a relative
/// precision of 1e-13.
fn beta_ppf(q: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..400 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi || hi - lo <= 1e-13 * hi {
            break;
        }
        if beta_inc(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// One-sided Clopper-Pearson lower bound on a probability, `k` successes in `n`, level `tail`.
pub(crate) fn cp_lower(k: usize, n: usize, tail: f64) -> f64 {
    if k == 0 {
        0.0
    } else {
        beta_ppf(tail, k as f64, (n - k + 1) as f64)
    }
}

/// One-sided Clopper-Pearson upper bound, level `tail`.
pub(crate) fn cp_upper(k: usize, n: usize, tail: f64) -> f64 {
    if k == n {
        1.0
    } else {
        beta_ppf(1.0 - tail, (k + 1) as f64, (n - k) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_matches_scipy() {
        // scipy 1.17.1: scipy.special.betainc(a, b, x) and scipy.stats.beta.ppf(q, a, b).
        let close = |got: f64, want: f64, what: &str| {
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1e-300) + 1e-14,
                "{what}: {got} vs {want}"
            );
        };
        for (a, b, x, want) in [
            (0.5, 0.5, 0.3, 0.369_010_119_565_545_36),
            (2.0, 3.0, 0.4, 0.524_799_999_999_999_9),
            (5.0, 96.0, 0.05, 0.564_018_699_314_289_9),
            (30.0, 70.0, 0.35, 0.861_575_475_866_109_2),
            (1000.0, 9000.0, 0.1, 0.503_546_220_751_863_5),
        ] {
            close(beta_inc(a, b, x), want, &format!("I_{x}({a}, {b})"));
        }
        for (q, a, b, want) in [
            (0.025, 5.0, 96.0, 0.016_431_879_182_052_155),
            (0.975, 6.0, 95.0, 0.112_834_911_105_462_75),
            (0.025, 1.0, 10.0, 0.002_528_578_544_461_784_8),
            (0.975, 1.0, 1_000_000.0, 3.688_872_650_206_488e-6),
            (0.025, 250_000.0, 250_001.0, 0.498_613_099_536_331_87),
            (0.975, 13.0, 9988.0, 0.002_095_219_279_370_975_7),
            (0.995, 1.0, 20.0, 0.232_729_500_989_074_47),
        ] {
            close(beta_ppf(q, a, b), want, &format!("ppf({q}, {a}, {b})"));
        }
        // The intervals: 5 of 100 is [beta.ppf(.025, 5, 96), beta.ppf(.975, 6, 95)].
        close(cp_lower(5, 100, 0.025), 0.016_431_879_182_052_155, "lower");
        close(cp_upper(5, 100, 0.025), 0.112_834_911_105_462_75, "upper");
        assert_eq!(
            (cp_lower(0, 10, 0.025), cp_upper(10, 10, 0.025)),
            (0.0, 1.0)
        );
    }
}
